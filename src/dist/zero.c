/* ZeRO-1 over MPI: the shard partition of a flat buffer, the padded reduce-scatter of gradients and all-gather of
 * parameters, the gather and scatter of optimizer shards for checkpoints, and the whole sharded optimizer step. It
 * computes nothing itself: sums are MPI's, the update is the optimizer's (lt_adamw_create_range). */
#include "core/error.h"
#include "dist/dist_common.h"
#include "libtrain/dist.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* rank r of world owns [r * shard, r * shard + count) of numel elements, shard = ceil(numel / world) */
static lt_dist_shard lt__shard(int64_t numel, int rank, int world) {
    lt_dist_shard s = {0, 0, 0};
    if (numel <= 0) return s;
    s.shard = (numel + world - 1) / world;
    s.offset = (int64_t)rank * s.shard;
    const int64_t left = numel - s.offset;
    s.count = left <= 0 ? 0 : left < s.shard ? left : s.shard;
    if (s.offset > numel) s.offset = numel; /* an all-padding shard starts at the end of the buffer */
    return s;
}

LT_API lt_status lt_dist_shard_of(const lt_dist *d, int64_t numel, lt_dist_shard *out) {
    static const char *fn = "lt_dist_shard_of";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, out);
    memset(out, 0, sizeof *out);
    if (numel < 0) return lt__err(LT_ERR_ARG, "%s: numel is %lld, must be >= 0", fn, (long long)numel);
    *out = lt__shard(numel, lt_dist_rank(d), lt_dist_world(d));
    return LT_OK;
}

LT_API lt_status lt_dist_zero_step(lt_dist *d, lt_params *p, lt_optim *opt, int64_t bucket_bytes, bool average,
                                   double max_norm, double *norm) {
    static const char *fn = "lt_dist_zero_step";
    if (norm) *norm = NAN;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    LT_CHECK_NOT_NULL(fn, opt);
    if (isnan(max_norm)) return lt__err(LT_ERR_ARG, "%s: max_norm is NaN", fn);
    const int64_t numel = lt_params_numel(p);
    lt_dist_shard sh;
    int64_t off, cnt;
    LT_TRY(lt_dist_shard_of(d, numel, &sh));
    LT_TRY(lt_optim_range(opt, &off, &cnt));
    if (off != sh.offset || cnt != sh.count)
        return lt__err(LT_ERR_ARG,
                       "%s: the optimizer updates [%lld, +%lld) but rank %d of %d owns [%lld, +%lld) of the %lld "
                       "parameters (create it with lt_adamw_create_range and lt_dist_shard_of)",
                       fn, (long long)off, (long long)cnt, lt_dist_rank(d), lt_dist_world(d), (long long)sh.offset,
                       (long long)sh.count, (long long)numel);
    const bool many = lt_dist_world(d) > 1;
    if (many) LT_TRY(lt_dist_reduce_scatter_grads(d, p, bucket_bytes, average));
    /* The norm of the whole gradient: each rank's shard holds its part of the summed gradient, so the parts' sums of
     * squares add up to the whole's (in another order than one lt_clip_grad_norm over the buffer: the last bits
     * may differ). */
    double sumsq;
    LT_TRY(lt_grad_sumsq(p, off, cnt, &sumsq));
    if (many) LT_TRY(lt_dist_allreduce_scalar(d, &sumsq, LT_DIST_SUM));
    const double total = sqrt(sumsq);
    if (norm) *norm = total;
    LT_TRY(lt_optim_step_scaled(opt, lt_clip_coef(total, max_norm))); /* the clip, in the update's own pass */
    if (many) LT_TRY(lt_dist_allgather_params(d, p, bucket_bytes));
    return LT_OK;
}

#if LT_HAVE_MPI
#include "dist/dist_impl.h"

#include <stdio.h>

/* ---- Padded rounds ----
 * The buffer is treated as padded to world * shard elements. Round k covers, for every rank r, the elements
 * [r * shard + k * per, + len) of r's shard (len = per, less in the last round): the world pieces of a round are packed
 * one after another into the staging buffer (world * per elements, about bucket_bytes), elements past numel read as
 * zeros and are dropped on the way back, and one blocking MPI call (after the gate) moves the round. So any numel works
 * with the *_block collectives, shards stay contiguous, and the staging memory is one bucket, not a padded copy of
 * the buffer. */
