/* Tests of the GPT model's API beyond the PyTorch comparison (tests/model): parameter names and initialisation,
 * gradient accumulation equal to one large batch, sampling, and every error path of nn.h's model functions. */
#include "test.h"

static lt_gpt_config small_config(void) {
    return (lt_gpt_config){.struct_size = sizeof(lt_gpt_config),
                           .vocab_size = 37,
                           .padded_vocab_size = 40,
                           .block_size = 12,
                           .n_layer = 2,
                           .n_head = 2,
                           .n_embd = 16};
}

static void test_names_and_init(void) {
    lt_gpt_config c = small_config();
    lt_gpt *m;
    CHECK_OK(lt_gpt_create(&c, LT_F64, LT_DEVICE_CPU, 7, &m));
    lt_params *p = lt_gpt_params(m);
    CHECK(lt_params_count(p) == 2 + 12 * 2 + 2);
    const char *first, *last;
    lt_tensor *t;
    lt_params_get(p, 0, &first, NULL);
    lt_params_get(p, lt_params_count(p) - 1, &last, NULL);
    CHECK(strcmp(first, "wte.weight") == 0 && strcmp(last, "ln_f.bias") == 0);
    /* GPT-2's statistics: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 L), LN weights 1, biases 0 */
    struct {
        const char *name;
        double mean, std;
    } expect[] = {{"h.1.attn.c_attn.weight", 0, 0.02},
                  {"h.0.mlp.c_proj.weight", 0, 0.02 / 2.0},
                  {"h.0.ln_1.weight", 1, 0},
                  {"h.1.mlp.c_fc.bias", 0, 0}};
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        CHECK_OK(lt_params_find(p, expect[k].name, &t));
        double *v = tt_values(t), s = 0, s2 = 0;
        int64_t n = lt_tensor_numel(t);
        for (int64_t i = 0; i < n; i++) s += v[i], s2 += v[i] * v[i];
        double mean = s / n, std = sqrt(s2 / n - mean * mean);
        CHECK(fabs(mean - expect[k].mean) < 3 * expect[k].std / sqrt((double)n) + 1e-12);
        CHECK(fabs(std - expect[k].std) < 0.15 * expect[k].std + 1e-12);
        free(v);
    }
    /* decay flags: matrices decay, embeddings and vectors do not */
    for (int i = 0; i < lt_params_count(p); i++) {
        const char *name;
        lt_params_get(p, i, &name, &t);
        bool embedding = strncmp(name, "wte", 3) == 0 || strncmp(name, "wpe", 3) == 0;
        CHECK(lt_params_get_decay(p, i) == (lt_tensor_ndim(t) == 2 && !embedding));
    }
    /* the same seed gives the same model, another seed another one */
    lt_gpt *m2, *m3;
    CHECK_OK(lt_gpt_create(&c, LT_F64, LT_DEVICE_CPU, 7, &m2));
    CHECK_OK(lt_gpt_create(&c, LT_F64, LT_DEVICE_CPU, 8, &m3));
    lt_tensor *a, *b, *d;
    lt_params_flat(p, &a, NULL);
    lt_params_flat(lt_gpt_params(m2), &b, NULL);
    lt_params_flat(lt_gpt_params(m3), &d, NULL);
    size_t bytes = sizeof(double) * (size_t)lt_tensor_numel(a);
    CHECK(memcmp(lt_tensor_data(a), lt_tensor_data(b), bytes) == 0);
    CHECK(memcmp(lt_tensor_data(a), lt_tensor_data(d), bytes) != 0);
    lt_gpt_free(m);
    lt_gpt_free(m2);
    lt_gpt_free(m3);
}

static lt_tensor *ids(const int32_t *v, int64_t B, int64_t T) {
    lt_tensor *t;
    if (lt_tensor_from_host(v, (int64_t[]){B, T}, 2, LT_I32, LT_DEVICE_CPU, &t) != LT_OK) abort();
    return t;
}

