/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                 lt_tensor *loss, lt_tensor *lse) {
    (void)logits; (void)targets; (void)ignore_index; (void)loss; (void)lse;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda cross_entropy: not written yet");
}

extern "C" lt_status lt__cuda_cross_entropy_backward(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                          const lt_tensor *lse, const lt_tensor *gloss, lt_tensor *glogits) {
    (void)logits; (void)targets; (void)ignore_index; (void)lse; (void)gloss; (void)glogits;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda cross_entropy_backward: not written yet");
}

extern "C" lt_status lt__cuda_classifier_ce(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets,
                                 int64_t ignore_index, double grad_scale, bool want_grad, lt_tensor *loss) {
    (void)logits; (void)vocab_size; (void)targets; (void)ignore_index; (void)grad_scale; (void)want_grad; (void)loss;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda classifier_ce: not written yet");
}
