/* CPU softmax and log-softmax along one dim of a contiguous tensor, and their backward (the reference kernels).
 * The tensor is seen as [outer, n, inner]. The common last-dim case (inner == 1) runs contiguous rows; any other dim
 * runs panels of up to PANEL_COLS adjacent inner columns, so it still reads whole cache lines. */
#include "core/error.h"
#include "cpu/cpu.h"

#include <math.h>

#define PANEL_COLS 32
/* Elements below which a call runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 32768

typedef struct panels {
    int64_t outer, n, inner; /* the dim has n elements, each inner apart */
    int64_t blocks;          /* panels per outer index */
} panels;

static panels panels_of(const lt_tensor *t, int dim) {
    panels p = {1, t->shape[dim], 1, 0};
    for (int k = 0; k < dim; k++) p.outer *= t->shape[k];
    for (int k = dim + 1; k < t->ndim; k++) p.inner *= t->shape[k];
    p.blocks = (p.inner + PANEL_COLS - 1) / PANEL_COLS;
    return p;
}

/* Rows (inner == 1, the last dim): one contiguous row of n at a time, accumulators in registers. The forward
 * subtracts the row max so exp cannot overflow, sums the exponentials in double, then scales (softmax) or
 * subtracts the log of the sum (log_softmax). The backward forms sum(gy * y) (softmax) or sum(gy) (log_softmax)
 * in double, then gx. The `omp simd` reductions let the compiler reorder those sums into vector lanes.
 * Panels (inner > 1): the same arithmetic on `cols` adjacent columns at once, element [j, c] at j * ld + c. */
#define DEFINE_SOFTMAX(T, SFX, EXP)                                                                                    \
    static void row_fwd_##SFX(const T *x, T *y, int64_t n, bool take_log) {                                            \
        T m = -INFINITY;                                                                                               \
        _Pragma("omp simd reduction(max : m)") for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;                \
        double s = 0.0;                                                                                                \
        for (int64_t j = 0; j < n; j++) {                                                                              \
            T e = EXP(x[j] - m);                                                                                       \
            s += e;                                                                                                    \
            if (!take_log) y[j] = e;                                                                                   \
        }                                                                                                              \
        if (take_log) {                                                                                                \
            double ls = log(s);                                                                                        \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) y[j] = (T)((double)(x[j] - m) - ls);                   \
        } else {                                                                                                       \
            double inv = 1.0 / s;                                                                                      \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) y[j] = (T)((double)y[j] * inv);                        \
        }                                                                                                              \
    }                                                                                                                  \
    static void row_bwd_##SFX(const T *y, const T *gy, T *gx, int64_t n, bool take_log) {                              \
        double s = 0.0;                                                                                                \
        if (take_log) {                                                                                                \
            _Pragma("omp simd reduction(+ : s)") for (int64_t j = 0; j < n; j++) s += gy[j];                           \
            for (int64_t j = 0; j < n; j++) gx[j] = (T)(gy[j] - EXP(y[j]) * s);                                        \
        } else {                                                                                                       \
            _Pragma("omp simd reduction(+ : s)") for (int64_t j = 0; j < n; j++) s += (double)gy[j] * y[j];            \
            _Pragma("omp simd") for (int64_t j = 0; j < n; j++) gx[j] = (T)(y[j] * (gy[j] - s));                       \
        }                                                                                                              \
    }                                                                                                                  \
    static void panel_fwd_##SFX(const T *x, T *y, int64_t n, int64_t ld, int64_t cols, bool take_log) {                \
        T m[PANEL_COLS];                                                                                               \
        double s[PANEL_COLS];                                                                                          \
        for (int64_t c = 0; c < cols; c++) {                                                                           \
            m[c] = -INFINITY;                                                                                          \
            s[c] = 0.0;                                                                                                \
        }                                                                                                              \
        for (int64_t j = 0; j < n; j++)                                                                                \
            for (int64_t c = 0; c < cols; c++)                                                                         \
                if (x[j * ld + c] > m[c]) m[c] = x[j * ld + c];                                                        \
        for (int64_t j = 0; j < n; j++)                                                                                \
            for (int64_t c = 0; c < cols; c++) {                                                                       \
                T e = EXP(x[j * ld + c] - m[c]);                                                                       \
                s[c] += e;                                                                                             \
                if (!take_log) y[j * ld + c] = e;                                                                      \
            }                                                                                                          \
        for (int64_t c = 0; c < cols; c++) s[c] = take_log ? log(s[c]) : 1.0 / s[c];                                   \
        for (int64_t j = 0; j < n; j++)                                                                                \
            for (int64_t c = 0; c < cols; c++) {                                                                       \
                int64_t i = j * ld + c;                                                                                \
                y[i] = take_log ? (T)((double)(x[i] - m[c]) - s[c]) : (T)((double)y[i] * s[c]);                        \
            }                                                                                                          \
    }                                                                                                                  \
    static void panel_bwd_##SFX(const T *y, const T *gy, T *gx, int64_t n, int64_t ld, int64_t cols, bool take_log) {  \
        double s[PANEL_COLS];                                                                                          \
        for (int64_t c = 0; c < cols; c++) s[c] = 0.0;                                                                 \
        for (int64_t j = 0; j < n; j++)                                                                                \
            for (int64_t c = 0; c < cols; c++)                                                                         \
                s[c] += take_log ? (double)gy[j * ld + c] : (double)gy[j * ld + c] * y[j * ld + c];                    \
        for (int64_t j = 0; j < n; j++)                                                                                \
            for (int64_t c = 0; c < cols; c++) {                                                                       \
                int64_t i = j * ld + c;                                                                                \
                gx[i] = take_log ? (T)(gy[i] - EXP(y[i]) * s[c]) : (T)(y[i] * (gy[i] - s[c]));                         \
            }                                                                                                          \
    }

