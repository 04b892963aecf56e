/* Tests of lt_dropout: the mask against Philox4x32-10 words computed here (a second implementation, pinned by the
 * Random123 known-answer vectors) and against lt_tensor_rand on the same stream, the kept fraction, repeatability,
 * strided input, the p == 0 identity, the backward against finite differences, and the error paths. */
#include "test.h"

/* ---- Philox4x32-10, written from Salmon et al. (2011), independent of src/core/philox.h ---- */

static void philox4x32_10(const uint32_t in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t c[4] = {in[0], in[1], in[2], in[3]}, k[2] = {key_in[0], key_in[1]};
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t next[4] = {(uint32_t)(p1 >> 32) ^ c[1] ^ k[0], (uint32_t)p1, (uint32_t)(p0 >> 32) ^ c[3] ^ k[1],
                            (uint32_t)p0};
        memcpy(c, next, sizeof c);
        k[0] += 0x9E3779B9u;
        k[1] += 0xBB67AE85u;
    }
    memcpy(out, c, sizeof c);
}

/* Word w of the stream (seed, subsequence 0): lane w % 4 of the block at counter w / 4, as cuRAND lays it out. */
static uint32_t stream_word(uint64_t seed, uint64_t w) {
    uint32_t ctr[4] = {(uint32_t)(w >> 2), (uint32_t)(w >> 34), 0, 0},
             key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    return out[w & 3];
}

/* curand_uniform's map to (0, 1]: x * 2^-32 + 2^-33, in float. */
static float uniform01(uint32_t x) { return (float)x * 2.3283064e-10f + 2.3283064e-10f / 2.0f; }

