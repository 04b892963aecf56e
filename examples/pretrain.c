/* Data-parallel pretraining: train_gpt's options and loop, on N processes under `mpirun -np N` (or with --dist), one
 * process without. Rank 0 tokenizes the corpus, prints progress and samples; every rank trains on its part of each
 * global batch of N x --batch rows, optionally with AdamW's state sharded (--zero 1). A rank that hangs ends the job
 * within the deadline (--dist-timeout). Uses only the public API (dist.h for the communicator, lt_trainer for the
 * rest). */
#include "gpt_options.h"

/* Launched by mpirun: OpenMPI sets OMPI_COMM_WORLD_SIZE, MPICH and Slurm's PMI set PMI_SIZE. */
static bool launched_by_mpirun(void) { return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE"); }

int main(int argc, char **argv) {
    lt_train_config cfg;
    lt_train_config_init(&cfg, sizeof cfg);
    args a;
    gpt_args_init(&cfg, &a);
    bool dist_flag = false;
    int64_t bucket_mb = LT_DIST_DEFAULT_BUCKET_BYTES >> 20, zero = 0;
    double dist_timeout = 0;
    opt table[GPT_MAX_OPTIONS];
    int n = gpt_options(&a, table);
    table[n++] = (opt){"--dist", OPT_FLAG, &dist_flag, 0, 0, "initialise MPI even when not started by mpirun"};
    table[n++] = (opt){"--bucket-mb", OPT_INT, &bucket_mb, 1, 4096, "MiB per gradient all-reduce bucket"};
    table[n++] = (opt){"--zero", OPT_INT, &zero, 0, 1, "ZeRO stage: 1 shards AdamW's state over the ranks"};
    const char *timeout_help = "seconds a rank waits for the others, then the job ends; 0: LIBTRAIN_DIST_TIMEOUT or 60";
    table[n++] = (opt){"--dist-timeout", OPT_DOUBLE, &dist_timeout, 0, 1e9, timeout_help};
    int rc = opt_parse(argc, argv,
                       "Pretrains a byte-level GPT with data parallelism over MPI ranks (mpirun -np N), then samples.",
                       table, n);
    if (rc) return rc == 1 ? 0 : rc;

    lt_dist *dist = NULL;
    if ((dist_flag || launched_by_mpirun()) && lt_dist_init_mpi(NULL, &dist) != LT_OK) {
        fprintf(stderr, "pretrain: %s\n", lt_last_error());
        return 1;
    }
    int rank = lt_dist_rank(dist), world = lt_dist_world(dist);
    /* A rank that hangs (or stops calling collectives) must not hang the others: past the deadline the library ends
     * the job (MPI_Abort, exit code 124). Rank 0 alone tokenizes a new corpus first, which may take long: the others
     * wait for it with ten times the deadline. */
    const double deadline = dist && dist_timeout > 0 ? dist_timeout : lt_dist_timeout(dist);
    if (dist && lt_dist_set_timeout(dist, deadline * 10, true) != LT_OK) {
        fprintf(stderr, "pretrain: %s\n", lt_last_error());
        lt_dist_free(dist);
        return 1;
    }

    /* Rank 0 tokenizes into the cache first, so that the others find the shard ready instead of racing to write it;
     * its result is broadcast, so a bad --data ends every rank. */
    char shard[4096];
    rc = parse_device("pretrain", a.device, &cfg.device);
    if (rc == 0 && world > 1 && cfg.device.type == LT_CUDA && !strchr(a.device, ':'))
        cfg.device.index = lt_dist_local_rank(dist); /* one GPU per rank of a node */
    if (rc == 0 && rank == 0) rc = prepare_data("pretrain", a.data, a.cache_dir, shard, sizeof shard);
    int32_t rc0 = rc;
    if (world > 1 && lt_dist_broadcast(dist, &rc0, sizeof rc0, 0) != LT_OK) {
        fprintf(stderr, "pretrain: rank %d: %s\n", rank, lt_last_error());
        lt_dist_abort(dist, 1);
    }
    if (rc0 == 0 && rank != 0) rc = prepare_data("pretrain", a.data, a.cache_dir, shard, sizeof shard);
    if (rc || rc0) {
        lt_dist_free(dist);
        return rc ? rc : (int)rc0;
    }
    gpt_apply(&a, shard, &cfg);
    cfg.dist = dist;
    cfg.bucket_bytes = bucket_mb << 20;
    cfg.zero_stage = (int)zero;
    if (dist && lt_dist_set_timeout(dist, deadline, true) != LT_OK) {
        fprintf(stderr, "pretrain: %s\n", lt_last_error());
        lt_dist_abort(dist, 1);
    }
    if (strcmp(a.resume, "auto") == 0 && !a.ckpt_dir) {
        fprintf(stderr, "pretrain: --resume auto needs --ckpt-dir\n");
        lt_dist_free(dist);
        return 2;
    }

    lt_trainer *trainer = NULL;
    int status = 1;
    bool created = false;
    if (lt_trainer_create(&cfg, &trainer) != LT_OK) goto fail; /* every rank learns of any rank's failure here */
    created = true;
    if (rank == 0)
        printf("pretrain: %lld parameters, %d layers, %d heads, width %d, context %d, %d rank%s x batch %d%s, on %s "
               "(libtrain %s)\n",
               (long long)lt_params_numel(lt_gpt_params(lt_trainer_model(trainer))), (int)a.layers, (int)a.heads,
               (int)a.embd, (int)a.seq, world, world > 1 ? "s" : "", (int)a.batch, world > 1 && zero ? ", ZeRO-1" : "",
               cfg.device.type == LT_CUDA ? "cuda" : "cpu", lt_version());
    if (lt_trainer_run(trainer) != LT_OK) goto fail;
    if (lt_trainer_steps_done(trainer) < cfg.steps) { /* stopped by a signal on some rank: every rank exits 0 */
        status = 0;
        goto done;
    }
    if (rank == 0 && print_sample(trainer, &a, cfg.seed) != LT_OK) goto fail;
    status = 0;
    goto done;
fail:
    fprintf(stderr, "pretrain: rank %d of %d: %s\n", rank, world, lt_last_error());
    /* A failure after create may be this rank's alone (an MPI error, a full disk): the others would wait for it in
     * the next all-reduce, so end the whole job. A failed create is already known to every rank. */
    if (created && world > 1) lt_dist_abort(dist, 1);
done:
    lt_trainer_free(trainer);
    lt_dist_free(dist);
    return status;
}
