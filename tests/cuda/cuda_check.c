#include "cuda_check.h"

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer the emulator switches fibers ~20x slower: the same edges around a warp, smaller blocks. */
const int64_t tc_odd_sizes[6] = {1, 31, 32, 33, 63, 65};
const bool tc_small = true;
#else
const int64_t tc_odd_sizes[6] = {1, 31, 32, 33, 255, 257};
const bool tc_small = false;
#endif
lt_device tc_cuda = {LT_CUDA, 0};

lt_device tc_require_cuda(void) {
    if (lt_device_check(tc_cuda) != LT_OK) {
        printf("SKIP: %s\n", lt_last_error());
        exit(77);
    }
    return tc_cuda;
}

static bool tc_is_float(lt_dtype d) { return d == LT_F32 || d == LT_F64 || d == LT_BF16 || d == LT_F16; }

/* A fresh leaf on `device` holding t's values. */
static lt_tensor *tc_leaf_on(const lt_tensor *t, lt_device device, bool grad) {
    lt_tensor *c = NULL;
    lt_no_grad_begin();
    lt_status st = lt_tensor_to(t, lt_tensor_dtype(t), device, &c);
    lt_no_grad_end();
    if (st != LT_OK) {
        fprintf(stderr, "tc: copy to %s:%d failed: %s\n", device.type == LT_CUDA ? "cuda" : "cpu", device.index,
                lt_last_error());
        abort();
    }
    if (grad && tc_is_float(lt_tensor_dtype(t)) && lt_tensor_set_requires_grad(c, true) != LT_OK) abort();
    return c;
}

lt_tensor *tc_to_cuda(const lt_tensor *t, bool grad) { return tc_leaf_on(t, tc_cuda, grad); }

bool tc_same(const char *what, const lt_tensor *got, const lt_tensor *ref, double atol, double rtol) {
    if (lt_tensor_numel(got) != lt_tensor_numel(ref)) {
        fprintf(stderr, "%s: %lld elements, expected %lld\n", what, (long long)lt_tensor_numel(got),
                (long long)lt_tensor_numel(ref));
        return false;
    }
    double *r = tt_values(ref);
    bool ok = tt_tensor_close(what, got, r, atol, rtol);
    free(r);
    return ok;
}

/* Compares one input's gradient from the device (got) with the CPU's (ref): both absent passes, one absent fails. */
static bool tc_same_grad(const char *name, const lt_tensor *got, const lt_tensor *ref, double atol, double rtol) {
    if (!got && !ref) return true;
    if (!got || !ref) {
        fprintf(stderr, "%s: only one device produced it\n", name);
        return false;
    }
    return tc_same(name, got, ref, atol, rtol);
}

/* Runs op on inputs; on success, when backward, backpropagates sum(out * r). */
static lt_status tc_run(tc_op op, void *ctx, lt_tensor **inputs, bool backward, const lt_tensor *r_cpu,
                        lt_tensor **out) {
    lt_status st = op(ctx, inputs, out);
    if (st != LT_OK || !backward) return st;
    lt_device dev = lt_tensor_device(*out);
    lt_tensor *r, *prod, *loss;
    lt_no_grad_begin();
    st = lt_tensor_to(r_cpu, lt_tensor_dtype(*out), dev, &r);
    lt_no_grad_end();
    if (st == LT_OK) st = lt_mul(*out, r, &prod);
    if (st == LT_OK) st = lt_sum(prod, NULL, 0, false, &loss);
    if (st == LT_OK) st = lt_backward(loss);
    return st;
}

/* The outcome of a CPU run (status sa, output ya) and a CUDA run (sb, yb) of the same op: both succeeded, the CUDA
 * output is on the GPU and equals the CPU's within atol + rtol |ya|. Says what failed on stderr. */
