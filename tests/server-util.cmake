# The server's self-contained helpers: Prometheus metrics, API key files and bearer checks, stop
# strings over streamed token pieces. Built only with the server's libraries (RINGKV_HAVE_SERVER).
if(RINGKV_HAVE_SERVER)
  ringkv_add_test(test-server-metrics SOURCES ${PROJECT_SOURCE_DIR}/tests/test-server-metrics.c LIBS ringkv_server LABELS server)
  ringkv_add_test(test-server-keys SOURCES ${PROJECT_SOURCE_DIR}/tests/test-server-keys.c LIBS ringkv_server LABELS server)
  ringkv_add_test(test-stop-text SOURCES ${PROJECT_SOURCE_DIR}/tests/test-stop-text.c LIBS ringkv_server LABELS server)
endif()
# The server's KV page sealer (XChaCha20-Poly1305 per session) alone and under the disk tier.
if(RINGKV_HAVE_SERVER)
  ringkv_add_test(test-kv-seal SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-seal.c LIBS ringkv_server LABELS server)
endif()
# Warm KV pages sealed in RAM with that sealer: exact attention, ciphertext in RAM, tampering.
if(RINGKV_HAVE_SERVER)
  ringkv_add_test(test-kv-lock SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-lock.c LIBS ringkv_server ringkv_attn LABELS "kv;server")
endif()
