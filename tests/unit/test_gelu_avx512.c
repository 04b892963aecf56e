/* The AVX-512 GELU(tanh) rows (src/cpu/gelu_avx512.c) against the generic per-element forms of cpu/fastmath.h that
 * they replace, on random bit patterns, the range around the short path's bound and e^x's clamps, and special
 * values: with GCC, bitwise the same as those forms vectorised for AVX-512 by `omp simd` (as the library's loops
 * were; tests/unit/CMakeLists.txt gives this file -fopenmp-simd); with any compiler, near the f64 function (same NaNs
 * and infinities). Also: bitwise the same on the short path as on the full path for the same lanes (one lane out of
 * range sends a whole vector down the full path), and rows of any length, with nothing written past their end. The
 * functions are internal to libtrain.so, so the test compiles the file in. Skips (77) on a CPU without AVX-512. */
#include "test.h"

#include "../../src/cpu/fastmath.h"
#include "../../src/cpu/gelu_avx512.c"

#include <float.h>
#include <stdint.h>

#ifdef LT_CPU_X86

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* f64 references: -2u (the argument of the exponential), GPT-2's GELU(tanh) and its derivative s + t, with the size
 * of its two terms |s| + |t|, which the f32 evaluation's error scales with (they cancel where the derivative crosses
 * zero). */
static double ref_minus_2u(double x) { return -2.0 * 0.79788456080286535588 * (x + 0.044715 * x * x * x); }
static double ref_gelu(double x) { return x / (1.0 + exp(ref_minus_2u(x))); }
static double ref_gelu_grad(double x, double *size) {
    double e = exp(ref_minus_2u(x)), s = 1.0 / (1.0 + e);
    double t = 2.0 * x * s * (isinf(e) ? 1.0 : e * s) * 0.79788456080286535588 * (1.0 + 3.0 * 0.044715 * x * x);
    *size = fabs(s) + fabs(t);
    return s + t;
}

/* got against want (f64) for the n inputs x with |x| < xmax: the same NaN-ness and infinities, finite values within
 * the error of an f32 evaluation of terms of size `size`, whose exponential magnifies the rounding of its argument by
 * |2u| (below 1e-35, where e^x's clamps flush the result, absolutely). Returns the number of misses, printing the
 * first few. */
static int64_t near_f64(const char *what, const float *x, const float *got, const double *want, const double *size,
                        int64_t n, double xmax) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(fabs(x[i]) < xmax)) continue;
        double g = got[i], w = want[i], tol = fmax(1e-35, 0x1p-20 * size[i] * (1.0 + fabs(ref_minus_2u(x[i]))));
        bool ok = isnan(g) || isnan(w) ? isnan(g) && isnan(w) : isinf(g) || isinf(w) ? g == w : fabs(g - w) <= tol;
        if (!ok && bad++ < 5) fprintf(stderr, "%s: x = %a gives %a, want %a\n", what, (double)x[i], g, w);
    }
    return bad;
}

#if defined(__GNUC__) && !defined(__clang__)
#define GENERIC_BITWISE 1
/* The generic loops, as the library compiled them before (its AVX-512 clones). */
__attribute__((target("arch=x86-64-v4"))) static void generic_fwd(const float *x, float *y, int64_t n) {
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) y[i] = lt__gelu_tanh_f32(x[i]);
}
__attribute__((target("arch=x86-64-v4"))) static void generic_bwd(const float *x, const float *gy, float *gx,
                                                                  int64_t n) {
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * lt__gelu_tanh_grad_f32(x[i]);
}

/* The number of elements whose bits differ, printing the first few. */
static int64_t bitwise(const char *what, const float *x, const float *got, const float *want, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (bits_of(got[i]) != bits_of(want[i]) && bad++ < 5)
            fprintf(stderr, "%s: x = %a gives %a, the generic loop %a\n", what, (double)x[i], (double)got[i],
                    (double)want[i]);
    return bad;
}
#endif

static float uniform(float lo, float hi) { return (float)tt_uniform(lo, hi); }

static void fill_inputs(float *x, int64_t n) {
    static const float special[] = {0.0f,     -0.0f,  INFINITY, -INFINITY, NAN,   -NAN, FLT_MAX, -FLT_MAX, FLT_MIN,
                                    -FLT_MIN, 1e-45f, -1e-45f,  9.0f,      -9.0f, 9.9f, -9.9f,   88.0f,    -88.0f};
    int64_t ns = (int64_t)(sizeof special / sizeof special[0]);
    for (int64_t i = 0; i < n; i++) {
        switch (i % 5) {
        case 0: x[i] = uniform(-12.0f, 12.0f); break;
        case 1: x[i] = float_of((uint32_t)tt_uniform(0.0, 4294967296.0)); break; /* any bit pattern */
        case 2: x[i] = float_of(bits_of(9.0f) + (uint32_t)tt_uniform(0.0, 129.0) - 64u) * (i % 2 ? 1 : -1); break;
        case 3: x[i] = uniform(9.0f, 11.0f) * (i % 2 ? 1 : -1); break; /* e^x's clamps: |x| about 9.9 */
        default: x[i] = i / 5 < ns ? special[i / 5] : uniform(-3.0f, 3.0f);
        }
    }
}

