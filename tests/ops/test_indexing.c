/* Tests of the indexing ops (embedding, where, masked_fill, cat, split): forward against naive references written
 * here (broadcast, strided and transposed inputs, f32 and f64, i32 and i64 indices), backward against finite
 * differences, determinism of the embedding scatter-add, and every public function's error paths. */
#include "test.h"

/* Row-major index into an input of shape `in` (nin dims) broadcast to `out`, for output position `flat`. */
static int64_t bcast_index(const int64_t *out, int nout, const int64_t *in, int nin, int64_t flat) {
    int64_t idx = 0, w = 1;
    for (int d = nout - 1; d >= 0; d--) {
        int64_t i = flat % out[d];
        flat /= out[d];
        int k = d - (nout - nin);
        if (k < 0) continue;
        idx += (in[k] == 1 ? 0 : i) * w;
        w *= in[k];
    }
    return idx;
}

static lt_tensor *from_i64(const int64_t *v, const int64_t *shape, int ndim, lt_dtype dtype) {
    lt_tensor *t = NULL, *c = NULL;
    if (lt_tensor_from_host(v, shape, ndim, LT_I64, LT_DEVICE_CPU, &t) != LT_OK ||
        lt_tensor_to(t, dtype, LT_DEVICE_CPU, &c) != LT_OK) {
        fprintf(stderr, "from_i64: %s\n", lt_last_error());
        abort();
    }
    return c;
}

/* ---- embedding ---- */

static bool check_embedding(const char *what, const lt_tensor *w, const lt_tensor *idx) {
    lt_tensor *y;
    if (lt_embedding(w, idx, &y) != LT_OK) {
        fprintf(stderr, "%s: %s\n", what, lt_last_error());
        return false;
    }
    int64_t m = lt_tensor_numel(idx), c = lt_tensor_dim(w, 1);
    bool ok = lt_tensor_ndim(y) == lt_tensor_ndim(idx) + 1 && lt_tensor_dim(y, -1) == c;
    for (int d = 0; ok && d < lt_tensor_ndim(idx); d++) ok = lt_tensor_dim(y, d) == lt_tensor_dim(idx, d);
    double *wv = tt_values(w), *iv = tt_values(idx), *ref = malloc(sizeof(double) * (size_t)(m * c + 1));
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < c; j++) ref[i * c + j] = wv[(int64_t)iv[i] * c + j];
    ok = ok && tt_tensor_close(what, y, ref, 0, 0);
    free(wv);
    free(iv);
    free(ref);
    return ok;
}

static void test_embedding_forward(void) {
    tt_seed(11);
    int64_t s_w[2] = {11, 7}, s_i[2] = {3, 5}, s_i3[3] = {2, 1, 4}, s_t[2] = {5, 3};
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        lt_tensor *w = tt_rand(s_w, 2, dtype, -1, 1);
        CHECK(check_embedding("i32 [3,5]", w, tt_randint(s_i, 2, LT_I32, 11)));
        CHECK(check_embedding("i64 [2,1,4]", w, tt_randint(s_i3, 3, LT_I64, 11)));
        CHECK(check_embedding("strided weight", tt_strided(w), tt_randint(s_i, 2, LT_I64, 11)));
        lt_tensor *it;
        CHECK_OK(lt_transpose(tt_randint(s_t, 2, LT_I32, 11), 0, 1, &it));
        CHECK(check_embedding("transposed idx", w, it));
        int64_t scalar_idx = 10;
        CHECK(check_embedding("0-dim idx", w, from_i64(&scalar_idx, NULL, 0, LT_I64)));
        int64_t s_empty[1] = {0};
        CHECK(check_embedding("empty idx", w, tt_randint(s_empty, 1, LT_I32, 11)));
    }
}

typedef struct emb_ctx {
    const lt_tensor *idx;
} emb_ctx;

static lt_status emb_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_embedding(in[0], ((emb_ctx *)ctx)->idx, out);
}

