/* The CUDA backend's reductions against the CPU: sum, mean and max over every set of dims of 3-D tensors stored
 * contiguous, strided and permuted, with and without keepdim, forward and backward (max's gradient to the first
 * maximum, ties and NaN included); long rows and columns that cross the block and chunk boundaries; and the sum of
 * squares through lt_clip_grad_norm, whose in-place clipping uses the scalar entry. */
#include "cuda_check.h"

#include "libtrain/optim.h"

static const lt_dtype dtypes[] = {LT_F32, LT_F64};

static double atol_of(lt_dtype d) { return d == LT_F32 ? 1e-5 : 1e-12; }
static double rtol_of(lt_dtype d) { return d == LT_F32 ? 1e-5 : 1e-12; }

/* Returns a failed call's status from an op under test. */
#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        lt_status st_ = (call);                                                                                        \
        if (st_ != LT_OK) return st_;                                                                                  \
    } while (0)

typedef enum kind { K_SUM, K_MEAN, K_MAX } kind;
static const char *kind_names[] = {"sum", "mean", "max"};

typedef struct reduce_ctx {
    kind k;
    int dims[3], ndims;
    bool keepdim;
    int perm; /* 0: as given; 1: the input transposed (0 2) inside the op */
} reduce_ctx;

static lt_status run_reduce(void *ctx, lt_tensor **in, lt_tensor **out) {
    const reduce_ctx *c = ctx;
    lt_tensor *x = in[0];
    if (c->perm) TRY(lt_transpose(x, 0, lt_tensor_ndim(x) - 1, &x));
    switch (c->k) {
    case K_SUM: return lt_sum(x, c->dims, c->ndims, c->keepdim, out);
    case K_MEAN: return lt_mean(x, c->dims, c->ndims, c->keepdim, out);
    default: return lt_max(x, c->dims, c->ndims, c->keepdim, out);
    }
}

static bool check_reduce(const char *tag, lt_tensor *x, const reduce_ctx *c, lt_dtype dt) {
    char what[160];
    int64_t shape[LT_MAX_DIMS];
    lt_tensor_shape(x, shape);
    snprintf(what, sizeof what, "%s %s %s [%lld, %lld, %lld] dims {%d %d %d}/%d keepdim %d perm %d", tag,
             kind_names[c->k], lt_dtype_name(dt), (long long)shape[0], (long long)shape[1], (long long)shape[2],
             c->dims[0], c->dims[1], c->dims[2], c->ndims, (int)c->keepdim, c->perm);
    return tc_cross_check(what, run_reduce, (void *)c, &x, 1, atol_of(dt), rtol_of(dt), true);
}

/* Every subset of the dims of [5, s, 3] (and of its transpose), each storage layout, every kind, keepdim or not. */
static void test_dim_sets(void) {
    static const int sets[][3] = {{0, 0, 0}, {0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {2, 0, 1}, {-1}, {-2, 0}};
    static const int nsets[] = {0, 1, 1, 1, 2, 2, 2, 3, 1, 2};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 6; s++)
            for (int layout = 0; layout < 3; layout++) {
                int64_t shape[3] = {5, tc_odd_sizes[s], 3};
                lt_tensor *x = tt_layout(shape, 3, dtypes[d], layout);
                for (int k = 0; k < 3; k++)
                    for (int j = 0; j < 10; j++) {
                        reduce_ctx c = {(kind)k,
                                        {sets[j][0], sets[j][1], sets[j][2]},
                                        nsets[j],
                                        (j + s) % 2 == 0,
                                        (j + layout) % 3 == 2};
                        CHECK(check_reduce("dim set", x, &c, dtypes[d]));
                    }
            }
}

/* Rows and columns long enough to need a block per output (more than 4096 elements), several chunks per output
 * (two passes), narrow and wide columns in the outer layout, and a full reduction of a large tensor. */
static void test_long(void) {
    static const struct {
        int64_t shape[3];
        int dims[2], ndims, perm;
        bool big; /* skipped under AddressSanitizer (tc_small) */
    } cases[] = {
        {{3, 4099, 1}, {1}, 1, 0, false},    /* inner, a block per row */
        {{2, 40000, 1}, {1}, 1, 0, false},   /* inner, chunked */
        {{70001, 1, 1}, {0}, 0, 0, true},    /* everything, chunked */
        {{4099, 3, 1}, {0}, 1, 0, false},    /* outer, 3 columns */
        {{20000, 3, 1}, {0}, 1, 0, false},   /* outer, chunked */
        {{2100, 40, 1}, {0}, 1, 0, false},   /* outer, a warp of columns, chunked */
        {{700, 257, 1}, {0}, 1, 0, true},    /* outer, many column tiles */
        {{700, 257, 1}, {0}, 1, 1, true},    /* a size-1 dim: nothing to reduce */
        {{40, 3, 50}, {1}, 1, 1, false},     /* outer, a middle dim of a permuted tensor */
        {{33, 65, 33}, {0, 2}, 2, 0, false}, /* two reduced dims that do not merge */
        {{129, 2, 255}, {1}, 1, 0, false},   /* a short middle dim */
    };
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
            for (int k = 0; k < 3; k++) {
                if (tc_small && cases[i].big) continue;
                lt_scope_begin();
                lt_tensor *x = tt_rand(cases[i].shape, 3, dtypes[d], -2, 2);
                reduce_ctx c = {
                    (kind)k, {cases[i].dims[0], cases[i].dims[1], 0}, cases[i].ndims, k == 1, cases[i].perm};
                CHECK(check_reduce("long", x, &c, dtypes[d]));
                lt_scope_end();
            }
}

