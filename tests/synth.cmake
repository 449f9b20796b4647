# Synthetic models and the backend table on the CPU (tests/cuda/ref_forward.c is the reference the
# CUDA backend is checked against too).
hat_test(test_synth)
target_sources(test_synth PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cuda/ref_forward.c ${CMAKE_CURRENT_SOURCE_DIR}/tp_threads.c)
add_test(NAME synth COMMAND test_synth)
set_tests_properties(synth PROPERTIES TIMEOUT 300)
