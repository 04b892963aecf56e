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
    if (!(max_norm > 0)) return LT_OK;
    /* torch 1.13: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1 and multiplied in. The 1e-6 keeps
     * the division finite for a zero norm; a NaN norm gives torch a NaN factor too, so it is applied, not skipped. */
    const double coef = max_norm / (total + 1e-6);
    if (coef >= 1.0) return LT_OK;
    return lt__backend_of(grads)->scalar(LT_SOP_MUL, grads, coef, grads); /* in place, as the entry allows */
}
