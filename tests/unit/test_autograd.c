/* Unit tests of the autograd engine through the view ops: finite-difference gradient checks of every view, and the
 * engine's semantics (accumulation, zero_grad, no-grad mode, detach, consumed graphs, error paths, diamonds, a
 * 100000-node chain, no leaks). Everything runs on core kernels except where a test says which op family it needs. */
#include "test.h"

#define SENTINEL ((lt_tensor *)&tt_sentinel)

static size_t bytes_in_use(void) {
    lt_alloc_stats s = {.struct_size = sizeof s};
    if (lt_alloc_get_stats(LT_DEVICE_CPU, &s) != LT_OK) abort();
    return s.bytes_in_use;
}

/* The gradient of x as f64 values (malloc'd), or NULL when x has none. */
static double *grad_values(const lt_tensor *x) {
    lt_tensor *g = NULL;
    if (lt_tensor_grad(x, &g) != LT_OK || g == NULL) return NULL;
    return tt_values(g);
}

/* ---- Gradient checks through each view op (f64, central differences) ---- */

static lt_status f_reshape(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_reshape(in[0], (int64_t[]){2, -1}, 2, out);
}

static lt_status f_reshape_copy(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    lt_tensor *t;
    lt_status st = lt_transpose(in[0], 0, 1, &t); /* not viewable as flat: the copy path */
    return st != LT_OK ? st : lt_reshape(t, (int64_t[]){12}, 1, out);
}

static lt_status f_view(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_view(in[0], (int64_t[]){6, 4}, 2, out);
}

static lt_status f_permute(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_permute(in[0], (int[]){1, 2, 0}, out);
}

static lt_status f_transpose(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_transpose(in[0], -1, 0, out);
}

static lt_status f_slice(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    lt_tensor *t;
    lt_status st = lt_slice(in[0], 1, -4, 5, 2, &t);        /* columns 1, 3 of 5 */
    return st != LT_OK ? st : lt_slice(t, 0, 1, 6, 2, out); /* rows 1, 3, 5 of 6 */
}

static lt_status f_expand(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_expand(in[0], (int64_t[]){2, 3, 4}, 3, out); /* [3, 1]: a new leading dim and a broadcast one */
}

static lt_status f_contiguous(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    lt_tensor *t;
    lt_status st = lt_transpose(in[0], 0, 1, &t);
    return st != LT_OK ? st : lt_contiguous(t, out);
}

static lt_status f_to(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_tensor_to(in[0], LT_F64, LT_DEVICE_CPU, out);
}

/* reshape -> permute -> slice -> contiguous -> view: five nodes, three kinds of backward */
static lt_status f_chain(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    lt_tensor *a, *b, *c, *d;
    lt_status st = lt_reshape(in[0], (int64_t[]){2, 3, 4}, 3, &a);
    if (st == LT_OK) st = lt_permute(a, (int[]){2, 0, 1}, &b);
    if (st == LT_OK) st = lt_slice(b, 0, 1, 4, 2, &c);
    if (st == LT_OK) st = lt_contiguous(c, &d);
    return st != LT_OK ? st : lt_view(d, (int64_t[]){-1}, 1, out);
}

static void gradcheck1(const char *what, tt_fn f, const int64_t *shape, int ndim) {
    lt_tensor *x = tt_leaf(shape, ndim, -2, 2);
    CHECK(tt_gradcheck(what, f, NULL, &x, 1));
}

static void test_gradcheck_reshape(void) {
    tt_seed(201);
    gradcheck1("reshape", f_reshape, (int64_t[]){3, 4}, 2);
    gradcheck1("reshape (copy)", f_reshape_copy, (int64_t[]){3, 4}, 2);
}

static void test_gradcheck_view(void) {
    tt_seed(202);
    gradcheck1("view", f_view, (int64_t[]){2, 3, 4}, 3);
}

