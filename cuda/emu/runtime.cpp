/* The CUDA runtime API on the CPU, for host-compiler builds against the emulator only: "device" memory is host
 * memory, every call completes before it returns, and streams and events are bookkeeping. It must never be linked
 * into libtrain.so, whose CUDA build links NVIDIA's real libcudart. */
#include "emu_internal.h"

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

struct CUstream_st {
    int unused;
};
struct CUevent_st {
    double ms; // when it was last recorded, on a steady clock
};

namespace lt_emu::internal {
namespace {

thread_local cudaError_t g_last = cudaSuccess;

// The emulated device, shared by every host thread like a real one.
struct Device {
    std::mutex mu;
    std::map<uintptr_t, size_t> device_allocs; // base -> bytes, to check copy directions and bounds
    std::set<void *> host_allocs, streams, events;
    std::map<const void *, int> max_dynamic_smem;
};

Device &device() {
    static Device d;
    return d;
}

bool in_device(Device &d, const void *p, size_t bytes) {
    auto it = d.device_allocs.upper_bound(reinterpret_cast<uintptr_t>(p));
    if (it == d.device_allocs.begin()) return false;
    --it;
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return a >= it->first && a - it->first + bytes <= it->second;
}

cudaError_t fail(cudaError_t err, const std::string &what) {
    set_message("lt_emu: " + what);
    return set_last_error(err);
}

// The direction a copy claims must match where its pointers live: a host pointer passed as device memory is a bug
// that a GPU turns into a crash, and the emulator would otherwise silently accept.
cudaError_t check_copy(const char *fn, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    Device &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    bool dst_dev = in_device(d, dst, bytes), src_dev = in_device(d, src, bytes);
    bool ok = true;
    switch (kind) {
    case cudaMemcpyHostToHost: ok = !dst_dev && !src_dev; break;
    case cudaMemcpyHostToDevice: ok = dst_dev && !src_dev; break;
    case cudaMemcpyDeviceToHost: ok = !dst_dev && src_dev; break;
    case cudaMemcpyDeviceToDevice: ok = dst_dev && src_dev; break;
    case cudaMemcpyDefault: break;
    default: return fail(cudaErrorInvalidMemcpyDirection, std::string(fn) + ": unknown cudaMemcpyKind");
    }
    if (!ok) {
        return fail(cudaErrorInvalidValue, std::string(fn) + ": " + std::to_string(bytes) + " bytes, kind " +
                                               std::to_string(kind) + ", but dst is " +
                                               (dst_dev ? "device" : "not (whole) device") + " memory and src is " +
                                               (src_dev ? "device" : "not (whole) device") + " memory");
    }
    return cudaSuccess;
}

} // namespace

cudaError_t set_last_error(cudaError_t err) {
    if (err != cudaSuccess) g_last = err;
    return err;
}

bool stream_valid(cudaStream_t s) {
    if (!s || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
    Device &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.streams.count(s) != 0;
}

size_t max_dynamic_smem(const void *func) {
    Device &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.max_dynamic_smem.find(func);
    return it == d.max_dynamic_smem.end() ? 0 : static_cast<size_t>(it->second);
}

} // namespace lt_emu::internal

using lt_emu::internal::device;
using lt_emu::internal::fail;
using lt_emu::internal::set_last_error;

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    if (!ptr) return fail(cudaErrorInvalidValue, "cudaMalloc: null pointer");
    // Fresh device memory holds garbage on a GPU; NaN bytes make a read-before-write visible in results.
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return fail(cudaErrorMemoryAllocation, "cudaMalloc: out of memory for " + std::to_string(bytes));
    memset(p, 0xFF, bytes);
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    d.device_allocs[reinterpret_cast<uintptr_t>(p)] = bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.device_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == d.device_allocs.end()) return fail(cudaErrorInvalidValue, "cudaFree: not a cudaMalloc pointer");
    d.device_allocs.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes) {
    if (!ptr) return fail(cudaErrorInvalidValue, "cudaMallocHost: null pointer");
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return fail(cudaErrorMemoryAllocation, "cudaMallocHost: out of memory");
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    d.host_allocs.insert(p);
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr) {
    if (!ptr) return cudaSuccess;
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    if (!d.host_allocs.erase(ptr)) return fail(cudaErrorInvalidValue, "cudaFreeHost: not a cudaMallocHost pointer");
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    cudaError_t err = lt_emu::internal::check_copy("cudaMemcpy", dst, src, bytes, kind);
    if (err == cudaSuccess && bytes) memmove(dst, src, bytes);
    return err;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (!lt_emu::internal::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: stream");
    cudaError_t err = lt_emu::internal::check_copy("cudaMemcpyAsync", dst, src, bytes, kind);
    if (err == cudaSuccess && bytes) memmove(dst, src, bytes);
    return err;
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    {
        auto &d = device();
        std::lock_guard<std::mutex> lock(d.mu);
        if (bytes && !lt_emu::internal::in_device(d, dst, bytes)) {
            return fail(cudaErrorInvalidValue, "cudaMemset: " + std::to_string(bytes) + " bytes not in device memory");
        }
    }
    memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    if (!lt_emu::internal::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: stream");
    return cudaMemset(dst, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) {
    if (!s) return fail(cudaErrorInvalidValue, "cudaStreamCreate: null pointer");
    *s = new CUstream_st{};
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    d.streams.insert(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    if (!d.streams.erase(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: unknown stream");
    delete s;
    return cudaSuccess;
}

// Work completes when it is issued, so waiting on a valid stream or event is a no-op.
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    return lt_emu::internal::stream_valid(s) ? cudaSuccess
                                             : fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: stream");
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
    if (!lt_emu::internal::stream_valid(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: stream");
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.events.count(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: event");
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) {
    if (!e) return fail(cudaErrorInvalidValue, "cudaEventCreate: null pointer");
    *e = new CUevent_st{0.0};
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    d.events.insert(*e);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    if (!d.events.erase(e)) return fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy: unknown event");
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!lt_emu::internal::stream_valid(s)) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: stream");
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    if (!d.events.count(e)) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown event");
    e->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.events.count(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: event");
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    if (!ms || !d.events.count(start) || !d.events.count(end)) {
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unknown event");
    }
    *ms = static_cast<float>(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess; // hints the emulator ignores
    if (value < 0 || value > 227 * 1024) {
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                               " bytes of dynamic shared memory, over the H100's 227 KiB");
    }
    auto &d = device();
    std::lock_guard<std::mutex> lock(d.mu);
    d.max_dynamic_smem[func] = value;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n) {
    if (!n) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: null pointer");
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) {
    return dev == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "cudaSetDevice: the emulator has device 0 only");
}

cudaError_t cudaGetDevice(int *dev) {
    if (!dev) return fail(cudaErrorInvalidValue, "cudaGetDevice: null pointer");
    *dev = 0;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t err = lt_emu::internal::g_last;
    lt_emu::internal::g_last = cudaSuccess;
    return err;
}

cudaError_t cudaPeekAtLastError(void) { return lt_emu::internal::g_last; }

const char *cudaGetErrorName(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
    }
}

// The texts NVIDIA's runtime gives, so that messages read the same in both builds.
const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
    }
}
