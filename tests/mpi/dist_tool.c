/* Helper for the mpi tests: trains a tiny GPT on one or more ranks and writes losses and final parameters, compares two
 * such runs, checks the communicator's collectives against known values, and runs lt_trainer_run for signal tests.
 * Uses the public API only; every mode prints what it found and exits non-zero on a failed check. */
#include <libtrain/libtrain.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(int rank, const char *what) {
    fprintf(stderr, "dist_tool: rank %d: %s: %s\n", rank, what, lt_last_error());
    return 1;
}

/* A tiny model and a schedule short enough for seconds per test; dropout 0 so ranks and batch splits agree. */
static void tiny_config(lt_train_config *c, const char *shard, lt_dtype dtype) {
    lt_train_config_init(c, sizeof *c);
    c->data_path = shard;
    c->model.block_size = 16;
    c->model.n_layer = 1;
    c->model.n_head = 2;
    c->model.n_embd = 32;
    c->dtype = dtype;
    c->seq_len = 16;
    c->val_fraction = 0;
    c->eval_batches = 0;
    c->warmup_steps = 2;
    c->lr = 1e-2;
    c->min_lr = 1e-3;
    c->progress = LT_PROGRESS_NONE;
    c->threads = 1;
}

/* train SHARD OUT B ACCUM STEPS f32|f64 SEED_STRIDE BUCKET_BYTES: OUT.loss (one loss per step) and OUT.params (f64)
 * from rank 0. Each rank's seed is 1234 + rank * SEED_STRIDE; rank 0's wins. */
static int mode_train(int argc, char **argv, lt_dist *d) {
    if (argc != 10) return fprintf(stderr, "usage: train SHARD OUT B ACCUM STEPS f32|f64 SEED_STRIDE BUCKET\n"), 2;
    int rank = lt_dist_rank(d);
    lt_train_config c;
    tiny_config(&c, argv[2], strcmp(argv[7], "f64") == 0 ? LT_F64 : LT_F32);
    c.batch_size = atoll(argv[4]);
    c.grad_accum = atoll(argv[5]);
    c.steps = atoll(argv[6]);
    c.seed = 1234 + (uint64_t)rank * (uint64_t)atoll(argv[8]);
    c.bucket_bytes = atoll(argv[9]);
    c.dist = d;
    lt_trainer *t = NULL;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail(rank, "lt_trainer_create");
    double *loss = calloc((size_t)c.steps, sizeof *loss);
    for (int64_t s = 0; s < c.steps; s++) {
        lt_train_stats st = {.struct_size = sizeof st};
        if (lt_trainer_step(t, &st) != LT_OK) return fail(rank, "lt_trainer_step");
        loss[s] = st.loss;
    }
    lt_params *p = lt_gpt_params(lt_trainer_model(t));
    if (d && lt_dist_check_params_equal(d, p) != LT_OK) return fail(rank, "parameters after training");
    if (rank == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s.loss", argv[3]);
        FILE *f = fopen(path, "w");
        for (int64_t s = 0; f && s < c.steps; s++) fprintf(f, "%.17g\n", loss[s]);
        if (f) fclose(f);
        lt_tensor *flat, *grads, *f64;
        if (lt_params_flat(p, &flat, &grads) != LT_OK || lt_tensor_to(flat, LT_F64, LT_DEVICE_CPU, &f64) != LT_OK)
            return fail(rank, "flat parameters");
        snprintf(path, sizeof path, "%s.params", argv[3]);
        f = fopen(path, "wb");
        if (!f || fwrite(lt_tensor_data(f64), sizeof(double), (size_t)lt_tensor_numel(f64), f) !=
                      (size_t)lt_tensor_numel(f64))
            return fprintf(stderr, "dist_tool: cannot write %s\n", path), 1;
        fclose(f);
        lt_tensor_release(f64);
        printf("rank 0 of %d: %lld steps, loss %.6f -> %.6f, %lld parameters\n", lt_dist_world(d), (long long)c.steps,
               loss[0], loss[c.steps - 1], (long long)lt_params_numel(p));
    }
    free(loss);
    lt_trainer_free(t);
    return 0;
}

static double *read_doubles(const char *path, bool text, long *n) {
    FILE *f = fopen(path, text ? "r" : "rb");
    if (!f) return NULL;
    double *v = NULL;
    long cap = 0;
    *n = 0;
    for (;;) {
        if (*n == cap) v = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 1024));
        if (text ? fscanf(f, "%lf", &v[*n]) != 1 : fread(&v[*n], sizeof *v, 1, f) != 1) break;
        (*n)++;
    }
    fclose(f);
    return v;
}

/* Largest |a - b| / max(|a|, |b|, 1e-6) over n values. The floor is for the attention's key bias, whose gradient is
 * zero in exact arithmetic (softmax ignores a shift): it holds rounding noise near 1e-14 that depends on the
 * summation order. Every other parameter of the tiny model is above 4e-6 after 20 steps, so stays truly relative. */
static double max_rel(const double *a, const double *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / fmax(1e-6, fmax(fabs(a[i]), fabs(b[i])));
        if (!(r <= m)) m = r; /* NaN wins */
    }
    return m;
}

/* compare A B RTOL same|differ: A's and B's losses and parameters agree within RTOL (same) or do not (differ, the
 * negative control that proves the comparison can fail). Both runs must have learned (last loss < first). */
static int mode_compare(int argc, char **argv) {
    if (argc != 6) return fprintf(stderr, "usage: compare A B RTOL same|differ\n"), 2;
    double rtol = atof(argv[4]);
    bool want_same = strcmp(argv[5], "same") == 0;
    double *v[4];
    long n[4];
    const char *ext[2] = {".loss", ".params"};
    for (int i = 0; i < 4; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", argv[2 + i % 2], ext[i / 2]);
        v[i] = read_doubles(path, i < 2, &n[i]);
        if (!v[i] || n[i] == 0) return fprintf(stderr, "compare: cannot read %s\n", path), 1;
    }
    if (n[0] != n[1] || n[2] != n[3])
        return fprintf(stderr, "compare: sizes differ (%ld/%ld losses, %ld/%ld params)\n", n[0], n[1], n[2], n[3]), 1;
    for (int i = 0; i < 2; i++)
        if (!(v[i][n[i] - 1] < v[i][0]))
            return fprintf(stderr, "compare: run %s did not learn (loss %g -> %g)\n", argv[2 + i], v[i][0],
                           v[i][n[i] - 1]),
                   1;
    double rl = max_rel(v[0], v[1], n[0]), rp = max_rel(v[2], v[3], n[2]);
    bool bitwise = memcmp(v[2], v[3], sizeof(double) * (size_t)n[2]) == 0;
    printf("compare %s vs %s: %ld losses max rel diff %.3g, %ld parameters max rel diff %.3g%s (want %s within %g)\n",
           argv[2], argv[3], n[0], rl, n[2], rp, bitwise ? " (bitwise equal)" : "", argv[5], rtol);
    bool same = rl <= rtol && rp <= rtol;
    for (int i = 0; i < 4; i++) free(v[i]);
    return same == want_same ? 0 : 1;
}

static int check(int rank, bool ok, const char *what) {
    printf("rank %d: %s: %s\n", rank, ok ? "ok" : "FAILED", what);
    return ok ? 0 : 1;
}

/* collectives SHARD: every dist.h call against values known in advance, on any number of ranks. */
static int mode_collectives(int argc, char **argv, lt_dist *d) {
    if (argc != 3 || !d) return fprintf(stderr, "usage: mpirun ... collectives SHARD\n"), 2;
    int rank = lt_dist_rank(d), world = lt_dist_world(d), bad = 0;
    double v = rank + 1.5;
    bad |= check(rank, lt_dist_allreduce_scalar(d, &v, LT_DIST_SUM) == LT_OK && v == world * (world + 2) / 2.0,
                 "allreduce_scalar SUM");
    v = rank + 1.5;
    bad |= check(rank, lt_dist_allreduce_scalar(d, &v, LT_DIST_MEAN) == LT_OK && v == (world + 2) / 2.0,
                 "allreduce_scalar MEAN");
    v = rank * 3.0;
    bad |= check(rank, lt_dist_allreduce_scalar(d, &v, LT_DIST_MAX) == LT_OK && v == (world - 1) * 3.0,
                 "allreduce_scalar MAX");
    bad |= check(rank,
                 lt_dist_allreduce_scalar(d, &v, (lt_dist_op)99) == LT_ERR_ARG &&
                     strstr(lt_last_error(), "lt_dist_allreduce_scalar"),
                 "allreduce_scalar rejects an unknown op, naming itself");

    /* Models from different seeds differ, the check says which rank; after the broadcast they are equal. */
    lt_gpt_config mc = {
        .struct_size = sizeof mc, .vocab_size = 256, .block_size = 16, .n_layer = 1, .n_head = 2, .n_embd = 32};
    lt_gpt *m = NULL;
    if (lt_gpt_create(&mc, LT_F32, LT_DEVICE_CPU, 7 + (uint64_t)rank, &m) != LT_OK) return fail(rank, "lt_gpt_create");
    lt_params *p = lt_gpt_params(m);
    lt_status st = lt_dist_check_params_equal(d, p);
    bad |=
        check(rank, world == 1 || (st == LT_ERR_STATE && strstr(lt_last_error(), "rank 1's parameters differ") != NULL),
              "check_params_equal finds rank 1 different before the broadcast");
    bad |= check(rank, lt_dist_broadcast_params(d, p) == LT_OK && lt_dist_check_params_equal(d, p) == LT_OK,
                 "check_params_equal after broadcast_params");

    /* Gradients: rank r holds g_i = sin(i) * (r + 1) + i * 1e-3; their mean is sin(i) * (world + 1) / 2 + i * 1e-3.
     * Buckets of 100 bytes (25 floats) leave a partial last bucket. */
    lt_tensor *flat, *grads;
    if (lt_params_flat(p, &flat, &grads) != LT_OK) return fail(rank, "lt_params_flat");
    float *g = lt_tensor_data(grads);
    int64_t n = lt_tensor_numel(grads);
    for (int64_t i = 0; i < n; i++) g[i] = (float)(sin((double)i) * (rank + 1) + (double)i * 1e-3);
    st = lt_dist_allreduce_grads(d, p, 100, true);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = sin((double)i) * (world + 1) / 2.0 + (double)i * 1e-3;
        worst = fmax(worst, fabs(g[i] - want) / fmax(1e-3, fabs(want)));
    }
    printf("rank %d: %lld gradients in %lld buckets, worst rel err %.3g\n", rank, (long long)n,
           (long long)(n + 24) / 25, worst);
    bad |= check(rank, st == LT_OK && worst < 1e-5, "allreduce_grads gives the mean in 100-byte buckets");
    bad |= check(rank, lt_dist_allreduce_grads(d, NULL, 0, true) == LT_ERR_ARG, "allreduce_grads rejects NULL params");
    lt_gpt_free(m);

    /* A trainer on ranks started with different seeds: the parameters agree from the start. */
    lt_train_config c;
    tiny_config(&c, argv[2], LT_F32);
    c.seed = 100 + (uint64_t)rank * 17;
    c.batch_size = 2;
    c.steps = 1;
    c.dist = d;
    lt_trainer *t = NULL;
    bad |= check(rank,
                 lt_trainer_create(&c, &t) == LT_OK &&
                     lt_dist_check_params_equal(d, lt_gpt_params(lt_trainer_model(t))) == LT_OK,
                 "trainers created with different seeds hold rank 0's parameters");
    lt_trainer_free(t);
    /* Checkpoints work with several ranks (tests/ckpt/mpi_*): ckpt_dir is accepted at create, and a resume from a
     * missing path fails on every rank alike, naming rank 0, which alone reads checkpoints. */
    c.ckpt_dir = "unused";
    st = lt_trainer_create(&c, &t);
    bad |= check(rank, st == LT_OK, "ckpt_dir is accepted on any number of ranks");
    st = t ? lt_trainer_resume(t, "/nonexistent/ckpt", LT_CKPT_STRICT) : LT_ERR_STATE;
    bad |= check(rank, st == LT_ERR_IO && (world == 1 || strstr(lt_last_error(), "[rank 0 of ") != NULL),
                 "a resume from a missing path is LT_ERR_IO on every rank");
    lt_trainer_free(t);
    /* gather: rank r sends 4 bytes r*10+i; the root gets every rank's, in rank order */
    unsigned char mine4[4], all4[4 * 64] = {0};
    for (int i = 0; i < 4; i++) mine4[i] = (unsigned char)(rank * 10 + i);
    bool gathered = world <= 64 && lt_dist_gather(d, mine4, 4, all4, 0) == LT_OK;
    for (int r = 0; gathered && rank == 0 && r < world; r++)
        for (int i = 0; i < 4; i++) gathered = gathered && all4[4 * r + i] == (unsigned char)(r * 10 + i);
    bad |= check(rank, gathered, "gather collects every rank's bytes at the root in rank order");
    bad |= check(rank, lt_dist_gather(d, mine4, -1, all4, 0) == LT_ERR_ARG, "gather rejects a negative size");
    /* One rank's missing data fails every rank's create, with the failing rank named; nobody hangs. */
    c.ckpt_dir = NULL;
    c.data_path = rank == world - 1 ? "/nonexistent/shard.bin" : argv[2];
    st = lt_trainer_create(&c, &t);
    bad |= check(rank,
                 st != LT_OK &&
                     (rank == world - 1 ? st == LT_ERR_IO : strstr(lt_last_error(), "failed to create") != NULL),
                 "a bad data path on the last rank fails create on every rank");
    printf("rank %d: create with the bad path said: %s\n", rank, lt_last_error());
    lt_trainer_free(t);
    return bad;
}

/* run SHARD PIDDIR: lt_trainer_run for a very long time; writes PIDDIR/rank-R.pid first, prints the step each rank
 * stopped at. For the signal and failure tests, which end it from outside. */
static int mode_run(int argc, char **argv, lt_dist *d) {
    if (argc != 4) return fprintf(stderr, "usage: run SHARD PIDDIR\n"), 2;
    int rank = lt_dist_rank(d);
    lt_train_config c;
    tiny_config(&c, argv[2], LT_F32);
    c.batch_size = 2;
    c.steps = 100000000;
    c.log_every = 1;
    c.progress = LT_PROGRESS_LINES;
    c.dist = d;
    lt_trainer *t = NULL;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail(rank, "lt_trainer_create");
    char path[4096];
    snprintf(path, sizeof path, "%s/rank-%d.pid", argv[3], rank);
    FILE *f = fopen(path, "w");
    if (!f) return fprintf(stderr, "dist_tool: cannot write %s\n", path), 1;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    if (lt_trainer_run(t) != LT_OK) return fail(rank, "lt_trainer_run");
    printf("rank %d stopped after step %lld\n", rank, (long long)lt_trainer_steps_done(t));
    fflush(stdout);
    lt_trainer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: dist_tool tokenize|train|compare|collectives|run ...\n"), 2;
    if (strcmp(argv[1], "compare") == 0) return mode_compare(argc, argv);
    if (strcmp(argv[1], "tokenize") == 0 && argc == 4)
        return lt_tokenize_bytes(argv[2], argv[3]) == LT_OK ? 0 : fail(0, "lt_tokenize_bytes");
    lt_dist *d = NULL;
    if (getenv("OMPI_COMM_WORLD_SIZE") && lt_dist_init_mpi(NULL, &d) != LT_OK) return fail(-1, "lt_dist_init_mpi");
    int rc = 2;
    if (strcmp(argv[1], "train") == 0) rc = mode_train(argc, argv, d);
    if (strcmp(argv[1], "collectives") == 0) rc = mode_collectives(argc, argv, d);
    if (strcmp(argv[1], "run") == 0) rc = mode_run(argc, argv, d);
    lt_dist_free(d);
    return rc;
}
