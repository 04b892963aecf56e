/* Data parallelism on GPUs (src/dist/nccl.c) under mpirun, one GPU per rank. Linked with libtrain_emu it runs on the
 * emulator, whose NCCL is MPI underneath (cuda/emu/nccl.cpp; labels cuda and mpi): every rank is a process with its
 * own emulated cuda:0. Linked with libtrain.so in a CUDA build with NCCL (test_gpu_nccl, labels gpu and mpi) it runs
 * on real GPUs, with one rank on a machine that has one GPU (tools/gpu-check.sh).
 *
 *   mpirun -np N test_cuda_nccl collectives DIR     init (and its checks), broadcast, the all-reduce against known
 *                                                   values, the params check, a GPU trainer from different seeds
 *   mpirun -np 2 test_cuda_nccl equivalence DIR     2 ranks x B on the GPU = 1 process x 2B on the CPU (rank 0 runs
 *                                                   the reference), f64 within 1e-5 relative; f32 printed
 *   mpirun -np 2 test_cuda_nccl same_gpu DIR        with LT_EMU_SAME_GPU=1: "two ranks on one GPU" on every rank
 *   mpirun -np 2 test_cuda_nccl failure DIR SECS    with LT_EMU_NCCL_FAIL=1:allreduce:2 and a deadline of SECS: the
 *                                                   second step fails on every rank, rank 1 at once with NCCL's
 *                                                   error, rank 0 at the deadline; the time is asserted
 *   mpirun -np 2 test_cuda_nccl failure_init DIR SECS   with LT_EMU_NCCL_FAIL=1:init:1: lt_dist_init_nccl fails
 *                                                   alike (rank 1 at once, rank 0 at the deadline)
 *
 * DIR holds the token shard that rank 0 writes first. Each rank prints its checks and "N passed, N failed", and exits
 * non-zero on a failed check; exit 77 (skip) when cuda:0 is not usable. Public API only. */
#include "../mpi/tiny_config.h"
#include "cuda_check.h"

#include <time.h>
#include <unistd.h>

