/* Data parallelism on GPUs: an NCCL communicator beside lt_dist's MPI one, for parameters and gradients that live on a
 * GPU. MPI bootstraps it (rank 0's ncclUniqueId goes out with lt_dist_broadcast), then every GPU collective of dist.h
 * goes through NCCL on a stream of its own:
 *  - the communicator is non-blocking (config.blocking = 0): every NCCL call's answer, ncclInProgress included, is
 *    polled with ncclCommGetAsyncError until it settles, and each collective waits for its completion (an event on
 *    NCCL's stream), both against the lt_dist's deadline (lt_dist_timeout, 60 s by default). An NCCL error or the
 *    deadline aborts the communicator (ncclCommAbort) and returns LT_ERR_BACKEND naming the call, the rank, its GPU
 *    and NCCL's words; later calls then fail at once with LT_ERR_STATE. Nothing here waits without a deadline. With
 *    lt_dist_set_timeout's abort_on_timeout, a deadline that passes ends the job instead, as on the MPI path.
 *  - order against the compute stream (the device's one stream, cuda/backend.cu) is kept with events: NCCL's stream
 *    waits for an event recorded on the compute stream before the first bucket, and the compute stream waits for an
 *    event recorded on NCCL's stream after the last one. The reduction itself is not overlapped with backward: the
 *    trainer all-reduces once, after the last micro-batch, and then reads the gradient norm back anyway.
 *  - the gradient all-reduce cuts the flat buffer into the MPI path's buckets (bucket_bytes, the same on every rank),
 *    reduced in buffer order with ncclAllReduce (sum, or ncclAvg when averaging) in the buffer's dtype.
 * The communicator belongs to one lt_dist, found through a small registry here (the lt_dist struct is the MPI side's,
 * src/dist/dist_impl.h), and is released by lt_dist_free. Built without NCCL or MPI, lt_dist_init_nccl says what is
 * missing. */
#include "dist/nccl.h"

#include "core/error.h"
#include "dist/dist_common.h"

#include <string.h>

bool lt__nccl_wants(const lt_params *p) {
    lt_tensor *pf = NULL, *gf = NULL;
    if (!p || lt_params_numel(p) == 0 || lt_params_flat(p, &pf, &gf) != LT_OK || !pf) return false;
    return lt_tensor_device(pf).type == LT_CUDA;
}

#if LT_HAVE_NCCL && LT_HAVE_MPI
#include "backend.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <math.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

typedef struct lt__nccl {
    lt_dist *owner;
    struct lt__nccl *next;
    ncclComm_t comm; /* NULL once aborted */
    int device;      /* the GPU: cuda:device */
    int rank, world;
    cudaStream_t stream;     /* NCCL's own stream on that GPU */
    cudaEvent_t ready, done; /* compute stream -> NCCL's stream before a collective, and back after it */
    char broken[400];        /* after a failure: its message; every later call fails with it */
} lt__nccl;

/* The communicators of live lt_dists. A process has one or two; a list under a lock is enough. */
static pthread_mutex_t lt__nccl_mu = PTHREAD_MUTEX_INITIALIZER;
static lt__nccl *lt__nccl_list;

static lt__nccl *lt__nccl_find(const lt_dist *d) {
    pthread_mutex_lock(&lt__nccl_mu);
    lt__nccl *nc = lt__nccl_list;
    while (nc && nc->owner != d) nc = nc->next;
    pthread_mutex_unlock(&lt__nccl_mu);
    return nc;
}

static void lt__nccl_add(lt__nccl *nc) {
    pthread_mutex_lock(&lt__nccl_mu);
    nc->next = lt__nccl_list;
    lt__nccl_list = nc;
    pthread_mutex_unlock(&lt__nccl_mu);
}

static lt__nccl *lt__nccl_take(const lt_dist *d) {
    pthread_mutex_lock(&lt__nccl_mu);
    lt__nccl **at = &lt__nccl_list;
    while (*at && (*at)->owner != d) at = &(*at)->next;
    lt__nccl *nc = *at;
    if (nc) *at = nc->next;
    pthread_mutex_unlock(&lt__nccl_mu);
    return nc;
}

