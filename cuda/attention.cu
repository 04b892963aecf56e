/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse) {
    (void)qkv; (void)n_head; (void)y; (void)lse;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda attention: not written yet");
}

extern "C" lt_status lt__cuda_attention_backward(const lt_tensor *qkv, const lt_tensor *y, const lt_tensor *lse,
                                      const lt_tensor *gy, int n_head, lt_tensor *gqkv) {
    (void)qkv; (void)y; (void)lse; (void)gy; (void)n_head; (void)gqkv;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda attention_backward: not written yet");
}
