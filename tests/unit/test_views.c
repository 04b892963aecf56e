/* Unit tests of the view functions of tensor.h (reshape, view, permute, transpose, slice, expand, contiguous, detach):
 * geometry (shape, strides, shared data), values against index arithmetic done here, and every error path. */
#include "test.h"

static bool same_dims(const lt_tensor *t, const int64_t *shape, const int64_t *strides, int ndim) {
    int64_t s[LT_MAX_DIMS], st[LT_MAX_DIMS];
    if (lt_tensor_ndim(t) != ndim || lt_tensor_shape(t, s) != LT_OK || lt_tensor_strides(t, st) != LT_OK) return false;
    for (int i = 0; i < ndim; i++)
        if (s[i] != shape[i] || (strides && st[i] != strides[i])) {
            fprintf(stderr, "dim %d: size %lld stride %lld, expected %lld %lld\n", i, (long long)s[i], (long long)st[i],
                    (long long)shape[i], strides ? (long long)strides[i] : -1LL);
            return false;
        }
    return true;
}

static char *elem(const lt_tensor *base, int64_t offset) {
    return (char *)lt_tensor_data(base) + offset * (int64_t)lt_dtype_size(lt_tensor_dtype(base));
}

static void test_reshape_view(void) {
    tt_seed(101);
    int64_t s234[3] = {2, 3, 4};
    lt_tensor *base = tt_rand(s234, 3, LT_F64, -5, 5);
    double *bv = tt_values(base);
    struct {
        int ndim;
        int64_t req[4], shape[4], strides[4];
    } cases[] = {
        {2, {4, 6}, {4, 6}, {6, 1}},
        {2, {-1, 4}, {6, 4}, {4, 1}},
        {2, {2, -1}, {2, 12}, {12, 1}},
        {1, {-1}, {24}, {1}},
        {4, {2, 3, 4, 1}, {2, 3, 4, 1}, {12, 4, 1, 1}},
        {3, {1, -1, 1}, {1, 24, 1}, {24, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_tensor *r = NULL, *v = NULL;
        CHECK_OK(lt_reshape(base, cases[c].req, cases[c].ndim, &r));
        CHECK_OK(lt_view(base, cases[c].req, cases[c].ndim, &v));
        CHECK(same_dims(r, cases[c].shape, cases[c].strides, cases[c].ndim));
        CHECK(same_dims(v, cases[c].shape, cases[c].strides, cases[c].ndim));
        CHECK(lt_tensor_data(r) == lt_tensor_data(base) && lt_tensor_data(v) == lt_tensor_data(base));
        CHECK(tt_tensor_close("reshape view", r, bv, 0, 0));
        CHECK(tt_tensor_close("view", v, bv, 0, 0));
    }
    /* 0-d from a single element and back */
    int64_t s111[3] = {1, 1, 1};
    lt_tensor *one = tt_rand(s111, 3, LT_F32, 1, 2), *sc = NULL, *back = NULL;
    CHECK_OK(lt_view(one, NULL, 0, &sc));
    CHECK(lt_tensor_ndim(sc) == 0 && lt_tensor_numel(sc) == 1 && lt_tensor_data(sc) == lt_tensor_data(one));
    int64_t s1[2] = {1, -1};
    CHECK_OK(lt_reshape(sc, s1, 2, &back));
    CHECK(same_dims(back, (int64_t[]){1, 1}, NULL, 2));
    /* a block of whole rows of a matrix is still viewable, at its offset */
    int64_t s46[2] = {4, 6}, s12 = 12;
    lt_tensor *m = tt_rand(s46, 2, LT_F64, 0, 1), *rows = NULL, *flat = NULL;
    double *mv = tt_values(m);
    CHECK_OK(lt_slice(m, 0, 1, 3, 1, &rows));
    CHECK_OK(lt_view(rows, &s12, 1, &flat));
    CHECK(lt_tensor_data(flat) == elem(m, 6));
    CHECK(tt_tensor_close("rows view", flat, mv + 6, 0, 0));
    /* zero elements */
    int64_t s03[2] = {0, 3}, req[2] = {3, -1};
    lt_tensor *z = NULL, *zr = NULL;
    CHECK_OK(lt_tensor_empty(s03, 2, LT_F32, LT_DEVICE_CPU, &z));
    CHECK_OK(lt_reshape(z, req, 2, &zr));
    CHECK(same_dims(zr, (int64_t[]){3, 0}, NULL, 2));
    free(bv);
    free(mv);
}

static void test_reshape_copy(void) {
    tt_seed(102);
    int64_t s34[2] = {3, 4};
    lt_tensor *base = tt_rand(s34, 2, LT_F64, -1, 1), *tr = NULL, *flat = NULL, *split = NULL;
    double *bv = tt_values(base), ref[24];
    CHECK_OK(lt_transpose(base, 0, 1, &tr)); /* [4, 3], strides {1, 4} */
    int64_t s12 = 12;
    CHECK_OK(lt_reshape(tr, &s12, 1, &flat));
    CHECK(lt_tensor_data(flat) != lt_tensor_data(base));
    CHECK(lt_tensor_is_contiguous(flat));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) ref[i * 3 + j] = bv[j * 4 + i];
    CHECK(tt_tensor_close("reshape of transpose", flat, ref, 0, 0));
    /* the copy is independent of the base */
    double minus = -9;
    lt_tensor *mt = NULL;
    CHECK_OK(lt_tensor_from_host(&minus, NULL, 0, LT_F64, LT_DEVICE_CPU, &mt));
    CHECK_OK(lt_tensor_copy(flat, mt));
    CHECK(tt_tensor_close("base after writing the copy", base, bv, 0, 0));
    /* splitting the transposed tensor's first dim is a view: [2, 2, 3] with strides {2, 1, 4} */
    int64_t s223[3] = {2, 2, 3};
    CHECK_OK(lt_view(tr, s223, 3, &split));
    CHECK(same_dims(split, s223, (int64_t[]){2, 1, 4}, 3));
    CHECK(lt_tensor_data(split) == lt_tensor_data(base));
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++) ref[a * 6 + b * 3 + c] = bv[c * 4 + a * 2 + b];
    CHECK(tt_tensor_close("view of transpose", split, ref, 0, 0));

    /* every other column of 6, [4, 3] with strides {6, 2}, is evenly spaced: a flat view with stride 2 */
    int64_t s46[2] = {4, 6};
    lt_tensor *m = tt_rand(s46, 2, LT_F64, -1, 1), *st = NULL, *mf = NULL, *ms = NULL;
    double *mv = tt_values(m);
    CHECK_OK(lt_slice(m, 1, 0, 6, 2, &st));
    CHECK_OK(lt_view(st, &s12, 1, &mf));
    CHECK(same_dims(mf, &s12, (int64_t[]){2}, 1));
    CHECK(lt_tensor_data(mf) == lt_tensor_data(m));
    for (int i = 0; i < 12; i++) ref[i] = mv[2 * i];
    CHECK(tt_tensor_close("view of stepped slice", mf, ref, 0, 0));
    /* columns 1 and 3 of 6, [4, 2] with strides {6, 2}, are not: flat needs a copy, [2, 2, 2] is a view */
    int64_t s8 = 8, s222[3] = {2, 2, 2};
    CHECK_OK(lt_slice(m, 1, 1, 5, 2, &st));
    CHECK_OK(lt_reshape(st, &s8, 1, &mf));
    CHECK(lt_tensor_data(mf) != elem(m, 1));
    CHECK(lt_tensor_is_contiguous(mf));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) ref[i * 2 + j] = mv[i * 6 + 1 + 2 * j];
    CHECK(tt_tensor_close("reshape of stepped slice", mf, ref, 0, 0));
    CHECK_OK(lt_reshape(st, s222, 3, &ms));
    CHECK(same_dims(ms, s222, (int64_t[]){12, 6, 2}, 3));
    CHECK(lt_tensor_data(ms) == elem(m, 1));
    CHECK(tt_tensor_close("view of stepped slice", ms, ref, 0, 0));

    /* an expanded [3, 4] with strides {1, 0}: flat is a copy of repeated values, [3, 2, 2] a view */
    int64_t s31[2] = {3, 1}, s322[3] = {3, 2, 2};
    lt_tensor *col = tt_rand(s31, 2, LT_F64, -1, 1), *ex = NULL, *ef = NULL, *es = NULL;
    double *cv = tt_values(col);
    CHECK_OK(lt_expand(col, s34, 2, &ex));
    CHECK_OK(lt_reshape(ex, &s12, 1, &ef));
    for (int i = 0; i < 12; i++) ref[i] = cv[i / 4];
    CHECK(tt_tensor_close("reshape of expand", ef, ref, 0, 0));
    CHECK(lt_tensor_data(ef) != lt_tensor_data(col));
    CHECK_OK(lt_reshape(ex, s322, 3, &es));
    CHECK(same_dims(es, s322, (int64_t[]){1, 0, 0}, 3));
    CHECK(lt_tensor_data(es) == lt_tensor_data(col));
    CHECK(tt_tensor_close("view of expand", es, ref, 0, 0));
    free(bv);
    free(mv);
    free(cv);
}