static double lt__nccl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Between two polls of a wait that began at t0: busy for the first 50 us (a collective between ranks that arrive
 * together ends within that), then asleep, 10 us at first and doubling to at most 200 us, so that a rank waiting for a
 * slow one leaves the cores to it (the MPI path's policy; sched_yield would hand a contended core away for a whole
 * time slice per poll). */
static void lt__nccl_backoff(double t0, long *nap_us) {
    if (lt__nccl_now() - t0 < 50e-6) return;
    struct timespec ts = {0, 1000 * *nap_us};
    nanosleep(&ts, NULL);
    *nap_us = *nap_us * 2 > 200 ? 200 : *nap_us * 2;
}

/* Aborts nc's communicator (once), keeps why it was aborted, and frees nothing else: the stream and events go with
 * lt__nccl_release. */
static void lt__nccl_abort(lt__nccl *nc, const char *why) {
    if (nc->comm) {
        (void)ncclCommAbort(nc->comm);
        nc->comm = NULL;
    }
    if (!nc->broken[0]) snprintf(nc->broken, sizeof nc->broken, "%s", why);
}

/* The failure of `call` on nc: the message names fn, the call, this rank and GPU, and NCCL's words (the code's text
 * and ncclGetLastError, read before the abort), or the deadline; then the communicator is aborted. */
static lt_status lt__nccl_fail(const char *fn, lt__nccl *nc, const char *call, ncclResult_t r, bool timed_out,
                               double waited) {
    char msg[sizeof nc->broken];
    if (timed_out) {
        snprintf(msg, sizeof msg,
                 "%s: rank %d of %d (cuda:%d) timed out after %.1f s waiting for the other ranks in %s: one of them "
                 "failed, hangs or is gone; the NCCL communicator was aborted",
                 fn, nc->rank, nc->world, nc->device, waited, call);
    } else {
        const char *last = nc->comm ? ncclGetLastError(nc->comm) : NULL;
        snprintf(msg, sizeof msg,
                 "%s: %s failed on rank %d of %d (cuda:%d): %s%s%s%s; the NCCL communicator was aborted", fn, call,
                 nc->rank, nc->world, nc->device, ncclGetErrorString(r), last && last[0] ? " (" : "",
                 last && last[0] ? last : "", last && last[0] ? ")" : "");
    }
    lt__nccl_abort(nc, msg);
    lt_status st = lt__err(LT_ERR_BACKEND, "%s", msg);
    if (timed_out && lt_dist_aborts_on_timeout(nc->owner)) { /* as the MPI path does (lt_dist_set_timeout) */
        fprintf(stderr, "libtrain: %s; ending the job (MPI_Abort, exit code %d)\n", msg, LT_DIST_TIMEOUT_EXIT_CODE);
        fflush(stderr);
        lt_dist_abort(nc->owner, LT_DIST_TIMEOUT_EXIT_CODE);
    }
    return st;
}

/* A failed CUDA call on nc's path: the communicator is aborted too, since NCCL work may be queued behind it. */
static lt_status lt__nccl_cuda_fail(const char *fn, lt__nccl *nc, const char *call, cudaError_t e) {
    (void)cudaGetLastError(); /* a non-sticky error must not fail the next, unrelated, CUDA call */
    char msg[sizeof nc->broken];
    snprintf(msg, sizeof msg, "%s: %s failed on rank %d of %d (cuda:%d): %s (%s); the NCCL communicator was aborted",
             fn, call, nc->rank, nc->world, nc->device, cudaGetErrorName(e), cudaGetErrorString(e));
    lt__nccl_abort(nc, msg);
    return lt__err(LT_ERR_BACKEND, "%s", msg);
}

