/* The batch loader: per-epoch shuffled windows of T+1 tokens, split between data-parallel ranks, with a cursor of
 * three integers. Every rank computes the same permutation from (seed, epoch) alone, so ranks never talk. */
#include "core/error.h"
#include "core/philox.h"
#include "libtrain/data.h"
#include "tensor/tensor_impl.h"

#include <string.h>

/* From dataset.c: tokens [pos, pos + n) of ds as int32 (the caller keeps the range inside ds). */
#include "data/data_impl.h"

struct lt_loader {
    lt_dataset *ds; /* borrowed */
    int64_t B, T;
    uint64_t seed;
    int rank, world;
    int64_t n_windows;         /* window k holds tokens [k*T, k*T + T] */
    int64_t batches_per_epoch; /* n_windows / (world * B) */
    uint64_t epoch, batch;     /* the cursor: batch < batches_per_epoch always */
    int64_t *perm;             /* n_windows entries: the permutation of perm_epoch when perm_valid */
    uint64_t perm_epoch;
    bool perm_valid;
    int32_t *xbuf, *ybuf; /* host staging for one batch, B*T each */
};

/* Words key:0, key:1, ... of Philox, as lt__philox_word(key, w) gives them, computing each 4-word block once. */
typedef struct word_stream {
    uint64_t key, w;
    lt__u32x4 block;
} word_stream;

static uint32_t next_word(word_stream *s) {
    if ((s->w & 3) == 0) s->block = lt__philox_block(s->key, s->w >> 2);
    return s->block.v[s->w++ & 3];
}

/* A uniform integer in [0, bound), bound >= 1, without modulo bias: words below 2^k mod bound are rejected so that
 * the accepted range is a whole number of copies of [0, bound). One word while bound fits 32 bits, else two. */
static uint64_t draw_below(word_stream *s, uint64_t bound) {
    if (bound <= UINT32_MAX) {
        uint32_t b = (uint32_t)bound, threshold = (uint32_t)(-b) % b;
        for (;;) {
            uint32_t x = next_word(s);
            if (x >= threshold) return x % b;
        }
    }
    uint64_t threshold = (-bound) % bound;
    for (;;) {
        uint64_t hi = next_word(s);
        uint64_t x = hi << 32 | next_word(s);
        if (x >= threshold) return x % bound;
    }
}

/* Fisher-Yates over the windows, driven by a stream keyed per epoch: words 2*epoch and 2*epoch+1 of the seed's own
 * stream form the epoch's key, so any epoch's order is computed directly, without replaying earlier ones. */
static void shuffle(lt_loader *L) {
    int64_t *p = L->perm, n = L->n_windows;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    uint64_t e = L->epoch;
    word_stream s = {.key = (uint64_t)lt__philox_word(L->seed, 2 * e) | (uint64_t)lt__philox_word(L->seed, 2 * e + 1)
                                                                            << 32};
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)draw_below(&s, (uint64_t)i + 1);
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    L->perm_epoch = e;
    L->perm_valid = true;
}

LT_API lt_status lt_loader_create(lt_dataset *ds, int64_t B, int64_t T, uint64_t seed, int rank, int world,
                                  lt_loader **out) {
    static const char *fn = "lt_loader_create";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, ds);
    if (B < 1 || T < 1)
        return lt__err(LT_ERR_ARG, "%s: B %lld and T %lld must be >= 1", fn, (long long)B, (long long)T);
    if (world < 1) return lt__err(LT_ERR_ARG, "%s: world %d must be >= 1", fn, world);
    if (rank < 0 || rank >= world) return lt__err(LT_ERR_ARG, "%s: rank %d outside [0, %d)", fn, rank, world);
    int64_t tokens = lt_dataset_tokens(ds);
    int64_t n_windows = tokens >= 1 ? (tokens - 1) / T : 0;
    if (n_windows / world < B) /* n_windows < world * B, without overflowing the product */
        return lt__err(LT_ERR_SHAPE,
                       "%s: %lld tokens give %lld windows of T+1 = %lld tokens, fewer than world * B = %d * %lld", fn,
                       (long long)tokens, (long long)n_windows, (long long)T + 1, world, (long long)B);
    lt_loader *L = calloc(1, sizeof *L);
    if (!L) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    L->ds = ds;
    L->B = B;
    L->T = T;
    L->seed = seed;
    L->rank = rank;
    L->world = world;
    L->n_windows = n_windows;
    L->batches_per_epoch = n_windows / ((int64_t)world * B);
    /* B*T <= n_windows*T < tokens, so these sizes cannot overflow */
    L->perm = malloc((size_t)n_windows * sizeof *L->perm);
    L->xbuf = malloc((size_t)(B * T) * sizeof *L->xbuf);
    L->ybuf = malloc((size_t)(B * T) * sizeof *L->ybuf);
    if (!L->perm || !L->xbuf || !L->ybuf) {
        lt_loader_free(L);
        return lt__err(LT_ERR_OOM, "%s: out of memory for %lld windows", fn, (long long)n_windows);
    }
    *out = L;
    return LT_OK;
}

