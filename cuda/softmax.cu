/* CUDA softmax and log-softmax along one dim of a contiguous tensor, and their backward (src/cpu/softmax.c is the
 * reference). The tensor is seen as [outer, n, inner].
 * - The last dim (inner == 1) runs rows: a warp per row up to kWarpRowMax elements, else a block per row. The
 *   forward is an online softmax: each thread keeps a running (max, sum of exp(x - max)) over its strided elements,
 *   the pairs are merged through warp shuffles (and shared memory across warps), then one more pass writes y. So x
 *   is read twice and exp never overflows. The backward reduces sum(gy * y) (softmax) or sum(gy) (log) the same way.
 * - Any other dim runs tiles of 32 adjacent inner columns by 8 slices of the dim (a block of 32 x 8): loads stay
 *   coalesced along the inner dim, each column's 8 partial states are merged in a fixed order through shared
 *   memory, and every thread of the column then writes its own slice.
 * f32 accumulates in f32 and f64 in f64; every reduction has a fixed order, so results are the same on every run. */
#include "common.cuh"

namespace lt_cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
/* Rows up to this many elements get a warp each; longer rows get a block of BlockPerRow::kThreads. */
constexpr int64_t kWarpRowMax = 1024;
/* Grid-stride loops over rows or tiles start at most this many blocks. */
constexpr int64_t kMaxRowBlocks = 65535;
/* The inner-dim kernels' block: 32 adjacent columns by kSlices slices of the softmax dim. */
constexpr int kSlices = 8;

__device__ inline float ex(float v) { return expf(v); }
__device__ inline double ex(double v) { return exp(v); }
__device__ inline float lg(float v) { return logf(v); }
__device__ inline double lg(double v) { return log(v); }

/* The running state of an online softmax: the max m seen so far and s = sum of exp(x - m). The neutral state is
 * (-inf, 0). An element equal to m adds exactly 1, so a leading -inf cannot turn s into NaN (exp(-inf - -inf)). */
template <class T> struct Online { T m, s; };

template <class T> __device__ inline Online<T> online_init() { return Online<T>{(T)-INFINITY, (T)0}; }

template <class T> __device__ inline Online<T> push(Online<T> a, T x) {
    if (x > a.m) {
        a.s = a.s * ex(a.m - x) + (T)1;
        a.m = x;
    } else {
        a.s += x == a.m ? (T)1 : ex(x - a.m);
    }
    return a;
}

/* Symmetric in a and b (the sum of the two rescaled terms), so a butterfly gives every lane the same state. */
struct Merge {
    template <class T> __device__ Online<T> operator()(Online<T> a, Online<T> b) const {
        T m = a.m > b.m ? a.m : b.m;
        T sa = a.m == m ? a.s : a.s * ex(a.m - m), sb = b.m == m ? b.s : b.s * ex(b.m - m);
        return Online<T>{m, sa + sb};
    }
};

struct Add {
    template <class V> __device__ V operator()(V a, V b) const { return a + b; }
};

template <class T> __device__ inline T shfl_xor(T v, int lane_mask) { return __shfl_xor_sync(kFullMask, v, lane_mask); }
template <class T> __device__ inline Online<T> shfl_xor(Online<T> v, int lane_mask) {
    return Online<T>{shfl_xor(v.m, lane_mask), shfl_xor(v.s, lane_mask)};
}

/* Butterfly over the 32 lanes; op is commutative, so every lane ends with the same bits. */
template <class V, class Op> __device__ inline V warp_reduce(V v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, shfl_xor(v, o));
    return v;
}

/* Every thread of the block gets op over all threads: warps reduce, lane 0 of each parks its value in smem (32
 * slots), and every thread folds the slots in warp order. The second barrier lets smem be reused right away. */
template <class V, class Op> __device__ inline V block_reduce(V v, Op op, V *smem) {
    v = warp_reduce(v, op);
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
    __syncthreads();
    V r = smem[0];
    for (unsigned k = 1; k < (blockDim.x >> 5); k++) r = op(r, smem[k]);
    __syncthreads();
    return r;
}

