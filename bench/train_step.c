/* Times one GPT training step (forward, backward, clip, AdamW) in libtrain for the configs of bench/README.md and
 * prints one RESULT line per config that bench/run.sh sets beside PyTorch's. Timing only: no test depends on it.
 * On a GPU (--device cuda[:N]) each step is timed between two lt_device_synchronize calls, and the RESULT line adds
 * MFU (llm.c's FLOP count against --peak-tflops) and the device's peak memory (lt_alloc_get_stats).
 * Usage: train_step [--config tiny|small|gpt2-124M] [--steps N] [--warmup N] [--threads N] [--device cpu|cuda[:N]]
 *                   [--batch N] [--seq N] [--dtype f32|f64|bf16|auto] [--peak-tflops X] */
#include <libtrain/libtrain.h>

#include "bench.h"

#include "../examples/options.h"

#include <sys/resource.h>
#include <time.h>

typedef struct bench_config {
    const char *name;
    int64_t V, Vp, T, L, H, C, B;
    int64_t gpu_T, gpu_B; /* the shape on a GPU unless --seq/--batch say otherwise */
} bench_config;

static const bench_config configs[] = {
    {"tiny", 256, 256, 128, 2, 4, 128, 8, 128, 8},
    {"small", 256, 256, 256, 4, 4, 256, 8, 256, 8},
    /* on a GPU, the target shape: B x T = 16 x 1024 */
    {"gpt2-124M", 50257, 50304, 64, 12, 12, 768, 4, 1024, 16},
};

