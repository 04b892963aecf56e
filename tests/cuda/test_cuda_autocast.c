/* bf16 mixed precision on the CUDA backend (cublasGemmEx / cublasGemmStridedBatchedEx on a GPU, the emulator's Ex
 * calls here) against the CPU:
 *  - the gemm entry with bf16 operands through lt_matmul and lt_linear on bf16 tensors (bf16 outputs and gradients):
 *    every transpose pair, odd sizes, batched and broadcast batches, views read in place or copied, k = 0, empty;
 *  - autocast: lt_matmul, lt_linear and lt_classifier_loss on f32 cuda tensors against the CPU computing in f32 from
 *    the bf16-rounded inputs (and, for the backward, the bf16-rounded upstream gradient): the same products, so they
 *    agree within f32 accumulation; outputs and gradients of the f32 leaves are f32; the backward runs after autocast
 *    ended; autocast is off again after lt_autocast_end and leaves f64, bf16 and CPU tensors alone;
 *  - a tiny GPT forward and backward on cuda under autocast against f32, within 2e-2 on the loss.
 * bf16 results of the two devices may differ by one bf16 rounding where the f32 sums differ in their last bits
 * (different summation orders), hence the 2^-7 relative tolerance on bf16 outputs. */
#include "cuda_check.h"

#define F32_ATOL 1e-4
#define F32_RTOL 1e-5
#define BF16_ATOL 2e-3
#define BF16_RTOL 0x1p-7

/* ---- helpers ---- */

/* A fresh tensor on `device` with t's values in `dtype`, a leaf that requires grad when `grad`. */
static lt_tensor *put(const lt_tensor *t, lt_device device, lt_dtype dtype, bool grad) {
    lt_tensor *c = NULL;
    lt_no_grad_begin();
    lt_status st = lt_tensor_to(t, dtype, device, &c);
    lt_no_grad_end();
    if (st != LT_OK || (grad && lt_tensor_set_requires_grad(c, true) != LT_OK)) {
        fprintf(stderr, "put: %s\n", lt_last_error());
        abort();
    }
    return c;
}

/* The f32 CPU tensor t with every value rounded to bf16 (still f32): what autocast multiplies. */
static lt_tensor *rounded(const lt_tensor *t, bool grad) {
    return put(put(t, LT_DEVICE_CPU, LT_BF16, false), LT_DEVICE_CPU, LT_F32, grad);
}

static lt_tensor *grad_of(const lt_tensor *t) {
    lt_tensor *g = NULL;
    if (lt_tensor_grad(t, &g) != LT_OK || !g) {
        fprintf(stderr, "grad_of: no gradient\n");
        abort();
    }
    return g;
}

/* Checks a result's dtype and device, then its values against ref. */
static bool same(const char *what, const lt_tensor *got, lt_dtype dtype, lt_device device, const lt_tensor *ref,
                 double atol, double rtol) {
    if (lt_tensor_dtype(got) != dtype || lt_tensor_device(got).type != device.type) {
        fprintf(stderr, "%s: %s on %s, expected %s on %s\n", what, lt_dtype_name(lt_tensor_dtype(got)),
                lt_tensor_device(got).type == LT_CUDA ? "cuda" : "cpu", lt_dtype_name(dtype),
                device.type == LT_CUDA ? "cuda" : "cpu");
        return false;
    }
    return tc_same(what, got, ref, atol, rtol);
}

static double max_abs_diff(const lt_tensor *x, const lt_tensor *y) {
    double *a = tt_values(x), *b = tt_values(y), m = 0;
    for (int64_t i = 0; i < lt_tensor_numel(x); i++) m = fmax(m, fabs(a[i] - b[i]));
    free(a);
    free(b);
    return m;
}

/* Stored shape [batch..., rows, cols], swapped when read transposed; returns ndim. */
static int stored(int64_t *shape, const int64_t *batch, int nbatch, int64_t rows, int64_t cols, bool t) {
    for (int i = 0; i < nbatch; i++) shape[i] = batch[i];
    shape[nbatch] = t ? cols : rows;
    shape[nbatch + 1] = t ? rows : cols;
    return nbatch + 2;
}

/* ---- the gemm entry with bf16 operands: lt_matmul on bf16 tensors, cuda vs cpu ---- */

/* a and b are bf16 CPU tensors (contiguous); the cuda copies are the same. With `backward`, the bf16 gradients of
 * both for one random bf16 upstream gradient. */