static void test_embedding_backward(void) {
    tt_seed(12);
    int64_t s_w[2] = {6, 5}, s_i[2] = {4, 3};
    int64_t repeated[12] = {0, 3, 3, 5, 0, 0, 2, 3, 5, 1, 3, 0}; /* 4 never appears: its gradient is 0 */
    emb_ctx ctx = {from_i64(repeated, s_i, 2, LT_I64)};
    lt_tensor *in[1] = {tt_leaf(s_w, 2, -1, 1)};
    CHECK(tt_gradcheck("embedding grad, repeated indices", emb_fn, &ctx, in, 1));
    ctx.idx = from_i64(repeated, s_i, 2, LT_I32);
    CHECK(tt_gradcheck("embedding grad, i32", emb_fn, &ctx, in, 1));
}

/* Wide enough rows for several column blocks on several threads: the scatter-add matches a serial sum in double,
 * and two runs agree bit for bit. */
static void test_embedding_backward_large(void) {
    tt_seed(13);
    int64_t s_w[2] = {50, 200}, s_i[1] = {300}, s_y[2] = {300, 200};
    lt_tensor *idx = tt_randint(s_i, 1, LT_I32, 50), *gy = tt_rand(s_y, 2, LT_F32, -1, 1);
    double *iv = tt_values(idx), *gv = tt_values(gy), *ref = calloc(50 * 200, sizeof(double));
    for (int i = 0; i < 300; i++)
        for (int c = 0; c < 200; c++) ref[(int64_t)iv[i] * 200 + c] += gv[i * 200 + c];
    float first[50 * 200], second[50 * 200];
    for (int run = 0; run < 2; run++) {
        lt_tensor *w = tt_rand(s_w, 2, LT_F32, -1, 1), *y, *g;
        CHECK_OK(lt_tensor_set_requires_grad(w, true));
        CHECK_OK(lt_embedding(w, idx, &y));
        CHECK_OK(lt_backward_grad(y, gy));
        CHECK_OK(lt_tensor_grad(w, &g));
        CHECK(tt_tensor_close("embedding scatter-add", g, ref, 1e-5, 1e-5));
        CHECK_OK(lt_tensor_to_host(g, run ? second : first, sizeof first));
    }
    CHECK(memcmp(first, second, sizeof first) == 0);
    free(iv);
    free(gv);
    free(ref);
}

static void test_embedding_errors(void) {
    tt_seed(14);
    int64_t s_w[2] = {11, 4}, s_i[2] = {2, 3}, s_v[1] = {11};
    int64_t bad_hi[6] = {0, 1, 2, 3, 4, 11}, bad_lo[6] = {-1, 0, 0, 0, 0, 0};
    lt_tensor *w = tt_rand(s_w, 2, LT_F32, -1, 1), *idx = tt_randint(s_i, 2, LT_I64, 11), *y = (lt_tensor *)1;
    CHECK_ERR(lt_embedding(w, idx, NULL), LT_ERR_ARG, "lt_embedding");
    CHECK_ERR(lt_embedding(NULL, idx, &y), LT_ERR_ARG, "lt_embedding");
    CHECK(y == NULL);
    CHECK_ERR(lt_embedding(w, NULL, &y), LT_ERR_ARG, "lt_embedding");
    CHECK_ERR(lt_embedding(tt_randint(s_w, 2, LT_I32, 3), idx, &y), LT_ERR_DTYPE, "lt_embedding");
    CHECK_ERR(lt_embedding(w, tt_rand(s_i, 2, LT_F32, 0, 5), &y), LT_ERR_DTYPE, "lt_embedding");
    CHECK_ERR(lt_embedding(w, tt_randint(s_i, 2, LT_U8, 5), &y), LT_ERR_DTYPE, "lt_embedding");
    CHECK_ERR(lt_embedding(tt_rand(s_v, 1, LT_F32, -1, 1), idx, &y), LT_ERR_SHAPE, "lt_embedding");
    CHECK_ERR(lt_embedding(w, from_i64(bad_hi, s_i, 2, LT_I64), &y), LT_ERR_RANGE, "lt_embedding");
    CHECK(strstr(lt_last_error(), "idx[1, 2] is 11") != NULL);
    CHECK_ERR(lt_embedding(w, from_i64(bad_lo, s_i, 2, LT_I32), &y), LT_ERR_RANGE, "lt_embedding");
    CHECK(strstr(lt_last_error(), "idx[0, 0] is -1") != NULL);
    CHECK(y == NULL);
}

