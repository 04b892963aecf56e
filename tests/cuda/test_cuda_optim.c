/* The CUDA backend's optimizer entries against the CPU: AdamW and SGD steps over identical parameter sets on each
 * device, several steps with fresh gradients, comparing the parameters and the optimizer state (m, v, velocity).
 * Covers f32 and f64, few segments (passed by value) and many (a device table), decay flags changed between steps,
 * empty parameters, a learning-rate change, momentum with and without Nesterov, and the errors of the public API.
 * The kernels compute in the CPU's order of operations without fused multiply-adds: they agree to the bit in the
 * emulator, and the checks leave a few ulp for a CPU build that contracts into FMAs. */
#include "cuda_check.h"

#include "libtrain/optim.h"

static const lt_dtype dtypes[] = {LT_F32, LT_F64};

static void fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, lt_last_error());
    abort();
}

/* Identical parameter sets on the CPU ([0]) and CUDA ([1]): parameter i has shape shapes[i] (ndims[i] dims, 0 for
 * a scalar), so 2-D ones decay and vectors do not, with the same random values on both. */
typedef struct twin {
    lt_params *p[2];
    int n;
} twin;

static void twin_make(twin *t, lt_dtype dt, const int64_t (*shapes)[2], const int *ndims, int n) {
    lt_device dev[2] = {LT_DEVICE_CPU, tc_cuda};
    t->n = n;
    for (int k = 0; k < 2; k++) {
        if (lt_params_create(dt, dev[k], &t->p[k]) != LT_OK) fail("lt_params_create");
        for (int i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            lt_tensor *v;
            if (lt_params_add(t->p[k], name, shapes[i], ndims[i], &v) != LT_OK) fail("lt_params_add");
        }
    }
    int64_t numel = lt_params_numel(t->p[0]);
    lt_tensor *src = tt_rand(&numel, 1, LT_F64, -1, 1);
    for (int k = 0; k < 2; k++) {
        lt_tensor *flat, *there;
        if (lt_params_flat(t->p[k], &flat, NULL) != LT_OK ||
            lt_tensor_to(src, LT_F64, lt_tensor_device(flat), &there) != LT_OK || lt_tensor_copy(flat, there) != LT_OK)
            fail("twin_make");
    }
}

/* The same fresh random gradients on both. */
static void twin_grads(twin *t) {
    int64_t numel = lt_params_numel(t->p[0]);
    lt_tensor *src = tt_rand(&numel, 1, LT_F64, -1, 1);
    for (int k = 0; k < 2; k++) {
        lt_tensor *grads, *there;
        if (lt_params_flat(t->p[k], NULL, &grads) != LT_OK ||
            lt_tensor_to(src, LT_F64, lt_tensor_device(grads), &there) != LT_OK ||
            lt_tensor_copy(grads, there) != LT_OK)
            fail("twin_grads");
    }
}

static void twin_free(twin *t) {
    lt_params_free(t->p[0]);
    lt_params_free(t->p[1]);
}

/* Parameters and the optimizers' state agree between the devices. */
static bool same_state(const char *what, twin *t, lt_optim *oc, lt_optim *og) {
    lt_tensor *pc, *pg, *mc, *vc, *mg, *vg;
    bool ok = lt_params_flat(t->p[0], &pc, NULL) == LT_OK && lt_params_flat(t->p[1], &pg, NULL) == LT_OK &&
              lt_optim_state(oc, &mc, &vc) == LT_OK && lt_optim_state(og, &mg, &vg) == LT_OK;
    if (!ok) fail(what);
    /* a few ulp: the emulator agrees to the bit, and so does a GPU unless the CPU build contracts into FMAs */
    const bool f32 = lt_tensor_dtype(pc) == LT_F32;
    const double atol = f32 ? 1e-30 : 1e-300, rtol = f32 ? 4e-7 : 1e-15;
    char name[160];
    snprintf(name, sizeof name, "%s: parameters", what);
    ok = tc_same(name, pg, pc, atol, rtol);
    if (ok && (mc || mg)) {
        snprintf(name, sizeof name, "%s: first moment / velocity", what);
        ok = mc && mg && lt_tensor_device(mg).type == LT_CUDA && tc_same(name, mg, mc, atol, rtol);
    }
    if (ok && (vc || vg)) {
        snprintf(name, sizeof name, "%s: second moment", what);
        ok = vc && vg && tc_same(name, vg, vc, atol, rtol);
    }
    return ok;
}

