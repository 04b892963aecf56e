/* The caching allocator: freed blocks go to per-size-class bins and are handed out again, so a training loop in its
 * steady state calls the system allocator zero times. Size classes waste at most 25% (four classes per power of
 * two above 1 KiB, 64-byte steps below). Device-neutral: block sizes live in a hash table, never in the block. */
#include "core/alloc.h"

#include "core/error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LT_NBINS 256
#define LT_SMALL_LIMIT 1024

typedef struct lt__bin {
    void **items;
    int n, cap;
} lt__bin;

typedef struct lt__slot {
    void *ptr; /* NULL: empty; (void *)1: deleted */
    size_t size;
} lt__slot;

struct lt__allocator {
    pthread_mutex_t mu;
    lt__sys_mem sys;
    bool poison;
    lt__bin bins[LT_NBINS];
    lt__slot *slots; /* open addressing: live and cached blocks -> their class size */
    size_t nslots, nused;
    lt_alloc_stats st;
};

#define LT_TOMBSTONE ((void *)1)

/* Maps a request to its bin and class size. */
static int lt__size_class(size_t n, size_t *cls) {
    if (n <= LT_SMALL_LIMIT) {
        size_t b = n == 0 ? 1 : (n + 63) / 64;
        *cls = b * 64;
        return (int)b;
    }
    int e = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n <= 2^(e+1) */
    size_t base = (size_t)1 << e, step = base >> 2;
    size_t s = (n - base + step - 1) / step; /* 1..4 */
    *cls = base + s * step;
    return 17 + (e - 10) * 4 + (int)(s - 1);
}

static size_t lt__hash(void *p, size_t mask) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static bool lt__slots_grow(lt__allocator *a) {
    size_t n = a->nslots ? a->nslots * 2 : 1024;
    lt__slot *s = calloc(n, sizeof *s);
    if (!s) return false;
    for (size_t i = 0; i < a->nslots; i++) {
        void *p = a->slots[i].ptr;
        if (!p || p == LT_TOMBSTONE) continue;
        size_t h = lt__hash(p, n - 1);
        while (s[h].ptr) h = (h + 1) & (n - 1);
        s[h] = a->slots[i];
    }
    free(a->slots);
    a->slots = s;
    a->nslots = n;
    return true;
}

static bool lt__slot_put(lt__allocator *a, void *p, size_t size) {
    if ((a->nused + 1) * 2 > a->nslots && !lt__slots_grow(a)) return false;
    size_t h = lt__hash(p, a->nslots - 1);
    while (a->slots[h].ptr && a->slots[h].ptr != LT_TOMBSTONE) h = (h + 1) & (a->nslots - 1);
    a->slots[h].ptr = p;
    a->slots[h].size = size;
    a->nused++;
    return true;
}

static lt__slot *lt__slot_find(lt__allocator *a, void *p) {
    if (!a->nslots) return NULL;
    size_t h = lt__hash(p, a->nslots - 1);
    for (size_t probes = 0; probes < a->nslots && a->slots[h].ptr; probes++) {
        if (a->slots[h].ptr == p) return &a->slots[h];
        h = (h + 1) & (a->nslots - 1);
    }
    return NULL;
}

lt__allocator *lt__allocator_create(const lt__sys_mem *sys) {
    lt__allocator *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    pthread_mutex_init(&a->mu, NULL);
    a->sys = *sys;
    const char *poison = getenv("LIBTRAIN_POISON_ALLOC");
    a->poison = poison && poison[0] && strcmp(poison, "0") != 0;
    a->st.struct_size = sizeof a->st;
    return a;
}

/* Frees every cached block; the caller holds the lock. Blocks stay in the table only while live. */
static void lt__drain(lt__allocator *a) {
    for (int b = 0; b < LT_NBINS; b++) {
        lt__bin *bin = &a->bins[b];
        for (int i = 0; i < bin->n; i++) {
            lt__slot *s = lt__slot_find(a, bin->items[i]);
            if (s) {
                a->st.bytes_cached -= s->size;
                s->ptr = LT_TOMBSTONE;
                a->nused--;
            }
            a->sys.sys_free(bin->items[i]);
            a->st.system_frees++;
        }
        bin->n = 0;
    }
}

