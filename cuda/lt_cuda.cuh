/* Single-source CUDA: every kernel file includes this header and writes launches and shared memory through its
 * macros, so that nvcc builds the real kernels and the host compiler builds the same source against cuda/emu/.
 * It must not grow backend logic: only the spellings that differ between the two builds belong here. */
#ifndef LT_CUDA_LT_CUDA_CUH
#define LT_CUDA_LT_CUDA_CUH

#if defined(__CUDACC__)

#include <cuda_runtime.h>

/* LT_LAUNCH(kernel, grid, block, smem, stream, args...): a statement, errors via cudaGetLastError() in both builds.
 * A template kernel with a comma in its arguments goes in parentheses: LT_LAUNCH((k<A, B>), ...). */
#define LT_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)

/* LT_SHARED(type, name, count): the block's array `type name[count]`. For 2-D tiles make `type` a row typedef. */
#define LT_SHARED(type, name, count) __shared__ type name[count]

/* LT_DYNAMIC_SHARED(type, name): `type *name` pointing at the launch's dynamic shared memory (16-byte aligned).
 * Spelled through one byte array so that kernels in one file may view it as different types. */
#define LT_DYNAMIC_SHARED(type, name)                                                                                  \
    extern __shared__ __align__(16) unsigned char lt_dynamic_smem_[];                                                  \
    type *name = reinterpret_cast<type *>(lt_dynamic_smem_)

#else // the host compiler: the CPU emulator (docs/cuda-emulator.md)

#include "emu/lt_emu.h"

#define LT_LAUNCH(kernel, grid, block, smem, stream, ...)                                                              \
    ((void)::lt_emu::launch(#kernel, kernel, dim3(grid), dim3(block), (smem), (stream), ##__VA_ARGS__))

// A lambda per expansion gives each declaration site (and each template instantiation) its own key.
#define LT_SHARED(type, name, count)                                                                                   \
    type(&name)[count] = *static_cast<type(*)[count]>(::lt_emu::shared_static(                                         \
        [] {                                                                                                           \
            static const char site = 0;                                                                                \
            return &site;                                                                                              \
        }(),                                                                                                           \
        sizeof(type[count]), alignof(type), #name))

#define LT_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(::lt_emu::shared_dynamic())

/* A raw `__shared__` would compile to a per-thread local under the host compiler (CUDA's host headers define it
 * away), silently wrong: make it an error that names the fix. */
#undef __shared__
#define __shared__ use_LT_SHARED_or_LT_DYNAMIC_SHARED_from_lt_cuda_cuh_instead_of___shared__

#endif
#endif
