/* Unit tests of core.h and tensor.h outside views and autograd: creation, dtype conversion, copies, accessors,
 * scopes, refcounts, the allocator's statistics and every error path. Uses only core kernels (fill, copy, arange,
 * philox); every expected value comes from arithmetic or a reference conversion written here. */
#define _GNU_SOURCE /* CPU_COUNT and sched_getaffinity, to know what "all cores" means */
#include "test.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

static const lt_device CUDA0 = {LT_CUDA, 0};
/* CHECK_ERR for a call that may crash instead of failing (a NULL out pointer): it runs in a child process, so a
 * crash costs one failed check instead of the whole program. The child exits with 0 when the call failed with st
 * and a message naming fn, 99 when only the message is wrong, and 100 + the status when the status is wrong. */
#define CHECK_ERR_FORKED(expr, st, fn)                                                                                 \
    do {                                                                                                               \
        fflush(NULL);                                                                                                  \
        pid_t tt__pid = fork();                                                                                        \
        if (tt__pid == 0) {                                                                                            \
            lt_status tt__s = (expr);                                                                                  \
            _exit(tt__s != (st) ? 100 + (int)tt__s : strstr(lt_last_error(), (fn)) ? 0 : 99);                          \
        }                                                                                                              \
        int tt__ws = 0;                                                                                                \
        if (tt__pid < 0 || waitpid(tt__pid, &tt__ws, 0) != tt__pid) {                                                  \
            fprintf(stderr, "%s:%d: could not run %s in a child process\n", __FILE__, __LINE__, #expr);                \
            tt_failed_checks++;                                                                                        \
        } else if (WIFSIGNALED(tt__ws)) {                                                                              \
            fprintf(stderr, "%s:%d: %s crashed (signal %d), expected %s\n", __FILE__, __LINE__, #expr,                 \
                    WTERMSIG(tt__ws), lt_status_name(st));                                                             \
            tt_failed_checks++;                                                                                        \
        } else if (WEXITSTATUS(tt__ws) != 0) {                                                                         \
            int tt__c = WEXITSTATUS(tt__ws);                                                                           \
            fprintf(stderr, "%s:%d: %s: %s, expected %s\n", __FILE__, __LINE__, #expr,                                 \
                    tt__c == 99    ? "the message does not name the function"                                          \
                    : tt__c >= 100 ? lt_status_name((lt_status)(tt__c - 100))                                          \
                                   : "the child crashed (sanitizer exit)",                                             \
                    lt_status_name(st));                                                                               \
            tt_failed_checks++;                                                                                        \
        }                                                                                                              \
    } while (0)

static const lt_dtype ALL_DTYPES[LT_DTYPE_COUNT] = {LT_F32, LT_F64, LT_BF16, LT_F16, LT_I32, LT_I64, LT_U16, LT_U8};

static size_t bytes_in_use(void) {
    lt_alloc_stats s = {.struct_size = sizeof s};
    if (lt_alloc_get_stats(LT_DEVICE_CPU, &s) != LT_OK) abort();
    return s.bytes_in_use;
}

static uint32_t rand_u32(void) { return (uint32_t)tt_uniform(0, 4294967296.0); }

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- Reference half-precision formats, from their definitions (no bit tricks shared with the library) ---- */

typedef struct half_fmt {
    const char *name;
    lt_dtype dtype;
    int exp_bits, man_bits;
} half_fmt;

static const half_fmt BF16 = {"bf16", LT_BF16, 8, 7};
static const half_fmt F16 = {"f16", LT_F16, 5, 10};

static uint16_t inf_bits(const half_fmt *f) { return (uint16_t)(((1u << f->exp_bits) - 1) << f->man_bits); }

/* The value of a non-negative encoding k <= inf_bits, with the infinity encoding standing for the power of two that
 * follows the largest finite value: IEEE rounds as if the exponent range were unbounded, then overflows. */
static double half_magnitude(const half_fmt *f, uint32_t k) {
    int bias = (1 << (f->exp_bits - 1)) - 1;
    int e = (int)(k >> f->man_bits), m = (int)(k & ((1u << f->man_bits) - 1));
    if (e == 0) return ldexp(m, 1 - bias - f->man_bits);
    return ldexp(m + (1 << f->man_bits), e - bias - f->man_bits);
}

static double half_value(const half_fmt *f, uint16_t h) {
    uint16_t mag = h & 0x7fff;
    double v = mag > inf_bits(f) ? NAN : mag == inf_bits(f) ? INFINITY : half_magnitude(f, mag);
    return (h & 0x8000) ? -v : v;
}

static bool half_is_nan(const half_fmt *f, uint16_t h) { return (h & 0x7fff) > inf_bits(f); }
static bool half_is_quiet_nan(const half_fmt *f, uint16_t h) {
    return half_is_nan(f, h) && (h & (1u << (f->man_bits - 1)));
}

/* Round to nearest, ties to even, by bisection over the ordered encodings: the nearest representable neighbours
 * of |x| are compared by exact distance. NaN inputs are the caller's business. */
static uint16_t half_encode(const half_fmt *f, double x) {
    uint16_t sign = signbit(x) ? 0x8000 : 0, top = inf_bits(f);
    double a = fabs(x);
    if (a >= half_magnitude(f, top)) return sign | top;
    uint32_t lo = 0, hi = top; /* value(lo) <= a < value(hi) */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (half_magnitude(f, mid) <= a)
            lo = mid;
        else
            hi = mid;
    }
    double dl = a - half_magnitude(f, lo), dh = half_magnitude(f, hi) - a;
    uint32_t k = dl < dh ? lo : dh < dl ? hi : (lo & 1) ? hi : lo;
    return (uint16_t)(sign | k);
}

/* ---- Small helpers over the public API ---- */

static lt_tensor *from_host(const void *data, const int64_t *shape, int ndim, lt_dtype dtype) {
    lt_tensor *t = NULL;
    if (lt_tensor_from_host(data, shape, ndim, dtype, LT_DEVICE_CPU, &t) != LT_OK) {
        fprintf(stderr, "from_host: %s\n", lt_last_error());
        abort();
    }
    return t;
}

/* Converts n f32 values to a half format through lt_tensor_to and checks every result against half_encode. */
static bool check_f32_to_half(const half_fmt *f, const float *x, int64_t n) {
    lt_tensor *a = from_host(x, &n, 1, LT_F32), *h = NULL;
    if (lt_tensor_to(a, f->dtype, LT_DEVICE_CPU, &h) != LT_OK) {
        fprintf(stderr, "f32 -> %s: %s\n", f->name, lt_last_error());
        return false;
    }
    uint16_t *got = malloc(sizeof(uint16_t) * (size_t)n);
    bool ok = lt_tensor_to_host(h, got, sizeof(uint16_t) * (size_t)n) == LT_OK;
    for (int64_t i = 0; ok && i < n; i++) {
        bool good = isnan(x[i]) ? half_is_quiet_nan(f, got[i]) : got[i] == half_encode(f, x[i]);
        if (!good) {
            fprintf(stderr, "f32 -> %s: %.9g (0x%08x) gave 0x%04x, expected 0x%04x\n", f->name, x[i], f32_bits(x[i]),
                    got[i], isnan(x[i]) ? 0x7fff : half_encode(f, x[i]));
            ok = false;
        }
    }
    free(got);
    return ok;
}

/* ---- Creation ---- */

