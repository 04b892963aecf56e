/* Tests of lt_matmul: forward against a triple loop in double (odd sizes, every transpose combination, broadcast
 * batches, transposed, strided, sliced, permuted and expanded operands, f32 and f64, empty dims), backward against
 * finite differences, and the error paths. */
#include "test.h"

/* ---- Reference: op(a) @ op(b) over NumPy-broadcast batch dims, in double, from row-major values ---- */

typedef struct mm_case {
    int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
    int na, nb;
} mm_case;

/* Fills y's shape and returns its values (caller frees). */
static double *ref_matmul(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, int64_t *ys, int *yn) {
    int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
    int na = lt_tensor_ndim(a), nb = lt_tensor_ndim(b);
    lt_tensor_shape(a, sa);
    lt_tensor_shape(b, sb);
    int64_t ar = sa[na - 2], ac = sa[na - 1], br = sb[nb - 2], bc = sb[nb - 1];
    int64_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc;
    int bat = (na > nb ? na : nb) - 2;
    int64_t nbatch = 1;
    for (int i = 0; i < bat; i++) {
        int ia = i - (bat - (na - 2)), ib = i - (bat - (nb - 2));
        int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
        ys[i] = da == 1 ? db : da;
        nbatch *= ys[i];
    }
    ys[bat] = m;
    ys[bat + 1] = n;
    *yn = bat + 2;
    double *av = tt_values(a), *bv = tt_values(b);
    double *y = malloc(sizeof(double) * (size_t)(nbatch * m * n > 0 ? nbatch * m * n : 1));
    for (int64_t t = 0; t < nbatch; t++) {
        /* batch offsets of a and b: decompose t over y's batch dims, index 0 where an operand has size 1 */
        int64_t q = t, oa = 0, ob = 0, wa = ar * ac, wb = br * bc;
        for (int i = bat - 1; i >= 0; i--) {
            int64_t idx = q % ys[i];
            q /= ys[i];
            int ia = i - (bat - (na - 2)), ib = i - (bat - (nb - 2));
            if (ia >= 0) {
                oa += (sa[ia] == 1 ? 0 : idx) * wa;
                wa *= sa[ia];
            }
            if (ib >= 0) {
                ob += (sb[ib] == 1 ? 0 : idx) * wb;
                wb *= sb[ib];
            }
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++) {
                    double x = ta ? av[oa + p * ac + i] : av[oa + i * ac + p];
                    double z = tb ? bv[ob + j * bc + p] : bv[ob + p * bc + j];
                    s += x * z;
                }
                y[(t * m + i) * n + j] = s;
            }
    }
    free(av);
    free(bv);
    return y;
}

static double tol_for(lt_dtype dt) { return dt == LT_F32 ? 2e-5 : 1e-12; }

/* Runs lt_matmul and compares shape and values with the reference. */
static bool check_product(const char *what, const lt_tensor *a, const lt_tensor *b, bool ta, bool tb) {
    lt_tensor *y = NULL;
    if (lt_matmul(a, b, ta, tb, &y) != LT_OK) {
        fprintf(stderr, "%s: lt_matmul failed: %s\n", what, lt_last_error());
        return false;
    }
    int64_t ys[LT_MAX_DIMS], got[LT_MAX_DIMS];
    int yn;
    double *ref = ref_matmul(a, b, ta, tb, ys, &yn);
    lt_tensor_shape(y, got);
    bool ok = lt_tensor_ndim(y) == yn && memcmp(ys, got, sizeof(int64_t) * (size_t)yn) == 0;
    if (!ok) fprintf(stderr, "%s: wrong output shape\n", what);
    double tol = tol_for(lt_tensor_dtype(a));
    ok = ok && lt_tensor_dtype(y) == lt_tensor_dtype(a) && lt_tensor_is_contiguous(y) &&
         tt_tensor_close(what, y, ref, tol, tol);
    free(ref);
    return ok;
}

/* The stored shape of an operand whose op() is rows x cols: [.., cols, rows] when transposed. */
static void stored(int64_t *shape, int nbatch, const int64_t *batch, int64_t rows, int64_t cols, bool t) {
    for (int i = 0; i < nbatch; i++) shape[i] = batch[i];
    shape[nbatch] = t ? cols : rows;
    shape[nbatch + 1] = t ? rows : cols;
}

