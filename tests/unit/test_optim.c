/* Unit tests of optim.h: AdamW and SGD against naive f64 references written here after torch's formulas, gradient
 * clipping against a norm computed here, the cosine schedule at its landmarks, checkpoint state round trips and every
 * error path. Gradients are written straight into the set's flat gradient buffer. */
#include "test.h"

static const lt_dtype FLOAT_DTYPES[] = {LT_F32, LT_F64};
#define N_FLOAT_DTYPES 2

/* A parameter set with its flat buffers (borrowed from the set) and a copy of its layout. */
typedef struct fixture {
    lt_params *p;
    lt_tensor *flat, *grads;
    int64_t n;
    lt_dtype dtype;
} fixture;

/* Adds the parameters named names[i] with shapes[i] (ndims[i] dims), in order, and fills the values with random
 * numbers in [-1, 1). Returns false (with a message) on any failure. */
static bool fixture_make(fixture *f, lt_dtype dtype, int count, const char *const *names, const int64_t shapes[][2],
                         const int *ndims) {
    memset(f, 0, sizeof *f);
    f->dtype = dtype;
    bool ok = lt_params_create(dtype, LT_DEVICE_CPU, &f->p) == LT_OK;
    for (int i = 0; ok && i < count; i++) {
        lt_tensor *t;
        ok = lt_params_add(f->p, names[i], shapes[i], ndims[i], &t) == LT_OK;
    }
    ok = ok && lt_params_flat(f->p, &f->flat, &f->grads) == LT_OK;
    if (ok) {
        f->n = lt_params_numel(f->p);
        ok = lt_tensor_copy(f->flat, tt_rand(&f->n, 1, dtype, -1.0, 1.0)) == LT_OK;
    }
    if (!ok) fprintf(stderr, "fixture_make: %s\n", lt_last_error());
    return ok;
}

/* The small set most tests use: a [3, 4] matrix (decay on by default) then a [4] vector (decay off). */
static bool fixture_small(fixture *f, lt_dtype dtype) {
    static const char *const names[] = {"w", "b"};
    static const int64_t shapes[][2] = {{3, 4}, {4, 0}};
    static const int ndims[] = {2, 1};
    return fixture_make(f, dtype, 2, names, shapes, ndims);
}

/* Writes fresh random gradients in [lo, hi) into the flat gradient buffer; returns them as f64 (caller frees), or
 * NULL after printing why. */
static double *set_random_grads(const fixture *f, double lo, double hi) {
    if (lt_tensor_copy(f->grads, tt_rand(&f->n, 1, f->dtype, lo, hi)) != LT_OK) {
        fprintf(stderr, "set_random_grads: %s\n", lt_last_error());
        return NULL;
    }
    return tt_values(f->grads);
}

/* A copy of t's values in a new tensor of the current scope (not recorded by autograd), or NULL. */
static lt_tensor *snapshot(const lt_tensor *t) {
    int64_t shape[8];
    lt_tensor *c = NULL;
    if (lt_tensor_shape(t, shape) != LT_OK ||
        lt_tensor_empty(shape, lt_tensor_ndim(t), lt_tensor_dtype(t), LT_DEVICE_CPU, &c) != LT_OK ||
        lt_tensor_copy(c, t) != LT_OK) {
        fprintf(stderr, "snapshot: %s\n", lt_last_error());
        return NULL;
    }
    return c;
}

/* Bitwise equality of two CPU tensors of the same dtype and numel. */
static bool same_bits(const lt_tensor *a, const lt_tensor *b) {
    return lt_tensor_numel(a) == lt_tensor_numel(b) && lt_tensor_dtype(a) == lt_tensor_dtype(b) &&
           memcmp(lt_tensor_data(a), lt_tensor_data(b),
                  (size_t)lt_tensor_numel(a) * lt_dtype_size(lt_tensor_dtype(a))) == 0;
}

static double tol_of(lt_dtype dtype) { return dtype == LT_F32 ? 1e-6 : 1e-12; }

/* ---- AdamW ---- */

/* torch.optim.AdamW (1.13) for one step over n elements, element i decayed by wd[i], in f64:
 * p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
static void ref_adamw(double *p, const double *g, double *m, double *v, const double *wd, int64_t n,
                      const lt_adamw_config *c, double lr, int64_t t) {
    const double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    for (int64_t i = 0; i < n; i++) {
        p[i] *= 1.0 - lr * wd[i];
        m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + c->eps);
    }
}

static const lt_adamw_config ADAMW = {
    .struct_size = sizeof(lt_adamw_config), .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};

/* Runs `steps` AdamW steps on f with random gradients and checks p, m and v after each against ref_adamw. The
 * learning rate changes halfway through (lt_optim_set_lr). wd[i] is the decay the test expects for element i. */
