/* bf16 matrix products on the CPU: lt_matmul and lt_linear with bf16 operands (bf16 outputs, f32 accumulation, bf16
 * gradients) against an f64 reference computed from the same bf16 values, forward and backward, at odd sizes, every
 * transpose combination, strided and permuted views, batched and broadcast batches, k = 0 and empty outputs; the
 * errors for mixed and unsupported dtypes; and autocast's API, which on the CPU changes nothing.
 *
 * The reference is the library's f64 path (checked against a triple loop by test_matmul) on exact f64 copies of the
 * bf16 inputs. Each element may differ from it by one bf16 rounding of the result (at most 2^-8 relative: bf16 keeps 8
 * significant bits, and the worst cases do reach it) plus the f32 accumulation error, bounded here by 1e-5 of the sum
 * of the absolute products that make the element (that sum comes from the same product over absolute values). */
#include "test.h"

#include <pthread.h>

static lt_tensor *to_dtype(const lt_tensor *t, lt_dtype dtype) {
    lt_tensor *c = NULL;
    lt_no_grad_begin();
    lt_status st = lt_tensor_to(t, dtype, LT_DEVICE_CPU, &c);
    lt_no_grad_end();
    if (st != LT_OK) {
        fprintf(stderr, "to_dtype: %s\n", lt_last_error());
        abort();
    }
    return c;
}

/* A contiguous f64 tensor of |t|'s values. */
static lt_tensor *abs_f64(const lt_tensor *t) {
    int64_t shape[LT_MAX_DIMS], n = lt_tensor_numel(t);
    lt_tensor_shape(t, shape);
    double *v = tt_values(t);
    for (int64_t i = 0; i < n; i++) v[i] = fabs(v[i]);
    lt_tensor *a = NULL;
    if (lt_tensor_from_host(v, shape, lt_tensor_ndim(t), LT_F64, LT_DEVICE_CPU, &a) != LT_OK) abort();
    free(v);
    return a;
}

/* got (any dtype) against ref, element by element within 2^-8 |ref| + 1e-5 * sabs (see the top of the file). */
static bool close_bf16(const char *what, const lt_tensor *got, const lt_tensor *ref, const lt_tensor *sabs,
                       lt_dtype want) {
    if (lt_tensor_dtype(got) != want) {
        fprintf(stderr, "%s: dtype %s, expected %s\n", what, lt_dtype_name(lt_tensor_dtype(got)), lt_dtype_name(want));
        return false;
    }
    int64_t n = lt_tensor_numel(ref);
    if (lt_tensor_numel(got) != n || lt_tensor_ndim(got) != lt_tensor_ndim(ref)) {
        fprintf(stderr, "%s: wrong shape\n", what);
        return false;
    }
    double *g = tt_values(got), *r = tt_values(ref), *s = tt_values(sabs);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        double tol = 0x1p-8 * fabs(r[i]) + 1e-5 * s[i] + 1e-30;
        if (!(fabs(g[i] - r[i]) <= tol)) {
            fprintf(stderr, "%s: element %lld is %.9g, expected %.9g (tol %.3g)\n", what, (long long)i, g[i], r[i],
                    tol);
            ok = false;
        }
    }
    free(g);
    free(r);
    free(s);
    return ok;
}

static lt_tensor *grad_of(lt_tensor *t) {
    lt_tensor *g = NULL;
    if (lt_tensor_grad(t, &g) != LT_OK || !g) {
        fprintf(stderr, "grad_of: no gradient\n");
        abort();
    }
    return g;
}

static void make_leaf(lt_tensor *t) {
    if (lt_tensor_set_requires_grad(t, true) != LT_OK) abort();
}

/* a and b are bf16 (any views). The forward against f64, then, when `backward`, the gradients of a and b for a random
 * bf16 upstream gradient. Leaves are fresh copies, so the caller's tensors are untouched. */
