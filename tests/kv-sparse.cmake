ringkv_add_test(test-kv-sparse SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-sparse.c LIBS ringkv_kv LABELS kv)
