/* CUDA reductions: sum and max over any set of dims of a strided tensor, the max's backward, and the sum of squares
 * behind the global gradient norm. src/cpu/reduce.c and src/cpu/optim.c are the references.
 *
 * Every result is deterministic: each value is folded by a fixed tree whose shape depends only on the tensor's
 * shape and strides (never on timing or atomics). Sums accumulate in double, as the CPU does, so an f32 sum rounds
 * once at the end; a max is exact in the element type, and NaN propagates through it as in PyTorch.
 *
 * reduce plans as the CPU does: size-1 dims dropped, the rest sorted by x stride (largest first) and merged where
 * contiguous, then split into kept and reduced dims. Two layouts follow:
 *  - inner: the smallest-stride dim is reduced, so each output folds runs of x. A group of L threads takes one
 *    output (L = 1 for short rows, a warp up to 4096 elements, the whole block beyond), its lanes folding every L-th
 *    element before a shuffle / shared-memory tree. When there are few outputs for long rows, each row is cut into
 *    chunks (a count fixed by the shape) whose partial results a second kernel folds in order.
 *  - outer: the smallest-stride dim is kept, so each output is a column. A block of W x (256 / W) threads takes W
 *    adjacent columns (coalesced reads), its rows folding every (256 / W)-th reduced element, then the rows are
 *    folded in order through shared memory; long reductions over few columns are chunked as above. */
#include "common.cuh"

#include <math.h>

namespace lt_cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
/* Chunking aims at about this many work items (blocks' worth) per launch, and gives each chunk at least
 * kChunkMinPerThread elements per thread. Both only shape the fold tree; they never depend on the device. */
constexpr int64_t kTargetItems = 1024;
constexpr int64_t kChunkMinPerThread = 32;
constexpr int64_t kMaxChunks = 1024;

/* ---- Geometry: dims with their sizes and strides in N tensors, outermost first ---- */

template <int N> struct Dims {
    int n;
    int64_t size[LT_MAX_DIMS];
    int64_t st[N][LT_MAX_DIMS];
};

template <int N> int64_t count(const Dims<N> &d) {
    int64_t c = 1;
    for (int k = 0; k < d.n; k++) c *= d.size[k];
    return c;
}

/* The offsets in each of the N tensors of the element with row-major index lin < count(d) over d's dims (all 0 for
 * no dims). A single dim costs no division. */
template <int N> __device__ inline void dims_offsets(const Dims<N> &d, int64_t lin, int64_t *off) {
    for (int k = 0; k < N; k++) off[k] = 0;
    if (d.n == 0) return;
    for (int j = d.n - 1; j > 0; j--) {
        int64_t r;
        lin = div_rem(lin, d.size[j], &r);
        for (int k = 0; k < N; k++) off[k] += r * d.st[k][j];
    }
    for (int k = 0; k < N; k++) off[k] += lin * d.st[k][0];
}

/* ---- Folds ---- */

struct SumOp {
    using Acc = double; /* every sum accumulates in double, as the CPU's */
    __device__ static double id() { return 0.0; }
    __device__ static double fold(double a, double v) { return a + v; }
};
template <class T> struct MaxOp {
    using Acc = T; /* exact */
    __device__ static T id() { return -INFINITY; }
    /* NaN propagates: once the accumulator is NaN it stays NaN. */
    __device__ static T fold(T a, T v) { return (v > a || v != v) ? v : a; }
};

/* Butterfly over the warp: every lane ends with the same value (each step folds the same pair). */
template <class Op, class A> __device__ inline A warp_fold(A v) {
    for (int o = 16; o > 0; o >>= 1) v = Op::fold(v, __shfl_xor_sync(kFullMask, v, o));
    return v;
}

/* The fold of v over a 1-D block (a multiple of 32 threads), returned to every thread; smem holds 32 values. All
 * threads must call it. */