/* Two micro-batches of B rows with the loss halved give the gradient of one batch of 2B rows. */
static void test_grad_accumulation(void) {
    lt_gpt_config c = small_config();
    enum { B = 2, T = 9 };
    int32_t x[2 * B * T], y[2 * B * T];
    tt_seed(3);
    for (int i = 0; i < 2 * B * T; i++) x[i] = (int32_t)tt_uniform(0, 37), y[i] = (int32_t)tt_uniform(0, 37);
    lt_gpt *m;
    CHECK_OK(lt_gpt_create(&c, LT_F64, LT_DEVICE_CPU, 11, &m));
    lt_params *p = lt_gpt_params(m);
    lt_tensor *g, *loss, *half;
    lt_params_flat(p, NULL, &g);
    int64_t n = lt_tensor_numel(g);

    CHECK_OK(lt_gpt_forward(m, ids(x, 2 * B, T), ids(y, 2 * B, T), true, NULL, &loss));
    CHECK_OK(lt_backward(loss));
    double *whole = tt_values(g);
    CHECK_OK(lt_params_zero_grad(p));
    for (int k = 0; k < 2; k++) {
        CHECK_OK(lt_gpt_forward(m, ids(x + k * B * T, B, T), ids(y + k * B * T, B, T), true, NULL, &loss));
        CHECK_OK(lt_mul_scalar(loss, 0.5, &half));
        CHECK_OK(lt_backward(half));
    }
    CHECK(tt_tensor_close("accumulated gradient", g, whole, 1e-13, 1e-10));
    (void)n;
    free(whole);
    lt_gpt_free(m);
}

/* lt_params_zero_grad_lazy over stale gradients gives the values of lt_params_zero_grad, for one backward and for two
 * accumulated ones: the first contribution to each gradient is written (linear's weight GEMM with beta = 0, the
 * embedding's scatter into a zero-filled buffer, the classifier's and the biases' copied), the rest added. */
static void test_lazy_zero_grad(void) {
    lt_gpt_config c = small_config();
    enum { B = 2, T = 9 };
    int32_t x[B * T], y[B * T];
    tt_seed(4);
    for (int i = 0; i < B * T; i++) x[i] = (int32_t)tt_uniform(0, 37), y[i] = (int32_t)tt_uniform(0, 37);
    for (int dt = 0; dt < 2; dt++) {
        lt_gpt *m;
        CHECK_OK(lt_gpt_create(&c, dt ? LT_F64 : LT_F32, LT_DEVICE_CPU, 12, &m));
        lt_params *p = lt_gpt_params(m);
        lt_tensor *g, *loss;
        for (int micro = 1; micro <= 2; micro++) {
            double *want = NULL;
            for (int lazy = 0; lazy < 2; lazy++) {
                /* stale values first: one backward's worth left in the buffer */
                CHECK_OK(lt_gpt_forward(m, ids(x, B, T), ids(y, B, T), true, NULL, &loss));
                CHECK_OK(lt_backward(loss));
                CHECK_OK(lazy ? lt_params_zero_grad_lazy(p) : lt_params_zero_grad(p));
                for (int k = 0; k < micro; k++) {
                    CHECK_OK(lt_gpt_forward(m, ids(x, B, T), ids(y, B, T), true, NULL, &loss));
                    CHECK_OK(lt_backward(loss));
                }
                CHECK_OK(lt_params_flat(p, NULL, &g));
                if (!lazy)
                    want = tt_values(g);
                else
                    CHECK(want && tt_tensor_close(dt ? "lazy zero f64" : "lazy zero f32", g, want, 0, 0));
            }
            free(want);
        }
        lt_gpt_free(m);
    }
}