static void test_reshape_view_errors(void) {
    int64_t s34[2] = {3, 4}, s12 = 12, s5 = 5;
    lt_tensor *base = tt_rand(s34, 2, LT_F32, 0, 1), *tr = NULL, *out = NULL;
    CHECK_OK(lt_transpose(base, 0, 1, &tr));
    /* the strides of a transpose do not allow a flat view */
    CHECK_ERR_OUT(lt_view(tr, &s12, 1, &out), out, LT_ERR_SHAPE, "lt_view");
    const char *fns[2] = {"lt_reshape", "lt_view"};
    for (int k = 0; k < 2; k++) {
        lt_status (*f)(const lt_tensor *, const int64_t *, int, lt_tensor **) = k ? lt_view : lt_reshape;
        const char *fn = fns[k];
        int64_t two_infer[2] = {-1, -1}, neg[2] = {-2, -6}, bad_infer[2] = {-1, 5}, zero_infer[2] = {0, -1};
        int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 3, 4}, neg_ok[2] = {-3, -4};
        CHECK_ERR_OUT(f(base, &s5, 1, &out), out, LT_ERR_SHAPE, fn);
        CHECK_ERR_OUT(f(base, s34, 1, &out), out, LT_ERR_SHAPE, fn); /* [3] has 3 elements, not 12 */
        CHECK_ERR_OUT(f(base, bad_infer, 2, &out), out, LT_ERR_SHAPE, fn);
        CHECK_ERR_OUT(f(base, zero_infer, 2, &out), out, LT_ERR_SHAPE, fn);
        CHECK_ERR_OUT(f(base, two_infer, 2, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(f(base, neg, 2, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(f(base, neg_ok, 2, &out), out, LT_ERR_ARG, fn); /* -3 * -4 = 12 must not pass */
        CHECK_ERR_OUT(f(base, nine, 9, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(f(base, s34, -1, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(f(base, NULL, 2, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(f(NULL, s34, 2, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR(f(base, s34, 2, NULL), LT_ERR_ARG, fn);
    }
}

static void test_permute(void) {
    tt_seed(103);
    int64_t s234[3] = {2, 3, 4};
    lt_dtype dts[2] = {LT_F64, LT_U8};
    for (int k = 0; k < 2; k++) {
        lt_tensor *base = k ? tt_randint(s234, 3, LT_U8, 256) : tt_rand(s234, 3, LT_F64, -3, 3), *p = NULL;
        CHECK(lt_tensor_dtype(base) == dts[k]);
        double *bv = tt_values(base), ref[24];
        int perm[3] = {2, 0, 1};
        CHECK_OK(lt_permute(base, perm, &p));
        CHECK(same_dims(p, (int64_t[]){4, 2, 3}, (int64_t[]){1, 12, 4}, 3));
        CHECK(lt_tensor_data(p) == lt_tensor_data(base));
        CHECK(!lt_tensor_is_contiguous(p));
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 3; c++) ref[a * 6 + b * 3 + c] = bv[b * 12 + c * 4 + a];
        CHECK(tt_tensor_close("permute", p, ref, 0, 0));
        /* the inverse permutation restores the geometry */
        int inv[3] = {1, 2, 0};
        lt_tensor *q = NULL, *id = NULL;
        CHECK_OK(lt_permute(p, inv, &q));
        CHECK(same_dims(q, s234, (int64_t[]){12, 4, 1}, 3));
        CHECK(lt_tensor_is_contiguous(q));
        CHECK(tt_tensor_close("permute back", q, bv, 0, 0));
        int ident[3] = {0, 1, 2};
        CHECK_OK(lt_permute(base, ident, &id));
        CHECK(same_dims(id, s234, (int64_t[]){12, 4, 1}, 3));
        free(bv);
    }
    /* 0-d: the empty permutation, perm may be NULL */
    lt_tensor *s = NULL, *sp = NULL;
    CHECK_OK(lt_tensor_full(NULL, 0, 4.5, LT_F32, LT_DEVICE_CPU, &s));
    CHECK_OK(lt_permute(s, NULL, &sp));
    CHECK(lt_tensor_ndim(sp) == 0 && *(const float *)lt_tensor_data(sp) == 4.5f);
    /* errors */
    lt_tensor *base = tt_rand(s234, 3, LT_F32, 0, 1), *out = NULL;
    int dup[3] = {0, 0, 1}, big[3] = {0, 1, 3}, negp[3] = {-1, 0, 1}, ok[3] = {1, 0, 2};
    CHECK_ERR_OUT(lt_permute(base, dup, &out), out, LT_ERR_ARG, "lt_permute");
    CHECK_ERR_OUT(lt_permute(base, big, &out), out, LT_ERR_ARG, "lt_permute");
    CHECK_ERR_OUT(lt_permute(base, negp, &out), out, LT_ERR_ARG, "lt_permute");
    CHECK_ERR_OUT(lt_permute(base, NULL, &out), out, LT_ERR_ARG, "lt_permute");
    CHECK_ERR_OUT(lt_permute(NULL, ok, &out), out, LT_ERR_ARG, "lt_permute");
    CHECK_ERR(lt_permute(base, ok, NULL), LT_ERR_ARG, "lt_permute");
}

static void test_transpose(void) {
    tt_seed(104);
    int64_t s234[3] = {2, 3, 4};
    lt_tensor *base = tt_rand(s234, 3, LT_F64, -3, 3), *t = NULL, *tt = NULL, *same = NULL, *neg = NULL;
    double *bv = tt_values(base), ref[24];
    CHECK_OK(lt_transpose(base, 0, -1, &t));
    CHECK(same_dims(t, (int64_t[]){4, 3, 2}, (int64_t[]){1, 4, 12}, 3));
    CHECK(lt_tensor_data(t) == lt_tensor_data(base));
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 2; c++) ref[a * 6 + b * 2 + c] = bv[c * 12 + b * 4 + a];
    CHECK(tt_tensor_close("transpose", t, ref, 0, 0));
    CHECK_OK(lt_transpose(t, 2, 0, &tt));
    CHECK(same_dims(tt, s234, (int64_t[]){12, 4, 1}, 3));
    CHECK(tt_tensor_close("transpose twice", tt, bv, 0, 0));
    CHECK_OK(lt_transpose(base, 1, 1, &same));
    CHECK(same_dims(same, s234, (int64_t[]){12, 4, 1}, 3));
    CHECK_OK(lt_transpose(base, -2, -3, &neg)); /* dims 1 and 0 */
    CHECK(same_dims(neg, (int64_t[]){3, 2, 4}, (int64_t[]){4, 12, 1}, 3));
    lt_tensor *out = NULL, *s = NULL;
    CHECK_ERR_OUT(lt_transpose(base, 0, 3, &out), out, LT_ERR_RANGE, "lt_transpose");
    CHECK_ERR_OUT(lt_transpose(base, -4, 1, &out), out, LT_ERR_RANGE, "lt_transpose");
    CHECK_ERR_OUT(lt_transpose(NULL, 0, 1, &out), out, LT_ERR_ARG, "lt_transpose");
    CHECK_ERR(lt_transpose(base, 0, 1, NULL), LT_ERR_ARG, "lt_transpose");
    CHECK_OK(lt_tensor_zeros(NULL, 0, LT_F32, LT_DEVICE_CPU, &s));
    CHECK_ERR_OUT(lt_transpose(s, 0, 0, &out), out, LT_ERR_RANGE, "lt_transpose");
    free(bv);
}

static void test_slice(void) {
    tt_seed(105);
    int64_t s56[2] = {5, 6};
    lt_tensor *base = tt_rand(s56, 2, LT_F64, -3, 3);
    double *bv = tt_values(base), ref[30];
    struct {
        int dim;
        int64_t start, end, step;
        int64_t rows[5], nrows, cols[6], ncols; /* the base indices the view selects */
    } cases[] = {
        {1, 1, 6, 2, {0, 1, 2, 3, 4}, 5, {1, 3, 5}, 3},           /* step 2 */
        {0, -4, -1, 2, {1, 3}, 2, {0, 1, 2, 3, 4, 5}, 6},         /* negative start and end */
        {-1, 0, 6, 4, {0, 1, 2, 3, 4}, 5, {0, 4}, 2},             /* negative dim */
        {1, 2, 4, 10, {0, 1, 2, 3, 4}, 5, {2}, 1},                /* step past the end: one element */
        {0, -5, 5, 1, {0, 1, 2, 3, 4}, 5, {0, 1, 2, 3, 4, 5}, 6}, /* everything */
        {0, 2, 2, 1, {0}, 0, {0, 1, 2, 3, 4, 5}, 6},              /* empty */
        {1, 6, 6, 3, {0, 1, 2, 3, 4}, 5, {0}, 0},                 /* empty at the end */
        {0, 4, 5, 1, {4}, 1, {0, 1, 2, 3, 4, 5}, 6},              /* the last row */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_tensor *v = NULL;
        CHECK_OK(lt_slice(base, cases[c].dim, cases[c].start, cases[c].end, cases[c].step, &v));
        int64_t nr = cases[c].nrows, nc = cases[c].ncols;
        int d = cases[c].dim < 0 ? cases[c].dim + 2 : cases[c].dim;
        int64_t strides[2] = {6 * (d == 0 ? cases[c].step : 1), d == 1 ? cases[c].step : 1};
        CHECK(same_dims(v, (int64_t[]){nr, nc}, strides, 2));
        if (nr * nc > 0) CHECK(lt_tensor_data(v) == elem(base, cases[c].rows[0] * 6 + cases[c].cols[0]));
        for (int64_t i = 0; i < nr; i++)
            for (int64_t j = 0; j < nc; j++) ref[i * nc + j] = bv[cases[c].rows[i] * 6 + cases[c].cols[j]];
        char what[32];
        snprintf(what, sizeof what, "slice case %zu", c);
        if (lt_tensor_numel(v) == nr * nc) CHECK(tt_tensor_close(what, v, ref, 0, 0));
    }
    /* a slice of a slice composes offsets and steps: rows 1, 3 then columns 3, 5 of columns 1, 3, 5 */
    lt_tensor *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(lt_slice(base, 1, 1, 6, 2, &a));
    CHECK_OK(lt_slice(a, 1, 1, 3, 1, &b));
    CHECK_OK(lt_slice(b, 0, 1, 5, 2, &c));
    CHECK(same_dims(c, (int64_t[]){2, 2}, (int64_t[]){12, 2}, 2));
    CHECK(lt_tensor_data(c) == elem(base, 1 * 6 + 3));
    double r2[4] = {bv[1 * 6 + 3], bv[1 * 6 + 5], bv[3 * 6 + 3], bv[3 * 6 + 5]};
    CHECK(tt_tensor_close("slice of slice", c, r2, 0, 0));
    /* errors */
    lt_tensor *out = NULL;
    const char *fn = "lt_slice";
    CHECK_ERR_OUT(lt_slice(base, 1, 0, 7, 1, &out), out, LT_ERR_RANGE, fn);
    CHECK_ERR_OUT(lt_slice(base, 1, -7, 6, 1, &out), out, LT_ERR_RANGE, fn);
    CHECK_ERR_OUT(lt_slice(base, 1, 0, -7, 1, &out), out, LT_ERR_RANGE, fn);
    CHECK_ERR_OUT(lt_slice(base, 1, 4, 2, 1, &out), out, LT_ERR_RANGE, fn);
    CHECK_ERR_OUT(lt_slice(base, 0, 6, 6, 1, &out), out, LT_ERR_RANGE, fn); /* start past a dim of 5 */
    CHECK_ERR_OUT(lt_slice(base, 1, 0, 6, 0, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_slice(base, 1, 0, 6, -1, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_slice(base, 2, 0, 1, 1, &out), out, LT_ERR_RANGE, fn);
    CHECK_ERR_OUT(lt_slice(base, -3, 0, 1, 1, &out), out, LT_ERR_RANGE, fn);
    CHECK_ERR_OUT(lt_slice(NULL, 0, 0, 1, 1, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR(lt_slice(base, 0, 0, 1, 1, NULL), LT_ERR_ARG, fn);
    free(bv);
}

static void test_expand(void) {
    tt_seed(106);
    int64_t s31[2] = {3, 1}, s234[3] = {2, 3, 4};
    lt_tensor *col = tt_rand(s31, 2, LT_F64, -3, 3), *e = NULL, *same = NULL;
    double *cv = tt_values(col), ref[24];
    CHECK_OK(lt_expand(col, s234, 3, &e));
    CHECK(same_dims(e, s234, (int64_t[]){0, 1, 0}, 3));
    CHECK(lt_tensor_data(e) == lt_tensor_data(col));
    CHECK(!lt_tensor_is_contiguous(e));
    for (int i = 0; i < 24; i++) ref[i] = cv[(i / 4) % 3];
    CHECK(tt_tensor_close("expand", e, ref, 0, 0));
    CHECK_OK(lt_expand(col, s31, 2, &same));
    CHECK(same_dims(same, s31, (int64_t[]){1, 1}, 2));
    /* 0-d to [2, 2] */
    double x = 2.25;
    lt_tensor *s = NULL, *se = NULL;
    CHECK_OK(lt_tensor_from_host(&x, NULL, 0, LT_F64, LT_DEVICE_CPU, &s));
    CHECK_OK(lt_expand(s, (int64_t[]){2, 2}, 2, &se));
    CHECK(same_dims(se, (int64_t[]){2, 2}, (int64_t[]){0, 0}, 2));
    CHECK(tt_tensor_close("expand 0-d", se, (double[]){2.25, 2.25, 2.25, 2.25}, 0, 0));
    /* a size-1 dim may expand to 0 */
    lt_tensor *z = NULL;
    CHECK_OK(lt_expand(col, (int64_t[]){3, 0}, 2, &z));
    CHECK(lt_tensor_numel(z) == 0);
    /* a row of a stepped slice keeps its column stride */
    int64_t s46[2] = {4, 6};
    lt_tensor *m = tt_rand(s46, 2, LT_F64, 0, 1), *cols = NULL, *row = NULL, *re = NULL;
    double *mv = tt_values(m);
    CHECK_OK(lt_slice(m, 1, 0, 6, 2, &cols));
    CHECK_OK(lt_slice(cols, 0, 2, 3, 1, &row)); /* [1, 3] = m[2][0, 2, 4] */
    CHECK_OK(lt_expand(row, (int64_t[]){5, 3}, 2, &re));
    CHECK(same_dims(re, (int64_t[]){5, 3}, (int64_t[]){0, 2}, 2));
    for (int i = 0; i < 15; i++) ref[i] = mv[12 + 2 * (i % 3)];
    CHECK(tt_tensor_close("expand of a strided row", re, ref, 0, 0));
    /* errors */
    lt_tensor *out = NULL;
    const char *fn = "lt_expand";
    CHECK_ERR_OUT(lt_expand(col, (int64_t[]){4, 1}, 2, &out), out, LT_ERR_SHAPE, fn); /* 3 is not 1 */
    CHECK_ERR_OUT(lt_expand(col, (int64_t[]){2, 4, 4}, 3, &out), out, LT_ERR_SHAPE, fn);
    CHECK_ERR_OUT(lt_expand(col, (int64_t[]){3}, 1, &out), out, LT_ERR_SHAPE, fn); /* fewer dims */
    CHECK_ERR_OUT(lt_expand(col, NULL, 2, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_expand(NULL, s31, 2, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR(lt_expand(col, s31, 2, NULL), LT_ERR_ARG, fn);
    /* negative sizes and ndim outside [0, 8] are invalid arguments, as for every other function that takes a
     * shape (core.h: LT_ERR_ARG is "a negative size or another invalid argument") */
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 3, 1};
    CHECK_ERR_OUT(lt_expand(col, (int64_t[]){-1, 3, 1}, 3, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_expand(col, (int64_t[]){3, -4}, 2, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_expand(col, nine, 9, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_expand(s, s31, -1, &out), out, LT_ERR_ARG, fn);
    free(cv);
    free(mv);
}

static void test_contiguous(void) {
    tt_seed(107);
    int64_t s34[2] = {3, 4};
    lt_tensor *base = tt_rand(s34, 2, LT_F64, -1, 1), *c = NULL, *tr = NULL, *tc = NULL;
    double *bv = tt_values(base), ref[12];
    CHECK_OK(lt_contiguous(base, &c));
    CHECK(c == base); /* t itself, as a new reference */
    CHECK(lt_tensor_data(c) == lt_tensor_data(base));
    CHECK_OK(lt_transpose(base, 0, 1, &tr));
    CHECK_OK(lt_contiguous(tr, &tc));
    CHECK(lt_tensor_data(tc) != lt_tensor_data(base));
    CHECK(lt_tensor_is_contiguous(tc));
    CHECK(same_dims(tc, (int64_t[]){4, 3}, (int64_t[]){3, 1}, 2));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) ref[i * 3 + j] = bv[j * 4 + i];
    CHECK(tt_tensor_close("contiguous of transpose", tc, ref, 0, 0));
    /* a slice and an expand */
    lt_tensor *sl = NULL, *sc = NULL, *col = NULL, *ex = NULL, *ec = NULL;
    CHECK_OK(lt_slice(base, 1, 1, 4, 2, &sl)); /* columns 1, 3 */
    CHECK_OK(lt_contiguous(sl, &sc));
    CHECK(lt_tensor_is_contiguous(sc));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) ref[i * 2 + j] = bv[i * 4 + 1 + 2 * j];
    CHECK(tt_tensor_close("contiguous of slice", sc, ref, 0, 0));
    CHECK_OK(lt_slice(base, 1, 2, 3, 1, &col)); /* [3, 1] */
    CHECK_OK(lt_expand(col, s34, 2, &ex));
    CHECK_OK(lt_contiguous(ex, &ec));
    CHECK(same_dims(ec, s34, (int64_t[]){4, 1}, 2));
    for (int i = 0; i < 12; i++) ref[i] = bv[(i / 4) * 4 + 2];
    CHECK(tt_tensor_close("contiguous of expand", ec, ref, 0, 0));
    /* a one-row slice is already contiguous: no copy */
    lt_tensor *row = NULL, *rc = NULL;
    CHECK_OK(lt_slice(base, 0, 1, 2, 1, &row));
    CHECK_OK(lt_contiguous(row, &rc));
    CHECK(rc == row && lt_tensor_data(rc) == elem(base, 4));
    lt_tensor *out = NULL;
    CHECK_ERR_OUT(lt_contiguous(NULL, &out), out, LT_ERR_ARG, "lt_contiguous");
    CHECK_ERR(lt_contiguous(base, NULL), LT_ERR_ARG, "lt_contiguous");
    free(bv);
}

static void test_detach(void) {
    tt_seed(108);
    int64_t s34[2] = {3, 4};
    lt_tensor *base = tt_rand(s34, 2, LT_F64, -1, 1), *tr = NULL, *d = NULL, *dt = NULL;
    double *bv = tt_values(base);
    CHECK_OK(lt_tensor_set_requires_grad(base, true));
    CHECK_OK(lt_detach(base, &d));
    CHECK(d != base);
    CHECK(!lt_tensor_requires_grad(d));
    CHECK(lt_tensor_data(d) == lt_tensor_data(base));
    CHECK(same_dims(d, s34, (int64_t[]){4, 1}, 2));
    CHECK(tt_tensor_close("detach", d, bv, 0, 0));
    /* a detached view keeps the strides, and writes through it reach the base */
    CHECK_OK(lt_transpose(base, 0, 1, &tr));
    CHECK(lt_tensor_requires_grad(tr));
    CHECK_OK(lt_detach(tr, &dt));
    CHECK(!lt_tensor_requires_grad(dt));
    CHECK(same_dims(dt, (int64_t[]){4, 3}, (int64_t[]){1, 4}, 2));
    lt_tensor *row = NULL;
    double v = 7.5;
    lt_tensor *vt = NULL;
    CHECK_OK(lt_tensor_from_host(&v, NULL, 0, LT_F64, LT_DEVICE_CPU, &vt));
    CHECK_OK(lt_slice(dt, 0, 2, 3, 1, &row)); /* column 2 of the base */
    CHECK_OK(lt_tensor_copy(row, vt));
    for (int i = 0; i < 3; i++) bv[i * 4 + 2] = 7.5;
    CHECK(tt_tensor_close("base after writing a detached view", base, bv, 0, 0));
    lt_tensor *out = NULL;
    CHECK_ERR_OUT(lt_detach(NULL, &out), out, LT_ERR_ARG, "lt_detach");
    CHECK_ERR(lt_detach(base, NULL), LT_ERR_ARG, "lt_detach");
    free(bv);
}

static void test_view_chain(void) {
    /* permute -> slice -> transpose -> view -> expand, checked against index arithmetic on the base */
    tt_seed(109);
    int64_t s = 2 * 3 * 4 * 5, s2345[4] = {2, 3, 4, 5};
    lt_tensor *flat = tt_rand(&s, 1, LT_F64, -10, 10), *base = NULL, *p = NULL, *sl = NULL, *t = NULL, *v = NULL;
    lt_tensor *e = NULL;
    double *fv = tt_values(flat), ref[2 * 2 * 3 * 5 * 2];
    CHECK_OK(lt_view(flat, s2345, 4, &base));
    CHECK_OK(lt_permute(base, (int[]){3, 1, 0, 2}, &p)); /* [5, 3, 2, 4]: p[a][b][c][d] = base[c][b][d][a] */
    CHECK_OK(lt_slice(p, 3, 1, 4, 2, &sl));              /* [5, 3, 2, 2]: d -> 1 + 2d */
    CHECK_OK(lt_transpose(sl, 0, 1, &t));                /* [3, 5, 2, 2]: t[b][a][c][d] */
    /* c (stride 60) and d (stride 10) do not merge: a view fails, a reshape copies */
    CHECK_ERR_OUT(lt_view(t, (int64_t[]){3, 5, 4}, 3, &v), v, LT_ERR_SHAPE, "lt_view");
    CHECK_OK(lt_reshape(t, (int64_t[]){3, 5, 4}, 3, &v));
    CHECK(lt_tensor_is_contiguous(v) && lt_tensor_data(v) != lt_tensor_data(flat));
    lt_tensor *v2 = NULL;
    CHECK_OK(lt_reshape(t, (int64_t[]){3, 5, 2, 2, 1}, 5, &v2)); /* a trailing 1 is always a view */
    CHECK(lt_tensor_data(v2) == lt_tensor_data(t));
    CHECK_OK(lt_expand(v2, (int64_t[]){2, 3, 5, 2, 2, 1}, 6, &e));
    for (int z = 0; z < 2; z++)
        for (int b = 0; b < 3; b++)
            for (int a = 0; a < 5; a++)
                for (int c = 0; c < 2; c++)
                    for (int d = 0; d < 2; d++)
                        ref[(((z * 3 + b) * 5 + a) * 2 + c) * 2 + d] = fv[((c * 3 + b) * 4 + (1 + 2 * d)) * 5 + a];
    CHECK(tt_tensor_close("reshape of the chain", v, ref, 0, 0));
    CHECK(tt_tensor_close("view chain", e, ref, 0, 0));
    free(fv);
}

int main(void) {
    RUN(test_reshape_view);
    RUN(test_reshape_copy);
    RUN(test_reshape_view_errors);
    RUN(test_permute);
    RUN(test_transpose);
    RUN(test_slice);
    RUN(test_expand);
    RUN(test_contiguous);
    RUN(test_detach);
    RUN(test_view_chain);
    return tt_finish();
}
