/* The AVX-512 sgemm (src/cpu/sgemm.c) against an f64 reference: all four transpose combinations, beta 0 (c filled
 * with NaN beforehand) and 1 and 0.5, edge sizes in each of m, n, k (and k = 0), leading dimensions wider than the
 * rows (the gaps must stay untouched), a bias row (and that it equals filling c with it), operands allocated to their
 * exact extent (so AddressSanitizer sees any read past them), and 1, 2 and 3 threads giving bitwise the same c. The
 * kernel's symbols are internal to libtrain.so, so the test compiles sgemm.c in; its threads here are pthreads running
 * the per-thread worker that the library's OpenMP team runs. Skips (77) on a CPU without AVX-512. */
#include "test.h"

#include "../../src/cpu/sgemm.c"

#include <pthread.h>
#include <time.h>

#ifdef LT_CPU_X86

/* A matrix of rows x cols with row length ld >= cols, allocated to exactly (rows - 1) * ld + cols floats. */
static float *mat(int64_t rows, int64_t cols, int64_t ld, double lo, double hi) {
    size_t len = rows > 0 && cols > 0 ? (size_t)((rows - 1) * ld + cols) : 1;
    float *p = malloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++) p[i] = (float)tt_uniform(lo, hi);
    return p;
}

static double elem(const float *x, int64_t ld, bool t, int64_t i, int64_t j) {
    return t ? x[j * ld + i] : x[i * ld + j];
}

/* Sizes where [i][j] of the stored matrix: op(a) m x k is stored m x k (k x m when ta). */
typedef struct shape {
    bool ta, tb;
    int64_t m, n, k;
    int64_t pad; /* extra row length for a, b and c */
    float beta;
} shape;

static int64_t lda_of(const shape *s) { return (s->ta ? s->m : s->k) + s->pad; }
static int64_t ldb_of(const shape *s) { return (s->tb ? s->k : s->n) + s->pad; }
static int64_t ldc_of(const shape *s) { return s->n + s->pad; }

/* One product (plus a bias row when with_bias) against the f64 reference. Returns false (and prints) on a mismatch. */
static bool check_product(const shape *s, bool with_bias) {
    int64_t lda = lda_of(s), ldb = ldb_of(s), ldc = ldc_of(s);
    float *a = s->ta ? mat(s->k, s->m, lda, -1, 1) : mat(s->m, s->k, lda, -1, 1);
    float *b = s->tb ? mat(s->n, s->k, ldb, -1, 1) : mat(s->k, s->n, ldb, -1, 1);
    float *c = mat(s->m, s->n, ldc, -1, 1);
    size_t clen = s->m > 0 && s->n > 0 ? (size_t)((s->m - 1) * ldc + s->n) : 1;
    float *c0 = malloc(clen * sizeof(float));
    /* the row gaps hold a sentinel that must survive; beta == 0 must not read c: NaN there */
    for (int64_t i = 0; i < s->m; i++)
        for (int64_t j = 0; j < ldc && i * ldc + j < (int64_t)clen; j++)
            if (j >= s->n)
                c[i * ldc + j] = -12345.0f;
            else if (s->beta == 0.0f)
                c[i * ldc + j] = NAN;
    memcpy(c0, c, clen * sizeof(float));
    float *bias = with_bias ? mat(1, s->n, s->n, -1, 1) : NULL;
    float *asum = malloc((size_t)(s->k > 0 ? s->k : 1) * sizeof(float));
    for (int64_t p = 0; p < s->k; p++) asum[p] = NAN;
    bool ok = lt__sgemm_avx512(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, s->beta, bias, asum, c, ldc);
    if (!ok) fprintf(stderr, "lt__sgemm_avx512 returned false\n");
    for (int64_t p = 0; ok && p < s->k; p++) { /* the row sums of op(a) */
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < s->m; i++) {
            ref += elem(a, lda, s->ta, i, p);
            mag += fabs(elem(a, lda, s->ta, i, p));
        }
        double tol = (double)(s->m + 2) * 0x1p-23 * mag + 1e-30;
        if (!(fabs(asum[p] - ref) <= tol)) {
            fprintf(stderr, "asum[%lld] = %.9g, expected %.9g (tol %.3g)\n", (long long)p, asum[p], ref, tol);
            ok = false;
        }
    }
    for (int64_t i = 0; ok && i < s->m; i++) {
        for (int64_t j = 0; ok && j < ldc && i * ldc + j < (int64_t)clen; j++) {
            float got = c[i * ldc + j];
            if (j >= s->n) {
                if (got != -12345.0f) {
                    fprintf(stderr, "gap [%lld][%lld] written: %g\n", (long long)i, (long long)j, got);
                    ok = false;
                }
                continue;
            }
            double ref = 0, mag = 0;
            for (int64_t p = 0; p < s->k; p++) {
                double t = elem(a, lda, s->ta, i, p) * elem(b, ldb, s->tb, p, j);
                ref += t;
                mag += fabs(t);
            }
            if (s->beta != 0.0f) {
                ref += (double)s->beta * c0[i * ldc + j];
                mag += fabs((double)s->beta * c0[i * ldc + j]);
            }
            if (bias) {
                ref += bias[j];
                mag += fabs(bias[j]);
            }
            double tol = (double)(s->k + 2) * 0x1p-23 * mag + 1e-30;
            if (!(fabs(got - ref) <= tol)) {
                fprintf(stderr, "[%lld][%lld] = %.9g, expected %.9g (tol %.3g)\n", (long long)i, (long long)j, got, ref,
                        tol);
                ok = false;
            }
        }
    }
    if (!ok)
        fprintf(stderr, "  in %c%c m=%lld n=%lld k=%lld pad=%lld beta=%g%s\n", s->ta ? 'T' : 'N', s->tb ? 'T' : 'N',
                (long long)s->m, (long long)s->n, (long long)s->k, (long long)s->pad, s->beta,
                bias ? " with bias" : "");
    free(bias);
    free(asum);
    free(a);
    free(b);
    free(c);
    free(c0);
    return ok;
}