/* The logits path and the fused-loss path agree, and the loss is the mean cross-entropy of those logits. */
static void test_logits_and_loss_agree(void) {
    lt_gpt_config c = small_config();
    int32_t x[2 * 5], y[2 * 5];
    for (int i = 0; i < 10; i++) x[i] = (i * 7) % 37, y[i] = (i * 5 + 1) % 37;
    y[3] = -1; /* ignored */
    lt_gpt *m;
    CHECK_OK(lt_gpt_create(&c, LT_F64, LT_DEVICE_CPU, 5, &m));
    lt_tensor *logits, *loss;
    CHECK_OK(lt_gpt_forward(m, ids(x, 2, 5), ids(y, 2, 5), false, &logits, &loss));
    CHECK(lt_tensor_dim(logits, 2) == 40);
    double *l = tt_values(logits), *v = tt_values(loss), ref = 0;
    int counted = 0;
    for (int r = 0; r < 10; r++) {
        if (y[r] < 0) continue;
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < 37; k++) mx = fmax(mx, l[r * 40 + k]);
        for (int k = 0; k < 37; k++) s += exp(l[r * 40 + k] - mx);
        ref += mx + log(s) - l[r * 40 + y[r]];
        counted++;
    }
    CHECK(fabs(v[0] - ref / counted) < 1e-12);
    free(l);
    free(v);
    lt_gpt_free(m);
}

static void test_sample(void) {
    lt_gpt_config c = small_config();
    lt_gpt *m;
    CHECK_OK(lt_gpt_create(&c, LT_F32, LT_DEVICE_CPU, 5, &m));
    int32_t a[30], b[30], d[30], prompt[2] = {3, 4};
    CHECK_OK(lt_gpt_sample(m, prompt, 2, 28, 0.9, 5, 123, a));
    CHECK_OK(lt_gpt_sample(m, prompt, 2, 28, 0.9, 5, 123, b));
    CHECK_OK(lt_gpt_sample(m, prompt, 2, 28, 0.9, 0, 124, d));
    CHECK(memcmp(a, b, sizeof a) == 0); /* seeded: reproducible */
    CHECK(memcmp(a, d, sizeof a) != 0); /* another seed: another text */
    CHECK(a[0] == 3 && a[1] == 4);      /* the prompt is kept, and the context slides past block_size */
    for (int i = 0; i < 30; i++) CHECK(a[i] >= 0 && a[i] < 37 && d[i] >= 0 && d[i] < 37); /* never a padding id */
    /* a tiny temperature with top-1 is greedy: the same as top-k 1 at any temperature */
    CHECK_OK(lt_gpt_sample(m, prompt, 2, 10, 1e-3, 1, 1, a));
    CHECK_OK(lt_gpt_sample(m, prompt, 2, 10, 5.0, 1, 2, b));
    CHECK(memcmp(a, b, sizeof(int32_t) * 12) == 0);
    lt_gpt_free(m);
}

