/* CUDA random numbers: philox (uniform and standard normal) and dropout, drawing the Philox4x32-10 stream of
 * cuRAND's device API, so that every backend gives the same numbers for the same (seed, offset) (src/core/philox.h,
 * src/cpu/copy.c's lt__cpu_philox and src/cpu/dropout.c are the reference).
 *
 * Words. Word w of the stream is lane w % 4 of the block at 128-bit counter (w / 4, 0, 0, 0) under the key seed:
 * what curand_init(seed, 0, w, &s); curand(&s) returns. Each thread computes one 4-word block with cuRAND's own
 * curand_Philox4x32_10 (curand_philox4x32_x.h, part of curand_kernel.h) and handles the elements whose words it holds.
 * The state API would give the same words at three times the cost: curand_init evaluates Philox twice
 * (skipahead_sequence and skipahead each compute the current output) and curand4 a third time (it always precomputes
 * the next block): three evaluations of 10 rounds for every 16 bytes written instead of one.
 *
 * Uniform: element i is curand_uniform's mapping of word offset + i, x * 2^-32 + 2^-33, bit for bit the CPU's
 * (the product is exact, so a fused multiply-add rounds the same; the intrinsics below spell the rounding anyway).
 *
 * Normal: elements (2k, 2k + 1) are the Box-Muller pair of words (offset + 2k, offset + 2k + 1), sin to the first,
 * as curand_normal2/4 lay them out. The transform is written out here rather than taken from curand_normal: on the
 * device cuRAND uses the fast intrinsic __sincosf, whose absolute error (about 2^-21.4 on [-pi, pi], more beyond,
 * and v reaches 2 pi) is large relative to draws near 0. Here u and v are rounded exactly as the CPU rounds them
 * (__fmul_rn/__fadd_rn keep nvcc from contracting v's multiply-add into an FMA) and sqrtf, logf, sinf and cosf are
 * the accurate CUDA math functions (IEEE-rounded sqrt; logf within 1 ulp, sinf and cosf within 2 ulp). The result
 * matches glibc's on the CPU within a few ulp (about 1e-6 relative), not bit for bit, because CUDA's and glibc's
 * transcendental functions round differently in the last place. Under the emulator they are glibc's: bitwise. */
// cuRAND's Philox4x32-10 device code alone: curand_kernel.h, which includes it, would also put about 218 KB of
// precomputed skip-ahead tables for the other generators into the module's global memory. Before common.cuh: under
// the emulator, cuda/lt_cuda.cuh defines threadIdx and friends as macros, which the toolkit's headers must not see.
#include <cuda_runtime.h>
#include <curand_philox4x32_x.h>

#include "common.cuh"

