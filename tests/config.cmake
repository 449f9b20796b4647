# Run-configuration tests: the INI reader, resolution, the resolved dump and bad inputs.
# The test gets the source directory to load configs/ (quickstart.ini and the profiles).
hat_test(test_config)
add_test(NAME config COMMAND test_config ${CMAKE_SOURCE_DIR})