template <class Op, class A> __device__ inline A block_fold(A v, A *smem) {
    const int lane = (int)(threadIdx.x & 31), warp = (int)(threadIdx.x >> 5), nwarps = (int)(blockDim.x >> 5);
    v = warp_fold<Op>(v);
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    A r = lane < nwarps ? smem[lane] : Op::id();
    r = warp_fold<Op>(r);
    __syncthreads(); /* smem may be written again by the caller's next round */
    return r;
}

/* ---- reduce: inner layout ---- */

/* Work item `item` = (output o, chunk c) of nout * chunks, taken by a group of L threads (L = 1, 32 or the block).
 * kept carries x and y strides, red x strides. With one chunk the result goes to y, else to part[item]. */
template <class T, class Op, int L>
__global__ void __launch_bounds__(kThreads)
    reduce_inner(const T *x, T *y, typename Op::Acc *part, Dims<2> kept, Dims<1> red, int64_t nout, int64_t nred,
                 int64_t chunks, int64_t chunk) {
    using A = typename Op::Acc;
    LT_SHARED(A, smem, 32);
    constexpr int G = kThreads / L; /* groups per block */
    const int group = (int)threadIdx.x / L, lane = (int)threadIdx.x % L;
    const int64_t items = nout * chunks;
    /* the loop's trip count depends on the block only, so every thread reaches the folds' barriers */
    for (int64_t base = blockIdx.x * (int64_t)G; base < items; base += (int64_t)gridDim.x * G) {
        const int64_t item = base + group;
        A acc = Op::id();
        int64_t off[2] = {0, 0};
        if (item < items) {
            const int64_t o = item / chunks, c = item - o * chunks;
            dims_offsets(kept, o, off);
            const int64_t lo = c * chunk, hi = lo + chunk < nred ? lo + chunk : nred;
            const T *xb = x + off[0];
            if (red.n == 1) {
                const int64_t rs = red.st[0][0];
                for (int64_t r = lo + lane; r < hi; r += L) acc = Op::fold(acc, (A)xb[r * rs]);
            } else {
                for (int64_t r = lo + lane; r < hi; r += L) {
                    int64_t ro;
                    dims_offsets(red, r, &ro);
                    acc = Op::fold(acc, (A)xb[ro]);
                }
            }
        }
        if (L == 32) acc = warp_fold<Op>(acc);
        if (L > 32) acc = block_fold<Op>(acc, smem);
        if (item < items && lane == 0) {
            if (chunks == 1)
                y[off[1]] = (T)acc;
            else
                part[item] = acc;
        }
    }
}

/* ---- reduce: outer layout ---- */

/* Work item = (outer output o, tile of W columns, chunk c). The block's 256 threads form S slots of R rows of W
 * columns (W, R powers of 2, thread t = (slot * R + row) * W + column, so a warp reads adjacent columns): each slot
 * takes one item, its rows fold every R-th reduced element of their column, then row 0 folds the R partial results
 * in order. Few reduced elements get few rows and more slots, so no thread idles through a whole item. Column j of
 * output o starts at x[xo(o) + j * cxs]; its result goes to y[yo(o) + j * cys], or part[(o * ncol + j) * chunks + c].
 */
