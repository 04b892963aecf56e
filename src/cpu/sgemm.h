/* Row-major single-precision GEMM for AVX-512 CPUs (src/cpu/sgemm.c): the f32 path of lt__cpu_gemm can call it in
 * place of cblas_sgemm. Self-contained (no libtrain headers but the header-only x86.h), so tests and benchmarks can
 * compile it in. */
#ifndef LT_CPU_SGEMM_H
#define LT_CPU_SGEMM_H

#include <stdbool.h>
#include <stdint.h>

/* True when this CPU runs the AVX-512 kernel (x86-64-v4: AVX-512 F, VL, BW, DQ, CD). */
bool lt__sgemm_avx512_available(void);

/* c[m x n] = op(a) op(b) + beta c (+ bias on every row), row-major like cblas_sgemm(CblasRowMajor, ...) with
 * alpha = 1: op(a) is m x k (a stored k x m when ta), op(b) is k x n (b stored n x k when tb); lda, ldb, ldc are the
 * stored row lengths. bias, when not NULL, holds n floats, added to the first k block's products: with beta == 0 the
 * result is bitwise that of filling c with bias and calling with beta = 1, without the pass over c. beta == 0 never
 * reads c (it may hold NaN). asum, when not NULL, receives the row sums of op(a): asum[p] = sum over i of
 * op(a)[i][p], p < k (a linear layer's bias gradient, when a is dy in dx = dy w^T). For op(a) = a they are taken
 * while a is packed where each element is packed once (otherwise in a pass of their own): each 12-row panel summed in
 * float by a fixed tree, the panels added in double within blocks of rows that depend on m alone, the blocks in
 * order; for op(a) = a^T, in double. Each element of c, and of asum, is summed in an order that depends only on the
 * shape, so the result is bitwise the same whatever the thread count. Runs on the calling thread's OpenMP team (one
 * thread inside a parallel region). Returns false, with c and asum untouched, when the CPU lacks AVX-512 or a
 * thread's buffers (about 800 KiB for packing, allocated once per thread and kept; the row sums' scratch, grown as
 * needed) cannot be allocated: the caller then falls back to BLAS. */
bool lt__sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float beta, const float *bias, float *asum, float *c, int64_t ldc);

#endif
