/* The training loop behind examples/train_gpt, examples/pretrain and the Python Trainer: data -> GPT -> loss ->
 * backward -> (all-reduce) -> clip -> AdamW, with progress lines, periodic validation and JSON Lines metrics. Each
 * micro-batch runs in its own scope, so a step leaves nothing behind but gradients and optimizer state. */
#include "core/error.h"
#include "libtrain/ckpt.h"
#include "tensor/tensor_impl.h"
#include "train/trainer_impl.h"

#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fills a full-size local config and copies as much of it as the caller's struct holds, so a program built against
 * an older, shorter lt_train_config is never written past its end. */
LT_API void lt_train_config_init(lt_train_config *out, size_t struct_size) {
    if (!out || struct_size < sizeof(size_t)) return;
    lt_train_config full, *c = &full;
    memset(c, 0, sizeof *c);
    c->model = (lt_gpt_config){.struct_size = sizeof(lt_gpt_config),
                               .vocab_size = 256,
                               .block_size = 128,
                               .n_layer = 4,
                               .n_head = 4,
                               .n_embd = 128};
    c->dtype = LT_F32;
    c->device = LT_DEVICE_CPU;
    c->seed = 1337;
    c->val_fraction = 0.05;
    c->batch_size = 16;
    c->seq_len = 128;
    c->grad_accum = 1;
    c->steps = 600;
    c->warmup_steps = 50;
    c->lr = 3e-3;
    c->min_lr = 3e-4;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->eps = 1e-8;
    c->weight_decay = 0.1;
    c->grad_clip = 1.0;
    c->eval_every = 100;
    c->eval_batches = 20;
    c->log_every = 10;
    c->progress = LT_PROGRESS_AUTO;
    c->keep_last = 3;
    c->struct_size = struct_size < sizeof *c ? struct_size : sizeof *c;
    memcpy(out, c, c->struct_size);
}

static double lt__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static lt_status lt__check_train_config(const char *fn, const lt_train_config *c) {
    LT_CHECK_NOT_NULL(fn, c);
    /* Callers built against an older train.h pass the shorter struct: the fields they lack read as zero. */
    if (c->struct_size < offsetof(lt_train_config, ckpt_dir))
        return lt__err(LT_ERR_ARG, "%s: config->struct_size is %zu, expected %zu (use lt_train_config_init)", fn,
                       c->struct_size, sizeof(lt_train_config));
    if (!c->data_path) return lt__err(LT_ERR_ARG, "%s: config->data_path is NULL", fn);
    if (c->batch_size < 1 || c->seq_len < 1 || c->grad_accum < 1 || c->steps < 0 || c->warmup_steps < 0 ||
        c->eval_every < 0 || c->eval_batches < 0 || c->log_every < 1 || c->ckpt_every < 0)
        return lt__err(LT_ERR_ARG,
                       "%s: batch_size %lld, seq_len %lld, grad_accum %lld and log_every %lld must be >= 1; steps, "
                       "warmup_steps, eval_every, eval_batches and ckpt_every >= 0",
                       fn, (long long)c->batch_size, (long long)c->seq_len, (long long)c->grad_accum,
                       (long long)c->log_every);
    if (c->struct_size >= offsetof(lt_train_config, mixed_precision) + sizeof(bool) && c->mixed_precision &&
        c->dtype != LT_F32)
        return lt__err(LT_ERR_ARG, "%s: mixed_precision needs f32 parameters (the master weights), not %s", fn,
                       lt_dtype_name(c->dtype));
    if (c->seq_len > c->model.block_size)
        return lt__err(LT_ERR_ARG, "%s: seq_len %lld exceeds the model's block_size %lld", fn, (long long)c->seq_len,
                       (long long)c->model.block_size);
    if (!(c->val_fraction >= 0 && c->val_fraction < 1))
        return lt__err(LT_ERR_ARG, "%s: val_fraction %g must be in [0, 1)", fn, c->val_fraction);
    if (!(c->lr >= 0) || !(c->min_lr >= 0) || !isfinite(c->lr) || !isfinite(c->grad_clip))
        return lt__err(LT_ERR_ARG, "%s: lr %g and min_lr %g must be finite and >= 0", fn, c->lr, c->min_lr);
    if ((unsigned)c->progress > LT_PROGRESS_AUTO)
        return lt__err(LT_ERR_ARG, "%s: unknown progress mode %d", fn, (int)c->progress);
    return LT_OK;
}

