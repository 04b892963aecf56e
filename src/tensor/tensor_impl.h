/* Internal layout of tensors and storage, shared by src/ops, src/autograd, src/cpu and cuda/.
 * Only code below src/ops in the layer picture may touch these fields directly. */
#ifndef LT_TENSOR_IMPL_H
#define LT_TENSOR_IMPL_H

#include "core/convert.h"
#include "libtrain/tensor.h"

#ifdef __cplusplus
/* C++ translation units (the CUDA backend in cuda/) read tensor fields but never touch a refcount, which only C
 * code in src/ changes atomically; a plain int has the same size and alignment there (asserted in tensor.c). */
typedef int lt__refcount;
extern "C" {
#else
#include <stdatomic.h>
typedef atomic_int lt__refcount;
#endif

struct lt__backend;
struct lt_node;

/* Refcounted memory on one device. `data` may be replaced (lt_params grows its flat buffer); views keep pointing
 * at the storage, not at the data. */
typedef struct lt__storage {
    lt__refcount refcount;
    void *data;
    size_t nbytes;
    lt_device device;
    /* Who frees data: the device allocator (owner_free == NULL), or an external owner (a NumPy array, a DLPack
     * capsule) through owner_free(owner_ctx). */
    void (*owner_free)(void *ctx);
    void *owner_ctx;
} lt__storage;

struct lt_tensor {
    lt__refcount refcount;
    lt__storage *storage;
    int64_t offset; /* in elements */
    int ndim;
    int64_t shape[LT_MAX_DIMS];
    int64_t strides[LT_MAX_DIMS]; /* in elements */
    lt_dtype dtype;
    bool requires_grad;
    lt_tensor *grad;         /* the accumulated gradient of a leaf, or NULL */
    bool zero_pending;       /* on a leaf's gradient: it reads as zero, its data is stale (lt_params_zero_grad_lazy) */
    struct lt_node *grad_fn; /* the node that made this tensor, or NULL for leaves and untracked tensors */
};

/* ---- Construction (all register the result in the current scope, as public creation does) ---- */

/* A new contiguous tensor with uninitialised contents. `who` names the public function for error messages. */
lt_status lt__tensor_alloc(const char *who, const int64_t *shape, int ndim, lt_dtype dtype, lt_device device,
                           lt_tensor **out);
/* A new tensor header sharing t's storage with the given geometry (no autograd). Checks nothing. */
lt_status lt__tensor_view_of(const lt_tensor *t, const int64_t *shape, const int64_t *strides, int ndim, int64_t offset,
                             lt_tensor **out);
/* A new header with t's geometry and storage that is NOT registered in any scope: the caller owns it. Autograd
 * saves these (no grad_fn), so that a node never keeps its own output's history alive. */
lt_status lt__tensor_alias(const lt_tensor *t, lt_tensor **out);
/* Wraps external memory: data stays owned by the caller, who is told through owner_free(owner_ctx) when the
 * last view dies. */
lt_status lt__tensor_wrap(void *data, const int64_t *shape, const int64_t *strides, int ndim, lt_dtype dtype,
                          lt_device device, void (*owner_free)(void *), void *owner_ctx, lt_tensor **out);
/* Scope push/pop for the library's own use: like lt_scope_begin/lt_scope_end but leaving the thread's error
 * message alone, so a failure inside survives the cleanup. */
lt_status lt__scope_begin(void);
void lt__scope_end(void);
/* Hands the new tensor's reference to the current scope (if any). Every constructor calls this once. */
void lt__scope_register(lt_tensor *t);
/* Makes the caller own one reference to a freshly constructed t whether or not a scope is open (a scope's
 * reference is matched by an extra one). For objects such as lt_params that keep tensors across scopes. */
void lt__keep(lt_tensor *t);
/* Gives up the reference to a tensor from a constructor that will not be returned (a temporary, or a result
 * abandoned after a failure): releases it now when no scope owns it; otherwise the owning scope releases it at its
 * end. NULL is a no-op. */
void lt__drop(lt_tensor *t);

/* ---- Geometry helpers ---- */

int64_t lt__numel(const int64_t *shape, int ndim);
void lt__contiguous_strides(const int64_t *shape, int ndim, int64_t *strides);
bool lt__is_contiguous(const lt_tensor *t);
bool lt__same_shape(const lt_tensor *a, const lt_tensor *b);
static inline void *lt__data(const lt_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)lt_dtype_size(t->dtype);
}
static inline bool lt__is_float(lt_dtype d) { return d == LT_F32 || d == LT_F64 || d == LT_BF16 || d == LT_F16; }
static inline bool lt__is_int(lt_dtype d) { return d == LT_I32 || d == LT_I64 || d == LT_U16 || d == LT_U8; }
/* Normalises a possibly negative dim against ndim; LT_ERR_RANGE (naming who) when out of range. */
lt_status lt__norm_dim(const char *who, int dim, int ndim, int *out);
/* The broadcast shape of a and b (NumPy rules); LT_ERR_SHAPE naming who. */
lt_status lt__broadcast_shape(const char *who, const int64_t *sa, int na, const int64_t *sb, int nb, int64_t *out,
                              int *nout);
/* Fills *hdr (a caller's stack header: no reference, no scope) with a stride-0 view of t broadcast to shape, for
 * passing to a kernel; valid while t lives. LT_ERR_SHAPE when t does not broadcast to shape. */
lt_status lt__broadcast_header(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor *hdr);

/* ---- Argument checks shared by ops (they set a message naming who) ---- */

lt_status lt__check_tensor(const char *who, const char *arg, const lt_tensor *t);
/* f32 or f64 (the dtypes compute ops accept). */
lt_status lt__check_compute_dtype(const char *who, const char *arg, const lt_tensor *t);
lt_status lt__check_same_dtype(const char *who, const lt_tensor *a, const lt_tensor *b);
lt_status lt__check_same_device(const char *who, const lt_tensor *a, const lt_tensor *b);
/* Checks class targets [N] (or 0-d, i32/i64, any device) on the host: each in [0, C) or equal to ignore; counts the
 * others into *count. LT_ERR_RANGE names the row. Used by cross-entropy and the fused classifier. */
lt_status lt__check_targets(const char *who, const lt_tensor *targets, int64_t N, int64_t C, int64_t ignore,
                            int64_t *count);

#ifdef __cplusplus
}
#endif
#endif
