/* CPU cross-entropy of logits [N, C] against integer targets, forward and backward (the reference kernels).
 * Each row's logsumexp subtracts the row max and sums exponentials in double; the backward recomputes the softmax
 * from the saved lse rather than keeping [N, C] probabilities. Rows are independent and run in parallel. */
#include "core/error.h"
#include "cpu/cpu.h"

#include <math.h>

/* Elements below which a call runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 32768

/* Element n of a 1-D tensor (any stride, 0 included: a broadcast gloss). */
static inline int64_t target_at(const lt_tensor *t, int64_t n) {
    int64_t i = n * t->strides[0];
    return t->dtype == LT_I32 ? ((const int32_t *)lt__data(t))[i] : ((const int64_t *)lt__data(t))[i];
}

static inline double float_at(const lt_tensor *t, int64_t n) {
    int64_t i = n * t->strides[0];
    return t->dtype == LT_F64 ? ((const double *)lt__data(t))[i] : ((const float *)lt__data(t))[i];
}

/* row_lse: logsumexp of one row; an all -inf row (or C == 0) gives -inf and a row holding +inf gives +inf, where
 * subtracting the max would produce NaN.
 * row_grad: g * (softmax(x) - onehot(t)) for one row, softmax taken as exp(x - lse). */
#define DEFINE_CROSS_ENTROPY(T, SFX, EXP)                                                                              \
    static double row_lse_##SFX(const T *x, int64_t C) {                                                               \
        T m = -INFINITY;                                                                                               \
        _Pragma("omp simd reduction(max : m)") for (int64_t c = 0; c < C; c++) m = x[c] > m ? x[c] : m;                \
        if (isinf(m)) return m;                                                                                        \
        double s = 0.0;                                                                                                \
        for (int64_t c = 0; c < C; c++) s += EXP(x[c] - m);                                                            \
        return (double)m + log(s);                                                                                     \
    }                                                                                                                  \
    static void row_grad_##SFX(const T *x, int64_t C, T lse, int64_t t, double g, T *gx) {                             \
        for (int64_t c = 0; c < C; c++) gx[c] = (T)(g * (double)EXP(x[c] - lse));                                      \
        gx[t] = (T)(g * ((double)EXP(x[t] - lse) - 1.0));                                                              \
    }

DEFINE_CROSS_ENTROPY(float, f32, expf)
DEFINE_CROSS_ENTROPY(double, f64, exp)

/* src/ops validates targets on the host; checking again here costs N reads and keeps a bad caller (a backend test,
 * a future op) from reading outside a row. */
static lt_status check_args(const char *who, const lt_tensor *logits, const lt_tensor *targets, int64_t ignore,
                            const lt_tensor *const *floats, int n) {
    if ((logits->dtype != LT_F32 && logits->dtype != LT_F64) || logits->ndim != 2 || !lt__is_contiguous(logits))
        return lt__err(LT_ERR_INTERNAL, "%s: logits must be contiguous 2-D f32 or f64", who);
    for (int k = 0; k < n; k++)
        if (floats[k]->dtype != logits->dtype || floats[k]->ndim != 1)
            return lt__err(LT_ERR_INTERNAL, "%s: expected 1-D tensors of the logits' dtype", who);
    if ((targets->dtype != LT_I32 && targets->dtype != LT_I64) || targets->ndim != 1)
        return lt__err(LT_ERR_DTYPE, "%s: targets must be 1-D i32 or i64", who);
    int64_t N = logits->shape[0], C = logits->shape[1];
    for (int64_t i = 0; i < N; i++) {
        int64_t t = target_at(targets, i);
        if (t != ignore && (t < 0 || t >= C))
            return lt__err(LT_ERR_RANGE, "%s: target %lld of row %lld is outside [0, %lld)", who, (long long)t,
                           (long long)i, (long long)C);
    }
    return LT_OK;
}

lt_status lt__cpu_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                lt_tensor *loss, lt_tensor *lse) {
    LT_TRY(check_args("cpu cross_entropy", logits, targets, ignore_index, (const lt_tensor *[]){loss, lse}, 2));
    int64_t N = logits->shape[0], C = logits->shape[1];
    bool f64 = logits->dtype == LT_F64;
    const void *xp = lt__data(logits);
    void *lp = lt__data(loss), *sp = lt__data(lse);
    int64_t ls = loss->strides[0], ss = lse->strides[0];
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        int64_t t = target_at(targets, n);
        if (f64) {
            const double *x = (const double *)xp + n * C;
            double v = row_lse_f64(x, C);
            ((double *)sp)[n * ss] = v;
            ((double *)lp)[n * ls] = t == ignore_index ? 0.0 : v - x[t];
        } else {
            const float *x = (const float *)xp + n * C;
            double v = row_lse_f32(x, C);
            ((float *)sp)[n * ss] = (float)v;
            ((float *)lp)[n * ls] = t == ignore_index ? 0.0f : (float)(v - x[t]);
        }
    }
    return LT_OK;
}

lt_status lt__cpu_cross_entropy_backward(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                         const lt_tensor *lse, const lt_tensor *gloss, lt_tensor *glogits) {
    LT_TRY(
        check_args("cpu cross_entropy_backward", logits, targets, ignore_index, (const lt_tensor *[]){lse, gloss}, 2));
    if (glogits->dtype != logits->dtype || !lt__is_contiguous(glogits))
        return lt__err(LT_ERR_INTERNAL, "cpu cross_entropy_backward: glogits must be contiguous, as the logits");
    int64_t N = logits->shape[0], C = logits->shape[1];
    bool f64 = logits->dtype == LT_F64;
    const void *xp = lt__data(logits);
    void *gp = lt__data(glogits);
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        int64_t t = target_at(targets, n);
        bool ignored = t == ignore_index;
        double g = ignored ? 0.0 : float_at(gloss, n), s = float_at(lse, n);
        if (f64) {
            double *gx = (double *)gp + n * C;
            if (ignored)
                for (int64_t c = 0; c < C; c++) gx[c] = 0.0;
            else
                row_grad_f64((const double *)xp + n * C, C, s, t, g, gx);
        } else {
            float *gx = (float *)gp + n * C;
            if (ignored)
                for (int64_t c = 0; c < C; c++) gx[c] = 0.0f;
            else
                row_grad_f32((const float *)xp + n * C, C, (float)s, t, g, gx);
        }
    }
    return LT_OK;
}
