/* The tiny model and schedule of the data-parallel tests (tests/mpi/dist_tool.c, tests/cuda/test_cuda_nccl.c):
 * seconds per test, dropout 0 so that splitting a batch across ranks changes nothing. */
#ifndef LT_TESTS_MPI_TINY_CONFIG_H
#define LT_TESTS_MPI_TINY_CONFIG_H

#include <libtrain/libtrain.h>

static inline void lt_test_tiny_config(lt_train_config *c, const char *shard, lt_dtype dtype, lt_device device) {
    lt_train_config_init(c, sizeof *c);
    c->data_path = shard;
    c->model.block_size = 16;
    c->model.n_layer = 1;
    c->model.n_head = 2;
    c->model.n_embd = 32;
    c->dtype = dtype;
    c->device = device;
    c->seq_len = 16;
    c->val_fraction = 0;
    c->eval_batches = 0;
    c->warmup_steps = 2;
    c->lr = 1e-2;
    c->min_lr = 1e-3;
    c->progress = LT_PROGRESS_NONE;
    c->threads = 1;
}

#endif
