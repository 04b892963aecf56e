/* Tests of lt_sum, lt_mean and lt_max: values against a naive f64 reference over many shapes, dims, layouts and
 * both float dtypes; the kernel's fast paths on larger inputs; gradients by finite differences; error paths. */
#include "test.h"

typedef enum kind { SUM, MEAN, MAX } kind;
static const char *const NAMES[] = {"lt_sum", "lt_mean", "lt_max"};

static lt_status run_op(kind k, const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out) {
    switch (k) {
    case SUM: return lt_sum(a, dims, ndims, keepdim, out);
    case MEAN: return lt_mean(a, dims, ndims, keepdim, out);
    default: return lt_max(a, dims, ndims, keepdim, out);
    }
}

static uint32_t mask_of(const int *dims, int ndims, int nd) {
    if (ndims == 0) return (1u << nd) - 1u;
    uint32_t m = 0;
    for (int i = 0; i < ndims; i++) m |= 1u << (dims[i] < 0 ? dims[i] + nd : dims[i]);
    return m;
}

/* The reduction of row-major values x of `shape` over the dims in mask, in row-major order of the output. */
static double *reference(kind k, const double *x, const int64_t *shape, int nd, uint32_t mask) {
    int64_t n = 1, nout = 1, count = 1;
    for (int d = 0; d < nd; d++) {
        n *= shape[d];
        if ((mask >> d) & 1u)
            count *= shape[d];
        else
            nout *= shape[d];
    }
    double *out = malloc(sizeof(double) * (size_t)(nout > 0 ? nout : 1));
    for (int64_t o = 0; o < nout; o++) out[o] = k == MAX ? -INFINITY : 0.0;
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, o = 0, scale = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t idx = rem % shape[d];
            rem /= shape[d];
            if (!((mask >> d) & 1u)) {
                o += idx * scale;
                scale *= shape[d];
            }
        }
        if (k == MAX)
            out[o] = (x[i] > out[o] || isnan(x[i])) ? x[i] : out[o];
        else
            out[o] += x[i];
    }
    if (k == MEAN)
        for (int64_t o = 0; o < nout; o++) out[o] /= (double)count;
    return out;
}

/* Runs one reduction of a and compares its shape and values with the reference. */
static bool check_one(kind k, const lt_tensor *a, const int *dims, int ndims, bool keepdim, double tol,
                      const char *what) {
    int nd = lt_tensor_ndim(a);
    int64_t shape[LT_MAX_DIMS], oshape[LT_MAX_DIMS];
    lt_tensor_shape(a, shape);
    uint32_t mask = mask_of(dims, ndims, nd);
    lt_tensor *y = NULL;
    lt_status st = run_op(k, a, dims, ndims, keepdim, &y);
    if (st != LT_OK) {
        fprintf(stderr, "%s: %s failed: %s\n", what, NAMES[k], lt_last_error());
        return false;
    }
    int ond = 0;
    for (int d = 0; d < nd; d++)
        if (!((mask >> d) & 1u))
            oshape[ond++] = shape[d];
        else if (keepdim)
            oshape[ond++] = 1;
    int64_t got[LT_MAX_DIMS];
    lt_tensor_shape(y, got);
    bool ok = lt_tensor_ndim(y) == ond && memcmp(got, oshape, sizeof(int64_t) * (size_t)ond) == 0 &&
              lt_tensor_dtype(y) == lt_tensor_dtype(a);
    if (!ok) fprintf(stderr, "%s: %s gave the wrong shape or dtype\n", what, NAMES[k]);
    double *x = tt_values(a);
    double *ref = reference(k, x, shape, nd, mask);
    ok = ok && tt_tensor_close(what, y, ref, tol, tol);
    free(x);
    free(ref);
    return ok;
}

/* Every subset of dims (as non-negative, then as negative indices), keepdim on and off, all three reductions,
 * f32 and f64, three layouts, over small odd shapes. */
static void test_forward_small(void) {
    static const struct {
        int nd;
        int64_t shape[3];
    } cases[] = {{0, {0}}, {1, {1}}, {1, {7}}, {2, {13, 31}}, {3, {2, 3, 5}}, {3, {4, 1, 6}}};
    tt_seed(11);
    char what[160];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int nd = cases[c].nd;
        for (int dt = 0; dt < 2; dt++) {
            lt_dtype dtype = dt ? LT_F64 : LT_F32;
            double tol = dt ? 1e-12 : 2e-6;
            for (int layout = 0; layout < (nd > 0 ? 3 : 1); layout++) {
                lt_tensor *a = tt_layout(cases[c].shape, nd, dtype, layout);
                for (uint32_t sub = 0; sub < (1u << nd); sub++) {
                    for (int neg = 0; neg < 2; neg++) {
                        int dims[3], ndims = 0;
                        for (int d = 0; d < nd; d++)
                            if ((sub >> d) & 1u) dims[ndims++] = neg ? d - nd : d;
                        for (int keep = 0; keep < 2; keep++)
                            for (int k = SUM; k <= MAX; k++) {
                                snprintf(what, sizeof what, "%s case %zu %s layout %d dims 0x%x%s keepdim %d", NAMES[k],
                                         c, dt ? "f64" : "f32", layout, sub, neg ? " (negative)" : "", keep);
                                CHECK(check_one(k, a, dims, ndims, keep, tol, what));
                            }
                    }
                }
            }
        }
    }
}

