# Server request-body parsers (src/server/api-params.c): OpenAI client bodies, every refusal
# with its status and param, error JSON, tokenize/detokenize, truncated and corrupted bodies.
if(RINGKV_HAVE_SERVER)
  ringkv_add_test(test-server-params SOURCES ${PROJECT_SOURCE_DIR}/tests/test-server-params.c LIBS ringkv_server LABELS server)
endif()
