ringkv_add_test(test-kv-tier SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-tier.c LIBS ringkv_attn LABELS kv)
# On SmolLM2: logits bit-identical with most pages on disk (buffered and O_DIRECT), exact and
# sparse decode. ~1 min in a release build, so the ASan pass (-LE slow) leaves it out; the
# synthetic test-kv-tier covers the same code under the sanitizers.
ringkv_add_test(test-kv-tier-model SOURCES ${PROJECT_SOURCE_DIR}/tests/test-kv-tier-model.c LABELS "kv;model;slow")
