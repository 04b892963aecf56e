/* libtrain data parallelism: an MPI communicator for CPU tensors, the bucketed gradient all-reduce over a parameter
 * set's flat buffer, the parameter broadcast, an all-ranks-equal check, ZeRO-1 (optimizer state sharded over the
 * ranks) and a deadline on every collective. Needs a build with MPI (-DLT_MPI=ON, Debian's libopenmpi-dev); without it
 * lt_dist_init_mpi returns LT_ERR_UNSUPPORTED. Use a communicator from one thread. Parameters on a GPU go through NCCL
 * (lt_dist_init_nccl, below) in lt_dist_allreduce_grads, lt_dist_broadcast_params and lt_dist_check_params_equal;
 * every other call works on CPU buffers. */
#ifndef LIBTRAIN_DIST_H
#define LIBTRAIN_DIST_H

#include "optim.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_dist lt_dist;

/* Default gradient bucket: 32 MiB, the same on every rank. */
#define LT_DIST_DEFAULT_BUCKET_BYTES ((int64_t)32 << 20)

/* Default deadline of the library's collectives, in seconds (see lt_dist_set_timeout). */
#define LT_DIST_DEFAULT_TIMEOUT_SECONDS 60.0
/* The exit code of a job ended by a deadline (MPI_Abort, or _exit of a rank stuck in a transfer), as timeout(1). */
#define LT_DIST_TIMEOUT_EXIT_CODE 124

/* A communicator over MPI. mpi_comm is NULL (use MPI_COMM_WORLD) or a pointer to the caller's MPI_Comm, which is
 * duplicated (the caller keeps and frees its own). MPI is initialised here (MPI_Init_thread, FUNNELED) unless the
 * caller already did it; then lt_dist_free finalizes it, and MPI cannot be initialised again in this process.
 * The library's communicators return MPI errors (MPI_ERRORS_RETURN) as LT_ERR_BACKEND with MPI's text and the
 * rank. The deadline (lt_dist_set_timeout) starts as LIBTRAIN_DIST_TIMEOUT (seconds, or "inf" for none) when that is
 * set, else LT_DIST_DEFAULT_TIMEOUT_SECONDS, and already bounds the wait for the other ranks here (after MPI_Init).
 * Collective: every rank calls it. Errors: LT_ERR_UNSUPPORTED in a build without MPI, LT_ERR_ARG for a malformed
 * LIBTRAIN_DIST_TIMEOUT, LT_ERR_STATE when MPI was already finalized, LT_ERR_BACKEND when an MPI call fails or the
 * deadline passes. lt_dist_free(NULL) is a no-op. */
LT_API lt_status lt_dist_init_mpi(void *mpi_comm, lt_dist **out);
/* Frees the communicators (collective), and finalizes MPI when lt_dist_init_mpi initialised it. After a deadline
 * passed (see lt_dist_set_timeout) it frees only memory: freeing the communicators or finalizing MPI would wait for
 * the rank that hangs. The process should then exit non-zero, which makes mpirun end the job. */
LT_API void lt_dist_free(lt_dist *d);

