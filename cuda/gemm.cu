/* CUDA batched GEMM over cuBLAS: transposed and strided operands reach cublas?gemm(StridedBatched) as operation
 * flags, leading dimensions and batch strides, never as copies, exactly as src/cpu/gemm.c hands them to OpenBLAS.
 *
 * Layout. The library's matrices are row-major and cuBLAS's are column-major. A row-major [m, n] matrix C is, in the
 * same memory, the column-major [n, m] matrix C^T, and C^T = op(B)^T op(A)^T, so every call computes C^T with the
 * operands swapped: B first, A second, the sizes (n, m, k), ldc = n and a batch stride of m * n for the contiguous
 * c. An operand stored row-major (unit column stride) is already the transpose cuBLAS sees, one stored column-major
 * (unit row stride) is seen as it is; so each flag is "transpose" exactly when op's flag and the storage differ.
 * A batch stride of 0 (one matrix shared by every batch) is passed through: cuBLAS reads it that way.
 *
 * TF32. Off by default, so f32 products keep full f32 precision and agree with the CPU to rounding. Setting the
 * environment variable LIBTRAIN_TF32=1 (read once, on the first f32 GEMM of the process) turns on
 * CUBLAS_TF32_TENSOR_OP_MATH for f32 GEMMs: tensor cores with inputs rounded to TF32 (10-bit mantissa), several
 * times faster on A100/H100 at about 1e-3 relative error. f64 is never affected.
 *
 * bf16 (mixed precision). a and b both bf16 with c f32 or bf16 go to cublasGemmEx / cublasGemmStridedBatchedEx with
 * CUDA_R_16BF inputs, a CUDA_R_32F or CUDA_R_16BF output and CUBLAS_COMPUTE_32F (float alpha and beta): tensor cores
 * multiply the bf16 values exactly and accumulate in f32. The handle's math mode for these calls is the default plus
 * CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION, so that a split-K reduction into a bf16 c also runs in f32 and the
 * output is rounded once, as src/cpu/gemm.c does it (f32 sgemm over the widened operands, then one rounding). */
#include "common.cuh"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

