ringkv_add_test(test-kv-codec SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-codec.c LIBS ringkv_kv LABELS kv)
