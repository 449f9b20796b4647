# Draft adapter (fit, file format, rejection of damaged or mismatched files) and `hat calibrate`.
# test_adapter links the CLI's own source, so the model test runs the command's code path in-process.
hat_test(test_adapter)
target_sources(test_adapter PRIVATE ${CMAKE_SOURCE_DIR}/src/cli_calibrate.c)
if(EXISTS ${HAT_MODEL})
  add_test(NAME adapter COMMAND test_adapter ${HAT_MODEL})
  set_tests_properties(adapter PROPERTIES TIMEOUT 300)
else()
  add_test(NAME adapter COMMAND test_adapter)
endif()
