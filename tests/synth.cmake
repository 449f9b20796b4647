# Synthetic models and the backend table on the CPU (tests/cuda/ref_forward.c is the reference the
# CUDA backend is checked against too).
hat_test(test_synth)
target_sources(test_synth PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cuda/ref_forward.c ${CMAKE_CURRENT_SOURCE_DIR}/tp_threads.c)
add_test(NAME synth COMMAND test_synth)
set_tests_properties(synth PROPERTIES TIMEOUT 300)
# Tensor parallelism on the real model: mode exact bit-identical to the unsplit backend.
hat_test(test_tp)
target_sources(test_tp PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tp_threads.c)
if(EXISTS ${HAT_MODEL})
  add_test(NAME tp_real COMMAND test_tp ${HAT_MODEL})
  set_tests_properties(tp_real PROPERTIES TIMEOUT 300)
endif()