static void test_gradcheck_permute(void) {
    tt_seed(203);
    gradcheck1("permute", f_permute, (int64_t[]){2, 3, 4}, 3);
}

static void test_gradcheck_transpose(void) {
    tt_seed(204);
    gradcheck1("transpose", f_transpose, (int64_t[]){3, 5}, 2);
}

static void test_gradcheck_slice(void) {
    tt_seed(205);
    gradcheck1("slice", f_slice, (int64_t[]){6, 5}, 2);
}

/* lt_expand's backward sums over the broadcast dims: it needs the reduce kernel family (src/cpu/reduce.c). */
static void test_gradcheck_expand(void) {
    tt_seed(206);
    gradcheck1("expand", f_expand, (int64_t[]){3, 1}, 2);
}

static void test_gradcheck_contiguous(void) {
    tt_seed(207);
    gradcheck1("contiguous", f_contiguous, (int64_t[]){4, 3}, 2);
}

static void test_gradcheck_to(void) {
    tt_seed(208);
    gradcheck1("to f64", f_to, (int64_t[]){2, 5}, 2);
}

static void test_gradcheck_chain(void) {
    tt_seed(209);
    gradcheck1("view chain", f_chain, (int64_t[]){24}, 1);
}

/* ---- Engine semantics ---- */

static void test_backward_values(void) {
    /* slice + reshape to a scalar loss: the gradient is one-hot, checked exactly */
    tt_seed(210);
    lt_tensor *x = tt_leaf((int64_t[]){2, 3}, 2, -1, 1), *s = NULL, *loss = NULL;
    CHECK_OK(lt_slice(x, 1, 2, 3, 1, &s));    /* [2, 1] */
    CHECK_OK(lt_slice(s, 0, 1, 2, 1, &loss)); /* [1, 1] = x[1][2] */
    CHECK_OK(lt_reshape(loss, NULL, 0, &loss));
    CHECK(lt_tensor_requires_grad(loss) && lt_tensor_ndim(loss) == 0);
    CHECK_OK(lt_backward(loss));
    double *g = grad_values(x);
    CHECK(g != NULL);
    if (g) CHECK(tt_close("one-hot grad", g, (double[]){0, 0, 0, 0, 0, 1}, 6, 0, 0));
    free(g);
    /* a leaf that is itself the loss, and a leaf given an upstream gradient directly */
    lt_tensor *y = tt_leaf(NULL, 0, 1, 2), *z = tt_leaf((int64_t[]){3}, 1, -1, 1), *gz = NULL;
    CHECK_OK(lt_backward(y));
    g = grad_values(y);
    CHECK(g && g[0] == 1.0);
    free(g);
    gz = tt_rand((int64_t[]){3}, 1, LT_F64, -1, 1);
    double *gzv = tt_values(gz);
    CHECK_OK(lt_backward_grad(z, gz));
    g = grad_values(z);
    CHECK(g && tt_close("leaf grad", g, gzv, 3, 0, 0));
    free(g);
    free(gzv);
    /* gradients never exist for non-leaves */
    lt_tensor *gs = SENTINEL;
    CHECK_OK(lt_tensor_grad(s, &gs));
    CHECK(gs == NULL);
}

