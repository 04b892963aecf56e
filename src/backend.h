/* The backend table: one entry per op family, filled by src/cpu (the reference) and cuda/ (a plug-in).
 * src/ops checks arguments, allocates results and calls through this table; it never includes a device header.
 * Conventions for every entry, unless it says otherwise:
 *  - all tensors are on the backend's device and have been checked by src/ops (shapes, dtypes, ranges);
 *  - inputs may have any strides, including 0 (broadcast); outputs are contiguous and freshly allocated,
 *    except where an entry says it accumulates or may alias;
 *  - compute entries take f32 or f64, with every float tensor of one call in the same dtype;
 *  - a failure sets the message through lt__err and returns its status. */
#ifndef LT_BACKEND_H
#define LT_BACKEND_H

#include "core/alloc.h"
#include "tensor/tensor_impl.h"

#ifdef __cplusplus
#define LT__STATIC_ASSERT static_assert
#else
#define LT__STATIC_ASSERT _Static_assert
#endif

typedef enum lt__unary_op {
    LT_UOP_NEG,
    LT_UOP_EXP,
    LT_UOP_LOG,
    LT_UOP_SQRT,
    LT_UOP_RSQRT,
    LT_UOP_TANH,
    LT_UOP_SIGMOID,
    LT_UOP_RELU,
    LT_UOP_GELU_TANH,
    LT_UOP_GELU_ERF,
    LT_UOP_COUNT
} lt__unary_op;

typedef enum lt__binary_op { LT_BOP_ADD, LT_BOP_SUB, LT_BOP_MUL, LT_BOP_DIV, LT_BOP_POW, LT_BOP_COUNT } lt__binary_op;

/* y = x OP s for a scalar s. RSUB is s - x, RDIV is s / x. */
typedef enum lt__scalar_op { LT_SOP_ADD, LT_SOP_MUL, LT_SOP_POW, LT_SOP_RSUB, LT_SOP_RDIV, LT_SOP_COUNT } lt__scalar_op;

typedef enum lt__reduce_op { LT_ROP_SUM, LT_ROP_MAX, LT_ROP_COUNT } lt__reduce_op;

/* A run of parameters in a flat buffer that share one weight-decay factor (see adamw_step). */
typedef struct lt__segment {
    int64_t offset, numel;
    double weight_decay;
} lt__segment;