/* Ties: the gradient of max goes to the first maximal element in logical order, whatever the layout; a NaN is the
 * max of its group and takes the gradient at its first occurrence. */
static void test_max_ties(void) {
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 6; s++)
            for (int layout = 0; layout < 3; layout++) {
                /* values from {0, 1, 2}: every group has many ties */
                int64_t shape[3] = {4, tc_odd_sizes[s], 3};
                lt_tensor *r = tt_randint(shape, 3, LT_I32, 3), *f, *x;
                CHECK_OK(lt_tensor_to(r, dtypes[d], LT_DEVICE_CPU, &f));
                if (layout == 0) {
                    x = f;
                } else if (layout == 1) {
                    x = tt_strided(f);
                } else {
                    lt_tensor *t, *tc;
                    CHECK_OK(lt_transpose(f, 0, 2, &t));
                    CHECK_OK(lt_contiguous(t, &tc));
                    CHECK_OK(lt_transpose(tc, 0, 2, &x)); /* f's values, stored with the dims reversed */
                }
                for (int j = 0; j < 4; j++) {
                    static const int sets[][2] = {{1}, {0, 2}, {2}, {0}};
                    reduce_ctx c = {K_MAX, {sets[j][0], sets[j][1], 0}, j == 1 ? 2 : 1, j % 2 == 0, 0};
                    CHECK(check_reduce("ties", x, &c, dtypes[d]));
                }
                reduce_ctx all = {K_MAX, {0, 0, 0}, 0, false, 0};
                CHECK(check_reduce("ties", x, &all, dtypes[d]));
            }
    /* NaN and -inf: max([-inf, -inf]) is -inf at position 0; a NaN wins wherever it is */
    double v[12] = {-INFINITY, -INFINITY, -INFINITY, 1, NAN, 2, NAN, 7, 3, 3, 3, -1};
    int64_t shape[2] = {4, 3};
    for (int d = 0; d < 2; d++) {
        lt_tensor *h, *xc, *xg, *yc, *yg, *lc, *lg, *gc, *gg;
        CHECK_OK(lt_tensor_from_host(v, shape, 2, LT_F64, LT_DEVICE_CPU, &h));
        CHECK_OK(lt_tensor_to(h, dtypes[d], LT_DEVICE_CPU, &xc));
        xg = tc_to_cuda(xc, true);
        CHECK_OK(lt_tensor_set_requires_grad(xc, true));
        int dim = 1;
        CHECK_OK(lt_max(xc, &dim, 1, false, &yc));
        CHECK_OK(lt_max(xg, &dim, 1, false, &yg));
        CHECK(tc_same("max with NaN and -inf", yg, yc, 0, 0));
        CHECK_OK(lt_sum(yc, NULL, 0, false, &lc));
        CHECK_OK(lt_sum(yg, NULL, 0, false, &lg));
        CHECK_OK(lt_backward(lc));
        CHECK_OK(lt_backward(lg));
        CHECK_OK(lt_tensor_grad(xc, &gc));
        CHECK_OK(lt_tensor_grad(xg, &gg));
        CHECK(tc_same("max's gradient with NaN and -inf", gg, gc, 0, 0));
        double g[12];
        CHECK_OK(lt_tensor_to(gg, LT_F64, LT_DEVICE_CPU, &gc));
        CHECK_OK(lt_tensor_to_host(gc, g, sizeof g));
        static const double want[12] = {1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0};
        CHECK(memcmp(g, want, sizeof g) == 0);
    }
}

/* Empty tensors: a reduction over an empty dim gives the identity (0 for sum), an empty output nothing; the public
 * ops refuse the max of nothing and bad dims before the backend. */
static void test_empty_and_errors(void) {
    int64_t shape[2] = {0, 3};
    lt_tensor *e, *y;
    CHECK_OK(lt_tensor_zeros(shape, 2, LT_F32, tc_cuda, &e));
    int d0 = 0, d1 = 1, bad = 2;
    CHECK_OK(lt_sum(e, &d0, 1, false, &y));
    float out[3] = {1, 1, 1};
    CHECK_OK(lt_tensor_to_host(y, out, sizeof out));
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0);
    CHECK_OK(lt_sum(e, &d1, 1, true, &y));
    CHECK(lt_tensor_numel(y) == 0);
    CHECK_OK(lt_mean(e, &d1, 1, false, &y));
    CHECK(lt_tensor_numel(y) == 0);
    CHECK_ERR_OUT(lt_max(e, &d0, 1, false, &y), y, LT_ERR_SHAPE, "lt_max");
    CHECK_ERR_OUT(lt_sum(e, &bad, 1, false, &y), y, LT_ERR_RANGE, "lt_sum");
    lt_tensor *i;
    CHECK_OK(lt_tensor_zeros(shape, 2, LT_I64, tc_cuda, &i));
    CHECK_ERR_OUT(lt_sum(i, NULL, 0, false, &y), y, LT_ERR_DTYPE, "lt_sum");
    /* a 0-d tensor and a tensor of ones reduce over nothing to themselves */
    lt_tensor *s, *yc;
    CHECK_OK(lt_tensor_full(NULL, 0, 2.5, LT_F64, tc_cuda, &s));
    CHECK_OK(lt_max(s, NULL, 0, false, &y));
    CHECK_OK(lt_tensor_full(NULL, 0, 2.5, LT_F64, LT_DEVICE_CPU, &yc));
    CHECK(tc_same("max of a 0-d tensor", y, yc, 0, 0));
}