static void test_against_references(void) {
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof(float)), *gy = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
    double *want = malloc(N * sizeof(double)), *size = malloc(N * sizeof(double));
    fill_inputs(x, N);
    for (int64_t i = 0; i < N; i++) gy[i] = uniform(-2.0f, 2.0f);

    lt__gelu_tanh_f32_avx512(x, got, N);
    for (int64_t i = 0; i < N; i++) want[i] = ref_gelu(x[i]), size[i] = fabs(want[i]);
    CHECK(near_f64("gelu", x, got, want, size, N, INFINITY) == 0);
#ifdef GENERIC_BITWISE
    float *gen = malloc(N * sizeof(float));
    generic_fwd(x, gen, N);
    CHECK(bitwise("gelu", x, got, gen, N) == 0);
#endif

    lt__gelu_tanh_grad_f32_avx512(x, gy, got, N);
    for (int64_t i = 0; i < N; i++) want[i] = gy[i] * ref_gelu_grad(x[i], &size[i]), size[i] *= fabs(gy[i]);
    /* beyond 1e12, x^3 overflows in f32 and the gradient is NaN, as PyTorch's is: only the bitwise check applies there
     */
    CHECK(near_f64("gelu grad", x, got, want, size, N, 1e12) == 0);
#ifdef GENERIC_BITWISE
    generic_bwd(x, gy, gen, N);
    CHECK(bitwise("gelu grad", x, got, gen, N) == 0);
    free(gen);
#endif
    free(x), free(gy), free(got), free(want), free(size);
}

/* Vectors of 16 lanes within the short path's bound, then the same with one lane moved out of it: the other 15
 * lanes must not change by a bit. */
static void test_paths_agree(void) {
    enum { V = 20000 };
    int64_t bad = 0;
    for (int v = 0; v < V; v++) {
        float x[16], gy[16], x2[16], y[2][16], g[2][16];
        for (int i = 0; i < 16; i++) x[i] = uniform(-8.999f, 8.999f), gy[i] = uniform(-2.0f, 2.0f);
        int out = v % 16;
        memcpy(x2, x, sizeof x);
        x2[out] = v % 3 == 0 ? NAN : v % 3 == 1 ? 9.5f : -20.0f;
        lt__gelu_tanh_f32_avx512(x, y[0], 16);
        lt__gelu_tanh_f32_avx512(x2, y[1], 16);
        lt__gelu_tanh_grad_f32_avx512(x, gy, g[0], 16);
        lt__gelu_tanh_grad_f32_avx512(x2, gy, g[1], 16);
        for (int i = 0; i < 16; i++)
            if (i != out && (bits_of(y[0][i]) != bits_of(y[1][i]) || bits_of(g[0][i]) != bits_of(g[1][i])) && bad++ < 5)
                fprintf(stderr, "x = %a: short path %a %a, full path %a %a\n", (double)x[i], (double)y[0][i],
                        (double)g[0][i], (double)y[1][i], (double)g[1][i]);
    }
    CHECK(bad == 0);
}

/* Every length from 0 to 50: the same values as a long row's prefix, and the element after the row untouched. */
static void test_lengths(void) {
    float x[64], gy[64], yfull[64], gfull[64];
    for (int i = 0; i < 64; i++) x[i] = uniform(-12.0f, 12.0f), gy[i] = uniform(-1.0f, 1.0f);
    lt__gelu_tanh_f32_avx512(x, yfull, 64);
    lt__gelu_tanh_grad_f32_avx512(x, gy, gfull, 64);
    for (int n = 0; n <= 50; n++) {
        float y[64], g[64];
        for (int i = 0; i < 64; i++) y[i] = g[i] = -123.0f;
        lt__gelu_tanh_f32_avx512(x, y, n);
        lt__gelu_tanh_grad_f32_avx512(x, gy, g, n);
        CHECK(memcmp(y, yfull, (size_t)n * sizeof(float)) == 0);
        CHECK(memcmp(g, gfull, (size_t)n * sizeof(float)) == 0);
        CHECK(y[n] == -123.0f && g[n] == -123.0f);
    }
}

#endif

int main(void) {
#ifdef LT_CPU_X86
    if (!lt__cpu_x86_64_v4()) {
        printf("SKIP: this CPU lacks AVX-512\n");
        return 77;
    }
    tt_seed(20261129);
    RUN(test_against_references);
    RUN(test_paths_agree);
    RUN(test_lengths);
    return tt_finish();
#else
    printf("SKIP: the AVX-512 GELU is x86-64 only\n");
    return 77;
#endif
}