static bool outputs_agree(const char *what, lt_status sa, lt_status sb, const lt_tensor *ya, const lt_tensor *yb,
                          double atol, double rtol) {
    if (sa != LT_OK || sb != LT_OK) {
        fprintf(stderr, "%s: %s failed: %s\n", what, sa != LT_OK ? "cpu" : "cuda", lt_last_error());
        return false;
    }
    if (lt_tensor_device(yb).type != LT_CUDA) {
        fprintf(stderr, "%s: the cuda result is not on the GPU\n", what);
        return false;
    }
    char name[256];
    snprintf(name, sizeof name, "%s (output)", what);
    return tc_same(name, yb, ya, atol, rtol);
}

bool tc_cross_check(const char *what, tc_op op, void *ctx, lt_tensor **cpu_inputs, int n, double atol, double rtol,
                    bool backward) {
    lt_scope_begin();
    lt_tensor *a[16], *b[16];
    for (int i = 0; i < n; i++) {
        a[i] = tc_leaf_on(cpu_inputs[i], LT_DEVICE_CPU, backward);
        b[i] = tc_leaf_on(cpu_inputs[i], tc_cuda, backward);
    }
    lt_tensor *ya = NULL, *yb = NULL, *r = NULL;
    char name[256];
    if (backward) {
        /* r's shape is only known from the output: run the CPU forward once without grad to learn it. */
        lt_tensor *probe = NULL;
        lt_no_grad_begin();
        lt_status st = op(ctx, a, &probe);
        lt_no_grad_end();
        if (st != LT_OK) {
            fprintf(stderr, "%s: cpu forward failed: %s\n", what, lt_last_error());
            lt_scope_end();
            return false;
        }
        int64_t shape[LT_MAX_DIMS];
        int nd = lt_tensor_ndim(probe);
        lt_tensor_shape(probe, shape);
        r = tt_rand(shape, nd, LT_F64, -1, 1);
    }
    lt_status sa = tc_run(op, ctx, a, backward, r, &ya);
    lt_status sb = sa == LT_OK ? tc_run(op, ctx, b, backward, r, &yb) : sa;
    bool ok = outputs_agree(what, sa, sb, ya, yb, atol, rtol);
    for (int i = 0; ok && backward && i < n; i++) {
        lt_tensor *ga = NULL, *gb = NULL;
        if (lt_tensor_grad(a[i], &ga) != LT_OK || lt_tensor_grad(b[i], &gb) != LT_OK) abort();
        snprintf(name, sizeof name, "%s (grad of input %d)", what, i);
        ok = tc_same_grad(name, gb, ga, atol, rtol);
    }
    lt_scope_end();
    return ok;
}

bool tc_cross_check_grad(const char *what, tc_op op, void *ctx, lt_tensor **cpu_inputs, int n, double atol, double rtol,
                         bool backward, int device_runs) {
    lt_scope_begin();
    lt_tensor *a[16], *b[16], *ya = NULL, *yb = NULL;
    char name[256];
    for (int i = 0; i < n; i++) {
        a[i] = tc_leaf_on(cpu_inputs[i], LT_DEVICE_CPU, backward);
        b[i] = tc_leaf_on(cpu_inputs[i], tc_cuda, backward);
    }
    lt_status sa = op(ctx, a, &ya);
    lt_status sb = sa == LT_OK ? op(ctx, b, &yb) : sa;
    bool ok = outputs_agree(what, sa, sb, ya, yb, atol, rtol);
    if (ok && backward) {
        int64_t shape[LT_MAX_DIMS];
        lt_tensor_shape(ya, shape);
        lt_tensor *r = tt_rand(shape, lt_tensor_ndim(ya), lt_tensor_dtype(ya), -1, 1);
        lt_tensor *rb = tc_leaf_on(r, tc_cuda, false);
        if (lt_backward_grad(ya, r) != LT_OK) {
            fprintf(stderr, "%s: cpu backward failed: %s\n", what, lt_last_error());
            ok = false;
        }
        for (int run = 0; ok && run < device_runs; run++) {
            lt_tensor *yr = yb, **br = b, *again[16];
            if (run > 0) { /* fresh device leaves, the whole pass again */
                for (int i = 0; i < n; i++) again[i] = tc_leaf_on(cpu_inputs[i], tc_cuda, true);
                br = again;
                if (op(ctx, br, &yr) != LT_OK) {
                    fprintf(stderr, "%s: cuda failed: %s\n", what, lt_last_error());
                    ok = false;
                    break;
                }
            }
            if (lt_backward_grad(yr, rb) != LT_OK) {
                fprintf(stderr, "%s: cuda backward failed: %s\n", what, lt_last_error());
                ok = false;
                break;
            }
            for (int i = 0; ok && i < n; i++) {
                lt_tensor *ga = NULL, *gb = NULL;
                if (lt_tensor_grad(a[i], &ga) != LT_OK || lt_tensor_grad(br[i], &gb) != LT_OK) abort();
                snprintf(name, sizeof name, "%s (grad of input %d%s)", what, i, run ? ", second run" : "");
                ok = tc_same_grad(name, gb, ga, atol, rtol);
            }
        }
    }
    lt_scope_end();
    return ok;
}

