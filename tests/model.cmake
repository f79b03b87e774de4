# Model-level golden tests.
#   test-logits  `ringkv eval logits` on the cached SmolLM2-135M (llama) and Gemma 3 270M (gemma3)
#                GGUFs against an independent float64 NumPy forward pass
#                (tests/python/ref_forward.py): top-1 per position, max/mean |dlogit| and
#                softmax KL within documented tolerances (see tests/python/test_logits.py).
#                Skipped (77) without numpy + the gguf Python package or without the models.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-logits ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/test_logits.py)
  set_tests_properties(test-logits PROPERTIES LABELS "model" TIMEOUT 900)
endif()