static bool check_shape(const shape *s) { return check_product(s, false); }

static const int64_t edge_sizes[] = {1, 2, 7, 15, 17, 31, 33, 63, 65, 255, 257};
#define N_EDGE ((int)(sizeof edge_sizes / sizeof edge_sizes[0]))

/* Each edge size in each of m, n, k, the other two moderate, for all transposes and betas. */
static void test_edges(void) {
    const float betas[] = {0.0f, 1.0f, 0.5f};
    for (int t = 0; t < 4; t++)
        for (int bi = 0; bi < 3; bi++)
            for (int dim = 0; dim < 3; dim++)
                for (int e = 0; e < N_EDGE; e++) {
                    int64_t v[3] = {37, 45, 29};
                    v[dim] = edge_sizes[e];
                    shape s = {t & 1, t >> 1, v[0], v[1], v[2], (e + dim) % 3 == 0 ? 0 : 3 + e, betas[bi]};
                    CHECK(check_shape(&s));
                }
}

/* All combinations of a few edge sizes (fewer, to keep the f64 reference quick). */
static void test_combinations(void) {
    const int64_t sz[] = {1, 7, 17, 33, 65};
    int i = 0;
    for (int t = 0; t < 4; t++)
        for (int mi = 0; mi < 5; mi++)
            for (int ni = 0; ni < 5; ni++)
                for (int ki = 0; ki < 5; ki++, i++) {
                    shape s = {t & 1, t >> 1, sz[mi], sz[ni], sz[ki], i % 2 ? 5 : 0, i % 3 == 0 ? 0.0f : 1.0f};
                    CHECK(check_shape(&s));
                }
}

/* k = 0: c = beta c, and beta == 0 writes zeros over NaN. */
static void test_k0(void) {
    for (int t = 0; t < 4; t++) {
        shape s0 = {t & 1, t >> 1, 17, 33, 0, 2, 0.0f}, s1 = {t & 1, t >> 1, 17, 33, 0, 0, 1.0f};
        CHECK(check_shape(&s0));
        CHECK(check_shape(&s1));
    }
}

/* Past the blocking: several k blocks (KC_MAX = 384) and n blocks (NC_MAX = 512), and m and n not multiples of the
 * tile, with the last k block shorter. */
static void test_blocks(void) {
    const shape shapes[] = {
        {false, false, 257, 1000, 800, 0, 1.0f}, {false, true, 100, 993, 769, 3, 0.0f},
        {true, false, 513, 97, 385, 0, 0.0f},    {true, true, 61, 515, 1153, 1, 1.0f},
        {false, false, 256, 768, 768, 0, 0.0f},  {true, false, 768, 256, 256, 0, 1.0f},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) CHECK(check_shape(&shapes[i]));
}

/* ---- Threads: the same c bitwise from 1, 2 and 3 workers, splitting n and splitting m ---- */