/* How a row kernel spreads rows over threads: the group (a warp, or the whole block) that owns a row, its rank and
 * size in that group, and a reduction over the group. */
struct WarpPerRow {
    static constexpr int kThreads = 128, kRowsPerBlock = kThreads / 32;
    static unsigned grid(int64_t rows) {
        int64_t b = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
        return (unsigned)(b < kMaxRowBlocks ? b : kMaxRowBlocks);
    }
    __device__ static int64_t first_row() { return (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5); }
    __device__ static int64_t row_step() { return (int64_t)gridDim.x * kRowsPerBlock; }
    __device__ static int rank() { return (int)(threadIdx.x & 31); }
    __device__ static int size() { return 32; }
    template <class V, class Op> __device__ static V reduce(V v, Op op, V *) { return warp_reduce(v, op); }
};

struct BlockPerRow {
    static constexpr int kThreads = 512;
    static unsigned grid(int64_t rows) { return (unsigned)(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }
    __device__ static int64_t first_row() { return blockIdx.x; }
    __device__ static int64_t row_step() { return gridDim.x; }
    __device__ static int rank() { return (int)threadIdx.x; }
    __device__ static int size() { return (int)blockDim.x; }
    template <class V, class Op> __device__ static V reduce(V v, Op op, V *smem) { return block_reduce(v, op, smem); }
};

template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    softmax_rows_kernel(const T *x, T *y, int64_t rows, int64_t n, bool take_log) {
    LT_SHARED(Online<T>, red, 32);
    for (int64_t r = G::first_row(); r < rows; r += G::row_step()) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        Online<T> st = online_init<T>();
        for (int64_t j = G::rank(); j < n; j += G::size()) st = push(st, xr[j]);
        st = G::reduce(st, Merge{}, red);
        if (take_log) {
            T ls = lg(st.s);
            for (int64_t j = G::rank(); j < n; j += G::size()) yr[j] = (xr[j] - st.m) - ls;
        } else {
            T inv = (T)1 / st.s;
            for (int64_t j = G::rank(); j < n; j += G::size()) yr[j] = ex(xr[j] - st.m) * inv;
        }
    }
}

template <class T, class G>
__global__ void __launch_bounds__(G::kThreads)
    softmax_backward_rows_kernel(const T *y, const T *gy, T *gx, int64_t rows, int64_t n, bool take_log) {
    LT_SHARED(T, red, 32);
    for (int64_t r = G::first_row(); r < rows; r += G::row_step()) {
        const T *yr = y + r * n, *gr = gy + r * n;
        T *out = gx + r * n;
        T s = 0;
        if (take_log)
            for (int64_t j = G::rank(); j < n; j += G::size()) s += gr[j];
        else
            for (int64_t j = G::rank(); j < n; j += G::size()) s += gr[j] * yr[j];
        s = G::reduce(s, Add{}, red);
        if (take_log)
            for (int64_t j = G::rank(); j < n; j += G::size()) out[j] = gr[j] - ex(yr[j]) * s;
        else
            for (int64_t j = G::rank(); j < n; j += G::size()) out[j] = yr[j] * (gr[j] - s);
    }
}

/* Tile t of the [outer, n, inner] view: outer index t / tiles_per_outer, columns from 32 * (t % tiles_per_outer).
 * Thread (tx, ty) owns column tx of the tile and the elements ty, ty + kSlices, ... of the softmax dim. */
