/* Optimizers over the flat parameter buffer: one kernel launch updates every parameter. */
#include "backend.h"
#include "core/error.h"
#include "libtrain/optim.h"

#include <math.h>

struct lt_optim {
    lt_params *params;
    lt_sgd_config sgd;
    lt_tensor *velocity; /* owned; NULL without momentum */
    int64_t numel;       /* the parameter count the state was made for */
    int64_t steps;
};

LT_API lt_status lt_sgd_create(lt_params *params, const lt_sgd_config *config, lt_optim **out) {
    static const char *fn = "lt_sgd_create";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, params);
    LT_CHECK_NOT_NULL(fn, config);
    if (config->struct_size < sizeof(lt_sgd_config))
        return lt__err(LT_ERR_ARG, "%s: config->struct_size is %zu, expected %zu", fn, config->struct_size,
                       sizeof(lt_sgd_config));
    if (!(config->lr >= 0) || !(config->momentum >= 0) || !(config->weight_decay >= 0) || !isfinite(config->lr))
        return lt__err(LT_ERR_ARG, "%s: lr %g, momentum %g and weight_decay %g must be finite and >= 0", fn,
                       config->lr, config->momentum, config->weight_decay);
    if (config->nesterov && config->momentum == 0)
        return lt__err(LT_ERR_ARG, "%s: nesterov needs momentum > 0", fn);
    lt_tensor *flat;
    LT_TRY(lt_params_flat(params, &flat, NULL));
    lt_optim *o = calloc(1, sizeof *o);
    if (!o) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    o->params = params;
    o->sgd = *config;
    o->numel = lt_params_numel(params);
    if (config->momentum > 0) {
        lt_status st = lt__tensor_alloc(fn, &o->numel, 1, flat->dtype, flat->storage->device, &o->velocity);
        if (st == LT_OK) lt__keep(o->velocity);
        if (st == LT_OK) st = lt__backend_of(flat)->fill(o->velocity, 0.0);
        if (st != LT_OK) {
            lt_optim_free(o);
            return st;
        }
    }
    *out = o;
    return LT_OK;
}

LT_API lt_status lt_optim_step(lt_optim *opt) {
    static const char *fn = "lt_optim_step";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, opt);
    if (lt_params_numel(opt->params) != opt->numel)
        return lt__err(LT_ERR_STATE, "%s: parameters were added after the optimizer was created (%lld then, %lld now)",
                       fn, (long long)opt->numel, (long long)lt_params_numel(opt->params));
    lt_tensor *flat, *gflat;
    LT_TRY(lt_params_flat(opt->params, &flat, &gflat));
    const lt_sgd_config *c = &opt->sgd;
    LT_TRY(lt__backend_of(flat)->sgd_step(flat, gflat, opt->velocity, c->lr, c->momentum, c->weight_decay, c->nesterov,
                                          opt->steps == 0));
    opt->steps++;
    return LT_OK;
}

LT_API lt_status lt_optim_set_lr(lt_optim *opt, double lr) {
    lt__clear_error();
    LT_CHECK_NOT_NULL("lt_optim_set_lr", opt);
    if (!(lr >= 0) || !isfinite(lr)) return lt__err(LT_ERR_ARG, "lt_optim_set_lr: lr %g must be finite and >= 0", lr);
    opt->sgd.lr = lr;
    return LT_OK;
}

LT_API void lt_optim_free(lt_optim *opt) {
    if (!opt) return;
    lt_tensor_release(opt->velocity);
    free(opt);
}
