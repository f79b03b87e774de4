ringkv_add_test(test-kv-tq SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-tq.c LIBS ringkv_kv LABELS kv)