template <class T, class Op, bool kFlat>
__global__ void __launch_bounds__(kThreads)
    reduce_outer(const T *x, T *y, typename Op::Acc *part, Dims<2> outer, int64_t nouter, int64_t ncol, int64_t cxs,
                 int64_t cys, Dims<1> red, int64_t nred, int64_t chunks, int64_t chunk, int log_w, int log_r) {
    using A = typename Op::Acc;
    LT_SHARED(A, smem, kThreads);
    const int W = 1 << log_w, R = 1 << log_r, S = kThreads >> (log_w + log_r);
    const int t = (int)threadIdx.x, tx = t & (W - 1), ty = (t >> log_w) & (R - 1), slot = t >> (log_w + log_r);
    const int64_t ntiles = (ncol + W - 1) / W, items = nouter * ntiles * chunks;
    for (int64_t base = blockIdx.x * (int64_t)S; base < items; base += (int64_t)gridDim.x * S) {
        const int64_t item = base + slot;
        A acc = Op::id();
        int64_t o = 0, j = ncol, c = 0, off[2] = {0, 0};
        if (item < items) {
            const int64_t tile = item / chunks;
            c = item - tile * chunks;
            o = tile / ntiles;
            j = (tile - o * ntiles) * W + tx;
            dims_offsets(outer, o, off);
        }
        if (j < ncol) {
            const T *xb = x + off[0] + j * cxs;
            const int64_t lo = c * chunk, hi = lo + chunk < nred ? lo + chunk : nred;
            if (kFlat) { /* at most one reduced dim: walk a pointer */
                const int64_t rs = red.n ? red.st[0][0] : 0, step = rs * R;
                const T *q = xb + (lo + ty) * rs;
                for (int64_t r = lo + ty; r < hi; r += R, q += step) acc = Op::fold(acc, (A)*q);
            } else {
                for (int64_t r = lo + ty; r < hi; r += R) {
                    int64_t ro;
                    dims_offsets(red, r, &ro);
                    acc = Op::fold(acc, (A)xb[ro]);
                }
            }
        }
        smem[t] = acc;
        __syncthreads();
        if (ty == 0 && j < ncol) {
            A v = smem[t];
            for (int k = 1; k < R; k++) v = Op::fold(v, smem[t + (k << log_w)]);
            if (chunks == 1)
                y[off[1] + j * cys] = (T)v;
            else
                part[(o * ncol + j) * chunks + c] = v;
        }
        __syncthreads();
    }
}

/* ---- reduce: the chunks of each output folded in order, one warp per output ---- */

template <class T, class Op>
__global__ void __launch_bounds__(kThreads)
    reduce_finish(const typename Op::Acc *part, T *y, Dims<2> kept, int64_t nout, int64_t chunks) {
    using A = typename Op::Acc;
    constexpr int G = kThreads / 32;
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    for (int64_t base = blockIdx.x * (int64_t)G; base < nout; base += (int64_t)gridDim.x * G) {
        const int64_t o = base + warp;
        A acc = Op::id();
        if (o < nout)
            for (int64_t c = lane; c < chunks; c += 32) acc = Op::fold(acc, part[o * chunks + c]);
        acc = warp_fold<Op>(acc);
        if (o < nout && lane == 0) {
            int64_t off[2];
            dims_offsets(kept, o, off);
            y[off[1]] = (T)acc;
        }
    }
}

/* ---- reduce: planning ---- */

inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

/* Splits x's dims into kept (x and y strides) and reduced (x strides) sets as the CPU does: size-1 dims dropped, the
 * rest sorted by x stride, largest first (stable), neighbours of one kind merged where contiguous in x and y.
 * Returns whether the innermost (smallest-stride) dim is reduced. */
bool make_plan(const lt_tensor *x, uint32_t mask, const lt_tensor *y, Dims<2> *kept, Dims<1> *red) {
    int n = 0;
    int64_t size[LT_MAX_DIMS], xs[LT_MAX_DIMS], ys[LT_MAX_DIMS];
    bool is_red[LT_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        if (x->shape[k] == 1) continue;
        const bool r = (mask >> k) & 1u;
        int at = n;
        while (at > 0 && abs64(xs[at - 1]) < abs64(x->strides[k])) at--;
        for (int j = n; j > at; j--) {
            size[j] = size[j - 1];
            xs[j] = xs[j - 1];
            ys[j] = ys[j - 1];
            is_red[j] = is_red[j - 1];
        }
        size[at] = x->shape[k];
        xs[at] = x->strides[k];
        ys[at] = r ? 0 : y->strides[k];
        is_red[at] = r;
        n++;
    }
    *kept = Dims<2>{};
    *red = Dims<1>{};
    for (int k = 0; k < n; k++) {
        const bool merge = k > 0 && is_red[k - 1] == is_red[k];
        if (is_red[k]) {
            Dims<1> &d = *red;
            if (merge && d.st[0][d.n - 1] == xs[k] * size[k]) {
                d.size[d.n - 1] *= size[k];
                d.st[0][d.n - 1] = xs[k];
            } else {
                d.size[d.n] = size[k];
                d.st[0][d.n++] = xs[k];
            }
        } else {
            Dims<2> &d = *kept;
            if (merge && d.st[0][d.n - 1] == xs[k] * size[k] && d.st[1][d.n - 1] == ys[k] * size[k]) {
                d.size[d.n - 1] *= size[k];
                d.st[0][d.n - 1] = xs[k];
                d.st[1][d.n - 1] = ys[k];
            } else {
                d.size[d.n] = size[k];
                d.st[0][d.n] = xs[k];
                d.st[1][d.n++] = ys[k];
            }
        }
    }
    return n == 0 || is_red[n - 1];
}

