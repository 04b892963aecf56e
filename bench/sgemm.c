/* GFLOP/s of the AVX-512 sgemm (src/cpu/sgemm.c, compiled in: its symbols are internal to libtrain.so) against
 * OpenBLAS's cblas_sgemm on the GEMM shapes of a CPU training step (gpt2-124M at B*T = 256 and the small config at
 * 2048 rows). The two run interleaved in one process, each timed call alternating, and each figure is the median of
 * --reps calls after 2 warm-up calls; the max relative difference between the two results is printed as a check.
 * cblas_sgemm is looked up at run time (libopenblas.so.0), so this builds with the library alone.
 * The own kernel's threads come from OpenMP: built without -fopenmp (as the bench/ glob builds it) it runs on one
 * thread only. By hand:
 *   gcc -O2 -fopenmp -Iinclude bench/sgemm.c -o sgemm -ldl -lm
 * Usage: sgemm [--threads N] [--reps N] [--only SUBSTRING]   (OPENBLAS_CORETYPE=Haswell forces OpenBLAS's AVX2 kernel)
 */
#include "../src/cpu/sgemm.c"
#include "bench.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int);
typedef char *(*corename_fn)(void);

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef struct bench_shape {
    const char *what;
    bool ta, tb;
    int m, n, k;
    float beta;
} bench_shape;

static const bench_shape shapes[] = {
    /* gpt2-124M, B*T = 256 */
    {"gpt2 qkv fwd", false, false, 256, 2304, 768, 1},
    {"gpt2 attproj fwd", false, false, 256, 768, 768, 1},
    {"gpt2 fc fwd", false, false, 256, 3072, 768, 1},
    {"gpt2 fcproj fwd", false, false, 256, 768, 3072, 1},
    {"gpt2 attproj dx", false, true, 256, 768, 768, 0},
    {"gpt2 qkv dx", false, true, 256, 768, 2304, 0},
    {"gpt2 fc dx", false, true, 256, 768, 3072, 0},
    {"gpt2 fcproj dx", false, true, 256, 3072, 768, 0},
    {"gpt2 logits fwd", false, true, 256, 50304, 768, 0},
    {"gpt2 qkv dW", true, false, 768, 2304, 256, 1},
    {"gpt2 attproj dW", true, false, 768, 768, 256, 1},
    {"gpt2 fc dW", true, false, 768, 3072, 256, 1},
    {"gpt2 fcproj dW", true, false, 3072, 768, 256, 1},
    {"gpt2 wte dW", true, false, 50304, 768, 256, 1},
    {"gpt2 logits dx", false, false, 256, 768, 50304, 0},
    /* small config, 2048 rows */
    {"small NN 768x256", false, false, 2048, 768, 256, 1},
    {"small NN 256x256", false, false, 2048, 256, 256, 1},
    {"small NN 1024x256", false, false, 2048, 1024, 256, 1},
    {"small NN 256x1024", false, false, 2048, 256, 1024, 1},
    {"small NT 256x768", false, true, 2048, 256, 768, 0},
    {"small NT 256x256", false, true, 2048, 256, 256, 0},
    {"small NT 256x1024", false, true, 2048, 256, 1024, 0},
    {"small NT 1024x256", false, true, 2048, 1024, 256, 0},
    {"small TN 256x768", true, false, 256, 768, 2048, 1},
    {"small TN 256x256", true, false, 256, 256, 2048, 1},
    {"small TN 256x1024", true, false, 256, 1024, 2048, 1},
    {"small TN 1024x256", true, false, 1024, 256, 2048, 1},
    {"small NN 256^3", false, false, 256, 256, 256, 0},
};

static void *find(const char *name) {
    void *p = dlsym(RTLD_DEFAULT, name);
    if (!p) {
        void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_GLOBAL);
        if (h) p = dlsym(h, name);
    }
    return p;
}

static float *filled(size_t n, unsigned seed) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0) return NULL;
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
    return p;
}

