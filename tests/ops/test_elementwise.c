/* Tests of the elementwise ops: forward against naive f64 references written here (contiguous, broadcast, strided,
 * permuted and expanded inputs, f32 and f64), backward against finite differences, and every public function's
 * error paths. */
#include "test.h"

/* ---- Naive references, in double, straight from the definitions ---- */

static double ref_neg(double x, double s) {
    (void)s;
    return -x;
}
static double ref_exp(double x, double s) {
    (void)s;
    return exp(x);
}
static double ref_log(double x, double s) {
    (void)s;
    return log(x);
}
static double ref_sqrt(double x, double s) {
    (void)s;
    return sqrt(x);
}
static double ref_rsqrt(double x, double s) {
    (void)s;
    return 1.0 / sqrt(x);
}
static double ref_tanh(double x, double s) {
    (void)s;
    return tanh(x);
}
static double ref_sigmoid(double x, double s) {
    (void)s;
    return 1.0 / (1.0 + exp(-x));
}
/* NaN propagates, as in PyTorch */
static double ref_relu(double x, double s) {
    (void)s;
    return x > 0 || isnan(x) ? x : 0.0;
}
static double ref_gelu_tanh(double x, double s) {
    (void)s;
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double ref_gelu_erf(double x, double s) {
    (void)s;
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}
static double ref_add(double a, double b) { return a + b; }
static double ref_sub(double a, double b) { return a - b; }
static double ref_mul(double a, double b) { return a * b; }
static double ref_div(double a, double b) { return a / b; }
static double ref_pow(double a, double b) { return pow(a, b); }
static double ref_rsub(double a, double s) { return s - a; }
static double ref_rdiv(double a, double s) { return s / a; }

/* ---- The ops under test, behind one signature per family ---- */

typedef lt_status (*unary_fn)(const lt_tensor *a, double s, lt_tensor **out);

#define WRAP_UNARY(name)                                                                                               \
    static lt_status w_##name(const lt_tensor *a, double s, lt_tensor **out) {                                         \
        (void)s;                                                                                                       \
        return lt_##name(a, out);                                                                                      \
    }
WRAP_UNARY(neg)
WRAP_UNARY(exp)
WRAP_UNARY(log)
WRAP_UNARY(sqrt)
WRAP_UNARY(rsqrt)
WRAP_UNARY(tanh)
WRAP_UNARY(sigmoid)
WRAP_UNARY(relu)
static lt_status w_gelu_tanh(const lt_tensor *a, double s, lt_tensor **out) {
    (void)s;
    return lt_gelu(a, LT_GELU_TANH, out);
}
static lt_status w_gelu_erf(const lt_tensor *a, double s, lt_tensor **out) {
    (void)s;
    return lt_gelu(a, LT_GELU_ERF, out);
}

/* A one-input op (unary or scalar): its public name, the reference, the scalar, and an input range inside the
 * function's domain and away from kinks, so that finite differences are valid. */
typedef struct unary_case {
    const char *fn;
    unary_fn op;
    double (*ref)(double x, double s);
    double s;
    double lo, hi;
} unary_case;

static const unary_case unary_cases[] = {
    {"lt_neg", w_neg, ref_neg, 0, -2, 2},
    {"lt_exp", w_exp, ref_exp, 0, -3, 3},
    {"lt_log", w_log, ref_log, 0, 0.1, 4},
    {"lt_sqrt", w_sqrt, ref_sqrt, 0, 0.1, 4},
    {"lt_rsqrt", w_rsqrt, ref_rsqrt, 0, 0.1, 4},
    {"lt_tanh", w_tanh, ref_tanh, 0, -3, 3},
    {"lt_sigmoid", w_sigmoid, ref_sigmoid, 0, -6, 6},
    {"lt_relu", w_relu, ref_relu, 0, -2, 2},
    {"lt_gelu", w_gelu_tanh, ref_gelu_tanh, 0, -3, 3},
    {"lt_gelu", w_gelu_erf, ref_gelu_erf, 0, -3, 3},
    {"lt_add_scalar", lt_add_scalar, ref_add, 0.75, -2, 2},
    {"lt_mul_scalar", lt_mul_scalar, ref_mul, -1.25, -2, 2},
    {"lt_pow_scalar", lt_pow_scalar, ref_pow, 2.5, 0.2, 2},
    {"lt_pow_scalar", lt_pow_scalar, ref_pow, -0.5, 0.2, 2},
    {"lt_pow_scalar", lt_pow_scalar, ref_pow, 3.0, -2, 2}, /* an integer power of negative bases */
    {"lt_pow_scalar", lt_pow_scalar, ref_pow, 0.0, 0.2, 2},
    {"lt_rsub_scalar", lt_rsub_scalar, ref_rsub, 1.5, -2, 2},
    {"lt_rdiv_scalar", lt_rdiv_scalar, ref_rdiv, 2.0, 0.5, 2},
};
#define N_UNARY (int)(sizeof unary_cases / sizeof unary_cases[0])

