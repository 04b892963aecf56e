/* The tiny trainer that the checkpoint fuzzer (fuzz_ckpt.c) loads inputs into and that its seed corpus
 * (make_seed.c) is saved from: 332 parameters, so a whole checkpoint is about 27 KB, mostly HDF5 metadata, which
 * libFuzzer mutates quickly. Header-only, public API only; shared so that the seeds pass every check and reach the
 * deepest code. */
#ifndef LT_FUZZ_CKPT_H
#define LT_FUZZ_CKPT_H

#include <libtrain/libtrain.h>

#include <stdint.h>
#include <stdio.h>

/* 512 raw uint16 tokens below the vocabulary of 16 (nanoGPT's raw format: no header). */
static int fuzz_write_shard(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    for (int i = 0; i < 512; i++) {
        uint16_t tok = (uint16_t)((i * 7 + i / 5) % 16);
        fwrite(&tok, sizeof tok, 1, f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Dropout on, so the RNG rows matter; 100 steps, so a seed saved after a few steps is within range. */
static void fuzz_config(lt_train_config *c, const char *shard) {
    lt_train_config_init(c, sizeof *c);
    c->data_path = shard;
    c->model.vocab_size = 16;
    c->model.block_size = 4;
    c->model.n_layer = 1;
    c->model.n_head = 1;
    c->model.n_embd = 4;
    c->model.dropout = 0.1;
    c->seq_len = 4;
    c->batch_size = 2;
    c->steps = 100;
    c->warmup_steps = 2;
    c->val_fraction = 0;
    c->eval_batches = 0;
    c->progress = LT_PROGRESS_NONE;
    c->threads = 1;
    c->seed = 7;
}

#endif