/* Layouts: a few parameters (<= 8 segments: the by-value path), and many alternating matrices and vectors (more
 * than 8 segments: the device table), with an empty parameter and a scalar among them. */
static const int64_t few_shapes[][2] = {{33, 31}, {257, 1}, {5, 7}};
static const int few_ndims[] = {2, 1, 2};
static const int64_t many_shapes[][2] = {{4, 33}, {33, 1}, {31, 2}, {1, 1},  {7, 9},   {255, 1}, {0, 3},
                                         {3, 0},  {2, 2},  {17, 1}, {9, 40}, {1, 257}, {5, 1},   {70, 70}};
static const int many_ndims[] = {2, 1, 2, 0, 2, 1, 2, 1, 2, 1, 2, 2, 1, 2};

/* Steps cycle through these gradient factors (lt_optim_step_scaled; 1 is lt_optim_step). */
static const double grad_scales[3] = {1.0, 0.3712, 2.5};

static void test_adamw(void) {
    for (int d = 0; d < 2; d++)
        for (int layout = 0; layout < 2; layout++) {
            twin t;
            if (layout == 0)
                twin_make(&t, dtypes[d], few_shapes, few_ndims, 3);
            else
                twin_make(&t, dtypes[d], many_shapes, many_ndims, 14);
            lt_adamw_config cfg = {sizeof cfg, 1e-2, 0.9, 0.95, 1e-8, 0.1};
            lt_optim *oc, *og;
            CHECK_OK(lt_adamw_create(t.p[0], &cfg, &oc));
            CHECK_OK(lt_adamw_create(t.p[1], &cfg, &og));
            for (int step = 0; step < 6; step++) {
                if (step == 2)
                    for (int k = 0; k < 2; k++) {
                        CHECK_OK(lt_params_set_decay(t.p[k], "p0", false)); /* segments change between steps */
                        CHECK_OK(lt_params_set_decay(t.p[k], "p1", true));
                    }
                if (step == 4)
                    for (int k = 0; k < 2; k++) CHECK_OK(lt_optim_set_lr(k ? og : oc, 3e-3));
                twin_grads(&t);
                const double gs = grad_scales[step % 3]; /* a clip factor, fused into the update */
                CHECK_OK(lt_optim_step_scaled(oc, gs));
                CHECK_OK(lt_optim_step_scaled(og, gs));
                char what[96];
                snprintf(what, sizeof what, "adamw %s %s, step %d", lt_dtype_name(dtypes[d]),
                         layout ? "many segments" : "few segments", step + 1);
                CHECK(same_state(what, &t, oc, og));
            }
            CHECK(lt_optim_steps(og) == 6);
            lt_optim_free(oc);
            lt_optim_free(og);
            twin_free(&t);
        }
}

/* A restored step count drives the bias correction on both devices alike; no weight decay at all. */
static void test_adamw_restored_steps(void) {
    twin t;
    twin_make(&t, LT_F32, few_shapes, few_ndims, 3);
    lt_adamw_config cfg = {sizeof cfg, 1e-3, 0.8, 0.999, 1e-6, 0.0};
    lt_optim *oc, *og;
    CHECK_OK(lt_adamw_create(t.p[0], &cfg, &oc));
    CHECK_OK(lt_adamw_create(t.p[1], &cfg, &og));
    CHECK_OK(lt_optim_set_steps(oc, 1000));
    CHECK_OK(lt_optim_set_steps(og, 1000));
    for (int step = 0; step < 3; step++) {
        twin_grads(&t);
        CHECK_OK(lt_optim_step(oc));
        CHECK_OK(lt_optim_step(og));
        CHECK(same_state("adamw from step 1000", &t, oc, og));
    }
    lt_optim_free(oc);
    lt_optim_free(og);
    twin_free(&t);
}

