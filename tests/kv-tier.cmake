ringkv_add_test(test-kv-tier SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-tier.c LIBS ringkv_attn LABELS kv)