typedef lt_status (*binary_fn)(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);

typedef struct binary_case {
    const char *fn;
    binary_fn op;
    double (*ref)(double a, double b);
    double alo, ahi, blo, bhi;
} binary_case;

static const binary_case binary_cases[] = {
    {"lt_add", lt_add, ref_add, -2, 2, -2, 2},      {"lt_sub", lt_sub, ref_sub, -2, 2, -2, 2},
    {"lt_mul", lt_mul, ref_mul, -2, 2, -2, 2},      {"lt_div", lt_div, ref_div, -2, 2, 0.5, 2},
    {"lt_pow", lt_pow, ref_pow, 0.2, 2, -1.5, 1.5},
};
#define N_BINARY (int)(sizeof binary_cases / sizeof binary_cases[0])

/* ---- Helpers ---- */

typedef struct shape {
    int ndim;
    int64_t d[LT_MAX_DIMS];
} shape;

static const char *dtype_str(lt_dtype dt) { return dt == LT_F32 ? "f32" : "f64"; }

/* f32: the kernels round a double result once, so half an ulp (6e-8) plus slack; f64: a few ulps. */
static double rtol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-6 : 1e-12; }
static double atol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-12 : 1e-15; }

/* How an input is laid out in memory: each layout must give the same values. */
typedef enum layout { CONTIGUOUS, STRIDED, PERMUTED, EXPANDED, N_LAYOUTS } layout;
static const char *layout_names[] = {"contiguous", "strided", "permuted", "expanded"};

/* A random tensor of shape s in [lo, hi) laid out as asked: STRIDED skips every other element of the last dim,
 * PERMUTED is a reversed-dims view of a reversed-shape tensor, EXPANDED broadcasts dim 0 from size 1 (stride 0).
 * Returns NULL when the layout does not apply to the shape. */
static lt_tensor *make_input(shape s, lt_dtype dt, double lo, double hi, layout l) {
    lt_tensor *t = NULL;
    switch (l) {
    case CONTIGUOUS: return tt_rand(s.d, s.ndim, dt, lo, hi);
    case STRIDED: return s.ndim == 0 ? NULL : tt_strided(tt_rand(s.d, s.ndim, dt, lo, hi));
    case PERMUTED: {
        if (s.ndim < 2) return NULL;
        int64_t rev[LT_MAX_DIMS];
        int perm[LT_MAX_DIMS];
        for (int i = 0; i < s.ndim; i++) {
            rev[i] = s.d[s.ndim - 1 - i];
            perm[i] = s.ndim - 1 - i;
        }
        if (lt_permute(tt_rand(rev, s.ndim, dt, lo, hi), perm, &t) != LT_OK) return NULL;
        return t;
    }
    case EXPANDED: {
        if (s.ndim == 0 || s.d[0] == 1) return NULL;
        int64_t one[LT_MAX_DIMS];
        memcpy(one, s.d, sizeof one);
        one[0] = 1;
        if (lt_expand(tt_rand(one, s.ndim, dt, lo, hi), s.d, s.ndim, &t) != LT_OK) return NULL;
        return t;
    }
    default: return NULL;
    }
}

static void shape_str(char *buf, size_t n, shape s) {
    int k = snprintf(buf, n, "[");
    for (int i = 0; i < s.ndim; i++) k += snprintf(buf + k, n - (size_t)k, i ? ",%lld" : "%lld", (long long)s.d[i]);
    snprintf(buf + k, n - (size_t)k, "]");
}

/* Checks that y is a contiguous tensor of the given shape and dtype. */
static bool check_geometry(const char *what, const lt_tensor *y, shape s, lt_dtype dt) {
    int64_t got[LT_MAX_DIMS];
    bool ok = lt_tensor_ndim(y) == s.ndim && lt_tensor_dtype(y) == dt && lt_tensor_is_contiguous(y) &&
              lt_tensor_shape(y, got) == LT_OK && memcmp(got, s.d, sizeof(int64_t) * (size_t)s.ndim) == 0;
    if (!ok) fprintf(stderr, "%s: output has the wrong shape, dtype or layout\n", what);
    return ok;
}

