/* libtrain data parallelism: an MPI communicator for CPU tensors, the bucketed gradient all-reduce over a parameter
 * set's flat buffer, the parameter broadcast and an all-ranks-equal check. Needs a build with MPI (-DLT_MPI=ON,
 * Debian's libopenmpi-dev); without it lt_dist_init_mpi returns LT_ERR_UNSUPPORTED. Use a communicator from one thread.
 * NCCL (GPU tensors) is not built yet: every call here works on CPU buffers. */
#ifndef LIBTRAIN_DIST_H
#define LIBTRAIN_DIST_H

#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_dist lt_dist;

/* Default gradient bucket: 32 MiB, the same on every rank. */
#define LT_DIST_DEFAULT_BUCKET_BYTES ((int64_t)32 << 20)

/* A communicator over MPI. mpi_comm is NULL (use MPI_COMM_WORLD) or a pointer to the caller's MPI_Comm, which is
 * duplicated (the caller keeps and frees its own). MPI is initialised here (MPI_Init_thread, FUNNELED) unless the
 * caller already did it; then lt_dist_free finalizes it, and MPI cannot be initialised again in this process.
 * The library's communicators return MPI errors (MPI_ERRORS_RETURN) as LT_ERR_BACKEND with MPI's text and the
 * rank. Collective: every rank calls it. Errors: LT_ERR_UNSUPPORTED in a build without MPI, LT_ERR_STATE when MPI
 * was already finalized, LT_ERR_BACKEND when an MPI call fails. lt_dist_free(NULL) is a no-op. */
LT_API lt_status lt_dist_init_mpi(void *mpi_comm, lt_dist **out);
/* Frees the communicators (collective), and finalizes MPI when lt_dist_init_mpi initialised it. */
LT_API void lt_dist_free(lt_dist *d);

/* This process's rank in [0, world), the world size, and the rank among the processes on this node (for binding
 * one GPU per process later). 0, 1 and 0 for NULL. */
LT_API int lt_dist_rank(const lt_dist *d);
LT_API int lt_dist_world(const lt_dist *d);
LT_API int lt_dist_local_rank(const lt_dist *d);

/* Replaces every rank's gradients (the flat gradient buffer of p, on the CPU) by their mean over the ranks (average)
 * or by their sum (!average: for callers that scaled their loss by 1/world before backward, which saves a pass over
 * the buffer; the trainer does this). The buffer is cut into buckets of bucket_bytes (<= 0:
 * LT_DIST_DEFAULT_BUCKET_BYTES), each reduced in buffer order (MPI_Allreduce) and, when averaging, scaled by 1/world.
 * Every rank must pass a set of the same dtype and size and the same bucket_bytes and average. Errors: LT_ERR_ARG
 * (NULL), LT_ERR_DEVICE (not on the CPU), LT_ERR_BACKEND (an MPI call failed, with its message and the rank).
 * Collective. */
LT_API lt_status lt_dist_allreduce_grads(lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average);
/* Overwrites every rank's parameters with rank 0's. Errors as lt_dist_allreduce_grads. Collective. */
LT_API lt_status lt_dist_broadcast_params(lt_dist *d, lt_params *p);
/* LT_OK when every rank holds bit for bit the same parameters (size, dtype and a 64-bit hash of the flat buffer,
 * gathered to every rank); LT_ERR_STATE naming the first rank that differs from rank 0 otherwise, on every rank.
 * Collective. */
LT_API lt_status lt_dist_check_params_equal(lt_dist *d, const lt_params *p);

typedef enum lt_dist_op {
    LT_DIST_SUM = 0,
    LT_DIST_MEAN = 1, /* the sum divided by the world size */
    LT_DIST_MAX = 2,
    LT_DIST_MIN = 3
} lt_dist_op;

/* Reduces *value (a double) over every rank in place, for metrics and for agreeing on flags (MAX of a stop flag).
 * LT_ERR_ARG for an unknown op. Collective. */
LT_API lt_status lt_dist_allreduce_scalar(lt_dist *d, double *value, lt_dist_op op);
/* Copies nbytes at data from root to every rank. LT_ERR_ARG for a bad root or size. Collective. */
LT_API lt_status lt_dist_broadcast(lt_dist *d, void *data, int64_t nbytes, int root);
/* Collects nbytes from every rank into root's recv, rank r's bytes at recv + r * nbytes (recv holds world * nbytes
 * bytes at root and is not used elsewhere, may be NULL there). For small per-rank state, such as the data cursors a
 * checkpoint stores. LT_ERR_ARG for a bad root or size, or a NULL buffer where one is needed. Collective. */
LT_API lt_status lt_dist_gather(lt_dist *d, const void *send, int64_t nbytes, void *recv, int root);
/* Waits until every rank has called it. Collective. */
LT_API lt_status lt_dist_barrier(lt_dist *d);
/* Ends every rank of the job (MPI_Abort) with errorcode. For programs, after a failure that other ranks cannot see
 * (a bad file on one rank), so they do not wait for it forever. The library never calls it. Does not return
 * when MPI works. */
LT_API void lt_dist_abort(lt_dist *d, int errorcode);

#ifdef __cplusplus
}
#endif

#endif
