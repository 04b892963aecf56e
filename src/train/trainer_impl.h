/* The lt_trainer struct, shared by the training loop (trainer.c) and the checkpoints (src/ckpt/), which save and
 * restore its state. Nothing outside those two may include it. */
#ifndef LT_TRAIN_TRAINER_IMPL_H
#define LT_TRAIN_TRAINER_IMPL_H

#include "libtrain/train.h"

#include <stdio.h>

struct lt_trainer {
    lt_train_config cfg;
    lt_dataset *data, *train, *val;
    lt_loader *train_loader, *val_loader;
    lt_gpt *model;
    lt_optim *opt;
    FILE *metrics;
    bool live; /* redraw a status line with \r */
    int64_t steps_done;
    double seconds; /* training wall time so far */
    double last_loss;
    int64_t last_saved; /* steps_done at the last checkpoint saved or resumed from; -1 for none */
    int rank, world;    /* from cfg.dist: 0 and 1 for a single process */
};

#endif