/* ---- where and masked_fill ---- */

static bool check_where(const char *what, const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b) {
    lt_tensor *y;
    if (lt_where(cond, a, b, &y) != LT_OK) {
        fprintf(stderr, "%s: %s\n", what, lt_last_error());
        return false;
    }
    int64_t sy[LT_MAX_DIMS], sc[LT_MAX_DIMS], sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
    lt_tensor_shape(y, sy);
    lt_tensor_shape(cond, sc);
    lt_tensor_shape(a, sa);
    lt_tensor_shape(b, sb);
    int ny = lt_tensor_ndim(y), nc = lt_tensor_ndim(cond), na = lt_tensor_ndim(a), nb = lt_tensor_ndim(b);
    double *cv = tt_values(cond), *av = tt_values(a), *bv = tt_values(b);
    int64_t n = lt_tensor_numel(y);
    double *ref = malloc(sizeof(double) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++)
        ref[i] = cv[bcast_index(sy, ny, sc, nc, i)] != 0 ? av[bcast_index(sy, ny, sa, na, i)]
                                                         : bv[bcast_index(sy, ny, sb, nb, i)];
    bool ok = tt_tensor_close(what, y, ref, 0, 0);
    free(cv);
    free(av);
    free(bv);
    free(ref);
    return ok;
}

static void test_where_forward(void) {
    tt_seed(21);
    int64_t s_c[3] = {3, 1, 5}, s_a[2] = {4, 5}, s_b[3] = {3, 4, 1}, s_full[3] = {3, 4, 5};
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        lt_tensor *cond = tt_randint(s_c, 3, LT_U8, 3); /* 0, 1 and 2: any non-zero is true */
        lt_tensor *a = tt_rand(s_a, 2, dtype, -1, 1), *b = tt_rand(s_b, 3, dtype, -1, 1);
        CHECK(check_where("broadcast all three", cond, a, b));
        CHECK(check_where("strided a", cond, tt_strided(a), b));
        lt_tensor *bt;
        lt_tensor *full_b = tt_rand(s_full, 3, dtype, -1, 1);
        CHECK_OK(lt_transpose(full_b, 0, 2, &bt)); /* [5,4,3] */
        int64_t s_c2[3] = {5, 4, 3};
        CHECK(check_where("transposed b", tt_randint(s_c2, 3, LT_U8, 2), tt_rand(s_c2, 3, dtype, -1, 1), bt));
        lt_tensor *scalar;
        CHECK_OK(lt_tensor_full(NULL, 0, 2.5, dtype, LT_DEVICE_CPU, &scalar));
        CHECK(check_where("0-dim a", cond, scalar, b));
        int64_t s_big[2] = {300, 257}, s_row[1] = {257};
        CHECK(check_where("large, row mask", tt_randint(s_row, 1, LT_U8, 2), tt_rand(s_big, 2, dtype, -1, 1),
                          tt_rand(s_big, 2, dtype, -1, 1)));
    }
}

typedef struct mask_ctx {
    const lt_tensor *mask;
} mask_ctx;

static lt_status where_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_where(((mask_ctx *)ctx)->mask, in[0], in[1], out);
}

static lt_status masked_fill_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_masked_fill(in[0], ((mask_ctx *)ctx)->mask, 0.75, out);
}

