/* lt_attention, forward and backward: argument checks, layout and autograd for the fused causal attention.
 * The arithmetic is the backend's attention entries; this file never reads tensor data. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/nn.h"

static const char *const fn = "lt_attention";

/* A temporary the op does not return: freed now when no scope owns it, else at the scope's end. */
/* t itself (a new reference) when contiguous, else a contiguous copy; unlike lt_contiguous it records nothing, so
 * the op stays one autograd node. */
static lt_status contiguous(const lt_tensor *t, lt_tensor **out) {
    if (lt__is_contiguous(t)) return lt__tensor_view_of(t, t->shape, t->strides, t->ndim, t->offset, out);
    LT_TRY(lt__tensor_alloc(fn, t->shape, t->ndim, t->dtype, t->storage->device, out));
    lt_status st = lt__backend_of(t)->copy(*out, t);
    if (st != LT_OK) {
        lt__drop(*out);
        *out = NULL;
    }
    return st;
}

/* Saved: qkv (contiguous), y and lse; i[0] is n_head. */
static lt_status attention_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *qkv = n->saved[0], *y = n->saved[1], *lse = n->saved[2];
    lt_tensor *gc, *g;
    LT_TRY(contiguous(gy, &gc));
    LT_TRY(lt__tensor_alloc(n->name, qkv->shape, qkv->ndim, qkv->dtype, qkv->storage->device, &g));
    LT_TRY(lt__backend_of(qkv)->attention_backward(qkv, y, lse, gc, (int)n->i[0], g));
    gx[0] = g;
    return LT_OK;
}

/* qkv is [B, T, 3C] with C divisible by n_head. */
static lt_status check_shape(const lt_tensor *qkv, int n_head) {
    char s[LT_SHAPE_STR_LEN];
    lt__fmt_shape(s, sizeof s, qkv->shape, qkv->ndim);
    if (n_head < 1) return lt__err(LT_ERR_ARG, "%s: n_head is %d, must be >= 1", fn, n_head);
    if (qkv->ndim != 3) return lt__err(LT_ERR_SHAPE, "%s: qkv is %s, expected 3 dims [B, T, 3C]", fn, s);
    int64_t c3 = qkv->shape[2];
    if (c3 % 3 != 0)
        return lt__err(LT_ERR_SHAPE, "%s: qkv is %s; its last dim (%lld) is not 3C (q, k and v)", fn, s, (long long)c3);
    if (c3 / 3 % n_head != 0)
        return lt__err(LT_ERR_SHAPE, "%s: qkv is %s; C = %lld is not divisible by n_head = %d", fn, s,
                       (long long)(c3 / 3), n_head);
    return LT_OK;
}

LT_API lt_status lt_attention(const lt_tensor *qkv, int n_head, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "qkv", qkv));
    LT_TRY(check_shape(qkv, n_head));
    int64_t B = qkv->shape[0], T = qkv->shape[1], C = qkv->shape[2] / 3;
    int64_t yshape[3] = {B, T, C}, lshape[3] = {B, n_head, T};
    lt_device dev = qkv->storage->device;
    lt_tensor *xc = NULL, *y = NULL, *lse = NULL;
    lt_status st = LT_OK;
    LT_TRY(contiguous(qkv, &xc));
    LT_TRY_GOTO(lt__tensor_alloc(fn, yshape, 3, qkv->dtype, dev, &y), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, lshape, 3, qkv->dtype, dev, &lse), done);
    LT_TRY_GOTO(lt__backend_of(qkv)->attention(xc, n_head, y, lse), done);
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, attention_backward, y, (const lt_tensor *[]){qkv}, 1, &n), done);
    if (n) {
        n->i[0] = n_head;
        LT_TRY_GOTO(lt__node_save(n, xc), done);
        LT_TRY_GOTO(lt__node_save(n, y), done);
        LT_TRY_GOTO(lt__node_save(n, lse), done);
    }
    *out = y;
    y = NULL;
done: /* on success y is NULL here; everything else is a temporary */
    lt__drop(xc);
    lt__drop(lse);
    lt__drop(y);
    return st;
}
