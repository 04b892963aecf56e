/* CPU optimizer kernels over flat contiguous buffers. */
#include "cpu/cpu.h"

/* torch.optim.SGD (dampening 0): g += wd * p; v = first ? g : momentum * v + g; p -= lr * (nesterov ? g + m v : v). */
#define LT_SGD_KERNEL(T)                                                                                               \
    static void lt__sgd_##T(T *p, const T *g, T *v, int64_t n, T lr, T m, T wd, bool nesterov, bool first) {           \
        _Pragma("omp parallel for if (n > 65536)") for (int64_t i = 0; i < n; i++) {                                   \
            T d = g[i] + wd * p[i];                                                                                    \
            if (v) {                                                                                                   \
                v[i] = first ? d : m * v[i] + d;                                                                       \
                d = nesterov ? d + m * v[i] : v[i];                                                                    \
            }                                                                                                          \
            p[i] -= lr * d;                                                                                            \
        }                                                                                                              \
    }
LT_SGD_KERNEL(float)
LT_SGD_KERNEL(double)

lt_status lt__cpu_sgd_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity, double lr, double momentum,
                           double weight_decay, bool nesterov, bool first_step) {
    int64_t n = lt__numel(param->shape, param->ndim);
    if (param->dtype == LT_F32)
        lt__sgd_float(lt__data(param), lt__data(grad), velocity ? lt__data(velocity) : NULL, n, (float)lr,
                      (float)momentum, (float)weight_decay, nesterov, first_step);
    else
        lt__sgd_double(lt__data(param), lt__data(grad), velocity ? lt__data(velocity) : NULL, n, lr, momentum,
                       weight_decay, nesterov, first_step);
    return LT_OK;
}
