/* The CUDA backend's causal attention (forward and backward) against the CPU through the public lt_attention: f32
 * and f64, sequence lengths around the kernels' tiles (1, 2, 31, 32, 33, 65), head dims from 1 to 128 (each padded
 * head-dim variant of the kernels), non-contiguous inputs, results independent of the emulator's thread order, and
 * the errors that reach the backend. */
#include "cuda_check.h"

static const int64_t lens[] = {1, 2, 31, 32, 33, 65};
#define N_LENS ((int)(sizeof lens / sizeof lens[0]))

/* (B, n_head, head dim) */
static const int combos[][3] = {{1, 1, 1}, {2, 3, 3}, {1, 2, 8}, {2, 1, 16}, {1, 2, 64}};
#define N_COMBOS ((int)(sizeof combos / sizeof combos[0]))

static lt_status attention_op(void *ctx, lt_tensor **in, lt_tensor **out) {
    return lt_attention(in[0], *(const int *)ctx, out);
}

static double atol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-5 : 1e-12; }
static double rtol_of(lt_dtype dt) { return dt == LT_F32 ? 1e-5 : 1e-12; }

static lt_tensor *make_qkv(int64_t B, int64_t len, int64_t C, lt_dtype dt, double range) {
    int64_t shape[3] = {B, len, 3 * C};
    return tt_rand(shape, 3, dt, -range, range);
}

/* y = attention(qkv) on `device` from a leaf copy of qkv, back-propagated with upstream gradient r through
 * lt_backward_grad (so only the attention entries and copies run on the device); returns y and the gradient. */
static lt_status run_once(lt_tensor *qkv, int n_head, const lt_tensor *r, lt_device device, lt_tensor **y,
                          lt_tensor **grad) {
    lt_status st = tc_run_grad(attention_op, &n_head, &qkv, 1, r, device, y, grad);
    if (st == LT_OK && !*grad) st = LT_ERR_INTERNAL;
    return st;
}

/* Forward with tc_cross_check, then forward and backward on both devices with the same upstream gradient. */
static bool check_case(int64_t B, int64_t len, int H, int64_t D, lt_dtype dt, double range) {
    char what[160];
    snprintf(what, sizeof what, "attention %s B=%lld T=%lld heads=%d D=%lld range=%g", lt_dtype_name(dt), (long long)B,
             (long long)len, H, (long long)D, range);
    bool ok = true;
    lt_scope_begin();
    lt_tensor *qkv = make_qkv(B, len, H * D, dt, range);
    ok &= tc_cross_check(what, attention_op, &H, &qkv, 1, atol_of(dt), rtol_of(dt), false);
    ok &= tc_check_grad(what, attention_op, &H, &qkv, 1, true, false, atol_of(dt), rtol_of(dt));
    lt_scope_end();
    return ok;
}

static void test_forward_backward(lt_dtype dt) {
    for (int c = 0; c < N_COMBOS; c++)
        for (int l = 0; l < N_LENS; l++) CHECK(check_case(combos[c][0], lens[l], combos[c][1], combos[c][2], dt, 1));
}
static void test_f32(void) { test_forward_backward(LT_F32); }
static void test_f64(void) { test_forward_backward(LT_F64); }

/* Head dims on each side of the kernels' padded variants (32, 64, 128) and large scores (a peaked softmax). */
static void test_head_dims_and_peaks(void) {
    static const int dims[] = {31, 32, 33, 63, 65, 100, 128};
    for (int i = 0; i < (int)(sizeof dims / sizeof dims[0]); i++) {
        CHECK(check_case(1, 33, 1, dims[i], LT_F32, 1));
        CHECK(check_case(1, 65, 2, dims[i], LT_F64, 1));
    }
    CHECK(check_case(2, 65, 2, 16, LT_F32, 4));
    CHECK(check_case(1, 65, 1, 64, LT_F64, 4));
}

/* A non-contiguous qkv: the op copies it, and the gradient comes back in qkv's shape. */
static void test_strided_input(void) {
    int64_t shape[3] = {2, 33, 3 * 2 * 5};
    for (int k = 0; k < 2; k++) {
        lt_dtype dt = k ? LT_F64 : LT_F32;
        lt_tensor *x = tt_strided(tt_rand(shape, 3, dt, -1, 1));
        int H = 2;
        CHECK(tc_cross_check("attention of a strided qkv", attention_op, &H, &x, 1, atol_of(dt), rtol_of(dt), false));
    }
}

/* tc_cross_check's own backward: sum(y * r) needs the elementwise and reduce entries on the device too, so it is
 * skipped (with a note) while those are not in the backend. */
