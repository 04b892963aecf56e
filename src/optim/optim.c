/* Optimizers over the flat parameter buffer of an lt_params set: SGD and AdamW behind one handle, each step a single
 * backend call over the whole buffer. Argument checks and state live here; the arithmetic lives in the backends. */
#include "libtrain/optim.h"
#include "backend.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>

typedef enum optim_kind { OPTIM_SGD, OPTIM_ADAMW } optim_kind;

struct lt_optim {
    optim_kind kind;
    lt_params *params; /* borrowed */
    double lr;         /* the config's lr until lt_optim_set_lr */
    union {
        lt_sgd_config sgd;
        lt_adamw_config adamw;
    } config;
    lt_tensor *m, *v;      /* owned, 1-D over the flat buffer: AdamW's moments; SGD's velocity in m (v NULL) */
    lt__segment *segments; /* AdamW: runs of parameters with one weight-decay factor; room for one per parameter */
    int n_segments;
    int n_params;                      /* the set's size when the state was made */
    int64_t numel;                     /* the set's element count then */
    int64_t range_offset, range_numel; /* the part of the flat buffer updated: all of it, or a ZeRO-1 shard */
    int64_t steps;
};

LT_API void lt_optim_free(lt_optim *opt) {
    if (!opt) return;
    lt_tensor_release(opt->m);
    lt_tensor_release(opt->v);
    free(opt->segments);
    free(opt);
}

/* A zeroed 1-D state buffer the length, dtype and device of the flat parameters, owned by the optimizer whether or
 * not a scope is open. */
