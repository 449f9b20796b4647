# test_cuda_kernels: every kernel of kernels/ against a CPU reference (plain C, links only the
# kernels and the CUDA runtime). Exits 77 (skipped) on a machine without a CUDA GPU.
add_executable(test_cuda_kernels ${CMAKE_CURRENT_LIST_DIR}/test_cuda_kernels.c)
target_link_libraries(test_cuda_kernels PRIVATE hat_kernels CUDA::cudart m)
add_test(NAME cuda_kernels COMMAND test_cuda_kernels)
set_tests_properties(cuda_kernels PROPERTIES SKIP_RETURN_CODE 77 LABELS cuda TIMEOUT 600)
