/* Tests of lt_classifier_loss: loss and gradients of x and w against naive logits + log-softmax in f64, with padding
 * columns (V < Vp), ignored rows, several chunks (N not a multiple of the chunk), i32/i64 and strided targets, strided
 * x, both float dtypes; upstream gradients other than 1; finite differences; all rows ignored (NaN loss, as PyTorch,
 * and zero gradients); no-grad; error paths. */
#include "test.h"

static const char *fn = "lt_classifier_loss";

/* Mean loss over counted rows and, for an upstream gradient g, dx [N, C] and dw [Vp, C], for row-major x [N, C] and
 * w [Vp, C]: logits = x w^T, softmax over the first V columns, dlogits = g (p - onehot) / count. */
static double reference(const double *x, const double *w, const int64_t *t, int64_t N, int64_t C, int64_t Vp, int64_t V,
                        int64_t ignore, double g, double *dx, double *dw) {
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) count += t[n] != ignore;
    double *z = malloc(sizeof(double) * (size_t)(Vp + 1)), sum = 0;
    for (int64_t i = 0; i < N * C; i++) dx[i] = 0;
    for (int64_t i = 0; i < Vp * C; i++) dw[i] = 0;
    for (int64_t n = 0; n < N; n++) {
        if (t[n] == ignore) continue;
        double m = -INFINITY, s = 0;
        for (int64_t v = 0; v < V; v++) {
            double acc = 0;
            for (int64_t c = 0; c < C; c++) acc += x[n * C + c] * w[v * C + c];
            z[v] = acc;
            m = fmax(m, acc);
        }
        for (int64_t v = 0; v < V; v++) s += exp(z[v] - m);
        double lse = m + log(s);
        sum += lse - z[t[n]];
        for (int64_t v = 0; v < V; v++) {
            double d = g * (exp(z[v] - lse) - (v == t[n])) / (double)count;
            for (int64_t c = 0; c < C; c++) {
                dx[n * C + c] += d * w[v * C + c];
                dw[v * C + c] += d * x[n * C + c];
            }
        }
    }
    free(z);
    return sum / (double)count;
}

static lt_tensor *targets_tensor(const int64_t *t, int64_t N, lt_dtype dt) {
    double *v = malloc(sizeof(double) * (size_t)(N + 1));
    for (int64_t n = 0; n < N; n++) v[n] = (double)t[n];
    lt_tensor *d = NULL, *out = NULL;
    if (lt_tensor_from_host(v, &N, 1, LT_F64, LT_DEVICE_CPU, &d) != LT_OK ||
        lt_tensor_to(d, dt, LT_DEVICE_CPU, &out) != LT_OK)
        abort();
    free(v);
    return out;
}

/* Targets in [0, V), every `every`-th row (from row 1) ignored (every == 0: none). */
static int64_t *draw_targets(int64_t N, int64_t V, int64_t ignore, int every) {
    int64_t *t = malloc(sizeof(int64_t) * (size_t)(N + 1));
    for (int64_t n = 0; n < N; n++) {
        t[n] = (int64_t)tt_uniform(0, (double)V);
        if (t[n] >= V) t[n] = V - 1;
        if (every && n % every == 1) t[n] = ignore;
    }
    return t;
}

typedef struct cfg {
    int64_t N, C, Vp, V;
    lt_dtype dt, tdt;
    int every;    /* ignore every every-th row */
    bool strided; /* x and targets non-contiguous */
    double g;     /* upstream gradient */
} cfg;

