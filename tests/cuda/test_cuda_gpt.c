/* Whole-model training on the cuda device against the CPU: a tiny GPT made with the same seed on both is the same
 * model (Philox init), and three AdamW steps on the same batches give the same losses, gradient norms, parameters
 * and moments, with and without dropout (both backends draw dropout from the same Philox stream). The trainer runs
 * the same way on both devices over a small token file. Everything goes through the public API, so this also
 * checks that nothing between the ops and the trainer reads device memory from the host.
 * f32 throughout; losses and norms agree within 1e-4 relative, weights, gradients and moments within 1e-4 of each
 * tensor's largest element (the measure of tests/model), with an AdamW eps that keeps rounding noise from being
 * amplified (see train()). */
#include "cuda_check.h"

#include <unistd.h>

/* Returns a failed call's status from a function that returns lt_status (its message stays in lt_last_error). */
#define TRY_RET(expr)                                                                                                  \
    do {                                                                                                               \
        lt_status try_st_ = (expr);                                                                                    \
        if (try_st_ != LT_OK) return try_st_;                                                                          \
    } while (0)

/* 2 layers, 2 heads, C 32, T 16, vocab 50 padded to 64 (so the padded-vocab checks and zero rows are exercised). */
static lt_gpt_config tiny_config(double dropout) {
    return (lt_gpt_config){.struct_size = sizeof(lt_gpt_config),
                           .vocab_size = 50,
                           .padded_vocab_size = 64,
                           .block_size = 16,
                           .n_layer = 2,
                           .n_head = 2,
                           .n_embd = 32,
                           .dropout = dropout};
}

enum { B = 2, T = 16, STEPS = 3 };

/* Deterministic token ids in [0, 50), the same on every run and device. */
static void make_tokens(int32_t *tok, int64_t n, uint32_t seed) {
    uint32_t s = seed;
    for (int64_t i = 0; i < n; i++) tok[i] = (int32_t)(((s = s * 1664525u + 1013904223u) >> 8) % 50u);
}

/* |got - ref| <= rtol * max|ref| element by element (the measure of tests/model: relative to the tensor's largest),
 * on any devices. */
static bool close_to_max(const char *what, const lt_tensor *got, const lt_tensor *ref, double rtol) {
    int64_t n = lt_tensor_numel(ref);
    if (lt_tensor_numel(got) != n) {
        fprintf(stderr, "%s: %lld elements, expected %lld\n", what, (long long)lt_tensor_numel(got), (long long)n);
        return false;
    }
    double *g = tt_values(got), *r = tt_values(ref), big = 0;
    for (int64_t i = 0; i < n; i++) big = fabs(r[i]) > big ? fabs(r[i]) : big;
    bool ok = tt_close(what, g, r, n, rtol * big + 1e-30, 0);
    free(g);
    free(r);
    return ok;
}

/* Compares two parameter sets name by name (same order on both devices): within atol + rtol * |ref| when
 * to_max is false, else within rtol * max|ref| of each tensor. */
static bool same_params(const char *what, lt_params *got, lt_params *ref, double atol, double rtol, bool to_max) {
    bool ok = lt_params_count(got) == lt_params_count(ref);
    for (int i = 0; ok && i < lt_params_count(ref); i++) {
        const char *ng, *nr;
        lt_tensor *pg, *pr;
        if (lt_params_get(got, i, &ng, &pg) != LT_OK || lt_params_get(ref, i, &nr, &pr) != LT_OK) return false;
        char name[320];
        snprintf(name, sizeof name, "%s: %s", what, nr);
        ok = strcmp(ng, nr) == 0 && (to_max ? close_to_max(name, pg, pr, rtol) : tc_same(name, pg, pr, atol, rtol));
    }
    return ok;
}

static void test_same_initial_model(void) {
    lt_gpt_config cfg = tiny_config(0);
    lt_gpt *c = NULL, *g = NULL;
    CHECK_OK(lt_gpt_create(&cfg, LT_F32, LT_DEVICE_CPU, 1234, &c));
    lt_status st = lt_gpt_create(&cfg, LT_F32, tc_cuda, 1234, &g);
    CHECK(st == LT_OK);
    if (st != LT_OK) fprintf(stderr, "lt_gpt_create on cuda: %s\n", lt_last_error());
    if (g) {
        lt_tensor *flat;
        CHECK_OK(lt_params_flat(lt_gpt_params(g), &flat, NULL));
        CHECK(lt_tensor_device(flat).type == LT_CUDA);
        CHECK(same_params("initial parameters", lt_gpt_params(g), lt_gpt_params(c), 1e-6, 1e-6, false));
    }
    lt_gpt_free(g);
    lt_gpt_free(c);
}