lt_status tc_run_grad(tc_op op, void *ctx, lt_tensor **inputs, int n, const lt_tensor *r, lt_device device,
                      lt_tensor **y, lt_tensor **grads) {
    lt_tensor *d[16], *rd = NULL;
    lt_status st = LT_OK;
    lt_no_grad_begin();
    for (int i = 0; i < n && st == LT_OK; i++) st = lt_tensor_to(inputs[i], lt_tensor_dtype(inputs[i]), device, &d[i]);
    if (st == LT_OK && r) st = lt_tensor_to(r, lt_tensor_dtype(inputs[0]), device, &rd);
    lt_no_grad_end();
    for (int i = 0; i < n && st == LT_OK && r; i++) {
        lt_dtype dt = lt_tensor_dtype(inputs[i]);
        if (dt == LT_F32 || dt == LT_F64) st = lt_tensor_set_requires_grad(d[i], true);
    }
    if (st == LT_OK) st = op(ctx, d, y);
    if (st == LT_OK && r) st = lt_backward_grad(*y, rd);
    for (int i = 0; i < n && st == LT_OK && r; i++) st = lt_tensor_grad(d[i], &grads[i]);
    return st;
}

bool tc_check_grad(const char *what, tc_op op, void *ctx, lt_tensor **inputs, int n, bool backward, bool unit,
                   double atol, double rtol) {
    bool ok = true;
    lt_scope_begin();
    lt_tensor *yc, *yg, *gc[16] = {0}, *gg[16] = {0}, *r = NULL;
    if (backward) { /* r's shape is the output's: a CPU forward without grad first */
        lt_tensor *probe;
        int64_t shape[LT_MAX_DIMS];
        if (tc_run_grad(op, ctx, inputs, n, NULL, LT_DEVICE_CPU, &probe, NULL) != LT_OK) {
            fprintf(stderr, "%s: cpu failed: %s\n", what, lt_last_error());
            lt_scope_end();
            return false;
        }
        lt_tensor_shape(probe, shape);
        r = unit ? NULL : tt_rand(shape, lt_tensor_ndim(probe), LT_F64, -1, 1);
        if (unit && lt_tensor_ones(shape, lt_tensor_ndim(probe), LT_F64, LT_DEVICE_CPU, &r) != LT_OK) abort();
    }
    if (tc_run_grad(op, ctx, inputs, n, r, LT_DEVICE_CPU, &yc, gc) != LT_OK) {
        fprintf(stderr, "%s: cpu failed: %s\n", what, lt_last_error());
        ok = false;
    } else if (tc_run_grad(op, ctx, inputs, n, r, tc_cuda, &yg, gg) != LT_OK) {
        fprintf(stderr, "%s: cuda failed: %s\n", what, lt_last_error());
        ok = false;
    } else {
        char name[256];
        snprintf(name, sizeof name, "%s (output)", what);
        ok &= lt_tensor_device(yg).type == LT_CUDA && tc_same(name, yg, yc, atol, rtol);
        for (int i = 0; i < n && ok && backward; i++) {
            snprintf(name, sizeof name, "%s (grad of input %d)", what, i);
            ok = tc_same_grad(name, gg[i], gc[i], atol, rtol);
        }
    }
    lt_scope_end();
    return ok;
}
