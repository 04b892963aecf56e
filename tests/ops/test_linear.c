/* Tests of lt_linear: output and all three gradients against a naive f64 reference, with and without bias, 2-D and
 * 3-D (and 4-D) inputs, non-contiguous x, w and upstream gradients, both float dtypes; finite-difference gradients;
 * empty dims; error paths. */
#include "test.h"

static const char *fn = "lt_linear";

/* y = x w + b, dx = dy w^T, dw = x^T dy, db = column sums of dy, for row-major x [M, K], w [K, N], dy [M, N]. */
static void reference(const double *x, const double *w, const double *b, const double *dy, int64_t M, int64_t K,
                      int64_t N, double *y, double *dx, double *dw, double *db) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = b ? b[n] : 0;
            for (int64_t k = 0; k < K; k++) acc += x[m * K + k] * w[k * N + n];
            y[m * N + n] = acc;
        }
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
            double acc = 0;
            for (int64_t n = 0; n < N; n++) acc += dy[m * N + n] * w[k * N + n];
            dx[m * K + k] = acc;
        }
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t m = 0; m < M; m++) acc += x[m * K + k] * dy[m * N + n];
            dw[k * N + n] = acc;
        }
    for (int64_t n = 0; n < N; n++) {
        double acc = 0;
        for (int64_t m = 0; m < M; m++) acc += dy[m * N + n];
        db[n] = acc;
    }
}

static lt_tensor *grad_of(lt_tensor *t) {
    lt_tensor *g = NULL;
    if (lt_tensor_grad(t, &g) != LT_OK || !g) {
        fprintf(stderr, "no gradient: %s\n", lt_last_error());
        return NULL;
    }
    return g;
}

/* x of shape lead + [K] (nlead leading dims), optionally strided (x, w and dy all non-contiguous). */
static bool check_case(const int64_t *lead, int nlead, int64_t K, int64_t N, bool bias, bool strided, lt_dtype dt,
                       double tol) {
    char what[160];
    snprintf(what, sizeof what, "linear nlead=%d K=%lld N=%lld%s%s %s", nlead, (long long)K, (long long)N,
             bias ? " bias" : "", strided ? " strided" : "", dt == LT_F64 ? "f64" : "f32");
    int64_t xs[LT_MAX_DIMS], ys[LT_MAX_DIMS], ws[2] = {K, N}, M = 1;
    for (int i = 0; i < nlead; i++) xs[i] = ys[i] = lead[i], M *= lead[i];
    xs[nlead] = K;
    ys[nlead] = N;
    lt_tensor *x = tt_rand(xs, nlead + 1, dt, -1, 1), *w = tt_rand(ws, 2, dt, -1, 1),
              *dy = tt_rand(ys, nlead + 1, dt, -1, 1);
    lt_tensor *b = bias ? tt_rand(&N, 1, dt, -1, 1) : NULL, *y = NULL;
    if (strided) x = tt_strided(x), w = tt_strided(w), dy = tt_strided(dy);
    lt_tensor_set_requires_grad(x, true);
    lt_tensor_set_requires_grad(w, true);
    if (b) lt_tensor_set_requires_grad(b, true);
    if (lt_linear(x, w, b, &y) != LT_OK || lt_backward_grad(y, dy) != LT_OK) {
        fprintf(stderr, "%s: failed: %s\n", what, lt_last_error());
        return false;
    }
    bool ok = lt_tensor_ndim(y) == nlead + 1 && lt_tensor_dim(y, -1) == N && lt_tensor_dtype(y) == dt;
    for (int i = 0; ok && i < nlead; i++) ok = lt_tensor_dim(y, i) == lead[i];
    if (!ok) fprintf(stderr, "%s: wrong output shape or dtype\n", what);
    double *xv = tt_values(x), *wv = tt_values(w), *dv = tt_values(dy), *bv = b ? tt_values(b) : NULL;
    double *ry = malloc(sizeof(double) * (size_t)(M * N + 1)), *rdx = malloc(sizeof(double) * (size_t)(M * K + 1));
    double *rdw = malloc(sizeof(double) * (size_t)(K * N + 1)), *rdb = malloc(sizeof(double) * (size_t)(N + 1));
    reference(xv, wv, bv, dv, M, K, N, ry, rdx, rdw, rdb);
    lt_tensor *gx = grad_of(x), *gw = grad_of(w), *gb = b ? grad_of(b) : NULL;
    ok = ok && gx && gw && (!b || gb);
    ok = ok && tt_tensor_close(what, y, ry, tol, tol) && tt_tensor_close("dx", gx, rdx, tol, tol) &&
         tt_tensor_close("dw", gw, rdw, tol, tol) && (!b || tt_tensor_close("db", gb, rdb, tol, tol));
    if (ok && lt_tensor_ndim(gx) != nlead + 1) ok = false, fprintf(stderr, "%s: dx has the wrong shape\n", what);
    free(xv), free(wv), free(dv), free(bv), free(ry), free(rdx), free(rdw), free(rdb);
    return ok;
}

