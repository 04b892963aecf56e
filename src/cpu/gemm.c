/* CPU batched GEMM: f32 products run on libtrain's AVX-512 sgemm where the CPU has it (src/cpu/sgemm.c), the rest on
 * OpenBLAS. Transposed and strided f32 and f64 operands reach them as transpose flags and leading dimensions, never
 * as copies; src/ops hands it only layouts that BLAS can read in place.
 *
 * bf16 (a and b bf16, c f32 or bf16) is the reference for the GPU's mixed precision: OpenBLAS has no bf16 GEMM that
 * every build provides, so the operands are widened to f32 (exactly: a bf16 is an f32 with the low 16 bits zero) into
 * packed temporaries, one matrix per batch (one in all for a batch stride of 0), and an f32 GEMM accumulates in f32.
 * A bf16 c goes through an f32 temporary too (read when beta != 0) and is rounded to nearest even once, at the end.
 * That path allocates: 4 bytes per element of a, b (and a bf16 c), freed before it returns. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/sgemm.h"
#include "tensor/tensor_impl.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* When to spread the batch over OpenMP threads, each running single-threaded BLAS (inside an active parallel region
 * Debian's OpenMP build of OpenBLAS sees omp_in_parallel() and stays on one thread, so the two levels never
 * oversubscribe the cores):
 *  - products of at most LT_GEMM_SMALL_MNK multiply-adds, which OpenBLAS runs on one thread anyway
 *    (GEMM_MULTITHREAD_THRESHOLD is 4 * 65536);
 *  - products up to LT_GEMM_MEDIUM_MNK when the batch gives every thread at least 4 of them: attention's
 *    [B*H, T, T] x [B*H, T, D] products ran about 1.3x faster this way than with BLAS's threads per product (2 cores).
 * Below LT_GEMM_MIN_PARALLEL multiply-adds in all, the fork costs more than it saves. */
#define LT_GEMM_SMALL_MNK 262144
#define LT_GEMM_MEDIUM_MNK 16777216
#define LT_GEMM_MIN_PARALLEL 65536

/* c = beta * c over n contiguous elements; BLAS is not called when K == 0, so this is the whole product then. A bf16 c
 * is scaled in f32 and rounded, as the CUDA backend does. */
static void scale_c(lt_tensor *c, int64_t n, double beta) {
    if (beta == 0) {
        memset(lt__data(c), 0, (size_t)n * lt_dtype_size(c->dtype));
    } else if (c->dtype == LT_F32) {
        float *p = lt__data(c);
        for (int64_t i = 0; i < n; i++) p[i] *= (float)beta;
    } else if (c->dtype == LT_BF16) {
        uint16_t *p = lt__data(c);
        for (int64_t i = 0; i < n; i++) p[i] = lt__f32_to_bf16((float)beta * lt__bf16_to_f32(p[i]));
    } else {
        double *p = lt__data(c);
        for (int64_t i = 0; i < n; i++) p[i] *= beta;
    }
}

/* f32 products of at least this many multiply-adds go to libtrain's own AVX-512 sgemm (src/cpu/sgemm.c) when the CPU
 * has AVX-512 and alpha is 1; smaller ones stay with OpenBLAS. On a 2-core Zen 4 the own kernel matched OpenBLAS's
 * AVX-512 kernel on the gpt2-124M step's shapes and beat it by 9-48% on the small config's (bench/sgemm.c); it also
 * keeps its speed where OPENBLAS_CORETYPE forces OpenBLAS onto its AVX2 kernel. */
#define LT_SGEMM_OWN_MIN_MNK 262144

/* LIBTRAIN_SGEMM=openblas sends every product to OpenBLAS: an escape hatch, and the other side of an A/B timing. */
static bool own_sgemm_enabled(void) {
    static _Atomic int enabled = -1; /* read once; threads that race compute the same value */
    int v = atomic_load_explicit(&enabled, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("LIBTRAIN_SGEMM");
        v = !(e && strcmp(e, "openblas") == 0) && lt__sgemm_avx512_available();
        atomic_store_explicit(&enabled, v, memory_order_relaxed);
    }
    return v;
}

static bool use_own_sgemm(double alpha, int64_t m, int64_t n, int64_t k) {
    return alpha == 1 && m * n * k >= LT_SGEMM_OWN_MIN_MNK && own_sgemm_enabled();
}

/* One cblas_?gemm's arguments, shared by every batch. */
typedef struct gemm_call {
    bool f32;
    bool own; /* f32 through lt__sgemm_avx512; OpenBLAS only if that fails (no memory for its packing buffer) */
    enum CBLAS_TRANSPOSE fa, fb;
    int m, n, k, lda, ldb;
    double alpha, beta;
    const float *bias; /* own only: n floats added to every row of c, by the kernel (beta == 0) */
    float *asum;       /* own only, one batch: the row sums of op(a), by the kernel */
} gemm_call;

