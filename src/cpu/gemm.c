/* CPU batched GEMM over OpenBLAS: transposed and strided operands reach cblas_?gemm as transpose flags and leading
 * dimensions, never as copies. It must not allocate; src/ops hands it only layouts that BLAS can read in place. */
#include "core/error.h"
#include "cpu/cpu.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
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

/* How BLAS reads one stored [rows, cols] matrix: as a row-major matrix (colmajor == false) or as the transpose of a
 * row-major [cols, rows] one (colmajor == true), with leading dimension ld. */
typedef struct blas_operand {
    bool colmajor;
    int ld;
} blas_operand;

/* A dim of size 1 has no meaningful stride, so it never decides the layout, and its ld is the smallest BLAS
 * accepts. A unit-stride dim with a row stride below the row length (a stride-0 expanded matrix) is unreadable. */
static bool blas_layout(const lt_tensor *t, blas_operand *op) {
    int64_t rows = t->shape[1], cols = t->shape[2], rs = t->strides[1], cs = t->strides[2], ld;
    int64_t min_row_ld = cols > 1 ? cols : 1, min_col_ld = rows > 1 ? rows : 1;
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= min_row_ld)) {
        op->colmajor = false;
        ld = rows == 1 ? min_row_ld : rs;
    } else if ((rs == 1 || rows == 1) && (cols == 1 || cs >= min_col_ld)) {
        op->colmajor = true;
        ld = cols == 1 ? min_col_ld : cs;
    } else {
        return false;
    }
    if (ld > INT_MAX) return false;
    op->ld = (int)ld;
    return true;
}

/* c = beta * c over n contiguous elements; BLAS is not called when K == 0, so this is the whole product then. */
static void scale_c(lt_tensor *c, int64_t n, double beta) {
    if (beta == 0) {
        memset(lt__data(c), 0, (size_t)n * lt_dtype_size(c->dtype));
    } else if (c->dtype == LT_F32) {
        float *p = lt__data(c);
        for (int64_t i = 0; i < n; i++) p[i] *= (float)beta;
    } else {
        double *p = lt__data(c);
        for (int64_t i = 0; i < n; i++) p[i] *= beta;
    }
}

/* One cblas_?gemm's arguments, shared by every batch. */
typedef struct gemm_call {
    bool f32;
    enum CBLAS_TRANSPOSE fa, fb;
    int m, n, k, lda, ldb;
    double alpha, beta;
} gemm_call;

static void gemm_one(const gemm_call *g, const void *a, const void *b, void *c) {
    if (g->f32)
        cblas_sgemm(CblasRowMajor, g->fa, g->fb, g->m, g->n, g->k, (float)g->alpha, a, g->lda, b, g->ldb,
                    (float)g->beta, c, g->n);
    else
        cblas_dgemm(CblasRowMajor, g->fa, g->fb, g->m, g->n, g->k, g->alpha, a, g->lda, b, g->ldb, g->beta, c, g->n);
}

static lt_status check_args(const lt_tensor *a, const lt_tensor *b, const lt_tensor *c, int64_t m, int64_t n, int64_t k,
                            blas_operand *la, blas_operand *lb) {
    if (a->ndim != 3 || b->ndim != 3 || c->ndim != 3 || a->shape[0] != c->shape[0] || b->shape[0] != c->shape[0] ||
        !lt__is_contiguous(c))
        return lt__err(LT_ERR_INTERNAL, "lt__cpu_gemm: operands are not 3-D [batch, rows, cols] with a contiguous c");
    if (c->dtype != LT_F32 && c->dtype != LT_F64)
        return lt__err(LT_ERR_DTYPE, "lt__cpu_gemm: dtype %s, expected f32 or f64", lt_dtype_name(c->dtype));
    if (a->dtype != c->dtype || b->dtype != c->dtype)
        return lt__err(LT_ERR_INTERNAL, "lt__cpu_gemm: operand dtypes differ");
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return lt__err(LT_ERR_UNSUPPORTED, "lt__cpu_gemm: %lldx%lldx%lld exceeds BLAS's 32-bit sizes", (long long)m,
                       (long long)n, (long long)k);
    if (!blas_layout(a, la) || !blas_layout(b, lb))
        return lt__err(LT_ERR_INTERNAL, "lt__cpu_gemm: an operand has no unit-stride matrix dim or a bad ld");
    return LT_OK;
}

lt_status lt__cpu_gemm(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                       lt_tensor *c) {
    int64_t batch = c->shape[0], m = c->shape[1], n = c->shape[2];
    int64_t k = ta ? a->shape[1] : a->shape[2];
    blas_operand la, lb;
    LT_TRY(check_args(a, b, c, m, n, k, &la, &lb));
    if (batch == 0 || m == 0 || n == 0) return LT_OK;
    if (k == 0) {
        scale_c(c, batch * m * n, beta);
        return LT_OK;
    }
    /* op(stored) = stored^T when ta; a column-major layout is itself a transpose, so the two flips cancel. */
    gemm_call g = {
        .f32 = c->dtype == LT_F32,
        .fa = (ta != la.colmajor) ? CblasTrans : CblasNoTrans,
        .fb = (tb != lb.colmajor) ? CblasTrans : CblasNoTrans,
        .m = (int)m,
        .n = (int)n,
        .k = (int)k,
        .lda = la.ld,
        .ldb = lb.ld,
        .alpha = alpha,
        .beta = beta,
    };
    size_t es = lt_dtype_size(c->dtype);
    const char *pa = lt__data(a), *pb = lt__data(b);
    char *pc = lt__data(c);
    int64_t sa = a->strides[0] * (int64_t)es, sb = b->strides[0] * (int64_t)es, sc = m * n * (int64_t)es;
    int64_t mnk = m * n * k;
    /* Two loops, not one with an if() clause: BLAS called inside even an inactive parallel region nests its own
     * threads one level down, where libgomp does not reuse them, and spawns a team per call. */
    bool per_batch = mnk <= LT_GEMM_SMALL_MNK || (mnk <= LT_GEMM_MEDIUM_MNK && batch >= 4 * omp_get_max_threads());
    if (batch > 1 && per_batch && batch * mnk >= LT_GEMM_MIN_PARALLEL) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < batch; i++) gemm_one(&g, pa + i * sa, pb + i * sb, pc + i * sc);
    } else {
        for (int64_t i = 0; i < batch; i++) gemm_one(&g, pa + i * sa, pb + i * sb, pc + i * sc);
    }
    return LT_OK;
}
