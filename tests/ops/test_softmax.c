/* Tests of lt_softmax and lt_log_softmax: values against a naive f64 reference for every dim of several shapes,
 * layouts and both float dtypes, stability on large logits, gradients by finite differences, error paths. */
#include "test.h"

static const char *name_of(bool log) { return log ? "lt_log_softmax" : "lt_softmax"; }

static lt_status run_op(bool log, const lt_tensor *a, int dim, lt_tensor **out) {
    return log ? lt_log_softmax(a, dim, out) : lt_softmax(a, dim, out);
}

/* Softmax (or log-softmax) of row-major values x of `shape` along dim, computed in the plainest way. */
static double *reference(bool take_log, const double *x, const int64_t *shape, int nd, int dim) {
    int64_t outer = 1, inner = 1, n = nd ? shape[dim] : 1;
    for (int d = 0; d < dim; d++) outer *= shape[d];
    for (int d = dim + 1; d < nd; d++) inner *= shape[d];
    double *y = malloc(sizeof(double) * (size_t)(outer * n * inner + 1));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const double *xr = x + o * n * inner + i;
            double *yr = y + o * n * inner + i;
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < n; j++) m = fmax(m, xr[j * inner]);
            for (int64_t j = 0; j < n; j++) s += exp(xr[j * inner] - m);
            for (int64_t j = 0; j < n; j++)
                yr[j * inner] = take_log ? xr[j * inner] - m - log(s) : exp(xr[j * inner] - m) / s;
        }
    return y;
}

static bool check_one(bool log, const lt_tensor *a, int dim, double tol, const char *what) {
    int nd = lt_tensor_ndim(a);
    int64_t shape[LT_MAX_DIMS];
    lt_tensor_shape(a, shape);
    lt_tensor *y = NULL;
    if (run_op(log, a, dim, &y) != LT_OK) {
        fprintf(stderr, "%s: failed: %s\n", what, lt_last_error());
        return false;
    }
    int64_t got[LT_MAX_DIMS];
    lt_tensor_shape(y, got);
    bool ok = lt_tensor_ndim(y) == nd && memcmp(got, shape, sizeof(int64_t) * (size_t)nd) == 0 &&
              lt_tensor_is_contiguous(y) && lt_tensor_dtype(y) == lt_tensor_dtype(a);
    if (!ok) fprintf(stderr, "%s: wrong shape, layout or dtype\n", what);
    double *x = tt_values(a);
    double *ref = reference(log, x, shape, nd, nd ? (dim < 0 ? dim + nd : dim) : 0);
    ok = ok && tt_tensor_close(what, y, ref, tol, tol);
    free(x);
    free(ref);
    return ok;
}

/* The same logical shape stored three ways: contiguous, strided (every other element), permuted. */
static lt_tensor *make_input(const int64_t *shape, int nd, lt_dtype dt, int layout, double scale) {
    if (layout == 0) return tt_rand(shape, nd, dt, -scale, scale);
    if (layout == 1) return tt_strided(tt_rand(shape, nd, dt, -scale, scale));
    int64_t rev[LT_MAX_DIMS];
    int perm[LT_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        rev[d] = shape[nd - 1 - d];
        perm[d] = nd - 1 - d;
    }
    lt_tensor *v = NULL;
    if (lt_permute(tt_rand(rev, nd, dt, -scale, scale), perm, &v) != LT_OK) abort();
    return v;
}

static void test_forward(void) {
    static const struct {
        int nd;
        int64_t shape[3];
    } cases[] = {{0, {0}}, {1, {1}}, {1, {7}}, {2, {13, 31}}, {3, {2, 3, 5}}, {2, {64, 1000}}, {2, {1000, 70}}};
    tt_seed(21);
    char what[128];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int nd = cases[c].nd;
        for (int dt = 0; dt < 2; dt++)
            for (int layout = 0; layout < (nd ? 3 : 1); layout++) {
                lt_tensor *a = make_input(cases[c].shape, nd, dt ? LT_F64 : LT_F32, layout, 3);
                for (int dim = -(nd ? nd : 1); dim < (nd ? nd : 1); dim++)
                    for (int log = 0; log < 2; log++) {
                        snprintf(what, sizeof what, "%s case %zu %s layout %d dim %d", name_of(log), c,
                                 dt ? "f64" : "f32", layout, dim);
                        CHECK(check_one(log, a, dim, dt ? 1e-13 : 2e-6, what));
                    }
            }
    }
}