typedef enum lt__round_op { LT__RS_SUM, LT__AG, LT__GATHER, LT__SCATTER } lt__round_op;

typedef struct lt__rounds {
    int64_t numel, shard, per, n_rounds;
    size_t esz;
    MPI_Datatype type;
} lt__rounds;

static lt_status lt__rounds_plan(const char *fn, lt_dist *d, int64_t numel, size_t esz, MPI_Datatype type,
                                 int64_t bucket_bytes, lt__rounds *r) {
    r->numel = numel;
    r->esz = esz;
    r->type = type;
    r->shard = lt__shard(numel, 0, d->world).shard;
    if (bucket_bytes <= 0) bucket_bytes = LT_DIST_DEFAULT_BUCKET_BYTES;
    int64_t per = bucket_bytes / (int64_t)esz / d->world;
    if (per < 1) per = 1;
    if (per > INT32_MAX / d->world) per = INT32_MAX / d->world; /* MPI counts are int, world * per included */
    if (per > r->shard) per = r->shard;
    r->per = per;
    r->n_rounds = per > 0 ? (r->shard + per - 1) / per : 0;
    const size_t need = (size_t)d->world * (size_t)(per > 0 ? per : 1) * esz;
    if (d->stage_bytes < need) {
        void *grown = realloc(d->stage, need);
        if (!grown) return lt__err(LT_ERR_OOM, "%s: out of memory for a %zu-byte staging buffer", fn, need);
        d->stage = grown;
        d->stage_bytes = need;
    }
    return LT_OK;
}

/* The real elements of rank r's piece in round k: [*at, *at + *real) of the flat buffer, of len in the round. */
static void lt__piece(const lt__rounds *r, int rank, int64_t k, int64_t *at, int64_t *len, int64_t *real) {
    const int64_t lo = k * r->per;
    *len = r->shard - lo < r->per ? r->shard - lo : r->per;
    *at = (int64_t)rank * r->shard + lo;
    const int64_t left = r->numel - *at;
    *real = left <= 0 ? 0 : left < *len ? left : *len;
}

/* Copies n elements of real data from src to dst and zero-fills the rest up to len. */
static void lt__pack(char *dst, const char *src, int64_t real, int64_t len, size_t esz) {
    if (real > 0) memcpy(dst, src, (size_t)real * esz);
    if (len > real) memset(dst + (size_t)real * esz, 0, (size_t)(len - real) * esz);
}

/* One collective over the padded rounds. full: the flat buffer (numel elements; only at root for GATHER/SCATTER);
 * shard: this rank's shard as a separate buffer of count elements (GATHER, SCATTER), else unused. */
