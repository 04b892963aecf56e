/* The CPU device's memory: 64-byte aligned host blocks behind the caching allocator, created on first use. */
#include "core/error.h"
#include "cpu/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void *lt__cpu_sys_alloc(size_t n) { return aligned_alloc(64, (n + 63) & ~(size_t)63); }
static void lt__cpu_sys_free(void *p) { free(p); }
static void lt__cpu_sys_fill(void *p, int byte, size_t n) { memset(p, byte, n); }

static lt__allocator *lt__cpu_alloc_instance;
static pthread_once_t lt__cpu_alloc_once = PTHREAD_ONCE_INIT;

static void lt__cpu_alloc_init(void) {
    static const lt__sys_mem sys = {lt__cpu_sys_alloc, lt__cpu_sys_free, lt__cpu_sys_fill};
    lt__cpu_alloc_instance = lt__allocator_create(&sys);
}

lt__allocator *lt__cpu_allocator(int device_index) {
    if (device_index != 0) return NULL;
    pthread_once(&lt__cpu_alloc_once, lt__cpu_alloc_init);
    return lt__cpu_alloc_instance;
}

/* CPU work is done when the call that queued it returns. */
lt_status lt__cpu_synchronize(int device_index) {
    (void)device_index;
    return LT_OK;
}
