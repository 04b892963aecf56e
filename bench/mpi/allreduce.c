/* Bus bandwidth of libtrain's bucketed gradient all-reduce (lt_dist_allreduce_grads, averaging and summing) beside a
 * raw in-place MPI_Allreduce of the same float buffer, 1 MB to 256 MB, printed by rank 0 with the ratios; then ZeRO-1's
 * pair (lt_dist_reduce_scatter_grads + lt_dist_allgather_params) beside raw MPI_Reduce_scatter_block + MPI_Allgather.
 * The library's calls include their deadline (a polled MPI_Ibarrier before each bucket or round).
 * Usage: mpirun -np N bench/mpi/allreduce [--max-mb M] [--iters K] */
#include <libtrain/libtrain.h>

#include "../../examples/options.h"

#include <mpi.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of iters calls of each of the n functions (n <= 4) into out[], each call started together on every
 * rank. The functions take turns, call by call, so that a machine whose load drifts (other jobs on shared cores)
 * slows them alike and their ratios stay meaningful. */
typedef void (*bench_fn)(void *);
static void median_times(int iters, const bench_fn *f, int n, void *ctx, double *scratch, double *out) {
    for (int i = 0; i < iters; i++)
        for (int k = 0; k < n; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            f[k](ctx);
            scratch[k * iters + i] = MPI_Wtime() - t0;
        }
    for (int k = 0; k < n; k++) {
        qsort(scratch + k * iters, (size_t)iters, sizeof *scratch, cmp);
        out[k] = scratch[k * iters + iters / 2];
    }
}

typedef struct run {
    lt_dist *d;
    lt_params *p;
    float *raw, *raw_shard; /* raw: padded to world * shard floats */
    int64_t n, shard;
    bool average;
} run;

static void lib_call(void *ctx) {
    run *r = ctx;
    if (lt_dist_allreduce_grads(r->d, r->p, 0, r->average) != LT_OK)
        fprintf(stderr, "allreduce: %s\n", lt_last_error());
}

static void lib_mean_call(void *ctx) {
    ((run *)ctx)->average = true;
    lib_call(ctx);
}

static void lib_sum_call(void *ctx) { /* what the trainer runs: its loss is already scaled by 1/world */
    ((run *)ctx)->average = false;
    lib_call(ctx);
}

static void raw_call(void *ctx) {
    run *r = ctx;
    MPI_Allreduce(MPI_IN_PLACE, r->raw, (int)r->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static void zero_call(void *ctx) {
    run *r = ctx;
    if (lt_dist_reduce_scatter_grads(r->d, r->p, 0, false) != LT_OK || lt_dist_allgather_params(r->d, r->p, 0) != LT_OK)
        fprintf(stderr, "zero: %s\n", lt_last_error());
}

static void raw_zero_call(void *ctx) {
    run *r = ctx;
    MPI_Reduce_scatter_block(r->raw, r->raw_shard, (int)r->shard, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allgather(r->raw_shard, (int)r->shard, MPI_FLOAT, r->raw, (int)r->shard, MPI_FLOAT, MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    int64_t max_mb = 256, iters = 5;
    const opt table[] = {
        {"--max-mb", OPT_INT, &max_mb, 1, 4096, "largest buffer in MB (sizes double from 1 MB)"},
        {"--iters", OPT_INT, &iters, 1, 1000, "timed calls per size (the median is shown)"},
    };
    int rc = opt_parse(argc, argv, "Bus bandwidth of the gradient all-reduce beside raw MPI_Allreduce.", table,
                       (int)(sizeof table / sizeof table[0]));
    if (rc) return rc == 1 ? 0 : rc;
    lt_dist *d;
    if (lt_dist_init_mpi(NULL, &d) != LT_OK) {
        fprintf(stderr, "allreduce: %s\n", lt_last_error());
        return 1;
    }
    int rank = lt_dist_rank(d), world = lt_dist_world(d);
    double *scratch = malloc(sizeof(double) * 4 * (size_t)iters);
    if (rank == 0) {
        printf("%d ranks; bus bandwidth = 2 (p-1)/p * bytes / time, median of %lld calls\n\n", world, (long long)iters);
        printf(
            "| size MB | libtrain mean ms | libtrain sum ms | raw MPI_Allreduce ms | sum GB/s | raw GB/s | mean / raw "
            "| sum / raw |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
    }
    for (int64_t mb = 1; mb <= max_mb; mb *= 2) {
        run r = {.d = d, .n = mb * (1 << 20) / 4};
        lt_tensor *w;
        if (lt_params_create(LT_F32, LT_DEVICE_CPU, &r.p) != LT_OK || lt_params_add(r.p, "w", &r.n, 1, &w) != LT_OK ||
            !(r.raw = calloc((size_t)r.n, sizeof(float)))) {
            fprintf(stderr, "allreduce: %s\n", lt_last_error());
            return 1;
        }
        lib_call(&r); /* warm up both paths (and the pages) once */
        raw_call(&r);
        double t[3];
        median_times((int)iters, (const bench_fn[]){lib_mean_call, lib_sum_call, raw_call}, 3, &r, scratch, t);
        const double tm = t[0], ts = t[1], tr = t[2];
        double bus = 2.0 * (world - 1) / world * (double)(r.n * 4) / 1e9;
        if (rank == 0)
            printf("| %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %.0f%% |\n", (long long)mb, 1e3 * tm, 1e3 * ts,
                   1e3 * tr, bus / ts, bus / tr, 100 * tr / tm, 100 * tr / ts);
        lt_params_free(r.p);
        free(r.raw);
    }
    if (rank == 0) {
        printf("\nZeRO-1: reduce-scatter of the gradients + all-gather of the parameters (the same bus traffic)\n\n");
        printf("| size MB | libtrain rs+ag ms | raw MPI rs+ag ms | libtrain GB/s | raw GB/s | libtrain / raw |\n");
        printf("|---|---|---|---|---|---|\n");
    }
    for (int64_t mb = 1; mb <= max_mb; mb *= 2) {
        run r = {.d = d, .n = mb * (1 << 20) / 4};
        r.shard = (r.n + world - 1) / world;
        lt_tensor *w;
        if (lt_params_create(LT_F32, LT_DEVICE_CPU, &r.p) != LT_OK || lt_params_add(r.p, "w", &r.n, 1, &w) != LT_OK ||
            !(r.raw = calloc((size_t)(r.shard * world), sizeof(float))) ||
            !(r.raw_shard = calloc((size_t)r.shard, sizeof(float)))) {
            fprintf(stderr, "allreduce: %s\n", lt_last_error());
            return 1;
        }
        zero_call(&r);
        raw_zero_call(&r);
        double t[2];
        median_times((int)iters, (const bench_fn[]){zero_call, raw_zero_call}, 2, &r, scratch, t);
        const double tz = t[0], tr = t[1];
        double bus = 2.0 * (world - 1) / world * (double)(r.n * 4) / 1e9;
        if (rank == 0)
            printf("| %lld | %.2f | %.2f | %.2f | %.2f | %.0f%% |\n", (long long)mb, 1e3 * tz, 1e3 * tr, bus / tz,
                   bus / tr, 100 * tr / tz);
        lt_params_free(r.p);
        free(r.raw);
        free(r.raw_shard);
    }
    free(scratch);
    lt_dist_free(d);
    return 0;
}