static void test_requires_grad_propagation(void) {
    lt_tensor *x = tt_leaf((int64_t[]){4}, 1, -1, 1), *c = tt_rand((int64_t[]){4}, 1, LT_F64, -1, 1);
    lt_tensor *a = NULL, *b = NULL, *i = NULL;
    CHECK(lt_tensor_requires_grad(x) && !lt_tensor_requires_grad(c));
    CHECK_OK(lt_reshape(x, (int64_t[]){2, 2}, 2, &a));
    CHECK_OK(lt_reshape(c, (int64_t[]){2, 2}, 2, &b));
    CHECK(lt_tensor_requires_grad(a) && !lt_tensor_requires_grad(b));
    /* conversion to an integer dtype is not differentiable */
    CHECK_OK(lt_tensor_to(x, LT_I32, LT_DEVICE_CPU, &i));
    CHECK(!lt_tensor_requires_grad(i));
    /* a leaf can stop requiring grad */
    CHECK_OK(lt_tensor_set_requires_grad(x, false));
    CHECK_OK(lt_reshape(x, (int64_t[]){2, 2}, 2, &a));
    CHECK(!lt_tensor_requires_grad(a) && !lt_tensor_requires_grad(x));
    /* every float dtype may require grad */
    lt_dtype fl[4] = {LT_F32, LT_F64, LT_BF16, LT_F16};
    for (int k = 0; k < 4; k++) {
        lt_tensor *t = NULL;
        CHECK_OK(lt_tensor_zeros((int64_t[]){2}, 1, fl[k], LT_DEVICE_CPU, &t));
        CHECK_OK(lt_tensor_set_requires_grad(t, true));
        CHECK(lt_tensor_requires_grad(t));
    }
}

static void test_to_backward_dtypes(void) {
    /* f64 -> f32 and f32 -> bf16: the gradient comes back in the input's dtype */
    tt_seed(211);
    lt_tensor *x = tt_leaf((int64_t[]){2, 3}, 2, -1, 1), *y = NULL;
    CHECK_OK(lt_tensor_to(x, LT_F32, LT_DEVICE_CPU, &y));
    CHECK(lt_tensor_requires_grad(y) && lt_tensor_dtype(y) == LT_F32);
    lt_tensor *g = tt_rand((int64_t[]){2, 3}, 2, LT_F32, -1, 1), *xg = NULL;
    double *gv = tt_values(g);
    CHECK_OK(lt_backward_grad(y, g));
    CHECK_OK(lt_tensor_grad(x, &xg));
    CHECK(xg && lt_tensor_dtype(xg) == LT_F64);
    if (xg) CHECK(tt_tensor_close("to f32 backward", xg, gv, 0, 0));
    free(gv);
    lt_tensor *w = tt_rand((int64_t[]){5}, 1, LT_F32, -1, 1), *wb = NULL, *gb = NULL, *wg = NULL;
    CHECK_OK(lt_tensor_set_requires_grad(w, true));
    CHECK_OK(lt_tensor_to(w, LT_BF16, LT_DEVICE_CPU, &wb));
    gb = tt_rand((int64_t[]){5}, 1, LT_BF16, -1, 1);
    double *gbv = tt_values(gb);
    CHECK_OK(lt_backward_grad(wb, gb));
    CHECK_OK(lt_tensor_grad(w, &wg));
    CHECK(wg && lt_tensor_dtype(wg) == LT_F32);
    if (wg) CHECK(tt_tensor_close("to bf16 backward", wg, gbv, 0, 0));
    free(gbv);
}

/* A second backward adds to the leaf's gradient: grad += g runs the binary kernel (src/cpu/elementwise.c). */
static void test_grad_accumulates(void) {
    tt_seed(212);
    lt_tensor *x = tt_leaf((int64_t[]){2, 3}, 2, -1, 1), *a = NULL, *b = NULL;
    lt_tensor *g1 = tt_rand((int64_t[]){3, 2}, 2, LT_F64, -1, 1), *g2 = tt_rand((int64_t[]){6}, 1, LT_F64, -1, 1);
    double *g1v = tt_values(g1), *g2v = tt_values(g2), ref[6];
    CHECK_OK(lt_transpose(x, 0, 1, &a));
    CHECK_OK(lt_backward_grad(a, g1));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) ref[i * 3 + j] = g1v[j * 2 + i];
    double *g = grad_values(x);
    CHECK(g && tt_close("first backward", g, ref, 6, 0, 0));
    free(g);
    CHECK_OK(lt_reshape(x, (int64_t[]){6}, 1, &b));
    CHECK_OK(lt_backward_grad(b, g2));
    for (int i = 0; i < 6; i++) ref[i] += g2v[i];
    g = grad_values(x);
    CHECK(g && tt_close("accumulated", g, ref, 6, 1e-15, 0));
    free(g);
    free(g1v);
    free(g2v);
}

