# The page-to-rank map (src/dist/ring-shard.c) against brute force: placement, balance, slots.
ringkv_add_test(test-ring-shard SOURCES ${PROJECT_SOURCE_DIR}/tests/test-ring-shard.c LIBS ringkv_dist LABELS dist)
# Ring attention (src/dist/ring-*.c, src/model/context-ring.c) with ranks as threads: logits and
# greedy tokens of N = 1..4 ranks against one process for every KV codec, on SmolLM2 (1..4) and Gemma 3
# (sliding window), and prefill in rounds with every position's logits and a truncation.
ringkv_add_test(test-ring SOURCES ${PROJECT_SOURCE_DIR}/tests/test-ring.c LABELS model dist)
set_tests_properties(test-ring PROPERTIES TIMEOUT 600)
# The same through `mpirun -np N ringkv run|eval ppl --ring` (tests/python/test_ring_mpi.py): 2, 3
# and 4 processes over shared memory and 2 over TCP on loopback print exactly one process's text
# and perplexity; mismatched model files and a too small -ub fail on every rank without hanging.
if(RINGKV_HAVE_MPI AND MPIEXEC_EXECUTABLE AND Python3_Interpreter_FOUND)
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE ring_mpiexec_version ERROR_QUIET)
  set(ring_mpi_flags)
  if(ring_mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(ring_mpi_flags --oversubscribe --allow-run-as-root)
  endif()
  ringkv_add_script_test(test-ring-mpi ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_ring_mpi.py
                         ${MPIEXEC_EXECUTABLE} ${ring_mpi_flags})
  set_tests_properties(test-ring-mpi PROPERTIES LABELS "model;dist" TIMEOUT 1200)
endif()
if(TARGET test-ring-mpi OR TEST test-ring-mpi)
  # Open MPI keeps allocations until exit that LeakSanitizer would report as leaks.
  set_property(TEST test-ring-mpi APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()
