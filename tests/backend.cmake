# CPU backend: thread pool, activations (AVX2 vs scalar), RoPE, RMSNorm, quantised matmul.
ringkv_add_test(test-backend SOURCES ${PROJECT_SOURCE_DIR}/tests/test-backend.c LIBS ringkv_backend LABELS backend)
