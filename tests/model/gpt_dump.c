/* Runs a small GPT through libtrain and writes everything a PyTorch reference needs to check it as .npy files:
 * the initial weights, the batches, the logits and loss of the first batch, every parameter's gradient, and the
 * losses and final weights of 10 AdamW steps with clipping and the cosine schedule.
 * Usage: gpt_dump OUT_DIR [f32|f64]. tests/reference/compare_gpt.py runs it and compares. */
#include <libtrain/libtrain.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 10
#define B 3
#define T 13
#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        if ((expr) != LT_OK) {                                                                                         \
            fprintf(stderr, "gpt_dump: %s:%d: %s\n", __FILE__, __LINE__, lt_last_error());                             \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static const char *dir;

/* Writes a row-major array as NumPy's .npy version 1.0. */
static void write_npy(const char *name, const void *data, const char *descr, size_t elem, const int64_t *shape,
                      int ndim) {
    char path[4096], header[256], dims[160] = "";
    size_t n = 1, used = 0;
    for (int i = 0; i < ndim; i++) {
        used +=
            (size_t)snprintf(dims + used, sizeof dims - used, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
        n *= (size_t)shape[i];
    }
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    int total = ((10 + len + 1 + 63) / 64) * 64; /* magic(6) + version(2) + hlen(2) + header + '\n', 64-aligned */
    while (10 + len + 1 < total) header[len++] = ' ';
    header[len++] = '\n';
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, (size_t)len, f);
    fwrite(data, elem, n, f);
    fclose(f);
}

static void write_tensor(const char *name, const lt_tensor *t) {
    int64_t shape[LT_MAX_DIMS];
    size_t es = lt_dtype_size(lt_tensor_dtype(t)), n = (size_t)lt_tensor_numel(t);
    void *buf = malloc(es * (n ? n : 1));
    CHECK(lt_tensor_shape(t, shape));
    CHECK(lt_tensor_to_host(t, buf, es * n));
    write_npy(name, buf, lt_tensor_dtype(t) == LT_F64 ? "<f8" : "<f4", es, shape, lt_tensor_ndim(t));
    free(buf);
}

static void write_params(lt_params *p, const char *prefix, bool grads) {
    char name[512];
    for (int i = 0; i < lt_params_count(p); i++) {
        const char *pname;
        lt_tensor *t, *g;
        CHECK(lt_params_get(p, i, &pname, &t));
        snprintf(name, sizeof name, "%s%s", prefix, pname);
        if (grads) {
            CHECK(lt_tensor_grad(t, &g));
            write_tensor(name, g);
        } else {
            write_tensor(name, t);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gpt_dump OUT_DIR [f32|f64]\n");
        return 2;
    }
    dir = argv[1];
    lt_dtype dt = argc > 2 && strcmp(argv[2], "f64") == 0 ? LT_F64 : LT_F32;
    lt_gpt_config cfg = {.struct_size = sizeof cfg,
                         .vocab_size = 61,
                         .padded_vocab_size = 64,
                         .block_size = 16,
                         .n_layer = 2,
                         .n_head = 4,
                         .n_embd = 32,
                         .dropout = 0};
    const double lr = 3e-3, min_lr = 3e-4, clip = 0.5, wd = 0.1;
    const int64_t warmup = 3;
    lt_gpt *m;
    CHECK(lt_gpt_create(&cfg, dt, LT_DEVICE_CPU, 42, &m));
    lt_params *p = lt_gpt_params(m);
    write_params(p, "init.", false);

    /* Batches: tokens from a fixed linear congruential sequence, one position per batch ignored (-1). */
    static int32_t idx[STEPS][B][T], tgt[STEPS][B][T];
    uint32_t s = 12345;
    for (int k = 0; k < STEPS; k++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                s = s * 1664525u + 1013904223u;
                idx[k][b][t] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
                s = s * 1664525u + 1013904223u;
                tgt[k][b][t] = (b == 1 && t == 5) ? -1 : (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
            }
    write_npy("idx", idx, "<i4", 4, (int64_t[]){STEPS, B, T}, 3);
    write_npy("targets", tgt, "<i4", 4, (int64_t[]){STEPS, B, T}, 3);
    double meta[] = {lr,
                     min_lr,
                     clip,
                     wd,
                     (double)warmup,
                     (double)STEPS,
                     (double)cfg.vocab_size,
                     (double)cfg.padded_vocab_size,
                     (double)cfg.block_size,
                     (double)cfg.n_layer,
                     (double)cfg.n_head,
                     (double)cfg.n_embd};
    write_npy("meta", meta, "<f8", 8, (int64_t[]){(int64_t)(sizeof meta / sizeof meta[0])}, 1);

    lt_optim *opt;
    lt_adamw_config ac = {
        .struct_size = sizeof ac, .lr = lr, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = wd};
    CHECK(lt_adamw_create(p, &ac, &opt));
    double losses[STEPS], norms[STEPS];
    for (int k = 0; k < STEPS; k++) {
        lt_tensor *x, *y, *logits, *loss;
        CHECK(lt_scope_begin());
        CHECK(lt_tensor_from_host(idx[k], (int64_t[]){B, T}, 2, LT_I32, LT_DEVICE_CPU, &x));
        CHECK(lt_tensor_from_host(tgt[k], (int64_t[]){B, T}, 2, LT_I32, LT_DEVICE_CPU, &y));
        CHECK(lt_params_zero_grad_lazy(p)); /* as lt_trainer_step does */
        CHECK(lt_gpt_forward(m, x, y, true, k == 0 ? &logits : NULL, &loss));
        CHECK(lt_backward(loss));
        if (k == 0) {
            write_tensor("logits", logits);
            write_tensor("loss", loss);
            write_params(p, "grad.", true);
        }
        lt_tensor *l64;
        CHECK(lt_tensor_to(loss, LT_F64, LT_DEVICE_CPU, &l64));
        CHECK(lt_tensor_to_host(l64, &losses[k], sizeof(double)));
        /* the clip as lt_trainer_step does it: the norm, then the factor inside AdamW's pass */
        double sumsq;
        CHECK(lt_grad_sumsq(p, 0, lt_params_numel(p), &sumsq));
        norms[k] = sqrt(sumsq);
        CHECK(lt_optim_set_lr(opt, lt_lr_cosine(k, warmup, STEPS, lr, min_lr)));
        CHECK(lt_optim_step_scaled(opt, lt_clip_coef(norms[k], clip)));
        CHECK(lt_scope_end());
    }
    write_npy("losses", losses, "<f8", 8, (int64_t[]){STEPS}, 1);
    write_npy("norms", norms, "<f8", 8, (int64_t[]){STEPS}, 1);
    write_params(p, "final.", false);
    lt_optim_free(opt);
    lt_gpt_free(m);
    return 0;
}