static void check_adamw_run(const fixture *f, const double *wd, int steps, int64_t first_step) {
    const int64_t n = f->n;
    const double tol = tol_of(f->dtype);
    double *p = tt_values(f->flat), *m = calloc((size_t)n, sizeof *m), *v = calloc((size_t)n, sizeof *v);
    lt_optim *opt;
    CHECK_OK(lt_adamw_create(f->p, &ADAMW, &opt));
    CHECK_OK(lt_optim_set_steps(opt, first_step - 1));
    lt_tensor *tm, *tv;
    CHECK_OK(lt_optim_state(opt, &tm, &tv));
    CHECK(tm && tv && lt_tensor_numel(tm) == n && lt_tensor_numel(tv) == n);
    CHECK(lt_tensor_dtype(tm) == f->dtype && lt_tensor_dtype(tv) == f->dtype);
    double lr = ADAMW.lr;
    for (int s = 0; s < steps; s++) {
        if (s == steps / 2) {
            lr = 3e-3;
            CHECK_OK(lt_optim_set_lr(opt, lr));
        }
        double *g = set_random_grads(f, -1.0, 1.0);
        CHECK(g != NULL);
        if (!g) break;
        CHECK_OK(lt_optim_step(opt));
        ref_adamw(p, g, m, v, wd, n, &ADAMW, lr, first_step + s);
        CHECK(lt_optim_steps(opt) == first_step + s);
        CHECK(tt_tensor_close("adamw p", f->flat, p, tol, tol));
        CHECK(tt_tensor_close("adamw m", tm, m, tol, tol));
        CHECK(tt_tensor_close("adamw v", tv, v, tol, tol));
        free(g);
    }
    lt_optim_free(opt);
    free(p);
    free(m);
    free(v);
}

/* Per-element decay of the small set: the matrix (12 elements) decays, the vector (4) does not. */
static void small_decay(double *wd) {
    for (int i = 0; i < 16; i++) wd[i] = i < 12 ? ADAMW.weight_decay : 0.0;
}

static void test_adamw_matches_reference(void) {
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(100 + (uint64_t)d);
        fixture f;
        CHECK(fixture_small(&f, FLOAT_DTYPES[d]));
        double wd[16];
        small_decay(wd);
        check_adamw_run(&f, wd, 5, 1);
        lt_params_free(f.p);
    }
}

/* Starting the count at 10 must use 1 - beta^10 for the bias correction (a fresh optimizer with restored steps). */
static void test_adamw_bias_correction_uses_steps(void) {
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(200 + (uint64_t)d);
        fixture f;
        CHECK(fixture_small(&f, FLOAT_DTYPES[d]));
        double wd[16];
        small_decay(wd);
        check_adamw_run(&f, wd, 3, 10);
        lt_params_free(f.p);
    }
}

/* With zero gradients the moments stay zero and the update is exactly the decay: decaying parameters shrink by
 * 1 - lr wd, the others keep their bits. Flags changed after create apply from the next step. */
static void test_adamw_decay_flags(void) {
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(300 + (uint64_t)d);
        fixture f;
        CHECK(fixture_small(&f, FLOAT_DTYPES[d]));
        lt_tensor *w, *b;
        CHECK_OK(lt_params_find(f.p, "w", &w));
        CHECK_OK(lt_params_find(f.p, "b", &b));
        CHECK(lt_params_get_decay(f.p, 0) && !lt_params_get_decay(f.p, 1));
        CHECK_OK(lt_params_zero_grad(f.p));
        lt_optim *opt;
        CHECK_OK(lt_adamw_create(f.p, &ADAMW, &opt));
        const double shrink = 1.0 - ADAMW.lr * ADAMW.weight_decay;
        for (int round = 0; round < 2; round++) {
            lt_tensor *decayed = round == 0 ? w : b, *kept = round == 0 ? b : w;
            double *before = tt_values(decayed);
            for (int64_t i = 0; i < lt_tensor_numel(decayed); i++) before[i] *= shrink;
            lt_tensor *kept_before = snapshot(kept);
            CHECK(kept_before != NULL);
            CHECK_OK(lt_optim_step(opt));
            CHECK(tt_tensor_close("decayed", decayed, before, tol_of(f.dtype), tol_of(f.dtype)));
            CHECK(kept_before && same_bits(kept, kept_before));
            free(before);
            /* swap the flags for the second round */
            CHECK_OK(lt_params_set_decay(f.p, "w", false));
            CHECK_OK(lt_params_set_decay(f.p, "b", true));
        }
        lt_optim_free(opt);
        lt_params_free(f.p);
    }
}

