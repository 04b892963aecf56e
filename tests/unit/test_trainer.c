/* Tests of lt_trainer: a short run learns, steps report consistent statistics, validation is deterministic, the
 * run stops where it should, and every error path of train.h, including bad data, comes back as a status. */
#include "test.h"

#include <stddef.h>
#include <unistd.h>

static char dir[64], text[128], shard[128];

/* A small corpus with structure a model can learn: a repeated pangram with a counter. */
static void make_corpus(void) {
    snprintf(dir, sizeof dir, "/tmp/lt_trainer_XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(text, sizeof text, "%s/corpus.txt", dir);
    snprintf(shard, sizeof shard, "%s/corpus.bin", dir);
    FILE *f = fopen(text, "w");
    for (int i = 0; i < 400; i++) fprintf(f, "the quick brown fox %d jumps over the lazy dog.\n", i % 10);
    fclose(f);
    if (lt_tokenize_bytes(text, shard) != LT_OK) abort();
}

static lt_train_config tiny(void) {
    lt_train_config c;
    lt_train_config_init(&c, sizeof c);
    c.data_path = shard;
    c.model.block_size = c.seq_len = 16;
    c.model.n_layer = 1;
    c.model.n_head = 2;
    c.model.n_embd = 16;
    c.batch_size = 4;
    c.steps = 30;
    c.warmup_steps = 5;
    c.eval_batches = 4;
    c.progress = LT_PROGRESS_NONE;
    c.threads = 1;
    return c;
}

static void test_short_run_learns(void) {
    lt_train_config c = tiny();
    lt_trainer *t;
    CHECK_OK(lt_trainer_create(&c, &t));
    double before, after, again;
    CHECK_OK(lt_trainer_evaluate(t, &before));
    CHECK(fabs(before - log(256.0)) < 0.3); /* an untrained byte model is close to uniform */
    lt_train_stats s = {.struct_size = sizeof s}, first = s;
    for (int k = 0; k < 30; k++) {
        CHECK_OK(lt_trainer_step(t, &s));
        if (k == 0) first = s;
    }
    CHECK(first.step == 1 && s.step == 30 && lt_trainer_steps_done(t) == 30);
    CHECK(first.lr > 0 && first.lr < c.lr && s.grad_norm > 0 && s.tokens_per_second > 0 && s.step_seconds > 0);
    CHECK(fabs(s.lr - lt_lr_cosine(29, c.warmup_steps, c.steps, c.lr, c.min_lr)) < 1e-15);
    CHECK_OK(lt_trainer_evaluate(t, &after));
    CHECK_OK(lt_trainer_evaluate(t, &again));
    CHECK(after < before - 1.0); /* it learned */
    CHECK(after == again);       /* validation reads the same batches every time */
    CHECK_ERR(lt_trainer_step(t, &s), LT_ERR_STATE, "lt_trainer_step");
    CHECK(lt_trainer_model(t) != NULL);
    lt_trainer_free(t);
}

/* Two trainers with the same config take bitwise the same steps; run() finishes what step() started. */
static void test_deterministic_and_run(void) {
    lt_train_config c = tiny();
    c.steps = 6;
    c.model.dropout = 0.1;
    char metrics[160];
    snprintf(metrics, sizeof metrics, "%s/m.jsonl", dir);
    c.metrics_path = metrics;
    lt_trainer *a, *b;
    CHECK_OK(lt_trainer_create(&c, &a));
    c.metrics_path = NULL;
    CHECK_OK(lt_trainer_create(&c, &b));
    lt_train_stats sa = {.struct_size = sizeof sa}, sb = sa;
    for (int k = 0; k < 3; k++) {
        CHECK_OK(lt_trainer_step(a, &sa));
        CHECK_OK(lt_trainer_step(b, &sb));
        CHECK(sa.loss == sb.loss && sa.grad_norm == sb.grad_norm);
    }
    CHECK_OK(lt_trainer_run(a));
    CHECK(lt_trainer_steps_done(a) == 6);
    FILE *f = fopen(metrics, "r");
    char line[512];
    int rows = 0, val_rows = 0;
    while (f && fgets(line, sizeof line, f)) rows++, val_rows += strstr(line, "val_loss") != NULL;
    if (f) fclose(f);
    CHECK(rows >= 4 && val_rows == 1); /* steps 4..6 logged (1 is before run), and the final validation */
    lt_trainer_free(a);
    lt_trainer_free(b);
}

static void test_errors(void) {
    const char *fn = "lt_trainer_create";
    lt_trainer *t = NULL;
    lt_train_config c = tiny();
    CHECK_ERR(lt_trainer_create(NULL, &t), LT_ERR_ARG, fn);
    CHECK_ERR(lt_trainer_create(&c, NULL), LT_ERR_ARG, fn);
    lt_train_config bad = c;
    bad.struct_size = 16;
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, fn);
    bad = c, bad.data_path = NULL;
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, fn);
    bad = c, bad.batch_size = 0;
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, fn);
    bad = c, bad.seq_len = 32; /* longer than the model's context */
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, fn);
    bad = c, bad.val_fraction = 1.0;
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, fn);
    bad = c, bad.progress = (lt_progress)9;
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, fn);
    bad = c, bad.model.n_head = 3;
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_ARG, "lt_gpt_create");
    bad = c, bad.data_path = "/nonexistent/shard.bin";
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_IO, "lt_dataset_open");
    bad = c, bad.data_path = text; /* text is not a shard: odd-sized or out-of-vocabulary tokens */
    lt_status st = lt_trainer_create(&bad, &t);
    CHECK(st == LT_ERR_FORMAT);
    bad = c, bad.batch_size = 100000; /* more rows than the data has windows */
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_SHAPE, fn);
    bad = c, bad.metrics_path = "/nonexistent/dir/m.jsonl";
    CHECK_ERR(lt_trainer_create(&bad, &t), LT_ERR_IO, fn);
    CHECK(t == NULL);
    bad = c, bad.val_fraction = 0;
    CHECK_OK(lt_trainer_create(&bad, &t));
    double v;
    CHECK_ERR(lt_trainer_evaluate(t, &v), LT_ERR_STATE, "lt_trainer_evaluate");
    CHECK(isnan(v));
    CHECK_ERR(lt_trainer_evaluate(t, NULL), LT_ERR_ARG, "lt_trainer_evaluate");
    CHECK_ERR(lt_trainer_evaluate(NULL, &v), LT_ERR_ARG, "lt_trainer_evaluate");
    CHECK_ERR(lt_trainer_step(NULL, NULL), LT_ERR_ARG, "lt_trainer_step");
    CHECK_ERR(lt_trainer_run(NULL), LT_ERR_ARG, "lt_trainer_run");
    CHECK(lt_trainer_model(NULL) == NULL && lt_trainer_steps_done(NULL) == 0);
    lt_trainer_free(t);
    lt_trainer_free(NULL);
}

/* A caller built against an older, shorter struct passes its size: nothing past it is written. */
static void test_config_init_respects_size(void) {
    unsigned char buf[sizeof(lt_train_config) + 16];
    memset(buf, 0xAB, sizeof buf);
    size_t old = offsetof(lt_train_config, ckpt_dir);
    lt_train_config_init((lt_train_config *)buf, old);
    lt_train_config *c = (lt_train_config *)buf;
    CHECK(c->struct_size == old && c->steps == 600 && c->batch_size == 16);
    bool untouched = true;
    for (size_t i = old; i < sizeof buf; i++) untouched = untouched && buf[i] == 0xAB;
    CHECK(untouched);
    lt_train_config full;
    lt_train_config_init(&full, sizeof full);
    CHECK(full.struct_size == sizeof full && full.keep_last == 3);
}

int main(void) {
    make_corpus();
    RUN(test_config_init_respects_size);
    RUN(test_short_run_learns);
    RUN(test_deterministic_and_run);
    RUN(test_errors);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tt_finish();
}