#define LT_NCCL_CU(fn, nc, call)                                                                                       \
    do {                                                                                                               \
        cudaError_t lt__e = (call);                                                                                    \
        if (lt__e != cudaSuccess) return lt__nccl_cuda_fail((fn), (nc), #call, lt__e);                                 \
    } while (0)

/* Settles the answer r of `call`: ncclInProgress, and also ncclSuccess (an earlier asynchronous error shows here
 * first), are polled with ncclCommGetAsyncError until the state leaves ncclInProgress or the deadline passes. */
static lt_status lt__nccl_settle(const char *fn, lt__nccl *nc, const char *call, ncclResult_t r, double start,
                                 double deadline) {
    const double w0 = lt__nccl_now();
    long nap = 10;
    while (r == ncclSuccess || r == ncclInProgress) {
        ncclResult_t state = ncclInProgress;
        ncclResult_t q = ncclCommGetAsyncError(nc->comm, &state);
        if (q != ncclSuccess) return lt__nccl_fail(fn, nc, "ncclCommGetAsyncError", q, false, 0);
        if (state != ncclInProgress) {
            r = state;
            break;
        }
        if (lt__nccl_now() > deadline) return lt__nccl_fail(fn, nc, call, ncclInProgress, true, lt__nccl_now() - start);
        lt__nccl_backoff(w0, &nap);
    }
    return r == ncclSuccess ? LT_OK : lt__nccl_fail(fn, nc, call, r, false, 0);
}

/* Waits until the collectives queued on NCCL's stream have finished (nc->done), polling NCCL's asynchronous errors
 * meanwhile, against the deadline. */
static lt_status lt__nccl_wait_done(const char *fn, lt__nccl *nc, const char *what, double start, double deadline) {
    const double w0 = lt__nccl_now();
    long nap = 10;
    for (;;) {
        cudaError_t e = cudaEventQuery(nc->done);
        if (e == cudaSuccess) return LT_OK;
        if (e != cudaErrorNotReady) return lt__nccl_cuda_fail(fn, nc, "cudaEventQuery", e);
        ncclResult_t state = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(nc->comm, &state);
        if (q != ncclSuccess) return lt__nccl_fail(fn, nc, "ncclCommGetAsyncError", q, false, 0);
        if (state != ncclSuccess && state != ncclInProgress) return lt__nccl_fail(fn, nc, what, state, false, 0);
        if (lt__nccl_now() > deadline) return lt__nccl_fail(fn, nc, what, ncclInProgress, true, lt__nccl_now() - start);
        lt__nccl_backoff(w0, &nap);
    }
}

/* ---- Bootstrap ---- */

/* What each rank tells every other before the communicator is made: whether its GPU works, and which it is. */
typedef struct lt__nccl_peer {
    int32_t ok, index;
    char host[64];
    char bus[32]; /* the PCI bus id, which tells GPUs apart even when CUDA_VISIBLE_DEVICES renumbers them */
    char err[224];
} lt__nccl_peer;

/* Every rank's entry on every rank (gather to rank 0, then broadcast), then the verdict, the same everywhere: a rank
 * whose GPU does not work, or two ranks of one host on one GPU, fail every rank with LT_ERR_DEVICE. */
static lt_status lt__nccl_check_peers(const char *fn, lt_dist *d, const lt__nccl_peer *me) {
    int world = lt_dist_world(d);
    lt__nccl_peer *all = calloc((size_t)world, sizeof *all);
    if (!all) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    lt_status st = lt_dist_gather(d, me, (int64_t)sizeof *me, all, 0);
    if (st == LT_OK) st = lt_dist_broadcast(d, all, (int64_t)sizeof *all * world, 0);
    for (int r = 0; st == LT_OK && r < world; r++)
        if (!all[r].ok)
            st = lt__err(LT_ERR_DEVICE, "%s: rank %d (on %s) cannot use cuda:%d: %s", fn, r, all[r].host, all[r].index,
                         all[r].err);
    for (int i = 0; st == LT_OK && i < world; i++)
        for (int j = i + 1; st == LT_OK && j < world; j++)
            if (strcmp(all[i].host, all[j].host) == 0 && strcmp(all[i].bus, all[j].bus) == 0)
                st = lt__err(LT_ERR_DEVICE,
                             "%s: ranks %d and %d would share one GPU (PCI %s on %s, their cuda:%d and cuda:%d): NCCL "
                             "needs a GPU of its own for every rank; give each rank its own device (index -1 binds "
                             "cuda:<local rank>)",
                             fn, i, j, all[i].bus, all[i].host, all[i].index, all[j].index);
    free(all);
    return st;
}

static void lt__nccl_destroy(lt__nccl *nc) {
    if (!nc) return;
    if (nc->stream || nc->ready || nc->done) (void)cudaSetDevice(nc->device);
    if (nc->ready) (void)cudaEventDestroy(nc->ready);
    if (nc->done) (void)cudaEventDestroy(nc->done);
    if (nc->stream) (void)cudaStreamDestroy(nc->stream);
    free(nc);
}

/* This rank's half of the checks: its GPU made ready (context and compute stream), named, and NCCL's stream and
 * events made on it; me says how that went. */
static void lt__nccl_prepare(const char *fn, lt__nccl *nc, lt__nccl_peer *me) {
    memset(me, 0, sizeof *me);
    me->index = nc->device;
    if (gethostname(me->host, sizeof me->host - 1) != 0) snprintf(me->host, sizeof me->host, "?");
    if (lt__cuda_device_ready(fn, nc->device) != LT_OK) {
        snprintf(me->err, sizeof me->err, "%s", lt_last_error());
        return;
    }
    const char *call = "cudaDeviceGetPCIBusId";
    cudaError_t e = cudaDeviceGetPCIBusId(me->bus, (int)sizeof me->bus - 1, nc->device);
    if (e == cudaSuccess && (e = cudaSetDevice(nc->device)) != cudaSuccess) call = "cudaSetDevice";
    if (e == cudaSuccess && (e = cudaStreamCreateWithFlags(&nc->stream, cudaStreamNonBlocking)) != cudaSuccess)
        call = "cudaStreamCreateWithFlags";
    if (e == cudaSuccess && (e = cudaEventCreateWithFlags(&nc->ready, cudaEventDisableTiming)) != cudaSuccess)
        call = "cudaEventCreateWithFlags";
    if (e == cudaSuccess && (e = cudaEventCreateWithFlags(&nc->done, cudaEventDisableTiming)) != cudaSuccess)
        call = "cudaEventCreateWithFlags";
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(me->err, sizeof me->err, "%s failed: %s (%s)", call, cudaGetErrorName(e), cudaGetErrorString(e));
        return;
    }
    me->ok = 1;
}

