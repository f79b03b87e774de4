ringkv_add_test(test-kv-store SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-store.c LIBS ringkv_kv LABELS kv)
