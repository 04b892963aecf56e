/* The CUDA backend's embedding lookup and scatter-add against the CPU's: f32 and f64 weights, i32 and i64 indices
 * of several shapes, row widths around a warp and a block, heavily repeated indices (a row gathered hundreds of
 * times), strided indices and weights (copied to contiguous by lt_embedding), empty lookups, and out-of-range
 * indices. The backward sums each row's gradients in index order on both backends, so both directions must agree
 * bit for bit, and repeated runs on the device must too. */
#include "cuda_check.h"

/* ---- embedding ---- */

typedef struct emb_case {
    bool wt; /* the weight leaf is stored [C, V] and transposed */
    bool it; /* the index leaf is stored with its two dims swapped and transposed */
} emb_case;

static lt_status embedding_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    const emb_case *c = ctx;
    lt_tensor *w = in[0], *idx = in[1];
    lt_status st = LT_OK;
    if (c->wt) st = lt_transpose(w, 0, 1, &w);
    if (st == LT_OK && c->it) st = lt_transpose(idx, 0, 1, &idx);
    return st != LT_OK ? st : lt_embedding(w, idx, out);
}

/* idx [m] or [m0, m1] (m1 > 0) with values in [0, v), weight [v, c]; every one of f32/f64 x i32/i64. */
static bool run_embedding(int64_t v, int64_t c, int64_t m0, int64_t m1, const emb_case *ec, int64_t fixed_row) {
    bool ok = true;
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 2; i++) {
            lt_dtype wd = d ? LT_F64 : LT_F32, id = i ? LT_I64 : LT_I32;
            int64_t ws[2] = {ec->wt ? c : v, ec->wt ? v : c};
            int64_t is[2] = {ec->it ? m1 : m0, ec->it ? m0 : m1};
            int ind = m1 > 0 ? 2 : 1;
            lt_tensor *w = tt_rand(ws, 2, wd, -1, 1), *idx;
            if (fixed_row >= 0) { /* every index the same row */
                if (lt_tensor_full(is, ind, (double)fixed_row, id, LT_DEVICE_CPU, &idx) != LT_OK) abort();
            } else {
                idx = tt_randint(is, ind, id, v);
            }
            lt_tensor *in[2] = {w, idx};
            char what[200];
            snprintf(what, sizeof what, "embedding %s [%lld, %lld]%s idx %s [%lld%s%lld]%s%s", lt_dtype_name(wd),
                     (long long)v, (long long)c, ec->wt ? " (transposed)" : "", lt_dtype_name(id), (long long)m0,
                     m1 > 0 ? ", " : "", m1 > 0 ? (long long)m1 : 0LL, ec->it ? " (transposed)" : "",
                     fixed_row >= 0 ? " all one row" : "");
            ok = tc_cross_check_grad(what, embedding_op, (void *)ec, in, 2, 0, 0, true, 2) && ok;
        }
    return ok;
}

static const emb_case plain = {false, false};

/* Row widths around a warp and a block, against vocabularies from 1 row (every index repeats) to 300. */
static void test_odd_widths(void) {
    for (int s = 0; s < 6; s++) {
        int64_t c = tc_odd_sizes[s];
        CHECK(run_embedding(1, c, 5, 0, &plain, -1));
        CHECK(run_embedding(3, c, 257, 0, &plain, -1)); /* each row about 86 times */
        CHECK(run_embedding(300, c, 2, 33, &plain, -1));
        CHECK(run_embedding(40, c, tc_odd_sizes[5 - s], 0, &plain, -1));
    }
}

/* One row gathered by every position (one bucket of 513 positions over 9 column tiles), and many rows with a long
 * tail of repeats (smaller under AddressSanitizer). */
static void test_repeated(void) {
    CHECK(run_embedding(300, tc_odd_sizes[5], tc_small ? 131 : 513, 0, &plain, 7));
    CHECK(run_embedding(300, 33, 3, 171, &plain, 299));
    CHECK(run_embedding(50, 64, tc_small ? 300 : 2048, 0, &plain, -1));
}

/* Strided weight and indices reach the backend as contiguous copies; the gradient flows back through the view. */
static void test_strided_inputs(void) {
    static const emb_case wt = {true, false}, it = {false, true}, both = {true, true};
    CHECK(run_embedding(37, 33, 4, 31, &wt, -1));
    CHECK(run_embedding(37, 33, 4, 31, &it, -1));
    CHECK(run_embedding(37, 31, 3, 33, &both, -1));
}

/* No indices, or rows of no columns: nothing to gather or scatter, and the gradient is all zeros. */
static void test_empty(void) {
    CHECK(run_embedding(5, 7, 0, 0, &plain, -1));
    CHECK(run_embedding(5, 7, 4, 0, &plain, -1) && run_embedding(5, 7, 0, 3, &plain, -1));
    CHECK(run_embedding(5, 0, 6, 0, &plain, -1));
}

/* Indices outside [0, V) are refused before any kernel runs, on the device as on the host. */
static void test_out_of_range(void) {
    int64_t ws[2] = {10, 4}, n = 5;
    lt_tensor *w = tc_to_cuda(tt_rand(ws, 2, LT_F32, -1, 1), true), *y;
    static const double bad[] = {10, -1, 1e6};
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 3; b++) {
            double v[5] = {0, 3, 9, bad[b], 2};
            lt_tensor *hd, *idx;
            CHECK_OK(lt_tensor_from_host(v, &n, 1, LT_F64, LT_DEVICE_CPU, &hd));
            CHECK_OK(lt_tensor_to(hd, i ? LT_I64 : LT_I32, tc_cuda, &idx));
            CHECK_ERR_OUT(lt_embedding(w, idx, &y), y, LT_ERR_RANGE, "lt_embedding");
        }
    lt_tensor *fidx; /* and float indices are a dtype error */
    CHECK_OK(lt_tensor_zeros(&n, 1, LT_F32, tc_cuda, &fidx));
    CHECK_ERR_OUT(lt_embedding(w, fidx, &y), y, LT_ERR_DTYPE, "lt_embedding");
}

int main(void) {
    setenv("LIBTRAIN_POISON_ALLOC", "1", 0);
    tc_require_cuda();
    tt_seed(17);
    RUN(test_odd_widths);
    RUN(test_repeated);
    RUN(test_strided_inputs);
    RUN(test_empty);
    RUN(test_out_of_range);
    return tt_finish();
}