static lt_status lt__nccl_init(const char *fn, lt_dist *d, lt_device *device) {
    if (device->type != LT_CUDA)
        return lt__err(LT_ERR_DEVICE, "%s: NCCL needs a GPU device (cuda:N), not the CPU: CPU buffers go through MPI",
                       fn);
    lt__nccl *old = lt__nccl_find(d);
    if (old && !old->broken[0]) {
        if (device->index >= 0 && device->index != old->device)
            return lt__err(LT_ERR_STATE, "%s: this communicator already uses cuda:%d, not cuda:%d", fn, old->device,
                           device->index);
        device->index = old->device;
        return LT_OK;
    }
    if (old) lt__nccl_release(d); /* aborted after a failure: make a new one */
    lt__nccl *nc = calloc(1, sizeof *nc);
    if (!nc) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    *nc = (lt__nccl){.owner = d,
                     .device = device->index >= 0 ? device->index : lt_dist_local_rank(d),
                     .rank = lt_dist_rank(d),
                     .world = lt_dist_world(d)};

    /* 1. Every rank's GPU works and no two ranks of a host share one (NCCL would refuse, or hang): every rank learns
     * of any rank's trouble here, before anything can wait for a rank that will not come. */
    lt__nccl_peer me;
    lt__nccl_prepare(fn, nc, &me);
    lt_status st = lt__nccl_check_peers(fn, d, &me);

    /* 2. Rank 0's unique id, with its status, to every rank. */
    struct {
        int32_t rc;
        ncclUniqueId id;
    } uid;
    memset(&uid, 0, sizeof uid);
    if (st == LT_OK && nc->rank == 0) uid.rc = (int32_t)ncclGetUniqueId(&uid.id);
    if (st == LT_OK) st = lt_dist_broadcast(d, &uid, (int64_t)sizeof uid, 0);
    if (st == LT_OK && uid.rc != ncclSuccess)
        st = lt__err(LT_ERR_BACKEND, "%s: ncclGetUniqueId failed on rank 0: %s", fn,
                     ncclGetErrorString((ncclResult_t)uid.rc));

    /* 3. The communicator, non-blocking, settled against the deadline. NCCL's init is collective: a rank that fails
     * in it leaves the others in progress until their deadline (or NCCL's own error), so every rank fails, each with
     * its own cause; no agreement over MPI follows, which would have to outwait that deadline. */
    if (st == LT_OK) {
        const double start = lt__nccl_now(), deadline = start + lt_dist_timeout(d);
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        config.commName = "libtrain";
        ncclResult_t r = ncclCommInitRankConfig(&nc->comm, nc->world, uid.id, nc->rank, &config);
        if (r != ncclSuccess && r != ncclInProgress) { /* nothing to poll: the handle may not even be set */
            if (nc->comm) (void)ncclCommAbort(nc->comm);
            nc->comm = NULL;
            st = lt__err(LT_ERR_BACKEND, "%s: ncclCommInitRankConfig failed on rank %d of %d (cuda:%d): %s (%s)", fn,
                         nc->rank, nc->world, nc->device, ncclGetErrorString(r), ncclGetLastError(NULL));
        } else {
            st = lt__nccl_settle(fn, nc, "ncclCommInitRankConfig", r, start, deadline);
        }
    }
    if (st != LT_OK) {
        if (nc->comm) (void)ncclCommAbort(nc->comm);
        nc->comm = NULL;
        lt__nccl_destroy(nc);
        return st;
    }
    lt__nccl_add(nc);
    device->index = nc->device;
    return LT_OK;
}

