/* The GPT-2 model: parameters under GPT-2's names in one lt_params set, the forward pass as fused ops, and
 * sampling. Everything here goes through the public op API, so every backend runs it unchanged. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"
#include "core/philox.h"
#include "libtrain/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LT_LN_EPS 1e-5

typedef struct lt__block {
    lt_tensor *ln1_w, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b;
    lt_tensor *ln2_w, *ln2_b, *fc_w, *fc_b, *fc_proj_w, *fc_proj_b;
} lt__block;

struct lt_gpt {
    lt_gpt_config cfg;
    lt_params *params;
    lt_tensor *wte, *wpe, *lnf_w, *lnf_b; /* borrowed from params */
    lt__block *blocks;
    lt_philox dropout_rng;
};

static lt_status lt__check_config(const char *fn, const lt_gpt_config *c) {
    LT_CHECK_NOT_NULL(fn, c);
    if (c->struct_size < sizeof(lt_gpt_config))
        return lt__err(LT_ERR_ARG, "%s: config->struct_size is %zu, expected %zu", fn, c->struct_size,
                       sizeof(lt_gpt_config));
    if (c->vocab_size < 1 || c->block_size < 1 || c->n_layer < 1 || c->n_head < 1 || c->n_embd < 1)
        return lt__err(LT_ERR_ARG,
                       "%s: vocab_size %lld, block_size %lld, n_layer %lld, n_head %lld, n_embd %lld must all be >= 1",
                       fn, (long long)c->vocab_size, (long long)c->block_size, (long long)c->n_layer,
                       (long long)c->n_head, (long long)c->n_embd);
    if (c->padded_vocab_size != 0 && c->padded_vocab_size < c->vocab_size)
        return lt__err(LT_ERR_ARG, "%s: padded_vocab_size %lld is below vocab_size %lld", fn,
                       (long long)c->padded_vocab_size, (long long)c->vocab_size);
    if (c->n_embd % c->n_head != 0)
        return lt__err(LT_ERR_ARG, "%s: n_embd %lld is not divisible by n_head %lld", fn, (long long)c->n_embd,
                       (long long)c->n_head);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return lt__err(LT_ERR_ARG, "%s: dropout %g must be in [0, 1)", fn, c->dropout);
    return LT_OK;
}

/* Adds `name` to the set and fills it in place: N(0, std) from rng when std > 0 (the numbers lt_tensor_randn would
 * give, scaled), else the constant `fill`. Writing into the parameter itself keeps initialisation free of temporaries
 * the size of the largest weight. */
static lt_status lt__param(lt_gpt *m, const char *name, const int64_t *shape, int ndim, double std, double fill,
                           lt_philox *rng, lt_tensor **out) {
    LT_TRY(lt_params_add(m->params, name, shape, ndim, out));
    lt_tensor *t = *out;
    const lt__backend *be = lt__backend_of(t);
    if (std > 0) {
        LT_TRY(be->philox(t, rng->seed, rng->offset, true));
        rng->offset += ((uint64_t)lt__numel(shape, ndim) + 3) & ~(uint64_t)3;
        return be->scalar(LT_SOP_MUL, t, std, t);
    }
    return fill == 0 ? LT_OK : be->fill(t, fill); /* lt_params_add zero-fills */
}

/* The parameter count of a config: embeddings, 12 tensors per block, the final LayerNorm. */
static int64_t lt__gpt_numel(const lt_gpt_config *c) {
    int64_t C = c->n_embd;
    return (c->padded_vocab_size + c->block_size) * C + c->n_layer * (12 * C * C + 13 * C) + 2 * C;
}

