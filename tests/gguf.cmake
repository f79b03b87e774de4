# GGUF reader: hostile images, truncations, corrupted real files.
ringkv_add_test(test-gguf SOURCES ${PROJECT_SOURCE_DIR}/tests/test-gguf.c LIBS ringkv_gguf)