static bool check_bf16(const char *what, const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, bool backward) {
    char name[256];
    lt_scope_begin();
    lt_tensor *ac = put(a, LT_DEVICE_CPU, LT_BF16, backward), *bc = put(b, LT_DEVICE_CPU, LT_BF16, backward);
    lt_tensor *ag = put(a, tc_cuda, LT_BF16, backward), *bg = put(b, tc_cuda, LT_BF16, backward);
    lt_tensor *yc = NULL, *yg = NULL;
    bool ok = lt_matmul(ac, bc, ta, tb, &yc) == LT_OK && lt_matmul(ag, bg, ta, tb, &yg) == LT_OK;
    if (!ok) fprintf(stderr, "%s: lt_matmul failed: %s\n", what, lt_last_error());
    if (ok) {
        snprintf(name, sizeof name, "%s (output)", what);
        ok = same(name, yg, LT_BF16, tc_cuda, yc, BF16_ATOL, BF16_RTOL);
    }
    if (ok && backward && lt_tensor_numel(yc) > 0) {
        int64_t shape[LT_MAX_DIMS];
        lt_tensor_shape(yc, shape);
        lt_tensor *r = tt_rand(shape, lt_tensor_ndim(yc), LT_BF16, -1, 1);
        ok = lt_backward_grad(yc, r) == LT_OK && lt_backward_grad(yg, put(r, tc_cuda, LT_BF16, false)) == LT_OK;
        if (!ok) fprintf(stderr, "%s: backward failed: %s\n", what, lt_last_error());
        if (ok) {
            snprintf(name, sizeof name, "%s (grad a)", what);
            ok = same(name, grad_of(ag), LT_BF16, tc_cuda, grad_of(ac), BF16_ATOL, BF16_RTOL);
        }
        if (ok) {
            snprintf(name, sizeof name, "%s (grad b)", what);
            ok = same(name, grad_of(bg), LT_BF16, tc_cuda, grad_of(bc), BF16_ATOL, BF16_RTOL);
        }
    }
    lt_scope_end();
    return ok;
}

static void test_bf16_sizes(void) {
    char what[128];
    int n_sizes = tc_small ? 4 : 6;
    for (int i = 0; i < n_sizes; i++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            /* each odd size in turn as m, k and n, the others small */
            int64_t z = tc_odd_sizes[i], dims[3][3] = {{z, 5, 3}, {3, z, 5}, {5, 3, z}};
            for (int w = 0; w < 3; w++) {
                int64_t m = dims[w][0], k = dims[w][1], n = dims[w][2], sa[2], sb[2];
                stored(sa, NULL, 0, m, k, ta);
                stored(sb, NULL, 0, k, n, tb);
                snprintf(what, sizeof what, "bf16 %lldx%lldx%lld ta=%d tb=%d", (long long)m, (long long)k, (long long)n,
                         ta, tb);
                CHECK(check_bf16(what, tt_rand(sa, 2, LT_BF16, -1, 1), tt_rand(sb, 2, LT_BF16, -1, 1), ta, tb, true));
            }
        }
}

static void test_bf16_batches(void) {
    struct {
        int na, nb;
        int64_t ba[3], bb[3];
    } cases[] = {
        {1, 1, {3}, {3}},       /* strided batched */
        {2, 0, {2, 3}, {0}},    /* b shared: folded into one product; its gradient summed in one product */
        {2, 2, {3, 1}, {1, 4}}, /* both broadcast: batch stride 0 */
        {1, 2, {1}, {2, 3}},
    };
    char what[128];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
            int na = stored(sa, cases[c].ba, cases[c].na, 33, 31, ta);
            int nb = stored(sb, cases[c].bb, cases[c].nb, 31, 7, tb);
            snprintf(what, sizeof what, "bf16 batch case %zu ta=%d tb=%d", c, ta, tb);
            CHECK(check_bf16(what, tt_rand(sa, na, LT_BF16, -1, 1), tt_rand(sb, nb, LT_BF16, -1, 1), ta, tb, true));
        }
}

/* Views made the same way on both devices: permuted (read column-major in place, ld from the stride), every other
 * column (copied first: no BLAS layout), a padded leading dimension (a column slice), and an expanded batch. */
