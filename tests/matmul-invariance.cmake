# Batch invariance of the quantised matmul: n rows together give each row's solo result bit for bit.
ringkv_add_test(test-matmul-invariance SOURCES ${PROJECT_SOURCE_DIR}/tests/test-matmul-invariance.c
                LIBS ringkv_backend LABELS "backend;quant")