/* ---- Forward ---- */

static void test_sizes_and_transposes(void) {
    static const int64_t mkn[][3] = {{1, 1, 1}, {7, 13, 5}, {31, 33, 17}, {1, 9, 4}, {6, 1, 3}};
    tt_seed(1);
    for (int dt = 0; dt < 2; dt++)
        for (size_t s = 0; s < sizeof mkn / sizeof mkn[0]; s++)
            for (int flags = 0; flags < 4; flags++) {
                bool ta = flags & 1, tb = flags & 2;
                int64_t sa[2], sb[2];
                stored(sa, 0, NULL, mkn[s][0], mkn[s][1], ta);
                stored(sb, 0, NULL, mkn[s][1], mkn[s][2], tb);
                lt_dtype dtype = dt ? LT_F64 : LT_F32;
                lt_tensor *a = tt_rand(sa, 2, dtype, -1, 1), *b = tt_rand(sb, 2, dtype, -1, 1);
                char what[96];
                snprintf(what, sizeof what, "%s %lldx%lldx%lld ta=%d tb=%d", lt_dtype_name(dtype), (long long)mkn[s][0],
                         (long long)mkn[s][1], (long long)mkn[s][2], ta, tb);
                CHECK(check_product(what, a, b, ta, tb));
            }
}

static void test_broadcast_batches(void) {
    static const mm_case cases[] = {
        {{2, 1, 3, 4}, {5, 4, 6}, 4, 3}, /* the example: batch [2,1] x [5] -> [2,5] */
        {{2, 3, 4}, {4, 5}, 3, 2},       /* shared b: folded into one product */
        {{3, 4}, {2, 4, 5}, 2, 3},       /* shared a */
        {{2, 3, 4}, {2, 4, 5}, 3, 3},    /* plain batch */
        {{1, 3, 4}, {3, 2, 4, 5}, 3, 4}, /* a broadcast over two dims */
        {{4, 1, 2, 3}, {1, 3, 3, 2}, 4, 4},
    };
    tt_seed(2);
    for (int dt = 0; dt < 2; dt++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            for (int flags = 0; flags < 4; flags++) {
                bool ta = flags & 1, tb = flags & 2;
                const mm_case *mc = &cases[c];
                int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
                /* the case lists op() shapes; store the transposed ones swapped */
                stored(sa, mc->na - 2, mc->sa, mc->sa[mc->na - 2], mc->sa[mc->na - 1], ta);
                stored(sb, mc->nb - 2, mc->sb, mc->sb[mc->nb - 2], mc->sb[mc->nb - 1], tb);
                lt_dtype dtype = dt ? LT_F64 : LT_F32;
                lt_tensor *a = tt_rand(sa, mc->na, dtype, -1, 1), *b = tt_rand(sb, mc->nb, dtype, -1, 1);
                char what[64];
                snprintf(what, sizeof what, "%s case %zu ta=%d tb=%d", lt_dtype_name(dtype), c, ta, tb);
                CHECK(check_product(what, a, b, ta, tb));
            }
}

/* Operands that are views: the transpose flag of BLAS, a leading dimension wider than the row, a copy when no
 * dim has unit stride, an outer loop when batch dims do not merge, and stride-0 (expanded) dims. */
static void test_views(void) {
    tt_seed(3);
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        int64_t s_km[2] = {13, 7}, s_kn[2] = {13, 5}, s_mk[2] = {7, 13}, s_wide[2] = {7, 20};
        lt_tensor *km = tt_rand(s_km, 2, dtype, -1, 1), *kn = tt_rand(s_kn, 2, dtype, -1, 1);
        lt_tensor *mk = tt_rand(s_mk, 2, dtype, -1, 1), *wide = tt_rand(s_wide, 2, dtype, -1, 1);
        lt_tensor *at, *sl, *exp_row, *row;
        /* a [7,13] as a transposed view of [13,7]: unit stride on the row dim */
        CHECK_OK(lt_transpose(km, 0, 1, &at));
        CHECK(check_product("transposed view", at, kn, false, false));
        CHECK(check_product("transposed view, ta", km, kn, true, false));
        CHECK(check_product("transposed view of b, tb", mk, at, false, true));
        /* columns 3..16 of a [7,20]: unit column stride, row stride 20 */
        CHECK_OK(lt_slice(wide, 1, 3, 16, 1, &sl));
        CHECK(check_product("column slice", sl, kn, false, false));
        /* every other element: no unit stride anywhere, copied */
        CHECK(check_product("strided a", tt_strided(mk), kn, false, false));
        CHECK(check_product("strided b", mk, tt_strided(kn), false, false));
        CHECK(check_product("strided both, transposed", tt_strided(km), tt_strided(kn), true, false));
        /* a row expanded to 7 rows: row stride 0 is not a leading dimension, copied */
        int64_t s_row[2] = {1, 13}, s_exp[2] = {7, 13};
        row = tt_rand(s_row, 2, dtype, -1, 1);
        CHECK_OK(lt_expand(row, s_exp, 2, &exp_row));
        CHECK(check_product("expanded rows", exp_row, kn, false, false));
        /* [B,T,H,D] permuted to [B,H,T,D]: batch dims [B,H] with strides that do not merge */
        int64_t s_bthd[4] = {3, 5, 4, 6}, s_bhdt[4] = {3, 4, 6, 5};
        int perm[4] = {0, 2, 1, 3};
        lt_tensor *q = tt_rand(s_bthd, 4, dtype, -1, 1), *k = tt_rand(s_bthd, 4, dtype, -1, 1), *qp, *kp;
        CHECK_OK(lt_permute(q, perm, &qp));
        CHECK_OK(lt_permute(k, perm, &kp));
        CHECK(check_product("permuted q @ k^T", qp, kp, false, true));
        CHECK(check_product("permuted q^T @ k", qp, kp, true, false));
        lt_tensor *v = tt_rand(s_bhdt, 4, dtype, -1, 1);
        CHECK(check_product("permuted q @ v", qp, v, false, false));
        /* a batch dim expanded with stride 0 that is not size 1 */
        int64_t s_one[3] = {1, 7, 13}, s_four[3] = {4, 7, 13}, s_b4[3] = {4, 13, 5};
        lt_tensor *one = tt_rand(s_one, 3, dtype, -1, 1), *four, *b4 = tt_rand(s_b4, 3, dtype, -1, 1);
        CHECK_OK(lt_expand(one, s_four, 3, &four));
        CHECK(check_product("expanded batch", four, b4, false, false));
        /* one row per batch, sliced out of three: folding the batch into rows must step by the batch stride */
        int64_t s_three[3] = {4, 3, 13};
        lt_tensor *rows1;
        CHECK_OK(lt_slice(tt_rand(s_three, 3, dtype, -1, 1), 1, 1, 2, 1, &rows1));
        CHECK(check_product("one sliced row per batch, shared b", rows1, kn, false, false));
    }
}

