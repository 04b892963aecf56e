/* CPU layer norm over the last dim of a contiguous x [M, C], forward and backward (the reference kernels).
 * The per-element work is in x's own precision (f32 rows in float, 16 lanes wide; f64 in double), with `omp simd`
 * splitting the sums over vector lanes. The statistics: a first mean mu0 in x's precision, then the sum and the sum
 * of squares of the deviations from mu0 in double, where those deviations are exact; their mean dm corrects mu0's
 * rounding (x - mean is computed as (x - mu0) - dm), so a large mean cannot cancel the variance away, and rstd is
 * correctly rounded. Rows run in parallel. The backward's gw and gb (sums over rows, in double) are summed while the
 * rows are in L1: each chunk of CHUNK_ROWS rows (a fixed cut, whatever the thread count) writes its partial sums to
 * scratch, and a second, short pass adds the chunks' partials in chunk order. No atomics, and the same bits on any
 * number of threads. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/fastmath.h"

#include <math.h>

/* Rows per chunk of the backward's column sums: the partials (2 C doubles per chunk) are an eighth of the bytes of
 * an f32 x, and the rows of a chunk are few enough to split M over the threads evenly. */
#define CHUNK_ROWS 32
/* Elements below which a call runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 32768

/* ln_row: y = (x - mean) * rstd * w + b for one row, and that row's mean and rstd. With a residual r (else NULL),
 *   s = x + r is written first, rounded to T as lt_add would, and s is normalised (it is still in L1 when read back).
 * ln_row_bwd: gx for one row from the saved statistics. With xh = (x - mean) * rstd and g = gy * w,
 *   gx = rstd * (g - mean(g) - xh * mean(g * xh)).
 * ln_chunk_bwd: gx for `rows` rows, and (aw, ab non-NULL) their partial sums aw = sum of gy * xh and ab = sum of
 *   gy over those rows, per column, in double (the reference for the GPU's column sums). */