/* Sizes that take the kernel's other paths: many columns in blocks (with a ragged last block), long rows split
 * into chunks, few columns with a long reduction, stride-0 (expanded) and transposed inputs. f32 sums must be
 * within 2 ulp of the exact sum, which only a double accumulator achieves at these lengths. */
static void test_forward_large(void) {
    tt_seed(12);
    static const struct {
        int nd;
        int64_t shape[4];
        int ndims;
        int dims[3];
    } cases[] = {
        {2, {300, 257}, 1, {0}},        {2, {300, 257}, 1, {1}},        {2, {300, 257}, 0, {0}},
        {2, {3, 70001}, 1, {1}},        {2, {3, 70001}, 0, {0}},        {2, {70001, 3}, 1, {0}},
        {4, {5, 40, 7, 31}, 2, {0, 2}}, {4, {5, 40, 7, 31}, 2, {1, 3}}, {1, {200003}, 0, {0}},
    };
    char what[120];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int dt = 0; dt < 2; dt++)
            for (int k = SUM; k <= MAX; k++) {
                lt_tensor *a = tt_rand(cases[c].shape, cases[c].nd, dt ? LT_F64 : LT_F32, -1, 1);
                snprintf(what, sizeof what, "%s large case %zu %s", NAMES[k], c, dt ? "f64" : "f32");
                CHECK(check_one(k, a, cases[c].dims, cases[c].ndims, false, dt ? 1e-11 : 2.4e-7, what));
            }

    /* a [1, 17] row expanded to [400, 17], and its transpose: stride 0 on one dim */
    int64_t row[2] = {1, 17}, wide[2] = {400, 17};
    lt_tensor *r = tt_rand(row, 2, LT_F32, -1, 1), *e = NULL, *et = NULL;
    CHECK_OK(lt_expand(r, wide, 2, &e));
    CHECK_OK(lt_transpose(e, 0, 1, &et));
    for (int d = -1; d < 2; d++)
        for (int k = SUM; k <= MAX; k++) {
            int dims[1] = {d};
            snprintf(what, sizeof what, "%s expanded dim %d", NAMES[k], d);
            CHECK(check_one(k, e, dims, d < 0 ? 0 : 1, true, 2.4e-7, what));
            snprintf(what, sizeof what, "%s expanded transposed dim %d", NAMES[k], d);
            CHECK(check_one(k, et, dims, d < 0 ? 0 : 1, false, 2.4e-7, what));
        }

    /* a large transposed matrix */
    int64_t tall[2] = {257, 300};
    lt_tensor *t = tt_rand(tall, 2, LT_F32, -1, 1), *tt = NULL;
    CHECK_OK(lt_transpose(t, 0, 1, &tt));
    for (int d = 0; d < 2; d++) {
        int dims[1] = {d};
        snprintf(what, sizeof what, "sum transposed dim %d", d);
        CHECK(check_one(SUM, tt, dims, 1, false, 2.4e-7, what));
    }
}