static void test_zero_grad(void) {
    tt_seed(213);
    lt_tensor *x = tt_leaf((int64_t[]){4}, 1, -1, 1), *gx = SENTINEL, *y = NULL;
    CHECK_OK(lt_tensor_grad(x, &gx));
    CHECK(gx == NULL);
    CHECK_OK(lt_tensor_zero_grad(x)); /* nothing to zero yet */
    CHECK_OK(lt_tensor_grad(x, &gx));
    CHECK(gx == NULL);
    lt_tensor *g = tt_rand((int64_t[]){2, 2}, 2, LT_F64, 1, 2);
    CHECK_OK(lt_reshape(x, (int64_t[]){2, 2}, 2, &y));
    CHECK_OK(lt_backward_grad(y, g));
    CHECK_OK(lt_tensor_grad(x, &gx));
    CHECK(gx != NULL);
    if (!gx) return;
    void *mem = lt_tensor_data(gx);
    double *before = tt_values(gx);
    CHECK(before[0] >= 1 && before[3] >= 1);
    free(before);
    CHECK_OK(lt_tensor_zero_grad(x));
    lt_tensor *gx2 = NULL;
    CHECK_OK(lt_tensor_grad(x, &gx2));
    CHECK(gx2 && lt_tensor_data(gx2) == mem); /* same memory */
    if (gx2) CHECK(tt_tensor_close("zeroed", gx2, (double[]){0, 0, 0, 0}, 0, 0));
    CHECK_ERR(lt_tensor_zero_grad(NULL), LT_ERR_ARG, "lt_tensor_zero_grad");
    lt_tensor *out = SENTINEL;
    CHECK_ERR(lt_tensor_grad(NULL, &out), LT_ERR_ARG, "lt_tensor_grad");
    CHECK(out == NULL);
    CHECK_ERR(lt_tensor_grad(x, NULL), LT_ERR_ARG, "lt_tensor_grad");
}

static void test_no_grad(void) {
    lt_tensor *x = tt_leaf((int64_t[]){2, 3}, 2, -1, 1), *y = NULL;
    CHECK(lt_grad_enabled());
    lt_no_grad_begin();
    CHECK(!lt_grad_enabled());
    CHECK_OK(lt_transpose(x, 0, 1, &y));
    CHECK(!lt_tensor_requires_grad(y));
    CHECK_ERR(lt_backward_grad(y, y), LT_ERR_ARG, "lt_backward_grad");
    lt_no_grad_begin(); /* nested */
    lt_no_grad_end();
    CHECK(!lt_grad_enabled());
    CHECK_OK(lt_tensor_to(x, LT_F32, LT_DEVICE_CPU, &y));
    CHECK(!lt_tensor_requires_grad(y));
    lt_no_grad_end();
    CHECK(lt_grad_enabled());
    CHECK_OK(lt_transpose(x, 0, 1, &y));
    CHECK(lt_tensor_requires_grad(y));
    /* an unmatched end is ignored: it does not make the next begin a no-op */
    lt_no_grad_end();
    lt_no_grad_end();
    CHECK(lt_grad_enabled());
    lt_no_grad_begin();
    CHECK(!lt_grad_enabled());
    lt_no_grad_end();
    CHECK(lt_grad_enabled());
}

