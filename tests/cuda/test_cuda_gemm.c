/* The CUDA backend's gemm (cuBLAS on a GPU, the emulator's cuBLAS here) against the CPU's OpenBLAS, through the public
 * ops that reach it: lt_matmul with every pair of transpose flags, operands stored row- or column-major, with a
 * padded leading dimension or with strides no BLAS reads (copied first), batched with a batch stride, broadcast
 * batches (batch stride 0), sizes around a warp and a block in m, n and k, k = 0 and empty outputs; and lt_linear,
 * whose bias is the backend gemm's bias argument (the CUDA backend fills c with it and adds the product with beta = 1;
 * the CPU does the same through OpenBLAS, or adds it in its own sgemm's kernel on larger f32 products), also with
 * k = 0, where c is the bias. Forward and backward, f32 and f64. The backend's alpha is always 1 and its beta 0 or 1
 * through the public API. */
#include "cuda_check.h"

#define F32_ATOL 1e-4
#define F32_RTOL 1e-5
#define F64_ATOL 1e-12
#define F64_RTOL 1e-12

static double atol_of(lt_dtype d) { return d == LT_F32 ? F32_ATOL : F64_ATOL; }
static double rtol_of(lt_dtype d) { return d == LT_F32 ? F32_RTOL : F64_RTOL; }

/* ---- operand layouts ---- */

/* How a matrix operand of logical shape [..., rows, cols] is stored; the test keeps the stored tensor as the leaf
 * and hands lt_matmul a view of it. */
enum layout {
    ROW_MAJOR,   /* contiguous */
    COL_MAJOR,   /* the transpose of a contiguous [..., cols, rows] */
    ROW_PADDED,  /* the first cols columns of [..., rows, cols + 3]: leading dimension cols + 3 */
    COL_PADDED,  /* the transpose of the first rows columns of [..., cols, rows + 5] */
    UNREADABLE,  /* every other column of [..., rows, 2 cols]: no unit stride, lt_matmul copies it */
    BATCH_INNER, /* [rows, batch, cols] permuted to [batch, rows, cols]: batch stride cols, ld batch * cols */
    N_LAYOUTS
};
static const char *const layout_names[N_LAYOUTS] = {"row",        "col",        "row-padded",
                                                    "col-padded", "unreadable", "batch-inner"};

/* The stored shape for a logical [batch..., rows, cols] (nb batch dims, at most 1 for BATCH_INNER). */
static int stored_shape(const int64_t *logical, int nd, enum layout l, int64_t *s) {
    memcpy(s, logical, sizeof(int64_t) * (size_t)nd);
    int64_t r = logical[nd - 2], c = logical[nd - 1];
    switch (l) {
    case ROW_MAJOR: break;
    case COL_MAJOR: s[nd - 2] = c, s[nd - 1] = r; break;
    case ROW_PADDED: s[nd - 1] = c + 3; break;
    case COL_PADDED: s[nd - 2] = c, s[nd - 1] = r + 5; break;
    case UNREADABLE: s[nd - 1] = 2 * c; break;
    case BATCH_INNER: /* nd == 3 */ s[0] = r, s[1] = logical[0], s[2] = c; break;
    default: abort();
    }
    return nd;
}

/* The logical view of a stored operand. */
static lt_status view_of(const lt_tensor *t, enum layout l, int64_t rows, int64_t cols, lt_tensor **out) {
    int nd = lt_tensor_ndim(t);
    lt_tensor *s;
    switch (l) {
    case ROW_MAJOR: return lt_slice(t, nd - 1, 0, cols, 1, out); /* a plain view (the identity slice) */
    case COL_MAJOR: return lt_transpose(t, nd - 2, nd - 1, out);
    case ROW_PADDED: return lt_slice(t, nd - 1, 0, cols, 1, out);
    case COL_PADDED: {
        lt_status st = lt_slice(t, nd - 1, 0, rows, 1, &s);
        return st != LT_OK ? st : lt_transpose(s, nd - 2, nd - 1, out);
    }
    case UNREADABLE: return lt_slice(t, nd - 1, 0, 2 * cols, 2, out);
    case BATCH_INNER: return lt_permute(t, (const int[]){1, 0, 2}, out);
    default: abort();
    }
}

