# Architecture tests on tiny synthetic models.
#   test-arch-tiny  writes tiny random-weight llama / qwen2 / qwen3 GGUFs (F32 and Q8_0;
#                   tests/python/make_tiny_models.py) and compares `ringkv eval logits` with the
#                   NumPy reference (tests/python/ref_forward.py), with negative controls (RoPE
#                   pairing flipped, q/k/v biases or q/k norms removed), loader refusals and a
#                   greedy `ringkv run`. Skipped (77) without numpy + the gguf Python package.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-arch-tiny ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/test_arch_tiny.py)
  set_tests_properties(test-arch-tiny PROPERTIES LABELS "model" TIMEOUT 120)
endif()
