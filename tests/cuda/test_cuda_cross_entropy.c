/* The CUDA backend's cross-entropy entries against the CPU: lt_cross_entropy forward and backward (every
 * reduction; i32 and i64 targets; ignore_index rows, a valid class as ignore_index included) and the fused
 * classifier loss lt_classifier_loss, whose classifier_ce entry turns padded logits [N, Vp] into their gradient in
 * place (with and without gradients, padding columns and ignored rows exactly 0). f32 and f64, rows and classes
 * around a warp and a block (warp-per-row and block-per-row kernels), 50257 classes, huge and infinite logits,
 * bitwise repeatability, and the errors. */
#include "cuda_check.h"

typedef struct ce_case {
    int64_t ignore;
    lt_reduction reduction;
} ce_case;

/* inputs: logits, targets */
static lt_status ce_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const ce_case *c = ctx;
    return lt_cross_entropy(in[0], in[1], c->ignore, c->reduction, out);
}

typedef struct cls_case {
    int64_t vocab, ignore;
} cls_case;

/* inputs: x [N, C], w [Vp, C], targets [N] */
static lt_status cls_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const cls_case *c = ctx;
    return lt_classifier_loss(in[0], in[1], in[2], c->vocab, c->ignore, out);
}

static const lt_dtype float_dtypes[2] = {LT_F32, LT_F64};
static double atol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-5 : 1e-12; }
static double rtol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-5 : 1e-11; }
static const char *reduction_name(lt_reduction r) {
    return r == LT_REDUCE_MEAN ? "mean" : r == LT_REDUCE_SUM ? "sum" : "none";
}

/* op on both devices; with `backward`, also the gradient of every float input for one random upstream gradient
 * (exactly 1 when `unit`: lt_backward(loss), the classifier's common case). */
static bool check_case(const char *what, tc_op op, void *ctx, lt_tensor **in, int n, bool backward, bool unit) {
    lt_dtype dt = lt_tensor_dtype(in[0]);
    return tc_check_grad(what, op, ctx, in, n, backward, unit, atol_of(dt), rtol_of(dt));
}

/* Targets [n] in [0, classes) of dtype dt, with every `every`-th one (from `first`) set to ignore (every 0: none). */
static lt_tensor *make_targets(int64_t n, int64_t classes, lt_dtype dt, int64_t ignore, int64_t first, int64_t every) {
    lt_tensor *t = tt_randint(&n, 1, LT_I64, classes), *out;
    int64_t *p = lt_tensor_data(t);
    for (int64_t i = first; every > 0 && i < n; i += every) p[i] = ignore;
    if (lt_tensor_to(t, dt, LT_DEVICE_CPU, &out) != LT_OK) abort();
    return out;
}

/* Rows x classes over tc_odd_sizes: each reduction, i32 and i64 targets, a third of the rows ignored. */
static void test_odd_sizes(void) {
    static const lt_reduction reds[3] = {LT_REDUCE_NONE, LT_REDUCE_MEAN, LT_REDUCE_SUM};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
                lt_scope_begin();
                int64_t N = tc_odd_sizes[i], C = tc_odd_sizes[j];
                int64_t shape[2] = {N, C};
                lt_dtype tdt = (i + j) % 2 ? LT_I32 : LT_I64;
                ce_case c = {-100, reds[(i + j + t) % 3]};
                lt_tensor *in[2] = {tt_rand(shape, 2, float_dtypes[t], -4, 4), make_targets(N, C, tdt, c.ignore, 1, 3)};
                char what[160];
                snprintf(what, sizeof what, "cross_entropy %s %s [%lld, %lld] %s targets",
                         lt_dtype_name(float_dtypes[t]), reduction_name(c.reduction), (long long)N, (long long)C,
                         lt_dtype_name(tdt));
                CHECK(check_case(what, ce_op, &c, in, 2, true, false));
                /* per-row losses always (only this family's entries on the device) */
                c.reduction = LT_REDUCE_NONE;
                CHECK(check_case(what, ce_op, &c, in, 2, true, false));
                lt_scope_end();
            }
}

/* A valid class as ignore_index; every row ignored (the mean is NaN, the gradient 0); logits [C] with a 0-d target;
 * tc_cross_check through mul and sum. */
