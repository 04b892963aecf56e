/* Trains a small MLP classifier on a generated three-arm spiral with the libtrain C API, printing the loss as it
 * falls. A first program to read: parameters in an lt_params set, a scope per step, autograd and SGD.
 * --check-memory turns it into a test: after the first step, no system allocation and no RSS growth. */
#include <libtrain/libtrain.h>

#include "options.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES 3
#define FAIL(expr)                                                                                                     \
    do {                                                                                                               \
        if ((expr) != LT_OK) {                                                                                         \
            fprintf(stderr, "train_mlp: %s\n", lt_last_error());                                                       \
            goto fail;                                                                                                 \
        }                                                                                                              \
    } while (0)

typedef struct options {
    int64_t steps, hidden, points, threads, log_every, seed, rss_slack;
    double lr, momentum;
    bool check_memory;
} options;

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.steps = 300,
                   .hidden = 64,
                   .points = 200,
                   .lr = 0.2,
                   .momentum = 0.9,
                   .seed = 1,
                   .log_every = 25,
                   .rss_slack = 512};
    const opt table[] = {
        {"--steps", OPT_INT, &o->steps, 0, 1e8, "training steps"},
        {"--hidden", OPT_INT, &o->hidden, 1, 65536, "hidden width"},
        {"--points", OPT_INT, &o->points, 1, 1e7, "points per spiral arm"},
        {"--lr", OPT_DOUBLE, &o->lr, 0, 1e3, "learning rate"},
        {"--momentum", OPT_DOUBLE, &o->momentum, 0, 1, "SGD momentum"},
        {"--seed", OPT_INT, &o->seed, 0, 9e15, "seed for data and initialisation"},
        {"--threads", OPT_INT, &o->threads, 0, 1024, "CPU threads, 0 = all cores"},
        {"--log-every", OPT_INT, &o->log_every, 1, 1e8, "print the loss every N steps"},
        {"--check-memory", OPT_FLAG, &o->check_memory, 0, 0, "fail unless memory stays flat after the first step"},
        {"--rss-slack", OPT_INT, &o->rss_slack, 0, 1e9, "KiB of RSS growth --check-memory tolerates"},
    };
    return opt_parse(argc, argv, "Trains a small MLP on a generated three-arm spiral and prints the loss as it falls.",
                     table, (int)(sizeof table / sizeof table[0]));
}

/* Spiral arms: point j of arm c at radius r = j/n and angle 4r + 2πc/3, jittered with N(0, 0.2) from Philox. */
static lt_status make_data(const options *o, lt_tensor **x, lt_tensor **y) {
    int64_t n = (int64_t)o->points * CLASSES;
    float *xs = malloc(sizeof(float) * 2 * (size_t)n), *noise = malloc(sizeof(float) * (size_t)n);
    int32_t *ys = malloc(sizeof(int32_t) * (size_t)n);
    lt_philox rng = {(uint64_t)o->seed, 0};
    lt_tensor *jitter = NULL;
    lt_status st = xs && ys && noise ? LT_OK : LT_ERR_OOM;
    if (st == LT_OK) st = lt_tensor_randn(&n, 1, LT_F32, LT_DEVICE_CPU, &rng, &jitter);
    if (st == LT_OK) st = lt_tensor_to_host(jitter, noise, sizeof(float) * (size_t)n);
    lt_tensor_release(jitter); /* created outside any scope: ours to release */
    for (int64_t i = 0; st == LT_OK && i < n; i++) {
        int c = (int)(i / o->points);
        float r = (float)(i % o->points) / (float)o->points;
        float t = 4.0f * r + 2.0943951f * (float)c + 0.2f * noise[i];
        xs[2 * i] = r * sinf(t);
        xs[2 * i + 1] = r * cosf(t);
        ys[i] = c;
    }
    if (st == LT_OK) st = lt_tensor_from_host(xs, (int64_t[]){n, 2}, 2, LT_F32, LT_DEVICE_CPU, x);
    if (st == LT_OK) st = lt_tensor_from_host(ys, &n, 1, LT_I32, LT_DEVICE_CPU, y);
    free(xs);
    free(ys);
    free(noise);
    return st;
}

/* He initialisation for weights (N(0, 2/fan_in) from Philox), zeros for biases (lt_params_add's default). */
static lt_status init_weight(lt_tensor *w, int64_t fan_in, lt_philox *rng) {
    int64_t shape[LT_MAX_DIMS];
    lt_tensor *r, *scaled;
    lt_status st = lt_tensor_shape(w, shape);
    if (st == LT_OK) st = lt_tensor_randn(shape, lt_tensor_ndim(w), LT_F32, LT_DEVICE_CPU, rng, &r);
    if (st == LT_OK) st = lt_mul_scalar(r, sqrt(2.0 / (double)fan_in), &scaled);
    if (st == LT_OK) st = lt_tensor_copy(w, scaled);
    return st;
}

/* logits = relu(relu(x W1 + b1) W2 + b2) W3 + b3; every intermediate belongs to the caller's scope. */
static lt_status forward(lt_tensor *const *w, const lt_tensor *x, lt_tensor **logits) {
    const lt_tensor *h = x;
    lt_tensor *a, *z;
    for (int layer = 0; layer < 3; layer++) {
        lt_status st = lt_matmul(h, w[2 * layer], false, false, &a);
        if (st == LT_OK) st = lt_add(a, w[2 * layer + 1], &z);
        if (st == LT_OK && layer < 2) st = lt_relu(z, &z);
        if (st != LT_OK) return st;
        h = z;
    }
    *logits = (lt_tensor *)h;
    return LT_OK;
}

