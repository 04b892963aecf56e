/* The CPU device's memory: 64-byte aligned host blocks behind the caching allocator, created on first use.
 *
 * Blocks of HUGE_MIN bytes and more are 2 MiB-aligned and asked to be backed by transparent huge pages, which Linux
 * gives only on request where THP is set to `madvise` (as on Debian's kernels). The GEMMs pack weight matrices row by
 * row, and with 4 KiB pages every row of a 768-wide f32 matrix is another TLB entry: on gpt2-124M (2 cores, Zen 4)
 * huge pages made the step about 4% faster, for at most 2 MiB of padding per large block. madvise is only advice: a
 * kernel without THP, or one out of huge pages, leaves the memory as it was. */
#include "core/error.h"
#include "cpu/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

static void *lt__cpu_sys_alloc(size_t n) {
#ifdef MADV_HUGEPAGE
    if (n >= HUGE_MIN) {
        size_t r = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        void *p = aligned_alloc(HUGE_PAGE, r);
        if (p) (void)madvise(p, r, MADV_HUGEPAGE);
        return p;
    }
#endif
    return aligned_alloc(64, (n + 63) & ~(size_t)63);
}
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
