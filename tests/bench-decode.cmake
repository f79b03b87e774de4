# `ringkv bench decode --depth N` (tests/python/test_bench_decode.py): a replicated fill in RAM
# and with a disk tier under small budgets reports sane JSON (disk bytes read with the disk tier,
# the same KV bytes read either way), a short text fill runs, and bad input (no depth, a depth
# that does not fit, replication on a sliding-window model) is a clear error. SmolLM2-135M;
# skipped (77) when it is not cached.
if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-bench-decode ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_bench_decode.py)
  set_tests_properties(test-bench-decode PROPERTIES LABELS model TIMEOUT 900)
endif()
