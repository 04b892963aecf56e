/* lt_matmul: batched matrix products with NumPy broadcasting of the leading dims, forward and backward.
 * Transposes and strided views reach the backend's gemm as flags and strides; an operand is copied only when no BLAS
 * layout can read its matrices in place.
 *
 * bf16. Two bf16 operands give a bf16 output (the gemm accumulates in f32 and rounds once). Under autocast (f32
 * operands on a GPU) the operands are rounded to bf16 first and the output is f32. Either way the node saves the bf16
 * operands, and its backward rounds gy to bf16 when it is not, multiplies into f32, reduces broadcast batches in f32,
 * and converts each gradient to its input's dtype (f32 under autocast, bf16 for bf16 inputs). */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"
#include "ops/autocast.h"

static const char *const fn = "lt_matmul";

/* Whether BLAS (and cuBLAS) can read the matrix in t's last two dims in place: one dim has unit stride (or size 1)
 * and the other's stride is a valid leading dimension. The CPU gemm makes the same choice. */
static bool blas_readable(const lt_tensor *t) {
    int nd = t->ndim;
    int64_t r = t->shape[nd - 2], c = t->shape[nd - 1], rs = t->strides[nd - 2], cs = t->strides[nd - 1];
    if ((cs == 1 || c == 1) && (r == 1 || rs >= (c > 1 ? c : 1))) return true;
    return (rs == 1 || r == 1) && (c == 1 || cs >= (r > 1 ? r : 1));
}

/* A new tensor (the caller drops it) that BLAS reads: a view of t when BLAS can read t in place, else a contiguous
 * copy. */
static lt_status readable_operand(const lt_tensor *t, lt_tensor **out) {
    if (blas_readable(t)) return lt__tensor_view_of(t, t->shape, t->strides, t->ndim, t->offset, out);
    LT_TRY(lt__tensor_alloc(fn, t->shape, t->ndim, t->dtype, t->storage->device, out));
    return lt__backend_of(t)->copy(*out, t);
}

/* The stride of batch dim i (of nb) of t once broadcast: 0 where t lacks the dim or has size 1 there. */
static int64_t batch_stride(const lt_tensor *t, int i, int nb) {
    int j = i - (nb - (t->ndim - 2));
    return j < 0 || t->shape[j] == 1 ? 0 : t->strides[j];
}

/* A [count, rows, cols] view of t's last dim at element offset `offset`, with batch stride bs and row stride rs. */
static lt_status view3(const lt_tensor *t, int64_t count, int64_t bs, int64_t rows, int64_t rs, int64_t offset,
                       lt_tensor **out) {
    int nd = t->ndim;
    int64_t shape[3] = {count, rows, t->shape[nd - 1]};
    int64_t strides[3] = {bs, rs, t->strides[nd - 1]};
    return lt__tensor_view_of(t, shape, strides, 3, offset, out);
}

static lt_status gemm3(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, lt_tensor *y, int64_t count,
                       const int64_t off[3], const int64_t bs[3], bool fold) {
    int64_t m = y->shape[y->ndim - 2], n = y->shape[y->ndim - 1];
    int64_t ar = a->shape[a->ndim - 2], ars = a->strides[a->ndim - 2];
    int64_t br = b->shape[b->ndim - 2], brs = b->strides[b->ndim - 2];
    lt_tensor *va = NULL, *vb = NULL, *vc = NULL;
    lt_status st;
    if (fold) { /* b is shared by every batch and a's rows chain across batches: one [count * rows, k] product */
        LT_TRY_GOTO(view3(a, 1, 0, count * ar, ar == 1 ? bs[0] : ars, off[0], &va), done);
        LT_TRY_GOTO(view3(b, 1, 0, br, brs, off[1], &vb), done);
        LT_TRY_GOTO(view3(y, 1, 0, count * m, n, off[2], &vc), done);
    } else {
        LT_TRY_GOTO(view3(a, count, bs[0], ar, ars, off[0], &va), done);
        LT_TRY_GOTO(view3(b, count, bs[1], br, brs, off[1], &vb), done);
        LT_TRY_GOTO(view3(y, count, m * n, m, n, off[2], &vc), done);
    }
    st = lt__backend_of(y)->gemm(va, vb, ta, tb, 1.0, 0.0, NULL, NULL, vc);
done:
    lt__drop(va);
    lt__drop(vb);
    lt__drop(vc);
    return st;
}

