/* Autocast: a thread-local switch that makes the matrix products of f32 CUDA tensors compute in bf16 (f32
 * accumulation, f32 outputs), and the conversion helper the products use. See docs/mixed-precision.md. */
#include "ops/autocast.h"

#include "backend.h"
#include "core/error.h"
#include "libtrain/ops.h"

#include <limits.h>

/* How many lt_autocast_begin calls are open on this thread. bf16 is the only autocast dtype, so a count says it all. */
static _Thread_local int lt__autocast_depth;

LT_API lt_status lt_autocast_begin(lt_dtype dtype) {
    static const char *fn = "lt_autocast_begin";
    lt__clear_error();
    if (dtype == LT_F16)
        return lt__err(LT_ERR_UNSUPPORTED, "%s: f16 autocast is not implemented (it would need loss scaling); use bf16",
                       fn);
    if (dtype != LT_BF16)
        return lt__err(LT_ERR_DTYPE, "%s: dtype %s (%d); autocast computes matrix products in bf16 only", fn,
                       lt_dtype_name(dtype), (int)dtype);
    if (lt__autocast_depth == INT_MAX) return lt__err(LT_ERR_STATE, "%s: too many nested autocast regions", fn);
    lt__autocast_depth++;
    return LT_OK;
}

LT_API void lt_autocast_end(void) {
    if (lt__autocast_depth > 0) lt__autocast_depth--;
}

LT_API lt_dtype lt_autocast_dtype(void) { return lt__autocast_depth > 0 ? LT_BF16 : LT_F32; }

bool lt__autocast_active(const lt_tensor *const *tensors, int n) {
    if (lt__autocast_depth == 0) return false;
    for (int i = 0; i < n; i++) {
        const lt_tensor *t = tensors[i];
        if (t && (t->dtype != LT_F32 || t->storage->device.type != LT_CUDA)) return false;
    }
    return true;
}

lt_status lt__convert(const char *who, const lt_tensor *t, lt_dtype dtype, lt_tensor **out) {
    *out = NULL;
    int nd = t->ndim;
    int64_t compact[LT_MAX_DIMS], strides[LT_MAX_DIMS];
    bool broadcast = false;
    for (int i = 0; i < nd; i++) {
        bool b = t->strides[i] == 0 && t->shape[i] > 1;
        compact[i] = b ? 1 : t->shape[i];
        broadcast = broadcast || b;
    }
    lt_tensor *c, src;
    LT_TRY(lt__tensor_alloc(who, compact, nd, dtype, t->storage->device, &c));
    lt_status st = lt__broadcast_header(t, t->shape, nd, &src); /* a stack header of t with the compact shape */
    if (st == LT_OK) {
        for (int i = 0; i < nd; i++) src.shape[i] = compact[i];
        st = lt__backend_of(t)->copy(c, &src);
    }
    if (st != LT_OK || !broadcast) {
        if (st != LT_OK) lt__drop(c);
        *out = st == LT_OK ? c : NULL;
        return st;
    }
    lt__contiguous_strides(compact, nd, strides);
    for (int i = 0; i < nd; i++)
        if (compact[i] != t->shape[i]) strides[i] = 0;
    st = lt__tensor_view_of(c, t->shape, strides, nd, c->offset, out);
    lt__drop(c);
    return st;
}