/* Fraction of points whose largest logit is their class. */
static lt_status accuracy(lt_tensor *const *w, const lt_tensor *x, const int32_t *labels, int64_t n, double *acc) {
    lt_tensor *logits;
    float *v = malloc(sizeof(float) * CLASSES * (size_t)n);
    if (!v) return LT_ERR_OOM;
    lt_no_grad_begin();
    lt_status st = forward(w, x, &logits);
    lt_no_grad_end();
    if (st == LT_OK) st = lt_tensor_to_host(logits, v, sizeof(float) * CLASSES * (size_t)n);
    int64_t right = 0;
    for (int64_t i = 0; st == LT_OK && i < n; i++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (v[i * CLASSES + c] > v[i * CLASSES + best]) best = c;
        right += best == labels[i];
    }
    free(v);
    *acc = (double)right / (double)n;
    return st;
}

static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * 4;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    lt_params *params = NULL;
    lt_optim *opt = NULL;
    lt_tensor *x = NULL, *y = NULL, *w[6]; /* fc1.weight, fc1.bias, fc2..., fc3... */
    int64_t h = o.hidden;
    lt_alloc_stats first = {.struct_size = sizeof first}, now = {.struct_size = sizeof now};
    long rss_first = 0;
    int status = 1;

    FAIL(lt_set_num_threads((int)o.threads));
    FAIL(make_data(&o, &x, &y));
    FAIL(lt_params_create(LT_F32, LT_DEVICE_CPU, &params));
    FAIL(lt_params_add(params, "fc1.weight", (int64_t[]){2, h}, 2, &w[0]));
    FAIL(lt_params_add(params, "fc1.bias", &h, 1, &w[1]));
    FAIL(lt_params_add(params, "fc2.weight", (int64_t[]){h, h}, 2, &w[2]));
    FAIL(lt_params_add(params, "fc2.bias", &h, 1, &w[3]));
    FAIL(lt_params_add(params, "fc3.weight", (int64_t[]){h, CLASSES}, 2, &w[4]));
    FAIL(lt_params_add(params, "fc3.bias", (int64_t[]){CLASSES}, 1, &w[5]));
    lt_philox rng = {(uint64_t)o.seed, 1u << 20}; /* a different stretch of the stream than the data's */
    lt_scope_begin();
    lt_no_grad_begin();
    lt_status st = init_weight(w[0], 2, &rng);
    if (st == LT_OK) st = init_weight(w[2], h, &rng);
    if (st == LT_OK) st = init_weight(w[4], h, &rng);
    lt_no_grad_end();
    lt_scope_end();
    FAIL(st);
    FAIL(lt_sgd_create(
        params, &(lt_sgd_config){.struct_size = sizeof(lt_sgd_config), .lr = o.lr, .momentum = o.momentum}, &opt));
    printf("train_mlp: %lld points, %lld parameters, %lld steps (libtrain %s)\n", (long long)lt_tensor_numel(y),
           (long long)lt_params_numel(params), (long long)o.steps, lt_version());

    for (int step = 1; step <= o.steps; step++) {
        lt_scope_begin(); /* every tensor of the step is released at its end */
        lt_tensor *logits, *loss;
        float value = NAN;
        st = forward(w, x, &logits);
        if (st == LT_OK) st = lt_cross_entropy(logits, y, -100, LT_REDUCE_MEAN, &loss);
        if (st == LT_OK) st = lt_params_zero_grad(params);
        if (st == LT_OK) st = lt_backward(loss);
        if (st == LT_OK) st = lt_optim_step(opt);
        if (st == LT_OK) st = lt_tensor_to_host(loss, &value, sizeof value);
        lt_scope_end();
        FAIL(st);
        if (step == 1 || step % o.log_every == 0 || step == o.steps)
            printf("step %5d/%lld  loss %.4f\n", step, (long long)o.steps, value);
        if (step == 1) {
            FAIL(lt_alloc_get_stats(LT_DEVICE_CPU, &first));
            rss_first = rss_kib();
        }
    }
    FAIL(lt_alloc_get_stats(LT_DEVICE_CPU, &now));
    {
        int64_t n = lt_tensor_numel(y);
        int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
        double acc = 0;
        lt_scope_begin();
        st = labels ? lt_tensor_to_host(y, labels, sizeof(int32_t) * (size_t)n) : LT_ERR_OOM;
        if (st == LT_OK) st = accuracy(w, x, labels, n, &acc);
        lt_scope_end();
        free(labels);
        FAIL(st);
        printf("train accuracy %.1f%% (chance is %.1f%%)\n", 100 * acc, 100.0 / CLASSES);
    }
    printf("allocator: %llu system allocations after step 1, %llu at the end; peak %.1f KiB\n",
           (unsigned long long)first.system_allocs, (unsigned long long)now.system_allocs, now.peak_bytes / 1024.0);
    status = 0;
    if (o.check_memory) {
        long rss_end = rss_kib();
        printf("rss: %ld KiB after step 1, %ld KiB at the end\n", rss_first, rss_end);
        if (now.system_allocs != first.system_allocs || rss_end > rss_first + o.rss_slack) {
            fprintf(stderr, "train_mlp: memory grew after the first step\n");
            status = 1;
        }
    }
fail:
    lt_optim_free(opt);
    lt_params_free(params);
    lt_tensor_release(x);
    lt_tensor_release(y);
    return status;
}