/* y[batch] = op(a[batch]) @ op(b[batch]) over y's broadcast batch dims. Size-1 batch dims are dropped, the longest
 * run of trailing batch dims that every operand walks with one stride becomes the gemm's batch, and the remaining
 * outer dims are iterated here. */
static lt_status matmul_run(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, lt_tensor *y) {
    int nb = y->ndim - 2, k = 0;
    int64_t shape[LT_MAX_DIMS], s[3][LT_MAX_DIMS];
    for (int i = 0; i < nb; i++) {
        if (y->shape[i] == 1) continue;
        shape[k] = y->shape[i];
        s[0][k] = batch_stride(a, i, nb);
        s[1][k] = batch_stride(b, i, nb);
        s[2][k] = y->strides[i];
        k++;
    }
    int g = k; /* dims [g, k) form the gemm's batch */
    while (g > 0) {
        bool linear = true;
        for (int x = 0; x < 3 && g < k; x++) linear = linear && s[x][g - 1] == s[x][g] * shape[g];
        if (!linear) break;
        g--;
    }
    int64_t count = 1, bs[3] = {0, 0, 0};
    for (int d = g; d < k; d++) count *= shape[d];
    for (int x = 0; x < 3 && g < k; x++) bs[x] = s[x][k - 1];
    /* Folding the batch into a's rows turns many small products against one shared b (a linear layer on [B, T, C])
     * into a single large one, which BLAS runs far faster. It needs a row-major a whose rows chain across batches. */
    int64_t am = a->shape[a->ndim - 2], ak = a->shape[a->ndim - 1];
    int64_t ars = am == 1 ? bs[0] : a->strides[a->ndim - 2], acs = a->strides[a->ndim - 1];
    bool fold =
        count > 1 && bs[1] == 0 && !ta && (acs == 1 || ak == 1) && bs[0] == ars * am && ars >= (ak > 1 ? ak : 1);
    int64_t idx[LT_MAX_DIMS] = {0}, outer = 1;
    for (int d = 0; d < g; d++) outer *= shape[d];
    for (int64_t o = 0; o < outer; o++) {
        int64_t off[3] = {a->offset, b->offset, y->offset};
        for (int d = 0; d < g; d++)
            for (int x = 0; x < 3; x++) off[x] += idx[d] * s[x][d];
        LT_TRY(gemm3(a, b, ta, tb, y, count, off, bs, fold));
        for (int d = g - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    return LT_OK;
}

/* f32, f64 or bf16, both the same, on one device. */
static lt_status check_operand(const char *arg, const lt_tensor *t) {
    LT_TRY(lt__check_tensor(fn, arg, t));
    if (t->dtype != LT_F32 && t->dtype != LT_F64 && t->dtype != LT_BF16)
        return lt__err(LT_ERR_DTYPE, "%s: %s has dtype %s, expected f32, f64 or bf16", fn, arg,
                       lt_dtype_name(t->dtype));
    return LT_OK;
}

static lt_status check_dtypes(const lt_tensor *a, const lt_tensor *b) {
    LT_TRY(check_operand("a", a));
    LT_TRY(check_operand("b", b));
    LT_TRY(lt__check_same_dtype(fn, a, b));
    return lt__check_same_device(fn, a, b);
}

/* Checks a's and b's shapes and computes y's: the broadcast batch dims, then [M, N]. */
static lt_status matmul_shape(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, int64_t *shape, int *ndim) {
    char sa[LT_SHAPE_STR_LEN], sb[LT_SHAPE_STR_LEN];
    lt__fmt_shape(sa, sizeof sa, a->shape, a->ndim);
    lt__fmt_shape(sb, sizeof sb, b->shape, b->ndim);
    if (a->ndim < 2 || b->ndim < 2)
        return lt__err(LT_ERR_SHAPE, "%s: both operands need at least 2 dims (a is %s, b is %s)", fn, sa, sb);
    int64_t m = a->shape[a->ndim - (ta ? 1 : 2)], ka = a->shape[a->ndim - (ta ? 2 : 1)];
    int64_t kb = b->shape[b->ndim - (tb ? 1 : 2)], n = b->shape[b->ndim - (tb ? 2 : 1)];
    if (ka != kb)
        return lt__err(LT_ERR_SHAPE, "%s: inner dims differ (a is %s%s, b is %s%s)", fn, sa, ta ? " transposed" : "",
                       sb, tb ? " transposed" : "");
    int na = a->ndim - 2, nb = b->ndim - 2;
    int nbatch = na > nb ? na : nb;
    for (int i = 0; i < nbatch; i++) {
        int64_t x = i < nbatch - na ? 1 : a->shape[i - (nbatch - na)];
        int64_t z = i < nbatch - nb ? 1 : b->shape[i - (nbatch - nb)];
        if (x != z && x != 1 && z != 1)
            return lt__err(LT_ERR_SHAPE, "%s: batch dims do not broadcast (a is %s, b is %s)", fn, sa, sb);
    }
    LT_TRY(lt__broadcast_shape(fn, a->shape, na, b->shape, nb, shape, &nbatch));
    shape[nbatch] = m;
    shape[nbatch + 1] = n;
    *ndim = nbatch + 2;
    return LT_OK;
}

/* y = op(a) @ op(b) as a new tensor of the given dtype, recording nothing; a and b have passed check_dtypes. *ua and
 * *ub receive the operands the gemm read (views of a and b, or BLAS-readable copies): new tensors the caller drops,
 * as it drops *out on failure. */
static lt_status product(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, lt_dtype dtype, lt_tensor **out,
                         lt_tensor **ua, lt_tensor **ub) {
    *out = *ua = *ub = NULL;
    int64_t shape[LT_MAX_DIMS];
    int ndim = 0;
    LT_TRY(matmul_shape(a, b, ta, tb, shape, &ndim));
    LT_TRY(readable_operand(a, ua));
    LT_TRY(readable_operand(b, ub));
    LT_TRY(lt__tensor_alloc(fn, shape, ndim, dtype, a->storage->device, out));
    if (lt__numel(shape, ndim) > 0) LT_TRY(matmul_run(*ua, *ub, ta, tb, *out));
    return LT_OK;
}

static lt_status matmul_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx);

/* Saved-slot layout of the node: i[0], i[1] the trans flags; i[2], i[3] the slots of a and b, or -1 when the
 * backward does not need them (a is needed only for gb, b only for ga); i[4] the dtype the product computed in
 * (bf16 under autocast or for bf16 inputs): the backward's choice, whatever autocast says when it runs. */
static lt_status matmul_record(const lt_tensor *a, const lt_tensor *b, const lt_tensor *ua, const lt_tensor *ub,
                               bool ta, bool tb, lt_tensor *y) {
    lt_node *n;
    LT_TRY(lt__record(fn, matmul_backward, y, (const lt_tensor *[]){a, b}, 2, &n));
    if (!n) return LT_OK;
    n->i[0] = ta;
    n->i[1] = tb;
    n->i[2] = n->i[3] = -1;
    n->i[4] = ua->dtype;
    if (lt__node_needs(n, 1)) {
        n->i[2] = n->n_saved;
        LT_TRY(lt__node_save(n, ua));
    }
    if (lt__node_needs(n, 0)) {
        n->i[3] = n->n_saved;
        LT_TRY(lt__node_save(n, ub));
    }
    return LT_OK;
}

LT_API lt_status lt_matmul(const lt_tensor *a, const lt_tensor *b, bool trans_a, bool trans_b, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(check_dtypes(a, b));
    int64_t shape[LT_MAX_DIMS];
    int ndim;
    LT_TRY(matmul_shape(a, b, trans_a, trans_b, shape, &ndim)); /* before converting anything */
    lt_tensor *ca = NULL, *cb = NULL, *ua = NULL, *ub = NULL, *y = NULL;
    const lt_tensor *pa = a, *pb = b;
    lt_dtype dtype = a->dtype;
    lt_status st;
    if (lt__autocast_active((const lt_tensor *[]){a, b}, 2)) { /* bf16 operands, f32 output */
        LT_TRY_GOTO(lt__convert(fn, a, LT_BF16, &ca), done);
        LT_TRY_GOTO(lt__convert(fn, b, LT_BF16, &cb), done);
        pa = ca;
        pb = cb;
    }
    LT_TRY_GOTO(product(pa, pb, trans_a, trans_b, dtype, &y, &ua, &ub), done);
    LT_TRY_GOTO(matmul_record(a, b, ua, ub, trans_a, trans_b, y), done);
    *out = y;
    y = NULL;
done: /* on success y is NULL here; everything else is a temporary */
    lt__drop(ca);
    lt__drop(cb);
    lt__drop(ua);
    lt__drop(ub);
    lt__drop(y);
    return st;
}

/* op(x) @ op(z) for the backward, into f32 when the operands are bf16 (so that broadcast batches are summed in f32)
 * and into their dtype otherwise. */
static lt_status grad_product(const lt_tensor *x, const lt_tensor *z, bool tx, bool tz, lt_tensor **out) {
    lt_tensor *ux, *uz;
    lt_status st = product(x, z, tx, tz, x->dtype == LT_BF16 ? LT_F32 : x->dtype, out, &ux, &uz);
    lt__drop(ux);
    lt__drop(uz);
    return st;
}

/* gx: g summed over the batches that input e broadcast, in e's dtype. */
static lt_status finish_grad(const lt_tensor *g, const lt__edge *e, lt_tensor **gx) {
    if (g->dtype == e->dtype) return lt__sum_to(g, e->shape, e->ndim, gx);
    lt_tensor *s;
    LT_TRY(lt__sum_to(g, e->shape, e->ndim, &s));
    return lt__convert(fn, s, e->dtype, gx);
}

/* gb when b is shared by every batch of a: sum over batches of op(a)^T @ gy is one product over a and gy flattened
 * to [batch * M, .], instead of a product per batch and a reduction. Needs a untransposed ([.., M, K]). */
static lt_status shared_b_grad(const lt_node *n, const lt_tensor *a, const lt_tensor *gy, bool tb, lt_tensor **gb) {
    const lt__edge *eb = &n->inputs[1];
    int64_t a2[2] = {-1, a->shape[a->ndim - 1]}, g2[2] = {-1, gy->shape[gy->ndim - 1]};
    lt_tensor *af, *gf, *g, *r;
    LT_TRY(lt_reshape(a, a2, 2, &af));
    LT_TRY(lt_reshape(gy, g2, 2, &gf));
    LT_TRY(tb ? grad_product(gf, af, true, false, &g) : grad_product(af, gf, true, false, &g));
    LT_TRY(lt_reshape(g, eb->shape, eb->ndim, &r));
    if (r->dtype == eb->dtype) {
        *gb = r;
        return LT_OK;
    }
    return lt__convert(fn, r, eb->dtype, gb);
}

/* With op(a) [M, K], op(b) [K, N] and gy [M, N]: d op(a) = gy @ op(b)^T and d op(b) = op(a)^T @ gy; a transposed
 * operand takes the transpose of its gradient, which swaps the product's order. Broadcast batches are summed. */
static lt_status matmul_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    bool ta = n->i[0], tb = n->i[1];
    lt_tensor *g;
    if (gy->dtype != (lt_dtype)n->i[4]) { /* autocast: the f32 gy is rounded to bf16, as the operands were */
        lt_tensor *c;
        LT_TRY(lt__convert(fn, gy, (lt_dtype)n->i[4], &c));
        gy = c;
    }
    if (lt__node_needs(n, 0)) {
        const lt_tensor *b = n->saved[n->i[3]];
        LT_TRY(ta ? grad_product(b, gy, tb, true, &g) : grad_product(gy, b, false, !tb, &g));
        LT_TRY(finish_grad(g, &n->inputs[0], &gx[0]));
    }
    if (lt__node_needs(n, 1)) {
        const lt_tensor *a = n->saved[n->i[2]];
        const lt__edge *eb = &n->inputs[1];
        bool shared_b = !ta && lt__numel(eb->shape, eb->ndim - 2) == 1 && lt__numel(a->shape, a->ndim - 2) > 1;
        if (shared_b) return shared_b_grad(n, a, gy, tb, &gx[1]);
        LT_TRY(tb ? grad_product(gy, a, true, ta, &g) : grad_product(a, gy, !ta, false, &g));
        LT_TRY(finish_grad(g, eb, &gx[1]));
    }
    return LT_OK;
}
