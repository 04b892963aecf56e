/* What every file of the CUDA backend shares: the per-device context, CUDA errors turned into lt_status, strided
 * indexing, dtype dispatch and launch sizes. Each cuda/<family>.cu fills its entries of the table in
 * cuda/backend.cu, as src/cpu/ does for the CPU. Kernels are single-source (cuda/lt_cuda.cuh): nvcc builds them for
 * the GPU and the host compiler builds them again against cuda/emu/ for the tests (docs/cuda-emulator.md). */
#ifndef LT_CUDA_COMMON_CUH
#define LT_CUDA_COMMON_CUH

#include "lt_cuda.cuh"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdint.h>

extern "C" {
#include "backend.h"
#include "core/error.h"
}

namespace lt_cuda {

/* Devices this build can address: cuda:0 .. cuda:(kMaxDevices - 1). */
constexpr int kMaxDevices = 16;

/* One per device, made on first use by lt__cuda_device_ready and kept for the process. All work of the device goes
 * to its one compute stream, in order, which is also what makes the caching allocator's reuse safe: a freed block
 * is handed out again only to work queued after the work that last used it. */
struct Context {
    int index;
    cudaStream_t stream;
    cublasHandle_t blas;
    lt__allocator *alloc;
};

/* The context of a tensor's device, made current on this thread (cudaSetDevice). The device is ready: a tensor
 * exists on it. */
Context &context_of(const lt_tensor *t);
Context &context_at(int index);

/* A failed CUDA runtime or cuBLAS call as a status: LT_ERR_OOM for out-of-memory, LT_ERR_BACKEND otherwise, with a
 * message naming who, what was called and CUDA's own words (and, in the emulator, where a kernel failed). */
lt_status cuda_error(cudaError_t err, const char *who, const char *what);
lt_status blas_error(cublasStatus_t err, const char *who, const char *what);

/* Device scratch memory from the device's caching allocator, freed (back to the cache) by the destructor. Safe to
 * free right after queuing the work that uses it: reuse is ordered on the same stream. */
class Scratch {
  public:
    Scratch() = default;
    Scratch(const Scratch &) = delete;
    Scratch &operator=(const Scratch &) = delete;
    ~Scratch() { release(); }
    lt_status alloc(Context &ctx, size_t bytes, const char *who);
    template <class T> T *as() const { return static_cast<T *>(ptr_); }
    void release();

  private:
    lt__allocator *alloc_ = nullptr;
    void *ptr_ = nullptr;
};

/* Waits for the device's stream; a failure of earlier asynchronous work surfaces here. */
lt_status sync(Context &ctx, const char *who);

/* A tensor's geometry for kernels (by value): element i in row-major order of shape lives at offset(i). */
struct Strided {
    int ndim;
    int64_t shape[LT_MAX_DIMS];
    int64_t strides[LT_MAX_DIMS];
    __host__ __device__ int64_t offset(int64_t i) const {
        int64_t off = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            off += (i % shape[d]) * strides[d];
            i /= shape[d];
        }
        return off;
    }
};
Strided strided(const lt_tensor *t);

/* q = v / d and *r = v - q d, in 32 bits when both fit (the usual case: a 32-bit division is several times
 * cheaper). For index arithmetic over strided geometry. */
__device__ inline int64_t div_rem(int64_t v, int64_t d, int64_t *r) {
    int64_t q;
    if (((uint64_t)v | (uint64_t)d) >> 31 == 0)
        q = (int64_t)((uint32_t)v / (uint32_t)d);
    else
        q = v / d;
    *r = v - q * d;
    return q;
}

template <class T> T *data(const lt_tensor *t) { return static_cast<T *>(lt__data(t)); }
inline int64_t numel(const lt_tensor *t) { return lt__numel(t->shape, t->ndim); }

/* Launch sizes: 1-D grid-stride loops get at most kMaxBlocks blocks of kThreads. */
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > kMaxBlocks ? kMaxBlocks : b);
}

/* Calls f(T{}) with T = float or double for a compute dtype, or fails with LT_ERR_DTYPE naming who. */
template <class F> lt_status dispatch_float(lt_dtype dtype, const char *who, F &&f) {
    switch (dtype) {
    case LT_F32: return f(float{});
    case LT_F64: return f(double{});
    default:
        return lt__err(LT_ERR_DTYPE, "%s: the cuda backend computes in f32 or f64, not %s", who, lt_dtype_name(dtype));
    }
}

/* Conversions between the storage types (the 8 lt_dtypes) and the compute type, on host and device. bf16 and f16
 * round to nearest even. */