static void test_empty_geometry(void) {
    int64_t shape[3] = {2, 3, 4}, got[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    for (int k = 0; k < LT_DTYPE_COUNT; k++) {
        lt_tensor *t = NULL;
        CHECK_OK(lt_tensor_empty(shape, 3, ALL_DTYPES[k], LT_DEVICE_CPU, &t));
        CHECK(t != NULL);
        CHECK(lt_tensor_ndim(t) == 3);
        CHECK(lt_tensor_numel(t) == 24);
        CHECK(lt_tensor_dtype(t) == ALL_DTYPES[k]);
        CHECK_OK(lt_tensor_shape(t, got));
        CHECK(got[0] == 2 && got[1] == 3 && got[2] == 4);
        CHECK_OK(lt_tensor_strides(t, strides));
        CHECK(strides[0] == 12 && strides[1] == 4 && strides[2] == 1);
        CHECK(lt_tensor_is_contiguous(t));
        CHECK(lt_tensor_data(t) != NULL);
        CHECK((uintptr_t)lt_tensor_data(t) % 64 == 0); /* the allocator promises 64-byte blocks */
        const char *poison = getenv("LIBTRAIN_POISON_ALLOC");
        if (poison && strcmp(poison, "1") == 0) { /* CTest: fresh memory is 0xFF bytes, NaN in every float dtype */
            const unsigned char *p = lt_tensor_data(t);
            bool all = true;
            for (size_t i = 0; i < 24 * lt_dtype_size(ALL_DTYPES[k]); i++) all &= p[i] == 0xFF;
            CHECK(all);
        }
    }
    /* a 0-d tensor has one element; a zero-size dim gives zero elements and PyTorch's strides */
    lt_tensor *s = NULL, *z = NULL;
    CHECK_OK(lt_tensor_empty(NULL, 0, LT_F64, LT_DEVICE_CPU, &s));
    CHECK(lt_tensor_ndim(s) == 0 && lt_tensor_numel(s) == 1 && lt_tensor_is_contiguous(s));
    int64_t zshape[3] = {2, 0, 3};
    CHECK_OK(lt_tensor_empty(zshape, 3, LT_F32, LT_DEVICE_CPU, &z));
    CHECK(lt_tensor_numel(z) == 0);
    CHECK_OK(lt_tensor_strides(z, strides));
    CHECK(strides[0] == 3 && strides[1] == 3 && strides[2] == 1);
    /* eight dims is the maximum */
    int64_t eight[8] = {1, 2, 1, 2, 1, 2, 1, 3};
    lt_tensor *e = NULL;
    CHECK_OK(lt_tensor_empty(eight, 8, LT_U8, LT_DEVICE_CPU, &e));
    CHECK(lt_tensor_ndim(e) == 8 && lt_tensor_numel(e) == 24);
}

static void test_zeros_ones_full(void) {
    int64_t shape[2] = {3, 5};
    for (int k = 0; k < LT_DTYPE_COUNT; k++) {
        lt_dtype d = ALL_DTYPES[k];
        lt_tensor *z = NULL, *o = NULL;
        CHECK_OK(lt_tensor_zeros(shape, 2, d, LT_DEVICE_CPU, &z));
        CHECK_OK(lt_tensor_ones(shape, 2, d, LT_DEVICE_CPU, &o));
        double *zv = tt_values(z), *ov = tt_values(o);
        bool ok = true;
        for (int i = 0; i < 15; i++) ok &= zv[i] == 0.0 && !signbit(zv[i]) && ov[i] == 1.0;
        CHECK(ok);
        free(zv);
        free(ov);
    }
    /* full: a value per dtype that needs rounding or truncation, checked on the raw element bits */
    struct {
        lt_dtype d;
        double v;
    } cases[] = {{LT_F32, 0.1},  {LT_F64, -2.0 / 3.0}, {LT_BF16, 1.0 / 3.0}, {LT_F16, -0.1},  {LT_F16, 70000.0},
                 {LT_I32, -7.9}, {LT_I64, 3e9 + 0.75}, {LT_U16, 40000.7},    {LT_U8, 200.99}, {LT_BF16, -1e-40},
                 {LT_F16, 1e-7}, {LT_I32, 7.9},        {LT_F32, -0.0},       {LT_F16, -0.0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_tensor *t = NULL;
        CHECK_OK(lt_tensor_full(shape, 2, cases[c].v, cases[c].d, LT_DEVICE_CPU, &t));
        const unsigned char *p = lt_tensor_data(t);
        unsigned char want[8];
        size_t es = lt_dtype_size(cases[c].d);
        double v = cases[c].v;
        switch (cases[c].d) {
        case LT_F32: *(float *)want = (float)v; break;
        case LT_F64: *(double *)want = v; break;
        case LT_BF16: *(uint16_t *)want = half_encode(&BF16, v); break;
        case LT_F16: *(uint16_t *)want = half_encode(&F16, v); break;
        case LT_I32: *(int32_t *)want = (int32_t)trunc(v); break;
        case LT_I64: *(int64_t *)want = (int64_t)trunc(v); break;
        case LT_U16: *(uint16_t *)want = (uint16_t)trunc(v); break;
        case LT_U8: *(uint8_t *)want = (uint8_t)trunc(v); break;
        }
        bool ok = true;
        for (int i = 0; i < 15; i++) ok &= memcmp(p + (size_t)i * es, want, es) == 0;
        if (!ok) fprintf(stderr, "full(%g) as %s: wrong bits\n", v, lt_dtype_name(cases[c].d));
        CHECK(ok);
    }
    /* spot checks of the reference itself against known encodings */
    CHECK(half_encode(&F16, 70000.0) == 0x7c00);
    CHECK(half_encode(&F16, 65504.0) == 0x7bff);
    CHECK(half_encode(&BF16, 1.0 / 3.0) == 0x3eab);
    CHECK(half_encode(&F16, -0.1) == 0xae66);
}

static void test_arange(void) {
    struct {
        double start, end, step;
        lt_dtype d;
        int64_t n;
    } cases[] = {
        {0, 1, 0.1, LT_F64, 10},     /* fractional step */
        {5, -5, -1.5, LT_F32, 7},    /* negative step: 5, 3.5, ..., -4 */
        {-2.25, 3, 0.75, LT_F32, 7}, /* fractional start */
        {0, 10, 3, LT_I32, 4},       /* 0 3 6 9 */
        {0.5, 3, 1, LT_I64, 3},      /* 0.5 1.5 2.5 truncated */
        {250, 260, 2, LT_U8, 5},     /* 250 .. 258, saturating at 255 */
        {0, 3, 0.3333, LT_BF16, 10}, /* rounded per element */
        {2, 2, 1, LT_F32, 0},        /* empty range */
        {3, 2, -0.5, LT_F16, 2},     /* 3, 2.5 */
        {0.25, 1.25, 1, LT_F64, 1}   /* a single element */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_tensor *t = NULL;
        CHECK_OK(lt_tensor_arange(cases[c].start, cases[c].end, cases[c].step, cases[c].d, LT_DEVICE_CPU, &t));
        CHECK(lt_tensor_ndim(t) == 1);
        CHECK(lt_tensor_dim(t, 0) == cases[c].n);
        if (lt_tensor_dim(t, 0) != cases[c].n) continue;
        double *ref = malloc(sizeof(double) * (size_t)(cases[c].n + 1));
        for (int64_t i = 0; i < cases[c].n; i++) {
            double v = cases[c].start + (double)i * cases[c].step;
            switch (cases[c].d) {
            case LT_F32: v = (float)v; break;
            case LT_BF16: v = half_value(&BF16, half_encode(&BF16, (float)v)); break;
            case LT_F16: v = half_value(&F16, half_encode(&F16, (float)v)); break;
            case LT_U8: v = v > 255 ? 255 : trunc(v); break;
            case LT_F64: break;
            default: v = trunc(v); break;
            }
            ref[i] = v;
        }
        char what[64];
        snprintf(what, sizeof what, "arange case %zu", c);
        CHECK(tt_tensor_close(what, t, ref, 0, 0));
        free(ref);
    }
}

static void test_host_round_trip(void) {
    tt_seed(11);
    int64_t shape[3] = {3, 5, 7};
    for (int k = 0; k < LT_DTYPE_COUNT; k++) {
        lt_dtype d = ALL_DTYPES[k];
        size_t nbytes = 105 * lt_dtype_size(d);
        unsigned char *src = malloc(nbytes), *dst = malloc(nbytes), *dst2 = malloc(nbytes);
        /* random bytes: every bit pattern, NaN payloads included, must survive a same-dtype round trip */
        for (size_t i = 0; i < nbytes; i++) src[i] = (unsigned char)(rand_u32() >> 24);
        memset(dst, 0xA5, nbytes);
        lt_tensor *t = NULL;
        CHECK_OK(lt_tensor_from_host(src, shape, 3, d, LT_DEVICE_CPU, &t));
        CHECK(memcmp(lt_tensor_data(t), src, nbytes) == 0);
        memset(src, 0, nbytes); /* the tensor owns a copy, not the caller's buffer */
        CHECK_OK(lt_tensor_to_host(t, dst, nbytes));
        CHECK_OK(lt_tensor_to_host(t, dst2, nbytes));
        CHECK(memcmp(dst, dst2, nbytes) == 0);
        CHECK(memcmp(lt_tensor_data(t), dst, nbytes) == 0);
        /* to_host of a transposed view is row-major in the view's order */
        lt_tensor *tr = NULL;
        CHECK_OK(lt_transpose(t, 0, 2, &tr));
        CHECK_OK(lt_tensor_to_host(tr, dst2, nbytes));
        size_t es = lt_dtype_size(d);
        bool ok = true;
        for (int a = 0; a < 7; a++)
            for (int b = 0; b < 5; b++)
                for (int c = 0; c < 3; c++)
                    ok &= memcmp(dst2 + ((size_t)(a * 15 + b * 3 + c)) * es, dst + ((size_t)(c * 35 + b * 7 + a)) * es,
                                 es) == 0;
        CHECK(ok);
        free(src);
        free(dst);
        free(dst2);
    }
    /* zero elements and 0-d */
    lt_tensor *e = NULL, *s = NULL;
    int64_t zero = 0;
    double one = 2.5, back = 0;
    CHECK_OK(lt_tensor_from_host(&one, &zero, 1, LT_F64, LT_DEVICE_CPU, &e));
    CHECK(lt_tensor_numel(e) == 0);
    CHECK_OK(lt_tensor_to_host(e, &back, 0));
    CHECK_OK(lt_tensor_from_host(&one, NULL, 0, LT_F64, LT_DEVICE_CPU, &s));
    CHECK_OK(lt_tensor_to_host(s, &back, sizeof back));
    CHECK(back == 2.5);
}

static void test_rand_uniform(void) {
    const int64_t n = 100000;
    lt_philox rng = {.seed = 1234, .offset = 0};
    lt_tensor *t = NULL;
    CHECK_OK(lt_tensor_rand(&n, 1, LT_F32, LT_DEVICE_CPU, &rng, &t));
    CHECK(rng.seed == 1234 && rng.offset == 100000);
    const float *v = lt_tensor_data(t);
    double sum = 0, sq = 0;
    float lo = 2, hi = -1;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        sq += (double)v[i] * v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    /* the mean of 1e5 uniforms has sd 0.0009 and the variance sd 0.0003: these bounds are 5 sd */
    CHECK(fabs(mean - 0.5) < 0.0046);
    CHECK(fabs(var - 1.0 / 12) < 0.0015);
    CHECK(lo > 0 && hi <= 1);
    /* Known answer: Philox4x32-10 of counter 0, key 0 (Random123's kat_vectors) is 6627e8d5 e169c58d bc57ac4c
     * 9b00dbd8, mapped to (0, 1] as curand_uniform does. */
    static const uint32_t kat[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    lt_philox zero = {0, 0};
    const int64_t four = 4;
    lt_tensor *k = NULL;
    CHECK_OK(lt_tensor_rand(&four, 1, LT_F32, LT_DEVICE_CPU, &zero, &k));
    const float *kv = lt_tensor_data(k);
    for (int i = 0; i < 4; i++) {
        float want = kat[i] * 2.3283064e-10f + 2.3283064e-10f / 2.0f;
        if (f32_bits(kv[i]) != f32_bits(want)) fprintf(stderr, "kat word %d: %.9g, want %.9g\n", i, kv[i], want);
        CHECK(f32_bits(kv[i]) == f32_bits(want));
    }
    /* other float dtypes hold the same draws, converted */
    const int64_t m = 1000;
    for (int k2 = 0; k2 < 4; k2++) {
        lt_dtype d = ALL_DTYPES[k2];
        lt_philox r1 = {99, 40}, r2 = {99, 40};
        lt_tensor *a = NULL, *b = NULL;
        CHECK_OK(lt_tensor_rand(&m, 1, LT_F32, LT_DEVICE_CPU, &r1, &a));
        CHECK_OK(lt_tensor_rand(&m, 1, d, LT_DEVICE_CPU, &r2, &b));
        CHECK(r2.offset == 1040);
        double *av = tt_values(a), *bv = tt_values(b);
        bool ok = true;
        for (int64_t i = 0; i < m; i++) {
            double want = d == LT_BF16  ? half_value(&BF16, half_encode(&BF16, av[i]))
                          : d == LT_F16 ? half_value(&F16, half_encode(&F16, av[i]))
                                        : av[i];
            ok &= bv[i] == want && bv[i] > 0 && bv[i] <= 1;
        }
        CHECK(ok);
        free(av);
        free(bv);
    }
}

static void test_randn(void) {
    const int64_t n = 100000;
    lt_philox rng = {.seed = 77, .offset = 8};
    lt_tensor *t = NULL;
    CHECK_OK(lt_tensor_randn(&n, 1, LT_F32, LT_DEVICE_CPU, &rng, &t));
    CHECK(rng.offset == 100008);
    const float *v = lt_tensor_data(t);
    double sum = 0, sq = 0;
    int64_t within1 = 0;
    bool finite = true;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        sq += (double)v[i] * v[i];
        within1 += fabsf(v[i]) < 1;
        finite &= isfinite(v[i]);
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    /* 5 standard errors: mean 0.016, sd 0.011, P(|x| < 1) = 0.6827 with se 0.0015 */
    CHECK(finite);
    CHECK(fabs(mean) < 0.016);
    CHECK(fabs(sd - 1) < 0.012);
    CHECK(fabs((double)within1 / n - 0.6827) < 0.0075);
    /* f64 holds the same f32 draws */
    const int64_t m = 64;
    lt_philox r1 = {5, 0}, r2 = {5, 0};
    lt_tensor *a = NULL, *b = NULL;
    CHECK_OK(lt_tensor_randn(&m, 1, LT_F32, LT_DEVICE_CPU, &r1, &a));
    CHECK_OK(lt_tensor_randn(&m, 1, LT_F64, LT_DEVICE_CPU, &r2, &b));
    double *av = tt_values(a);
    CHECK(tt_tensor_close("randn f64", b, av, 0, 0));
    free(av);
}

static void test_rng_offset_and_reproducibility(void) {
    const int64_t sizes[] = {0, 1, 3, 4, 5, 10, 1001};
    for (int fn = 0; fn < 2; fn++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            lt_philox rng = {3, 16};
            lt_tensor *t = NULL;
            lt_status st = fn ? lt_tensor_randn(&sizes[i], 1, LT_F32, LT_DEVICE_CPU, &rng, &t)
                              : lt_tensor_rand(&sizes[i], 1, LT_F32, LT_DEVICE_CPU, &rng, &t);
            CHECK(st == LT_OK);
            CHECK(rng.seed == 3);
            CHECK(rng.offset == 16 + (uint64_t)((sizes[i] + 3) / 4 * 4));
        }
    /* the same (seed, offset) gives the same numbers; another offset or seed gives others */
    int64_t shape[2] = {7, 9};
    for (int fn = 0; fn < 2; fn++) {
        lt_philox r1 = {42, 20}, r2 = {42, 20}, r3 = {42, 24}, r4 = {43, 20};
        lt_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        lt_status (*draw)(const int64_t *, int, lt_dtype, lt_device, lt_philox *, lt_tensor **) =
            fn ? lt_tensor_randn : lt_tensor_rand;
        CHECK_OK(draw(shape, 2, LT_F32, LT_DEVICE_CPU, &r1, &a));
        CHECK_OK(draw(shape, 2, LT_F32, LT_DEVICE_CPU, &r2, &b));
        CHECK_OK(draw(shape, 2, LT_F32, LT_DEVICE_CPU, &r3, &c));
        CHECK_OK(draw(shape, 2, LT_F32, LT_DEVICE_CPU, &r4, &d));
        CHECK(memcmp(lt_tensor_data(a), lt_tensor_data(b), 63 * 4) == 0);
        const float *av = lt_tensor_data(a), *cv = lt_tensor_data(c), *dv = lt_tensor_data(d);
        int same_c = 0, same_d = 0;
        for (int i = 0; i < 63; i++) {
            same_c += av[i] == cv[i];
            same_d += av[i] == dv[i];
        }
        CHECK(same_c < 4 && same_d < 4);
        /* a stream: drawing 10 then 6 gives words 0..9 and 12..17 of one draw of 18 */
        lt_philox s1 = {8, 0}, s2 = {8, 0};
        const int64_t n10 = 10, n6 = 6, n18 = 18;
        lt_tensor *x = NULL, *y = NULL, *all = NULL;
        CHECK_OK(draw(&n10, 1, LT_F32, LT_DEVICE_CPU, &s1, &x));
        CHECK_OK(draw(&n6, 1, LT_F32, LT_DEVICE_CPU, &s1, &y));
        CHECK_OK(draw(&n18, 1, LT_F32, LT_DEVICE_CPU, &s2, &all));
        const float *allv = lt_tensor_data(all);
        CHECK(memcmp(lt_tensor_data(x), allv, 10 * 4) == 0);
        CHECK(memcmp(lt_tensor_data(y), allv + 12, 6 * 4) == 0);
    }
}

/* ---- Conversions ---- */

static void test_to_f32_to_half(void) {
    tt_seed(21);
    for (int which = 0; which < 2; which++) {
        const half_fmt *f = which ? &F16 : &BF16;
        /* every representable value, every midpoint between neighbours (the ties) and the floats either side of
         * each midpoint, both signs, up to the overflow threshold; then random bit patterns and specials */
        uint32_t top = inf_bits(f);
        int64_t n = 0, cap = (int64_t)top * 8 + 20100;
        float *x = malloc(sizeof(float) * (size_t)cap);
        for (uint32_t k = 0; k < top; k++) {
            float v = (float)half_magnitude(f, k);
            float mid = (float)((half_magnitude(f, k) + half_magnitude(f, k + 1)) / 2);
            float xs[4] = {v, mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
            for (int j = 0; j < 4; j++) {
                x[n++] = xs[j];
                x[n++] = -xs[j];
            }
        }
        for (int i = 0; i < 20000; i++) x[n++] = bits_f32(rand_u32());
        float specials[] = {0.0f,           -0.0f,          INFINITY,       -INFINITY,     NAN,           -NAN,
                            1e-40f,         -1e-45f,        65504.0f,       65519.996f,    65520.0f,      -65520.0f,
                            1e6f,           3.4028235e38f,  -3.4028235e38f, 3.3961776e38f, 5.9604645e-8f, 2.9802322e-8f,
                            2.9802326e-8f,  6.1035156e-5f,  6.1035152e-5f,  1.00390625f,   1.01171875f,   1.0009765625f,
                            1.00048828125f, 1.00146484375f, 9.1835496e-41f, 1.1754942e-38f};
        for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) x[n++] = specials[i];
        CHECK(n <= cap);
        CHECK(check_f32_to_half(f, x, n));
        free(x);
    }
    /* hand-computed anchors, independent of the reference */
    float a[] = {65520.0f, 65519.996f, 2.9802322e-8f, 2.9802326e-8f, 1.00048828125f, 1.00146484375f};
    uint16_t want16[] = {0x7c00, 0x7bff, 0x0000, 0x0001, 0x3c00, 0x3c02};
    int64_t six = 6;
    lt_tensor *t = from_host(a, &six, 1, LT_F32), *h = NULL;
    CHECK_OK(lt_tensor_to(t, LT_F16, LT_DEVICE_CPU, &h));
    CHECK(memcmp(lt_tensor_data(h), want16, sizeof want16) == 0);
    float b[] = {1.00390625f, 1.01171875f, 3.4028235e38f, -1e-45f, 9.1835496e-41f, 1.0f};
    uint16_t wantb[] = {0x3f80, 0x3f82, 0x7f80, 0x8000, 0x0001, 0x3f80};
    lt_tensor *tb = from_host(b, &six, 1, LT_F32), *hb = NULL;
    CHECK_OK(lt_tensor_to(tb, LT_BF16, LT_DEVICE_CPU, &hb));
    CHECK(memcmp(lt_tensor_data(hb), wantb, sizeof wantb) == 0);
}

static void test_to_half_to_other(void) {
    /* all 65536 encodings of each half format to f32 (exact) and to the other half format (rounded) */
    int64_t n = 65536;
    uint16_t *bits = malloc(sizeof(uint16_t) * 65536), *got16 = malloc(sizeof(uint16_t) * 65536);
    float *got32 = malloc(sizeof(float) * 65536);
    for (int i = 0; i < 65536; i++) bits[i] = (uint16_t)i;
    for (int which = 0; which < 2; which++) {
        const half_fmt *f = which ? &F16 : &BF16, *g = which ? &BF16 : &F16;
        lt_tensor *h = from_host(bits, &n, 1, f->dtype), *a = NULL, *b = NULL;
        CHECK_OK(lt_tensor_to(h, LT_F32, LT_DEVICE_CPU, &a));
        CHECK_OK(lt_tensor_to_host(a, got32, sizeof(float) * 65536));
        CHECK_OK(lt_tensor_to(h, g->dtype, LT_DEVICE_CPU, &b));
        CHECK_OK(lt_tensor_to_host(b, got16, sizeof(uint16_t) * 65536));
        int bad32 = 0, bad16 = 0;
        for (int i = 0; i < 65536; i++) {
            double v = half_value(f, (uint16_t)i);
            bool ok32 = isnan(v) ? isnan(got32[i]) : (got32[i] == v && !signbit(got32[i]) == !signbit(v));
            bool ok16 = isnan(v) ? half_is_quiet_nan(g, got16[i]) : got16[i] == half_encode(g, v);
            if (!ok32 && bad32++ < 3)
                fprintf(stderr, "%s 0x%04x -> f32: %.9g, expected %.9g\n", f->name, i, got32[i], v);
            if (!ok16 && bad16++ < 3)
                fprintf(stderr, "%s 0x%04x -> %s: 0x%04x, expected 0x%04x\n", f->name, i, g->name, got16[i],
                        half_encode(g, v));
        }
        CHECK(bad32 == 0);
        CHECK(bad16 == 0);
    }
    free(bits);
    free(got16);
    free(got32);
}

static void test_to_float_int(void) {
    /* float -> int truncates toward zero; out-of-range values saturate and NaN gives 0 (src/cpu/copy.c) */
    double x[] = {-2.7, -0.5, 0.5, 2.9, 127.99, 255.5, 300.0, -3.0, 65535.9, 70000.0, 3e9, -3e9, NAN, 1e19};
    int64_t n = sizeof x / sizeof x[0];
    int32_t w32[] = {-2, 0, 0, 2, 127, 255, 300, -3, 65535, 70000, INT32_MAX, INT32_MIN, 0, INT32_MAX};
    int64_t w64[] = {-2, 0, 0, 2, 127, 255, 300, -3, 65535, 70000, 3000000000, -3000000000, 0, INT64_MAX};
    uint16_t wu16[] = {0, 0, 0, 2, 127, 255, 300, 0, 65535, 65535, 65535, 0, 0, 65535};
    uint8_t wu8[] = {0, 0, 0, 2, 127, 255, 255, 0, 255, 255, 255, 0, 0, 255};
    for (int src = 0; src < 2; src++) {
        lt_tensor *t = from_host(x, &n, 1, LT_F64), *s = NULL, *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        if (src) { /* the f32 source path goes through another conversion branch */
            CHECK_OK(lt_tensor_to(t, LT_F32, LT_DEVICE_CPU, &s));
            t = s;
        }
        CHECK_OK(lt_tensor_to(t, LT_I32, LT_DEVICE_CPU, &a));
        CHECK_OK(lt_tensor_to(t, LT_I64, LT_DEVICE_CPU, &b));
        CHECK_OK(lt_tensor_to(t, LT_U16, LT_DEVICE_CPU, &c));
        CHECK_OK(lt_tensor_to(t, LT_U8, LT_DEVICE_CPU, &d));
        CHECK(lt_tensor_dtype(a) == LT_I32 && lt_tensor_dtype(d) == LT_U8);
        const int64_t *bv = lt_tensor_data(b);
        for (int64_t i = 0; i < n; i++) {
            bool ok = ((const int32_t *)lt_tensor_data(a))[i] == w32[i] &&
                      ((const uint16_t *)lt_tensor_data(c))[i] == wu16[i] &&
                      ((const uint8_t *)lt_tensor_data(d))[i] == wu8[i];
            /* f32 cannot hold 3e9 exactly but holds 3000000000 (a multiple of 256) */
            ok &= bv[i] == w64[i];
            if (!ok)
                fprintf(stderr, "float -> int: element %lld (%g) from %s\n", (long long)i, x[i], src ? "f32" : "f64");
            CHECK(ok);
        }
    }
    /* int -> float: exact where representable, rounded to nearest (f32 holds 2^24 + 1 as 2^24) */
    int32_t iv[] = {16777217, -5, 0, 2147483647};
    int64_t four = 4;
    lt_tensor *it = from_host(iv, &four, 1, LT_I32), *f = NULL, *g = NULL;
    CHECK_OK(lt_tensor_to(it, LT_F32, LT_DEVICE_CPU, &f));
    CHECK_OK(lt_tensor_to(it, LT_F64, LT_DEVICE_CPU, &g));
    const float *fv = lt_tensor_data(f);
    const double *gv = lt_tensor_data(g);
    CHECK(fv[0] == 16777216.0f && fv[1] == -5.0f && fv[2] == 0.0f && fv[3] == 2147483648.0f);
    CHECK(gv[0] == 16777217.0 && gv[1] == -5.0 && gv[3] == 2147483647.0);
    uint8_t u8v[] = {0, 1, 128, 255};
    lt_tensor *ut = from_host(u8v, &four, 1, LT_U8), *uf = NULL;
    CHECK_OK(lt_tensor_to(ut, LT_BF16, LT_DEVICE_CPU, &uf));
    const uint16_t *ufv = lt_tensor_data(uf);
    CHECK(ufv[0] == 0x0000 && ufv[1] == 0x3f80 && ufv[2] == 0x4300 && ufv[3] == 0x437f); /* 255 fits in 8 bits */
    int32_t i257[] = {257, 259, -257, 16777217};
    lt_tensor *it2 = from_host(i257, &four, 1, LT_I32), *b2 = NULL;
    CHECK_OK(lt_tensor_to(it2, LT_BF16, LT_DEVICE_CPU, &b2));
    const uint16_t *b2v = lt_tensor_data(b2);
    CHECK(b2v[0] == 0x4380 && b2v[1] == 0x4382 && b2v[2] == 0xc380 && b2v[3] == 0x4b80); /* ties to even */
    /* f64 -> f32 rounds to nearest, and a same-dtype lt_tensor_to is a fresh contiguous copy */
    double dv[] = {0.1, 1e300, -1e-300, 1.0000000596046448};
    lt_tensor *dt = from_host(dv, &four, 1, LT_F64), *df = NULL, *dd = NULL;
    CHECK_OK(lt_tensor_to(dt, LT_F32, LT_DEVICE_CPU, &df));
    const float *dfv = lt_tensor_data(df);
    CHECK(dfv[0] == 0.1f && isinf(dfv[1]) && dfv[2] == 0.0f && signbit(dfv[2]) && dfv[3] == 1.0f);
    CHECK_OK(lt_tensor_to(dt, LT_F64, LT_DEVICE_CPU, &dd));
    CHECK(lt_tensor_data(dd) != lt_tensor_data(dt));
    CHECK(memcmp(lt_tensor_data(dd), dv, sizeof dv) == 0);
}

/* ---- Copies ---- */

static void test_copy_broadcast(void) {
    tt_seed(31);
    int64_t s43[2] = {4, 3}, s3 = 3, s41[2] = {4, 1}, s1 = 1;
    lt_tensor *row = tt_rand(&s3, 1, LT_F64, -2, 2), *col = tt_rand(s41, 2, LT_F64, -2, 2);
    lt_tensor *one = tt_rand(&s1, 1, LT_F64, -2, 2), *scalar = NULL;
    double sv = -1.25;
    CHECK_OK(lt_tensor_from_host(&sv, NULL, 0, LT_F64, LT_DEVICE_CPU, &scalar));
    double *rv = tt_values(row), *cv = tt_values(col), *ov = tt_values(one), ref[12];
    lt_dtype dts[3] = {LT_F64, LT_F32, LT_BF16};
    for (int k = 0; k < 3; k++) {
        lt_tensor *dst = NULL;
        CHECK_OK(lt_tensor_full(s43, 2, NAN, dts[k], LT_DEVICE_CPU, &dst));
        /* the reference is the source value rounded to the destination dtype */
        const half_fmt *h = dts[k] == LT_BF16 ? &BF16 : NULL;
#define ROUND(v) (dts[k] == LT_F32 ? (double)(float)(v) : h ? half_value(h, half_encode(h, (float)(v))) : (v))
        CHECK_OK(lt_tensor_copy(dst, row));
        for (int i = 0; i < 12; i++) ref[i] = ROUND(rv[i % 3]);
        CHECK(tt_tensor_close("copy row", dst, ref, 0, 0));
        CHECK_OK(lt_tensor_copy(dst, col));
        for (int i = 0; i < 12; i++) ref[i] = ROUND(cv[i / 3]);
        CHECK(tt_tensor_close("copy col", dst, ref, 0, 0));
        CHECK_OK(lt_tensor_copy(dst, one));
        for (int i = 0; i < 12; i++) ref[i] = ROUND(ov[0]);
        CHECK(tt_tensor_close("copy [1]", dst, ref, 0, 0));
        CHECK_OK(lt_tensor_copy(dst, scalar));
        for (int i = 0; i < 12; i++) ref[i] = -1.25;
        CHECK(tt_tensor_close("copy 0-d", dst, ref, 0, 0));
#undef ROUND
    }
    /* a same-shape copy from a transposed source */
    lt_tensor *src = tt_rand(s43, 2, LT_F32, -1, 1), *tr = NULL, *dst = NULL;
    int64_t s34[2] = {3, 4};
    CHECK_OK(lt_transpose(src, 0, 1, &tr));
    CHECK_OK(lt_tensor_empty(s34, 2, LT_F32, LT_DEVICE_CPU, &dst));
    CHECK_OK(lt_tensor_copy(dst, tr));
    double *srcv = tt_values(src);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) ref[i * 4 + j] = srcv[j * 3 + i];
    CHECK(tt_tensor_close("copy transposed", dst, ref, 0, 0));
    free(srcv);
    free(rv);
    free(cv);
    free(ov);
}

static void test_copy_into_strided_views(void) {
    tt_seed(32);
    /* base [6, 8] of known values; write through a transposed view, a stepped slice and a slice of a slice, and
     * check every element of the base: the written ones hold the source, the others are untouched */
    int64_t s68[2] = {6, 8};
    double init[48];
    for (int i = 0; i < 48; i++) init[i] = 1000 + i;
    for (int mode = 0; mode < 3; mode++) {
        lt_tensor *base = from_host(init, s68, 2, LT_F64), *view = NULL, *tmp = NULL;
        double ref[48];
        memcpy(ref, init, sizeof ref);
        if (mode == 0) { /* transpose: view [8, 6] with view[i][j] = base[j][i] */
            CHECK_OK(lt_transpose(base, 0, 1, &view));
        } else if (mode == 1) { /* rows 1, 3, 5 and columns 0, 3, 6 */
            CHECK_OK(lt_slice(base, 0, 1, 6, 2, &tmp));
            CHECK_OK(lt_slice(tmp, 1, 0, 8, 3, &view));
        } else { /* a negative start: the last three columns of rows 2..4 */
            CHECK_OK(lt_slice(base, 1, -3, 8, 1, &tmp));
            CHECK_OK(lt_slice(tmp, 0, 2, 5, 1, &view));
        }
        int64_t vs[LT_MAX_DIMS];
        CHECK_OK(lt_tensor_shape(view, vs));
        lt_tensor *src = tt_rand(vs, 2, LT_F32, -4, 4);
        CHECK_OK(lt_tensor_copy(view, src));
        double *sv = tt_values(src);
        for (int64_t i = 0; i < vs[0]; i++)
            for (int64_t j = 0; j < vs[1]; j++) {
                int64_t r = mode == 0 ? j : mode == 1 ? 1 + 2 * i : 2 + i;
                int64_t c = mode == 0 ? i : mode == 1 ? 3 * j : 5 + j;
                ref[r * 8 + c] = sv[i * vs[1] + j];
            }
        char what[32];
        snprintf(what, sizeof what, "strided copy mode %d", mode);
        CHECK(tt_tensor_close(what, base, ref, 0, 0));
        /* broadcast source into a strided destination */
        double scalar = -7.5;
        lt_tensor *sc = NULL;
        CHECK_OK(lt_tensor_from_host(&scalar, NULL, 0, LT_F64, LT_DEVICE_CPU, &sc));
        CHECK_OK(lt_tensor_copy(view, sc));
        double *vv = tt_values(view);
        bool ok = true;
        for (int64_t i = 0; i < vs[0] * vs[1]; i++) ok &= vv[i] == -7.5;
        CHECK(ok);
        free(vv);
        free(sv);
    }
}

/* lt_tensor_copy's internal broadcast view of src must not outlive the call: releasing src right after a copy made
 * inside a scope frees its storage at once, as tensor.h's lt_tensor_release promises. */
/* Contiguous copies and zero-fills of 4 MiB and more are split over the threads: every element arrives, and an
 * overlapping copy (two slices of one tensor, either direction) is still a memmove. i32 keeps every value exact. */
static void test_large_copy_and_fill(void) {
    const int64_t n = 3 << 20; /* 12 MiB of i32 */
    lt_tensor *x, *y, *lo, *hi;
    CHECK_OK(lt_tensor_arange(0, (double)n, 1, LT_I32, LT_DEVICE_CPU, &x));
    CHECK_OK(lt_tensor_empty(&n, 1, LT_I32, LT_DEVICE_CPU, &y));
    CHECK_OK(lt_tensor_copy(y, x));
    const int32_t *py = lt_tensor_data(y);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += py[i] != (int32_t)i;
    CHECK(bad == 0);
    /* y[0 : 2n/3] = y[n/3 : n], then back: the ranges overlap */
    const int64_t third = n / 3;
    CHECK_OK(lt_slice(y, 0, 0, 2 * third, 1, &lo));
    CHECK_OK(lt_slice(y, 0, third, n, 1, &hi));
    CHECK_OK(lt_tensor_copy(lo, hi));
    bad = 0;
    for (int64_t i = 0; i < 2 * third; i++) bad += py[i] != (int32_t)(i + third);
    CHECK(bad == 0);
    CHECK_OK(lt_tensor_copy(x, y)); /* keep y's shifted values in x for the check below */
    CHECK_OK(lt_tensor_copy(hi, lo));
    const int32_t *px = lt_tensor_data(x);
    bad = 0;
    for (int64_t i = third; i < n; i++) bad += py[i] != px[i - third];
    CHECK(bad == 0);
    /* rows moved in parallel: z[j][i][c] = x[i][j][c] through a permuted view (two outer dims), and a broadcast row */
    enum { I = 64, J = 96, C = 256 }; /* 6 MiB */
    lt_tensor *head, *x3, *perm, *z, *row, *wide, *rows;
    CHECK_OK(lt_slice(x, 0, 0, (int64_t)I * J * C, 1, &head));
    CHECK_OK(lt_view(head, (const int64_t[]){I, J, C}, 3, &x3));
    CHECK_OK(lt_permute(x3, (const int[]){1, 0, 2}, &perm));
    CHECK_OK(lt_tensor_empty((const int64_t[]){J, I, C}, 3, LT_I32, LT_DEVICE_CPU, &z));
    CHECK_OK(lt_tensor_copy(z, perm));
    const int32_t *pz = lt_tensor_data(z);
    bad = 0;
    for (int64_t j = 0; j < J; j++)
        for (int64_t i = 0; i < I; i++)
            for (int64_t c = 0; c < C; c++) bad += pz[(j * I + i) * C + c] != px[(i * J + j) * C + c];
    CHECK(bad == 0);
    CHECK_OK(lt_slice(x, 0, 0, C, 1, &row));
    CHECK_OK(lt_expand(row, (const int64_t[]){I * J, C}, 2, &wide));
    CHECK_OK(lt_tensor_empty((const int64_t[]){I * J, C}, 2, LT_I32, LT_DEVICE_CPU, &rows));
    CHECK_OK(lt_tensor_copy(rows, wide));
    const int32_t *pr = lt_tensor_data(rows);
    bad = 0;
    for (int64_t k = 0; k < (int64_t)I * J * C; k++) bad += pr[k] != px[k % C];
    CHECK(bad == 0);
    /* a zero-fill over ones: a parameter's gradient after a backward of its sum */
    lt_params *p;
    lt_tensor *w, *loss, *g;
    CHECK_OK(lt_params_create(LT_F32, LT_DEVICE_CPU, &p));
    CHECK_OK(lt_params_add(p, "w", &n, 1, &w));
    CHECK_OK(lt_sum(w, NULL, 0, false, &loss));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_params_zero_grad(p));
    CHECK_OK(lt_params_flat(p, NULL, &g));
    const float *pg = lt_tensor_data(g);
    bad = 0;
    for (int64_t i = 0; i < n; i++) bad += pg[i] != 0.0f;
    CHECK(bad == 0);
    lt_params_free(p);
}

static void test_copy_keeps_no_reference(void) {
    int64_t n = 4096;
    lt_tensor *dst = NULL, *src = NULL;
    CHECK_OK(lt_tensor_empty(&n, 1, LT_F32, LT_DEVICE_CPU, &dst));
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_full(&n, 1, 1.5, LT_F32, LT_DEVICE_CPU, &src));
    lt_tensor_retain(src);
    CHECK_OK(lt_scope_end()); /* src is now owned by this function alone */
    size_t before = bytes_in_use();
    CHECK_OK(lt_tensor_copy(dst, src));
    CHECK(((const float *)lt_tensor_data(dst))[4095] == 1.5f);
    lt_tensor_release(src);
    CHECK(bytes_in_use() == before - 16384);
}