LT_API void lt_loader_free(lt_loader *loader) {
    if (!loader) return;
    free(loader->perm);
    free(loader->xbuf);
    free(loader->ybuf);
    free(loader);
}

/* Re-sets a failure's message (which names an inner function) so that it names fn first. */
static lt_status rename_error(const char *fn, lt_status st) {
    char inner[512];
    snprintf(inner, sizeof inner, "%s", lt_last_error());
    return lt__err(st, "%s: %s", fn, inner);
}

LT_API lt_status lt_loader_next(lt_loader *loader, lt_device device, lt_tensor **x, lt_tensor **y) {
    static const char *fn = "lt_loader_next";
    LT_CHECK_NOT_NULL(fn, x);
    *x = NULL;
    LT_CHECK_NOT_NULL(fn, y);
    *y = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, loader);
    lt_loader *L = loader;
    if (!L->perm_valid || L->perm_epoch != L->epoch) shuffle(L);
    int64_t B = L->B, T = L->T;
    const int64_t *w = L->perm + (int64_t)L->batch * L->world * B + (int64_t)L->rank * B;
    for (int64_t b = 0; b < B; b++) {
        int64_t pos = w[b] * T;
        lt__dataset_read_i32(L->ds, pos, T, L->xbuf + b * T);
        lt__dataset_read_i32(L->ds, pos + 1, T, L->ybuf + b * T);
    }
    int64_t shape[2] = {B, T};
    lt_tensor *tx, *ty;
    lt_status st = lt_tensor_from_host(L->xbuf, shape, 2, LT_I32, device, &tx);
    if (st != LT_OK) return rename_error(fn, st);
    st = lt_tensor_from_host(L->ybuf, shape, 2, LT_I32, device, &ty);
    if (st != LT_OK) {
        lt__drop(tx);
        return rename_error(fn, st);
    }
    if (++L->batch == (uint64_t)L->batches_per_epoch) {
        L->batch = 0;
        L->epoch++;
    }
    *x = tx;
    *y = ty;
    return LT_OK;
}

LT_API lt_status lt_loader_get_state(const lt_loader *loader, lt_loader_state *state) {
    static const char *fn = "lt_loader_get_state";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, loader);
    LT_CHECK_NOT_NULL(fn, state);
    state->seed = loader->seed;
    state->epoch = loader->epoch;
    state->batch = loader->batch;
    return LT_OK;
}

LT_API lt_status lt_loader_set_state(lt_loader *loader, const lt_loader_state *state) {
    static const char *fn = "lt_loader_set_state";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, loader);
    LT_CHECK_NOT_NULL(fn, state);
    if (state->seed != loader->seed)
        return lt__err(LT_ERR_ARG, "%s: state's seed %llu differs from the loader's %llu", fn,
                       (unsigned long long)state->seed, (unsigned long long)loader->seed);
    /* a cursor past the epoch's end comes from a loader with another B, T, world or dataset */
    if (state->batch >= (uint64_t)loader->batches_per_epoch)
        return lt__err(LT_ERR_RANGE, "%s: state's batch %llu is not below this loader's %lld batches per epoch", fn,
                       (unsigned long long)state->batch, (long long)loader->batches_per_epoch);
    loader->epoch = state->epoch;
    loader->batch = state->batch;
    return LT_OK;
}

LT_API int64_t lt_loader_batches_per_epoch(const lt_loader *loader) { return loader ? loader->batches_per_epoch : 0; }
