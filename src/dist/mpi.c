/* The MPI communicator behind dist.h: bootstrap, the deadline on every collective, bucketed gradient all-reduce,
 * broadcasts and checks on CPU buffers. Every MPI error and every deadline comes back as a status naming the rank;
 * nothing here aborts unless the caller asked for it (lt_dist_set_timeout, lt_dist_abort). Built without MPI, each call
 * returns LT_ERR_UNSUPPORTED saying what to install. */
#include "core/error.h"
#include "dist/dist_common.h"
#include "dist/nccl.h"
#include "libtrain/dist.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if LT_HAVE_MPI
#include "dist/dist_impl.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

/* Payloads up to this many bytes go through the non-blocking collective itself (MPI_Iallreduce, MPI_Ibcast, ...),
 * on a heap copy that is abandoned, not freed, when the deadline passes (MPI may still write it). Larger ones (the
 * gradient buckets) pass the gate, then run the blocking call: OpenMPI's blocking algorithms reached 2-3x the
 * bandwidth of its non-blocking ones at 16 MB and more (bench/mpi/allreduce). */
#define LT__DIST_SMALL_BYTES 65536

double lt__dist_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lt_status lt__mpi_err(const char *fn, const lt_dist *d, int rc, const char *call) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error code %d", rc);
    return lt__err(LT_ERR_BACKEND, "%s: %s failed on rank %d of %d: %s", fn, call, d ? d->rank : -1, d ? d->world : -1,
                   text);
}

lt_status lt__dist_usable(const char *fn, const lt_dist *d) {
    LT_CHECK_NOT_NULL(fn, d);
    if (d->broken[0])
        return lt__err(LT_ERR_STATE,
                       "%s: this communicator timed out earlier (%s) on rank %d of %d and cannot be used again", fn,
                       d->broken, d->rank, d->world);
    return LT_OK;
}

/* ---- The deadline ---- */

/* The deadline passed in `what` after `waited` seconds: the communicator is broken from now on (a collective that
 * some rank never joined cannot be cancelled), and with abort_on_timeout the job ends here. */
static lt_status lt__dist_timed_out(const char *fn, lt_dist *d, MPI_Comm comm, const char *what, double waited) {
    snprintf(d->broken, sizeof d->broken, "%s, in %s", fn, what);
    lt_status st = lt__err(LT_ERR_BACKEND,
                           "%s: rank %d of %d timed out after %.1f s waiting for the other ranks in %s (deadline %g s, "
                           "lt_dist_set_timeout or LIBTRAIN_DIST_TIMEOUT): a rank hangs, stopped calling collectives "
                           "or died; this communicator cannot be used again",
                           fn, d->rank, d->world, waited, what, d->timeout);
    if (d->abort_on_timeout) {
        fprintf(stderr, "libtrain: %s; ending the job (MPI_Abort, exit code %d)\n", lt_last_error(),
                LT_DIST_TIMEOUT_EXIT_CODE);
        fflush(stderr);
        MPI_Abort(comm, LT_DIST_TIMEOUT_EXIT_CODE);
    }
    return st;
}

/* Polls req until it completes or the deadline (timeout seconds after t0) passes. For the first 2 ms it polls
 * without pause (yielding the core to any other runnable thread): ranks that arrive nearly together, as they do
 * between the buckets of one all-reduce, meet there. Only then does it sleep between polls, 10 us at first and at
 * most 200 us, so that a rank that waits for a slow one leaves the cores to it. Sleeping at once cost 5-18% of the
 * bucketed all-reduce's bandwidth on this 2-core machine (a woken rank waits for a core), spinning 2 ms nothing. */
