/* The CUDA backend's elementwise entries against the CPU: every unary op and its backward, binary and scalar
 * arithmetic, where and masked_fill, in f32 and f64, at every tc_odd_sizes, on contiguous, transposed, strided
 * (every other column) and broadcast (stride 0) inputs, forward and backward through the public ops. Also the
 * in-place accumulation of gradients (binary with y aliasing a), special values, sizes that make the kernels'
 * grid-stride loops go round, empty tensors, and the errors of the public ops on CUDA tensors. */
#include "cuda_check.h"

static const lt_dtype dtypes[] = {LT_F32, LT_F64};
#define ROWS 3

/* Returns a failed call's status from an op under test. */
#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        lt_status st_ = (call);                                                                                        \
        if (st_ != LT_OK) return st_;                                                                                  \
    } while (0)

static double atol_of(lt_dtype d) { return d == LT_F32 ? 1e-5 : 1e-12; }
static double rtol_of(lt_dtype d) { return d == LT_F32 ? 1e-5 : 1e-12; }

/* ---- Inputs seen through views ---- */

/* How an op sees an input of logical shape [ROWS, cols]: as stored, transposed, every other column of a wider
 * tensor, broadcast from one row (stride 0), or NumPy-broadcast from a row [cols] or a column [ROWS, 1]. */
typedef enum view { V_PLAIN, V_TRANSPOSED, V_STRIDED, V_EXPANDED, V_ROW, V_COL, V_COUNT } view;
static const char *view_names[V_COUNT] = {"plain", "transposed", "strided", "expanded", "row", "col"};

/* The shape of the stored tensor a view of kind v is taken from. */
static int stored_shape(view v, int64_t cols, int64_t *shape) {
    shape[0] = ROWS;
    shape[1] = cols;
    switch (v) {
    case V_TRANSPOSED: shape[0] = cols, shape[1] = ROWS; break;
    case V_STRIDED: shape[1] = 2 * cols; break;
    case V_EXPANDED: shape[0] = 1; break;
    case V_ROW: shape[0] = cols; return 1;
    case V_COL: shape[1] = 1; break;
    default: break;
    }
    return 2;
}

/* That stored tensor, with values in [lo, hi). */
static lt_tensor *stored_input(view v, int64_t cols, lt_dtype dt, double lo, double hi) {
    int64_t shape[2];
    int nd = stored_shape(v, cols, shape);
    return tt_rand(shape, nd, dt, lo, hi);
}

/* The view itself, taken inside the op so that both devices (and autograd) see it. */
static lt_status take_view(view v, lt_tensor *t, lt_tensor **out) {
    switch (v) {
    case V_TRANSPOSED: return lt_transpose(t, 0, 1, out);
    case V_STRIDED: return lt_slice(t, 1, 0, lt_tensor_dim(t, 1), 2, out);
    case V_EXPANDED: {
        int64_t shape[2] = {ROWS, lt_tensor_dim(t, 1)};
        return lt_expand(t, shape, 2, out);
    }
    default: *out = t; return LT_OK;
    }
}

/* ---- Unary ops ---- */

typedef lt_status (*unary_fn)(const lt_tensor *a, lt_tensor **out);
static lt_status gelu_tanh(const lt_tensor *a, lt_tensor **out) { return lt_gelu(a, LT_GELU_TANH, out); }
static lt_status gelu_erf(const lt_tensor *a, lt_tensor **out) { return lt_gelu(a, LT_GELU_ERF, out); }

static const struct {
    const char *name;
    unary_fn fn;
    double lo, hi; /* the input range: inside the domain, away from singularities */
} unary_ops[] = {
    {"neg", lt_neg, -3, 3},         {"exp", lt_exp, -3, 3},      {"log", lt_log, 0.2, 3},
    {"sqrt", lt_sqrt, 0.2, 3},      {"rsqrt", lt_rsqrt, 0.2, 3}, {"tanh", lt_tanh, -3, 3},
    {"sigmoid", lt_sigmoid, -4, 4}, {"relu", lt_relu, -3, 3},    {"gelu_tanh", gelu_tanh, -4, 4},
    {"gelu_erf", gelu_erf, -4, 4},
};
#define N_UNARY ((int)(sizeof unary_ops / sizeof unary_ops[0]))

