/* The CPU emulator's device side: what kernel code sees under the host compiler (threadIdx, __syncthreads, warp
 * collectives, per-block shared memory, atomics) and the launcher that LT_LAUNCH expands to. Host compiler only:
 * kernels include cuda/lt_cuda.cuh, never this file, and nvcc never sees it. */
#ifndef LT_CUDA_EMU_LT_EMU_H
#define LT_CUDA_EMU_LT_EMU_H

#if defined(__CUDACC__)
#error "cuda/emu/lt_emu.h is the host-compiler side of cuda/lt_cuda.cuh: nvcc must not include it"
#endif

#include <cuda_runtime.h> // types, dim3, and the runtime API that cuda/emu/runtime.cpp implements

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace lt_emu {

/* The built-in variables. Every fiber of a launch runs on the launching OS thread, and the scheduler writes these
 * before it resumes a fiber, so a thread_local keeps concurrent launches from different OS threads apart. Kernels
 * reach them through a call, not the variable: GCC 12's UBSan null check on an extern thread_local misfires (it
 * tests 0 instead of the TLS address) inside fibers. */
struct Builtins {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};
Builtins &builtins();

enum class WarpOp { shfl, shfl_up, shfl_down, shfl_xor, ballot, any, all, syncwarp };

/* Rendezvous points. Each suspends the calling fiber until its partners arrive; file/line name the call site in
 * error messages and tell two different barriers apart. */
void syncthreads(const char *file, int line);
/* value/result are `size` bytes of this lane; arg is srcLane, delta or laneMask; width the shuffle's section. */
void warp_collective(WarpOp op, unsigned mask, const void *value, void *result, size_t size, int arg, int width,
                     const char *file, int line);

/* Per-block shared memory: the array declared at `key` (one address per declaration site) for the current block,
 * allocated by the first thread that reaches it. Returns null after reporting an error (over the limit). */
void *shared_static(const void *key, size_t bytes, size_t align, const char *name);
void *shared_dynamic();

/* Ends the launch with an error from inside a kernel (the launch returns cudaErrorLaunchFailure). */
[[noreturn]] void kernel_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The type-erased launcher: runs `run(args)` once per thread of every block. `func` identifies the kernel for
 * cudaFuncSetAttribute. Returns the launch's status, which cudaGetLastError() also reports. */
cudaError_t launch_erased(const char *name, const void *func, dim3 grid, dim3 block, size_t dynamic_smem,
                          cudaStream_t stream, void (*run)(const void *), const void *args);

template <class... P, class... A>
cudaError_t launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t dynamic_smem,
                   cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "LT_LAUNCH: wrong number of kernel arguments");
    // Arguments are converted to the parameter types once, as <<<>>> does, and each thread gets its own copy.
    struct Bound {
        void (*kernel)(P...);
        std::tuple<std::decay_t<P>...> args;
    };
    const Bound bound{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    auto run = [](const void *p) {
        const Bound *b = static_cast<const Bound *>(p);
        std::apply(b->kernel, b->args);
    };
    return launch_erased(name, reinterpret_cast<const void *>(kernel), grid, block, dynamic_smem, stream, run, &bound);
}

template <class T> T shuffle(const char *file, int line, WarpOp op, unsigned mask, T var, int arg, int width = 32) {
    static_assert(std::is_trivially_copyable<T>::value, "warp shuffles move plain bytes");
    T out;
    warp_collective(op, mask, &var, &out, sizeof(T), arg, width, file, line);
    return out;
}

inline unsigned vote(const char *file, int line, WarpOp op, unsigned mask, int predicate) {
    int pred = predicate != 0;
    unsigned out = 0;
    warp_collective(op, mask, &pred, &out, sizeof pred, 0, 32, file, line);
    return out;
}

