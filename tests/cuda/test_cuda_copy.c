/* The CUDA backend's memory and creation entries against the CPU: fill, arange, strided copies with every dtype
 * conversion, moves to and from the host, device errors, and the caching allocator's steady state. */
#include "cuda_check.h"

static const lt_dtype all_dtypes[] = {LT_F32, LT_F64, LT_BF16, LT_F16, LT_I32, LT_I64, LT_U16, LT_U8};
#define N_DTYPES ((int)(sizeof all_dtypes / sizeof all_dtypes[0]))

/* Values that exercise rounding and saturation in every dtype: fractions, negatives, large and NaN. */
static lt_tensor *awkward_values(int64_t n) {
    double *v = malloc(sizeof(double) * (size_t)n);
    static const double special[] = {0.5, -0.5, 1.5, 2.5, -1e10, 1e10, 65535.7, 300.2, NAN, -0.0, 3.14159265358979};
    for (int64_t i = 0; i < n; i++) v[i] = i < 11 ? special[i] : tt_uniform(-300, 300);
    lt_tensor *t = NULL;
    if (lt_tensor_from_host(v, &n, 1, LT_F64, LT_DEVICE_CPU, &t) != LT_OK) abort();
    free(v);
    return t;
}

static void test_round_trip_every_dtype(void) {
    for (int s = 0; s < 6; s++) {
        int64_t n = tc_odd_sizes[s] + 11;
        lt_tensor *src = awkward_values(n);
        for (int i = 0; i < N_DTYPES; i++) {
            for (int j = 0; j < N_DTYPES; j++) {
                /* cpu f64 -> dtype i on cpu, then the same conversion i -> j on each device */
                lt_tensor *ci, *cj, *gi, *gj, *back;
                CHECK_OK(lt_tensor_to(src, all_dtypes[i], LT_DEVICE_CPU, &ci));
                CHECK_OK(lt_tensor_to(ci, all_dtypes[j], LT_DEVICE_CPU, &cj));
                CHECK_OK(lt_tensor_to(ci, all_dtypes[i], tc_cuda, &gi));
                CHECK_OK(lt_tensor_to(gi, all_dtypes[j], tc_cuda, &gj));
                CHECK_OK(lt_tensor_to(gj, all_dtypes[j], LT_DEVICE_CPU, &back));
                size_t bytes = (size_t)n * lt_dtype_size(all_dtypes[j]);
                CHECK(memcmp(lt_tensor_data(back), lt_tensor_data(cj), bytes) == 0);
                if (memcmp(lt_tensor_data(back), lt_tensor_data(cj), bytes))
                    fprintf(stderr, "n=%lld %s -> %s differs between devices\n", (long long)n,
                            lt_dtype_name(all_dtypes[i]), lt_dtype_name(all_dtypes[j]));
            }
        }
    }
}

static void test_strided_copies(void) {
    for (int layout = 0; layout < 3; layout++) {
        for (int s = 0; s < 6; s++) {
            int64_t shape[3] = {3, tc_odd_sizes[s], 2};
            lt_tensor *x = tt_layout(shape, 3, LT_F32, layout);
            lt_tensor *g = tc_to_cuda(x, false), *ct, *gt, *gc, *cc;
            /* a transposed view copied to a contiguous tensor on each device */
            CHECK_OK(lt_transpose(x, 0, 1, &ct));
            CHECK_OK(lt_transpose(g, 0, 1, &gt));
            CHECK_OK(lt_contiguous(ct, &cc));
            CHECK_OK(lt_contiguous(gt, &gc));
            CHECK(tc_same("contiguous of a transpose", gc, cc, 0, 0));
            /* a broadcast source into a strided destination */
            lt_tensor *row, *grow;
            int64_t rshape[3] = {tc_odd_sizes[s], 1, 1};
            row = tt_rand(rshape, 3, LT_F64, -1, 1);
            grow = tc_to_cuda(row, false);
            CHECK_OK(lt_tensor_copy(ct, row));
            CHECK_OK(lt_tensor_copy(gt, grow));
            CHECK(tc_same("broadcast into a strided view", g, x, 0, 0));
        }
    }
}

static void test_fill_arange_and_host(void) {
    for (int i = 0; i < N_DTYPES; i++) {
        int64_t n = 257;
        lt_tensor *c, *g, *ca, *ga;
        CHECK_OK(lt_tensor_full(&n, 1, -7.75, all_dtypes[i], LT_DEVICE_CPU, &c));
        CHECK_OK(lt_tensor_full(&n, 1, -7.75, all_dtypes[i], tc_cuda, &g));
        CHECK(tc_same("full", g, c, 0, 0));
        CHECK_OK(lt_tensor_arange(-3, 250, 1.25, all_dtypes[i], LT_DEVICE_CPU, &ca));
        CHECK_OK(lt_tensor_arange(-3, 250, 1.25, all_dtypes[i], tc_cuda, &ga));
        CHECK(tc_same("arange", ga, ca, 0, 0));
    }
    float host[33], back[33];
    for (int i = 0; i < 33; i++) host[i] = (float)i * 0.5f - 3;
    int64_t shape[2] = {3, 11};
    lt_tensor *g, *gt;
    CHECK_OK(lt_tensor_from_host(host, shape, 2, LT_F32, tc_cuda, &g));
    CHECK(lt_tensor_device(g).type == LT_CUDA);
    CHECK_OK(lt_tensor_to_host(g, back, sizeof back));
    CHECK(memcmp(host, back, sizeof host) == 0);
    CHECK_OK(lt_transpose(g, 0, 1, &gt)); /* a strided device tensor downloads in logical order */
    CHECK_OK(lt_tensor_to_host(gt, back, sizeof back));
    for (int r = 0; r < 11; r++)
        for (int k = 0; k < 3; k++) CHECK(back[r * 3 + k] == host[k * 11 + r]);
    CHECK_ERR(lt_tensor_to_host(g, back, 8), LT_ERR_ARG, "lt_tensor_to_host");
}

