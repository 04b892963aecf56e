/* libtrain ops: functional, differentiable operations on tensors.
 * Every op follows tensor.h's ownership rule for *out, records a backward node when grad mode is on and an input
 * requires grad, and fails with LT_ERR_DEVICE when its tensor inputs live on different devices. Float ops accept
 * f32 and f64; mixing dtypes is LT_ERR_DTYPE. Binary ops broadcast as NumPy does (LT_ERR_SHAPE when they cannot).
 * Inputs may be any strided view; outputs are contiguous. */
#ifndef LIBTRAIN_OPS_H
#define LIBTRAIN_OPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Arithmetic, broadcasting ---- */
LT_API lt_status lt_add(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);
LT_API lt_status lt_sub(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);
LT_API lt_status lt_mul(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);
LT_API lt_status lt_div(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);
/* a ** b elementwise; the gradient with respect to b needs a > 0 where it is used. */
LT_API lt_status lt_pow(const lt_tensor *a, const lt_tensor *b, lt_tensor **out);
LT_API lt_status lt_neg(const lt_tensor *a, lt_tensor **out);
/* a + s, a * s, a ** s, and s - a (rsub) / s / a (rdiv) for a scalar s. */
LT_API lt_status lt_add_scalar(const lt_tensor *a, double s, lt_tensor **out);
LT_API lt_status lt_mul_scalar(const lt_tensor *a, double s, lt_tensor **out);
LT_API lt_status lt_pow_scalar(const lt_tensor *a, double s, lt_tensor **out);
LT_API lt_status lt_rsub_scalar(const lt_tensor *a, double s, lt_tensor **out);
LT_API lt_status lt_rdiv_scalar(const lt_tensor *a, double s, lt_tensor **out);

/* ---- Unary ---- */
LT_API lt_status lt_exp(const lt_tensor *a, lt_tensor **out);
/* log, sqrt and rsqrt of values outside their domain give NaN/inf as IEEE says; no error. */
LT_API lt_status lt_log(const lt_tensor *a, lt_tensor **out);
LT_API lt_status lt_sqrt(const lt_tensor *a, lt_tensor **out);
LT_API lt_status lt_rsqrt(const lt_tensor *a, lt_tensor **out);
LT_API lt_status lt_tanh(const lt_tensor *a, lt_tensor **out);
LT_API lt_status lt_sigmoid(const lt_tensor *a, lt_tensor **out);
LT_API lt_status lt_relu(const lt_tensor *a, lt_tensor **out);

typedef enum lt_gelu_approx {
    LT_GELU_TANH = 0, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as GPT-2 */
    LT_GELU_ERF = 1   /* 0.5 x (1 + erf(x / sqrt(2))), exact */
} lt_gelu_approx;
LT_API lt_status lt_gelu(const lt_tensor *a, lt_gelu_approx approx, lt_tensor **out);

/* ---- Reductions over chosen dims. dims lists ndims distinct dims (negative counts from the end);
 * ndims == 0 reduces over every dim. keepdim keeps reduced dims with size 1. LT_ERR_RANGE for a bad dim. ---- */
LT_API lt_status lt_sum(const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out);
LT_API lt_status lt_mean(const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out);
/* The maximum; its gradient flows to the first maximal element. LT_ERR_SHAPE when reducing an empty dim. */
LT_API lt_status lt_max(const lt_tensor *a, const int *dims, int ndims, bool keepdim, lt_tensor **out);

/* ---- Matrix products ---- */
/* Matrix product of the last two dims of a and b, broadcasting the leading dims. trans_a/trans_b read a or b
 * transposed without copying. Both need at least 2 dims. LT_ERR_SHAPE when the inner dims differ or the
 * leading dims do not broadcast. Uses OpenBLAS sgemm/dgemm on the CPU.
 * Also accepts a and b both bf16: the output is bf16, rounded once from f32 accumulation (the CPU widens the operands
 * to f32 exactly and uses sgemm; a GPU uses cuBLAS's bf16 tensor-core GEMM), and the gradients are bf16. Under
 * autocast (below), f32 operands on a GPU compute in bf16 with an f32 output. */
LT_API lt_status lt_matmul(const lt_tensor *a, const lt_tensor *b, bool trans_a, bool trans_b, lt_tensor **out);