static bool check_matmul(const char *what, const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, bool backward) {
    char name[256];
    lt_scope_begin();
    bool ok = true;
    const lt_tensor *a16 = a, *b16 = b;
    lt_tensor *y16 = NULL, *y64 = NULL, *ys = NULL;
    lt_tensor *a64 = to_dtype(a, LT_F64), *b64 = to_dtype(b, LT_F64), *aa = abs_f64(a), *ba = abs_f64(b);
    if (backward) { /* leaf copies that keep the operands' strides would need a strided leaf: contiguous is enough */
        a16 = to_dtype(a, LT_BF16);
        b16 = to_dtype(b, LT_BF16);
        make_leaf((lt_tensor *)a16);
        make_leaf((lt_tensor *)b16);
        make_leaf(a64);
        make_leaf(b64);
        make_leaf(aa);
        make_leaf(ba);
    }
    if (lt_matmul(a16, b16, ta, tb, &y16) != LT_OK || lt_matmul(a64, b64, ta, tb, &y64) != LT_OK ||
        lt_matmul(aa, ba, ta, tb, &ys) != LT_OK) {
        fprintf(stderr, "%s: lt_matmul failed: %s\n", what, lt_last_error());
        ok = false;
    }
    if (ok) {
        snprintf(name, sizeof name, "%s (output)", what);
        ok = close_bf16(name, y16, y64, ys, LT_BF16);
    }
    if (ok && backward && lt_tensor_numel(y16) > 0) {
        int64_t shape[LT_MAX_DIMS];
        lt_tensor_shape(y16, shape);
        lt_tensor *r16 = tt_rand(shape, lt_tensor_ndim(y16), LT_BF16, -1, 1);
        lt_tensor *r64 = to_dtype(r16, LT_F64), *ra = abs_f64(r16);
        if (lt_backward_grad(y16, r16) != LT_OK || lt_backward_grad(y64, r64) != LT_OK ||
            lt_backward_grad(ys, ra) != LT_OK) {
            fprintf(stderr, "%s: backward failed: %s\n", what, lt_last_error());
            ok = false;
        }
        if (ok) {
            snprintf(name, sizeof name, "%s (grad a)", what);
            ok = close_bf16(name, grad_of((lt_tensor *)a16), grad_of(a64), grad_of(aa), LT_BF16);
        }
        if (ok) {
            snprintf(name, sizeof name, "%s (grad b)", what);
            ok = close_bf16(name, grad_of((lt_tensor *)b16), grad_of(b64), grad_of(ba), LT_BF16);
        }
    }
    lt_scope_end();
    return ok;
}

/* The stored shape of an operand: [batch..., rows, cols], swapped when it is read transposed. */
static int stored(int64_t *shape, const int64_t *batch, int nbatch, int64_t rows, int64_t cols, bool t) {
    for (int i = 0; i < nbatch; i++) shape[i] = batch[i];
    shape[nbatch] = t ? cols : rows;
    shape[nbatch + 1] = t ? rows : cols;
    return nbatch + 2;
}

static void test_sizes_and_transposes(void) {
    const int64_t ms[] = {1, 17, 33}, ks[] = {1, 31, 257}, ns[] = {1, 2, 65};
    char what[128];
    for (int im = 0; im < 3; im++)
        for (int ik = 0; ik < 3; ik++)
            for (int in = 0; in < 3; in++)
                for (int t = 0; t < 4; t++) {
                    bool ta = t & 1, tb = t & 2;
                    int64_t m = ms[im], k = ks[ik], n = ns[in], sa[2], sb[2];
                    stored(sa, NULL, 0, m, k, ta);
                    stored(sb, NULL, 0, k, n, tb);
                    lt_tensor *a = tt_rand(sa, 2, LT_BF16, -1, 1), *b = tt_rand(sb, 2, LT_BF16, -1, 1);
                    snprintf(what, sizeof what, "%lldx%lldx%lld ta=%d tb=%d", (long long)m, (long long)k, (long long)n,
                             ta, tb);
                    CHECK(check_matmul(what, a, b, ta, tb, im != 1 || in != 1));
                }
}

/* A long reduction of positive terms: the accumulation is f32 (a bf16 accumulator stops growing once its ulp exceeds
 * twice a term, here near 256, and would end thousands of tolerances off). */
static void test_long_k(void) {
    int64_t sa[2] = {3, 4096}, sb[2] = {4096, 5};
    lt_tensor *a = tt_rand(sa, 2, LT_BF16, 0.5, 1), *b = tt_rand(sb, 2, LT_BF16, 0.5, 1);
    CHECK(check_matmul("k 4096, positive", a, b, false, false, true));
}