static lt_status lt__dist_wait(const char *fn, lt_dist *d, MPI_Comm comm, MPI_Request *req, const char *what,
                               double t0) {
    long pause_ns = 10000;
    for (;;) {
        int done = 0;
        LT_MPI(fn, d, MPI_Test(req, &done, MPI_STATUS_IGNORE));
        if (done) return LT_OK;
        const double waited = lt__dist_now() - t0;
        if (waited >= d->timeout) return lt__dist_timed_out(fn, d, comm, what, waited);
        if (waited < 2e-3) {
            sched_yield();
            continue;
        }
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        pause_ns = pause_ns < 100000 ? 2 * pause_ns : 200000;
    }
}

static lt_status lt__dist_gate_on(const char *fn, lt_dist *d, MPI_Comm comm, const char *what) {
    LT_TRY(lt__dist_usable(fn, d));
    if (d->world == 1) return LT_OK;
    const double t0 = lt__dist_now();
    MPI_Request req;
    LT_MPI(fn, d, MPI_Ibarrier(comm, &req));
    return lt__dist_wait(fn, d, comm, &req, what, t0);
}

lt_status lt__dist_gate(const char *fn, lt_dist *d, const char *what) { return lt__dist_gate_on(fn, d, d->comm, what); }

/* ---- The watchdog (abort_on_timeout): bounds the blocking transfers that follow a gate ---- */

static void *lt__watchdog_main(void *arg) {
    lt_dist *d = arg;
    lt__watchdog *w = &d->dog;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        if (w->deadline == 0) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        const double now = lt__dist_now();
        if (now >= w->deadline) {
            /* The main thread is inside a blocking MPI call that will not return; under FUNNELED this thread may not
             * call MPI, so it ends the process, and mpirun ends the job on a rank's non-zero exit. */
            fprintf(stderr,
                    "libtrain: %s: rank %d of %d timed out after %.1f s in the transfer that every rank had "
                    "reached: a rank stopped or hangs since, or its node is gone (deadline %g s); ending this process "
                    "(exit code %d)\n",
                    w->what, d->rank, d->world, now - w->start, d->timeout, LT_DIST_TIMEOUT_EXIT_CODE);
            fflush(stderr);
            _exit(LT_DIST_TIMEOUT_EXIT_CODE);
        }
        const double at = w->deadline;
        struct timespec ts = {(time_t)at, (long)((at - floor(at)) * 1e9)};
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static lt_status lt__watchdog_start(const char *fn, lt_dist *d) {
    lt__watchdog *w = &d->dog;
    if (w->started) return LT_OK;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* the clock of lt__dist_now */
    int rc = pthread_mutex_init(&w->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&w->cv, &attr)) != 0) pthread_mutex_destroy(&w->mu);
    pthread_condattr_destroy(&attr);
    if (rc != 0) return lt__err(LT_ERR_BACKEND, "%s: cannot create the watchdog's lock: %s", fn, strerror(rc));
    w->quit = false;
    w->deadline = 0;
    if ((rc = pthread_create(&w->thread, NULL, lt__watchdog_main, d)) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return lt__err(LT_ERR_BACKEND, "%s: cannot start the watchdog thread: %s", fn, strerror(rc));
    }
    w->started = true;
    return LT_OK;
}

static void lt__watchdog_stop(lt_dist *d) {
    lt__watchdog *w = &d->dog;
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->started = false;
}

void lt__dist_guard_arm(lt_dist *d, const char *fn, const char *what) {
    lt__watchdog *w = &d->dog;
    if (!w->started || !d->abort_on_timeout || !isfinite(d->timeout)) return;
    pthread_mutex_lock(&w->mu);
    const bool idle = w->deadline == 0;
    w->start = lt__dist_now();
    w->deadline = w->start + d->timeout;
    snprintf(w->what, sizeof w->what, "%s (%s)", fn, what);
    if (idle) pthread_cond_signal(&w->cv); /* a thread waiting for an older deadline wakes then, and waits again */
    pthread_mutex_unlock(&w->mu);
}

void lt__dist_guard_disarm(lt_dist *d) {
    lt__watchdog *w = &d->dog;
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->deadline = 0;
    pthread_mutex_unlock(&w->mu);
}

