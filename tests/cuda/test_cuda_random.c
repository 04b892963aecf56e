/* The CUDA backend's random numbers against the CPU's for the same lt_philox state: lt_tensor_rand bit for bit,
 * lt_tensor_randn within 1e-6 relative (CUDA's sinf, cosf and logf are not glibc's; under the emulator they are,
 * so there it is bitwise too), in every float dtype, at offsets that start anywhere in a Philox block (so normal
 * pairs straddle blocks); lt_dropout forward (bit for bit, contiguous and strided inputs) and backward; and a GPT
 * created on either device from one seed starts from the same parameters. */
#include "cuda_check.h"

static const lt_dtype float_dtypes[4] = {LT_F32, LT_F64, LT_BF16, LT_F16};

/* Start offsets: each position in a block, a block far out, and one where the counter's low word carries. */
static const uint64_t offsets[] = {0, 1, 2, 3, 6, 4099, 4ull * 0xFFFFFFFFull - 3};
#define N_OFFSETS ((int)(sizeof offsets / sizeof offsets[0]))

/* Sizes: tc_odd_sizes and a few around a pair and a block. */
static const int64_t sizes[] = {1, 2, 3, 4, 5, 31, 32, 33, 255, 257, 1000};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* normal: f32 and f64 hold a float draw, so 1e-6 relative is a few float ulps; bf16 and f16 may round such a
 * difference to the neighbouring value, one ulp of theirs. The absolute floor only matters for draws below 1e-1. */
static double normal_rtol(lt_dtype d) { return d == LT_BF16 ? 8e-3 : d == LT_F16 ? 1e-3 : 1e-6; }

static bool draw_both(bool normal, const int64_t *shape, int nd, lt_dtype dtype, uint64_t seed, uint64_t offset) {
    lt_philox rc = {seed, offset}, rg = {seed, offset};
    lt_tensor *c = NULL, *g = NULL;
    lt_status sc = normal ? lt_tensor_randn(shape, nd, dtype, LT_DEVICE_CPU, &rc, &c)
                          : lt_tensor_rand(shape, nd, dtype, LT_DEVICE_CPU, &rc, &c);
    lt_status sg = normal ? lt_tensor_randn(shape, nd, dtype, tc_cuda, &rg, &g)
                          : lt_tensor_rand(shape, nd, dtype, tc_cuda, &rg, &g);
    if (sc != LT_OK || sg != LT_OK) {
        fprintf(stderr, "%s failed: %s\n", normal ? "randn" : "rand", lt_last_error());
        return false;
    }
    char what[160];
    snprintf(what, sizeof what, "%s %s n=%lld seed=%llu offset=%llu", normal ? "randn" : "rand", lt_dtype_name(dtype),
             (long long)lt_tensor_numel(c), (unsigned long long)seed, (unsigned long long)offset);
    bool ok = normal ? tc_same(what, g, c, 1e-7, normal_rtol(dtype)) : tc_same(what, g, c, 0, 0);
    if (rc.offset != rg.offset || rc.seed != rg.seed) {
        fprintf(stderr, "%s: the states advanced differently\n", what);
        ok = false;
    }
    if (!normal && ok) { /* curand_uniform's range (0, 1] */
        double *v = tt_values(g);
        for (int64_t i = 0; i < lt_tensor_numel(g); i++)
            if (!(v[i] > 0 && v[i] <= 1)) {
                fprintf(stderr, "%s: element %lld is %g, outside (0, 1]\n", what, (long long)i, v[i]);
                ok = false;
                break;
            }
        free(v);
    }
    return ok;
}

static void test_uniform_bitwise(void) {
    for (int d = 0; d < 4; d++)
        for (int s = 0; s < N_SIZES; s++)
            for (int o = 0; o < N_OFFSETS; o++) {
                int64_t shape[1] = {sizes[s]};
                CHECK(draw_both(false, shape, 1, float_dtypes[d], 0x5eed0000ull + (uint64_t)s, offsets[o]));
            }
    int64_t shape2[3] = {3, 33, 5};
    CHECK(draw_both(false, shape2, 3, LT_F32, 42, 0));
    CHECK(draw_both(false, shape2, 3, LT_F32, 0xFFFFFFFFFFFFFFFFull, 13)); /* both key words set */
}

static void test_normal(void) {
    for (int d = 0; d < 4; d++)
        for (int s = 0; s < N_SIZES; s++)
            for (int o = 0; o < N_OFFSETS; o++) {
                int64_t shape[1] = {sizes[s]};
                CHECK(draw_both(true, shape, 1, float_dtypes[d], 0xabcdef12ull * (uint64_t)(s + 1), offsets[o]));
            }
    int64_t shape2[2] = {257, 33};
    CHECK(draw_both(true, shape2, 2, LT_F32, 7, 0));
    CHECK(draw_both(true, shape2, 2, LT_F64, 7, 1));
}

