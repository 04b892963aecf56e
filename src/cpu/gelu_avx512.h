/* GELU(tanh) rows in f32 for AVX-512 CPUs (src/cpu/gelu_avx512.c): the contiguous f32 rows of the elementwise GELU
 * forward and backward call them in place of the generic loops over cpu/fastmath.h. Self-contained (no libtrain
 * headers), so tests can compile it in. */
#ifndef LT_CPU_GELU_AVX512_H
#define LT_CPU_GELU_AVX512_H

#include <stdbool.h>
#include <stdint.h>

/* Built for x86-64 with GCC or clang; elsewhere the header declares nothing. */
#if defined(__x86_64__) && defined(__GNUC__)
#define LT_GELU_AVX512 1

/* True when this CPU runs the functions below (x86-64-v4). */
bool lt__gelu_avx512_available(void);

/* y[i] = lt__gelu_tanh_f32(x[i]) for i < n. */
void lt__gelu_tanh_f32_avx512(const float *x, float *y, int64_t n);

/* gx[i] = gy[i] * lt__gelu_tanh_grad_f32(x[i]) for i < n. */
void lt__gelu_tanh_grad_f32_avx512(const float *x, const float *gy, float *gx, int64_t n);

#endif

#endif