static bool check_case(const cfg *k, double tol) {
    char what[200];
    snprintf(what, sizeof what, "classifier N=%lld C=%lld Vp=%lld V=%lld %s %s every=%d%s g=%g", (long long)k->N,
             (long long)k->C, (long long)k->Vp, (long long)k->V, k->dt == LT_F64 ? "f64" : "f32",
             k->tdt == LT_I64 ? "i64" : "i32", k->every, k->strided ? " strided" : "", k->g);
    int64_t xs[2] = {k->N, k->C}, ws[2] = {k->Vp, k->C}, ignore = -100;
    lt_tensor *x = tt_rand(xs, 2, k->dt, -1, 1), *w = tt_rand(ws, 2, k->dt, -1, 1);
    int64_t *t = draw_targets(k->N, k->V, ignore, k->every);
    lt_tensor *tg = targets_tensor(t, k->N, k->tdt), *loss = NULL, *gx = NULL, *gw = NULL, *gs = NULL;
    if (k->strided) x = tt_strided(x), tg = tt_strided(tg);
    lt_tensor_set_requires_grad(x, true);
    lt_tensor_set_requires_grad(w, true);
    bool ok = lt_classifier_loss(x, w, tg, k->V, ignore, &loss) == LT_OK;
    if (ok && k->g == 1.0)
        ok = lt_backward(loss) == LT_OK;
    else if (ok)
        ok = lt_tensor_full(NULL, 0, k->g, k->dt, LT_DEVICE_CPU, &gs) == LT_OK && lt_backward_grad(loss, gs) == LT_OK;
    ok = ok && lt_tensor_grad(x, &gx) == LT_OK && gx && lt_tensor_grad(w, &gw) == LT_OK && gw;
    if (!ok) {
        fprintf(stderr, "%s: failed: %s\n", what, lt_last_error());
        free(t);
        return false;
    }
    double *xv = tt_values(x), *wv = tt_values(w);
    double *rdx = malloc(sizeof(double) * (size_t)(k->N * k->C + 1)),
           *rdw = malloc(sizeof(double) * (size_t)(k->Vp * k->C + 1));
    double ref = reference(xv, wv, t, k->N, k->C, k->Vp, k->V, ignore, k->g, rdx, rdw);
    ok = lt_tensor_ndim(loss) == 0 && lt_tensor_dtype(loss) == k->dt;
    if (!ok) fprintf(stderr, "%s: the loss is not a scalar of x's dtype\n", what);
    ok = ok && tt_tensor_close(what, loss, &ref, tol, tol) && tt_tensor_close("dx", gx, rdx, tol, tol) &&
         tt_tensor_close("dw", gw, rdw, tol, tol);
    free(xv), free(wv), free(rdx), free(rdw), free(t);
    return ok;
}

static void test_forward_backward(void) {
    /* 300 and 513 rows cross the 256-row chunk of a small vocabulary; Vp = 70000 makes 119-row chunks in f64 */
    static const int64_t shapes[][4] = {{1, 1, 1, 1},     {5, 7, 13, 11}, {300, 8, 37, 30},
                                        {513, 5, 16, 16}, {9, 3, 40, 1},  {150, 4, 70000, 69999}};
    tt_seed(71);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int dt = 0; dt < 2; dt++) {
            cfg k = {.N = shapes[s][0], .C = shapes[s][1], .Vp = shapes[s][2], .V = shapes[s][3], .every = 3, .g = 1};
            k.dt = dt ? LT_F64 : LT_F32;
            k.tdt = dt ? LT_I64 : LT_I32;
            CHECK(check_case(&k, dt ? 1e-12 : 1e-5));
        }
}

static void test_variants(void) {
    tt_seed(72);
    cfg big = {130, 2, 300000, 299990, LT_F32, LT_I64, 5, false, 1.0}; /* the 64-row minimum chunk: 64, 64, 2 rows */
    CHECK(check_case(&big, 1e-5));
    cfg a = {37, 6, 20, 17, LT_F32, LT_I64, 0, true, 1.0};   /* strided x and targets, nothing ignored */
    cfg b = {270, 5, 24, 20, LT_F64, LT_I32, 2, false, 2.5}; /* upstream gradient 2.5 */
    cfg c = {65, 3, 9, 9, LT_F32, LT_I32, 4, true, -0.75};
    CHECK(check_case(&a, 1e-5));
    CHECK(check_case(&b, 1e-12));
    CHECK(check_case(&c, 1e-5));
}

/* Fewer rows than features in one chunk: dw's product waits for the backward (see src/ops/classifier.c). It must take
 * the upstream gradient as its factor and, from the second backward on, add to the gradient w already has. */
static void test_deferred_dw(void) {
    tt_seed(77);
    cfg k = {4, 9, 30, 25, LT_F64, LT_I64, 3, false, -1.5};
    CHECK(check_case(&k, 1e-12));
    int64_t xs[2] = {4, 9}, ws[2] = {30, 9};
    lt_tensor *x = tt_leaf(xs, 2, -1, 1), *w = tt_leaf(ws, 2, -1, 1), *loss = NULL, *gs = NULL, *g = NULL;
    int64_t *t = draw_targets(4, 25, -100, 3);
    lt_tensor *tg = targets_tensor(t, 4, LT_I32);
    CHECK_OK(lt_tensor_full(NULL, 0, 0.5, LT_F64, LT_DEVICE_CPU, &gs));
    for (int rep = 0; rep < 2; rep++) {
        CHECK_OK(lt_classifier_loss(x, w, tg, 25, -100, &loss));
        CHECK_OK(lt_backward_grad(loss, gs));
    }
    double *xv = tt_values(x), *wv = tt_values(w), dx[36], dw[270];
    reference(xv, wv, t, 4, 9, 30, 25, -100, 1.0, dx, dw); /* two backwards of 0.5 each */
    CHECK_OK(lt_tensor_grad(w, &g));
    CHECK(g && tt_tensor_close("deferred dw, added to", g, dw, 1e-12, 1e-12));
    CHECK_OK(lt_tensor_grad(x, &g));
    CHECK(g && tt_tensor_close("dx beside a deferred dw", g, dx, 1e-12, 1e-12));
    free(xv), free(wv), free(t);
}