/* Several segments, one large enough for the threaded loops, with a decayed vector next to a decayed matrix (they
 * merge into one run) and a zero-element parameter in between. */
static void test_adamw_many_segments(void) {
    static const char *const names[] = {"h.w", "h.b", "empty", "g.w", "g.b", "wte"};
    static const int64_t shapes[][2] = {{300, 250}, {250, 0}, {0, 5}, {5, 7}, {7, 0}, {9, 3}};
    static const int ndims[] = {2, 1, 2, 2, 1, 2};
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(400 + (uint64_t)d);
        fixture f;
        CHECK(fixture_make(&f, FLOAT_DTYPES[d], 6, names, shapes, ndims));
        CHECK_OK(lt_params_set_decay(f.p, "h.b", true));  /* merges with h.w */
        CHECK_OK(lt_params_set_decay(f.p, "wte", false)); /* as models do for embeddings */
        double *wd = malloc(sizeof *wd * (size_t)f.n);
        int64_t at = 0;
        for (int i = 0; i < 6; i++) {
            const int64_t len = ndims[i] == 2 ? shapes[i][0] * shapes[i][1] : shapes[i][0];
            const bool decay = strcmp(names[i], "g.b") != 0 && strcmp(names[i], "wte") != 0;
            for (int64_t k = 0; k < len; k++) wd[at++] = decay ? ADAMW.weight_decay : 0.0;
        }
        CHECK(at == f.n && f.n > 65536);
        check_adamw_run(&f, wd, 3, 1);
        free(wd);
        lt_params_free(f.p);
    }
}

/* ---- SGD ---- */

/* torch.optim.SGD (dampening 0) for one step in f64. */
static void ref_sgd(double *p, const double *g, double *vel, int64_t n, const lt_sgd_config *c, bool first) {
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + c->weight_decay * p[i];
        if (c->momentum > 0) {
            vel[i] = first ? d : c->momentum * vel[i] + d;
            d = c->nesterov ? d + c->momentum * vel[i] : vel[i];
        }
        p[i] -= c->lr * d;
    }
}

static void test_sgd_matches_reference(void) {
    const lt_sgd_config configs[] = {
        {.struct_size = sizeof(lt_sgd_config), .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01},
        {.struct_size = sizeof(lt_sgd_config), .lr = 0.05, .momentum = 0.8, .weight_decay = 0.02, .nesterov = true},
        {.struct_size = sizeof(lt_sgd_config), .lr = 0.2, .weight_decay = 0.03},
    };
    for (int d = 0; d < N_FLOAT_DTYPES; d++)
        for (int k = 0; k < 3; k++) {
            tt_seed(500 + (uint64_t)(10 * d + k));
            fixture f;
            CHECK(fixture_small(&f, FLOAT_DTYPES[d]));
            const lt_sgd_config *c = &configs[k];
            double *p = tt_values(f.flat), vel[16] = {0};
            lt_optim *opt;
            CHECK_OK(lt_sgd_create(f.p, c, &opt));
            lt_tensor *tm, *tv;
            CHECK_OK(lt_optim_state(opt, &tm, &tv));
            CHECK(tv == NULL && (c->momentum > 0 ? tm != NULL : tm == NULL));
            for (int s = 0; s < 4; s++) {
                double *g = set_random_grads(&f, -1.0, 1.0);
                CHECK(g != NULL);
                if (!g) break;
                CHECK_OK(lt_optim_step(opt));
                ref_sgd(p, g, vel, f.n, c, s == 0);
                CHECK(tt_tensor_close("sgd p", f.flat, p, tol_of(f.dtype), tol_of(f.dtype)));
                if (tm) CHECK(tt_tensor_close("sgd velocity", tm, vel, tol_of(f.dtype), tol_of(f.dtype)));
                free(g);
            }
            CHECK(lt_optim_steps(opt) == 4);
            lt_optim_free(opt);
            free(p);
            lt_params_free(f.p);
        }
}