/* ---- Bootstrap ---- */

/* LIBTRAIN_DIST_TIMEOUT: seconds > 0, or inf; unset or empty gives the default. */
static lt_status lt__env_timeout(const char *fn, double *out) {
    *out = LT_DIST_DEFAULT_TIMEOUT_SECONDS;
    const char *e = getenv("LIBTRAIN_DIST_TIMEOUT");
    if (!e || !*e) return LT_OK;
    char *end = NULL;
    const double v = strtod(e, &end);
    if (end == e || *end != '\0' || !(v > 0))
        return lt__err(LT_ERR_ARG, "%s: LIBTRAIN_DIST_TIMEOUT is '%s': expected seconds > 0, or inf for no deadline",
                       fn, e);
    *out = v;
    return LT_OK;
}

static lt_status lt__dist_setup(const char *fn, lt_dist *d, MPI_Comm parent) {
    LT_MPI(fn, d, MPI_Comm_rank(parent, &d->rank));
    LT_MPI(fn, d, MPI_Comm_size(parent, &d->world));
    /* MPI_Comm_dup and MPI_Comm_split_type block until every rank calls them: wait for the ranks with the deadline
     * first, so that one that never gets here fails the others instead of hanging them. */
    LT_TRY(lt__dist_gate_on(fn, d, parent, "MPI_Comm_dup"));
    LT_MPI(fn, d, MPI_Comm_dup(parent, &d->comm));
    LT_MPI(fn, d, MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN));
    LT_MPI(fn, d, MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->local));
    LT_MPI(fn, d, MPI_Comm_set_errhandler(d->local, MPI_ERRORS_RETURN));
    LT_MPI(fn, d, MPI_Comm_rank(d->local, &d->local_rank));
    return LT_OK;
}

LT_API lt_status lt_dist_init_mpi(void *mpi_comm, lt_dist **out) {
    static const char *fn = "lt_dist_init_mpi";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    double timeout;
    LT_TRY(lt__env_timeout(fn, &timeout));
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return lt__err(LT_ERR_STATE, "%s: MPI was already finalized in this process", fn);
    if (mpi_comm && !inited)
        return lt__err(LT_ERR_STATE, "%s: a communicator was passed but MPI is not initialised", fn);
    lt_dist *d = calloc(1, sizeof *d);
    if (!d) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    d->comm = d->local = MPI_COMM_NULL;
    d->world = 1;
    d->timeout = timeout;
    if (!inited) {
        int provided = 0;
        /* The default handler on MPI_COMM_WORLD aborts; a failed init cannot be reported any other way. */
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            free(d);
            return lt__err(LT_ERR_BACKEND, "%s: MPI_Init_thread failed (code %d)", fn, rc);
        }
        d->owns_mpi = true;
    }
    lt_status st = lt__dist_setup(fn, d, mpi_comm ? *(MPI_Comm *)mpi_comm : MPI_COMM_WORLD);
    if (st != LT_OK) {
        lt_dist_free(d);
        return st;
    }
    *out = d;
    return LT_OK;
}

LT_API void lt_dist_free(lt_dist *d) {
    if (!d) return;
    lt__nccl_release(d); /* the GPU communicator first, while MPI's exist (src/dist/nccl.c) */
    lt__watchdog_stop(d);
    /* After a timeout a collective is still pending on the communicator and a rank does not answer: MPI_Comm_free and
     * MPI_Finalize would wait for it forever. */
    if (!d->broken[0]) {
        if (d->local != MPI_COMM_NULL) MPI_Comm_free(&d->local);
        if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
        if (d->owns_mpi) MPI_Finalize();
    }
    free(d->stage);
    free(d);
}

LT_API int lt_dist_rank(const lt_dist *d) { return d ? d->rank : 0; }
LT_API int lt_dist_world(const lt_dist *d) { return d ? d->world : 1; }
LT_API int lt_dist_local_rank(const lt_dist *d) { return d ? d->local_rank : 0; }

