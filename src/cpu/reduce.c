/* CPU reductions: sum and max over any set of dims of a strided tensor, and the max's backward.
 * Every layout is first sorted by stride and merged, so it runs as one of two cache-friendly loops; the order of
 * accumulation depends only on the shapes, never on the thread count, so results repeat bit for bit. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/fastmath.h"

#include <math.h>

/* Elements below which a reduction runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 32768
/* Outer mode: columns of the innermost kept dim that one work item accumulates (a 512-byte double buffer). */
#define COL_BLOCK 64
/* Outer mode: reduced rows folded into the column buffer per pass (see loops.cols). */
#define ROWS_PER_PASS 4
/* Inner mode with few outputs: a long reduction is split into chunks of at least this many elements, at most
 * MAX_CHUNKS per output, whose partial results are combined in chunk order. */
#define CHUNK_MIN 16384
#define MAX_CHUNKS 64
#define FEW_OUTPUTS 64

/* ---- Type-specific loops. Values are folded in double: sums of f32 keep their accuracy, and a max is exact. ---- */

/* NaN propagates through max, as in PyTorch: once the accumulator is NaN it stays NaN. */
static inline double fold_max(double acc, double v) { return (v > acc || v != v) ? v : acc; }

typedef struct loops {
    /* Folds n elements at stride s (in elements) into acc and returns it. */
    double (*run)(const char *x, int64_t n, int64_t s, double acc);
    /* acc[j] = fold(acc[j], x[r * rs + j * s]) for j < n and rows r < k (k <= ROWS_PER_PASS): rows of an
     * outer-mode reduction, several per pass so that acc is loaded and stored once for k rows. */
    void (*cols)(double *acc, const char *x, int64_t n, int64_t s, int64_t rs, int k);
    /* y[j * s] = v[j] converted to the element type. */
    void (*store)(char *y, int64_t s, const double *v, int64_t n);
} loops;

/* Unit-stride runs keep 8 interleaved accumulators: the compiler vectorises them (a serial double sum cannot be
 * reordered), and a sum's rounding error grows like that of 8 shorter sums. Outer-mode sums add 4 rows pairwise
 * before touching acc; two f32 values add exactly in double, so this costs no accuracy. */
#define DEFINE_LOOPS(T, SFX)                                                                                           \
    static double run_sum_##SFX(const char *p, int64_t n, int64_t s, double acc) {                                     \
        const T *x = (const T *)p;                                                                                     \
        if (s != 1) {                                                                                                  \
            for (int64_t j = 0; j < n; j++) acc += x[j * s];                                                           \
            return acc;                                                                                                \
        }                                                                                                              \
        double a[8] = {0};                                                                                             \
        int64_t j = 0;                                                                                                 \
        for (; j + 8 <= n; j += 8)                                                                                     \
            for (int k = 0; k < 8; k++) a[k] += x[j + k];                                                              \
        for (; j < n; j++) a[0] += x[j];                                                                               \
        return acc + (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));                              \
    }                                                                                                                  \
    static double run_max_##SFX(const char *p, int64_t n, int64_t s, double acc) {                                     \
        const T *x = (const T *)p;                                                                                     \
        if (s != 1) {                                                                                                  \
            for (int64_t j = 0; j < n; j++) acc = fold_max(acc, x[j * s]);                                             \
            return acc;                                                                                                \
        }                                                                                                              \
        double a[8] = {acc, acc, acc, acc, acc, acc, acc, acc};                                                        \
        int64_t j = 0;                                                                                                 \
        for (; j + 8 <= n; j += 8)                                                                                     \
            for (int k = 0; k < 8; k++) a[k] = fold_max(a[k], x[j + k]);                                               \
        for (; j < n; j++) a[0] = fold_max(a[0], x[j]);                                                                \
        for (int k = 1; k < 8; k++) a[0] = fold_max(a[0], a[k]);                                                       \
        return a[0];                                                                                                   \
    }                                                                                                                  \
    LT_CLONES static void cols_sum_##SFX(double *acc, const char *p, int64_t n, int64_t s, int64_t rs, int k) {        \
        const T *x = (const T *)p;                                                                                     \
        if (k == 4 && s == 1) { /* a bias gradient's rows: forced to vectorise (-O2 alone leaves it scalar) */         \
            const T *x1 = x + rs, *x2 = x + 2 * rs, *x3 = x + 3 * rs;                                                  \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) acc[j] +=                                              \
                ((double)x[j] + x1[j]) + ((double)x2[j] + x3[j]);                                                      \
            return;                                                                                                    \
        }                                                                                                              \
        for (int r = 0; r < k; r++)                                                                                    \
            for (int64_t j = 0; j < n; j++) acc[j] += x[r * rs + j * s];                                               \
    }                                                                                                                  \
    static void cols_max_##SFX(double *acc, const char *p, int64_t n, int64_t s, int64_t rs, int k) {                  \
        const T *x = (const T *)p;                                                                                     \
        for (int r = 0; r < k; r++)                                                                                    \
            for (int64_t j = 0; j < n; j++) acc[j] = fold_max(acc[j], x[r * rs + j * s]);                              \
    }                                                                                                                  \
    static void store_##SFX(char *p, int64_t s, const double *v, int64_t n) {                                          \
        T *y = (T *)p;                                                                                                 \
        for (int64_t j = 0; j < n; j++) y[j * s] = (T)v[j];                                                            \
    }