/* ---- Checkpoint state ---- */

/* Optimizer A takes 2 steps; B, a fresh optimizer on a copy of the set, takes A's m, v and step count; then both take
 * 3 more steps on the same gradients and must agree bit for bit. */
static void check_round_trip(lt_dtype dtype, bool adamw) {
    const lt_sgd_config sgd = {.struct_size = sizeof sgd, .lr = 0.1, .momentum = 0.9, .nesterov = true};
    fixture a, b;
    CHECK(fixture_small(&a, dtype));
    CHECK(fixture_small(&b, dtype));
    lt_optim *oa, *ob;
    CHECK_OK(adamw ? lt_adamw_create(a.p, &ADAMW, &oa) : lt_sgd_create(a.p, &sgd, &oa));
    for (int s = 0; s < 2; s++) {
        free(set_random_grads(&a, -1.0, 1.0));
        CHECK_OK(lt_optim_step(oa));
    }
    CHECK_OK(adamw ? lt_adamw_create(b.p, &ADAMW, &ob) : lt_sgd_create(b.p, &sgd, &ob));
    lt_tensor *ma, *va, *mb, *vb;
    CHECK_OK(lt_optim_state(oa, &ma, &va));
    CHECK_OK(lt_optim_state(ob, &mb, &vb));
    CHECK(ma && mb && (adamw ? va && vb : !va && !vb));
    CHECK_OK(lt_tensor_copy(b.flat, a.flat));
    CHECK_OK(lt_tensor_copy(mb, ma));
    if (va) CHECK_OK(lt_tensor_copy(vb, va));
    CHECK_OK(lt_optim_set_steps(ob, lt_optim_steps(oa)));
    CHECK(lt_optim_steps(ob) == 2);
    for (int s = 0; s < 3; s++) {
        free(set_random_grads(&a, -1.0, 1.0));
        CHECK_OK(lt_tensor_copy(b.grads, a.grads));
        CHECK_OK(lt_optim_step(oa));
        CHECK_OK(lt_optim_step(ob));
    }
    CHECK(same_bits(a.flat, b.flat));
    CHECK(same_bits(ma, mb));
    if (va) CHECK(same_bits(va, vb));
    CHECK(lt_optim_steps(oa) == 5 && lt_optim_steps(ob) == 5);
    lt_optim_free(oa);
    lt_optim_free(ob);
    lt_params_free(a.p);
    lt_params_free(b.p);
}

/* lt_optim_step_scaled(s) updates exactly as scaling the gradients by s and then lt_optim_step (bit for bit: the
 * factor is one the dtype holds, and the product of two floats is exact in double, so rounding it once gives the
 * float product the update forms), and leaves the gradients as they were. A NaN factor gives NaN parameters. */
static void check_step_scaled(lt_dtype dtype, bool adamw) {
    const lt_sgd_config sgd = {.struct_size = sizeof sgd, .lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2};
    const double s = dtype == LT_F32 ? (double)0.3712f : 0.3712;
    fixture a, b;
    CHECK(fixture_small(&a, dtype));
    CHECK(fixture_small(&b, dtype));
    CHECK_OK(lt_tensor_copy(b.flat, a.flat));
    lt_optim *oa, *ob;
    CHECK_OK(adamw ? lt_adamw_create(a.p, &ADAMW, &oa) : lt_sgd_create(a.p, &sgd, &oa));
    CHECK_OK(adamw ? lt_adamw_create(b.p, &ADAMW, &ob) : lt_sgd_create(b.p, &sgd, &ob));
    for (int step = 0; step < 3; step++) {
        double *g = set_random_grads(&a, -1.0, 1.0);
        CHECK(g != NULL);
        if (!g) break;
        for (int64_t i = 0; i < a.n; i++) g[i] *= s;
        lt_tensor *scaled, *before = snapshot(a.grads);
        CHECK_OK(lt_tensor_from_host(g, &a.n, 1, LT_F64, LT_DEVICE_CPU, &scaled));
        CHECK_OK(lt_tensor_copy(b.grads, scaled));
        free(g);
        CHECK_OK(lt_optim_step_scaled(oa, s));
        CHECK_OK(lt_optim_step(ob));
        CHECK(same_bits(a.flat, b.flat));
        CHECK(before && same_bits(a.grads, before));
    }
    CHECK_OK(lt_optim_step_scaled(oa, NAN));
    double *p = tt_values(a.flat);
    for (int64_t i = 0; p && i < a.n; i++) CHECK(isnan(p[i]));
    free(p);
    lt_optim_free(oa);
    lt_optim_free(ob);
    lt_params_free(a.p);
    lt_params_free(b.p);
}

