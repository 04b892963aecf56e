/* CUDA layer norm over the last dim of a contiguous x [M, C], forward and backward (src/cpu/layer_norm.c is the
 * reference, and these kernels follow its arithmetic: statistics two-pass in double, so a large mean cannot cancel
 * the variance away, and rstd = 1 / sqrt(var + eps) with the biased variance).
 * - Rows: a warp per row up to kWarpRowMax columns, else a block per row; sums go through warp shuffles (and shared
 *   memory across warps) and every thread of the row gets the same total.
 * - The forward may fuse a residual add (layer_norm's r and s): the first pass reads x and r, writes s = x + r and
 *   sums it, and the later passes read s back (each thread only its own elements).
 * - gw and gb (column sums over the M rows) take two kernels and no atomics: blocks of 32 columns x 8 row slices
 *   sum a chunk of rows into per-chunk partials (double, in scratch memory), then one thread per column adds the
 *   chunks in order. The chunking depends only on M, so the bits are the same on every run and every GPU. */
#include "rowwise.cuh"

#include <initializer_list>

namespace lt_cuda {
namespace {

/* The column-sum kernel's block: 32 adjacent columns by kSlices interleaved rows. */
constexpr int kSlices = 8;
/* gw/gb partials: chunks of at least kMinChunkRows rows, and at most about kMaxChunks chunks. */
constexpr int64_t kMinChunkRows = 64, kMaxChunks = 128;

/* The two sums of the backward, reduced together. */
struct Pair {
    double a, b;
};
__device__ inline Pair operator+(Pair x, Pair y) { return Pair{x.a + y.a, x.b + y.b}; }

/* Pair is in this namespace, so warp_reduce (cuda/rowwise.cuh) finds this overload by argument-dependent lookup. */
__device__ inline Pair shfl_xor(Pair v, int lane_mask) {
    return Pair{shfl_xor(v.a, lane_mask), shfl_xor(v.b, lane_mask)};
}

/* y = (x - mean) * rstd * w + b per row, and the row's mean and rstd; w and b may be null. With a residual res (else
 * null), the first pass also reads res and writes sum = x + res (rounded to T), and sum is what is normalised: each
 * thread reads back only the elements it wrote itself, so no barrier is needed between the passes. */
template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    layer_norm_kernel(const T *x, const T *res, const T *w, const T *b, double eps, T *sum, T *y, T *mean, T *rstd,
                      int64_t M, int64_t C) {
    LT_SHARED(double, red, 32);
    for (int64_t r = G::first_row(); r < M; r += G::row_step()) {
        const T *xr = x + r * C;
        T *yr = y + r * C;
        double s = 0.0;
        if (res) {
            const T *rr = res + r * C;
            T *sr = sum + r * C;
            for (int64_t c = G::rank(); c < C; c += G::size()) {
                T v = xr[c] + rr[c];
                sr[c] = v;
                s += (double)v;
            }
            xr = sr;
        } else {
            for (int64_t c = G::rank(); c < C; c += G::size()) s += (double)xr[c];
        }
        double mu = G::reduce(s, Add{}, red) / (double)C;
        double v = 0.0;
        for (int64_t c = G::rank(); c < C; c += G::size()) {
            double d = (double)xr[c] - mu;
            v += d * d;
        }
        double rs = 1.0 / sqrt(G::reduce(v, Add{}, red) / (double)C + eps);
        for (int64_t c = G::rank(); c < C; c += G::size()) {
            double h = ((double)xr[c] - mu) * rs;
            if (w) h *= (double)w[c];
            if (b) h += (double)b[c];
            yr[c] = (T)h;
        }
        if (G::rank() == 0) {
            mean[r] = (T)mu;
            rstd[r] = (T)rs;
        }
    }
}

/* gx per row from the saved statistics: with xh = (x - mean) * rstd and g = gy * w (or gy),
 * gx = rstd * (g - mean(g) - xh * mean(g * xh)). */
template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    layer_norm_backward_kernel(const T *x, const T *w, const T *mean, const T *rstd, const T *gy, T *gx, int64_t M,
                               int64_t C) {
    LT_SHARED(Pair, red, 32);
    for (int64_t r = G::first_row(); r < M; r += G::row_step()) {
        const T *xr = x + r * C, *gr = gy + r * C;
        T *out = gx + r * C;
        double mu = (double)mean[r], rs = (double)rstd[r];
        Pair acc{0.0, 0.0};
        for (int64_t c = G::rank(); c < C; c += G::size()) {
            double g = w ? (double)gr[c] * (double)w[c] : (double)gr[c];
            acc.a += g;
            acc.b += g * (((double)xr[c] - mu) * rs);
        }
        acc = G::reduce(acc, Add{}, red);
        double sg = acc.a / (double)C, sgx = acc.b / (double)C;
        for (int64_t c = G::rank(); c < C; c += G::size()) {
            double g = w ? (double)gr[c] * (double)w[c] : (double)gr[c];
            out[c] = (T)(rs * (g - sg - ((double)xr[c] - mu) * rs * sgx));
        }
    }
}

/* Block (bx, by): columns 32 bx .. 32 bx + 31 over rows [by * chunk_rows, (by + 1) * chunk_rows). Thread (tx, ty)
 * sums rows ty, ty + kSlices, ... of its column; the kSlices sums are added in order into pw/pb[by, column]. */
template <class T>
__global__ void __launch_bounds__(32 * kSlices)
    layer_norm_cols_kernel(const T *x, const T *mean, const T *rstd, const T *gy, int64_t M, int64_t C,
                           int64_t chunk_rows, double *pw, double *pb) {
    LT_SHARED(double, sw, 32 * kSlices);
    LT_SHARED(double, sb, 32 * kSlices);
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
    int64_t c = (int64_t)blockIdx.x * 32 + tx, m0 = (int64_t)blockIdx.y * chunk_rows;
    int64_t m1 = M - m0 < chunk_rows ? M : m0 + chunk_rows;
    bool live = c < C;
    double aw = 0.0, ab = 0.0;
    if (live)
        for (int64_t m = m0 + ty; m < m1; m += kSlices) {
            double g = (double)gy[m * C + c];
            aw += g * (((double)x[m * C + c] - (double)mean[m]) * (double)rstd[m]);
            ab += g;
        }
    sw[ty * 32 + tx] = aw;
    sb[ty * 32 + tx] = ab;
    __syncthreads();
    if (ty != 0 || !live) return;
    for (int k = 1; k < kSlices; k++) {
        aw += sw[k * 32 + tx];
        ab += sb[k * 32 + tx];
    }
    pw[blockIdx.y * C + c] = aw;
    pb[blockIdx.y * C + c] = ab;
}

/* gw[c] and gb[c] (each when not null): the chunks' partial sums of column c, added in chunk order. */
template <class T>
__global__ void layer_norm_cols_finish_kernel(const double *pw, const double *pb, int64_t chunks, int64_t C, T *gw,
                                              T *gb) {
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        double aw = 0.0, ab = 0.0;
        for (int64_t k = 0; k < chunks; k++) {
            aw += pw[k * C + c];
            ab += pb[k * C + c];
        }
        if (gw) gw[c] = (T)aw;
        if (gb) gb[c] = (T)ab;
    }
}

/* Every non-null tensor of x's dtype and contiguous. */
lt_status check_args(const char *who, const lt_tensor *x, std::initializer_list<const lt_tensor *> ts) {
    if (x->ndim < 1 || !lt__is_contiguous(x)) return lt__err(LT_ERR_INTERNAL, "%s: x must be contiguous", who);
    for (const lt_tensor *t : ts) {
        if (!t) continue;
        if (t->dtype != x->dtype)
            return lt__err(LT_ERR_DTYPE, "%s: tensors mix %s and %s", who, lt_dtype_name(x->dtype),
                           lt_dtype_name(t->dtype));
        if (!lt__is_contiguous(t)) return lt__err(LT_ERR_INTERNAL, "%s: expected contiguous tensors", who);
    }
    return LT_OK;
}

template <class T> const T *data_or_null(const lt_tensor *t) { return t ? data<T>(t) : nullptr; }
template <class T> T *data_or_null(lt_tensor *t) { return t ? data<T>(t) : nullptr; }

template <class T>
lt_status ln_forward(Context &ctx, const lt_tensor *x, const lt_tensor *r, const lt_tensor *w, const lt_tensor *b,
                     double eps, lt_tensor *s, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd, int64_t M, int64_t C) {
    static const char *who = "cuda layer_norm";
    if (C <= kWarpRowMax) {
        LT_LAUNCH((layer_norm_kernel<T, WarpPerRow>), WarpPerRow::grid(M), WarpPerRow::kThreads, 0, ctx.stream,
                  data<T>(x), data_or_null<T>(r), data_or_null<T>(w), data_or_null<T>(b), eps, data_or_null<T>(s),
                  data<T>(y), data<T>(mean), data<T>(rstd), M, C);
    } else {
        LT_LAUNCH((layer_norm_kernel<T, BlockPerRow>), BlockPerRow::grid(M), BlockPerRow::kThreads, 0, ctx.stream,
                  data<T>(x), data_or_null<T>(r), data_or_null<T>(w), data_or_null<T>(b), eps, data_or_null<T>(s),
                  data<T>(y), data<T>(mean), data<T>(rstd), M, C);
    }
    LT_CU_LAUNCHED(who, "layer_norm_kernel");
    return LT_OK;
}

template <class T>
lt_status ln_backward(Context &ctx, const lt_tensor *x, const lt_tensor *w, const lt_tensor *mean,
                      const lt_tensor *rstd, const lt_tensor *gy, lt_tensor *gx, lt_tensor *gw, lt_tensor *gb,
                      int64_t M, int64_t C) {
    static const char *who = "cuda layer_norm_backward";
    if (C <= kWarpRowMax) {
        LT_LAUNCH((layer_norm_backward_kernel<T, WarpPerRow>), WarpPerRow::grid(M), WarpPerRow::kThreads, 0, ctx.stream,
                  data<T>(x), data_or_null<T>(w), data<T>(mean), data<T>(rstd), data<T>(gy), data<T>(gx), M, C);
    } else {
        LT_LAUNCH((layer_norm_backward_kernel<T, BlockPerRow>), BlockPerRow::grid(M), BlockPerRow::kThreads, 0,
                  ctx.stream, data<T>(x), data_or_null<T>(w), data<T>(mean), data<T>(rstd), data<T>(gy), data<T>(gx), M,
                  C);
    }
    LT_CU_LAUNCHED(who, "layer_norm_backward_kernel");
    if (!gw && !gb) return LT_OK;
    int64_t chunk_rows = (M + kMaxChunks - 1) / kMaxChunks;
    chunk_rows = chunk_rows < kMinChunkRows ? kMinChunkRows : chunk_rows;
    int64_t chunks = (M + chunk_rows - 1) / chunk_rows;
    Scratch part;
    LT_TRY(part.alloc(ctx, sizeof(double) * 2 * (size_t)(chunks * C), who));
    double *pw = part.as<double>(), *pb = pw + chunks * C;
    dim3 grid((unsigned)((C + 31) / 32), (unsigned)chunks), block(32, kSlices);
    LT_LAUNCH(layer_norm_cols_kernel<T>, grid, block, 0, ctx.stream, data<T>(x), data<T>(mean), data<T>(rstd),
              data<T>(gy), M, C, chunk_rows, pw, pb);
    LT_CU_LAUNCHED(who, "layer_norm_cols_kernel");
    LT_LAUNCH(layer_norm_cols_finish_kernel<T>, blocks_for(C), kThreads, 0, ctx.stream, pw, pb, chunks, C,
              data_or_null<T>(gw), data_or_null<T>(gb));
    LT_CU_LAUNCHED(who, "layer_norm_cols_finish_kernel");
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_layer_norm(const lt_tensor *x, const lt_tensor *r, const lt_tensor *w, const lt_tensor *b,
                                         double eps, lt_tensor *s, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd) {
    static const char *who = "cuda layer_norm";
    LT_TRY(check_args(who, x, {r, w, b, s, y, mean, rstd}));
    if (!r != !s) return lt__err(LT_ERR_INTERNAL, "%s: r and s must both be given or both be null", who);
    int64_t C = x->shape[x->ndim - 1], M = lt__numel(x->shape, x->ndim - 1);
    if (M == 0) return LT_OK; /* C == 0 still runs: mean and rstd are NaN (0 / 0), as on the CPU */
    Context &ctx = context_of(x);
    return dispatch_float(x->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return ln_forward<T>(ctx, x, r, w, b, eps, s, y, mean, rstd, M, C);
    });
}

extern "C" lt_status lt__cuda_layer_norm_backward(const lt_tensor *x, const lt_tensor *w, const lt_tensor *mean,
                                                  const lt_tensor *rstd, const lt_tensor *gy, lt_tensor *gx,
                                                  lt_tensor *gw, lt_tensor *gb) {
    static const char *who = "cuda layer_norm_backward";
    LT_TRY(check_args(who, x, {w, mean, rstd, gy, gx, gw, gb}));
    int64_t C = x->shape[x->ndim - 1], M = lt__numel(x->shape, x->ndim - 1);
    if (C == 0) return LT_OK;
    Context &ctx = context_of(x);
    if (M == 0) { /* column sums over no rows */
        size_t bytes = (size_t)C * lt_dtype_size(x->dtype);
        if (gw) LT_CU(cudaMemsetAsync(lt__data(gw), 0, bytes, ctx.stream), who);
        if (gb) LT_CU(cudaMemsetAsync(lt__data(gb), 0, bytes, ctx.stream), who);
        return LT_OK;
    }
    return dispatch_float(x->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return ln_backward<T>(ctx, x, w, mean, rstd, gy, gx, gw, gb, M, C);
    });
}