/* ---- Mixed precision (docs/mixed-precision.md) ---- */
/* Autocast: between lt_autocast_begin(LT_BF16) and the matching lt_autocast_end, on this thread, the matrix products
 * of f32 tensors on a GPU (lt_matmul, lt_linear and lt_classifier_loss) round their operands to bf16 on the device,
 * multiply them with f32 accumulation into an f32 output, and keep the bf16 copies (half the memory) for a backward
 * that gives f32 gradients, even when it runs after autocast ended. Everything else (biases, layer norm, softmax,
 * attention, losses, optimizers, parameters) stays f32, and on the CPU nothing changes: it keeps computing in f32.
 * Regions nest; an unmatched end is ignored. LT_ERR_UNSUPPORTED for LT_F16, LT_ERR_DTYPE for any other dtype. */
LT_API lt_status lt_autocast_begin(lt_dtype dtype);
LT_API void lt_autocast_end(void);
/* LT_BF16 inside an autocast region on this thread, LT_F32 outside. */
LT_API lt_dtype lt_autocast_dtype(void);

/* ---- Normalisation and losses ---- */
/* Softmax and log-softmax along dim. */
LT_API lt_status lt_softmax(const lt_tensor *a, int dim, lt_tensor **out);
LT_API lt_status lt_log_softmax(const lt_tensor *a, int dim, lt_tensor **out);
/* Layer norm over the last dim: (x - mean) * rstd * weight + bias, rstd = 1/sqrt(var + eps) with the biased
 * variance. weight and bias are 1-D of the last dim's size, or NULL. mean_out and rstd_out, when not NULL,
 * receive the saved statistics, shaped as x without its last dim (they carry no gradient). */
LT_API lt_status lt_layer_norm(const lt_tensor *x, const lt_tensor *weight, const lt_tensor *bias, double eps,
                               lt_tensor **out, lt_tensor **mean_out, lt_tensor **rstd_out);

typedef enum lt_reduction { LT_REDUCE_MEAN = 0, LT_REDUCE_SUM = 1, LT_REDUCE_NONE = 2 } lt_reduction;
/* Cross-entropy of logits [N, C] (or [C]) against integer targets [N] (i32 or i64), fused log-softmax and
 * negative log-likelihood. Targets equal to ignore_index contribute nothing, and the mean divides by the count
 * of the others (NaN when there are none, as PyTorch). LT_ERR_RANGE for a target outside [0, C) that is not
 * ignore_index. LT_REDUCE_NONE gives the per-row losses [N]. */
LT_API lt_status lt_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                  lt_reduction reduction, lt_tensor **out);

/* ---- Indexing ---- */
/* out[..., :] = weight[idx[...], :] for weight [V, C] and integer idx of any shape; out is idx's shape + [C].
 * The backward scatter-adds into weight's gradient. LT_ERR_RANGE for an index outside [0, V). */
LT_API lt_status lt_embedding(const lt_tensor *weight, const lt_tensor *idx, lt_tensor **out);
/* cond ? a : b elementwise, cond is u8 (non-zero is true); all three broadcast. */
LT_API lt_status lt_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor **out);
/* a with value wherever the u8 mask (broadcast to a) is non-zero. */
LT_API lt_status lt_masked_fill(const lt_tensor *a, const lt_tensor *mask, double value, lt_tensor **out);
/* Concatenates n tensors along dim; all other dims must match. */
LT_API lt_status lt_cat(const lt_tensor *const *tensors, int n, int dim, lt_tensor **out);
/* Splits a along dim into n views with the given sizes, which must add up to the dim's size. outs has n
 * entries, each a new tensor under the ownership rule; on failure all are NULL. */
LT_API lt_status lt_split(const lt_tensor *a, const int64_t *sizes, int n, int dim, lt_tensor **outs);

/* ---- Random ---- */
/* Zeroes each element with probability p and scales the rest by 1/(1-p), drawing from rng (advanced).
 * p == 0 returns a new reference to a; LT_ERR_ARG unless 0 <= p < 1. */
LT_API lt_status lt_dropout(const lt_tensor *a, double p, lt_philox *rng, lt_tensor **out);

#ifdef __cplusplus
}
#endif

#endif