static void test_where_backward(void) {
    tt_seed(22);
    int64_t s_c[3] = {3, 1, 5}, s_a[2] = {4, 5}, s_b[3] = {3, 4, 1}, s_m[2] = {4, 1}, s_x[3] = {3, 4, 5};
    mask_ctx ctx = {tt_randint(s_c, 3, LT_U8, 2)};
    lt_tensor *in[2] = {tt_leaf(s_a, 2, -1, 1), tt_leaf(s_b, 3, -1, 1)};
    CHECK(tt_gradcheck("where grad, broadcast a and b", where_fn, &ctx, in, 2));
    lt_tensor *only_b[2] = {tt_rand(s_a, 2, LT_F64, -1, 1), tt_leaf(s_b, 3, -1, 1)};
    CHECK(tt_gradcheck("where grad of b only", where_fn, &ctx, only_b, 2));
    mask_ctx mctx = {tt_randint(s_m, 2, LT_U8, 2)};
    lt_tensor *x[1] = {tt_leaf(s_x, 3, -1, 1)};
    CHECK(tt_gradcheck("masked_fill grad", masked_fill_fn, &mctx, x, 1));
}

static void test_masked_fill_forward(void) {
    tt_seed(23);
    int64_t s_a[3] = {3, 4, 5}, s_m[2] = {4, 1}, s_m3[3] = {3, 4, 5};
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        lt_tensor *a = tt_rand(s_a, 3, dtype, -1, 1), *y, *m;
        for (int v = 0; v < 2; v++) {
            m = v ? tt_randint(s_m3, 3, LT_U8, 2) : tt_randint(s_m, 2, LT_U8, 2);
            CHECK_OK(lt_masked_fill(v ? tt_strided(a) : a, m, -INFINITY, &y));
            int64_t sm[LT_MAX_DIMS];
            lt_tensor_shape(m, sm);
            double *av = tt_values(a), *mv = tt_values(m), ref[60];
            for (int i = 0; i < 60; i++)
                ref[i] = mv[bcast_index(s_a, 3, sm, lt_tensor_ndim(m), i)] != 0 ? -INFINITY : av[i];
            CHECK(lt_tensor_ndim(y) == 3 && lt_tensor_numel(y) == 60);
            CHECK(tt_tensor_close("masked_fill", y, ref, 0, 0));
            free(av);
            free(mv);
        }
    }
}

static void test_where_errors(void) {
    tt_seed(24);
    int64_t s[2] = {3, 4}, s_bad[2] = {2, 4}, s_big[3] = {2, 3, 4};
    lt_tensor *c = tt_randint(s, 2, LT_U8, 2), *a = tt_rand(s, 2, LT_F32, -1, 1), *b = tt_rand(s, 2, LT_F32, -1, 1);
    lt_tensor *y = (lt_tensor *)1;
    CHECK_ERR(lt_where(c, a, b, NULL), LT_ERR_ARG, "lt_where");
    CHECK_ERR(lt_where(NULL, a, b, &y), LT_ERR_ARG, "lt_where");
    CHECK(y == NULL);
    CHECK_ERR(lt_where(c, NULL, b, &y), LT_ERR_ARG, "lt_where");
    CHECK_ERR(lt_where(c, a, NULL, &y), LT_ERR_ARG, "lt_where");
    CHECK_ERR(lt_where(tt_randint(s, 2, LT_I32, 2), a, b, &y), LT_ERR_DTYPE, "lt_where");
    CHECK_ERR(lt_where(c, tt_randint(s, 2, LT_I32, 2), b, &y), LT_ERR_DTYPE, "lt_where");
    CHECK_ERR(lt_where(c, a, tt_rand(s, 2, LT_F64, -1, 1), &y), LT_ERR_DTYPE, "lt_where");
    CHECK_ERR(lt_where(c, a, tt_rand(s_bad, 2, LT_F32, -1, 1), &y), LT_ERR_SHAPE, "lt_where");
    CHECK_ERR(lt_where(tt_randint(s_bad, 2, LT_U8, 2), a, b, &y), LT_ERR_SHAPE, "lt_where");
    CHECK_ERR(lt_masked_fill(a, c, 1.0, NULL), LT_ERR_ARG, "lt_masked_fill");
    CHECK_ERR(lt_masked_fill(NULL, c, 1.0, &y), LT_ERR_ARG, "lt_masked_fill");
    CHECK_ERR(lt_masked_fill(a, NULL, 1.0, &y), LT_ERR_ARG, "lt_masked_fill");
    CHECK_ERR(lt_masked_fill(a, tt_rand(s, 2, LT_F32, 0, 1), 1.0, &y), LT_ERR_DTYPE, "lt_masked_fill");
    CHECK_ERR(lt_masked_fill(tt_randint(s, 2, LT_I64, 3), c, 1.0, &y), LT_ERR_DTYPE, "lt_masked_fill");
    CHECK_ERR(lt_masked_fill(a, tt_randint(s_bad, 2, LT_U8, 2), 1.0, &y), LT_ERR_SHAPE, "lt_masked_fill");
    CHECK_ERR(lt_masked_fill(a, tt_randint(s_big, 3, LT_U8, 2), 1.0, &y), LT_ERR_SHAPE, "lt_masked_fill");
    CHECK(y == NULL);
}

