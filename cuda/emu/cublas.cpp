/* The emulator's cuBLAS: the handle calls the CUDA backend makes, with the products computed on the CPU.
 * Declarations come from the toolkit's own cublas_v2.h, so a signature that drifts from cuBLAS fails to compile.
 *
 * The GEMMs (cublas{S,D}gemm_v2 and cublas{S,D}gemmStridedBatched, the calls cuda/gemm.cu makes) follow cuBLAS:
 * column-major operands, alpha and beta read through host pointers (CUBLAS_POINTER_MODE_HOST, the default), the
 * arguments validated as cuBLAS documents them (CUBLAS_STATUS_INVALID_VALUE for a bad operation, a negative size
 * or batch count, a leading dimension below its minimum, or a null alpha or beta), a quick return when there is
 * nothing to write, C = beta * C without reading A or B when k == 0 or alpha == 0, and C never read when beta == 0
 * (so poisoned or NaN memory does not leak into the result). Each product is OpenBLAS's, in column-major order,
 * which is also the order the CPU backend's row-major call reaches inside OpenBLAS. The math mode is recorded but
 * TF32 is not modelled: f32 products stay full precision. Work completes when it is issued, as every emulated
 * stream operation does.
 *
 * cublasGemmEx and cublasGemmStridedBatchedEx (the mixed-precision calls) take the same checks, then honour the types:
 * with CUBLAS_COMPUTE_32F (or _PEDANTIC), A and B both CUDA_R_16BF with C CUDA_R_16BF or CUDA_R_32F, or all three
 * CUDA_R_32F; with CUBLAS_COMPUTE_64F (or _PEDANTIC), all CUDA_R_64F; alpha and beta are floats or doubles to match.
 * Other combinations, compute types and algorithms are CUBLAS_STATUS_NOT_SUPPORTED. Each product widens its operands
 * exactly into packed compute-type matrices, runs cblas_sgemm or cblas_dgemm on them (f32 accumulation for bf16, as
 * cuBLAS does with CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION), and stores C converted to its type, a bf16 C
 * rounded once to nearest even (the rule of __float2bfloat16_rn). */
#include <cublas_v2.h>

#include <cblas.h>

#include <stdint.h>
#include <string.h>

#include <new>
#include <vector>

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

int at_least_1(int x) { return x > 1 ? x : 1; }

/* cuBLAS's argument checks for C[m, n] = alpha op(A) op(B) + beta C (column-major). */
cublasStatus_t check_gemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                          int k, const void *alpha, int lda, int ldb, const void *beta, int ldc, int batch) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < at_least_1(transa == CUBLAS_OP_N ? m : k)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldb < at_least_1(transb == CUBLAS_OP_N ? k : n)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldc < at_least_1(m)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