/* True when the own kernel ran (and wrote g->asum); false when BLAS did. */
static bool gemm_one(const gemm_call *g, const void *a, const void *b, void *c) {
    if (g->own && lt__sgemm_avx512(g->fa == CblasTrans, g->fb == CblasTrans, g->m, g->n, g->k, a, g->lda, b, g->ldb,
                                   (float)g->beta, g->bias, g->asum, c, g->n))
        return true;
    double beta = g->beta;
    if (g->bias) { /* the own kernel had no memory: c = the bias rows, then BLAS adds the product */
        for (int i = 0; i < g->m; i++) memcpy((float *)c + (size_t)i * g->n, g->bias, (size_t)g->n * sizeof(float));
        beta = 1;
    }
    if (g->f32)
        cblas_sgemm(CblasRowMajor, g->fa, g->fb, g->m, g->n, g->k, (float)g->alpha, a, g->lda, b, g->ldb, (float)beta,
                    c, g->n);
    else
        cblas_dgemm(CblasRowMajor, g->fa, g->fb, g->m, g->n, g->k, g->alpha, a, g->lda, b, g->ldb, beta, c, g->n);
    return false;
}

/* Runs g over `batch` products whose operands lie sa, sb and sc bytes apart. */
static void run_batches(const gemm_call *g, int64_t batch, const char *pa, int64_t sa, const char *pb, int64_t sb,
                        char *pc, int64_t sc) {
    int64_t mnk = (int64_t)g->m * g->n * g->k;
    /* Two loops, not one with an if() clause: BLAS called inside even an inactive parallel region nests its own
     * threads one level down, where libgomp does not reuse them, and spawns a team per call. */
    bool per_batch = mnk <= LT_GEMM_SMALL_MNK || (mnk <= LT_GEMM_MEDIUM_MNK && batch >= 4 * omp_get_max_threads());
    if (batch > 1 && per_batch && batch * mnk >= LT_GEMM_MIN_PARALLEL) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < batch; i++) gemm_one(g, pa + i * sa, pb + i * sb, pc + i * sc);
    } else {
        for (int64_t i = 0; i < batch; i++) gemm_one(g, pa + i * sa, pb + i * sb, pc + i * sc);
    }
}

/* Below this many elements a conversion runs on one thread. */
#define LT_WIDEN_MIN_PARALLEL 65536

/* The matrices of the bf16 [batch, rows, cols] t (any strides) as packed row-major f32 [rows, cols] ones: `count` of
 * them (1 when every batch shares one matrix), *bstride elements apart. NULL when out of memory. */
static float *widen(const lt_tensor *t, int64_t batch, int64_t *bstride) {
    int64_t rows = t->shape[1], cols = t->shape[2], count = batch == 1 || t->strides[0] == 0 ? 1 : batch;
    int64_t n = count * rows * cols, rs = t->strides[1], cs = t->strides[2], bs = t->strides[0];
    float *w = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!w) return NULL;
    const uint16_t *p = lt__data(t);
#pragma omp parallel for schedule(static) if (n >= LT_WIDEN_MIN_PARALLEL)
    for (int64_t i = 0; i < count * rows; i++) {
        const uint16_t *src = p + (i / rows) * bs + (i % rows) * rs;
        float *dst = w + i * cols;
        for (int64_t j = 0; j < cols; j++) dst[j] = lt__bf16_to_f32(src[j * cs]);
    }
    *bstride = count == 1 ? 0 : rows * cols;
    return w;
}