/* The number of chunks each of `outputs` reductions of nred elements is cut into, by `threads` threads a chunk. */
int64_t chunks_for(int64_t outputs, int64_t nred, int64_t threads) {
    if (outputs >= kTargetItems) return 1;
    int64_t by_items = (kTargetItems + outputs - 1) / outputs, by_size = nred / (threads * kChunkMinPerThread);
    int64_t c = by_items < by_size ? by_items : by_size;
    return c < 1 ? 1 : c > kMaxChunks ? kMaxChunks : c;
}

template <class T, class Op, int L>
lt_status launch_inner(Context &ctx, const T *x, T *y, typename Op::Acc *part, const Dims<2> &kept, const Dims<1> &red,
                       int64_t nout, int64_t nred, int64_t chunks, int64_t chunk, const char *who) {
    LT_LAUNCH((reduce_inner<T, Op, L>), blocks_for(nout * chunks, kThreads / L), kThreads, 0, ctx.stream, x, y, part,
              kept, red, nout, nred, chunks, chunk);
    LT_CU_LAUNCHED(who, "reduce_inner");
    return LT_OK;
}

template <class T, class Op> lt_status reduce_t(const lt_tensor *xt, uint32_t mask, lt_tensor *yt) {
    static const char *who = "cuda reduce";
    using A = typename Op::Acc;
    Context &ctx = context_of(yt);
    const T *x = data<const T>(xt);
    T *y = data<T>(yt);
    Dims<2> kept;
    Dims<1> red;
    const bool inner = make_plan(xt, mask, yt, &kept, &red) || kept.n == 0;
    const int64_t nout = count(kept), nred = count(red);
    Scratch scratch;
    int64_t chunks = 1, chunk = nred;
    auto make_chunks = [&](int64_t outputs, int64_t threads) -> lt_status {
        chunks = chunks_for(outputs, nred, threads);
        chunk = (nred + chunks - 1) / chunks;
        chunks = (nred + chunk - 1) / chunk;
        if (chunks > 1) LT_TRY(scratch.alloc(ctx, sizeof(A) * (size_t)(nout * chunks), who));
        return LT_OK;
    };
    if (inner) {
        if (nred <= 16) {
            LT_TRY((launch_inner<T, Op, 1>(ctx, x, y, nullptr, kept, red, nout, nred, 1, nred, who)));
        } else if (nred <= 4096) {
            LT_TRY((launch_inner<T, Op, 32>(ctx, x, y, nullptr, kept, red, nout, nred, 1, nred, who)));
        } else {
            LT_TRY(make_chunks(nout, kThreads));
            LT_TRY(
                (launch_inner<T, Op, kThreads>(ctx, x, y, scratch.as<A>(), kept, red, nout, nred, chunks, chunk, who)));
        }
    } else {
        Dims<2> outer = kept;
        outer.n--;
        const int64_t ncol = kept.size[outer.n], cxs = kept.st[0][outer.n], cys = kept.st[1][outer.n];
        const int64_t nouter = count(outer);
        /* W: the columns a slot covers (up to a warp); R: rows, up to one per 8 reduced elements */
        int log_w = 0, log_r = 0;
        while (log_w < 5 && ((int64_t)1 << log_w) < ncol) log_w++;
        while (log_w + log_r < 8 && ((int64_t)8 << log_r) < nred) log_r++;
        const int slots = kThreads >> (log_w + log_r);
        const int64_t tiles = nouter * ((ncol + (1 << log_w) - 1) >> log_w);
        LT_TRY(make_chunks(tiles, (int64_t)1 << log_r));
        if (red.n <= 1)
            LT_LAUNCH((reduce_outer<T, Op, true>), blocks_for(tiles * chunks, slots), kThreads, 0, ctx.stream, x, y,
                      scratch.as<A>(), outer, nouter, ncol, cxs, cys, red, nred, chunks, chunk, log_w, log_r);
        else
            LT_LAUNCH((reduce_outer<T, Op, false>), blocks_for(tiles * chunks, slots), kThreads, 0, ctx.stream, x, y,
                      scratch.as<A>(), outer, nouter, ncol, cxs, cys, red, nred, chunks, chunk, log_w, log_r);
        LT_CU_LAUNCHED(who, "reduce_outer");
    }
    if (chunks > 1) {
        LT_LAUNCH((reduce_finish<T, Op>), blocks_for(nout, kThreads / 32), kThreads, 0, ctx.stream, scratch.as<A>(), y,
                  kept, nout, chunks);
        LT_CU_LAUNCHED(who, "reduce_finish");
    }
    return LT_OK;
}

