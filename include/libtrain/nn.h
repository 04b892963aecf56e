/* libtrain Transformer building blocks: fused functional layers and the GPT model.
 * Layers are functions over tensors plus parameters held in an lt_params set; fused ops (attention, the classifier
 * with its loss) are single autograd nodes with hand-written backward passes. Ownership follows tensor.h. */
#ifndef LIBTRAIN_NN_H
#define LIBTRAIN_NN_H

#include "ops.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Fused functional layers ---- */

/* y = x @ w + b for x [..., in], w [in, out] (GPT-2's Conv1D layout) and b [out] or NULL; y is [..., out].
 * One GEMM with the bias folded in; the backward gives dx, dw and db from one pass over dy.
 * LT_ERR_SHAPE when x's last dim differs from w's first. */
LT_API lt_status lt_linear(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b, lt_tensor **out);

/* The pre-norm residual step in one op: s = x + r and y = layer_norm(s) (as lt_layer_norm with weight, bias and
 * eps), both returned: s continues the residual stream, y feeds the next sublayer. x and r have the same shape
 * [..., C] and dtype (any strides); weight and bias are [C] or NULL. One pass over the rows reads x and r and writes
 * s and y; s and y are bit-for-bit those of lt_add followed by lt_layer_norm. Differentiable in x, r, weight and bias,
 * with the gradients of s and y combined. LT_ERR_SHAPE when r's shape differs from x's. */
LT_API lt_status lt_residual_layer_norm(const lt_tensor *x, const lt_tensor *r, const lt_tensor *weight,
                                        const lt_tensor *bias, double eps, lt_tensor **sum_out, lt_tensor **y_out);

/* Causal multi-head self-attention of qkv [B, T, 3C] (q, k and v concatenated on the last dim, as GPT-2's
 * c_attn produces them) with n_head heads of size C / n_head: y [B, T, C] = softmax(q k^T / sqrt(hs) + causal
 * mask) v per head, heads concatenated. Flash-style: only the per-row log-sum-exp [B, n_head, T] is kept for the
 * backward, which recomputes the probabilities block by block; no T x T matrix outlives a call.
 * LT_ERR_SHAPE when the last dim is not 3C with C divisible by n_head. */
LT_API lt_status lt_attention(const lt_tensor *qkv, int n_head, lt_tensor **out);

/* The language-model head and its loss in one op: logits = x @ w^T for x [N, C] and w [V, C] (the tied token
 * embedding), restricted to the first vocab_size columns (padding columns get no probability), then cross-entropy
 * against targets [N] (i32/i64; ignore_index skipped) with the mean over counted rows. The logits are computed
 * in chunks of rows and turned into their gradient in place, so the probabilities are never stored twice. The
 * gradients of x and w are computed during the call and kept for the backward; only when all N rows fit one chunk
 * and N < C is the [N, V] logit gradient (then smaller than w's [V, C] gradient) kept instead, for the backward to
 * finish w's gradient from. *loss is a scalar; with every row ignored (or N = 0) it is NaN, as PyTorch
 * gives, and the gradients are zero. LT_ERR_RANGE for a target outside [0, vocab_size); LT_ERR_ARG for vocab_size
 * outside [1, rows of w]. */
LT_API lt_status lt_classifier_loss(const lt_tensor *x, const lt_tensor *w, const lt_tensor *targets,
                                    int64_t vocab_size, int64_t ignore_index, lt_tensor **loss);

/* ---- GPT ---- */

typedef struct lt_gpt_config {
    size_t struct_size;        /* sizeof(lt_gpt_config) */
    int64_t vocab_size;        /* tokens that exist, e.g. 50257 */
    int64_t padded_vocab_size; /* rows of wte, >= vocab_size (e.g. 50304 for aligned GEMMs); 0 means vocab_size */
    int64_t block_size;        /* maximum context length T */
    int64_t n_layer, n_head, n_embd;
    double dropout; /* on embeddings, attention output and MLP output in training mode; 0 disables */
} lt_gpt_config;

typedef struct lt_gpt lt_gpt;

/* A GPT-2 model with GPT-2's initialisation: weights N(0, 0.02), residual projections (attn.c_proj and
 * mlp.c_proj) N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weights 1, all drawn from Philox(seed).
 * Parameters carry GPT-2's names (wte.weight, wpe.weight, h.0.ln_1.weight, h.0.attn.c_attn.weight, ...,
 * ln_f.bias) in one lt_params set; the LM head is tied to wte. Weight decay is off for biases, LayerNorm weights
 * and embeddings. LT_ERR_ARG for an inconsistent config (n_embd not divisible by n_head, sizes < 1, dropout
 * outside [0, 1)). lt_gpt_free(NULL) is a no-op. */
LT_API lt_status lt_gpt_create(const lt_gpt_config *config, lt_dtype dtype, lt_device device, uint64_t seed,
                               lt_gpt **out);
LT_API void lt_gpt_free(lt_gpt *model);
/* The model's parameter set, borrowed: valid until lt_gpt_free. */
LT_API lt_params *lt_gpt_params(lt_gpt *model);
/* Copies the model's config into *config (config->struct_size must be set). */
LT_API lt_status lt_gpt_get_config(const lt_gpt *model, lt_gpt_config *config);
/* The Philox state that dropout draws from, borrowed; save and restore it to resume a run exactly. */
LT_API lt_philox *lt_gpt_rng(lt_gpt *model);

/* Runs the model on token ids idx [B, T] (i32 or i64, T <= block_size). With targets [B, T] (ids, or
 * ignore_index -1 to skip a position) *loss receives the mean cross-entropy through the fused classifier; with
 * logits != NULL, *logits receives [B, T, padded_vocab_size] (costly: skip it when training). train enables
 * dropout. Either output may be NULL, not both. LT_ERR_RANGE for an id outside [0, vocab_size). */
LT_API lt_status lt_gpt_forward(lt_gpt *model, const lt_tensor *idx, const lt_tensor *targets, bool train,
                                lt_tensor **logits, lt_tensor **loss);

/* Extends prompt (n_prompt >= 1 ids) by n_new ids sampled with temperature (> 0) and top_k (0 = all tokens) from
 * Philox(seed), writing n_prompt + n_new ids into out. Uses at most the last block_size ids as context. */
LT_API lt_status lt_gpt_sample(lt_gpt *model, const int32_t *prompt, int n_prompt, int n_new, double temperature,
                               int top_k, uint64_t seed, int32_t *out);

#ifdef __cplusplus
}
#endif

#endif