static void test_detach_cuts_graph(void) {
    tt_seed(214);
    lt_tensor *x = tt_leaf((int64_t[]){4}, 1, -1, 1), *v = NULL, *d = NULL, *y = NULL;
    CHECK_OK(lt_reshape(x, (int64_t[]){2, 2}, 2, &v));
    CHECK_OK(lt_detach(v, &d));
    CHECK(!lt_tensor_requires_grad(d));
    CHECK_OK(lt_transpose(d, 0, 1, &y));
    CHECK(!lt_tensor_requires_grad(y));
    /* the detached tensor is a leaf: it may require grad itself, and backward stops there */
    CHECK_OK(lt_tensor_set_requires_grad(d, true));
    CHECK_OK(lt_transpose(d, 0, 1, &y));
    lt_tensor *g = tt_rand((int64_t[]){2, 2}, 2, LT_F64, -1, 1);
    double *gv = tt_values(g);
    CHECK_OK(lt_backward_grad(y, g));
    double *dg = grad_values(d), *xg = grad_values(x);
    CHECK(dg && tt_close("detached leaf grad", dg, (double[]){gv[0], gv[2], gv[1], gv[3]}, 4, 0, 0));
    CHECK(xg == NULL);
    free(dg);
    free(xg);
    free(gv);
}

static void test_backward_errors(void) {
    tt_seed(215);
    lt_tensor *x = tt_leaf((int64_t[]){3}, 1, -1, 1), *s = NULL, *loss = NULL, *col = NULL;
    CHECK_OK(lt_slice(x, 0, 0, 1, 1, &s));
    CHECK_OK(lt_reshape(s, NULL, 0, &loss));
    CHECK_OK(lt_backward(loss));
    /* the graph is consumed: a second backward through it fails and leaves the gradient alone */
    CHECK_ERR(lt_backward(loss), LT_ERR_STATE, "lt_backward");
    lt_tensor *one = NULL;
    CHECK_OK(lt_tensor_ones(NULL, 0, LT_F64, LT_DEVICE_CPU, &one));
    CHECK_ERR(lt_backward_grad(loss, one), LT_ERR_STATE, "lt_backward_grad");
    double *g = grad_values(x);
    CHECK(g && tt_close("grad after failed backward", g, (double[]){1, 0, 0}, 3, 0, 0));
    free(g);
    /* a branch that shares the consumed node is consumed too */
    lt_tensor *s2 = NULL;
    CHECK_OK(lt_reshape(s, (int64_t[]){1, 1}, 2, &s2));
    CHECK_ERR(lt_backward(s2), LT_ERR_STATE, "lt_backward");

    /* not a scalar; not requiring grad; NULL (on a fresh leaf, so that the last backward is a first one) */
    lt_tensor *x2 = tt_leaf((int64_t[]){3}, 1, -1, 1);
    CHECK_OK(lt_reshape(x2, (int64_t[]){3, 1}, 2, &col));
    CHECK_ERR(lt_backward(col), LT_ERR_SHAPE, "lt_backward");
    lt_tensor *c = NULL;
    CHECK_OK(lt_tensor_ones(NULL, 0, LT_F64, LT_DEVICE_CPU, &c));
    CHECK_ERR(lt_backward(c), LT_ERR_ARG, "lt_backward");
    CHECK_ERR(lt_backward(NULL), LT_ERR_ARG, "lt_backward");

    /* lt_backward_grad: grad shape and dtype must match out's */
    lt_tensor *g3 = NULL, *g13 = NULL, *g31 = NULL, *g31f = NULL;
    CHECK_OK(lt_tensor_ones((int64_t[]){3}, 1, LT_F64, LT_DEVICE_CPU, &g3));
    CHECK_OK(lt_tensor_ones((int64_t[]){1, 3}, 2, LT_F64, LT_DEVICE_CPU, &g13));
    CHECK_OK(lt_tensor_ones((int64_t[]){3, 1}, 2, LT_F64, LT_DEVICE_CPU, &g31));
    CHECK_OK(lt_tensor_ones((int64_t[]){3, 1}, 2, LT_F32, LT_DEVICE_CPU, &g31f));
    CHECK_ERR(lt_backward_grad(col, g3), LT_ERR_SHAPE, "lt_backward_grad");
    CHECK_ERR(lt_backward_grad(col, g13), LT_ERR_SHAPE, "lt_backward_grad");
    lt_status st = lt_backward_grad(col, g31f); /* tensor.h names no status for a dtype mismatch; either is fair */
    CHECK(st == LT_ERR_SHAPE || st == LT_ERR_DTYPE);
    CHECK(strstr(lt_last_error(), "lt_backward_grad") != NULL);
    CHECK_ERR(lt_backward_grad(col, NULL), LT_ERR_ARG, "lt_backward_grad");
    CHECK_ERR(lt_backward_grad(NULL, g31), LT_ERR_ARG, "lt_backward_grad");
    CHECK_ERR(lt_backward_grad(c, c), LT_ERR_ARG, "lt_backward_grad");
    /* none of the failures consumed the graph of col */
    CHECK_OK(lt_backward_grad(col, g31));
    double *g2 = grad_values(x2);
    CHECK(g2 && tt_close("grad after failed calls", g2, (double[]){1, 1, 1}, 3, 0, 0));
    free(g2);
}

