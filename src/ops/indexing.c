/* Indexing ops: embedding lookup, where and masked_fill, cat and split, forward and backward.
 * Indices are checked on the host before any kernel runs, so no backend ever reads out of range. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* t itself when contiguous, else a contiguous copy in *tmp (which the caller drops). */
static lt_status contiguous_operand(const char *who, const lt_tensor *t, const lt_tensor **use, lt_tensor **tmp) {
    *use = t;
    *tmp = NULL;
    if (lt__is_contiguous(t)) return LT_OK;
    LT_TRY(lt__tensor_alloc(who, t->shape, t->ndim, t->dtype, t->storage->device, tmp));
    *use = *tmp;
    return lt__backend_of(t)->copy(*tmp, t);
}

/* ---- embedding ---- */

/* Formats row-major position i of shape as "[1, 2]". */
static void fmt_position(char *buf, size_t size, const int64_t *shape, int ndim, int64_t i) {
    int64_t idx[LT_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)idx[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* Every index of the contiguous idx must lie in [0, v): kernels address memory with it. Indices on another device
 * are read back once. */
static lt_status check_indices(const char *who, const lt_tensor *idx, int64_t v) {
    int64_t m = lt__numel(idx->shape, idx->ndim);
    size_t nbytes = (size_t)m * lt_dtype_size(idx->dtype);
    const void *host = lt__data(idx);
    void *buf = NULL;
    if (m == 0) return LT_OK;
    if (idx->storage->device.type != LT_CPU) {
        if (!(buf = malloc(nbytes)))
            return lt__err(LT_ERR_OOM, "%s: no host memory to check %lld indices", who, (long long)m);
        lt_status st = lt_tensor_to_host(idx, buf, nbytes);
        if (st != LT_OK) {
            free(buf);
            return st;
        }
        host = buf;
    }
    bool i64 = idx->dtype == LT_I64;
    for (int64_t i = 0; i < m; i++) {
        int64_t x = i64 ? ((const int64_t *)host)[i] : ((const int32_t *)host)[i];
        if (x < 0 || x >= v) {
            char pos[LT_SHAPE_STR_LEN];
            fmt_position(pos, sizeof pos, idx->shape, idx->ndim, i);
            free(buf);
            return lt__err(LT_ERR_RANGE, "%s: idx%s is %lld, outside [0, %lld)", who, pos, (long long)x, (long long)v);
        }
    }
    free(buf);
    return LT_OK;
}

/* A [rows, cols] view of a contiguous tensor: the embedding entries see idx's dims flattened. */
static lt_status view2(const lt_tensor *t, int64_t rows, int64_t cols, lt_tensor **out) {
    int64_t shape[2] = {rows, cols}, strides[2] = {cols, 1};
    return lt__tensor_view_of(t, shape, strides, 2, t->offset, out);
}

/* Scatter-adds gy's rows, in the deterministic order of the backend, into the weight's gradient when it exists (a
 * parameter: no [V, C] temporary to zero and add) or else into a zeroed [V, C] gradient. */
static lt_status embedding_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *idx = n->saved[0];
    const lt__edge *ew = &n->inputs[0];
    bool overwrite;
    lt_tensor *gw, *gc, *g2;
    LT_TRY(lt__grad_out(n, 0, gy->storage->device, gx, &gw, &overwrite));
    if (overwrite) LT_TRY(lt__backend_of(gw)->fill(gw, 0.0)); /* the rows no token picks must read as zero too */
    LT_TRY(lt_contiguous(gy, &gc));
    LT_TRY(view2(gc, lt__numel(idx->shape, idx->ndim), ew->shape[1], &g2));
    return lt__backend_of(gy)->embedding_backward(g2, idx, gw);
}

static lt_status embedding_check(const char *fn, const lt_tensor *weight, const lt_tensor *idx) {
    LT_TRY(lt__check_compute_dtype(fn, "weight", weight));
    LT_TRY(lt__check_tensor(fn, "idx", idx));
    if (idx->dtype != LT_I32 && idx->dtype != LT_I64)
        return lt__err(LT_ERR_DTYPE, "%s: idx has dtype %s, expected i32 or i64", fn, lt_dtype_name(idx->dtype));
    LT_TRY(lt__check_same_device(fn, weight, idx));
    char s[LT_SHAPE_STR_LEN];
    if (weight->ndim != 2)
        return lt__err(LT_ERR_SHAPE, "%s: weight is %s, expected 2 dims [V, C]", fn,
                       lt__fmt_shape(s, sizeof s, weight->shape, weight->ndim));
    if (idx->ndim >= LT_MAX_DIMS)
        return lt__err(LT_ERR_SHAPE, "%s: idx has %d dims; the output would have more than %d", fn, idx->ndim,
                       LT_MAX_DIMS);
    return LT_OK;
}

LT_API lt_status lt_embedding(const lt_tensor *weight, const lt_tensor *idx, lt_tensor **out) {
    static const char *fn = "lt_embedding";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(embedding_check(fn, weight, idx));
    int64_t shape[LT_MAX_DIMS];
    memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shape[idx->ndim] = weight->shape[1];
    const lt_tensor *ic, *wc;
    lt_tensor *icopy = NULL, *wcopy = NULL, *y = NULL, *y2 = NULL;
    lt_node *n;
    lt_status st;
    LT_TRY_GOTO(contiguous_operand(fn, idx, &ic, &icopy), done);
    LT_TRY_GOTO(check_indices(fn, ic, weight->shape[0]), done);
    LT_TRY_GOTO(contiguous_operand(fn, weight, &wc, &wcopy), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, shape, idx->ndim + 1, weight->dtype, weight->storage->device, &y), done);
    LT_TRY_GOTO(view2(y, lt__numel(idx->shape, idx->ndim), weight->shape[1], &y2), done);
    LT_TRY_GOTO(lt__backend_of(y)->embedding(wc, ic, y2), done);
    LT_TRY_GOTO(lt__record(fn, embedding_backward, y, (const lt_tensor *[]){weight}, 1, &n), done);
    if (n) LT_TRY_GOTO(lt__node_save(n, ic), done);
    *out = y;
done:
    lt__drop(icopy);
    lt__drop(wcopy);
    lt__drop(y2);
    if (st != LT_OK) lt__drop(y);
    return st;
}

