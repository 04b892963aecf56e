/* Vectorisable exp for the CPU kernels' hot loops (GELU, attention, softmax-like rows). libm's exp is a call per
 * element that blocks vectorisation (without -ffast-math); these are inline, branch-free and accurate to a few ulp. */
#ifndef LT_CPU_FASTMATH_H
#define LT_CPU_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Compiles a hot loop for AVX-512, AVX2+FMA and baseline x86-64, picked at load time by the CPU it runs on
 * (GCC function multi-versioning), so the library stays portable and still uses the wide vectors it finds. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define LT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LT_CLONES
#endif

/* e^x in f32 to within 2 ulp: x = n ln2 + r with |r| <= ln2/2 (n rounded by adding and removing 1.5 * 2^23, so no
 * floor call and the loop vectorises on any x86-64; ln2 split in two so r is exact), Cephes' degree-6 polynomial for
 * e^r, and 2^n built in the exponent bits. Below -87.3 it gives 0 (softmax's masked terms, e^-inf), above 88.7 +inf,
 * and NaN stays NaN, all by selects that vectorise. */
static inline float lt__expf(float x) {
    float c = x < 88.0f ? x : 88.0f; /* written so that NaN becomes 88 here; the selects below restore it */
    c = c > -87.3f ? c : -87.3f;
    float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* 2^n, n in [-126, 127] after the clamp */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = x > 88.7f ? __builtin_inff() : y;
    y = x < -87.3f ? 0.0f : y;
    return x != x ? x : y;
}

/* e^x in f64 the same way: ln2 split as in fdlibm, e^r by its Taylor series to degree 11 (truncation below 1e-15
 * relative for |r| <= ln2/2), and 2^n from the low bits of the rounding sum (64-bit integer ops, which SSE2 has,
 * unlike a double-to-int64 conversion). Below -708 it gives 0, above 709.7 +inf, NaN stays NaN. */
static inline double lt__exp(double x) {
    double c = x < 709.0 ? x : 709.0;
    c = c > -708.0 ? c : -708.0;
    double t = c * 1.4426950408889634 + 6755399441055744.0, n = t - 6755399441055744.0;
    double r = (c - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = 1.0 / 39916800;
    p = p * r + 1.0 / 3628800;
    p = p * r + 1.0 / 362880;
    p = p * r + 1.0 / 40320;
    p = p * r + 1.0 / 5040;
    p = p * r + 1.0 / 720;
    p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023) << 52; /* t's low bits hold n as an integer: 2^n's exponent field */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    double y = p * scale;
    y = x > 709.7 ? __builtin_inf() : y;
    y = x < -708.0 ? 0.0 : y;
    return x != x ? x : y;
}

/* GPT-2's tanh-approximated GELU in f32. 0.5 (1 + tanh(u)) is the logistic sigmoid of 2u, so
 * gelu(x) = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): no tanh call and no cancellation for negative x.
 * Special values follow the tanh form (and PyTorch): gelu(-inf) is NaN. */
static inline float lt__gelu_tanh_f32(float x) {
    float u = 0.7978845608f * (x + 0.044715f * x * x * x);
    float y = x / (1.0f + lt__expf(-2.0f * u));
    return x == -__builtin_inff() ? __builtin_nanf("") : y; /* -inf * 0 in the tanh form, as PyTorch gives */
}

/* d gelu / dx = s + 2 x s (1 - s) u', with s = sigmoid(2u) and 1 - s computed as e^(-2u) s (no cancellation). */
static inline float lt__gelu_tanh_grad_f32(float x) {
    float u = 0.7978845608f * (x + 0.044715f * x * x * x);
    float e = lt__expf(-2.0f * u);
    float s = 1.0f / (1.0f + e);
    float du = 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
    float es = e == INFINITY ? 1.0f : e * s; /* e / (1 + e); for x below about -9.9, e overflows and s is 0 */
    return s + 2.0f * x * s * es * du;
}

#endif