typedef struct worker_job {
    const sgemm_args *g;
    int tid, nth;
    bool late; /* starts 20 ms after the others, whose threads then take its units */
    bool ok;
} worker_job;

static void *run_worker(void *arg) {
    worker_job *j = arg;
    if (j->late) nanosleep(&(struct timespec){0, 20000000}, NULL);
    float *buf = thread_buf();
    j->ok = buf != NULL;
    if (buf) sgemm_worker(j->g, j->tid, j->nth, buf);
    return NULL;
}

/* The worker's arguments for shape s (as lt__sgemm_avx512 sets them up), with c and beta given. */
static sgemm_args args_of(const shape *s, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                          int64_t ldc, float beta) {
    return (sgemm_args){.ta = s->ta,
                        .tb = s->tb,
                        .split_n = s->n >= s->m,
                        .m = s->m,
                        .n = s->n,
                        .k = s->k,
                        .lda = lda,
                        .ldb = ldb,
                        .ldc = ldc,
                        .a = a,
                        .b = b,
                        .c = c,
                        .beta = beta};
}

/* Runs g on nth pthreads (as the OpenMP team would), thread `late` (-1: none) starting late. */
static bool run_threads_late(const sgemm_args *g, int nth, int late) {
    pthread_t th[4];
    worker_job jobs[4];
    bool ok = true;
    for (int i = 0; i < nth; i++) {
        jobs[i] = (worker_job){g, i, nth, i == late, false};
        if (pthread_create(&th[i], NULL, run_worker, &jobs[i]) != 0) return false;
    }
    for (int i = 0; i < nth; i++) {
        pthread_join(th[i], NULL);
        ok = ok && jobs[i].ok;
    }
    return ok;
}

static bool run_threads(const sgemm_args *g, int nth) { return run_threads_late(g, nth, -1); }

/* A split balanced at run time (sched_worker) on nth threads, one of them starting late so that the others take its
 * units. Runs the fixed split when g does not take a balanced one. With asum, the row sums of op(a) as
 * lt__sgemm_avx512 takes them while packing (a split of m, op(a) = a: *summed), else left alone. */
static bool run_sched(const sgemm_args *g, int nth, int late, float *asum, bool *summed) {
    static sgemm_sched sched; /* (8 KiB: not on the stack) */
    sgemm_args gs = *g;
    if (sched_init(&sched, &gs, nth)) gs.sched = &sched;
    bool sums = asum && gs.sched && !gs.split_n && !gs.ta;
    if (summed) *summed = sums;
    if (sums) gs.apart = malloc((size_t)((sched.nb + 1) * gs.k) * sizeof(double));
    bool ok = run_threads_late(&gs, nth, late);
    if (sums) asum_reduce(gs.apart, sched.nb, gs.k, gs.apart + sched.nb * gs.k, asum);
    free(gs.apart);
    return ok;
}

/* Runs of bitwise_threads that took a's row sums while packing (the test checks that some did). */
static int fused_sums;

/* c from 1, 2 and 3 workers, bitwise the same, and the entry point's the same again. */
static bool bitwise_threads(const shape *s) {
    int64_t lda = lda_of(s), ldb = ldb_of(s), ldc = ldc_of(s);
    float *a = s->ta ? mat(s->k, s->m, lda, -1, 1) : mat(s->m, s->k, lda, -1, 1);
    float *b = s->tb ? mat(s->n, s->k, ldb, -1, 1) : mat(s->k, s->n, ldb, -1, 1);
    float *c0 = mat(s->m, s->n, ldc, -1, 1);
    size_t clen = (size_t)((s->m - 1) * ldc + s->n);
    float *c[4];
    bool ok = true;
    for (int nth = 1; nth <= 3; nth++) {
        c[nth] = malloc(clen * sizeof(float));
        memcpy(c[nth], c0, clen * sizeof(float));
        sgemm_args g = args_of(s, a, lda, b, ldb, c[nth], ldc, s->beta);
        ok = run_threads(&g, nth) && ok;
    }
    ok = ok && memcmp(c[1], c[2], clen * sizeof(float)) == 0 && memcmp(c[1], c[3], clen * sizeof(float)) == 0;
    memcpy(c[2], c0, clen * sizeof(float));
    float *asum = malloc((size_t)s->k * sizeof(float)), *asum2 = malloc((size_t)s->k * sizeof(float));
    ok = ok && lt__sgemm_avx512(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, s->beta, NULL, asum, c[2], ldc);
    ok = ok && memcmp(c[1], c[2], clen * sizeof(float)) == 0;
    /* balanced at run time: 2 and 3 threads, with the first or the last starting late; the row sums of a taken while
     * packing are bitwise those of the separate pass */
    for (int nth = 2; nth <= 3; nth++) {
        for (int late = 0; late < nth; late += nth - 1) {
            memcpy(c[nth], c0, clen * sizeof(float));
            for (int64_t p = 0; p < s->k; p++) asum2[p] = NAN;
            sgemm_args g = args_of(s, a, lda, b, ldb, c[nth], ldc, s->beta);
            bool summed;
            ok = run_sched(&g, nth, late, asum2, &summed) && ok && memcmp(c[1], c[nth], clen * sizeof(float)) == 0;
            ok = ok && (!summed || memcmp(asum, asum2, (size_t)s->k * sizeof(float)) == 0);
            fused_sums += summed;
        }
    }
    free(asum);
    free(asum2);
    if (!ok)
        fprintf(stderr, "  threads differ in %c%c m=%lld n=%lld k=%lld pad=%lld beta=%g\n", s->ta ? 'T' : 'N',
                s->tb ? 'T' : 'N', (long long)s->m, (long long)s->n, (long long)s->k, (long long)s->pad, s->beta);
    for (int nth = 1; nth <= 3; nth++) free(c[nth]);
    free(a);
    free(b);
    free(c0);
    return ok;
}