static void test_ignore_and_shapes(void) {
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        lt_dtype dt = float_dtypes[t];
        int64_t shape[2] = {40, 7}, C = 33;
        lt_tensor *x = tt_rand(shape, 2, dt, -3, 3);
        lt_tensor *in[2] = {x, make_targets(40, 7, LT_I32, 0, 0, 0)}; /* class 0 ignored where it occurs */
        ce_case c0 = {0, LT_REDUCE_MEAN}, none = {0, LT_REDUCE_NONE};
        CHECK(check_case("ignore_index 0", ce_op, &c0, in, 2, true, false));
        CHECK(check_case("ignore_index 0 (none)", ce_op, &none, in, 2, true, false));
        lt_tensor *all[2] = {x, make_targets(40, 7, LT_I64, -1, 0, 1)};
        ce_case m = {-1, LT_REDUCE_MEAN}, s = {-1, LT_REDUCE_SUM};
        CHECK(check_case("every row ignored (mean)", ce_op, &m, all, 2, true, false));
        CHECK(check_case("every row ignored (sum)", ce_op, &s, all, 2, true, false));
        lt_tensor *one[2] = {tt_rand(&C, 1, dt, -3, 3), NULL};
        int64_t target = 17;
        CHECK_OK(lt_tensor_from_host(&target, NULL, 0, LT_I64, LT_DEVICE_CPU, &one[1]));
        CHECK(check_case("logits [C], target []", ce_op, &m, one, 2, true, false));
        for (int r = 0; r < 3; r++) {
            ce_case c = {-100, (lt_reduction)r};
            lt_tensor *tin[2] = {x, make_targets(40, 7, r == 1 ? LT_I32 : LT_I64, -100, 2, 5)};
            CHECK(tc_cross_check("cross_entropy (tc_cross_check)", ce_op, &c, tin, 2, atol_of(dt), rtol_of(dt), true));
        }
        lt_scope_end();
    }
}

/* 50257 classes (block-per-row kernels), a few rows, one ignored. */
static void test_long_rows(void) {
    static const int64_t classes[] = {1025, 50257};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            lt_scope_begin();
            int64_t N = k == 1 ? 3 : 5, shape[2] = {N, classes[k]};
            ce_case c = {-100, LT_REDUCE_NONE};
            lt_tensor *in[2] = {tt_rand(shape, 2, float_dtypes[t], -6, 6),
                                make_targets(N, classes[k], t ? LT_I32 : LT_I64, -100, 1, 3)};
            CHECK(check_case("cross_entropy long rows", ce_op, &c, in, 2, true, false));
            lt_scope_end();
        }
}

/* Logits of +-1e4 (exp overflows without the max subtracted) and -inf logits away from the targets. */
static void test_huge_and_infinite(void) {
    enum { N = 6, C = 45 };
    double v[N * C];
    for (int i = 0; i < N * C; i++) v[i] = tt_uniform(0, 1) < 0.5 ? -1e4 : 1e4 + tt_uniform(-3, 3);
    for (int j = 0; j < C; j++) v[4 * C + j] = j % 3 ? -INFINITY : tt_uniform(-1e4, 1e4);
    for (int j = 0; j < C; j++) v[5 * C + j] = j == 0 ? -INFINITY : tt_uniform(-1e4, 1e4);
    int64_t tg[N] = {3, 44, 0, 17, 3, 6}, shape[2] = {N, C}, n = N;
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        lt_tensor *x, *xd, *tt;
        CHECK_OK(lt_tensor_from_host(v, shape, 2, LT_F64, LT_DEVICE_CPU, &x));
        CHECK_OK(lt_tensor_to(x, float_dtypes[t], LT_DEVICE_CPU, &xd));
        CHECK_OK(lt_tensor_from_host(tg, &n, 1, LT_I64, LT_DEVICE_CPU, &tt));
        lt_tensor *in[2] = {xd, tt};
        ce_case c = {-100, LT_REDUCE_NONE};
        CHECK(check_case("cross_entropy huge logits", ce_op, &c, in, 2, true, false));
        lt_tensor *g, *gt, *loss;
        CHECK_OK(lt_tensor_to(xd, float_dtypes[t], tc_cuda, &g));
        CHECK_OK(lt_tensor_to(tt, LT_I64, tc_cuda, &gt));
        CHECK_OK(lt_cross_entropy(g, gt, -100, LT_REDUCE_NONE, &loss));
        double *lv = tt_values(loss);
        for (int i = 0; i < N; i++) CHECK(isfinite(lv[i]) && lv[i] >= 0);
        free(lv);
        lt_scope_end();
    }
}

