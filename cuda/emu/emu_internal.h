/* What the emulator's scheduler (emu.cpp) and its runtime-API shim (runtime.cpp) share; not for kernels. */
#ifndef LT_CUDA_EMU_EMU_INTERNAL_H
#define LT_CUDA_EMU_EMU_INTERNAL_H

#include "lt_emu.h"

#include <string>

namespace lt_emu::internal {

cudaError_t set_last_error(cudaError_t err); // records a failure for cudaGetLastError; returns err
void set_message(const std::string &m);      // what last_message() returns
bool stream_valid(cudaStream_t s);           // null or a live stream from cudaStreamCreate
size_t max_dynamic_smem(const void *func);   // cudaFuncAttributeMaxDynamicSharedMemorySize, 0 when never set

} // namespace lt_emu::internal

#endif