template <class T>
__global__ void __launch_bounds__(32 * kSlices)
    softmax_cols_kernel(const T *x, T *y, int64_t n, int64_t inner, int64_t tiles_per_outer, int64_t tiles,
                        bool take_log) {
    LT_SHARED(Online<T>, part, 32 * kSlices);
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        int64_t o = t / tiles_per_outer, i = (t - o * tiles_per_outer) * 32 + tx;
        bool live = i < inner;
        int64_t base = o * n * inner + i;
        Online<T> st = online_init<T>();
        if (live)
            for (int64_t j = ty; j < n; j += kSlices) st = push(st, x[base + j * inner]);
        part[ty * 32 + tx] = st;
        __syncthreads();
        Online<T> all = part[tx];
        for (int k = 1; k < kSlices; k++) all = Merge{}(all, part[k * 32 + tx]);
        __syncthreads();
        if (!live) continue;
        if (take_log) {
            T ls = lg(all.s);
            for (int64_t j = ty; j < n; j += kSlices) y[base + j * inner] = (x[base + j * inner] - all.m) - ls;
        } else {
            T inv = (T)1 / all.s;
            for (int64_t j = ty; j < n; j += kSlices) y[base + j * inner] = ex(x[base + j * inner] - all.m) * inv;
        }
    }
}

template <class T>
__global__ void __launch_bounds__(32 * kSlices)
    softmax_backward_cols_kernel(const T *y, const T *gy, T *gx, int64_t n, int64_t inner, int64_t tiles_per_outer,
                                 int64_t tiles, bool take_log) {
    LT_SHARED(T, part, 32 * kSlices);
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        int64_t o = t / tiles_per_outer, i = (t - o * tiles_per_outer) * 32 + tx;
        bool live = i < inner;
        int64_t base = o * n * inner + i;
        T s = 0;
        if (live)
            for (int64_t j = ty; j < n; j += kSlices)
                s += take_log ? gy[base + j * inner] : gy[base + j * inner] * y[base + j * inner];
        part[ty * 32 + tx] = s;
        __syncthreads();
        T all = part[tx];
        for (int k = 1; k < kSlices; k++) all += part[k * 32 + tx];
        __syncthreads();
        if (!live) continue;
        for (int64_t j = ty; j < n; j += kSlices) {
            int64_t e = base + j * inner;
            gx[e] = take_log ? gy[e] - ex(y[e]) * all : y[e] * (gy[e] - all);
        }
    }
}

/* The [outer, n, inner] view of a tensor around dim. */
struct Panels {
    int64_t outer, n, inner;
};

Panels panels_of(const lt_tensor *t, int dim) {
    Panels p{1, t->shape[dim], 1};
    for (int k = 0; k < dim; k++) p.outer *= t->shape[k];
    for (int k = dim + 1; k < t->ndim; k++) p.inner *= t->shape[k];
    return p;
}

/* Every tensor of x's dtype (f32 or f64), contiguous, of x's shape; dim one of x's dims. */
lt_status check_args(const char *who, const lt_tensor *x, int dim, const lt_tensor *a, const lt_tensor *b) {
    const lt_tensor *ts[2] = {a, b};
    if (dim < 0 || dim >= x->ndim) return lt__err(LT_ERR_INTERNAL, "%s: dim %d outside [0, %d)", who, dim, x->ndim);
    if (!lt__is_contiguous(x)) return lt__err(LT_ERR_INTERNAL, "%s: expected contiguous tensors", who);
    for (const lt_tensor *t : ts) {
        if (!t) continue;
        if (t->dtype != x->dtype)
            return lt__err(LT_ERR_DTYPE, "%s: tensors mix %s and %s", who, lt_dtype_name(x->dtype),
                           lt_dtype_name(t->dtype));
        if (!lt__is_contiguous(t) || numel(t) != numel(x))
            return lt__err(LT_ERR_INTERNAL, "%s: expected contiguous tensors of one shape", who);
    }
    return LT_OK;
}

dim3 cols_block() { return dim3(32, kSlices); }

/* Tiles of 32 inner columns: per outer index, and in all; the grid is capped and strides over them. */
void tiles_of(const Panels &p, int64_t *per_outer, int64_t *tiles, unsigned *grid) {
    *per_outer = (p.inner + 31) / 32;
    *tiles = p.outer * *per_outer;
    *grid = (unsigned)(*tiles < kMaxRowBlocks ? *tiles : kMaxRowBlocks);
}

