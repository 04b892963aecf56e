/* GELU(tanh) rows in f32 for AVX-512 CPUs (src/cpu/gelu_avx512.c): the contiguous f32 rows of the elementwise GELU
 * forward and backward call them in place of the generic loops over cpu/fastmath.h. Self-contained (no libtrain
 * headers but the header-only x86.h), so tests can compile it in. */
#ifndef LT_CPU_GELU_AVX512_H
#define LT_CPU_GELU_AVX512_H

#include "x86.h"

#include <stdint.h>

/* Built for x86-64 with GCC or clang; elsewhere the header declares nothing. Call only where lt__cpu_x86_64_v4(). */
#ifdef LT_CPU_X86

/* y[i] = lt__gelu_tanh_f32(x[i]) for i < n. */
void lt__gelu_tanh_f32_avx512(const float *x, float *y, int64_t n);

/* gx[i] = gy[i] * lt__gelu_tanh_grad_f32(x[i]) for i < n. */
void lt__gelu_tanh_grad_f32_avx512(const float *x, const float *gy, float *gx, int64_t n);

#endif

#endif
