/* Tests of lt_attention: output and qkv gradient against a naive f64 reference that builds the full T x T causal
 * softmax, for several (B, T, n_head, hs) in both float dtypes; finite-difference gradients; strided input;
 * thread-count independence; empty shapes and error paths. The log-sum-exp the kernel keeps is not public: the
 * backward rebuilds every probability from it, so the gradient checks pin it down (an error d scales dv by e^-d). */
#include "test.h"

static const char *fn = "lt_attention";

/* y [B, T, C] and, when gy is not NULL, gqkv [B, T, 3C] for row-major qkv [B, T, 3C], by the textbook formulas:
 * P = softmax(q k^T / sqrt(hs) + mask), y = P v; dP = gy v^T, dS = P * (dP - rowsum(P * dP)), dq = dS k / sqrt(hs),
 * dk = dS^T q / sqrt(hs), dv = P^T gy. */
static void reference(const double *x, const double *gy, int64_t B, int64_t T, int64_t C, int64_t H, double *y,
                      double *gx) {
    int64_t hs = C / H, ld = 3 * C;
    double scale = 1.0 / sqrt((double)hs);
    double *P = malloc(sizeof(double) * (size_t)(T * T + 1)), *dP = malloc(sizeof(double) * (size_t)(T * T + 1));
    if (gx)
        for (int64_t i = 0; i < B * T * ld; i++) gx[i] = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const double *q = x + b * T * ld + h * hs, *k = q + C, *v = q + 2 * C;
            for (int64_t i = 0; i < T; i++) {
                double m = -INFINITY, s = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double d = 0;
                    for (int64_t c = 0; c < hs; c++) d += q[i * ld + c] * k[j * ld + c];
                    P[i * T + j] = d * scale;
                    m = fmax(m, d * scale);
                }
                for (int64_t j = 0; j <= i; j++) s += exp(P[i * T + j] - m);
                for (int64_t j = 0; j < T; j++) P[i * T + j] = j <= i ? exp(P[i * T + j] - m) / s : 0;
                for (int64_t c = 0; c < hs; c++) {
                    double acc = 0;
                    for (int64_t j = 0; j <= i; j++) acc += P[i * T + j] * v[j * ld + c];
                    y[(b * T + i) * C + h * hs + c] = acc;
                }
            }
            if (!gx) continue;
            const double *g = gy + b * T * C + h * hs;
            double *gq = gx + b * T * ld + h * hs, *gk = gq + C, *gv = gq + 2 * C;
            for (int64_t i = 0; i < T; i++) {
                double rs = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double d = 0;
                    for (int64_t c = 0; c < hs; c++) d += g[i * C + c] * v[j * ld + c];
                    dP[i * T + j] = d;
                    rs += P[i * T + j] * d;
                }
                for (int64_t j = 0; j <= i; j++) {
                    double ds = P[i * T + j] * (dP[i * T + j] - rs);
                    for (int64_t c = 0; c < hs; c++) {
                        gq[i * ld + c] += ds * k[j * ld + c] * scale;
                        gk[j * ld + c] += ds * q[i * ld + c] * scale;
                        gv[j * ld + c] += P[i * T + j] * g[i * C + c];
                    }
                }
            }
        }
    free(P);
    free(dP);
}

/* Forward and backward of one shape against the reference; strided feeds qkv as a non-contiguous view. */
static bool check_case(int64_t B, int64_t T, int64_t H, int64_t hs, lt_dtype dt, bool strided, double tol) {
    char what[160];
    snprintf(what, sizeof what, "attention B=%lld T=%lld H=%lld hs=%lld %s%s", (long long)B, (long long)T, (long long)H,
             (long long)hs, dt == LT_F64 ? "f64" : "f32", strided ? " strided" : "");
    int64_t C = H * hs, xs[3] = {B, T, 3 * C}, ys[3] = {B, T, C};
    lt_tensor *qkv = tt_rand(xs, 3, dt, -1.5, 1.5), *gy = tt_rand(ys, 3, dt, -1, 1), *y = NULL, *g = NULL;
    if (strided) qkv = tt_strided(qkv);
    lt_tensor *leaf = qkv;
    if (lt_tensor_set_requires_grad(leaf, true) != LT_OK || lt_attention(qkv, (int)H, &y) != LT_OK ||
        lt_backward_grad(y, gy) != LT_OK || lt_tensor_grad(leaf, &g) != LT_OK || !g) {
        fprintf(stderr, "%s: failed: %s\n", what, lt_last_error());
        return false;
    }
    double *x = tt_values(leaf), *gv = tt_values(gy);
    double *ry = malloc(sizeof(double) * (size_t)(B * T * C + 1)),
           *rg = malloc(sizeof(double) * (size_t)(B * T * 3 * C + 1));
    reference(x, gv, B, T, C, H, ry, rg);
    bool ok = lt_tensor_ndim(y) == 3 && lt_tensor_dim(y, 0) == B && lt_tensor_dim(y, 1) == T &&
              lt_tensor_dim(y, 2) == C && lt_tensor_dtype(y) == dt;
    if (!ok) fprintf(stderr, "%s: wrong output shape or dtype\n", what);
    ok = ok && tt_tensor_close(what, y, ry, tol, tol);
    snprintf(what + strlen(what), sizeof what - strlen(what), " grad");
    ok = ok && tt_tensor_close(what, g, rg, tol, tol);
    free(x);
    free(gv);
    free(ry);
    free(rg);
    return ok;
}