LT_API lt_status lt_dist_set_timeout(lt_dist *d, double seconds, bool abort_on_timeout) {
    static const char *fn = "lt_dist_set_timeout";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, d);
    if (!(seconds > 0))
        return lt__err(LT_ERR_ARG, "%s: seconds is %g; must be > 0 (INFINITY for no deadline)", fn, seconds);
    if (abort_on_timeout && isfinite(seconds)) LT_TRY(lt__watchdog_start(fn, d));
    d->timeout = seconds;
    d->abort_on_timeout = abort_on_timeout;
    return LT_OK;
}

LT_API double lt_dist_timeout(const lt_dist *d) { return d ? d->timeout : INFINITY; }
LT_API bool lt_dist_aborts_on_timeout(const lt_dist *d) { return d && d->abort_on_timeout; }

/* ---- Collectives ---- */

lt_status lt__dist_flat(const char *fn, const lt_dist *d, const lt_params *p, bool grads, void **data, int64_t *numel,
                        MPI_Datatype *type, size_t *esize) {
    LT_TRY(lt__dist_usable(fn, d));
    LT_CHECK_NOT_NULL(fn, p);
    lt_tensor *pf = NULL, *gf = NULL;
    *numel = lt_params_numel(p);
    *data = NULL;
    if (*numel > 0) LT_TRY(lt_params_flat(p, &pf, &gf));
    lt_tensor *t = grads ? gf : pf;
    if (t && lt_tensor_device(t).type != LT_CPU)
        return lt__err(LT_ERR_DEVICE,
                       "%s: the parameters are not on the CPU; on GPUs only lt_dist_allreduce_grads, "
                       "lt_dist_broadcast_params and lt_dist_check_params_equal work (NCCL, lt_dist_init_nccl)",
                       fn);
    lt_dtype dt = t ? lt_tensor_dtype(t) : LT_F32;
    *type = dt == LT_F64 ? MPI_DOUBLE : MPI_FLOAT;
    *esize = lt_dtype_size(dt);
    if (t) *data = lt_tensor_data(t);
    return LT_OK;
}

LT_API lt_status lt_dist_allreduce_grads(lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average) {
    static const char *fn = "lt_dist_allreduce_grads";
    lt__clear_error();
    if (lt__nccl_wants(p)) return lt__nccl_allreduce_grads(fn, d, p, bucket_bytes, average); /* GPU: NCCL */
    void *g;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
    LT_TRY(lt__dist_flat(fn, d, p, true, &g, &n, &type, &esize));
    if (d->world == 1 || n == 0) return LT_OK;
    if (bucket_bytes <= 0) bucket_bytes = LT_DIST_DEFAULT_BUCKET_BYTES;
    int64_t per = bucket_bytes / (int64_t)esize;
    if (per < 1) per = 1;
    if (per > INT32_MAX) per = INT32_MAX; /* MPI counts are int */
    int64_t nb = (n + per - 1) / per;
    /* Buckets go out in buffer order on every rank, so the reductions match up and their order is fixed. Each is
     * gated (every rank has reached it, within the deadline), then reduced with the blocking MPI_Allreduce: on the CPU
     * nothing overlaps with it anyway, and OpenMPI's tuned blocking algorithms reach 2-3x the bandwidth of its
     * non-blocking ones (bench/mpi/allreduce). Each bucket is scaled by 1/world right after its reduction, while it
     * is still warm in cache; 1/world is exact for a power-of-two world, otherwise one rounding, the same on every
     * rank. */
    char *base = g, what[96];
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * per, cnt = n - off < per ? n - off : per;
        void *x = base + off * (int64_t)esize;
        snprintf(what, sizeof what, "MPI_Allreduce (bucket %lld of %lld)", (long long)b + 1, (long long)nb);
        LT_MPI_GATED(fn, d, what, MPI_Allreduce(MPI_IN_PLACE, x, (int)cnt, type, MPI_SUM, d->comm));
        if (!average) continue;
        if (type == MPI_DOUBLE) {
            double *v = x, sc = 1.0 / (double)d->world;
            _Pragma("omp parallel for simd if (cnt > 65536)") for (int64_t i = 0; i < cnt; i++) v[i] *= sc;
        } else {
            float *v = x, sc = 1.0f / (float)d->world;
            _Pragma("omp parallel for simd if (cnt > 65536)") for (int64_t i = 0; i < cnt; i++) v[i] *= sc;
        }
    }
    return LT_OK;
}