/* Enough small products to take the OpenMP batch loop, and a product large enough for BLAS's own threads. */
static void test_many_and_large(void) {
    tt_seed(4);
    int64_t s_small[3] = {96, 9, 11}, s_small_b[3] = {96, 11, 8};
    lt_tensor *a = tt_rand(s_small, 3, LT_F32, -1, 1), *b = tt_rand(s_small_b, 3, LT_F32, -1, 1);
    CHECK(check_product("96 small batches", a, b, false, false));
    CHECK(check_product("96 small batches, f64", tt_rand(s_small, 3, LT_F64, -1, 1),
                        tt_rand(s_small_b, 3, LT_F64, -1, 1), false, false));
    int64_t s_x[3] = {4, 64, 96}, s_w[2] = {128, 96};
    lt_tensor *x = tt_rand(s_x, 3, LT_F32, -1, 1), *w = tt_rand(s_w, 2, LT_F32, -1, 1);
    CHECK(check_product("linear layer x @ w^T", x, w, false, true));
    int64_t s_big[2] = {257, 301}, s_big_b[2] = {301, 263};
    CHECK(check_product("257x301x263", tt_rand(s_big, 2, LT_F32, -1, 1), tt_rand(s_big_b, 2, LT_F32, -1, 1), false,
                        false));
}

