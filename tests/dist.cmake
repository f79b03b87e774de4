# Ring attention's transports (src/dist, src/dist-mpi). Label "dist"; each test takes seconds.
#   test-transport                  the threads transport: exchanges, collectives, agree, failures
#   test-transport-mpi              the MPI transport, 3 ranks on this machine (shared memory)
#   test-transport-mpi-tcp          2 ranks through the TCP stack on loopback: the closest one
#                                   machine gets to two hosts
#   test-transport-mpi-early-exit   rank 1 finalises and leaves before an allgather: the others
#                                   report a timeout naming rank 1 instead of hanging
#   test-transport-mpi-fail         rk_transport_fail on rank 1 ends the whole job, non-zero, with
#                                   its message (the binary's --expect-abort driver runs mpirun
#                                   and kills it if it does not end in time)
#   test-transport-mpi-exit-hard    rank 1 exits without MPI_Finalize: the job ends, non-zero
ringkv_add_test(test-transport SOURCES ${PROJECT_SOURCE_DIR}/tests/test-transport.c LIBS ringkv_dist
                LABELS dist)
set_tests_properties(test-transport PROPERTIES TIMEOUT 60)

if(RINGKV_HAVE_MPI AND MPIEXEC_EXECUTABLE)
  add_executable(test-transport-mpi ${PROJECT_SOURCE_DIR}/tests/test-transport-mpi.c
                                    ${PROJECT_SOURCE_DIR}/tests/test-util.c)
  target_include_directories(test-transport-mpi PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(test-transport-mpi PRIVATE ringkv_dist-mpi)

  # Open MPI wants to be told that running as root (containers, CI) and more ranks than cores
  # are fine; other MPIs get neither flag, nor the Open MPI-only runs below.
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE dist_mpiexec_version ERROR_QUIET)
  set(dist_mpi_flags)
  set(dist_open_mpi OFF)
  if(dist_mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(dist_open_mpi ON)
    set(dist_mpi_flags --oversubscribe --allow-run-as-root)
  endif()
  set(dist_mpirun ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
  set(dist_bin $<TARGET_FILE:test-transport-mpi>)
  set(dist_mpi_tests test-transport-mpi test-transport-mpi-early-exit)
  add_test(NAME test-transport-mpi COMMAND ${dist_mpirun} 3 ${dist_mpi_flags} ${dist_bin})
  add_test(NAME test-transport-mpi-early-exit COMMAND ${dist_mpirun} 3 ${dist_mpi_flags} ${dist_bin} --early-exit)
  if(dist_open_mpi)
    list(APPEND dist_mpi_tests test-transport-mpi-tcp test-transport-mpi-fail test-transport-mpi-exit-hard)
    add_test(NAME test-transport-mpi-tcp
             COMMAND ${dist_mpirun} 2 ${dist_mpi_flags} --mca btl tcp,self --mca btl_tcp_if_include lo ${dist_bin})
    add_test(NAME test-transport-mpi-fail
             COMMAND ${dist_bin} --expect-abort 30 "ringkv: rank 1: injected failure"
                     ${dist_mpirun} 3 ${dist_mpi_flags} ${dist_bin} --fail)
    add_test(NAME test-transport-mpi-exit-hard
             COMMAND ${dist_bin} --expect-abort 30 "rank 1" ${dist_mpirun} 3 ${dist_mpi_flags} ${dist_bin} --exit-hard)
  endif()
  # Open MPI keeps allocations until exit that LeakSanitizer would report as leaks.
    set_tests_properties(${dist_mpi_tests} PROPERTIES LABELS dist TIMEOUT 60 ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()
