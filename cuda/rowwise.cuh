/* Row-reduction helpers shared by the row-wise kernels (cuda/softmax.cu, cuda/layer_norm.cu, cuda/cross_entropy.cu):
 * the online softmax state, warp and block reductions with a fixed order, and the warp-per-row / block-per-row
 * dispatch. Every reduction here folds in the same order on every run, so results are bit-for-bit reproducible.
 * Single-source like the kernels (cuda/lt_cuda.cuh): shared memory comes from the caller's LT_SHARED. Everything is
 * in an unnamed namespace, so each .cu file gets its own copy. */
#ifndef LT_CUDA_ROWWISE_CUH
#define LT_CUDA_ROWWISE_CUH

#include "common.cuh"

namespace lt_cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
/* Rows up to this many elements get a warp each; longer rows get a block of BlockPerRow::kThreads. */
constexpr int64_t kWarpRowMax = 1024;
/* Grid-stride loops over rows (or tiles) start at most this many blocks. */
constexpr int64_t kMaxRowBlocks = 65535;

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

/* A lane exchange of a scalar or an Online state. A file reducing its own struct adds a shfl_xor overload for it in
 * this namespace (found at instantiation by argument-dependent lookup). */
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
 * size in that group, a reduction over the group, and the group's barrier (which also orders its memory). */
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
    __device__ static void sync() { __syncwarp(); }
};

struct BlockPerRow {
    static constexpr int kThreads = 512;
    static unsigned grid(int64_t rows) { return (unsigned)(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }
    __device__ static int64_t first_row() { return blockIdx.x; }
    __device__ static int64_t row_step() { return gridDim.x; }
    __device__ static int rank() { return (int)threadIdx.x; }
    __device__ static int size() { return (int)blockDim.x; }
    template <class V, class Op> __device__ static V reduce(V v, Op op, V *smem) { return block_reduce(v, op, smem); }
    __device__ static void sync() { __syncthreads(); }
};

} // namespace
} // namespace lt_cuda

#endif
