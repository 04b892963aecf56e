/* The internal side of autocast (include/libtrain/ops.h, docs/mixed-precision.md): which matrix products run in bf16,
 * and the dtype conversion they use. Shared by lt_matmul, lt_linear and lt_classifier_loss. */
#ifndef LT_OPS_AUTOCAST_H
#define LT_OPS_AUTOCAST_H

#include "tensor/tensor_impl.h"

/* Whether a product over these tensors (n of them; NULL entries, such as an absent bias, are skipped) runs in bf16
 * now: autocast is on on this thread and every one is an f32 tensor on a CUDA device. On the CPU it never does. */
bool lt__autocast_active(const lt_tensor *const *tensors, int n);

/* A new tensor (registered in the current scope) of t's shape holding t's values converted to dtype on t's device
 * (bf16 rounds to nearest even), recording nothing. Contiguous, except that a dim which t broadcasts (stride 0, size
 * above 1) stays a stride-0 dim instead of being materialised. `who` names the caller in messages. */
lt_status lt__convert(const char *who, const lt_tensor *t, lt_dtype dtype, lt_tensor **out);

#endif