static lt_dist *g_d;
static int g_rank, g_world;
static char g_shard[4096];
static lt_device g_gpu;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rank 0 writes about 60 KB of made-up sentences and tokenizes them (tests/mpi/make_data.sh's generator); the others
 * wait for it. */
static lt_status make_shard(const char *dir) {
    char text[4096];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(g_shard, sizeof g_shard, "%s/text.bin", dir);
    lt_status st = LT_OK;
    if (g_rank == 0) {
        static const char *w[16] = {"the",   "a",     "one",  "every", "some",   "rank",   "model",  "step",
                                    "batch", "token", "loss", "grad",  "buffer", "bucket", "signal", "node"};
        static const char *v[10] = {"reads", "writes", "sends", "keeps",  "averages",
                                    "stops", "trains", "holds", "learns", "waits"};
        FILE *f = fopen(text, "w");
        uint64_t s = 12345;
        for (int i = 0; f && i < 2400; i++) {
            s = (s * 1103515245 + 12345) % 2147483648u;
            const char *a = w[s % 16];
            s = (s * 1103515245 + 12345) % 2147483648u;
            const char *b = v[s % 10];
            s = (s * 1103515245 + 12345) % 2147483648u;
            fprintf(f, "%s %s %s.%s", a, b, w[s % 16], i % 7 == 6 ? "\n" : " ");
        }
        if (!f || fclose(f) != 0) fprintf(stderr, "rank 0: cannot write %s\n", text);
        st = lt_tokenize_bytes(text, g_shard);
    }
    double ok = st == LT_OK;
    lt_status rs = lt_dist_allreduce_scalar(g_d, &ok, LT_DIST_MIN);
    return st != LT_OK ? st : rs != LT_OK ? rs : ok == 1 ? LT_OK : LT_ERR_IO;
}

/* The data-parallel tests' tiny model and schedule (tests/mpi/tiny_config.h) on g_shard. */
static void tiny_config(lt_train_config *c, lt_dtype dtype, lt_device device) {
    lt_test_tiny_config(c, g_shard, dtype, device);
}

static lt_gpt_config gpt_config(void) {
    return (lt_gpt_config){.struct_size = sizeof(lt_gpt_config),
                           .vocab_size = 256,
                           .block_size = 16,
                           .n_layer = 1,
                           .n_head = 2,
                           .n_embd = 32};
}

/* ---- collectives ---- */

static void test_init(void) {
    lt_device cpu = LT_DEVICE_CPU, gpu = g_gpu;
    CHECK_ERR(lt_dist_init_nccl(g_d, &cpu), LT_ERR_DEVICE, "lt_dist_init_nccl");
    CHECK_ERR(lt_dist_init_nccl(NULL, &gpu), LT_ERR_ARG, "lt_dist_init_nccl");
    CHECK_OK(lt_dist_init_nccl(g_d, &gpu));
    CHECK(gpu.type == LT_CUDA && gpu.index == g_gpu.index);
    /* Again: the same communicator (index -1 means "the one it has"). */
    lt_device again = {LT_CUDA, -1};
    CHECK_OK(lt_dist_init_nccl(g_d, &again));
    CHECK(again.index == g_gpu.index);
    lt_device other = {LT_CUDA, g_gpu.index + 1};
    CHECK_ERR(lt_dist_init_nccl(g_d, &other), LT_ERR_STATE, "already uses cuda:");
}

/* Models from different seeds differ and the check says which rank; after the NCCL broadcast they are equal and
 * hold rank 0's values. */
static void test_broadcast(void) {
    lt_gpt_config mc = gpt_config();
    lt_gpt *m = NULL, *ref = NULL;
    CHECK_OK(lt_gpt_create(&mc, LT_F32, g_gpu, 7 + (uint64_t)g_rank, &m));
    CHECK_OK(lt_gpt_create(&mc, LT_F32, LT_DEVICE_CPU, 7, &ref)); /* rank 0's model, made on the CPU */
    lt_params *p = lt_gpt_params(m);
    lt_status st = lt_dist_check_params_equal(g_d, p);
    CHECK(g_world == 1 || (st == LT_ERR_STATE && strstr(lt_last_error(), "rank 1's parameters differ")));
    CHECK_OK(lt_dist_broadcast_params(g_d, p));
    CHECK_OK(lt_dist_check_params_equal(g_d, p));
    lt_tensor *flat, *grads, *rflat, *rgrads;
    CHECK_OK(lt_params_flat(p, &flat, &grads));
    CHECK_OK(lt_params_flat(lt_gpt_params(ref), &rflat, &rgrads));
    CHECK(tc_same("parameters after the broadcast = rank 0's (Philox init on the CPU)", flat, rflat, 1e-6, 1e-6));
    lt_gpt_free(m);
    lt_gpt_free(ref);
}

/* Rank r holds g_i = sin(i) * (r + 1) + i * 1e-3; the mean is sin(i) * (world + 1) / 2 + i * 1e-3. 100-byte buckets
 * (25 floats, or 12.5 doubles: 12) leave a partial last bucket. */
static void allreduce_case(lt_dtype dtype, int64_t bucket_bytes, bool average) {
    lt_gpt_config mc = gpt_config();
    lt_gpt *m = NULL;
    CHECK_OK(lt_gpt_create(&mc, dtype, g_gpu, 7, &m));
    lt_tensor *flat, *grads;
    CHECK_OK(lt_params_flat(lt_gpt_params(m), &flat, &grads));
    int64_t n = lt_tensor_numel(grads), shape[1] = {n};
    double *g = malloc(sizeof *g * (size_t)n);
    for (int64_t i = 0; i < n; i++) g[i] = sin((double)i) * (g_rank + 1) + (double)i * 1e-3;
    lt_tensor *host;
    CHECK_OK(lt_tensor_from_host(g, shape, 1, LT_F64, LT_DEVICE_CPU, &host));
    CHECK_OK(lt_tensor_copy(grads, host));
    double t0 = now();
    CHECK_OK(lt_dist_allreduce_grads(g_d, lt_gpt_params(m), bucket_bytes, average));
    double dt = now() - t0;
    double *got = tt_values(grads), worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double mean = sin((double)i) * (g_world + 1) / 2.0 + (double)i * 1e-3, want = average ? mean : mean * g_world;
        worst = fmax(worst, fabs(got[i] - want) / fmax(1e-3, fabs(want)));
    }
    printf("rank %d: %s %lld gradients, %lld-byte buckets, %s: worst rel err %.3g (%.3f s)\n", g_rank,
           lt_dtype_name(dtype), (long long)n, (long long)bucket_bytes, average ? "mean" : "sum", worst, dt);
    CHECK(worst < (dtype == LT_F32 ? 1e-5 : 1e-12));
    free(g);
    free(got);
    lt_gpt_free(m);
}

