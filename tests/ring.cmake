# Ring attention (src/dist/ring-*.c, src/model/context-ring.c) with ranks as threads: logits of
# N = 2..4 ranks against one process for every KV codec, on SmolLM2 and Gemma 3 (sliding window).
ringkv_add_test(test-ring SOURCES ${PROJECT_SOURCE_DIR}/tests/test-ring.c LABELS model dist)
set_tests_properties(test-ring PROPERTIES TIMEOUT 600)