static void test_set_requires_grad_errors(void) {
    const char *fn = "lt_tensor_set_requires_grad";
    lt_tensor *i = NULL, *u = NULL, *x = tt_leaf((int64_t[]){4}, 1, -1, 1), *v = NULL;
    CHECK_OK(lt_tensor_zeros((int64_t[]){4}, 1, LT_I32, LT_DEVICE_CPU, &i));
    CHECK_OK(lt_tensor_zeros((int64_t[]){4}, 1, LT_U8, LT_DEVICE_CPU, &u));
    CHECK_ERR(lt_tensor_set_requires_grad(i, true), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_tensor_set_requires_grad(u, true), LT_ERR_DTYPE, fn);
    CHECK(!lt_tensor_requires_grad(i));
    CHECK_OK(lt_tensor_set_requires_grad(i, false));
    CHECK_OK(lt_reshape(x, (int64_t[]){2, 2}, 2, &v));
    CHECK_ERR(lt_tensor_set_requires_grad(v, false), LT_ERR_ARG, fn);
    CHECK_ERR(lt_tensor_set_requires_grad(v, true), LT_ERR_ARG, fn);
    CHECK(lt_tensor_requires_grad(v));
    CHECK_ERR(lt_tensor_set_requires_grad(NULL, true), LT_ERR_ARG, fn);
}

static lt_status f_diamond(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    lt_tensor *v, *a, *t1, *t2, *b;
    lt_status st = lt_reshape(in[0], (int64_t[]){3, 2}, 2, &v);
    if (st == LT_OK) st = lt_transpose(v, 0, 1, &a); /* a short path: one node */
    if (st == LT_OK) st = lt_transpose(v, 0, 1, &t1);
    if (st == LT_OK) st = lt_transpose(t1, 1, 0, &t2);
    if (st == LT_OK) st = lt_reshape(t2, (int64_t[]){2, 3}, 2, &b); /* a long path: three nodes */
    return st != LT_OK ? st : lt_add(a, b, out);
}

/* x -> v, then two paths of different lengths joined by lt_add: v's node must wait for both contributions.
 * The join and the sum of contributions need the elementwise family (src/cpu/elementwise.c). */