static void test_bf16_views(void) {
    int64_t sa[3] = {2, 9, 33}, sat[3] = {2, 33, 9}, sb[3] = {2, 33, 6}, wide[3] = {2, 33, 13}, sa4[3] = {4, 9, 33};
    lt_tensor *base_a = tt_rand(sa, 3, LT_BF16, -1, 1), *base_at = tt_rand(sat, 3, LT_BF16, -1, 1);
    lt_tensor *base_b = tt_rand(sb, 3, LT_BF16, -1, 1), *base_w = tt_rand(wide, 3, LT_BF16, -1, 1);
    lt_tensor *base_a4 = tt_rand(sa4, 3, LT_BF16, -1, 1);
    lt_device devs[2] = {LT_DEVICE_CPU, tc_cuda};
    lt_tensor *y[4][2];
    for (int d = 0; d < 2; d++) {
        lt_tensor *a = put(base_a, devs[d], LT_BF16, false), *at = put(base_at, devs[d], LT_BF16, false);
        lt_tensor *b = put(base_b, devs[d], LT_BF16, false), *w = put(base_w, devs[d], LT_BF16, false);
        lt_tensor *a4 = put(base_a4, devs[d], LT_BF16, false), *atp, *wcols, *wpad, *b1, *bx;
        CHECK_OK(lt_transpose(at, 1, 2, &atp));                 /* [2, 9, 33] column-major */
        CHECK_OK(lt_slice(w, 2, 0, 12, 2, &wcols));             /* [2, 33, 6] every other column: copied */
        CHECK_OK(lt_slice(w, 2, 1, 7, 1, &wpad));               /* [2, 33, 6] with row stride 13 */
        CHECK_OK(lt_slice(b, 0, 0, 1, 1, &b1));                 /* [1, 33, 6] */
        CHECK_OK(lt_expand(b1, (int64_t[]){4, 33, 6}, 3, &bx)); /* batch stride 0 */
        CHECK_OK(lt_matmul(atp, b, false, false, &y[0][d]));
        CHECK_OK(lt_matmul(a, wcols, false, false, &y[1][d]));
        CHECK_OK(lt_matmul(a, wpad, false, false, &y[2][d]));
        CHECK_OK(lt_matmul(a4, bx, false, false, &y[3][d]));
    }
    static const char *names[4] = {"bf16 permuted a", "bf16 strided b (copied)", "bf16 padded ld", "bf16 expanded b"};
    for (int i = 0; i < 4; i++) CHECK(same(names[i], y[i][1], LT_BF16, tc_cuda, y[i][0], BF16_ATOL, BF16_RTOL));
}

static void test_bf16_k0_and_empty(void) {
    int64_t a0[2] = {33, 0}, b0[2] = {0, 31}, ae[3] = {0, 4, 5}, be[2] = {5, 3};
    lt_tensor *y;
    CHECK_OK(lt_matmul(put(tt_rand(a0, 2, LT_BF16, -1, 1), tc_cuda, LT_BF16, false),
                       put(tt_rand(b0, 2, LT_BF16, -1, 1), tc_cuda, LT_BF16, false), false, false, &y));
    CHECK(lt_tensor_dtype(y) == LT_BF16 && lt_tensor_numel(y) == 33 * 31);
    double *v = tt_values(y);
    for (int i = 0; i < 33 * 31; i++) CHECK(v[i] == 0);
    free(v);
    CHECK_OK(lt_matmul(put(tt_rand(ae, 3, LT_BF16, -1, 1), tc_cuda, LT_BF16, false),
                       put(tt_rand(be, 2, LT_BF16, -1, 1), tc_cuda, LT_BF16, false), false, false, &y));
    CHECK(lt_tensor_numel(y) == 0 && lt_tensor_dtype(y) == LT_BF16);
    /* k = 0 with a bias: the gemm's beta = 1 path on a bf16 c (c = bias) */
    int64_t x0[2] = {5, 0}, w0[2] = {0, 33}, n = 33;
    lt_tensor *bias = tt_rand(&n, 1, LT_BF16, -1, 1), *yc, *yg;
    CHECK_OK(lt_linear(tt_rand(x0, 2, LT_BF16, -1, 1), tt_rand(w0, 2, LT_BF16, -1, 1), bias, &yc));
    CHECK_OK(lt_linear(put(tt_rand(x0, 2, LT_BF16, -1, 1), tc_cuda, LT_BF16, false),
                       put(tt_rand(w0, 2, LT_BF16, -1, 1), tc_cuda, LT_BF16, false), put(bias, tc_cuda, LT_BF16, false),
                       &yg));
    CHECK(same("bf16 linear k 0", yg, LT_BF16, tc_cuda, yc, 0, 0));
}