static void test_allreduce(void) {
    allreduce_case(LT_F32, 100, true);
    allreduce_case(LT_F32, 0, false);
    allreduce_case(LT_F64, 100, false);
    allreduce_case(LT_F64, 1 << 20, true);
    CHECK_ERR(lt_dist_allreduce_grads(g_d, NULL, 0, true), LT_ERR_ARG, "lt_dist_allreduce_grads");
}

/* A GPU trainer on ranks started with different seeds holds rank 0's parameters from the start, and steps. */
static void test_trainer(void) {
    lt_train_config c;
    tiny_config(&c, LT_F32, g_gpu);
    c.seed = 100 + (uint64_t)g_rank * 17;
    c.batch_size = 2;
    c.steps = 2;
    c.dist = g_d;
    lt_trainer *t = NULL;
    CHECK_OK(lt_trainer_create(&c, &t));
    lt_params *p = lt_gpt_params(lt_trainer_model(t));
    CHECK_OK(lt_dist_check_params_equal(g_d, p));
    lt_train_stats s = {.struct_size = sizeof s};
    CHECK_OK(lt_trainer_step(t, &s));
    CHECK_OK(lt_trainer_step(t, &s));
    CHECK_OK(lt_dist_check_params_equal(g_d, p));
    printf("rank %d: GPU trainer of %d ranks: 2 steps, loss %.4f, norm %.4f\n", g_rank, g_world, s.loss, s.grad_norm);
    CHECK(isfinite(s.loss) && s.grad_norm > 0);
    lt_trainer_free(t);
}

/* ---- equivalence: 2 ranks x B on the GPU against 1 process x 2B on the CPU ---- */

enum { EQ_B = 4, EQ_STEPS = 8 };

/* Trains STEPS steps; losses into loss[], final parameters (f64, on the host) into *params (malloc'd). */
static lt_status train(lt_dtype dtype, lt_device device, int64_t batch, lt_dist *d, double *loss, double **params,
                       int64_t *n) {
    lt_train_config c;
    tiny_config(&c, dtype, device);
    c.batch_size = batch;
    c.steps = EQ_STEPS;
    c.seed = 1234 + (uint64_t)lt_dist_rank(d) * 1000; /* different on every rank: rank 0's wins */
    c.bucket_bytes = 1000;                            /* many buckets, a partial last one */
    c.dist = d;
    lt_trainer *t = NULL;
    lt_status st = lt_trainer_create(&c, &t);
    for (int s = 0; st == LT_OK && s < EQ_STEPS; s++) {
        lt_train_stats stats = {.struct_size = sizeof stats};
        st = lt_trainer_step(t, &stats);
        loss[s] = stats.loss;
    }
    lt_tensor *flat, *grads, *f64 = NULL;
    lt_params *p = t ? lt_gpt_params(lt_trainer_model(t)) : NULL;
    if (st == LT_OK && d) st = lt_dist_check_params_equal(d, p);
    if (st == LT_OK) st = lt_params_flat(p, &flat, &grads);
    if (st == LT_OK) st = lt_tensor_to(flat, LT_F64, LT_DEVICE_CPU, &f64);
    if (st == LT_OK) {
        *n = lt_tensor_numel(f64);
        *params = malloc(sizeof(double) * (size_t)*n);
        memcpy(*params, lt_tensor_data(f64), sizeof(double) * (size_t)*n);
    }
    lt_trainer_free(t); /* f64 belongs to the test's scope (RUN) */
    return st;
}

/* Largest |a - b| / max(|a|, |b|, 1e-6) (dist_tool's measure: the floor is for the attention's key bias, whose
 * gradient is zero in exact arithmetic and which holds rounding noise). */
static double max_rel(const double *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / fmax(1e-6, fmax(fabs(a[i]), fabs(b[i])));
        if (!(r <= m)) m = r;
    }
    return m;
}

