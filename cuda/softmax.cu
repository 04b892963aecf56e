/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_softmax(const lt_tensor *x, int dim, bool log, lt_tensor *y) {
    (void)x; (void)dim; (void)log; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda softmax: not written yet");
}

extern "C" lt_status lt__cuda_softmax_backward(const lt_tensor *y, const lt_tensor *gy, int dim, bool log, lt_tensor *gx) {
    (void)y; (void)gy; (void)dim; (void)log; (void)gx;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda softmax_backward: not written yet");
}