/* lt_linear on bf16 tensors: the bias rides the bf16 c (beta = 1); db sums bf16 dy in f32. */
static void test_bf16_linear(void) {
    int64_t K = tc_small ? 33 : 65, N = 31, sx[3] = {2, 17, K}, sw[2] = {K, N};
    lt_tensor *x = tt_rand(sx, 3, LT_BF16, -1, 1), *w = tt_rand(sw, 2, LT_BF16, -1, 1),
              *b = tt_rand(&N, 1, LT_BF16, -1, 1);
    lt_tensor *in[2][3], *y[2];
    lt_device devs[2] = {LT_DEVICE_CPU, tc_cuda};
    int64_t ys[3] = {2, 17, N};
    lt_tensor *r = tt_rand(ys, 3, LT_BF16, -1, 1);
    for (int d = 0; d < 2; d++) {
        in[d][0] = put(x, devs[d], LT_BF16, true);
        in[d][1] = put(w, devs[d], LT_BF16, true);
        in[d][2] = put(b, devs[d], LT_BF16, true);
        CHECK_OK(lt_linear(in[d][0], in[d][1], in[d][2], &y[d]));
        CHECK_OK(lt_backward_grad(y[d], put(r, devs[d], LT_BF16, false)));
    }
    CHECK(same("bf16 linear (output)", y[1], LT_BF16, tc_cuda, y[0], BF16_ATOL, BF16_RTOL));
    static const char *names[3] = {"bf16 linear dx", "bf16 linear dw", "bf16 linear db"};
    for (int i = 0; i < 3; i++)
        CHECK(same(names[i], grad_of(in[1][i]), LT_BF16, tc_cuda, grad_of(in[0][i]), BF16_ATOL, BF16_RTOL));
}

/* ---- autocast ---- */

/* a and b f32 CPU tensors. cuda under autocast vs the CPU's f32 product of the rounded values; the backward (after
 * autocast ended) vs the CPU's from the rounded upstream gradient. */
static bool check_autocast_matmul(const char *what, const lt_tensor *a, const lt_tensor *b, bool ta, bool tb) {
    char name[256];
    lt_scope_begin();
    lt_tensor *ar = rounded(a, true), *br = rounded(b, true);
    lt_tensor *ag = put(a, tc_cuda, LT_F32, true), *bg = put(b, tc_cuda, LT_F32, true);
    lt_tensor *yr = NULL, *yg = NULL, *y32 = NULL;
    bool ok = lt_matmul(ar, br, ta, tb, &yr) == LT_OK;
    ok = ok && lt_autocast_begin(LT_BF16) == LT_OK;
    if (ok) {
        ok = lt_matmul(ag, bg, ta, tb, &yg) == LT_OK;
        lt_autocast_end();
    }
    if (!ok) fprintf(stderr, "%s: lt_matmul failed: %s\n", what, lt_last_error());
    ok = ok && lt_autocast_dtype() == LT_F32;
    if (ok) {
        snprintf(name, sizeof name, "%s (output)", what);
        ok = same(name, yg, LT_F32, tc_cuda, yr, F32_ATOL, F32_RTOL);
    }
    int64_t k = lt_tensor_dim(a, ta ? -2 : -1);
    if (ok && k >= 31) { /* and it is not the f32 product: the operands were rounded */
        lt_no_grad_begin();
        ok = lt_matmul(a, b, ta, tb, &y32) == LT_OK && max_abs_diff(yg, y32) > 1e-3;
        lt_no_grad_end();
        if (!ok) fprintf(stderr, "%s: the autocast product equals the f32 one\n", what);
    }
    if (ok && lt_tensor_numel(yr) > 0) {
        int64_t shape[LT_MAX_DIMS];
        lt_tensor_shape(yr, shape);
        lt_tensor *r = tt_rand(shape, lt_tensor_ndim(yr), LT_F32, -1, 1);
        ok = lt_backward_grad(yr, rounded(r, false)) == LT_OK &&
             lt_backward_grad(yg, put(r, tc_cuda, LT_F32, false)) == LT_OK;
        if (!ok) fprintf(stderr, "%s: backward failed: %s\n", what, lt_last_error());
        if (ok) {
            snprintf(name, sizeof name, "%s (grad a)", what);
            ok = same(name, grad_of(ag), LT_F32, tc_cuda, grad_of(ar), F32_ATOL, F32_RTOL);
        }
        if (ok) {
            snprintf(name, sizeof name, "%s (grad b)", what);
            ok = same(name, grad_of(bg), LT_F32, tc_cuda, grad_of(br), F32_ATOL, F32_RTOL);
        }
    }
    lt_scope_end();
    return ok;
}

