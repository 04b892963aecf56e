/* lt_softmax and lt_log_softmax along any dim, forward and backward: checks, contiguity and autograd only.
 * The backend's softmax entries take contiguous tensors; a 0-d input is handed to them as one element of 1-D. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

/* A temporary the op does not return: freed now when no scope owns it, else at the scope's end. */
/* A view of t with the same geometry, except that a 0-d tensor becomes [1], so the kernel always has a dim. */
static lt_status kernel_view(const lt_tensor *t, lt_tensor **out) {
    static const int64_t one = 1;
    if (t->ndim == 0) return lt__tensor_view_of(t, &one, &one, 1, t->offset, out);
    return lt__tensor_view_of(t, t->shape, t->strides, t->ndim, t->offset, out);
}

/* saved[0] is the forward's contiguous output y; i[0] the dim, i[1] whether it was log_softmax. */
static lt_status softmax_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *y = n->saved[0];
    lt_tensor *gc, *g, *yv, *gyv, *gv;
    LT_TRY(lt_contiguous(gy, &gc));
    LT_TRY(lt__tensor_alloc(n->name, y->shape, y->ndim, y->dtype, y->storage->device, &g));
    LT_TRY(kernel_view(y, &yv));
    LT_TRY(kernel_view(gc, &gyv));
    LT_TRY(kernel_view(g, &gv));
    LT_TRY(lt__backend_of(y)->softmax_backward(yv, gyv, (int)n->i[0], n->i[1] != 0, gv));
    gx[0] = g;
    return LT_OK;
}

static lt_status softmax_op(const char *fn, bool log, const lt_tensor *a, int dim, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    int d;
    LT_TRY(lt__norm_dim(fn, dim, a->ndim > 0 ? a->ndim : 1, &d));
    lt_tensor *xc = NULL, *xv = NULL, *y = NULL, *yv = NULL;
    lt_status st;
    LT_TRY(lt_contiguous(a, &xc));
    LT_TRY_GOTO(lt__tensor_alloc(fn, a->shape, a->ndim, a->dtype, a->storage->device, &y), fail);
    LT_TRY_GOTO(kernel_view(xc, &xv), fail);
    LT_TRY_GOTO(kernel_view(y, &yv), fail);
    LT_TRY_GOTO(lt__backend_of(a)->softmax(xv, d, log, yv), fail);
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, softmax_backward, y, (const lt_tensor *[]){a}, 1, &n), fail);
    if (n) {
        n->i[0] = d;
        n->i[1] = log;
        LT_TRY_GOTO(lt__node_save(n, y), fail);
    }
    lt__drop(xc);
    lt__drop(xv);
    lt__drop(yv);
    *out = y;
    return LT_OK;
fail:
    lt__drop(xc);
    lt__drop(xv);
    lt__drop(yv);
    lt__drop(y);
    return st;
}

LT_API lt_status lt_softmax(const lt_tensor *a, int dim, lt_tensor **out) {
    return softmax_op("lt_softmax", false, a, dim, out);
}

LT_API lt_status lt_log_softmax(const lt_tensor *a, int dim, lt_tensor **out) {
    return softmax_op("lt_log_softmax", true, a, dim, out);
}