static void test_step_scaled(void) {
    for (int d = 0; d < 2; d++) {
        check_step_scaled(FLOAT_DTYPES[d], true);
        check_step_scaled(FLOAT_DTYPES[d], false);
    }
}

static void test_state_round_trip(void) {
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(600 + (uint64_t)d);
        check_round_trip(FLOAT_DTYPES[d], true);
        check_round_trip(FLOAT_DTYPES[d], false);
    }
}

/* ---- Gradient clipping ---- */

static double ref_norm(const double *g, int64_t n) {
    long double s = 0;
    for (int64_t i = 0; i < n; i++) s += (long double)g[i] * g[i];
    return (double)sqrtl(s);
}

/* max_norm <= 0 only measures, and a max_norm above the norm leaves every bit alone. */
static void test_clip_measures_and_leaves_small_grads(void) {
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(700 + (uint64_t)d);
        fixture f;
        CHECK(fixture_small(&f, FLOAT_DTYPES[d]));
        double *g = set_random_grads(&f, -2.0, 2.0);
        CHECK(g != NULL);
        if (!g) return;
        const double want = ref_norm(g, f.n);
        lt_tensor *before = snapshot(f.grads);
        CHECK(before != NULL);
        const double limits[] = {0.0, -1.0, 2.0 * want, INFINITY};
        for (int k = 0; k < 4; k++) {
            double norm = -1.0;
            CHECK_OK(lt_clip_grad_norm(f.p, limits[k], &norm));
            CHECK(fabs(norm - want) <= 1e-12 * want);
            CHECK(before && same_bits(f.grads, before));
        }
        CHECK_OK(lt_clip_grad_norm(f.p, 0.0, NULL)); /* norm is optional */
        free(g);
        lt_params_free(f.p);
    }
}

/* Above max_norm every gradient is scaled by max_norm / (norm + 1e-6), as torch does (so a max_norm equal to the
 * norm still scales, by a hair), the norm reported is the one before clipping, and the new norm is max_norm. */
static void test_clip_scales_large_grads(void) {
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        for (int k = 0; k < 2; k++) {
            tt_seed(800 + (uint64_t)(10 * d + k));
            fixture f;
            CHECK(fixture_small(&f, FLOAT_DTYPES[d]));
            double *g = set_random_grads(&f, -2.0, 2.0);
            CHECK(g != NULL);
            if (!g) return;
            const double want = ref_norm(g, f.n), max_norm = k == 0 ? 0.25 * want : want;
            const double coef = max_norm / (want + 1e-6);
            double *orig = tt_values(f.grads);
            double norm = -1.0, after = -1.0;
            CHECK_OK(lt_clip_grad_norm(f.p, max_norm, &norm));
            CHECK(fabs(norm - want) <= 1e-12 * want);
            for (int64_t i = 0; i < f.n; i++) g[i] *= coef;
            CHECK(tt_tensor_close("clipped grads", f.grads, g, 0.0, f.dtype == LT_F32 ? 2e-7 : 1e-15));
            double *now = tt_values(f.grads);
            bool moved = false;
            for (int64_t i = 0; i < f.n; i++) moved |= now[i] != orig[i];
            CHECK(moved); /* even at max_norm == norm, the 1e-6 makes the factor fall below 1 */
            free(now);
            free(orig);
            CHECK_OK(lt_clip_grad_norm(f.p, 0.0, &after));
            CHECK(fabs(after - want * coef) <= tol_of(f.dtype) * max_norm);
            free(g);
            lt_params_free(f.p);
        }
    }
}

/* A buffer large enough for the threaded reduction: the norm matches the reference and does not depend on the
 * thread count; clipping then applies across the whole buffer. */
