# The web page at / (src/server/webui.html), driven in headless Chromium through the DevTools
# protocol; skipped (77) when Chromium or the model is missing.
if(RINGKV_HAVE_SERVER AND Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-webui ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/python/test_webui.py)
  set_tests_properties(test-webui PROPERTIES LABELS "server" TIMEOUT 300)
endif()