static lt_status lt__build(lt_gpt *m, uint64_t seed) {
    const lt_gpt_config *c = &m->cfg;
    int64_t C = c->n_embd, Vp = c->padded_vocab_size, L = c->n_layer;
    double std = 0.02, proj_std = 0.02 / sqrt(2.0 * (double)L);
    lt_philox rng = {seed, 0};
    char name[128];
    LT_TRY(lt_params_reserve(m->params, lt__gpt_numel(c)));
    LT_TRY(lt__param(m, "wte.weight", (int64_t[]){Vp, C}, 2, std, 0, &rng, &m->wte));
    LT_TRY(lt__param(m, "wpe.weight", (int64_t[]){c->block_size, C}, 2, std, 0, &rng, &m->wpe));
    LT_TRY(lt_params_set_decay(m->params, "wte.weight", false));
    LT_TRY(lt_params_set_decay(m->params, "wpe.weight", false));
    for (int64_t l = 0; l < L; l++) {
        lt__block *b = &m->blocks[l];
        struct {
            const char *suffix;
            int64_t rows, cols; /* cols == 0: a vector of `rows` */
            double std, fill;
            lt_tensor **slot;
        } spec[] = {
            {"ln_1.weight", C, 0, 0, 1, &b->ln1_w},
            {"ln_1.bias", C, 0, 0, 0, &b->ln1_b},
            {"attn.c_attn.weight", C, 3 * C, std, 0, &b->attn_w},
            {"attn.c_attn.bias", 3 * C, 0, 0, 0, &b->attn_b},
            {"attn.c_proj.weight", C, C, proj_std, 0, &b->proj_w},
            {"attn.c_proj.bias", C, 0, 0, 0, &b->proj_b},
            {"ln_2.weight", C, 0, 0, 1, &b->ln2_w},
            {"ln_2.bias", C, 0, 0, 0, &b->ln2_b},
            {"mlp.c_fc.weight", C, 4 * C, std, 0, &b->fc_w},
            {"mlp.c_fc.bias", 4 * C, 0, 0, 0, &b->fc_b},
            {"mlp.c_proj.weight", 4 * C, C, proj_std, 0, &b->fc_proj_w},
            {"mlp.c_proj.bias", C, 0, 0, 0, &b->fc_proj_b},
        };
        for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
            snprintf(name, sizeof name, "h.%lld.%s", (long long)l, spec[i].suffix);
            int64_t shape[2] = {spec[i].rows, spec[i].cols};
            LT_TRY(lt__param(m, name, shape, spec[i].cols ? 2 : 1, spec[i].std, spec[i].fill, &rng, spec[i].slot));
        }
    }
    LT_TRY(lt__param(m, "ln_f.weight", &C, 1, 0, 1, &rng, &m->lnf_w));
    return lt__param(m, "ln_f.bias", &C, 1, 0, 0, &rng, &m->lnf_b);
}

LT_API lt_status lt_gpt_create(const lt_gpt_config *config, lt_dtype dtype, lt_device device, uint64_t seed,
                               lt_gpt **out) {
    static const char *fn = "lt_gpt_create";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_TRY(lt__check_config(fn, config));
    lt_gpt *m = calloc(1, sizeof *m);
    if (m) m->blocks = calloc((size_t)config->n_layer, sizeof(lt__block));
    if (!m || !m->blocks) {
        free(m);
        return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    }
    m->cfg = *config;
    m->cfg.struct_size = sizeof m->cfg;
    if (m->cfg.padded_vocab_size == 0) m->cfg.padded_vocab_size = m->cfg.vocab_size;
    m->dropout_rng = (lt_philox){seed ^ 0x5DEECE66Dull, 0};
    lt_status st = lt_params_create(dtype, device, &m->params);
    if (st == LT_OK) {
        LT_TRY_GOTO(lt__scope_begin(), fail);
        lt_no_grad_begin();
        st = lt__build(m, seed);
        lt_no_grad_end();
        lt__scope_end();
    }
fail:
    if (st != LT_OK) {
        lt_gpt_free(m);
        return st;
    }
    *out = m;
    return LT_OK;
}

LT_API void lt_gpt_free(lt_gpt *m) {
    if (!m) return;
    lt_params_free(m->params);
    free(m->blocks);
    free(m);
}

LT_API lt_params *lt_gpt_params(lt_gpt *m) { return m ? m->params : NULL; }
LT_API lt_philox *lt_gpt_rng(lt_gpt *m) { return m ? &m->dropout_rng : NULL; }

LT_API lt_status lt_gpt_get_config(const lt_gpt *m, lt_gpt_config *config) {
    static const char *fn = "lt_gpt_get_config";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, m);
    LT_CHECK_NOT_NULL(fn, config);
    if (config->struct_size < sizeof(lt_gpt_config))
        return lt__err(LT_ERR_ARG, "%s: config->struct_size is %zu, expected %zu", fn, config->struct_size,
                       sizeof(lt_gpt_config));
    *config = m->cfg;
    return LT_OK;
}

/* The residual step after a sublayer f: x + dropout(f) (dropout only in training), fused with the layer norm that
 * follows it (the next sublayer's, or ln_f after the last block): *x_out is the new stream, *h_out its norm. */
static lt_status lt__residual_ln(lt_gpt *m, bool train, const lt_tensor *x, lt_tensor *f, const lt_tensor *ln_w,
                                 const lt_tensor *ln_b, lt_tensor **x_out, lt_tensor **h_out) {
    if (train && m->cfg.dropout > 0) LT_TRY(lt_dropout(f, m->cfg.dropout, &m->dropout_rng, &f));
    return lt_residual_layer_norm(x, f, ln_w, ln_b, LT_LN_EPS, x_out, h_out);
}