typedef struct mm_case {
    int64_t m, n, k;
    bool ta, tb;
    enum layout la, lb;
    int na, nb;           /* batch dims of a and b (0 to 2) */
    int64_t ba[2], bb[2]; /* their sizes */
} mm_case;

/* Logical shapes of a and b as lt_matmul sees them: [batch..., m, k] (or [.., k, m] when ta), [.., k, n] (or
 * [.., n, k] when tb). */
static int logical_a(const mm_case *c, int64_t *s) {
    memcpy(s, c->ba, sizeof(int64_t) * (size_t)c->na);
    s[c->na] = c->ta ? c->k : c->m;
    s[c->na + 1] = c->ta ? c->m : c->k;
    return c->na + 2;
}
static int logical_b(const mm_case *c, int64_t *s) {
    memcpy(s, c->bb, sizeof(int64_t) * (size_t)c->nb);
    s[c->nb] = c->tb ? c->n : c->k;
    s[c->nb + 1] = c->tb ? c->k : c->n;
    return c->nb + 2;
}

static lt_status matmul_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const mm_case *c = ctx;
    int64_t sa[4], sb[4];
    int nda = logical_a(c, sa), ndb = logical_b(c, sb);
    lt_tensor *va, *vb;
    lt_status st = view_of(in[0], c->la, sa[nda - 2], sa[nda - 1], &va);
    if (st == LT_OK) st = view_of(in[1], c->lb, sb[ndb - 2], sb[ndb - 1], &vb);
    return st != LT_OK ? st : lt_matmul(va, vb, c->ta, c->tb, out);
}

static bool run_case(const mm_case *c, lt_dtype dtype, bool backward) {
    int64_t la[4], lb[4], sa[4], sb[4];
    int nda = logical_a(c, la), ndb = logical_b(c, lb);
    stored_shape(la, nda, c->la, sa);
    stored_shape(lb, ndb, c->lb, sb);
    lt_tensor *in[2] = {tt_rand(sa, nda, dtype, -1, 1), tt_rand(sb, ndb, dtype, -1, 1)};
    char what[200];
    snprintf(what, sizeof what, "%s matmul m=%lld n=%lld k=%lld ta=%d tb=%d a:%s (%d batch dims) b:%s (%d batch dims)",
             lt_dtype_name(dtype), (long long)c->m, (long long)c->n, (long long)c->k, c->ta, c->tb, layout_names[c->la],
             c->na, layout_names[c->lb], c->nb);
    return tc_cross_check_grad(what, matmul_op, (void *)c, in, 2, atol_of(dtype), rtol_of(dtype), backward, 1);
}

static const lt_dtype dtypes[2] = {LT_F32, LT_F64};

/* Every pair of transpose flags with every pair of 2-D storage layouts. */
static void test_transpose_and_layouts(void) {
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++)
            for (int la = 0; la < UNREADABLE + 1; la++)
                for (int lb = 0; lb < UNREADABLE + 1; lb++) {
                    mm_case c = {.m = 5, .n = 6, .k = 7, .ta = t & 1, .tb = t >> 1, .la = la, .lb = lb};
                    CHECK(run_case(&c, dtypes[d], true));
                }
}

/* Sizes around a warp and a block in each of m, n and k, the others small, under every pair of flags. */
static void test_odd_sizes(void) {
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 6; s++)
            for (int which = 0; which < 4; which++)
                for (int t = 0; t < 4; t++) {
                    int64_t z = tc_odd_sizes[s];
                    mm_case c = {.m = 3, .n = 4, .k = 5, .ta = t & 1, .tb = t >> 1};
                    if (which == 0) c.m = z;
                    if (which == 1) c.n = z;
                    if (which == 2) c.k = z;
                    if (which == 3) c.m = c.n = c.k = z > 64 ? z / 4 + 1 : z; /* all three odd */
                    CHECK(run_case(&c, dtypes[d], true));
                }
}

