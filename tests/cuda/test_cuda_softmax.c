/* The CUDA backend's softmax entries (forward and backward, plain and log) against the CPU through the public
 * lt_softmax and lt_log_softmax: f32 and f64, rows and row lengths around a warp and a block (the warp-per-row and
 * block-per-row kernels), every dim of 3-D tensors (the inner-dim kernel, its partial tiles included), a 50257-long
 * row, huge and infinite logits, non-contiguous and empty inputs, bitwise repeatability, and the errors. */
#include "cuda_check.h"

typedef struct softmax_case {
    int dim;
    bool log;
} softmax_case;

static lt_status softmax_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const softmax_case *c = ctx;
    return c->log ? lt_log_softmax(in[0], c->dim, out) : lt_softmax(in[0], c->dim, out);
}

static const lt_dtype float_dtypes[2] = {LT_F32, LT_F64};
static double atol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-6 : 1e-13; }
static double rtol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-5 : 1e-12; }

/* Forward and backward on both devices with one random upstream gradient (through lt_backward_grad, so that only
 * the softmax entries and copies run on the device); compares y and dx. */
static bool check_case(const char *what, const softmax_case *c, lt_tensor *x) {
    lt_dtype dt = lt_tensor_dtype(x);
    return tc_check_grad(what, softmax_op, (void *)c, &x, 1, true, false, atol_of(dt), rtol_of(dt));
}

/* Both variants (plain and log) of x along dim. */
static bool check_both(const char *label, lt_tensor *x, int dim) {
    bool ok = true;
    int64_t shape[LT_MAX_DIMS];
    int nd = lt_tensor_ndim(x);
    lt_tensor_shape(x, shape);
    for (int lg = 0; lg < 2; lg++) {
        softmax_case c = {dim, lg == 1};
        char what[200];
        int len = snprintf(what, sizeof what, "%s %s%s dim %d of [", label, lg ? "log_softmax " : "softmax ",
                           lt_dtype_name(lt_tensor_dtype(x)), dim);
        for (int d = 0; d < nd && len < (int)sizeof what - 24; d++)
            len += snprintf(what + len, sizeof what - (size_t)len, d ? ", %lld" : "%lld", (long long)shape[d]);
        snprintf(what + len, sizeof what - (size_t)len, "]");
        ok &= check_case(what, &c, x);
    }
    return ok;
}

/* Rows x row lengths over tc_odd_sizes: lengths 1..257 run the warp-per-row kernel. */
static void test_last_dim(void) {
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
                lt_scope_begin();
                int64_t shape[2] = {tc_odd_sizes[i], tc_odd_sizes[j]};
                lt_tensor *x = tt_rand(shape, 2, float_dtypes[t], -3, 3);
                CHECK(check_both("last dim", x, j % 2 ? -1 : 1));
                lt_scope_end();
            }
}

/* Rows longer than a warp's share (> 1024) run the block-per-row kernel, 50257 (GPT-2's vocabulary) included. */
static void test_long_rows(void) {
    static const int64_t lens[] = {1025, 4099, 50257};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 3; k++) {
            lt_scope_begin();
            int64_t shape[2] = {k == 2 ? 2 : 3, lens[k]};
            lt_tensor *x = tt_rand(shape, 2, float_dtypes[t], -8, 8);
            CHECK(check_both("long rows", x, 1));
            lt_scope_end();
        }
}

/* Every dim of 3-D tensors with sides from tc_odd_sizes: the inner-dim kernel sees partial tiles of 32 columns
 * (inner 33, 255, 257) and single columns, and the last dim the row kernels. */
static void test_every_dim(void) {
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < 6; s++) {
            int64_t n = tc_odd_sizes[s];
            int64_t shapes[3][3] = {{2, n, 3}, {3, 5, n}, {n, 4, 2}};
            for (int k = 0; k < 3; k++)
                for (int dim = 0; dim < 3; dim++) {
                    lt_scope_begin();
                    lt_tensor *x = tt_rand(shapes[k], 3, float_dtypes[t], -3, 3);
                    CHECK(check_both("3-D", x, dim));
                    lt_scope_end();
                }
        }
}

/* A 50257-long softmax along an outer dim (8 slices per column in the inner-dim kernel), and many columns. */
static void test_long_inner(void) {
    int64_t a[2] = {50257, 3}, b[3] = {3, 7, 1000};
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        CHECK(check_both("long inner", tt_rand(a, 2, float_dtypes[t], -5, 5), 0));
        CHECK(check_both("wide inner", tt_rand(b, 3, float_dtypes[t], -5, 5), 1));
        lt_scope_end();
    }
}

