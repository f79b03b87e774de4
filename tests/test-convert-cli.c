/* test-convert-cli.c — `ringkv convert` as a stand-alone program for the converter script
 * tests, so they need only the GGUF module: test-convert-cli ARGS... == ringkv convert ARGS... */
#include "tools/cmd-convert.h"

int main(int argc, char **argv) { return rk_cmd_convert(argc, argv); }
