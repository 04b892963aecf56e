/* The CUDA backend's layer norm entries (forward and backward) against the CPU through the public lt_layer_norm:
 * f32 and f64, rows and widths around a warp and a block (the warp-per-row and block-per-row kernels), with and
 * without weight and bias, the saved mean and rstd, a large mean offset, eps, many rows (several chunks of the
 * deterministic column sums for dweight and dbias), non-contiguous and empty inputs, bitwise repeatability, and
 * the errors. Also lt_residual_layer_norm (the layer_norm entry with a residual input): s and y and the gradients
 * of x, r, weight and bias at tc_odd_sizes, non-contiguous inputs, bitwise agreement with lt_add + lt_layer_norm on
 * the device, and its errors. */
#include "cuda_check.h"
#include "libtrain/nn.h"

/* Which of weight and bias the op gets, eps, and which output it returns (0 y, 1 mean, 2 rstd). */
typedef struct ln_case {
    bool w, b;
    double eps;
    int out;
} ln_case;

/* inputs: x, then weight when c->w, then bias when c->b. */
static lt_status ln_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const ln_case *c = ctx;
    const lt_tensor *w = c->w ? in[1] : NULL, *b = c->b ? in[c->w ? 2 : 1] : NULL;
    lt_tensor *y = NULL, *mean = NULL, *rstd = NULL;
    lt_status st = lt_layer_norm(in[0], w, b, c->eps, &y, c->out == 1 ? &mean : NULL, c->out == 2 ? &rstd : NULL);
    *out = c->out == 0 ? y : c->out == 1 ? mean : rstd;
    return st;
}

static const lt_dtype float_dtypes[2] = {LT_F32, LT_F64};
static double atol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-6 : 1e-12; }
static double rtol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-5 : 1e-12; }

/* op on both devices; with `backward`, also the gradient of every float input for one random upstream gradient.
 * tol scales the dtype's tolerances. */
static bool check_case(const char *what, tc_op op, void *ctx, lt_tensor **in, int n, bool backward, double tol) {
    lt_dtype dt = lt_tensor_dtype(in[0]);
    return tc_check_grad(what, op, ctx, in, n, backward, false, atol_of(dt) * tol, rtol_of(dt) * tol);
}

/* x [shape] with values in [lo, hi) (or x itself when not NULL), and weight and bias [C] as c asks; checks y with
 * gradients, mean and rstd. */
static bool check_ln(const char *label, const int64_t *shape, int nd, lt_dtype dt, ln_case c, double lo, double hi,
                     lt_tensor *x, double tol) {
    int64_t C = shape[nd - 1];
    lt_tensor *in[3];
    int n = 0;
    in[n++] = x ? x : tt_rand(shape, nd, dt, lo, hi);
    if (c.w) in[n++] = tt_rand(&C, 1, dt, 0.5, 1.5);
    if (c.b) in[n++] = tt_rand(&C, 1, dt, -1, 1);
    char what[200];
    int len = snprintf(what, sizeof what, "%s %s w=%d b=%d eps=%g [", label, lt_dtype_name(dt), c.w, c.b, c.eps);
    for (int d = 0; d < nd; d++)
        len += snprintf(what + len, sizeof what - (size_t)len, d ? ", %lld" : "%lld", (long long)shape[d]);
    snprintf(what + len, sizeof what - (size_t)len, "]");
    bool ok = true;
    for (int out = 0; out < 3; out++) {
        c.out = out;
        ok &= check_case(what, ln_op, &c, in, n, out == 0, tol);
    }
    return ok;
}

/* Rows x widths over tc_odd_sizes, each with and without weight and bias (and with only one of them). */
static void test_odd_sizes(void) {
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
                lt_scope_begin();
                int64_t shape[2] = {tc_odd_sizes[i], tc_odd_sizes[j]};
                ln_case affine = {true, true, 1e-5, 0}, plain = {false, false, 1e-5, 0};
                ln_case half = {(i + j) % 2 == 0, (i + j) % 2 == 1, 1e-5, 0};
                CHECK(check_ln("affine", shape, 2, float_dtypes[t], affine, -2, 2, NULL, 1));
                CHECK(check_ln("plain", shape, 2, float_dtypes[t], plain, -2, 2, NULL, 1));
                CHECK(check_ln("half", shape, 2, float_dtypes[t], half, -2, 2, NULL, 1));
                lt_scope_end();
            }
}

