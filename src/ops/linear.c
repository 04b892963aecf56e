/* lt_linear, forward and backward: y = x @ w + b as one backend GEMM with the bias folded in (the backend adds it to
 * every row with the product: the CPU's sgemm in its kernel, others by filling y with it first), and the three
 * gradients from two GEMMs, db coming with dx's (as the row sums of dy, which the CPU's sgemm takes while it packs
 * dy) or, when dx is not wanted, from reduce. Never reads tensor data.
 *
 * bf16. With x, w (and b) bf16, y is bf16: the GEMM accumulates x @ w + b in f32 and rounds once. Under autocast (f32
 * tensors on a GPU) x and w are rounded to bf16 for the GEMM, y and the bias add stay f32, and the node saves the bf16
 * copies; its backward rounds dy to bf16 for the two GEMMs (f32 outputs: dx and dw in the inputs' f32) and sums db
 * from the f32 dy. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/nn.h"
#include "ops/autocast.h"

static const char *const fn = "lt_linear";

/* A temporary the op does not return: freed now when no scope owns it, else at the scope's end. */
/* Whether the 2-D t is a row-major matrix BLAS reads in place: unit stride along rows, a row stride that is a valid
 * leading dimension. */
static bool row_major(const lt_tensor *t) {
    int64_t r = t->shape[0], c = t->shape[1];
    return (c <= 1 || t->strides[1] == 1) && (r <= 1 || t->strides[0] >= c);
}

/* t (any shape, last dim `cols`) as a row-major [rows, cols] matrix: a view when the strides allow one, else a
 * contiguous copy. Runs without recording, so that the op stays a single autograd node. */
static lt_status as_matrix(const lt_tensor *t, int64_t cols, lt_tensor **out) {
    int64_t shape[2] = {cols > 0 ? -1 : lt__numel(t->shape, t->ndim - 1), cols};
    lt_tensor *m = NULL, *c = NULL;
    lt_no_grad_begin();
    lt_status st = lt_reshape(t, shape, 2, &m);
    if (st == LT_OK && !row_major(m)) {
        st = lt_contiguous(m, &c);
        lt__drop(m);
        m = c;
    }
    lt_no_grad_end();
    *out = st == LT_OK ? m : NULL;
    return st;
}

/* c = op(a) @ op(b) + beta * c (+ bias on every row, with beta = 0) through the backend, for 2-D a, b and c seen as
 * one-matrix batches; asum, when not NULL, gets the row sums of op(a). */
static lt_status gemm2(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double beta, const lt_tensor *bias,
                       lt_tensor *asum, lt_tensor *c) {
    lt_tensor ha, hb, hc;
    int64_t sa[3] = {1, a->shape[0], a->shape[1]}, sb[3] = {1, b->shape[0], b->shape[1]};
    int64_t sc[3] = {1, c->shape[0], c->shape[1]};
    LT_TRY(lt__broadcast_header(a, sa, 3, &ha));
    LT_TRY(lt__broadcast_header(b, sb, 3, &hb));
    LT_TRY(lt__broadcast_header(c, sc, 3, &hc));
    return lt__backend_of(c)->gemm(&ha, &hb, ta, tb, 1.0, beta, bias, asum, &hc);
}

/* db [N] (b's dtype) = the rows of g2 [M, N] summed. The reduction computes in f32 or f64, so a bf16 g2 is summed in
 * f32 and the sum rounded. */
static lt_status bias_grad(lt_node *n, const lt_tensor *g2, lt_dtype dtype, lt_tensor **db) {
    int64_t N = g2->shape[1], shape[2] = {1, N};
    lt_device dev = g2->storage->device;
    lt_dtype acc = g2->dtype == LT_BF16 ? LT_F32 : g2->dtype;
    lt_tensor *g = (lt_tensor *)g2, *s, hb;
    if (g2->dtype != acc) LT_TRY(lt__convert(n->name, g2, acc, &g));
    LT_TRY(lt__tensor_alloc(n->name, &N, 1, acc, dev, &s));
    LT_TRY(lt__broadcast_header(s, shape, 2, &hb));
    LT_TRY(lt__backend_of(g)->reduce(LT_ROP_SUM, g, 1u, &hb));
    if (acc == dtype) {
        *db = s;
        return LT_OK;
    }
    return lt__convert(n->name, s, dtype, db);
}

/* Saved: i[0] and i[1] are the slots of x as [M, K] (needed for dw) and of w (needed for dx), or -1; i[2] the dtype
 * the GEMMs computed in (bf16 under autocast or for bf16 inputs), which the backward follows whatever autocast says
 * when it runs. */