static void test_clip_large_buffer(void) {
    static const char *const names[] = {"a", "b"};
    static const int64_t shapes[][2] = {{400, 300}, {1001, 0}};
    static const int ndims[] = {2, 1};
    const int threads = lt_get_num_threads();
    for (int d = 0; d < N_FLOAT_DTYPES; d++) {
        tt_seed(900 + (uint64_t)d);
        fixture f;
        CHECK(fixture_make(&f, FLOAT_DTYPES[d], 2, names, shapes, ndims));
        double *g = set_random_grads(&f, -1.0, 1.0);
        CHECK(g != NULL);
        if (!g) return;
        const double want = ref_norm(g, f.n);
        double n1 = -1.0, n2 = -2.0;
        CHECK_OK(lt_set_num_threads(1));
        CHECK_OK(lt_clip_grad_norm(f.p, 0.0, &n1));
        CHECK_OK(lt_set_num_threads(2));
        CHECK_OK(lt_clip_grad_norm(f.p, 0.0, &n2));
        CHECK_OK(lt_set_num_threads(threads));
        CHECK(n1 == n2);
        CHECK(fabs(n1 - want) <= 1e-12 * want);
        double norm;
        CHECK_OK(lt_clip_grad_norm(f.p, 1.0, &norm));
        const double coef = 1.0 / (want + 1e-6);
        for (int64_t i = 0; i < f.n; i++) g[i] *= coef;
        CHECK(tt_tensor_close("clipped grads", f.grads, g, 0.0, f.dtype == LT_F32 ? 2e-7 : 1e-15));
        free(g);
        lt_params_free(f.p);
    }
}

/* Edge values: an empty set has norm 0; a non-finite norm gives torch's factor (0 for inf, NaN for NaN). */
static void test_clip_edge_cases(void) {
    lt_params *empty;
    CHECK_OK(lt_params_create(LT_F32, LT_DEVICE_CPU, &empty));
    double norm = -1.0;
    CHECK_OK(lt_clip_grad_norm(empty, 1.0, &norm));
    CHECK(norm == 0.0);
    lt_params_free(empty);

    tt_seed(1000);
    fixture f;
    CHECK(fixture_small(&f, LT_F64));
    free(set_random_grads(&f, 0.5, 1.0));
    const double inf = INFINITY;
    lt_tensor *one;
    CHECK_OK(lt_tensor_from_host(&inf, (const int64_t[]){1}, 1, LT_F64, LT_DEVICE_CPU, &one));
    lt_tensor *g0;
    CHECK_OK(lt_slice(f.grads, 0, 0, 1, 1, &g0));
    CHECK_OK(lt_tensor_copy(g0, one));
    CHECK_OK(lt_clip_grad_norm(f.p, 1.0, &norm));
    CHECK(isinf(norm));
    double *g = tt_values(f.grads);
    CHECK(isnan(g[0])); /* inf * 0 */
    for (int64_t i = 1; i < f.n; i++) CHECK(g[i] == 0.0);
    free(g);
    lt_params_free(f.p);

    /* the factor alone */
    CHECK(lt_clip_coef(4.0, 1.0) == 1.0 / (4.0 + 1e-6));
    CHECK(lt_clip_coef(0.5, 1.0) == 1.0); /* below max_norm: untouched */
    CHECK(lt_clip_coef(0.0, 1.0) == 1.0); /* the 1e-6 keeps a zero norm finite */
    CHECK(lt_clip_coef(4.0, 0.0) == 1.0); /* max_norm <= 0 never clips */
    CHECK(lt_clip_coef(4.0, -2.0) == 1.0);
    CHECK(lt_clip_coef(inf, 1.0) == 0.0);
    CHECK(isnan(lt_clip_coef(NAN, 1.0)));
    CHECK(isnan(lt_clip_coef(4.0, NAN)));
}

/* ---- Learning-rate schedule ---- */

static bool near(double got, double want) { return fabs(got - want) <= 1e-15 + 1e-12 * fabs(want); }

