# `ringkv eval kld` and the KV codecs inside real models (tests/python/test_kld.py): bad input,
# several codecs in one pass against an f32 reference on SmolLM2-135M, and Gemma 3's
# sliding-window page release leaving logits unchanged.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-kld ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_kld.py)
  set_tests_properties(test-kld PROPERTIES LABELS model TIMEOUT 900)
endif()
