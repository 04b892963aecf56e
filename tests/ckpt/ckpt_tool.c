/* Helper for the checkpoint tests (tests/ckpt/): trains a tiny dropout GPT step by step, saves, resumes, validates
 * and saves in a loop to be killed. Losses are printed in hex floats and parameters dumped raw, so runs compare
 * bitwise. Started by mpirun, train and expect run on every rank (rank 0 writes the files) and mpifail checks that a
 * failed save or resume gives every rank the same status. */
#include "libtrain/libtrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The communicator under mpirun, NULL otherwise. */
static lt_dist *dist;

static int fail(const char *what) {
    fprintf(stderr, "ckpt_tool %s (rank %d): %s\n", what, lt_dist_rank(dist), lt_last_error());
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
    c->dist = dist;
}

/* train SHARD TOTAL RUN CKPT_DIR|- RESUME|- LOSSES PARAMS: RUN steps of a TOTAL-step run, appending each loss. */
static int train(char **a) {
    lt_train_config c;
    tiny_config(&c, a[0], atoll(a[1]));
    if (strcmp(a[4], "-") != 0) c.resume = a[4];
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail("create");
    const bool writer = lt_dist_rank(dist) == 0; /* the loss is the mean over ranks, the same on each */
    FILE *losses = writer ? fopen(a[5], "a") : NULL;
    if (writer && !losses) return fail("losses");
    for (int64_t i = 0, n = atoll(a[2]); i < n && lt_trainer_steps_done(t) < c.steps; i++) {
        lt_train_stats s = {.struct_size = sizeof s};
        if (lt_trainer_step(t, &s) != LT_OK) return fail("step");
        if (writer) fprintf(losses, "%lld %a %a\n", (long long)s.step, s.loss, s.grad_norm);
    }
    if (writer) fclose(losses);
    if (strcmp(a[3], "-") != 0 && lt_trainer_save(t, a[3], 2) != LT_OK) return fail("save");
    lt_tensor *flat;
    lt_params *p = lt_gpt_params(lt_trainer_model(t));
    if (dist && lt_dist_check_params_equal(dist, p) != LT_OK) return fail("replicas");
    lt_params_flat(p, &flat, NULL);
    if (!writer) {
        lt_trainer_free(t);
        return 0;
    }
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

/* expect SHARD PATH STATUS TEXT: a STRICT resume from PATH fails with STATUS (a name such as LT_ERR_UNSUPPORTED) and
 * a message holding TEXT on every rank; a PARAMS_ONLY load of the same file then works. */
static int expect(char **a) {
    lt_train_config c;
    tiny_config(&c, a[0], 20);
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail("create");
    lt_status st = lt_trainer_resume(t, a[1], LT_CKPT_STRICT);
    int rank = lt_dist_rank(dist), bad = 0;
    printf("rank %d: STRICT resume: %s: %s\n", rank, lt_status_name(st), lt_last_error());
    if (strcmp(lt_status_name(st), a[2]) != 0 || !strstr(lt_last_error(), a[3])) {
        fprintf(stderr, "rank %d: expected %s with '%s'\n", rank, a[2], a[3]);
        bad = 1;
    }
    if (lt_trainer_resume(t, a[1], LT_CKPT_PARAMS_ONLY) != LT_OK) bad |= fail("PARAMS_ONLY resume");
    if (lt_trainer_steps_done(t) != 0) bad |= fail("PARAMS_ONLY moved the step count");
    lt_trainer_free(t);
    return bad;
}

/* 0 when st is want and the message holds text, and every rank got the same status and message (a hash of both,
 * gathered to rank 0, which compares). */
static int same_everywhere(const char *what, lt_status st, lt_status want, const char *text) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lt_last_error()); /* the gather below clears it */
    int rank = lt_dist_rank(dist), world = lt_dist_world(dist), bad = 0;
    printf("rank %d: %s: %s: %s\n", rank, what, lt_status_name(st), msg);
    if (st != want || !strstr(msg, text)) {
        fprintf(stderr, "rank %d: %s: expected %s with '%s'\n", rank, what, lt_status_name(want), text);
        bad = 1;
    }
    uint64_t mine[2] = {(uint64_t)st, 1469598103934665603ull}, all[2 * 64];
    for (const char *m = msg; *m; m++) mine[1] = (mine[1] ^ (unsigned char)*m) * 1099511628211ull;
    if (world > 64 || lt_dist_gather(dist, mine, sizeof mine, all, 0) != LT_OK) return fail("gather");
    for (int r = 1; rank == 0 && r < world; r++)
        if (memcmp(all + 2 * r, all, sizeof mine) != 0) {
            fprintf(stderr, "%s: rank %d returned another status or message than rank 0\n", what, r);
            bad = 1;
        }
    return bad;
}