/* Widths over 1024 run the block-per-row kernels; more than 64 rows give several chunks of column sums. */
static void test_wide_and_tall(void) {
    static const int64_t shapes[][2] = {{3, 1025}, {70, 1500}, {2, 4099}, {1000, 33}, {200, 257}};
    int n_shapes = tc_small ? 3 : 5;
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < n_shapes; k++) {
            lt_scope_begin();
            ln_case c = {true, true, 1e-5, 0};
            CHECK(check_ln("wide/tall", shapes[k], 2, float_dtypes[t], c, -3, 3, NULL, 1));
            lt_scope_end();
        }
    if (!tc_small) { /* 9000 rows: 128 chunks of 71 rows */
        int64_t shape[2] = {9000, 3};
        ln_case c = {true, false, 1e-5, 0};
        CHECK(check_ln("many rows", shape, 2, LT_F32, c, -3, 3, NULL, 1));
    }
}

/* x = 1e4 (1e6 in f64) + U(-1, 1): the two-pass statistics keep the variance; eps large against a small variance. */
static void test_mean_offset_and_eps(void) {
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        double off = float_dtypes[t] == LT_F32 ? 1e4 : 1e6;
        int64_t shape[3] = {2, 5, 257}, narrow[2] = {33, 31};
        ln_case c = {true, true, 1e-5, 0}, n = {false, false, 1e-5, 0}, big_eps = {true, true, 0.1, 0};
        /* f64 sums of values near 1e6 round at ~1e-10 whatever their order, so the devices agree to ~1e-9 there (an
         * f32 accumulator would be off by ~0.1); f32 inputs are summed in double on both and agree to the last bit */
        double tol = float_dtypes[t] == LT_F64 ? 1e4 : 1;
        CHECK(check_ln("offset", shape, 3, float_dtypes[t], c, off - 1, off + 1, NULL, tol));
        CHECK(check_ln("offset", narrow, 2, float_dtypes[t], n, -off - 1, -off + 1, NULL, tol));
        CHECK(check_ln("eps", narrow, 2, float_dtypes[t], big_eps, -0.01, 0.01, NULL, 1));
        /* the device's y is still normalised: mean ~0 and variance ~1 per row */
        lt_tensor *x = tc_to_cuda(tt_rand(shape, 3, float_dtypes[t], off - 1, off + 1), false), *y;
        CHECK_OK(lt_layer_norm(x, NULL, NULL, 0.0, &y, NULL, NULL));
        double *v = tt_values(y);
        for (int r = 0; r < 10; r++) {
            double s = 0, q = 0;
            for (int k = 0; k < 257; k++) s += v[r * 257 + k];
            for (int k = 0; k < 257; k++) q += (v[r * 257 + k] - s / 257) * (v[r * 257 + k] - s / 257);
            CHECK(fabs(s / 257) < 1e-3 && fabs(q / 257 - 1) < 1e-3);
        }
        free(v);
        lt_scope_end();
    }
}