/* bf16 a and b, f32 or bf16 c: sgemm over f32 copies (see the top of the file). k > 0 and c is not empty. */
static lt_status gemm_bf16(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                           lt_tensor *c, int64_t k) {
    int64_t batch = c->shape[0], m = c->shape[1], n = c->shape[2], sa, sb, total = batch * m * n;
    float *wa = widen(a, batch, &sa), *wb = widen(b, batch, &sb), *wc = NULL;
    bool c16 = c->dtype == LT_BF16;
    if (wa && wb && c16) wc = malloc((size_t)total * sizeof(float));
    if (!wa || !wb || (c16 && !wc)) {
        free(wa);
        free(wb);
        return lt__err(LT_ERR_OOM,
                       "lt__cpu_gemm: out of memory for the f32 copies of %lld batches of %lldx%lldx%lld "
                       "bf16 operands",
                       (long long)batch, (long long)m, (long long)n, (long long)k);
    }
    uint16_t *c16p = lt__data(c);
    if (c16 && beta != 0) {
#pragma omp parallel for schedule(static) if (total >= LT_WIDEN_MIN_PARALLEL)
        for (int64_t i = 0; i < total; i++) wc[i] = lt__bf16_to_f32(c16p[i]);
    }
    /* the packed copies are row-major [rows, cols]: op's flag alone decides the transpose, ld is cols */
    gemm_call g = {
        .f32 = true,
        .own = use_own_sgemm(alpha, m, n, k),
        .fa = ta ? CblasTrans : CblasNoTrans,
        .fb = tb ? CblasTrans : CblasNoTrans,
        .m = (int)m,
        .n = (int)n,
        .k = (int)k,
        .lda = (int)a->shape[2],
        .ldb = (int)b->shape[2],
        .alpha = alpha,
        .beta = beta,
    };
    float *pc = c16 ? wc : lt__data(c);
    run_batches(&g, batch, (const char *)wa, sa * 4, (const char *)wb, sb * 4, (char *)pc, m * n * 4);
    if (c16) {
#pragma omp parallel for schedule(static) if (total >= LT_WIDEN_MIN_PARALLEL)
        for (int64_t i = 0; i < total; i++) c16p[i] = lt__f32_to_bf16(wc[i]);
    }
    free(wa);
    free(wb);
    free(wc);
    return LT_OK;
}

/* c = bias broadcast over c's rows (lt__cpu_copy: in parallel when large). */
static lt_status fill_bias(const lt_tensor *bias, lt_tensor *c) {
    lt_tensor hb;
    LT_TRY(lt__broadcast_header(bias, c->shape, c->ndim, &hb));
    return lt__cpu_copy(c, &hb);
}

/* asum = the row sums of op(a) (see the backend's gemm), by the reduction. */
static lt_status reduce_asum(const lt_tensor *a, bool ta, lt_tensor *asum) {
    lt_tensor hx, hy;
    LT_TRY(lt__gemm_asum_headers(a, ta, asum, &hx, &hy));
    return lt__cpu_reduce(LT_ROP_SUM, &hx, 1u << 1, &hy);
}

lt_status lt__cpu_gemm(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                       const lt_tensor *bias, lt_tensor *asum, lt_tensor *c) {
    int64_t batch = c->shape[0], m = c->shape[1], n = c->shape[2];
    int64_t k = ta ? a->shape[1] : a->shape[2];
    lt__blas_operand la, lb;
    LT_TRY(lt__gemm_check("lt__cpu_gemm", a, b, c, bias, asum, beta, m, n, k, &la, &lb));
    if (asum && (m == 0 || n == 0 || k == 0)) LT_TRY(reduce_asum(a, ta, asum));
    if (batch == 0 || m == 0 || n == 0) return LT_OK;
    if (k == 0) {
        if (bias) return fill_bias(bias, c);
        scale_c(c, batch * m * n, beta);
        return LT_OK;
    }
    bool own = c->dtype == LT_F32 && a->dtype == LT_F32 && use_own_sgemm(alpha, m, n, k);
    if (bias && !(own && lt__is_contiguous(bias))) { /* BLAS (or the kernel) adds onto the bias rows */
        LT_TRY(fill_bias(bias, c));
        beta = 1;
        bias = NULL;
    }
    if (a->dtype == LT_BF16) return gemm_bf16(a, b, ta, tb, alpha, beta, c, k);
    /* op(stored) = stored^T when ta; a column-major layout is itself a transpose, so the two flips cancel. */
    gemm_call g = {
        .f32 = c->dtype == LT_F32,
        .own = own,
        .fa = (ta != la.colmajor) ? CblasTrans : CblasNoTrans,
        .fb = (tb != lb.colmajor) ? CblasTrans : CblasNoTrans,
        .m = (int)m,
        .n = (int)n,
        .k = (int)k,
        .lda = la.ld,
        .ldb = lb.ld,
        .alpha = alpha,
        .beta = beta,
        .bias = bias ? lt__data(bias) : NULL,
    };
    if (asum) { /* one batch: the own kernel sums a while it packs it; after BLAS, the reduction does */
        g.asum = own ? lt__data(asum) : NULL;
        if (gemm_one(&g, lt__data(a), lt__data(b), lt__data(c))) return LT_OK;
        return reduce_asum(a, ta, asum);
    }
    int64_t es = (int64_t)lt_dtype_size(c->dtype);
    run_batches(&g, batch, lt__data(a), a->strides[0] * es, lt__data(b), b->strides[0] * es, lt__data(c), m * n * es);
    return LT_OK;
}
