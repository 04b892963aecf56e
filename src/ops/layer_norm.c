/* lt_layer_norm and lt_residual_layer_norm, forward and backward: argument checks, the [..., C] -> [M, C] flattening,
 * and autograd. The arithmetic is the backend's layer_norm entries; this file never reads tensor data. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/nn.h"

/* A temporary the op does not return: freed now when no scope owns it, else at the scope's end. */
/* A view of the contiguous tensor t with a new shape of the same element count. */
static lt_status reshaped(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out) {
    int64_t strides[LT_MAX_DIMS];
    lt__contiguous_strides(shape, ndim, strides);
    return lt__tensor_view_of(t, shape, strides, ndim, t->offset, out);
}

/* Contiguous t seen as [M, C], its last dim kept and the others flattened. */
static lt_status as_rows(const lt_tensor *t, lt_tensor **out) {
    int64_t shape[2] = {lt__numel(t->shape, t->ndim - 1), t->shape[t->ndim - 1]};
    return reshaped(t, shape, 2, out);
}

/* Contiguous t seen as 1-D. */
static lt_status as_flat(const lt_tensor *t, lt_tensor **out) {
    int64_t n = lt__numel(t->shape, t->ndim);
    return reshaped(t, &n, 1, out);
}

/* weight or bias: NULL, or 1-D [C] of x's dtype and device. */
static lt_status check_param(const char *fn, const char *arg, const lt_tensor *p, const lt_tensor *x, int64_t C) {
    if (!p) return LT_OK;
    if (p->dtype != x->dtype)
        return lt__err(LT_ERR_DTYPE, "%s: %s is %s but x is %s", fn, arg, lt_dtype_name(p->dtype),
                       lt_dtype_name(x->dtype));
    LT_TRY(lt__check_same_device(fn, x, p));
    if (p->ndim != 1 || p->shape[0] != C) {
        char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: %s is %s, expected [%lld] to match the last dim of x (%s)", fn, arg,
                       lt__fmt_shape(a, sizeof a, p->shape, p->ndim), (long long)C,
                       lt__fmt_shape(b, sizeof b, x->shape, x->ndim));
    }
    return LT_OK;
}

/* Saved: x as [M, C], mean [M], rstd [M], then the contiguous weight when i[0] says there is one. */
static lt_status layer_norm_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *x2 = n->saved[0], *mean = n->saved[1], *rstd = n->saved[2];
    const lt_tensor *w = n->i[0] ? n->saved[3] : NULL;
    const lt__edge *in = &n->inputs[0];
    lt_device dev = x2->storage->device;
    int64_t C = x2->shape[1];
    lt_tensor *gc, *gy2, *g, *g2, *gw = NULL, *gb = NULL;
    LT_TRY(lt_contiguous(gy, &gc));
    LT_TRY(as_rows(gc, &gy2));
    LT_TRY(lt__tensor_alloc(n->name, in->shape, in->ndim, in->dtype, dev, &g));
    LT_TRY(as_rows(g, &g2));
    if (lt__node_needs(n, 1)) LT_TRY(lt__tensor_alloc(n->name, &C, 1, in->dtype, dev, &gw));
    if (lt__node_needs(n, 2)) LT_TRY(lt__tensor_alloc(n->name, &C, 1, in->dtype, dev, &gb));
    LT_TRY(lt__backend_of(x2)->layer_norm_backward(x2, w, mean, rstd, gy2, g2, gw, gb));
    gx[0] = g;
    gx[1] = gw;
    gx[2] = gb;
    return LT_OK;
}

LT_API lt_status lt_layer_norm(const lt_tensor *x, const lt_tensor *weight, const lt_tensor *bias, double eps,
                               lt_tensor **out, lt_tensor **mean_out, lt_tensor **rstd_out) {
    static const char *fn = "lt_layer_norm";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    if (mean_out) *mean_out = NULL;
    if (rstd_out) *rstd_out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "x", x));
    if (x->ndim < 1) return lt__err(LT_ERR_SHAPE, "%s: x is 0-d; it needs a last dim to normalise over", fn);
    if (!(eps >= 0)) return lt__err(LT_ERR_ARG, "%s: eps is %g, must be >= 0", fn, eps);
    int64_t C = x->shape[x->ndim - 1];
    LT_TRY(check_param(fn, "weight", weight, x, C));
    LT_TRY(check_param(fn, "bias", bias, x, C));

    lt_device dev = x->storage->device;
    lt_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL, *mean = NULL, *rstd = NULL;
    lt_tensor *x2 = NULL, *y2 = NULL, *m1 = NULL, *r1 = NULL;
    lt_status st = LT_OK;
    LT_TRY(lt_contiguous(x, &xc));
    if (weight) LT_TRY_GOTO(lt_contiguous(weight, &wc), done);
    if (bias) LT_TRY_GOTO(lt_contiguous(bias, &bc), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim, x->dtype, dev, &y), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim - 1, x->dtype, dev, &mean), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim - 1, x->dtype, dev, &rstd), done);
    LT_TRY_GOTO(as_rows(xc, &x2), done);
    LT_TRY_GOTO(as_rows(y, &y2), done);
    LT_TRY_GOTO(as_flat(mean, &m1), done);
    LT_TRY_GOTO(as_flat(rstd, &r1), done);
    LT_TRY_GOTO(lt__backend_of(x)->layer_norm(x2, NULL, wc, bc, eps, NULL, y2, m1, r1), done);
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, layer_norm_backward, y, (const lt_tensor *[]){x, weight, bias}, 3, &n), done);
    if (n) {
        n->i[0] = weight != NULL;
        LT_TRY_GOTO(lt__node_save(n, x2), done);
        LT_TRY_GOTO(lt__node_save(n, m1), done);
        LT_TRY_GOTO(lt__node_save(n, r1), done);
        if (wc) LT_TRY_GOTO(lt__node_save(n, wc), done);
    }
    *out = y;
    y = NULL;
    if (mean_out) {
        *mean_out = mean;
        mean = NULL;
    }
    if (rstd_out) {
        *rstd_out = rstd;
        rstd = NULL;
    }