#define TRY(expr)                                                                                                      \
    do {                                                                                                               \
        if ((expr) != LT_OK) {                                                                                         \
            fprintf(stderr, "train_step: %s\n", lt_last_error());                                                      \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

/* "cpu", "cuda" or "cuda:N". */
static bool parse_device(const char *s, lt_device *dev) {
    if (strcmp(s, "cpu") == 0) {
        *dev = LT_DEVICE_CPU;
        return true;
    }
    if (strcmp(s, "cuda") == 0) {
        *dev = (lt_device){LT_CUDA, 0};
        return true;
    }
    char *end;
    if (strncmp(s, "cuda:", 5) != 0 || s[5] < '0' || s[5] > '9') return false;
    long i = strtol(s + 5, &end, 10);
    if (*end != '\0' || i > 1024) return false;
    *dev = (lt_device){LT_CUDA, (int32_t)i};
    return true;
}

/* The parameter dtype for --dtype: f32, f64, bf16 (refused with a message when this build cannot hold bf16
 * parameters) or auto (bf16 when it can, else f32). *why says what was chosen and why. */
/* The parameter dtype and whether matrix products run under bf16 autocast: bf16 (and auto on a GPU) means f32 master
 * weights with bf16 products accumulated in f32 (docs/mixed-precision.md); on the CPU autocast changes nothing. */
static bool pick_dtype(const char *s, bool gpu, lt_dtype *out, bool *autocast, const char **why) {
    *autocast = false;
    if (strcmp(s, "f32") == 0 || strcmp(s, "f64") == 0) {
        *out = s[1] == '3' ? LT_F32 : LT_F64;
        *why = "as asked";
        return true;
    }
    bool want_bf16 = strcmp(s, "bf16") == 0;
    if (!want_bf16 && strcmp(s, "auto") != 0) {
        fprintf(stderr, "train_step: --dtype must be f32, f64, bf16 or auto, not '%s'\n", s);
        return false;
    }
    *out = LT_F32;
    if (!gpu) {
        if (want_bf16) {
            fprintf(stderr, "train_step: --dtype bf16 is bf16 autocast, which changes nothing on the CPU\n");
            return false;
        }
        *why = "auto on the CPU: f32";
        return true;
    }
    *autocast = true;
    *why = "bf16 autocast: f32 master weights, bf16 matrix products with f32 accumulation";
    return true;
}

int main(int argc, char **argv) {
    const char *name = "small", *device_name = "cpu", *dtype_name = "f32";
    int64_t steps = 10, warmup = 3, threads = 0, batch = 0, seq = 0;
    double peak_tflops = 989;
    const opt table[] = {
        {"--config", OPT_STRING, &name, 0, 0, "tiny, small or gpt2-124M"},
        {"--steps", OPT_INT, &steps, 1, 1e6, "timed steps"},
        {"--warmup", OPT_INT, &warmup, 0, 1e6, "untimed steps first"},
        {"--threads", OPT_INT, &threads, 0, 1024, "CPU threads, 0 = all cores"},
        {"--device", OPT_STRING, &device_name, 0, 0, "cpu, cuda or cuda:N"},
        {"--batch", OPT_INT, &batch, 0, 1e6, "rows per step B, 0 = the config's (gpt2-124M: 4 on cpu, 16 on cuda)"},
        {"--seq", OPT_INT, &seq, 0, 1e6, "sequence length T, 0 = the config's (gpt2-124M: 64 on cpu, 1024 on cuda)"},
        {"--dtype", OPT_STRING, &dtype_name, 0, 0,
         "f32, f64, bf16 (autocast, GPU only) or auto (bf16 on a GPU, else f32)"},
        {"--peak-tflops", OPT_DOUBLE, &peak_tflops, 1e-3, 1e6,
         "device peak for MFU, TFLOP/s (989: H100/H200 SXM dense bf16 datasheet)"},
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
    lt_device dev;
    if (!parse_device(device_name, &dev)) {
        fprintf(stderr, "train_step: --device must be cpu, cuda or cuda:N, not '%s'\n", device_name);
        return 2;
    }
    const bool gpu = dev.type == LT_CUDA;
    if (gpu && lt_device_check(dev) != LT_OK) {
        fprintf(stderr, "train_step: --device %s: %s\n", device_name, lt_last_error());
        return 3;
    }
    lt_dtype dtype;
    const char *dtype_why;
    bool autocast;
    if (!pick_dtype(dtype_name, gpu, &dtype, &autocast, &dtype_why)) return 2;
    const int64_t B = batch ? batch : gpu ? bc->gpu_B : bc->B, T = seq ? seq : gpu ? bc->gpu_T : bc->T;
    TRY(lt_set_num_threads((int)threads));
    lt_gpt_config cfg = {.struct_size = sizeof cfg,
                         .vocab_size = bc->V,
                         .padded_vocab_size = bc->Vp,
                         .block_size = T,
                         .n_layer = bc->L,
                         .n_head = bc->H,
                         .n_embd = bc->C};
    lt_gpt *m;
    TRY(lt_gpt_create(&cfg, dtype, dev, 1, &m));
    lt_params *p = lt_gpt_params(m);
    lt_optim *opt;
    lt_adamw_config ac = {
        .struct_size = sizeof ac, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    TRY(lt_adamw_create(p, &ac, &opt));
    int64_t n = B * T;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n + 1));
    double *ms = malloc(sizeof(double) * (size_t)steps);
    if (!tok || !ms) {
        fprintf(stderr, "train_step: out of memory\n");
        return 1;
    }
    uint32_t s = 1;
    for (int64_t i = 0; i <= n; i++) tok[i] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % (int32_t)bc->V;
    lt_tensor *x, *y;
    TRY(lt_tensor_from_host(tok, (int64_t[]){B, T}, 2, LT_I32, dev, &x));
    TRY(lt_tensor_from_host(tok + 1, (int64_t[]){B, T}, 2, LT_I32, dev, &y));
    lt_alloc_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    for (int64_t k = 0; k < warmup + steps; k++) {
        if (k == warmup) TRY(lt_alloc_get_stats(dev, &before));
        if (gpu) TRY(lt_device_synchronize(dev)); /* the timed region starts with an idle device */
        double t0 = bench_now(), sumsq;
        lt_tensor *loss;
        TRY(lt_scope_begin());
        TRY(lt_params_zero_grad_lazy(p)); /* as lt_trainer_step: no pass to zero, the backward writes */
        if (autocast) TRY(lt_autocast_begin(LT_BF16));
        TRY(lt_gpt_forward(m, x, y, true, NULL, &loss));
        TRY(lt_backward(loss));
        if (autocast) lt_autocast_end();
        /* clip as lt_trainer_step does: the global norm, then its factor applied inside AdamW's pass */
        TRY(lt_grad_sumsq(p, 0, lt_params_numel(p), &sumsq));
        TRY(lt_optim_step_scaled(opt, lt_clip_coef(sqrt(sumsq), 1.0)));
        TRY(lt_scope_end());
        if (gpu) TRY(lt_device_synchronize(dev)); /* ... and ends when the device has finished the step */
        if (k >= warmup) ms[k - warmup] = 1e3 * (bench_now() - t0);
    }
    TRY(lt_alloc_get_stats(dev, &after));
    double med = bench_median(ms, (int)steps);
    /* llm.c's count: 6 N + 6 L C T FLOP per token (N parameters, the attention scores and mixing as the second term) */
    double N = (double)lt_params_numel(p), flop_token = 6 * N + 6.0 * (double)(bc->L * bc->C * T),
           flop = flop_token * (double)n;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (!gpu) {
        printf("RESULT impl=libtrain config=%s ms=%.2f tok_s=%.0f gflops=%.1f rss_mb=%.1f steady_mallocs=%llu "
               "threads=%d\n",
               bc->name, med, (double)n / (med / 1e3), flop / (med / 1e3) / 1e9, (double)ru.ru_maxrss / 1024.0,
               (unsigned long long)(after.system_allocs - before.system_allocs), lt_get_num_threads());
    } else {
        double tflops = flop / (med / 1e3) / 1e12, mfu = 100.0 * tflops / peak_tflops;
        /* cuda/gemm.cu: LIBTRAIN_TF32=1 lets f32 GEMMs use TF32 tensor cores (off by default) */
        const char *tf32 = getenv("LIBTRAIN_TF32");
        tf32 = tf32 && tf32[0] ? tf32 : "unset";
        char devs[32];
        snprintf(devs, sizeof devs, "cuda:%d", (int)dev.index);
        printf("train_step: %s on %s, B %lld x T %lld, %s parameters (%s), N = %.0f parameters, %.3f GFLOP/token "
               "(llm.c: 6N + 6LCT), median of %lld steps after %lld warm-up\n",
               bc->name, devs, (long long)B, (long long)T, lt_dtype_name(dtype), dtype_why, N, flop_token / 1e9,
               (long long)steps, (long long)warmup);
        printf("train_step: %.0f tokens/s, %.2f ms/step, %.1f TFLOP/s = %.1f%% MFU of %g TFLOP/s (--peak-tflops; "
               "989 is the H100/H200 SXM dense-bf16 datasheet rate), computed in %s (LIBTRAIN_TF32=%s); peak device "
               "memory %.1f MiB\n",
               (double)n / (med / 1e3), med, tflops, mfu, peak_tflops, autocast ? "bf16" : lt_dtype_name(dtype), tf32,
               (double)after.peak_bytes / 1048576.0);
        printf("RESULT impl=libtrain config=%s device=%s dtype=%s tf32=%s B=%lld T=%lld ms=%.2f tok_s=%.0f "
               "tflops=%.2f mfu_pct=%.2f peak_tflops=%g peak_mem_mb=%.1f steady_mallocs=%llu rss_mb=%.1f\n",
               bc->name, devs, autocast ? "bf16" : lt_dtype_name(dtype), tf32, (long long)B, (long long)T, med,
               (double)n / (med / 1e3), tflops, mfu, peak_tflops, (double)after.peak_bytes / 1048576.0,
               (unsigned long long)(after.system_allocs - before.system_allocs), (double)ru.ru_maxrss / 1024.0);
    }
    free(ms);
    free(tok);
    lt_tensor_release(x);
    lt_tensor_release(y);
    lt_optim_free(opt);
    lt_gpt_free(m);
    return 0;
}