/* Opens the data and splits off the validation tail. */
static lt_status lt__open_data(const char *fn, lt_trainer *t) {
    const lt_train_config *c = &t->cfg;
    LT_TRY(lt_dataset_open(c->data_path, c->model.vocab_size, &t->data));
    int64_t n = lt_dataset_tokens(t->data);
    int64_t nval = (int64_t)((double)n * c->val_fraction);
    LT_TRY(lt_dataset_slice(t->data, 0, n - nval, &t->train));
    lt_status st = lt_loader_create(t->train, c->batch_size, c->seq_len, c->seed, t->rank, t->world, &t->train_loader);
    if (st != LT_OK)
        return lt__err(st, "%s: training split of %s (%lld tokens): %s", fn, c->data_path, (long long)(n - nval),
                       lt_last_error());
    if (nval > 0 && c->eval_batches > 0) {
        LT_TRY(lt_dataset_slice(t->data, n - nval, n, &t->val));
        st = lt_loader_create(t->val, c->batch_size, c->seq_len, c->seed, 0, 1, &t->val_loader);
        if (st != LT_OK)
            return lt__err(st, "%s: validation split (%lld tokens) is too small: %s", fn, (long long)nval,
                           lt_last_error());
    }
    return LT_OK;
}

/* config->resume: NULL or "none" starts fresh; "auto" resumes from ckpt_dir's latest when there is one; anything else
 * is a checkpoint file or directory that must load (STRICT). Under MPI rank 0 alone looks at the directory (the
 * others need not see it) and lt_trainer_resume is collective, so every rank gets the same result. */
static lt_status lt__resume_from_config(const char *fn, lt_trainer *t, bool *resumed) {
    const char *r = t->cfg.resume;
    *resumed = false;
    if (!r || strcmp(r, "none") == 0) return LT_OK;
    if (strcmp(r, "auto") == 0) {
        char latest[4096];
        if (!t->cfg.ckpt_dir) return lt__err(LT_ERR_ARG, "%s: resume \"auto\" needs ckpt_dir", fn);
        snprintf(latest, sizeof latest, "%s/latest", t->cfg.ckpt_dir);
        int32_t have = t->rank == 0 && access(latest, F_OK) == 0;
        if (t->world > 1) LT_TRY(lt_dist_broadcast(t->cfg.dist, &have, sizeof have, 0));
        if (!have) return LT_OK; /* nothing saved yet: a fresh run */
        r = t->cfg.ckpt_dir;
    }
    lt_status st = lt_trainer_resume(t, r, LT_CKPT_STRICT);
    if (st != LT_OK) return lt__err(st, "%s: cannot resume: %s", fn, lt_last_error());
    *resumed = true;
    return LT_OK;
}

/* Data parallelism: what the trainer cannot do with more than one rank yet, and rank 0's seed for everyone (the
 * data order and the dropout streams derive from it). Only rank 0 prints and writes metrics. Checkpoints work on any
 * number of ranks: rank 0 writes them after gathering every rank's cursor (src/ckpt/). */
static lt_status lt__dist_prepare(const char *fn, lt_trainer *t) {
    lt_train_config *c = &t->cfg;
    t->rank = lt_dist_rank(c->dist);
    t->world = lt_dist_world(c->dist);
    if (c->zero_stage != 0 && c->zero_stage != 1)
        return lt__err(LT_ERR_ARG, "%s: zero_stage is %d: 0 (no sharding) or 1 (AdamW's state sharded) expected", fn,
                       c->zero_stage);
    if (t->world == 1) c->zero_stage = 0; /* nothing to shard over */
    if (t->world == 1) return LT_OK;
    /* GPUs: one per rank, with the NCCL communicator on it (dist.h: LT_ERR_UNSUPPORTED in a build without NCCL, and
     * every rank fails alike); device index -1 picks cuda:(local rank). ZeRO-1's shard collectives are MPI's only. */
    if (c->device.type != LT_CPU && c->zero_stage == 1)
        return lt__err(LT_ERR_UNSUPPORTED, "%s: ZeRO-1 on GPUs is not built (use zero_stage 0 there)", fn);
    if (c->device.type != LT_CPU) LT_TRY(lt_dist_init_nccl(c->dist, &c->device));
    LT_TRY(lt_dist_broadcast(c->dist, &c->seed, sizeof c->seed, 0));
    if (t->rank != 0) {
        c->progress = LT_PROGRESS_NONE;
        c->metrics_path = NULL;
    }
    return LT_OK;
}