static void test_empty_dims(void) {
    tt_seed(5);
    /* K == 0: every output element is an empty sum, 0 (the allocator poisons outputs with NaN) */
    int64_t s_a[3] = {2, 3, 0}, s_b[2] = {0, 4};
    lt_tensor *a = tt_rand(s_a, 3, LT_F32, -1, 1), *b = tt_rand(s_b, 2, LT_F32, -1, 1), *y;
    CHECK_OK(lt_matmul(a, b, false, false, &y));
    CHECK(lt_tensor_numel(y) == 24);
    double zeros[24] = {0};
    CHECK(tt_tensor_close("K == 0", y, zeros, 0, 0));
    /* M == 0 and an empty batch */
    int64_t s_m0[2] = {0, 5}, s_b5[2] = {5, 3}, s_e[3] = {0, 2, 5};
    CHECK_OK(lt_matmul(tt_rand(s_m0, 2, LT_F64, -1, 1), tt_rand(s_b5, 2, LT_F64, -1, 1), false, false, &y));
    CHECK(lt_tensor_dim(y, 0) == 0 && lt_tensor_dim(y, 1) == 3);
    CHECK_OK(lt_matmul(tt_rand(s_e, 3, LT_F64, -1, 1), tt_rand(s_b5, 2, LT_F64, -1, 1), false, false, &y));
    CHECK(lt_tensor_ndim(y) == 3 && lt_tensor_numel(y) == 0);
}

/* ---- Backward ---- */

typedef struct mm_ctx {
    bool ta, tb;
    bool transpose_a_view; /* feed a through lt_transpose first, so both passes read a transposed view */
} mm_ctx;

static lt_status mm_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    const mm_ctx *c = ctx;
    lt_tensor *a = in[0];
    if (c->transpose_a_view) {
        lt_status st = lt_transpose(in[0], -1, -2, &a);
        if (st != LT_OK) return st;
    }
    return lt_matmul(a, in[1], c->ta, c->tb, out);
}

static void test_backward(void) {
    static const mm_case cases[] = {
        {{3, 4}, {4, 5}, 2, 2},    {{2, 1, 3, 4}, {5, 4, 6}, 4, 3},
        {{2, 3, 4}, {4, 5}, 3, 2}, /* shared b: the gradient of b is one product over the flattened batch */
        {{3, 4}, {2, 4, 5}, 2, 3}, {{2, 3, 4}, {1, 1, 4, 5}, 3, 4},
        {{1, 1}, {1, 1}, 2, 2},
    };
    tt_seed(6);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int flags = 0; flags < 4; flags++) {
            mm_ctx ctx = {flags & 1, flags & 2, false};
            const mm_case *mc = &cases[c];
            int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
            stored(sa, mc->na - 2, mc->sa, mc->sa[mc->na - 2], mc->sa[mc->na - 1], ctx.ta);
            stored(sb, mc->nb - 2, mc->sb, mc->sb[mc->nb - 2], mc->sb[mc->nb - 1], ctx.tb);
            lt_tensor *in[2] = {tt_leaf(sa, mc->na, -1, 1), tt_leaf(sb, mc->nb, -1, 1)};
            char what[64];
            snprintf(what, sizeof what, "matmul grad case %zu ta=%d tb=%d", c, ctx.ta, ctx.tb);
            CHECK(tt_gradcheck(what, mm_fn, &ctx, in, 2));
        }
    /* a transposed view as the operand, and only one input requiring grad */
    int64_t s_km[2] = {5, 3}, s_kn[2] = {5, 4};
    mm_ctx tv = {false, false, true};
    lt_tensor *in[2] = {tt_leaf(s_km, 2, -1, 1), tt_leaf(s_kn, 2, -1, 1)};
    CHECK(tt_gradcheck("matmul grad through a transposed view", mm_fn, &tv, in, 2));
    lt_tensor *fixed_b[2] = {tt_leaf(s_km, 2, -1, 1), tt_rand(s_kn, 2, LT_F64, -1, 1)};
    CHECK(tt_gradcheck("matmul grad of a only", mm_fn, &tv, fixed_b, 2));
    lt_tensor *fixed_a[2] = {tt_rand(s_km, 2, LT_F64, -1, 1), tt_leaf(s_kn, 2, -1, 1)};
    CHECK(tt_gradcheck("matmul grad of b only", mm_fn, &tv, fixed_a, 2));
}