/* ---- max_backward ---- */

/* One output per group of L threads: each lane scans its share of the group (every L-th element in logical
 * row-major order) up to its first element equal to the max (or NaN where the max is NaN); the smallest such index
 * over the group receives gy. kept carries x, y, gy and gx strides; red x and gx strides. gx is already zero. */
template <class T, int L>
__global__ void __launch_bounds__(kThreads) max_backward_kernel(const T *x, const T *y, const T *gy, T *gx,
                                                                Dims<4> kept, Dims<2> red, int64_t nout, int64_t nred) {
    LT_SHARED(int64_t, smem, 32);
    constexpr int G = kThreads / L;
    const int group = (int)threadIdx.x / L, lane = (int)threadIdx.x % L;
    for (int64_t base = blockIdx.x * (int64_t)G; base < nout; base += (int64_t)gridDim.x * G) {
        const int64_t o = base + group;
        int64_t first = nred, off[4] = {0, 0, 0, 0};
        if (o < nout) {
            dims_offsets(kept, o, off);
            const T target = y[off[1]];
            const bool nan = target != target;
            for (int64_t r = lane; r < nred; r += L) {
                int64_t ro[2];
                dims_offsets(red, r, ro);
                const T v = x[off[0] + ro[0]];
                if (v == target || (nan && v != v)) {
                    first = r;
                    break;
                }
            }
        }
        if (L >= 32)
            for (int s = 16; s > 0; s >>= 1) {
                const int64_t other = __shfl_xor_sync(kFullMask, first, s);
                first = other < first ? other : first;
            }
        if (L > 32) {
            const int wl = (int)(threadIdx.x & 31), warp = (int)(threadIdx.x >> 5);
            if (wl == 0) smem[warp] = first;
            __syncthreads();
            first = nred;
            for (int k = 0; k < L / 32; k++) first = smem[k] < first ? smem[k] : first;
            __syncthreads();
        }
        if (o < nout && lane == 0 && first < nred) {
            int64_t ro[2];
            dims_offsets(red, first, ro);
            gx[off[3] + ro[1]] = gy[off[2]];
        }
    }
}