/* The deadline of this rank's collectives: every call below that waits more than `seconds` for the other ranks to
 * reach it (one hangs, stopped calling collectives, or its node is gone) returns LT_ERR_BACKEND with a message naming
 * the call, the MPI operation, the seconds waited and this rank ("lt_dist_allreduce_grads: rank 0 of 2 timed out
 * after 60.0 s waiting for the other ranks in MPI_Allreduce (bucket 1 of 4) ..."). The communicator is unusable
 * afterwards: every later call fails at once with LT_ERR_STATE, and lt_dist_free does not finalize MPI.
 * Small payloads run as non-blocking collectives polled against the deadline; bulk ones (gradient buckets, ZeRO
 * rounds, large broadcasts) wait for every rank with a polled MPI_Ibarrier and then run the blocking call, which is
 * 2-3x faster. So without abort_on_timeout a rank that stops after every rank reached a bulk transfer (a SIGSTOP or
 * a debugger from outside at that moment) leaves the others inside the blocking call.
 * With abort_on_timeout, the rank instead prints the message to stderr and ends the whole job (MPI_Abort with
 * LT_DIST_TIMEOUT_EXIT_CODE): for programs, whose other ranks cannot learn of the failure otherwise (pretrain does
 * this). A watchdog thread then also bounds each blocking transfer by the deadline (the message, then
 * _exit(LT_DIST_TIMEOUT_EXIT_CODE), after which mpirun ends the job), so every wait is bounded.
 * seconds > 0; INFINITY waits forever. Local: each rank sets its own (give them all the same). Errors: LT_ERR_ARG for
 * NULL or seconds <= 0 or NaN, LT_ERR_BACKEND when the watchdog thread cannot start, LT_ERR_UNSUPPORTED without MPI.
 * Allowed after a timeout (it changes nothing then). */
LT_API lt_status lt_dist_set_timeout(lt_dist *d, double seconds, bool abort_on_timeout);
/* The deadline in seconds (INFINITY for none, and for NULL: one process never waits for others), and whether it ends
 * the job (false for NULL), as lt_dist_set_timeout set them. */
LT_API double lt_dist_timeout(const lt_dist *d);
LT_API bool lt_dist_aborts_on_timeout(const lt_dist *d);

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
 * (a bad file on one rank), so they do not wait for it forever. The library calls it only for a deadline that passed
 * when asked to (lt_dist_set_timeout). Does not return when MPI works. */
LT_API void lt_dist_abort(lt_dist *d, int errorcode);

/* ---- ZeRO-1: AdamW's moments sharded over the ranks ----
 * The flat buffer of numel elements is padded to world * shard elements, shard = ceil(numel / world), and rank r owns
 * the contiguous elements [r * shard, r * shard + count) with count = min(shard, numel - r * shard), clamped at 0:
 * only the last rank's shard ends in padding (or several ranks' when numel < world). Each rank keeps AdamW's m and v
 * for its own shard only (lt_adamw_create_range), so about 2 * numel / world elements instead of 2 * numel. */
typedef struct lt_dist_shard {
    int64_t offset; /* this rank's first element in the flat buffer: rank * shard (numel for an all-padding shard) */
    int64_t count;  /* this rank's real elements (not padding), 0 <= count <= shard */
    int64_t shard;  /* the padded shard length, the same on every rank (0 for an empty buffer) */
} lt_dist_shard;

/* This rank's shard of a flat buffer of numel elements (the whole buffer for NULL: one process). Not collective.
 * LT_ERR_ARG for NULL out or numel < 0. */
LT_API lt_status lt_dist_shard_of(const lt_dist *d, int64_t numel, lt_dist_shard *out);
/* Sums every rank's flat gradient buffer of p into this rank's shard of it: afterwards the elements of the shard
 * hold the sum over the ranks (the mean with average), and the rest of the buffer is left as it was (this rank's own,
 * stale, gradients). MPI_Reduce_scatter_block over the padded buffer, in rounds of about bucket_bytes (<= 0:
 * LT_DIST_DEFAULT_BUCKET_BYTES) staged through one reused buffer of that size. Errors as lt_dist_allreduce_grads.
 * Collective. */
LT_API lt_status lt_dist_reduce_scatter_grads(lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average);
/* Copies every rank's shard of the flat parameter buffer of p to every rank (MPI_Allgather over the padded buffer, in
 * rounds of about bucket_bytes), so that each rank's update of its shard reaches all. Collective. */