DEFINE_SOFTMAX(float, f32, expf)
DEFINE_SOFTMAX(double, f64, exp)

static lt_status check_args(const char *who, const lt_tensor *a, const lt_tensor *b, const lt_tensor *c) {
    if ((a->dtype != LT_F32 && a->dtype != LT_F64) || b->dtype != a->dtype || (c && c->dtype != a->dtype))
        return lt__err(LT_ERR_DTYPE, "%s: expected every tensor f32 or every tensor f64", who);
    if (!lt__is_contiguous(a) || !lt__is_contiguous(b) || (c && !lt__is_contiguous(c)))
        return lt__err(LT_ERR_INTERNAL, "%s: expected contiguous tensors", who);
    return LT_OK;
}

lt_status lt__cpu_softmax(const lt_tensor *x, int dim, bool log, lt_tensor *y) {
    LT_TRY(check_args("cpu softmax", x, y, NULL));
    panels p = panels_of(x, dim);
    bool f64 = x->dtype == LT_F64;
    const char *xp = lt__data(x);
    char *yp = lt__data(y);
    size_t es = lt_dtype_size(x->dtype);
#pragma omp parallel for schedule(static) if (p.outer * p.n * p.inner >= PAR_MIN_WORK)
    for (int64_t w = 0; w < p.outer * p.blocks; w++) {
        int64_t c0 = (w % p.blocks) * PANEL_COLS, cols = p.inner - c0 < PANEL_COLS ? p.inner - c0 : PANEL_COLS;
        int64_t off = ((w / p.blocks) * p.n * p.inner + c0) * (int64_t)es;
        if (p.inner == 1 && f64)
            row_fwd_f64((const double *)(xp + off), (double *)(yp + off), p.n, log);
        else if (p.inner == 1)
            row_fwd_f32((const float *)(xp + off), (float *)(yp + off), p.n, log);
        else if (f64)
            panel_fwd_f64((const double *)(xp + off), (double *)(yp + off), p.n, p.inner, cols, log);
        else
            panel_fwd_f32((const float *)(xp + off), (float *)(yp + off), p.n, p.inner, cols, log);
    }
    return LT_OK;
}

lt_status lt__cpu_softmax_backward(const lt_tensor *y, const lt_tensor *gy, int dim, bool log, lt_tensor *gx) {
    LT_TRY(check_args("cpu softmax_backward", y, gy, gx));
    panels p = panels_of(y, dim);
    bool f64 = y->dtype == LT_F64;
    const char *yp = lt__data(y), *gyp = lt__data(gy);
    char *gxp = lt__data(gx);
    size_t es = lt_dtype_size(y->dtype);
#pragma omp parallel for schedule(static) if (p.outer * p.n * p.inner >= PAR_MIN_WORK)
    for (int64_t w = 0; w < p.outer * p.blocks; w++) {
        int64_t c0 = (w % p.blocks) * PANEL_COLS, cols = p.inner - c0 < PANEL_COLS ? p.inner - c0 : PANEL_COLS;
        int64_t off = ((w / p.blocks) * p.n * p.inner + c0) * (int64_t)es;
        if (p.inner == 1 && f64)
            row_bwd_f64((const double *)(yp + off), (const double *)(gyp + off), (double *)(gxp + off), p.n, log);
        else if (p.inner == 1)
            row_bwd_f32((const float *)(yp + off), (const float *)(gyp + off), (float *)(gxp + off), p.n, log);
        else if (f64)
            panel_bwd_f64((const double *)(yp + off), (const double *)(gyp + off), (double *)(gxp + off), p.n, p.inner,
                          cols, log);
        else
            panel_bwd_f32((const float *)(yp + off), (const float *)(gyp + off), (float *)(gxp + off), p.n, p.inner,
                          cols, log);
    }
    return LT_OK;
}
