/* commands.h — one entry point per `ringkv` command; argv[0] is the command name. Each
 * returns the process exit code: 0 ok, 1 runtime failure, 2 bad usage. */
#ifndef RK_TOOLS_COMMANDS_H
#define RK_TOOLS_COMMANDS_H

int rk_cmd_run(int argc, char **argv);
int rk_cmd_chat(int argc, char **argv);
int rk_cmd_info(int argc, char **argv);
int rk_cmd_tokenize(int argc, char **argv);
int rk_cmd_convert(int argc, char **argv);
int rk_cmd_eval(int argc, char **argv);
int rk_cmd_bench(int argc, char **argv);
int rk_cmd_serve(int argc, char **argv);

#endif