/* Every rank learns whether every other created its trainer (st is this rank's result), before anything collective
 * follows, so that one rank's bad file fails every rank instead of leaving them waiting in a broadcast. */
static lt_status lt__dist_agree(const char *fn, lt_trainer *t, lt_status st) {
    double first_failed = st == LT_OK ? (double)t->world : (double)t->rank;
    char msg[1024]; /* the all-reduce clears this thread's message: keep this rank's own */
    snprintf(msg, sizeof msg, "%s", lt_last_error());
    lt_status rs = lt_dist_allreduce_scalar(t->cfg.dist, &first_failed, LT_DIST_MIN);
    if (st != LT_OK) return lt__err(st, "%s", msg);
    if (rs != LT_OK) return rs;
    if (first_failed < (double)t->world)
        return lt__err(LT_ERR_STATE, "%s: rank %d failed to create its trainer (its message is on its stderr)", fn,
                       (int)first_failed);
    return LT_OK;
}

/* lt__dist_agree, then rank 0's parameters and a dropout stream per rank. A resume (after this) overwrites both. */
static lt_status lt__dist_agree_created(const char *fn, lt_trainer *t, lt_status st) {
    LT_TRY(lt__dist_agree(fn, t, st));
    /* Ranks may have been started with different seeds: rank 0's parameters win. Dropout masks must differ
     * between ranks, as they would between the rows of one big batch. */
    LT_TRY(lt_dist_broadcast_params(t->cfg.dist, lt_gpt_params(t->model)));
    lt_gpt_rng(t->model)->seed ^= (uint64_t)t->rank * 0x9E3779B97F4A7C15ull;
    return LT_OK;
}

