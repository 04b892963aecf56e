/* The CUDA backend's table, its per-device contexts (stream, cuBLAS handle, caching allocator) and its errors.
 * The entries live in one file per op family (cuda/<family>.cu); this file wires them together. */
#include "common.cuh"

#include <array>
#include <mutex>
#include <stdio.h>
#include <string.h>
#include <utility>

namespace lt_cuda {
namespace {

struct Slot {
    std::once_flag once;
    lt_status status = LT_OK;
    char message[320] = "";
    Context ctx{};
};
Slot g_slots[kMaxDevices];

/* The raw memory of device D for the caching allocator (src/core/alloc.c). One instantiation per device, because
 * lt__sys_mem's functions take no context. Poisoning (LIBTRAIN_POISON_ALLOC) is a memset on the device's stream. */
template <int D> void *sys_alloc(size_t n) {
    void *p = nullptr;
    if (cudaSetDevice(D) != cudaSuccess || cudaMalloc(&p, n) != cudaSuccess) {
        (void)cudaGetLastError(); // an out-of-memory is reported by the allocator, not left sticky for the next call
        return nullptr;
    }
    return p;
}
template <int D> void sys_free(void *p) {
    if (cudaSetDevice(D) == cudaSuccess) (void)cudaFree(p);
}
template <int D> void sys_fill(void *p, int byte, size_t n) {
    if (cudaSetDevice(D) == cudaSuccess) (void)cudaMemsetAsync(p, byte, n, g_slots[D].ctx.stream);
}
template <int... D> constexpr auto make_sys(std::integer_sequence<int, D...>) {
    return std::array<lt__sys_mem, sizeof...(D)>{{lt__sys_mem{sys_alloc<D>, sys_free<D>, sys_fill<D>}...}};
}

void init(Slot &s, int index) {
    auto fail = [&](lt_status st, const char *fmt, auto... args) {
        s.status = st;
        snprintf(s.message, sizeof s.message, fmt, args...);
    };
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return fail(LT_ERR_DEVICE, "no CUDA device is usable (cudaGetDeviceCount: %s, %s)", cudaGetErrorName(err),
                    cudaGetErrorString(err));
    }
    if (index >= count) return fail(LT_ERR_DEVICE, "cuda:%d does not exist (this machine has %d)", index, count);
    Context &c = s.ctx;
    c.index = index;
    if ((err = cudaSetDevice(index)) != cudaSuccess ||
        (err = cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking)) != cudaSuccess)
        return fail(LT_ERR_DEVICE, "cuda:%d could not be initialised (%s, %s)", index, cudaGetErrorName(err),
                    cudaGetErrorString(err));
    cublasStatus_t bs = cublasCreate(&c.blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(c.blas, c.stream);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return fail(LT_ERR_BACKEND, "cuda:%d: cuBLAS could not be initialised (%s)", index, cublasGetStatusString(bs));
    static const auto sys = make_sys(std::make_integer_sequence<int, kMaxDevices>{});
    c.alloc = lt__allocator_create(&sys[(size_t)index]);
    if (!c.alloc) return fail(LT_ERR_OOM, "cuda:%d: could not create the caching allocator", index);
}

} // namespace

Context &context_at(int index) {
    Context &c = g_slots[index].ctx;
    (void)cudaSetDevice(index);
    return c;
}

Context &context_of(const lt_tensor *t) { return context_at(t->storage->device.index); }

lt_status cuda_error(cudaError_t err, const char *who, const char *what) {
    (void)cudaGetLastError(); // clear a non-sticky error so that the next call starts clean
    lt_status st = err == cudaErrorMemoryAllocation ? LT_ERR_OOM : LT_ERR_BACKEND;
#if defined(__CUDACC__)
    return lt__err(st, "%s: %s failed: %s (%s)", who, what, cudaGetErrorName(err), cudaGetErrorString(err));
#else
    return lt__err(st, "%s: %s failed: %s (%s) %s", who, what, cudaGetErrorName(err), cudaGetErrorString(err),
                   lt_emu::last_message());
#endif
}

