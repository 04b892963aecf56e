/* Tests of lt_params: names, views into one flat buffer that stay valid as it grows, gradients in a second flat
 * buffer, decay flags, reserve, and every error path of params.h. */
#include "test.h"

static void test_flat_layout_and_growth(void) {
    lt_params *p;
    CHECK_OK(lt_params_create(LT_F32, LT_DEVICE_CPU, &p));
    lt_tensor *a, *b, *c, *flat, *gflat;
    CHECK_OK(lt_params_add(p, "a", (int64_t[]){2, 3}, 2, &a));
    CHECK(lt_tensor_requires_grad(a));
    lt_tensor *src = tt_rand((int64_t[]){2, 3}, 2, LT_F32, -1, 1);
    CHECK_OK(lt_tensor_copy(a, src));
    double *want = tt_values(src);
    /* many additions force the buffer to move; a's view must follow with its values */
    char name[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "grow.%d", i);
        CHECK_OK(lt_params_add(p, name, (int64_t[]){7, 11}, 2, &b));
    }
    CHECK_OK(lt_params_add(p, "c", (int64_t[]){5}, 1, &c));
    CHECK(tt_tensor_close("a after growth", a, want, 0, 0));
    CHECK(lt_params_count(p) == 52 && lt_params_numel(p) == 6 + 50 * 77 + 5);
    CHECK_OK(lt_params_flat(p, &flat, &gflat));
    CHECK(lt_tensor_numel(flat) == lt_params_numel(p) && lt_tensor_numel(gflat) == lt_params_numel(p));
    CHECK((float *)lt_tensor_data(a) == (float *)lt_tensor_data(flat)); /* first parameter at offset 0 */
    CHECK((float *)lt_tensor_data(c) == (float *)lt_tensor_data(flat) + 6 + 50 * 77);
    /* gradients land in the flat gradient buffer at the same offsets */
    lt_tensor *loss, *g;
    CHECK_OK(lt_sum(c, NULL, 0, false, &loss));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_tensor_grad(c, &g));
    CHECK((float *)lt_tensor_data(g) == (float *)lt_tensor_data(gflat) + 6 + 50 * 77);
    double *gv = tt_values(gflat);
    double ones = 0;
    for (int64_t i = 0; i < lt_params_numel(p); i++) ones += gv[i];
    CHECK(ones == 5.0);
    free(gv);
    CHECK_OK(lt_params_zero_grad(p));
    gv = tt_values(gflat);
    CHECK(gv[6 + 50 * 77] == 0.0);
    free(gv);
    /* lazily zeroed: a gradient no backward writes reads as zero through lt_params_flat and lt_tensor_grad, one
     * that a backward writes holds just that backward's contribution */
    CHECK_OK(lt_sum(c, NULL, 0, false, &loss));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_params_zero_grad_lazy(p));
    CHECK_OK(lt_sum(a, NULL, 0, false, &loss));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_tensor_grad(c, &g));
    double *cv = tt_values(g);
    CHECK(cv[0] == 0.0 && cv[4] == 0.0);
    free(cv);
    CHECK_OK(lt_params_zero_grad_lazy(p));
    CHECK_OK(lt_sum(a, NULL, 0, false, &loss));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_params_flat(p, NULL, &gflat));
    gv = tt_values(gflat);
    double sum = 0;
    for (int64_t i = 0; i < lt_params_numel(p); i++) sum += gv[i];
    CHECK(sum == 6.0 && gv[0] == 1.0 && gv[6 + 50 * 77] == 0.0);
    free(gv);
    free(want);
    lt_params_free(p);
    lt_params_free(NULL);
}

static void test_find_get_decay_reserve(void) {
    lt_params *p;
    CHECK_OK(lt_params_create(LT_F64, LT_DEVICE_CPU, &p));
    CHECK_OK(lt_params_reserve(p, 100));
    lt_tensor *w, *b, *f, *flat0, *flat1;
    CHECK_OK(lt_params_add(p, "layer.weight", (int64_t[]){4, 5}, 2, &w));
    CHECK_OK(lt_params_flat(p, &flat0, NULL));
    void *before = lt_tensor_data(w);
    CHECK_OK(lt_params_add(p, "layer.bias", (int64_t[]){5}, 1, &b));
    CHECK_OK(lt_params_flat(p, &flat1, NULL));
    CHECK(lt_tensor_data(w) == before); /* reserved: adding within the reservation does not move the buffer */
    const char *name;
    lt_tensor *t;
    CHECK_OK(lt_params_get(p, 1, &name, &t));
    CHECK(strcmp(name, "layer.bias") == 0 && t == b);
    CHECK_OK(lt_params_find(p, "layer.weight", &f));
    CHECK(f == w);
    CHECK(lt_params_get_decay(p, 0) && !lt_params_get_decay(p, 1)); /* matrices decay, vectors not */
    CHECK_OK(lt_params_set_decay(p, "layer.weight", false));
    CHECK(!lt_params_get_decay(p, 0) && !lt_params_get_decay(p, 7) && !lt_params_get_decay(NULL, 0));
    lt_params_free(p);
}