typedef struct unary_ctx {
    unary_fn fn;
    view v;
} unary_ctx;

static lt_status run_unary(void *ctx, lt_tensor **in, lt_tensor **out) {
    const unary_ctx *c = ctx;
    lt_tensor *x;
    TRY(take_view(c->v, in[0], &x));
    return c->fn(x, out);
}

static void test_unary(void) {
    const view views[] = {V_PLAIN, V_TRANSPOSED, V_STRIDED, V_EXPANDED};
    for (int d = 0; d < 2; d++)
        for (int o = 0; o < N_UNARY; o++)
            for (int s = 0; s < 6; s++)
                for (int k = 0; k < 4; k++) {
                    lt_scope_begin();
                    unary_ctx c = {unary_ops[o].fn, views[k]};
                    lt_tensor *x = stored_input(views[k], tc_odd_sizes[s], dtypes[d], unary_ops[o].lo, unary_ops[o].hi);
                    char what[128];
                    snprintf(what, sizeof what, "%s %s [%d, %lld] %s", unary_ops[o].name, lt_dtype_name(dtypes[d]),
                             ROWS, (long long)tc_odd_sizes[s], view_names[views[k]]);
                    CHECK(tc_cross_check(what, run_unary, &c, &x, 1, atol_of(dtypes[d]), rtol_of(dtypes[d]), true));
                    lt_scope_end();
                }
}

/* IEEE special values through every unary op, forward only: NaN, infinities, signed zeros, overflow and
 * underflow of exp, values outside the domain of log and sqrt. */
static void test_unary_special_values(void) {
    static const double special[] = {NAN,   INFINITY, -INFINITY, 0.0,   -0.0,   1e-30, -1e-30, 20.0,
                                     -20.0, 100.0,    -100.0,    800.0, -800.0, 1e10,  -1e10,  -1.0};
    int64_t n = (int64_t)(sizeof special / sizeof special[0]);
    for (int d = 0; d < 2; d++) {
        lt_tensor *c64, *c, *g;
        CHECK_OK(lt_tensor_from_host(special, &n, 1, LT_F64, LT_DEVICE_CPU, &c64));
        CHECK_OK(lt_tensor_to(c64, dtypes[d], LT_DEVICE_CPU, &c));
        CHECK_OK(lt_tensor_to(c64, dtypes[d], tc_cuda, &g));
        for (int o = 0; o < N_UNARY; o++) {
            lt_tensor *yc, *yg;
            CHECK_OK(unary_ops[o].fn(c, &yc));
            CHECK_OK(unary_ops[o].fn(g, &yg));
            char what[96];
            snprintf(what, sizeof what, "%s of special values (%s)", unary_ops[o].name, lt_dtype_name(dtypes[d]));
            /* f32 sigmoid(-100) is a subnormal on the CPU (computed in double) and 0 on the GPU: atol covers it */
            CHECK(tc_same(what, yg, yc, dtypes[d] == LT_F32 ? 1e-30 : 0, rtol_of(dtypes[d])));
        }
    }
}

/* ---- Binary ops ---- */

typedef lt_status (*binary_fn)(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);

static const struct {
    const char *name;
    binary_fn fn;
    double alo, ahi, blo, bhi;
} binary_ops[] = {
    {"add", lt_add, -2, 2, -2, 2},  {"sub", lt_sub, -2, 2, -2, 2},  {"mul", lt_mul, -2, 2, -2, 2},
    {"div", lt_div, -2, 2, 0.5, 2}, {"pow", lt_pow, 0.5, 2, -2, 2},
};
#define N_BINARY ((int)(sizeof binary_ops / sizeof binary_ops[0]))