static void test_philox_reference(void) {
    /* Random123's kat_vectors for philox4x32_10 */
    uint32_t zero[4] = {0, 0, 0, 0}, zkey[2] = {0, 0}, ones[4] = {~0u, ~0u, ~0u, ~0u}, okey[2] = {~0u, ~0u};
    uint32_t pi[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, pkey[2] = {0xa4093822u, 0x299f31d0u};
    uint32_t out[4];
    philox4x32_10(zero, zkey, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u);
    philox4x32_10(ones, okey, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu);
    philox4x32_10(pi, pkey, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u && out[3] == 0x24126ea1u);
}

/* ---- Forward ---- */

/* y = dropout(x) must equal the mask computed here from the stream, scaled by 1/(1-p). */
static bool check_against_philox(const char *what, const lt_tensor *x, double p, lt_philox rng) {
    lt_philox r = rng;
    lt_tensor *y;
    if (lt_dropout(x, p, &r, &y) != LT_OK) {
        fprintf(stderr, "%s: %s\n", what, lt_last_error());
        return false;
    }
    int64_t n = lt_tensor_numel(x);
    double *xv = tt_values(x), *ref = malloc(sizeof(double) * (size_t)(n + 1));
    bool f32 = lt_tensor_dtype(x) == LT_F32;
    for (int64_t i = 0; i < n; i++) {
        bool keep = uniform01(stream_word(rng.seed, rng.offset + (uint64_t)i)) > p;
        ref[i] = keep ? (f32 ? (double)((float)xv[i] * (float)(1.0 / (1.0 - p))) : xv[i] / (1.0 - p)) : 0.0;
    }
    bool ok = tt_tensor_close(what, y, ref, 0, f32 ? 1e-7 : 1e-15);
    uint64_t advanced = ((uint64_t)n + 3) / 4 * 4;
    if (r.offset != rng.offset + advanced || r.seed != rng.seed) {
        fprintf(stderr, "%s: offset advanced to %llu, expected %llu\n", what, (unsigned long long)r.offset,
                (unsigned long long)(rng.offset + advanced));
        ok = false;
    }
    free(xv);
    free(ref);
    return ok;
}

static void test_mask_matches_philox(void) {
    tt_seed(51);
    int64_t s[2] = {5, 37}, s1[1] = {1}, s3[3] = {2, 3, 7};
    /* offsets that do and do not start on a block boundary, and a seed with high bits set */
    lt_philox streams[3] = {{1234, 0}, {1234, 6}, {0x9E3779B97F4A7C15ull, 0xFFFFFFFEull}};
    for (int dt = 0; dt < 2; dt++) {
        lt_dtype dtype = dt ? LT_F64 : LT_F32;
        lt_tensor *x = tt_rand(s, 2, dtype, 0.5, 1.5);
        for (int k = 0; k < 3; k++) {
            char what[64];
            snprintf(what, sizeof what, "%s stream %d", lt_dtype_name(dtype), k);
            CHECK(check_against_philox(what, x, 0.3, streams[k]));
        }
        CHECK(check_against_philox("one element", tt_rand(s1, 1, dtype, 0.5, 1.5), 0.5, streams[1]));
        CHECK(check_against_philox("3-D, p = 0.9", tt_rand(s3, 3, dtype, -1, 1), 0.9, streams[2]));
        CHECK(check_against_philox("strided input", tt_strided(x), 0.3, streams[1]));
        lt_tensor *xt;
        CHECK_OK(lt_transpose(x, 0, 1, &xt));
        CHECK(check_against_philox("transposed input", xt, 0.3, streams[0]));
    }
}

/* The kept elements are exactly those where lt_tensor_rand's uniform on the same stream exceeds p. */
static void test_mask_matches_rand(void) {
    tt_seed(52);
    int64_t s[1] = {1001};
    lt_philox rng = {77, 10}, r1 = rng, r2 = rng;
    lt_tensor *x = tt_rand(s, 1, LT_F32, 0.5, 1.5), *y, *u;
    CHECK_OK(lt_dropout(x, 0.4, &r1, &y));
    CHECK_OK(lt_tensor_rand(s, 1, LT_F32, LT_DEVICE_CPU, &r2, &u));
    CHECK(r1.offset == r2.offset);
    double *yv = tt_values(y), *uv = tt_values(u);
    int agree = 0;
    for (int i = 0; i < 1001; i++) agree += (yv[i] != 0) == (uv[i] > 0.4);
    CHECK(agree == 1001);
    free(yv);
    free(uv);
}

static void test_fraction_and_repeatability(void) {
    tt_seed(53);
    int64_t s[1] = {1 << 20};
    lt_tensor *x = tt_rand(s, 1, LT_F32, 1, 2), *y1, *y2, *y3;
    lt_philox rng = {2024, 0}, again = rng;
    CHECK_OK(lt_dropout(x, 0.25, &rng, &y1));
    CHECK(rng.offset == (1u << 20));
    CHECK_OK(lt_dropout(x, 0.25, &again, &y2));
    CHECK_OK(lt_dropout(x, 0.25, &rng, &y3)); /* the advanced stream: a different mask */
    double *v1 = tt_values(y1), *v2 = tt_values(y2), *v3 = tt_values(y3), *xv = tt_values(x);
    int64_t kept = 0, same = 0, differ = 0;
    double sum_x = 0, sum_y = 0;
    for (int64_t i = 0; i < (1 << 20); i++) {
        kept += v1[i] != 0;
        same += v1[i] == v2[i];
        differ += (v1[i] != 0) != (v3[i] != 0);
        sum_x += xv[i];
        sum_y += v1[i];
    }
    double frac = (double)kept / (1 << 20);
    /* binomial sd is sqrt(0.25 * 0.75 / 2^20) = 4.2e-4: 0.003 is seven of them */
    CHECK(fabs(frac - 0.75) < 0.003);
    CHECK(same == (1 << 20));
    CHECK(differ > (1 << 20) / 4);           /* independent masks disagree on 2 * 0.25 * 0.75 = 37.5% */
    CHECK(fabs(sum_y / sum_x - 1.0) < 0.01); /* inverted dropout keeps the mean */
    free(v1);
    free(v2);
    free(v3);
    free(xv);
}

static void test_p_zero_is_identity(void) {
    tt_seed(54);
    int64_t s[2] = {3, 4};
    lt_tensor *x = tt_rand(s, 2, LT_F64, -1, 1), *y;
    lt_philox rng = {5, 8};
    CHECK_OK(lt_dropout(x, 0.0, &rng, &y));
    CHECK(lt_tensor_data(y) == lt_tensor_data(x));
    CHECK(rng.offset == 8); /* nothing drawn */
    /* outside any scope the caller owns the reference: releasing it leaves x alive */
    lt_scope_end();
    lt_tensor *z = NULL;
    lt_philox r2 = {5, 8};
    lt_tensor *outside = NULL;
    CHECK(lt_tensor_full(s, 2, 0.5, LT_F32, LT_DEVICE_CPU, &outside) == LT_OK);
    CHECK(lt_dropout(outside, 0.0, &r2, &z) == LT_OK && z == outside);
    lt_tensor_release(z);
    CHECK(lt_tensor_numel(outside) == 12);
    lt_tensor_release(outside);
    lt_scope_begin();
}

/* ---- Backward ---- */

typedef struct drop_ctx {
    lt_philox rng; /* copied on every call, so the forward, the backward and the finite differences share one mask */
    double p;
} drop_ctx;

static lt_status dropout_fn(void *ctx, lt_tensor **in, lt_tensor **out) {
    drop_ctx *c = ctx;
    lt_philox r = c->rng;
    return lt_dropout(in[0], c->p, &r, out);
}

static void test_backward(void) {
    tt_seed(55);
    int64_t s[2] = {6, 7}, s3[3] = {2, 3, 5};
    drop_ctx ctx = {{99, 3}, 0.35};
    lt_tensor *in[1] = {tt_leaf(s, 2, -1, 1)};
    CHECK(tt_gradcheck("dropout grad", dropout_fn, &ctx, in, 1));
    drop_ctx heavy = {{7, 0}, 0.8};
    lt_tensor *in3[1] = {tt_leaf(s3, 3, -1, 1)};
    CHECK(tt_gradcheck("dropout grad, p = 0.8", dropout_fn, &heavy, in3, 1));
    drop_ctx none = {{7, 0}, 0.0};
    CHECK(tt_gradcheck("dropout grad, p = 0", dropout_fn, &none, in3, 1));
}

/* ---- Errors ---- */

static void test_errors(void) {
    tt_seed(56);
    int64_t s[2] = {2, 3};
    lt_tensor *x = tt_rand(s, 2, LT_F32, -1, 1), *y = (lt_tensor *)1;
    lt_philox rng = {1, 4};
    CHECK_ERR(lt_dropout(x, 0.5, &rng, NULL), LT_ERR_ARG, "lt_dropout");
    CHECK_ERR(lt_dropout(NULL, 0.5, &rng, &y), LT_ERR_ARG, "lt_dropout");
    CHECK(y == NULL);
    CHECK_ERR(lt_dropout(x, 0.5, NULL, &y), LT_ERR_ARG, "lt_dropout");
    CHECK_ERR(lt_dropout(x, 1.0, &rng, &y), LT_ERR_ARG, "lt_dropout");
    CHECK_ERR(lt_dropout(x, -0.1, &rng, &y), LT_ERR_ARG, "lt_dropout");
    CHECK_ERR(lt_dropout(x, NAN, &rng, &y), LT_ERR_ARG, "lt_dropout");
    CHECK_ERR(lt_dropout(x, 0.0, NULL, &y), LT_ERR_ARG, "lt_dropout");
    CHECK_ERR(lt_dropout(tt_randint(s, 2, LT_I32, 3), 0.5, &rng, &y), LT_ERR_DTYPE, "lt_dropout");
    CHECK(y == NULL);
    CHECK(rng.seed == 1 && rng.offset == 4); /* failures draw nothing */
}

int main(void) {
    RUN(test_philox_reference);
    RUN(test_mask_matches_philox);
    RUN(test_mask_matches_rand);
    RUN(test_fraction_and_repeatability);
    RUN(test_p_zero_is_identity);
    RUN(test_backward);
    RUN(test_errors);
    return tt_finish();
}