static const struct {
    int64_t B, T, H, hs;
} cases[] = {{1, 1, 1, 1},  {2, 7, 3, 8},   {1, 33, 2, 64}, {2, 128, 4, 16}, {1, 65, 1, 1},
             {3, 5, 2, 33}, {1, 97, 2, 48}, {2, 64, 1, 64}, {1, 130, 1, 72}, {1, 20, 1, 128}};

static void test_forward_backward_f32(void) {
    tt_seed(51);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        CHECK(check_case(cases[c].B, cases[c].T, cases[c].H, cases[c].hs, LT_F32, false, 1e-5));
}

static void test_forward_backward_f64(void) {
    tt_seed(52);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        CHECK(check_case(cases[c].B, cases[c].T, cases[c].H, cases[c].hs, LT_F64, false, 1e-12));
}

/* A long sequence: many key blocks per query, and a diagonal block in the middle of each query block's sweep. */
static void test_long_sequence(void) {
    tt_seed(53);
    CHECK(check_case(1, 1024, 1, 64, LT_F32, false, 1e-5));
    CHECK(check_case(1, 300, 2, 32, LT_F64, false, 1e-12));
}

static void test_strided_input(void) {
    tt_seed(54);
    CHECK(check_case(2, 9, 2, 4, LT_F32, true, 1e-5));
    CHECK(check_case(1, 70, 3, 8, LT_F64, true, 1e-12));
}

/* Scores of magnitude ~100 must not overflow the running max and sum. */
static void test_large_scores(void) {
    tt_seed(55);
    int64_t xs[3] = {1, 40, 3 * 16}, ys[3] = {1, 40, 16};
    for (int dt = 0; dt < 2; dt++) {
        lt_tensor *qkv = tt_rand(xs, 3, dt ? LT_F64 : LT_F32, -12, 12), *y = NULL;
        CHECK_OK(lt_attention(qkv, 2, &y));
        double *x = tt_values(qkv), *ry = malloc(sizeof(double) * 40 * 16);
        reference(x, NULL, 1, 40, 16, 2, ry, NULL);
        CHECK(tt_tensor_close("large scores", y, ry, dt ? 1e-11 : 1e-4, dt ? 1e-11 : 1e-4));
        (void)ys;
        free(x);
        free(ry);
    }
}

/* The same results, bit for bit, on 1 thread and on several (each output is summed in a fixed order). */
/* y and the qkv gradient on 1 and on 3 threads, bitwise. B x H = 8 heads split by head; one head alone (B = H = 1)
 * makes the forward cut the head into chunks of queries, its other parallel split. */
static void check_thread_independence(int64_t B, int64_t T, int heads) {
    int64_t C = 64 * heads, xs[3] = {B, T, 3 * C}, ys[3] = {B, T, C};
    lt_tensor *qkv = tt_rand(xs, 3, LT_F32, -1, 1), *gy = tt_rand(ys, 3, LT_F32, -1, 1);
    CHECK_OK(lt_tensor_set_requires_grad(qkv, true));
    int saved = lt_get_num_threads();
    double *vals[2][2];
    for (int r = 0; r < 2; r++) {
        lt_tensor *y = NULL, *g = NULL;
        CHECK_OK(lt_set_num_threads(r == 0 ? 1 : 3));
        CHECK_OK(lt_tensor_zero_grad(qkv));
        CHECK_OK(lt_attention(qkv, heads, &y));
        CHECK_OK(lt_backward_grad(y, gy));
        CHECK_OK(lt_tensor_grad(qkv, &g));
        vals[r][0] = tt_values(y);
        vals[r][1] = tt_values(g);
    }
    lt_set_num_threads(saved);
    CHECK(memcmp(vals[0][0], vals[1][0], sizeof(double) * (size_t)(B * T * C)) == 0);
    CHECK(memcmp(vals[0][1], vals[1][1], sizeof(double) * (size_t)(B * T * 3 * C)) == 0);
    for (int r = 0; r < 2; r++) free(vals[r][0]), free(vals[r][1]);
}