static void test_threads_bitwise(void) {
    const shape shapes[] = {
        {false, false, 256, 768, 800, 0, 0.0f},  /* split n */
        {true, false, 700, 130, 256, 2, 1.0f},   /* split m, TN */
        {false, true, 97, 450, 385, 0, 0.0f},    /* split n, NT, edges */
        {true, true, 301, 77, 100, 1, 1.0f},     /* split m, TT */
        {false, true, 1500, 1000, 769, 1, 0.5f}, /* split m over 3 column blocks x 2 k blocks, balanced */
        {false, false, 50000, 40, 30, 0, 0.0f},  /* more rows than DYN_MAX_BLOCKS steps: blocks of 2 steps */
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) CHECK(bitwise_threads(&shapes[si]));
    CHECK(fused_sums == 6); /* m = 1500 on 2 threads (3 keep a resident) and m = 50000 on 2 and 3, twice each */
}

/* ---- a resident (sgemm_worker packs a once per k block when the thread's rows fit beside a b block) ---- */

/* The most rows for which a thread keeps its packed a resident, for this k. */
static int64_t resident_m_max(int64_t k) {
    int64_t kcb = cdiv(k, cdiv(k, KC_MAX));
    return (BUF_MAIN - NC_MIN_RES * kcb) / kcb / MR * MR;
}

/* Against the reference on either side of the row threshold (n wide enough for several column blocks), and the
 * threads bitwise: with 3 threads n = 1300 leaves each one column block (the classic loops) where 1 thread keeps a
 * resident, and splitting m = 700 over 2 or 3 threads keeps a resident where 1 thread does not. */
static void test_resident_a(void) {
    const int64_t ks[] = {45, 700, 769};
    for (int ki = 0; ki < 3; ki++) {
        int64_t k = ks[ki], mm = resident_m_max(k);
        CHECK(mm >= MR && mm < 5000);
        for (int64_t m = mm - 1; m <= mm + 1; m++) {
            if (ki < 2) {
                int t = (int)(m - mm + 1) + ki;
                shape s = {t & 1, (t >> 1) & 1, m, 521, k, (m & 1) ? 3 : 0, m == mm ? 0.0f : 0.5f};
                CHECK(check_shape(&s));
            }
        }
    }
    /* wider column blocks for a short k (classic loops: more rows than resident_m_max(256) = 600) */
    const shape wide[] = {{true, false, 700, 800, 256, 0, 1.0f}, {false, true, 613, 1501, 200, 2, 0.0f}};
    for (int i = 0; i < 2; i++) CHECK(check_shape(&wide[i]));
    int64_t m769 = resident_m_max(769);
    const shape shapes[] = {
        {false, false, m769, 1537, 769, 0, 0.0f},    {false, true, m769 + 1, 1537, 769, 2, 1.0f},
        {true, false, m769 - 5, 1300, 769, 0, 1.0f}, {true, true, m769 + 1, 1300, 769, 1, 0.0f},
        {false, true, 256, 2304, 768, 0, 0.0f},      {true, false, 700, 650, 256, 0, 1.0f},
        {false, false, 700, 650, 256, 3, 0.5f},      {false, true, 97, 3000, 385, 0, 0.0f},
        {false, false, 256, 1100, 1153, 0, 1.0f},    {true, false, 1, 2000, 100, 0, 0.0f},
        {true, false, 768, 2304, 256, 0, 1.0f},      {false, true, 700, 1500, 256, 1, 0.0f},
        {true, true, 40, 9000, 20, 0, 0.5f},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) CHECK(bitwise_threads(&shapes[i]));
}