DEFINE_LOOPS(float, f32)
DEFINE_LOOPS(double, f64)

/* Indexed by [x is f64][op]. */
static const loops LOOPS[2][LT_ROP_COUNT] = {
    {[LT_ROP_SUM] = {run_sum_f32, cols_sum_f32, store_f32}, [LT_ROP_MAX] = {run_max_f32, cols_max_f32, store_f32}},
    {[LT_ROP_SUM] = {run_sum_f64, cols_sum_f64, store_f64}, [LT_ROP_MAX] = {run_max_f64, cols_max_f64, store_f64}},
};

static double identity_of(lt__reduce_op op) { return op == LT_ROP_SUM ? 0.0 : -INFINITY; }

/* Combines two partial results of the same reduction. */
static double combine(lt__reduce_op op, double a, double b) { return op == LT_ROP_SUM ? a + b : fold_max(a, b); }

/* ---- Geometry ---- */

/* A list of dims with their sizes and strides in x and y (y stride 0 for a reduced dim), outermost first. */
typedef struct dimset {
    int n;
    int64_t size[LT_MAX_DIMS];
    int64_t xs[LT_MAX_DIMS];
    int64_t ys[LT_MAX_DIMS];
} dimset;

static int64_t dimset_count(const dimset *d) {
    int64_t c = 1;
    for (int k = 0; k < d->n; k++) c *= d->size[k];
    return c;
}

static void dimset_push(dimset *d, int64_t size, int64_t xs, int64_t ys) {
    d->size[d->n] = size;
    d->xs[d->n] = xs;
    d->ys[d->n] = ys;
    d->n++;
}

/* Offsets in x and y of the element with row-major index lin over the dims of d. */
static void dimset_offsets(const dimset *d, int64_t lin, int64_t *xo, int64_t *yo) {
    int64_t a = 0, b = 0;
    for (int k = d->n - 1; k >= 0; k--) {
        int64_t i = lin % d->size[k];
        lin /= d->size[k];
        a += i * d->xs[k];
        b += i * d->ys[k];
    }
    *xo = a;
    *yo = b;
}

static inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

/* Splits x's dims into kept and reduced sets. Size-1 dims are dropped (they do not change any offset); the rest
 * are sorted by x stride, largest first, so the innermost loop walks the smallest stride; then neighbours of the
 * same kind that are contiguous in both x and y are merged. Returns whether the innermost dim is a reduced one. */