static lt_status state_buffer(const char *fn, const lt_tensor *flat, int64_t numel, lt_tensor **out) {
    LT_TRY(lt__tensor_alloc(fn, &numel, 1, flat->dtype, flat->storage->device, out));
    lt__keep(*out);
    lt_status st = lt__backend_of(flat)->fill(*out, 0.0);
    if (st != LT_OK) {
        lt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* The parts every optimizer shares: the handle, bound to params as they are now and to the range [offset, offset +
 * numel) of the flat buffer (numel < 0: all of it), with n_state zeroed buffers of the range's length (m, then v). */
static lt_status optim_new(const char *fn, lt_params *params, optim_kind kind, int n_state, int64_t offset,
                           int64_t numel, lt_optim **out) {
    if (lt_params_count(params) == 0) return lt__err(LT_ERR_STATE, "%s: the parameter set is empty", fn);
    lt_tensor *flat;
    LT_TRY(lt_params_flat(params, &flat, NULL));
    lt_optim *o = calloc(1, sizeof *o);
    if (!o) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    o->kind = kind;
    o->params = params;
    o->n_params = lt_params_count(params);
    o->numel = lt_params_numel(params);
    o->range_offset = numel < 0 ? 0 : offset;
    o->range_numel = numel < 0 ? o->numel : numel;
    lt_status st = LT_OK;
    if (n_state > 0) st = state_buffer(fn, flat, o->range_numel, &o->m);
    if (st == LT_OK && n_state > 1) st = state_buffer(fn, flat, o->range_numel, &o->v);
    if (st != LT_OK) {
        lt_optim_free(o);
        return st;
    }
    *out = o;
    return LT_OK;
}

static bool finite_nonneg(double x) { return isfinite(x) && x >= 0; }

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
    if (!finite_nonneg(config->lr) || !finite_nonneg(config->momentum) || !finite_nonneg(config->weight_decay))
        return lt__err(LT_ERR_ARG, "%s: lr %g, momentum %g and weight_decay %g must be finite and >= 0", fn, config->lr,
                       config->momentum, config->weight_decay);
    if (config->nesterov && config->momentum == 0) return lt__err(LT_ERR_ARG, "%s: nesterov needs momentum > 0", fn);
    lt_optim *o;
    LT_TRY(optim_new(fn, params, OPTIM_SGD, config->momentum > 0 ? 1 : 0, 0, -1, &o));
    o->config.sgd = *config;
    o->lr = config->lr;
    *out = o;
    return LT_OK;
}

/* Rebuilds the segment table from the set's decay flags as they are now: consecutive parameters with the same factor
 * become one run, so a GPT's interleaved matrices and vectors cost a few kernel calls, not one per tensor. Reading
 * the flags at every step makes lt_params_set_decay after create take effect; the table has room for one run per
 * parameter, so this never allocates. */
static lt_status adamw_segments(const char *fn, lt_optim *o, const lt_tensor *flat) {
    const double wd = o->config.adamw.weight_decay;
    int n = 0;
    for (int i = 0; i < o->n_params; i++) {
        lt_tensor *t;
        LT_TRY(lt_params_get(o->params, i, NULL, &t));
        const int64_t off = t->offset - flat->offset, len = lt__numel(t->shape, t->ndim);
        const double f = lt_params_get_decay(o->params, i) ? wd : 0.0;
        if (len == 0) continue;
        if (off < 0 || off > o->numel - len)
            return lt__err(LT_ERR_INTERNAL, "%s: parameter %d lies outside the flat buffer", fn, i);
        lt__segment *last = n > 0 ? &o->segments[n - 1] : NULL;
        if (last && last->offset + last->numel == off && last->weight_decay == f)
            last->numel += len;
        else
            o->segments[n++] = (lt__segment){.offset = off, .numel = len, .weight_decay = f};
    }
    /* A range (ZeRO-1 shard): keep the parts of the runs inside it, relative to its start. A run that crosses an edge
     * is cut there, so the shard's elements get the same decay factor as in the whole buffer. */
    const int64_t lo = o->range_offset, hi = o->range_offset + o->range_numel;
    if (lo != 0 || hi != o->numel) {
        int k = 0;
        for (int s = 0; s < n; s++) {
            const int64_t a = o->segments[s].offset > lo ? o->segments[s].offset : lo;
            const int64_t end = o->segments[s].offset + o->segments[s].numel, b = end < hi ? end : hi;
            if (a < b)
                o->segments[k++] =
                    (lt__segment){.offset = a - lo, .numel = b - a, .weight_decay = o->segments[s].weight_decay};
        }
        n = k;
    }
    o->n_segments = n;
    return LT_OK;
}

static lt_status adamw_create(const char *fn, lt_params *params, const lt_adamw_config *config, int64_t offset,
                              int64_t numel, lt_optim **out) {
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, params);
    LT_CHECK_NOT_NULL(fn, config);
    const lt_adamw_config *c = config;
    if (c->struct_size < sizeof(lt_adamw_config))
        return lt__err(LT_ERR_ARG, "%s: config->struct_size is %zu, expected %zu", fn, c->struct_size,
                       sizeof(lt_adamw_config));
    if (!finite_nonneg(c->lr)) return lt__err(LT_ERR_ARG, "%s: lr %g must be finite and >= 0", fn, c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return lt__err(LT_ERR_ARG, "%s: beta1 %g and beta2 %g must lie in [0, 1)", fn, c->beta1, c->beta2);
    if (!(c->eps > 0) || !isfinite(c->eps)) return lt__err(LT_ERR_ARG, "%s: eps %g must be finite and > 0", fn, c->eps);
    if (!finite_nonneg(c->weight_decay))
        return lt__err(LT_ERR_ARG, "%s: weight_decay %g must be finite and >= 0", fn, c->weight_decay);
    if (numel >= 0 && (offset < 0 || offset > lt_params_numel(params) || numel > lt_params_numel(params) - offset))
        return lt__err(LT_ERR_ARG, "%s: range [%lld, +%lld) lies outside the %lld parameters", fn, (long long)offset,
                       (long long)numel, (long long)lt_params_numel(params));
    lt_optim *o;
    LT_TRY(optim_new(fn, params, OPTIM_ADAMW, 2, offset, numel, &o));
    o->config.adamw = *c;
    o->lr = c->lr;
    o->segments = malloc(sizeof *o->segments * (size_t)o->n_params);
    lt_tensor *flat;
    lt_status st = o->segments ? lt_params_flat(params, &flat, NULL) : lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    if (st == LT_OK) st = adamw_segments(fn, o, flat);
    if (st != LT_OK) {
        lt_optim_free(o);
        return st;
    }
    *out = o;
    return LT_OK;
}

LT_API lt_status lt_adamw_create(lt_params *params, const lt_adamw_config *config, lt_optim **out) {
    return adamw_create("lt_adamw_create", params, config, 0, -1, out);
}

LT_API lt_status lt_adamw_create_range(lt_params *params, const lt_adamw_config *config, int64_t offset, int64_t numel,
                                       lt_optim **out) {
    static const char *fn = "lt_adamw_create_range";
    if (out) *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, params);
    if (numel < 0) return lt__err(LT_ERR_ARG, "%s: numel is %lld, must be >= 0", fn, (long long)numel);
    return adamw_create(fn, params, config, offset, numel, out);
}

LT_API lt_status lt_optim_range(const lt_optim *opt, int64_t *offset, int64_t *numel) {
    static const char *fn = "lt_optim_range";
    if (offset) *offset = 0;
    if (numel) *numel = 0;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, opt);
    if (offset) *offset = opt->range_offset;
    if (numel) *numel = opt->range_numel;
    return LT_OK;
}

