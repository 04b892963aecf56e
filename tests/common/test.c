/* Implementation of the shared test harness (tests/common/test.h). Uses only the public API. */
#include "test.h"

int tt_failed_checks = 0;
int tt_sentinel;
static int tt_passed, tt_failed;
static uint64_t tt_state = 0x9E3779B97F4A7C15ull;

void tt_record(const char *name, bool ok) {
    printf("%s %s\n", ok ? "PASS" : "FAIL", name);
    fflush(stdout);
    if (ok)
        tt_passed++;
    else
        tt_failed++;
}

int tt_finish(void) {
    printf("%d passed, %d failed\n", tt_passed, tt_failed);
    return tt_failed == 0 && tt_passed > 0 ? 0 : 1;
}

void tt_seed(uint64_t seed) { tt_state = seed * 0x9E3779B97F4A7C15ull + 1; }

static uint64_t tt_next(void) {
    /* xorshift64* */
    tt_state ^= tt_state >> 12;
    tt_state ^= tt_state << 25;
    tt_state ^= tt_state >> 27;
    return tt_state * 0x2545F4914F6CDD1Dull;
}

double tt_uniform(double lo, double hi) { return lo + (hi - lo) * (double)(tt_next() >> 11) * 0x1.0p-53; }

static int64_t numel_of(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

lt_tensor *tt_rand(const int64_t *shape, int ndim, lt_dtype dtype, double lo, double hi) {
    int64_t n = numel_of(shape, ndim);
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = tt_uniform(lo, hi);
    lt_tensor *d = NULL, *t = NULL;
    if (lt_tensor_from_host(v, shape, ndim, LT_F64, LT_DEVICE_CPU, &d) != LT_OK ||
        lt_tensor_to(d, dtype, LT_DEVICE_CPU, &t) != LT_OK) {
        fprintf(stderr, "tt_rand: %s\n", lt_last_error());
        abort();
    }
    free(v);
    return t;
}

lt_tensor *tt_randint(const int64_t *shape, int ndim, lt_dtype dtype, int64_t n) {
    int64_t m = numel_of(shape, ndim);
    double *v = malloc(sizeof(double) * (size_t)(m > 0 ? m : 1));
    for (int64_t i = 0; i < m; i++) v[i] = (double)(tt_next() % (uint64_t)n);
    lt_tensor *d = NULL, *t = NULL;
    if (lt_tensor_from_host(v, shape, ndim, LT_F64, LT_DEVICE_CPU, &d) != LT_OK ||
        lt_tensor_to(d, dtype, LT_DEVICE_CPU, &t) != LT_OK) {
        fprintf(stderr, "tt_randint: %s\n", lt_last_error());
        abort();
    }
    free(v);
    return t;
}

lt_tensor *tt_strided(const lt_tensor *t) {
    int nd = lt_tensor_ndim(t);
    int64_t shape[LT_MAX_DIMS];
    lt_tensor_shape(t, shape);
    if (nd == 0) return (lt_tensor *)t;
    int64_t wide[LT_MAX_DIMS];
    memcpy(wide, shape, sizeof(wide));
    wide[nd - 1] = 2 * shape[nd - 1] + 1;
    lt_tensor *buf = NULL, *view = NULL;
    if (lt_tensor_full(wide, nd, NAN, lt_tensor_dtype(t), LT_DEVICE_CPU, &buf) != LT_OK ||
        lt_slice(buf, nd - 1, 1, 2 * shape[nd - 1] + 1, 2, &view) != LT_OK || lt_tensor_copy(view, t) != LT_OK) {
        fprintf(stderr, "tt_strided: %s\n", lt_last_error());
        abort();
    }
    return view;
}

lt_tensor *tt_layout(const int64_t *shape, int ndim, lt_dtype dtype, int layout) {
    if (layout == 0) return tt_rand(shape, ndim, dtype, -2, 2);
    if (layout == 1) return tt_strided(tt_rand(shape, ndim, dtype, -2, 2));
    int64_t rev[LT_MAX_DIMS];
    int perm[LT_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        rev[d] = shape[ndim - 1 - d];
        perm[d] = ndim - 1 - d;
    }
    lt_tensor *v = NULL;
    if (lt_permute(tt_rand(rev, ndim, dtype, -2, 2), perm, &v) != LT_OK) {
        fprintf(stderr, "tt_layout: %s\n", lt_last_error());
        abort();
    }
    return v;
}

double *tt_values(const lt_tensor *t) {
    int64_t n = lt_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    lt_tensor *d = NULL;
    if (lt_tensor_to(t, LT_F64, LT_DEVICE_CPU, &d) != LT_OK || lt_tensor_to_host(d, v, sizeof(double) * (size_t)n)) {
        fprintf(stderr, "tt_values: %s\n", lt_last_error());
        abort();
    }
    return v;
}

bool tt_close(const char *what, const double *got, const double *ref, int64_t n, double atol, double rtol) {
    for (int64_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs(ref[i]);
        bool bad = isnan(ref[i]) ? !isnan(got[i]) : !(fabs(got[i] - ref[i]) <= tol);
        if (isinf(ref[i]) && got[i] == ref[i]) bad = false;
        if (bad) {
            fprintf(stderr, "%s: element %lld is %.17g, expected %.17g (tol %.3g)\n", what, (long long)i, got[i],
                    ref[i], tol);
            return false;
        }
    }
    return true;
}

bool tt_tensor_close(const char *what, const lt_tensor *got, const double *ref, double atol, double rtol) {
    double *v = tt_values(got);
    bool ok = tt_close(what, v, ref, lt_tensor_numel(got), atol, rtol);
    free(v);
    return ok;
}

lt_tensor *tt_leaf(const int64_t *shape, int ndim, double lo, double hi) {
    lt_tensor *t = tt_rand(shape, ndim, LT_F64, lo, hi);
    if (lt_tensor_set_requires_grad(t, true) != LT_OK) abort();
    return t;
}

/* L = sum(f(x) * r) evaluated in no-grad mode. */
static double tt_loss(tt_fn f, void *ctx, lt_tensor **inputs, const double *r, bool *ok) {
    lt_scope_begin();
    lt_no_grad_begin();
    lt_tensor *out = NULL;
    double sum = 0;
    if (f(ctx, inputs, &out) != LT_OK) {
        fprintf(stderr, "gradcheck: f failed: %s\n", lt_last_error());
        *ok = false;
    } else {
        double *v = tt_values(out);
        for (int64_t i = 0; i < lt_tensor_numel(out); i++) sum += v[i] * r[i];
        free(v);
    }
    lt_no_grad_end();
    lt_scope_end();
    return sum;
}

bool tt_gradcheck(const char *what, tt_fn f, void *ctx, lt_tensor **inputs, int n_inputs) {
    const double eps = 1e-6;
    bool ok = true;
    lt_scope_begin();
    lt_tensor *out = NULL;
    if (f(ctx, inputs, &out) != LT_OK) {
        fprintf(stderr, "%s: forward failed: %s\n", what, lt_last_error());
        lt_scope_end();
        return false;
    }
    int64_t shape[LT_MAX_DIMS];
    lt_tensor_shape(out, shape);
    lt_tensor *r = tt_rand(shape, lt_tensor_ndim(out), LT_F64, -1, 1);
    double *rv = tt_values(r);
    for (int k = 0; k < n_inputs; k++)
        if (inputs[k] && lt_tensor_requires_grad(inputs[k])) lt_tensor_zero_grad(inputs[k]);
    if (lt_backward_grad(out, r) != LT_OK) {
        fprintf(stderr, "%s: backward failed: %s\n", what, lt_last_error());
        ok = false;
    }
    for (int k = 0; ok && k < n_inputs; k++) {
        lt_tensor *x = inputs[k];
        if (!x || !lt_tensor_requires_grad(x)) continue;
        lt_tensor *g = NULL;
        if (lt_tensor_grad(x, &g) != LT_OK || g == NULL) {
            fprintf(stderr, "%s: input %d has no gradient\n", what, k);
            ok = false;
            break;
        }
        double *gv = tt_values(g);
        double *xd = lt_tensor_data(x);
        int64_t n = lt_tensor_numel(x);
        for (int64_t j = 0; j < n; j++) {
            double keep = xd[j];
            xd[j] = keep + eps;
            double lp = tt_loss(f, ctx, inputs, rv, &ok);
            xd[j] = keep - eps;
            double lm = tt_loss(f, ctx, inputs, rv, &ok);
            xd[j] = keep;
            double num = (lp - lm) / (2 * eps);
            double tol = 1e-6 + 1e-5 * fabs(num);
            if (!(fabs(gv[j] - num) <= tol)) {
                fprintf(stderr, "%s: d/d input %d [%lld]: analytic %.12g, numeric %.12g\n", what, k, (long long)j,
                        gv[j], num);
                ok = false;
                break;
            }
        }
        free(gv);
    }
    free(rv);
    lt_scope_end();
    return ok;
}