/* ---- Accessors ---- */

static void test_accessors(void) {
    int64_t shape[3] = {2, 3, 5}, got[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    lt_tensor *t = NULL, *tr = NULL, *sl = NULL, *one = NULL;
    CHECK_OK(lt_tensor_zeros(shape, 3, LT_I64, LT_DEVICE_CPU, &t));
    CHECK(lt_tensor_ndim(t) == 3);
    CHECK(lt_tensor_dim(t, 0) == 2 && lt_tensor_dim(t, 2) == 5);
    CHECK(lt_tensor_dim(t, -1) == 5 && lt_tensor_dim(t, -3) == 2);
    CHECK(lt_tensor_dim(t, 3) == -1 && lt_tensor_dim(t, -4) == -1 && lt_tensor_dim(t, 1000) == -1);
    CHECK(lt_tensor_numel(t) == 30);
    CHECK(lt_tensor_dtype(t) == LT_I64);
    lt_device dev = lt_tensor_device(t);
    CHECK(dev.type == LT_CPU && dev.index == 0);
    CHECK(lt_tensor_is_contiguous(t));
    /* transpose: strides swap, not contiguous, same data address */
    CHECK_OK(lt_transpose(t, 0, 2, &tr));
    CHECK_OK(lt_tensor_shape(tr, got));
    CHECK_OK(lt_tensor_strides(tr, strides));
    CHECK(got[0] == 5 && got[1] == 3 && got[2] == 2);
    CHECK(strides[0] == 1 && strides[1] == 5 && strides[2] == 15);
    CHECK(!lt_tensor_is_contiguous(tr));
    CHECK(lt_tensor_data(tr) == lt_tensor_data(t));
    /* a slice's data address is the element [0, ...] of the view */
    CHECK_OK(lt_slice(t, 2, 2, 5, 1, &sl));
    CHECK((char *)lt_tensor_data(sl) == (char *)lt_tensor_data(t) + 2 * 8);
    CHECK(!lt_tensor_is_contiguous(sl));
    /* dims of size 1 do not break contiguity whatever their stride */
    CHECK_OK(lt_slice(t, 1, 1, 2, 1, &one));
    lt_tensor *row = NULL;
    CHECK_OK(lt_slice(one, 0, 1, 2, 1, &row)); /* [1, 1, 5], contiguous at offset 20 */
    CHECK(lt_tensor_is_contiguous(row));
    CHECK((char *)lt_tensor_data(row) == (char *)lt_tensor_data(t) + 20 * 8);
    /* accessors of NULL */
    CHECK(lt_tensor_ndim(NULL) == 0);
    CHECK(lt_tensor_dim(NULL, 0) == -1);
    CHECK(lt_tensor_numel(NULL) == 0);
    CHECK(lt_tensor_data(NULL) == NULL);
    CHECK(!lt_tensor_is_contiguous(NULL));
    CHECK(!lt_tensor_requires_grad(NULL));
    CHECK_ERR(lt_tensor_shape(NULL, got), LT_ERR_ARG, "lt_tensor_shape");
    CHECK_ERR(lt_tensor_shape(t, NULL), LT_ERR_ARG, "lt_tensor_shape");
    CHECK_ERR(lt_tensor_strides(NULL, strides), LT_ERR_ARG, "lt_tensor_strides");
    CHECK_ERR(lt_tensor_strides(t, NULL), LT_ERR_ARG, "lt_tensor_strides");
}

static void test_names_and_version(void) {
    CHECK(strcmp(lt_status_name(LT_OK), "LT_OK") == 0);
    CHECK(strcmp(lt_status_name(LT_ERR_SHAPE), "LT_ERR_SHAPE") == 0);
    CHECK(strcmp(lt_status_name(LT_ERR_INTERNAL), "LT_ERR_INTERNAL") == 0);
    CHECK(strcmp(lt_status_name((lt_status)13), "LT_ERR_UNKNOWN") == 0);
    CHECK(strcmp(lt_status_name((lt_status)-1), "LT_ERR_UNKNOWN") == 0);
    static const char *names[LT_DTYPE_COUNT] = {"f32", "f64", "bf16", "f16", "i32", "i64", "u16", "u8"};
    static const size_t sizes[LT_DTYPE_COUNT] = {4, 8, 2, 2, 4, 8, 2, 1};
    for (int k = 0; k < LT_DTYPE_COUNT; k++) {
        CHECK(strcmp(lt_dtype_name(ALL_DTYPES[k]), names[k]) == 0);
        CHECK(lt_dtype_size(ALL_DTYPES[k]) == sizes[k]);
    }
    CHECK(strcmp(lt_dtype_name((lt_dtype)8), "?") == 0 && lt_dtype_size((lt_dtype)8) == 0);
    CHECK(strcmp(lt_dtype_name((lt_dtype)-1), "?") == 0 && lt_dtype_size((lt_dtype)-1) == 0);
    int major = -1, minor = -1, patch = -1;
    CHECK(sscanf(lt_version(), "%d.%d.%d", &major, &minor, &patch) == 3 && major >= 0 && minor >= 0 && patch >= 0);
    CHECK(lt_abi_version() >= 1);
    /* the message is "" after a call that succeeded */
    lt_tensor *t = NULL;
    CHECK_ERR(lt_tensor_empty(NULL, 2, LT_F32, LT_DEVICE_CPU, &t), LT_ERR_ARG, "lt_tensor_empty");
    CHECK_OK(lt_tensor_empty(NULL, 0, LT_F32, LT_DEVICE_CPU, &t));
    CHECK(lt_last_error() != NULL && lt_last_error()[0] == '\0');
}

/* ---- Scopes, refcounts, allocator ---- */

static void test_scopes(void) {
    int64_t n = 4096; /* 16 KiB of f32: a size class of its own, so bytes_in_use moves by exactly 16384 */
    size_t base = bytes_in_use();
    CHECK_OK(lt_scope_begin());
    lt_tensor *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(lt_tensor_empty(&n, 1, LT_F32, LT_DEVICE_CPU, &a));
    CHECK_OK(lt_tensor_zeros(&n, 1, LT_F32, LT_DEVICE_CPU, &b));
    CHECK_OK(lt_tensor_full(&n, 1, 3.5, LT_F32, LT_DEVICE_CPU, &c));
    CHECK(bytes_in_use() == base + 3 * 16384);
    lt_tensor_retain(c);
    CHECK_OK(lt_scope_end());
    CHECK(bytes_in_use() == base + 16384); /* only the retained tensor survives, with its values */
    CHECK(((const float *)lt_tensor_data(c))[4095] == 3.5f);
    lt_tensor_release(c);
    CHECK(bytes_in_use() == base);

    /* nested: the inner end frees only what the inner scope made */
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_ones(&n, 1, LT_F32, LT_DEVICE_CPU, &a));
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_ones(&n, 1, LT_F32, LT_DEVICE_CPU, &b));
    CHECK_OK(lt_tensor_ones(&n, 1, LT_F32, LT_DEVICE_CPU, &c));
    CHECK(bytes_in_use() == base + 3 * 16384);
    CHECK_OK(lt_scope_end());
    CHECK(bytes_in_use() == base + 16384);
    CHECK(((const float *)lt_tensor_data(a))[17] == 1.0f);
    CHECK_OK(lt_scope_end());
    CHECK(bytes_in_use() == base);

    /* a view made in an inner scope and retained keeps the outer tensor's storage alive past both scopes */
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_full(&n, 1, -2.0, LT_F32, LT_DEVICE_CPU, &a));
    lt_tensor *v = NULL;
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_slice(a, 0, 100, 200, 3, &v));
    lt_tensor_retain(v);
    CHECK_OK(lt_scope_end());
    CHECK_OK(lt_scope_end());
    CHECK(bytes_in_use() == base + 16384);
    CHECK(lt_tensor_numel(v) == 34 && ((const float *)lt_tensor_data(v))[3 * 33] == -2.0f);
    lt_tensor_release(v);
    CHECK(bytes_in_use() == base);
}