/* Non-contiguous x, weight and bias (the op makes them contiguous), 3-D, and tc_cross_check through mul and sum. */
static void test_layouts_and_tc_cross_check(void) {
    for (int t = 0; t < 2; t++)
        for (int layout = 0; layout < 3; layout++) {
            lt_scope_begin();
            int64_t shape[3] = {2, 3, 33}, C = 33;
            lt_tensor *in[3] = {tt_layout(shape, 3, float_dtypes[t], layout),
                                tt_strided(tt_rand(&C, 1, float_dtypes[t], 0.5, 1.5)),
                                tt_strided(tt_rand(&C, 1, float_dtypes[t], -1, 1))};
            ln_case c = {true, true, 1e-5, 0};
            CHECK(check_ln("layout", shape, 3, float_dtypes[t], c, 0, 0, in[0], 1));
            CHECK(check_case("layout (strided weight and bias)", ln_op, &c, in, 3, true, 1));
            CHECK(tc_cross_check("layer_norm (tc_cross_check)", ln_op, &c, in, 3, atol_of(float_dtypes[t]),
                                 rtol_of(float_dtypes[t]), true));
            ln_case p = {false, true, 1e-5, 0};
            lt_tensor *xb[2] = {in[0], in[2]};
            CHECK(tc_cross_check("layer_norm bias only (tc_cross_check)", ln_op, &p, xb, 2, atol_of(float_dtypes[t]),
                                 rtol_of(float_dtypes[t]), true));
            lt_scope_end();
        }
}

/* No rows: nothing runs forward, and dweight and dbias are sums over no rows (0). No columns: NaN statistics. */
static void test_empty(void) {
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        int64_t rows0[3] = {0, 3, 5}, cols0[2] = {4, 0};
        ln_case c = {true, true, 1e-5, 0}, n = {false, false, 1e-5, 0};
        CHECK(check_ln("no rows", rows0, 3, float_dtypes[t], c, -1, 1, NULL, 1));
        CHECK(check_ln("no columns", cols0, 2, float_dtypes[t], n, -1, 1, NULL, 1));
        int64_t C = 5;
        lt_tensor *x = tc_to_cuda(tt_rand(rows0, 3, float_dtypes[t], -1, 1), true);
        lt_tensor *w = tc_to_cuda(tt_rand(&C, 1, float_dtypes[t], -1, 1), true), *y, *g, *gw, *r;
        CHECK_OK(lt_layer_norm(x, w, NULL, 1e-5, &y, NULL, NULL));
        CHECK_OK(lt_tensor_zeros(rows0, 3, float_dtypes[t], tc_cuda, &g));
        CHECK_OK(lt_backward_grad(y, g));
        CHECK_OK(lt_tensor_grad(w, &gw));
        CHECK_OK(lt_tensor_zeros(&C, 1, float_dtypes[t], LT_DEVICE_CPU, &r));
        CHECK(gw && tc_same("dweight over no rows", gw, r, 0, 0));
        lt_scope_end();
    }
}

/* The same inputs give the same bits on every call, the column sums included. */
static void test_repeatable(void) {
    int64_t shape[2] = {300, 129}, C = 129;
    lt_tensor *x = tt_rand(shape, 2, LT_F32, -2, 2), *w = tt_rand(&C, 1, LT_F32, -2, 2);
    lt_tensor *b = tt_rand(&C, 1, LT_F32, -2, 2), *r = tt_rand(shape, 2, LT_F32, -1, 1);
    lt_tensor *gx[2], *gw[2], *gb[2], *y[2];
    for (int k = 0; k < 2; k++) {
        lt_tensor *xd = tc_to_cuda(x, true), *wd = tc_to_cuda(w, true), *bd = tc_to_cuda(b, true);
        lt_tensor *rd = tc_to_cuda(r, false);
        CHECK_OK(lt_layer_norm(xd, wd, bd, 1e-5, &y[k], NULL, NULL));
        CHECK_OK(lt_backward_grad(y[k], rd));
        CHECK_OK(lt_tensor_grad(xd, &gx[k]));
        CHECK_OK(lt_tensor_grad(wd, &gw[k]));
        CHECK_OK(lt_tensor_grad(bd, &gb[k]));
    }
    CHECK(tc_same("y twice", y[1], y[0], 0, 0));
    CHECK(tc_same("dx twice", gx[1], gx[0], 0, 0));
    CHECK(tc_same("dweight twice", gw[1], gw[0], 0, 0));
    CHECK(tc_same("dbias twice", gb[1], gb[0], 0, 0));
}

