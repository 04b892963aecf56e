/* Tests of lt_cross_entropy: losses against a naive f64 reference for every reduction, with ignored targets,
 * i32 and i64 targets, strided and transposed logits, both float dtypes; gradients by finite differences;
 * the empty and all-ignored cases; error paths, including the row and value of a bad target. */
#include "test.h"

static const char *fn = "lt_cross_entropy";

/* Per-row losses of row-major logits [N, C] (0 where ignored), then the reduction; writes n_out values. */
static void reference(const double *x, const int64_t *t, int64_t N, int64_t C, int64_t ignore, lt_reduction red,
                      double *out) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) {
        double loss = 0;
        if (t[n] != ignore) {
            double m = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++) m = fmax(m, x[n * C + c]);
            for (int64_t c = 0; c < C; c++) s += exp(x[n * C + c] - m);
            loss = m + log(s) - x[n * C + t[n]];
            count++;
        }
        if (red == LT_REDUCE_NONE) out[n] = loss;
        sum += loss;
    }
    if (red == LT_REDUCE_SUM) out[0] = sum;
    if (red == LT_REDUCE_MEAN) out[0] = sum / (double)count;
}

/* Targets in [0, C), with every `every`-th row (from row 1) set to ignore (every == 0: none ignored). */
static int64_t *draw_targets(int64_t N, int64_t C, int64_t ignore, int every) {
    int64_t *t = malloc(sizeof(int64_t) * (size_t)(N + 1));
    for (int64_t n = 0; n < N; n++) {
        t[n] = (int64_t)tt_uniform(0, (double)C);
        if (t[n] >= C) t[n] = C - 1;
        if (every && n % every == 1) t[n] = ignore;
    }
    return t;
}

static lt_tensor *targets_tensor(const int64_t *t, int64_t N, bool one_d, lt_dtype dt) {
    double *v = malloc(sizeof(double) * (size_t)(N + 1));
    for (int64_t n = 0; n < N; n++) v[n] = (double)t[n];
    lt_tensor *d = NULL, *out = NULL;
    if (lt_tensor_from_host(v, &N, one_d ? 1 : 0, LT_F64, LT_DEVICE_CPU, &d) != LT_OK ||
        lt_tensor_to(d, dt, LT_DEVICE_CPU, &out) != LT_OK)
        abort();
    free(v);
    return out;
}

/* logits [N, C] stored three ways: contiguous, strided (every other element), a transposed [C, N] buffer. */
static lt_tensor *make_logits(int64_t N, int64_t C, lt_dtype dt, int layout) {
    int64_t shape[2] = {N, C}, rev[2] = {C, N};
    if (layout == 0) return tt_rand(shape, 2, dt, -3, 3);
    if (layout == 1) return tt_strided(tt_rand(shape, 2, dt, -3, 3));
    lt_tensor *v = NULL;
    if (lt_transpose(tt_rand(rev, 2, dt, -3, 3), 0, 1, &v) != LT_OK) abort();
    return v;
}

static bool check_one(const lt_tensor *logits, const lt_tensor *targets, const int64_t *t, int64_t ignore,
                      lt_reduction red, double tol, const char *what) {
    int nd = lt_tensor_ndim(logits);
    int64_t N = nd == 2 ? lt_tensor_dim(logits, 0) : 1, C = lt_tensor_dim(logits, -1);
    lt_tensor *y = NULL;
    if (lt_cross_entropy(logits, targets, ignore, red, &y) != LT_OK) {
        fprintf(stderr, "%s: failed: %s\n", what, lt_last_error());
        return false;
    }
    int want_nd = red == LT_REDUCE_NONE ? nd - 1 : 0;
    bool ok = lt_tensor_ndim(y) == want_nd && (want_nd == 0 || lt_tensor_dim(y, 0) == N);
    if (!ok) fprintf(stderr, "%s: output has %d dims, expected %d\n", what, lt_tensor_ndim(y), want_nd);
    double *x = tt_values(logits), *ref = malloc(sizeof(double) * (size_t)(N + 1));
    reference(x, t, N, C, ignore, red, ref);
    ok = ok && tt_tensor_close(what, y, ref, tol, tol);
    free(x);
    free(ref);
    return ok;
}

static void test_forward(void) {
    static const struct { int64_t N, C; } cases[] = {{1, 1}, {7, 13}, {13, 31}, {5, 3}, {300, 1000}};
    static const int64_t ignores[2] = {-100, 2};
    tt_seed(41);
    char what[160];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c].N, C = cases[c].C;
        for (int dt = 0; dt < 2; dt++)
            for (int layout = 0; layout < 3; layout++) {
                lt_tensor *logits = make_logits(N, C, dt ? LT_F64 : LT_F32, layout);
                for (int ig = 0; ig < 2; ig++) {
                    int64_t *t = draw_targets(N, C, ignores[ig], 3);
                    for (int tdt = 0; tdt < 2; tdt++) {
                        lt_tensor *targets = targets_tensor(t, N, true, tdt ? LT_I64 : LT_I32);
                        if (layout == 1) targets = tt_strided(targets);
                        for (int red = 0; red < 3; red++) {
                            snprintf(what, sizeof what, "cross_entropy %lldx%lld %s layout %d ignore %lld %s red %d",
                                     (long long)N, (long long)C, dt ? "f64" : "f32", layout, (long long)ignores[ig],
                                     tdt ? "i64" : "i32", red);
                            CHECK(check_one(logits, targets, t, ignores[ig], red, dt ? 1e-12 : 1e-5, what));
                        }
                    }
                    free(t);
                }
            }
    }
}