typedef struct lt__backend {
    const char *name;
    lt__allocator *(*allocator)(int device_index); /* NULL when that device does not exist */

    /* ---- memory and creation ---- */
    /* Waits until the work queued on the device has finished; reports a failure of earlier asynchronous work. */
    lt_status (*synchronize)(int device_index);
    /* y[...] = value converted to y's dtype; any dtype, y contiguous. */
    lt_status (*fill)(lt_tensor *y, double value);
    /* dst[...] = src[...] with dtype conversion; same shape (src may be a stride-0 broadcast view); dst may be any
     * strided view (cat writes into slices). Any dtypes. A device backend also moves data to and from the host:
     * one of dst and src may then be a contiguous CPU tensor (lt_tensor_from_host, to_host and to), and a copy to
     * the host has finished when copy returns. */
    lt_status (*copy)(lt_tensor *dst, const lt_tensor *src);
    /* y[i] = start + i * step; any dtype. */
    lt_status (*arange)(lt_tensor *y, double start, double step);
    /* y = uniform (normal == false) or standard normal draws from Philox4x32-10 at (seed, offset), laid out as
     * cuRAND's curand_uniform4 / curand_normal4 give them: element i comes from 32-bit word offset + i. */
    lt_status (*philox)(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal);

    /* ---- elementwise ---- */
    lt_status (*unary)(lt__unary_op op, const lt_tensor *x, lt_tensor *y);
    /* gx = gy * f'(x). Reads y = f(x) for exp, sqrt, rsqrt, tanh and sigmoid and x for the others; the one not
     * read may be NULL (so a node need not keep its input alive). */
    lt_status (*unary_backward)(lt__unary_op op, const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                lt_tensor *gx);
    /* y = a OP b, with a and b already broadcast to y's shape. y may alias a or b exactly (in-place accumulate). */
    lt_status (*binary)(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y);
    /* y = x OP s; y may alias x exactly (in-place scaling). */
    lt_status (*scalar)(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y);
    /* y = cond ? a : b, all three already broadcast to y's shape; cond is u8. */
    lt_status (*where)(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *y);

    /* ---- reductions ---- */
    /* y = reduction of x over the dims whose bit is set in dim_mask; y has x's ndim with those dims of size 1. */
    lt_status (*reduce)(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y);
    /* gx = gy at the first position of each reduced group where x equals y (the max), 0 elsewhere.
     * y and gy have the keepdim shape. */
    lt_status (*max_backward)(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy, uint32_t dim_mask,
                              lt_tensor *gx);

    /* ---- matrix products ---- */
    /* For each batch b: c[b] = alpha * op(a[b]) @ op(b[b]) + beta * c[b], op transposing when ta/tb.
     * a, b and c are 3-D [batch, rows, cols]; a and b have unit stride in one of their last two dims and a valid
     * leading dimension in the other (at least the unit-stride dim's size, never 0), any batch stride (0 included);
     * c is contiguous and is read when beta != 0.
     * Dtypes: a, b and c all f32 or all f64 (the general rule); or a and b both bf16 with c f32 or bf16 (mixed
     * precision): the products accumulate in f32 with alpha and beta as floats, and a bf16 c is read widened to f32
     * and written rounded to nearest even once, from the f32 result. Any other combination is LT_ERR_DTYPE.
     * bias: NULL, or an [n] of c's dtype added to every row of every c[b] (only with beta == 0): bitwise c filled
     * with the broadcast bias and then the product added with beta = 1, which a backend may do without the pass
     * over c (the CPU's own sgemm adds a contiguous f32 bias in its kernel).
     * asum: NULL, or (one batch, f32 or f64) a contiguous [k] of c's dtype, written with the row sums of op(a): a
     * linear layer's bias gradient when a is dy in dx = dy w^T, which the CPU's own sgemm takes while it packs dy. */
    lt_status (*gemm)(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                      const lt_tensor *bias, lt_tensor *asum, lt_tensor *c);

    /* ---- normalisation and losses; x contiguous ---- */
    /* y = softmax or log_softmax of x along dim. */
    lt_status (*softmax)(const lt_tensor *x, int dim, bool log, lt_tensor *y);
    /* gx from the forward's output y: softmax: y * (gy - sum(gy * y)); log: gy - exp(y) * sum(gy). */
    lt_status (*softmax_backward)(const lt_tensor *y, const lt_tensor *gy, int dim, bool log, lt_tensor *gx);
    /* x [M, C] contiguous; w, b [C] or NULL; y [M, C]; mean, rstd [M]. r and s are both NULL, or both [M, C]
     * contiguous (the fused residual add): s = x + r is written (rounded to the dtype, as the add alone would) and
     * s, not x, is normalised; s must not alias x or r. */
    lt_status (*layer_norm)(const lt_tensor *x, const lt_tensor *r, const lt_tensor *w, const lt_tensor *b, double eps,
                            lt_tensor *s, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd);
    /* Writes gx [M, C] and, when not NULL, gw and gb [C] (overwritten, not accumulated). */
    lt_status (*layer_norm_backward)(const lt_tensor *x, const lt_tensor *w, const lt_tensor *mean,
                                     const lt_tensor *rstd, const lt_tensor *gy, lt_tensor *gx, lt_tensor *gw,
                                     lt_tensor *gb);
    /* logits [N, C] contiguous, targets [N] i32/i64 (checked in range or == ignore_index by src/ops).
     * loss[n] = logsumexp(logits[n]) - logits[n, t], or 0 where ignored; lse[n] = logsumexp(logits[n]). */
    lt_status (*cross_entropy)(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index, lt_tensor *loss,
                               lt_tensor *lse);
    /* glogits[n, c] = gloss[n] * (exp(logits[n, c] - lse[n]) - (c == t[n])), 0 on ignored rows. */
    lt_status (*cross_entropy_backward)(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                        const lt_tensor *lse, const lt_tensor *gloss, lt_tensor *glogits);

    /* ---- indexing ---- */
    /* y[i, :] = w[idx[i], :] for w [V, C] contiguous, idx contiguous i32/i64 with numel M, y [M, C]. */
    lt_status (*embedding)(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y);
    /* gw[idx[i], :] += gy[i, :], deterministic (same order every run). gw is accumulated, not overwritten. */
    lt_status (*embedding_backward)(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw);
    /* keep = u > p for the uniform draw u of element i at (seed, offset) as in philox; y = keep ? x * scale : 0,
     * mask[i] = keep (u8). */
    lt_status (*dropout)(const lt_tensor *x, double p, double scale, uint64_t seed, uint64_t offset, lt_tensor *y,
                         lt_tensor *mask);

    /* ---- fused Transformer ops ---- */
    /* Causal attention of qkv [B, T, 3C] contiguous with n_head heads: y [B, T, C], lse [B, n_head, T] the
     * log-sum-exp of each row of scaled scores (what the backward needs to rebuild the probabilities). */
    lt_status (*attention)(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse);
    /* gqkv [B, T, 3C] (overwritten) from qkv, y, lse and gy [B, T, C], recomputing the probabilities. */
    lt_status (*attention_backward)(const lt_tensor *qkv, const lt_tensor *y, const lt_tensor *lse, const lt_tensor *gy,
                                    int n_head, lt_tensor *gqkv);
    /* For logits [N, Vp] contiguous (modified in place) and targets [N] i32/i64 (checked by src/ops):
     * loss[n] = logsumexp(logits[n, :V]) - logits[n, t[n]] (0 where t == ignore_index). When want_grad, logits
     * is overwritten with its gradient scaled by grad_scale: (softmax(logits[n, :V]) - onehot(t[n])) * grad_scale
     * on counted rows, 0 on ignored rows and padding columns. */
    lt_status (*classifier_ce)(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets, int64_t ignore_index,
                               double grad_scale, bool want_grad, lt_tensor *loss);

    /* ---- optimizers, over flat contiguous 1-D buffers, in place ---- */
    /* *out = sum of x[i]^2 accumulated in f64 (x any float dtype, contiguous). Used for the global grad norm. */
    lt_status (*sumsq)(const lt_tensor *x, double *out);
    /* AdamW as torch.optim.AdamW, over the segments [offset, offset + numel) of the flat buffers, each with its own
     * weight-decay factor (0 turns decay off): m, v are the moments (same dtype as param). step is 1-based. Both
     * optimizers read each gradient as grad[i] * grad_scale, the factor rounded once to param's dtype and the product
     * rounded as a multiply in that dtype (so a clip factor costs no pass of its own); grad is never written. */
    lt_status (*adamw_step)(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v,
                            const struct lt__segment *segments, int n_segments, double lr, double beta1, double beta2,
                            double eps, int64_t step, double grad_scale);
    /* SGD as torch.optim.SGD with dampening 0; velocity may be NULL when momentum == 0. */
    lt_status (*sgd_step)(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity, double lr, double momentum,
                          double weight_decay, bool nesterov, bool first_step, double grad_scale);
} lt__backend;