/* Logits of +-1e4 (exp overflows without the max subtracted), ties at the max, and -inf entries. */
static void test_huge_and_infinite(void) {
    static const int64_t rows = 4, cols = 37;
    double v[4 * 37];
    for (int64_t i = 0; i < rows * cols; i++) v[i] = tt_uniform(0, 1) < 0.5 ? -1e4 : 1e4;
    for (int64_t j = 0; j < cols; j++) v[cols + j] = 1e4 + (double)(j % 3); /* ties at the max */
    for (int64_t j = 0; j < cols; j++) v[2 * cols + j] = j % 4 ? -INFINITY : tt_uniform(-1e4, 1e4);
    for (int64_t j = 0; j < cols; j++) v[3 * cols + j] = j == 0 ? -INFINITY : tt_uniform(-1e4, 1e4);
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        int64_t shape[2] = {rows, cols}, tshape[2] = {cols, rows};
        lt_tensor *x, *xt, *xc;
        CHECK_OK(lt_tensor_from_host(v, shape, 2, LT_F64, LT_DEVICE_CPU, &x));
        CHECK_OK(lt_tensor_to(x, float_dtypes[t], LT_DEVICE_CPU, &xc));
        CHECK(check_both("huge", xc, 1));
        /* the same rows along dim 0 */
        CHECK_OK(lt_transpose(xc, 0, 1, &xt));
        CHECK_OK(lt_contiguous(xt, &x));
        CHECK(lt_tensor_dim(x, 0) == tshape[0]);
        CHECK(check_both("huge columns", x, 0));
        /* every value finite and each row summing to 1 on the device */
        lt_tensor *g, *y;
        CHECK_OK(lt_tensor_to(xc, float_dtypes[t], tc_cuda, &g));
        CHECK_OK(lt_softmax(g, 1, &y));
        double *yv = tt_values(y);
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t j = 0; j < cols; j++) {
                CHECK(isfinite(yv[r * cols + j]));
                s += yv[r * cols + j];
            }
            CHECK(fabs(s - 1) < 1e-5);
        }
        free(yv);
        lt_scope_end();
    }
}

/* Inputs that are views (strided, permuted) are made contiguous by the op; the backend sees contiguous tensors. */
static void test_layouts_and_tc_cross_check(void) {
    for (int t = 0; t < 2; t++)
        for (int layout = 0; layout < 3; layout++) {
            lt_scope_begin();
            int64_t shape[3] = {3, 33, 31};
            lt_tensor *x = tt_layout(shape, 3, float_dtypes[t], layout);
            for (int dim = 0; dim < 3; dim++) {
                CHECK(check_both("layout", x, dim));
                /* forward and backward through the public ops with tc_cross_check (mul and sum on the device) */
                softmax_case c = {dim, (dim + layout) % 2 == 1};
                CHECK(tc_cross_check("softmax (tc_cross_check)", softmax_op, &c, &x, 1, atol_of(float_dtypes[t]),
                                     rtol_of(float_dtypes[t]), true));
            }
            lt_scope_end();
        }
}

/* Empty tensors launch nothing; a 0-d tensor is one element (softmax 1, log_softmax 0). */
static void test_empty_and_scalar(void) {
    int64_t e1[2] = {0, 5}, e2[3] = {4, 0, 3};
    for (int t = 0; t < 2; t++) {
        softmax_case c = {1, false}, cl = {-1, true};
        lt_tensor *a = tt_rand(e1, 2, float_dtypes[t], -1, 1), *b = tt_rand(e2, 3, float_dtypes[t], -1, 1);
        CHECK(tc_cross_check("softmax [0, 5]", softmax_op, &c, &a, 1, 0, 0, false));
        CHECK(tc_cross_check("softmax [4, 0, 3]", softmax_op, &c, &b, 1, 0, 0, false));
        CHECK(tc_cross_check("log_softmax [4, 0, 3] dim -1", softmax_op, &cl, &b, 1, 0, 0, false));
        lt_tensor *s = tt_rand(NULL, 0, float_dtypes[t], -1, 1);
        softmax_case z = {0, false}, zl = {-1, true};
        CHECK(check_case("softmax of a 0-d tensor", &z, s));
        CHECK(check_case("log_softmax of a 0-d tensor", &zl, s));
    }
}

/* The same input gives the same bits on every call: the reductions have a fixed order. */
static void test_repeatable(void) {
    int64_t shape[2] = {3, 50257}, cshape[3] = {2, 300, 40};
    lt_tensor *x = tc_to_cuda(tt_rand(shape, 2, LT_F32, -10, 10), false);
    lt_tensor *xc = tc_to_cuda(tt_rand(cshape, 3, LT_F32, -10, 10), false);
    lt_tensor *a, *b, *c, *d;
    CHECK_OK(lt_log_softmax(x, 1, &a));
    CHECK_OK(lt_log_softmax(x, 1, &b));
    CHECK(tc_same("log_softmax twice", a, b, 0, 0));
    CHECK_OK(lt_softmax(xc, 1, &c));
    CHECK_OK(lt_softmax(xc, 1, &d));
    CHECK(tc_same("softmax over dim 1 twice", c, d, 0, 0));
}

static void test_errors(void) {
    int64_t shape[2] = {2, 3};
    lt_tensor *h, *out = NULL;
    lt_tensor *x = tc_to_cuda(tt_rand(shape, 2, LT_F32, -1, 1), false);
    CHECK_OK(lt_tensor_to(x, LT_BF16, tc_cuda, &h));
    CHECK_ERR_OUT(lt_softmax(h, 1, &out), out, LT_ERR_DTYPE, "lt_softmax");
    CHECK_ERR_OUT(lt_log_softmax(x, 2, &out), out, LT_ERR_RANGE, "lt_log_softmax");
    CHECK_ERR_OUT(lt_softmax(x, -3, &out), out, LT_ERR_RANGE, "lt_softmax");
}

int main(void) {
    tc_require_cuda();
    tt_seed(11);
    RUN(test_last_dim);
    RUN(test_long_rows);
    RUN(test_every_dim);
    RUN(test_long_inner);
    RUN(test_huge_and_infinite);
    RUN(test_layouts_and_tc_cross_check);
    RUN(test_empty_and_scalar);
    RUN(test_repeatable);
    RUN(test_errors);
    return tt_finish();
}