static void test_forward_backward(void) {
    tt_seed(61);
    int64_t l1[1] = {13}, l2[2] = {3, 7}, l3[3] = {2, 1, 5}, l0[1] = {1};
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype d = dt ? LT_F64 : LT_F32;
        double tol = dt ? 1e-12 : 1e-5;
        for (int bias = 0; bias < 2; bias++) {
            CHECK(check_case(l1, 1, 17, 9, bias, false, d, tol));
            CHECK(check_case(l2, 2, 33, 65, bias, false, d, tol));
            CHECK(check_case(l3, 3, 4, 3, bias, false, d, tol));
            CHECK(check_case(l0, 1, 1, 1, bias, false, d, tol));
            CHECK(check_case(NULL, 0, 5, 6, bias, false, d, tol)); /* 1-D x: a single row */
        }
    }
}

static void test_strided(void) {
    tt_seed(62);
    int64_t l2[2] = {4, 3}, l1[1] = {9};
    CHECK(check_case(l2, 2, 10, 7, true, true, LT_F32, 1e-5));
    CHECK(check_case(l1, 1, 6, 11, false, true, LT_F64, 1e-12));
}

/* A transposed x ([M, K] read column-major): BLAS could read it, but the op asks for row-major rows and copies. */
static void test_transposed_input(void) {
    tt_seed(63);
    int64_t xs[2] = {8, 5}, ws[2] = {8, 3}, N = 3;
    lt_tensor *xt = tt_rand(xs, 2, LT_F64, -1, 1), *w = tt_rand(ws, 2, LT_F64, -1, 1),
              *b = tt_rand(&N, 1, LT_F64, -1, 1);
    lt_tensor *x = NULL, *y = NULL;
    CHECK_OK(lt_transpose(xt, 0, 1, &x)); /* [5, 8] */
    CHECK_OK(lt_linear(x, w, b, &y));
    double *xv = tt_values(x), *wv = tt_values(w), *bv = tt_values(b), ry[15], dy[15] = {0}, d1[40], d2[24], d3[3];
    reference(xv, wv, bv, dy, 5, 8, 3, ry, d1, d2, d3);
    CHECK(tt_tensor_close("transposed x", y, ry, 1e-12, 1e-12));
    free(xv), free(wv), free(bv);
}

static lt_status linear_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_linear(in[0], in[1], in[2], out);
}

static lt_status linear_nobias_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_linear(in[0], in[1], NULL, out);
}

static void test_gradcheck(void) {
    tt_seed(64);
    int64_t xs[3] = {2, 3, 4}, ws[2] = {4, 5}, N = 5;
    lt_tensor *in[3] = {tt_leaf(xs, 3, -1, 1), tt_leaf(ws, 2, -1, 1), tt_leaf(&N, 1, -1, 1)};
    CHECK(tt_gradcheck("linear 3-D with bias", linear_fn, NULL, in, 3));
    CHECK(tt_gradcheck("linear without bias", linear_nobias_fn, NULL, in, 2));
}