/* The range [offset, offset + numel) of a flat buffer as a 1-D view, for the caller to lt__drop. */
static lt_status range_view(const lt_tensor *flat, int64_t offset, int64_t numel, lt_tensor **out) {
    const int64_t stride = 1;
    return lt__tensor_view_of(flat, &numel, &stride, 1, flat->offset + offset, out);
}

/* AdamW over a range: the same kernel over views of the range's parameters and gradients, whose offsets the segments
 * (already relative to the range) index from 0 as the moments do. */
static lt_status adamw_range_step(const lt__backend *be, lt_optim *opt, lt_tensor *flat, lt_tensor *gflat,
                                  double grad_scale) {
    const lt_adamw_config *c = &opt->config.adamw;
    if (opt->range_numel == 0) return LT_OK;
    lt_tensor *pv = NULL, *gv = NULL;
    lt_status st = range_view(flat, opt->range_offset, opt->range_numel, &pv);
    if (st == LT_OK) st = range_view(gflat, opt->range_offset, opt->range_numel, &gv);
    if (st == LT_OK)
        st = be->adamw_step(pv, gv, opt->m, opt->v, opt->segments, opt->n_segments, opt->lr, c->beta1, c->beta2, c->eps,
                            opt->steps + 1, grad_scale);
    lt__drop(gv);
    lt__drop(pv);
    return st;
}

static lt_status optim_step(const char *fn, lt_optim *opt, double grad_scale) {
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, opt);
    if (lt_params_count(opt->params) != opt->n_params || lt_params_numel(opt->params) != opt->numel)
        return lt__err(LT_ERR_STATE,
                       "%s: parameters were added after the optimizer was created (%d parameters, %lld elements then; "
                       "%d, %lld now)",
                       fn, opt->n_params, (long long)opt->numel, lt_params_count(opt->params),
                       (long long)lt_params_numel(opt->params));
    if (opt->steps == INT64_MAX) return lt__err(LT_ERR_STATE, "%s: the step count would overflow", fn);
    lt_tensor *flat, *gflat;
    LT_TRY(lt_params_flat(opt->params, &flat, &gflat));
    const lt__backend *be = lt__backend_of(flat);
    switch (opt->kind) {
    case OPTIM_SGD: {
        const lt_sgd_config *c = &opt->config.sgd;
        LT_TRY(be->sgd_step(flat, gflat, opt->m, opt->lr, c->momentum, c->weight_decay, c->nesterov, opt->steps == 0,
                            grad_scale));
        break;
    }
    case OPTIM_ADAMW: {
        const lt_adamw_config *c = &opt->config.adamw;
        LT_TRY(adamw_segments(fn, opt, flat));
        if (opt->range_offset != 0 || opt->range_numel != opt->numel) {
            LT_TRY(adamw_range_step(be, opt, flat, gflat, grad_scale));
            break;
        }
        LT_TRY(be->adamw_step(flat, gflat, opt->m, opt->v, opt->segments, opt->n_segments, opt->lr, c->beta1, c->beta2,
                              c->eps, opt->steps + 1, grad_scale));
        break;
    }
    }
    opt->steps++;
    return LT_OK;
}

LT_API lt_status lt_optim_step(lt_optim *opt) { return optim_step("lt_optim_step", opt, 1.0); }

LT_API lt_status lt_optim_step_scaled(lt_optim *opt, double grad_scale) {
    return optim_step("lt_optim_step_scaled", opt, grad_scale);
}

LT_API lt_status lt_optim_set_lr(lt_optim *opt, double lr) {
    static const char *fn = "lt_optim_set_lr";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, opt);
    if (!finite_nonneg(lr)) return lt__err(LT_ERR_ARG, "%s: lr %g must be finite and >= 0", fn, lr);
    opt->lr = lr;
    return LT_OK;
}

LT_API int64_t lt_optim_steps(const lt_optim *opt) { return opt ? opt->steps : 0; }

LT_API lt_status lt_optim_state(lt_optim *opt, lt_tensor **m, lt_tensor **v) {
    static const char *fn = "lt_optim_state";
    if (m) *m = NULL;
    if (v) *v = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, opt);
    if (m) *m = opt->m;
    if (v) *v = opt->v;
    return LT_OK;
}

LT_API lt_status lt_optim_set_steps(lt_optim *opt, int64_t steps) {
    static const char *fn = "lt_optim_set_steps";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, opt);
    if (steps < 0) return lt__err(LT_ERR_ARG, "%s: steps is %lld, must be >= 0", fn, (long long)steps);
    opt->steps = steps;
    return LT_OK;
}