/* ---- cat and split ---- */

/* Checks y = cat(ts, dim) element by element: output position -> (input, position inside it). */
static bool check_cat(const char *what, const lt_tensor *const *ts, int n, int dim) {
    lt_tensor *y;
    if (lt_cat(ts, n, dim, &y) != LT_OK) {
        fprintf(stderr, "%s: %s\n", what, lt_last_error());
        return false;
    }
    int nd = lt_tensor_ndim(ts[0]), d = dim < 0 ? dim + nd : dim;
    int64_t sy[LT_MAX_DIMS];
    lt_tensor_shape(y, sy);
    int64_t total = 0, inner = 1, outer = 1;
    for (int i = 0; i < n; i++) total += lt_tensor_dim(ts[i], d);
    for (int k = d + 1; k < nd; k++) inner *= sy[k];
    for (int k = 0; k < d; k++) outer *= sy[k];
    bool ok = sy[d] == total && lt_tensor_dtype(y) == lt_tensor_dtype(ts[0]);
    double *ref = malloc(sizeof(double) * (size_t)(outer * total * inner + 1));
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        double *v = tt_values(ts[i]);
        int64_t len = lt_tensor_dim(ts[i], d);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < len; j++)
                for (int64_t k = 0; k < inner; k++)
                    ref[(o * total + off + j) * inner + k] = v[(o * len + j) * inner + k];
        off += len;
        free(v);
    }
    ok = ok && tt_tensor_close(what, y, ref, 0, 0);
    free(ref);
    return ok;
}

static void test_cat_forward(void) {
    tt_seed(31);
    int64_t s0[3] = {2, 3, 4}, s1[3] = {2, 1, 4}, s2[3] = {2, 5, 4}, se[3] = {2, 0, 4};
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        lt_tensor *a = tt_rand(s0, 3, dtype, -1, 1), *b = tt_rand(s1, 3, dtype, -1, 1),
                  *c = tt_rand(s2, 3, dtype, -1, 1);
        const lt_tensor *mid[4] = {a, tt_strided(b), tt_rand(se, 3, dtype, -1, 1), c};
        CHECK(check_cat("middle dim, strided and empty inputs", mid, 4, 1));
        const lt_tensor *last[2] = {a, tt_strided(a)};
        CHECK(check_cat("last dim (-1)", last, 2, -1));
        const lt_tensor *first[3] = {a, a, tt_strided(a)};
        CHECK(check_cat("first dim", first, 3, 0));
        const lt_tensor *single[1] = {b};
        CHECK(check_cat("one tensor", single, 1, 2));
    }
    const lt_tensor *ints[2] = {tt_randint(s0, 3, LT_I32, 100), tt_randint(s1, 3, LT_I32, 100)};
    CHECK(check_cat("i32", ints, 2, 1));
}

static lt_status cat_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_cat((const lt_tensor *const *)in, 3, *(int *)ctx, out);
}

