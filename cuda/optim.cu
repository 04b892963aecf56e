/* CUDA optimizer kernels over flat contiguous buffers, updated in place: AdamW over segments (each with its own
 * weight decay) and SGD, as src/cpu/optim.c (torch semantics, torch's order of operations). The sum of squares for
 * the global gradient norm lives with the reductions (cuda/reduce.cu).
 *
 * Each step is one fused kernel over the flat buffer that reads and writes every buffer once. The arithmetic is the
 * CPU's, operation for operation in the storage type with the same constants (computed in double on the host and
 * rounded once), and written with round-to-nearest intrinsics so that nvcc cannot contract a multiply and an add
 * into an FMA: a GPU step gives the CPU's bits. */
#include "common.cuh"

#include <math.h>

#include <vector>

namespace lt_cuda {
namespace {

/* ---- IEEE operations in T, never fused ---- */

#if defined(__CUDA_ARCH__)
__device__ inline float rn_add(float a, float b) { return __fadd_rn(a, b); }
__device__ inline float rn_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ inline float rn_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ inline float rn_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ inline float rn_sqrt(float a) { return __fsqrt_rn(a); }
__device__ inline double rn_add(double a, double b) { return __dadd_rn(a, b); }
__device__ inline double rn_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ inline double rn_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ inline double rn_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ inline double rn_sqrt(double a) { return __dsqrt_rn(a); }
#else /* the emulator: the host compiler targets baseline x86-64, which has no FMA to contract into */
template <class T> inline T rn_add(T a, T b) { return a + b; }
template <class T> inline T rn_sub(T a, T b) { return a - b; }
template <class T> inline T rn_mul(T a, T b) { return a * b; }
template <class T> inline T rn_div(T a, T b) { return a / b; }
inline float rn_sqrt(float a) { return sqrtf(a); }
inline double rn_sqrt(double a) { return ::sqrt(a); }
#endif

/* ---- AdamW ---- */

/* The per-step constants of torch.optim.AdamW (see src/cpu/optim.c), rounded to T; gs scales the gradient. */
template <class T> struct AdamConsts { T b1, omb1, b2, omb2, neg_step, bc2_sqrt, eps, gs; };

/* The segments as the kernel sees them: element v of the concatenation of the non-empty segments belongs to the
 * last segment s with start[s] <= v, and lives at flat index v + shift[s]; decay[s] = 1 - lr * wd. A step with few
 * segments passes them by value; more go to the device as a table. */
constexpr int kInlineSegments = 8;
struct SegmentsInline {
    int64_t start[kInlineSegments];
    int64_t shift[kInlineSegments];
    double decay[kInlineSegments];
};
struct SegmentEntry {
    int64_t start, shift;
    double decay;
};

template <class T>
__device__ inline void adamw_element(T *p, const T *g, T *m, T *v, int64_t i, T decay, const AdamConsts<T> &c) {
    const T gi = rn_mul(g[i], c.gs);
    const T mi = rn_add(rn_mul(m[i], c.b1), rn_mul(c.omb1, gi));
    const T vi = rn_add(rn_mul(v[i], c.b2), rn_mul(rn_mul(c.omb2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const T pd = rn_mul(p[i], decay);
    p[i] = rn_add(pd, rn_div(rn_mul(c.neg_step, mi), rn_add(rn_div(rn_sqrt(vi), c.bc2_sqrt), c.eps)));
}

/* Few segments: each element finds its segment by a fixed, unrolled scan of the by-value table. */
template <class T>
__global__ void __launch_bounds__(kThreads)
    adamw_inline(T *p, const T *g, T *m, T *v, int64_t total, SegmentsInline segs, int n_segments, AdamConsts<T> c) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t shift = segs.shift[0];
        double decay = segs.decay[0];
        for (int s = 1; s < kInlineSegments; s++) {
            if (s < n_segments && e >= segs.start[s]) {
                shift = segs.shift[s];
                decay = segs.decay[s];
            }
        }
        adamw_element(p, g, m, v, e + shift, (T)decay, c);
    }
}

/* Many segments: a binary search of the device table (read through the read-only cache). */
template <class T>
__global__ void __launch_bounds__(kThreads) adamw_table(T *p, const T *g, T *m, T *v, int64_t total,
                                                        const SegmentEntry *segs, int n_segments, AdamConsts<T> c) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int lo = 0, hi = n_segments - 1; /* the answer lies in [lo, hi] */
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (__ldg(&segs[mid].start) <= e)
                lo = mid;
            else
                hi = mid - 1;
        }
        adamw_element(p, g, m, v, e + __ldg(&segs[lo].shift), (T)__ldg(&segs[lo].decay), c);
    }
}

