# `ringkv serve` end to end on SmolLM2, through the official openai client (tests/python/test_server.py):
# the API, greedy equality with `ringkv run`, batch invariance, sessions, cancellation, bad input,
# the queue limit and SIGTERM.
if(RINGKV_HAVE_SERVER AND Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-server ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_server.py)
  set_tests_properties(test-server PROPERTIES LABELS "server" TIMEOUT 600)
endif()
# The README's curl example, run as written (tests/python/test_readme_curl.py).
if(RINGKV_HAVE_SERVER AND Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-readme-curl ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_readme_curl.py)
  set_tests_properties(test-readme-curl PROPERTIES LABELS "server" TIMEOUT 300)
endif()
# Mixture-of-experts models served (tests/python/test_server_moe.py): tiny qwen3moe / qwen2moe
# GGUFs; greedy answers alone equal answers sent together; a session's follow-up reuses its KV.
if(RINGKV_HAVE_SERVER AND Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-server-moe ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_server_moe.py)
  set_tests_properties(test-server-moe PROPERTIES LABELS "server" TIMEOUT 300)
endif()
