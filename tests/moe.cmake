# Mixture-of-experts tests on tiny synthetic models.
#   test-moe-tiny  writes tiny random-weight qwen3moe / qwen2moe (shared expert) / Mixtral (llama
#                  with experts) / olmoe GGUFs (F32 each, Q8_0 for qwen3moe, and for each a
#                  Q4_K/Q6_K/Q8_0 mix at n_embd 256; tests/python/make_moe_models.py) and compares
#                  `ringkv eval logits` (one micro-batch and -ub 7) with the NumPy reference
#                  (tests/python/ref_forward.py) and with llama.cpp's logits in
#                  tests/data/moe-llama-cpp/ (when the GGUF's sha256 matches), with negative
#                  controls (renormalisation flipped, shared expert dropped, olmoe's q/k norm per
#                  head) and loader refusals. It also checks KV codecs and tiers on a MoE model:
#                  ~1100 tokens of small-qwen3moe-k with --kv-codec tq3.5 give a byte-identical
#                  logits file with --kv-hot/--kv-warm budgets and a --kv-disk tier, and stay
#                  within a documented top-1 / KL bound of f16's. ~3 s on 2 cores. Skipped (77)
#                  without numpy + the gguf Python package.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-moe-tiny ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/test_moe_tiny.py)
  set_tests_properties(test-moe-tiny PROPERTIES LABELS "model" TIMEOUT 120)
endif()

# The NumPy K-quant writers the MoE test models use (tests/python/kquant_np.py): round trips
# through the gguf package's dequantisation within each format's error budget, misplaced scales
# caught.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-kquant-np ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/kquant_np.py)
  set_tests_properties(test-kquant-np PROPERTIES LABELS "model" TIMEOUT 120)
endif()