/* NumPy broadcasting, written independently of the library. */
static bool broadcast(shape a, shape b, shape *out) {
    out->ndim = a.ndim > b.ndim ? a.ndim : b.ndim;
    for (int i = 0; i < out->ndim; i++) {
        int ia = i - (out->ndim - a.ndim), ib = i - (out->ndim - b.ndim);
        int64_t da = ia < 0 ? 1 : a.d[ia], db = ib < 0 ? 1 : b.d[ib];
        if (da != db && da != 1 && db != 1) return false;
        out->d[i] = da == 1 ? db : da;
    }
    return true;
}

/* The row-major index into an input of shape in that feeds output element `flat` of shape out. */
static int64_t source_index(int64_t flat, shape out, shape in) {
    int64_t idx = 0, stride = 1;
    for (int i = out.ndim - 1; i >= 0; i--) {
        int64_t coord = flat % out.d[i];
        flat /= out.d[i];
        int j = i - (out.ndim - in.ndim);
        if (j < 0) continue;
        if (in.d[j] != 1) idx += coord * stride;
        stride *= in.d[j];
    }
    return idx;
}

static int64_t numel(shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

/* ---- Forward ---- */

/* y = op(x) compared with the reference applied to x's values. */
static void check_unary(const unary_case *c, const lt_tensor *x, shape s, lt_dtype dt, const char *what) {
    lt_tensor *y = NULL;
    CHECK_OK(c->op(x, c->s, &y));
    CHECK(check_geometry(what, y, s, dt));
    double *xv = tt_values(x);
    int64_t n = numel(s);
    double *ref = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) ref[i] = c->ref(xv[i], c->s);
    CHECK(tt_tensor_close(what, y, ref, atol_of(dt), rtol_of(dt)));
    free(ref);
    free(xv);
}

/* Odd and prime sizes, a scalar, and one above the kernels' parallel threshold (32768 elements). */
static const shape unary_shapes[] = {{0, {0}}, {1, {1}}, {1, {7}}, {2, {31, 5}}, {3, {3, 1, 17}}, {2, {7, 5003}}};
#define N_UNARY_SHAPES (int)(sizeof unary_shapes / sizeof unary_shapes[0])

static void test_unary_forward(void) {
    static const lt_dtype dtypes[] = {LT_F32, LT_F64};
    tt_seed(101);
    for (int c = 0; c < N_UNARY; c++)
        for (int k = 0; k < 2; k++)
            for (int si = 0; si < N_UNARY_SHAPES; si++)
                for (int l = 0; l < N_LAYOUTS; l++) {
                    const unary_case *uc = &unary_cases[c];
                    shape s = unary_shapes[si];
                    CHECK_OK(lt_scope_begin());
                    lt_tensor *x = make_input(s, dtypes[k], uc->lo, uc->hi, (layout)l);
                    if (x) {
                        char what[200], sh[64];
                        shape_str(sh, sizeof sh, s);
                        snprintf(what, sizeof what, "%s(s=%g) %s %s %s", uc->fn, uc->s, dtype_str(dtypes[k]), sh,
                                 layout_names[l]);
                        check_unary(uc, x, s, dtypes[k], what);
                    }
                    CHECK_OK(lt_scope_end());
                }
}

/* y = op(a, b) compared with the reference over independently broadcast values. */
static void check_binary(const binary_case *c, const lt_tensor *a, shape sa, const lt_tensor *b, shape sb, lt_dtype dt,
                         const char *what) {
    shape so;
    CHECK(broadcast(sa, sb, &so));
    lt_tensor *y = NULL;
    CHECK_OK(c->op(a, b, &y));
    CHECK(check_geometry(what, y, so, dt));
    double *av = tt_values(a), *bv = tt_values(b);
    int64_t n = numel(so);
    double *ref = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) ref[i] = c->ref(av[source_index(i, so, sa)], bv[source_index(i, so, sb)]);
    CHECK(tt_tensor_close(what, y, ref, atol_of(dt), rtol_of(dt)));
    free(ref);
    free(av);
    free(bv);
}

/* Same shapes, broadcasting both ways, scalar-shaped [] and [1] operands, and two cases above the parallel
 * threshold: a row broadcast down a [7, 5003] tensor, and an outer product [5003,1] x [1,7] whose rows are short. */