static void test_scope_state_errors(void) {
    /* RUN opened one scope. Close it to test the no-scope state, and reopen it at the end for RUN's lt_scope_end.
     * Plain CHECKs here, so that no early return leaves the scope stack unbalanced. */
    CHECK(lt_scope_end() == LT_OK);
    CHECK_ERR(lt_scope_end(), LT_ERR_STATE, "lt_scope_end");
    CHECK_ERR(lt_scope_end(), LT_ERR_STATE, "lt_scope_end");

    /* outside any scope the caller owns what it creates: a scope opened and closed later does not free it */
    int64_t n = 4096;
    size_t base = bytes_in_use();
    lt_tensor *t = NULL;
    CHECK(lt_tensor_full(&n, 1, 9.0, LT_F32, LT_DEVICE_CPU, &t) == LT_OK);
    CHECK(lt_scope_begin() == LT_OK);
    CHECK(lt_scope_end() == LT_OK);
    CHECK(bytes_in_use() == base + 16384);
    if (t) CHECK(((const float *)lt_tensor_data(t))[4000] == 9.0f);
    lt_tensor_release(t);
    CHECK(bytes_in_use() == base);

    /* 64 levels nest; the 65th is refused and the stack is unchanged */
    int opened = 0;
    lt_status st = LT_OK;
    while (opened < 100 && (st = lt_scope_begin()) == LT_OK) opened++;
    CHECK(opened == 64);
    CHECK_ERR(st, LT_ERR_STATE, "lt_scope_begin");
    int closed = 0;
    while (closed < opened && lt_scope_end() == LT_OK) closed++;
    CHECK(closed == opened);
    CHECK_ERR(lt_scope_end(), LT_ERR_STATE, "lt_scope_end");
    CHECK(lt_scope_begin() == LT_OK);
}

