/* Device -> backend lookup, and the public allocator statistics that go through it. */
#include "backend.h"

#include "core/error.h"

#include <limits.h>
#include <pthread.h>

static bool lt__cpu_complete;
static pthread_once_t lt__cpu_checked = PTHREAD_ONCE_INIT;
static void lt__check_cpu(void) { lt__cpu_complete = lt__backend_check(&lt__cpu_backend); }
#ifdef LT_HAVE_CUDA
static bool lt__cuda_complete;
static pthread_once_t lt__cuda_checked = PTHREAD_ONCE_INIT;
static void lt__check_cuda(void) { lt__cuda_complete = lt__backend_check(&lt__cuda_backend); }
#endif

lt_status lt__backend_for(const char *who, lt_device device, const lt__backend **out) {
    *out = NULL;
    if (device.type == LT_CPU && device.index == 0) {
        pthread_once(&lt__cpu_checked, lt__check_cpu);
        if (!lt__cpu_complete) return lt__err(LT_ERR_INTERNAL, "%s: the cpu backend leaves an entry empty", who);
        *out = &lt__cpu_backend;
        return LT_OK;
    }
    if (device.type == LT_CUDA) {
#ifdef LT_HAVE_CUDA
        pthread_once(&lt__cuda_checked, lt__check_cuda);
        if (!lt__cuda_complete) return lt__err(LT_ERR_INTERNAL, "%s: the cuda backend leaves an entry empty", who);
        LT_TRY(lt__cuda_device_ready(who, device.index));
        *out = &lt__cuda_backend;
        return LT_OK;
#else
        return lt__err(LT_ERR_DEVICE, "%s: device cuda:%d is not available (this build has no CUDA backend)", who,
                       device.index);
#endif
    }
    return lt__err(LT_ERR_DEVICE, "%s: unknown device (type %d, index %d)", who, device.type, device.index);
}

const lt__backend *lt__backend_of(const lt_tensor *t) {
#ifdef LT_HAVE_CUDA
    if (t->storage->device.type == LT_CUDA) return &lt__cuda_backend;
#endif
    (void)t;
    return &lt__cpu_backend;
}

bool lt__backend_check(const lt__backend *b) {
    const void *const *entries = (const void *const *)((const char *)b + 2 * sizeof(void *));
    for (int i = 0; i < LT__BACKEND_ENTRIES; i++)
        if (!entries[i]) return false;
    return b->name && b->allocator;
}

static bool lt__blas_layout(const lt_tensor *t, lt__blas_operand *op) {
    int64_t rows = t->shape[1], cols = t->shape[2], rs = t->strides[1], cs = t->strides[2], ld;
    int64_t min_row_ld = cols > 1 ? cols : 1, min_col_ld = rows > 1 ? rows : 1;
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= min_row_ld)) {
        op->colmajor = false;
        ld = rows == 1 ? min_row_ld : rs;
    } else if ((rs == 1 || rows == 1) && (cols == 1 || cs >= min_col_ld)) {
        op->colmajor = true;
        ld = cols == 1 ? min_col_ld : cs;
    } else {
        return false;
    }
    if (ld > INT_MAX) return false;
    op->ld = (int)ld;
    return true;
}