static void test_autocast_matmul(void) {
    char what[128];
    int n_sizes = tc_small ? 4 : 6;
    for (int i = 0; i < n_sizes; i++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t z = tc_odd_sizes[i], m = z, k = i == 0 ? 33 : z, n = 7, sa[2], sb[2];
            stored(sa, NULL, 0, m, k, ta);
            stored(sb, NULL, 0, k, n, tb);
            snprintf(what, sizeof what, "autocast %lldx%lldx%lld ta=%d tb=%d", (long long)m, (long long)k, (long long)n,
                     ta, tb);
            CHECK(check_autocast_matmul(what, tt_rand(sa, 2, LT_F32, -1, 1), tt_rand(sb, 2, LT_F32, -1, 1), ta, tb));
        }
    struct {
        int na, nb;
        int64_t ba[3], bb[3];
    } cases[] = {{1, 1, {3}, {3}}, {2, 0, {2, 3}, {0}}, {2, 2, {3, 1}, {1, 4}}, {1, 2, {1}, {2, 3}}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
            int na = stored(sa, cases[c].ba, cases[c].na, 17, 33, ta);
            int nb = stored(sb, cases[c].bb, cases[c].nb, 33, 9, tb);
            snprintf(what, sizeof what, "autocast batch case %zu ta=%d tb=%d", c, ta, tb);
            CHECK(check_autocast_matmul(what, tt_rand(sa, na, LT_F32, -1, 1), tt_rand(sb, nb, LT_F32, -1, 1), ta, tb));
        }
}

/* An expanded (stride-0) f32 operand stays broadcast through the conversion: same result as its materialised copy. */
static void test_autocast_expanded(void) {
    int64_t s1[3] = {1, 33, 6}, s4[3] = {4, 33, 6}, sa[3] = {4, 9, 33};
    lt_tensor *b1 = tt_rand(s1, 3, LT_F32, -1, 1), *a = tt_rand(sa, 3, LT_F32, -1, 1);
    lt_tensor *bx, *bc, *ag = put(a, tc_cuda, LT_F32, false), *bg = put(b1, tc_cuda, LT_F32, false), *bgx, *y, *yr;
    CHECK_OK(lt_expand(bg, s4, 3, &bgx));
    CHECK_OK(lt_expand(rounded(b1, false), s4, 3, &bx));
    CHECK_OK(lt_contiguous(bx, &bc));
    CHECK_OK(lt_matmul(rounded(a, false), bc, false, false, &yr));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_status st = lt_matmul(ag, bgx, false, false, &y);
    lt_autocast_end();
    CHECK_OK(st);
    CHECK(same("autocast expanded b", y, LT_F32, tc_cuda, yr, F32_ATOL, F32_RTOL));
}

/* k = 0 and empty outputs under autocast: the bf16 copies are empty, the product is c = beta * c in f32 (0, or the
 * bias through lt_linear's beta = 1). */
static void test_autocast_empty(void) {
    int64_t x0[2] = {5, 0}, w0[2] = {0, 33}, ae[3] = {0, 4, 5}, be[2] = {5, 3}, n = 33;
    lt_tensor *x = tt_rand(x0, 2, LT_F32, -1, 1), *w = tt_rand(w0, 2, LT_F32, -1, 1),
              *b = tt_rand(&n, 1, LT_F32, -1, 1);
    lt_tensor *xg = put(x, tc_cuda, LT_F32, true), *wg = put(w, tc_cuda, LT_F32, true),
              *bg = put(b, tc_cuda, LT_F32, true);
    lt_tensor *ag = put(tt_rand(ae, 3, LT_F32, -1, 1), tc_cuda, LT_F32, false);
    lt_tensor *bge = put(tt_rand(be, 2, LT_F32, -1, 1), tc_cuda, LT_F32, false), *y0, *yl, *ye, *yr;
    CHECK_OK(lt_linear(x, w, b, &yr));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_status s1 = lt_matmul(xg, wg, false, false, &y0), s2 = lt_linear(xg, wg, bg, &yl);
    lt_status s3 = lt_matmul(ag, bge, false, false, &ye);
    lt_autocast_end();
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK_OK(s3);
    CHECK(lt_tensor_dtype(y0) == LT_F32 && lt_tensor_numel(y0) == 5 * 33);
    double *v = tt_values(y0);
    for (int i = 0; i < 5 * 33; i++) CHECK(v[i] == 0);
    free(v);
    CHECK(same("autocast linear k 0 (the bias)", yl, LT_F32, tc_cuda, yr, 0, 0));
    CHECK(lt_tensor_numel(ye) == 0 && lt_tensor_dtype(ye) == LT_F32);
    int64_t sy[2] = {5, 33};
    CHECK_OK(lt_backward_grad(yl, put(tt_rand(sy, 2, LT_F32, -1, 1), tc_cuda, LT_F32, false)));
    CHECK(lt_tensor_dtype(grad_of(bg)) == LT_F32 && lt_tensor_numel(grad_of(wg)) == 0);
}

/* lt_linear under autocast: x and w rounded, the bias added in f32; dx and dw from the rounded dy, db from dy itself.
 */
