/* run.h — `hat run`: the SPMD entry under mpirun (run.c); the roles it starts are in roles.h. */
#ifndef HAT_RUN_H
#define HAT_RUN_H

int cli_run(int argc, char **argv);

#endif