static void test_errors(void) {
    int64_t shape[2] = {2, 3}, C = 3, C4 = 4;
    lt_tensor *out = NULL;
    lt_tensor *x = tc_to_cuda(tt_rand(shape, 2, LT_F32, -1, 1), false);
    lt_tensor *w64 = tc_to_cuda(tt_rand(&C, 1, LT_F64, -1, 1), false);
    lt_tensor *w4 = tc_to_cuda(tt_rand(&C4, 1, LT_F32, -1, 1), false);
    lt_tensor *wcpu = tt_rand(&C, 1, LT_F32, -1, 1), *h;
    CHECK_ERR_OUT(lt_layer_norm(x, w64, NULL, 1e-5, &out, NULL, NULL), out, LT_ERR_DTYPE, "lt_layer_norm");
    CHECK_ERR_OUT(lt_layer_norm(x, NULL, w4, 1e-5, &out, NULL, NULL), out, LT_ERR_SHAPE, "lt_layer_norm");
    CHECK_ERR_OUT(lt_layer_norm(x, wcpu, NULL, 1e-5, &out, NULL, NULL), out, LT_ERR_DEVICE, "lt_layer_norm");
    CHECK_ERR_OUT(lt_layer_norm(x, NULL, NULL, -1.0, &out, NULL, NULL), out, LT_ERR_ARG, "lt_layer_norm");
    CHECK_OK(lt_tensor_to(x, LT_F16, tc_cuda, &h));
    CHECK_ERR_OUT(lt_layer_norm(h, NULL, NULL, 1e-5, &out, NULL, NULL), out, LT_ERR_DTYPE, "lt_layer_norm");
}

/* ---- lt_residual_layer_norm ---- */

/* Which of weight and bias the op gets, and what it returns: 0 y, 1 s, 2 y + 0.37 s (both gradients combined). */
typedef struct res_case {
    bool w, b;
    int out;
} res_case;

/* inputs: x, r, then weight when c->w, then bias when c->b. */
static lt_status res_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const res_case *c = ctx;
    const lt_tensor *w = c->w ? in[2] : NULL, *b = c->b ? in[c->w ? 3 : 2] : NULL;
    lt_tensor *s = NULL, *y = NULL, *t = NULL;
    lt_status st = lt_residual_layer_norm(in[0], in[1], w, b, 1e-5, &s, &y);
    if (st != LT_OK || c->out < 2) {
        *out = c->out == 1 ? s : y;
        return st;
    }
    st = lt_mul_scalar(s, 0.37, &t);
    return st != LT_OK ? st : lt_add(y, t, out);
}

static bool check_res(const char *label, const int64_t *shape, int nd, lt_dtype dt, res_case c, lt_tensor *x,
                      lt_tensor *r) {
    int64_t C = shape[nd - 1];
    lt_tensor *in[4];
    int n = 0;
    in[n++] = x ? x : tt_rand(shape, nd, dt, -2, 2);
    in[n++] = r ? r : tt_rand(shape, nd, dt, -2, 2);
    if (c.w) in[n++] = tt_rand(&C, 1, dt, 0.5, 1.5);
    if (c.b) in[n++] = tt_rand(&C, 1, dt, -1, 1);
    char what[200];
    int len =
        snprintf(what, sizeof what, "residual %s %s w=%d b=%d out=%d [", label, lt_dtype_name(dt), c.w, c.b, c.out);
    for (int d = 0; d < nd; d++)
        len += snprintf(what + len, sizeof what - (size_t)len, d ? ", %lld" : "%lld", (long long)shape[d]);
    snprintf(what + len, sizeof what - (size_t)len, "]");
    return check_case(what, res_op, &c, in, n, true, 1);
}

/* Rows x widths over tc_odd_sizes: both outputs and their combined gradient; y alone with one of weight or bias. */
static void test_residual_odd_sizes(void) {
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
                lt_scope_begin();
                int64_t shape[2] = {tc_odd_sizes[i], tc_odd_sizes[j]};
                res_case both = {true, true, 2}, half = {(i + j) % 2 == 0, (i + j) % 2 == 1, 0};
                res_case sum = {false, (i + j) % 2 == 0, 1};
                CHECK(check_res("odd", shape, 2, float_dtypes[t], both, NULL, NULL));
                CHECK(check_res("odd", shape, 2, float_dtypes[t], half, NULL, NULL));
                CHECK(check_res("odd", shape, 2, float_dtypes[t], sum, NULL, NULL));
                lt_scope_end();
            }
}

