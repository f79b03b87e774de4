# Turns a file into a C array (cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake):
#   const char NAME[] = {...bytes..., 0}; const size_t NAME_len = <bytes>;
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR n "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed.cmake */\n#include <stddef.h>\n"
                  "const char ${NAME}[] = {${bytes} 0};\nconst size_t ${NAME}_len = ${n};\n")