static lt_status lt__run_rounds(const char *fn, lt_dist *d, lt__round_op op, char *full, char *shard, int64_t numel,
                                size_t esz, MPI_Datatype type, int64_t bucket_bytes, int root, bool average) {
    lt__rounds r;
    LT_TRY(lt__rounds_plan(fn, d, numel, esz, type, bucket_bytes, &r));
    static const char *names[] = {"MPI_Reduce_scatter_block", "MPI_Allgather", "MPI_Gather", "MPI_Scatter"};
    char *stage = d->stage, what[96];
    const int me = d->rank;
    const bool at_root = me == root;
    for (int64_t k = 0; k < r.n_rounds; k++) {
        int64_t at, len, real;
        lt__piece(&r, me, k, &at, &len, &real);
        const size_t piece_bytes = (size_t)len * esz;
        char *mine_in_stage = stage + (size_t)me * piece_bytes;
        snprintf(what, sizeof what, "%s (round %lld of %lld)", names[op], (long long)k + 1, (long long)r.n_rounds);
        switch (op) {
        case LT__RS_SUM:
            for (int q = 0; q < d->world; q++) {
                int64_t qa, ql, qr;
                lt__piece(&r, q, k, &qa, &ql, &qr);
                lt__pack(stage + (size_t)q * piece_bytes, full + (size_t)qa * esz, qr, ql, esz);
            }
            /* in place: the input is the whole staging buffer, this rank's sum lands at its start */
            LT_MPI_GATED(fn, d, what, MPI_Reduce_scatter_block(MPI_IN_PLACE, stage, (int)len, type, MPI_SUM, d->comm));
            if (average && real > 0) {
                if (type == MPI_DOUBLE) {
                    double *v = (double *)(void *)stage, sc = 1.0 / (double)d->world;
                    for (int64_t i = 0; i < real; i++) v[i] *= sc;
                } else {
                    float *v = (float *)(void *)stage, sc = 1.0f / (float)d->world;
                    for (int64_t i = 0; i < real; i++) v[i] *= sc;
                }
            }
            if (real > 0) memcpy(full + (size_t)at * esz, stage, (size_t)real * esz);
            break;
        case LT__AG:
            lt__pack(mine_in_stage, full + (size_t)at * esz, real, len, esz);
            LT_MPI_GATED(fn, d, what, MPI_Allgather(MPI_IN_PLACE, 0, type, stage, (int)len, type, d->comm));
            for (int q = 0; q < d->world; q++) {
                int64_t qa, ql, qr;
                lt__piece(&r, q, k, &qa, &ql, &qr);
                if (q != me && qr > 0)
                    memcpy(full + (size_t)qa * esz, stage + (size_t)q * piece_bytes, (size_t)qr * esz);
            }
            break;
        case LT__GATHER: {
            const int64_t lo = k * r.per; /* the round's start inside the shard */
            lt__pack(at_root ? mine_in_stage : stage, shard + (size_t)lo * esz, real, len, esz);
            LT_MPI_GATED(
                fn, d, what,
                MPI_Gather(at_root ? MPI_IN_PLACE : stage, (int)len, type, stage, (int)len, type, root, d->comm));
            for (int q = 0; at_root && q < d->world; q++) {
                int64_t qa, ql, qr;
                lt__piece(&r, q, k, &qa, &ql, &qr);
                if (qr > 0) memmove(full + (size_t)qa * esz, stage + (size_t)q * piece_bytes, (size_t)qr * esz);
            }
            break;
        }
        case LT__SCATTER: {
            const int64_t lo = k * r.per;
            for (int q = 0; at_root && q < d->world; q++) {
                int64_t qa, ql, qr;
                lt__piece(&r, q, k, &qa, &ql, &qr);
                lt__pack(stage + (size_t)q * piece_bytes, full + (size_t)qa * esz, qr, ql, esz);
            }
            LT_MPI_GATED(
                fn, d, what,
                MPI_Scatter(stage, (int)len, type, at_root ? MPI_IN_PLACE : stage, (int)len, type, root, d->comm));
            /* root's piece stayed at its place in the staging buffer; everyone else's arrived at its start */
            if (real > 0) memmove(shard + (size_t)lo * esz, at_root ? mine_in_stage : stage, (size_t)real * esz);
            break;
        }
        }
    }
    return LT_OK;
}

LT_API lt_status lt_dist_reduce_scatter_grads(lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average) {
    static const char *fn = "lt_dist_reduce_scatter_grads";
    lt__clear_error();
    void *g;
    int64_t n;
    MPI_Datatype type;
    size_t esz;
    LT_TRY(lt__dist_flat(fn, d, p, true, &g, &n, &type, &esz));
    if (d->world == 1 || n == 0) return LT_OK;
    return lt__run_rounds(fn, d, LT__RS_SUM, g, NULL, n, esz, type, bucket_bytes, 0, average);
}

LT_API lt_status lt_dist_allgather_params(lt_dist *d, lt_params *p, int64_t bucket_bytes) {
    static const char *fn = "lt_dist_allgather_params";
    lt__clear_error();
    void *x;
    int64_t n;
    MPI_Datatype type;
    size_t esz;
    LT_TRY(lt__dist_flat(fn, d, p, false, &x, &n, &type, &esz));
    if (d->world == 1 || n == 0) return LT_OK;
    return lt__run_rounds(fn, d, LT__AG, x, NULL, n, esz, type, bucket_bytes, 0, false);
}

