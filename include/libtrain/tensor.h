/* libtrain tensors: refcounted, strided views of refcounted storage on a device.
 * Ownership rule for every function that returns a tensor through `lt_tensor **out`: the new tensor holds one
 * reference. Inside a scope (lt_scope_begin) that reference belongs to the scope and is dropped by lt_scope_end,
 * so the caller retains what must outlive it; outside any scope the caller must call lt_tensor_release.
 * On failure *out is set to NULL and nothing is leaked. Tensors are not safe to mutate from two threads at once. */
#ifndef LIBTRAIN_TENSOR_H
#define LIBTRAIN_TENSOR_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LT_MAX_DIMS 8

typedef struct lt_tensor lt_tensor;

/* Counter-based Philox4x32-10 state, owned by the caller. Functions that draw random numbers read
 * (seed, offset) and advance offset by the number of 32-bit words they consumed (rounded up to 4), so the
 * same state gives the same numbers on every backend, and saving these 16 bytes saves the stream. */
typedef struct lt_philox {
    uint64_t seed;
    uint64_t offset;
} lt_philox;

/* ---- Scopes (autorelease pools) ---- */

/* Opens a scope on this thread. Scopes nest up to 64 deep. Returns LT_ERR_STATE when nested too deep. */
LT_API lt_status lt_scope_begin(void);
/* Closes the innermost scope, dropping its reference to every tensor created since lt_scope_begin.
 * Returns LT_ERR_STATE when no scope is open. */
LT_API lt_status lt_scope_end(void);

/* ---- Lifetime ---- */

/* Adds a reference. NULL is a no-op. */
LT_API void lt_tensor_retain(lt_tensor *t);
/* Drops a reference; the tensor and, with its last view, the storage are freed at zero. NULL is a no-op. */
LT_API void lt_tensor_release(lt_tensor *t);

/* ---- Creation. shape has ndim entries, 0 <= ndim <= LT_MAX_DIMS, each >= 0. ---- */

/* Uninitialised contents. LT_ERR_ARG for bad shapes, LT_ERR_DEVICE for an unavailable device,
 * LT_ERR_OOM when memory runs out. The same errors apply to every creation function. */
LT_API lt_status lt_tensor_empty(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_tensor **out);
LT_API lt_status lt_tensor_zeros(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_tensor **out);
LT_API lt_status lt_tensor_ones(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_tensor **out);
/* Every element is value, converted to dtype (rounded to nearest for bf16/f16, truncated for integers). */
LT_API lt_status lt_tensor_full(const int64_t *shape, int ndim, double value, lt_dtype dtype, lt_device device,
                                lt_tensor **out);
/* A 1-D tensor start, start+step, ... up to but excluding end. LT_ERR_ARG when step is 0 or the count
 * would be negative. */
LT_API lt_status lt_tensor_arange(double start, double end, double step, lt_dtype dtype, lt_device device,
                                  lt_tensor **out);
/* Uniform in (0, 1] and standard normal, from Philox4x32-10 exactly as cuRAND's curand_uniform4 and
 * curand_normal4 produce them for (seed, subsequence 0, offset); rng->offset advances. Float dtypes only. */
LT_API lt_status lt_tensor_rand(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_philox *rng,
                                lt_tensor **out);
LT_API lt_status lt_tensor_randn(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_philox *rng,
                                 lt_tensor **out);
/* Copies nbytes = numel * lt_dtype_size(dtype) bytes of row-major host data into a new tensor. */
LT_API lt_status lt_tensor_from_host(const void *data, const int64_t *shape, int ndim, lt_dtype dtype, lt_device device,
                                     lt_tensor **out);

/* Wraps memory the caller provides as a tensor, without copying (for NumPy arrays, DLPack capsules, mapped files).
 * strides are in elements (NULL: contiguous row-major); negative strides are refused. deleter(ctx), when not NULL, is
 * called exactly once, when the last tensor viewing the memory is released; until then the memory must stay valid.
 * On failure deleter is not called (the caller still owns the memory). LT_ERR_ARG for NULL data with elements,
 * bad shapes or strides; LT_ERR_DTYPE, LT_ERR_DEVICE as for lt_tensor_empty. */
LT_API lt_status lt_tensor_from_blob(void *data, const int64_t *shape, const int64_t *strides, int ndim, lt_dtype dtype,
                                     lt_device device, void (*deleter)(void *ctx), void *ctx, lt_tensor **out);

/* ---- Inspection. Accessors take a valid tensor; they return 0 / NULL for NULL. ---- */

