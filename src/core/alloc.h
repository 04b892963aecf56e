/* Device-neutral caching allocator interface. Blocks are cached by size class and reused, so a training step in
 * its steady state makes no system allocation. A backend provides the raw system calls; this layer does the caching. */
#ifndef LT_CORE_ALLOC_H
#define LT_CORE_ALLOC_H

#include "libtrain/core.h"

#include <pthread.h>

/* The raw, uncached memory of one device. sys_alloc returns NULL when out of memory. */
typedef struct lt__sys_mem {
    void *(*sys_alloc)(size_t nbytes);
    void (*sys_free)(void *ptr);
    /* Sets nbytes at ptr to byte; used to poison fresh blocks when LIBTRAIN_POISON_ALLOC=1. */
    void (*sys_fill)(void *ptr, int byte, size_t nbytes);
} lt__sys_mem;

typedef struct lt__allocator lt__allocator;

/* Creates a caching allocator over sys. Returns NULL on OOM. */
lt__allocator *lt__allocator_create(const lt__sys_mem *sys);
void lt__allocator_destroy(lt__allocator *a);
/* At least nbytes (0 allowed), 64-byte aligned. LT_ERR_OOM with a message naming `who` when the system refuses. */
lt_status lt__alloc(lt__allocator *a, size_t nbytes, const char *who, void **out);
/* Returns a block from lt__alloc to the cache. NULL is a no-op. */
void lt__free(lt__allocator *a, void *ptr);
void lt__allocator_stats(lt__allocator *a, lt_alloc_stats *stats);
void lt__allocator_empty_cache(lt__allocator *a);

/* A small thread-safe free list of fixed-size objects (tensor headers, graph nodes), so that creating them in the
 * steady state does not call malloc. */
typedef struct lt__pool {
    pthread_mutex_t mu;
    size_t size; /* bytes per object, at least sizeof(void *) */
    void *head;
} lt__pool;
#define LT__POOL_INIT(bytes)                                                                                           \
    { PTHREAD_MUTEX_INITIALIZER, (bytes), NULL }
void *lt__pool_get(lt__pool *pool);
void lt__pool_put(lt__pool *pool, void *obj);
lt__pool *lt__pool_tensors(void);
lt__pool *lt__pool_storages(void);

#endif
