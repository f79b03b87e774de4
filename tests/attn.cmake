# Attention: the merge operator and paged attention against a float64 reference.
ringkv_add_test(test-attn SOURCES ${PROJECT_SOURCE_DIR}/tests/test-attn.c LIBS ringkv_attn LABELS attn)