lt_status lt__gemm_check(const char *who, const lt_tensor *a, const lt_tensor *b, const lt_tensor *c,
                         const lt_tensor *bias, const lt_tensor *asum, double beta, int64_t m, int64_t n, int64_t k,
                         lt__blas_operand *la, lt__blas_operand *lb) {
    if (a->ndim != 3 || b->ndim != 3 || c->ndim != 3 || a->shape[0] != c->shape[0] || b->shape[0] != c->shape[0] ||
        !lt__is_contiguous(c))
        return lt__err(LT_ERR_INTERNAL, "%s: operands are not 3-D [batch, rows, cols] with a contiguous c", who);
    bool bf16 = a->dtype == LT_BF16 && b->dtype == LT_BF16 && (c->dtype == LT_F32 || c->dtype == LT_BF16);
    bool same = (c->dtype == LT_F32 || c->dtype == LT_F64) && a->dtype == c->dtype && b->dtype == c->dtype;
    if (!bf16 && !same)
        return lt__err(LT_ERR_DTYPE, "%s: dtypes %s x %s -> %s; expected all f32, all f64 or bf16 x bf16 -> f32/bf16",
                       who, lt_dtype_name(a->dtype), lt_dtype_name(b->dtype), lt_dtype_name(c->dtype));
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || c->shape[0] > INT_MAX)
        return lt__err(LT_ERR_UNSUPPORTED, "%s: %lld batches of %lldx%lldx%lld exceed BLAS's 32-bit sizes", who,
                       (long long)c->shape[0], (long long)m, (long long)n, (long long)k);
    if (!lt__blas_layout(a, la) || !lt__blas_layout(b, lb))
        return lt__err(LT_ERR_INTERNAL, "%s: an operand has no unit-stride matrix dim or a bad ld", who);
    if (bias && (bias->ndim != 1 || bias->shape[0] != n || bias->dtype != c->dtype || beta != 0))
        return lt__err(LT_ERR_INTERNAL, "%s: the bias must be a [%lld] of c's dtype, with beta = 0", who, (long long)n);
    if (asum && (!same || c->shape[0] != 1 || asum->ndim != 1 || asum->shape[0] != k || asum->dtype != c->dtype ||
                 !lt__is_contiguous(asum)))
        return lt__err(LT_ERR_INTERNAL, "%s: asum must be a contiguous [%lld] of c's dtype (f32 or f64), one batch",
                       who, (long long)k);
    return LT_OK;
}

lt_status lt__gemm_asum_headers(const lt_tensor *a, bool ta, const lt_tensor *asum, lt_tensor *hx, lt_tensor *hy) {
    LT_TRY(lt__broadcast_header(a, a->shape, 3, hx));
    if (ta) {
        hx->shape[1] = a->shape[2], hx->shape[2] = a->shape[1];
        hx->strides[1] = a->strides[2], hx->strides[2] = a->strides[1];
    }
    int64_t shape[3] = {1, 1, asum->shape[0]};
    return lt__broadcast_header(asum, shape, 3, hy);
}

LT_API lt_status lt_device_check(lt_device device) {
    lt__clear_error();
    const lt__backend *be;
    return lt__backend_for("lt_device_check", device, &be);
}

LT_API lt_status lt_device_synchronize(lt_device device) {
    lt__clear_error();
    const lt__backend *be;
    LT_TRY(lt__backend_for("lt_device_synchronize", device, &be));
    return be->synchronize(device.index);
}

static lt_status lt__allocator_for(const char *who, lt_device device, lt__allocator **out) {
    const lt__backend *be;
    LT_TRY(lt__backend_for(who, device, &be));
    *out = be->allocator(device.index);
    if (!*out) return lt__err(LT_ERR_OOM, "%s: could not create the allocator", who);
    return LT_OK;
}

LT_API lt_status lt_alloc_get_stats(lt_device device, lt_alloc_stats *stats) {
    static const char *fn = "lt_alloc_get_stats";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, stats);
    if (stats->struct_size < sizeof(lt_alloc_stats))
        return lt__err(LT_ERR_ARG, "%s: stats->struct_size is %zu, expected at least %zu", fn, stats->struct_size,
                       sizeof(lt_alloc_stats));
    lt__allocator *a;
    LT_TRY(lt__allocator_for(fn, device, &a));
    size_t keep = stats->struct_size;
    lt__allocator_stats(a, stats);
    stats->struct_size = keep;
    return LT_OK;
}

LT_API lt_status lt_alloc_empty_cache(lt_device device) {
    lt__clear_error();
    lt__allocator *a;
    LT_TRY(lt__allocator_for("lt_alloc_empty_cache", device, &a));
    lt__allocator_empty_cache(a);
    return LT_OK;
}
