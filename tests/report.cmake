# End-of-run report (pure C) and the HDF5 trace writer.
hat_test(test_report)
add_test(NAME report COMMAND test_report)

# trace.c lives in hat_dist with the MPI layer; the trace test builds it alone (no MPI).
add_executable(test_trace test_trace.c ${CMAKE_SOURCE_DIR}/src/trace.c)
target_link_libraries(test_trace PRIVATE hat_core HDF5::HDF5)
target_include_directories(test_trace PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME trace COMMAND test_trace)

# The Python checker on files the C writer made (a complete one and a SIGKILLed one).
if(EXISTS ${CMAKE_SOURCE_DIR}/.venv/bin/python)
  add_test(NAME trace_py COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/trace_py.sh $<TARGET_FILE:test_trace>
           ${CMAKE_SOURCE_DIR}/.venv/bin/python ${CMAKE_SOURCE_DIR}/analysis/check_trace.py)
endif()