/* One run of STEPS AdamW steps through the public API on `device`; what it leaves for the comparison. */
typedef struct run {
    lt_gpt *model;
    lt_optim *opt;
    double loss[STEPS], norm[STEPS];
    lt_alloc_stats before_last, after_last; /* the device allocator around the last step */
} run;

static void run_free(run *r) {
    lt_optim_free(r->opt);
    lt_gpt_free(r->model);
    memset(r, 0, sizeof *r);
}

static lt_status train(lt_device device, double dropout, run *r) {
    memset(r, 0, sizeof *r);
    r->before_last.struct_size = r->after_last.struct_size = sizeof(lt_alloc_stats);
    lt_gpt_config cfg = tiny_config(dropout);
    TRY_RET(lt_gpt_create(&cfg, LT_F32, device, 99, &r->model));
    lt_params *p = lt_gpt_params(r->model);
    /* eps 1e-5, not 1e-8: AdamW's first steps move every weight by about lr * sign(g), so with a tiny eps an element
     * whose gradient is only rounding noise (|g| ~ 1e-9, e.g. behind a flat GELU) moves by +-lr on one device and
     * -+lr on the other. Measured on the emulator: eps 1e-8 leaves weights 2.5e-3 apart (relative to the largest)
     * after 3 steps although step 1's gradients agree to 2e-7; eps 1e-5 leaves 5e-6. */
    lt_adamw_config ac = {
        .struct_size = sizeof ac, .lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-5, .weight_decay = 0.1};
    TRY_RET(lt_adamw_create(p, &ac, &r->opt));
    int32_t tok[STEPS][B * T + 1];
    for (int k = 0; k < STEPS; k++) make_tokens(tok[k], B * T + 1, 7u + (uint32_t)k);
    for (int k = 0; k < STEPS; k++) {
        if (k == STEPS - 1) TRY_RET(lt_alloc_get_stats(device, &r->before_last));
        TRY_RET(lt_scope_begin());
        lt_tensor *x, *y, *loss;
        float value = NAN;
        lt_status st = lt_tensor_from_host(tok[k], (int64_t[]){B, T}, 2, LT_I32, device, &x);
        if (st == LT_OK) st = lt_tensor_from_host(tok[k] + 1, (int64_t[]){B, T}, 2, LT_I32, device, &y);
        if (st == LT_OK) st = lt_params_zero_grad(p);
        if (st == LT_OK) st = lt_gpt_forward(r->model, x, y, true, NULL, &loss);
        if (st == LT_OK) st = lt_backward(loss);
        if (st == LT_OK) st = lt_tensor_to_host(loss, &value, sizeof value);
        if (st == LT_OK) st = lt_clip_grad_norm(p, 1.0, &r->norm[k]);
        if (st == LT_OK) st = lt_optim_step(r->opt);
        lt_scope_end();
        TRY_RET(st);
        r->loss[k] = value;
        if (k == STEPS - 1) {
            TRY_RET(lt_device_synchronize(device));
            TRY_RET(lt_alloc_get_stats(device, &r->after_last));
        }
    }
    return LT_OK;
}

static void check_training_matches(double dropout) {
    run c, g;
    char what[96];
    CHECK_OK(train(LT_DEVICE_CPU, dropout, &c));
    lt_status st = train(tc_cuda, dropout, &g);
    CHECK(st == LT_OK);
    if (st != LT_OK) {
        fprintf(stderr, "training on cuda (dropout %g): %s\n", dropout, lt_last_error());
        run_free(&g);
        run_free(&c);
        return;
    }
    for (int k = 0; k < STEPS; k++) {
        snprintf(what, sizeof what, "dropout %g, step %d: loss", dropout, k + 1);
        CHECK(tt_close(what, &g.loss[k], &c.loss[k], 1, 1e-6, 1e-4));
        snprintf(what, sizeof what, "dropout %g, step %d: grad norm", dropout, k + 1);
        CHECK(tt_close(what, &g.norm[k], &c.norm[k], 1, 1e-6, 1e-4));
    }
    snprintf(what, sizeof what, "dropout %g: parameters after %d steps", dropout, STEPS);
    CHECK(same_params(what, lt_gpt_params(g.model), lt_gpt_params(c.model), 0, 1e-4, true));
    lt_tensor *gg, *gc, *mg, *vg, *mc, *vc;
    CHECK_OK(lt_params_flat(lt_gpt_params(g.model), NULL, &gg));
    CHECK_OK(lt_params_flat(lt_gpt_params(c.model), NULL, &gc));
    snprintf(what, sizeof what, "dropout %g: last (clipped) gradients", dropout);
    CHECK(close_to_max(what, gg, gc, 1e-4));
    CHECK_OK(lt_optim_state(g.opt, &mg, &vg));
    CHECK_OK(lt_optim_state(c.opt, &mc, &vc));
    CHECK(lt_tensor_device(mg).type == LT_CUDA && lt_tensor_device(vg).type == LT_CUDA);
    snprintf(what, sizeof what, "dropout %g: AdamW m", dropout);
    CHECK(close_to_max(what, mg, mc, 1e-4));
    snprintf(what, sizeof what, "dropout %g: AdamW v", dropout);
    CHECK(close_to_max(what, vg, vc, 1e-4));
    /* the caching allocator: a step in the steady state takes nothing new from the device */
    CHECK(g.after_last.system_allocs == g.before_last.system_allocs);
    if (g.after_last.system_allocs != g.before_last.system_allocs)
        fprintf(stderr, "dropout %g: the last step made %llu device allocations\n", dropout,
                (unsigned long long)(g.after_last.system_allocs - g.before_last.system_allocs));
    CHECK(g.after_last.peak_bytes > 0);
    run_free(&g);
    run_free(&c);
}

