/* GELU(tanh) rows in f32 for AVX-512 (see gelu_avx512.h): the formulas of cpu/fastmath.h, written out in intrinsics
 * in the order in which GCC 12 vectorises them there (the same products, sums and fused multiply-adds), so the results
 * are bitwise those of the generic loops: checked for all 2^32 inputs of both functions against the loops this
 * replaced, and in tests/unit/test_gelu_avx512.c on a million.
 *
 * Why: most of the generic form's instructions serve e^x's special cases (the clamps, overflow, underflow, NaN), which
 * only |x| beyond about 9.9 reaches, and GCC turns them into masked arithmetic: 34 cycles a vector forward and 43
 * backward on a Zen 4. A vector whose 16 lanes all lie within |x| < 9 (nearly every vector of a GPT's MLP) takes a
 * path without them, where the argument of e^x stays within +-67, so 2^n stays normal and scalef (which gives 2^n
 * exactly) replaces the exponent-bits product: 24 and 33 cycles, from L2. Any other vector, NaN included, takes the
 * full form. On the small GPT's step GELU went from 2.4% to 1.8%. */
#include "gelu_avx512.h"

#ifdef LT_CPU_X86

#define LT_AVX512 __attribute__((target("arch=x86-64-v4")))
#define LT_INLINE static inline __attribute__((always_inline))

/* lanes below 9 in magnitude take the short path */
#define FAST_BOUND 9.0f

LT_AVX512 LT_INLINE __m512 set1(float v) { return _mm512_set1_ps(v); }

/* -2u, u = 0.7978845608 (x + 0.044715 x^3): e^(-2u) is the GELU's exponential. */
LT_AVX512 LT_INLINE __m512 minus_2u(__m512 x) {
    __m512 t = _mm512_mul_ps(_mm512_mul_ps(set1(0.044715f), x), x);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_fmadd_ps(t, x, x), set1(0.7978845608f)), set1(-2.0f));
}

/* lt__expf(x): c = x clamped to [-87.3, 88], x = n ln2 + r, e^r by the degree-6 polynomial, times 2^n; full: the
 * clamps and the selects for x > 88.7 (inf), x < -87.3 (0) and NaN; !full (every |x| <= 87.3): none of them. */
LT_AVX512 LT_INLINE __m512 expf16(__m512 x, bool full) {
    __m512 c = x;
    if (full) c = _mm512_max_ps(_mm512_min_ps(x, set1(88.0f)), set1(-87.3f)); /* NaN becomes 88 here */
    __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(c, set1(1.44269504088896341f), set1(12582912.0f)), set1(12582912.0f));
    __m512 r = _mm512_fmadd_ps(n, set1(2.12194440e-4f), _mm512_fnmadd_ps(n, set1(0.693359375f), c));
    __m512 p = set1(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, set1(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, set1(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, set1(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, set1(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, set1(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), set1(1.0f));
    __m512 y = _mm512_scalef_ps(p, n); /* p 2^n, n in [-126, 127]: exactly the product with 2^n's bits */
    if (!full) return y;
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, set1(88.7f), _CMP_GT_OQ), set1(__builtin_inff()));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, set1(-87.3f), _CMP_LT_OQ), _mm512_setzero_ps());
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

/* true when every lane of x lies within |x| < FAST_BOUND (NaN does not) */
LT_AVX512 LT_INLINE bool all_small(__m512 x) {
    return _mm512_cmp_ps_mask(_mm512_abs_ps(x), set1(FAST_BOUND), _CMP_LT_OQ) == (__mmask16)0xFFFF;
}

/* x / (1 + e^(-2u)), NaN at x = -inf (as lt__gelu_tanh_f32) */
LT_AVX512 LT_INLINE __m512 gelu16(__m512 x, bool full) {
    __m512 y = _mm512_div_ps(x, _mm512_add_ps(expf16(minus_2u(x), full), set1(1.0f)));
    if (!full) return y;
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, set1(-__builtin_inff()), _CMP_EQ_OQ), set1(__builtin_nanf("")));
}

/* s + 2 x s (e s) u', s = 1 / (1 + e), e = e^(-2u), e s = 1 where e = inf (as lt__gelu_tanh_grad_f32) */
LT_AVX512 LT_INLINE __m512 gelu_grad16(__m512 x, bool full) {
    __m512 one = set1(1.0f), e = expf16(minus_2u(x), full);
    __m512 s = _mm512_div_ps(one, _mm512_add_ps(e, one)), es = _mm512_mul_ps(e, s);
    if (full) es = _mm512_mask_mov_ps(es, _mm512_cmp_ps_mask(e, set1(__builtin_inff()), _CMP_EQ_OQ), one);
    __m512 du = _mm512_mul_ps(_mm512_fmadd_ps(_mm512_mul_ps(x, set1(3.0f * 0.044715f)), x, one), set1(0.7978845608f));
    return _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_add_ps(x, x), s), es), du, s);
}

LT_AVX512 void lt__gelu_tanh_f32_avx512(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lt__lanes16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(y + i, m, all_small(v) ? gelu16(v, false) : gelu16(v, true));
    }
}

LT_AVX512 void lt__gelu_tanh_grad_f32_avx512(const float *x, const float *gy, float *gx, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lt__lanes16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 g = all_small(v) ? gelu_grad16(v, false) : gelu_grad16(v, true);
        _mm512_mask_storeu_ps(gx + i, m, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, gy + i)));
    }
}

#endif
