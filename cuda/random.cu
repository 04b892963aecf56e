/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_philox(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal) {
    (void)y; (void)seed; (void)offset; (void)normal;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda philox: not written yet");
}

extern "C" lt_status lt__cuda_dropout(const lt_tensor *x, double p, double scale, uint64_t seed, uint64_t offset, lt_tensor *y,
                           lt_tensor *mask) {
    (void)x; (void)p; (void)scale; (void)seed; (void)offset; (void)y; (void)mask;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda dropout: not written yet");
}
