/* CUDA cross-entropy of logits [N, C] against integer targets, forward and backward, and the classifier's fused
 * in-place loss and gradient over logits [N, Vp] (src/cpu/cross_entropy.c and src/cpu/classifier.c are the
 * references).
 * Rows run as a warp per row up to kWarpRowMax columns, else a block per row. A row's logsumexp is an online
 * softmax: each thread keeps a running (max, sum of exp(x - max)) over its strided columns, and the pairs are merged
 * through warp shuffles (and shared memory across warps) in a fixed order, so the results are the same on every run.
 * f32 accumulates in f32 and f64 in f64; max + log(sum) and the loss are then formed in double, as on the CPU.
 * Targets are read on the device (src/ops checked them on the host). A target that is neither ignore_index nor in
 * range, which only a caller that skipped those checks can pass, never indexes the row: its loss is NaN (so it
 * shows in any reduction) and its gradient row gets no one-hot term (cross_entropy_backward) or is zero
 * (classifier_ce). */
#include "rowwise.cuh"

#include <initializer_list>

namespace lt_cuda {
namespace {

/* Element i of an i32 or i64 target vector (i already scaled by the stride). */
__device__ inline int64_t target_at(const void *t, bool i64, int64_t i) {
    return i64 ? static_cast<const int64_t *>(t)[i] : (int64_t) static_cast<const int32_t *>(t)[i];
}

/* Integer targets: data, dtype and stride (0 for a broadcast). */
struct Targets {
    const void *p;
    bool i64;
    int64_t stride;
};

/* logsumexp of a row from its online state, in double: +-inf when the max is (an all -inf row, or C == 0, gives
 * -inf; a row holding +inf gives +inf), where subtracting the max would make NaN. */
template <class T> __device__ inline double lse_of(Online<T> st) {
    double m = (double)st.m;
    return m == INFINITY || m == -INFINITY ? m : m + log((double)st.s);
}

template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    cross_entropy_kernel(const T *x, Targets tg, int64_t ignore, T *loss, int64_t loss_stride, T *lse,
                         int64_t lse_stride, int64_t N, int64_t C) {
    LT_SHARED(Online<T>, red, 32);
    for (int64_t r = G::first_row(); r < N; r += G::row_step()) {
        const T *xr = x + r * C;
        Online<T> st = online_init<T>();
        for (int64_t c = G::rank(); c < C; c += G::size()) st = push(st, xr[c]);
        st = G::reduce(st, Merge{}, red);
        if (G::rank() != 0) continue;
        int64_t t = target_at(tg.p, tg.i64, r * tg.stride);
        double v = lse_of(st);
        lse[r * lse_stride] = (T)v;
        loss[r * loss_stride] = t == ignore ? (T)0 : t >= 0 && t < C ? (T)(v - (double)xr[t]) : (T)NAN;
    }
}

/* glogits[r, c] = gloss[r] * (exp(logits[r, c] - lse[r]) - (c == t[r])), 0 on ignored rows. */
template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    cross_entropy_backward_kernel(const T *x, Targets tg, int64_t ignore, const T *lse, int64_t lse_stride,
                                  const T *gloss, int64_t gloss_stride, T *gx, int64_t N, int64_t C) {
    for (int64_t r = G::first_row(); r < N; r += G::row_step()) {
        const T *xr = x + r * C;
        T *out = gx + r * C;
        int64_t t = target_at(tg.p, tg.i64, r * tg.stride);
        if (t == ignore) {
            for (int64_t c = G::rank(); c < C; c += G::size()) out[c] = (T)0;
            continue;
        }
        T g = gloss[r * gloss_stride], l = lse[r * lse_stride];
        for (int64_t c = G::rank(); c < C; c += G::size()) {
            T e = ex(xr[c] - l);
            out[c] = c == t ? (T)((double)g * ((double)e - 1.0)) : g * e;
        }
    }
}

/* One row of Vp logits per group, in place: loss[r] = logsumexp(x[:V]) - x[t]; with grad the row becomes
 * (softmax(x[:V]) - onehot(t)) * scale and 0 on the padding columns, or all 0 on an ignored row. Rank 0 reads x[t]
 * before the group's barrier, and nobody writes the row before it. */
template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    classifier_ce_kernel(T *x, int64_t V, int64_t Vp, Targets tg, int64_t ignore, double scale, bool grad, T *loss,
                         int64_t loss_stride, int64_t N) {
    LT_SHARED(Online<T>, red, 32);
    for (int64_t r = G::first_row(); r < N; r += G::row_step()) {
        T *xr = x + r * Vp;
        int64_t t = target_at(tg.p, tg.i64, r * tg.stride);
        bool skip = t == ignore || t < 0 || t >= V;
        int64_t counted = skip ? 0 : V; /* a skipped row runs the same code over no columns */
        Online<T> st = online_init<T>();
        for (int64_t c = G::rank(); c < counted; c += G::size()) st = push(st, xr[c]);
        st = G::reduce(st, Merge{}, red);
        T xt = G::rank() == 0 && !skip ? xr[t] : (T)0;
        if (grad) {
            G::sync();
            T f = skip ? (T)0 : (T)(scale / (double)st.s), tscale = (T)scale;
            for (int64_t c = G::rank(); c < counted; c += G::size()) {
                T v = ex(xr[c] - st.m) * f;
                xr[c] = c == t ? v - tscale : v;
            }
            for (int64_t c = counted + G::rank(); c < Vp; c += G::size()) xr[c] = (T)0;
        }
        if (G::rank() != 0) continue;
        if (skip)
            loss[r * loss_stride] = t == ignore ? (T)0 : (T)NAN;
        else
            loss[r * loss_stride] = (T)((double)st.m + (double)lg(st.s) - (double)xt);
    }
}

/* logits 2-D contiguous f32/f64; each 1-D vector [N] of the logits' dtype (any stride); targets [N] i32/i64. */
lt_status check_args(const char *who, const lt_tensor *logits, const lt_tensor *targets,
                     std::initializer_list<const lt_tensor *> vectors) {
    if ((logits->dtype != LT_F32 && logits->dtype != LT_F64) || logits->ndim != 2 || !lt__is_contiguous(logits))
        return lt__err(LT_ERR_INTERNAL, "%s: logits must be contiguous 2-D f32 or f64", who);
    int64_t N = logits->shape[0];
    for (const lt_tensor *v : vectors)
        if (v->dtype != logits->dtype || v->ndim != 1 || v->shape[0] != N)
            return lt__err(LT_ERR_INTERNAL, "%s: expected [%lld] vectors of the logits' dtype", who, (long long)N);
    if ((targets->dtype != LT_I32 && targets->dtype != LT_I64) || targets->ndim != 1 || targets->shape[0] != N)
        return lt__err(LT_ERR_DTYPE, "%s: targets must be [%lld] i32 or i64", who, (long long)N);
    return LT_OK;
}

Targets targets_of(const lt_tensor *t) { return Targets{lt__data(t), t->dtype == LT_I64, t->strides[0]}; }

template <class T>
lt_status ce_forward(Context &ctx, const lt_tensor *logits, Targets tg, int64_t ignore, lt_tensor *loss, lt_tensor *lse,
                     int64_t N, int64_t C) {
    if (C <= kWarpRowMax) {
        LT_LAUNCH((cross_entropy_kernel<T, WarpPerRow>), WarpPerRow::grid(N), WarpPerRow::kThreads, 0, ctx.stream,
                  data<T>(logits), tg, ignore, data<T>(loss), loss->strides[0], data<T>(lse), lse->strides[0], N, C);
    } else {
        LT_LAUNCH((cross_entropy_kernel<T, BlockPerRow>), BlockPerRow::grid(N), BlockPerRow::kThreads, 0, ctx.stream,
                  data<T>(logits), tg, ignore, data<T>(loss), loss->strides[0], data<T>(lse), lse->strides[0], N, C);
    }
    LT_CU_LAUNCHED("cuda cross_entropy", "cross_entropy_kernel");
    return LT_OK;
}

template <class T>
lt_status ce_backward(Context &ctx, const lt_tensor *logits, Targets tg, int64_t ignore, const lt_tensor *lse,
                      const lt_tensor *gloss, lt_tensor *glogits, int64_t N, int64_t C) {
    if (C <= kWarpRowMax) {
        LT_LAUNCH((cross_entropy_backward_kernel<T, WarpPerRow>), WarpPerRow::grid(N), WarpPerRow::kThreads, 0,
                  ctx.stream, data<T>(logits), tg, ignore, data<T>(lse), lse->strides[0], data<T>(gloss),
                  gloss->strides[0], data<T>(glogits), N, C);
    } else {
        LT_LAUNCH((cross_entropy_backward_kernel<T, BlockPerRow>), BlockPerRow::grid(N), BlockPerRow::kThreads, 0,
                  ctx.stream, data<T>(logits), tg, ignore, data<T>(lse), lse->strides[0], data<T>(gloss),
                  gloss->strides[0], data<T>(glogits), N, C);
    }
    LT_CU_LAUNCHED("cuda cross_entropy_backward", "cross_entropy_backward_kernel");
    return LT_OK;
}

template <class T>
lt_status classifier(Context &ctx, lt_tensor *logits, int64_t V, Targets tg, int64_t ignore, double scale, bool grad,
                     lt_tensor *loss, int64_t N, int64_t Vp) {
    if (V <= kWarpRowMax) {
        LT_LAUNCH((classifier_ce_kernel<T, WarpPerRow>), WarpPerRow::grid(N), WarpPerRow::kThreads, 0, ctx.stream,
                  data<T>(logits), V, Vp, tg, ignore, scale, grad, data<T>(loss), loss->strides[0], N);
    } else {
        LT_LAUNCH((classifier_ce_kernel<T, BlockPerRow>), BlockPerRow::grid(N), BlockPerRow::kThreads, 0, ctx.stream,
                  data<T>(logits), V, Vp, tg, ignore, scale, grad, data<T>(loss), loss->strides[0], N);
    }
    LT_CU_LAUNCHED("cuda classifier_ce", "classifier_ce_kernel");
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                            lt_tensor *loss, lt_tensor *lse) {
    static const char *who = "cuda cross_entropy";
    LT_TRY(check_args(who, logits, targets, {loss, lse}));
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (N == 0) return LT_OK; /* C == 0 still runs: lse is -inf, as on the CPU */
    Context &ctx = context_of(logits);
    return dispatch_float(logits->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return ce_forward<T>(ctx, logits, targets_of(targets), ignore_index, loss, lse, N, C);
    });
}

extern "C" lt_status lt__cuda_cross_entropy_backward(const lt_tensor *logits, const lt_tensor *targets,
                                                     int64_t ignore_index, const lt_tensor *lse, const lt_tensor *gloss,
                                                     lt_tensor *glogits) {
    static const char *who = "cuda cross_entropy_backward";
    LT_TRY(check_args(who, logits, targets, {lse, gloss}));
    if (glogits->dtype != logits->dtype || !lt__is_contiguous(glogits) || numel(glogits) != numel(logits))
        return lt__err(LT_ERR_INTERNAL, "%s: glogits must be contiguous, as the logits", who);
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (N == 0 || C == 0) return LT_OK;
    Context &ctx = context_of(logits);
    return dispatch_float(logits->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return ce_backward<T>(ctx, logits, targets_of(targets), ignore_index, lse, gloss, glogits, N, C);
    });
}

extern "C" lt_status lt__cuda_classifier_ce(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets,
                                            int64_t ignore_index, double grad_scale, bool want_grad, lt_tensor *loss) {
    static const char *who = "cuda classifier_ce";
    LT_TRY(check_args(who, logits, targets, {loss}));
    int64_t N = logits->shape[0], Vp = logits->shape[1];
    if (vocab_size < 1 || vocab_size > Vp)
        return lt__err(LT_ERR_INTERNAL, "%s: vocab_size %lld outside [1, %lld]", who, (long long)vocab_size,
                       (long long)Vp);
    if (N == 0) return LT_OK;
    Context &ctx = context_of(logits);
    return dispatch_float(logits->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return classifier<T>(ctx, logits, vocab_size, targets_of(targets), ignore_index, grad_scale, want_grad, loss, N,
                             Vp);
    });
}
