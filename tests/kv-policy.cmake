ringkv_add_test(test-kv-policy SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-policy.c LIBS ringkv_kv LABELS kv)
ringkv_add_test(test-kv-record-pool SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-record-pool.c LIBS ringkv_kv LABELS kv)
