/* Elementwise ops (broadcasting arithmetic, scalar arithmetic, unary functions): argument checks, broadcasting and
 * dispatch to the backend, with each op's backward beside its forward. No element math here: it lives in the
 * backends (src/cpu/elementwise.c is the reference). */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

/* ---- Shared plumbing ---- */

/* What a backward reads, saved in this order (a is the first input, b the second, y the output). */
enum { SAVE_A = 1, SAVE_B = 2, SAVE_Y = 4 };

/* Records y's node when an input needs a gradient: op and s go to n->i[0] and n->f[0], and the tensors named by
 * `save` are saved in the order a, b, y. b is NULL for single-input ops. */
static lt_status record(const char *fn, lt__backward_fn backward, lt_tensor *y, const lt_tensor *a, const lt_tensor *b,
                        unsigned save, int op, double s) {
    const lt_tensor *inputs[2] = {a, b};
    lt_node *n;
    LT_TRY(lt__record(fn, backward, y, inputs, b ? 2 : 1, &n));
    if (!n) return LT_OK;
    n->i[0] = op;
    n->f[0] = s;
    if (save & SAVE_A) LT_TRY(lt__node_save(n, a));
    if (save & SAVE_B) LT_TRY(lt__node_save(n, b));
    if (save & SAVE_Y) LT_TRY(lt__node_save(n, y));
    return LT_OK;
}

/* y = a OP b broadcast; `save` names what `backward` reads. The kernel sees a and b through stack headers
 * broadcast to y's shape, so a call allocates nothing but y and leaves no temporaries in the caller's scope. */
static lt_status binary_op(const char *fn, lt__binary_op op, lt__backward_fn backward, unsigned save,
                           const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    LT_TRY(lt__check_compute_dtype(fn, "b", b));
    LT_TRY(lt__check_same_dtype(fn, a, b));
    LT_TRY(lt__check_same_device(fn, a, b));
    int64_t shape[LT_MAX_DIMS];
    int ndim;
    LT_TRY(lt__broadcast_shape(fn, a->shape, a->ndim, b->shape, b->ndim, shape, &ndim));
    lt_tensor ba, bb;
    LT_TRY(lt__broadcast_header(a, shape, ndim, &ba));
    LT_TRY(lt__broadcast_header(b, shape, ndim, &bb));
    lt_tensor *y;
    LT_TRY(lt__tensor_alloc(fn, shape, ndim, a->dtype, a->storage->device, &y));
    lt_status st = lt__backend_of(a)->binary(op, &ba, &bb, y);
    if (st == LT_OK) st = record(fn, backward, y, a, b, save, (int)op, 0.0);
    if (st != LT_OK) {
        lt__drop(y);
        return st;
    }
    *out = y;
    return LT_OK;
}

/* The gradient g (of the broadcast output's shape) summed down to input i's shape, into gx[i]. */
static lt_status grad_to_input(lt_node *n, int i, const lt_tensor *g, lt_tensor **gx) {
    return lt__sum_to(g, n->inputs[i].shape, n->inputs[i].ndim, &gx[i]);
}

/* y = a OP s; `save` (SAVE_A and/or SAVE_Y) names what `backward` reads. */
static lt_status scalar_op(const char *fn, lt__scalar_op op, lt__backward_fn backward, unsigned save,
                           const lt_tensor *a, double s, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    lt_tensor *y;
    LT_TRY(lt__tensor_alloc(fn, a->shape, a->ndim, a->dtype, a->storage->device, &y));
    lt_status st = lt__backend_of(a)->scalar(op, a, s, y);
    if (st == LT_OK) st = record(fn, backward, y, a, NULL, save, (int)op, s);
    if (st != LT_OK) {
        lt__drop(y);
        return st;
    }
    *out = y;
    return LT_OK;
}

/* What each unary backward reads, following backend.h: the output y for exp, sqrt, rsqrt, tanh and sigmoid (whose
 * derivatives are cheapest from it), the input x for the rest, nothing for neg. The other one is passed as NULL. */
static unsigned unary_saves(lt__unary_op op) {
    switch (op) {
    case LT_UOP_NEG: return 0;
    case LT_UOP_EXP:
    case LT_UOP_SQRT:
    case LT_UOP_RSQRT:
    case LT_UOP_TANH:
    case LT_UOP_SIGMOID: return SAVE_Y;
    default: return SAVE_A;
    }
}