#define DEFINE_LAYER_NORM(T, A, SFX)                                                                                   \
    LT_CLONES static void ln_row_##SFX(const T *x, const T *res, const T *w, const T *b, double eps, int64_t C,        \
                                       T *sum, T *y, T *mean, T *rstd) {                                               \
        if (res) {                                                                                                     \
            _Pragma("omp simd") for (int64_t c = 0; c < C; c++) sum[c] = x[c] + res[c];                                \
            x = sum;                                                                                                   \
        }                                                                                                              \
        A s = 0;                                                                                                       \
        _Pragma("omp simd reduction(+ : s)") for (int64_t c = 0; c < C; c++) s += x[c];                                \
        A mu0 = s / (A)C;                                                                                              \
        /* the deviations from mu0 are exact in double, and so are their sums to double precision: rstd comes out      \
         * correctly rounded (the CUDA kernels are checked against it, and the weight gradient moves by a few 1e-6     \
         * with one ulp of it) */                                                                                      \
        double sd = 0, v = 0;                                                                                          \
        _Pragma("omp simd reduction(+ : sd, v)") for (int64_t c = 0; c < C; c++) {                                     \
            double d = (double)x[c] - (double)mu0;                                                                     \
            sd += d;                                                                                                   \
            v += d * d;                                                                                                \
        }                                                                                                              \
        /* mu0's error (its sum's rounding) is corrected by the mean deviation dm from it: x - mean is computed as     \
         * (x - mu0) - dm, whose first difference is exact for x near mu0 */                                           \
        double dm = sd / (double)C;                                                                                    \
        double var = v / (double)C - dm * dm;                                                                          \
        if (var < 0.0) var = 0.0; /* (rounding; a NaN stays) */                                                        \
        A r = (A)(1.0 / sqrt(var + eps));                                                                              \
        A dmA = (A)dm;                                                                                                 \
        if (w && b) /* the usual case, as its own loop so that it vectorises */                                        \
            _Pragma("omp simd") for (int64_t c = 0; c < C; c++) y[c] = (T)((((A)x[c] - mu0) - dmA) * r * w[c] + b[c]); \
        else                                                                                                           \
            for (int64_t c = 0; c < C; c++) {                                                                          \
                A h = (((A)x[c] - mu0) - dmA) * r;                                                                     \
                if (w) h *= w[c];                                                                                      \
                if (b) h += b[c];                                                                                      \
                y[c] = (T)h;                                                                                           \
            }                                                                                                          \
        *mean = (T)((double)mu0 + dm);                                                                                 \
        *rstd = (T)r;                                                                                                  \
    }                                                                                                                  \
    LT_CLONES static void ln_row_bwd_##SFX(const T *x, const T *w, A mu, A r, const T *gy, int64_t C, T *gx) {         \
        A sg = 0, sgx = 0;                                                                                             \
        _Pragma("omp simd reduction(+ : sg, sgx)") for (int64_t c = 0; c < C; c++) {                                   \
            A g = w ? (A)gy[c] * w[c] : (A)gy[c];                                                                      \
            sg += g;                                                                                                   \
            sgx += g * (((A)x[c] - mu) * r);                                                                           \
        }                                                                                                              \
        sg /= (A)C;                                                                                                    \
        sgx /= (A)C;                                                                                                   \
        _Pragma("omp simd") for (int64_t c = 0; c < C; c++) {                                                          \
            A g = w ? (A)gy[c] * w[c] : (A)gy[c];                                                                      \
            gx[c] = (T)(r * (g - sg - ((A)x[c] - mu) * r * sgx));                                                      \
        }                                                                                                              \
    }                                                                                                                  \
    LT_CLONES static void ln_chunk_bwd_##SFX(const T *x, const T *w, const T *mean, const T *rstd, const T *gy,        \
                                             int64_t rows, int64_t C, T *gx, double *aw, double *ab) {                 \
        if (aw)                                                                                                        \
            for (int64_t c = 0; c < C; c++) aw[c] = ab[c] = 0;                                                         \
        for (int64_t m = 0; m < rows; m++) {                                                                           \
            const T *xr = x + m * C, *gr = gy + m * C;                                                                 \
            ln_row_bwd_##SFX(xr, w, (A)mean[m], (A)rstd[m], gr, C, gx + m * C);                                        \
            if (!aw) continue;                                                                                         \
            double mu = mean[m], r = rstd[m];                                                                          \
            _Pragma("omp simd") for (int64_t c = 0; c < C; c++) {                                                      \
                aw[c] += (double)gr[c] * (((double)xr[c] - mu) * r);                                                   \
                ab[c] += gr[c];                                                                                        \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_LAYER_NORM(float, float, f32)
DEFINE_LAYER_NORM(double, double, f64)

/* Every non-NULL tensor must be contiguous and of x's dtype, which is f32 or f64. */
static lt_status check_args(const char *who, const lt_tensor *x, const lt_tensor *const *ts, int n) {
    if (x->dtype != LT_F32 && x->dtype != LT_F64)
        return lt__err(LT_ERR_DTYPE, "%s: x is %s, expected f32 or f64", who, lt_dtype_name(x->dtype));
    if (!lt__is_contiguous(x) || x->ndim < 1) return lt__err(LT_ERR_INTERNAL, "%s: x must be contiguous", who);
    for (int k = 0; k < n; k++) {
        if (!ts[k]) continue;
        if (ts[k]->dtype != x->dtype)
            return lt__err(LT_ERR_DTYPE, "%s: tensors mix %s and %s", who, lt_dtype_name(x->dtype),
                           lt_dtype_name(ts[k]->dtype));
        if (!lt__is_contiguous(ts[k])) return lt__err(LT_ERR_INTERNAL, "%s: expected contiguous tensors", who);
    }
    return LT_OK;
}

static const void *data_or_null(const lt_tensor *t) { return t ? lt__data(t) : NULL; }

lt_status lt__cpu_layer_norm(const lt_tensor *x, const lt_tensor *r, const lt_tensor *w, const lt_tensor *b, double eps,
                             lt_tensor *s, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd) {
    LT_TRY(check_args("cpu layer_norm", x, (const lt_tensor *[]){r, w, b, s, y, mean, rstd}, 7));
    if (!r != !s) return lt__err(LT_ERR_INTERNAL, "cpu layer_norm: r and s must both be given or both be NULL");
    int64_t C = x->shape[x->ndim - 1], M = lt__numel(x->shape, x->ndim - 1);
    bool f64 = x->dtype == LT_F64;
    const void *xp = lt__data(x), *wp = data_or_null(w), *bp = data_or_null(b);
    void *yp = lt__data(y), *mp = lt__data(mean), *rp = lt__data(rstd);
    const char *resp = data_or_null(r);
    char *sp = (char *)data_or_null(s);
    size_t row = (size_t)C * lt_dtype_size(x->dtype);
#pragma omp parallel for schedule(static) if (M * C >= PAR_MIN_WORK)
    for (int64_t m = 0; m < M; m++) {
        const void *rr = resp ? resp + (size_t)m * row : NULL;
        void *sr = sp ? sp + (size_t)m * row : NULL;
        if (f64)
            ln_row_f64((const double *)xp + m * C, rr, wp, bp, eps, C, sr, (double *)yp + m * C, (double *)mp + m,
                       (double *)rp + m);
        else
            ln_row_f32((const float *)xp + m * C, rr, wp, bp, eps, C, sr, (float *)yp + m * C, (float *)mp + m,
                       (float *)rp + m);
    }
    return LT_OK;
}

lt_status lt__cpu_layer_norm_backward(const lt_tensor *x, const lt_tensor *w, const lt_tensor *mean,
                                      const lt_tensor *rstd, const lt_tensor *gy, lt_tensor *gx, lt_tensor *gw,
                                      lt_tensor *gb) {
    static const char *who = "cpu layer_norm_backward";
    LT_TRY(check_args(who, x, (const lt_tensor *[]){w, mean, rstd, gy, gx, gw, gb}, 7));
    int64_t C = x->shape[x->ndim - 1], M = lt__numel(x->shape, x->ndim - 1);
    int64_t nch = (M + CHUNK_ROWS - 1) / CHUNK_ROWS;
    bool f64 = x->dtype == LT_F64, sums = gw || gb;
    size_t es = lt_dtype_size(x->dtype);
    const char *xp = lt__data(x), *mp = lt__data(mean), *rp = lt__data(rstd), *gyp = lt__data(gy);
    const void *wp = data_or_null(w);
    char *gxp = lt__data(gx);
    double *part = NULL; /* [nch][2][C]: each chunk's sums of gy * xh, then of gy */
    if (sums && nch > 0 && C > 0) {
        lt__allocator *a = lt__cpu_allocator(0);
        if (!a) return lt__err(LT_ERR_OOM, "%s: no CPU allocator", who);
        LT_TRY(lt__alloc(a, (size_t)nch * 2 * (size_t)C * sizeof(double), who, (void **)&part));
    }
#pragma omp parallel for schedule(static) if (M * C >= PAR_MIN_WORK)
    for (int64_t k = 0; k < nch; k++) {
        int64_t m0 = k * CHUNK_ROWS, rows = M - m0 < CHUNK_ROWS ? M - m0 : CHUNK_ROWS;
        size_t o = (size_t)(m0 * C) * es;
        double *aw = part ? part + (size_t)k * 2 * C : NULL, *ab = part ? aw + C : NULL;
        if (f64)
            ln_chunk_bwd_f64((const double *)(xp + o), wp, (const double *)(mp + m0 * es),
                             (const double *)(rp + m0 * es), (const double *)(gyp + o), rows, C, (double *)(gxp + o),
                             aw, ab);
        else
            ln_chunk_bwd_f32((const float *)(xp + o), wp, (const float *)(mp + m0 * es), (const float *)(rp + m0 * es),
                             (const float *)(gyp + o), rows, C, (float *)(gxp + o), aw, ab);
    }
    if (!sums) return LT_OK;
    void *gwp = (void *)data_or_null(gw), *gbp = (void *)data_or_null(gb);
    /* the chunks' partials, added in chunk order for each column */
#pragma omp parallel for schedule(static) if (nch * C >= PAR_MIN_WORK)
    for (int64_t c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int64_t k = 0; k < nch; k++) {
            sw += part[(size_t)k * 2 * C + c];
            sb += part[(size_t)k * 2 * C + C + c];
        }
        if (f64) {
            if (gwp) ((double *)gwp)[c] = sw;
            if (gbp) ((double *)gbp)[c] = sb;
        } else {
            if (gwp) ((float *)gwp)[c] = (float)sw;
            if (gbp) ((float *)gbp)[c] = (float)sb;
        }
    }
    if (part) lt__free(lt__cpu_allocator(0), part);
    return LT_OK;
}
