/* lt_cross_entropy, forward and backward: argument checks, host-side target validation, the reduction and
 * autograd. Per-row losses and gradients are the backend's cross_entropy entries. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

/* A temporary the op does not return: freed now when no scope owns it, else at the scope's end. */
/* t (0-d or 1-D) seen as 1-D of n elements at t's stride; a 0-d t has n == 1 (or is broadcast with stride 0). */
static lt_status as_vector(const lt_tensor *t, int64_t n, lt_tensor **out) {
    int64_t stride = t->ndim == 1 ? t->strides[0] : 0;
    return lt__tensor_view_of(t, &n, &stride, 1, t->offset, out);
}

/* Checks every target on the host (copying them there from another device) and counts those not ignored: a device
 * kernel could read outside a row and cannot say which row was wrong. targets is 1-D (or 0-d, seen as one row).
 * Shared with lt_cross_entropy. */
lt_status lt__check_targets(const char *who, const lt_tensor *targets, int64_t N, int64_t C, int64_t ignore,
                            int64_t *count) {
    lt_tensor *copy = NULL;
    const lt_tensor *h = targets;
    if (targets->storage->device.type != LT_CPU) {
        LT_TRY(lt_tensor_to(targets, LT_I64, LT_DEVICE_CPU, &copy));
        h = copy;
    }
    int64_t s = h->ndim == 1 ? h->strides[0] : 0, n_used = 0;
    lt_status st = LT_OK;
    for (int64_t i = 0; i < N; i++) {
        int64_t t = h->dtype == LT_I32 ? ((const int32_t *)lt__data(h))[i * s] : ((const int64_t *)lt__data(h))[i * s];
        if (t == ignore) continue;
        if (t < 0 || t >= C) {
            st =
                lt__err(LT_ERR_RANGE, "%s: target %lld in row %lld is outside [0, %lld) and is not ignore_index (%lld)",
                        who, (long long)t, (long long)i, (long long)C, (long long)ignore);
            break;
        }
        n_used++;
    }
    lt__drop(copy);
    *count = n_used;
    return st;
}

/* Saved: logits as [N, C], targets as [N], lse [N]. i[0] is ignore_index, i[1] the reduction; f[0] the factor
 * that turns the output's gradient into each row's (1, or 1/count for the mean). */
static lt_status cross_entropy_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *x2 = n->saved[0], *t1 = n->saved[1], *lse = n->saved[2];
    const lt__edge *in = &n->inputs[0];
    const lt__backend *be = lt__backend_of(x2);
    lt_device dev = x2->storage->device;
    const lt_tensor *g = gy;
    if (n->i[1] == LT_REDUCE_MEAN) {
        lt_tensor *s;
        LT_TRY(lt__tensor_alloc(n->name, gy->shape, gy->ndim, gy->dtype, dev, &s));
        LT_TRY(be->scalar(LT_SOP_MUL, gy, n->f[0], s));
        g = s;
    }
    /* per-row gradients: gy itself for LT_REDUCE_NONE, else the scalar broadcast with stride 0 */
    lt_tensor *gloss, *glogits, *g2;
    LT_TRY(as_vector(g, x2->shape[0], &gloss));
    LT_TRY(lt__tensor_alloc(n->name, in->shape, in->ndim, in->dtype, dev, &glogits));
    LT_TRY(lt__tensor_view_of(glogits, x2->shape, x2->strides, 2, glogits->offset, &g2));
    LT_TRY(be->cross_entropy_backward(x2, t1, n->i[0], lse, gloss, g2));
    gx[0] = glogits;
    return LT_OK;
}

/* Logits [N, C] with targets [N], or logits [C] with a 0-d target. */
static lt_status check_shapes(const char *fn, const lt_tensor *logits, const lt_tensor *targets) {
    bool ok = (logits->ndim == 2 && targets->ndim == 1 && targets->shape[0] == logits->shape[0]) ||
              (logits->ndim == 1 && targets->ndim == 0);
    if (ok) return LT_OK;
    char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
    return lt__err(LT_ERR_SHAPE, "%s: logits %s and targets %s do not fit: expected [N, C] and [N], or [C] and []", fn,
                   lt__fmt_shape(a, sizeof a, logits->shape, logits->ndim),
                   lt__fmt_shape(b, sizeof b, targets->shape, targets->ndim));
}

