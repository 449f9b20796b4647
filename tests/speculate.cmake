# Speculative decoding: the acceptance rule (exact enumeration and Monte-Carlo against the target
# distribution, broken rules rejected), the adaptive draft length, and the synthetic tiny GGUF
# (tests/tinymodel.c, reusable by other tests through hat_test_tinymodel).
function(hat_test_tinymodel name)
  add_executable(${name} ${name}.c tinymodel.c)
  target_link_libraries(${name} PRIVATE hat_core)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
endfunction()

hat_test_tinymodel(test_speculate)
foreach(part greedy dist_exact dist_mc gamma sampler tinymodel)
  add_test(NAME spec_${part} COMMAND test_speculate ${part})
  set_tests_properties(spec_${part} PROPERTIES TIMEOUT 120)
endforeach()

# HAT's device code end to end on the tiny model: greedy equals monolithic; at temperature 1 the
# first tokens follow the model's exact distribution, and broken acceptance rules are caught.
hat_test_tinymodel(test_hat_tiny)
foreach(part greedy dist)
  add_test(NAME spec_hat_${part} COMMAND test_hat_tiny ${part})
  set_tests_properties(spec_hat_${part} PROPERTIES TIMEOUT 300)
endforeach()