static bool make_plan(const lt_tensor *x, uint32_t mask, const lt_tensor *y, dimset *kept, dimset *red) {
    dimset all = {0};
    bool is_red[LT_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        if (x->shape[k] == 1) continue;
        bool r = (mask >> k) & 1u;
        /* Insertion sort, stable: equal strides (stride-0 broadcasts) keep their logical order. */
        int at = all.n;
        while (at > 0 && abs64(all.xs[at - 1]) < abs64(x->strides[k])) at--;
        for (int j = all.n; j > at; j--) {
            all.size[j] = all.size[j - 1];
            all.xs[j] = all.xs[j - 1];
            all.ys[j] = all.ys[j - 1];
            is_red[j] = is_red[j - 1];
        }
        all.size[at] = x->shape[k];
        all.xs[at] = x->strides[k];
        all.ys[at] = r ? 0 : y->strides[k];
        is_red[at] = r;
        all.n++;
    }
    if (all.n == 0) { /* a single element: reduce it over a dummy dim so that inner mode has a run */
        all.n = 1;
        all.size[0] = 1;
        all.xs[0] = 1;
        all.ys[0] = 0;
        is_red[0] = true;
    }
    kept->n = red->n = 0;
    for (int k = 0; k < all.n; k++) {
        dimset *d = is_red[k] ? red : kept;
        int last = d->n - 1;
        bool adjacent = k > 0 && is_red[k - 1] == is_red[k];
        if (adjacent && d->xs[last] == all.xs[k] * all.size[k] && d->ys[last] == all.ys[k] * all.size[k]) {
            d->size[last] *= all.size[k];
            d->xs[last] = all.xs[k];
            d->ys[last] = all.ys[k];
        } else {
            dimset_push(d, all.size[k], all.xs[k], all.ys[k]);
        }
    }
    return is_red[all.n - 1];
}

/* ---- Inner mode: the smallest-stride dim is reduced, so each output folds strided runs of x ---- */

/* Folds the reduced elements with row-major indices [lo, hi) over r, starting at x, into acc. */
static double fold_range(const loops *L, const dimset *r, const char *x, size_t es, int64_t lo, int64_t hi,
                         double acc) {
    int m = r->n;
    int64_t idx[LT_MAX_DIMS], off = 0, t = lo;
    for (int k = m - 1; k >= 0; k--) {
        idx[k] = t % r->size[k];
        t /= r->size[k];
        off += idx[k] * r->xs[k];
    }
    int64_t run = r->size[m - 1], rs = r->xs[m - 1];
    while (lo < hi) {
        int64_t len = run - idx[m - 1] < hi - lo ? run - idx[m - 1] : hi - lo;
        acc = L->run(x + off * (int64_t)es, len, rs, acc);
        lo += len;
        off += len * rs;
        idx[m - 1] += len;
        for (int k = m - 1; k > 0 && idx[k] == r->size[k]; k--) {
            off += r->xs[k - 1] - r->size[k] * r->xs[k];
            idx[k] = 0;
            idx[k - 1]++;
        }
    }
    return acc;
}

