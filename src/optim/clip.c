/* lt_clip_grad_norm: the global L2 norm of a parameter set's gradients, and clipping as
 * torch.nn.utils.clip_grad_norm_ does it, over the flat gradient buffer: one reduction and one in-place scale. */
#include "backend.h"
#include "core/error.h"
#include "libtrain/optim.h"

#include <math.h>

LT_API lt_status lt_clip_grad_norm(lt_params *params, double max_norm, double *norm) {
    static const char *fn = "lt_clip_grad_norm";
    if (norm) *norm = NAN; /* a failed call never leaves a plausible norm behind */
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, params);
    if (isnan(max_norm)) return lt__err(LT_ERR_ARG, "%s: max_norm is NaN", fn);
    if (lt_params_count(params) == 0) { /* no gradients: torch returns a zero norm */
        if (norm) *norm = 0.0;
        return LT_OK;
    }
    lt_tensor *grads;
    LT_TRY(lt_params_flat(params, NULL, &grads));
    double sumsq;
    LT_TRY(lt__backend_of(grads)->sumsq(grads, &sumsq));
    const double total = sqrt(sumsq);
    if (norm) *norm = total;
    const double coef = lt_clip_coef(total, max_norm);
    if (coef == 1.0) return LT_OK;
    return lt__backend_of(grads)->scalar(LT_SOP_MUL, grads, coef, grads); /* in place, as the entry allows */
}

LT_API double lt_clip_coef(double norm, double max_norm) {
    if (isnan(max_norm)) return NAN;
    if (!(max_norm > 0)) return 1.0;
    /* torch 1.13: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1 and multiplied in. The 1e-6 keeps
     * the division finite for a zero norm; a NaN norm gives torch a NaN factor too, so it is applied, not skipped. */
    const double coef = max_norm / (norm + 1e-6);
    return coef >= 1.0 ? 1.0 : coef;
}

/* The range [offset, offset + numel) of the set's flat gradient buffer as a 1-D view (NULL for an empty range). */
static lt_status grad_range(const char *fn, lt_params *params, int64_t offset, int64_t numel, lt_tensor **out) {
    *out = NULL;
    LT_CHECK_NOT_NULL(fn, params);
    const int64_t total = lt_params_numel(params);
    if (offset < 0 || numel < 0 || offset > total || numel > total - offset)
        return lt__err(LT_ERR_ARG, "%s: range [%lld, +%lld) lies outside the %lld gradients", fn, (long long)offset,
                       (long long)numel, (long long)total);
    if (numel == 0) return LT_OK;
    lt_tensor *grads;
    LT_TRY(lt_params_flat(params, NULL, &grads));
    const int64_t stride = 1;
    return lt__tensor_view_of(grads, &numel, &stride, 1, grads->offset + offset, out);
}

LT_API lt_status lt_grad_sumsq(lt_params *params, int64_t offset, int64_t numel, double *sumsq) {
    static const char *fn = "lt_grad_sumsq";
    if (sumsq) *sumsq = NAN;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, sumsq);
    lt_tensor *g;
    LT_TRY(grad_range(fn, params, offset, numel, &g));
    if (!g) {
        *sumsq = 0.0;
        return LT_OK;
    }
    lt_status st = lt__backend_of(g)->sumsq(g, sumsq);
    lt__drop(g);
    return st;
}

LT_API lt_status lt_clip_grad_range(lt_params *params, int64_t offset, int64_t numel, double norm, double max_norm) {
    static const char *fn = "lt_clip_grad_range";
    lt__clear_error();
    if (isnan(max_norm) || norm < 0)
        return lt__err(LT_ERR_ARG, "%s: max_norm %g must not be NaN, norm %g must not be negative", fn, max_norm, norm);
    lt_tensor *g;
    LT_TRY(grad_range(fn, params, offset, numel, &g));
    /* the same factor, computed the same way, as lt_clip_grad_norm: every part of the buffer gets the whole's clip */
    const double coef = lt_clip_coef(norm, max_norm);
    lt_status st = LT_OK;
    if (g && coef != 1.0) st = lt__backend_of(g)->scalar(LT_SOP_MUL, g, coef, g);
    lt__drop(g);
    return st;
}
