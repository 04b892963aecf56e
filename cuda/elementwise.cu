/* STUB: replaced by the real kernels; every entry fails until then. */
#include "common.cuh"

extern "C" lt_status lt__cuda_unary(lt__unary_op op, const lt_tensor *x, lt_tensor *y) {
    (void)op; (void)x; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda unary: not written yet");
}

extern "C" lt_status lt__cuda_unary_backward(lt__unary_op op, const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                  lt_tensor *gx) {
    (void)op; (void)x; (void)y; (void)gy; (void)gx;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda unary_backward: not written yet");
}

extern "C" lt_status lt__cuda_binary(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    (void)op; (void)a; (void)b; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda binary: not written yet");
}

extern "C" lt_status lt__cuda_scalar(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y) {
    (void)op; (void)x; (void)s; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda scalar: not written yet");
}

extern "C" lt_status lt__cuda_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    (void)cond; (void)a; (void)b; (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cuda where: not written yet");
}