/* ---- where and masked_fill ---- */

/* ga = gy where cond holds, gb = gy elsewhere, each summed back over the dims that broadcasting added. */
static lt_status where_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *cond = n->saved[0];
    lt_tensor *zero, *g;
    LT_TRY(lt_tensor_zeros(NULL, 0, gy->dtype, gy->storage->device, &zero));
    for (int i = 0; i < 2; i++) {
        if (!lt__node_needs(n, i)) continue;
        LT_TRY(i == 0 ? lt_where(cond, gy, zero, &g) : lt_where(cond, zero, gy, &g));
        LT_TRY(lt__sum_to(g, n->inputs[i].shape, n->inputs[i].ndim, &gx[i]));
    }
    return LT_OK;
}

/* cond ? a : b with all three broadcast together, recorded under the public name fn. */
static lt_status where_impl(const char *fn, const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b,
                            lt_tensor **out) {
    int64_t s1[LT_MAX_DIMS], shape[LT_MAX_DIMS];
    int n1, ndim;
    LT_TRY(lt__broadcast_shape(fn, cond->shape, cond->ndim, a->shape, a->ndim, s1, &n1));
    LT_TRY(lt__broadcast_shape(fn, s1, n1, b->shape, b->ndim, shape, &ndim));
    lt_tensor ec, ea, eb, *y = NULL;
    lt_node *n;
    LT_TRY(lt__broadcast_header(cond, shape, ndim, &ec));
    LT_TRY(lt__broadcast_header(a, shape, ndim, &ea));
    LT_TRY(lt__broadcast_header(b, shape, ndim, &eb));
    LT_TRY(lt__tensor_alloc(fn, shape, ndim, a->dtype, a->storage->device, &y));
    lt_status st = lt__backend_of(y)->where(&ec, &ea, &eb, y);
    if (st == LT_OK) st = lt__record(fn, where_backward, y, (const lt_tensor *[]){a, b}, 2, &n);
    if (st == LT_OK && n) st = lt__node_save(n, cond);
    if (st != LT_OK) {
        lt__drop(y);
        return st;
    }
    *out = y;
    return LT_OK;
}