/* NaN propagates through max (as in PyTorch) and through sum. */
static void test_nan(void) {
    double v[6] = {1, NAN, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    lt_tensor *a = NULL, *y = NULL;
    CHECK_OK(lt_tensor_from_host(v, shape, 2, LT_F64, LT_DEVICE_CPU, &a));
    int dims[1] = {1};
    for (int k = SUM; k <= MAX; k++) {
        CHECK_OK(run_op(k, a, dims, 1, false, &y));
        double *got = tt_values(y);
        CHECK(isnan(got[0]) && !isnan(got[1]));
        free(got);
    }
}

/* Empty inputs: sums are 0, means NaN, a max over an empty dim is an error but one over non-empty dims of an
 * empty tensor is an empty result. */
static void test_empty(void) {
    int64_t shape[2] = {0, 5};
    lt_tensor *a = tt_rand(shape, 2, LT_F32, -1, 1), *y = NULL;
    int d0[1] = {0}, d1[1] = {1};
    double zeros[5] = {0, 0, 0, 0, 0}, nans[5] = {NAN, NAN, NAN, NAN, NAN};
    CHECK_OK(lt_sum(a, d0, 1, false, &y));
    CHECK(lt_tensor_numel(y) == 5 && tt_tensor_close("sum over empty dim", y, zeros, 0, 0));
    CHECK_OK(lt_mean(a, d0, 1, false, &y));
    CHECK(lt_tensor_numel(y) == 5 && tt_tensor_close("mean over empty dim", y, nans, 0, 0));
    CHECK_OK(lt_sum(a, NULL, 0, false, &y));
    CHECK(lt_tensor_ndim(y) == 0 && tt_tensor_close("sum of empty", y, zeros, 0, 0));
    CHECK_OK(lt_max(a, d1, 1, true, &y));
    CHECK(lt_tensor_ndim(y) == 2 && lt_tensor_dim(y, 0) == 0 && lt_tensor_dim(y, 1) == 1);
    CHECK_ERR(lt_max(a, d0, 1, false, &y), LT_ERR_SHAPE, "lt_max");
    CHECK(y == NULL);
    CHECK_ERR(lt_max(a, NULL, 0, false, &y), LT_ERR_SHAPE, "lt_max");
}

typedef struct red_ctx {
    kind k;
    int dims[3];
    int ndims;
    bool keepdim;
    bool transpose; /* reduce a transposed view of the input, so the backward sees strides too */
} red_ctx;

static lt_status red_fn(void *ctx, lt_tensor **inputs, lt_tensor **out) {
    red_ctx *c = ctx;
    lt_tensor *a = inputs[0];
    if (c->transpose) {
        lt_status st = lt_transpose(inputs[0], 0, -1, &a);
        if (st != LT_OK) return st;
    }
    return run_op(c->k, a, c->dims, c->ndims, c->keepdim, out);
}

static void test_gradcheck(void) {
    tt_seed(13);
    static const red_ctx cases[] = {
        {SUM, {0}, 0, false, false},   {SUM, {1}, 1, false, false},  {SUM, {0, 2}, 2, true, false},
        {SUM, {-1}, 1, false, true},   {MEAN, {0}, 0, false, false}, {MEAN, {2, 0}, 2, false, false},
        {MEAN, {-2}, 1, true, true},   {MAX, {0}, 0, false, false},  {MAX, {1}, 1, false, false},
        {MAX, {0, 2}, 2, true, false}, {MAX, {-1}, 1, false, true},  {MAX, {0}, 1, true, true},
    };
    int64_t shape[3] = {2, 3, 5};
    char what[64];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_tensor *x = tt_leaf(shape, 3, -1, 1);
        red_ctx ctx = cases[c];
        snprintf(what, sizeof what, "%s gradcheck case %zu", NAMES[ctx.k], c);
        CHECK(tt_gradcheck(what, red_fn, &ctx, &x, 1));
    }
}

/* With ties the gradient goes to the first maximal element in row-major order, and only there. */
static void test_max_ties(void) {
    double v[8] = {1, 3, 3, 2, 5, 5, 0, 5};
    int64_t shape[2] = {2, 4};
    lt_tensor *a = NULL, *y = NULL, *g = NULL;
    CHECK_OK(lt_tensor_from_host(v, shape, 2, LT_F64, LT_DEVICE_CPU, &a));
    CHECK_OK(lt_tensor_set_requires_grad(a, true));
    int d1[1] = {1};
    CHECK_OK(lt_max(a, d1, 1, false, &y));
    double ones[2] = {1, 1};
    int64_t two = 2;
    lt_tensor *gy = NULL;
    CHECK_OK(lt_tensor_from_host(ones, &two, 1, LT_F64, LT_DEVICE_CPU, &gy));
    CHECK_OK(lt_backward_grad(y, gy));
    CHECK_OK(lt_tensor_grad(a, &g));
    double want_rows[8] = {0, 1, 0, 0, 1, 0, 0, 0};
    CHECK(g && tt_tensor_close("max ties over dim 1", g, want_rows, 0, 0));

    CHECK_OK(lt_tensor_zero_grad(a));
    CHECK_OK(lt_max(a, NULL, 0, false, &y));
    CHECK_OK(lt_backward(y));
    double want_all[8] = {0, 0, 0, 0, 1, 0, 0, 0};
    CHECK(tt_tensor_close("max ties over all", g, want_all, 0, 0));
}

/* Gradients of broadcast binary ops are un-broadcast by the engine's lt__sum_to, which calls the reduce kernel. */
typedef struct bcast_ctx {
    int unused;
} bcast_ctx;

static lt_status bcast_fn(void *ctx, lt_tensor **inputs, lt_tensor **out) {
    (void)ctx;
    return lt_mul(inputs[0], inputs[1], out);
}