/* Non-contiguous x and r, the block-per-row kernel (width over 1024), no rows; and on the device, s and y equal
 * lt_add then lt_layer_norm bit for bit. */
static void test_residual_layouts_and_fused_bits(void) {
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        int64_t shape[3] = {2, 3, 33}, wide[2] = {3, 1025}, none[2] = {0, 7};
        res_case both = {true, true, 2};
        for (int layout = 0; layout < 3; layout++)
            CHECK(check_res("layout", shape, 3, float_dtypes[t], both, tt_layout(shape, 3, float_dtypes[t], layout),
                            tt_layout(shape, 3, float_dtypes[t], (layout + 1) % 3)));
        CHECK(check_res("wide", wide, 2, float_dtypes[t], both, NULL, NULL));
        CHECK(check_res("no rows", none, 2, float_dtypes[t], both, NULL, NULL));
        int64_t sh[2] = {37, 257}, C = 257;
        lt_tensor *x = tc_to_cuda(tt_rand(sh, 2, float_dtypes[t], -2, 2), false);
        lt_tensor *r = tc_to_cuda(tt_rand(sh, 2, float_dtypes[t], -2, 2), false);
        lt_tensor *w = tc_to_cuda(tt_rand(&C, 1, float_dtypes[t], 0.5, 1.5), false);
        lt_tensor *s, *y, *s2, *y2;
        CHECK_OK(lt_residual_layer_norm(x, r, w, w, 1e-5, &s, &y));
        CHECK_OK(lt_add(x, r, &s2));
        CHECK_OK(lt_layer_norm(s2, w, w, 1e-5, &y2, NULL, NULL));
        CHECK(tc_same("fused s vs lt_add", s, s2, 0, 0));
        CHECK(tc_same("fused y vs lt_add + lt_layer_norm", y, y2, 0, 0));
        lt_scope_end();
    }
}

static void test_residual_errors(void) {
    const char *fn = "lt_residual_layer_norm";
    int64_t shape[2] = {2, 3}, shape2[2] = {3, 2};
    lt_tensor *s = NULL, *y = NULL, *h;
    lt_tensor *x = tc_to_cuda(tt_rand(shape, 2, LT_F32, -1, 1), false);
    lt_tensor *r64 = tc_to_cuda(tt_rand(shape, 2, LT_F64, -1, 1), false);
    lt_tensor *rt = tc_to_cuda(tt_rand(shape2, 2, LT_F32, -1, 1), false);
    lt_tensor *rcpu = tt_rand(shape, 2, LT_F32, -1, 1);
    CHECK_ERR(lt_residual_layer_norm(x, r64, NULL, NULL, 1e-5, &s, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_residual_layer_norm(x, rt, NULL, NULL, 1e-5, &s, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_residual_layer_norm(x, rcpu, NULL, NULL, 1e-5, &s, &y), LT_ERR_DEVICE, fn);
    CHECK_OK(lt_tensor_to(x, LT_F16, tc_cuda, &h));
    CHECK_ERR(lt_residual_layer_norm(h, h, NULL, NULL, 1e-5, &s, &y), LT_ERR_DTYPE, fn);
    CHECK(s == NULL && y == NULL);
}

int main(void) {
    tc_require_cuda();
    tt_seed(12);
    RUN(test_odd_sizes);
    RUN(test_wide_and_tall);
    RUN(test_mean_offset_and_eps);
    RUN(test_layouts_and_tc_cross_check);
    RUN(test_empty);
    RUN(test_repeatable);
    RUN(test_errors);
    RUN(test_residual_odd_sizes);
    RUN(test_residual_layouts_and_fused_bits);
    RUN(test_residual_errors);
    return tt_finish();
}