static void test_batches(void) {
    struct {
        int na, nb;
        int64_t ba[3], bb[3];
    } cases[] = {
        {1, 1, {3}, {3}},       /* plain batch */
        {2, 0, {2, 3}, {0}},    /* b shared by every batch: one folded product, one summed gradient */
        {2, 2, {3, 1}, {1, 4}}, /* both broadcast */
        {1, 2, {1}, {2, 3}},    /* a broadcast over b's batches */
        {3, 1, {2, 1, 3}, {3}}, /* a batch dim of 1 in the middle */
    };
    char what[128];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
            int na = stored(sa, cases[c].ba, cases[c].na, 5, 33, ta);
            int nb = stored(sb, cases[c].bb, cases[c].nb, 33, 7, tb);
            lt_tensor *a = tt_rand(sa, na, LT_BF16, -1, 1), *b = tt_rand(sb, nb, LT_BF16, -1, 1);
            snprintf(what, sizeof what, "batch case %zu ta=%d tb=%d", c, ta, tb);
            CHECK(check_matmul(what, a, b, ta, tb, true));
        }
}

/* Strided (copied first) and permuted (read column-major in place) operands, and an expanded (stride-0) batch. */
static void test_views(void) {
    int64_t sa[3] = {2, 9, 31}, sb[3] = {2, 31, 6};
    for (int la = 0; la < 3; la++)
        for (int lb = 0; lb < 3; lb++) {
            char what[64];
            snprintf(what, sizeof what, "layouts %d x %d", la, lb);
            CHECK(
                check_matmul(what, tt_layout(sa, 3, LT_BF16, la), tt_layout(sb, 3, LT_BF16, lb), false, false, false));
        }
    int64_t one[3] = {1, 31, 6}, four[3] = {4, 31, 6}, sa4[3] = {4, 9, 31};
    lt_tensor *b1 = tt_rand(one, 3, LT_BF16, -1, 1), *bx = NULL;
    CHECK_OK(lt_expand(b1, four, 3, &bx));
    CHECK(check_matmul("expanded b", tt_rand(sa4, 3, LT_BF16, -1, 1), bx, false, false, false));
}

