/* lt_classifier_loss: the LM head (logits = x @ w^T) and its mean cross-entropy as one op, computed in chunks of rows
 * whose logits are turned into their gradient in place, so no [N, V] tensor outlives the call. The gradients of x and
 * w are finished during the forward (as llm.c does) and the backward only scales them, with one exception: when all
 * N rows fit one chunk and N < C, the [N, V] logit gradient is smaller than dw [V, C], so it is kept instead and the
 * backward runs dw's product, straight into w's gradient buffer when it has one. On GPT-2's head (N = 256) that keeps
 * 51 MB instead of 155 and saves the engine a 155 MB copy into the tied embedding's gradient. Never reads tensor
 * data.
 *
 * Under autocast (f32 x and w on a GPU) its three GEMMs run in bf16 with f32 accumulation: x and w are rounded to
 * bf16 once, the logits come out in f32 (the softmax and the loss stay f32), and each chunk's f32 logit gradient is
 * rounded to bf16 for the dx and dw GEMMs, whose outputs (and dw's accumulation over chunks) stay f32. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/nn.h"
#include "ops/autocast.h"

static const char *const fn = "lt_classifier_loss";

/* Rows per chunk: as many as fill CHUNK_BYTES of logits, within [CHUNK_MIN_ROWS, CHUNK_MAX_ROWS]. Each chunk costs
 * OpenBLAS a re-pack of w and dw a rank-(rows) update of all of it, so short chunks are slow: on GPT-2's head
 * (Vp = 50304, C = 768, f32, N = 512, one core) 64-row chunks took 1.2x the time of 256-row ones, and 256 rows were
 * within 2% of one 512-row chunk. A 256-row f32 chunk of that head is 51 MB, not [N, Vp]. */
#define CHUNK_BYTES ((int64_t)64 << 20)
#define CHUNK_MIN_ROWS 64
#define CHUNK_MAX_ROWS 256

/* A stack header (no reference, no scope; valid while t lives) for rows [r0, r0 + rows) of t's dim 0, behind `lead`
 * leading size-1 dims: the gemm entry takes [1, rows, cols] batches. */
static lt_status rows_of(const lt_tensor *t, int lead, int64_t r0, int64_t rows, lt_tensor *hdr) {
    int64_t shape[LT_MAX_DIMS] = {1, 1, 1};
    for (int i = 0; i < t->ndim; i++) shape[lead + i] = t->shape[i];
    LT_TRY(lt__broadcast_header(t, shape, t->ndim + lead, hdr));
    hdr->shape[lead] = rows;
    hdr->offset += r0 * t->strides[0];
    return LT_OK;
}

/* dw = g * dlogits^T x for a deferred dw (see the header comment): into w's gradient when it has one (added, or
 * written over one that reads as zero), else into gx[1]. */
static lt_status deferred_dw(lt_node *n, double g, lt_tensor **gx) {
    const lt_tensor *dl = n->saved[n->i[2]], *x = n->saved[n->i[3]];
    int64_t Vp = dl->shape[1];
    lt_tensor hg, hx, hd;
    LT_TRY(rows_of(dl, 1, 0, dl->shape[0], &hg));
    LT_TRY(rows_of(x, 1, 0, x->shape[0], &hx));
    bool overwrite;
    lt_tensor *gw;
    LT_TRY(lt__grad_out(n, 1, x->storage->device, gx, &gw, &overwrite));
    LT_TRY(rows_of(gw, 1, 0, Vp, &hd));
    return lt__backend_of(x)->gemm(&hg, &hx, true, false, g, overwrite ? 0.0 : 1.0, NULL, NULL, &hd);
}

/* Saved: i[0] and i[1] are the slots of the finished dx and dw (for an upstream gradient of 1), or -1; for a deferred
 * dw, i[2] and i[3] are those of the logit gradient and of the x its product reads, or -1. */
static lt_status classifier_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    double g;
    if (gy->dtype == LT_F64) {
        LT_TRY(lt_tensor_to_host(gy, &g, sizeof g));
    } else {
        float f;
        LT_TRY(lt_tensor_to_host(gy, &f, sizeof f));
        g = f;
    }
    if (lt__node_needs(n, 1) && n->i[2] >= 0) LT_TRY(deferred_dw(n, g, gx));
    for (int i = 0; i < 2; i++) {
        if (!lt__node_needs(n, i) || n->i[i] < 0) continue;
        const lt_tensor *d = n->saved[n->i[i]];
        if (g == 1.0) { /* the common case, lt_backward(loss): hand over the saved gradient itself */
            LT_TRY(lt__tensor_view_of(d, d->shape, d->strides, d->ndim, d->offset, &gx[i]));
            continue;
        }
        LT_TRY(lt__tensor_alloc(n->name, d->shape, d->ndim, d->dtype, d->storage->device, &gx[i]));
        LT_TRY(lt__backend_of(d)->scalar(LT_SOP_MUL, d, g, gx[i]));
    }
    return LT_OK;
}

