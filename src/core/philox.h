/* Philox4x32-10 (Salmon et al., 2011) as cuRAND implements it, so that the CPU draws the numbers the GPU draws.
 * Word w of the stream (seed) is lane w % 4 of the block at 128-bit counter w / 4, keyed by the 64-bit seed:
 * exactly what curand_init(seed, 0, offset, &s) followed by curand4/curand_uniform4/curand_normal4 yields.
 * Header-only and pure, so kernels of any backend can include it. */
#ifndef LT_CORE_PHILOX_H
#define LT_CORE_PHILOX_H

#include <math.h>
#include <stdint.h>

typedef struct lt__u32x4 {
    uint32_t v[4];
} lt__u32x4;

static inline uint32_t lt__mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* The 4 words of block `counter` (the low 64 bits of cuRAND's 128-bit counter; subsequence 0). */
static inline lt__u32x4 lt__philox_block(uint64_t seed, uint64_t counter) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = lt__mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = lt__mulhilo32(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    lt__u32x4 out = {{c0, c1, c2, c3}};
    return out;
}

/* Word w of the stream. */
static inline uint32_t lt__philox_word(uint64_t seed, uint64_t w) { return lt__philox_block(seed, w >> 2).v[w & 3]; }

/* curand_uniform's mapping of a word to (0, 1]. */
static inline float lt__philox_u01(uint32_t x) { return x * 2.3283064e-10f + (2.3283064e-10f / 2.0f); }

/* cuRAND's Box-Muller on a pair of words: (sin, cos) scaled, as its host path computes it. */
static inline void lt__philox_box_muller(uint32_t x, uint32_t y, float *n0, float *n1) {
    float u = x * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
    float v = y * (2.3283064e-10f * 6.2831855f) + ((2.3283064e-10f * 6.2831855f) / 2.0f);
    float s = sqrtf(-2.0f * logf(u));
    *n0 = sinf(v) * s;
    *n1 = cosf(v) * s;
}

#endif
