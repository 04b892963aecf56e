/* CPU cross-entropy over a chunk of classifier logits [N, Vp], in place: each row's loss over its first V columns
 * and, when asked, the row overwritten with its gradient, so the probabilities exist only once. Rows are independent
 * and run in parallel; nothing is allocated. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/fastmath.h"

#include <math.h>
#include <string.h>

/* Elements below which a call runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 32768

static inline int64_t target_at(const lt_tensor *t, int64_t n) {
    int64_t i = n * t->strides[0];
    return t->dtype == LT_I32 ? ((const int32_t *)lt__data(t))[i] : ((const int64_t *)lt__data(t))[i];
}

/* exp of a shifted logit (<= 0): 0 below the smallest normal result, where libm's slow underflow path costs more
 * than the whole rest of the row (logits of a randomly initialised head reach it). */
static inline double exp0_f64(double d) { return d < -708.0 ? 0.0 : exp(d); }

/* The f32 row's exponentials are summed on SUM_LANES double accumulators (added pairwise at the end), so the loop
 * vectorises with cpu/fastmath.h's exp, which also gives 0 below -87.3 without a slow path. A 50304-wide row went 4x
 * faster than with libm's expf and one serial double sum. */
#define SUM_LANES 16

static inline double sum_lanes(const double *a) {
    double s[SUM_LANES];
    memcpy(s, a, sizeof s);
    for (int w = SUM_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) s[k] += s[k + w];
    return s[0];
}

/* Each counted row x of Vp columns with target t: returns logsumexp(x[:V]) - x[t]. With grad it rewrites the row in
 * three passes over L2-resident data: the max; e = exp(x - max) stored in place while summing (in double); then
 * x = e * (scale / sum), minus scale at t, and 0 on the padding columns. */
LT_CLONES static double row_f32(float *x, int64_t V, int64_t Vp, int64_t t, double scale, bool grad) {
    float m = -INFINITY, xt = x[t];
    _Pragma("omp simd reduction(max : m)") for (int64_t c = 0; c < V; c++) m = x[c] > m ? x[c] : m;
    double acc[SUM_LANES] = {0};
    int64_t c = 0;
    for (; c + SUM_LANES <= V; c += SUM_LANES) _Pragma("omp simd") for (int k = 0; k < SUM_LANES; k++) {
            const float e = lt__expf(x[c + k] - m);
            if (grad) x[c + k] = e;
            acc[k] += e;
        }
    for (; c < V; c++) {
        const float e = lt__expf(x[c] - m);
        if (grad) x[c] = e;
        acc[c % SUM_LANES] += e;
    }
    const double s = sum_lanes(acc);
    if (grad) {
        const float f = (float)(scale / s);
        _Pragma("omp simd") for (int64_t c2 = 0; c2 < V; c2++) x[c2] *= f;
        x[t] -= (float)scale;
        for (int64_t c2 = V; c2 < Vp; c2++) x[c2] = 0;
    }
    return (double)m + log(s) - (double)xt;
}

/* The f64 row, the same passes with libm's exp and one serial sum: the reference that gradient checks lean on. */
static double row_f64(double *x, int64_t V, int64_t Vp, int64_t t, double scale, bool grad) {
    double m = -INFINITY, xt = x[t];
    _Pragma("omp simd reduction(max : m)") for (int64_t c = 0; c < V; c++) m = x[c] > m ? x[c] : m;
    double s = 0.0;
    for (int64_t c = 0; c < V; c++) {
        const double e = exp0_f64(x[c] - m);
        if (grad) x[c] = e;
        s += e;
    }
    if (grad) {
        const double f = scale / s;
        _Pragma("omp simd") for (int64_t c = 0; c < V; c++) x[c] *= f;
        x[t] -= scale;
        for (int64_t c = V; c < Vp; c++) x[c] = 0;
    }
    return m + log(s) - xt;
}

static lt_status check_args(const lt_tensor *logits, int64_t V, const lt_tensor *targets, const lt_tensor *loss) {
    static const char *who = "cpu classifier_ce";
    if ((logits->dtype != LT_F32 && logits->dtype != LT_F64) || logits->ndim != 2 || !lt__is_contiguous(logits))
        return lt__err(LT_ERR_INTERNAL, "%s: logits must be contiguous 2-D f32 or f64", who);
    int64_t N = logits->shape[0];
    if (loss->dtype != logits->dtype || loss->ndim != 1 || loss->shape[0] != N)
        return lt__err(LT_ERR_INTERNAL, "%s: loss must be [%lld] of the logits' dtype", who, (long long)N);
    if ((targets->dtype != LT_I32 && targets->dtype != LT_I64) || targets->ndim != 1 || targets->shape[0] != N)
        return lt__err(LT_ERR_DTYPE, "%s: targets must be [%lld] i32 or i64", who, (long long)N);
    if (V < 1 || V > logits->shape[1])
        return lt__err(LT_ERR_INTERNAL, "%s: vocab_size %lld outside [1, %lld]", who, (long long)V,
                       (long long)logits->shape[1]);
    return LT_OK;
}

lt_status lt__cpu_classifier_ce(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets, int64_t ignore_index,
                                double grad_scale, bool want_grad, lt_tensor *loss) {
    LT_TRY(check_args(logits, vocab_size, targets, loss));
    int64_t N = logits->shape[0], Vp = logits->shape[1], V = vocab_size, ls = loss->strides[0], bad = N;
    bool f64 = logits->dtype == LT_F64;
    void *xp = lt__data(logits), *lp = lt__data(loss);
    /* src/ops validated the targets; a bad one here (another caller) is reported rather than read out of the row */
#pragma omp parallel for schedule(static) reduction(min : bad) if (N * V >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        int64_t t = target_at(targets, n);
        bool skip = t == ignore_index || t < 0 || t >= V;
        if (t != ignore_index && skip) bad = n < bad ? n : bad;
        double v = 0.0;
        if (f64) {
            double *x = (double *)xp + n * Vp;
            if (!skip) v = row_f64(x, V, Vp, t, grad_scale, want_grad);
            if (skip && want_grad)
                for (int64_t c = 0; c < Vp; c++) x[c] = 0.0;
            ((double *)lp)[n * ls] = v;
        } else {
            float *x = (float *)xp + n * Vp;
            if (!skip) v = row_f32(x, V, Vp, t, grad_scale, want_grad);
            if (skip && want_grad)
                for (int64_t c = 0; c < Vp; c++) x[c] = 0.0f;
            ((float *)lp)[n * ls] = (float)v;
        }
    }
    if (bad < N)
        return lt__err(LT_ERR_RANGE, "cpu classifier_ce: target %lld of row %lld is outside [0, %lld)",
                       (long long)target_at(targets, bad), (long long)bad, (long long)V);
    return LT_OK;
}
