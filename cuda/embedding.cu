/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_embedding(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y) {
    (void)w; (void)idx; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda embedding: not written yet");
}

extern "C" lt_status lt__cuda_embedding_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw) {
    (void)gy; (void)idx; (void)gw;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda embedding_backward: not written yet");
}
