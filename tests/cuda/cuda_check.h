/* Helpers for the tests that compare every CUDA op with the CPU backend (tests/cuda/test_cuda_*.c). The same
 * programs run twice: linked with libtrain_emu (the CUDA backend built by the host compiler against cuda/emu/,
 * label `cuda`, every CI run) and, when the build has CUDA, with libtrain.so on a real GPU (label `gpu`), where
 * they exit 77 (a CTest skip) if no GPU is present. */
#ifndef LT_TESTS_CUDA_CHECK_H
#define LT_TESTS_CUDA_CHECK_H

#include "test.h"

/* The sizes every op is tried at: around a warp (32) and a block (256), and 1. Under AddressSanitizer, where the
 * emulator is ~20x slower, the block-sized pair becomes 63, 65 and tc_small is true: tests skip their largest
 * shapes then. */
extern const int64_t tc_odd_sizes[6]; /* 1, 31, 32, 33, 255, 257 */
extern const bool tc_small;

/* cuda:0, or exits 77 (skip) with the reason when it is not available. Call first in main. */
lt_device tc_require_cuda(void);
extern lt_device tc_cuda;

/* A copy of t on cuda:0 (same dtype), as a leaf that requires grad when t is a float tensor and `grad` is set.
 * Registered in the current scope; aborts on failure (test harness). */
lt_tensor *tc_to_cuda(const lt_tensor *t, bool grad);

/* An op under test: reads inputs[0..n-1] (all on one device) and writes *out on the same device. */
typedef lt_status (*tc_op)(void *ctx, lt_tensor **inputs, lt_tensor **out);

/* Runs op on the CPU inputs and on cuda copies of them, and compares the outputs (atol + rtol * |cpu|). When
 * `backward` is set, also backpropagates sum(out * r) for one random r from both and compares the gradient of every
 * float input. The CPU inputs are left untouched (the check works on leaf copies). Returns true when all match;
 * prints the first mismatch, naming `what`. */
bool tc_cross_check(const char *what, tc_op op, void *ctx, lt_tensor **cpu_inputs, int n, double atol, double rtol,
                    bool backward);

/* Compares a tensor on any device against a reference tensor on any device, value by value. */
bool tc_same(const char *what, const lt_tensor *got, const lt_tensor *ref, double atol, double rtol);

#endif
