# Tests and the micro-benchmark of src/quant (weight formats, dequantisation, dot products).
ringkv_add_test(test-quant-parity SOURCES ${PROJECT_SOURCE_DIR}/tests/test-quant-parity.c
                LIBS ringkv_quant LABELS quant)

# test-quant-dump: driver for the Python check against the gguf package (not a test by itself).
add_executable(test-quant-dump ${PROJECT_SOURCE_DIR}/tests/test-quant-dump.c)
target_include_directories(test-quant-dump PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(test-quant-dump PRIVATE ringkv_quant)
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-quant-dequant-gguf ${Python3_EXECUTABLE}
    ${PROJECT_SOURCE_DIR}/tests/python/check_dequant.py $<TARGET_FILE:test-quant-dump>)
  set_tests_properties(test-quant-dequant-gguf PROPERTIES LABELS quant)
endif()

# bench-quant: GB/s of weight bytes per format and SIMD level (not run by ctest).
add_executable(bench-quant ${PROJECT_SOURCE_DIR}/bench/bench-quant.c)
target_include_directories(bench-quant PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(bench-quant PRIVATE ringkv_quant)