typedef struct binary_ctx {
    binary_fn fn;
    view va, vb;
} binary_ctx;

static lt_status run_binary(void *ctx, lt_tensor **in, lt_tensor **out) {
    const binary_ctx *c = ctx;
    lt_tensor *a, *b;
    TRY(take_view(c->va, in[0], &a));
    TRY(take_view(c->vb, in[1], &b));
    return c->fn(a, b, out);
}

static void test_binary(void) {
    static const view pairs[][2] = {
        {V_PLAIN, V_PLAIN}, {V_TRANSPOSED, V_PLAIN}, {V_PLAIN, V_EXPANDED}, {V_STRIDED, V_TRANSPOSED},
        {V_PLAIN, V_ROW},   {V_COL, V_PLAIN},        {V_COL, V_ROW},        {V_EXPANDED, V_STRIDED}};
    const int n_pairs = (int)(sizeof pairs / sizeof pairs[0]);
    for (int d = 0; d < 2; d++)
        for (int o = 0; o < N_BINARY; o++)
            for (int s = 0; s < 6; s++)
                for (int k = 0; k < n_pairs; k++) {
                    lt_scope_begin();
                    binary_ctx c = {binary_ops[o].fn, pairs[k][0], pairs[k][1]};
                    lt_tensor *in[2] = {
                        stored_input(c.va, tc_odd_sizes[s], dtypes[d], binary_ops[o].alo, binary_ops[o].ahi),
                        stored_input(c.vb, tc_odd_sizes[s], dtypes[d], binary_ops[o].blo, binary_ops[o].bhi)};
                    char what[128];
                    snprintf(what, sizeof what, "%s %s [%d, %lld] %s, %s", binary_ops[o].name, lt_dtype_name(dtypes[d]),
                             ROWS, (long long)tc_odd_sizes[s], view_names[c.va], view_names[c.vb]);
                    CHECK(tc_cross_check(what, run_binary, &c, in, 2, atol_of(dtypes[d]), rtol_of(dtypes[d]), true));
                    lt_scope_end();
                }
}

/* ---- Scalar ops ---- */

typedef lt_status (*scalar_fn)(const lt_tensor *a, double s, lt_tensor **out);

static const struct {
    const char *name;
    scalar_fn fn;
    double lo, hi;
    double s[4];
} scalar_ops[] = {
    {"add_scalar", lt_add_scalar, -2, 2, {0.1, -3.0, 1e-3, 0.0}},
    {"mul_scalar", lt_mul_scalar, -2, 2, {0.1, -3.0, 1.0 / 3.0, 0.0}},
    {"pow_scalar", lt_pow_scalar, 0.3, 2, {2.0, 0.5, 3.0, -1.7}},
    {"rsub_scalar", lt_rsub_scalar, -2, 2, {0.1, -3.0, 1.0 / 3.0, 0.0}},
    {"rdiv_scalar", lt_rdiv_scalar, 0.5, 2, {0.1, -3.0, 1.0 / 3.0, 1.0}},
};
#define N_SCALAR ((int)(sizeof scalar_ops / sizeof scalar_ops[0]))

typedef struct scalar_ctx {
    scalar_fn fn;
    double s;
    view v;
} scalar_ctx;

static lt_status run_scalar(void *ctx, lt_tensor **in, lt_tensor **out) {
    const scalar_ctx *c = ctx;
    lt_tensor *x;
    TRY(take_view(c->v, in[0], &x));
    return c->fn(x, c->s, out);
}