template <class T>
lt_status adamw_t(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v, const lt__segment *segments,
                  int n_segments, double lr, double beta1, double beta2, double eps, int64_t step, double grad_scale) {
    static const char *who = "cuda adamw_step";
    const AdamConsts<T> c = {
        (T)beta1,
        (T)(1.0 - beta1),
        (T)beta2,
        (T)(1.0 - beta2),
        (T)(-(lr / (1.0 - pow(beta1, (double)step)))),
        (T)sqrt(1.0 - pow(beta2, (double)step)),
        (T)eps,
        (T)grad_scale,
    };
    std::vector<SegmentEntry> table;
    int64_t total = 0;
    for (int s = 0; s < n_segments; s++) {
        if (segments[s].numel == 0) continue;
        table.push_back(SegmentEntry{total, segments[s].offset - total, 1.0 - lr * segments[s].weight_decay});
        total += segments[s].numel;
    }
    if (total == 0) return LT_OK;
    Context &ctx = context_of(param);
    T *pp = data<T>(param), *pm = data<T>(m), *pv = data<T>(v);
    const T *pg = data<const T>(grad);
    const int n = (int)table.size();
    if (n <= kInlineSegments) {
        SegmentsInline segs{};
        for (int s = 0; s < n; s++) {
            segs.start[s] = table[(size_t)s].start;
            segs.shift[s] = table[(size_t)s].shift;
            segs.decay[s] = table[(size_t)s].decay;
        }
        LT_LAUNCH((adamw_inline<T>), blocks_for(total), kThreads, 0, ctx.stream, pp, pg, pm, pv, total, segs, n, c);
        LT_CU_LAUNCHED(who, "adamw_inline");
        return LT_OK;
    }
    /* A host-to-device copy from pageable memory returns once the source has been staged, so the table may go
     * when this function returns; the scratch block is reused only by work queued after the kernel. */
    Scratch dev;
    const size_t bytes = sizeof(SegmentEntry) * table.size();
    LT_TRY(dev.alloc(ctx, bytes, who));
    LT_CU(cudaMemcpyAsync(dev.as<void>(), table.data(), bytes, cudaMemcpyHostToDevice, ctx.stream), who);
    LT_LAUNCH((adamw_table<T>), blocks_for(total), kThreads, 0, ctx.stream, pp, pg, pm, pv, total,
              dev.as<const SegmentEntry>(), n, c);
    LT_CU_LAUNCHED(who, "adamw_table");
    return LT_OK;
}

/* ---- SGD ---- */

/* torch.optim.SGD (dampening 0), on g = grad * gs: d = g + wd p; v = first ? d : momentum v + d;
 * p -= lr (nesterov ? d + momentum v : v). v is NULL without momentum. */
template <class T>
__global__ void __launch_bounds__(kThreads)
    sgd_kernel(T *p, const T *g, T *v, int64_t n, T lr, T momentum, T wd, bool nesterov, bool first, T gs) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const T pi = p[i];
        T d = rn_add(rn_mul(g[i], gs), rn_mul(wd, pi));
        if (v) {
            const T vi = first ? d : rn_add(rn_mul(momentum, v[i]), d);
            v[i] = vi;
            d = nesterov ? rn_add(d, rn_mul(momentum, vi)) : vi;
        }
        p[i] = rn_sub(pi, rn_mul(lr, d));
    }
}