/* One row given as logits [C] with a 0-d target: every reduction gives a 0-d loss. */
static void test_single_row(void) {
    tt_seed(42);
    int64_t C = 7, t = 4;
    lt_tensor *logits = tt_rand(&C, 1, LT_F64, -3, 3), *target = targets_tensor(&t, 1, false, LT_I64);
    for (int red = 0; red < 3; red++) CHECK(check_one(logits, target, &t, -100, red, 1e-12, "single row"));
}

/* Logits of magnitude 1000 must not overflow: the row max is subtracted before exp. */
static void test_large_logits(void) {
    tt_seed(43);
    int64_t shape[2] = {6, 11};
    for (int dt = 0; dt < 2; dt++) {
        lt_tensor *logits = tt_rand(shape, 2, dt ? LT_F64 : LT_F32, -1000, 1000);
        int64_t *t = draw_targets(6, 11, -100, 0);
        lt_tensor *targets = targets_tensor(t, 6, true, LT_I64);
        CHECK(check_one(logits, targets, t, -100, LT_REDUCE_NONE, dt ? 1e-10 : 1e-3, "large logits"));
        free(t);
    }
}

/* Every row ignored: the mean is NaN (0 / 0, as PyTorch), the sum 0; and no rows at all behaves the same. */
static void test_all_ignored_and_empty(void) {
    tt_seed(44);
    int64_t shape[2] = {4, 5}, t[4] = {-1, -1, -1, -1}, empty[2] = {0, 5}, zero = 0;
    lt_tensor *logits = tt_rand(shape, 2, LT_F32, -1, 1), *targets = targets_tensor(t, 4, true, LT_I32), *y = NULL;
    double nan = NAN, z = 0, zeros[4] = {0, 0, 0, 0};
    CHECK_OK(lt_cross_entropy(logits, targets, -1, LT_REDUCE_MEAN, &y));
    CHECK(tt_tensor_close("all ignored mean", y, &nan, 0, 0));
    CHECK_OK(lt_cross_entropy(logits, targets, -1, LT_REDUCE_SUM, &y));
    CHECK(tt_tensor_close("all ignored sum", y, &z, 0, 0));
    CHECK_OK(lt_cross_entropy(logits, targets, -1, LT_REDUCE_NONE, &y));
    CHECK(tt_tensor_close("all ignored none", y, zeros, 0, 0));

    lt_tensor *el = tt_rand(empty, 2, LT_F64, -1, 1), *et = NULL;
    CHECK_OK(lt_tensor_empty(&zero, 1, LT_I64, LT_DEVICE_CPU, &et));
    CHECK_OK(lt_cross_entropy(el, et, -100, LT_REDUCE_MEAN, &y));
    CHECK(tt_tensor_close("empty mean", y, &nan, 0, 0));
    CHECK_OK(lt_cross_entropy(el, et, -100, LT_REDUCE_SUM, &y));
    CHECK(tt_tensor_close("empty sum", y, &z, 0, 0));
    CHECK_OK(lt_cross_entropy(el, et, -100, LT_REDUCE_NONE, &y));
    CHECK(lt_tensor_ndim(y) == 1 && lt_tensor_numel(y) == 0);
}

typedef struct ce_ctx {
    const lt_tensor *targets;
    int64_t ignore;
    lt_reduction red;
    bool transpose; /* the leaf is [C, N] and the op sees its transpose */
} ce_ctx;

static lt_status ce_fn(void *ctx, lt_tensor **inputs, lt_tensor **out) {
    ce_ctx *c = ctx;
    lt_tensor *x = inputs[0];
    if (c->transpose) {
        lt_status st = lt_transpose(inputs[0], 0, 1, &x);
        if (st != LT_OK) return st;
    }
    return lt_cross_entropy(x, c->targets, c->ignore, c->red, out);
}

static void test_gradcheck(void) {
    tt_seed(45);
    int64_t N = 6, C = 5, shape[2] = {6, 5}, rev[2] = {5, 6};
    char what[80];
    for (int red = 0; red < 3; red++)
        for (int tr = 0; tr < 2; tr++) {
            int64_t *t = draw_targets(N, C, -100, 3); /* rows 1 and 4 ignored */
            ce_ctx ctx = {targets_tensor(t, N, true, tr ? LT_I32 : LT_I64), -100, red, tr};
            lt_tensor *x = tt_leaf(tr ? rev : shape, 2, -3, 3);
            snprintf(what, sizeof what, "cross_entropy gradcheck reduction %d%s", red, tr ? " transposed" : "");
            CHECK(tt_gradcheck(what, ce_fn, &ctx, &x, 1));
            free(t);
        }
    int64_t t = 2;
    for (int red = 0; red < 3; red++) {
        ce_ctx ctx = {targets_tensor(&t, 1, false, LT_I64), -100, red, false};
        lt_tensor *x = tt_leaf(&C, 1, -3, 3);
        snprintf(what, sizeof what, "cross_entropy gradcheck single row reduction %d", red);
        CHECK(tt_gradcheck(what, ce_fn, &ctx, &x, 1));
    }
}