done: /* on success y, mean and rstd are NULL here unless the caller did not ask for them */
    lt__drop(xc);
    lt__drop(wc);
    lt__drop(bc);
    lt__drop(x2);
    lt__drop(y2);
    lt__drop(m1);
    lt__drop(r1);
    lt__drop(y);
    lt__drop(mean);
    lt__drop(rstd);
    return st;
}

/* d(x + r) = gs for both (x and r have the same shape). */
static lt_status residual_backward(lt_node *n, const lt_tensor *gs, lt_tensor **gx) {
    for (int i = 0; i < 2; i++)
        if (lt__node_needs(n, i)) LT_TRY(lt__sum_to(gs, n->inputs[i].shape, n->inputs[i].ndim, &gx[i]));
    return LT_OK;
}

/* s = x + r and y = layer_norm(s) in one backend call (layer_norm with a residual). Autograd records two nodes: s's
 * (an add of x and r) and y's (the layer norm of s, saving s), so the engine sums gs and the norm's gradient into
 * s's gradient before handing it to x and r. */
LT_API lt_status lt_residual_layer_norm(const lt_tensor *x, const lt_tensor *r, const lt_tensor *weight,
                                        const lt_tensor *bias, double eps, lt_tensor **sum_out, lt_tensor **y_out) {
    static const char *fn = "lt_residual_layer_norm";
    LT_CHECK_NOT_NULL(fn, sum_out);
    LT_CHECK_NOT_NULL(fn, y_out);
    *sum_out = NULL;
    *y_out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "x", x));
    LT_TRY(lt__check_compute_dtype(fn, "r", r));
    if (r->dtype != x->dtype)
        return lt__err(LT_ERR_DTYPE, "%s: r is %s but x is %s", fn, lt_dtype_name(r->dtype), lt_dtype_name(x->dtype));
    LT_TRY(lt__check_same_device(fn, x, r));
    if (x->ndim < 1) return lt__err(LT_ERR_SHAPE, "%s: x is 0-d; it needs a last dim to normalise over", fn);
    if (!lt__same_shape(x, r)) {
        char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: r is %s but x is %s; they must have the same shape", fn,
                       lt__fmt_shape(a, sizeof a, r->shape, r->ndim), lt__fmt_shape(b, sizeof b, x->shape, x->ndim));
    }
    if (!(eps >= 0)) return lt__err(LT_ERR_ARG, "%s: eps is %g, must be >= 0", fn, eps);
    int64_t C = x->shape[x->ndim - 1];
    LT_TRY(check_param(fn, "weight", weight, x, C));
    LT_TRY(check_param(fn, "bias", bias, x, C));

    lt_device dev = x->storage->device;
    lt_tensor *xc = NULL, *rc = NULL, *wc = NULL, *bc = NULL, *s = NULL, *y = NULL, *mean = NULL, *rstd = NULL;
    lt_tensor *x2 = NULL, *r2 = NULL, *s2 = NULL, *y2 = NULL, *m1 = NULL, *r1 = NULL;
    lt_status st = LT_OK;
    LT_TRY(lt_contiguous(x, &xc));
    LT_TRY_GOTO(lt_contiguous(r, &rc), done);
    if (weight) LT_TRY_GOTO(lt_contiguous(weight, &wc), done);
    if (bias) LT_TRY_GOTO(lt_contiguous(bias, &bc), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim, x->dtype, dev, &s), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim, x->dtype, dev, &y), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim - 1, x->dtype, dev, &mean), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, x->shape, x->ndim - 1, x->dtype, dev, &rstd), done);
    LT_TRY_GOTO(as_rows(xc, &x2), done);
    LT_TRY_GOTO(as_rows(rc, &r2), done);
    LT_TRY_GOTO(as_rows(s, &s2), done);
    LT_TRY_GOTO(as_rows(y, &y2), done);
    LT_TRY_GOTO(as_flat(mean, &m1), done);
    LT_TRY_GOTO(as_flat(rstd, &r1), done);
    LT_TRY_GOTO(lt__backend_of(x)->layer_norm(x2, r2, wc, bc, eps, s2, y2, m1, r1), done);
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, residual_backward, s, (const lt_tensor *[]){x, r}, 2, &n), done);
    LT_TRY_GOTO(lt__record(fn, layer_norm_backward, y, (const lt_tensor *[]){s, weight, bias}, 3, &n), done);
    if (n) {
        n->i[0] = weight != NULL;
        LT_TRY_GOTO(lt__node_save(n, s2), done);
        LT_TRY_GOTO(lt__node_save(n, m1), done);
        LT_TRY_GOTO(lt__node_save(n, r1), done);
        if (wc) LT_TRY_GOTO(lt__node_save(n, wc), done);
    }
    *sum_out = s;
    *y_out = y;
    s = y = NULL;
done: /* on success s and y are NULL here */
    lt__drop(xc);
    lt__drop(rc);
    lt__drop(wc);
    lt__drop(bc);
    lt__drop(x2);
    lt__drop(r2);
    lt__drop(s2);
    lt__drop(y2);
    lt__drop(m1);
    lt__drop(r1);
    lt__drop(y);
    lt__drop(s);
    lt__drop(mean);
    lt__drop(rstd);
    return st;
}
