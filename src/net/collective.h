/* collective.h — the tensor-parallel group's collective over MPI (tp.h's tp_comm), host-staged.
 *
 * Every rank of MPI_COMM_WORLD calls collective_group_open (it splits the world communicator);
 * ranks with color < 0 get no group. The all-gather is MPI_Allgather (bytes moved, nothing summed:
 * exact). The all-reduce gathers the buffers to the group's rank 0,
 * sums them in rank order and broadcasts the sum, so every rank gets the same bits, in every run
 * (an MPI_Allreduce may sum in an order that depends on the algorithm Open MPI picks). It is the
 * fallback where NCCL cannot run (several ranks on one GPU, a CPU-only cloud); the CUDA backend
 * uses NCCL on the GPU where it can (backend_desc.nccl), bootstrapped through tp_comm.bcast.
 */
#ifndef HAT_COLLECTIVE_H
#define HAT_COLLECTIVE_H

#include <stddef.h>

#include "engine/tp.h"

/* color: the group (>= 0), or < 0 for none; key orders the ranks within the group. Collective over
 * MPI_COMM_WORLD. On return *t is the group's tp_comm (size 1 when color < 0). */
void collective_group_open(tp_comm *t, int color, int key, int mode);
void collective_group_close(tp_comm *t);

#endif
