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
typedef struct lt_adamw_config {
    size_t struct_size; /* sizeof(lt_adamw_config) */
    double lr;
    double beta1, beta2; /* e.g. 0.9, 0.95 */
    double eps;          /* e.g. 1e-8 */
    double weight_decay; /* decoupled (p -= lr * wd * p), applied only to parameters whose decay flag is set */
} lt_adamw_config;

/* AdamW as torch.optim.AdamW, in its order of operations: p *= 1 - lr wd; m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). One fused update over the flat
 * buffer; the moments m and v have the set's dtype and start at zero. Parameters whose decay flag is off
 * (lt_params_set_decay, read at every step) get no weight decay. LT_ERR_ARG for lr < 0, betas outside [0, 1),
 * eps <= 0 or weight_decay < 0; LT_ERR_STATE for an empty set. */
LT_API lt_status lt_adamw_create(lt_params *params, const lt_adamw_config *config, lt_optim **out);

/* AdamW over the elements [offset, offset + numel) of the set's flat buffer only, for ZeRO-1 (dist.h: each rank
 * updates its shard): the moments hold numel elements, and lt_optim_step updates only that range of the parameters,
 * from the same range of the gradients, leaving the rest of the buffer alone. Weight-decay runs (decay flags) are cut
 * at the range's edges, so every element gets the update lt_adamw_create's optimizer would give it. numel may be 0 (a
 * rank whose shard is all padding). LT_ERR_ARG for a range outside the buffer; otherwise as lt_adamw_create. */
LT_API lt_status lt_adamw_create_range(lt_params *params, const lt_adamw_config *config, int64_t offset, int64_t numel,
                                       lt_optim **out);
/* The part of the flat buffer that opt updates: offset 0 and lt_params_numel for an optimizer of the whole set.
 * Either output may be NULL. LT_ERR_ARG for a NULL opt. */
LT_API lt_status lt_optim_range(const lt_optim *opt, int64_t *offset, int64_t *numel);

/* One update from the current gradients. */
LT_API lt_status lt_optim_step(lt_optim *opt);
/* One update from the gradients multiplied by grad_scale, the multiply done inside the update's own pass over memory
 * and the gradients themselves left as they are: a clip factor (lt_clip_coef) this way costs no pass of its own.
 * The factor is rounded to the parameters' dtype and multiplied in it, as an in-place scale of the gradients would
 * be; lt_optim_step is grad_scale 1. Any value is taken: a NaN factor (from a NaN norm) gives NaN parameters, as
 * torch's clip_grad_norm_ then step does. */
LT_API lt_status lt_optim_step_scaled(lt_optim *opt, double grad_scale);
LT_API lt_status lt_optim_set_lr(lt_optim *opt, double lr);
/* Updates taken so far (AdamW's bias correction uses it). */
LT_API int64_t lt_optim_steps(const lt_optim *opt);
/* The optimizer's state buffers as 1-D views of lt_params_numel elements (of the range's numel for
 * lt_adamw_create_range), borrowed: AdamW's first and second
 * moments (m, v), SGD's velocity (m; v is NULL), for checkpoints. Either may be NULL when the optimizer has none.
 * lt_optim_set_steps restores the step count alongside. */
LT_API lt_status lt_optim_state(lt_optim *opt, lt_tensor **m, lt_tensor **v);
LT_API lt_status lt_optim_set_steps(lt_optim *opt, int64_t steps);

/* Measures the global L2 norm of all gradients of the set and, as torch.nn.utils.clip_grad_norm_ does, scales
 * them by max_norm / (norm + 1e-6) when that factor is below 1 (a NaN norm scales by NaN, as torch does).
 * Writes the norm before clipping to *norm (may be NULL). max_norm <= 0 only measures; a NaN max_norm is
 * LT_ERR_ARG. The sum of squares is accumulated in f64, identically for any thread count. */
LT_API lt_status lt_clip_grad_norm(lt_params *params, double max_norm, double *norm);
/* The factor lt_clip_grad_norm scales the gradients by, for the global norm `norm`: max_norm / (norm + 1e-6) when that
 * is below 1 or NaN, else 1; 1 when max_norm <= 0 (no clipping) and NaN when max_norm is NaN. For
 * lt_optim_step_scaled: lt_grad_sumsq, then lt_optim_step_scaled(opt, lt_clip_coef(sqrt(sumsq), max_norm)) updates
 * as lt_clip_grad_norm then lt_optim_step does, one pass over the gradients fewer. */
LT_API double lt_clip_coef(double norm, double max_norm);

/* Clipping in parts, for gradients spread over ranks (ZeRO-1, dist.h). lt_grad_sumsq: the sum of squares of the
 * gradients [offset, offset + numel) of the set's flat gradient buffer, accumulated in f64 as lt_clip_grad_norm does.
 * lt_clip_grad_range: scales that range by max_norm / (norm + 1e-6) when the factor is below 1, where norm is the
 * global norm the caller computed (the square root of every part's lt_grad_sumsq added up): each part is then clipped
 * as lt_clip_grad_norm clips the whole. max_norm <= 0 does nothing; a NaN max_norm or norm < 0 is LT_ERR_ARG. Both:
 * LT_ERR_ARG for a range outside the buffer. */
LT_API lt_status lt_grad_sumsq(lt_params *params, int64_t offset, int64_t numel, double *sumsq);
LT_API lt_status lt_clip_grad_range(lt_params *params, int64_t offset, int64_t numel, double norm, double max_norm);

/* Learning rate at `step` (0-based) of a run of total_steps: linear warm-up max_lr * (step + 1) / warmup_steps over
 * the first warmup_steps steps, then cosine decay to min_lr at total_steps; min_lr after that. A negative step
 * counts as 0, warmup_steps <= 0 means no warm-up, and total_steps <= warmup_steps gives min_lr after the ramp. */
LT_API double lt_lr_cosine(int64_t step, int64_t warmup_steps, int64_t total_steps, double max_lr, double min_lr);
LT_API void lt_optim_free(lt_optim *opt);

#ifdef __cplusplus
}
#endif

#endif
