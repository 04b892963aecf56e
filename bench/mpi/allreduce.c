/* Bus bandwidth of libtrain's bucketed gradient all-reduce (lt_dist_allreduce_grads, averaging and summing) beside a
 * raw in-place MPI_Allreduce of the same float buffer, 1 MB to 256 MB, printed by rank 0 with the ratios.
 * Usage: mpirun -np N bench/mpi/allreduce [--max-mb M] [--iters K] */
#include <libtrain/libtrain.h>

#include "../../examples/options.h"

#include <mpi.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of iters calls of f(ctx), each started together on every rank. */
static double median_time(int iters, void (*f)(void *), void *ctx, double *scratch) {
    for (int i = 0; i < iters; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        f(ctx);
        scratch[i] = MPI_Wtime() - t0;
    }
    qsort(scratch, (size_t)iters, sizeof *scratch, cmp);
    return scratch[iters / 2];
}

typedef struct run {
    lt_dist *d;
    lt_params *p;
    float *raw;
    int64_t n;
    bool average;
} run;

static void lib_call(void *ctx) {
    run *r = ctx;
    if (lt_dist_allreduce_grads(r->d, r->p, 0, r->average) != LT_OK)
        fprintf(stderr, "allreduce: %s\n", lt_last_error());
}

static void raw_call(void *ctx) {
    run *r = ctx;
    MPI_Allreduce(MPI_IN_PLACE, r->raw, (int)r->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
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
    double *scratch = malloc(sizeof(double) * (size_t)iters);
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
        r.average = true;
        double tm = median_time((int)iters, lib_call, &r, scratch);
        r.average = false; /* what the trainer runs: its loss is already scaled by 1/world */
        double ts = median_time((int)iters, lib_call, &r, scratch), tr = median_time((int)iters, raw_call, &r, scratch);
        double bus = 2.0 * (world - 1) / world * (double)(r.n * 4) / 1e9;
        if (rank == 0)
            printf("| %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %.0f%% |\n", (long long)mb, 1e3 * tm, 1e3 * ts,
                   1e3 * tr, bus / ts, bus / tr, 100 * tr / tm, 100 * tr / ts);
        lt_params_free(r.p);
        free(r.raw);
    }
    free(scratch);
    lt_dist_free(d);
    return 0;
}