static const shape binary_shapes[][2] = {
    {{1, {7}}, {1, {7}}},          {{2, {31, 5}}, {2, {31, 5}}},  {{3, {3, 1, 5}}, {2, {4, 5}}},
    {{2, {4, 5}}, {3, {3, 1, 5}}}, {{3, {3, 1, 17}}, {0, {0}}},   {{0, {0}}, {3, {3, 1, 17}}},
    {{1, {1}}, {2, {31, 5}}},      {{2, {31, 5}}, {1, {1}}},      {{3, {3, 1, 17}}, {3, {1, 4, 1}}},
    {{0, {0}}, {0, {0}}},          {{2, {7, 5003}}, {1, {5003}}}, {{2, {5003, 1}}, {2, {1, 7}}},
};
#define N_BINARY_SHAPES (int)(sizeof binary_shapes / sizeof binary_shapes[0])

static void test_binary_forward(void) {
    static const lt_dtype dtypes[] = {LT_F32, LT_F64};
    tt_seed(202);
    for (int c = 0; c < N_BINARY; c++)
        for (int k = 0; k < 2; k++)
            for (int si = 0; si < N_BINARY_SHAPES; si++)
                for (int la = 0; la < N_LAYOUTS; la++)
                    for (int lb = 0; lb < N_LAYOUTS; lb++) {
                        /* every layout of a against contiguous b, and contiguous a against every layout of b,
                         * plus strided a with permuted b */
                        if (la != CONTIGUOUS && lb != CONTIGUOUS && !(la == STRIDED && lb == PERMUTED)) continue;
                        const binary_case *bc = &binary_cases[c];
                        shape sa = binary_shapes[si][0], sb = binary_shapes[si][1];
                        CHECK_OK(lt_scope_begin());
                        lt_tensor *a = make_input(sa, dtypes[k], bc->alo, bc->ahi, (layout)la);
                        lt_tensor *b = make_input(sb, dtypes[k], bc->blo, bc->bhi, (layout)lb);
                        if (a && b) {
                            char what[200], sha[64], shb[64];
                            shape_str(sha, sizeof sha, sa);
                            shape_str(shb, sizeof shb, sb);
                            snprintf(what, sizeof what, "%s %s %s %s x %s %s", bc->fn, dtype_str(dtypes[k]), sha,
                                     layout_names[la], shb, layout_names[lb]);
                            check_binary(bc, a, sa, b, sb, dtypes[k], what);
                        }
                        CHECK_OK(lt_scope_end());
                    }
}

/* The same tensor as both operands (x + x, x * x, ...). */
static void test_binary_same_input(void) {
    tt_seed(203);
    shape s = {2, {5, 3}};
    for (int c = 0; c < N_BINARY; c++) {
        const binary_case *bc = &binary_cases[c];
        lt_tensor *x = tt_rand(s.d, s.ndim, LT_F64, bc->alo > 0 ? bc->alo : 0.5, bc->ahi);
        check_binary(bc, x, s, x, s, LT_F64, bc->fn);
    }
}

/* Inputs outside a function's domain or range give IEEE values (inf, NaN, exact 0 and 1), not errors (ops.h). */
static void test_special_values(void) {
    const double xs[] = {0.0, -1.0, 1000.0, -1000.0, NAN, -INFINITY};
    const double as[] = {1.0, -8.0, -2.0, 0.0, INFINITY, NAN}, bs[] = {0.0, 1.0 / 3.0, 3.0, 0.0, 2.0, 1.0};
    const int64_t n[] = {6};
    for (int k = 0; k < 2; k++) {
        lt_dtype dt = k ? LT_F64 : LT_F32;
        lt_tensor *x64, *a64, *b64, *x, *a, *b;
        CHECK_OK(lt_tensor_from_host(xs, n, 1, LT_F64, LT_DEVICE_CPU, &x64));
        CHECK_OK(lt_tensor_from_host(as, n, 1, LT_F64, LT_DEVICE_CPU, &a64));
        CHECK_OK(lt_tensor_from_host(bs, n, 1, LT_F64, LT_DEVICE_CPU, &b64));
        CHECK_OK(lt_tensor_to(x64, dt, LT_DEVICE_CPU, &x));
        CHECK_OK(lt_tensor_to(a64, dt, LT_DEVICE_CPU, &a));
        CHECK_OK(lt_tensor_to(b64, dt, LT_DEVICE_CPU, &b));
        shape s = {1, {6}};
        char what[96];
        for (int c = 0; c < N_UNARY; c++) {
            snprintf(what, sizeof what, "%s(s=%g) special values %s", unary_cases[c].fn, unary_cases[c].s,
                     dtype_str(dt));
            check_unary(&unary_cases[c], x, s, dt, what);
        }
        for (int c = 0; c < N_BINARY; c++) {
            snprintf(what, sizeof what, "%s special values %s", binary_cases[c].fn, dtype_str(dt));
            check_binary(&binary_cases[c], a, s, b, s, dt, what);
        }
        /* the cases that matter most, spelled out */
        lt_tensor *y = NULL;
        CHECK_OK(lt_log(x, &y));
        double *v = tt_values(y);
        CHECK(v[0] == -INFINITY && isnan(v[1]));
        free(v);
        CHECK_OK(lt_relu(x, &y));
        v = tt_values(y);
        CHECK(v[1] == 0.0 && isnan(v[4]));
        free(v);
        CHECK_OK(lt_sigmoid(x, &y));
        v = tt_values(y);
        CHECK(v[2] == 1.0 && v[3] == 0.0 && v[5] == 0.0);
        free(v);
        CHECK_OK(lt_pow(a, b, &y));
        v = tt_values(y);
        CHECK(v[0] == 1.0 && isnan(v[1]) && v[2] == -8.0 && v[3] == 1.0);
        free(v);
    }
}