static void test_device_errors(void) {
    int64_t n = 4;
    lt_tensor *t = NULL, *c, *g;
    CHECK_ERR_OUT(lt_tensor_zeros(&n, 1, LT_F32, (lt_device){LT_CUDA, 15}, &t), t, LT_ERR_DEVICE, "lt_tensor_zeros");
    CHECK_ERR_OUT(lt_tensor_zeros(&n, 1, LT_F32, (lt_device){LT_CUDA, 99}, &t), t, LT_ERR_DEVICE, "lt_tensor_zeros");
    CHECK_ERR(lt_device_check((lt_device){LT_CUDA, -1}), LT_ERR_DEVICE, "lt_device_check");
    CHECK_OK(lt_tensor_zeros(&n, 1, LT_F32, LT_DEVICE_CPU, &c));
    CHECK_OK(lt_tensor_zeros(&n, 1, LT_F32, tc_cuda, &g));
    CHECK_ERR_OUT(lt_add(c, g, &t), t, LT_ERR_DEVICE, "lt_add");
    /* lt_tensor_copy moves data between the host and a device, in both directions, into strided views too */
    lt_tensor *x = tt_rand((int64_t[]){4, 3}, 2, LT_F32, -1, 1), *gx, *cx, *xt, *gt, *back;
    CHECK_OK(lt_tensor_zeros((int64_t[]){3, 4}, 2, LT_F64, tc_cuda, &gx));
    CHECK_OK(lt_transpose(gx, 0, 1, &gt));
    CHECK_OK(lt_tensor_copy(gt, x)); /* host -> strided device view, f32 -> f64 */
    CHECK(tc_same("copy host to a device view", gt, x, 0, 0));
    CHECK_OK(lt_tensor_zeros((int64_t[]){3, 4}, 2, LT_F32, LT_DEVICE_CPU, &cx));
    CHECK_OK(lt_transpose(cx, 0, 1, &xt));
    CHECK_OK(lt_tensor_copy(xt, gt)); /* strided device -> strided host view */
    CHECK(tc_same("copy a device view to a host view", xt, x, 0, 0));
    CHECK_OK(lt_tensor_to(gx, LT_F64, LT_DEVICE_CPU, &back));
    CHECK(tc_same("the device tensor behind the view", back, cx, 0, 0));
    CHECK_OK(lt_device_synchronize(tc_cuda));
}

/* A copy's gradient flows back to the device the input came from. */
static void test_to_backward(void) {
    int64_t shape[2] = {5, 33};
    lt_tensor *x = tt_leaf(shape, 2, -1, 1), *g, *sq, *loss, *gx;
    CHECK_OK(lt_tensor_to(x, LT_F32, tc_cuda, &g));
    CHECK_OK(lt_mul(g, g, &sq));
    CHECK_OK(lt_sum(sq, NULL, 0, false, &loss));
    CHECK_OK(lt_backward(loss));
    CHECK_OK(lt_tensor_grad(x, &gx));
    CHECK(gx && lt_tensor_device(gx).type == LT_CPU && lt_tensor_dtype(gx) == LT_F64);
    lt_tensor *ref;
    CHECK_OK(lt_mul_scalar(x, 2.0, &ref));
    CHECK(tc_same("grad through to()", gx, ref, 1e-6, 1e-6));
}

/* After a warm-up, repeating the same work allocates nothing new from the device. */
static void test_allocator_steady_state(void) {
    int64_t shape[2] = {64, 65};
    lt_alloc_stats a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    for (int round = 0; round < 3; round++) {
        if (round == 2) CHECK_OK(lt_alloc_get_stats(tc_cuda, &a));
        lt_scope_begin();
        lt_tensor *x, *y;
        CHECK_OK(lt_tensor_full(shape, 2, 1.5, LT_F32, tc_cuda, &x));
        CHECK_OK(lt_tensor_to(x, LT_BF16, tc_cuda, &y));
        lt_scope_end();
    }
    CHECK_OK(lt_alloc_get_stats(tc_cuda, &b));
    CHECK(b.system_allocs == a.system_allocs);
    CHECK(b.cache_hits > a.cache_hits);
    CHECK(b.peak_bytes >= 64 * 65 * 6);
}

int main(void) {
    tc_require_cuda();
    tt_seed(3);
    RUN(test_round_trip_every_dtype);
    RUN(test_strided_copies);
    RUN(test_fill_arange_and_host);
    RUN(test_device_errors);
    RUN(test_to_backward);
    RUN(test_allocator_steady_state);
    return tt_finish();
}