/* A sequence of draws from one state on each device: the offsets advance by whole blocks alike. */
static void test_sequence(void) {
    lt_philox rc = {99, 3}, rg = {99, 3};
    for (int i = 0; i < 6; i++) {
        int64_t n = tc_odd_sizes[i];
        lt_tensor *c, *g;
        bool normal = i & 1;
        lt_dtype dt = i < 3 ? LT_F32 : LT_F64;
        CHECK_OK(normal ? lt_tensor_randn(&n, 1, dt, LT_DEVICE_CPU, &rc, &c)
                        : lt_tensor_rand(&n, 1, dt, LT_DEVICE_CPU, &rc, &c));
        CHECK_OK(normal ? lt_tensor_randn(&n, 1, dt, tc_cuda, &rg, &g) : lt_tensor_rand(&n, 1, dt, tc_cuda, &rg, &g));
        CHECK(
            tc_same(normal ? "randn in a sequence" : "rand in a sequence", g, c, normal ? 1e-7 : 0, normal ? 1e-6 : 0));
        CHECK(rc.offset == rg.offset);
    }
    int64_t zero = 0;
    lt_tensor *e;
    CHECK_OK(lt_tensor_rand(&zero, 1, LT_F32, tc_cuda, &rg, &e)); /* empty: launches nothing */
    CHECK(lt_tensor_numel(e) == 0);
    CHECK_OK(lt_tensor_randn(&zero, 1, LT_F64, tc_cuda, &rg, &e));
    CHECK(rc.offset == rg.offset);
    int64_t two = 2;
    CHECK_ERR_OUT(lt_tensor_rand(&two, 1, LT_I32, tc_cuda, &rg, &e), e, LT_ERR_DTYPE, "lt_tensor_rand");
}

/* ---- dropout ---- */

typedef struct drop_case {
    double p;
    lt_philox rng;
    int layout; /* 0 contiguous, 1 transposed (the leaf stored [cols, rows]), 2 every other column */
} drop_case;

static lt_status dropout_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const drop_case *c = ctx;
    lt_philox rng = c->rng;
    lt_tensor *x = in[0], *v = NULL;
    lt_status st = LT_OK;
    if (c->layout == 1) st = lt_transpose(x, 0, 1, &v);
    if (c->layout == 2) st = lt_slice(x, 1, 0, lt_tensor_dim(x, 1), 2, &v);
    if (st != LT_OK) return st;
    return lt_dropout(v ? v : x, c->p, &rng, out);
}

/* Runs the op on a CPU leaf and a cuda leaf holding x and compares the outputs exactly (the same elements are kept
 * and x * scale rounds alike); checks that each element is 0 or x * scale and that about 1 - p are kept; with
 * backward, compares the gradients for one random upstream gradient fed to lt_backward_grad. */
static bool dropout_check(const char *what, drop_case *c, const lt_tensor *x, bool backward) {
    lt_tensor *xc, *xg, *yc, *yg;
    lt_no_grad_begin();
    if (lt_tensor_to(x, lt_tensor_dtype(x), LT_DEVICE_CPU, &xc) != LT_OK ||
        lt_tensor_to(x, lt_tensor_dtype(x), tc_cuda, &xg) != LT_OK)
        abort();
    lt_no_grad_end();
    if (backward && (lt_tensor_set_requires_grad(xc, true) != LT_OK || lt_tensor_set_requires_grad(xg, true) != LT_OK))
        abort();
    if (dropout_op(c, &xc, &yc) != LT_OK || dropout_op(c, &xg, &yg) != LT_OK) {
        fprintf(stderr, "%s: %s\n", what, lt_last_error());
        return false;
    }
    bool ok = tc_same(what, yg, yc, 0, 0);
    /* every element is 0 or x * scale, and about 1 - p of them are kept */
    double *y = tt_values(yc), *xv = NULL;
    lt_tensor *xview = NULL;
    if (ok && dropout_op(&(drop_case){.p = 0, .layout = c->layout}, &xc, &xview) == LT_OK) xv = tt_values(xview);
    int64_t n = lt_tensor_numel(yc), kept = 0;
    double scale = 1.0 / (1.0 - c->p);
    for (int64_t i = 0; xv && i < n; i++) {
        if (y[i] != 0) {
            kept++;
            double want = lt_tensor_dtype(x) == LT_F32 ? (double)((float)xv[i] * (float)scale) : xv[i] * scale;
            if (y[i] != want) {
                fprintf(stderr, "%s: element %lld is %g, neither 0 nor x * scale = %g\n", what, (long long)i, y[i],
                        want);
                ok = false;
                break;
            }
        }
    }
    if (n >= 1000 && fabs((double)kept / (double)n - (1 - c->p)) > 0.05) {
        fprintf(stderr, "%s: kept %lld of %lld at p = %g\n", what, (long long)kept, (long long)n, c->p);
        ok = false;
    }
    free(y);
    free(xv);
    if (ok && backward) {
        int64_t shape[LT_MAX_DIMS];
        lt_tensor_shape(yc, shape);
        lt_tensor *r = tt_rand(shape, lt_tensor_ndim(yc), lt_tensor_dtype(yc), -1, 1), *rg, *gc, *gg;
        lt_no_grad_begin();
        if (lt_tensor_to(r, lt_tensor_dtype(r), tc_cuda, &rg) != LT_OK) abort();
        lt_no_grad_end();
        if (lt_backward_grad(yc, r) != LT_OK || lt_backward_grad(yg, rg) != LT_OK) {
            fprintf(stderr, "%s: backward failed: %s\n", what, lt_last_error());
            return false;
        }
        if (lt_tensor_grad(xc, &gc) != LT_OK || lt_tensor_grad(xg, &gg) != LT_OK || !gc || !gg) abort();
        char name[200];
        snprintf(name, sizeof name, "%s (grad)", what);
        ok = tc_same(name, gg, gc, 0, 0);
    }
    return ok;
}