static lt_status check_args(const lt_tensor *x, const lt_tensor *w, const lt_tensor *targets, int64_t V) {
    LT_TRY(lt__check_compute_dtype(fn, "x", x));
    LT_TRY(lt__check_compute_dtype(fn, "w", w));
    LT_TRY(lt__check_same_dtype(fn, x, w));
    LT_TRY(lt__check_same_device(fn, x, w));
    LT_TRY(lt__check_tensor(fn, "targets", targets));
    if (targets->dtype != LT_I32 && targets->dtype != LT_I64)
        return lt__err(LT_ERR_DTYPE, "%s: targets have dtype %s, expected i32 or i64", fn,
                       lt_dtype_name(targets->dtype));
    LT_TRY(lt__check_same_device(fn, x, targets));
    char sx[LT_SHAPE_STR_LEN], sw[LT_SHAPE_STR_LEN], st[LT_SHAPE_STR_LEN];
    lt__fmt_shape(sx, sizeof sx, x->shape, x->ndim);
    lt__fmt_shape(sw, sizeof sw, w->shape, w->ndim);
    lt__fmt_shape(st, sizeof st, targets->shape, targets->ndim);
    if (x->ndim != 2 || w->ndim != 2 || targets->ndim != 1 || x->shape[1] != w->shape[1] ||
        targets->shape[0] != x->shape[0])
        return lt__err(LT_ERR_SHAPE, "%s: x %s, w %s and targets %s do not fit: expected [N, C], [V, C] and [N]", fn,
                       sx, sw, st);
    if (V < 1 || V > w->shape[0])
        return lt__err(LT_ERR_ARG, "%s: vocab_size is %lld, must be in [1, %lld] (the rows of w)", fn, (long long)V,
                       (long long)w->shape[0]);
    return LT_OK;
}

/* x or w contiguous (a new reference or a copy), without recording: the op is one autograd node. */
static lt_status contiguous(const lt_tensor *t, lt_tensor **out) {
    lt_no_grad_begin();
    lt_status st = lt_contiguous(t, out);
    lt_no_grad_end();
    return st;
}

/* The whole op inside a scope of its own, which frees every temporary (the logits chunk above all) when it ends.
 * On success *out holds one extra reference to the loss, which outlives that scope. */