/* Every row ignored (or no rows): the mean is 0 / 0 = NaN, as in PyTorch, and the gradients are zero. */
static void test_all_ignored(void) {
    tt_seed(73);
    int64_t xs[2] = {4, 3}, ws[2] = {6, 3}, t[4] = {-1, -1, -1, -1}, e[2] = {0, 3};
    lt_tensor *x = tt_leaf(xs, 2, -1, 1), *w = tt_leaf(ws, 2, -1, 1), *loss = NULL, *g = NULL;
    double nan = NAN, zeros[18] = {0};
    CHECK_OK(lt_classifier_loss(x, w, targets_tensor(t, 4, LT_I32), 5, -1, &loss));
    CHECK(tt_tensor_close("all ignored", loss, &nan, 0, 0));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_tensor_grad(x, &g));
    CHECK(g && tt_tensor_close("all ignored dx", g, zeros, 0, 0));
    CHECK_OK(lt_tensor_grad(w, &g));
    CHECK(g && tt_tensor_close("all ignored dw", g, zeros, 0, 0));
    lt_tensor *x0 = tt_leaf(e, 2, -1, 1), *w0 = tt_leaf(ws, 2, -1, 1);
    CHECK_OK(lt_classifier_loss(x0, w0, targets_tensor(t, 0, LT_I64), 6, -1, &loss));
    CHECK(tt_tensor_close("no rows", loss, &nan, 0, 0));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_tensor_grad(w0, &g));
    CHECK(g && tt_tensor_close("no rows dw", g, zeros, 0, 0));
}

/* C = 0: every logit is 0, so each counted row's loss is log(V), and dw (of shape [Vp, 0]) is empty. */
static void test_no_features(void) {
    int64_t xs[2] = {3, 0}, ws[2] = {6, 0}, t[3] = {1, 3, 0};
    lt_tensor *x = tt_leaf(xs, 2, -1, 1), *w = tt_leaf(ws, 2, -1, 1), *loss = NULL, *g = NULL;
    double ref = log(4.0);
    CHECK_OK(lt_classifier_loss(x, w, targets_tensor(t, 3, LT_I64), 4, -1, &loss));
    CHECK(tt_tensor_close("C = 0", loss, &ref, 1e-15, 1e-15));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_tensor_grad(w, &g));
    CHECK(g && lt_tensor_numel(g) == 0);
}

/* Without grad (no input requires it, or no-grad mode) the loss is the same and nothing is recorded. */
static void test_no_grad(void) {
    tt_seed(74);
    int64_t xs[2] = {7, 4}, ws[2] = {9, 4};
    lt_tensor *x = tt_leaf(xs, 2, -1, 1), *w = tt_rand(ws, 2, LT_F64, -1, 1), *x2 = tt_rand(xs, 2, LT_F64, -1, 1);
    int64_t *t = draw_targets(7, 8, -100, 3);
    lt_tensor *tg = targets_tensor(t, 7, LT_I64), *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(lt_classifier_loss(x, w, tg, 8, -100, &a));
    CHECK(lt_tensor_requires_grad(a));
    lt_no_grad_begin();
    CHECK_OK(lt_classifier_loss(x, w, tg, 8, -100, &b));
    lt_no_grad_end();
    CHECK(!lt_tensor_requires_grad(b));
    CHECK_OK(lt_tensor_copy(x2, x));
    CHECK_OK(lt_classifier_loss(x2, w, tg, 8, -100, &c));
    CHECK(!lt_tensor_requires_grad(c));
    double *va = tt_values(a);
    CHECK(tt_tensor_close("no grad", b, va, 0, 0) && tt_tensor_close("no input needs grad", c, va, 0, 0));
    free(va);
    free(t);
}