/* The usable communicator of d on `device` (made now when d has none: collective), or why there is none. */
static lt_status lt__nccl_get(const char *fn, lt_dist *d, lt_device device, lt__nccl **out) {
    lt__nccl *nc = lt__nccl_find(d);
    if (!nc) {
        LT_TRY(lt__nccl_init(fn, d, &device));
        nc = lt__nccl_find(d);
    }
    if (nc->broken[0])
        return lt__err(LT_ERR_STATE, "%s: rank %d's NCCL communicator was aborted after an earlier failure: %s", fn,
                       nc->rank, nc->broken);
    if (device.index != nc->device)
        return lt__err(LT_ERR_DEVICE, "%s: the tensors are on cuda:%d, but this rank's NCCL communicator uses cuda:%d",
                       fn, device.index, nc->device);
    void *compute = lt__cuda_stream(nc->device);
    if (!compute) return lt__err(LT_ERR_STATE, "%s: cuda:%d has no compute stream yet", fn, nc->device);
    LT_NCCL_CU(fn, nc, cudaSetDevice(nc->device));
    *out = nc;
    return LT_OK;
}

/* ---- dist.h on the GPU ---- */

static lt_status lt__nccl_type(const char *fn, const lt_tensor *t, ncclDataType_t *type) {
    switch (lt_tensor_dtype(t)) {
    case LT_F32: *type = ncclFloat32; return LT_OK;
    case LT_F64: *type = ncclFloat64; return LT_OK;
    case LT_BF16: *type = ncclBfloat16; return LT_OK;
    case LT_F16: *type = ncclFloat16; return LT_OK;
    default:
        return lt__err(LT_ERR_DTYPE, "%s: NCCL reduces float buffers, not %s", fn, lt_dtype_name(lt_tensor_dtype(t)));
    }
}

/* Orders NCCL's stream after the work queued so far on the compute stream. */
static lt_status lt__nccl_begin(const char *fn, lt__nccl *nc) {
    cudaStream_t compute = (cudaStream_t)lt__cuda_stream(nc->device);
    LT_NCCL_CU(fn, nc, cudaEventRecord(nc->ready, compute));
    LT_NCCL_CU(fn, nc, cudaStreamWaitEvent(nc->stream, nc->ready, 0));
    return LT_OK;
}

/* Orders the compute stream after NCCL's work, then waits for that work against the deadline. */
static lt_status lt__nccl_end(const char *fn, lt__nccl *nc, const char *what, double start, double deadline) {
    cudaStream_t compute = (cudaStream_t)lt__cuda_stream(nc->device);
    LT_NCCL_CU(fn, nc, cudaEventRecord(nc->done, nc->stream));
    LT_NCCL_CU(fn, nc, cudaStreamWaitEvent(compute, nc->done, 0));
    return lt__nccl_wait_done(fn, nc, what, start, deadline);
}