static void test_training_matches_cpu(void) { check_training_matches(0.0); }

/* Dropout draws the same Philox words on both devices (backend.h, dropout), so the same elements drop. */
static void test_training_with_dropout_matches_cpu(void) { check_training_matches(0.1); }

/* A raw uint16 token file (nanoGPT's format) in the temporary directory; the caller unlinks *path. */
static bool write_tokens(char *path, size_t n_path, int64_t n) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, n_path, "%s/lt_cuda_gpt_XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return false;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    uint16_t *u = malloc(sizeof(uint16_t) * (size_t)n);
    bool ok = tok && u;
    if (ok) {
        make_tokens(tok, n, 3u);
        for (int64_t i = 0; i < n; i++) u[i] = (uint16_t)tok[i];
        ok = write(fd, u, sizeof(uint16_t) * (size_t)n) == (ssize_t)(sizeof(uint16_t) * (size_t)n);
    }
    free(tok);
    free(u);
    close(fd);
    return ok;
}

static lt_status make_trainer(lt_device device, const char *data, lt_trainer **out) {
    lt_train_config c;
    lt_train_config_init(&c, sizeof c);
    c.model = tiny_config(0.1);
    c.device = device;
    c.seed = 5;
    c.data_path = data;
    c.val_fraction = 0.25;
    c.batch_size = B;
    c.seq_len = T;
    c.grad_accum = 2; /* the loss scaling and gradient accumulation across micro-batches */
    c.steps = STEPS;
    c.warmup_steps = 1;
    c.eval_batches = 2;
    c.eps = 1e-5; /* see train() */
    c.progress = LT_PROGRESS_NONE;
    return lt_trainer_create(&c, out);
}

static lt_status trainer_on(lt_device device, const char *data, lt_train_stats *stats, double *val, lt_trainer **out) {
    TRY_RET(make_trainer(device, data, out));
    for (int k = 0; k < STEPS; k++) {
        stats[k].struct_size = sizeof stats[k];
        TRY_RET(lt_trainer_step(*out, &stats[k]));
    }
    return lt_trainer_evaluate(*out, val);
}

static void test_trainer_matches_cpu(void) {
    char path[512];
    CHECK(write_tokens(path, sizeof path, 2048));
    lt_train_stats sc[STEPS], sg[STEPS];
    double vc = NAN, vg = NAN;
    lt_trainer *tcpu = NULL, *tgpu = NULL;
    lt_status st = trainer_on(LT_DEVICE_CPU, path, sc, &vc, &tcpu);
    CHECK(st == LT_OK);
    if (st != LT_OK) fprintf(stderr, "cpu trainer: %s\n", lt_last_error());
    lt_status sg_st = st == LT_OK ? trainer_on(tc_cuda, path, sg, &vg, &tgpu) : st;
    CHECK(sg_st == LT_OK);
    if (st == LT_OK && sg_st != LT_OK) fprintf(stderr, "cuda trainer: %s\n", lt_last_error());
    if (st == LT_OK && sg_st == LT_OK) {
        char what[64];
        for (int k = 0; k < STEPS; k++) {
            snprintf(what, sizeof what, "trainer step %d: loss", k + 1);
            CHECK(tt_close(what, &sg[k].loss, &sc[k].loss, 1, 1e-6, 1e-4));
            snprintf(what, sizeof what, "trainer step %d: grad norm", k + 1);
            CHECK(tt_close(what, &sg[k].grad_norm, &sc[k].grad_norm, 1, 1e-6, 1e-4));
            CHECK(sg[k].lr == sc[k].lr && sg[k].step == k + 1);
        }
        CHECK(tt_close("trainer validation loss", &vg, &vc, 1, 1e-6, 1e-4));
        CHECK(same_params("trainer parameters", lt_gpt_params(lt_trainer_model(tgpu)),
                          lt_gpt_params(lt_trainer_model(tcpu)), 0, 1e-4, true));
        /* sampling reads the last logits back from the device */
        int32_t prompt[3] = {1, 2, 3}, out[3 + 20];
        st = lt_gpt_sample(lt_trainer_model(tgpu), prompt, 3, 20, 1.0, 10, 42, out);
        CHECK(st == LT_OK);
        if (st != LT_OK) fprintf(stderr, "lt_gpt_sample on cuda: %s\n", lt_last_error());
        for (int i = 0; st == LT_OK && i < 23; i++) CHECK(out[i] >= 0 && out[i] < 50);
    }
    lt_trainer_free(tgpu);
    lt_trainer_free(tcpu);
    unlink(path);
}