/* gx = gy * f'(x), all in the backend. */
static lt_status unary_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    if (!lt__node_needs(n, 0)) return LT_OK;
    const lt__unary_op op = (lt__unary_op)n->i[0];
    const unsigned save = unary_saves(op);
    const lt_tensor *x = save == SAVE_A ? n->saved[0] : NULL;
    const lt_tensor *y = save == SAVE_Y ? n->saved[0] : NULL;
    lt_tensor *g;
    LT_TRY(
        lt__tensor_alloc(n->name, n->inputs[0].shape, n->inputs[0].ndim, n->inputs[0].dtype, gy->storage->device, &g));
    lt_status st = lt__backend_of(gy)->unary_backward(op, x, y, gy, g);
    if (st != LT_OK) {
        lt__drop(g);
        return st;
    }
    gx[0] = g;
    return LT_OK;
}

static lt_status unary_op(const char *fn, lt__unary_op op, const lt_tensor *a, lt_tensor **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_compute_dtype(fn, "a", a));
    lt_tensor *y;
    LT_TRY(lt__tensor_alloc(fn, a->shape, a->ndim, a->dtype, a->storage->device, &y));
    lt_status st = lt__backend_of(a)->unary(op, a, y);
    if (st == LT_OK) st = record(fn, unary_backward, y, a, NULL, unary_saves(op), (int)op, 0.0);
    if (st != LT_OK) {
        lt__drop(y);
        return st;
    }
    *out = y;
    return LT_OK;
}

/* ---- Broadcasting arithmetic ---- */

/* d(a + b) = gy for both. */
static lt_status add_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    for (int i = 0; i < 2; i++)
        if (lt__node_needs(n, i)) LT_TRY(grad_to_input(n, i, gy, gx));
    return LT_OK;
}

lt_status lt_add(const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    return binary_op("lt_add", LT_BOP_ADD, add_backward, 0, a, b, out);
}

/* d(a - b) = gy, -gy. */
static lt_status sub_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    if (lt__node_needs(n, 0)) LT_TRY(grad_to_input(n, 0, gy, gx));
    if (lt__node_needs(n, 1)) {
        lt_tensor *neg;
        LT_TRY(lt_neg(gy, &neg));
        LT_TRY(grad_to_input(n, 1, neg, gx));
    }
    return LT_OK;
}

lt_status lt_sub(const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    return binary_op("lt_sub", LT_BOP_SUB, sub_backward, 0, a, b, out);
}

/* d(a * b) = gy * b, gy * a. Saved: a, b. */
static lt_status mul_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *a = n->saved[0], *b = n->saved[1];
    lt_tensor *t;
    if (lt__node_needs(n, 0)) {
        LT_TRY(lt_mul(gy, b, &t));
        LT_TRY(grad_to_input(n, 0, t, gx));
    }
    if (lt__node_needs(n, 1)) {
        LT_TRY(lt_mul(gy, a, &t));
        LT_TRY(grad_to_input(n, 1, t, gx));
    }
    return LT_OK;
}

lt_status lt_mul(const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    return binary_op("lt_mul", LT_BOP_MUL, mul_backward, SAVE_A | SAVE_B, a, b, out);
}

/* d(a / b) = gy / b, -gy a / b^2 = -(gy / b) y. Saved: b, y. */
static lt_status div_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *b = n->saved[0], *y = n->saved[1];
    lt_tensor *q, *t;
    LT_TRY(lt_div(gy, b, &q));
    if (lt__node_needs(n, 0)) LT_TRY(grad_to_input(n, 0, q, gx));
    if (lt__node_needs(n, 1)) {
        LT_TRY(lt_mul(q, y, &t));
        LT_TRY(lt_neg(t, &t));
        LT_TRY(grad_to_input(n, 1, t, gx));
    }
    return LT_OK;
}

lt_status lt_div(const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    return binary_op("lt_div", LT_BOP_DIV, div_backward, SAVE_B | SAVE_Y, a, b, out);
}

/* d(a ** b) = gy b a^(b-1), gy y log(a). a^(b-1) rather than y / a keeps a == 0 finite where b >= 1. The gradient
 * for b is NaN where a <= 0, as ops.h documents. Saved: a, b, y. */
static lt_status pow_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const lt_tensor *a = n->saved[0], *b = n->saved[1], *y = n->saved[2];
    lt_tensor *t, *u;
    if (lt__node_needs(n, 0)) {
        LT_TRY(lt_add_scalar(b, -1.0, &t));
        LT_TRY(lt_pow(a, t, &t));
        LT_TRY(lt_mul(t, b, &t));
        LT_TRY(lt_mul(gy, t, &t));
        LT_TRY(grad_to_input(n, 0, t, gx));
    }
    if (lt__node_needs(n, 1)) {
        LT_TRY(lt_log(a, &u));
        LT_TRY(lt_mul(u, y, &u));
        LT_TRY(lt_mul(gy, u, &u));
        LT_TRY(grad_to_input(n, 1, u, gx));
    }
    return LT_OK;
}