LT_API int lt_tensor_ndim(const lt_tensor *t);
/* The size of dim (negative counts from the end), or -1 when dim is out of range. */
LT_API int64_t lt_tensor_dim(const lt_tensor *t, int dim);
/* Writes ndim sizes / element strides into the caller's array of at least LT_MAX_DIMS entries. */
LT_API lt_status lt_tensor_shape(const lt_tensor *t, int64_t *shape);
LT_API lt_status lt_tensor_strides(const lt_tensor *t, int64_t *strides);
LT_API int64_t lt_tensor_numel(const lt_tensor *t);
LT_API lt_dtype lt_tensor_dtype(const lt_tensor *t);
LT_API lt_device lt_tensor_device(const lt_tensor *t);
LT_API bool lt_tensor_is_contiguous(const lt_tensor *t);
/* The address of element [0,...,0] (storage plus offset). Valid while the tensor lives; device memory for CUDA. */
LT_API void *lt_tensor_data(const lt_tensor *t);

/* ---- Copies ---- */

/* Copies the elements, row-major, into host memory of nbytes. LT_ERR_ARG when nbytes differs from
 * numel * element size. Works for any strides and device. */
LT_API lt_status lt_tensor_to_host(const lt_tensor *t, void *dst, size_t nbytes);
/* dst[...] = src[...], converting dtype and broadcasting src to dst's shape. Not recorded by autograd. dst and src
 * may be on different devices when one of them is the CPU (a GPU-to-GPU copy is LT_ERR_UNSUPPORTED: go through the
 * host). LT_ERR_SHAPE when src does not broadcast to dst. */
LT_API lt_status lt_tensor_copy(lt_tensor *dst, const lt_tensor *src);
/* A new contiguous tensor with the same values in another dtype and/or on another device. Differentiable
 * between float dtypes. */
LT_API lt_status lt_tensor_to(const lt_tensor *t, lt_dtype dtype, lt_device device, lt_tensor **out);

/* ---- Views. They share storage with t and are recorded by autograd. ---- */

/* A view with a new shape when the strides allow it, else a contiguous copy. One entry of shape may be -1.
 * LT_ERR_SHAPE when the element counts differ. */
LT_API lt_status lt_reshape(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out);
/* Like lt_reshape but never copies: LT_ERR_SHAPE when the strides do not allow a view. */
LT_API lt_status lt_view(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out);
/* perm is a permutation of 0..ndim-1. */
LT_API lt_status lt_permute(const lt_tensor *t, const int *perm, lt_tensor **out);
LT_API lt_status lt_transpose(const lt_tensor *t, int dim0, int dim1, lt_tensor **out);
/* Elements start, start+step, ... < end along dim (step >= 1). Negative start/end count from the end;
 * LT_ERR_RANGE when the range falls outside the dim. */
LT_API lt_status lt_slice(const lt_tensor *t, int dim, int64_t start, int64_t end, int64_t step, lt_tensor **out);
/* Broadcasts dims of size 1 (and new leading dims) to shape without copying (stride 0). */
LT_API lt_status lt_expand(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out);
/* t itself (a new reference) when contiguous, else a contiguous copy. */
LT_API lt_status lt_contiguous(const lt_tensor *t, lt_tensor **out);

/* ---- Autograd ---- */

/* Marks a float tensor as a leaf whose gradient lt_backward accumulates. LT_ERR_DTYPE for integer tensors,
 * LT_ERR_ARG for a tensor that is the output of a recorded op. */
LT_API lt_status lt_tensor_set_requires_grad(lt_tensor *t, bool requires_grad);
LT_API bool lt_tensor_requires_grad(const lt_tensor *t);
/* The accumulated gradient as a new reference (the ownership rule above), or *out = NULL when none exists yet. */
LT_API lt_status lt_tensor_grad(const lt_tensor *t, lt_tensor **out);
/* Sets the gradient to zero, keeping its memory. */
LT_API lt_status lt_tensor_zero_grad(lt_tensor *t);
/* A view of t's data that autograd does not track. */
LT_API lt_status lt_detach(const lt_tensor *t, lt_tensor **out);
/* Back-propagates from a scalar (numel 1) loss, accumulating d loss / d leaf into each leaf's gradient, then
 * frees the graph's saved tensors. LT_ERR_ARG when loss does not require grad, LT_ERR_SHAPE when it is not a
 * scalar, LT_ERR_STATE when the graph was already consumed by an earlier lt_backward. */
LT_API lt_status lt_backward(lt_tensor *loss);
/* Back-propagates from any tensor `out` with the given upstream gradient (out's shape and dtype), as
 * torch.Tensor.backward(gradient). Same errors as lt_backward, and LT_ERR_SHAPE when grad's shape differs. */
LT_API lt_status lt_backward_grad(lt_tensor *out, const lt_tensor *grad);
/* Disables recording on this thread until the matching lt_no_grad_end. The pairs nest; unmatched ends are
 * ignored. */
LT_API void lt_no_grad_begin(void);
LT_API void lt_no_grad_end(void);
LT_API bool lt_grad_enabled(void);

#ifdef __cplusplus
}
#endif

#endif