static lt_status classifier_run(const lt_tensor *x, const lt_tensor *w, const lt_tensor *targets, int64_t V,
                                int64_t ignore, int64_t count, lt_tensor **out) {
    const lt__backend *be = lt__backend_of(x);
    lt_device dev = x->storage->device;
    int64_t N = x->shape[0], Vp = w->shape[0], es = (int64_t)lt_dtype_size(x->dtype);
    lt_tensor *y, *xc, *wc, *losses, *sum, *logits = NULL, *dx = NULL, *dw = NULL, *grad16 = NULL;
    LT_TRY(lt__tensor_alloc(fn, NULL, 0, x->dtype, dev, &y));
    lt_node *n;
    LT_TRY(lt__record(fn, classifier_backward, y, (const lt_tensor *[]){x, w}, 2, &n));
    bool want_dx = n && lt__node_needs(n, 0), want_dw = n && lt__node_needs(n, 1);
    LT_TRY(contiguous(x, &xc));
    LT_TRY(contiguous(w, &wc));
    bool autocast = lt__autocast_active((const lt_tensor *[]){x, w}, 2);
    if (autocast) { /* the GEMMs read bf16 copies instead (contiguous, as xc and wc are; the scope frees both) */
        lt_tensor *x16, *w16;
        LT_TRY(lt__convert(fn, xc, LT_BF16, &x16));
        LT_TRY(lt__convert(fn, wc, LT_BF16, &w16));
        xc = x16;
        wc = w16;
    }
    LT_TRY(lt__tensor_alloc(fn, &N, 1, x->dtype, dev, &losses));
    if (want_dx) LT_TRY(lt__tensor_alloc(fn, x->shape, 2, x->dtype, dev, &dx));
    int64_t R = CHUNK_BYTES / (Vp * es);
    R = R < CHUNK_MIN_ROWS ? CHUNK_MIN_ROWS : R > CHUNK_MAX_ROWS ? CHUNK_MAX_ROWS : R;
    bool defer_dw = want_dw && N > 0 && N <= R && N < w->shape[1]; /* keep the smaller [N, Vp] logit gradient */
    R = R < N ? R : N;
    if (want_dw && !defer_dw) LT_TRY(lt__tensor_alloc(fn, w->shape, 2, x->dtype, dev, &dw));
    if (dw && N == 0) LT_TRY(be->fill(dw, 0.0));
    int64_t lshape[2] = {R, Vp};
    if (N > 0) LT_TRY(lt__tensor_alloc(fn, lshape, 2, x->dtype, dev, &logits));
    if (N > 0 && autocast && (want_dx || want_dw)) LT_TRY(lt__tensor_alloc(fn, lshape, 2, LT_BF16, dev, &grad16));
    /* mean over counted rows: every row's gradient carries 1 / count (all ignored: no gradient, NaN loss) */
    double grad_scale = count > 0 ? 1.0 / (double)count : 0.0;
    lt_tensor hw, hx, hl, hl2, ht, hs, hd, hg;
    LT_TRY(rows_of(wc, 1, 0, Vp, &hw));
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t rows = N - r0 < R ? N - r0 : R;
        LT_TRY(rows_of(xc, 1, r0, rows, &hx));
        LT_TRY(rows_of(logits, 1, 0, rows, &hl));
        LT_TRY(be->gemm(&hx, &hw, false, true, 1.0, 0.0, NULL, NULL, &hl)); /* logits = x w^T */
        LT_TRY(rows_of(logits, 0, 0, rows, &hl2));
        LT_TRY(rows_of(targets, 0, r0, rows, &ht));
        LT_TRY(rows_of(losses, 0, r0, rows, &hs));
        LT_TRY(be->classifier_ce(&hl2, V, &ht, ignore, grad_scale, want_dx || want_dw, &hs));
        hg = hl;
        if (grad16) { /* autocast: the dx and dw GEMMs read the logit gradient rounded to bf16 */
            LT_TRY(rows_of(grad16, 1, 0, rows, &hg));
            LT_TRY(be->copy(&hg, &hl));
        }
        if (want_dx) { /* dx = dlogits w */
            LT_TRY(rows_of(dx, 1, r0, rows, &hd));
            LT_TRY(be->gemm(&hg, &hw, false, false, 1.0, 0.0, NULL, NULL, &hd));
        }
        if (dw) { /* dw += dlogits^T x, chunk after chunk (the same order on every run) */
            LT_TRY(rows_of(dw, 1, 0, Vp, &hd));
            LT_TRY(be->gemm(&hg, &hx, true, false, 1.0, r0 == 0 ? 0.0 : 1.0, NULL, NULL, &hd));
        }
    }
    int64_t one = 1;
    LT_TRY(lt__tensor_alloc(fn, NULL, 0, x->dtype, dev, &sum));
    LT_TRY(lt__broadcast_header(sum, &one, 1, &hs)); /* the reduction's [1] output */
    LT_TRY(be->reduce(LT_ROP_SUM, losses, 1u, &hs));
    LT_TRY(be->scalar(LT_SOP_MUL, sum, 1.0 / (double)count, y)); /* 0 * (1 / 0) = NaN with every row ignored */
    if (n) {
        n->i[0] = n->i[1] = n->i[2] = n->i[3] = -1;
        if (defer_dw) { /* the one chunk's logit gradient (bf16 under autocast) and the x its product reads */
            n->i[2] = n->n_saved;
            LT_TRY(lt__node_save(n, grad16 ? grad16 : logits));
            n->i[3] = n->n_saved;
            LT_TRY(lt__node_save(n, xc));
        }
        if (dx) {
            n->i[0] = n->n_saved;
            LT_TRY(lt__node_save(n, dx));
        }
        if (dw) {
            n->i[1] = n->n_saved;
            LT_TRY(lt__node_save(n, dw));
        }
    }
    lt_tensor_retain(y);
    *out = y;
    return LT_OK;
}

LT_API lt_status lt_classifier_loss(const lt_tensor *x, const lt_tensor *w, const lt_tensor *targets,
                                    int64_t vocab_size, int64_t ignore_index, lt_tensor **loss) {
    LT_CHECK_NOT_NULL(fn, loss);
    *loss = NULL;
    lt__clear_error();
    LT_TRY(check_args(x, w, targets, vocab_size));
    int64_t count;
    LT_TRY(lt__check_targets(fn, targets, x->shape[0], vocab_size, ignore_index, &count));
    lt_tensor *y = NULL;
    LT_TRY(lt__scope_begin());
    lt_status st = classifier_run(x, w, targets, vocab_size, ignore_index, count, &y);
    lt__scope_end();
    if (st != LT_OK) return st;
    lt__scope_register(y); /* our reference goes to the caller's scope, or to the caller when none is open */
    *loss = y;
    return LT_OK;
}