/* lt_backward through a matmul in f32 gives the same gradient as the reference products. */
static void test_backward_values_f32(void) {
    tt_seed(7);
    int64_t s_a[3] = {2, 3, 4}, s_b[2] = {4, 5};
    lt_tensor *a = tt_rand(s_a, 3, LT_F32, -1, 1), *b = tt_rand(s_b, 2, LT_F32, -1, 1), *y, *sum, *ga, *gb;
    CHECK_OK(lt_tensor_set_requires_grad(a, true));
    CHECK_OK(lt_tensor_set_requires_grad(b, true));
    CHECK_OK(lt_matmul(a, b, false, false, &y));
    CHECK_OK(lt_sum(y, NULL, 0, false, &sum));
    CHECK_OK(lt_backward(sum));
    CHECK_OK(lt_tensor_grad(a, &ga));
    CHECK_OK(lt_tensor_grad(b, &gb));
    /* d sum(a @ b) / d a[.., i, p] = sum_j b[p, j]; / d b[p, j] = sum over batches and rows of a[.., i, p] */
    double *av = tt_values(a), *bv = tt_values(b), ra[24], rb[20];
    for (int i = 0; i < 24; i++) {
        int p = i % 4;
        ra[i] = 0;
        for (int j = 0; j < 5; j++) ra[i] += bv[p * 5 + j];
    }
    for (int i = 0; i < 20; i++) {
        int p = i / 5;
        rb[i] = 0;
        for (int r = 0; r < 6; r++) rb[i] += av[r * 4 + p];
    }
    CHECK(tt_tensor_close("f32 grad a", ga, ra, 1e-5, 1e-5));
    CHECK(tt_tensor_close("f32 grad b", gb, rb, 1e-5, 1e-5));
    free(av);
    free(bv);
}

/* ---- Errors ---- */

static void test_errors(void) {
    tt_seed(8);
    int64_t s43[2] = {4, 3}, s52[2] = {5, 2}, s3[1] = {3}, s32[2] = {3, 2}, s234[3] = {2, 3, 4}, s343[3] = {3, 4, 3};
    lt_tensor *a = tt_rand(s43, 2, LT_F32, -1, 1), *b = tt_rand(s52, 2, LT_F32, -1, 1), *y = (lt_tensor *)1;
    lt_tensor *v = tt_rand(s3, 1, LT_F32, -1, 1), *ok_b = tt_rand(s32, 2, LT_F32, -1, 1);
    CHECK_ERR(lt_matmul(a, ok_b, false, false, NULL), LT_ERR_ARG, "lt_matmul");
    CHECK_ERR(lt_matmul(NULL, ok_b, false, false, &y), LT_ERR_ARG, "lt_matmul");
    CHECK(y == NULL);
    CHECK_ERR(lt_matmul(a, NULL, false, false, &y), LT_ERR_ARG, "lt_matmul");
    CHECK_ERR(lt_matmul(a, b, false, false, &y), LT_ERR_SHAPE, "lt_matmul");
    CHECK(strcmp(lt_last_error(), "lt_matmul: inner dims differ (a is 4x3, b is 5x2)") == 0);
    CHECK_ERR(lt_matmul(a, ok_b, true, false, &y), LT_ERR_SHAPE, "lt_matmul");
    CHECK_ERR(lt_matmul(v, ok_b, false, false, &y), LT_ERR_SHAPE, "lt_matmul");
    CHECK_ERR(lt_matmul(ok_b, v, false, false, &y), LT_ERR_SHAPE, "lt_matmul");
    CHECK_ERR(lt_matmul(tt_rand(s234, 3, LT_F32, -1, 1), tt_rand(s343, 3, LT_F32, -1, 1), false, false, &y),
              LT_ERR_SHAPE, "lt_matmul");
    CHECK_ERR(lt_matmul(a, tt_rand(s32, 2, LT_F64, -1, 1), false, false, &y), LT_ERR_DTYPE, "lt_matmul");
    CHECK_ERR(lt_matmul(tt_randint(s43, 2, LT_I32, 5), ok_b, false, false, &y), LT_ERR_DTYPE, "lt_matmul");
    CHECK_ERR(lt_matmul(a, tt_randint(s32, 2, LT_I64, 5), false, false, &y), LT_ERR_DTYPE, "lt_matmul");
    CHECK(y == NULL);
}

int main(void) {
    RUN(test_sizes_and_transposes);
    RUN(test_broadcast_batches);
    RUN(test_views);
    RUN(test_many_and_large);
    RUN(test_empty_dims);
    RUN(test_backward);
    RUN(test_backward_values_f32);
    RUN(test_errors);
    return tt_finish();
}
