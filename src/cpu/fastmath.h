/* Vectorisable single-precision exp for the CPU kernels' hot loops (GELU, softmax, cross-entropy, attention).
 * libm's expf is a call per element that blocks vectorisation; this is Cephes' expf (range reduction by ln 2,
 * degree-6 polynomial, exponent by bit arithmetic), within 2 ulp of the exact value on its range, inline. */
#ifndef LT_CPU_FASTMATH_H
#define LT_CPU_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* Compiles a hot loop for AVX-512, AVX2+FMA and baseline x86-64, picked at load time by the CPU it runs on
 * (GCC function multi-versioning), so the library stays portable and still uses the wide vectors it finds. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define LT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LT_CLONES
#endif

/* e^x for x in [-87, 88] to within 2 ulp; inputs outside are clamped (e^-87 ~ 1.6e-38 stands in for 0 and e^88 for
 * a very large value), and NaN gives NaN. Meant for sigmoid-like uses where the clamp is harmless. */
static inline float lt__expf(float x) {
    const float hi = 88.0f, lo = -87.0f;
    float c = x > hi ? hi : (x < lo ? lo : x);
    /* round to nearest by adding and removing 1.5 * 2^23: no floor call, so the loop vectorises on any x86-64 */
    float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = c - n * 0.693359375f + n * 2.12194440e-4f; /* c - n ln2, in two parts for accuracy */
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* 2^n, n in [-126, 127] after the clamp */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
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
    return s + 2.0f * x * s * (e * s) * du;
}

#endif