/* Logits of magnitude 1000 overflow exp unless the max is subtracted; the result must stay finite. */
static void test_large_logits(void) {
    tt_seed(22);
    int64_t shape[2] = {5, 9};
    char what[64];
    for (int dt = 0; dt < 2; dt++) {
        lt_tensor *a = tt_rand(shape, 2, dt ? LT_F64 : LT_F32, -1000, 1000);
        for (int dim = 0; dim < 2; dim++)
            for (int log = 0; log < 2; log++) {
                snprintf(what, sizeof what, "%s large logits %s dim %d", name_of(log), dt ? "f64" : "f32", dim);
                CHECK(check_one(log, a, dim, dt ? 1e-12 : 1e-4, what));
            }
    }
}

/* Causal-attention masks put -inf in some entries: they get probability 0 (log-probability -inf), the rest a
 * proper distribution. */
static void test_masked(void) {
    tt_seed(24);
    int64_t shape[2] = {4, 6};
    char what[64];
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        double *v = tt_values(tt_rand(shape, 2, LT_F64, -2, 2));
        for (int i = 0; i < 4; i++)
            for (int j = i + 2; j < 6; j++) v[i * 6 + j] = -INFINITY;
        lt_tensor *d = NULL, *a = NULL;
        CHECK_OK(lt_tensor_from_host(v, shape, 2, LT_F64, LT_DEVICE_CPU, &d));
        CHECK_OK(lt_tensor_to(d, dtype, LT_DEVICE_CPU, &a));
        for (int log = 0; log < 2; log++) {
            snprintf(what, sizeof what, "%s masked %s", name_of(log), dt ? "f64" : "f32");
            CHECK(check_one(log, a, 1, dt ? 1e-13 : 2e-6, what));
        }
        free(v);
    }
}

typedef struct sm_ctx {
    bool log;
    int dim;
    bool transpose; /* apply to a transposed view, so the forward copies and the backward gets strided inputs */
} sm_ctx;

static lt_status sm_fn(void *ctx, lt_tensor **inputs, lt_tensor **out) {
    sm_ctx *c = ctx;
    lt_tensor *a = inputs[0];
    if (c->transpose) {
        lt_status st = lt_transpose(inputs[0], 0, -1, &a);
        if (st != LT_OK) return st;
    }
    return run_op(c->log, a, c->dim, out);
}

static void test_gradcheck(void) {
    tt_seed(23);
    static const struct {
        int nd;
        int64_t shape[3];
    } shapes[] = {{0, {0}}, {1, {7}}, {3, {3, 4, 5}}};
    char what[96];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int nd = shapes[s].nd;
        for (int dim = -(nd ? nd : 1); dim < (nd ? nd : 1); dim++)
            for (int log = 0; log < 2; log++)
                for (int tr = 0; tr < (nd > 1 ? 2 : 1); tr++) {
                    lt_tensor *x = tt_leaf(shapes[s].shape, nd, -2, 2);
                    sm_ctx ctx = {log, dim, tr};
                    snprintf(what, sizeof what, "%s gradcheck %dd dim %d%s", name_of(log), nd, dim,
                             tr ? " transposed" : "");
                    CHECK(tt_gradcheck(what, sm_fn, &ctx, &x, 1));
                }
    }
}

static void test_errors(void) {
    int64_t shape[2] = {3, 4};
    lt_tensor *a = tt_rand(shape, 2, LT_F32, -1, 1), *ai = tt_randint(shape, 2, LT_I64, 5), *y = NULL;
    for (int log = 0; log < 2; log++) {
        const char *fn = name_of(log);
        CHECK_ERR(run_op(log, NULL, 0, &y), LT_ERR_ARG, fn);
        CHECK_ERR(run_op(log, a, 0, NULL), LT_ERR_ARG, fn);
        CHECK_ERR(run_op(log, ai, 1, &y), LT_ERR_DTYPE, fn);
        CHECK_ERR(run_op(log, a, 2, &y), LT_ERR_RANGE, fn);
        CHECK_ERR(run_op(log, a, -3, &y), LT_ERR_RANGE, fn);
        CHECK(y == NULL);
    }
}

int main(void) {
    RUN(test_forward);
    RUN(test_large_logits);
    RUN(test_masked);
    RUN(test_gradcheck);
    RUN(test_errors);
    return tt_finish();
}