static void test_lr_cosine(void) {
    const double max = 6e-4, min = 6e-5, mid = (max + min) / 2;
    /* warm-up of 10, cosine over [10, 110) */
    CHECK(near(lt_lr_cosine(0, 10, 110, max, min), max / 10));
    CHECK(near(lt_lr_cosine(4, 10, 110, max, min), max * 5 / 10));
    CHECK(near(lt_lr_cosine(9, 10, 110, max, min), max));
    CHECK(near(lt_lr_cosine(10, 10, 110, max, min), max)); /* the peak */
    CHECK(near(lt_lr_cosine(60, 10, 110, max, min), mid));
    CHECK(near(lt_lr_cosine(35, 10, 110, max, min), min + 0.5 * (1 + cos(M_PI / 4)) * (max - min)));
    CHECK(lt_lr_cosine(109, 10, 110, max, min) > min);
    CHECK(lt_lr_cosine(110, 10, 110, max, min) == min);
    CHECK(lt_lr_cosine(1000, 10, 110, max, min) == min);
    for (int64_t s = 10; s < 110; s++)
        CHECK(lt_lr_cosine(s + 1, 10, 110, max, min) < lt_lr_cosine(s, 10, 110, max, min));
    CHECK(near(lt_lr_cosine(-3, 10, 110, max, min), max / 10)); /* a negative step counts as 0 */
    /* no warm-up (0 or negative): the peak is step 0 */
    CHECK(near(lt_lr_cosine(0, 0, 100, max, min), max));
    CHECK(near(lt_lr_cosine(50, 0, 100, max, min), mid));
    CHECK(lt_lr_cosine(100, 0, 100, max, min) == min);
    CHECK(near(lt_lr_cosine(50, -5, 100, max, min), mid));
    /* total <= warm-up: the ramp, then min_lr */
    CHECK(near(lt_lr_cosine(3, 10, 5, max, min), max * 4 / 10));
    CHECK(lt_lr_cosine(10, 10, 5, max, min) == min);
    CHECK(lt_lr_cosine(10, 10, 10, max, min) == min);
    CHECK(lt_lr_cosine(0, 0, 0, max, min) == min);
}

/* ---- Error paths ---- */

static void test_errors_create(void) {
    lt_params *empty, *p;
    CHECK_OK(lt_params_create(LT_F32, LT_DEVICE_CPU, &empty));
    CHECK_OK(lt_params_create(LT_F32, LT_DEVICE_CPU, &p));
    lt_tensor *w;
    CHECK_OK(lt_params_add(p, "w", (const int64_t[]){2, 3}, 2, &w));
    lt_optim *o = (lt_optim *)p; /* a stale value that failures must reset to NULL */

    const char *fa = "lt_adamw_create";
    CHECK_ERR(lt_adamw_create(p, &ADAMW, NULL), LT_ERR_ARG, fa);
    CHECK_ERR(lt_adamw_create(NULL, &ADAMW, &o), LT_ERR_ARG, fa);
    CHECK(o == NULL);
    CHECK_ERR(lt_adamw_create(p, NULL, &o), LT_ERR_ARG, fa);
    CHECK_ERR(lt_adamw_create(empty, &ADAMW, &o), LT_ERR_STATE, fa);
    lt_adamw_config bad[] = {ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW, ADAMW};
    bad[0].struct_size = sizeof(lt_adamw_config) - 1;
    bad[1].lr = -1e-3;
    bad[2].lr = NAN;
    bad[3].lr = INFINITY;
    bad[4].beta1 = 1.0;
    bad[5].beta1 = -0.1;
    bad[6].beta2 = 1.0;
    bad[7].beta2 = NAN;
    bad[8].eps = 0.0;
    bad[9].eps = -1e-8;
    bad[10].eps = INFINITY;
    bad[11].weight_decay = -0.1;
    bad[12].weight_decay = NAN;
    for (int i = 0; i < 13; i++) {
        o = (lt_optim *)p;
        CHECK_ERR(lt_adamw_create(p, &bad[i], &o), LT_ERR_ARG, fa);
        CHECK(o == NULL);
    }
    /* the edges that are allowed */
    lt_adamw_config edge = ADAMW;
    edge.lr = 0.0;
    edge.beta1 = 0.0;
    edge.beta2 = 0.0;
    edge.weight_decay = 0.0;
    CHECK_OK(lt_adamw_create(p, &edge, &o));
    lt_optim_free(o);

    const char *fs = "lt_sgd_create";
    const lt_sgd_config sgd = {.struct_size = sizeof sgd, .lr = 0.1, .momentum = 0.9};
    CHECK_ERR(lt_sgd_create(p, &sgd, NULL), LT_ERR_ARG, fs);
    CHECK_ERR(lt_sgd_create(NULL, &sgd, &o), LT_ERR_ARG, fs);
    CHECK_ERR(lt_sgd_create(p, NULL, &o), LT_ERR_ARG, fs);
    CHECK_ERR(lt_sgd_create(empty, &sgd, &o), LT_ERR_STATE, fs);
    lt_sgd_config sbad[] = {sgd, sgd, sgd, sgd, sgd, sgd};
    sbad[0].struct_size = 0;
    sbad[1].lr = -0.1;
    sbad[2].momentum = -0.5;
    sbad[3].weight_decay = NAN;
    sbad[4].lr = INFINITY;
    sbad[5].momentum = 0.0;
    sbad[5].nesterov = true;
    for (int i = 0; i < 6; i++) {
        o = (lt_optim *)p;
        CHECK_ERR(lt_sgd_create(p, &sbad[i], &o), LT_ERR_ARG, fs);
        CHECK(o == NULL);
    }
    lt_params_free(empty);
    lt_params_free(p);
}