static bool check_autocast_linear(const char *what, const int64_t *sx, int nx, int64_t N, bool bias) {
    char name[256];
    lt_scope_begin();
    int64_t K = sx[nx - 1], sw[2] = {K, N}, sy[LT_MAX_DIMS];
    memcpy(sy, sx, sizeof(int64_t) * (size_t)nx);
    sy[nx - 1] = N;
    lt_tensor *x = tt_rand(sx, nx, LT_F32, -1, 1), *w = tt_rand(sw, 2, LT_F32, -1, 1);
    lt_tensor *b = bias ? tt_rand(&N, 1, LT_F32, -1, 1) : NULL, *r = tt_rand(sy, nx, LT_F32, -1, 1);
    /* CPU: pass 1 (rounded dy) for dx and dw, pass 2 (dy) for db */
    lt_tensor *xr = rounded(x, true), *wr = rounded(w, true), *b1 = bias ? put(b, LT_DEVICE_CPU, LT_F32, true) : NULL;
    lt_tensor *b2 = bias ? put(b, LT_DEVICE_CPU, LT_F32, true) : NULL, *yr, *yr2;
    lt_tensor *xg = put(x, tc_cuda, LT_F32, true), *wg = put(w, tc_cuda, LT_F32, true);
    lt_tensor *bg = bias ? put(b, tc_cuda, LT_F32, true) : NULL, *yg = NULL;
    bool ok = lt_linear(xr, wr, b1, &yr) == LT_OK && lt_backward_grad(yr, rounded(r, false)) == LT_OK;
    if (ok && bias) {
        lt_tensor *xr2 = rounded(x, false), *wr2 = rounded(w, false);
        ok = lt_linear(xr2, wr2, b2, &yr2) == LT_OK && lt_backward_grad(yr2, r) == LT_OK;
    }
    ok = ok && lt_autocast_begin(LT_BF16) == LT_OK;
    if (ok) {
        ok = lt_linear(xg, wg, bg, &yg) == LT_OK;
        lt_autocast_end();
    }
    ok = ok && lt_backward_grad(yg, put(r, tc_cuda, LT_F32, false)) == LT_OK;
    if (!ok) fprintf(stderr, "%s: failed: %s\n", what, lt_last_error());
    if (ok) {
        snprintf(name, sizeof name, "%s (output)", what);
        ok = same(name, yg, LT_F32, tc_cuda, yr, F32_ATOL, F32_RTOL);
    }
    if (ok) {
        snprintf(name, sizeof name, "%s (dx)", what);
        ok = same(name, grad_of(xg), LT_F32, tc_cuda, grad_of(xr), F32_ATOL, F32_RTOL);
    }
    if (ok) {
        snprintf(name, sizeof name, "%s (dw)", what);
        ok = same(name, grad_of(wg), LT_F32, tc_cuda, grad_of(wr), F32_ATOL, F32_RTOL);
    }
    if (ok && bias) {
        snprintf(name, sizeof name, "%s (db)", what);
        ok = same(name, grad_of(bg), LT_F32, tc_cuda, grad_of(b2), F32_ATOL, F32_RTOL);
    }
    lt_scope_end();
    return ok;
}

static void test_autocast_linear(void) {
    int64_t s2[2] = {33, 31}, s3[3] = {2, 17, tc_small ? 65 : 257}, s1[2] = {1, 1};
    CHECK(check_autocast_linear("autocast linear [33, 31] x [31, 65] + b", s2, 2, 65, true));
    CHECK(check_autocast_linear("autocast linear [2, 17, K] x [K, 32] + b", s3, 3, 32, true));
    CHECK(check_autocast_linear("autocast linear [2, 17, K] x [K, 33]", s3, 3, 33, false));
    CHECK(check_autocast_linear("autocast linear [1, 1] x [1, 1] + b", s1, 2, 1, true));
}

/* The fused classifier under autocast: loss from the rounded x and w (f32 logits and softmax) agrees tightly; the
 * gradients come from bf16-rounded logit gradients on cuda, so they agree within that rounding (1e-2 of the largest).
 * N < C keeps the bf16 logit gradient for the backward's dw product (src/ops/classifier.c).
 */