template <class T> lt_status softmax_forward(Context &ctx, const T *x, T *y, const Panels &p, bool log) {
    static const char *who = "cuda softmax";
    if (p.inner == 1 && p.n <= kWarpRowMax) {
        LT_LAUNCH((softmax_rows_kernel<T, WarpPerRow>), WarpPerRow::grid(p.outer), WarpPerRow::kThreads, 0, ctx.stream,
                  x, y, p.outer, p.n, log);
        LT_CU_LAUNCHED(who, "softmax_rows_kernel");
    } else if (p.inner == 1) {
        LT_LAUNCH((softmax_rows_kernel<T, BlockPerRow>), BlockPerRow::grid(p.outer), BlockPerRow::kThreads, 0,
                  ctx.stream, x, y, p.outer, p.n, log);
        LT_CU_LAUNCHED(who, "softmax_rows_kernel");
    } else {
        int64_t per_outer, tiles;
        unsigned grid;
        tiles_of(p, &per_outer, &tiles, &grid);
        LT_LAUNCH(softmax_cols_kernel<T>, grid, cols_block(), 0, ctx.stream, x, y, p.n, p.inner, per_outer, tiles, log);
        LT_CU_LAUNCHED(who, "softmax_cols_kernel");
    }
    return LT_OK;
}

template <class T> lt_status softmax_backward(Context &ctx, const T *y, const T *gy, T *gx, const Panels &p, bool log) {
    static const char *who = "cuda softmax_backward";
    if (p.inner == 1 && p.n <= kWarpRowMax) {
        LT_LAUNCH((softmax_backward_rows_kernel<T, WarpPerRow>), WarpPerRow::grid(p.outer), WarpPerRow::kThreads, 0,
                  ctx.stream, y, gy, gx, p.outer, p.n, log);
        LT_CU_LAUNCHED(who, "softmax_backward_rows_kernel");
    } else if (p.inner == 1) {
        LT_LAUNCH((softmax_backward_rows_kernel<T, BlockPerRow>), BlockPerRow::grid(p.outer), BlockPerRow::kThreads, 0,
                  ctx.stream, y, gy, gx, p.outer, p.n, log);
        LT_CU_LAUNCHED(who, "softmax_backward_rows_kernel");
    } else {
        int64_t per_outer, tiles;
        unsigned grid;
        tiles_of(p, &per_outer, &tiles, &grid);
        LT_LAUNCH(softmax_backward_cols_kernel<T>, grid, cols_block(), 0, ctx.stream, y, gy, gx, p.n, p.inner,
                  per_outer, tiles, log);
        LT_CU_LAUNCHED(who, "softmax_backward_cols_kernel");
    }
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_softmax(const lt_tensor *x, int dim, bool log, lt_tensor *y) {
    static const char *who = "cuda softmax";
    LT_TRY(check_args(who, x, dim, y, nullptr));
    if (numel(x) == 0) return LT_OK;
    Context &ctx = context_of(x);
    Panels p = panels_of(x, dim);
    return dispatch_float(x->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return softmax_forward<T>(ctx, data<T>(x), data<T>(y), p, log);
    });
}

extern "C" lt_status lt__cuda_softmax_backward(const lt_tensor *y, const lt_tensor *gy, int dim, bool log,
                                               lt_tensor *gx) {
    static const char *who = "cuda softmax_backward";
    LT_TRY(check_args(who, y, dim, gy, gx));
    if (numel(y) == 0) return LT_OK;
    Context &ctx = context_of(y);
    Panels p = panels_of(y, dim);
    return dispatch_float(y->dtype, who, [&](auto tag) {
        using T = decltype(tag);
        return softmax_backward<T>(ctx, data<T>(y), data<T>(gy), data<T>(gx), p, log);
    });
}
