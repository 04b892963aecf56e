/* lt_dropout: inverted dropout drawing from the caller's Philox stream, forward and backward.
 * The forward keeps a u8 mask for the backward and never re-draws, so the backward needs no RNG state. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

static const char *const fn = "lt_dropout";

/* gx = gy * mask / (1 - p): scale gy, then select it where the mask kept the element. */
static lt_status dropout_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *mask = n->saved[0];
    const lt__backend *be = lt__backend_of(gy);
    lt_tensor *scaled, *zero;
    LT_TRY(lt__tensor_alloc(fn, gy->shape, gy->ndim, gy->dtype, gy->storage->device, &scaled));
    LT_TRY(be->scalar(LT_SOP_MUL, gy, n->f[0], scaled));
    LT_TRY(lt_tensor_zeros(NULL, 0, gy->dtype, gy->storage->device, &zero));
    return lt_where(mask, scaled, zero, &gx[0]);
}

LT_API lt_status lt_dropout(const lt_tensor *a, double p, lt_philox *rng, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    LT_CHECK_NOT_NULL(fn, rng);
    if (!(p >= 0 && p < 1)) return lt__err(LT_ERR_ARG, "%s: p is %g, expected 0 <= p < 1", fn, p);
    if (p == 0) { /* the identity: hand out another reference to a itself, owned as any new tensor would be */
        lt_tensor *same = (lt_tensor *)a;
        lt_tensor_retain(same);
        lt__scope_register(same);
        *out = same;
        return LT_OK;
    }
    double scale = 1.0 / (1.0 - p);
    lt_tensor *y = NULL, *mask = NULL;
    lt_node *n;
    lt_status st;
    LT_TRY_GOTO(lt__tensor_alloc(fn, a->shape, a->ndim, a->dtype, a->storage->device, &y), fail);
    LT_TRY_GOTO(lt__tensor_alloc(fn, a->shape, a->ndim, LT_U8, a->storage->device, &mask), fail);
    LT_TRY_GOTO(lt__backend_of(a)->dropout(a, p, scale, rng->seed, rng->offset, y, mask), fail);
    LT_TRY_GOTO(lt__record(fn, dropout_backward, y, (const lt_tensor *[]){a}, 1, &n), fail);
    if (n) {
        n->f[0] = scale;
        LT_TRY_GOTO(lt__node_save(n, mask), fail);
    }
    lt__drop(mask); /* the node's saved alias keeps the mask's storage; we return only y */
    /* whole Philox blocks, as every random function advances, so the next draw starts a fresh block */
    rng->offset += ((uint64_t)lt__numel(a->shape, a->ndim) + 3) & ~(uint64_t)3;
    *out = y;
    return LT_OK;
fail:
    lt__drop(mask);
    lt__drop(y);
    return st;
}