namespace lt_cuda {
namespace {

const char *const kPhiloxWho = "cuda philox";
const char *const kDropoutWho = "cuda dropout";

__host__ __device__ inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
__host__ __device__ inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

/* cuRAND's 2^-32 (CURAND_2POW32_INV) and 2^-32 * 2 pi in float, the constants of curand_uniform and its
 * Box-Muller, as src/core/philox.h spells them. */
constexpr float kInv32 = 2.3283064e-10f;
constexpr float kInv32TwoPi = 2.3283064e-10f * 6.2831855f;

/* The 4 words of block `counter` of the stream `seed` (subsequence 0). */
__device__ inline uint4 philox_block(uint64_t seed, uint64_t counter) {
    return curand_Philox4x32_10(make_uint4((unsigned)counter, (unsigned)(counter >> 32), 0u, 0u),
                                make_uint2((unsigned)seed, (unsigned)(seed >> 32)));
}

__device__ inline uint32_t lane_of(const uint4 &r, int lane) {
    return lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w;
}

/* curand_uniform's (0, 1] from a word. */
__device__ inline float u01(uint32_t x) { return add_rn(mul_rn((float)x, kInv32), kInv32 / 2.0f); }

/* The Box-Muller pair of words x, y: (sin, cos) scaled, as lt__philox_box_muller computes it. */
__device__ inline float2 box_muller(uint32_t x, uint32_t y) {
    float u = add_rn(mul_rn((float)x, kInv32), kInv32 / 2.0f);
    float v = add_rn(mul_rn((float)y, kInv32TwoPi), kInv32TwoPi / 2.0f);
    float s = sqrtf(-2.0f * logf(u));
    return make_float2(sinf(v) * s, cosf(v) * s);
}

/* Thread per Philox block: blocks [first, first + nblocks) cover the words of y's n elements (from word offset).
 * Uniform: each lane whose word falls in range is one element. Normal: each lane holding the first word of a pair
 * (its distance from offset is even) gives two elements; with an odd offset the pair of lane 3 ends in lane 0 of the
 * next block, which that thread computes too. y is contiguous, any float dtype (converted as the CPU converts). */
template <bool Normal>
__global__ void philox_kernel(void *y, lt_dtype dtype, uint64_t seed, uint64_t offset, int64_t n, uint64_t first,
                              int64_t nblocks) {
    for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < nblocks;
         b += (int64_t)gridDim.x * blockDim.x) {
        const uint64_t counter = first + (uint64_t)b;
        const uint4 r = philox_block(seed, counter);
        for (int lane = 0; lane < 4; lane++) {
            const uint64_t w = counter * 4 + (uint64_t)lane;
            if (w < offset || w - offset >= (uint64_t)n) continue;
            const int64_t i = (int64_t)(w - offset);
            if (!Normal) {
                lt__store(y, i, dtype, (double)u01(lane_of(r, lane)));
            } else if ((i & 1) == 0) {
                const uint32_t second = lane < 3 ? lane_of(r, lane + 1) : philox_block(seed, counter + 1).x;
                const float2 z = box_muller(lane_of(r, lane), second);
                lt__store(y, i, dtype, (double)z.x);
                if (i + 1 < n) lt__store(y, i + 1, dtype, (double)z.y);
            }
        }
    }
}

/* Inverted dropout, thread per Philox block as philox_kernel's uniform path: element i keeps x (times scale) when
 * the uniform of word offset + i exceeds p, compared in double as the CPU compares (the float draw converts
 * exactly). x has any strides (Contiguous skips the offset arithmetic); y and mask are contiguous. */
template <class T, bool Contiguous>
__global__ void dropout_kernel(const T *x, Strided xg, double p, T scale, uint64_t seed, uint64_t offset, int64_t n,
                               uint64_t first, int64_t nblocks, T *y, uint8_t *mask) {
    for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < nblocks;
         b += (int64_t)gridDim.x * blockDim.x) {
        const uint64_t counter = first + (uint64_t)b;
        const uint4 r = philox_block(seed, counter);
        for (int lane = 0; lane < 4; lane++) {
            const uint64_t w = counter * 4 + (uint64_t)lane;
            if (w < offset || w - offset >= (uint64_t)n) continue;
            const int64_t i = (int64_t)(w - offset);
            const bool keep = (double)u01(lane_of(r, lane)) > p;
            const T xv = x[Contiguous ? i : xg.offset(i)];
            y[i] = keep ? xv * scale : T(0);
            mask[i] = keep;
        }
    }
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_philox(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal) {
    const int64_t n = numel(y);
    if (n == 0) return LT_OK;
    if (!lt__is_contiguous(y)) return lt__err(LT_ERR_INTERNAL, "%s: y is not contiguous", kPhiloxWho);
    switch (y->dtype) {
    case LT_F32:
    case LT_F64:
    case LT_BF16:
    case LT_F16: break;
    default: return lt__err(LT_ERR_DTYPE, "%s: dtype %s is not a float dtype", kPhiloxWho, lt_dtype_name(y->dtype));
    }
    Context &ctx = context_of(y);
    /* the last word a thread starts from: offset + n - 1 for uniforms; for normals the first word of the last pair
     * (its second word may lie in the next block, which that thread computes as well) */
    const uint64_t last_word = normal ? offset + (((uint64_t)n + 1) & ~(uint64_t)1) - 2 : offset + (uint64_t)n - 1;
    const uint64_t first = offset >> 2;
    const int64_t nblocks = (int64_t)((last_word >> 2) - first) + 1;
    if (normal) {
        LT_LAUNCH(philox_kernel<true>, blocks_for(nblocks), kThreads, 0, ctx.stream, lt__data(y), y->dtype, seed,
                  offset, n, first, nblocks);
    } else {
        LT_LAUNCH(philox_kernel<false>, blocks_for(nblocks), kThreads, 0, ctx.stream, lt__data(y), y->dtype, seed,
                  offset, n, first, nblocks);
    }
    LT_CU_LAUNCHED(kPhiloxWho, "philox_kernel");
    return LT_OK;
}

extern "C" lt_status lt__cuda_dropout(const lt_tensor *x, double p, double scale, uint64_t seed, uint64_t offset,
                                      lt_tensor *y, lt_tensor *mask) {
    return dispatch_float(x->dtype, kDropoutWho, [&](auto zero) -> lt_status {
        using T = decltype(zero);
        const int64_t n = numel(x);
        if (n == 0) return LT_OK;
        if (y->dtype != x->dtype || mask->dtype != LT_U8 || !lt__is_contiguous(y) || !lt__is_contiguous(mask))
            return lt__err(LT_ERR_INTERNAL, "%s: y (same dtype as x) and mask (u8) must be contiguous", kDropoutWho);
        Context &ctx = context_of(x);
        const uint64_t first = offset >> 2;
        const int64_t nblocks = (int64_t)(((offset + (uint64_t)n - 1) >> 2) - first) + 1;
        const Strided xg = strided(x);
        if (lt__is_contiguous(x)) {
            LT_LAUNCH((dropout_kernel<T, true>), blocks_for(nblocks), kThreads, 0, ctx.stream, data<T>(x), xg, p,
                      (T)scale, seed, offset, n, first, nblocks, data<T>(y), data<uint8_t>(mask));
        } else {
            LT_LAUNCH((dropout_kernel<T, false>), blocks_for(nblocks), kThreads, 0, ctx.stream, data<T>(x), xg, p,
                      (T)scale, seed, offset, n, first, nblocks, data<T>(y), data<uint8_t>(mask));
        }
        LT_CU_LAUNCHED(kDropoutWho, "dropout_kernel");
        return LT_OK;
    });
}