static void test_diamond(void) {
    tt_seed(216);
    lt_tensor *x = tt_leaf((int64_t[]){2, 3}, 2, -1, 1), *y = NULL;
    CHECK_OK(f_diamond(NULL, &x, &y));
    lt_tensor *g = tt_rand((int64_t[]){2, 3}, 2, LT_F64, -1, 1);
    double *gv = tt_values(g), ref[6];
    CHECK_OK(lt_backward_grad(y, g));
    /* v[i][j] = x_flat[2i + j]; a[p][q] = v[q][p]; b_flat = v_flat */
    for (int k = 0; k < 6; k++) ref[k] = gv[(k % 2) * 3 + k / 2] + gv[k];
    double *xg = grad_values(x);
    CHECK(xg && tt_close("diamond", xg, ref, 6, 1e-15, 0));
    free(xg);
    free(gv);
    /* the same input twice in one op */
    lt_tensor *z = tt_leaf((int64_t[]){5}, 1, -1, 1), *zz = NULL, *gz = tt_rand((int64_t[]){5}, 1, LT_F64, -1, 1);
    CHECK_OK(lt_add(z, z, &zz));
    CHECK_OK(lt_backward_grad(zz, gz));
    double *gzv = tt_values(gz), *zg = grad_values(z);
    for (int k = 0; k < 5; k++) ref[k] = 2 * gzv[k];
    CHECK(zg && tt_close("x + x", zg, ref, 5, 1e-15, 0));
    free(gzv);
    free(zg);
    lt_tensor *x2 = tt_leaf((int64_t[]){2, 3}, 2, -1, 1);
    CHECK(tt_gradcheck("diamond", f_diamond, NULL, &x2, 1));
}

/* 100000 reshapes in a chain, made outside any scope so that each intermediate tensor is released at once and the
 * nodes are held only by each other: backward walks the chain and the last release frees it, neither recursing. */
static void test_long_chain(void) {
    enum { N = 100000 };
    size_t base = bytes_in_use();
    CHECK(lt_scope_end() == LT_OK); /* RUN's scope; reopened below. Plain CHECKs only until then. */
    double xv[12], gv[12];
    for (int i = 0; i < 12; i++) {
        xv[i] = tt_uniform(-1, 1);
        gv[i] = tt_uniform(-1, 1);
    }
    lt_tensor *x = NULL, *y = NULL, *g = NULL, *xg = NULL;
    lt_status st = lt_tensor_from_host(xv, (int64_t[]){12}, 1, LT_F64, LT_DEVICE_CPU, &x);
    if (st == LT_OK) st = lt_tensor_set_requires_grad(x, true);
    if (st == LT_OK) st = lt_tensor_from_host(gv, (int64_t[]){3, 4}, 2, LT_F64, LT_DEVICE_CPU, &g);
    static const int64_t shapes[3][3] = {{3, 4, 1}, {2, 6, 1}, {3, 4, 1}};
    y = x;
    lt_tensor_retain(y);
    for (int i = 0; st == LT_OK && i < N; i++) {
        lt_tensor *z = NULL;
        const int64_t *s = shapes[i % 3];
        st = i == N - 1 ? lt_reshape(y, s, 2, &z) : lt_reshape(y, s, 3 - (i & 1), &z);
        lt_tensor_release(y);
        y = z;
    }
    CHECK(st == LT_OK);
    if (st == LT_OK) {
        CHECK(lt_tensor_ndim(y) == 2 && lt_tensor_dim(y, 0) == 3 && lt_tensor_dim(y, 1) == 4);
        CHECK(lt_backward_grad(y, g) == LT_OK);
        CHECK(lt_tensor_grad(x, &xg) == LT_OK && xg != NULL);
        if (xg) {
            double got[12] = {0};
            CHECK(lt_tensor_to_host(xg, got, sizeof got) == LT_OK);
            CHECK(tt_close("chain grad", got, gv, 12, 0, 0));
            lt_tensor_release(xg);
        }
    }
    lt_tensor_release(y); /* frees 100000 nodes */
    /* a second chain that is never back-propagated */
    if (st == LT_OK) {
        y = x;
        lt_tensor_retain(y);
        for (int i = 0; st == LT_OK && i < N; i++) {
            lt_tensor *z = NULL;
            st = lt_slice(y, 0, 0, 12, 1, &z);
            lt_tensor_release(y);
            y = z;
        }
        CHECK(st == LT_OK);
        lt_tensor_release(y);
    }
    /* and one of identity transposes built inside a scope, released by lt_scope_end */
    if (st == LT_OK && lt_scope_begin() == LT_OK) {
        lt_tensor *x3 = NULL, *g3 = NULL, *x3g = NULL;
        st = lt_tensor_from_host(xv, (int64_t[]){12}, 1, LT_F64, LT_DEVICE_CPU, &x3);
        if (st == LT_OK) st = lt_tensor_set_requires_grad(x3, true);
        if (st == LT_OK) st = lt_tensor_from_host(gv, (int64_t[]){12}, 1, LT_F64, LT_DEVICE_CPU, &g3);
        y = x3;
        for (int i = 0; st == LT_OK && i < N; i++) st = lt_transpose(y, 0, -1, &y);
        CHECK(st == LT_OK);
        if (st == LT_OK) CHECK(lt_backward_grad(y, g3) == LT_OK);
        if (st == LT_OK) CHECK(lt_tensor_grad(x3, &x3g) == LT_OK && x3g != NULL);
        if (x3g) CHECK(tt_tensor_close("chain in a scope", x3g, gv, 0, 0));
        CHECK(lt_scope_end() == LT_OK);
    }
    lt_tensor_release(g);
    lt_tensor_release(x);
    CHECK(bytes_in_use() == base);
    CHECK(lt_scope_begin() == LT_OK);
}