static void equivalence_case(lt_dtype dtype, double rtol) {
    double loss2[EQ_STEPS], loss1[EQ_STEPS], *p2 = NULL, *p1 = NULL;
    int64_t n2 = 0, n1 = 0;
    double t0 = now();
    CHECK_OK(train(dtype, g_gpu, EQ_B, g_d, loss2, &p2, &n2));
    double t_gpu = now() - t0;
    if (g_rank == 0) {
        t0 = now();
        CHECK_OK(train(dtype, LT_DEVICE_CPU, (int64_t)g_world * EQ_B, NULL, loss1, &p1, &n1));
        CHECK(n1 == n2);
        double rl = max_rel(loss1, loss2, EQ_STEPS), rp = n1 == n2 ? max_rel(p1, p2, n1) : INFINITY;
        printf("rank 0: %s, %d steps: %d ranks x %d on cuda (%.1f s) vs 1 process x %d on the CPU (%.1f s): losses "
               "%.4f -> %.4f, max rel diff %.3g; %lld parameters, max rel diff %.3g%s\n",
               lt_dtype_name(dtype), EQ_STEPS, g_world, EQ_B, t_gpu, g_world * EQ_B, now() - t0, loss1[0],
               loss1[EQ_STEPS - 1], rl, (long long)n1, rp, rtol > 0 ? "" : " (recorded, not asserted)");
        CHECK(loss1[EQ_STEPS - 1] < loss1[0]); /* it learned */
        if (rtol > 0) CHECK(rl <= rtol && rp <= rtol);
    }
    free(p1);
    free(p2);
}

static void test_equivalence_f64(void) { equivalence_case(LT_F64, 1e-5); }
/* f32: the key bias's rounding noise makes elementwise relative differences large where values are ~1e-7, so the
 * parameters are printed, not asserted; the losses must still agree. */
static void test_equivalence_f32(void) { equivalence_case(LT_F32, 0); }

/* ---- same_gpu: LT_EMU_SAME_GPU=1 makes every emulated device report the same PCI id ---- */

static void test_same_gpu(void) {
    lt_device gpu = g_gpu;
    CHECK_ERR(lt_dist_init_nccl(g_d, &gpu), LT_ERR_DEVICE, "ranks 0 and 1 would share one GPU");
    printf("rank %d: %s\n", g_rank, lt_last_error());
    lt_train_config c;
    tiny_config(&c, LT_F32, g_gpu);
    c.batch_size = 2;
    c.steps = 1;
    c.dist = g_d;
    lt_trainer *t = NULL;
    CHECK_ERR(lt_trainer_create(&c, &t), LT_ERR_DEVICE, "ranks 0 and 1 would share one GPU");
    CHECK(t == NULL);
}

/* ---- failure: rank 1's second all-reduce fails (LT_EMU_NCCL_FAIL=1:allreduce:2) ---- */

static double g_timeout = 3;

static void test_failure(void) {
    CHECK_OK(lt_dist_set_timeout(g_d, g_timeout, false));
    lt_train_config c;
    tiny_config(&c, LT_F32, g_gpu);
    c.batch_size = 2;
    c.steps = 5;
    c.dist = g_d;
    lt_trainer *t = NULL;
    CHECK_OK(lt_trainer_create(&c, &t)); /* the broadcast is not an all-reduce: it passes */
    lt_train_stats s = {.struct_size = sizeof s};
    double t0 = now();
    CHECK_OK(lt_trainer_step(t, &s)); /* all-reduce #1 */
    const double step = now() - t0;   /* forward and backward take about this long again before all-reduce #2 */
    t0 = now();
    lt_status st = lt_trainer_step(t, &s); /* #2: injected on rank 1 */
    double dt = now() - t0;
    printf("rank %d: step 1 took %.2f s; step 2 returned %s after %.2f s: %s\n", g_rank, step, lt_status_name(st), dt,
           lt_last_error());
    CHECK(st == LT_ERR_BACKEND);
    char name[32];
    snprintf(name, sizeof name, "rank %d of %d", g_rank, g_world);
    CHECK(strstr(lt_last_error(), name) && strstr(lt_last_error(), "ncclAllReduce") &&
          strstr(lt_last_error(), "lt_dist_allreduce_grads") && strstr(lt_last_error(), "aborted"));
    if (g_rank == 1) { /* its own failure, at once, in NCCL's words */
        CHECK(strstr(lt_last_error(), "remote process exited or there was a network error") &&
              strstr(lt_last_error(), "injected"));
        CHECK(dt < 2 * step + 0.5);
    } else { /* waiting for rank 1 until the deadline, and no longer */
        CHECK(strstr(lt_last_error(), "timed out after"));
        CHECK(dt >= 0.9 * g_timeout && dt < g_timeout + 2 * step + 2.0);
    }
    /* The communicator stays aborted: GPU collectives fail at once, naming the first failure; so does the trainer. */
    lt_params *p = lt_gpt_params(lt_trainer_model(t));
    t0 = now();
    CHECK_ERR(lt_dist_allreduce_grads(g_d, p, 0, false), LT_ERR_STATE, "was aborted after an earlier failure");
    CHECK(now() - t0 < 0.5);
    CHECK_ERR(lt_dist_broadcast_params(g_d, p), LT_ERR_STATE, "was aborted after an earlier failure");
    CHECK_ERR(lt_trainer_step(t, &s), LT_ERR_STATE, "was aborted after an earlier failure");
    lt_trainer_free(t);
    /* MPI is unharmed: the ranks meet again (a longer deadline, since rank 1 got here a deadline earlier). */
    CHECK_OK(lt_dist_set_timeout(g_d, 60, false));
    CHECK_OK(lt_dist_barrier(g_d));
}