lt_status lt_pow(const lt_tensor *a, const lt_tensor *b, lt_tensor **out) {
    return binary_op("lt_pow", LT_BOP_POW, pow_backward, SAVE_A | SAVE_B | SAVE_Y, a, b, out);
}

/* ---- Scalar arithmetic (s is n->f[0]) ---- */

/* d(a + s) = gy. */
static lt_status add_scalar_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    return grad_to_input(n, 0, gy, gx);
}

lt_status lt_add_scalar(const lt_tensor *a, double s, lt_tensor **out) {
    return scalar_op("lt_add_scalar", LT_SOP_ADD, add_scalar_backward, 0, a, s, out);
}

/* d(a * s) = gy s. */
static lt_status mul_scalar_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    return lt_mul_scalar(gy, n->f[0], &gx[0]);
}

lt_status lt_mul_scalar(const lt_tensor *a, double s, lt_tensor **out) {
    return scalar_op("lt_mul_scalar", LT_SOP_MUL, mul_scalar_backward, 0, a, s, out);
}

/* d(a ** s) = gy s a^(s-1); s == 0 gives 0 directly, since 0 * a^-1 would be NaN at a == 0. Saved: a. */
static lt_status pow_scalar_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    const double s = n->f[0];
    if (s == 0.0) return lt_mul_scalar(gy, 0.0, &gx[0]);
    lt_tensor *t;
    LT_TRY(lt_pow_scalar(n->saved[0], s - 1.0, &t));
    LT_TRY(lt_mul_scalar(t, s, &t));
    return lt_mul(gy, t, &gx[0]);
}

lt_status lt_pow_scalar(const lt_tensor *a, double s, lt_tensor **out) {
    return scalar_op("lt_pow_scalar", LT_SOP_POW, pow_scalar_backward, SAVE_A, a, s, out);
}

/* d(s - a) = -gy. */
static lt_status rsub_scalar_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    (void)n;
    return lt_neg(gy, &gx[0]);
}

lt_status lt_rsub_scalar(const lt_tensor *a, double s, lt_tensor **out) {
    return scalar_op("lt_rsub_scalar", LT_SOP_RSUB, rsub_scalar_backward, 0, a, s, out);
}

/* d(s / a) = -gy s a^-2. Saved: a. */
static lt_status rdiv_scalar_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    lt_tensor *t;
    LT_TRY(lt_pow_scalar(n->saved[0], -2.0, &t));
    LT_TRY(lt_mul_scalar(t, -n->f[0], &t));
    return lt_mul(gy, t, &gx[0]);
}

lt_status lt_rdiv_scalar(const lt_tensor *a, double s, lt_tensor **out) {
    return scalar_op("lt_rdiv_scalar", LT_SOP_RDIV, rdiv_scalar_backward, SAVE_A, a, s, out);
}

/* ---- Unary functions (backward: unary_backward above) ---- */

lt_status lt_neg(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_neg", LT_UOP_NEG, a, out); }
lt_status lt_exp(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_exp", LT_UOP_EXP, a, out); }
lt_status lt_log(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_log", LT_UOP_LOG, a, out); }
lt_status lt_sqrt(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_sqrt", LT_UOP_SQRT, a, out); }
lt_status lt_rsqrt(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_rsqrt", LT_UOP_RSQRT, a, out); }
lt_status lt_tanh(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_tanh", LT_UOP_TANH, a, out); }
lt_status lt_sigmoid(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_sigmoid", LT_UOP_SIGMOID, a, out); }
lt_status lt_relu(const lt_tensor *a, lt_tensor **out) { return unary_op("lt_relu", LT_UOP_RELU, a, out); }

lt_status lt_gelu(const lt_tensor *a, lt_gelu_approx approx, lt_tensor **out) {
    static const char *fn = "lt_gelu";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    if (approx != LT_GELU_TANH && approx != LT_GELU_ERF)
        return lt__err(LT_ERR_ARG, "%s: approx is %d, not LT_GELU_TANH or LT_GELU_ERF", fn, (int)approx);
    return unary_op(fn, approx == LT_GELU_TANH ? LT_UOP_GELU_TANH : LT_UOP_GELU_ERF, a, out);
}