template <class T>
lt_status max_backward_t(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy, uint32_t mask, lt_tensor *gx) {
    static const char *who = "cuda max_backward";
    Context &ctx = context_of(gx);
    LT_CU(cudaMemsetAsync(lt__data(gx), 0, (size_t)numel(gx) * sizeof(T), ctx.stream), who);
    if (numel(x) == 0) return LT_OK;
    /* dims in logical order, so that "first" means what the user sees; size-1 dims change no offset */
    Dims<4> kept{};
    Dims<2> red{};
    for (int k = 0; k < x->ndim; k++) {
        if (x->shape[k] == 1) continue;
        if ((mask >> k) & 1u) {
            red.size[red.n] = x->shape[k];
            red.st[0][red.n] = x->strides[k];
            red.st[1][red.n++] = gx->strides[k];
        } else {
            kept.size[kept.n] = x->shape[k];
            kept.st[0][kept.n] = x->strides[k];
            kept.st[1][kept.n] = y->strides[k];
            kept.st[2][kept.n] = gy->strides[k];
            kept.st[3][kept.n++] = gx->strides[k];
        }
    }
    const int64_t nout = count(kept), nred = count(red);
    const T *px = data<const T>(x), *py = data<const T>(y), *pg = data<const T>(gy);
    T *pgx = data<T>(gx);
    if (nred <= 16) {
        LT_LAUNCH((max_backward_kernel<T, 1>), blocks_for(nout, kThreads), kThreads, 0, ctx.stream, px, py, pg, pgx,
                  kept, red, nout, nred);
    } else if (nred <= 4096) {
        LT_LAUNCH((max_backward_kernel<T, 32>), blocks_for(nout, kThreads / 32), kThreads, 0, ctx.stream, px, py, pg,
                  pgx, kept, red, nout, nred);
    } else {
        LT_LAUNCH((max_backward_kernel<T, kThreads>), blocks_for(nout, 1), kThreads, 0, ctx.stream, px, py, pg, pgx,
                  kept, red, nout, nred);
    }
    LT_CU_LAUNCHED(who, "max_backward_kernel");
    return LT_OK;
}

/* ---- sumsq ---- */

constexpr int kSumsqUnroll = 4;
/* Blocks of the first pass: one per 16 elements a thread, at most kSumsqMaxBlocks (fixed by n alone). */
constexpr int64_t kSumsqPerThread = 16;
constexpr int64_t kSumsqMaxBlocks = 1024;

