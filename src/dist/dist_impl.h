/* The lt_dist communicator and the deadline machinery shared by src/dist/mpi.c (bootstrap, all-reduce, broadcasts) and
 * src/dist/zero.c (ZeRO-1's shard collectives). Only compiled with MPI; nothing outside src/dist/ includes it. */
#ifndef LT_DIST_DIST_IMPL_H
#define LT_DIST_DIST_IMPL_H

#include "libtrain/dist.h"

#include <mpi.h>
#include <pthread.h>

/* Ends this process when a bulk transfer outlives the deadline (abort_on_timeout only): the main thread is then
 * inside a blocking MPI call that cannot return, and under MPI_THREAD_FUNNELED another thread may not call MPI. */
typedef struct lt__watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, quit;
    double start, deadline; /* of the armed transfer, CLOCK_MONOTONIC seconds; deadline 0 when disarmed */
    char what[256];         /* "fn (MPI_Xxx, round i of n)" of the armed transfer */
} lt__watchdog;

struct lt_dist {
    MPI_Comm comm, local; /* duplicates owned here, both with MPI_ERRORS_RETURN */
    int rank, world, local_rank;
    bool owns_mpi;         /* MPI_Init_thread was ours, so MPI_Finalize is too */
    double timeout;        /* seconds a collective waits for the other ranks; INFINITY for none */
    bool abort_on_timeout; /* end the job instead of returning (lt_dist_set_timeout) */
    char broken[160];      /* after a timeout: the call that timed out; every later call fails */
    void *stage;           /* ZeRO's staging buffer for the padded rounds, reused across calls */
    size_t stage_bytes;
    lt__watchdog dog;
};

/* CLOCK_MONOTONIC in seconds. */
double lt__dist_now(void);
/* MPI's text for rc, in a status that names the call and the rank. */
lt_status lt__mpi_err(const char *fn, const lt_dist *d, int rc, const char *call);
/* LT_ERR_ARG for NULL, LT_ERR_STATE (naming the call that timed out) once a deadline has passed. */
lt_status lt__dist_usable(const char *fn, const lt_dist *d);
/* Waits until every rank has reached this point (MPI_Ibarrier polled with MPI_Test) or the deadline passes; `what`
 * names the MPI operation that follows, for the message. After it, every rank is inside the same collective, so a
 * blocking MPI call that follows cannot wait for a rank that hangs elsewhere. */
lt_status lt__dist_gate(const char *fn, lt_dist *d, const char *what);
/* Arms the watchdog for a blocking transfer after the gate (no-op unless abort_on_timeout with a finite deadline);
 * disarm after the call returns. */
void lt__dist_guard_arm(lt_dist *d, const char *fn, const char *what);
void lt__dist_guard_disarm(lt_dist *d);
/* The flat parameter or gradient buffer of p on the CPU: its data, element count, MPI type and element size. */
lt_status lt__dist_flat(const char *fn, const lt_dist *d, const lt_params *p, bool grads, void **data, int64_t *numel,
                        MPI_Datatype *type, size_t *esize);

/* A gated blocking MPI call: the gate, then the call under the watchdog; an MPI error returns its status. */
#define LT_MPI_GATED(fn, d, what, call)                                                                                \
    do {                                                                                                               \
        LT_TRY(lt__dist_gate((fn), (d), (what)));                                                                      \
        lt__dist_guard_arm((d), (fn), (what));                                                                         \
        int lt__rc = (call);                                                                                           \
        lt__dist_guard_disarm(d);                                                                                      \
        if (lt__rc != MPI_SUCCESS) return lt__mpi_err((fn), (d), lt__rc, #call);                                       \
    } while (0)

#define LT_MPI(fn, d, call)                                                                                            \
    do {                                                                                                               \
        int lt__rc = (call);                                                                                           \
        if (lt__rc != MPI_SUCCESS) return lt__mpi_err((fn), (d), lt__rc, #call);                                       \
    } while (0)

#endif