/* Batches of their own (strided batched GEMM): plain, transposed, padded, and with the batch dim inside the
 * matrix (batch stride cols, leading dimension batch * cols). */
static void test_batched(void) {
    static const enum layout layouts[] = {ROW_MAJOR, COL_MAJOR, COL_PADDED, BATCH_INNER};
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++)
            for (int la = 0; la < 4; la++)
                for (int lb = 0; lb < 4; lb++)
                    for (int s = 0; s < 3; s++) {
                        int64_t z = tc_odd_sizes[s * 2 + 1]; /* 31, 33, 257 */
                        mm_case c = {.m = z,
                                     .n = 6,
                                     .k = 5,
                                     .ta = t & 1,
                                     .tb = t >> 1,
                                     .la = layouts[la],
                                     .lb = layouts[lb],
                                     .na = 1,
                                     .nb = 1,
                                     .ba = {3},
                                     .bb = {3}};
                        if (s == 1) c.m = 4, c.k = z;
                        if (s == 2) c.m = 2, c.n = z > 64 ? 65 : z;
                        CHECK(run_case(&c, dtypes[d], true));
                    }
}

/* Batches against one shared matrix, in each position and both broadcast: the backend sees batch stride 0 (or,
 * for an untransposed a against a shared b, one product over the folded rows). */
static const mm_case broadcast_cases[] = {
    {.m = 33, .n = 5, .k = 7, .na = 1, .ba = {4}},                                   /* b shared: folded */
    {.m = 33, .n = 5, .k = 7, .ta = true, .na = 1, .ba = {4}},                       /* b shared, a transposed */
    {.m = 6, .n = 31, .k = 7, .tb = true, .na = 1, .ba = {3}, .lb = COL_MAJOR},      /* b shared, column-major */
    {.m = 6, .n = 31, .k = 9, .nb = 1, .bb = {4}},                                   /* a shared */
    {.m = 6, .n = 31, .k = 9, .ta = true, .tb = true, .nb = 1, .bb = {4}},           /* a shared, both transposed */
    {.m = 5, .n = 4, .k = 33, .na = 2, .ba = {2, 1}, .nb = 2, .bb = {1, 3}},         /* both broadcast */
    {.m = 5, .n = 4, .k = 3, .na = 2, .ba = {1, 3}, .nb = 1, .bb = {3}, .tb = true}, /* size-1 outer batch */
};
#define N_BROADCAST ((int)(sizeof broadcast_cases / sizeof broadcast_cases[0]))

static void test_broadcast_forward(void) {
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < N_BROADCAST; i++) CHECK(run_case(&broadcast_cases[i], dtypes[d], false));
}

/* The gradient of a broadcast operand is summed over the batch (lt_sum's reduce), the rest is gemm. */
static void test_broadcast_backward(void) {
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < N_BROADCAST; i++) CHECK(run_case(&broadcast_cases[i], dtypes[d], true));
}

/* k = 0: the product is all zeros, written without reading the uninitialised (NaN-poisoned) output. Empty
 * outputs (m, n or the batch 0) launch nothing. */
static void test_k_zero_and_empty(void) {
    for (int d = 0; d < 2; d++) {
        for (int t = 0; t < 4; t++) {
            mm_case k0 = {.m = 33, .n = 5, .k = 0, .ta = t & 1, .tb = t >> 1};
            CHECK(run_case(&k0, dtypes[d], true));
            mm_case k0b = {.m = 3, .n = 257, .k = 0, .ta = t & 1, .tb = t >> 1, .na = 1, .ba = {2}, .nb = 1, .bb = {2}};
            CHECK(run_case(&k0b, dtypes[d], true));
            mm_case m0 = {.m = 0, .n = 5, .k = 4, .ta = t & 1, .tb = t >> 1};
            CHECK(run_case(&m0, dtypes[d], true));
            mm_case n0 = {.m = 3, .n = 0, .k = 4, .ta = t & 1, .tb = t >> 1};
            CHECK(run_case(&n0, dtypes[d], true));
            mm_case b0 = {.m = 3, .n = 2, .k = 4, .ta = t & 1, .tb = t >> 1, .na = 1, .ba = {0}, .nb = 1, .bb = {0}};
            CHECK(run_case(&b0, dtypes[d], true));
        }
        /* the k = 0 result is exactly 0 on the device too */
        int64_t sa[2] = {4, 0}, sb[2] = {0, 3};
        lt_tensor *a, *b, *y;
        CHECK_OK(lt_tensor_zeros(sa, 2, dtypes[d], tc_cuda, &a));
        CHECK_OK(lt_tensor_zeros(sb, 2, dtypes[d], tc_cuda, &b));
        CHECK_OK(lt_matmul(a, b, false, false, &y));
        lt_tensor *zero;
        int64_t sy[2] = {4, 3};
        CHECK_OK(lt_tensor_zeros(sy, 2, LT_F64, LT_DEVICE_CPU, &zero));
        CHECK(tc_same("k = 0 product", y, zero, 0, 0));
    }
}

