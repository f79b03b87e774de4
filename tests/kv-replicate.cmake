# rk_kv_fill_replicated (the deep-context fill of `ringkv bench decode`): copies equal their
# source pages in RAM and with a disk tier under small budgets; bad input and a full disk are
# clear errors that leave the cache at its real pages.
ringkv_add_test(test-kv-replicate SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-replicate.c LIBS ringkv_kv LABELS kv)
