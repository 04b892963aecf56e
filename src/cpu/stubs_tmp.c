/* TEMPORARY during bring-up: weak stubs so the library links while op families are written. Removed before release. */
#include "core/error.h"
#include "cpu/cpu.h"

__attribute__((weak)) lt_status lt__cpu_fill(lt_tensor *y, double value) {
    (void)y;
    (void)value;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: fill is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_copy(lt_tensor *dst, const lt_tensor *src) {
    (void)dst;
    (void)src;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: copy is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_arange(lt_tensor *y, double start, double step) {
    (void)y;
    (void)start;
    (void)step;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: arange is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_philox(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal) {
    (void)y;
    (void)seed;
    (void)offset;
    (void)normal;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: philox is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_unary(lt__unary_op op, const lt_tensor *x, lt_tensor *y) {
    (void)op;
    (void)x;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: unary is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_unary_backward(lt__unary_op op, const lt_tensor *x, const lt_tensor *y,
                                                       const lt_tensor *gy, lt_tensor *gx) {
    (void)op;
    (void)x;
    (void)y;
    (void)gy;
    (void)gx;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: unary_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_binary(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    (void)op;
    (void)a;
    (void)b;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: binary is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_scalar(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y) {
    (void)op;
    (void)x;
    (void)s;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: scalar is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b,
                                              lt_tensor *y) {
    (void)cond;
    (void)a;
    (void)b;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: where is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_reduce(lt__reduce_op op, const lt_tensor *x, uint32_t dim_mask, lt_tensor *y) {
    (void)op;
    (void)x;
    (void)dim_mask;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: reduce is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_max_backward(const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                                     uint32_t dim_mask, lt_tensor *gx) {
    (void)x;
    (void)y;
    (void)gy;
    (void)dim_mask;
    (void)gx;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: max_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_gemm(const lt_tensor *a, const lt_tensor *b, bool ta, bool tb, double alpha,
                                             double beta, lt_tensor *c) {
    (void)a;
    (void)b;
    (void)ta;
    (void)tb;
    (void)alpha;
    (void)beta;
    (void)c;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: gemm is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_softmax(const lt_tensor *x, int dim, bool log, lt_tensor *y) {
    (void)x;
    (void)dim;
    (void)log;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: softmax is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_softmax_backward(const lt_tensor *y, const lt_tensor *gy, int dim, bool log,
                                                         lt_tensor *gx) {
    (void)y;
    (void)gy;
    (void)dim;
    (void)log;
    (void)gx;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: softmax_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_layer_norm(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b,
                                                   double eps, lt_tensor *y, lt_tensor *mean, lt_tensor *rstd) {
    (void)x;
    (void)w;
    (void)b;
    (void)eps;
    (void)y;
    (void)mean;
    (void)rstd;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: layer_norm is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_layer_norm_backward(const lt_tensor *x, const lt_tensor *w,
                                                            const lt_tensor *mean, const lt_tensor *rstd,
                                                            const lt_tensor *gy, lt_tensor *gx, lt_tensor *gw,
                                                            lt_tensor *gb) {
    (void)x;
    (void)w;
    (void)mean;
    (void)rstd;
    (void)gy;
    (void)gx;
    (void)gw;
    (void)gb;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: layer_norm_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_cross_entropy(const lt_tensor *logits, const lt_tensor *targets,
                                                      int64_t ignore_index, lt_tensor *loss, lt_tensor *lse) {
    (void)logits;
    (void)targets;
    (void)ignore_index;
    (void)loss;
    (void)lse;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: cross_entropy is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_cross_entropy_backward(const lt_tensor *logits, const lt_tensor *targets,
                                                               int64_t ignore_index, const lt_tensor *lse,
                                                               const lt_tensor *gloss, lt_tensor *glogits) {
    (void)logits;
    (void)targets;
    (void)ignore_index;
    (void)lse;
    (void)gloss;
    (void)glogits;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: cross_entropy_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_embedding(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y) {
    (void)w;
    (void)idx;
    (void)y;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: embedding is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_embedding_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw) {
    (void)gy;
    (void)idx;
    (void)gw;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: embedding_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_dropout(const lt_tensor *x, double p, double scale, uint64_t seed,
                                                uint64_t offset, lt_tensor *y, lt_tensor *mask) {
    (void)x;
    (void)p;
    (void)scale;
    (void)seed;
    (void)offset;
    (void)y;
    (void)mask;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: dropout is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_sgd_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *velocity,
                                                 double lr, double momentum, double weight_decay, bool nesterov,
                                                 bool first_step) {
    (void)param;
    (void)grad;
    (void)velocity;
    (void)lr;
    (void)momentum;
    (void)weight_decay;
    (void)nesterov;
    (void)first_step;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: sgd_step is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse) {
    (void)qkv;
    (void)n_head;
    (void)y;
    (void)lse;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: attention is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_attention_backward(const lt_tensor *qkv, const lt_tensor *y,
                                                           const lt_tensor *lse, const lt_tensor *gy, int n_head,
                                                           lt_tensor *gqkv) {
    (void)qkv;
    (void)y;
    (void)lse;
    (void)gy;
    (void)n_head;
    (void)gqkv;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: attention_backward is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_classifier_ce(lt_tensor *logits, int64_t vocab_size, const lt_tensor *targets,
                                                      int64_t ignore_index, double grad_scale, bool want_grad,
                                                      lt_tensor *loss) {
    (void)logits;
    (void)vocab_size;
    (void)targets;
    (void)ignore_index;
    (void)grad_scale;
    (void)want_grad;
    (void)loss;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: classifier_ce is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_sumsq(const lt_tensor *x, double *out) {
    (void)x;
    (void)out;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: sumsq is not implemented yet");
}

__attribute__((weak)) lt_status lt__cpu_adamw_step(lt_tensor *param, const lt_tensor *grad, lt_tensor *m, lt_tensor *v,
                                                   const struct lt__segment *segments, int n_segments, double lr,
                                                   double beta1, double beta2, double eps, int64_t step) {
    (void)param;
    (void)grad;
    (void)m;
    (void)v;
    (void)segments;
    (void)n_segments;
    (void)lr;
    (void)beta1;
    (void)beta2;
    (void)eps;
    (void)step;
    return lt__err(LT_ERR_UNSUPPORTED, "cpu backend: adamw_step is not implemented yet");
}