static void test_broadcast_grad(void) {
    tt_seed(14);
    int64_t sa[3] = {3, 1, 5}, sb[2] = {4, 1};
    lt_tensor *in[2] = {tt_leaf(sa, 3, -1, 1), tt_leaf(sb, 2, -1, 1)};
    bcast_ctx ctx = {0};
    CHECK(tt_gradcheck("mul [3,1,5] * [4,1]", bcast_fn, &ctx, in, 2));
}

static void test_errors(void) {
    int64_t shape[2] = {3, 4};
    lt_tensor *a = tt_rand(shape, 2, LT_F32, -1, 1), *ai = tt_randint(shape, 2, LT_I32, 5), *y = NULL;
    int bad_hi[1] = {2}, bad_lo[1] = {-3}, dup[2] = {0, -2}, ok[1] = {1};
    for (int k = SUM; k <= MAX; k++) {
        const char *fn = NAMES[k];
        CHECK_ERR(run_op(k, NULL, ok, 1, false, &y), LT_ERR_ARG, fn);
        CHECK(y == NULL);
        CHECK_ERR(run_op(k, a, ok, 1, false, NULL), LT_ERR_ARG, fn);
        CHECK_ERR(run_op(k, ai, ok, 1, false, &y), LT_ERR_DTYPE, fn);
        CHECK_ERR(run_op(k, a, bad_hi, 1, false, &y), LT_ERR_RANGE, fn);
        CHECK_ERR(run_op(k, a, bad_lo, 1, true, &y), LT_ERR_RANGE, fn);
        CHECK_ERR(run_op(k, a, dup, 2, false, &y), LT_ERR_ARG, fn);
        CHECK_ERR(run_op(k, a, NULL, 1, false, &y), LT_ERR_ARG, fn);
        CHECK_ERR(run_op(k, a, ok, -1, false, &y), LT_ERR_ARG, fn);
        CHECK(y == NULL);
    }
}

/* Outside any scope the caller owns the result, and releasing it frees everything the op made: run the ops
 * many times so the allocator statistics would show a leak. */
static void test_no_scope_ownership(void) {
    int64_t shape[2] = {6, 5};
    int d[1] = {1};
    lt_alloc_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    lt_scope_end(); /* leave RUN's scope for this test; tensors made now belong to this function */
    lt_tensor *a = tt_rand(shape, 2, LT_F64, -1, 1);
    bool ok = lt_alloc_get_stats(LT_DEVICE_CPU, &before) == LT_OK;
    for (int i = 0; i < 50; i++)
        for (int k = SUM; k <= MAX; k++) {
            lt_tensor *y = NULL;
            ok &= run_op(k, a, d, 1, i & 1, &y) == LT_OK;
            lt_tensor_release(y);
        }
    ok &= lt_alloc_get_stats(LT_DEVICE_CPU, &after) == LT_OK;
    lt_tensor_release(a);
    lt_scope_begin();
    CHECK(ok);
    CHECK(after.bytes_in_use == before.bytes_in_use);
}

/* The kernel splits work by shape only, so 1 and 2 threads give the same bits on every path. */
static void test_thread_count_independence(void) {
    tt_seed(15);
    static const struct {
        int64_t shape[2];
        int ndims, dim;
    } cases[] = {{{3, 70001}, 1, 1}, {{3, 70001}, 0, 0}, {{300, 257}, 1, 0}, {{70001, 3}, 1, 0}, {{300, 257}, 1, 1}};
    int before = lt_get_num_threads();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_tensor *a = tt_rand(cases[c].shape, 2, LT_F32, -1, 1);
        for (int k = SUM; k <= MAX; k++) {
            lt_tensor *y1 = NULL, *y2 = NULL;
            CHECK_OK(lt_set_num_threads(1));
            CHECK_OK(run_op(k, a, &cases[c].dim, cases[c].ndims, false, &y1));
            CHECK_OK(lt_set_num_threads(2));
            CHECK_OK(run_op(k, a, &cases[c].dim, cases[c].ndims, false, &y2));
            double *v1 = tt_values(y1), *v2 = tt_values(y2);
            CHECK(memcmp(v1, v2, sizeof(double) * (size_t)lt_tensor_numel(y1)) == 0);
            free(v1);
            free(v2);
        }
    }
    lt_set_num_threads(before);
}

int main(void) {
    RUN(test_forward_small);
    RUN(test_forward_large);
    RUN(test_nan);
    RUN(test_empty);
    RUN(test_gradcheck);
    RUN(test_max_ties);
    RUN(test_broadcast_grad);
    RUN(test_errors);
    RUN(test_no_scope_ownership);
    RUN(test_thread_count_independence);
    return tt_finish();
}
