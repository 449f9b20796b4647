# Split testbed: wire format (no MPI), and runs of `hat run` under mpiexec (tests/test_mpi.sh).
hat_test(test_wire)
add_test(NAME wire COMMAND test_wire)
