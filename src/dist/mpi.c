/* The MPI communicator behind dist.h: bootstrap, bucketed gradient all-reduce, broadcasts and checks on CPU buffers.
 * Every MPI error comes back as a status naming the rank; nothing here aborts, except lt_dist_abort when asked to.
 * Built without MPI, each call returns LT_ERR_UNSUPPORTED saying what to install. */
#include "core/error.h"
#include "libtrain/dist.h"

#include <stdint.h>
#include <string.h>

#if LT_HAVE_MPI
#include <mpi.h>

struct lt_dist {
    MPI_Comm comm, local; /* duplicates owned here, both with MPI_ERRORS_RETURN */
    int rank, world, local_rank;
    bool owns_mpi; /* MPI_Init_thread was ours, so MPI_Finalize is too */
};

/* MPI's text for rc, in a status that names the call and the rank. */
static lt_status lt__mpi_err(const char *fn, const lt_dist *d, int rc, const char *call) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error code %d", rc);
    return lt__err(LT_ERR_BACKEND, "%s: %s failed on rank %d of %d: %s", fn, call, d ? d->rank : -1, d ? d->world : -1,
                   text);
}

#define LT_MPI(fn, d, call)                                                                                            \
    do {                                                                                                               \
        int lt__rc = (call);                                                                                           \
        if (lt__rc != MPI_SUCCESS) return lt__mpi_err((fn), (d), lt__rc, #call);                                       \
    } while (0)

static lt_status lt__dist_setup(const char *fn, lt_dist *d, MPI_Comm parent) {
    LT_MPI(fn, d, MPI_Comm_dup(parent, &d->comm));
    LT_MPI(fn, d, MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN));
    LT_MPI(fn, d, MPI_Comm_rank(d->comm, &d->rank));
    LT_MPI(fn, d, MPI_Comm_size(d->comm, &d->world));
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
    if (d->local != MPI_COMM_NULL) MPI_Comm_free(&d->local);
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    if (d->owns_mpi) MPI_Finalize();
    free(d);
}

LT_API int lt_dist_rank(const lt_dist *d) { return d ? d->rank : 0; }
LT_API int lt_dist_world(const lt_dist *d) { return d ? d->world : 1; }
LT_API int lt_dist_local_rank(const lt_dist *d) { return d ? d->local_rank : 0; }

/* The flat parameter or gradient buffer of p, checked to be on the CPU. */
static lt_status lt__flat(const char *fn, const lt_dist *d, const lt_params *p, bool grads, void **data, int64_t *numel,
                          MPI_Datatype *type, size_t *esize) {
    LT_CHECK_NOT_NULL(fn, d);
    LT_CHECK_NOT_NULL(fn, p);
    lt_tensor *pf = NULL, *gf = NULL;
    *numel = lt_params_numel(p);
    *data = NULL;
    if (*numel > 0) LT_TRY(lt_params_flat(p, &pf, &gf));
    lt_tensor *t = grads ? gf : pf;
    if (t && lt_tensor_device(t).type != LT_CPU)
        return lt__err(LT_ERR_DEVICE, "%s: the parameters are not on the CPU; GPU buffers need NCCL (not built yet)",
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
    void *g;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
    LT_TRY(lt__flat(fn, d, p, true, &g, &n, &type, &esize));
    if (d->world == 1 || n == 0) return LT_OK;
    if (bucket_bytes <= 0) bucket_bytes = LT_DIST_DEFAULT_BUCKET_BYTES;
    int64_t per = bucket_bytes / (int64_t)esize;
    if (per < 1) per = 1;
    if (per > INT32_MAX) per = INT32_MAX; /* MPI counts are int */
    int64_t nb = (n + per - 1) / per;
    /* Buckets go out in buffer order on every rank, so the reductions match up and their order is fixed. Blocking
     * MPI_Allreduce, not MPI_Iallreduce: on the CPU nothing overlaps with it anyway, and OpenMPI's tuned blocking
     * algorithms reach 2-3x the bandwidth of its non-blocking ones (bench/mpi/allreduce). Each bucket is scaled by
     * 1/world right after its reduction, while it is still warm in cache; 1/world is exact for a power-of-two world,
     * otherwise one rounding, the same on every rank. */
    char *base = g;
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * per, cnt = n - off < per ? n - off : per;
        void *x = base + off * (int64_t)esize;
        LT_MPI(fn, d, MPI_Allreduce(MPI_IN_PLACE, x, (int)cnt, type, MPI_SUM, d->comm));
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
    void *x;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
    LT_TRY(lt__flat(fn, d, p, false, &x, &n, &type, &esize));
    for (int64_t off = 0; off < n; off += INT32_MAX) {
        int64_t cnt = n - off < INT32_MAX ? n - off : INT32_MAX;
        LT_MPI(fn, d, MPI_Bcast((char *)x + off * (int64_t)esize, (int)cnt, type, 0, d->comm));
    }
    return LT_OK;
}

/* 64-bit hash of a buffer, word by word (a multiply-xorshift mix): any flipped bit changes it. */
static uint64_t lt__hash(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
}

LT_API lt_status lt_dist_check_params_equal(lt_dist *d, const lt_params *p) {
    static const char *fn = "lt_dist_check_params_equal";
    lt__clear_error();
    void *x;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
    LT_TRY(lt__flat(fn, d, p, false, &x, &n, &type, &esize));
    uint64_t mine[3] = {(uint64_t)n, (uint64_t)esize, x ? lt__hash(x, (size_t)n * esize) : 0};
    uint64_t *all = malloc(sizeof mine * (size_t)d->world);
    if (!all) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    int rc = MPI_Allgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, d->comm);
    if (rc != MPI_SUCCESS) {
        free(all);
        return lt__mpi_err(fn, d, rc, "MPI_Allgather");
    }
    lt_status st = LT_OK;
    for (int r = 1; r < d->world && st == LT_OK; r++)
        if (memcmp(all + 3 * r, all, sizeof mine) != 0)
            st = lt__err(LT_ERR_STATE,
                         "%s: rank %d's parameters differ from rank 0's (%llu vs %llu elements of %llu bytes, hash "
                         "%016llx vs %016llx; seen from rank %d)",
                         fn, r, (unsigned long long)all[3 * r], (unsigned long long)all[0],
                         (unsigned long long)all[3 * r + 1], (unsigned long long)all[3 * r + 2],
                         (unsigned long long)all[2], d->rank);
    free(all);
    return st;
}

