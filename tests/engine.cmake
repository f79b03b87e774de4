# Several sequences in one engine step (rk_engine_eval): bitwise equal to each run alone.
ringkv_add_test(test-engine-batch SOURCES ${PROJECT_SOURCE_DIR}/tests/test-engine-batch.c
                ARGS SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf LABELS model)
# Saving a context's KV cache and loading it into another: it continues bitwise the same.
ringkv_add_test(test-context-save SOURCES ${PROJECT_SOURCE_DIR}/tests/test-context-save.c
                ARGS SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf LABELS model)