LT_API lt_status lt_dist_broadcast_params(lt_dist *d, lt_params *p) {
    static const char *fn = "lt_dist_broadcast_params";
    lt__clear_error();
    if (lt__nccl_wants(p)) return lt__nccl_broadcast_params(fn, d, p); /* GPU: NCCL */
    void *x;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
    LT_TRY(lt__dist_flat(fn, d, p, false, &x, &n, &type, &esize));
    for (int64_t off = 0; off < n; off += INT32_MAX) {
        int64_t cnt = n - off < INT32_MAX ? n - off : INT32_MAX;
        LT_MPI_GATED(fn, d, "MPI_Bcast", MPI_Bcast((char *)x + off * (int64_t)esize, (int)cnt, type, 0, d->comm));
    }
    return LT_OK;
}

/* Small payloads run as non-blocking collectives on heap buffers, waited for with the deadline. After a failed wait
 * (a timeout: the collective stays pending and MPI may still write the buffer) the buffer is abandoned, not freed: a
 * few bytes, once, on a communicator that is dead from then on. */

LT_API lt_status lt_dist_check_params_equal(lt_dist *d, const lt_params *p) {
    static const char *fn = "lt_dist_check_params_equal";
    lt__clear_error();
    if (lt__nccl_wants(p)) return lt__nccl_check_params_equal(fn, d, p); /* GPU: a host copy's hash */
    void *x;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
    LT_TRY(lt__dist_flat(fn, d, p, false, &x, &n, &type, &esize));
    /* one buffer: this rank's triple, then every rank's */
    uint64_t *buf = malloc(sizeof(uint64_t) * 3 * ((size_t)d->world + 1));
    if (!buf) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    uint64_t *mine = buf, *all = buf + 3;
    mine[0] = (uint64_t)n, mine[1] = (uint64_t)esize, mine[2] = x ? lt__dist_hash(x, (size_t)n * esize) : 0;
    const double t0 = lt__dist_now();
    MPI_Request req;
    int rc = MPI_Iallgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, d->comm, &req);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return lt__mpi_err(fn, d, rc, "MPI_Iallgather");
    }
    LT_TRY(lt__dist_wait(fn, d, d->comm, &req, "MPI_Iallgather", t0)); /* buf abandoned on failure */
    lt_status st = LT_OK;
    for (int r = 1; r < d->world && st == LT_OK; r++)
        if (memcmp(all + 3 * r, all, 3 * sizeof *all) != 0)
            st = lt__err(LT_ERR_STATE,
                         "%s: rank %d's parameters differ from rank 0's (%llu vs %llu elements of %llu bytes, hash "
                         "%016llx vs %016llx; seen from rank %d)",
                         fn, r, (unsigned long long)all[3 * r], (unsigned long long)all[0],
                         (unsigned long long)all[3 * r + 1], (unsigned long long)all[3 * r + 2],
                         (unsigned long long)all[2], d->rank);
    free(buf);
    return st;
}