static void test_cat_backward(void) {
    tt_seed(32);
    int64_t s0[3] = {2, 3, 4}, s1[3] = {2, 1, 4}, s2[3] = {2, 2, 4};
    int dim = 1;
    lt_tensor *in[3] = {tt_leaf(s0, 3, -1, 1), tt_leaf(s1, 3, -1, 1), tt_leaf(s2, 3, -1, 1)};
    CHECK(tt_gradcheck("cat grad, middle dim", cat_fn, &dim, in, 3));
    lt_tensor *some[3] = {tt_leaf(s0, 3, -1, 1), tt_rand(s1, 3, LT_F64, -1, 1), tt_leaf(s2, 3, -1, 1)};
    CHECK(tt_gradcheck("cat grad, middle input constant", cat_fn, &dim, some, 3));
    int64_t t0[2] = {3, 2}, t1[2] = {3, 5}, t2[2] = {3, 1};
    int last = -1;
    lt_tensor *in2[3] = {tt_leaf(t0, 2, -1, 1), tt_leaf(t1, 2, -1, 1), tt_leaf(t2, 2, -1, 1)};
    CHECK(tt_gradcheck("cat grad, last dim", cat_fn, &last, in2, 3));
}

static void test_cat_errors(void) {
    tt_seed(33);
    int64_t s0[2] = {2, 3}, s1[2] = {4, 3}, s3[3] = {2, 3, 1};
    lt_tensor *a = tt_rand(s0, 2, LT_F32, -1, 1), *y = (lt_tensor *)1, *scalar;
    const lt_tensor *ok[2] = {a, a};
    CHECK_ERR(lt_cat(ok, 2, 0, NULL), LT_ERR_ARG, "lt_cat");
    CHECK_ERR(lt_cat(NULL, 2, 0, &y), LT_ERR_ARG, "lt_cat");
    CHECK(y == NULL);
    CHECK_ERR(lt_cat(ok, 0, 0, &y), LT_ERR_ARG, "lt_cat");
    const lt_tensor *with_null[2] = {a, NULL};
    CHECK_ERR(lt_cat(with_null, 2, 0, &y), LT_ERR_ARG, "lt_cat");
    const lt_tensor *mixed[2] = {a, tt_rand(s0, 2, LT_F64, -1, 1)};
    CHECK_ERR(lt_cat(mixed, 2, 0, &y), LT_ERR_DTYPE, "lt_cat");
    const lt_tensor *other_dim[2] = {a, tt_rand(s1, 2, LT_F32, -1, 1)};
    CHECK_ERR(lt_cat(other_dim, 2, 1, &y), LT_ERR_SHAPE, "lt_cat");
    CHECK(check_cat("the same tensors along dim 0 fit", other_dim, 2, 0));
    const lt_tensor *other_ndim[2] = {a, tt_rand(s3, 3, LT_F32, -1, 1)};
    CHECK_ERR(lt_cat(other_ndim, 2, 0, &y), LT_ERR_SHAPE, "lt_cat");
    CHECK_ERR(lt_cat(ok, 2, 2, &y), LT_ERR_RANGE, "lt_cat");
    CHECK_ERR(lt_cat(ok, 2, -3, &y), LT_ERR_RANGE, "lt_cat");
    CHECK_OK(lt_tensor_full(NULL, 0, 1.0, LT_F32, LT_DEVICE_CPU, &scalar));
    const lt_tensor *scalars[2] = {scalar, scalar};
    CHECK_ERR(lt_cat(scalars, 2, 0, &y), LT_ERR_SHAPE, "lt_cat");
    CHECK(y == NULL);
}