namespace lt_cuda {
namespace {

/* LIBTRAIN_TF32=1 in the environment, read once (a function-local static initialises thread-safely). */
bool tf32_enabled() {
    static const bool on = [] {
        const char *v = getenv("LIBTRAIN_TF32");
        return v != nullptr && strcmp(v, "1") == 0;
    }();
    return on;
}

/* c *= beta over n contiguous elements: the whole product when k == 0 (the CPU's scale_c). */
template <class T> __global__ void scale_kernel(T *c, T beta, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        c[i] *= beta;
}

/* The same for a bf16 c (its bits): scaled in f32 and rounded to nearest even by src/core/convert.h's conversions, the
 * CPU's exactly. */
__global__ void scale_bf16_kernel(uint16_t *c, float beta, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        c[i] = lt__f32_to_bf16(beta * lt__bf16_to_f32(c[i]));
}

/* One call's arguments in cuBLAS's (column-major, swapped) terms. */
struct Call {
    cublasOperation_t op_b, op_a;
    int n, m, k, ldb, lda, batch;
    long long stride_b, stride_a, stride_c;
};

cublasStatus_t blas_gemm(cublasHandle_t h, const Call &g, const float *alpha, const float *b, const float *a,
                         const float *beta, float *c) {
    if (g.batch == 1) return cublasSgemm(h, g.op_b, g.op_a, g.n, g.m, g.k, alpha, b, g.ldb, a, g.lda, beta, c, g.n);
    return cublasSgemmStridedBatched(h, g.op_b, g.op_a, g.n, g.m, g.k, alpha, b, g.ldb, g.stride_b, a, g.lda,
                                     g.stride_a, beta, c, g.n, g.stride_c, g.batch);
}

cublasStatus_t blas_gemm(cublasHandle_t h, const Call &g, const double *alpha, const double *b, const double *a,
                         const double *beta, double *c) {
    if (g.batch == 1) return cublasDgemm(h, g.op_b, g.op_a, g.n, g.m, g.k, alpha, b, g.ldb, a, g.lda, beta, c, g.n);
    return cublasDgemmStridedBatched(h, g.op_b, g.op_a, g.n, g.m, g.k, alpha, b, g.ldb, g.stride_b, a, g.lda,
                                     g.stride_a, beta, c, g.n, g.stride_c, g.batch);
}

/* bf16 x bf16 -> ctype (CUDA_R_32F or CUDA_R_16BF), accumulated in f32. */
cublasStatus_t blas_gemm_bf16(cublasHandle_t h, const Call &g, const float *alpha, const void *b, const void *a,
                              const float *beta, void *c, cudaDataType ctype) {
    if (g.batch == 1)
        return cublasGemmEx(h, g.op_b, g.op_a, g.n, g.m, g.k, alpha, b, CUDA_R_16BF, g.ldb, a, CUDA_R_16BF, g.lda, beta,
                            c, ctype, g.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return cublasGemmStridedBatchedEx(h, g.op_b, g.op_a, g.n, g.m, g.k, alpha, b, CUDA_R_16BF, g.ldb, g.stride_b, a,
                                      CUDA_R_16BF, g.lda, g.stride_a, beta, c, ctype, g.n, g.stride_c, g.batch,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

const char *const kWho = "cuda gemm";

/* cuBLAS's view of the call (see the top of the file). */
Call make_call(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, const lt__blas_operand &la,
               const lt__blas_operand &lb, int64_t batch, int64_t m, int64_t n, int64_t k) {
    Call g;
    g.op_b = (tb != lb.colmajor) ? CUBLAS_OP_T : CUBLAS_OP_N;
    g.op_a = (ta != la.colmajor) ? CUBLAS_OP_T : CUBLAS_OP_N;
    g.n = (int)n;
    g.m = (int)m;
    g.k = (int)k;
    g.ldb = lb.ld;
    g.lda = la.ld;
    g.batch = (int)batch;
    g.stride_b = (long long)b->strides[0];
    g.stride_a = (long long)a->strides[0];
    g.stride_c = (long long)(m * n);
    return g;
}

/* bf16 a and b, f32 or bf16 c; the arguments are checked and c is not empty. */
lt_status gemm_bf16(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta, lt_tensor *c,
                    const lt__blas_operand &la, const lt__blas_operand &lb, int64_t batch, int64_t m, int64_t n,
                    int64_t k) {
    Context &ctx = context_of(c);
    int64_t total = batch * m * n;
    if (k == 0) { // no products to add: c = beta * c, and never 0 * (poisoned or NaN) c
        if (beta == 0) {
            LT_CU(cudaMemsetAsync(lt__data(c), 0, (size_t)total * lt_dtype_size(c->dtype), ctx.stream), kWho);
        } else if (c->dtype == LT_BF16) {
            LT_LAUNCH(scale_bf16_kernel, blocks_for(total), kThreads, 0, ctx.stream, data<uint16_t>(c), (float)beta,
                      total);
            LT_CU_LAUNCHED(kWho, "scale_bf16_kernel");
        } else {
            LT_LAUNCH(scale_kernel<float>, blocks_for(total), kThreads, 0, ctx.stream, data<float>(c), (float)beta,
                      total);
            LT_CU_LAUNCHED(kWho, "scale_kernel");
        }
        return LT_OK;
    }
    Call g = make_call(a, b, ta, tb, la, lb, batch, m, n, k);
    LT_BLAS(cublasSetMathMode(ctx.blas,
                              (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
            kWho);
    const float al = (float)alpha, be = (float)beta;
    LT_BLAS(blas_gemm_bf16(ctx.blas, g, &al, lt__data(b), lt__data(a), &be, lt__data(c),
                           c->dtype == LT_BF16 ? CUDA_R_16BF : CUDA_R_32F),
            kWho);
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

// The product of lt__cuda_gemm, without its asum.
static lt_status product(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                         const lt_tensor *bias, const lt_tensor *asum, lt_tensor *c) {
    int64_t batch = c->shape[0], m = c->shape[1], n = c->shape[2];
    int64_t k = ta ? a->shape[1] : a->shape[2];
    lt__blas_operand la, lb;
    LT_TRY(lt__gemm_check(kWho, a, b, c, bias, asum, beta, m, n, k, &la, &lb));
    if (batch * m * n == 0) return LT_OK;
    if (bias) { // c = the bias rows (one broadcast copy kernel), then cuBLAS adds the product onto them
        lt_tensor hb;
        LT_TRY(lt__broadcast_header(bias, c->shape, c->ndim, &hb));
        LT_TRY(lt__cuda_copy(c, &hb));
        if (k == 0) return LT_OK;
        beta = 1;
    }
    if (a->dtype == LT_BF16) return gemm_bf16(a, b, ta, tb, alpha, beta, c, la, lb, batch, m, n, k);
    return dispatch_float(c->dtype, kWho, [&](auto zero) -> lt_status {
        using T = decltype(zero);
        int64_t total = batch * m * n;
        Context &ctx = context_of(c);
        if (k == 0) { // no products to add: c = beta * c, and never 0 * (poisoned or NaN) c
            if (beta == 0) {
                LT_CU(cudaMemsetAsync(lt__data(c), 0, (size_t)total * sizeof(T), ctx.stream), kWho);
                return LT_OK;
            }
            LT_LAUNCH(scale_kernel<T>, blocks_for(total), kThreads, 0, ctx.stream, data<T>(c), (T)beta, total);
            LT_CU_LAUNCHED(kWho, "scale_kernel");
            return LT_OK;
        }
        Call g = make_call(a, b, ta, tb, la, lb, batch, m, n, k);
        if (sizeof(T) == sizeof(float))
            LT_BLAS(cublasSetMathMode(ctx.blas, tf32_enabled() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                    kWho);
        const T al = (T)alpha, be = (T)beta;
        LT_BLAS(blas_gemm(ctx.blas, g, &al, data<T>(b), data<T>(a), &be, data<T>(c)), kWho);
        return LT_OK;
    });
}

// asum, the row sums of op(a), by the reduction kernel after cuBLAS's product (on the same stream).
extern "C" lt_status lt__cuda_gemm(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                                   const lt_tensor *bias, lt_tensor *asum, lt_tensor *c) {
    LT_TRY(product(a, b, ta, tb, alpha, beta, bias, asum, c));
    if (!asum) return LT_OK;
    lt_tensor hx, hy;
    LT_TRY(lt__gemm_asum_headers(a, ta, asum, &hx, &hy));
    return lt__cuda_reduce(LT_ROP_SUM, &hx, 1u << 1, &hy);
}