static void test_errors(void) {
    int64_t shape[2] = {4, 5}, four = 4, cube[3] = {2, 2, 5}, five = 5;
    int64_t good[4] = {0, 4, 1, 2}, high[4] = {0, 1, 5, 2}, neg[4] = {0, -1, 1, 2};
    lt_tensor *x = tt_rand(shape, 2, LT_F32, -1, 1), *t = targets_tensor(good, 4, true, LT_I64), *y = NULL;
    lt_tensor *xi = tt_randint(shape, 2, LT_I32, 5), *tf = tt_rand(&four, 1, LT_F32, 0, 4);
    lt_tensor *tu8 = tt_randint(&four, 1, LT_U8, 5), *t3 = targets_tensor(good, 3, true, LT_I64);
    lt_tensor *x3 = tt_rand(cube, 3, LT_F32, -1, 1), *x1 = tt_rand(&five, 1, LT_F32, -1, 1);
    lt_tensor *t0 = targets_tensor(good, 1, false, LT_I64);
    CHECK_ERR(lt_cross_entropy(NULL, t, -100, LT_REDUCE_MEAN, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_cross_entropy(x, NULL, -100, LT_REDUCE_MEAN, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_cross_entropy(x, t, -100, LT_REDUCE_MEAN, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_cross_entropy(xi, t, -100, LT_REDUCE_MEAN, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_cross_entropy(x, tf, -100, LT_REDUCE_MEAN, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_cross_entropy(x, tu8, -100, LT_REDUCE_MEAN, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_cross_entropy(x, t3, -100, LT_REDUCE_MEAN, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_cross_entropy(x3, t, -100, LT_REDUCE_MEAN, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_cross_entropy(x1, t, -100, LT_REDUCE_MEAN, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_cross_entropy(x, t0, -100, LT_REDUCE_MEAN, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_cross_entropy(x, t, -100, (lt_reduction)7, &y), LT_ERR_ARG, fn);
    CHECK(y == NULL);

    for (int dt = 0; dt < 2; dt++) {
        lt_dtype tdt = dt ? LT_I64 : LT_I32;
        CHECK_ERR(lt_cross_entropy(x, targets_tensor(high, 4, true, tdt), -100, LT_REDUCE_SUM, &y), LT_ERR_RANGE, fn);
        CHECK(strstr(lt_last_error(), "row 2") && strstr(lt_last_error(), "target 5"));
        CHECK_ERR(lt_cross_entropy(x, targets_tensor(neg, 4, true, tdt), -100, LT_REDUCE_NONE, &y), LT_ERR_RANGE, fn);
        CHECK(strstr(lt_last_error(), "row 1") && strstr(lt_last_error(), "target -1"));
        CHECK(y == NULL);
    }
    /* -1 is fine when it is the ignore_index */
    CHECK_OK(lt_cross_entropy(x, targets_tensor(neg, 4, true, LT_I64), -1, LT_REDUCE_MEAN, &y));
}

/* Outside any scope only the returned loss stays alive. */
static void test_no_scope_ownership(void) {
    int64_t shape[2] = {6, 5}, t[6] = {0, 4, -100, 2, 1, 3};
    lt_alloc_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    lt_scope_end(); /* leave RUN's scope; tensors made now belong to this function */
    lt_tensor *x = tt_strided(tt_rand(shape, 2, LT_F64, -1, 1)), *targets = targets_tensor(t, 6, true, LT_I32);
    lt_tensor_set_requires_grad(x, true);
    bool ok = lt_alloc_get_stats(LT_DEVICE_CPU, &before) == LT_OK;
    for (int i = 0; i < 30; i++) {
        lt_tensor *y = NULL;
        ok &= lt_cross_entropy(x, targets, -100, (lt_reduction)(i % 3), &y) == LT_OK;
        lt_tensor_release(y);
    }
    ok &= lt_alloc_get_stats(LT_DEVICE_CPU, &after) == LT_OK;
    lt_tensor_release(x);
    lt_tensor_release(targets);
    lt_scope_begin();
    CHECK(ok);
    CHECK(after.bytes_in_use == before.bytes_in_use);
}

int main(void) {
    RUN(test_forward);
    RUN(test_single_row);
    RUN(test_large_logits);
    RUN(test_all_ignored_and_empty);
    RUN(test_gradcheck);
    RUN(test_errors);
    RUN(test_no_scope_ownership);
    return tt_finish();
}