/* One pre-LayerNorm block: x + attn(ln_1(x)), then + mlp(ln_2(x)). h is ln_1(x), computed by the step before; the
 * block returns its output stream in *x_out and that stream normalised by next_w, next_b (the next block's ln_1, or
 * ln_f) in *h_out. */
static lt_status lt__block_forward(lt_gpt *m, const lt__block *b, bool train, lt_tensor *x, lt_tensor *h,
                                   const lt_tensor *next_w, const lt_tensor *next_b, lt_tensor **x_out,
                                   lt_tensor **h_out) {
    lt_tensor *t;
    LT_TRY(lt_linear(h, b->attn_w, b->attn_b, &t));
    LT_TRY(lt_attention(t, (int)m->cfg.n_head, &h));
    LT_TRY(lt_linear(h, b->proj_w, b->proj_b, &t));
    LT_TRY(lt__residual_ln(m, train, x, t, b->ln2_w, b->ln2_b, &x, &h));
    LT_TRY(lt_linear(h, b->fc_w, b->fc_b, &t));
    LT_TRY(lt_gelu(t, LT_GELU_TANH, &h));
    LT_TRY(lt_linear(h, b->fc_proj_w, b->fc_proj_b, &t));
    return lt__residual_ln(m, train, x, t, next_w, next_b, x_out, h_out);
}

static lt_status lt__check_ids(const char *fn, const char *arg, const lt_tensor *t, int64_t B, int64_t T) {
    LT_TRY(lt__check_tensor(fn, arg, t));
    if (t->dtype != LT_I32 && t->dtype != LT_I64)
        return lt__err(LT_ERR_DTYPE, "%s: %s has dtype %s, expected i32 or i64", fn, arg, lt_dtype_name(t->dtype));
    if (t->ndim != 2 || (B >= 0 && (t->shape[0] != B || t->shape[1] != T))) {
        char s[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: %s has shape %s, expected [B, T]%s", fn, arg,
                       lt__fmt_shape(s, sizeof s, t->shape, t->ndim), B >= 0 ? " like idx" : "");
    }
    return LT_OK;
}

LT_API lt_status lt_gpt_forward(lt_gpt *m, const lt_tensor *idx, const lt_tensor *targets, bool train,
                                lt_tensor **logits, lt_tensor **loss) {
    static const char *fn = "lt_gpt_forward";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, m);
    if (logits) *logits = NULL;
    if (loss) *loss = NULL;
    if (!logits && !loss) return lt__err(LT_ERR_ARG, "%s: logits and loss are both NULL", fn);
    if (loss && !targets) return lt__err(LT_ERR_ARG, "%s: a loss needs targets", fn);
    LT_TRY(lt__check_ids(fn, "idx", idx, -1, -1));
    int64_t B = idx->shape[0], T = idx->shape[1], C = m->cfg.n_embd;
    if (targets) LT_TRY(lt__check_ids(fn, "targets", targets, B, T));
    if (T > m->cfg.block_size)
        return lt__err(LT_ERR_SHAPE, "%s: sequence length %lld exceeds block_size %lld", fn, (long long)T,
                       (long long)m->cfg.block_size);
    LT_TRY(lt__check_same_device(fn, idx, m->wte));
    if (m->cfg.vocab_size < m->cfg.padded_vocab_size) { /* padding rows exist but must never be looked up */
        lt_tensor *mx;
        double top = 0;
        LT_TRY(lt__scope_begin());
        lt_status st = lt_tensor_to(idx, LT_F64, idx->storage->device, &mx); /* ids are exact in f64 */
        if (st == LT_OK) st = lt_max(mx, NULL, 0, false, &mx);
        if (st == LT_OK) st = lt_tensor_to_host(mx, &top, sizeof top);
        lt__scope_end();
        LT_TRY(st);
        if (top >= m->cfg.vocab_size)
            return lt__err(LT_ERR_RANGE, "%s: token id %.0f is outside the vocabulary [0, %lld)", fn, top,
                           (long long)m->cfg.vocab_size);
    }
    lt_tensor *x, *pos;
    LT_TRY(lt_embedding(m->wte, idx, &x)); /* checks ids < padded_vocab_size */
    LT_TRY(lt_slice(m->wpe, 0, 0, T, 1, &pos));
    LT_TRY(lt_add(x, pos, &x));
    if (train && m->cfg.dropout > 0) LT_TRY(lt_dropout(x, m->cfg.dropout, &m->dropout_rng, &x));
    lt_tensor *h; /* n_layer >= 1 (checked at creation): the last block's step applies ln_f */
    LT_TRY(lt_layer_norm(x, m->blocks[0].ln1_w, m->blocks[0].ln1_b, LT_LN_EPS, &h, NULL, NULL));
    for (int64_t l = 0; l < m->cfg.n_layer; l++) {
        bool last = l + 1 == m->cfg.n_layer;
        const lt_tensor *nw = last ? m->lnf_w : m->blocks[l + 1].ln1_w;
        const lt_tensor *nb = last ? m->lnf_b : m->blocks[l + 1].ln1_b;
        LT_TRY(lt__block_forward(m, &m->blocks[l], train, x, h, nw, nb, &x, &h));
    }
    x = h;
    if (loss) {
        lt_tensor *flat, *tflat;
        int64_t N = B * T;
        LT_TRY(lt_reshape(x, (int64_t[]){N, C}, 2, &flat));
        LT_TRY(lt_reshape(targets, &N, 1, &tflat));
        LT_TRY(lt_classifier_loss(flat, m->wte, tflat, m->cfg.vocab_size, -1, loss));
    }
    if (logits) LT_TRY(lt_matmul(x, m->wte, false, true, logits));
    return LT_OK;
}