/* part[blockIdx.x] = sum of x[i]^2 in double over the block's grid-stride share of x. */
template <class S> __global__ void __launch_bounds__(kThreads) sumsq_partial(const S *x, int64_t n, double *part) {
    LT_SHARED(double, smem, 32);
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    double acc = 0.0;
    for (; i + (kSumsqUnroll - 1) * step < n; i += kSumsqUnroll * step) {
        double e[kSumsqUnroll];
        for (int u = 0; u < kSumsqUnroll; u++) e[u] = convert<double>(x[i + u * step]);
        for (int u = 0; u < kSumsqUnroll; u++) acc += e[u] * e[u];
    }
    for (; i < n; i += step) {
        const double e = convert<double>(x[i]);
        acc += e * e;
    }
    acc = block_fold<SumOp>(acc, smem);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

/* *out = the sum of part[0..n) by one block. */
__global__ void __launch_bounds__(kThreads) sumsq_finish(const double *part, int64_t n, double *out) {
    LT_SHARED(double, smem, 32);
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += part[i];
    acc = block_fold<SumOp>(acc, smem);
    if (threadIdx.x == 0) *out = acc;
}

template <class S> lt_status sumsq_t(const lt_tensor *x, double *out) {
    static const char *who = "cuda sumsq";
    const int64_t n = numel(x);
    Context &ctx = context_of(x);
    int64_t blocks = (n + kThreads * kSumsqPerThread - 1) / (kThreads * kSumsqPerThread);
    blocks = blocks < 1 ? 1 : blocks > kSumsqMaxBlocks ? kSumsqMaxBlocks : blocks;
    Scratch part;
    LT_TRY(part.alloc(ctx, sizeof(double) * (size_t)(blocks + 1), who));
    double *p = part.as<double>();
    LT_LAUNCH((sumsq_partial<S>), (unsigned)blocks, kThreads, 0, ctx.stream, data<const S>(x), n, p);
    LT_CU_LAUNCHED(who, "sumsq_partial");
    double *result = p;
    if (blocks > 1) {
        result = p + blocks;
        LT_LAUNCH(sumsq_finish, 1, kThreads, 0, ctx.stream, p, blocks, result);
        LT_CU_LAUNCHED(who, "sumsq_finish");
    }
    double host = 0.0;
    LT_CU(cudaMemcpyAsync(&host, result, sizeof host, cudaMemcpyDeviceToHost, ctx.stream), who);
    LT_TRY(sync(ctx, who));
    *out = host;
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_reduce(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y) {
    if ((x->dtype != LT_F32 && x->dtype != LT_F64) || y->dtype != x->dtype)
        return lt__err(LT_ERR_DTYPE, "cuda reduce: x is %s and y is %s, expected both f32 or both f64",
                       lt_dtype_name(x->dtype), lt_dtype_name(y->dtype));
    if ((unsigned)op >= LT_ROP_COUNT) return lt__err(LT_ERR_INTERNAL, "cuda reduce: unknown op %d", (int)op);
    if (numel(y) == 0) return LT_OK;
    if (numel(x) == 0) return lt__cuda_fill(y, op == LT_ROP_SUM ? 0.0 : -INFINITY);
    if (x->dtype == LT_F32)
        return op == LT_ROP_SUM ? reduce_t<float, SumOp>(x, dim_mask, y)
                                : reduce_t<float, MaxOp<float>>(x, dim_mask, y);
    return op == LT_ROP_SUM ? reduce_t<double, SumOp>(x, dim_mask, y) : reduce_t<double, MaxOp<double>>(x, dim_mask, y);
}

extern "C" lt_status lt__cuda_max_backward(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                           uint32_t dim_mask, lt_tensor *gx) {
    if ((x->dtype != LT_F32 && x->dtype != LT_F64) || y->dtype != x->dtype || gy->dtype != x->dtype ||
        gx->dtype != x->dtype)
        return lt__err(LT_ERR_DTYPE, "cuda max_backward: expected x, y, gy and gx all f32 or all f64");
    if (!lt__is_contiguous(gx) || !lt__same_shape(gx, x))
        return lt__err(LT_ERR_INTERNAL, "cuda max_backward: gx must be contiguous and of x's shape");
    if (numel(gx) == 0) return LT_OK;
    return x->dtype == LT_F32 ? max_backward_t<float>(x, y, gy, dim_mask, gx)
                              : max_backward_t<double>(x, y, gy, dim_mask, gx);
}

/* x contiguous, any float dtype; the sum is accumulated in double. */
extern "C" lt_status lt__cuda_sumsq(const lt_tensor *x, double *out) {
    static const char *who = "cuda sumsq";
    if (!x || !out) return lt__err(LT_ERR_INTERNAL, "%s: x and out must not be NULL", who);
    switch (x->dtype) {
    case LT_F32:
    case LT_F64:
    case LT_BF16:
    case LT_F16: break;
    default: return lt__err(LT_ERR_INTERNAL, "%s: x must be a float tensor", who);
    }
    const int64_t n = numel(x);
    if (n == 0) {
        *out = 0.0;
        return LT_OK;
    }
    if (!lt__is_contiguous(x)) return lt__err(LT_ERR_INTERNAL, "%s: x must be contiguous", who);
    switch (x->dtype) {
    case LT_F32: return sumsq_t<float>(x, out);
    case LT_F64: return sumsq_t<double>(x, out);
    case LT_BF16: return sumsq_t<__nv_bfloat16>(x, out);
    default: return sumsq_t<__half>(x, out);
    }
}