static void test_split_forward(void) {
    tt_seed(41);
    int64_t s[2] = {3, 10}, sizes[4] = {2, 0, 5, 3};
    lt_tensor *a = tt_rand(s, 2, LT_F64, -1, 1), *outs[4];
    CHECK_OK(lt_split(a, sizes, 4, -1, outs));
    double *av = tt_values(a);
    int64_t off = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(lt_tensor_ndim(outs[i]) == 2 && lt_tensor_dim(outs[i], 0) == 3 && lt_tensor_dim(outs[i], 1) == sizes[i]);
        double ref[30];
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < sizes[i]; c++) ref[r * sizes[i] + c] = av[r * 10 + off + c];
        CHECK(tt_tensor_close("split piece", outs[i], ref, 0, 0));
        if (sizes[i] > 0) /* a view: it starts inside a's data */
            CHECK((char *)lt_tensor_data(outs[i]) == (char *)lt_tensor_data(a) + off * (int64_t)sizeof(double));
        off += sizes[i];
    }
    free(av);
    int64_t rows[2] = {1, 2};
    lt_tensor *pieces[2];
    CHECK_OK(lt_split(tt_strided(a), rows, 2, 0, pieces));
    CHECK(lt_tensor_dim(pieces[0], 0) == 1 && lt_tensor_dim(pieces[1], 0) == 2);
}

/* Only pieces 0 and 2 reach the output, through their product: piece 1's rows get a zero gradient. */
static lt_status split_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    (void)ctx;
    int64_t sizes[3] = {2, 3, 2};
    lt_tensor *p[3];
    lt_status st = lt_split(in[0], sizes, 3, 0, p);
    return st != LT_OK ? st : lt_mul(p[0], p[2], out);
}

static void test_split_backward(void) {
    tt_seed(42);
    int64_t s[2] = {7, 4};
    lt_tensor *in[1] = {tt_leaf(s, 2, -1, 1)};
    CHECK(tt_gradcheck("split grad through a subset of pieces", split_fn, NULL, in, 1));
}

static void test_split_errors(void) {
    tt_seed(43);
    int64_t s[2] = {3, 10}, good[2] = {4, 6}, short_sum[2] = {4, 5}, negative[3] = {12, -2, 0};
    int64_t huge[3] = {INT64_MAX, INT64_MAX, 4};
    lt_tensor *a = tt_rand(s, 2, LT_F32, -1, 1), *outs[3];
    CHECK_ERR(lt_split(a, good, 2, 1, NULL), LT_ERR_ARG, "lt_split");
    outs[0] = outs[1] = (lt_tensor *)1;
    CHECK_ERR(lt_split(NULL, good, 2, 1, outs), LT_ERR_ARG, "lt_split");
    CHECK(outs[0] == NULL && outs[1] == NULL);
    CHECK_ERR(lt_split(a, NULL, 2, 1, outs), LT_ERR_ARG, "lt_split");
    CHECK_ERR(lt_split(a, good, 0, 1, outs), LT_ERR_ARG, "lt_split");
    outs[0] = outs[1] = (lt_tensor *)1;
    CHECK_ERR(lt_split(a, short_sum, 2, 1, outs), LT_ERR_SHAPE, "lt_split");
    CHECK(outs[0] == NULL && outs[1] == NULL);
    CHECK_ERR(lt_split(a, good, 2, 0, outs), LT_ERR_SHAPE, "lt_split");
    CHECK_ERR(lt_split(a, negative, 3, 1, outs), LT_ERR_ARG, "lt_split");
    CHECK_ERR(lt_split(a, huge, 3, 1, outs), LT_ERR_SHAPE, "lt_split");
    CHECK_ERR(lt_split(a, good, 2, 2, outs), LT_ERR_RANGE, "lt_split");
    CHECK(outs[0] == NULL && outs[1] == NULL);
}

int main(void) {
    RUN(test_embedding_forward);
    RUN(test_embedding_backward);
    RUN(test_embedding_backward_large);
    RUN(test_embedding_errors);
    RUN(test_where_forward);
    RUN(test_where_backward);
    RUN(test_masked_fill_forward);
    RUN(test_where_errors);
    RUN(test_cat_forward);
    RUN(test_cat_backward);
    RUN(test_cat_errors);
    RUN(test_split_forward);
    RUN(test_split_backward);
    RUN(test_split_errors);
    return tt_finish();
}
