# Mixture-of-experts routing with hand-set router logits (model/moe.h).
ringkv_add_test(test-moe-route SOURCES ${PROJECT_SOURCE_DIR}/tests/test-moe-route.c LIBS ringkv_model LABELS model)
