/* Helper for the checkpoint tests (tests/ckpt/): trains a tiny dropout GPT step by step, saves, resumes, validates
 * and saves in a loop to be killed. Losses are printed in hex floats and parameters dumped raw, so runs compare
 * bitwise. */
#include "libtrain/libtrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "ckpt_tool %s: %s\n", what, lt_last_error());
    return 1;
}

static void tiny_config(lt_train_config *c, const char *shard, int64_t steps) {
    lt_train_config_init(c, sizeof *c);
    c->data_path = shard;
    c->model.block_size = 16;
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.n_embd = 32;
    c->model.dropout = 0.1; /* so that the RNG state matters */
    c->seq_len = 16;
    c->batch_size = 4;
    c->grad_accum = 2;
    c->steps = steps;
    c->warmup_steps = 5;
    c->eval_batches = 0;
    c->progress = LT_PROGRESS_NONE;
    c->seed = 4242;
}

/* train SHARD TOTAL RUN CKPT_DIR|- RESUME|- LOSSES PARAMS: RUN steps of a TOTAL-step run, appending each loss. */
static int train(char **a) {
    lt_train_config c;
    tiny_config(&c, a[0], atoll(a[1]));
    if (strcmp(a[4], "-") != 0) c.resume = a[4];
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail("create");
    FILE *losses = fopen(a[5], "a");
    if (!losses) return fail("losses");
    for (int64_t i = 0, n = atoll(a[2]); i < n && lt_trainer_steps_done(t) < c.steps; i++) {
        lt_train_stats s = {.struct_size = sizeof s};
        if (lt_trainer_step(t, &s) != LT_OK) return fail("step");
        fprintf(losses, "%lld %a %a\n", (long long)s.step, s.loss, s.grad_norm);
    }
    fclose(losses);
    if (strcmp(a[3], "-") != 0 && lt_trainer_save(t, a[3], 2) != LT_OK) return fail("save");
    lt_tensor *flat;
    lt_params_flat(lt_gpt_params(lt_trainer_model(t)), &flat, NULL);
    FILE *f = fopen(a[6], "wb");
    if (!f) return fail("params");
    fwrite(lt_tensor_data(flat), lt_dtype_size(lt_tensor_dtype(flat)), (size_t)lt_tensor_numel(flat), f);
    fclose(f);
    lt_trainer_free(t);
    return 0;
}

/* saveloop SHARD DIR: steps and saves (keep 2) forever, for the kill test. */
static int saveloop(char **a) {
    lt_train_config c;
    tiny_config(&c, a[0], 1000000);
    c.model.n_embd = 64; /* a larger file makes the save window wider */
    c.ckpt_dir = a[1];
    c.resume = "auto"; /* each trial continues from what the killed one committed */
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail("create");
    for (;;) {
        if (lt_trainer_step(t, NULL) != LT_OK) return fail("step");
        if (lt_trainer_save(t, a[1], 2) != LT_OK) return fail("save");
    }
}

/* check SHARD PATH: the checkpoint validates alone and loads STRICT into the tiny trainer. */
static int check(char **a) {
    lt_ckpt_info info = {.struct_size = sizeof info};
    if (lt_ckpt_validate(a[1], NULL, &info) != LT_OK) return fail("validate");
    lt_train_config c;
    tiny_config(&c, a[0], 1000000);
    c.model.n_embd = 64;
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail("create");
    if (lt_trainer_resume(t, a[1], LT_CKPT_STRICT) != LT_OK) return fail("resume");
    int ok = lt_trainer_steps_done(t) == info.step;
    lt_trainer_free(t);
    printf("step %lld, %d params, %lld elements\n", (long long)info.step, info.n_params, (long long)info.numel);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "tokenize") == 0)
        return lt_tokenize_bytes(argv[2], argv[3]) == LT_OK ? 0 : fail("tokenize");
    if (argc == 9 && strcmp(argv[1], "train") == 0) return train(argv + 2);
    if (argc == 4 && strcmp(argv[1], "saveloop") == 0) return saveloop(argv + 2);
    if (argc == 4 && strcmp(argv[1], "check") == 0) return check(argv + 2);
    fprintf(stderr, "usage: ckpt_tool tokenize TEXT SHARD | train SHARD TOTAL RUN CKPT|- RESUME|- LOSSES PARAMS | "
                    "saveloop SHARD DIR | check SHARD PATH\n");
    return 2;
}
