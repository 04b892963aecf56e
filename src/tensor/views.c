/* Views (reshape, view, permute, transpose, slice, expand, contiguous) and their backward.
 * A view shares storage; only its shape, strides and offset differ. Nothing here copies data except
 * lt_reshape and lt_contiguous when the strides leave no choice. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"

#include <string.h>

/* Strides that let `t` be seen with `shape`, or false when no strides can (PyTorch's computeStride: dims of t
 * that are contiguous with each other form chunks, and each chunk must map onto whole new dims). */
static bool lt__view_strides(const lt_tensor *t, const int64_t *shape, int ndim, int64_t *strides) {
    if (lt__numel(t->shape, t->ndim) == 0 || t->ndim == 0) {
        lt__contiguous_strides(shape, ndim, strides);
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base = t->strides[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->strides[d - 1] != tensor_numel * chunk_base)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = view_numel * chunk_base;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk_base = t->strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

/* Resolves one -1 entry and checks that the element count matches. */
static lt_status lt__infer_shape(const char *who, const lt_tensor *t, const int64_t *shape, int ndim, int64_t *out) {
    if (ndim < 0 || ndim > LT_MAX_DIMS)
        return lt__err(LT_ERR_ARG, "%s: ndim is %d, must be in [0, %d]", who, ndim, LT_MAX_DIMS);
    if (ndim > 0 && !shape) return lt__err(LT_ERR_ARG, "%s: shape is NULL", who);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        out[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
        } else if (shape[i] < 0) {
            return lt__err(LT_ERR_ARG, "%s: dim %d has invalid size %lld", who, i, (long long)shape[i]);
        } else if (__builtin_mul_overflow(known, shape[i], &known)) {
            return lt__err(LT_ERR_SHAPE, "%s: element count overflows", who);
        }
    }
    int64_t n = lt__numel(t->shape, t->ndim);
    if (infer >= 0) {
        if (known == 0 || n % known != 0) {
            char a[LT_SHAPE_STR_LEN];
            return lt__err(LT_ERR_SHAPE, "%s: cannot infer the -1 dim of a view of %s (%lld elements)", who,
                           lt__fmt_shape(a, sizeof a, t->shape, t->ndim), (long long)n);
        }
        out[infer] = n / known;
        known = n;
    }
    if (known != n) {
        char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: cannot view %s (%lld elements) as %s (%lld elements)", who,
                       lt__fmt_shape(a, sizeof a, t->shape, t->ndim), (long long)n,
                       lt__fmt_shape(b, sizeof b, out, ndim), (long long)known);
    }
    return LT_OK;
}

/* Gradient of any view that kept the elements in order: reshape gy back to the input's shape. */
static lt_status lt__reshape_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    return lt_reshape(gy, n->inputs[0].shape, n->inputs[0].ndim, &gx[0]);
}

/* Finishes a view op: records `backward` with the single input t. */
static lt_status lt__finish_view(const char *who, lt__backward_fn backward, const lt_tensor *t, lt_tensor *v,
                                 lt_node **node, lt_tensor **out) {
    lt_node *n = NULL;
    lt_status st = lt__record(who, backward, v, (const lt_tensor *[]){t}, 1, &n);
    if (st != LT_OK) {
        lt__drop(v);
        return st;
    }
    if (node) *node = n;
    *out = v;
    return LT_OK;
}

static lt_status lt__view_impl(const char *who, const lt_tensor *t, const int64_t *shape, int ndim, bool may_copy,
                               lt_tensor **out) {
    LT_CHECK_NOT_NULL(who, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(who, t);
    int64_t s[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    LT_TRY(lt__infer_shape(who, t, shape, ndim, s));
    lt_tensor *v;
    if (lt__view_strides(t, s, ndim, strides)) {
        LT_TRY(lt__tensor_view_of(t, s, strides, ndim, t->offset, &v));
    } else if (may_copy) {
        LT_TRY(lt__tensor_alloc(who, s, ndim, t->dtype, t->storage->device, &v));
        lt_tensor *src;
        lt_status st = lt__tensor_view_of(v, t->shape, t->strides, t->ndim, 0, &src);
        if (st == LT_OK) { /* copy t into v, seen with t's shape */
            lt__contiguous_strides(t->shape, t->ndim, src->strides);
            st = lt__backend_of(t)->copy(src, t);
            lt__drop(src);
        }
        if (st != LT_OK) {
            lt__drop(v);
            return st;
        }
    } else {
        char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: the strides of %s do not allow a view as %s; use lt_reshape", who,
                       lt__fmt_shape(a, sizeof a, t->shape, t->ndim), lt__fmt_shape(b, sizeof b, s, ndim));
    }
    return lt__finish_view(who, lt__reshape_backward, t, v, NULL, out);
}

LT_API lt_status lt_reshape(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out) {
    return lt__view_impl("lt_reshape", t, shape, ndim, true, out);
}

LT_API lt_status lt_view(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out) {
    return lt__view_impl("lt_view", t, shape, ndim, false, out);
}

static lt_status lt__permute_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    int inv[LT_MAX_DIMS];
    for (int i = 0; i < gy->ndim; i++) inv[n->i[i]] = i;
    return lt_permute(gy, inv, &gx[0]);
}

