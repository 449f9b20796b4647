# Split testbed: wire format (no MPI), and `hat run` under mpiexec on the real model
# (tests/test_mpi.py: 2-5 ranks, token equality with the monolithic engine, trace checks, link
# emulation, bad inputs with timeouts). The MPI test needs the project's Python (h5py, numpy:
# scripts/python_env.sh) and the model.
hat_test(test_wire)
add_test(NAME wire COMMAND test_wire)
set(HAT_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python")
if(EXISTS ${HAT_MODEL} AND EXISTS ${HAT_PYTHON})
  add_test(NAME mpi_split COMMAND ${HAT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_mpi.py $<TARGET_FILE:hat> ${HAT_MODEL} ${CMAKE_SOURCE_DIR})
  set_tests_properties(mpi_split PROPERTIES TIMEOUT 900)
elseif(NOT EXISTS ${HAT_PYTHON})
  message(WARNING "HAT: ${HAT_PYTHON} not found: the MPI tests are not registered (run scripts/python_env.sh)")
endif()