/* ---- bias: a row added to every row of c, with the first k block ---- */

/* With beta == 0, the bias gives bitwise what filling c with it and calling with beta = 1 gives (lt_linear's old
 * sequence), on 1 and 2 threads. */
static bool bias_as_fill(const shape *s) {
    int64_t lda = lda_of(s), ldb = ldb_of(s), ldc = s->n;
    float *a = s->ta ? mat(s->k, s->m, lda, -1, 1) : mat(s->m, s->k, lda, -1, 1);
    float *b = s->tb ? mat(s->n, s->k, ldb, -1, 1) : mat(s->k, s->n, ldb, -1, 1);
    float *bias = mat(1, s->n, s->n, -1, 1);
    size_t clen = (size_t)(s->m * s->n);
    float *c1 = malloc(clen * sizeof(float)), *c2 = malloc(clen * sizeof(float));
    bool ok = true;
    for (int nth = 1; nth <= 2; nth++) {
        for (int64_t i = 0; i < s->m; i++) {
            memcpy(c1 + i * ldc, bias, (size_t)s->n * sizeof(float));
            for (int64_t j = 0; j < s->n; j++) c2[i * ldc + j] = NAN;
        }
        sgemm_args g1 = args_of(s, a, lda, b, ldb, c1, ldc, 1.0f), g2 = args_of(s, a, lda, b, ldb, c2, ldc, 0.0f);
        g2.bias = bias;
        ok = ok && run_threads(&g1, nth) && run_threads(&g2, nth) && memcmp(c1, c2, clen * sizeof(float)) == 0;
    }
    if (!ok)
        fprintf(stderr, "  bias differs from fill + beta 1 in %c%c m=%lld n=%lld k=%lld\n", s->ta ? 'T' : 'N',
                s->tb ? 'T' : 'N', (long long)s->m, (long long)s->n, (long long)s->k);
    free(a);
    free(b);
    free(bias);
    free(c1);
    free(c2);
    return ok;
}

static void test_bias(void) {
    /* against the reference: every transpose and beta, edge widths (masked bias loads), k = 0, several k and n
     * blocks, and a resident (m = 256) */
    const shape shapes[] = {
        {false, false, 37, 45, 29, 0, 0.0f},     {true, false, 37, 33, 29, 3, 1.0f},
        {false, true, 13, 17, 65, 0, 0.5f},      {true, true, 1, 1, 1, 0, 0.0f},
        {false, false, 17, 33, 0, 2, 0.0f},      {true, true, 17, 33, 0, 0, 0.5f},
        {false, false, 257, 1000, 800, 0, 0.0f}, {true, false, 513, 97, 385, 0, 0.0f},
        {false, false, 256, 2304, 768, 0, 0.0f},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) CHECK(check_product(&shapes[i], true));
    const shape fills[] = {
        {false, false, 2048, 768, 256, 0, 0.0f}, /* small's qkv: split m, one k block */
        {false, false, 256, 2304, 768, 0, 0.0f}, /* gpt2's qkv: split n, a resident, two k blocks */
        {false, false, 100, 993, 1153, 0, 0.0f}, /* edges, four k blocks */
        {true, true, 61, 515, 400, 0, 0.0f},
    };
    for (size_t i = 0; i < sizeof fills / sizeof fills[0]; i++) CHECK(bias_as_fill(&fills[i]));
}
#endif

int main(void) {
#ifdef LT_CPU_X86
    if (!lt__sgemm_avx512_available()) {
        printf("SKIP: this CPU lacks AVX-512\n");
        return 77;
    }
    tt_seed(20240611);
    RUN(test_edges);
    RUN(test_combinations);
    RUN(test_k0);
    RUN(test_blocks);
    RUN(test_threads_bitwise);
    RUN(test_resident_a);
    RUN(test_bias);
    return tt_finish();
#else
    printf("SKIP: the AVX-512 sgemm is x86-64 only\n");
    return 77;
#endif
}
