/* CUDA kernels for memory and creation: fill, strided copy with dtype conversion (also to and from the host), and
 * arange. Conversions are src/core/convert.h's, shared with the CPU, so a copy gives the same bits on both. */
#include "common.cuh"

namespace lt_cuda {
namespace {

__global__ void fill_kernel(void *y, lt_dtype dtype, double value, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        lt__store(y, i, dtype, value);
}

__global__ void arange_kernel(void *y, lt_dtype dtype, double start, double step, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        lt__store(y, i, dtype, start + (double)i * step);
}

/* Moves one element of `bytes` bytes without conversion. */
__device__ inline void move_element(char *d, const char *s, int bytes) {
    switch (bytes) {
    case 1: *d = *s; break;
    case 2: *reinterpret_cast<uint16_t *>(d) = *reinterpret_cast<const uint16_t *>(s); break;
    case 4: *reinterpret_cast<uint32_t *>(d) = *reinterpret_cast<const uint32_t *>(s); break;
    default: *reinterpret_cast<uint64_t *>(d) = *reinterpret_cast<const uint64_t *>(s); break;
    }
}

/* dst (any strides) = src (any strides, 0 included) element by element, converting when the dtypes differ. */
__global__ void copy_kernel(char *dst, Strided dg, lt_dtype dd, const char *src, Strided sg, lt_dtype sd, int64_t n) {
    const int db = (int)lt__dtype_bytes(dd), sb = (int)lt__dtype_bytes(sd);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t doff = dg.offset(i), soff = sg.offset(i);
        if (dd == sd)
            move_element(dst + doff * db, src + soff * sb, db);
        else
            lt__store(dst, doff, dd, lt__load(src, soff, sd));
    }
}

/* Both contiguous, dtypes differing (autocast rounds every weight to bf16 this way): no index arithmetic. */
__global__ void convert_kernel(void *dst, lt_dtype dd, const void *src, lt_dtype sd, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        lt__store(dst, i, dd, lt__load(src, i, sd));
}

lt_status launch_copy(Context &ctx, lt_tensor *dst, const lt_tensor *src, const char *who) {
    int64_t n = numel(dst);
    if (lt__is_contiguous(dst) && lt__is_contiguous(src)) {
        LT_LAUNCH(convert_kernel, blocks_for(n), kThreads, 0, ctx.stream, lt__data(dst), dst->dtype, lt__data(src),
                  src->dtype, n);
        LT_CU_LAUNCHED(who, "convert_kernel");
        return LT_OK;
    }
    LT_LAUNCH(copy_kernel, blocks_for(n), kThreads, 0, ctx.stream, static_cast<char *>(lt__data(dst)), strided(dst),
              dst->dtype, static_cast<const char *>(lt__data(src)), strided(src), src->dtype, n);
    LT_CU_LAUNCHED(who, "copy_kernel");
    return LT_OK;
}

/* A contiguous device tensor with t's shape and the given dtype, in scratch memory: a header on the stack whose
 * storage points at the scratch block. */
struct Staged {
    Scratch mem;
    lt__storage storage;
    lt_tensor t;
    lt_status make(Context &ctx, const lt_tensor *like, lt_dtype dtype, const char *who) {
        size_t bytes = (size_t)numel(like) * lt_dtype_size(dtype);
        LT_TRY(mem.alloc(ctx, bytes, who));
        memset(&storage, 0, sizeof storage);
        storage.data = mem.as<void>();
        storage.nbytes = bytes;
        storage.device = lt_device{LT_CUDA, ctx.index};
        memset(&t, 0, sizeof t);
        t.storage = &storage;
        t.ndim = like->ndim;
        memcpy(t.shape, like->shape, sizeof(int64_t) * (size_t)like->ndim);
        lt__contiguous_strides(t.shape, t.ndim, t.strides);
        t.dtype = dtype;
        return LT_OK;
    }
};

/* host (contiguous, any dtype) -> device tensor: the bytes go over as they are, then convert or scatter on the
 * device when dst is another dtype or strided. */
lt_status upload(lt_tensor *dst, const lt_tensor *host, const char *who) {
    Context &ctx = context_of(dst);
    size_t bytes = (size_t)numel(host) * lt_dtype_size(host->dtype);
    if (dst->dtype == host->dtype && lt__is_contiguous(dst)) {
        LT_CU(cudaMemcpyAsync(lt__data(dst), lt__data(host), bytes, cudaMemcpyHostToDevice, ctx.stream), who);
        return sync(ctx, who); // the caller's host memory may change as soon as we return
    }
    Staged st;
    LT_TRY(st.make(ctx, host, host->dtype, who));
    LT_CU(cudaMemcpyAsync(lt__data(&st.t), lt__data(host), bytes, cudaMemcpyHostToDevice, ctx.stream), who);
    LT_TRY(launch_copy(ctx, dst, &st.t, who));
    return sync(ctx, who);
}

/* device tensor -> host (contiguous, any dtype): gather and convert on the device when needed, then one copy. */
lt_status download(lt_tensor *host, const lt_tensor *src, const char *who) {
    Context &ctx = context_of(src);
    size_t bytes = (size_t)numel(host) * lt_dtype_size(host->dtype);
    const lt_tensor *from = src;
    Staged st;
    if (src->dtype != host->dtype || !lt__is_contiguous(src)) {
        LT_TRY(st.make(ctx, src, host->dtype, who));
        LT_TRY(launch_copy(ctx, &st.t, src, who));
        from = &st.t;
    }
    LT_CU(cudaMemcpyAsync(lt__data(host), lt__data(from), bytes, cudaMemcpyDeviceToHost, ctx.stream), who);
    return sync(ctx, who);
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_fill(lt_tensor *y, double value) {
    int64_t n = numel(y);
    if (n == 0) return LT_OK;
    Context &ctx = context_of(y);
    LT_LAUNCH(fill_kernel, blocks_for(n), kThreads, 0, ctx.stream, lt__data(y), y->dtype, value, n);
    LT_CU_LAUNCHED("cuda fill", "fill_kernel");
    return LT_OK;
}

extern "C" lt_status lt__cuda_arange(lt_tensor *y, double start, double step) {
    int64_t n = numel(y);
    if (n == 0) return LT_OK;
    Context &ctx = context_of(y);
    LT_LAUNCH(arange_kernel, blocks_for(n), kThreads, 0, ctx.stream, lt__data(y), y->dtype, start, step, n);
    LT_CU_LAUNCHED("cuda arange", "arange_kernel");
    return LT_OK;
}

extern "C" lt_status lt__cuda_copy(lt_tensor *dst, const lt_tensor *src) {
    static const char *who = "cuda copy";
    if (numel(dst) == 0) return LT_OK;
    bool dst_host = dst->storage->device.type == LT_CPU, src_host = src->storage->device.type == LT_CPU;
    if (src_host) return upload(dst, src, who);
    if (dst_host) return download(dst, src, who);
    Context &ctx = context_of(dst);
    if (dst->dtype == src->dtype && lt__is_contiguous(dst) && lt__is_contiguous(src)) {
        LT_CU(cudaMemcpyAsync(lt__data(dst), lt__data(src), (size_t)numel(dst) * lt_dtype_size(dst->dtype),
                              cudaMemcpyDeviceToDevice, ctx.stream),
              who);
        return LT_OK;
    }
    return launch_copy(ctx, dst, src, who);
}