LT_API lt_status lt_dist_allreduce_scalar(lt_dist *d, double *value, lt_dist_op op) {
    static const char *fn = "lt_dist_allreduce_scalar";
    lt__clear_error();
    LT_TRY(lt__dist_usable(fn, d));
    LT_CHECK_NOT_NULL(fn, value);
    MPI_Op mop;
    switch (op) {
    case LT_DIST_SUM:
    case LT_DIST_MEAN: mop = MPI_SUM; break;
    case LT_DIST_MAX: mop = MPI_MAX; break;
    case LT_DIST_MIN: mop = MPI_MIN; break;
    default: return lt__err(LT_ERR_ARG, "%s: unknown op %d", fn, (int)op);
    }
    double *x = malloc(sizeof *x);
    if (!x) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    *x = *value;
    const double t0 = lt__dist_now();
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, x, 1, MPI_DOUBLE, mop, d->comm, &req);
    if (rc != MPI_SUCCESS) {
        free(x);
        return lt__mpi_err(fn, d, rc, "MPI_Iallreduce");
    }
    LT_TRY(lt__dist_wait(fn, d, d->comm, &req, "MPI_Iallreduce", t0)); /* x abandoned on failure */
    *value = *x;
    free(x);
    if (op == LT_DIST_MEAN) *value /= (double)d->world;
    return LT_OK;
}
LT_API lt_status lt_dist_broadcast(lt_dist *d, void *data, int64_t nbytes, int root) {
    static const char *fn = "lt_dist_broadcast";
    lt__clear_error();
    LT_TRY(lt__dist_usable(fn, d));
    if (nbytes < 0 || nbytes > INT32_MAX || (nbytes > 0 && !data) || root < 0 || root >= d->world)
        return lt__err(LT_ERR_ARG, "%s: nbytes %lld (at most 2^31 - 1, with data), root %d of world %d", fn,
                       (long long)nbytes, root, d->world);
    if (d->world == 1) return LT_OK;
    if (nbytes > LT__DIST_SMALL_BYTES) {
        LT_MPI_GATED(fn, d, "MPI_Bcast", MPI_Bcast(data, (int)nbytes, MPI_BYTE, root, d->comm));
        return LT_OK;
    }
    char *x = malloc((size_t)nbytes + 1);
    if (!x) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    if (d->rank == root && nbytes > 0) memcpy(x, data, (size_t)nbytes);
    const double t0 = lt__dist_now();
    MPI_Request req;
    int rc = MPI_Ibcast(x, (int)nbytes, MPI_BYTE, root, d->comm, &req);
    if (rc != MPI_SUCCESS) {
        free(x);
        return lt__mpi_err(fn, d, rc, "MPI_Ibcast");
    }
    LT_TRY(lt__dist_wait(fn, d, d->comm, &req, "MPI_Ibcast", t0)); /* x abandoned on failure */
    if (d->rank != root && nbytes > 0) memcpy(data, x, (size_t)nbytes);
    free(x);
    return LT_OK;
}

LT_API lt_status lt_dist_gather(lt_dist *d, const void *send, int64_t nbytes, void *recv, int root) {
    static const char *fn = "lt_dist_gather";
    lt__clear_error();
    LT_TRY(lt__dist_usable(fn, d));
    /* MPI counts are int: the root receives world * nbytes, which must fit too. */
    if (nbytes < 0 || nbytes > INT32_MAX / d->world || (nbytes > 0 && !send) || root < 0 || root >= d->world ||
        (d->rank == root && nbytes > 0 && !recv))
        return lt__err(LT_ERR_ARG,
                       "%s: nbytes %lld (at most 2^31 / world, with send, and recv at the root), root %d of "
                       "world %d",
                       fn, (long long)nbytes, root, d->world);
    const size_t total = (size_t)nbytes * (size_t)d->world;
    if (total > LT__DIST_SMALL_BYTES) {
        LT_MPI_GATED(fn, d, "MPI_Gather",
                     MPI_Gather(send, (int)nbytes, MPI_BYTE, recv, (int)nbytes, MPI_BYTE, root, d->comm));
        return LT_OK;
    }
    char *x = malloc(total + (size_t)nbytes + 1); /* what this rank sends, then what the root receives */
    if (!x) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    if (nbytes > 0) memcpy(x, send, (size_t)nbytes);
    const double t0 = lt__dist_now();
    MPI_Request req;
    int rc = MPI_Igather(x, (int)nbytes, MPI_BYTE, x + nbytes, (int)nbytes, MPI_BYTE, root, d->comm, &req);
    if (rc != MPI_SUCCESS) {
        free(x);
        return lt__mpi_err(fn, d, rc, "MPI_Igather");
    }
    LT_TRY(lt__dist_wait(fn, d, d->comm, &req, "MPI_Igather", t0)); /* x abandoned on failure */
    if (d->rank == root && total > 0) memcpy(recv, x + nbytes, total);
    free(x);
    return LT_OK;
}

