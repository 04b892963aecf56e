/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_adamw_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v,
                              const struct lt__segment *segments, int n_segments, double lr, double beta1,
                              double beta2, double eps, int64_t step) {
    (void)param; (void)grad; (void)m; (void)v; (void)segments; (void)n_segments; (void)lr; (void)beta1; (void)beta2; (void)eps; (void)step;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda adamw_step: not written yet");
}

extern "C" lt_status lt__cuda_sgd_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity, double lr, double momentum,
                            double weight_decay, bool nesterov, bool first_step) {
    (void)param; (void)grad; (void)velocity; (void)lr; (void)momentum; (void)weight_decay; (void)nesterov; (void)first_step;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda sgd_step: not written yet");
}