/* Shuffle and seeds for the bug-finding mode (docs/cuda-emulator.md). seed 0 runs threads in index order. */
void set_shuffle(uint64_t seed);   // overrides LT_EMU_SHUFFLE until reset_shuffle()
void reset_shuffle();              // back to LT_EMU_SHUFFLE (unset or 0: in order)
uint64_t shuffle_seed();           // the seed the next launch uses
void set_stack_size(size_t bytes); // per-fiber stack for launches from now on (default 64 KiB, 256 KiB under ASan)

/* What the last failed launch or runtime call on this OS thread reported: "lt_emu: kernel K, block (x,y,z): ...".
 * Empty when nothing failed yet. Valid until the next failure on this thread. */
const char *last_message();

/* Counters since the process started, for tests and for measuring the emulator's speed. */
struct Stats {
    uint64_t launches, blocks, switches;
};
Stats stats();

/* Atomics are plain read-modify-writes: fibers switch only at rendezvous points, so nothing interleaves them. */
template <class T> T atomic_rmw(T *p, T v, int op) {
    T old = *p;
    switch (op) {
    case 0: *p = old + v; break;
    case 1: *p = v < old ? v : old; break;
    case 2: *p = v > old ? v : old; break;
    default: *p = v; break;
    }
    return old;
}

} // namespace lt_emu

#define threadIdx (::lt_emu::builtins().thread_idx)
#define blockIdx (::lt_emu::builtins().block_idx)
#define blockDim (::lt_emu::builtins().block_dim)
#define gridDim (::lt_emu::builtins().grid_dim)
#ifndef warpSize
#define warpSize 32
#endif

#define __syncthreads() ::lt_emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...)                                                                                                \
    ::lt_emu::vote(__FILE__, __LINE__, ::lt_emu::WarpOp::syncwarp, lt_emu_mask_or_all(__VA_ARGS__), 0)
#define __shfl_sync(...) ::lt_emu::shuffle(__FILE__, __LINE__, ::lt_emu::WarpOp::shfl, __VA_ARGS__)
#define __shfl_up_sync(...) ::lt_emu::shuffle(__FILE__, __LINE__, ::lt_emu::WarpOp::shfl_up, __VA_ARGS__)
#define __shfl_down_sync(...) ::lt_emu::shuffle(__FILE__, __LINE__, ::lt_emu::WarpOp::shfl_down, __VA_ARGS__)
#define __shfl_xor_sync(...) ::lt_emu::shuffle(__FILE__, __LINE__, ::lt_emu::WarpOp::shfl_xor, __VA_ARGS__)
#define __ballot_sync(mask, pred) ::lt_emu::vote(__FILE__, __LINE__, ::lt_emu::WarpOp::ballot, mask, pred)
#define __any_sync(mask, pred) ((int)::lt_emu::vote(__FILE__, __LINE__, ::lt_emu::WarpOp::any, mask, pred))
#define __all_sync(mask, pred) ((int)::lt_emu::vote(__FILE__, __LINE__, ::lt_emu::WarpOp::all, mask, pred))
// __syncwarp() without a mask means the full warp.
inline unsigned lt_emu_mask_or_all() { return 0xffffffffu; }
inline unsigned lt_emu_mask_or_all(unsigned mask) { return mask; }

#define __launch_bounds__(...)
#define __threadfence() ((void)0)
#define __threadfence_block() ((void)0)

template <class T> T __ldg(const T *p) { return *p; }
template <class T> T atomicAdd(T *p, T v) { return ::lt_emu::atomic_rmw(p, v, 0); }
template <class T> T atomicMin(T *p, T v) { return ::lt_emu::atomic_rmw(p, v, 1); }
template <class T> T atomicMax(T *p, T v) { return ::lt_emu::atomic_rmw(p, v, 2); }
template <class T> T atomicExch(T *p, T v) { return ::lt_emu::atomic_rmw(p, v, 3); }
template <class T> T atomicCAS(T *p, T compare, T v) {
    T old = *p;
    if (old == compare) *p = v;
    return old;
}

#endif
