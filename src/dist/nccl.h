/* The NCCL side of lt_dist (src/dist/nccl.c), for src/dist/mpi.c's hooks: GPU buffers go through NCCL, CPU buffers
 * through MPI. Built for real when the library has both MPI and NCCL (LT_HAVE_MPI, LT_HAVE_NCCL: a CUDA build with
 * libnccl, or libtrain_emu with the emulator's NCCL over MPI, cuda/emu/nccl.cpp); otherwise every function here is a
 * stub that says so. Nothing outside src/dist/ includes it. */
#ifndef LT_DIST_NCCL_H
#define LT_DIST_NCCL_H

#include "libtrain/dist.h"

/* Whether p's flat buffers live on a GPU, so that a collective over them belongs to NCCL (false for NULL or an
 * empty set, which the MPI path then checks and handles). */
bool lt__nccl_wants(const lt_params *p);

/* lt_dist_allreduce_grads, lt_dist_broadcast_params and lt_dist_check_params_equal for parameters on a GPU (fn names
 * the public call in messages). The first of them makes the NCCL communicator on the parameters' GPU when
 * lt_dist_init_nccl was not called. Collective. */
lt_status lt__nccl_allreduce_grads(const char *fn, lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average);
lt_status lt__nccl_broadcast_params(const char *fn, lt_dist *d, lt_params *p);
lt_status lt__nccl_check_params_equal(const char *fn, lt_dist *d, const lt_params *p);

/* Tears down d's NCCL communicator, if it has one (ncclCommFinalize and ncclCommDestroy, or ncclCommAbort after an
 * error or when finalizing outlives the deadline), with its stream and events. lt_dist_free calls it first, while
 * the MPI communicators still exist. */
void lt__nccl_release(lt_dist *d);

#endif