static lt_status lt__shards_args(const char *fn, lt_dist *d, const void *shard, const void *full, int64_t numel,
                                 lt_dtype dtype, int root, size_t *esz, MPI_Datatype *type) {
    LT_TRY(lt__dist_usable(fn, d));
    const lt_dist_shard sh = lt__shard(numel, d->rank, d->world);
    if (numel < 0 || root < 0 || root >= d->world || (dtype != LT_F32 && dtype != LT_F64) || (sh.count > 0 && !shard) ||
        (d->rank == root && numel > 0 && !full))
        return lt__err(LT_ERR_ARG,
                       "%s: numel %lld (>= 0), root %d of world %d, dtype %s (f32 or f64), a shard buffer where this "
                       "rank owns elements and a full buffer at the root",
                       fn, (long long)numel, root, d->world, lt_dtype_name(dtype));
    *esz = lt_dtype_size(dtype);
    *type = dtype == LT_F64 ? MPI_DOUBLE : MPI_FLOAT;
    return LT_OK;
}

/* Gather (shard -> full at the root) or scatter (full at the root -> shard), after the checks; one rank copies
 * between its two buffers. */
static lt_status lt__shards_move(const char *fn, lt_dist *d, lt__round_op op, void *full, void *shard, int64_t numel,
                                 lt_dtype dtype, int root) {
    lt__clear_error();
    size_t esz = 0; /* set by lt__shards_args (initialized for GCC's -Wmaybe-uninitialized) */
    MPI_Datatype type = MPI_DATATYPE_NULL;
    LT_TRY(lt__shards_args(fn, d, shard, full, numel, dtype, root, &esz, &type));
    if (numel == 0) return LT_OK;
    if (d->world == 1) {
        if (full != shard) {
            if (op == LT__GATHER)
                memmove(full, shard, (size_t)numel * esz);
            else
                memmove(shard, full, (size_t)numel * esz);
        }
        return LT_OK;
    }
    return lt__run_rounds(fn, d, op, full, shard, numel, esz, type, 0, root, false);
}

LT_API lt_status lt_dist_gather_shards(lt_dist *d, const void *shard, void *full, int64_t numel, lt_dtype dtype,
                                       int root) {
    return lt__shards_move("lt_dist_gather_shards", d, LT__GATHER, full, (void *)(uintptr_t)shard, numel, dtype, root);
}

LT_API lt_status lt_dist_scatter_shards(lt_dist *d, const void *full, void *shard, int64_t numel, lt_dtype dtype,
                                        int root) {
    return lt__shards_move("lt_dist_scatter_shards", d, LT__SCATTER, (void *)(uintptr_t)full, shard, numel, dtype,
                           root);
}

#else /* no MPI in this build */

LT_API lt_status lt_dist_reduce_scatter_grads(lt_dist *d, lt_params *p, int64_t bucket_bytes, bool average) {
    (void)d, (void)p, (void)bucket_bytes, (void)average;
    return LT_NO_MPI("lt_dist_reduce_scatter_grads");
}
LT_API lt_status lt_dist_allgather_params(lt_dist *d, lt_params *p, int64_t bucket_bytes) {
    (void)d, (void)p, (void)bucket_bytes;
    return LT_NO_MPI("lt_dist_allgather_params");
}
LT_API lt_status lt_dist_gather_shards(lt_dist *d, const void *shard, void *full, int64_t numel, lt_dtype dtype,
                                       int root) {
    (void)d, (void)shard, (void)full, (void)numel, (void)dtype, (void)root;
    return LT_NO_MPI("lt_dist_gather_shards");
}
LT_API lt_status lt_dist_scatter_shards(lt_dist *d, const void *full, void *shard, int64_t numel, lt_dtype dtype,
                                        int root) {
    (void)d, (void)full, (void)shard, (void)numel, (void)dtype, (void)root;
    return LT_NO_MPI("lt_dist_scatter_shards");
}

#endif