/* ---- sumsq through lt_clip_grad_norm ---- */

/* Two identical parameter sets, on the CPU and on CUDA, with the same random gradients. */
typedef struct twin {
    lt_params *p[2];
} twin;

static void twin_fail(void) {
    fprintf(stderr, "twin: %s\n", lt_last_error());
    abort();
}

static void twin_make(twin *t, lt_dtype dt, const int64_t *sizes, int n) {
    lt_device dev[2] = {LT_DEVICE_CPU, tc_cuda};
    for (int k = 0; k < 2; k++) {
        if (lt_params_create(dt, dev[k], &t->p[k]) != LT_OK) twin_fail();
        for (int i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            lt_tensor *v;
            if (lt_params_add(t->p[k], name, &sizes[i], 1, &v) != LT_OK) twin_fail();
        }
    }
}

static void twin_set_grads(twin *t, double lo, double hi) {
    int64_t n = lt_params_numel(t->p[0]);
    lt_tensor *src = tt_rand(&n, 1, LT_F64, lo, hi);
    for (int k = 0; k < 2; k++) {
        lt_tensor *grads, *there;
        if (lt_params_flat(t->p[k], NULL, &grads) != LT_OK ||
            lt_tensor_to(src, LT_F64, lt_tensor_device(grads), &there) != LT_OK ||
            lt_tensor_copy(grads, there) != LT_OK)
            twin_fail();
    }
}

static void twin_free(twin *t) {
    lt_params_free(t->p[0]);
    lt_params_free(t->p[1]);
}

static void test_clip_grad_norm(void) {
    static const int64_t small[] = {1, 31, 33}, large[] = {257, 70001, 4099, 5};
    for (int d = 0; d < 2; d++)
        for (int z = 0; z < 2; z++) {
            twin t;
            if (z == 0)
                twin_make(&t, dtypes[d], small, 3);
            else
                twin_make(&t, dtypes[d], large, 4);
            static const double max_norms[] = {0.0, 1e9, 1.5, -1.0, 0.25};
            for (int j = 0; j < 5; j++) {
                twin_set_grads(&t, -1, 1);
                double norm[2];
                for (int k = 0; k < 2; k++) CHECK_OK(lt_clip_grad_norm(t.p[k], max_norms[j], &norm[k]));
                /* the sum of squares is in double on both: only the order of the additions differs */
                CHECK(fabs(norm[1] - norm[0]) <= 1e-13 * norm[0]);
                if (fabs(norm[1] - norm[0]) > 1e-13 * norm[0])
                    fprintf(stderr, "norm %.17g on cuda, %.17g on the cpu\n", norm[1], norm[0]);
                lt_tensor *gc, *gg;
                CHECK_OK(lt_params_flat(t.p[0], NULL, &gc));
                CHECK_OK(lt_params_flat(t.p[1], NULL, &gg));
                CHECK(tc_same("gradients after clipping", gg, gc, 0, dtypes[d] == LT_F32 ? 1e-6 : 1e-14));
                if (max_norms[j] > 0 && max_norms[j] < norm[0]) {
                    double after;
                    CHECK_OK(lt_clip_grad_norm(t.p[1], 0.0, &after));
                    CHECK(fabs(after - max_norms[j]) <= 1e-5 * max_norms[j]);
                }
            }
            twin_free(&t);
        }
    /* a NaN gradient gives a NaN norm on both */
    twin t;
    static const int64_t one[] = {40};
    twin_make(&t, LT_F32, one, 1);
    twin_set_grads(&t, -1, 1);
    lt_tensor *g;
    CHECK_OK(lt_params_flat(t.p[1], NULL, &g));
    double norm;
    lt_tensor *nan;
    CHECK_OK(lt_tensor_full(one, 1, NAN, LT_F32, tc_cuda, &nan));
    CHECK_OK(lt_tensor_copy(g, nan));
    CHECK_OK(lt_clip_grad_norm(t.p[1], 1.0, &norm));
    CHECK(isnan(norm));
    twin_free(&t);
}

int main(void) {
    tc_require_cuda();
    tt_seed(5);
    RUN(test_dim_sets);
    RUN(test_long);
    RUN(test_max_ties);
    RUN(test_empty_and_errors);
    RUN(test_clip_grad_norm);
    return tt_finish();
}