static void reduce_inner(lt__reduce_op op, const loops *L, const dimset *kept, const dimset *red, const char *x,
                         char *y, size_t es) {
    int64_t nout = dimset_count(kept), nred = dimset_count(red);
    double init = identity_of(op);
    if (nout >= FEW_OUTPUTS || nred < 2 * CHUNK_MIN) {
#pragma omp parallel for schedule(static) if (nout * nred >= PAR_MIN_WORK)
        for (int64_t o = 0; o < nout; o++) {
            int64_t xo, yo;
            dimset_offsets(kept, o, &xo, &yo);
            double v = fold_range(L, red, x + xo * (int64_t)es, es, 0, nred, init);
            L->store(y + yo * (int64_t)es, 1, &v, 1);
        }
        return;
    }
    /* Few outputs, each a long reduction (a full sum, a row sum of a wide matrix): split each into chunks whose
     * size depends only on the shape, fold the chunks in parallel, then combine them in order. */
    int64_t chunk = (nred + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (chunk < CHUNK_MIN) chunk = CHUNK_MIN;
    int64_t nch = (nred + chunk - 1) / chunk;
    double part[FEW_OUTPUTS * MAX_CHUNKS];
#pragma omp parallel for schedule(static)
    for (int64_t w = 0; w < nout * nch; w++) {
        int64_t o = w / nch, c = w % nch, xo, yo;
        dimset_offsets(kept, o, &xo, &yo);
        int64_t hi = (c + 1) * chunk < nred ? (c + 1) * chunk : nred;
        part[w] = fold_range(L, red, x + xo * (int64_t)es, es, c * chunk, hi, init);
    }
    for (int64_t o = 0; o < nout; o++) {
        int64_t xo, yo;
        dimset_offsets(kept, o, &xo, &yo);
        double v = part[o * nch];
        for (int64_t c = 1; c < nch; c++) v = combine(op, v, part[o * nch + c]);
        L->store(y + yo * (int64_t)es, 1, &v, 1);
    }
}

/* ---- Outer mode: the smallest-stride dim is kept, so each reduced element adds a row into a column buffer ---- */

static void reduce_outer(lt__reduce_op op, const loops *L, const dimset *kept, const dimset *red, const char *x,
                         char *y, size_t es) {
    /* The innermost kept dim becomes the columns; the other kept dims index the work items. */
    dimset outer = *kept;
    outer.n--;
    int64_t ncol = kept->size[outer.n], cxs = kept->xs[outer.n], cys = kept->ys[outer.n];
    int64_t nout = dimset_count(&outer), nred = dimset_count(red);
    int64_t nblk = (ncol + COL_BLOCK - 1) / COL_BLOCK;
    int m = red->n;
    double init = identity_of(op);
#pragma omp parallel for schedule(static) if (nout * ncol * nred >= PAR_MIN_WORK)
    for (int64_t w = 0; w < nout * nblk; w++) {
        int64_t o = w / nblk, c0 = (w % nblk) * COL_BLOCK, xo, yo;
        int64_t cols = ncol - c0 < COL_BLOCK ? ncol - c0 : COL_BLOCK;
        dimset_offsets(&outer, o, &xo, &yo);
        const char *xb = x + (xo + c0 * cxs) * (int64_t)es;
        double acc[COL_BLOCK];
        for (int64_t j = 0; j < cols; j++) acc[j] = init;
        /* walk the reduced elements in row-major order, taking up to ROWS_PER_PASS along the innermost one */
        int64_t idx[LT_MAX_DIMS] = {0}, off = 0, rn = m ? red->size[m - 1] : 1, rs = m ? red->xs[m - 1] : 0;
        for (int64_t it = 0; it < nred;) {
            int k = rn - (m ? idx[m - 1] : 0) < ROWS_PER_PASS ? (int)(rn - (m ? idx[m - 1] : 0)) : ROWS_PER_PASS;
            L->cols(acc, xb + off * (int64_t)es, cols, cxs, rs, k);
            it += k;
            if (m == 0) break;
            off += k * rs;
            idx[m - 1] += k;
            for (int d = m - 1; d > 0 && idx[d] == red->size[d]; d--) {
                off += red->xs[d - 1] - red->size[d] * red->xs[d];
                idx[d] = 0;
                idx[d - 1]++;
            }
        }
        L->store(y + (yo + c0 * cys) * (int64_t)es, cys, acc, cols);
    }
}

lt_status lt__cpu_reduce(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y) {
    if ((x->dtype != LT_F32 && x->dtype != LT_F64) || y->dtype != x->dtype)
        return lt__err(LT_ERR_DTYPE, "cpu reduce: x is %s and y is %s, expected both f32 or both f64",
                       lt_dtype_name(x->dtype), lt_dtype_name(y->dtype));
    if ((unsigned)op >= LT_ROP_COUNT) return lt__err(LT_ERR_INTERNAL, "cpu reduce: unknown op %d", (int)op);
    if (lt__numel(y->shape, y->ndim) == 0) return LT_OK;
    if (lt__numel(x->shape, x->ndim) == 0) return lt__cpu_fill(y, identity_of(op));
    const loops *L = &LOOPS[x->dtype == LT_F64][op];
    size_t es = lt_dtype_size(x->dtype);
    dimset kept, red;
    bool inner = make_plan(x, dim_mask, y, &kept, &red);
    if (inner || kept.n == 0)
        reduce_inner(op, L, &kept, &red, lt__data(x), lt__data(y), es);
    else
        reduce_outer(op, L, &kept, &red, lt__data(x), lt__data(y), es);
    return LT_OK;
}

/* ---- Max backward ---- */

static inline double load(const char *base, int64_t i, bool f64) {
    return f64 ? ((const double *)base)[i] : ((const float *)base)[i];
}

/* gx is zeroed, then each output's group of x is scanned in logical row-major order (not memory order, so "first"
 * means what the user sees) for the first element equal to the max, which receives gy. Groups are disjoint, so the
 * parallel loop over outputs writes without conflicts. Not a hot path: softmax and cross-entropy have own kernels. */
lt_status lt__cpu_max_backward(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy, uint32_t dim_mask,
                               lt_tensor *gx) {
    if ((x->dtype != LT_F32 && x->dtype != LT_F64) || y->dtype != x->dtype || gy->dtype != x->dtype ||
        gx->dtype != x->dtype)
        return lt__err(LT_ERR_DTYPE, "cpu max_backward: expected x, y, gy and gx all f32 or all f64");
    LT_TRY(lt__cpu_fill(gx, 0.0));
    if (lt__numel(x->shape, x->ndim) == 0) return LT_OK;
    bool f64 = x->dtype == LT_F64;
    /* kept dims carry strides of x, y, gy and gx; reduced dims those of x and gx. */
    int nk = 0, nr = 0;
    int64_t ksize[LT_MAX_DIMS], kstr[4][LT_MAX_DIMS], rsize[LT_MAX_DIMS], rxs[LT_MAX_DIMS], rgs[LT_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        if ((dim_mask >> k) & 1u) {
            rsize[nr] = x->shape[k];
            rxs[nr] = x->strides[k];
            rgs[nr++] = gx->strides[k];
        } else {
            ksize[nk] = x->shape[k];
            kstr[0][nk] = x->strides[k];
            kstr[1][nk] = y->strides[k];
            kstr[2][nk] = gy->strides[k];
            kstr[3][nk++] = gx->strides[k];
        }
    }
    int64_t nout = lt__numel(ksize, nk), nred = lt__numel(rsize, nr);
    const char *xp = lt__data(x), *yp = lt__data(y), *gyp = lt__data(gy);
    char *gxp = lt__data(gx);
#pragma omp parallel for schedule(static) if (nout * nred >= PAR_MIN_WORK)
    for (int64_t o = 0; o < nout; o++) {
        int64_t off[4] = {0}, lin = o;
        for (int k = nk - 1; k >= 0; k--) {
            int64_t i = lin % ksize[k];
            lin /= ksize[k];
            for (int t = 0; t < 4; t++) off[t] += i * kstr[t][k];
        }
        double target = load(yp, off[1], f64);
        int64_t idx[LT_MAX_DIMS] = {0}, xo = off[0], go = off[3];
        for (int64_t it = 0; it < nred; it++) {
            double v = load(xp, xo, f64);
            if (v == target || (v != v && target != target)) {
                if (f64)
                    ((double *)gxp)[go] = load(gyp, off[2], true);
                else
                    ((float *)gxp)[go] = (float)load(gyp, off[2], false);
                break;
            }
            for (int k = nr - 1; k >= 0; k--) {
                xo += rxs[k];
                go += rgs[k];
                if (++idx[k] < rsize[k]) break;
                xo -= rsize[k] * rxs[k];
                go -= rsize[k] * rgs[k];
                idx[k] = 0;
            }
        }
    }
    return LT_OK;
}