lt_status blas_error(cublasStatus_t err, const char *who, const char *what) {
    return lt__err(err == CUBLAS_STATUS_ALLOC_FAILED ? LT_ERR_OOM : LT_ERR_BACKEND, "%s: %s failed: %s", who, what,
                   cublasGetStatusString(err));
}

lt_status Scratch::alloc(Context &ctx, size_t bytes, const char *who) {
    release();
    LT_TRY(lt__alloc(ctx.alloc, bytes, who, &ptr_));
    alloc_ = ctx.alloc;
    return LT_OK;
}

void Scratch::release() {
    if (ptr_) lt__free(alloc_, ptr_);
    ptr_ = nullptr;
}

lt_status sync(Context &ctx, const char *who) {
    LT_CU(cudaStreamSynchronize(ctx.stream), who);
    return LT_OK;
}

Strided strided(const lt_tensor *t) {
    Strided g{};
    g.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        g.shape[d] = t->shape[d];
        g.strides[d] = t->strides[d];
    }
    return g;
}

} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_device_ready(const char *who, int index) {
    if (index < 0 || index >= kMaxDevices)
        return lt__err(LT_ERR_DEVICE, "%s: cuda:%d is out of range (this build addresses cuda:0 to cuda:%d)", who,
                       index, kMaxDevices - 1);
    Slot &s = g_slots[index];
    std::call_once(s.once, init, std::ref(s), index);
    if (s.status != LT_OK) return lt__err(s.status, "%s: %s", who, s.message);
    return LT_OK;
}

extern "C" lt__allocator *lt__cuda_allocator(int device_index) {
    if (device_index < 0 || device_index >= kMaxDevices) return nullptr;
    return g_slots[device_index].ctx.alloc;
}

extern "C" void *lt__cuda_stream(int device_index) {
    if (device_index < 0 || device_index >= kMaxDevices) return nullptr;
    Slot &s = g_slots[device_index];
    return s.status == LT_OK && s.ctx.alloc ? static_cast<void *>(s.ctx.stream) : nullptr;
}

extern "C" lt_status lt__cuda_synchronize(int device_index) {
    return sync(context_at(device_index), "lt_device_synchronize");
}

extern "C" const lt__backend lt__cuda_backend = {
    /* .name = */ "cuda",
    /* .allocator = */ lt__cuda_allocator,
    /* .synchronize = */ lt__cuda_synchronize,
    /* .fill = */ lt__cuda_fill,
    /* .copy = */ lt__cuda_copy,
    /* .arange = */ lt__cuda_arange,
    /* .philox = */ lt__cuda_philox,
    /* .unary = */ lt__cuda_unary,
    /* .unary_backward = */ lt__cuda_unary_backward,
    /* .binary = */ lt__cuda_binary,
    /* .scalar = */ lt__cuda_scalar,
    /* .where = */ lt__cuda_where,
    /* .reduce = */ lt__cuda_reduce,
    /* .max_backward = */ lt__cuda_max_backward,
    /* .gemm = */ lt__cuda_gemm,
    /* .softmax = */ lt__cuda_softmax,
    /* .softmax_backward = */ lt__cuda_softmax_backward,
    /* .layer_norm = */ lt__cuda_layer_norm,
    /* .layer_norm_backward = */ lt__cuda_layer_norm_backward,
    /* .cross_entropy = */ lt__cuda_cross_entropy,
    /* .cross_entropy_backward = */ lt__cuda_cross_entropy_backward,
    /* .embedding = */ lt__cuda_embedding,
    /* .embedding_backward = */ lt__cuda_embedding_backward,
    /* .dropout = */ lt__cuda_dropout,
    /* .attention = */ lt__cuda_attention,
    /* .attention_backward = */ lt__cuda_attention_backward,
    /* .classifier_ce = */ lt__cuda_classifier_ce,
    /* .sumsq = */ lt__cuda_sumsq,
    /* .adamw_step = */ lt__cuda_adamw_step,
    /* .sgd_step = */ lt__cuda_sgd_step,
};