/* x [N, Cin], w [Vp, Cin], targets in [0, V) with some rows ignored: loss and the gradients of x and w through the
 * in-place classifier_ce, with random and unit upstream gradients, and without gradients. */
static bool check_classifier(int64_t N, int64_t V, int64_t Vp, int64_t Cin, lt_dtype dt, lt_dtype tdt, double range,
                             bool grad) {
    int64_t xs[2] = {N, Cin}, ws[2] = {Vp, Cin};
    cls_case c = {V, -1};
    lt_tensor *in[3] = {tt_rand(xs, 2, dt, -range, range), tt_rand(ws, 2, dt, -range, range),
                        make_targets(N, V, tdt, -1, 2, 4)};
    char what[200];
    snprintf(what, sizeof what, "classifier %s N=%lld V=%lld Vp=%lld C=%lld %s targets range %g%s", lt_dtype_name(dt),
             (long long)N, (long long)V, (long long)Vp, (long long)Cin, lt_dtype_name(tdt), range,
             grad ? "" : " (no grad)");
    double atol = dt == LT_F32 ? 2e-5 : 1e-12, rtol = dt == LT_F32 ? 1e-4 : 1e-10;
    bool ok = check_case(what, cls_op, &c, in, 3, grad, true);
    if (grad) ok &= tc_cross_check(what, cls_op, &c, in, 3, atol, rtol, true);
    return ok;
}

static void test_classifier(void) {
    static const int64_t vocab[][2] = {{1, 1}, {1, 32}, {31, 33}, {33, 64}, {255, 257}, {257, 300}};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            for (int v = 0; v < 6; v++) {
                lt_scope_begin();
                lt_dtype tdt = (i + v) % 2 ? LT_I32 : LT_I64;
                CHECK(
                    check_classifier(tc_odd_sizes[i], vocab[v][0], vocab[v][1], 3 + v, float_dtypes[t], tdt, 1, true));
                if ((i + v) % 3 == 0)
                    CHECK(
                        check_classifier(tc_odd_sizes[i], vocab[v][0], vocab[v][1], 4, float_dtypes[t], tdt, 1, false));
                lt_scope_end();
            }
}

/* GPT-2's head (V 50257 padded to 50304; block-per-row kernel) and logits near +-1e4. */
static void test_classifier_large(void) {
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        CHECK(check_classifier(3, 50257, 50304, 2, float_dtypes[t], LT_I32, 1, true));
        CHECK(check_classifier(3, 50257, 50304, 2, float_dtypes[t], LT_I64, 1, false));
        CHECK(check_classifier(9, 40, 48, 1, float_dtypes[t], LT_I64, 100, true)); /* logits up to 1e4 */
        lt_scope_end();
    }
}

/* Rows of ignored targets give dx rows of exactly 0; padding rows V..Vp-1 of dw are exactly 0 (the padding
 * columns of the in-place gradient were zeroed). */
static void test_classifier_zeros(void) {
    for (int t = 0; t < 2; t++) {
        lt_scope_begin();
        enum { N = 33, V = 31, VP = 40, C = 5 };
        int64_t xs[2] = {N, C}, ws[2] = {VP, C};
        lt_tensor *x = tc_to_cuda(tt_rand(xs, 2, float_dtypes[t], -1, 1), true);
        lt_tensor *w = tc_to_cuda(tt_rand(ws, 2, float_dtypes[t], -1, 1), true);
        lt_tensor *tg = tc_to_cuda(make_targets(N, V, LT_I32, -1, 0, 4), false), *loss, *gx, *gw;
        CHECK_OK(lt_classifier_loss(x, w, tg, V, -1, &loss));
        CHECK_OK(lt_backward(loss));
        CHECK_OK(lt_tensor_grad(x, &gx));
        CHECK_OK(lt_tensor_grad(w, &gw));
        double *a = tt_values(gx), *b = tt_values(gw);
        for (int r = 0; r < N; r += 4)
            for (int k = 0; k < C; k++) CHECK(a[r * C + k] == 0);
        for (int r = V; r < VP; r++)
            for (int k = 0; k < C; k++) CHECK(b[r * C + k] == 0);
        free(a);
        free(b);
        lt_scope_end();
    }
}

