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
#include "rowwise.cuh"

namespace lt_cuda {
namespace {

/* The inner-dim kernels' block: 32 adjacent columns by kSlices slices of the softmax dim. */
constexpr int kSlices = 8;

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