static void test_errors_use(void) {
    lt_params *p;
    CHECK_OK(lt_params_create(LT_F64, LT_DEVICE_CPU, &p));
    lt_tensor *w;
    CHECK_OK(lt_params_add(p, "w", (const int64_t[]){2, 3}, 2, &w));
    lt_optim *adamw, *sgd;
    CHECK_OK(lt_adamw_create(p, &ADAMW, &adamw));
    const lt_sgd_config sc = {.struct_size = sizeof sc, .lr = 0.1, .momentum = 0.9};
    CHECK_OK(lt_sgd_create(p, &sc, &sgd));

    CHECK_ERR(lt_optim_step(NULL), LT_ERR_ARG, "lt_optim_step");
    CHECK_ERR(lt_optim_set_lr(NULL, 1e-3), LT_ERR_ARG, "lt_optim_set_lr");
    CHECK_ERR(lt_optim_set_lr(adamw, -1e-3), LT_ERR_ARG, "lt_optim_set_lr");
    CHECK_ERR(lt_optim_set_lr(adamw, NAN), LT_ERR_ARG, "lt_optim_set_lr");
    CHECK_ERR(lt_optim_set_lr(sgd, INFINITY), LT_ERR_ARG, "lt_optim_set_lr");
    lt_tensor *m = w, *v = w;
    CHECK_ERR(lt_optim_state(NULL, &m, &v), LT_ERR_ARG, "lt_optim_state");
    CHECK(m == NULL && v == NULL);
    CHECK_OK(lt_optim_state(adamw, NULL, NULL)); /* both outputs are optional */
    CHECK_ERR(lt_optim_set_steps(NULL, 3), LT_ERR_ARG, "lt_optim_set_steps");
    CHECK_ERR(lt_optim_set_steps(adamw, -1), LT_ERR_ARG, "lt_optim_set_steps");
    CHECK(lt_optim_steps(adamw) == 0);
    CHECK(lt_optim_steps(NULL) == 0);
    CHECK_OK(lt_optim_set_steps(adamw, INT64_MAX));
    CHECK_ERR(lt_optim_step(adamw), LT_ERR_STATE, "lt_optim_step");
    CHECK_ERR(lt_clip_grad_norm(NULL, 1.0, NULL), LT_ERR_ARG, "lt_clip_grad_norm");
    double norm = 0.0;
    CHECK_ERR(lt_clip_grad_norm(p, NAN, &norm), LT_ERR_ARG, "lt_clip_grad_norm");
    CHECK(isnan(norm));

    /* adding a parameter (even an empty one) after create invalidates both optimizers' state */
    CHECK_OK(lt_optim_set_steps(adamw, 0));
    CHECK_OK(lt_params_add(p, "late", (const int64_t[]){0}, 1, &w));
    CHECK_ERR(lt_optim_step(adamw), LT_ERR_STATE, "lt_optim_step");
    CHECK_ERR(lt_optim_step(sgd), LT_ERR_STATE, "lt_optim_step");
    CHECK_OK(lt_params_add(p, "later", (const int64_t[]){4}, 1, &w));
    CHECK_ERR(lt_optim_step(adamw), LT_ERR_STATE, "lt_optim_step");
    CHECK(lt_optim_steps(adamw) == 0);
    lt_optim_free(adamw);
    lt_optim_free(sgd);
    lt_optim_free(NULL);
    lt_params_free(p);
}

int main(void) {
    RUN(test_adamw_matches_reference);
    RUN(test_adamw_bias_correction_uses_steps);
    RUN(test_adamw_decay_flags);
    RUN(test_adamw_many_segments);
    RUN(test_sgd_matches_reference);
    RUN(test_state_round_trip);
    RUN(test_step_scaled);
    RUN(test_clip_measures_and_leaves_small_grads);
    RUN(test_clip_scales_large_grads);
    RUN(test_clip_large_buffer);
    RUN(test_clip_edge_cases);
    RUN(test_lr_cosine);
    RUN(test_errors_create);
    RUN(test_errors_use);
    return tt_finish();
}
