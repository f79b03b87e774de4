# GGUF writer, sampler and the llama2.c converter (src/gguf/gguf-writer.c, src/sched/sampler.c,
# tools/cmd-convert.c).
#   test-gguf-writer       every value type, tensors and alignment round-trip through the reader;
#                          sticky errors; missing directory and full disk leave no file
#   test-sampler           greedy, top-k/top-p/min-p, penalties, seeded reproducibility and
#                          empirical frequencies against a known softmax
#   test-convert-stories   stories260K.bin → GGUF, then an independent NumPy forward pass over the
#                          GGUF (gguf package) must greedy-decode the 20 golden ids (skipped
#                          without numpy/gguf)
#   test-convert-errors    truncated / missing / garbage inputs fail with a message, never crash
ringkv_add_test(test-gguf-writer SOURCES ${PROJECT_SOURCE_DIR}/tests/test-gguf-writer.c
                LIBS ringkv_gguf ringkv_core LABELS convert)
# The sampler depends on nothing but core; compiling it straight in keeps this test independent
# of the modules below sched (model, backend, ...).
ringkv_add_test(test-sampler SOURCES ${PROJECT_SOURCE_DIR}/tests/test-sampler.c
                ${PROJECT_SOURCE_DIR}/src/sched/sampler.c LIBS ringkv_core LABELS sampler)

# The convert command on its own (needs only the GGUF module); `ringkv convert` is the same code.
add_executable(test-convert-cli ${PROJECT_SOURCE_DIR}/tests/test-convert-cli.c
                                ${PROJECT_SOURCE_DIR}/tools/cmd-convert.c)
target_include_directories(test-convert-cli PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
target_link_libraries(test-convert-cli PRIVATE ringkv_gguf ringkv_core)

if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-convert-stories ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/check_stories.py
                         --convert $<TARGET_FILE:test-convert-cli>)
  ringkv_add_script_test(test-convert-errors ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/check_stories.py
                         --bad-inputs $<TARGET_FILE:test-convert-cli>)
  set_tests_properties(test-convert-stories test-convert-errors PROPERTIES LABELS convert)
endif()