/* ---- failure_init: rank 1's communicator fails to start (LT_EMU_NCCL_FAIL=1:init:1) ---- */

static void test_failure_init(void) {
    CHECK_OK(lt_dist_set_timeout(g_d, g_timeout, false));
    lt_device gpu = g_gpu;
    double t0 = now();
    lt_status st = lt_dist_init_nccl(g_d, &gpu);
    double dt = now() - t0;
    printf("rank %d: lt_dist_init_nccl returned %s after %.2f s: %s\n", g_rank, lt_status_name(st), dt,
           lt_last_error());
    CHECK(st == LT_ERR_BACKEND && strstr(lt_last_error(), "ncclCommInitRankConfig"));
    if (g_rank == 1) {
        CHECK(strstr(lt_last_error(), "injected") && dt < 1.0);
    } else {
        CHECK(strstr(lt_last_error(), "timed out after") && dt >= 0.9 * g_timeout && dt < g_timeout + 2.0);
    }
    /* No communicator was kept: a GPU all-reduce tries to make one again (not done here: the emulator's NCCL cannot
     * start a second communicator while the first one's MPI_Comm_idup is abandoned on rank 0). MPI still works. */
    CHECK_OK(lt_dist_set_timeout(g_d, 60, false));
    CHECK_OK(lt_dist_barrier(g_d));
}

int main(int argc, char **argv) {
    if (argc < 3)
        return fprintf(stderr,
                       "usage: mpirun -np N %s collectives|equivalence|same_gpu|failure|failure_init DIR [SECS]\n",
                       argv[0]),
               2;
    const char *mode = argv[1];
    if (strncmp(mode, "failure", 7) == 0 && argc > 3) g_timeout = atof(argv[3]);
    if (lt_dist_init_mpi(NULL, &g_d) != LT_OK) return fprintf(stderr, "lt_dist_init_mpi: %s\n", lt_last_error()), 1;
    g_rank = lt_dist_rank(g_d);
    g_world = lt_dist_world(g_d);
    /* Each rank's own GPU: its cuda:0 under the emulator (a process each), cuda:<local rank> on real GPUs. Without
     * one every rank skips alike (exit 77). */
    g_gpu = (lt_device){LT_CUDA, 0};
#ifndef LT_TEST_EMULATED_GPU
    g_gpu.index = lt_dist_local_rank(g_d);
#endif
    if (lt_device_check(g_gpu) != LT_OK) {
        printf("SKIP: rank %d: %s\n", g_rank, lt_last_error());
        lt_dist_free(g_d);
        return 77;
    }
    if (make_shard(argv[2]) != LT_OK) {
        fprintf(stderr, "rank %d: no token shard: %s\n", g_rank, lt_last_error());
        lt_dist_free(g_d);
        return 1;
    }
    if (strcmp(mode, "collectives") == 0) {
        RUN(test_init);
        RUN(test_broadcast);
        RUN(test_allreduce);
        RUN(test_trainer);
    } else if (strcmp(mode, "equivalence") == 0) {
        RUN(test_equivalence_f64);
        RUN(test_equivalence_f32);
    } else if (strcmp(mode, "same_gpu") == 0) {
        RUN(test_same_gpu);
    } else if (strcmp(mode, "failure") == 0) {
        RUN(test_failure);
    } else if (strcmp(mode, "failure_init") == 0) {
        RUN(test_failure_init);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        tt_failed_checks++;
    }
    int rc = tt_finish();
    lt_dist_free(g_d);
    return rc;
}
