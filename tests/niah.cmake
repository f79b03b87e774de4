# `ringkv eval niah`, the needle-in-a-haystack harness (tests/python/test_niah.py): bad input
# fails before work; a 2 × 3 grid and a pass-key cell run on SmolLM2-135M (skipped, 77, when the
# model is not cached).
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-niah ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_niah.py)
  set_tests_properties(test-niah PROPERTIES LABELS model TIMEOUT 900)
endif()