LT_API lt_status lt_dist_barrier(lt_dist *d) {
    static const char *fn = "lt_dist_barrier";
    lt__clear_error();
    return lt__dist_gate(fn, d, "MPI_Ibarrier");
}

LT_API void lt_dist_abort(lt_dist *d, int errorcode) {
    if (d) MPI_Abort(d->comm != MPI_COMM_NULL ? d->comm : MPI_COMM_WORLD, errorcode);
}

#else /* no MPI in this build */

LT_API lt_status lt_dist_init_mpi(void *mpi_comm, lt_dist **out) {
    (void)mpi_comm;
    if (out) *out = NULL;
    lt__clear_error();
    return LT_NO_MPI("lt_dist_init_mpi");
}
LT_API void lt_dist_free(lt_dist *d) { (void)d; }
LT_API int lt_dist_rank(const lt_dist *d) { return (void)d, 0; }
LT_API int lt_dist_world(const lt_dist *d) { return (void)d, 1; }
LT_API int lt_dist_local_rank(const lt_dist *d) { return (void)d, 0; }
LT_API lt_status lt_dist_allreduce_grads(lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average) {
    (void)d, (void)p, (void)bucket_bytes, (void)average;
    return LT_NO_MPI("lt_dist_allreduce_grads");
}
LT_API lt_status lt_dist_broadcast_params(lt_dist *d, lt_params *p) {
    (void)d, (void)p;
    return LT_NO_MPI("lt_dist_broadcast_params");
}
LT_API lt_status lt_dist_check_params_equal(lt_dist *d, const lt_params *p) {
    (void)d, (void)p;
    return LT_NO_MPI("lt_dist_check_params_equal");
}
LT_API lt_status lt_dist_allreduce_scalar(lt_dist *d, double *value, lt_dist_op op) {
    (void)d, (void)value, (void)op;
    return LT_NO_MPI("lt_dist_allreduce_scalar");
}
LT_API lt_status lt_dist_broadcast(lt_dist *d, void *data, int64_t nbytes, int root) {
    (void)d, (void)data, (void)nbytes, (void)root;
    return LT_NO_MPI("lt_dist_broadcast");
}
LT_API lt_status lt_dist_gather(lt_dist *d, const void *send, int64_t nbytes, void *recv, int root) {
    (void)d, (void)send, (void)nbytes, (void)recv, (void)root;
    return LT_NO_MPI("lt_dist_gather");
}
LT_API lt_status lt_dist_barrier(lt_dist *d) {
    (void)d;
    return LT_NO_MPI("lt_dist_barrier");
}
LT_API void lt_dist_abort(lt_dist *d, int errorcode) { (void)d, (void)errorcode; }
LT_API lt_status lt_dist_set_timeout(lt_dist *d, double seconds, bool abort_on_timeout) {
    (void)d, (void)seconds, (void)abort_on_timeout;
    return LT_NO_MPI("lt_dist_set_timeout");
}
LT_API double lt_dist_timeout(const lt_dist *d) { return (void)d, INFINITY; }
LT_API bool lt_dist_aborts_on_timeout(const lt_dist *d) { return (void)d, false; }

#endif
