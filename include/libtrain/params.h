/* libtrain parameter sets: named tensors that live in one contiguous buffer, with their gradients in another,
 * so that optimizers, all-reduce and checkpoints work on a few large flat buffers.
 * A set is not thread-safe; use it from one thread at a time. */
#ifndef LIBTRAIN_PARAMS_H
#define LIBTRAIN_PARAMS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_params lt_params;

/* A new, empty set whose buffers will hold dtype (f32 or f64) on device. lt_params_free(NULL) is a no-op. */
LT_API lt_status lt_params_create(lt_dtype dtype, lt_device device, lt_params **out);
LT_API void lt_params_free(lt_params *p);

/* Adds a zero-initialised parameter that requires grad, named name (copied; at most 255 bytes, unique in the
 * set). *out is a view into the flat buffer, owned by the set: it stays valid until lt_params_free, and the
 * caller must not release it (retain it to keep it longer). Adding may move the flat buffers, so raw pointers
 * from lt_tensor_data must be fetched again afterwards; the tensors themselves stay valid.
 * LT_ERR_ARG for a duplicate or empty name, LT_ERR_OOM when the buffer cannot grow. */
LT_API lt_status lt_params_add(lt_params *p, const char *name, const int64_t *shape, int ndim, lt_tensor **out);

/* Makes room for numel elements in all, so that adding parameters up to that total neither moves nor over-allocates
 * the flat buffers (a model that knows its size reserves it first). LT_ERR_OOM when the memory is not there. */
LT_API lt_status lt_params_reserve(lt_params *p, int64_t numel);

LT_API int lt_params_count(const lt_params *p);
/* Total elements over all parameters: the length of the flat buffers. */
LT_API int64_t lt_params_numel(const lt_params *p);
/* The i-th parameter (in order of addition) and its name; borrowed, owned by the set. LT_ERR_RANGE for a bad i. */
LT_API lt_status lt_params_get(const lt_params *p, int i, const char **name, lt_tensor **param);
/* The parameter called name, borrowed. LT_ERR_RANGE when there is none. */
LT_API lt_status lt_params_find(const lt_params *p, const char *name, lt_tensor **param);
/* 1-D views of the whole parameter and gradient buffers, borrowed, owned by the set. */
LT_API lt_status lt_params_flat(const lt_params *p, lt_tensor **params, lt_tensor **grads);
/* Whether AdamW applies weight decay to the named parameter. lt_params_add sets it for parameters of 2 or more
 * dims, and clears it for vectors (biases, LayerNorm weights); models clear it for embeddings.
 * LT_ERR_RANGE when there is no such parameter. */
LT_API lt_status lt_params_set_decay(lt_params *p, const char *name, bool decay);
LT_API bool lt_params_get_decay(const lt_params *p, int i);
/* Sets every gradient to zero. */
LT_API lt_status lt_params_zero_grad(lt_params *p);
/* Sets every gradient to zero without a pass over the buffer, for a training loop: each gradient is marked as zero,
 * and the next backward's first contribution to it is written instead of added (a weight gradient's GEMM then runs
 * with beta = 0 and does not read the old values). A gradient that gets no contribution is zero-filled when it is
 * next read through libtrain: by lt_params_flat asking for the gradients (as the optimizers, clipping and the
 * data-parallel reductions do) or lt_tensor_grad. A gradient tensor obtained before the call and read directly
 * (lt_tensor_data, lt_tensor_to_host) can show the old values until one of those two is called again. */
LT_API lt_status lt_params_zero_grad_lazy(lt_params *p);

#ifdef __cplusplus
}
#endif

#endif