LT_API lt_status lt_dist_allgather_params(lt_dist *d, lt_params *p, int64_t bucket_bytes);
/* Collects every rank's shard (shard: its count elements of dtype, as lt_dist_shard_of gives for numel) into root's
 * full buffer of numel elements, padding dropped (full is only used at root, may be NULL elsewhere). For checkpoints:
 * the full moments. LT_ERR_ARG for a bad root, dtype or size, or a NULL buffer where one is needed. Collective. */
LT_API lt_status lt_dist_gather_shards(lt_dist *d, const void *shard, void *full, int64_t numel, lt_dtype dtype,
                                       int root);
/* The reverse: root's full buffer of numel elements cut into shards, each rank's into its shard buffer (count
 * elements). Root's shard may alias its own part of full. Errors as lt_dist_gather_shards. Collective. */
LT_API lt_status lt_dist_scatter_shards(lt_dist *d, const void *full, void *shard, int64_t numel, lt_dtype dtype,
                                        int root);
/* One ZeRO-1 optimizer step from every rank's local gradients: reduce-scatter of the gradients into this rank's
 * shard (summed, or averaged with average), the norm of the whole gradient (every rank's shard sum of squares,
 * all-reduced), the optimizer's update of the shard from its gradients clipped as lt_clip_grad_norm would clip the
 * whole (max_norm <= 0 only measures; the factor is applied inside the update, lt_optim_step_scaled, so the gradient
 * buffer keeps the reduced, unclipped values), and the all-gather of the parameters. opt must update exactly this
 * rank's shard (lt_adamw_create_range with lt_dist_shard_of's offset and count). *norm (may be NULL) gets the global
 * norm before clipping, the same on every rank. With one process (NULL or world 1) it is clip + step. Collective.
 * Errors: LT_ERR_ARG when opt's range is not this rank's shard or max_norm is NaN, else those of the calls above. */
LT_API lt_status lt_dist_zero_step(lt_dist *d, lt_params *p, lt_optim *opt, int64_t bucket_bytes, bool average,
                                   double max_norm, double *norm);

/* ---- GPUs: NCCL ----
 * Binds this rank to one GPU and makes d's NCCL communicator on it: every rank checks its GPU and names it (PCI bus
 * id), then rank 0 makes an ncclUniqueId and broadcasts it over MPI, and every rank creates its communicator
 * non-blocking (config.blocking = 0), polled against d's deadline (lt_dist_timeout). device->index >= 0 uses that
 * GPU, < 0 uses cuda:(local rank); on return *device is the GPU used. Calling it again is a no-op (index < 0 or the
 * same GPU). Afterwards, lt_dist_allreduce_grads, lt_dist_broadcast_params and lt_dist_check_params_equal on
 * parameters on that GPU run through NCCL on a stream of its own, ordered against the device's compute stream with
 * events (the first of them calls this itself when nobody did): the all-reduce in the same buckets and order as on the
 * CPU, with ncclAllReduce (sum, or ncclAvg) in the buffer's dtype; the broadcast with ncclBroadcast from rank 0. Each
 * waits for its NCCL work to finish, polling NCCL's asynchronous errors, within the deadline; an NCCL error or the
 * deadline aborts the communicator (ncclCommAbort) and returns LT_ERR_BACKEND naming the call, the rank, its GPU and
 * NCCL's text (with abort_on_timeout a deadline ends the job instead); later GPU calls then fail with LT_ERR_STATE,
 * until lt_dist_init_nccl makes a new communicator. lt_dist_free finalizes and destroys it. Collective. Errors:
 * LT_ERR_DEVICE for a CPU device, a GPU some rank cannot use, or two ranks of one node on one GPU (naming both: NCCL
 * needs a GPU per rank); LT_ERR_STATE when d already has a communicator on another GPU; LT_ERR_BACKEND when NCCL fails
 * on any rank (every rank fails); LT_ERR_UNSUPPORTED in a build without NCCL or MPI. */
LT_API lt_status lt_dist_init_nccl(lt_dist *d, lt_device *device);

#ifdef __cplusplus
}
#endif

#endif