/* Entries after name and allocator; keep in step with the struct so that a new op cannot be forgotten by a backend
 * that fills the table positionally or leaves one NULL (lt__backend_check verifies none is NULL). */
#define LT__BACKEND_ENTRIES 28
LT__STATIC_ASSERT(sizeof(lt__backend) == (2 + LT__BACKEND_ENTRIES) * sizeof(void *), "update LT__BACKEND_ENTRIES");

/* How BLAS reads one stored [rows, cols] gemm operand: as a row-major matrix (colmajor == false: unit column stride)
 * or as the transpose of a row-major [cols, rows] one (colmajor == true), with leading dimension ld. */
typedef struct lt__blas_operand {
    bool colmajor;
    int ld;
} lt__blas_operand;

/* Checks a gemm entry's arguments as every backend takes them (3-D [batch, rows, cols] operands, a contiguous c, the
 * dtypes, 32-bit BLAS sizes, a bias and an asum that fit) and how BLAS reads a and b; `who` names the backend in
 * messages. m, n, k are the product's sizes. A dim of size 1 never decides a layout and gets the smallest ld BLAS
 * accepts; a unit-stride dim whose other stride is below the row length (a stride-0 expanded matrix) is unreadable
 * (src/ops copies those). */
lt_status lt__gemm_check(const char *who, const lt_tensor *a, const lt_tensor *b, const lt_tensor *c,
                         const lt_tensor *bias, const lt_tensor *asum, double beta, int64_t m, int64_t n, int64_t k,
                         lt__blas_operand *la, lt__blas_operand *lb);
/* Headers for a gemm's asum as a reduction: *hx is op(a) as [1, m, k] (a's own view, transposed when ta) and *hy
 * asum as [1, 1, k], so that reduce(SUM, hx, dim 1, hy) writes it. */
lt_status lt__gemm_asum_headers(const lt_tensor *a, bool ta, const lt_tensor *asum, lt_tensor *hx, lt_tensor *hy);

/* The backend for a device, or NULL with LT_ERR_DEVICE set (naming who) when that device is not available. */
lt_status lt__backend_for(const char *who, lt_device device, const lt__backend **out);
/* The backend of a tensor's device; tensors only exist on available devices, so this cannot fail. */
const lt__backend *lt__backend_of(const lt_tensor *t);
/* Verifies every entry is set; lt__backend_for checks a backend once before first handing it out. */
bool lt__backend_check(const lt__backend *b);

extern const lt__backend lt__cpu_backend;

#ifdef LT_HAVE_CUDA
/* The CUDA backend (cuda/backend.cu), one table for every device. lt__cuda_device_ready initialises device `index`
 * on first use (its stream, cuBLAS handle and allocator) and fails with LT_ERR_DEVICE naming who when there is no
 * such device: no GPU, no driver, or an index out of range. */
extern const lt__backend lt__cuda_backend;
lt_status lt__cuda_device_ready(const char *who, int index);
/* The compute stream of cuda:index (a cudaStream_t), every op's stream on that device, for code outside cuda/ that
 * orders its own streams against it with events (src/dist/nccl.c); NULL when the device is not ready (call
 * lt__cuda_device_ready first) or the index is out of range. */
void *lt__cuda_stream(int device_index);
#endif

#endif