/* The CPU's contract guard: every buffer is a contiguous f32 or f64 tensor of param's dtype and length (optional
 * ones may be NULL). src/optim guarantees it; a violation is a libtrain bug, reported instead of run. */
lt_status check_buffers(const char *who, const lt_tensor *param, const lt_tensor *const *bufs, int n_bufs,
                        int n_required) {
    if (!param || (param->dtype != LT_F32 && param->dtype != LT_F64) || !lt__is_contiguous(param))
        return lt__err(LT_ERR_INTERNAL, "%s: param must be a contiguous f32 or f64 tensor", who);
    const int64_t n = numel(param);
    for (int k = 0; k < n_bufs; k++) {
        const lt_tensor *b = bufs[k];
        if (!b && k >= n_required) continue;
        if (!b || b->dtype != param->dtype || numel(b) != n || !lt__is_contiguous(b))
            return lt__err(LT_ERR_INTERNAL, "%s: buffer %d is missing or differs from param in dtype or length", who,
                           k);
    }
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_adamw_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v,
                                         const struct lt__segment *segments, int n_segments, double lr, double beta1,
                                         double beta2, double eps, int64_t step, double grad_scale) {
    static const char *who = "cuda adamw_step";
    const lt_tensor *bufs[] = {grad, m, v};
    LT_TRY(check_buffers(who, param, bufs, 3, 3));
    const int64_t n = numel(param);
    if (step < 1 || n_segments < 0 || (n_segments > 0 && !segments))
        return lt__err(LT_ERR_INTERNAL, "%s: step %lld (1-based) or %d segments out of range", who, (long long)step,
                       n_segments);
    for (int s = 0; s < n_segments; s++)
        if (segments[s].offset < 0 || segments[s].numel < 0 || segments[s].offset > n - segments[s].numel)
            return lt__err(LT_ERR_INTERNAL, "%s: segment %d [%lld, +%lld) lies outside the %lld elements", who, s,
                           (long long)segments[s].offset, (long long)segments[s].numel, (long long)n);
    if (param->dtype == LT_F32)
        return adamw_t<float>(param, grad, m, v, segments, n_segments, lr, beta1, beta2, eps, step, grad_scale);
    return adamw_t<double>(param, grad, m, v, segments, n_segments, lr, beta1, beta2, eps, step, grad_scale);
}

extern "C" lt_status lt__cuda_sgd_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity, double lr,
                                       double momentum, double weight_decay, bool nesterov, bool first_step,
                                       double grad_scale) {
    static const char *who = "cuda sgd_step";
    const lt_tensor *bufs[] = {grad, velocity};
    LT_TRY(check_buffers(who, param, bufs, 2, 1));
    const int64_t n = numel(param);
    if (n == 0) return LT_OK;
    Context &ctx = context_of(param);
    if (param->dtype == LT_F32) {
        LT_LAUNCH((sgd_kernel<float>), blocks_for(n), kThreads, 0, ctx.stream, data<float>(param),
                  data<const float>(grad), velocity ? data<float>(velocity) : nullptr, n, (float)lr, (float)momentum,
                  (float)weight_decay, nesterov, first_step, (float)grad_scale);
    } else {
        LT_LAUNCH((sgd_kernel<double>), blocks_for(n), kThreads, 0, ctx.stream, data<double>(param),
                  data<const double>(grad), velocity ? data<double>(velocity) : nullptr, n, lr, momentum, weight_decay,
                  nesterov, first_step, grad_scale);
    }
    LT_CU_LAUNCHED(who, "sgd_kernel");
    return LT_OK;
}
