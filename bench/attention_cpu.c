/* Times lt_attention on the CPU, forward alone and forward + backward, for the shapes GPT training uses (head size
 * 64: the small and gpt2-124M configs of train_step, and long sequences). Timing only: no test depends on it.
 * Usage: attention_cpu [--threads N] [--reps N] [--f64] [B T H hs]   (OMP_NUM_THREADS also sets the thread count) */
#include <libtrain/libtrain.h>

#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(expr)                                                                                                      \
    do {                                                                                                               \
        if ((expr) != LT_OK) {                                                                                         \
            fprintf(stderr, "attention_cpu: %s\n", lt_last_error());                                                   \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Median milliseconds of forward and of forward + backward over reps runs, after two warm-up runs. */
static void time_shape(int64_t B, int64_t T, int64_t H, int64_t hs, lt_dtype dt, int reps, double *fwd, double *both) {
    int64_t C = H * hs, xs[3] = {B, T, 3 * C}, ys[3] = {B, T, C};
    lt_philox rng = {1234, 0};
    lt_tensor *qkv, *gy;
    TRY(lt_tensor_randn(xs, 3, dt, LT_DEVICE_CPU, &rng, &qkv));
    TRY(lt_tensor_randn(ys, 3, dt, LT_DEVICE_CPU, &rng, &gy));
    TRY(lt_tensor_set_requires_grad(qkv, true));
    double *tf = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
    for (int r = -2; r < reps; r++) {
        TRY(lt_scope_begin());
        lt_tensor *y;
        lt_no_grad_begin();
        double t0 = bench_now();
        TRY(lt_attention(qkv, (int)H, &y));
        double t1 = bench_now();
        lt_no_grad_end();
        TRY(lt_tensor_zero_grad(qkv));
        double t2 = bench_now();
        TRY(lt_attention(qkv, (int)H, &y));
        TRY(lt_backward_grad(y, gy));
        double t3 = bench_now();
        TRY(lt_scope_end());
        if (r >= 0) tf[r] = 1e3 * (t1 - t0), tb[r] = 1e3 * (t3 - t2);
    }
    *fwd = bench_median(tf, reps);
    *both = bench_median(tb, reps);
    free(tf);
    free(tb);
    lt_tensor_release(qkv);
    lt_tensor_release(gy);
}

int main(int argc, char **argv) {
    int reps = 21, threads = 0;
    lt_dtype dt = LT_F32;
    int64_t shapes[8][4] = {{8, 256, 4, 64}, {4, 64, 12, 64}, {1, 1024, 4, 64}, {8, 128, 4, 32}};
    int nshapes = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--f64") == 0)
            dt = LT_F64;
        else if (i + 3 < argc) {
            for (int k = 0; k < 4; k++) shapes[0][k] = atoll(argv[i + k]);
            nshapes = 1;
            i += 3;
        }
    }
    if (reps < 1) reps = 1;
    if (threads > 0) TRY(lt_set_num_threads(threads));
    for (int s = 0; s < nshapes; s++) {
        int64_t B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], hs = shapes[s][3];
        double f, fb;
        time_shape(B, T, H, hs, dt, reps, &f, &fb);
        /* causal: half of the T x T scores; forward 2 products, backward 5 (scores rebuilt, dp, dq, dk, dv) */
        double mac = (double)(B * H) * (double)T * (double)(T + 1) / 2 * (double)hs;
        printf("B=%lld T=%lld H=%lld hs=%lld %s threads=%d: fwd %.3f ms (%.1f GFLOP/s)  fwd+bwd %.3f ms (%.1f "
               "GFLOP/s)  bwd %.3f ms\n",
               (long long)B, (long long)T, (long long)H, (long long)hs, dt == LT_F64 ? "f64" : "f32",
               lt_get_num_threads(), f, 2 * 2 * mac / f * 1e-6, fb, 2 * 7 * mac / fb * 1e-6, fb - f);
    }
    return 0;
}
