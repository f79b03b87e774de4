# Several sequences in one engine step (rk_engine_eval): bitwise equal to each run alone.
ringkv_add_test(test-engine-batch SOURCES ${PROJECT_SOURCE_DIR}/tests/test-engine-batch.c
                ARGS SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf LABELS model)
# Saving a context's KV cache and loading it into another: it continues bitwise the same.
ringkv_add_test(test-context-save SOURCES ${PROJECT_SOURCE_DIR}/tests/test-context-save.c
                ARGS SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf LABELS model)
# The same on tiny MoE models (qwen3moe; qwen2moe with a shared expert): decode tokens of
# several sequences go through the experts together (forward.c, moe_block), bitwise as alone.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-engine-batch-moe ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/with_moe_models.py
                         $<TARGET_FILE:test-engine-batch> small-qwen3moe-k small-qwen2moe-k)
  set_tests_properties(test-engine-batch-moe PROPERTIES LABELS "model" TIMEOUT 300)
endif()