static void test_cross_check_backward(void) {
    int64_t n = 3;
    lt_tensor *a, *b, *p, *s;
    CHECK_OK(lt_tensor_full(&n, 1, 2.0, LT_F32, tc_cuda, &a));
    CHECK_OK(lt_tensor_set_requires_grad(a, true));
    CHECK_OK(lt_tensor_full(&n, 1, 3.0, LT_F32, tc_cuda, &b));
    lt_status st = lt_mul(a, b, &p);
    if (st == LT_OK) st = lt_sum(p, NULL, 0, false, &s);
    if (st == LT_OK) st = lt_backward(s);
    if (st == LT_ERR_UNSUPPORTED) {
        printf("note: tc_cross_check's backward skipped, the backend lacks an entry it needs: %s\n", lt_last_error());
        return;
    }
    CHECK_OK(st);
    for (int k = 0; k < 2; k++) {
        lt_dtype dt = k ? LT_F64 : LT_F32;
        for (int l = 0; l < N_LENS; l++) {
            int H = 2;
            lt_tensor *x = make_qkv(2, lens[l], H * 3, dt, 1);
            CHECK(tc_cross_check("attention (tc_cross_check backward)", attention_op, &H, &x, 1, atol_of(dt),
                                 rtol_of(dt), true));
        }
    }
}

/* The same call under several thread orders of the emulator (LT_EMU_SHUFFLE is read at each launch; a no-op on a
 * GPU) gives the same bits: nothing depends on which thread runs first. */
static void test_thread_order(void) {
    const char *before = getenv("LT_EMU_SHUFFLE");
    char *saved = before ? strdup(before) : NULL;
    static const char *seeds[] = {"0", "12345", "977", "31337"};
    for (int k = 0; k < 2; k++) {
        lt_dtype dt = k ? LT_F64 : LT_F32;
        int H = 2;
        lt_tensor *qkv = make_qkv(2, 65, H * 7, dt, 2);
        int64_t yshape[3] = {2, 65, H * 7};
        lt_tensor *r = tt_rand(yshape, 3, LT_F64, -1, 1), *y0 = NULL, *g0 = NULL;
        for (int s = 0; s < 4; s++) {
            setenv("LT_EMU_SHUFFLE", seeds[s], 1);
            lt_tensor *y, *g;
            CHECK_OK(run_once(qkv, H, r, tc_cuda, &y, &g));
            if (s == 0) {
                y0 = y;
                g0 = g;
            } else {
                CHECK(tc_same("attention output under another thread order", y, y0, 0, 0));
                CHECK(tc_same("attention gradient under another thread order", g, g0, 0, 0));
            }
        }
    }
    if (saved) {
        setenv("LT_EMU_SHUFFLE", saved, 1);
        free(saved);
    } else {
        unsetenv("LT_EMU_SHUFFLE");
    }
}

/* Empty batches and an empty C (head dim 0): nothing to compute, and no failure. */
static void test_empty(void) {
    int64_t shapes[3][3] = {{0, 4, 6}, {2, 0, 6}, {2, 3, 0}};
    for (int i = 0; i < 3; i++) {
        lt_tensor *x, *y, *g;
        CHECK_OK(lt_tensor_zeros(shapes[i], 3, LT_F32, tc_cuda, &x));
        CHECK_OK(lt_tensor_set_requires_grad(x, true));
        CHECK_OK(lt_attention(x, 1, &y));
        CHECK(lt_tensor_numel(y) == 0);
        CHECK_OK(lt_backward_grad(y, y));
        CHECK_OK(lt_tensor_grad(x, &g));
        CHECK(g && lt_tensor_numel(g) == 0);
    }
}

/* The public op's checks fail the same way on the device; a head dim above the kernels' 128 reaches the backend,
 * which refuses it by name. */
static void test_errors(void) {
    int64_t shape[3] = {1, 4, 3 * 6}, bad3[3] = {1, 4, 7}, big[3] = {1, 2, 3 * 129};
    lt_tensor *x, *y = NULL, *b3, *xi, *xb;
    CHECK_OK(lt_tensor_zeros(shape, 3, LT_F32, tc_cuda, &x));
    CHECK_ERR_OUT(lt_attention(x, 4, &y), y, LT_ERR_SHAPE, "lt_attention"); /* C = 6 not divisible by 4 */
    CHECK_ERR_OUT(lt_attention(x, 0, &y), y, LT_ERR_ARG, "lt_attention");
    CHECK_OK(lt_tensor_zeros(bad3, 3, LT_F32, tc_cuda, &b3));
    CHECK_ERR_OUT(lt_attention(b3, 1, &y), y, LT_ERR_SHAPE, "lt_attention");
    CHECK_OK(lt_tensor_zeros(shape, 3, LT_I32, tc_cuda, &xi));
    CHECK_ERR_OUT(lt_attention(xi, 1, &y), y, LT_ERR_DTYPE, "lt_attention");
    CHECK_OK(lt_tensor_zeros(big, 3, LT_F32, tc_cuda, &xb));
    CHECK_ERR_OUT(lt_attention(xb, 1, &y), y, LT_ERR_UNSUPPORTED, "cuda attention");
    CHECK_OK(lt_attention(xb, 3, &y)); /* three heads of 43 are fine */
}

int main(void) {
    tc_require_cuda();
    tt_seed(11);
    RUN(test_f32);
    RUN(test_f64);
    RUN(test_head_dims_and_peaks);
    RUN(test_strided_input);
    RUN(test_cross_check_backward);
    RUN(test_thread_order);
    RUN(test_empty);
    RUN(test_errors);
    return tt_finish();
}