static lt_status linear_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt__edge *ex = &n->inputs[0];
    int64_t N = gy->shape[gy->ndim - 1];
    lt_device dev = gy->storage->device;
    lt_dtype compute = (lt_dtype)n->i[2];
    lt_tensor *g2, *gc;
    LT_TRY(as_matrix(gy, N, &g2));
    gc = g2;
    if (g2->dtype != compute) LT_TRY(lt__convert(n->name, g2, compute, &gc)); /* autocast: dy rounded to bf16 */
    int64_t M = g2->shape[0];
    /* db = dy summed over rows: with dx's product, which sums dy as it reads it, when no conversion intervenes */
    bool db = lt__node_needs(n, 2),
         db_fused = db && lt__node_needs(n, 0) && gc == g2 && g2->dtype != LT_BF16 && n->inputs[2].dtype == g2->dtype;
    if (db_fused) LT_TRY(lt__tensor_alloc(n->name, &N, 1, g2->dtype, dev, &gx[2]));
    if (lt__node_needs(n, 0)) { /* dx = dy @ w^T */
        const lt_tensor *w = n->saved[n->i[1]];
        int64_t shape[2] = {M, w->shape[0]};
        lt_tensor *d2;
        LT_TRY(lt__tensor_alloc(n->name, shape, 2, ex->dtype, dev, &d2));
        LT_TRY(gemm2(gc, w, false, true, 0.0, NULL, db_fused ? gx[2] : NULL, d2));
        LT_TRY(lt_reshape(d2, ex->shape, ex->ndim, &gx[0]));
    }
    if (lt__node_needs(n, 1)) { /* dw = x^T @ dy, added straight to w's gradient when it exists (a parameter) */
        bool overwrite;
        lt_tensor *gw;
        LT_TRY(lt__grad_out(n, 1, dev, gx, &gw, &overwrite));
        LT_TRY(gemm2(n->saved[n->i[0]], gc, true, false, overwrite ? 0.0 : 1.0, NULL, NULL, gw));
    }
    if (db && !db_fused) LT_TRY(bias_grad(n, g2, n->inputs[2].dtype, &gx[2]));
    return LT_OK;
}

/* f32, f64 or bf16. */
static lt_status check_dtype(const char *arg, const lt_tensor *t) {
    LT_TRY(lt__check_tensor(fn, arg, t));
    if (t->dtype != LT_F32 && t->dtype != LT_F64 && t->dtype != LT_BF16)
        return lt__err(LT_ERR_DTYPE, "%s: %s has dtype %s, expected f32, f64 or bf16", fn, arg,
                       lt_dtype_name(t->dtype));
    return LT_OK;
}

static lt_status check_args(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b) {
    LT_TRY(check_dtype("x", x));
    LT_TRY(check_dtype("w", w));
    LT_TRY(lt__check_same_dtype(fn, x, w));
    LT_TRY(lt__check_same_device(fn, x, w));
    char sx[LT_SHAPE_STR_LEN], sw[LT_SHAPE_STR_LEN], sb[LT_SHAPE_STR_LEN];
    lt__fmt_shape(sx, sizeof sx, x->shape, x->ndim);
    lt__fmt_shape(sw, sizeof sw, w->shape, w->ndim);
    if (x->ndim < 1) return lt__err(LT_ERR_SHAPE, "%s: x is 0-d; it needs a last dim of in features", fn);
    if (w->ndim != 2) return lt__err(LT_ERR_SHAPE, "%s: w is %s, expected 2 dims [in, out]", fn, sw);
    if (x->shape[x->ndim - 1] != w->shape[0])
        return lt__err(LT_ERR_SHAPE, "%s: the last dim of x (%s) differs from the first of w (%s)", fn, sx, sw);
    if (!b) return LT_OK;
    LT_TRY(check_dtype("b", b));
    LT_TRY(lt__check_same_dtype(fn, x, b));
    LT_TRY(lt__check_same_device(fn, x, b));
    if (b->ndim != 1 || b->shape[0] != w->shape[1])
        return lt__err(LT_ERR_SHAPE, "%s: b is %s, expected [%lld] to match w (%s)", fn,
                       lt__fmt_shape(sb, sizeof sb, b->shape, b->ndim), (long long)w->shape[1], sw);
    return LT_OK;
}

LT_API lt_status lt_linear(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(check_args(x, w, b));
    int64_t K = w->shape[0], N = w->shape[1], shape[LT_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = N;
    lt_tensor *x2 = NULL, *w2 = NULL, *y = NULL, *y2 = NULL, *xc = NULL, *wc = NULL;
    lt_status st = LT_OK;
    if (lt__autocast_active((const lt_tensor *[]){x, w, b}, 3)) { /* bf16 copies of x and w, f32 y and bias */
        LT_TRY_GOTO(lt__convert(fn, x, LT_BF16, &xc), done);
        LT_TRY_GOTO(lt__convert(fn, w, LT_BF16, &wc), done);
    }
    LT_TRY_GOTO(as_matrix(xc ? xc : x, K, &x2), done);
    LT_TRY_GOTO(as_matrix(wc ? wc : w, N, &w2), done);
    LT_TRY_GOTO(lt__tensor_alloc(fn, shape, x->ndim, x->dtype, x->storage->device, &y), done);
    int64_t M = x2->shape[0], s2[2] = {M, N}, st2[2] = {N, 1};
    LT_TRY_GOTO(lt__tensor_view_of(y, s2, st2, 2, y->offset, &y2), done);
    LT_TRY_GOTO(gemm2(x2, w2, false, false, 0.0, b, NULL, y2), done);
    lt_node *n;
    LT_TRY_GOTO(lt__record(fn, linear_backward, y, (const lt_tensor *[]){x, w, b}, 3, &n), done);
    if (n) {
        n->i[0] = n->i[1] = -1;
        n->i[2] = x2->dtype;
        if (lt__node_needs(n, 1)) {
            n->i[0] = n->n_saved;
            LT_TRY_GOTO(lt__node_save(n, x2), done);
        }
        if (lt__node_needs(n, 0)) {
            n->i[1] = n->n_saved;
            LT_TRY_GOTO(lt__node_save(n, w2), done);
        }
    }
    *out = y;
    y = NULL;
done: /* on success y is NULL here; everything else is a temporary */
    lt__drop(xc);
    lt__drop(wc);
    lt__drop(x2);
    lt__drop(w2);
    lt__drop(y2);
    lt__drop(y);
    return st;
}