LT_API lt_status lt_trainer_create(const lt_train_config *config, lt_trainer **out) {
    static const char *fn = "lt_trainer_create";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_train_config(fn, config));
    lt_trainer *t = calloc(1, sizeof *t);
    if (!t) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    memcpy(&t->cfg, config, config->struct_size < sizeof t->cfg ? config->struct_size : sizeof t->cfg);
    t->cfg.struct_size = sizeof t->cfg;
    t->last_saved = -1;
    const lt_train_config *c = &t->cfg;
    t->world = 1;
    lt_status st = lt__dist_prepare(fn, t);
    if (st != LT_OK) {
        lt_trainer_free(t);
        return st;
    }
    t->live = c->progress == LT_PROGRESS_LIVE || (c->progress == LT_PROGRESS_AUTO && isatty(STDOUT_FILENO));
    st = lt_set_num_threads(c->threads);
    if (st == LT_OK) st = lt__open_data(fn, t);
    if (st == LT_OK) st = lt_gpt_create(&c->model, c->dtype, c->device, c->seed, &t->model);
    if (st == LT_OK) {
        lt_adamw_config a = {.struct_size = sizeof a,
                             .lr = c->lr,
                             .beta1 = c->beta1,
                             .beta2 = c->beta2,
                             .eps = c->eps,
                             .weight_decay = c->weight_decay};
        lt_params *p = lt_gpt_params(t->model);
        lt_dist_shard sh; /* ZeRO-1: the moments of this rank's shard only */
        if (c->zero_stage == 1 && (st = lt_dist_shard_of(c->dist, lt_params_numel(p), &sh)) == LT_OK)
            st = lt_adamw_create_range(p, &a, sh.offset, sh.count, &t->opt);
        else if (st == LT_OK)
            st = lt_adamw_create(p, &a, &t->opt);
    }
    if (t->world > 1) st = lt__dist_agree_created(fn, t, st);
    bool resumed = false;
    if (st == LT_OK) st = lt__resume_from_config(fn, t, &resumed); /* the same result on every rank */
    const bool all_ok = st == LT_OK;
    if (st == LT_OK && c->metrics_path) {
        t->metrics = fopen(c->metrics_path, resumed ? "a" : "w"); /* a resumed run continues its metrics */
        if (!t->metrics) st = lt__err(LT_ERR_IO, "%s: cannot write metrics to %s", fn, c->metrics_path);
    }
    if (t->world > 1 && all_ok) st = lt__dist_agree(fn, t, st); /* rank 0's metrics file */
    if (st != LT_OK) {
        lt_trainer_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

LT_API void lt_trainer_free(lt_trainer *t) {
    if (!t) return;
    if (t->metrics) fclose(t->metrics);
    lt_optim_free(t->opt);
    lt_gpt_free(t->model);
    lt_loader_free(t->train_loader);
    lt_loader_free(t->val_loader);
    lt_dataset_free(t->train);
    lt_dataset_free(t->val);
    lt_dataset_free(t->data);
    free(t);
}

LT_API lt_gpt *lt_trainer_model(lt_trainer *t) { return t ? t->model : NULL; }
LT_API lt_optim *lt_trainer_optimizer(lt_trainer *t) { return t ? t->opt : NULL; }
LT_API int64_t lt_trainer_steps_done(const lt_trainer *t) { return t ? t->steps_done : 0; }

/* Forward and backward of one micro-batch; adds its loss to *loss_sum. */
static lt_status lt__micro_step(lt_trainer *t, double *loss_sum) {
    const lt_train_config *c = &t->cfg;
    lt_tensor *x, *y, *loss;
    double value = 0;
    LT_TRY(lt__scope_begin());
    lt_status st = LT_OK;
    bool autocast = c->mixed_precision && (st = lt_autocast_begin(LT_BF16)) == LT_OK;
    if (st == LT_OK) st = lt_loader_next(t->train_loader, c->device, &x, &y);
    if (st == LT_OK) st = lt_gpt_forward(t->model, x, y, true, NULL, &loss);
    if (st == LT_OK) st = lt_tensor_to(loss, LT_F64, LT_DEVICE_CPU, &y);
    if (st == LT_OK) st = lt_tensor_to_host(y, &value, sizeof value);
    /* the gradient of the mean over micro-batches and ranks: the all-reduce then only needs to sum */
    double scale = 1.0 / ((double)c->grad_accum * (double)t->world);
    if (st == LT_OK && scale != 1.0) st = lt_mul_scalar(loss, scale, &loss);
    if (st == LT_OK) st = lt_backward(loss);
    if (autocast) lt_autocast_end();
    lt__scope_end();
    *loss_sum += value;
    return st;
}

LT_API lt_status lt_trainer_step(lt_trainer *t, lt_train_stats *stats) {
    static const char *fn = "lt_trainer_step";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    const lt_train_config *c = &t->cfg;
    if (t->steps_done >= c->steps) return lt__err(LT_ERR_STATE, "%s: all %lld steps are done", fn, (long long)c->steps);
    double t0 = lt__now(), loss_sum = 0, norm = 0;
    double lr = lt_lr_cosine(t->steps_done, c->warmup_steps, c->steps, c->lr, c->min_lr);
    lt_params *p = lt_gpt_params(t->model);
    LT_TRY(lt_optim_set_lr(t->opt, lr));
    LT_TRY(lt_params_zero_grad_lazy(p)); /* the first micro-step writes the gradients instead of adding to zeros */
    for (int64_t k = 0; k < c->grad_accum; k++) LT_TRY(lt__micro_step(t, &loss_sum));
    /* Data parallelism synchronises once per step: the micro-batches only accumulate locally. */
    if (c->zero_stage == 1) { /* reduce-scatter, clip on the global norm, AdamW on this rank's shard, all-gather */
        LT_TRY(lt_dist_zero_step(c->dist, p, t->opt, c->bucket_bytes, false, c->grad_clip, &norm));
        LT_TRY(lt_dist_allreduce_scalar(c->dist, &loss_sum, LT_DIST_MEAN));
    } else {
        if (t->world > 1) {
            LT_TRY(lt_dist_allreduce_grads(c->dist, p, c->bucket_bytes, false));
            LT_TRY(lt_dist_allreduce_scalar(c->dist, &loss_sum, LT_DIST_MEAN));
        }
        /* clip on the global norm inside the optimizer's pass (the gradients stay as they are): one pass over them
         * fewer than lt_clip_grad_norm then lt_optim_step, 500 MB of traffic a step for gpt2-124M */
        double sumsq;
        LT_TRY(lt_grad_sumsq(p, 0, lt_params_numel(p), &sumsq));
        norm = sqrt(sumsq);
        LT_TRY(lt_optim_step_scaled(t->opt, lt_clip_coef(norm, c->grad_clip)));
    }
    /* On a GPU, ops return before their kernels end: wait for the step's queued work (AdamW above all), so that the
     * step's time and tokens/s are what the device took, and a failure of that work is this step's. */
    if (c->device.type != LT_CPU) LT_TRY(lt_device_synchronize(c->device));
    double dt = lt__now() - t0;
    t->steps_done++;
    t->seconds += dt;
    t->last_loss = loss_sum / (double)c->grad_accum;
    if (stats) {
        size_t keep = stats->struct_size;
        *stats = (lt_train_stats){.struct_size = keep,
                                  .step = t->steps_done,
                                  .loss = t->last_loss,
                                  .lr = lr,
                                  .grad_norm = norm,
                                  .step_seconds = dt,
                                  .tokens_per_second = (double)(c->batch_size * c->seq_len * c->grad_accum * t->world) /
                                                       (dt > 0 ? dt : 1e-9)};
    }
    return LT_OK;
}

LT_API lt_status lt_trainer_evaluate(lt_trainer *t, double *val_loss) {
    static const char *fn = "lt_trainer_evaluate";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    LT_CHECK_NOT_NULL(fn, val_loss);
    *val_loss = NAN;
    if (!t->val_loader) return lt__err(LT_ERR_STATE, "%s: no validation split (val_fraction or eval_batches is 0)", fn);
    const lt_train_config *c = &t->cfg;
    lt_loader_state start = {.seed = c->seed};
    LT_TRY(lt_loader_set_state(t->val_loader, &start)); /* the same batches every time */
    int64_t n = c->eval_batches, per_epoch = lt_loader_batches_per_epoch(t->val_loader);
    if (n > per_epoch) n = per_epoch;
    double sum = 0;
    lt_status st = LT_OK;
    bool autocast = c->mixed_precision && (st = lt_autocast_begin(LT_BF16)) == LT_OK;
    lt_no_grad_begin();
    for (int64_t i = 0; st == LT_OK && i < n; i++) {
        lt_tensor *x, *y, *loss;
        double v = 0;
        st = lt__scope_begin();
        if (st != LT_OK) break;
        st = lt_loader_next(t->val_loader, c->device, &x, &y);
        if (st == LT_OK) st = lt_gpt_forward(t->model, x, y, false, NULL, &loss);
        if (st == LT_OK) st = lt_tensor_to(loss, LT_F64, LT_DEVICE_CPU, &loss);
        if (st == LT_OK) st = lt_tensor_to_host(loss, &v, sizeof v);
        lt__scope_end();
        sum += v;
    }
    lt_no_grad_end();
    if (autocast) lt_autocast_end();
    LT_TRY(st);
    *val_loss = sum / (double)n;
    return LT_OK;
}

static void lt__fmt_duration(char *buf, size_t n, double s) {
    long v = s > 0 && s < 1e7 ? (long)(s + 0.5) : 0;
    if (v >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, n, "%ld:%02ld", v / 60, v % 60);
}

static void lt__report_step(lt_trainer *t, const lt_train_stats *s, bool line) {
    const lt_train_config *c = &t->cfg;
    double tok_s = (double)(t->steps_done * c->batch_size * c->seq_len * c->grad_accum * t->world) /
                   (t->seconds > 0 ? t->seconds : 1);
    char eta[32];
    lt__fmt_duration(eta, sizeof eta, t->seconds / (double)t->steps_done * (double)(c->steps - t->steps_done));
    if (t->metrics) {
        fprintf(t->metrics,
                "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens_per_s\": %.1f, "
                "\"time_s\": %.3f}\n",
                (long long)s->step, s->loss, s->lr, s->grad_norm, tok_s, t->seconds);
        fflush(t->metrics);
    }
    if (c->progress == LT_PROGRESS_NONE) return;
    if (t->live) {
        printf("\r\033[Kstep %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s", (long long)s->step,
               (long long)c->steps, s->loss, s->lr, tok_s, eta);
        if (line) printf("\n");
    } else if (line) {
        printf("step %lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s\n", (long long)s->step,
               (long long)c->steps, s->loss, s->lr, s->grad_norm, tok_s, eta);
    }
    fflush(stdout);
}

static lt_status lt__validate_and_report(lt_trainer *t) {
    double v;
    LT_TRY(lt_trainer_evaluate(t, &v));
    if (t->metrics) {
        fprintf(t->metrics, "{\"step\": %lld, \"val_loss\": %.6f}\n", (long long)t->steps_done, v);
        fflush(t->metrics);
    }
    if (t->cfg.progress != LT_PROGRESS_NONE) {
        printf("%sstep %lld/%lld | val loss %.4f nats/token (%.3f bits)\n", t->live ? "\r\033[K" : "",
               (long long)t->steps_done, (long long)t->cfg.steps, v, v / log(2.0));
        fflush(stdout);
    }
    return LT_OK;
}

/* Set by SIGTERM/SIGUSR1 while lt_trainer_run runs. A handler can reach nothing but a global, so this is the one
 * piece of mutable global state; the run reads it only at step boundaries. */
static volatile sig_atomic_t lt__stop_requested;
static void lt__on_stop_signal(int sig) { lt__stop_requested = sig; }

static lt_status lt__save_if(lt_trainer *t, bool due) {
    const lt_train_config *c = &t->cfg;
    if (!due || !c->ckpt_dir || t->last_saved == t->steps_done) return LT_OK;
    LT_TRY(lt_trainer_save(t, c->ckpt_dir, c->keep_last));
    if (c->progress != LT_PROGRESS_NONE) {
        printf("%ssaved checkpoint step %lld in %s\n", t->live ? "\r\033[K" : "", (long long)t->steps_done,
               c->ckpt_dir);
        fflush(stdout);
    }
    return LT_OK;
}

static lt_status lt__run_loop(lt_trainer *t) {
    const lt_train_config *c = &t->cfg;
    bool validate = t->val_loader != NULL;
    if (validate && t->steps_done == 0) LT_TRY(lt__validate_and_report(t));
    while (t->steps_done < c->steps) {
        double stop = (double)lt__stop_requested;
        /* A signal may reach one rank only: every rank takes the largest flag, so all stop after the same step. */
        if (t->world > 1) LT_TRY(lt_dist_allreduce_scalar(c->dist, &stop, LT_DIST_MAX));
        if (stop != 0) {
            int sig = (int)stop;
            LT_TRY(lt__save_if(t, true));
            if (c->progress != LT_PROGRESS_NONE) {
                printf("%sstopped by signal %d after step %lld/%lld%s\n", t->live ? "\r\033[K" : "", sig,
                       (long long)t->steps_done, (long long)c->steps, c->ckpt_dir ? "" : " (no ckpt_dir: not saved)");
                fflush(stdout);
            }
            return LT_OK;
        }
        lt_train_stats s = {.struct_size = sizeof s};
        LT_TRY(lt_trainer_step(t, &s));
        bool line = s.step == 1 || s.step % c->log_every == 0 || s.step == c->steps;
        lt__report_step(t, &s, line);
        if (validate && c->eval_every > 0 && s.step % c->eval_every == 0 && s.step != c->steps)
            LT_TRY(lt__validate_and_report(t));
        LT_TRY(lt__save_if(t, c->ckpt_every > 0 && s.step % c->ckpt_every == 0));
    }
    if (validate) LT_TRY(lt__validate_and_report(t));
    LT_TRY(lt__save_if(t, true));
    if (c->progress != LT_PROGRESS_NONE && t->steps_done > 0) {
        double tokens = (double)(t->steps_done * c->batch_size * c->seq_len * c->grad_accum * t->world);
        printf("done: %lld steps in %.1f s (%.0f tokens/s), final training loss %.4f\n", (long long)t->steps_done,
               t->seconds, tokens / (t->seconds > 0 ? t->seconds : 1), t->last_loss);
        fflush(stdout);
    }
    return LT_OK;
}

LT_API lt_status lt_trainer_run(lt_trainer *t) {
    static const char *fn = "lt_trainer_run";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    /* SIGTERM and SIGUSR1 ask for "save and stop at the next step boundary"; the caller's handlers come back after. */
    struct sigaction on_stop = {.sa_handler = lt__on_stop_signal}, old_term, old_usr1;
    sigemptyset(&on_stop.sa_mask);
    lt__stop_requested = 0;
    sigaction(SIGTERM, &on_stop, &old_term);
    sigaction(SIGUSR1, &on_stop, &old_usr1);
    lt_status st = lt__run_loop(t);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    return st;
}
