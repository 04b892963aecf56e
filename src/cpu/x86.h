/* What an x86-64 CPU runs, for the kernels built for several ISAs (sgemm.c, attention.c, gelu_avx512.c): one
 * definition of "this CPU runs x86-64-v4 code", the level their AVX-512 functions are compiled for, and of a tail
 * mask. Header-only, so that the files tests compile in stay self-contained. Declares nothing off x86-64 or without
 * GCC-style builtins. */
#ifndef LT_CPU_X86_H
#define LT_CPU_X86_H

#if defined(__x86_64__) && defined(__GNUC__)
#define LT_CPU_X86 1

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

/* True when this CPU runs code built with target("arch=x86-64-v4"): AVX-512 F, VL, BW, DQ and CD. */
static inline bool lt__cpu_x86_64_v4(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512cd");
}

/* The mask of the first n of 16 lanes (all 16 for n >= 16), for masked loads and stores at a row's end. */
static inline __mmask16 lt__lanes16(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

#endif
#endif
