/* libtrain core: status codes, the thread-local error message, dtypes, devices and version.
 * Everything here is plain C11 and C++17; no function in libtrain aborts on a caller's mistake. */
#ifndef LIBTRAIN_CORE_H
#define LIBTRAIN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LT_BUILDING_LIBRARY)
#define LT_API __attribute__((visibility("default")))
#else
#define LT_API
#endif

/* Status codes. Append-only: values never change meaning between releases. */
typedef enum lt_status {
    LT_OK = 0,
    LT_ERR_ARG = 1,         /* a NULL pointer, a negative size or another invalid argument */
    LT_ERR_SHAPE = 2,       /* shapes that do not fit together */
    LT_ERR_DTYPE = 3,       /* a dtype the operation does not accept */
    LT_ERR_DEVICE = 4,      /* tensors on different devices, or a device that is not available */
    LT_ERR_OOM = 5,         /* an allocation failed */
    LT_ERR_RANGE = 6,       /* an index or a view out of range */
    LT_ERR_IO = 7,          /* a file could not be opened, read or written */
    LT_ERR_FORMAT = 8,      /* a file's contents are invalid */
    LT_ERR_UNSUPPORTED = 9, /* valid, but not implemented on this backend or build */
    LT_ERR_BACKEND = 10,    /* a CUDA, cuBLAS, cuRAND, NCCL, MPI or HDF5 call failed */
    LT_ERR_STATE = 11,      /* called in the wrong state, for example backward twice through a freed graph */
    LT_ERR_INTERNAL = 12    /* a bug in libtrain; please report it with the message */
} lt_status;

/* The message of the last failed call on this thread, naming the function and the values involved,
 * for example "lt_matmul: inner dims differ (a is 4x3, b is 5x2)". Never NULL; "" when none.
 * The pointer stays valid until the next libtrain call on this thread. */
LT_API const char *lt_last_error(void);

/* A short constant name for a status, for example "LT_ERR_SHAPE". Unknown values give "LT_ERR_UNKNOWN". */
LT_API const char *lt_status_name(lt_status status);

/* Element types. Append-only. */
typedef enum lt_dtype {
    LT_F32 = 0,
    LT_F64 = 1,
    LT_BF16 = 2,
    LT_F16 = 3,
    LT_I32 = 4,
    LT_I64 = 5,
    LT_U16 = 6,
    LT_U8 = 7
} lt_dtype;
#define LT_DTYPE_COUNT 8

/* Bytes per element, or 0 for an unknown dtype. */
LT_API size_t lt_dtype_size(lt_dtype dtype);
/* "f32", "f64", "bf16", "f16", "i32", "i64", "u16", "u8", or "?" for an unknown dtype. */
LT_API const char *lt_dtype_name(lt_dtype dtype);

typedef enum lt_device_type { LT_CPU = 0, LT_CUDA = 1 } lt_device_type;

/* A device: its type and, for CUDA, the ordinal. Passed by value. */
typedef struct lt_device {
    int32_t type;  /* an lt_device_type */
    int32_t index; /* 0 for the CPU */
} lt_device;

/* The CPU device, usable as a constant expression in C and C++. */
#ifdef __cplusplus
#define LT_DEVICE_CPU (lt_device{LT_CPU, 0})
#else
#define LT_DEVICE_CPU ((lt_device){LT_CPU, 0})
#endif

/* Library version as "MAJOR.MINOR.PATCH", and the ABI number that bindings check before calling anything. */
LT_API const char *lt_version(void);
LT_API int lt_abi_version(void);

/* LT_OK when tensors can live on `device` here; otherwise LT_ERR_DEVICE with a message saying why: this build has
 * no CUDA backend, the machine has no GPU or driver, or the index is out of range. Tests turn that into a skip.
 * The first call for a GPU initialises it (its stream, cuBLAS handle and allocator). */
LT_API lt_status lt_device_check(lt_device device);
/* Waits until all work queued on the device has finished (ops on a GPU return before their kernels end), and
 * reports a failure of that work. A no-op on the CPU. For timing, and before reading memory by other means. */
LT_API lt_status lt_device_synchronize(lt_device device);

/* Caching-allocator statistics for one device, in bytes and counts since the library was loaded. */
typedef struct lt_alloc_stats {
    size_t struct_size;     /* set by the caller to sizeof(lt_alloc_stats); lets the struct grow */
    size_t bytes_in_use;    /* bytes handed out and not yet returned */
    size_t peak_bytes;      /* the high-water mark of bytes_in_use */
    size_t bytes_cached;    /* bytes held in the cache, free for reuse */
    uint64_t system_allocs; /* calls to the system allocator (malloc or cudaMalloc) */
    uint64_t system_frees;  /* calls that returned memory to the system */
    uint64_t cache_hits;    /* allocations served from the cache */
} lt_alloc_stats;

/* Fills *stats for the given device. stats->struct_size must be set. Returns LT_ERR_ARG for NULL or a
 * too-small struct_size, LT_ERR_DEVICE for a device that does not exist in this build. Thread-safe. */
LT_API lt_status lt_alloc_get_stats(lt_device device, lt_alloc_stats *stats);

/* Returns every cached, unused block of the device to the system. Thread-safe. */
LT_API lt_status lt_alloc_empty_cache(lt_device device);

/* Sets the number of threads that CPU kernels and OpenBLAS use (0 restores the default: all cores).
 * Not thread-safe against running ops. */
LT_API lt_status lt_set_num_threads(int n);
LT_API int lt_get_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif
