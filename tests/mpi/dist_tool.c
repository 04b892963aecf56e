/* Helper for the mpi tests: trains a tiny GPT on one or more ranks (plain data parallelism or ZeRO-1) and writes
 * losses and final parameters, compares two such runs, checks the communicator's collectives against known values,
 * runs lt_trainer_run for signal tests, and makes one rank hang for the deadline tests. Uses the public API only;
 * every mode prints what it found and exits non-zero on a failed check. */
#include "tiny_config.h"
#include <libtrain/libtrain.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fail(int rank, const char *what) {
    fprintf(stderr, "dist_tool: rank %d: %s: %s\n", rank, what, lt_last_error());
    return 1;
}

/* A tiny model and a schedule short enough for seconds per test (tiny_config.h), on the CPU. */
static void tiny_config(lt_train_config *c, const char *shard, lt_dtype dtype) {
    lt_test_tiny_config(c, shard, dtype, LT_DEVICE_CPU);
}

/* ZeRO-1's memory: this rank's AdamW m and v hold exactly its shard (lt_dist_shard_of), the shards of all ranks add
 * up to the parameters, and the allocator holds the full moments on no rank. */
static int check_zero_memory(lt_dist *d, lt_trainer *t) {
    int rank = lt_dist_rank(d), world = lt_dist_world(d);
    lt_params *p = lt_gpt_params(lt_trainer_model(t));
    const int64_t n = lt_params_numel(p);
    lt_tensor *m = NULL, *v = NULL;
    int64_t off = -1, cnt = -1;
    lt_dist_shard sh;
    if (lt_optim_state(lt_trainer_optimizer(t), &m, &v) != LT_OK || !m || !v ||
        lt_optim_range(lt_trainer_optimizer(t), &off, &cnt) != LT_OK || lt_dist_shard_of(d, n, &sh) != LT_OK)
        return fail(rank, "optimizer state");
    double total = (double)lt_tensor_numel(m);
    if (lt_dist_allreduce_scalar(d, &total, LT_DIST_SUM) != LT_OK) return fail(rank, "allreduce");
    lt_alloc_stats a = {.struct_size = sizeof a};
    lt_alloc_get_stats(LT_DEVICE_CPU, &a);
    const bool ok = lt_tensor_numel(m) == sh.count && lt_tensor_numel(v) == sh.count && off == sh.offset &&
                    cnt == sh.count && total == (double)n && sh.count <= (n + world - 1) / world;
    printf("rank %d of %d: ZeRO-1 holds m and v for [%lld, +%lld) of %lld parameters (%.1f%%; all ranks: %.0f), "
           "%zu bytes in use: %s\n",
           rank, world, (long long)off, (long long)lt_tensor_numel(m), (long long)n,
           100.0 * (double)lt_tensor_numel(m) / (double)n, total, a.bytes_in_use, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

/* train SHARD OUT B ACCUM STEPS f32|f64 SEED_STRIDE BUCKET_BYTES [ZERO_STAGE [CLIP]]: OUT.loss (one loss per step) and
 * OUT.params (f64) from rank 0. Each rank's seed is 1234 + rank * SEED_STRIDE; rank 0's wins. CLIP (default 1)
 * is the gradient-norm clip; rank 0 reports how many steps it clipped. */
static int mode_train(int argc, char **argv, lt_dist *d) {
    if (argc < 10 || argc > 12)
        return fprintf(stderr, "usage: train SHARD OUT B ACCUM STEPS f32|f64 SEED_STRIDE BUCKET [ZERO [CLIP]]\n"), 2;
    int rank = lt_dist_rank(d);
    lt_train_config c;
    tiny_config(&c, argv[2], strcmp(argv[7], "f64") == 0 ? LT_F64 : LT_F32);
    c.batch_size = atoll(argv[4]);
    c.grad_accum = atoll(argv[5]);
    c.steps = atoll(argv[6]);
    c.seed = 1234 + (uint64_t)rank * (uint64_t)atoll(argv[8]);
    c.bucket_bytes = atoll(argv[9]);
    c.zero_stage = argc > 10 ? atoi(argv[10]) : 0;
    if (argc > 11) c.grad_clip = atof(argv[11]);
    c.dist = d;
    lt_trainer *t = NULL;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail(rank, "lt_trainer_create");
    if (c.zero_stage == 1 && d && check_zero_memory(d, t) != 0) return 1;
    double *loss = calloc((size_t)c.steps, sizeof *loss);
    int clipped = 0;
    for (int64_t s = 0; s < c.steps; s++) {
        lt_train_stats st = {.struct_size = sizeof st};
        if (lt_trainer_step(t, &st) != LT_OK) return fail(rank, "lt_trainer_step");
        loss[s] = st.loss;
        clipped += c.grad_clip > 0 && st.grad_norm > c.grad_clip;
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
        printf("rank 0 of %d: %lld steps (ZeRO stage %d), loss %.6f -> %.6f, %lld parameters (%lld mod world), "
               "%d steps clipped at %g\n",
               lt_dist_world(d), (long long)c.steps, c.zero_stage, loss[0], loss[c.steps - 1],
               (long long)lt_params_numel(p), (long long)(lt_params_numel(p) % lt_dist_world(d)), clipped, c.grad_clip);
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

/* ZeRO-1's shard collectives on awkward sizes, each with one-element rounds (8-byte buckets: many rounds) and with the
 * default bucket: 1, 2 and 7 elements (fewer elements than some ranks have shards, a padded last shard) and 1001.
 * Values are small integers, so every sum is exact whatever the reduction order. */
static int check_shards(lt_dist *d) {
    int rank = lt_dist_rank(d), world = lt_dist_world(d), bad = 0;
    const int64_t sizes[] = {1, 2, 7, 1001}, buckets[] = {8, 0};
    for (int si = 0; si < 4; si++)
        for (int bi = 0; bi < 2; bi++) {
            int64_t n = sizes[si];
            lt_params *p = NULL;
            lt_tensor *w, *flat, *grads;
            if (lt_params_create(LT_F32, LT_DEVICE_CPU, &p) != LT_OK || lt_params_add(p, "w", &n, 1, &w) != LT_OK ||
                lt_params_flat(p, &flat, &grads) != LT_OK)
                return fail(rank, "params");
            float *x = lt_tensor_data(flat), *g = lt_tensor_data(grads);
            lt_dist_shard sh;
            if (lt_dist_shard_of(d, n, &sh) != LT_OK) return fail(rank, "lt_dist_shard_of");
            const int64_t lo = sh.offset, hi = sh.offset + sh.count;
            bool ok = sh.shard == (n + world - 1) / world && sh.count >= 0 && sh.count <= sh.shard && hi <= n;
            /* reduce-scatter: rank r holds (r + 1) (i + 1); the sum is world (world + 1) / 2 (i + 1) in the shard */
            for (int64_t i = 0; i < n; i++) g[i] = (float)((rank + 1) * (i + 1));
            ok = ok && lt_dist_reduce_scatter_grads(d, p, buckets[bi], false) == LT_OK;
            for (int64_t i = 0; i < n; i++) {
                float want =
                    i >= lo && i < hi ? (float)(world * (world + 1) / 2 * (i + 1)) : (float)((rank + 1) * (i + 1));
                ok = ok && g[i] == want;
            }
            for (int64_t i = 0; i < n; i++) g[i] = (float)(world * (i + 1));
            ok = ok && lt_dist_reduce_scatter_grads(d, p, buckets[bi], true) == LT_OK;
            for (int64_t i = lo; i < hi; i++) ok = ok && g[i] == (float)(world * (i + 1));
            /* all-gather: each rank knows only its shard (NaN elsewhere); afterwards everyone has all of it */
            for (int64_t i = 0; i < n; i++) x[i] = i >= lo && i < hi ? (float)i * 0.5f + 7 : NAN;
            ok = ok && lt_dist_allgather_params(d, p, buckets[bi]) == LT_OK;
            for (int64_t i = 0; i < n; i++) ok = ok && x[i] == (float)i * 0.5f + 7;
            /* gather to the last rank, then scatter from it */
            const int root = world - 1;
            float *shard = malloc(sizeof(float) * (size_t)(sh.count + 1)), *full = malloc(sizeof(float) * (size_t)n);
            for (int64_t i = 0; i < sh.count; i++) shard[i] = (float)(lo + i) - 3;
            for (int64_t i = 0; i < n; i++) full[i] = NAN;
            ok = ok && lt_dist_gather_shards(d, shard, rank == root ? full : NULL, n, LT_F32, root) == LT_OK;
            for (int64_t i = 0; rank == root && i < n; i++) ok = ok && full[i] == (float)i - 3;
            for (int64_t i = 0; i < n; i++) full[i] = (float)(2 * i + 1);
            for (int64_t i = 0; i < sh.count; i++) shard[i] = NAN;
            ok = ok && lt_dist_scatter_shards(d, rank == root ? full : NULL, shard, n, LT_F32, root) == LT_OK;
            for (int64_t i = 0; i < sh.count; i++) ok = ok && shard[i] == (float)(2 * (lo + i) + 1);
            free(shard);
            free(full);
            lt_params_free(p);
            char what[160];
            snprintf(what, sizeof what,
                     "ZeRO shard collectives on %lld elements (shard %lld: this rank [%lld, +%lld)), %s rounds",
                     (long long)n, (long long)sh.shard, (long long)lo, (long long)sh.count,
                     buckets[bi] ? "one-element" : "default");
            bad |= check(rank, ok, what);
        }
    return bad;
}

/* lt_adamw_create_range against lt_adamw_create on a GPT (whose matrices decay and whose vectors do not): two steps
 * from the same gradients update the range's elements bit for bit alike, across decay runs cut at its edges, and
 * leave every element outside it alone. Ranges: all, one across wpe, ln_1 and c_attn (decay, none, decay), the padded
 * last shard of 3 ranks, a single element, an empty one. */
static int check_adamw_range(int rank) {
    lt_gpt_config mc = {
        .struct_size = sizeof mc, .vocab_size = 256, .block_size = 16, .n_layer = 1, .n_head = 2, .n_embd = 32};
    lt_adamw_config ac = {
        .struct_size = sizeof ac, .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    lt_gpt *a = NULL, *b = NULL;
    if (lt_gpt_create(&mc, LT_F32, LT_DEVICE_CPU, 11, &a) != LT_OK || lt_gpt_create(&mc, LT_F32, LT_DEVICE_CPU, 11, &b))
        return fail(rank, "lt_gpt_create");
    lt_params *pa = lt_gpt_params(a), *pb = lt_gpt_params(b);
    const int64_t n = lt_params_numel(pa);
    lt_tensor *xa, *ga, *xb, *gb;
    lt_params_flat(pa, &xa, &ga);
    lt_params_flat(pb, &xb, &gb);
    float *x0 = malloc(sizeof(float) * (size_t)n);
    memcpy(x0, lt_tensor_data(xa), sizeof(float) * (size_t)n);
    const int64_t ranges[][2] = {{0, n}, {8600, 300}, {(n + 2) / 3 * 2, n - (n + 2) / 3 * 2}, {n / 2, 1}, {n, 0}};
    int bad = 0;
    for (int r = 0; r < 5; r++) {
        memcpy(lt_tensor_data(xa), x0, sizeof(float) * (size_t)n);
        memcpy(lt_tensor_data(xb), x0, sizeof(float) * (size_t)n);
        lt_optim *whole = NULL, *part = NULL;
        int64_t off = -1, cnt = -1;
        bool ok = lt_adamw_create(pa, &ac, &whole) == LT_OK &&
                  lt_adamw_create_range(pb, &ac, ranges[r][0], ranges[r][1], &part) == LT_OK &&
                  lt_optim_range(part, &off, &cnt) == LT_OK && off == ranges[r][0] && cnt == ranges[r][1];
        for (int step = 0; ok && step < 2; step++) {
            float *g1 = lt_tensor_data(ga), *g2 = lt_tensor_data(gb);
            for (int64_t i = 0; i < n; i++) g1[i] = g2[i] = (float)sin(0.37 * (double)i + step);
            ok = lt_optim_step(whole) == LT_OK && lt_optim_step(part) == LT_OK;
        }
        const float *wa = lt_tensor_data(xa), *wb = lt_tensor_data(xb);
        for (int64_t i = 0; ok && i < n; i++) {
            const bool in = i >= ranges[r][0] && i < ranges[r][0] + ranges[r][1];
            ok = in ? memcmp(&wa[i], &wb[i], sizeof(float)) == 0 : wb[i] == x0[i];
        }
        char what[128];
        snprintf(what, sizeof what, "AdamW over [%lld, +%lld) of %lld = AdamW over all of it there, nothing elsewhere",
                 (long long)ranges[r][0], (long long)ranges[r][1], (long long)n);
        bad |= check(rank, ok, what);
        lt_optim_free(whole);
        lt_optim_free(part);
    }
    lt_optim *o = NULL;
    bad |= check(rank,
                 lt_adamw_create_range(pb, &ac, n - 1, 2, &o) == LT_ERR_ARG &&
                     strstr(lt_last_error(), "lt_adamw_create_range") != NULL,
                 "a range past the end is refused, naming the call");
    free(x0);
    lt_gpt_free(a);
    lt_gpt_free(b);
    return bad;
}

/* The deadline's settings: the default (or LIBTRAIN_DIST_TIMEOUT), a new value, bad values refused naming the call. */
static int check_timeout_api(lt_dist *d) {
    int rank = lt_dist_rank(d), bad = 0;
    const char *env = getenv("LIBTRAIN_DIST_TIMEOUT");
    const double start = lt_dist_timeout(d);
    bad |= check(rank, env ? start == atof(env) : start == LT_DIST_DEFAULT_TIMEOUT_SECONDS,
                 "the deadline starts at 60 s or LIBTRAIN_DIST_TIMEOUT");
    bad |= check(rank, lt_dist_set_timeout(d, 0, false) == LT_ERR_ARG && strstr(lt_last_error(), "lt_dist_set_timeout"),
                 "set_timeout refuses 0 seconds, naming itself");
    bad |= check(rank, lt_dist_set_timeout(d, NAN, false) == LT_ERR_ARG, "set_timeout refuses NaN");
    bad |= check(rank, lt_dist_set_timeout(d, 30, false) == LT_OK && lt_dist_timeout(d) == 30, "set_timeout 30 s");
    bad |= check(rank, lt_dist_set_timeout(d, start, false) == LT_OK, "set_timeout back");
    bad |= check(rank, isinf(lt_dist_timeout(NULL)), "one process has no deadline");
    return bad;
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
    /* ZeRO-1's step needs an optimizer of this rank's shard: one of the whole buffer is refused, naming the call */
    lt_adamw_config ac = {.struct_size = sizeof ac, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8};
    lt_optim *whole = NULL;
    st = lt_adamw_create(p, &ac, &whole) == LT_OK ? lt_dist_zero_step(d, p, whole, 0, false, 1.0, NULL) : LT_ERR_STATE;
    bad |= check(rank, world == 1 ? st == LT_OK : st == LT_ERR_ARG && strstr(lt_last_error(), "lt_dist_zero_step"),
                 "zero_step refuses an optimizer that is not of this rank's shard");
    lt_optim_free(whole);
    lt_gpt_free(m);
    bad |= check_shards(d);
    bad |= check_adamw_range(rank);
    bad |= check_timeout_api(d);

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

/* ckpt SHARD TOTAL RUN CKPT_DIR|- RESUME|- OUT ZERO CLIP: RUN steps of a TOTAL-step run of a tiny dropout GPT (1
 * layer: 21472 parameters, 1 mod 3) at ZeRO stage ZERO, resumed from RESUME (STRICT) first and saved to CKPT_DIR
 * after. Rank 0 appends "step loss grad_norm" (hex floats, so runs compare bitwise) to OUT.loss, writes the final
 * parameters raw to OUT.params and prints what the saved file says. For the ZeRO-1 checkpoint tests. */
static int mode_ckpt(int argc, char **argv, lt_dist *d) {
    if (argc != 10) return fprintf(stderr, "usage: ckpt SHARD TOTAL RUN CKPT|- RESUME|- OUT ZERO CLIP\n"), 2;
    int rank = lt_dist_rank(d);
    lt_train_config c;
    tiny_config(&c, argv[2], LT_F32);
    c.model.dropout = 0.1; /* so that each rank's dropout stream must be restored too */
    c.batch_size = 4;
    c.grad_accum = 2;
    c.steps = atoll(argv[3]);
    c.warmup_steps = 5;
    c.seed = 4242;
    c.zero_stage = atoi(argv[8]);
    c.grad_clip = atof(argv[9]);
    c.dist = d;
    if (strcmp(argv[6], "-") != 0) c.resume = argv[6];
    lt_trainer *t = NULL;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail(rank, "lt_trainer_create");
    char path[4096];
    snprintf(path, sizeof path, "%s.loss", argv[7]);
    FILE *losses = rank == 0 ? fopen(path, "a") : NULL;
    if (rank == 0 && !losses) return fprintf(stderr, "dist_tool: cannot write %s\n", path), 1;
    for (int64_t i = 0, n = atoll(argv[4]); i < n && lt_trainer_steps_done(t) < c.steps; i++) {
        lt_train_stats s = {.struct_size = sizeof s};
        if (lt_trainer_step(t, &s) != LT_OK) return fail(rank, "lt_trainer_step");
        if (losses) fprintf(losses, "%lld %a %a\n", (long long)s.step, s.loss, s.grad_norm);
    }
    if (losses) fclose(losses);
    if (strcmp(argv[5], "-") != 0) {
        if (lt_trainer_save(t, argv[5], 2) != LT_OK) return fail(rank, "lt_trainer_save");
        lt_ckpt_info info = {.struct_size = sizeof info};
        if (rank == 0 && lt_ckpt_validate(argv[5], NULL, &info) != LT_OK) return fail(rank, "lt_ckpt_validate");
        if (rank == 0)
            printf("saved step %lld: world_size %d, zero_stage %d, %lld parameters\n", (long long)info.step,
                   info.world_size, info.zero_stage, (long long)info.numel);
    }
    lt_params *p = lt_gpt_params(lt_trainer_model(t));
    if (d && lt_dist_check_params_equal(d, p) != LT_OK) return fail(rank, "replicas differ");
    if (rank == 0) {
        lt_tensor *flat;
        lt_params_flat(p, &flat, NULL);
        snprintf(path, sizeof path, "%s.params", argv[7]);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(lt_tensor_data(flat), sizeof(float), (size_t)lt_tensor_numel(flat), f) !=
                      (size_t)lt_tensor_numel(flat))
            return fprintf(stderr, "dist_tool: cannot write %s\n", path), 1;
        fclose(f);
    }
    lt_trainer_free(t);
    return 0;
}

/* Writes DIR/NAME holding the wall-clock time (CLOCK_REALTIME seconds, as date +%s.%N), for the script's clock. */
static void stamp(const char *dir, const char *name) {
    char path[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec), fclose(f);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* hang SHARD DIR TIMEOUT return|abort: every rank trains with a deadline of TIMEOUT seconds; before step 4 the last
 * rank writes DIR/stopped and stops itself (SIGSTOP: it stops calling collectives, and cannot answer or die). With
 * "return" each other rank must get LT_ERR_BACKEND from lt_trainer_step after TIMEOUT seconds (not much more), with a
 * message naming the call, the time and the rank, and a later call must fail at once; it then exits 3 (detected) and
 * mpirun ends the job. With "abort" the library ends the job itself (MPI_Abort): returning is a failure. */
static int mode_hang(int argc, char **argv, lt_dist *d) {
    if (argc != 6 || !d) return fprintf(stderr, "usage: mpirun ... hang SHARD DIR TIMEOUT return|abort\n"), 2;
    int rank = lt_dist_rank(d), world = lt_dist_world(d);
    const double timeout = atof(argv[4]);
    const bool abort_mode = strcmp(argv[5], "abort") == 0;
    if (lt_dist_set_timeout(d, timeout, abort_mode) != LT_OK) return fail(rank, "lt_dist_set_timeout");
    lt_train_config c;
    tiny_config(&c, argv[2], LT_F32);
    c.batch_size = 2;
    c.steps = 1000;
    c.dist = d;
    lt_trainer *t = NULL;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail(rank, "lt_trainer_create");
    for (int step = 1; step <= 3; step++)
        if (lt_trainer_step(t, NULL) != LT_OK) return fail(rank, "lt_trainer_step before the hang");
    if (rank == world - 1) {
        printf("rank %d: stopping itself before step 4\n", rank);
        fflush(stdout);
        stamp(argv[3], "stopped");
        raise(SIGSTOP); /* mpirun kills it (SIGCONT, SIGTERM, SIGKILL) when the job ends */
        _exit(1);       /* continued by mpirun on its way to ending the job: leave at once */
    }
    const double t0 = now_s();
    lt_status st = lt_trainer_step(t, NULL);
    const double waited = now_s() - t0;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lt_last_error());
    printf("rank %d: step 4 returned %s after %.2f s: %s\n", rank, lt_status_name(st), waited, msg);
    char me[64];
    snprintf(me, sizeof me, "rank %d of %d timed out after", rank, world);
    int bad = 0;
    bad |= check(rank, !abort_mode, "the library returned, as abort_on_timeout is off");
    bad |= check(rank, st == LT_ERR_BACKEND && strstr(msg, me) && strstr(msg, "lt_dist_") && strstr(msg, " in MPI_"),
                 "LT_ERR_BACKEND naming the call, the MPI operation, this rank and the time");
    bad |= check(rank, waited >= timeout && waited < timeout + 5, "returned after the deadline and not much later");
    st = lt_dist_barrier(d);
    bad |= check(rank, st == LT_ERR_STATE && strstr(lt_last_error(), "timed out earlier"),
                 "a later call fails at once: the communicator is unusable");
    lt_trainer_free(t);
    fflush(stdout);
    sleep(2); /* the first rank to exit makes mpirun end the job: let every waiting rank report first */
    return bad ? 1 : 3;
}

/* stuck DIR TIMEOUT: a bug that the gate cannot see: every rank enters a broadcast of 1 MiB (a bulk transfer), but each
 * names itself the root, so all send and none receives. With abort_on_timeout, each rank's watchdog must end it after
 * TIMEOUT seconds with a message (exit 124); returning is a failure. DIR/entered is written first. */
static int mode_stuck(int argc, char **argv, lt_dist *d) {
    if (argc != 4 || !d) return fprintf(stderr, "usage: mpirun ... stuck DIR TIMEOUT\n"), 2;
    int rank = lt_dist_rank(d);
    if (lt_dist_set_timeout(d, atof(argv[3]), true) != LT_OK) return fail(rank, "lt_dist_set_timeout");
    const size_t n = (size_t)1 << 20;
    char *buf = calloc(n, 1);
    if (rank == 0) stamp(argv[2], "entered");
    lt_status st = lt_dist_broadcast(d, buf, (int64_t)n, rank);
    printf("rank %d: the mismatched broadcast returned %s: %s\n", rank, lt_status_name(st), lt_last_error());
    free(buf);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return fprintf(stderr, "usage: dist_tool tokenize|train|compare|collectives|run|ckpt|hang|stuck ...\n"), 2;
    if (strcmp(argv[1], "compare") == 0) return mode_compare(argc, argv);
    if (strcmp(argv[1], "tokenize") == 0 && argc == 4)
        return lt_tokenize_bytes(argv[2], argv[3]) == LT_OK ? 0 : fail(0, "lt_tokenize_bytes");
    lt_dist *d = NULL;
    if (getenv("OMPI_COMM_WORLD_SIZE") && lt_dist_init_mpi(NULL, &d) != LT_OK) return fail(-1, "lt_dist_init_mpi");
    int rc = 2;
    if (strcmp(argv[1], "train") == 0) rc = mode_train(argc, argv, d);
    if (strcmp(argv[1], "collectives") == 0) rc = mode_collectives(argc, argv, d);
    if (strcmp(argv[1], "run") == 0) rc = mode_run(argc, argv, d);
    if (strcmp(argv[1], "ckpt") == 0) rc = mode_ckpt(argc, argv, d);
    if (strcmp(argv[1], "hang") == 0) rc = mode_hang(argc, argv, d);
    if (strcmp(argv[1], "stuck") == 0) rc = mode_stuck(argc, argv, d);
    lt_dist_free(d);
    return rc;
}