LT_API lt_status lt_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                  lt_reduction reduction, lt_tensor **out) {
    static const char *fn = "lt_cross_entropy";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "logits", logits));
    LT_TRY(lt__check_tensor(fn, "targets", targets));
    if (targets->dtype != LT_I32 && targets->dtype != LT_I64)
        return lt__err(LT_ERR_DTYPE, "%s: targets have dtype %s, expected i32 or i64", fn,
                       lt_dtype_name(targets->dtype));
    LT_TRY(lt__check_same_device(fn, logits, targets));
    if ((unsigned)reduction > LT_REDUCE_NONE)
        return lt__err(LT_ERR_ARG, "%s: reduction is %d, expected LT_REDUCE_MEAN, _SUM or _NONE", fn, (int)reduction);
    LT_TRY(check_shapes(fn, logits, targets));
    int64_t N = logits->ndim == 2 ? logits->shape[0] : 1, C = logits->shape[logits->ndim - 1], count;
    LT_TRY(lt__check_targets(fn, targets, N, C, ignore_index, &count));

    const lt__backend *be = lt__backend_of(logits);
    lt_device dev = logits->storage->device;
    int64_t shape2[2] = {N, C}, strides2[2] = {C, 1};
    lt_tensor *xc = NULL, *x2 = NULL, *t1 = NULL, *loss = NULL, *lse = NULL, *sum = NULL, *sum1 = NULL, *y = NULL;
    lt_status st = LT_OK;
    LT_TRY(lt_contiguous(logits, &xc));
    LT_TRY_GOTO(lt__tensor_view_of(xc, shape2, strides2, 2, xc->offset, &x2), done);
    LT_TRY_GOTO(as_vector(targets, N, &t1), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, &N, 1, logits->dtype, dev, &loss), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, &N, 1, logits->dtype, dev, &lse), done);
    LT_TRY_GOTO(be->cross_entropy(x2, t1, ignore_index, loss, lse), done);
    double factor = 1.0;
    if (reduction == LT_REDUCE_NONE) { /* [N], or [] for a single row given as [C] */
        LT_TRY_GOTO(lt__tensor_view_of(loss, loss->shape, loss->strides, logits->ndim - 1, loss->offset, &y), done);
    } else {
        LT_TRY_GOTO(lt__tensor_alloc(fn, NULL, 0, logits->dtype, dev, &sum), done);
        LT_TRY_GOTO(as_vector(sum, 1, &sum1), done);
        LT_TRY_GOTO(be->reduce(LT_ROP_SUM, loss, 1u, sum1), done);
        if (reduction == LT_REDUCE_SUM) {
            y = sum;
            sum = NULL;
        } else { /* with every row ignored this is 0 * (1/0) = NaN, as in PyTorch */
            factor = 1.0 / (double)count;
            LT_TRY_GOTO(lt__tensor_alloc(fn, NULL, 0, logits->dtype, dev, &y), done);
            LT_TRY_GOTO(be->scalar(LT_SOP_MUL, sum, factor, y), done);
        }
    }
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, cross_entropy_backward, y, (const lt_tensor *[]){logits}, 1, &n), done);
    if (n) {
        n->i[0] = ignore_index;
        n->i[1] = reduction;
        n->f[0] = factor;
        LT_TRY_GOTO(lt__node_save(n, x2), done);
        LT_TRY_GOTO(lt__node_save(n, t1), done);
        LT_TRY_GOTO(lt__node_save(n, lse), done);
    }
    *out = y;
    y = NULL;
done: /* on success y is NULL here; everything else is a temporary */
    lt__drop(xc);
    lt__drop(x2);
    lt__drop(t1);
    lt__drop(loss);
    lt__drop(lse);
    lt__drop(sum);
    lt__drop(sum1);
    lt__drop(y);
    return st;
}
