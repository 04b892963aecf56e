/* Reductions lt_sum, lt_mean and lt_max, forward and backward: argument checks and shapes only.
 * The backend reduces into the keepdim shape; dropping the reduced dims is a view, never a copy. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

typedef enum reduce_kind { KIND_SUM, KIND_MEAN, KIND_MAX } reduce_kind;

/* A temporary the op does not return: freed now when no scope owns it, else at the scope's end. */
/* The bitmask of a's dims named by dims (every dim when ndims == 0). */
static lt_status dims_to_mask(const char *fn, const lt_tensor *a, const int *dims, int ndims, uint32_t *mask) {
    if (ndims < 0) return lt__err(LT_ERR_ARG, "%s: ndims is %d, must be >= 0", fn, ndims);
    if (ndims > 0 && !dims) return lt__err(LT_ERR_ARG, "%s: dims is NULL with ndims %d", fn, ndims);
    if (ndims == 0) {
        *mask = (uint32_t)((1u << a->ndim) - 1u);
        return LT_OK;
    }
    uint32_t m = 0;
    for (int k = 0; k < ndims; k++) {
        int d;
        LT_TRY(lt__norm_dim(fn, dims[k], a->ndim, &d));
        if ((m >> d) & 1u) return lt__err(LT_ERR_ARG, "%s: dim %d is listed twice in dims", fn, dims[k]);
        m |= 1u << d;
    }
    *mask = m;
    return LT_OK;
}

/* t seen with the reduced dims of an ndim-dim input restored as size 1 (the layout the backend works in).
 * t is the op's output or its gradient, which may have any strides; a size-1 dim's stride is never used. */
static lt_status keepdim_view(const lt_tensor *t, int ndim, uint32_t mask, lt_tensor **out) {
    int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    for (int d = 0, j = 0; d < ndim; d++) {
        bool reduced = (mask >> d) & 1u;
        /* with keepdim the output already has every dim, so its own stride is taken */
        bool has_dim = !reduced || t->ndim == ndim;
        shape[d] = has_dim ? t->shape[j] : 1;
        strides[d] = has_dim ? t->strides[j] : 0;
        j += has_dim;
    }
    return lt__tensor_view_of(t, shape, strides, ndim, t->offset, out);
}

/* The gradient of a sum (scale 1) or mean (scale 1/count): gy broadcast back over the reduced dims. The result is
 * materialised, not a stride-0 view, because the engine may accumulate into a gradient in place. */
static lt_status broadcast_back(lt_node *n, const lt_tensor *gy, double scale, lt_tensor **gx) {
    const lt__edge *in = &n->inputs[0];
    const lt__backend *be = lt__backend_of(gy);
    lt_tensor *gk, wide, *g;
    LT_TRY(keepdim_view(gy, in->ndim, (uint32_t)n->i[0], &gk));
    if (scale != 1.0) { /* scale the small tensor, before it is broadcast */
        lt_tensor *s;
        LT_TRY(lt__tensor_alloc(n->name, gk->shape, gk->ndim, gy->dtype, gy->storage->device, &s));
        LT_TRY(be->scalar(LT_SOP_MUL, gk, scale, s));
        gk = s;
    }
    LT_TRY(lt__broadcast_header(gk, in->shape, in->ndim, &wide));
    LT_TRY(lt__tensor_alloc(n->name, in->shape, in->ndim, in->dtype, gy->storage->device, &g));
    LT_TRY(be->copy(g, &wide));
    gx[0] = g;
    return LT_OK;
}

static lt_status sum_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    return broadcast_back(n, gy, 1.0, gx);
}

static lt_status mean_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    return broadcast_back(n, gy, n->f[0], gx);
}

/* saved[0] is the input x and saved[1] the output y; the gradient goes to the first maximal element. */
static lt_status max_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *x = n->saved[0];
    uint32_t mask = (uint32_t)n->i[0];
    lt_tensor *yk, *gk, *g;
    LT_TRY(keepdim_view(n->saved[1], x->ndim, mask, &yk));
    LT_TRY(keepdim_view(gy, x->ndim, mask, &gk));
    LT_TRY(lt__tensor_alloc(n->name, x->shape, x->ndim, x->dtype, x->storage->device, &g));
    LT_TRY(lt__backend_of(x)->max_backward(x, yk, gk, mask, g));
    gx[0] = g;
    return LT_OK;
}

static lt_status reduce_op(const char *fn, reduce_kind kind, const lt_tensor *a, const int *dims, int ndims,
                           bool keepdim, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    uint32_t mask = 0;
    LT_TRY(dims_to_mask(fn, a, dims, ndims, &mask));
    int64_t kshape[LT_MAX_DIMS], shape[LT_MAX_DIMS], strides[LT_MAX_DIMS], count = 1;
    int nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        bool reduced = (mask >> d) & 1u;
        if (reduced && kind == KIND_MAX && a->shape[d] == 0) {
            char s[LT_SHAPE_STR_LEN];
            return lt__err(LT_ERR_SHAPE, "%s: cannot take the max over dim %d of size 0 (a is %s)", fn, d,
                           lt__fmt_shape(s, sizeof s, a->shape, a->ndim));
        }
        kshape[d] = reduced ? 1 : a->shape[d];
        if (reduced)
            count *= a->shape[d];
        else
            shape[nd++] = a->shape[d];
    }
    const lt__backend *be = lt__backend_of(a);
    lt_device dev = a->storage->device;
    lt_tensor *yk = NULL, *y = NULL;
    lt_status st;
    LT_TRY(lt__tensor_alloc(fn, kshape, a->ndim, a->dtype, dev, &yk));
    LT_TRY_GOTO(be->reduce(kind == KIND_MAX ? LT_ROP_MAX : LT_ROP_SUM, a, mask, yk), fail);
    if (kind == KIND_MEAN) { /* the mean of nothing is 0 * (1/0) = NaN, as in PyTorch */
        lt_tensor *m;
        LT_TRY_GOTO(lt__tensor_alloc(fn, kshape, a->ndim, a->dtype, dev, &m), fail);
        st = be->scalar(LT_SOP_MUL, yk, 1.0 / (double)count, m);
        lt__drop(yk);
        yk = m;
        if (st != LT_OK) goto fail;
    }
    if (keepdim) {
        y = yk;
        yk = NULL;
    } else {
        lt__contiguous_strides(shape, nd, strides);
        LT_TRY_GOTO(lt__tensor_view_of(yk, shape, strides, nd, yk->offset, &y), fail);
        lt__drop(yk);
        yk = NULL;
    }
    static const lt__backward_fn backward[] = {sum_backward, mean_backward, max_backward};
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, backward[kind], y, (const lt_tensor *[]){a}, 1, &n), fail);
    if (n) {
        n->i[0] = mask;
        n->f[0] = 1.0 / (double)count;
        if (kind == KIND_MAX) {
            LT_TRY_GOTO(lt__node_save(n, a), fail);
            LT_TRY_GOTO(lt__node_save(n, y), fail);
        }
    }
    *out = y;
    return LT_OK;
fail:
    lt__drop(yk);
    lt__drop(y);
    return st;
}

LT_API lt_status lt_sum(const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out) {
    return reduce_op("lt_sum", KIND_SUM, a, dims, ndims, keepdim, out);
}

LT_API lt_status lt_mean(const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out) {
    return reduce_op("lt_mean", KIND_MEAN, a, dims, ndims, keepdim, out);
}

LT_API lt_status lt_max(const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out) {
    return reduce_op("lt_max", KIND_MAX, a, dims, ndims, keepdim, out);
}