static void test_retain_release(void) {
    int64_t n = 4096;
    size_t base = bytes_in_use();
    lt_tensor *t = NULL;
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_full(&n, 1, 4.0, LT_F32, LT_DEVICE_CPU, &t));
    lt_tensor_retain(t);
    lt_tensor_retain(t);
    CHECK_OK(lt_scope_end());
    CHECK(bytes_in_use() == base + 16384);
    lt_tensor_release(t);
    CHECK(bytes_in_use() == base + 16384); /* one reference left */
    CHECK(((const float *)lt_tensor_data(t))[1] == 4.0f);
    lt_tensor_release(t);
    CHECK(bytes_in_use() == base);
    lt_tensor_retain(NULL);
    lt_tensor_release(NULL);
}

static void test_alloc_stats(void) {
    lt_alloc_stats s0 = {.struct_size = sizeof s0}, s1 = s0, s2 = s0, s3 = s0;
    CHECK_OK(lt_alloc_empty_cache(LT_DEVICE_CPU));
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &s0));
    CHECK(s0.struct_size == sizeof s0);
    CHECK(s0.bytes_cached == 0);
    CHECK(s0.peak_bytes >= s0.bytes_in_use);
    /* 1000 f32 = 4000 bytes: the size class wastes at most 25% */
    int64_t n = 1000;
    CHECK_OK(lt_scope_begin());
    lt_tensor *t = NULL;
    CHECK_OK(lt_tensor_empty(&n, 1, LT_F32, LT_DEVICE_CPU, &t));
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &s1));
    size_t cls = s1.bytes_in_use - s0.bytes_in_use;
    CHECK(cls >= 4000 && cls <= 5000);
    CHECK(s1.system_allocs == s0.system_allocs + 1);
    CHECK(s1.peak_bytes >= s1.bytes_in_use);
    CHECK_OK(lt_scope_end());
    /* freed into the cache, then served from it without a system call */
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &s2));
    CHECK(s2.bytes_in_use == s0.bytes_in_use);
    CHECK(s2.bytes_cached == cls);
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_empty(&n, 1, LT_F32, LT_DEVICE_CPU, &t));
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &s3));
    CHECK(s3.cache_hits == s2.cache_hits + 1);
    CHECK(s3.system_allocs == s2.system_allocs);
    CHECK(s3.bytes_cached == 0);
    /* 990 f32 falls in the same class and reuses the block too */
    CHECK_OK(lt_scope_end());
    int64_t m = 990;
    CHECK_OK(lt_scope_begin());
    CHECK_OK(lt_tensor_empty(&m, 1, LT_F32, LT_DEVICE_CPU, &t));
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &s3));
    CHECK(s3.cache_hits == s2.cache_hits + 2);
    CHECK_OK(lt_scope_end());
    /* empty_cache returns the cached block to the system */
    CHECK_OK(lt_alloc_empty_cache(LT_DEVICE_CPU));
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &s3));
    CHECK(s3.bytes_cached == 0);
    CHECK(s3.system_frees >= s2.system_frees + 1);
    /* a larger struct_size (a newer caller) is accepted and kept */
    struct {
        lt_alloc_stats s;
        uint64_t future[4];
    } big = {.s = {.struct_size = sizeof big}};
    CHECK_OK(lt_alloc_get_stats(LT_DEVICE_CPU, &big.s));
    CHECK(big.s.struct_size == sizeof big);
    /* errors */
    lt_alloc_stats small = {.struct_size = sizeof small - 1};
    CHECK_ERR(lt_alloc_get_stats(LT_DEVICE_CPU, &small), LT_ERR_ARG, "lt_alloc_get_stats");
    small.struct_size = 0;
    CHECK_ERR(lt_alloc_get_stats(LT_DEVICE_CPU, &small), LT_ERR_ARG, "lt_alloc_get_stats");
    CHECK_ERR(lt_alloc_get_stats(LT_DEVICE_CPU, NULL), LT_ERR_ARG, "lt_alloc_get_stats");
    CHECK_ERR(lt_alloc_get_stats(CUDA0, &s3), LT_ERR_DEVICE, "lt_alloc_get_stats");
    CHECK_ERR(lt_alloc_get_stats((lt_device){LT_CPU, 1}, &s3), LT_ERR_DEVICE, "lt_alloc_get_stats");
    CHECK_ERR(lt_alloc_empty_cache(CUDA0), LT_ERR_DEVICE, "lt_alloc_empty_cache");
    CHECK_ERR(lt_alloc_empty_cache((lt_device){7, 0}), LT_ERR_DEVICE, "lt_alloc_empty_cache");
}

