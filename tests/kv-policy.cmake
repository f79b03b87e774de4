ringkv_add_test(test-kv-policy SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-policy.c LIBS ringkv_kv LABELS kv)