static void test_scalar(void) {
    const view views[] = {V_PLAIN, V_TRANSPOSED, V_STRIDED, V_EXPANDED};
    for (int d = 0; d < 2; d++)
        for (int o = 0; o < N_SCALAR; o++)
            for (int j = 0; j < 4; j++)
                for (int s = 0; s < 6; s++) {
                    lt_scope_begin();
                    scalar_ctx c = {scalar_ops[o].fn, scalar_ops[o].s[j], views[(j + s) % 4]};
                    lt_tensor *x = stored_input(c.v, tc_odd_sizes[s], dtypes[d], scalar_ops[o].lo, scalar_ops[o].hi);
                    char what[128];
                    snprintf(what, sizeof what, "%s(%g) %s [%d, %lld] %s", scalar_ops[o].name, c.s,
                             lt_dtype_name(dtypes[d]), ROWS, (long long)tc_odd_sizes[s], view_names[c.v]);
                    CHECK(tc_cross_check(what, run_scalar, &c, &x, 1, atol_of(dtypes[d]), rtol_of(dtypes[d]), true));
                    lt_scope_end();
                }
    /* The scalar is applied in double and rounded once, as on the CPU: f32 results agree bit for bit. */
    int64_t n = 257;
    lt_tensor *x = tt_rand(&n, 1, LT_F32, -2, 2), *g = tc_to_cuda(x, false);
    for (int o = 0; o < N_SCALAR; o++) {
        if (scalar_ops[o].fn == lt_pow_scalar) continue; /* powf and pow may differ in the last bit */
        lt_tensor *yc, *yg;
        CHECK_OK(scalar_ops[o].fn(x, 0.1, &yc));
        CHECK_OK(scalar_ops[o].fn(g, 0.1, &yg));
        CHECK(tc_same(scalar_ops[o].name, yg, yc, 0, 0));
    }
}

/* ---- where and masked_fill ---- */

typedef struct where_ctx {
    view vc, va, vb;
    bool masked_fill;
} where_ctx;

static lt_status run_where(void *ctx, lt_tensor **in, lt_tensor **out) {
    const where_ctx *c = ctx;
    lt_tensor *cond, *a, *b;
    TRY(take_view(c->vc, in[0], &cond));
    TRY(take_view(c->va, in[1], &a));
    if (c->masked_fill) return lt_masked_fill(a, cond, -1.5, out);
    TRY(take_view(c->vb, in[2], &b));
    return lt_where(cond, a, b, out);
}

/* A random 0 / 1 u8 mask stored for view v. */
static lt_tensor *stored_mask(view v, int64_t cols) {
    int64_t shape[2];
    int nd = stored_shape(v, cols, shape);
    return tt_randint(shape, nd, LT_U8, 2);
}

static void test_where(void) {
    static const view triples[][3] = {{V_PLAIN, V_PLAIN, V_PLAIN},   {V_ROW, V_TRANSPOSED, V_PLAIN},
                                      {V_COL, V_PLAIN, V_EXPANDED},  {V_TRANSPOSED, V_STRIDED, V_ROW},
                                      {V_STRIDED, V_COL, V_STRIDED}, {V_EXPANDED, V_PLAIN, V_TRANSPOSED}};
    const int n_triples = (int)(sizeof triples / sizeof triples[0]);
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 6; s++)
            for (int k = 0; k < n_triples; k++)
                for (int mf = 0; mf < 2; mf++) {
                    lt_scope_begin();
                    where_ctx c = {triples[k][0], triples[k][1], triples[k][2], mf == 1};
                    if (mf && (c.va == V_ROW || c.va == V_COL)) c.va = V_PLAIN; /* the mask broadcasts to a */
                    lt_tensor *in[3] = {stored_mask(c.vc, tc_odd_sizes[s]),
                                        stored_input(c.va, tc_odd_sizes[s], dtypes[d], -2, 2),
                                        stored_input(c.vb, tc_odd_sizes[s], dtypes[d], -2, 2)};
                    char what[128];
                    snprintf(what, sizeof what, "%s %s [%d, %lld] %s, %s, %s", mf ? "masked_fill" : "where",
                             lt_dtype_name(dtypes[d]), ROWS, (long long)tc_odd_sizes[s], view_names[c.vc],
                             view_names[c.va], view_names[c.vb]);
                    CHECK(tc_cross_check(what, run_where, &c, in, mf ? 2 : 3, atol_of(dtypes[d]), rtol_of(dtypes[d]),
                                         true));
                    lt_scope_end();
                }
    /* where moves bits: NaN payloads and signed zeros come through untouched */
    double av[4] = {-0.0, NAN, 1.0, -INFINITY}, bv[4] = {2.0, 3.0, -0.0, 4.0};
    uint8_t cv[4] = {1, 1, 0, 1};
    int64_t n = 4;
    lt_tensor *a, *b, *cnd, *y;
    CHECK_OK(lt_tensor_from_host(av, &n, 1, LT_F64, tc_cuda, &a));
    CHECK_OK(lt_tensor_from_host(bv, &n, 1, LT_F64, tc_cuda, &b));
    CHECK_OK(lt_tensor_from_host(cv, &n, 1, LT_U8, tc_cuda, &cnd));
    CHECK_OK(lt_where(cnd, a, b, &y));
    double out[4];
    CHECK_OK(lt_tensor_to_host(y, out, sizeof out));
    CHECK(signbit(out[0]) && out[0] == 0 && isnan(out[1]) && signbit(out[2]) && out[2] == 0 && out[3] == -INFINITY);
}