static void test_num_threads(void) {
    int before = lt_get_num_threads();
    CHECK(before >= 1);
    CHECK_OK(lt_set_num_threads(1));
    CHECK(lt_get_num_threads() == 1);
    CHECK_OK(lt_set_num_threads(3));
    CHECK(lt_get_num_threads() == 3);
    CHECK_ERR(lt_set_num_threads(-1), LT_ERR_ARG, "lt_set_num_threads");
    CHECK(lt_get_num_threads() == 3);
    /* 0 restores the default: every core this process may run on */
    CHECK_OK(lt_set_num_threads(0));
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) CHECK(lt_get_num_threads() == CPU_COUNT(&set));
    /* kernels still work with one thread */
    CHECK_OK(lt_set_num_threads(1));
    int64_t n = 10;
    lt_tensor *t = NULL;
    CHECK_OK(lt_tensor_arange(0, 10, 1, LT_F32, LT_DEVICE_CPU, &t));
    CHECK(lt_tensor_numel(t) == n && ((const float *)lt_tensor_data(t))[9] == 9.0f);
    CHECK_OK(lt_set_num_threads(0));
}

/* ---- Error paths of creation, copies and conversion ---- */

typedef lt_status (*create_fn)(const int64_t *, int, lt_dtype, lt_device, lt_tensor **);