static void check_autocast_classifier(int64_t N) {
    int64_t C = 32, Vp = 70, V = 64, sx[2] = {N, C}, sw[2] = {Vp, C};
    lt_tensor *x = tt_rand(sx, 2, LT_F32, -1, 1), *w = tt_rand(sw, 2, LT_F32, -1, 1);
    lt_tensor *t = tt_randint(&N, 1, LT_I64, V);
    int64_t *tv = lt_tensor_data(t);
    tv[N / 2] = tv[N - 1] = -1; /* ignored rows */
    lt_tensor *xr = rounded(x, true), *wr = rounded(w, true), *xg = put(x, tc_cuda, LT_F32, true);
    lt_tensor *wg = put(w, tc_cuda, LT_F32, true), *tg = put(t, tc_cuda, LT_I64, false), *lr, *lg, *l32;
    CHECK_OK(lt_classifier_loss(xr, wr, t, V, -1, &lr));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_status st = lt_classifier_loss(xg, wg, tg, V, -1, &lg);
    lt_autocast_end();
    CHECK_OK(st);
    CHECK(same("autocast classifier loss", lg, LT_F32, tc_cuda, lr, 1e-6, 1e-5));
    lt_no_grad_begin();
    st = lt_classifier_loss(x, w, t, V, -1, &l32);
    lt_no_grad_end();
    CHECK_OK(st);
    CHECK(max_abs_diff(lg, l32) > 0); /* the operands were rounded */
    CHECK_OK(lt_backward(lr));
    CHECK_OK(lt_backward(lg));
    const lt_tensor *pairs[2][2] = {{grad_of(xg), grad_of(xr)}, {grad_of(wg), grad_of(wr)}};
    static const char *names[2] = {"autocast classifier dx", "autocast classifier dw"};
    for (int i = 0; i < 2; i++) {
        double *g = tt_values(pairs[i][0]), *r = tt_values(pairs[i][1]), big = 0;
        int64_t n = lt_tensor_numel(pairs[i][1]);
        for (int64_t j = 0; j < n; j++) big = fmax(big, fabs(r[j]));
        CHECK(lt_tensor_dtype(pairs[i][0]) == LT_F32);
        CHECK(tt_close(names[i], g, r, n, 1e-2 * big, 0));
        free(g);
        free(r);
    }
}

static void test_autocast_classifier(void) {
    check_autocast_classifier(37);
    check_autocast_classifier(5);
}

/* Autocast is off after lt_autocast_end: full f32 products again, and a node recorded without autocast keeps f32 in
 * a backward run inside an autocast region. It leaves f64 and bf16 tensors alone, and mixing dtypes stays an error. */
static void test_autocast_scope(void) {
    int64_t sa[2] = {17, 65}, sb[2] = {65, 9};
    lt_tensor *a = tt_rand(sa, 2, LT_F32, -1, 1), *b = tt_rand(sb, 2, LT_F32, -1, 1);
    lt_tensor *ac = put(a, LT_DEVICE_CPU, LT_F32, true), *bc = put(b, LT_DEVICE_CPU, LT_F32, true);
    lt_tensor *ag = put(a, tc_cuda, LT_F32, true), *bg = put(b, tc_cuda, LT_F32, true), *yc, *yg, *y;
    CHECK(lt_autocast_dtype() == LT_F32);
    CHECK_OK(lt_autocast_begin(LT_BF16));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_autocast_end();
    CHECK(lt_autocast_dtype() == LT_BF16); /* still inside the outer region */
    lt_autocast_end();
    CHECK(lt_autocast_dtype() == LT_F32);
    CHECK_OK(lt_matmul(ac, bc, false, false, &yc));
    CHECK_OK(lt_matmul(ag, bg, false, false, &yg));
    CHECK(same("after autocast: f32 product", yg, LT_F32, tc_cuda, yc, F32_ATOL, F32_RTOL));
    int64_t sy[2] = {17, 9};
    lt_tensor *r = tt_rand(sy, 2, LT_F32, -1, 1);
    CHECK_OK(lt_backward_grad(yc, r));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_status st = lt_backward_grad(yg, put(r, tc_cuda, LT_F32, false));
    lt_autocast_end();
    CHECK_OK(st);
    CHECK(same("f32 node, backward inside autocast: grad a", grad_of(ag), LT_F32, tc_cuda, grad_of(ac), F32_ATOL,
               F32_RTOL));
    CHECK(same("f32 node, backward inside autocast: grad b", grad_of(bg), LT_F32, tc_cuda, grad_of(bc), F32_ATOL,
               F32_RTOL));

    /* f64 and bf16 tensors under autocast: untouched (f64 stays exact, bf16 stays bf16) */
    lt_tensor *a64 = put(a, tc_cuda, LT_F64, false), *b64 = put(b, tc_cuda, LT_F64, false), *yr64;
    lt_tensor *a16 = put(a, tc_cuda, LT_BF16, false), *b16 = put(b, tc_cuda, LT_BF16, false), *y16;
    CHECK_OK(
        lt_matmul(put(a, LT_DEVICE_CPU, LT_F64, false), put(b, LT_DEVICE_CPU, LT_F64, false), false, false, &yr64));
    CHECK_OK(lt_autocast_begin(LT_BF16));
    lt_status s1 = lt_matmul(a64, b64, false, false, &y);
    lt_status s2 = lt_matmul(a16, b16, false, false, &y16);
    lt_tensor *bad = NULL;
    lt_status s3 = lt_matmul(a16, bg, false, false, &bad);
    lt_status s4 = lt_linear(ag, b16, NULL, &bad);
    lt_autocast_end();
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK(s3 == LT_ERR_DTYPE && s4 == LT_ERR_DTYPE && bad == NULL);
    CHECK(same("f64 under autocast", y, LT_F64, tc_cuda, yr64, 1e-12, 1e-12));
    CHECK(lt_tensor_dtype(y16) == LT_BF16);
}