static void test_thread_independence(void) {
    tt_seed(56);
    check_thread_independence(2, 150, 4);
    check_thread_independence(1, 300, 1);
}

static lt_status attention_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_attention(in[0], *(int *)ctx, out);
}

static void test_gradcheck(void) {
    tt_seed(57);
    int heads = 2;
    int64_t s1[3] = {1, 5, 3 * 2 * 3}, s2[3] = {2, 6, 3 * 2 * 4};
    lt_tensor *a = tt_leaf(s1, 3, -1, 1), *b = tt_leaf(s2, 3, -1, 1);
    CHECK(tt_gradcheck("attention T=5 2 heads", attention_fn, &heads, &a, 1));
    CHECK(tt_gradcheck("attention B=2 T=6 2 heads", attention_fn, &heads, &b, 1));
    int one = 1;
    int64_t s3[3] = {1, 4, 3};
    lt_tensor *c = tt_leaf(s3, 3, -1, 1);
    CHECK(tt_gradcheck("attention hs=1", attention_fn, &one, &c, 1));
}

/* No grad mode (or an input without requires_grad) records nothing; empty batches and sequences are valid. */
static void test_no_grad_and_empty(void) {
    tt_seed(58);
    int64_t xs[3] = {1, 3, 6}, e1[3] = {0, 4, 6}, e2[3] = {2, 0, 6};
    lt_tensor *qkv = tt_leaf(xs, 3, -1, 1), *y = NULL;
    lt_no_grad_begin();
    CHECK_OK(lt_attention(qkv, 1, &y));
    lt_no_grad_end();
    CHECK(!lt_tensor_requires_grad(y));
    for (int k = 0; k < 2; k++) {
        lt_tensor *x = tt_rand(k ? e2 : e1, 3, LT_F32, -1, 1);
        CHECK_OK(lt_attention(x, 2, &y));
        CHECK(lt_tensor_numel(y) == 0 && lt_tensor_dim(y, 2) == 2);
    }
    /* C = 0: no features, an empty output and an empty gradient */
    int64_t e3[3] = {2, 3, 0};
    lt_tensor *x = tt_leaf(e3, 3, -1, 1), *g = NULL;
    CHECK_OK(lt_attention(x, 2, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_dim(y, 1) == 3);
    CHECK_OK(lt_backward_grad(y, y));
    CHECK_OK(lt_tensor_grad(x, &g));
    CHECK(g && lt_tensor_numel(g) == 0);
}

static void test_errors(void) {
    int64_t good[3] = {1, 4, 12}, two[2] = {4, 12}, odd[3] = {1, 4, 10}, idx[3] = {1, 4, 12};
    lt_tensor *x = tt_rand(good, 3, LT_F32, -1, 1), *x2 = tt_rand(two, 2, LT_F32, -1, 1);
    lt_tensor *x3 = tt_rand(odd, 3, LT_F32, -1, 1), *xi = tt_randint(idx, 3, LT_I32, 5), *y = NULL;
    CHECK_ERR(lt_attention(x, 2, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_attention(NULL, 2, &y), LT_ERR_ARG, fn);
    CHECK(y == NULL);
    CHECK_ERR(lt_attention(xi, 2, &y), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_attention(x2, 2, &y), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_attention(x3, 2, &y), LT_ERR_SHAPE, fn); /* 10 is not 3C */
    CHECK_ERR(lt_attention(x, 3, &y), LT_ERR_SHAPE, fn);  /* C = 4 is not divisible by 3 heads */
    CHECK_ERR(lt_attention(x, 0, &y), LT_ERR_ARG, fn);
    CHECK_ERR(lt_attention(x, -1, &y), LT_ERR_ARG, fn);
    CHECK(y == NULL);
}

int main(void) {
    RUN(test_forward_backward_f32);
    RUN(test_forward_backward_f64);
    RUN(test_long_sequence);
    RUN(test_strided_input);
    RUN(test_large_scores);
    RUN(test_thread_independence);
    RUN(test_gradcheck);
    RUN(test_no_grad_and_empty);
    RUN(test_errors);
    return tt_finish();
}