static int latest_is(const char *dir, const char *want) {
    char path[4096], got[64] = "";
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(got, sizeof got, f)) return fprintf(stderr, "cannot read %s\n", path), 1;
    fclose(f);
    got[strcspn(got, "\n")] = '\0';
    if (strcmp(got, want) == 0) return 0;
    return fprintf(stderr, "latest names %s, expected %s\n", got, want), 1;
}

/* mpifail SHARD DIR (under mpirun): rank 0's save fails before writing (the directory cannot be made) and at the
 * commit (a directory blocks the rename); each time every rank returns the same LT_ERR_IO and message, and latest
 * keeps naming the previous checkpoint. A resume from a missing path fails the same way everywhere. */
static int mpifail(char **a) {
    lt_train_config c;
    tiny_config(&c, a[0], 100);
    lt_trainer *t;
    if (!dist || lt_trainer_create(&c, &t) != LT_OK) return fail("create (needs mpirun)");
    const char *dir = a[1];
    int rank = lt_dist_rank(dist), bad = 0;
    char blocker[4096], under_file[4096];
    const char *name = "step-00000002.h5";
    snprintf(blocker, sizeof blocker, "%s/%s", dir, name);
    snprintf(under_file, sizeof under_file, "%s/latest/sub", dir);
    if (lt_trainer_step(t, NULL) != LT_OK || lt_trainer_save(t, dir, 0) != LT_OK) return fail("first save");
    if (rank == 0) bad |= latest_is(dir, "step-00000001.h5");
    if (lt_trainer_step(t, NULL) != LT_OK) return fail("step");
    if (rank == 0 && mkdir(blocker, 0755) != 0) return fprintf(stderr, "cannot make %s\n", blocker), 1;

    /* mkdir fails on rank 0 (ENOTDIR), before anything is written */
    bad |=
        same_everywhere("save under a file", lt_trainer_save(t, under_file, 0), LT_ERR_IO, "cannot create directory");
    /* written, then the rename onto a directory fails at the commit: nothing is committed */
    bad |= same_everywhere("save with a blocked rename", lt_trainer_save(t, dir, 0), LT_ERR_IO, "cannot rename");
    if (rank == 0) bad |= latest_is(dir, "step-00000001.h5");
    bad |= same_everywhere("resume from a missing path", lt_trainer_resume(t, "/nonexistent/ckpt", LT_CKPT_STRICT),
                           LT_ERR_IO, "[rank 0 of 2]");
    bad |= lt_trainer_steps_done(t) != 2;
    if (rank == 0 && rmdir(blocker) != 0) return fprintf(stderr, "cannot remove %s\n", blocker), 1;
    bad |= same_everywhere("save once unblocked", lt_trainer_save(t, dir, 0), LT_OK, "");
    if (rank == 0) bad |= latest_is(dir, name);
    printf("rank %d: mpifail %s\n", rank, bad ? "FAILED" : "passed");
    lt_trainer_free(t);
    return bad;
}

/* info PATH: what lt_ckpt_validate says about a checkpoint (no trainer needed). */
static int info(char **a) {
    lt_ckpt_info i = {.struct_size = sizeof i};
    if (lt_ckpt_validate(a[0], NULL, &i) != LT_OK) return fail("validate");
    printf("step %lld, tokens_seen %lld, world_size %d, zero_stage %d, %d params, %lld elements, %s\n",
           (long long)i.step, (long long)i.tokens_seen, i.world_size, i.zero_stage, i.n_params, (long long)i.numel,
           i.dtype);
    return 0;
}

static int dispatch(int argc, char **argv) {
    if (argc == 9 && strcmp(argv[1], "train") == 0) return train(argv + 2);
    if (argc == 6 && strcmp(argv[1], "expect") == 0) return expect(argv + 2);
    if (argc == 4 && strcmp(argv[1], "mpifail") == 0) return mpifail(argv + 2);
    fprintf(stderr, "usage: ckpt_tool tokenize TEXT SHARD | train SHARD TOTAL RUN CKPT|- RESUME|- LOSSES PARAMS | "
                    "saveloop SHARD DIR | check SHARD PATH | info PATH | expect SHARD PATH STATUS TEXT | "
                    "mpifail SHARD DIR\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "tokenize") == 0)
        return lt_tokenize_bytes(argv[2], argv[3]) == LT_OK ? 0 : fail("tokenize");
    if (argc == 4 && strcmp(argv[1], "saveloop") == 0) return saveloop(argv + 2);
    if (argc == 4 && strcmp(argv[1], "check") == 0) return check(argv + 2);
    if (argc == 3 && strcmp(argv[1], "info") == 0) return info(argv + 2);
    /* Modes that run on every rank under mpirun (OpenMPI sets OMPI_COMM_WORLD_SIZE), or alone without it. */
    if (getenv("OMPI_COMM_WORLD_SIZE") && lt_dist_init_mpi(NULL, &dist) != LT_OK) return fail("lt_dist_init_mpi");
    int rc = dispatch(argc, argv);
    lt_dist_free(dist);
    return rc;
}