template <class To, class From> __host__ __device__ inline To convert(From v) { return static_cast<To>(v); }
template <> __host__ __device__ inline float convert<float, __nv_bfloat16>(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <> __host__ __device__ inline double convert<double, __nv_bfloat16>(__nv_bfloat16 v) {
    return (double)__bfloat162float(v);
}
template <> __host__ __device__ inline __nv_bfloat16 convert<__nv_bfloat16, float>(float v) {
    return __float2bfloat16_rn(v);
}
template <> __host__ __device__ inline __nv_bfloat16 convert<__nv_bfloat16, double>(double v) {
    return __double2bfloat16(v);
}
template <> __host__ __device__ inline float convert<float, __half>(__half v) { return __half2float(v); }
template <> __host__ __device__ inline double convert<double, __half>(__half v) { return (double)__half2float(v); }
template <> __host__ __device__ inline __half convert<__half, float>(float v) { return __float2half_rn(v); }
template <> __host__ __device__ inline __half convert<__half, double>(double v) { return __double2half(v); }

} // namespace lt_cuda

/* Return a CUDA runtime call's failure as a status: LT_CU(cudaMemsetAsync(...), who). */
#define LT_CU(call, who)                                                                                               \
    do {                                                                                                               \
        cudaError_t lt_cu_err_ = (call);                                                                               \
        if (lt_cu_err_ != cudaSuccess) return ::lt_cuda::cuda_error(lt_cu_err_, (who), #call);                         \
    } while (0)

/* After an LT_LAUNCH: return its failure (bad configuration, or in the emulator a kernel error) as a status. */
#define LT_CU_LAUNCHED(who, kernel_name)                                                                               \
    do {                                                                                                               \
        cudaError_t lt_cu_err_ = cudaGetLastError();                                                                   \
        if (lt_cu_err_ != cudaSuccess) return ::lt_cuda::cuda_error(lt_cu_err_, (who), "launch of " kernel_name);      \
    } while (0)

#define LT_BLAS(call, who)                                                                                             \
    do {                                                                                                               \
        cublasStatus_t lt_blas_err_ = (call);                                                                          \
        if (lt_blas_err_ != CUBLAS_STATUS_SUCCESS) return ::lt_cuda::blas_error(lt_blas_err_, (who), #call);           \
    } while (0)

/* The table's entries, one family per file (cuda/<family>.cu), C linkage so that src/ could name them. */
extern "C" {
lt_status lt__cuda_synchronize(int device_index);
lt_status lt__cuda_fill(lt_tensor *y, double value);
lt_status lt__cuda_copy(lt_tensor *dst, const lt_tensor *src);
lt_status lt__cuda_arange(lt_tensor *y, double start, double step);
lt_status lt__cuda_philox(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal);
lt_status lt__cuda_unary(lt__unary_op op, const lt_tensor *x, lt_tensor *y);
lt_status lt__cuda_unary_backward(lt__unary_op op, const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                  lt_tensor *gx);
lt_status lt__cuda_binary(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y);
lt_status lt__cuda_scalar(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y);
lt_status lt__cuda_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *y);
lt_status lt__cuda_reduce(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y);
lt_status lt__cuda_max_backward(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy, uint32_t dim_mask,
                                lt_tensor *gx);
lt_status lt__cuda_gemm(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                        const lt_tensor *bias, lt_tensor *asum, lt_tensor *c);
lt_status lt__cuda_softmax(const lt_tensor *x, int dim, bool log, lt_tensor *y);
lt_status lt__cuda_softmax_backward(const lt_tensor *y, const lt_tensor *gy, int dim, bool log, lt_tensor *gx);
lt_status lt__cuda_layer_norm(const lt_tensor *x, const lt_tensor *r, const lt_tensor *w, const lt_tensor *b,
                              double eps, lt_tensor *s, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd);
lt_status lt__cuda_layer_norm_backward(const lt_tensor *x, const lt_tensor *w, const lt_tensor *mean,
                                       const lt_tensor *rstd, const lt_tensor *gy, lt_tensor *gx, lt_tensor *gw,
                                       lt_tensor *gb);
lt_status lt__cuda_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                 lt_tensor *loss, lt_tensor *lse);
lt_status lt__cuda_cross_entropy_backward(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                          const lt_tensor *lse, const lt_tensor *gloss, lt_tensor *glogits);
lt_status lt__cuda_embedding(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y);
lt_status lt__cuda_embedding_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw);
lt_status lt__cuda_dropout(const lt_tensor *x, double p, double scale, uint64_t seed, uint64_t offset, lt_tensor *y,
                           lt_tensor *mask);
lt_status lt__cuda_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse);
lt_status lt__cuda_attention_backward(const lt_tensor *qkv, const lt_tensor *y, const lt_tensor *lse,
                                      const lt_tensor *gy, int n_head, lt_tensor *gqkv);
lt_status lt__cuda_classifier_ce(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets, int64_t ignore_index,
                                 double grad_scale, bool want_grad, lt_tensor *loss);
lt_status lt__cuda_sumsq(const lt_tensor *x, double *out);
lt_status lt__cuda_adamw_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v,
                              const struct lt__segment *segments, int n_segments, double lr, double beta1, double beta2,
                              double eps, int64_t step, double grad_scale);
lt_status lt__cuda_sgd_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity, double lr, double momentum,
                            double weight_decay, bool nesterov, bool first_step, double grad_scale);
lt__allocator *lt__cuda_allocator(int device_index);
}

#endif