CBLAS_TRANSPOSE blas_op(cublasOperation_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double *A, int lda,
               const double *B, int ldb, double beta, double *C, int ldc) {
    cblas_dgemm(CblasColMajor, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The batched product after the checks; batch 1 is the plain GEMM. */
template <class T>
cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                    const T *alpha, const T *A, int lda, long long strideA, const T *B, int ldb, long long strideB,
                    const T *beta, T *C, int ldc, long long strideC, int batch) {
    cublasStatus_t st = check_gemm(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, batch);
    if (st != CUBLAS_STATUS_SUCCESS || m == 0 || n == 0 || batch == 0) return st;
    const T a = *alpha, b = *beta;
    if (!C || ((k > 0 && a != T(0)) && (!A || !B))) return CUBLAS_STATUS_INVALID_VALUE;
    for (int i = 0; i < batch; i++) {
        T *c = C + i * strideC;
        if (k == 0 || a == T(0)) { // BLAS's beta-only update: A and B are not read
            for (int j = 0; j < n; j++)
                for (int r = 0; r < m; r++)
                    c[r + (long long)j * ldc] = b == T(0) ? T(0) : b * c[r + (long long)j * ldc];
            continue;
        }
        blas_gemm(blas_op(transa), blas_op(transb), m, n, k, a, A + i * strideA, lda, B + i * strideB, ldb, b, c, ldc);
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- the Ex calls ---- */

float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Element i of an array of type t (one of the supported ones) in the compute type S. */
template <class S> S load(const void *p, cudaDataType t, long long i) {
    switch (t) {
    case CUDA_R_16BF: return (S)bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
    case CUDA_R_32F: return (S) static_cast<const float *>(p)[i];
    default: return (S) static_cast<const double *>(p)[i];
    }
}

template <class S> void store(void *p, cudaDataType t, long long i, S v) {
    switch (t) {
    case CUDA_R_16BF: static_cast<uint16_t *>(p)[i] = f32_to_bf16((float)v); break;
    case CUDA_R_32F: static_cast<float *>(p)[i] = (float)v; break;
    default: static_cast<double *>(p)[i] = (double)v; break;
    }
}

bool valid_algo(cublasGemmAlgo_t algo) {
    return (algo >= CUBLAS_GEMM_DEFAULT && algo <= CUBLAS_GEMM_ALGO23) ||
           (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP);
}

/* Whether cuBLAS runs these types with this compute type (the subset the backend uses; see the top of the file);
 * *f64 tells the compute scalar. */
bool supported(cudaDataType at, cudaDataType bt, cudaDataType ct, cublasComputeType_t compute, bool *f64) {
    *f64 = compute == CUBLAS_COMPUTE_64F || compute == CUBLAS_COMPUTE_64F_PEDANTIC;
    if (*f64) return at == CUDA_R_64F && bt == CUDA_R_64F && ct == CUDA_R_64F;
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC) return false;
    if (at == CUDA_R_16BF && bt == CUDA_R_16BF) return ct == CUDA_R_16BF || ct == CUDA_R_32F;
    return at == CUDA_R_32F && bt == CUDA_R_32F && ct == CUDA_R_32F;
}

/* Copies the column-major rows x cols matrix at p (type t, leading dimension ld) into the packed w. */
template <class S> void widen(const void *p, cudaDataType t, long long offset, int rows, int cols, int ld, S *w) {
    for (int j = 0; j < cols; j++)
        for (int r = 0; r < rows; r++) w[r + (long long)j * rows] = load<S>(p, t, offset + r + (long long)j * ld);
}

/* The batched Ex product after the checks, computing in S (float or double). */
template <class S>
cublasStatus_t gemm_ex(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void *alpha,
                       const void *A, cudaDataType at, int lda, long long strideA, const void *B, cudaDataType bt,
                       int ldb, long long strideB, const void *beta, void *C, cudaDataType ct, int ldc,
                       long long strideC, int batch) {
    const S a = *static_cast<const S *>(alpha), b = *static_cast<const S *>(beta);
    if (!C || ((k > 0 && a != S(0)) && (!A || !B))) return CUBLAS_STATUS_INVALID_VALUE;
    const int ar = transa == CUBLAS_OP_N ? m : k, ac = transa == CUBLAS_OP_N ? k : m;
    const int br = transb == CUBLAS_OP_N ? k : n, bc = transb == CUBLAS_OP_N ? n : k;
    std::vector<S> wa, wb, wc;
    try {
        wa.resize((size_t)ar * ac);
        wb.resize((size_t)br * bc);
        wc.resize((size_t)m * n);
    } catch (const std::bad_alloc &) {
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    for (int i = 0; i < batch; i++) {
        const long long oc = i * strideC;
        if (k == 0 || a == S(0)) { // BLAS's beta-only update: A and B are not read
            for (int j = 0; j < n; j++)
                for (int r = 0; r < m; r++) {
                    long long x = oc + r + (long long)j * ldc;
                    store<S>(C, ct, x, b == S(0) ? S(0) : b * load<S>(C, ct, x));
                }
            continue;
        }
        widen<S>(A, at, i * strideA, ar, ac, lda, wa.data());
        widen<S>(B, bt, i * strideB, br, bc, ldb, wb.data());
        if (b != S(0)) widen<S>(C, ct, oc, m, n, ldc, wc.data()); // C is never read when beta == 0
        blas_gemm(blas_op(transa), blas_op(transb), m, n, k, a, wa.data(), at_least_1(ar), wb.data(), at_least_1(br), b,
                  wc.data(), m);
        for (int j = 0; j < n; j++)
            for (int r = 0; r < m; r++) store<S>(C, ct, oc + r + (long long)j * ldc, wc[r + (long long)j * m]);
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t gemm_ex_checked(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                               int k, const void *alpha, const void *A, cudaDataType at, int lda, long long strideA,
                               const void *B, cudaDataType bt, int ldb, long long strideB, const void *beta, void *C,
                               cudaDataType ct, int ldc, long long strideC, int batch, cublasComputeType_t compute,
                               cublasGemmAlgo_t algo) {
    cublasStatus_t st = check_gemm(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, batch);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    bool f64;
    if (!supported(at, bt, ct, compute, &f64) || !valid_algo(algo)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    if (f64)
        return gemm_ex<double>(transa, transb, m, n, k, alpha, A, at, lda, strideA, B, bt, ldb, strideB, beta, C, ct,
                               ldc, strideC, batch);
    return gemm_ex<float>(transa, transb, m, n, k, alpha, A, at, lda, strideA, B, bt, ldb, strideB, beta, C, ct, ldc,
                          strideC, batch);
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new (std::nothrow) cublasContext;
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc) {
    return gemm(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t cublasDgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const double *alpha, const double *A, int lda, const double *B, int ldb,
                              const double *beta, double *C, int ldc) {
    return gemm(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb, long long int strideB,
                                         const float *beta, float *C, int ldc, long long int strideC, int batchCount) {
    return gemm(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                batchCount);
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const double *alpha, const double *A, int lda,
                                         long long int strideA, const double *B, int ldb, long long int strideB,
                                         const double *beta, double *C, int ldc, long long int strideC,
                                         int batchCount) {
    return gemm(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                batchCount);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    return gemm_ex_checked(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype,
                           ldc, 0, 1, computeType, algo);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo) {
    return gemm_ex_checked(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta,
                           C, Ctype, ldc, strideC, batchCount, computeType, algo);
}

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

} // extern "C"