static void run_dropout(bool backward) {
    static const double ps[] = {0.1, 0.5, 0.9};
    static const uint64_t offs[] = {0, 1, 7};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 6; s++)
            for (int l = 0; l < 3; l++)
                for (int pi = 0; pi < 3; pi++) {
                    lt_dtype dt = d ? LT_F64 : LT_F32;
                    int64_t rows = tc_odd_sizes[s], cols = s < 3 ? 37 : 5;
                    int64_t shape[2] = {rows, l == 2 ? 2 * cols : cols};
                    if (l == 1) shape[0] = cols, shape[1] = rows;
                    lt_tensor *x = tt_rand(shape, 2, dt, 0.5, 2); /* no zeros: a zero output means dropped */
                    drop_case c = {.p = ps[pi], .rng = {1234 + (uint64_t)s, offs[(s + pi) % 3]}, .layout = l};
                    char what[160];
                    snprintf(what, sizeof what, "dropout %s [%lld, %lld] layout %d p=%g offset=%llu", lt_dtype_name(dt),
                             (long long)rows, (long long)cols, l, c.p, (unsigned long long)c.rng.offset);
                    CHECK(dropout_check(what, &c, x, backward));
                }
}

static void test_dropout_forward(void) { run_dropout(false); }

/* The backward is gy * scale where the mask kept the element (scalar and where over the forward's mask). */
static void test_dropout_backward(void) { run_dropout(true); }

/* ---- a model initialised on either device ---- */

static void test_gpt_same_init(void) {
    lt_gpt_config cfg = {.struct_size = sizeof cfg,
                         .vocab_size = 67,
                         .padded_vocab_size = 72,
                         .block_size = 9,
                         .n_layer = 2,
                         .n_head = 2,
                         .n_embd = 12,
                         .dropout = 0.1};
    lt_gpt *mc = NULL, *mg = NULL;
    lt_status sc = lt_gpt_create(&cfg, LT_F32, LT_DEVICE_CPU, 2024, &mc);
    lt_status sg = sc == LT_OK ? lt_gpt_create(&cfg, LT_F32, tc_cuda, 2024, &mg) : sc;
    if (sg != LT_OK) {
        fprintf(stderr, "lt_gpt_create: %s\n", lt_last_error());
        CHECK(sg == LT_OK);
    } else {
        lt_params *pc = lt_gpt_params(mc), *pg = lt_gpt_params(mg);
        CHECK(lt_params_count(pc) == lt_params_count(pg));
        for (int i = 0; i < lt_params_count(pc) && i < lt_params_count(pg); i++) {
            const char *nc, *ng;
            lt_tensor *tc, *tg;
            CHECK(lt_params_get(pc, i, &nc, &tc) == LT_OK && lt_params_get(pg, i, &ng, &tg) == LT_OK);
            CHECK(strcmp(nc, ng) == 0);
            CHECK(lt_tensor_device(tg).type == LT_CUDA);
            CHECK(tc_same(nc, tg, tc, 1e-9, 1e-6));
        }
        lt_philox *rc = lt_gpt_rng(mc), *rg = lt_gpt_rng(mg);
        CHECK(rc->seed == rg->seed && rc->offset == rg->offset);
    }
    lt_gpt_free(mc);
    lt_gpt_free(mg);
}

int main(void) {
    tc_require_cuda();
    tt_seed(5);
    RUN(test_uniform_bitwise);
    RUN(test_normal);
    RUN(test_sequence);
    RUN(test_dropout_forward);
    RUN(test_dropout_backward);
    RUN(test_gpt_same_init);
    return tt_finish();
}
