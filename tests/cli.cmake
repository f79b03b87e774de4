# End-to-end tests of the `ringkv` command (tests/python/test_cli.py).
#   test-cli-golden  llama2.c stories260K → GGUF → `ringkv run` prints the golden text exactly
#   test-cli-errors  bad files, flags and text: clear message, non-zero exit, no crash
#   test-cli-chat    two chat turns with the default model, then /quit
#   test-cli-threads logits identical with 1, 2 and 3 threads
#   test-cli-decode  split-K decode agrees with batched attention over 600 tokens (both models)
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-cli-golden ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_cli.py golden)
  ringkv_add_script_test(test-cli-errors ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_cli.py errors)
  ringkv_add_script_test(test-cli-chat ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_cli.py chat)
  ringkv_add_script_test(test-cli-threads ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_cli.py threads)
  ringkv_add_script_test(test-cli-decode ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_cli.py decode)
  # 1200 single-token steps: too slow for the unoptimised sanitizer build (label slow, which
  # scripts/test.sh leaves out there); the release run covers it.
  set_tests_properties(test-cli-decode PROPERTIES TIMEOUT 600 LABELS slow)
endif()