/* Everything made in a scope, graph and gradients included, is freed by its end. */
static void test_no_leak(void) {
    size_t base = bytes_in_use();
    for (int round = 0; round < 2; round++) {
        CHECK_OK(lt_scope_begin());
        lt_tensor *x = tt_leaf((int64_t[]){4, 6}, 2, -1, 1), *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        CHECK_OK(lt_transpose(x, 0, 1, &a));
        CHECK_OK(lt_reshape(a, (int64_t[]){3, 8}, 2, &b)); /* a copy */
        CHECK_OK(lt_slice(b, 1, 1, 8, 3, &c));
        CHECK_OK(lt_tensor_to(c, LT_F32, LT_DEVICE_CPU, &d));
        lt_tensor *g = tt_rand((int64_t[]){3, 3}, 2, LT_F32, -1, 1), *xg = NULL;
        CHECK_OK(lt_backward_grad(d, g));
        CHECK_OK(lt_tensor_grad(x, &xg));
        CHECK(xg != NULL && bytes_in_use() > base);
        CHECK_OK(lt_scope_end());
        CHECK(bytes_in_use() == base);
    }
    /* a graph that is never back-propagated */
    CHECK_OK(lt_scope_begin());
    lt_tensor *x = tt_leaf((int64_t[]){4, 6}, 2, -1, 1), *a = NULL;
    CHECK_OK(lt_slice(x, 0, 1, 3, 1, &a));
    CHECK_OK(lt_contiguous(a, &a));
    CHECK_OK(lt_scope_end());
    CHECK(bytes_in_use() == base);
}

int main(void) {
    RUN(test_gradcheck_reshape);
    RUN(test_gradcheck_view);
    RUN(test_gradcheck_permute);
    RUN(test_gradcheck_transpose);
    RUN(test_gradcheck_slice);
    RUN(test_gradcheck_expand);
    RUN(test_gradcheck_contiguous);
    RUN(test_gradcheck_to);
    RUN(test_gradcheck_chain);
    RUN(test_backward_values);
    RUN(test_requires_grad_propagation);
    RUN(test_to_backward_dtypes);
    RUN(test_grad_accumulates);
    RUN(test_zero_grad);
    RUN(test_no_grad);
    RUN(test_detach_cuts_graph);
    RUN(test_backward_errors);
    RUN(test_set_requires_grad_errors);
    RUN(test_diamond);
    RUN(test_long_chain);
    RUN(test_no_leak);
    return tt_finish();
}
