/* The CPU backend's kernels: the reference implementation that every other backend is tested against.
 * One file per op family (src/cpu/<family>.c), each filling its entries of the table in src/cpu/backend.c. */
#ifndef LT_CPU_H
#define LT_CPU_H

#include "backend.h"

lt_status lt__cpu_synchronize(int device_index);
lt_status lt__cpu_fill(lt_tensor *y, double value);
lt_status lt__cpu_copy(lt_tensor *dst, const lt_tensor *src);
lt_status lt__cpu_arange(lt_tensor *y, double start, double step);
lt_status lt__cpu_philox(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal);
lt_status lt__cpu_unary(lt__unary_op op, const lt_tensor *x, lt_tensor *y);
lt_status lt__cpu_unary_backward(lt__unary_op op, const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                 lt_tensor *gx);
lt_status lt__cpu_binary(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y);
lt_status lt__cpu_scalar(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y);
lt_status lt__cpu_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *y);
lt_status lt__cpu_reduce(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y);
lt_status lt__cpu_max_backward(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy, uint32_t dim_mask,
                               lt_tensor *gx);
lt_status lt__cpu_gemm(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha, double beta,
                       const lt_tensor *bias, lt_tensor *asum, lt_tensor *c);
lt_status lt__cpu_softmax(const lt_tensor *x, int dim, bool log, lt_tensor *y);
lt_status lt__cpu_softmax_backward(const lt_tensor *y, const lt_tensor *gy, int dim, bool log, lt_tensor *gx);
lt_status lt__cpu_layer_norm(const lt_tensor *x, const lt_tensor *r, const lt_tensor *w, const lt_tensor *b, double eps,
                             lt_tensor *s, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd);
lt_status lt__cpu_layer_norm_backward(const lt_tensor *x, const lt_tensor *w, const lt_tensor *mean,
                                      const lt_tensor *rstd, const lt_tensor *gy, lt_tensor *gx, lt_tensor *gw,
                                      lt_tensor *gb);
lt_status lt__cpu_cross_entropy(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                lt_tensor *loss, lt_tensor *lse);
lt_status lt__cpu_cross_entropy_backward(const lt_tensor *logits, const lt_tensor *targets, int64_t ignore_index,
                                         const lt_tensor *lse, const lt_tensor *gloss, lt_tensor *glogits);
lt_status lt__cpu_embedding(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y);
lt_status lt__cpu_embedding_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw);
lt_status lt__cpu_dropout(const lt_tensor *x, double p, double scale, uint64_t seed, uint64_t offset, lt_tensor *y,
                          lt_tensor *mask);
lt_status lt__cpu_sgd_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity, double lr, double momentum,
                           double weight_decay, bool nesterov, bool first_step, double grad_scale);
lt_status lt__cpu_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse);
lt_status lt__cpu_attention_backward(const lt_tensor *qkv, const lt_tensor *y, const lt_tensor *lse,
                                     const lt_tensor *gy, int n_head, lt_tensor *gqkv);
lt_status lt__cpu_classifier_ce(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets, int64_t ignore_index,
                                double grad_scale, bool want_grad, lt_tensor *loss);
lt_status lt__cpu_sumsq(const lt_tensor *x, double *out);
lt_status lt__cpu_adamw_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v,
                             const struct lt__segment *segments, int n_segments, double lr, double beta1, double beta2,
                             double eps, int64_t step, double grad_scale);

/* The CPU caching allocator (device index 0 only). */
lt__allocator *lt__cpu_allocator(int device_index);

#endif
