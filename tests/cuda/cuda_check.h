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

/* tc_cross_check's comparison with the upstream gradient r (random, of the output's dtype) fed straight to
 * lt_backward_grad instead of through sum(out * r): the same gradients, with no op outside the family under test
 * (no mul, no sum). With `backward` every float input becomes a leaf that requires grad, and the device side runs
 * the backward `device_runs` times (each run after the first on fresh leaves, the whole pass again): every run must
 * match the CPU, so a device backward must repeat exactly. */
bool tc_cross_check_grad(const char *what, tc_op op, void *ctx, lt_tensor **cpu_inputs, int n, double atol, double rtol,
                         bool backward, int device_runs);

/* Leaf copies of the inputs on `device` (f32 and f64 ones require grad when r is set), *y = op(...), and, when r is
 * not NULL, the backward of upstream gradient r (converted to inputs[0]'s dtype) through lt_backward_grad, so that
 * only the family's entries and copies run on the device. grads[i] is input i's gradient (NULL for an integer
 * input, or one the output does not depend on). Tensors are registered in the current scope. */
lt_status tc_run_grad(tc_op op, void *ctx, lt_tensor **inputs, int n, const lt_tensor *r, lt_device device,
                      lt_tensor **y, lt_tensor **grads);

/* op through tc_run_grad on the CPU and on cuda:0, comparing the outputs and, with `backward`, the gradient of every
 * input that has one, for one f64 upstream gradient of the output's shape: random in [-1, 1), or exactly 1 when
 * `unit` (lt_backward(loss) for a scalar loss). */
bool tc_check_grad(const char *what, tc_op op, void *ctx, lt_tensor **inputs, int n, bool backward, bool unit,
                   double atol, double rtol);

#endif