static lt_status full_7(const int64_t *s, int nd, lt_dtype d, lt_device dev, lt_tensor **out) {
    return lt_tensor_full(s, nd, 7.0, d, dev, out);
}
static lt_philox err_rng = {1, 0};
static lt_status rand_w(const int64_t *s, int nd, lt_dtype d, lt_device dev, lt_tensor **out) {
    return lt_tensor_rand(s, nd, d, dev, &err_rng, out);
}
static lt_status randn_w(const int64_t *s, int nd, lt_dtype d, lt_device dev, lt_tensor **out) {
    return lt_tensor_randn(s, nd, d, dev, &err_rng, out);
}
static double host_buf[64];
static lt_status from_host_w(const int64_t *s, int nd, lt_dtype d, lt_device dev, lt_tensor **out) {
    return lt_tensor_from_host(host_buf, s, nd, d, dev, out);
}

static void test_creation_errors(void) {
    struct {
        const char *name;
        create_fn f;
    } fns[] = {{"lt_tensor_empty", lt_tensor_empty}, {"lt_tensor_zeros", lt_tensor_zeros},
               {"lt_tensor_ones", lt_tensor_ones},   {"lt_tensor_full", full_7},
               {"lt_tensor_rand", rand_w},           {"lt_tensor_randn", randn_w},
               {"lt_tensor_from_host", from_host_w}};
    int64_t ok2[2] = {2, 3}, neg[2] = {2, -1}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 2};
    int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 20}, overflow[3] = {(int64_t)1 << 40, (int64_t)1 << 30, 64};
    size_t base = bytes_in_use();
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        const char *fn = fns[k].name;
        lt_tensor *out = NULL;
        err_rng.offset = 0;
        CHECK_ERR_FORKED(fns[k].f(ok2, 2, LT_F32, LT_DEVICE_CPU, NULL), LT_ERR_ARG, fn);
        CHECK_ERR_OUT(fns[k].f(NULL, 2, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(fns[k].f(neg, 2, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(fns[k].f(nine, 9, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, -1, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, 2, (lt_dtype)8, LT_DEVICE_CPU, &out), out, LT_ERR_DTYPE, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, 2, (lt_dtype)-3, LT_DEVICE_CPU, &out), out, LT_ERR_DTYPE, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, 2, LT_F32, CUDA0, &out), out, LT_ERR_DEVICE, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, 2, LT_F32, ((lt_device){LT_CUDA, 3}), &out), out, LT_ERR_DEVICE, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, 2, LT_F32, ((lt_device){LT_CPU, 1}), &out), out, LT_ERR_DEVICE, fn);
        CHECK_ERR_OUT(fns[k].f(ok2, 2, LT_F32, ((lt_device){9, 0}), &out), out, LT_ERR_DEVICE, fn);
        CHECK_ERR_OUT(fns[k].f(huge, 2, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_OOM, fn);
        CHECK_ERR_OUT(fns[k].f(overflow, 3, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_OOM, fn);
        if (fns[k].f == rand_w || fns[k].f == randn_w) {
            for (int d = 4; d < LT_DTYPE_COUNT; d++)
                CHECK_ERR_OUT(fns[k].f(ok2, 2, ALL_DTYPES[d], LT_DEVICE_CPU, &out), out, LT_ERR_DTYPE, fn);
            CHECK(err_rng.offset == 0); /* failures draw nothing */
        }
    }
    lt_tensor *out = NULL;
    CHECK_ERR_FORKED(lt_tensor_rand(ok2, 2, LT_F32, LT_DEVICE_CPU, &err_rng, NULL), LT_ERR_ARG, "lt_tensor_rand");
    CHECK_ERR_OUT(lt_tensor_rand(ok2, 2, LT_F32, LT_DEVICE_CPU, NULL, &out), out, LT_ERR_ARG, "lt_tensor_rand");
    CHECK_ERR_OUT(lt_tensor_randn(ok2, 2, LT_F32, LT_DEVICE_CPU, NULL, &out), out, LT_ERR_ARG, "lt_tensor_randn");
    CHECK_ERR_OUT(lt_tensor_from_host(NULL, ok2, 2, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG,
                  "lt_tensor_from_host");
    CHECK(bytes_in_use() == base); /* no failure leaked memory */
}

static void test_arange_errors(void) {
    const char *fn = "lt_tensor_arange";
    lt_tensor *out = NULL;
    CHECK_ERR_FORKED(lt_tensor_arange(0, 5, 1, LT_F32, LT_DEVICE_CPU, NULL), LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 5, 0, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 5, -0.0, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(NAN, 5, 1, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, INFINITY, 1, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 5, NAN, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    /* tensor.h: "LT_ERR_ARG when ... the count would be negative" (PyTorch refuses these too) */
    CHECK_ERR_OUT(lt_tensor_arange(0, 5, -1, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(5, 0, 0.5, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 5, 1, (lt_dtype)8, LT_DEVICE_CPU, &out), out, LT_ERR_DTYPE, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 5, 1, LT_F32, CUDA0, &out), out, LT_ERR_DEVICE, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 1e300, 1, LT_F32, LT_DEVICE_CPU, &out), out, LT_ERR_OOM, fn);
    CHECK_ERR_OUT(lt_tensor_arange(0, 1e15, 1, LT_F64, LT_DEVICE_CPU, &out), out, LT_ERR_OOM, fn);
}

static void test_copy_and_to_errors(void) {
    int64_t s23[2] = {2, 3}, s3 = 3, s4 = 4, s32[2] = {3, 2};
    lt_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL, *out = NULL;
    CHECK_OK(lt_tensor_zeros(s23, 2, LT_F32, LT_DEVICE_CPU, &a));
    CHECK_OK(lt_tensor_zeros(&s4, 1, LT_F32, LT_DEVICE_CPU, &b));
    CHECK_OK(lt_tensor_zeros(s32, 2, LT_F32, LT_DEVICE_CPU, &c));
    CHECK_OK(lt_tensor_zeros(&s3, 1, LT_F32, LT_DEVICE_CPU, &d));
    float buf[8];
    /* to_host */
    CHECK_ERR(lt_tensor_to_host(NULL, buf, 24), LT_ERR_ARG, "lt_tensor_to_host");
    CHECK_ERR(lt_tensor_to_host(a, NULL, 24), LT_ERR_ARG, "lt_tensor_to_host");
    CHECK_ERR(lt_tensor_to_host(a, buf, 23), LT_ERR_ARG, "lt_tensor_to_host");
    CHECK_ERR(lt_tensor_to_host(a, buf, 25), LT_ERR_ARG, "lt_tensor_to_host");
    CHECK_ERR(lt_tensor_to_host(a, buf, 6), LT_ERR_ARG, "lt_tensor_to_host"); /* numel, not bytes */
    CHECK_ERR(lt_tensor_to_host(a, buf, 0), LT_ERR_ARG, "lt_tensor_to_host");
    /* copy */
    CHECK_ERR(lt_tensor_copy(NULL, a), LT_ERR_ARG, "lt_tensor_copy");
    CHECK_ERR(lt_tensor_copy(a, NULL), LT_ERR_ARG, "lt_tensor_copy");
    CHECK_ERR(lt_tensor_copy(a, b), LT_ERR_SHAPE, "lt_tensor_copy"); /* [4] into [2, 3] */
    CHECK_ERR(lt_tensor_copy(a, c), LT_ERR_SHAPE, "lt_tensor_copy"); /* [3, 2] into [2, 3] */
    CHECK_ERR(lt_tensor_copy(d, a), LT_ERR_SHAPE, "lt_tensor_copy"); /* [2, 3] into [3]: no un-broadcasting */
    CHECK_ERR(lt_tensor_copy(b, d), LT_ERR_SHAPE, "lt_tensor_copy");
    /* to */
    CHECK_ERR_FORKED(lt_tensor_to(a, LT_F64, LT_DEVICE_CPU, NULL), LT_ERR_ARG, "lt_tensor_to");
    CHECK_ERR_OUT(lt_tensor_to(NULL, LT_F64, LT_DEVICE_CPU, &out), out, LT_ERR_ARG, "lt_tensor_to");
    CHECK_ERR_OUT(lt_tensor_to(a, (lt_dtype)8, LT_DEVICE_CPU, &out), out, LT_ERR_DTYPE, "lt_tensor_to");
    /* core.h: LT_ERR_DEVICE for "a device that is not available", as every creation function reports it */
    CHECK_ERR_OUT(lt_tensor_to(a, LT_F32, CUDA0, &out), out, LT_ERR_DEVICE, "lt_tensor_to");
    CHECK_ERR_OUT(lt_tensor_to(a, LT_F32, ((lt_device){9, 0}), &out), out, LT_ERR_DEVICE, "lt_tensor_to");
}

static int blob_deleted;
static void count_delete(void *ctx) { blob_deleted += *(int *)ctx; }

/* lt_tensor_from_blob shares the caller's memory (strides included) and calls the deleter once, after the last
 * view of it is released. */
static void test_from_blob(void) {
    float data[3][5];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) data[i][j] = (float)(10 * i + j) + 0.25f;
    int one = 1;
    blob_deleted = 0;
    lt_tensor *t, *v;
    lt_scope_end(); /* outside any scope the caller owns each result, which makes the lifetime explicit */
    /* every other column: shape [3, 3], strides [5, 2] */
    CHECK(lt_tensor_from_blob(data, (int64_t[]){3, 3}, (int64_t[]){5, 2}, 2, LT_F32, LT_DEVICE_CPU, count_delete, &one,
                              &t) == LT_OK);
    CHECK(lt_tensor_data(t) == (void *)data && !lt_tensor_is_contiguous(t));
    float got[9];
    CHECK(lt_tensor_to_host(t, got, sizeof got) == LT_OK);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) CHECK(got[3 * i + j] == data[i][2 * j]);
    data[1][2] = -7.5f; /* shared, not copied */
    CHECK(lt_tensor_to_host(t, got, sizeof got) == LT_OK && got[4] == -7.5f);
    CHECK(lt_transpose(t, 0, 1, &v) == LT_OK);
    lt_tensor_release(t);
    CHECK(blob_deleted == 0); /* v still views the memory */
    lt_tensor_release(v);
    CHECK(blob_deleted == 1);
    lt_scope_begin();

    const char *fn = "lt_tensor_from_blob";
    CHECK_ERR(lt_tensor_from_blob(NULL, (int64_t[]){2}, NULL, 1, LT_F32, LT_DEVICE_CPU, NULL, NULL, &t), LT_ERR_ARG,
              fn);
    CHECK(t == NULL);
    CHECK_OK(lt_tensor_from_blob(NULL, (int64_t[]){0}, NULL, 1, LT_F32, LT_DEVICE_CPU, NULL, NULL, &t));
    CHECK_ERR(lt_tensor_from_blob(data, (int64_t[]){2}, (int64_t[]){-1}, 1, LT_F32, LT_DEVICE_CPU, NULL, NULL, &t),
              LT_ERR_ARG, fn);
    CHECK_ERR(lt_tensor_from_blob(data, (int64_t[]){-2}, NULL, 1, LT_F32, LT_DEVICE_CPU, NULL, NULL, &t), LT_ERR_ARG,
              fn);
    CHECK_ERR(lt_tensor_from_blob(data, (int64_t[]){2}, NULL, 1, (lt_dtype)99, LT_DEVICE_CPU, NULL, NULL, &t),
              LT_ERR_DTYPE, fn);
    CHECK_ERR(
        lt_tensor_from_blob(data, (int64_t[]){2}, NULL, 1, LT_F32, ((lt_device){LT_CUDA, 0}), count_delete, &one, &t),
        LT_ERR_DEVICE, fn);
    CHECK_ERR(lt_tensor_from_blob(data, (int64_t[]){2}, NULL, 1, LT_F32, LT_DEVICE_CPU, NULL, NULL, NULL), LT_ERR_ARG,
              fn);
    CHECK(blob_deleted == 1); /* failures never call the deleter */
}

int main(void) {
    RUN(test_from_blob);
    RUN(test_empty_geometry);
    RUN(test_zeros_ones_full);
    RUN(test_arange);
    RUN(test_host_round_trip);
    RUN(test_rand_uniform);
    RUN(test_randn);
    RUN(test_rng_offset_and_reproducibility);
    RUN(test_to_f32_to_half);
    RUN(test_to_half_to_other);
    RUN(test_to_float_int);
    RUN(test_copy_broadcast);
    RUN(test_copy_into_strided_views);
    RUN(test_copy_keeps_no_reference);
    RUN(test_large_copy_and_fill);
    RUN(test_accessors);
    RUN(test_names_and_version);
    RUN(test_scopes);
    RUN(test_scope_state_errors);
    RUN(test_retain_release);
    RUN(test_alloc_stats);
    RUN(test_num_threads);
    RUN(test_creation_errors);
    RUN(test_arange_errors);
    RUN(test_copy_and_to_errors);
    return tt_finish();
}