/* Samples one id from logits[0:V] / temperature restricted to the top_k largest, with u uniform in (0, 1]. */
static int32_t lt__sample_row(const float *logits, int64_t V, double temperature, int top_k, float u, float *scratch) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    float cut = -INFINITY;
    if (top_k > 0 && top_k < V) { /* the k-th largest value: select by repeated max over a scratch copy */
        memcpy(scratch, logits, sizeof(float) * (size_t)V);
        for (int k = 0; k < top_k; k++) {
            int64_t best = 0;
            for (int64_t i = 1; i < V; i++) best = scratch[i] > scratch[best] ? i : best;
            cut = scratch[best];
            scratch[best] = -INFINITY;
        }
    }
    double total = 0;
    for (int64_t i = 0; i < V; i++) total += logits[i] >= cut ? exp((logits[i] - mx) / temperature) : 0;
    double target = (double)u * total, acc = 0;
    for (int64_t i = 0; i < V; i++) {
        if (logits[i] < cut) continue;
        acc += exp((logits[i] - mx) / temperature);
        if (acc >= target) return (int32_t)i;
    }
    for (int64_t i = V - 1; i >= 0; i--) /* rounding left target just above the sum: take the last kept id */
        if (logits[i] >= cut) return (int32_t)i;
    return 0;
}

LT_API lt_status lt_gpt_sample(lt_gpt *m, const int32_t *prompt, int n_prompt, int n_new, double temperature, int top_k,
                               uint64_t seed, int32_t *out) {
    static const char *fn = "lt_gpt_sample";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, m);
    LT_CHECK_NOT_NULL(fn, prompt);
    LT_CHECK_NOT_NULL(fn, out);
    if (n_prompt < 1 || n_new < 0 || !(temperature > 0) || top_k < 0)
        return lt__err(LT_ERR_ARG, "%s: n_prompt %d (>= 1), n_new %d (>= 0), temperature %g (> 0), top_k %d (>= 0)", fn,
                       n_prompt, n_new, temperature, top_k);
    int64_t V = m->cfg.vocab_size, Vp = m->cfg.padded_vocab_size;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return lt__err(LT_ERR_RANGE, "%s: prompt[%d] = %d is outside [0, %lld)", fn, i, prompt[i], (long long)V);
    memmove(out, prompt, sizeof(int32_t) * (size_t)n_prompt);
    float *row = malloc(sizeof(float) * 2 * (size_t)Vp);
    if (!row) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    lt_status st = LT_OK;
    lt_philox rng = {seed, 0};
    lt_no_grad_begin();
    for (int i = 0; st == LT_OK && i < n_new; i++) {
        int len = n_prompt + i;
        int64_t T = len < m->cfg.block_size ? len : m->cfg.block_size;
        lt_tensor *idx, *logits, *last;
        st = lt__scope_begin();
        if (st != LT_OK) break;
        st = lt_tensor_from_host(out + len - T, (int64_t[]){1, T}, 2, LT_I32, m->wte->storage->device, &idx);
        if (st == LT_OK) st = lt_gpt_forward(m, idx, NULL, false, &logits, NULL);
        if (st == LT_OK) st = lt_slice(logits, 1, T - 1, T, 1, &last);
        if (st == LT_OK) st = lt_tensor_to(last, LT_F32, LT_DEVICE_CPU, &last);
        if (st == LT_OK) st = lt_tensor_to_host(last, row, sizeof(float) * (size_t)Vp);
        lt__scope_end();
        float u = lt__philox_u01(lt__philox_word(rng.seed, rng.offset++));
        if (st == LT_OK) out[len] = lt__sample_row(row, V, temperature, top_k, u, row + Vp);
    }
    lt_no_grad_end();
    free(row);
    return st;
}