lt_status lt__nccl_allreduce_grads(const char *fn, lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average) {
    LT_CHECK_NOT_NULL(fn, d);
    LT_CHECK_NOT_NULL(fn, p);
    lt_tensor *pf = NULL, *gf = NULL;
    LT_TRY(lt_params_flat(p, &pf, &gf));
    ncclDataType_t type;
    LT_TRY(lt__nccl_type(fn, gf, &type));
    lt__nccl *nc;
    LT_TRY(lt__nccl_get(fn, d, lt_tensor_device(gf), &nc));
    const double start = lt__nccl_now(), deadline = start + lt_dist_timeout(d);
    /* The MPI path's buckets: bucket_bytes of elements each (at most 2^31 - 1), in buffer order. */
    const int64_t n = lt_tensor_numel(gf);
    const size_t esize = lt_dtype_size(lt_tensor_dtype(gf));
    if (bucket_bytes <= 0) bucket_bytes = LT_DIST_DEFAULT_BUCKET_BYTES;
    int64_t per = bucket_bytes / (int64_t)esize;
    if (per < 1) per = 1;
    if (per > INT32_MAX) per = INT32_MAX;
    const int64_t nb = (n + per - 1) / per;
    LT_TRY(lt__nccl_begin(fn, nc));
    char *base = lt_tensor_data(gf), call[96];
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * per, cnt = n - off < per ? n - off : per;
        void *x = base + off * (int64_t)esize;
        snprintf(call, sizeof call, "ncclAllReduce (bucket %lld of %lld)", (long long)b + 1, (long long)nb);
        ncclResult_t r = ncclAllReduce(x, x, (size_t)cnt, type, average ? ncclAvg : ncclSum, nc->comm, nc->stream);
        LT_TRY(lt__nccl_settle(fn, nc, call, r, start, deadline));
    }
    snprintf(call, sizeof call, "ncclAllReduce (%lld bucket%s, waiting for them to finish)", (long long)nb,
             nb == 1 ? "" : "s");
    return lt__nccl_end(fn, nc, call, start, deadline);
}

lt_status lt__nccl_broadcast_params(const char *fn, lt_dist *d, lt_params *p) {
    LT_CHECK_NOT_NULL(fn, d);
    LT_CHECK_NOT_NULL(fn, p);
    lt_tensor *pf = NULL, *gf = NULL;
    LT_TRY(lt_params_flat(p, &pf, &gf));
    ncclDataType_t type;
    LT_TRY(lt__nccl_type(fn, pf, &type));
    lt__nccl *nc;
    LT_TRY(lt__nccl_get(fn, d, lt_tensor_device(pf), &nc));
    const double start = lt__nccl_now(), deadline = start + lt_dist_timeout(d);
    void *x = lt_tensor_data(pf);
    LT_TRY(lt__nccl_begin(fn, nc));
    ncclResult_t r = ncclBroadcast(x, x, (size_t)lt_tensor_numel(pf), type, 0, nc->comm, nc->stream);
    LT_TRY(lt__nccl_settle(fn, nc, "ncclBroadcast", r, start, deadline));
    return lt__nccl_end(fn, nc, "ncclBroadcast (waiting for it to finish)", start, deadline);
}

/* The parameters are copied to the host and hashed there; the hashes travel over MPI (a check, not a hot path). */
lt_status lt__nccl_check_params_equal(const char *fn, lt_dist *d, const lt_params *p) {
    LT_CHECK_NOT_NULL(fn, d);
    LT_CHECK_NOT_NULL(fn, p);
    lt_tensor *pf = NULL, *gf = NULL;
    LT_TRY(lt_params_flat(p, &pf, &gf));
    const int64_t n = lt_tensor_numel(pf);
    const size_t esize = lt_dtype_size(lt_tensor_dtype(pf)), bytes = (size_t)n * esize;
    /* A failed copy still takes part in the exchange (as a hash no rank can match), so no rank waits for this one. */
    unsigned char *host = malloc(bytes ? bytes : 1);
    lt_status copied = host ? lt_tensor_to_host(pf, host, bytes) : LT_ERR_OOM;
    char why[256] = "out of memory for a host copy";
    if (host && copied != LT_OK) snprintf(why, sizeof why, "%s", lt_last_error());
    uint64_t mine[3] = {(uint64_t)n, (uint64_t)esize, copied == LT_OK ? lt__dist_hash(host, bytes) : ~(uint64_t)0};
    free(host);
    const int world = lt_dist_world(d);
    uint64_t *all = malloc(sizeof mine * (size_t)world);
    if (!all) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    lt_status st = lt_dist_gather(d, mine, (int64_t)sizeof mine, all, 0);
    if (st == LT_OK) st = lt_dist_broadcast(d, all, (int64_t)(sizeof mine * (size_t)world), 0);
    if (st == LT_OK && copied != LT_OK)
        st = lt__err(copied, "%s: rank %d could not copy its parameters to the host: %s", fn, lt_dist_rank(d), why);
    for (int r = 1; r < world && st == LT_OK; r++)
        if (memcmp(all + 3 * r, all, sizeof mine) != 0)
            st = lt__err(LT_ERR_STATE,
                         "%s: rank %d's parameters differ from rank 0's (%llu vs %llu elements of %llu bytes, hash "
                         "%016llx vs %016llx; seen from rank %d)",
                         fn, r, (unsigned long long)all[3 * r], (unsigned long long)all[0],
                         (unsigned long long)all[3 * r + 1], (unsigned long long)all[3 * r + 2],
                         (unsigned long long)all[2], lt_dist_rank(d));
    free(all);
    return st;
}