/* Only w requires grad (a frozen trunk): dw is right and x gets none. */
static void test_partial_grads(void) {
    tt_seed(76);
    int64_t xs[2] = {6, 5}, ws[2] = {12, 5};
    lt_tensor *x = tt_rand(xs, 2, LT_F64, -1, 1), *w = tt_leaf(ws, 2, -1, 1), *loss = NULL, *g = NULL;
    int64_t *t = draw_targets(6, 10, -100, 4);
    CHECK_OK(lt_classifier_loss(x, w, targets_tensor(t, 6, LT_I32), 10, -100, &loss));
    CHECK_OK(lt_backward(loss));
    double *xv = tt_values(x), *wv = tt_values(w), dx[30], dw[60];
    reference(xv, wv, t, 6, 5, 12, 10, -100, 1.0, dx, dw);
    CHECK_OK(lt_tensor_grad(w, &g));
    CHECK(g && tt_tensor_close("dw only", g, dw, 1e-12, 1e-12));
    CHECK_OK(lt_tensor_grad(x, &g));
    CHECK(g == NULL);
    free(xv), free(wv), free(t);
}

static lt_status classifier_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_classifier_loss(in[0], in[1], (lt_tensor *)ctx, 6, -1, out);
}

static void test_gradcheck(void) {
    tt_seed(75);
    int64_t xs[2] = {5, 3}, ws[2] = {7, 3}, t[5] = {2, -1, 5, 0, 5};
    lt_tensor *in[2] = {tt_leaf(xs, 2, -1, 1), tt_leaf(ws, 2, -1, 1)};
    CHECK(tt_gradcheck("classifier wrt x and w", classifier_fn, targets_tensor(t, 5, LT_I64), in, 2));
}

static void test_errors(void) {
    int64_t xs[2] = {3, 4}, ws[2] = {6, 4}, w5[2] = {6, 5}, x3[3] = {1, 3, 4}, t[3] = {0, 4, 1}, bad[3] = {0, 5, 1};
    int64_t neg[3] = {0, 1, -2}, t2[2] = {0, 1};
    lt_tensor *x = tt_rand(xs, 2, LT_F32, -1, 1), *w = tt_rand(ws, 2, LT_F32, -1, 1),
              *tg = targets_tensor(t, 3, LT_I32);
    lt_tensor *w64 = tt_rand(ws, 2, LT_F64, -1, 1), *xi = tt_randint(xs, 2, LT_I32, 3),
              *tf = tt_rand(&xs[0], 1, LT_F32, 0, 1);
    lt_tensor *y = NULL;
    CHECK_ERR(lt_classifier_loss(x, w, tg, 5, -1, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_classifier_loss(NULL, w, tg, 5, -1, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_classifier_loss(x, NULL, tg, 5, -1, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_classifier_loss(x, w, NULL, 5, -1, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_classifier_loss(xi, w, tg, 5, -1, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_classifier_loss(x, w64, tg, 5, -1, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_classifier_loss(x, w, tf, 5, -1, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_classifier_loss(tt_rand(x3, 3, LT_F32, -1, 1), w, tg, 5, -1, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_classifier_loss(x, tt_rand(w5, 2, LT_F32, -1, 1), tg, 5, -1, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_classifier_loss(x, w, targets_tensor(t2, 2, LT_I64), 5, -1, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_classifier_loss(x, w, tg, 0, -1, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_classifier_loss(x, w, tg, 7, -1, &y), LT_ERR_ARG, fn);
    /* a target on a padding column (5 with vocab_size 5 of 6 rows) and a negative one that is not ignore_index */
    CHECK_ERR(lt_classifier_loss(x, w, targets_tensor(bad, 3, LT_I64), 5, -1, &y), LT_ERR_RANGE, fn);
    CHECK(strstr(lt_last_error(), "row 1") != NULL);
    CHECK_ERR(lt_classifier_loss(x, w, targets_tensor(neg, 3, LT_I32), 5, -1, &y), LT_ERR_RANGE, fn);
    CHECK(strstr(lt_last_error(), "row 2") != NULL);
    CHECK(y == NULL);
}

int main(void) {
    RUN(test_forward_backward);
    RUN(test_variants);
    RUN(test_all_ignored);
    RUN(test_no_features);
    RUN(test_no_grad);
    RUN(test_partial_grads);
    RUN(test_deferred_dw);
    RUN(test_gradcheck);
    RUN(test_errors);
    return tt_finish();
}
