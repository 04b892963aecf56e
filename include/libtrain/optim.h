/* libtrain optimizers: updates over the flat parameter buffer of an lt_params set.
 * An optimizer borrows its set, which must outlive it. Not thread-safe. */
#ifndef LIBTRAIN_OPTIM_H
#define LIBTRAIN_OPTIM_H

#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_optim lt_optim;

typedef struct lt_sgd_config {
    size_t struct_size; /* sizeof(lt_sgd_config); lets the struct grow */
    double lr;
    double momentum;     /* 0 disables the velocity buffer */
    double weight_decay; /* L2 term added to the gradient, as torch.optim.SGD */
    bool nesterov;
} lt_sgd_config;

/* SGD with momentum, as torch.optim.SGD (dampening 0): v = momentum * v + g; p -= lr * v
 * (or lr * (g + momentum * v) with nesterov). LT_ERR_ARG for a negative lr or momentum. */
LT_API lt_status lt_sgd_create(lt_params *params, const lt_sgd_config *config, lt_optim **out);
/* One update from the current gradients. */
LT_API lt_status lt_optim_step(lt_optim *opt);
LT_API lt_status lt_optim_set_lr(lt_optim *opt, double lr);
LT_API void lt_optim_free(lt_optim *opt);

#ifdef __cplusplus
}
#endif

#endif