void lt__nccl_release(lt_dist *d) {
    lt__nccl *nc = lt__nccl_take(d);
    if (!nc) return;
    if (nc->comm) {
        /* ncclCommFinalize flushes and leaves the communicator (collective, polled); a peer that is gone would keep
         * it in progress, so past the deadline the communicator is aborted instead of destroyed. */
        (void)cudaSetDevice(nc->device);
        double start = lt__nccl_now(), timeout = lt_dist_timeout(d);
        double deadline = start + (isfinite(timeout) ? timeout : LT_DIST_DEFAULT_TIMEOUT_SECONDS);
        ncclResult_t r = ncclCommFinalize(nc->comm), state = r;
        long nap = 10;
        while (r == ncclSuccess || r == ncclInProgress) {
            if (ncclCommGetAsyncError(nc->comm, &state) != ncclSuccess || state != ncclInProgress) break;
            if (lt__nccl_now() > deadline) break;
            lt__nccl_backoff(start, &nap);
        }
        if ((r == ncclSuccess || r == ncclInProgress) && state == ncclSuccess)
            (void)ncclCommDestroy(nc->comm);
        else
            (void)ncclCommAbort(nc->comm);
        nc->comm = NULL;
    }
    lt__nccl_destroy(nc);
}

LT_API lt_status lt_dist_init_nccl(lt_dist *d, lt_device *device) {
    static const char *fn = "lt_dist_init_nccl";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, d);
    LT_CHECK_NOT_NULL(fn, device);
    return lt__nccl_init(fn, d, device);
}

#else /* no NCCL, or no MPI to bootstrap it, in this build */

#if !LT_HAVE_MPI
#define LT_NCCL_MISSING "MPI (install libopenmpi-dev and openmpi-bin, then reconfigure with -DLT_MPI=ON)"
#else
#define LT_NCCL_MISSING                                                                                                \
    "NCCL (a CUDA build, -DLT_CUDA=ON, with NVIDIA's libnccl-dev; configure prints LT_NCCL ON when it is found)"
#endif

static lt_status lt__no_nccl(const char *fn) {
    return lt__err(LT_ERR_UNSUPPORTED, "%s: data parallelism on GPUs needs a libtrain built with " LT_NCCL_MISSING, fn);
}

lt_status lt__nccl_allreduce_grads(const char *fn, lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average) {
    (void)d, (void)p, (void)bucket_bytes, (void)average;
    return lt__no_nccl(fn);
}
lt_status lt__nccl_broadcast_params(const char *fn, lt_dist *d, lt_params *p) {
    (void)d, (void)p;
    return lt__no_nccl(fn);
}
lt_status lt__nccl_check_params_equal(const char *fn, lt_dist *d, const lt_params *p) {
    (void)d, (void)p;
    return lt__no_nccl(fn);
}
void lt__nccl_release(lt_dist *d) { (void)d; }

LT_API lt_status lt_dist_init_nccl(lt_dist *d, lt_device *device) {
    (void)d, (void)device;
    lt__clear_error();
    return lt__no_nccl("lt_dist_init_nccl");
}

#endif