/* Empty tensors give empty results of the right shape. */
static void test_empty(void) {
    const int64_t s30[] = {3, 0}, s0[] = {0}, s1[] = {1};
    lt_tensor *a, *b, *c, *y = NULL;
    CHECK_OK(lt_tensor_empty(s30, 2, LT_F32, LT_DEVICE_CPU, &a));
    CHECK_OK(lt_tensor_empty(s0, 1, LT_F32, LT_DEVICE_CPU, &b));
    CHECK_OK(lt_tensor_full(s1, 1, 2.0, LT_F32, LT_DEVICE_CPU, &c));
    CHECK_OK(lt_exp(a, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_ndim(y) == 2 && lt_tensor_dim(y, 0) == 3);
    CHECK_OK(lt_add(a, b, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_ndim(y) == 2 && lt_tensor_dim(y, 0) == 3);
    CHECK_OK(lt_mul(b, c, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_ndim(y) == 1);
    CHECK_OK(lt_mul_scalar(a, 3.0, &y));
    CHECK(lt_tensor_numel(y) == 0);
}

/* Large kernels split the work across threads; the result must not depend on how many. */
static void test_thread_count_invariance(void) {
    tt_seed(404);
    const int64_t s[] = {3, 40009};
    lt_tensor *a = tt_rand(s, 2, LT_F32, -3, 3), *b = tt_strided(tt_rand(s, 2, LT_F32, 0.5, 2));
    int threads = lt_get_num_threads();
    lt_tensor *y1 = NULL, *g1 = NULL, *y2 = NULL, *g2 = NULL;
    CHECK_OK(lt_set_num_threads(1));
    CHECK_OK(lt_div(a, b, &y1));
    CHECK_OK(lt_gelu(a, LT_GELU_TANH, &g1));
    CHECK_OK(lt_set_num_threads(threads > 1 ? threads : 2));
    CHECK_OK(lt_div(a, b, &y2));
    CHECK_OK(lt_gelu(a, LT_GELU_TANH, &g2));
    CHECK_OK(lt_set_num_threads(threads));
    CHECK(memcmp(lt_tensor_data(y1), lt_tensor_data(y2), sizeof(float) * 3 * 40009) == 0);
    CHECK(memcmp(lt_tensor_data(g1), lt_tensor_data(g2), sizeof(float) * 3 * 40009) == 0);
}

/* ---- Backward ---- */

typedef struct unary_ctx {
    const unary_case *c;
    bool transpose; /* apply the op to a transposed (non-contiguous) view of the input */
} unary_ctx;

static lt_status gc_unary(void *ctx, lt_tensor **in, lt_tensor **out) {
    const unary_ctx *u = ctx;
    if (!u->transpose) return u->c->op(in[0], u->c->s, out);
    lt_tensor *t;
    lt_status st = lt_transpose(in[0], 0, 1, &t);
    return st != LT_OK ? st : u->c->op(t, u->c->s, out);
}

static void test_unary_backward(void) {
    static const shape shapes[] = {{2, {3, 4}}, {0, {0}}, {1, {1}}, {3, {2, 1, 3}}};
    tt_seed(505);
    for (int c = 0; c < N_UNARY; c++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            unary_ctx ctx = {&unary_cases[c], false};
            lt_tensor *x = tt_leaf(shapes[si].d, shapes[si].ndim, unary_cases[c].lo, unary_cases[c].hi);
            char what[200], sh[64];
            shape_str(sh, sizeof sh, shapes[si]);
            snprintf(what, sizeof what, "%s(s=%g) backward %s", unary_cases[c].fn, unary_cases[c].s, sh);
            CHECK(tt_gradcheck(what, gc_unary, &ctx, &x, 1));
        }
        unary_ctx ctx = {&unary_cases[c], true};
        const int64_t s[] = {4, 3};
        lt_tensor *x = tt_leaf(s, 2, unary_cases[c].lo, unary_cases[c].hi);
        char what[96];
        snprintf(what, sizeof what, "%s(s=%g) backward through a transpose", unary_cases[c].fn, unary_cases[c].s);
        CHECK(tt_gradcheck(what, gc_unary, &ctx, &x, 1));
    }
}

typedef struct binary_ctx {
    const binary_case *c;
    bool same; /* op(x, x) */
} binary_ctx;

static lt_status gc_binary(void *ctx, lt_tensor **in, lt_tensor **out) {
    const binary_ctx *b = ctx;
    return b->c->op(in[0], b->same ? in[0] : in[1], out);
}

static void test_binary_backward(void) {
    static const shape shapes[][2] = {
        {{2, {2, 3}}, {2, {2, 3}}}, {{3, {3, 1, 2}}, {2, {4, 2}}}, {{2, {4, 2}}, {3, {3, 1, 2}}},
        {{2, {2, 3}}, {0, {0}}},    {{0, {0}}, {2, {2, 3}}},       {{1, {1}}, {2, {2, 3}}},
        {{2, {2, 1}}, {2, {1, 3}}},
    };
    tt_seed(606);
    for (int c = 0; c < N_BINARY; c++) {
        const binary_case *bc = &binary_cases[c];
        binary_ctx ctx = {bc, false};
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            shape sa = shapes[si][0], sb = shapes[si][1];
            char what[200], sha[64], shb[64];
            shape_str(sha, sizeof sha, sa);
            shape_str(shb, sizeof shb, sb);
            /* both inputs need a gradient, then only a, then only b */
            for (int needs = 0; needs < 3; needs++) {
                lt_tensor *in[2];
                in[0] = needs == 2 ? tt_rand(sa.d, sa.ndim, LT_F64, bc->alo, bc->ahi)
                                   : tt_leaf(sa.d, sa.ndim, bc->alo, bc->ahi);
                in[1] = needs == 1 ? tt_rand(sb.d, sb.ndim, LT_F64, bc->blo, bc->bhi)
                                   : tt_leaf(sb.d, sb.ndim, bc->blo, bc->bhi);
                snprintf(what, sizeof what, "%s backward %s x %s (needs %s)", bc->fn, sha, shb,
                         needs == 0   ? "both"
                         : needs == 1 ? "a"
                                      : "b");
                CHECK(tt_gradcheck(what, gc_binary, &ctx, in, 2));
            }
        }
        /* op(x, x): two gradients accumulate into one leaf */
        binary_ctx same = {bc, true};
        const int64_t s[] = {2, 3};
        lt_tensor *x = tt_leaf(s, 2, bc->alo > 0 ? bc->alo : 0.5, bc->ahi);
        char what[64];
        snprintf(what, sizeof what, "%s backward op(x, x)", bc->fn);
        CHECK(tt_gradcheck(what, gc_binary, &same, &x, 1));
    }
}

/* Gradients of x (and of b for binary ops) computed in f32 and in f64 on the same values agree, which exercises the
 * f32 backward kernels that the f64 gradcheck does not reach. */
static lt_tensor *f32_leaf(const int64_t *s, int nd, double lo, double hi, lt_tensor **as_f64) {
    lt_tensor *x32 = tt_rand(s, nd, LT_F32, lo, hi);
    if (lt_tensor_to(x32, LT_F64, LT_DEVICE_CPU, as_f64) != LT_OK || lt_tensor_set_requires_grad(x32, true) != LT_OK ||
        lt_tensor_set_requires_grad(*as_f64, true) != LT_OK)
        return NULL;
    return x32;
}

static void check_grads_agree(const char *what, lt_tensor *x32, lt_tensor *x64) {
    lt_tensor *g32 = NULL, *g64 = NULL;
    CHECK_OK(lt_tensor_grad(x32, &g32));
    CHECK_OK(lt_tensor_grad(x64, &g64));
    CHECK(g32 && g64 && lt_tensor_dtype(g32) == LT_F32);
    if (!g32 || !g64) return;
    double *ref = tt_values(g64);
    CHECK(tt_tensor_close(what, g32, ref, 1e-6, 1e-5));
    free(ref);
}

/* The f32 GELU(tanh) gradient in the far tails, where exp(-2u) overflows: 0 below, 1 above, never NaN. */
static void test_gelu_tails_f32(void) {
    const float xs[] = {-50, -12, -9.9f, -5, 5, 12, 50};
    const int64_t n = 7;
    for (int m = 0; m < 2; m++) {
        lt_tensor *x, *y, *g;
        CHECK_OK(lt_tensor_from_host(xs, &n, 1, LT_F32, LT_DEVICE_CPU, &x));
        CHECK_OK(lt_tensor_set_requires_grad(x, true));
        CHECK_OK(lt_gelu(x, m ? LT_GELU_ERF : LT_GELU_TANH, &y));
        lt_tensor *ones;
        CHECK_OK(lt_tensor_ones(&n, 1, LT_F32, LT_DEVICE_CPU, &ones));
        CHECK_OK(lt_backward_grad(y, ones));
        CHECK_OK(lt_tensor_grad(x, &g));
        double ref[7];
        for (int i = 0; i < 7; i++) { /* central differences of the f64 reference */
            double (*f)(double, double) = m ? ref_gelu_erf : ref_gelu_tanh, h = 1e-5;
            ref[i] = (f(xs[i] + h, 0) - f(xs[i] - h, 0)) / (2 * h);
        }
        CHECK(tt_tensor_close(m ? "gelu erf tails" : "gelu tanh tails", g, ref, 1e-6, 1e-5));
    }
}

static void test_backward_f32(void) {
    tt_seed(707);
    const int64_t s[] = {5, 7}, sb[] = {7};
    for (int c = 0; c < N_UNARY; c++) {
        const unary_case *uc = &unary_cases[c];
        lt_tensor *x64, *x32 = f32_leaf(s, 2, uc->lo, uc->hi, &x64), *r64, *y32, *y64;
        CHECK(x32 != NULL);
        if (!x32) return;
        lt_tensor *r32 = tt_rand(s, 2, LT_F32, -1, 1);
        CHECK_OK(lt_tensor_to(r32, LT_F64, LT_DEVICE_CPU, &r64));
        CHECK_OK(uc->op(x32, uc->s, &y32));
        CHECK_OK(uc->op(x64, uc->s, &y64));
        CHECK_OK(lt_backward_grad(y32, r32));
        CHECK_OK(lt_backward_grad(y64, r64));
        char what[96];
        snprintf(what, sizeof what, "%s(s=%g) f32 backward", uc->fn, uc->s);
        check_grads_agree(what, x32, x64);
    }
    for (int c = 0; c < N_BINARY; c++) {
        const binary_case *bc = &binary_cases[c];
        lt_tensor *a64, *b64, *r64, *y32, *y64;
        lt_tensor *a32 = f32_leaf(s, 2, bc->alo, bc->ahi, &a64), *b32 = f32_leaf(sb, 1, bc->blo, bc->bhi, &b64);
        CHECK(a32 && b32);
        if (!a32 || !b32) return;
        lt_tensor *r32 = tt_rand(s, 2, LT_F32, -1, 1);
        CHECK_OK(lt_tensor_to(r32, LT_F64, LT_DEVICE_CPU, &r64));
        CHECK_OK(bc->op(a32, b32, &y32));
        CHECK_OK(bc->op(a64, b64, &y64));
        CHECK_OK(lt_backward_grad(y32, r32));
        CHECK_OK(lt_backward_grad(y64, r64));
        char what[96];
        snprintf(what, sizeof what, "%s f32 backward, a", bc->fn);
        check_grads_agree(what, a32, a64);
        snprintf(what, sizeof what, "%s f32 backward, b", bc->fn);
        check_grads_agree(what, b32, b64);
    }
}

/* A node is recorded only when an input requires grad and grad mode is on. */
static void test_recording(void) {
    tt_seed(808);
    const int64_t s[] = {3};
    lt_tensor *plain = tt_rand(s, 1, LT_F64, 0.5, 1), *leaf = tt_leaf(s, 1, 0.5, 1), *y = NULL;
    CHECK_OK(lt_exp(plain, &y));
    CHECK(!lt_tensor_requires_grad(y));
    CHECK_OK(lt_exp(leaf, &y));
    CHECK(lt_tensor_requires_grad(y));
    CHECK_OK(lt_mul(plain, leaf, &y));
    CHECK(lt_tensor_requires_grad(y));
    CHECK_OK(lt_mul_scalar(leaf, 2.0, &y));
    CHECK(lt_tensor_requires_grad(y));
    lt_no_grad_begin();
    CHECK_OK(lt_mul(leaf, leaf, &y));
    CHECK(!lt_tensor_requires_grad(y));
    lt_no_grad_end();
}

/* ---- Errors ---- */

/* Each failing call must leave *out NULL; `out` starts as a non-NULL sentinel to prove it. */
#define SENTINEL ((lt_tensor *)&sentinel_storage)
static int sentinel_storage;

static void test_unary_errors(void) {
    tt_seed(909);
    const int64_t s[] = {2, 3};
    lt_tensor *f32 = tt_rand(s, 2, LT_F32, 0.5, 1), *i32 = tt_randint(s, 2, LT_I32, 5);
    lt_tensor *u8 = tt_randint(s, 2, LT_U8, 5);
    for (int c = 0; c < N_UNARY; c++) {
        const unary_case *uc = &unary_cases[c];
        lt_tensor *out = SENTINEL;
        CHECK_ERR(uc->op(NULL, uc->s, &out), LT_ERR_ARG, uc->fn);
        CHECK(out == NULL);
        CHECK_ERR(uc->op(f32, uc->s, NULL), LT_ERR_ARG, uc->fn);
        out = SENTINEL;
        CHECK_ERR(uc->op(i32, uc->s, &out), LT_ERR_DTYPE, uc->fn);
        CHECK(out == NULL);
        CHECK_ERR(uc->op(u8, uc->s, &out), LT_ERR_DTYPE, uc->fn);
    }
    lt_tensor *out = SENTINEL;
    CHECK_ERR(lt_gelu(f32, (lt_gelu_approx)7, &out), LT_ERR_ARG, "lt_gelu");
    CHECK(out == NULL);
}

static void test_binary_errors(void) {
    tt_seed(910);
    const int64_t s43[] = {4, 3}, s52[] = {5, 2};
    lt_tensor *a = tt_rand(s43, 2, LT_F32, 0.5, 1), *a64 = tt_rand(s43, 2, LT_F64, 0.5, 1);
    lt_tensor *b = tt_rand(s52, 2, LT_F32, 0.5, 1), *i32 = tt_randint(s43, 2, LT_I32, 5);
    for (int c = 0; c < N_BINARY; c++) {
        const binary_case *bc = &binary_cases[c];
        lt_tensor *out = SENTINEL;
        CHECK_ERR(bc->op(NULL, a, &out), LT_ERR_ARG, bc->fn);
        CHECK(out == NULL);
        out = SENTINEL;
        CHECK_ERR(bc->op(a, NULL, &out), LT_ERR_ARG, bc->fn);
        CHECK(out == NULL);
        CHECK_ERR(bc->op(a, a, NULL), LT_ERR_ARG, bc->fn);
        out = SENTINEL;
        CHECK_ERR(bc->op(a, a64, &out), LT_ERR_DTYPE, bc->fn);
        CHECK(out == NULL);
        CHECK_ERR(bc->op(a64, a, &out), LT_ERR_DTYPE, bc->fn);
        CHECK_ERR(bc->op(i32, i32, &out), LT_ERR_DTYPE, bc->fn);
        CHECK_ERR(bc->op(a, i32, &out), LT_ERR_DTYPE, bc->fn);
        out = SENTINEL;
        CHECK_ERR(bc->op(a, b, &out), LT_ERR_SHAPE, bc->fn);
        CHECK(out == NULL);
        CHECK(strstr(lt_last_error(), "4x3") && strstr(lt_last_error(), "5x2"));
    }
}

int main(void) {
    RUN(test_unary_forward);
    RUN(test_binary_forward);
    RUN(test_binary_same_input);
    RUN(test_special_values);
    RUN(test_empty);
    RUN(test_thread_count_invariance);
    RUN(test_unary_backward);
    RUN(test_binary_backward);
    RUN(test_backward_f32);
    RUN(test_gelu_tails_f32);
    RUN(test_recording);
    RUN(test_unary_errors);
    RUN(test_binary_errors);
    return tt_finish();
}