LT_API lt_status lt_dist_allreduce_scalar(lt_dist *d, double *value, lt_dist_op op) {
    static const char *fn = "lt_dist_allreduce_scalar";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, d);
    LT_CHECK_NOT_NULL(fn, value);
    MPI_Op mop;
    switch (op) {
    case LT_DIST_SUM:
    case LT_DIST_MEAN: mop = MPI_SUM; break;
    case LT_DIST_MAX: mop = MPI_MAX; break;
    case LT_DIST_MIN: mop = MPI_MIN; break;
    default: return lt__err(LT_ERR_ARG, "%s: unknown op %d", fn, (int)op);
    }
    LT_MPI(fn, d, MPI_Allreduce(MPI_IN_PLACE, value, 1, MPI_DOUBLE, mop, d->comm));
    if (op == LT_DIST_MEAN) *value /= (double)d->world;
    return LT_OK;
}

LT_API lt_status lt_dist_broadcast(lt_dist *d, void *data, int64_t nbytes, int root) {
    static const char *fn = "lt_dist_broadcast";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, d);
    if (nbytes < 0 || nbytes > INT32_MAX || (nbytes > 0 && !data) || root < 0 || root >= d->world)
        return lt__err(LT_ERR_ARG, "%s: nbytes %lld (at most 2^31 - 1, with data), root %d of world %d", fn,
                       (long long)nbytes, root, d->world);
    LT_MPI(fn, d, MPI_Bcast(data, (int)nbytes, MPI_BYTE, root, d->comm));
    return LT_OK;
}

LT_API lt_status lt_dist_gather(lt_dist *d, const void *send, int64_t nbytes, void *recv, int root) {
    static const char *fn = "lt_dist_gather";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, d);
    /* MPI counts are int: the root receives world * nbytes, which must fit too. */
    if (nbytes < 0 || nbytes > INT32_MAX / d->world || (nbytes > 0 && !send) || root < 0 || root >= d->world ||
        (d->rank == root && nbytes > 0 && !recv))
        return lt__err(LT_ERR_ARG,
                       "%s: nbytes %lld (at most 2^31 / world, with send, and recv at the root), root %d of "
                       "world %d",
                       fn, (long long)nbytes, root, d->world);
    LT_MPI(fn, d, MPI_Gather(send, (int)nbytes, MPI_BYTE, recv, (int)nbytes, MPI_BYTE, root, d->comm));
    return LT_OK;
}

LT_API lt_status lt_dist_barrier(lt_dist *d) {
    static const char *fn = "lt_dist_barrier";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, d);
    LT_MPI(fn, d, MPI_Barrier(d->comm));
    return LT_OK;
}

LT_API void lt_dist_abort(lt_dist *d, int errorcode) {
    if (d) MPI_Abort(d->comm, errorcode);
}

#else /* no MPI in this build */

#define LT_NO_MPI(fn)                                                                                                  \
    lt__err(LT_ERR_UNSUPPORTED,                                                                                        \
            "%s: this libtrain was built without MPI; install libopenmpi-dev and openmpi-bin, then reconfigure "       \
            "with -DLT_MPI=ON",                                                                                        \
            fn)

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

#endif
