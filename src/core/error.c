/* Status names, the thread-local error message, dtype facts and the library version.
 * The message buffer is per thread, so concurrent calls on different threads never see each other's errors. */
#include "core/error.h"

#include <stdarg.h>
#include <string.h>

#ifndef LT_VERSION_STRING
#define LT_VERSION_STRING "0.0.0"
#endif
#define LT_ABI_VERSION 1

static _Thread_local char lt__message[1024];

/* Formats into a local buffer first: callers often wrap the previous message ("cannot resume: %s" with
 * lt_last_error()), which vsnprintf must not read while it overwrites it. */
lt_status lt__err(lt_status status, const char *fmt, ...) {
    char msg[sizeof lt__message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(lt__message, msg, sizeof msg);
    return status;
}

void lt__clear_error(void) { lt__message[0] = '\0'; }

LT_API const char *lt_last_error(void) { return lt__message; }

LT_API const char *lt_status_name(lt_status status) {
    static const char *const names[] = {
        "LT_OK",          "LT_ERR_ARG",   "LT_ERR_SHAPE",    "LT_ERR_DTYPE",  "LT_ERR_DEVICE",
        "LT_ERR_OOM",     "LT_ERR_RANGE", "LT_ERR_IO",       "LT_ERR_FORMAT", "LT_ERR_UNSUPPORTED",
        "LT_ERR_BACKEND", "LT_ERR_STATE", "LT_ERR_INTERNAL",
    };
    _Static_assert(sizeof names / sizeof names[0] == LT_ERR_INTERNAL + 1, "one name per status");
    if ((unsigned)status > (unsigned)LT_ERR_INTERNAL) return "LT_ERR_UNKNOWN";
    return names[status];
}

static const struct {
    const char *name;
    size_t size;
} lt__dtypes[] = {
    [LT_F32] = {"f32", 4}, [LT_F64] = {"f64", 8}, [LT_BF16] = {"bf16", 2}, [LT_F16] = {"f16", 2},
    [LT_I32] = {"i32", 4}, [LT_I64] = {"i64", 8}, [LT_U16] = {"u16", 2},   [LT_U8] = {"u8", 1},
};
_Static_assert(sizeof lt__dtypes / sizeof lt__dtypes[0] == LT_DTYPE_COUNT, "one entry per dtype");

LT_API size_t lt_dtype_size(lt_dtype dtype) { return (unsigned)dtype < LT_DTYPE_COUNT ? lt__dtypes[dtype].size : 0; }

LT_API const char *lt_dtype_name(lt_dtype dtype) {
    return (unsigned)dtype < LT_DTYPE_COUNT ? lt__dtypes[dtype].name : "?";
}

LT_API const char *lt_version(void) { return LT_VERSION_STRING; }

LT_API int lt_abi_version(void) { return LT_ABI_VERSION; }

char *lt__fmt_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t used = 0;
    buf[0] = '\0';
    if (ndim == 0) {
        snprintf(buf, n, "[]");
        return buf;
    }
    for (int i = 0; i < ndim && used < n; i++) {
        int w = snprintf(buf + used, n - used, i ? "x%lld" : "%lld", (long long)shape[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}
