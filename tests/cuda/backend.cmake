# test_cuda_backend: the CUDA backend's whole forward vs the plain reference on synthetic models
# (links only hat_cuda + hat_base). bench_gpu: the GPU benchmark (experiments/bench_gpu.sh).
add_executable(test_cuda_backend ${CMAKE_CURRENT_LIST_DIR}/test_cuda_backend.c ${CMAKE_CURRENT_LIST_DIR}/ref_forward.c
               ${CMAKE_CURRENT_LIST_DIR}/../tp_threads.c)
target_include_directories(test_cuda_backend PRIVATE ${CMAKE_CURRENT_LIST_DIR}/..)
find_package(Threads REQUIRED)
target_link_libraries(test_cuda_backend PRIVATE hat_cuda m Threads::Threads)
add_test(NAME cuda_backend COMMAND test_cuda_backend)
set_tests_properties(cuda_backend PROPERTIES SKIP_RETURN_CODE 77 LABELS cuda TIMEOUT 900)
add_executable(bench_gpu ${CMAKE_CURRENT_LIST_DIR}/bench_gpu.c)
target_link_libraries(bench_gpu PRIVATE hat_cuda CUDA::cublas m)
# test_cuda_real: the CUDA backend on the real model's middle layers (tests/cuda/real_ref.h); run by
# experiments/bench_gpu.sh --real DIR with the files experiments/gpu_real.sh prep writes.
add_library(hat_real_ref STATIC ${CMAKE_CURRENT_LIST_DIR}/real_ref.c)
target_link_libraries(hat_real_ref PUBLIC hat_base m)
target_include_directories(hat_real_ref PUBLIC ${CMAKE_CURRENT_LIST_DIR})
add_executable(test_cuda_real ${CMAKE_CURRENT_LIST_DIR}/test_cuda_real.c)
target_link_libraries(test_cuda_real PRIVATE hat_cuda hat_real_ref m)
