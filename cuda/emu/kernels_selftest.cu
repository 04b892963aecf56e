/* Kernels that exist only to test the CPU emulator (tests/cuda/): correct ones it must run exactly, and buggy ones
 * (a missing barrier, divergent barriers, bad shuffle masks) it must catch. Real CUDA: nvcc's gate compiles them too.
 * Nothing in libtrain may call them; they live under cuda/emu/ so the library's top-level glob of cuda/ (not recursive)
 * never picks them up. */
#include <curand_kernel.h>

#include "../lt_cuda.cuh"

/* Sum of x[0..n) into partial[blockIdx.x]: a grid-stride loop per thread, a shuffle tree per warp, then warp 0 sums
 * the warps' results from shared memory. blockDim.x must be a multiple of 32 (full-warp masks). */
__global__ void selftest_reduce_sum(const float *x, int n, float *partial) {
    LT_SHARED(float, warp_sums, 32);
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nwarps ? warp_sums[lane] : 0.0f;
        for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
        if (lane == 0) partial[blockIdx.x] = v;
    }
}

/* out (cols x rows) = transpose of in (rows x cols), through a 32x33 shared tile: reads and writes both run along
 * rows of global memory, and the padding column keeps the tile's column reads free of bank conflicts.
 * Block (32, R) for any R dividing 32; grid covers the matrix in 32x32 tiles. */
typedef float selftest_tile_row[33];
__global__ void selftest_transpose(const float *in, float *out, int rows, int cols) {
    LT_SHARED(selftest_tile_row, tile, 32);
    int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        if (c < cols && r0 + j < rows) tile[j][threadIdx.x] = in[(size_t)(r0 + j) * cols + c];
    }
    __syncthreads();
    int r = r0 + threadIdx.x, c0 = blockIdx.x * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        if (r < rows && c0 + j < cols) out[(size_t)(c0 + j) * rows + r] = tile[threadIdx.x][j];
    }
}

/* Reverses each block-sized chunk of in[0..n) (the last one may be short) through dynamic shared memory of
 * blockDim.x floats. */
__global__ void selftest_reverse_chunks(const float *in, float *out, int n) {
    LT_DYNAMIC_SHARED(float, chunk);
    int base = blockIdx.x * blockDim.x, t = threadIdx.x;
    int len = n - base < (int)blockDim.x ? n - base : (int)blockDim.x;
    if (t < len) chunk[t] = in[base + t];
    __syncthreads();
    if (t < len) out[base + t] = chunk[len - 1 - t];
}

/* out[i] = in[i] - in[i-1] within each block (the first of a block subtracts 0), through shared memory. Without the
 * barrier a thread may read its neighbour's slot before the neighbour wrote it: in index order the emulator runs
 * thread t-1 first and hides the bug, which is why it can shuffle the order. */
__device__ void selftest_adjacent_diff_body(const float *in, float *out, int n, bool barrier) {
    LT_SHARED(float, s, 1024);
    int i = blockIdx.x * blockDim.x + threadIdx.x, t = threadIdx.x;
    if (i < n) s[t] = in[i];
    if (barrier) __syncthreads();
    if (i < n) out[i] = s[t] - (t > 0 ? s[t - 1] : 0.0f);
}

__global__ void selftest_adjacent_diff(const float *in, float *out, int n) {
    selftest_adjacent_diff_body(in, out, n, true);
}

// BUG on purpose: the barrier is missing.
__global__ void selftest_adjacent_diff_missing_barrier(const float *in, float *out, int n) {
    selftest_adjacent_diff_body(in, out, n, false);
}

/* BUG on purpose. mode 0: the first half of the block waits at a barrier the second half never reaches (it exits);
 * mode 1: even and odd threads wait at two different barriers. */
__global__ void selftest_divergent_barrier(int mode, int *out) {
    int t = threadIdx.x;
    if (mode == 0) {
        if (t < (int)blockDim.x / 2) __syncthreads();
    } else if (t % 2 == 0) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[t] = t;
}

/* BUG on purpose: full-warp shuffles where the warp is not full. mode 0: lanes 16..31 have exited; mode 1: the
 * block is not a multiple of 32 threads, so the last warp's upper lanes do not exist; mode 2: lane 0's mask leaves
 * lane 0 out. */
__global__ void selftest_bad_shuffle_mask(int mode, int *out) {
    int t = threadIdx.x, lane = t % 32, v = t;
    if (mode == 0 && lane >= 16) return;
    unsigned mask = mode == 2 && lane == 0 ? 0xfffffffeu : 0xffffffffu;
    v += __shfl_down_sync(mask, v, 1);
    out[t] = v;
}

/* Every warp collective, one result each per thread into out[7 * t + k], for the test's reference of the CUDA
 * programming guide's rules: shfl(src = delta), up, down and xor by delta within sections of `width`, then
 * ballot/any/all of in[t] > 0. */
__global__ void selftest_warp_ops(const int *in, int *out, int delta, int width) {
    int t = threadIdx.x, v = in[t];
    int *o = out + 7 * t;
    o[0] = __shfl_sync(0xffffffffu, v, delta, width);
    o[1] = __shfl_up_sync(0xffffffffu, v, delta, width);
    o[2] = __shfl_down_sync(0xffffffffu, v, delta, width);
    o[3] = __shfl_xor_sync(0xffffffffu, v, delta, width);
    o[4] = (int)__ballot_sync(0xffffffffu, v > 0);
    o[5] = __any_sync(0xffffffffu, v > 0);
    __syncwarp();
    o[6] = __all_sync(0xffffffffu, v > 0);
}

/* cuRAND's Philox on the device: thread i draws words 4i..4i+3 of the stream `seed` as uniforms in (0, 1]. */
__global__ void selftest_curand_uniform4(unsigned long long seed, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    curandStatePhilox4_32_10_t state;
    curand_init(seed, 0, 4ull * i, &state);
    out[i] = curand_uniform4(&state);
}

/* 40 KiB of static shared memory: with dynamic memory on top it crosses the 48 KiB a kernel gets by default. */
__global__ void selftest_smem_hog(float *out) {
    LT_SHARED(float, big, 10240);
    LT_DYNAMIC_SHARED(float, extra);
    big[threadIdx.x] = (float)threadIdx.x;
    extra[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = big[blockDim.x - 1 - threadIdx.x] + extra[threadIdx.x];
}

/* `iters` block barriers per thread: the emulator's switching cost, measured by the test. */
__global__ void selftest_barrier_loop(int iters, int *out) {
    int acc = 0;
    for (int k = 0; k < iters; k++) {
        acc += k;
        __syncthreads();
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}
