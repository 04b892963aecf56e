/* libtrain trainer: the whole loop (data -> model -> loss -> backward -> clip -> AdamW -> metrics) for a GPT on a
 * token dataset, with progress, periodic validation and JSON Lines metrics. Examples and bindings drive training
 * through this one implementation. A trainer is used from one thread. */
#ifndef LIBTRAIN_TRAIN_H
#define LIBTRAIN_TRAIN_H

#include "data.h"
#include "dist.h"
#include "nn.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_progress {
    LT_PROGRESS_NONE = 0,  /* print nothing */
    LT_PROGRESS_LINES = 1, /* one line every log_every steps and at each validation */
    LT_PROGRESS_LIVE = 2,  /* a live status line redrawn in place (\r), plus the lines above */
    LT_PROGRESS_AUTO = 3   /* LIVE when stdout is a terminal, else LINES */
} lt_progress;

typedef struct lt_train_config {
    size_t struct_size; /* the caller's sizeof(lt_train_config); lt_train_config_init sets it */
    lt_gpt_config model;
    lt_dtype dtype; /* parameter dtype: f32 (or f64 for checks) */
    lt_device device;
    uint64_t seed;         /* initialisation, data order and dropout */
    const char *data_path; /* an llm.c/nanoGPT shard or a directory of shards (see lt_dataset_open); borrowed */
    double val_fraction;   /* the last fraction of the tokens is held out for validation, e.g. 0.05 */
    int64_t batch_size, seq_len, grad_accum; /* micro-batch B, T, and micro-batches per step */
    int64_t steps, warmup_steps;
    double lr, min_lr, beta1, beta2, eps, weight_decay, grad_clip; /* grad_clip <= 0 disables clipping */
    int64_t eval_every, eval_batches; /* validation every eval_every steps (0: only at the end) */
    int64_t log_every;
    lt_progress progress;
    const char *metrics_path; /* JSON Lines, one object per logged step and per validation; NULL for none */
    int threads;              /* CPU threads, 0 = all cores */
    /* Checkpoints (ckpt.h). Appended: a caller whose struct_size ends before them gets zeros (none). */
    const char *ckpt_dir; /* where lt_trainer_run saves; NULL never saves. Borrowed */
    int64_t ckpt_every;   /* save every this many steps; 0: only at the end and on a stop signal */
    int keep_last;        /* checkpoints kept in ckpt_dir; <= 0 keeps all */
    const char *resume;   /* at create: NULL or "none" fresh, "auto" ckpt_dir's latest if any, or a file or directory */
    /* Data parallelism (dist.h). Appended: a caller whose struct_size ends before them gets a single process.
     * With dist, every rank creates a trainer with the same config: seed and parameters are rank 0's, each rank
     * reads its part of every global batch (batch_size rows of world * batch_size), gradients are averaged once per
     * step, the reported loss is the mean over ranks, and only rank 0 prints and writes metrics. Checkpoints work on
     * any number of ranks (ckpt.h: save and resume are collective). CPU only (NCCL is not built yet). */
    lt_dist *dist;        /* borrowed; NULL = one process. Must outlive the trainer */
    int64_t bucket_bytes; /* gradient all-reduce bucket; 0: LT_DIST_DEFAULT_BUCKET_BYTES */
    /* Mixed precision (docs/mixed-precision.md). Appended: a caller whose struct_size ends before it gets false.
     * When set, every micro-batch's forward and backward, and validation, run under lt_autocast_begin(LT_BF16): on a
     * GPU the matrix products of the f32 parameters compute in bf16 with f32 accumulation; parameters (the f32 master
     * weights), gradients, loss and AdamW stay f32. No effect on the CPU. LT_ERR_ARG unless dtype is f32. */
    bool mixed_precision;
    /* ZeRO stage (dist.h). Appended: a caller whose struct_size ends before it gets 0. 0: every rank holds all of
     * AdamW's m and v; 1: each holds its shard's (about 1/world of them), the gradients are reduce-scattered, each
     * rank updates its shard and the parameters are all-gathered, with the same result as 0 (to rounding). Ignored
     * with one process. Checkpoints do not depend on it: a run saved at one stage resumes at the other. */
    int zero_stage;
} lt_train_config;

/* Fills the first struct_size bytes of c (pass sizeof *c; a program built against an older, shorter struct passes
 * its size and is never written past it) with defaults: the small byte-level GPT of the README (vocab 256, T 128, 4
 * layers, 4 heads, 128 wide), B 16, AdamW lr 3e-3 warm-up 50 then cosine to 3e-4 over 600 steps, betas (0.9, 0.95), wd
 * 0.1, clip 1.0, validation every 100 steps on 20 batches, 5% held out, f32 on the CPU, progress AUTO; no checkpoints
 * (keep_last 3 once ckpt_dir is set). */
LT_API void lt_train_config_init(lt_train_config *c, size_t struct_size);

/* What one optimizer step did. */
typedef struct lt_train_stats {
    size_t struct_size;
    int64_t step;             /* 1-based index of the step just taken */
    double loss;              /* mean training loss over the step's micro-batches */
    double lr, grad_norm;     /* the rate used and the gradient norm before clipping */
    double step_seconds;      /* wall time of the step */
    double tokens_per_second; /* over all ranks */
} lt_train_stats;

typedef struct lt_trainer lt_trainer;

/* Opens the data, splits it, builds the model (lt_gpt_create) and its AdamW optimizer. Errors from any of them
 * (LT_ERR_IO / LT_ERR_FORMAT for data, LT_ERR_ARG for a bad config, LT_ERR_SHAPE when the data has too few
 * windows for one batch) come back unchanged, with their messages. With config->resume, restores the checkpoint
 * (STRICT, see ckpt.h) and appends to the metrics file; a failed resume fails the create. lt_trainer_free(NULL) is
 * a no-op. */
LT_API lt_status lt_trainer_create(const lt_train_config *config, lt_trainer **out);
LT_API void lt_trainer_free(lt_trainer *t);
/* One optimizer step: grad_accum micro-batches forward and backward (the loss scaled by 1/grad_accum), gradient
 * clipping, the scheduled lr, AdamW. stats may be NULL. LT_ERR_STATE when every step is done. */
LT_API lt_status lt_trainer_step(lt_trainer *t, lt_train_stats *stats);
/* Mean validation loss in nats per token over eval_batches batches from the start of the validation split. */
LT_API lt_status lt_trainer_evaluate(lt_trainer *t, double *val_loss);
/* Runs the remaining steps with progress, validation and metrics, then a final validation; with ckpt_dir, saves every
 * ckpt_every steps and at the end. While it runs, SIGTERM or SIGUSR1 (handlers installed here, the caller's restored
 * on return) make it save at the next step boundary and return LT_OK early: compare lt_trainer_steps_done with the
 * config's steps. A resumed trainer (config resume) continues from its checkpoint's step. With config->dist, the
 * stop flag is agreed at every step boundary (an all-reduce, MAX), so a signal to any rank stops all at one step. */
LT_API lt_status lt_trainer_run(lt_trainer *t);
/* The model, borrowed. */
LT_API lt_gpt *lt_trainer_model(lt_trainer *t);
/* The AdamW optimizer, borrowed: its state (lt_optim_state) and, with ZeRO-1, this rank's shard (lt_optim_range). */
LT_API lt_optim *lt_trainer_optimizer(lt_trainer *t);
/* Steps taken so far. */
LT_API int64_t lt_trainer_steps_done(const lt_trainer *t);

#ifdef __cplusplus
}
#endif

#endif