static void test_errors(void) {
    lt_gpt_config c = small_config();
    lt_gpt *m = NULL;
    const char *fn = "lt_gpt_create";
    CHECK_ERR(lt_gpt_create(NULL, LT_F32, LT_DEVICE_CPU, 1, &m), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_create(&c, LT_F32, LT_DEVICE_CPU, 1, NULL), LT_ERR_ARG, fn);
    lt_gpt_config bad = c;
    bad.n_head = 3; /* 16 is not divisible by 3 */
    CHECK_ERR(lt_gpt_create(&bad, LT_F32, LT_DEVICE_CPU, 1, &m), LT_ERR_ARG, fn);
    CHECK(m == NULL);
    bad = c, bad.padded_vocab_size = 10;
    CHECK_ERR(lt_gpt_create(&bad, LT_F32, LT_DEVICE_CPU, 1, &m), LT_ERR_ARG, fn);
    bad = c, bad.dropout = 1.0;
    CHECK_ERR(lt_gpt_create(&bad, LT_F32, LT_DEVICE_CPU, 1, &m), LT_ERR_ARG, fn);
    bad = c, bad.n_layer = 0;
    CHECK_ERR(lt_gpt_create(&bad, LT_F32, LT_DEVICE_CPU, 1, &m), LT_ERR_ARG, fn);
    bad = c, bad.struct_size = 8;
    CHECK_ERR(lt_gpt_create(&bad, LT_F32, LT_DEVICE_CPU, 1, &m), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_create(&c, LT_I32, LT_DEVICE_CPU, 1, &m), LT_ERR_DTYPE, "lt_params_create");
    CHECK_ERR(lt_gpt_create(&c, LT_F32, ((lt_device){LT_CUDA, 0}), 1, &m), LT_ERR_DEVICE, "lt_params_create");
    lt_gpt_free(NULL);

    CHECK_OK(lt_gpt_create(&c, LT_F32, LT_DEVICE_CPU, 1, &m));
    fn = "lt_gpt_forward";
    int32_t x[2 * 13] = {0}, over[2 * 4] = {1, 2, 37, 3, 4, 5, 6, 7}; /* 37 is a padding row: not a token */
    lt_tensor *loss = NULL, *logits = NULL, *f = tt_rand((int64_t[]){2, 4}, 2, LT_F32, 0, 1);
    CHECK_ERR(lt_gpt_forward(NULL, ids(x, 2, 4), ids(x, 2, 4), true, NULL, &loss), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_forward(m, ids(x, 2, 4), ids(x, 2, 4), true, NULL, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_forward(m, ids(x, 2, 4), NULL, true, NULL, &loss), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_forward(m, f, NULL, true, &logits, NULL), LT_ERR_DTYPE, fn);
    CHECK_ERR(lt_gpt_forward(m, ids(x, 2, 13), NULL, true, &logits, NULL), LT_ERR_SHAPE, fn); /* T > block_size */
    CHECK_ERR(lt_gpt_forward(m, ids(x, 2, 4), ids(x, 4, 2), true, NULL, &loss), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_gpt_forward(m, ids(over, 2, 4), NULL, true, &logits, NULL), LT_ERR_RANGE, fn);
    CHECK(logits == NULL && loss == NULL);
    int32_t bad_target[8] = {0, 1, 2, 3, 4, 5, 6, 40};
    CHECK_ERR(lt_gpt_forward(m, ids(x, 2, 4), ids(bad_target, 2, 4), true, NULL, &loss), LT_ERR_RANGE,
              "lt_classifier_loss");

    fn = "lt_gpt_sample";
    int32_t out[8], prompt[1] = {1}, bad_prompt[1] = {37};
    CHECK_ERR(lt_gpt_sample(m, prompt, 0, 2, 1.0, 0, 1, out), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_sample(m, prompt, 1, 2, 0.0, 0, 1, out), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_sample(m, prompt, 1, 2, 1.0, -1, 1, out), LT_ERR_ARG, fn);
    CHECK_ERR(lt_gpt_sample(m, bad_prompt, 1, 2, 1.0, 0, 1, out), LT_ERR_RANGE, fn);
    CHECK_ERR(lt_gpt_sample(m, NULL, 1, 2, 1.0, 0, 1, out), LT_ERR_ARG, fn);

    lt_gpt_config got = {.struct_size = 4};
    CHECK_ERR(lt_gpt_get_config(m, &got), LT_ERR_ARG, "lt_gpt_get_config");
    got.struct_size = sizeof got;
    CHECK_OK(lt_gpt_get_config(m, &got));
    CHECK(got.n_embd == 16 && got.padded_vocab_size == 40);
    CHECK(lt_gpt_params(NULL) == NULL && lt_gpt_rng(NULL) == NULL);
    lt_gpt_free(m);
}

int main(void) {
    RUN(test_names_and_init);
    RUN(test_grad_accumulation);
    RUN(test_lazy_zero_grad);
    RUN(test_logits_and_loss_agree);
    RUN(test_sample);
    RUN(test_errors);
    return tt_finish();
}