void lt__allocator_destroy(lt__allocator *a) {
    if (!a) return;
    lt__drain(a);
    for (int b = 0; b < LT_NBINS; b++) free(a->bins[b].items);
    free(a->slots);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

lt_status lt__alloc(lt__allocator *a, size_t nbytes, const char *who, void **out) {
    size_t cls;
    *out = NULL;
    if (nbytes > ((size_t)1 << 62)) return lt__err(LT_ERR_OOM, "%s: cannot allocate %zu bytes", who, nbytes);
    int b = lt__size_class(nbytes, &cls);
    pthread_mutex_lock(&a->mu);
    void *p = NULL;
    lt__bin *bin = &a->bins[b];
    if (bin->n > 0) {
        p = bin->items[--bin->n];
        a->st.bytes_cached -= cls;
        a->st.cache_hits++;
    } else {
        p = a->sys.sys_alloc(cls);
        if (!p) { /* give the cache back to the system and try once more */
            lt__drain(a);
            p = a->sys.sys_alloc(cls);
        }
        if (p && !lt__slot_put(a, p, cls)) {
            a->sys.sys_free(p);
            p = NULL;
        }
        if (p) a->st.system_allocs++;
    }
    if (p) {
        a->st.bytes_in_use += cls;
        if (a->st.bytes_in_use > a->st.peak_bytes) a->st.peak_bytes = a->st.bytes_in_use;
    }
    pthread_mutex_unlock(&a->mu);
    if (!p) return lt__err(LT_ERR_OOM, "%s: out of memory allocating %zu bytes", who, nbytes);
    if (a->poison) a->sys.sys_fill(p, 0xFF, cls);
    *out = p;
    return LT_OK;
}

void lt__free(lt__allocator *a, void *ptr) {
    if (!ptr) return;
    pthread_mutex_lock(&a->mu);
    lt__slot *s = lt__slot_find(a, ptr);
    LT_ASSERT(s != NULL); /* freeing a block this allocator never handed out */
    size_t cls;
    int b = lt__size_class(s->size, &cls);
    lt__bin *bin = &a->bins[b];
    if (bin->n == bin->cap) {
        int cap = bin->cap ? bin->cap * 2 : 16;
        void **items = realloc(bin->items, sizeof(void *) * (size_t)cap);
        if (!items) { /* cannot cache it: return it to the system instead */
            s->ptr = LT_TOMBSTONE;
            a->nused--;
            a->st.bytes_in_use -= cls;
            a->st.system_frees++;
            pthread_mutex_unlock(&a->mu);
            a->sys.sys_free(ptr);
            return;
        }
        bin->items = items;
        bin->cap = cap;
    }
    bin->items[bin->n++] = ptr;
    a->st.bytes_in_use -= cls;
    a->st.bytes_cached += cls;
    pthread_mutex_unlock(&a->mu);
}

void lt__allocator_stats(lt__allocator *a, lt_alloc_stats *stats) {
    pthread_mutex_lock(&a->mu);
    *stats = a->st;
    pthread_mutex_unlock(&a->mu);
}

void lt__allocator_empty_cache(lt__allocator *a) {
    pthread_mutex_lock(&a->mu);
    lt__drain(a);
    pthread_mutex_unlock(&a->mu);
}

/* ---- Fixed-size object pools ---- */

void *lt__pool_get(lt__pool *pool) {
    pthread_mutex_lock(&pool->mu);
    void *obj = pool->head;
    if (obj) pool->head = *(void **)obj;
    pthread_mutex_unlock(&pool->mu);
    return obj ? obj : malloc(pool->size);
}

void lt__pool_put(lt__pool *pool, void *obj) {
    if (!obj) return;
    pthread_mutex_lock(&pool->mu);
    *(void **)obj = pool->head;
    pool->head = obj;
    pthread_mutex_unlock(&pool->mu);
}

#include "tensor/tensor_impl.h"

static lt__pool lt__tensor_pool = LT__POOL_INIT(sizeof(lt_tensor));
static lt__pool lt__storage_pool = LT__POOL_INIT(sizeof(lt__storage));

lt__pool *lt__pool_tensors(void) { return &lt__tensor_pool; }
lt__pool *lt__pool_storages(void) { return &lt__storage_pool; }
