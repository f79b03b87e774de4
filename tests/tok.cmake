# Tokenizer tests (src/tok, tools/cmd-tokenize.c).
#   test-tok-vocab-*  golden ids of llama.cpp's vocab test files (../shared/testdata/tokenizer),
#                     plus detokenisation round trips
#   test-tok-unit     hostile metadata, invalid UTF-8, special tokens, chat templates, built
#                     from small GGUF images in memory
#   test-tok-models   SmolLM2 / Gemma 3 vocabularies of cached models (skipped when missing)
#   test-tok-hf       thousands of random strings against the Hugging Face `tokenizers`
#                     package on SmolLM2's tokenizer.json (skipped without it or the model)
set(RINGKV_TOK_LIBS ringkv_tok ringkv_gguf ringkv_core)

foreach(vocab llama-spm llama-bpe qwen2 gpt-2)
  ringkv_add_test(test-tok-vocab-${vocab} SOURCES ${PROJECT_SOURCE_DIR}/tests/test-tok-vocab.c
                  LIBS ${RINGKV_TOK_LIBS} ARGS ggml-vocab-${vocab}.gguf LABELS tok)
endforeach()
ringkv_add_test(test-tok-unit SOURCES ${PROJECT_SOURCE_DIR}/tests/test-tok-unit.c
                LIBS ${RINGKV_TOK_LIBS} LABELS tok)
ringkv_add_test(test-tok-models SOURCES ${PROJECT_SOURCE_DIR}/tests/test-tok-models.c
                LIBS ${RINGKV_TOK_LIBS} LABELS tok)
# Without PCRE2, byte-level BPE vocabularies refuse to load: their tests skip instead of failing.
if(RINGKV_HAVE_PCRE2)
  foreach(t test-tok-unit test-tok-models test-tok-vocab-llama-spm test-tok-vocab-llama-bpe
            test-tok-vocab-qwen2 test-tok-vocab-gpt-2)
    target_compile_definitions(${t} PRIVATE RINGKV_TEST_HAVE_PCRE2=1)
  endforeach()
endif()

# The tokenize command on its own (no dependency on the rest of the engine), for the script
# tests below; `ringkv tokenize` is the same code behind tools/main.c.
add_executable(test-tok-cli ${PROJECT_SOURCE_DIR}/tests/test-tok-cli.c
                            ${PROJECT_SOURCE_DIR}/tools/cmd-tokenize.c)
target_include_directories(test-tok-cli PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
target_link_libraries(test-tok-cli PRIVATE ${RINGKV_TOK_LIBS})

if(Python3_Interpreter_FOUND)
  ringkv_add_script_test(test-tok-hf ${Python3_EXECUTABLE}
                         ${PROJECT_SOURCE_DIR}/tests/python/test_tok_hf.py $<TARGET_FILE:test-tok-cli>)
  set_tests_properties(test-tok-hf PROPERTIES LABELS tok)
endif()