static lt_status check_mask(const char *fn, const char *arg, const lt_tensor *m) {
    LT_TRY(lt__check_tensor(fn, arg, m));
    if (m->dtype != LT_U8)
        return lt__err(LT_ERR_DTYPE, "%s: %s has dtype %s, expected u8", fn, arg, lt_dtype_name(m->dtype));
    return LT_OK;
}

LT_API lt_status lt_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    static const char *fn = "lt_where";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(check_mask(fn, "cond", cond));
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    LT_TRY(lt__check_compute_dtype(fn, "b", b));
    LT_TRY(lt__check_same_dtype(fn, a, b));
    LT_TRY(lt__check_same_device(fn, a, b));
    LT_TRY(lt__check_same_device(fn, cond, a));
    return where_impl(fn, cond, a, b, out);
}

LT_API lt_status lt_masked_fill(const lt_tensor *a, const lt_tensor *mask, double value, lt_tensor **out) {
    static const char *fn = "lt_masked_fill";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    LT_TRY(check_mask(fn, "mask", mask));
    LT_TRY(lt__check_same_device(fn, mask, a));
    int64_t shape[LT_MAX_DIMS];
    int ndim;
    LT_TRY(lt__broadcast_shape(fn, a->shape, a->ndim, mask->shape, mask->ndim, shape, &ndim));
    if (ndim != a->ndim || memcmp(shape, a->shape, sizeof(int64_t) * (size_t)ndim) != 0) {
        char sm[LT_SHAPE_STR_LEN], sa[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: mask %s does not broadcast to a %s", fn,
                       lt__fmt_shape(sm, sizeof sm, mask->shape, mask->ndim),
                       lt__fmt_shape(sa, sizeof sa, a->shape, a->ndim));
    }
    lt_tensor *fill;
    LT_TRY(lt_tensor_full(NULL, 0, value, a->dtype, a->storage->device, &fill));
    lt_status st = where_impl(fn, mask, fill, a, out);
    lt__drop(fill);
    return st;
}

/* ---- cat and split ---- */

/* Each input's gradient is its slab of gy, a view: the engine copies what it keeps for a leaf, and every op's
 * backward accepts a strided gy. */
static lt_status cat_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    int d = (int)n->i[0];
    int64_t off = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        int64_t size = n->inputs[i].shape[d];
        if (lt__node_needs(n, i)) {
            LT_TRY(lt_slice(gy, d, off, off + size, 1, &gx[i]));
        }
        off += size;
    }
    return LT_OK;
}

/* Checks the inputs and computes the output shape: tensors[0]'s, with dim d the sum of every input's. */
static lt_status cat_shape(const char *fn, const lt_tensor *const *ts, int n, int dim, int *d, int64_t *shape) {
    LT_CHECK_NOT_NULL(fn, ts);
    if (n < 1) return lt__err(LT_ERR_ARG, "%s: n is %d, need at least one tensor", fn, n);
    for (int i = 0; i < n; i++)
        if (!ts[i]) return lt__err(LT_ERR_ARG, "%s: tensors[%d] is NULL", fn, i);
    const lt_tensor *t0 = ts[0];
    if (t0->ndim == 0) return lt__err(LT_ERR_SHAPE, "%s: tensors[0] has 0 dims; cat needs at least 1", fn);
    LT_TRY(lt__norm_dim(fn, dim, t0->ndim, d));
    memcpy(shape, t0->shape, sizeof(int64_t) * (size_t)t0->ndim);
    shape[*d] = 0;
    for (int i = 0; i < n; i++) {
        const lt_tensor *t = ts[i];
        if (t->dtype != t0->dtype)
            return lt__err(LT_ERR_DTYPE, "%s: tensors[%d] has dtype %s, tensors[0] has %s", fn, i,
                           lt_dtype_name(t->dtype), lt_dtype_name(t0->dtype));
        LT_TRY(lt__check_same_device(fn, t0, t));
        bool fits = t->ndim == t0->ndim;
        for (int k = 0; fits && k < t0->ndim; k++) fits = k == *d || t->shape[k] == t0->shape[k];
        if (!fits) {
            char s0[LT_SHAPE_STR_LEN], si[LT_SHAPE_STR_LEN];
            return lt__err(LT_ERR_SHAPE, "%s: tensors[%d] is %s, tensors[0] is %s; only dim %d may differ", fn, i,
                           lt__fmt_shape(si, sizeof si, t->shape, t->ndim),
                           lt__fmt_shape(s0, sizeof s0, t0->shape, t0->ndim), *d);
        }
        shape[*d] += t->shape[*d];
    }
    return LT_OK;
}

