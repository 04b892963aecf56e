/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_reduce(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y) {
    (void)op; (void)x; (void)dim_mask; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda reduce: not written yet");
}

extern "C" lt_status lt__cuda_max_backward(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy, uint32_t dim_mask,
                                lt_tensor *gx) {
    (void)x; (void)y; (void)gy; (void)dim_mask; (void)gx;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda max_backward: not written yet");
}

extern "C" lt_status lt__cuda_sumsq(const lt_tensor *x, double *out) {
    (void)x; (void)out;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda sumsq: not written yet");
}