int main(int argc, char **argv) {
    int threads = 0, reps = 11;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--threads N] [--reps N] [--only SUBSTRING]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (!lt__sgemm_avx512_available()) {
        printf("SKIP: this CPU lacks AVX-512\n");
        return 77;
    }
    sgemm_fn blas = (sgemm_fn)find("cblas_sgemm");
    set_threads_fn set_threads = (set_threads_fn)find("openblas_set_num_threads");
    corename_fn corename = (corename_fn)find("openblas_get_corename");
    if (!blas) {
        fprintf(stderr, "cblas_sgemm not found (libopenblas.so.0)\n");
        return 1;
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
    int own_threads = omp_get_max_threads();
#else
    int own_threads = 1;
#endif
    if (threads > 0 && set_threads) set_threads(threads);
    printf("OpenBLAS core: %s; threads: own kernel %d, OpenBLAS %d; median of %d\n", corename ? corename() : "?",
           own_threads, threads > 0 ? threads : -1, reps);
    printf("%-20s %2s %6s %6s %6s %4s | %9s %9s %6s | %8s\n", "shape", "op", "m", "n", "k", "beta", "own GF/s",
           "BLAS GF/s", "ratio", "max rel");
    double *t_own = malloc(sizeof(double) * (size_t)reps), *t_blas = malloc(sizeof(double) * (size_t)reps);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const bench_shape *s = &shapes[si];
        if (only && !strstr(s->what, only)) continue;
        int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n, ldc = s->n;
        size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
        float *a = filled(na, 1), *b = filled(nb, 2), *c0 = filled(nc, 3), *c1 = filled(nc, 3);
        if (!a || !b || !c0 || !c1) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        /* beta = 1 accumulates into c over the repetitions: harmless for timing; the check below uses fresh c */
        for (int r = -2; r < reps; r++) {
            double t0 = bench_now();
            if (!lt__sgemm_avx512(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, s->beta, NULL, NULL, c0, ldc)) {
                fprintf(stderr, "lt__sgemm_avx512 failed\n");
                return 1;
            }
            double t1 = bench_now();
            blas(ROW_MAJOR, s->ta ? TRANS : NO_TRANS, s->tb ? TRANS : NO_TRANS, s->m, s->n, s->k, 1.0f, a, lda, b, ldb,
                 s->beta, c1, ldc);
            double t2 = bench_now();
            if (r >= 0) {
                t_own[r] = t1 - t0;
                t_blas[r] = t2 - t1;
            }
        }
        /* check: one fresh call each from the same c */
        float *f0 = filled(nc, 4), *f1 = filled(nc, 4);
        lt__sgemm_avx512(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, s->beta, NULL, NULL, f0, ldc);
        blas(ROW_MAJOR, s->ta ? TRANS : NO_TRANS, s->tb ? TRANS : NO_TRANS, s->m, s->n, s->k, 1.0f, a, lda, b, ldb,
             s->beta, f1, ldc);
        double maxrel = 0, scale = 0;
        for (size_t i = 0; i < nc; i++) scale = fmax(scale, fabs(f1[i]));
        for (size_t i = 0; i < nc; i++) maxrel = fmax(maxrel, fabs((double)f0[i] - f1[i]) / (scale + 1e-30));
        double flop = 2.0 * s->m * s->n * s->k;
        double own = flop / bench_median(t_own, reps) * 1e-9, ob = flop / bench_median(t_blas, reps) * 1e-9;
        printf("%-20s %c%c %6d %6d %6d %4g | %9.1f %9.1f %6.2f | %8.1e\n", s->what, s->ta ? 'T' : 'N',
               s->tb ? 'T' : 'N', s->m, s->n, s->k, s->beta, own, ob, own / ob, maxrel);
        fflush(stdout);
        free(a);
        free(b);
        free(c0);
        free(c1);
        free(f0);
        free(f1);
    }
    free(t_own);
    free(t_blas);
    return 0;
}