/* Only the inputs that require grad get one; no grad mode records nothing. */
static void test_partial_grads(void) {
    tt_seed(65);
    int64_t xs[2] = {3, 4}, ws[2] = {4, 2}, N = 2;
    lt_tensor *x = tt_rand(xs, 2, LT_F64, -1, 1), *w = tt_leaf(ws, 2, -1, 1), *b = tt_rand(&N, 1, LT_F64, -1, 1);
    lt_tensor *y = NULL, *s = NULL, *g = NULL;
    CHECK_OK(lt_linear(x, w, b, &y));
    CHECK(lt_tensor_requires_grad(y));
    CHECK_OK(lt_sum(y, NULL, 0, false, &s));
    CHECK_OK(lt_backward(s));
    CHECK_OK(lt_tensor_grad(w, &g));
    CHECK(g != NULL);
    CHECK_OK(lt_tensor_grad(x, &g));
    CHECK(g == NULL);
    lt_no_grad_begin();
    CHECK_OK(lt_linear(x, w, b, &y));
    lt_no_grad_end();
    CHECK(!lt_tensor_requires_grad(y));
}

/* Empty batches, and in == 0 (y is the bias, or zeros). */
static void test_empty(void) {
    tt_seed(66);
    int64_t xs[2] = {0, 4}, ws[2] = {4, 3}, x0[2] = {2, 0}, w0[2] = {0, 3}, N = 3;
    lt_tensor *b = tt_rand(&N, 1, LT_F32, -1, 1), *y = NULL;
    CHECK_OK(lt_linear(tt_rand(xs, 2, LT_F32, -1, 1), tt_rand(ws, 2, LT_F32, -1, 1), b, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_dim(y, 1) == 3);
    CHECK_OK(lt_linear(tt_rand(x0, 2, LT_F32, -1, 1), tt_rand(w0, 2, LT_F32, -1, 1), b, &y));
    double *bv = tt_values(b), ref[6] = {bv[0], bv[1], bv[2], bv[0], bv[1], bv[2]}, zeros[6] = {0};
    CHECK(tt_tensor_close("in == 0 with bias", y, ref, 0, 0));
    CHECK_OK(lt_linear(tt_rand(x0, 2, LT_F32, -1, 1), tt_rand(w0, 2, LT_F32, -1, 1), NULL, &y));
    CHECK(tt_tensor_close("in == 0 without bias", y, zeros, 0, 0));
    free(bv);
}

static void test_errors(void) {
    int64_t xs[2] = {3, 4}, ws[2] = {4, 2}, w3[3] = {1, 4, 2}, wbad[2] = {5, 2}, N = 2, Nbad = 3;
    lt_tensor *x = tt_rand(xs, 2, LT_F32, -1, 1), *w = tt_rand(ws, 2, LT_F32, -1, 1),
              *b = tt_rand(&N, 1, LT_F32, -1, 1);
    lt_tensor *x64 = tt_rand(xs, 2, LT_F64, -1, 1), *xi = tt_randint(xs, 2, LT_I32, 3), *y = NULL;
    lt_tensor *s0 = tt_rand(NULL, 0, LT_F32, -1, 1), *b64 = tt_rand(&N, 1, LT_F64, -1, 1);
    CHECK_ERR(lt_linear(x, w, b, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_linear(NULL, w, b, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_linear(x, NULL, b, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_linear(xi, w, b, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_linear(x64, w, b, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_linear(x, w, b64, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_linear(s0, w, b, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_linear(x, tt_rand(w3, 3, LT_F32, -1, 1), b, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_linear(x, tt_rand(wbad, 2, LT_F32, -1, 1), b, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_linear(x, w, tt_rand(&Nbad, 1, LT_F32, -1, 1), &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_linear(x, w, tt_rand(ws, 2, LT_F32, -1, 1), &y), LT_ERR_SHAPE, fn);
    CHECK(y == NULL);
}

int main(void) {
    RUN(test_forward_backward);
    RUN(test_strided);
    RUN(test_transposed_input);
    RUN(test_gradcheck);
    RUN(test_partial_grads);
    RUN(test_empty);
    RUN(test_errors);
    return tt_finish();
}