static void test_sgd(void) {
    static const lt_sgd_config configs[] = {
        {sizeof(lt_sgd_config), 0.1, 0.0, 0.0, false},
        {sizeof(lt_sgd_config), 0.05, 0.9, 0.0, false},
        {sizeof(lt_sgd_config), 0.05, 0.9, 1e-2, true},
        {sizeof(lt_sgd_config), 0.2, 0.5, 0.3, false},
    };
    for (int d = 0; d < 2; d++)
        for (int j = 0; j < 4; j++) {
            twin t;
            if (j % 2)
                twin_make(&t, dtypes[d], many_shapes, many_ndims, 14);
            else
                twin_make(&t, dtypes[d], few_shapes, few_ndims, 3);
            lt_optim *oc, *og;
            CHECK_OK(lt_sgd_create(t.p[0], &configs[j], &oc));
            CHECK_OK(lt_sgd_create(t.p[1], &configs[j], &og));
            for (int step = 0; step < 4; step++) {
                twin_grads(&t);
                const double gs = grad_scales[step % 3]; /* a clip factor, fused into the update */
                CHECK_OK(lt_optim_step_scaled(oc, gs));
                CHECK_OK(lt_optim_step_scaled(og, gs));
                char what[96];
                snprintf(what, sizeof what, "sgd %s config %d, step %d", lt_dtype_name(dtypes[d]), j, step + 1);
                CHECK(same_state(what, &t, oc, og));
            }
            lt_optim_free(oc);
            lt_optim_free(og);
            twin_free(&t);
        }
}

/* A buffer larger than one grid of threads (4096 blocks of 256) makes the kernels' grid-stride loops go round. */
static void test_large(void) {
    if (tc_small) return; /* too slow under AddressSanitizer */
    static const int64_t shapes[][2] = {{1031, 1029}, {1, 1}, {3, 5}};
    static const int ndims[] = {2, 1, 2};
    twin t;
    twin_make(&t, LT_F32, shapes, ndims, 3);
    lt_adamw_config cfg = {sizeof cfg, 1e-2, 0.9, 0.95, 1e-8, 0.1};
    lt_sgd_config scfg = {sizeof scfg, 0.05, 0.9, 1e-2, true};
    lt_optim *oc, *og, *sc, *sg;
    CHECK_OK(lt_adamw_create(t.p[0], &cfg, &oc));
    CHECK_OK(lt_adamw_create(t.p[1], &cfg, &og));
    CHECK_OK(lt_sgd_create(t.p[0], &scfg, &sc));
    CHECK_OK(lt_sgd_create(t.p[1], &scfg, &sg));
    twin_grads(&t);
    CHECK_OK(lt_optim_step(oc));
    CHECK_OK(lt_optim_step(og));
    CHECK(same_state("adamw, 1060915 f32", &t, oc, og));
    CHECK_OK(lt_optim_step(sc));
    CHECK_OK(lt_optim_step(sg));
    CHECK(same_state("sgd, 1060915 f32", &t, sc, sg));
    lt_optim_free(oc);
    lt_optim_free(og);
    lt_optim_free(sc);
    lt_optim_free(sg);
    twin_free(&t);
}

/* The public API's checks with a set on CUDA: they fail before the backend. */
static void test_errors(void) {
    lt_params *p;
    CHECK_OK(lt_params_create(LT_F32, tc_cuda, &p));
    lt_optim *o = NULL;
    lt_adamw_config cfg = {sizeof cfg, 1e-2, 0.9, 0.95, 1e-8, 0.1};
    CHECK_ERR(lt_adamw_create(p, &cfg, &o), LT_ERR_STATE, "lt_adamw_create");
    int64_t n = 7;
    lt_tensor *v;
    CHECK_OK(lt_params_add(p, "w", &n, 1, &v));
    lt_adamw_config bad = cfg;
    bad.beta1 = 1.0;
    CHECK_ERR(lt_adamw_create(p, &bad, &o), LT_ERR_ARG, "lt_adamw_create");
    CHECK_OK(lt_adamw_create(p, &cfg, &o));
    CHECK_OK(lt_params_add(p, "late", &n, 1, &v));
    CHECK_ERR(lt_optim_step(o), LT_ERR_STATE, "lt_optim_step");
    lt_optim_free(o);
    lt_params_free(p);
}

int main(void) {
    tc_require_cuda();
    tt_seed(9);
    RUN(test_adamw);
    RUN(test_adamw_restored_steps);
    RUN(test_sgd);
    RUN(test_large);
    RUN(test_errors);
    return tt_finish();
}
