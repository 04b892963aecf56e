/* Device -> backend lookup, and the public allocator statistics that go through it. */
#include "backend.h"

#include "core/error.h"

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