LT_API lt_status lt_cat(const lt_tensor *const *tensors, int n, int dim, lt_tensor **out) {
    static const char *fn = "lt_cat";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    int d;
    int64_t shape[LT_MAX_DIMS];
    LT_TRY(cat_shape(fn, tensors, n, dim, &d, shape));
    const lt_tensor *t0 = tensors[0];
    lt_tensor *y;
    lt_node *node;
    lt_status st;
    LT_TRY(lt__tensor_alloc(fn, shape, t0->ndim, t0->dtype, t0->storage->device, &y));
    /* Each input is copied straight into its slab of y: a view with y's strides, offset along dim d. */
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const lt_tensor *t = tensors[i];
        if (t->shape[d] > 0 && lt__numel(t->shape, t->ndim) > 0) {
            lt_tensor *slab;
            LT_TRY_GOTO(lt__tensor_view_of(y, t->shape, y->strides, y->ndim, y->offset + off * y->strides[d], &slab),
                        fail);
            st = lt__backend_of(y)->copy(slab, t);
            lt__drop(slab);
            if (st != LT_OK) goto fail;
        }
        off += t->shape[d];
    }
    LT_TRY_GOTO(lt__record(fn, cat_backward, y, tensors, n, &node), fail);
    if (node) node->i[0] = d;
    *out = y;
    return LT_OK;
fail:
    lt__drop(y);
    return st;
}

static lt_status split_check(const char *fn, const lt_tensor *a, const int64_t *sizes, int n, int dim, int *d) {
    LT_CHECK_NOT_NULL(fn, sizes);
    LT_TRY(lt__check_tensor(fn, "a", a));
    LT_TRY(lt__norm_dim(fn, dim, a->ndim, d));
    int64_t sum = 0;
    bool overflow = false;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0) return lt__err(LT_ERR_ARG, "%s: sizes[%d] is %lld, must be >= 0", fn, i, (long long)sizes[i]);
        overflow |= __builtin_add_overflow(sum, sizes[i], &sum);
    }
    if (overflow || sum != a->shape[*d]) {
        char s[LT_SHAPE_STR_LEN];
        lt__fmt_shape(s, sizeof s, a->shape, a->ndim);
        if (overflow) return lt__err(LT_ERR_SHAPE, "%s: sizes add up to more than INT64_MAX; a is %s", fn, s);
        return lt__err(LT_ERR_SHAPE, "%s: sizes add up to %lld, but dim %d of a (%s) has %lld", fn, (long long)sum, *d,
                       s, (long long)a->shape[*d]);
    }
    return LT_OK;
}

LT_API lt_status lt_split(const lt_tensor *a, const int64_t *sizes, int n, int dim, lt_tensor **outs) {
    static const char *fn = "lt_split";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, outs);
    if (n < 1) return lt__err(LT_ERR_ARG, "%s: n is %d, need at least one piece", fn, n);
    for (int i = 0; i < n; i++) outs[i] = NULL;
    int d;
    LT_TRY(split_check(fn, a, sizes, n, dim, &d));
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        lt_status st = lt_slice(a, d, off, off + sizes[i], 1, &outs[i]);
        if (st != LT_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", lt_last_error());
            for (int j = 0; j < i; j++) {
                lt__drop(outs[j]);
                outs[j] = NULL;
            }
            return lt__err(st, "%s: piece %d: %s", fn, i, why);
        }
        off += sizes[i];
    }
    return LT_OK;
}