static void test_empty_and_k0(void) {
    int64_t a0[2] = {4, 0}, b0[2] = {0, 3}, ae[3] = {0, 4, 5}, be[2] = {5, 3};
    lt_tensor *y = NULL;
    CHECK_OK(lt_matmul(tt_rand(a0, 2, LT_BF16, -1, 1), tt_rand(b0, 2, LT_BF16, -1, 1), false, false, &y));
    CHECK(lt_tensor_dtype(y) == LT_BF16 && lt_tensor_numel(y) == 12);
    double *v = tt_values(y);
    for (int i = 0; i < 12; i++) CHECK(v[i] == 0);
    free(v);
    CHECK_OK(lt_matmul(tt_rand(ae, 3, LT_BF16, -1, 1), tt_rand(be, 2, LT_BF16, -1, 1), false, false, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_dtype(y) == LT_BF16);
}

/* ---- lt_linear ---- */

static bool check_linear(const char *what, const int64_t *lead, int nlead, int64_t K, int64_t N, bool bias) {
    char name[256];
    lt_scope_begin();
    int64_t sx[LT_MAX_DIMS], sw[2] = {K, N};
    for (int i = 0; i < nlead; i++) sx[i] = lead[i];
    sx[nlead] = K;
    lt_tensor *x = tt_rand(sx, nlead + 1, LT_BF16, -1, 1), *w = tt_rand(sw, 2, LT_BF16, -1, 1);
    lt_tensor *b = bias ? tt_rand(&N, 1, LT_BF16, -1, 1) : NULL;
    lt_tensor *in16[3] = {x, w, b}, *in64[3] = {NULL}, *inabs[3] = {NULL};
    for (int i = 0; i < 3; i++) {
        if (!in16[i]) continue;
        in64[i] = to_dtype(in16[i], LT_F64);
        inabs[i] = abs_f64(in16[i]);
        make_leaf(in16[i]);
        make_leaf(in64[i]);
        make_leaf(inabs[i]);
    }
    lt_tensor *y16 = NULL, *y64 = NULL, *ys = NULL;
    bool ok = lt_linear(in16[0], in16[1], in16[2], &y16) == LT_OK &&
              lt_linear(in64[0], in64[1], in64[2], &y64) == LT_OK &&
              lt_linear(inabs[0], inabs[1], inabs[2], &ys) == LT_OK;
    if (!ok) fprintf(stderr, "%s: lt_linear failed: %s\n", what, lt_last_error());
    if (ok) {
        snprintf(name, sizeof name, "%s (output)", what);
        ok = close_bf16(name, y16, y64, ys, LT_BF16);
    }
    if (ok && lt_tensor_numel(y16) > 0) {
        int64_t shape[LT_MAX_DIMS];
        lt_tensor_shape(y16, shape);
        lt_tensor *r16 = tt_rand(shape, lt_tensor_ndim(y16), LT_BF16, -1, 1);
        ok = lt_backward_grad(y16, r16) == LT_OK && lt_backward_grad(y64, to_dtype(r16, LT_F64)) == LT_OK &&
             lt_backward_grad(ys, abs_f64(r16)) == LT_OK;
        if (!ok) fprintf(stderr, "%s: backward failed: %s\n", what, lt_last_error());
        static const char *names[3] = {"dx", "dw", "db"};
        for (int i = 0; ok && i < 3; i++) {
            if (!in16[i]) continue;
            snprintf(name, sizeof name, "%s (%s)", what, names[i]);
            ok = close_bf16(name, grad_of(in16[i]), grad_of(in64[i]), grad_of(inabs[i]), LT_BF16);
        }
    }
    lt_scope_end();
    return ok;
}

static void test_linear(void) {
    const int64_t lead1[1] = {33}, lead2[2] = {2, 17}, one[1] = {1};
    CHECK(check_linear("linear [33, 31] x [31, 65] + b", lead1, 1, 31, 65, true));
    CHECK(check_linear("linear [2, 17, 64] x [64, 33]", lead2, 2, 64, 33, false));
    CHECK(check_linear("linear [2, 17, 257] x [257, 3] + b", lead2, 2, 257, 3, true));
    CHECK(check_linear("linear [1, 1] x [1, 1] + b", one, 1, 1, 1, true));
}

/* ---- errors ---- */

static void test_errors(void) {
    int64_t s[2] = {3, 3}, s1[1] = {3};
    lt_tensor *a16 = tt_rand(s, 2, LT_BF16, -1, 1), *a32 = tt_rand(s, 2, LT_F32, -1, 1);
    lt_tensor *a16h = tt_rand(s, 2, LT_F16, -1, 1), *b32 = tt_rand(s1, 1, LT_F32, -1, 1);
    lt_tensor *b16 = tt_rand(s1, 1, LT_BF16, -1, 1), *y;
    lt_tensor *ai = tt_randint(s, 2, LT_I32, 5);
    CHECK_ERR_OUT(lt_matmul(a16, a32, false, false, &y), y, LT_ERR_DTYPE, "lt_matmul");
    CHECK_ERR_OUT(lt_matmul(a32, a16, false, false, &y), y, LT_ERR_DTYPE, "lt_matmul");
    CHECK_ERR_OUT(lt_matmul(a16h, a16h, false, false, &y), y, LT_ERR_DTYPE, "lt_matmul");
    CHECK_ERR_OUT(lt_matmul(ai, ai, false, false, &y), y, LT_ERR_DTYPE, "lt_matmul");
    CHECK_ERR_OUT(lt_linear(a16, a32, NULL, &y), y, LT_ERR_DTYPE, "lt_linear");
    CHECK_ERR_OUT(lt_linear(a32, a16, NULL, &y), y, LT_ERR_DTYPE, "lt_linear");
    CHECK_ERR_OUT(lt_linear(a16, a16, b32, &y), y, LT_ERR_DTYPE, "lt_linear");
    CHECK_ERR_OUT(lt_linear(a32, a32, b16, &y), y, LT_ERR_DTYPE, "lt_linear");
    CHECK_ERR_OUT(lt_linear(a16h, a16h, NULL, &y), y, LT_ERR_DTYPE, "lt_linear");
    /* shapes are still checked for bf16 */
    int64_t s23[2] = {2, 3};
    CHECK_ERR_OUT(lt_matmul(a16, tt_rand(s23, 2, LT_BF16, -1, 1), false, false, &y), y, LT_ERR_SHAPE, "lt_matmul");
}

/* ---- autocast's API, and on the CPU no effect ---- */

static void *other_thread(void *arg) {
    *(lt_dtype *)arg = lt_autocast_dtype();
    return NULL;
}

/* A bf16 leaf used twice gets the sum of two bf16 gradients (added in f32 by the engine, rounded once). */
static void test_leaf_used_twice(void) {
    int64_t shape[2] = {5, 7};
    lt_tensor *a32 = tt_rand(shape, 2, LT_F32, -1, 1), *a16, *ar, *y16, *yr, *g16, *gr, *r;
    CHECK_OK(lt_tensor_to(a32, LT_BF16, LT_DEVICE_CPU, &a16));
    CHECK_OK(lt_tensor_to(a16, LT_F64, LT_DEVICE_CPU, &ar)); /* the same values, in f64 */
    CHECK_OK(lt_tensor_set_requires_grad(a16, true));
    CHECK_OK(lt_tensor_set_requires_grad(ar, true));
    CHECK_OK(lt_matmul(a16, a16, false, true, &y16));
    CHECK_OK(lt_matmul(ar, ar, false, true, &yr));
    r = tt_rand((int64_t[]){5, 5}, 2, LT_BF16, -1, 1);
    lt_tensor *r64;
    CHECK_OK(lt_tensor_to(r, LT_F64, LT_DEVICE_CPU, &r64));
    CHECK_OK(lt_backward_grad(y16, r));
    CHECK_OK(lt_backward_grad(yr, r64));
    CHECK_OK(lt_tensor_grad(a16, &g16));
    CHECK_OK(lt_tensor_grad(ar, &gr));
    CHECK(g16 && lt_tensor_dtype(g16) == LT_BF16);
    double *ref = tt_values(gr);
    CHECK(tt_tensor_close("grad of a bf16 leaf used twice", g16, ref, 0.05, 2e-2));
    free(ref);
}

static void test_autocast_api(void) {
    CHECK(lt_autocast_dtype() == LT_F32);
    CHECK_ERR(lt_autocast_begin(LT_F16), LT_ERR_UNSUPPORTED, "lt_autocast_begin");
    CHECK_ERR(lt_autocast_begin(LT_F32), LT_ERR_DTYPE, "lt_autocast_begin");
    CHECK_ERR(lt_autocast_begin(LT_I32), LT_ERR_DTYPE, "lt_autocast_begin");
    CHECK_ERR(lt_autocast_begin((lt_dtype)99), LT_ERR_DTYPE, "lt_autocast_begin");
    CHECK(lt_autocast_dtype() == LT_F32);
    CHECK_OK(lt_autocast_begin(LT_BF16));
    CHECK(lt_autocast_dtype() == LT_BF16);
    CHECK_OK(lt_autocast_begin(LT_BF16)); /* nested */
    lt_autocast_end();
    CHECK(lt_autocast_dtype() == LT_BF16);
    lt_dtype seen = LT_BF16;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_thread, &seen) == 0 && pthread_join(th, NULL) == 0);
    CHECK(seen == LT_F32); /* thread-local */
    lt_autocast_end();
    CHECK(lt_autocast_dtype() == LT_F32);
    lt_autocast_end(); /* unmatched: ignored */
    CHECK(lt_autocast_dtype() == LT_F32);
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_autocast_end();
    CHECK(lt_autocast_dtype() == LT_F32);
}