LT_API lt_status lt_permute(const lt_tensor *t, const int *perm, lt_tensor **out) {
    static const char *fn = "lt_permute";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    if (t->ndim > 0) LT_CHECK_NOT_NULL(fn, perm);
    int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    bool seen[LT_MAX_DIMS] = {false};
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i];
        if (p < 0 || p >= t->ndim || seen[p])
            return lt__err(LT_ERR_ARG, "%s: perm is not a permutation of 0..%d (entry %d is %d)", fn, t->ndim - 1, i,
                           p);
        seen[p] = true;
        shape[i] = t->shape[p];
        strides[i] = t->strides[p];
    }
    lt_tensor *v;
    LT_TRY(lt__tensor_view_of(t, shape, strides, t->ndim, t->offset, &v));
    lt_node *n;
    LT_TRY(lt__finish_view(fn, lt__permute_backward, t, v, &n, out));
    if (n)
        for (int i = 0; i < t->ndim; i++) n->i[i] = perm[i];
    return LT_OK;
}

LT_API lt_status lt_transpose(const lt_tensor *t, int dim0, int dim1, lt_tensor **out) {
    static const char *fn = "lt_transpose";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    int a, b, perm[LT_MAX_DIMS];
    LT_TRY(lt__norm_dim(fn, dim0, t->ndim, &a));
    LT_TRY(lt__norm_dim(fn, dim1, t->ndim, &b));
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return lt_permute(t, perm, out);
}

/* Gradient of a slice: zeros of the input's shape with gy written into the sliced region. */
static lt_status lt__slice_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt__edge *e = &n->inputs[0];
    lt_tensor *g, *region;
    LT_TRY(lt_tensor_zeros(e->shape, e->ndim, e->dtype, gy->storage->device, &g));
    int dim = (int)n->i[0];
    int64_t strides[LT_MAX_DIMS], shape[LT_MAX_DIMS];
    memcpy(shape, e->shape, sizeof shape);
    memcpy(strides, g->strides, sizeof strides);
    shape[dim] = gy->shape[dim];
    strides[dim] *= n->i[2];
    LT_TRY(lt__tensor_view_of(g, shape, strides, e->ndim, n->i[1] * g->strides[dim], &region));
    LT_TRY(lt__backend_of(g)->copy(region, gy));
    gx[0] = g;
    return LT_OK;
}

LT_API lt_status lt_slice(const lt_tensor *t, int dim, int64_t start, int64_t end, int64_t step, lt_tensor **out) {
    static const char *fn = "lt_slice";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    int d;
    LT_TRY(lt__norm_dim(fn, dim, t->ndim, &d));
    int64_t size = t->shape[d];
    if (step < 1) return lt__err(LT_ERR_ARG, "%s: step is %lld, must be >= 1", fn, (long long)step);
    int64_t s = start < 0 ? start + size : start, e = end < 0 ? end + size : end;
    if (s < 0 || e > size || s > e)
        return lt__err(LT_ERR_RANGE, "%s: range [%lld, %lld) is outside dim %d of size %lld", fn, (long long)start,
                       (long long)end, dim, (long long)size);
    int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(strides, t->strides, sizeof strides);
    shape[d] = (e - s + step - 1) / step;
    strides[d] = t->strides[d] * step;
    lt_tensor *v;
    LT_TRY(lt__tensor_view_of(t, shape, strides, t->ndim, t->offset + s * t->strides[d], &v));
    lt_node *n;
    LT_TRY(lt__finish_view(fn, lt__slice_backward, t, v, &n, out));
    if (n) {
        n->i[0] = d;
        n->i[1] = s;
        n->i[2] = step;
    }
    return LT_OK;
}

static lt_status lt__expand_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    return lt__sum_to(gy, n->inputs[0].shape, n->inputs[0].ndim, &gx[0]);
}

LT_API lt_status lt_expand(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor **out) {
    static const char *fn = "lt_expand";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    if (ndim < 0 || ndim > LT_MAX_DIMS)
        return lt__err(LT_ERR_ARG, "%s: ndim is %d, must be in [0, %d]", fn, ndim, LT_MAX_DIMS);
    if (ndim > 0) LT_CHECK_NOT_NULL(fn, shape);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return lt__err(LT_ERR_ARG, "%s: dim %d has negative size %lld", fn, i, (long long)shape[i]);
    if (ndim < t->ndim) return lt__err(LT_ERR_SHAPE, "%s: cannot expand %d dims to %d", fn, t->ndim, ndim);
    lt_tensor hdr, *v;
    lt_status st = lt__broadcast_header(t, shape, ndim, &hdr);
    if (st == LT_OK) st = lt__tensor_view_of(t, shape, hdr.strides, ndim, t->offset, &v);
    if (st != LT_OK) {
        char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
        return lt__err(st, "%s: %s cannot broadcast to %s", fn, lt__fmt_shape(a, sizeof a, t->shape, t->ndim),
                       lt__fmt_shape(b, sizeof b, shape, ndim));
    }
    return lt__finish_view(fn, lt__expand_backward, t, v, NULL, out);
}

static lt_status lt__identity_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    (void)n;
    lt_tensor_retain((lt_tensor *)gy);
    lt__scope_register((lt_tensor *)gy);
    gx[0] = (lt_tensor *)gy;
    return LT_OK;
}

LT_API lt_status lt_contiguous(const lt_tensor *t, lt_tensor **out) {
    static const char *fn = "lt_contiguous";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    if (lt__is_contiguous(t)) {
        lt_tensor_retain((lt_tensor *)t);
        lt__scope_register((lt_tensor *)t);
        *out = (lt_tensor *)t;
        return LT_OK;
    }
    lt_tensor *v;
    LT_TRY(lt__tensor_alloc(fn, t->shape, t->ndim, t->dtype, t->storage->device, &v));
    lt_status st = lt__backend_of(t)->copy(v, t);
    if (st != LT_OK) {
        lt__drop(v);
        return st;
    }
    return lt__finish_view(fn, lt__identity_backward, t, v, NULL, out);
}