/* ---- lt_linear: y = x @ w (+ b, the gemm's bias) ---- */

typedef struct lin_case {
    int64_t rows, in, out;
    bool bias;
} lin_case;

static lt_status linear_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const lin_case *c = ctx;
    return lt_linear(in[0], in[1], c->bias ? in[2] : NULL, out);
}

static bool run_linear(const lin_case *c, lt_dtype dtype, bool backward) {
    int64_t sx[3] = {2, c->rows, c->in}, sw[2] = {c->in, c->out};
    lt_tensor *in[3] = {tt_rand(sx, 3, dtype, -1, 1), tt_rand(sw, 2, dtype, -1, 1), tt_rand(&c->out, 1, dtype, -1, 1)};
    char what[160];
    snprintf(what, sizeof what, "%s linear [2, %lld, %lld] x [%lld, %lld]%s", lt_dtype_name(dtype), (long long)c->rows,
             (long long)c->in, (long long)c->in, (long long)c->out, c->bias ? " + bias" : "");
    return tc_cross_check_grad(what, linear_op, (void *)c, in, c->bias ? 3 : 2, atol_of(dtype), rtol_of(dtype),
                               backward, 1);
}

/* Forward with the bias (also for k = 0 and no rows, and at 256 x 33 x 64, where the CPU's f32 product goes to its own
 * sgemm, which adds the bias in its kernel); backward without it (dx = dy w^T and dw = x^T dy, both gemm). */
static void test_linear(void) {
    for (int d = 0; d < 2; d++) {
        for (int s = 0; s < 6; s++) {
            int64_t z = tc_odd_sizes[s];
            lin_case cases[] = {{z, 5, 7, true},  {3, z, 6, true},  {4, 6, z, true},
                                {z, 5, 7, false}, {3, z, 6, false}, {4, 6, z, false}};
            for (int i = 0; i < 6; i++) CHECK(run_linear(&cases[i], dtypes[d], !cases[i].bias));
        }
        lin_case k0 = {5, 0, 33, true}, m0 = {0, 4, 3, true}, own = {128, 64, 33, true};
        CHECK(run_linear(&own, dtypes[d], false));
        CHECK(run_linear(&k0, dtypes[d], false));
        CHECK(run_linear(&m0, dtypes[d], false));
        lin_case k0g = {5, 0, 33, false};
        CHECK(run_linear(&k0g, dtypes[d], true));
    }
}

/* The bias gradient is a row sum (lt_sum's reduce); the rest is gemm. */
static void test_linear_bias_backward(void) {
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 6; s++) {
            lin_case c = {tc_odd_sizes[s], 5, 9, true};
            CHECK(run_linear(&c, dtypes[d], true));
        }
}

int main(void) {
    setenv("LIBTRAIN_POISON_ALLOC", "1", 0); /* fresh device memory is NaN: a product must never read it */
    tc_require_cuda();
    tt_seed(11);
    RUN(test_transpose_and_layouts);
    RUN(test_odd_sizes);
    RUN(test_batched);
    RUN(test_broadcast_forward);
    RUN(test_k_zero_and_empty);
    RUN(test_linear);
    RUN(test_broadcast_backward);
    RUN(test_linear_bias_backward);
    return tt_finish();
}