/* The CPU keeps f32 under autocast: the same bits, f32 outputs and f32 gradients. */
static void test_autocast_cpu_unchanged(void) {
    int64_t sa[3] = {2, 7, 33}, sb[2] = {33, 5}, sw[2] = {5, 9}, n9 = 9;
    lt_tensor *a = tt_rand(sa, 3, LT_F32, -1, 1), *b = tt_rand(sb, 2, LT_F32, -1, 1);
    lt_tensor *w = tt_rand(sw, 2, LT_F32, -1, 1), *bias = tt_rand(&n9, 1, LT_F32, -1, 1);
    lt_tensor *ya, *za, *yb, *zb;
    CHECK_OK(lt_matmul(a, b, false, false, &ya));
    CHECK_OK(lt_linear(ya, w, bias, &za));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_status s1 = lt_matmul(a, b, false, false, &yb);
    lt_status s2 = s1 == LT_OK ? lt_linear(yb, w, bias, &zb) : s1;
    lt_autocast_end();
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK(lt_tensor_dtype(yb) == LT_F32 && lt_tensor_dtype(zb) == LT_F32);
    double *u = tt_values(za), *v = tt_values(zb);
    for (int64_t i = 0; i < lt_tensor_numel(za); i++) CHECK(u[i] == v[i]);
    free(u);
    free(v);
}

int main(void) {
    tt_seed(16);
    RUN(test_sizes_and_transposes);
    RUN(test_long_k);
    RUN(test_batches);
    RUN(test_views);
    RUN(test_empty_and_k0);
    RUN(test_linear);
    RUN(test_errors);
    RUN(test_leaf_used_twice);
    RUN(test_autocast_api);
    RUN(test_autocast_cpu_unchanged);
    return tt_finish();
}