static void test_errors(void) {
    lt_params *p = NULL;
    lt_tensor *t = NULL;
    CHECK_ERR(lt_params_create(LT_I32, LT_DEVICE_CPU, &p), LT_ERR_DTYPE, "lt_params_create");
    CHECK_ERR(lt_params_create(LT_F32, ((lt_device){LT_CUDA, 0}), &p), LT_ERR_DEVICE, "lt_params_create");
    CHECK_ERR(lt_params_create(LT_F32, LT_DEVICE_CPU, NULL), LT_ERR_ARG, "lt_params_create");
    CHECK(p == NULL);
    CHECK_OK(lt_params_create(LT_F32, LT_DEVICE_CPU, &p));
    const char *fn = "lt_params_add";
    CHECK_ERR(lt_params_add(NULL, "x", (int64_t[]){2}, 1, &t), LT_ERR_ARG, fn);
    CHECK_ERR(lt_params_add(p, NULL, (int64_t[]){2}, 1, &t), LT_ERR_ARG, fn);
    CHECK_ERR(lt_params_add(p, "", (int64_t[]){2}, 1, &t), LT_ERR_ARG, fn);
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_ERR(lt_params_add(p, long_name, (int64_t[]){2}, 1, &t), LT_ERR_ARG, fn);
    CHECK_ERR(lt_params_add(p, "x", (int64_t[]){-2}, 1, &t), LT_ERR_ARG, fn);
    CHECK_ERR(lt_params_add(p, "x", (int64_t[]){2}, 9, &t), LT_ERR_ARG, fn);
    CHECK_ERR(lt_params_add(p, "x", (int64_t[]){2}, 1, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_params_add(p, "x", (int64_t[]){1ll << 40, 1ll << 30}, 2, &t), LT_ERR_OOM, fn);
    CHECK(t == NULL);
    CHECK_ERR(lt_params_flat(p, &t, NULL), LT_ERR_STATE, "lt_params_flat"); /* empty set */
    CHECK_OK(lt_params_add(p, "x", (int64_t[]){2}, 1, &t));
    CHECK_ERR(lt_params_add(p, "x", (int64_t[]){3}, 1, &t), LT_ERR_ARG, fn); /* duplicate */
    CHECK_ERR(lt_params_get(p, 1, NULL, NULL), LT_ERR_RANGE, "lt_params_get");
    CHECK_ERR(lt_params_get(NULL, 0, NULL, NULL), LT_ERR_ARG, "lt_params_get");
    CHECK_ERR(lt_params_find(p, "nope", &t), LT_ERR_RANGE, "lt_params_find");
    CHECK(t == NULL);
    CHECK_ERR(lt_params_find(p, NULL, &t), LT_ERR_ARG, "lt_params_find");
    CHECK_ERR(lt_params_set_decay(p, "nope", true), LT_ERR_RANGE, "lt_params_set_decay");
    CHECK_ERR(lt_params_reserve(p, -1), LT_ERR_ARG, "lt_params_reserve");
    CHECK_ERR(lt_params_reserve(p, 1ll << 62), LT_ERR_OOM, "lt_params_reserve");
    CHECK_ERR(lt_params_zero_grad(NULL), LT_ERR_ARG, "lt_params_zero_grad");
    CHECK_ERR(lt_params_zero_grad_lazy(NULL), LT_ERR_ARG, "lt_params_zero_grad_lazy");
    CHECK(lt_params_count(NULL) == 0 && lt_params_numel(NULL) == 0);
    lt_params_free(p);
}

int main(void) {
    RUN(test_flat_layout_and_growth);
    RUN(test_find_get_decay_reserve);
    RUN(test_errors);
    return tt_finish();
}