/* ---- In-place accumulation, large sizes, empty tensors ---- */

static lt_status square(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    return lt_mul(in[0], in[0], out); /* x receives two gradients: the second is added in place */
}

/* Gradient accumulation into a leaf adds in place (binary with y == a), over the flat kernel's unrolled passes
 * and its tail, and over two backward passes. */
static void test_inplace_accumulate(void) {
    static const int64_t sizes[] = {1, 5, 1024, 4097, 70001};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 5; s++) {
            if (tc_small && sizes[s] > 5000) continue;
            lt_tensor *x = tt_rand(&sizes[s], 1, dtypes[d], -2, 2);
            char what[64];
            snprintf(what, sizeof what, "x * x, %lld %s", (long long)sizes[s], lt_dtype_name(dtypes[d]));
            CHECK(tc_cross_check(what, square, NULL, &x, 1, atol_of(dtypes[d]), rtol_of(dtypes[d]), true));
        }
    /* two backward passes into one leaf: grad = 3 x^2 + 2 x, the second pass added in place */
    int64_t shape[2] = {7, 301};
    lt_tensor *x = tt_leaf(shape, 2, -1, 1), *g = tc_to_cuda(x, true);
    lt_tensor *leaves[2] = {x, g}, *grads[2];
    for (int k = 0; k < 2; k++) {
        lt_tensor *sq, *cube, *l1, *l2;
        CHECK_OK(lt_mul(leaves[k], leaves[k], &sq));
        CHECK_OK(lt_mul(sq, leaves[k], &cube));
        CHECK_OK(lt_sum(cube, NULL, 0, false, &l1));
        CHECK_OK(lt_backward(l1));
        CHECK_OK(lt_mul(leaves[k], leaves[k], &sq));
        CHECK_OK(lt_sum(sq, NULL, 0, false, &l2));
        CHECK_OK(lt_backward(l2));
        CHECK_OK(lt_tensor_grad(leaves[k], &grads[k]));
    }
    CHECK(lt_tensor_device(grads[1]).type == LT_CUDA);
    CHECK(tc_same("gradient accumulated over two backward passes", grads[1], grads[0], 1e-12, 1e-12));
}

/* Sizes past one grid (4096 blocks of 256 threads, 4 floats each in the flat kernel) make every grid-stride loop
 * go round; a transpose sends the same through the strided kernel. */