/* The same inputs give the same bits on every call. */
static void test_repeatable(void) {
    int64_t shape[2] = {4, 50257}, xs[2] = {70, 6}, ws[2] = {1030, 6};
    lt_tensor *x = tc_to_cuda(tt_rand(shape, 2, LT_F32, -8, 8), false);
    lt_tensor *t = tc_to_cuda(make_targets(4, 50257, LT_I64, -100, 0, 0), false), *a, *b;
    CHECK_OK(lt_cross_entropy(x, t, -100, LT_REDUCE_NONE, &a));
    CHECK_OK(lt_cross_entropy(x, t, -100, LT_REDUCE_NONE, &b));
    CHECK(tc_same("cross_entropy twice", a, b, 0, 0));
    lt_tensor *cx = tc_to_cuda(tt_rand(xs, 2, LT_F32, -1, 1), false),
              *cw = tc_to_cuda(tt_rand(ws, 2, LT_F32, -1, 1), false);
    lt_tensor *ct = tc_to_cuda(make_targets(70, 1025, LT_I32, -1, 0, 7), false);
    CHECK_OK(lt_classifier_loss(cx, cw, ct, 1025, -1, &a));
    CHECK_OK(lt_classifier_loss(cx, cw, ct, 1025, -1, &b));
    CHECK(tc_same("classifier loss twice", a, b, 0, 0));
}

static void test_errors(void) {
    int64_t shape[2] = {3, 5}, n = 3, bad_i64[3] = {0, 5, 1}, xs[2] = {3, 2}, ws[2] = {6, 2};
    int32_t bad_i32[3] = {1, -2, 0};
    lt_tensor *out = NULL, *t64, *t32, *tf, *tcpu;
    lt_tensor *x = tc_to_cuda(tt_rand(shape, 2, LT_F32, -1, 1), false);
    CHECK_OK(lt_tensor_from_host(bad_i64, &n, 1, LT_I64, tc_cuda, &t64));
    CHECK_OK(lt_tensor_from_host(bad_i32, &n, 1, LT_I32, tc_cuda, &t32));
    CHECK_ERR_OUT(lt_cross_entropy(x, t64, -100, LT_REDUCE_MEAN, &out), out, LT_ERR_RANGE, "lt_cross_entropy");
    CHECK_ERR_OUT(lt_cross_entropy(x, t32, -100, LT_REDUCE_NONE, &out), out, LT_ERR_RANGE, "lt_cross_entropy");
    CHECK_OK(lt_tensor_to(t64, LT_F32, tc_cuda, &tf));
    CHECK_ERR_OUT(lt_cross_entropy(x, tf, -100, LT_REDUCE_MEAN, &out), out, LT_ERR_DTYPE, "lt_cross_entropy");
    tcpu = make_targets(3, 5, LT_I64, -100, 0, 0);
    CHECK_ERR_OUT(lt_cross_entropy(x, tcpu, -100, LT_REDUCE_MEAN, &out), out, LT_ERR_DEVICE, "lt_cross_entropy");
    lt_tensor *cx = tc_to_cuda(tt_rand(xs, 2, LT_F32, -1, 1), false),
              *cw = tc_to_cuda(tt_rand(ws, 2, LT_F32, -1, 1), false);
    CHECK_ERR_OUT(lt_classifier_loss(cx, cw, t64, 5, -100, &out), out, LT_ERR_RANGE, "lt_classifier_loss");
    CHECK_ERR_OUT(lt_classifier_loss(cx, cw, t32, 6, -100, &out), out, LT_ERR_RANGE, "lt_classifier_loss");
    CHECK_ERR_OUT(lt_classifier_loss(cx, cw, t64, 7, -100, &out), out, LT_ERR_ARG, "lt_classifier_loss");
}

int main(void) {
    tc_require_cuda();
    tt_seed(13);
    RUN(test_odd_sizes);
    RUN(test_ignore_and_shapes);
    RUN(test_long_rows);
    RUN(test_huge_and_infinite);
    RUN(test_classifier);
    RUN(test_classifier_large);
    RUN(test_classifier_zeros);
    RUN(test_repeatable);
    RUN(test_errors);
    return tt_finish();
}