/* A GPU trainer's checkpoint resumes exactly on the GPU (the moments, cursor and dropout stream come back: the next
 * step is bitwise the same as the uninterrupted run's) and loads into a CPU trainer with the same parameters. */
static void test_checkpoint_round_trip(void) {
    char path[512], dir[520];
    CHECK(write_tokens(path, sizeof path, 2048));
    snprintf(dir, sizeof dir, "%s.ckpt", path);
    lt_trainer *run = NULL, *back = NULL, *cpu = NULL;
    lt_train_stats a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    lt_status st = make_trainer(tc_cuda, path, &run);
    for (int k = 0; st == LT_OK && k < 2; k++) st = lt_trainer_step(run, &a);
    if (st == LT_OK) st = lt_trainer_save(run, dir, 1);
    if (st == LT_ERR_UNSUPPORTED) { /* a build without HDF5 */
        printf("note: checkpoints are not built here (%s)\n", lt_last_error());
    } else {
        CHECK(st == LT_OK);
        if (st != LT_OK) fprintf(stderr, "save: %s\n", lt_last_error());
        CHECK_OK(make_trainer(tc_cuda, path, &back));
        CHECK_OK(make_trainer(LT_DEVICE_CPU, path, &cpu));
        if (back && cpu && st == LT_OK) {
            CHECK_OK(lt_trainer_resume(back, dir, LT_CKPT_STRICT));
            CHECK_OK(lt_trainer_resume(cpu, dir, LT_CKPT_STRICT));
            CHECK(same_params("resumed on the gpu", lt_gpt_params(lt_trainer_model(back)),
                              lt_gpt_params(lt_trainer_model(run)), 0, 0, false));
            CHECK(same_params("resumed on the cpu", lt_gpt_params(lt_trainer_model(cpu)),
                              lt_gpt_params(lt_trainer_model(run)), 0, 0, false));
            CHECK_OK(lt_trainer_step(run, &a));
            CHECK_OK(lt_trainer_step(back, &b));
            CHECK(a.loss == b.loss && a.step == b.step);
            CHECK(same_params("a step after the resume", lt_gpt_params(lt_trainer_model(back)),
                              lt_gpt_params(lt_trainer_model(run)), 0, 0, false));
        }
    }
    lt_trainer_free(run);
    lt_trainer_free(back);
    lt_trainer_free(cpu);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    unlink(path);
}

/* An id outside the vocabulary is refused on the device as on the CPU, before any kernel reads with it. */
static void test_bad_ids_refused(void) {
    lt_gpt_config cfg = tiny_config(0);
    lt_gpt *g = NULL;
    CHECK_OK(lt_gpt_create(&cfg, LT_F32, tc_cuda, 1, &g));
    int32_t ids[T];
    make_tokens(ids, T, 11u);
    lt_tensor *x, *bad, *loss = NULL;
    CHECK_OK(lt_tensor_from_host(ids, (int64_t[]){1, T}, 2, LT_I32, tc_cuda, &x));
    ids[5] = 55; /* inside the padded rows (64) but not the vocabulary (50) */
    CHECK_OK(lt_tensor_from_host(ids, (int64_t[]){1, T}, 2, LT_I32, tc_cuda, &bad));
    CHECK_ERR(lt_gpt_forward(g, bad, NULL, false, &loss, NULL), LT_ERR_RANGE, "lt_gpt_forward");
    CHECK_ERR(lt_gpt_forward(g, x, bad, false, NULL, &loss), LT_ERR_RANGE, "lt_classifier_loss"); /* as targets */
    lt_gpt_free(g);
}

int main(void) {
    tc_require_cuda();
    tt_seed(5);
    RUN(test_same_initial_model);
    RUN(test_training_matches_cpu);
    RUN(test_training_with_dropout_matches_cpu);
    RUN(test_trainer_matches_cpu);
    RUN(test_checkpoint_round_trip);
    RUN(test_bad_ids_refused);
    return tt_finish();
}
