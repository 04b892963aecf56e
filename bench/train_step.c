/* Times one GPT training step (forward, backward, clip, AdamW) in libtrain for the configs of bench/README.md and
 * prints one RESULT line per config that bench/run.sh sets beside PyTorch's. Timing only: no test depends on it.
 * Usage: train_step [--config tiny|small|gpt2-124M] [--steps N] [--warmup N] [--threads N] */
#include <libtrain/libtrain.h>

#include "../examples/options.h"

#include <sys/resource.h>
#include <time.h>

typedef struct bench_config {
    const char *name;
    int64_t V, Vp, T, L, H, C, B;
} bench_config;

static const bench_config configs[] = {
    {"tiny", 256, 256, 128, 2, 4, 128, 8},
    {"small", 256, 256, 256, 4, 4, 256, 8},
    {"gpt2-124M", 50257, 50304, 64, 12, 12, 768, 4},
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define TRY(expr)                                                                                                      \
    do {                                                                                                               \
        if ((expr) != LT_OK) {                                                                                         \
            fprintf(stderr, "train_step: %s\n", lt_last_error());                                                      \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

int main(int argc, char **argv) {
    const char *name = "small";
    int64_t steps = 10, warmup = 3, threads = 0;
    const opt table[] = {
        {"--config", OPT_STRING, &name, 0, 0, "tiny, small or gpt2-124M"},
        {"--steps", OPT_INT, &steps, 1, 1e6, "timed steps"},
        {"--warmup", OPT_INT, &warmup, 0, 1e6, "untimed steps first"},
        {"--threads", OPT_INT, &threads, 0, 1024, "CPU threads, 0 = all cores"},
    };
    int rc =
        opt_parse(argc, argv, "Times a GPT training step in libtrain.", table, (int)(sizeof table / sizeof table[0]));
    if (rc) return rc == 1 ? 0 : rc;
    const bench_config *bc = NULL;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (strcmp(configs[i].name, name) == 0) bc = &configs[i];
    if (!bc) {
        fprintf(stderr, "train_step: unknown config '%s'\n", name);
        return 2;
    }
    TRY(lt_set_num_threads((int)threads));
    lt_gpt_config cfg = {.struct_size = sizeof cfg,
                         .vocab_size = bc->V,
                         .padded_vocab_size = bc->Vp,
                         .block_size = bc->T,
                         .n_layer = bc->L,
                         .n_head = bc->H,
                         .n_embd = bc->C};
    lt_gpt *m;
    TRY(lt_gpt_create(&cfg, LT_F32, LT_DEVICE_CPU, 1, &m));
    lt_params *p = lt_gpt_params(m);
    lt_optim *opt;
    lt_adamw_config ac = {
        .struct_size = sizeof ac, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    TRY(lt_adamw_create(p, &ac, &opt));
    int64_t n = bc->B * bc->T;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n + 1));
    uint32_t s = 1;
    for (int64_t i = 0; i <= n; i++) tok[i] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % (int32_t)bc->V;
    lt_tensor *x, *y;
    TRY(lt_tensor_from_host(tok, (int64_t[]){bc->B, bc->T}, 2, LT_I32, LT_DEVICE_CPU, &x));
    TRY(lt_tensor_from_host(tok + 1, (int64_t[]){bc->B, bc->T}, 2, LT_I32, LT_DEVICE_CPU, &y));
    double *ms = malloc(sizeof(double) * (size_t)steps);
    lt_alloc_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    for (int64_t k = 0; k < warmup + steps; k++) {
        if (k == warmup) TRY(lt_alloc_get_stats(LT_DEVICE_CPU, &before));
        double t0 = now(), norm;
        lt_tensor *loss;
        TRY(lt_scope_begin());
        TRY(lt_params_zero_grad(p));
        TRY(lt_gpt_forward(m, x, y, true, NULL, &loss));
        TRY(lt_backward(loss));
        TRY(lt_clip_grad_norm(p, 1.0, &norm));
        TRY(lt_optim_step(opt));
        TRY(lt_scope_end());
        if (k >= warmup) ms[k - warmup] = 1e3 * (now() - t0);
    }
    TRY(lt_alloc_get_stats(LT_DEVICE_CPU, &after));
    qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
    double med = ms[steps / 2];
    /* llm.c's count: 6 N + 6 L C T FLOP per token (N parameters, the attention scores and mixing as the second term) */
    double N = (double)lt_params_numel(p), flop = (6 * N + 6.0 * (double)(bc->L * bc->C * bc->T)) * (double)n;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT impl=libtrain config=%s ms=%.2f tok_s=%.0f gflops=%.1f rss_mb=%.1f steady_mallocs=%llu threads=%d\n",
           bc->name, med, (double)n / (med / 1e3), flop / (med / 1e3) / 1e9, (double)ru.ru_maxrss / 1024.0,
           (unsigned long long)(after.system_allocs - before.system_allocs), lt_get_num_threads());
    free(ms);
    free(tok);
    lt_tensor_release(x);
    lt_tensor_release(y);
    lt_optim_free(opt);
    lt_gpt_free(m);
    return 0;
}