static void test_large(void) {
    if (tc_small) return; /* too slow under AddressSanitizer */
    int64_t n = 4096 * 256 * 4 + 37;
    lt_tensor *x = tt_rand(&n, 1, LT_F32, -3, 3), *g = tc_to_cuda(x, false), *yc, *yg;
    CHECK_OK(lt_tanh(x, &yc));
    CHECK_OK(lt_tanh(g, &yg));
    CHECK(tc_same("tanh, 4194341 f32", yg, yc, 1e-6, 1e-6));
    int64_t shape[2] = {1031, 1025};
    lt_tensor *m = tt_rand(shape, 2, LT_F64, -3, 3), *gm = tc_to_cuda(m, false), *mt, *gmt;
    CHECK_OK(lt_transpose(m, 0, 1, &mt));
    CHECK_OK(lt_transpose(gm, 0, 1, &gmt));
    CHECK_OK(lt_gelu(mt, LT_GELU_ERF, &yc));
    CHECK_OK(lt_gelu(gmt, LT_GELU_ERF, &yg));
    CHECK(tc_same("gelu_erf of a transposed [1025, 1031] f64", yg, yc, 1e-13, 1e-13));
}

static void test_empty(void) {
    int64_t shape[2] = {0, 5}, row = 5;
    lt_tensor *e, *r, *y, *cnd;
    CHECK_OK(lt_tensor_zeros(shape, 2, LT_F32, tc_cuda, &e));
    CHECK_OK(lt_tensor_ones(&row, 1, LT_F32, tc_cuda, &r));
    CHECK_OK(lt_exp(e, &y));
    CHECK(lt_tensor_numel(y) == 0);
    CHECK_OK(lt_add(e, r, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_dim(y, 1) == 5);
    CHECK_OK(lt_mul_scalar(e, 2.0, &y));
    CHECK(lt_tensor_numel(y) == 0);
    CHECK_OK(lt_tensor_zeros(shape, 2, LT_U8, tc_cuda, &cnd));
    CHECK_OK(lt_where(cnd, e, r, &y));
    CHECK(lt_tensor_numel(y) == 0);
}

/* The public ops' checks on CUDA tensors: they fail before any kernel runs. */
static void test_errors(void) {
    int64_t shape[2] = {3, 4}, other = 5;
    lt_tensor *a, *b, *c, *i, *cpu, *y;
    CHECK_OK(lt_tensor_ones(shape, 2, LT_F32, tc_cuda, &a));
    CHECK_OK(lt_tensor_ones(shape, 2, LT_F64, tc_cuda, &b));
    CHECK_OK(lt_tensor_ones(&other, 1, LT_F32, tc_cuda, &c));
    CHECK_OK(lt_tensor_ones(shape, 2, LT_I32, tc_cuda, &i));
    CHECK_OK(lt_tensor_ones(shape, 2, LT_F32, LT_DEVICE_CPU, &cpu));
    CHECK_ERR_OUT(lt_add(a, b, &y), y, LT_ERR_DTYPE, "lt_add");
    CHECK_ERR_OUT(lt_mul(a, c, &y), y, LT_ERR_SHAPE, "lt_mul");
    CHECK_ERR_OUT(lt_sub(a, cpu, &y), y, LT_ERR_DEVICE, "lt_sub");
    CHECK_ERR_OUT(lt_exp(i, &y), y, LT_ERR_DTYPE, "lt_exp");
    CHECK_ERR_OUT(lt_mul_scalar(i, 2.0, &y), y, LT_ERR_DTYPE, "lt_mul_scalar");
    CHECK_ERR_OUT(lt_where(a, a, a, &y), y, LT_ERR_DTYPE, "lt_where");
    CHECK_ERR_OUT(lt_masked_fill(a, i, 0.0, &y), y, LT_ERR_DTYPE, "lt_masked_fill");
}

int main(void) {
    tc_require_cuda();
    tt_seed(11);
    RUN(test_unary);
    RUN(test_unary_special_values);
    RUN(test_binary);
    RUN(test_scalar);
    RUN(test_where);
    RUN(test_inplace_accumulate);
    RUN(test_large);
    RUN(test_empty);
    RUN(test_errors);
    return tt_finish();
}
