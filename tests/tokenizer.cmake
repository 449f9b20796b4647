# Tokenizer golden test: encodings, pieces, EOG ids and chat renderings against data made
# by llama.cpp (llama-cpp-python) and jinja2 — see tests/golden/gen_tokenizer_golden.py.
hat_test(test_tokenizer)
if(EXISTS ${HAT_MODEL})
  add_test(NAME tokenizer_golden COMMAND test_tokenizer ${HAT_MODEL} ${HAT_GOLDEN})
endif()
