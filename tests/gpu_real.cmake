# The CPU machine's side of the real-model check of the GPU backend (tests/cuda/real_ref.h):
# gpu_real prep | run | check. The pipeline test runs it end to end with the CPU backend in the
# GPU's place (prune, prep, run on the pruned file, check), so everything but the CUDA backend
# itself is tested here.
add_executable(gpu_real gpu_real.c cuda/real_ref.c)
target_link_libraries(gpu_real PRIVATE hat_core)
target_include_directories(gpu_real PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/cuda)
if(EXISTS ${HAT_MODEL})
  add_test(NAME gpu_real_pipeline COMMAND bash ${CMAKE_SOURCE_DIR}/experiments/gpu_real.sh pipeline
           --build ${CMAKE_BINARY_DIR} --model ${HAT_MODEL} --dir ${CMAKE_CURRENT_BINARY_DIR}/gpu-real-test)
  set_tests_properties(gpu_real_pipeline PROPERTIES TIMEOUT 600)
endif()