/* ---- a tiny GPT on cuda, f32 vs autocast ---- */

enum { GB = 2, GT = 16 };

static lt_status gpt_step(lt_gpt *m, lt_tensor *x, lt_tensor *y, bool autocast, double *loss_out) {
    lt_tensor *loss = NULL;
    float v = NAN;
    lt_status st = lt_params_zero_grad(lt_gpt_params(m));
    if (st == LT_OK && autocast) st = lt_autocast_begin(LT_BF16);
    if (st != LT_OK) return st;
    st = lt_gpt_forward(m, x, y, true, NULL, &loss); /* forward and backward under the one switch */
    if (st == LT_OK) st = lt_backward(loss);
    if (autocast) lt_autocast_end();
    if (st == LT_OK && lt_tensor_dtype(loss) != LT_F32) return LT_ERR_INTERNAL;
    if (st == LT_OK) st = lt_tensor_to_host(loss, &v, sizeof v);
    *loss_out = v;
    return st;
}

static void test_gpt(void) {
    lt_gpt_config cfg = {.struct_size = sizeof(lt_gpt_config),
                         .vocab_size = 50,
                         .padded_vocab_size = 64,
                         .block_size = GT,
                         .n_layer = 2,
                         .n_head = 2,
                         .n_embd = 32};
    lt_gpt *m = NULL;
    CHECK_OK(lt_gpt_create(&cfg, LT_F32, tc_cuda, 99, &m));
    int32_t tok[GB * GT + 1];
    uint32_t s = 7;
    for (int i = 0; i < GB * GT + 1; i++) tok[i] = (int32_t)(((s = s * 1664525u + 1013904223u) >> 8) % 50u);
    lt_tensor *x, *y, *flat, *g32, *g16;
    CHECK_OK(lt_tensor_from_host(tok, (int64_t[]){GB, GT}, 2, LT_I32, tc_cuda, &x));
    CHECK_OK(lt_tensor_from_host(tok + 1, (int64_t[]){GB, GT}, 2, LT_I32, tc_cuda, &y));
    double l32, l16;
    lt_status st = gpt_step(m, x, y, false, &l32);
    CHECK_OK(st);
    CHECK_OK(lt_params_flat(lt_gpt_params(m), &flat, &g32));
    g32 = put(g32, LT_DEVICE_CPU, LT_F64, false); /* a copy: the flat buffer is reused */
    st = gpt_step(m, x, y, true, &l16);
    if (st != LT_OK) fprintf(stderr, "autocast gpt step: %s\n", lt_last_error());
    CHECK_OK(st);
    CHECK(lt_autocast_dtype() == LT_F32);
    CHECK_OK(lt_params_flat(lt_gpt_params(m), &flat, &g16));
    CHECK(lt_tensor_dtype(g16) == LT_F32 && lt_tensor_dtype(flat) == LT_F32); /* f32 master weights and grads */
    printf("gpt loss f32 %.6f autocast %.6f\n", l32, l16);
    CHECK(fabs(l16 - l32) <= 2e-2 * fabs(l32));
    CHECK(l16 != l32); /* the products did run in bf16 */
    double *a = tt_values(g16), *b = tt_values(g32), dd = 0, nn = 0;
    for (int64_t i = 0; i < lt_tensor_numel(g32); i++) {
        dd += (a[i] - b[i]) * (a[i] - b[i]);
        nn += b[i] * b[i];
    }
    free(a);
    free(b);
    printf("gpt gradient relative difference %.3g\n", sqrt(dd / nn));
    CHECK(sqrt(dd / nn) <= 5e-2);
    lt_gpt_free(m);
}

int main(void) {
    tc_require_cuda();
    tt_seed(4);
    RUN(test_bf16_sizes);
    RUN(test_bf16_batches);
    RUN(test_bf16_views);
    RUN(test_bf16_k0_and_empty);
    RUN(test_bf16_linear);
    RUN(test_autocast_matmul);
    RUN(test_autocast_expanded);
    RUN(test_autocast_empty);
    RUN(test_autocast_linear);
    RUN(test_autocast_classifier);
    RUN(test_autocast_scope);
    RUN(test_gpt);
    return tt_finish();
}
