/* Token datasets: llm.c shards or raw uint16 files, memory-mapped read-only and validated once at open, so that the
 * loader can copy any window without further checks. Never copies the token data and never writes to a file. */
#include "core/error.h"
#include "data/data_impl.h"
#include "libtrain/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tokens are read in place from the mapping, so the host must share the files' little-endian byte order. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libtrain's data loader reads little-endian uint16 shards in place; this host is not little-endian"
#endif

#define LT_SHARD_MAGIC 20240520
#define LT_SHARD_VERSION 1
#define LT_SHARD_HEADER_BYTES 1024 /* 256 x int32 */

typedef struct lt__shard {
    void *map; /* the whole file, PROT_READ */
    size_t map_len;
    const uint16_t *tokens; /* inside map: after the header for llm.c shards, at 0 for raw files */
} lt__shard;

/* The mapped files of one open call, shared read-only by the dataset and its slices. starts[i] is the first global
 * token of shard i; starts[n] is the total. */
typedef struct lt__shards {
    lt__shard *s;
    int64_t *starts;
    int n;
} lt__shards;

struct lt_dataset {
    lt__shards *sh;
    bool owner; /* the dataset from lt_dataset_open owns sh; slices borrow it */
    int64_t start, n;
};

static void shards_free(lt__shards *sh) {
    if (!sh) return;
    for (int i = 0; i < sh->n; i++)
        if (sh->s[i].map) munmap(sh->s[i].map, sh->s[i].map_len);
    free(sh->s);
    free(sh->starts);
    free(sh);
}

static uint32_t read_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The index of the first token > max_token in t[0, n), or -1. Scans blocks with a branch-free max (which the
 * compiler vectorises: the scan is memory-bound) and only looks for the index inside a block that fails. */
static int64_t first_bad_token(const uint16_t *t, int64_t n, uint16_t max_token) {
    enum { BLOCK = 1 << 16 };
    for (int64_t s = 0; s < n; s += BLOCK) {
        int64_t e = n - s < BLOCK ? n : s + BLOCK;
        uint16_t m = 0;
#pragma omp simd reduction(max : m)
        for (int64_t i = s; i < e; i++) m = t[i] > m ? t[i] : m;
        if (m <= max_token) continue;
        for (int64_t i = s; i < e; i++)
            if (t[i] > max_token) return i;
    }
    return -1;
}

/* Maps one shard file and checks its header, its size and every token. On failure nothing stays mapped. */
static lt_status shard_open(const char *fn, const char *path, int64_t vocab_size, lt__shard *out, int64_t *n_out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lt__err(LT_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lt__err(LT_ERR_IO, "%s: cannot stat %s: %s", fn, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lt__err(LT_ERR_IO, "%s: %s is not a regular file", fn, path);
    }
    if (st.st_size == 0) {
        close(fd);
        return lt__err(LT_ERR_FORMAT, "%s: %s is empty (a shard holds at least one token)", fn, path);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file open */
    if (map == MAP_FAILED) return lt__err(LT_ERR_IO, "%s: cannot map %s: %s", fn, path, strerror(map_errno));

    const unsigned char *bytes = map;
    const uint16_t *tokens;
    int64_t n;
    lt_status status = LT_OK;
    if (size >= 4 && read_le32(bytes) == LT_SHARD_MAGIC) {
        if (size < LT_SHARD_HEADER_BYTES) {
            status = lt__err(LT_ERR_FORMAT,
                             "%s: %s starts with the llm.c magic %d but has %zu bytes, fewer than the %d-byte header",
                             fn, path, LT_SHARD_MAGIC, size, LT_SHARD_HEADER_BYTES);
            goto fail;
        }
        uint32_t version = read_le32(bytes + 4);
        if (version != LT_SHARD_VERSION) {
            status = lt__err(LT_ERR_FORMAT, "%s: %s: llm.c shard version %u at byte 4, expected %d", fn, path, version,
                             LT_SHARD_VERSION);
            goto fail;
        }
        int32_t count = (int32_t)read_le32(bytes + 8);
        uint64_t body = size - LT_SHARD_HEADER_BYTES;
        if (count < 0 || body != 2 * (uint64_t)count) {
            status = lt__err(LT_ERR_FORMAT,
                             "%s: %s: the header's token count at byte 8 is %d (%lld bytes of tokens) but the file "
                             "holds %llu bytes after the header (truncated, or trailing bytes)",
                             fn, path, count, 2 * (long long)count, (unsigned long long)body);
            goto fail;
        }
        tokens = (const uint16_t *)(bytes + LT_SHARD_HEADER_BYTES);
        n = count;
    } else {
        if (size % 2 != 0) {
            status =
                lt__err(LT_ERR_FORMAT, "%s: %s: a raw uint16 token file (no llm.c magic) has an odd size, %zu bytes",
                        fn, path, size);
            goto fail;
        }
        tokens = (const uint16_t *)bytes;
        n = (int64_t)(size / 2);
    }
    if (n == 0) {
        status = lt__err(LT_ERR_FORMAT, "%s: %s holds no tokens", fn, path);
        goto fail;
    }
    if (vocab_size <= UINT16_MAX) { /* at 65536 every uint16 is a valid token */
        int64_t bad = first_bad_token(tokens, n, (uint16_t)(vocab_size - 1));
        if (bad >= 0) {
            status = lt__err(LT_ERR_FORMAT, "%s: %s: token %lld (byte %lld) is %u, not below vocab_size %lld", fn, path,
                             (long long)bad, (long long)((const unsigned char *)(tokens + bad) - bytes),
                             (unsigned)tokens[bad], (long long)vocab_size);
            goto fail;
        }
    }
    out->map = map;
    out->map_len = size;
    out->tokens = tokens;
    *n_out = n;
    return LT_OK;
fail:
    munmap(map, size);
    return status;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_bin_name(const char *name) {
    size_t len = strlen(name);
    /* as the shell's *.bin: hidden files are not matched */
    return name[0] != '.' && len > 4 && strcmp(name + len - 4, ".bin") == 0;
}

/* The paths of dir's *.bin entries, sorted bytewise by name (locale-independent, so every rank agrees). */
static lt_status list_bins(const char *fn, const char *dir, char ***out, int *n_out) {
    DIR *d = opendir(dir);
    if (!d) return lt__err(LT_ERR_IO, "%s: cannot read directory %s: %s", fn, dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    lt_status status = LT_OK;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (!is_bin_name(e->d_name)) continue;
        if (n == cap) {
            int nc = cap ? 2 * cap : 16;
            char **grown = realloc(names, (size_t)nc * sizeof *names);
            if (!grown) {
                status = lt__err(LT_ERR_OOM, "%s: out of memory listing %s", fn, dir);
                goto done;
            }
            names = grown;
            cap = nc;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        names[n] = malloc(len);
        if (!names[n]) {
            status = lt__err(LT_ERR_OOM, "%s: out of memory listing %s", fn, dir);
            goto done;
        }
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
        errno = 0;
    }
    if (errno != 0) {
        status = lt__err(LT_ERR_IO, "%s: cannot read directory %s: %s", fn, dir, strerror(errno));
        goto done;
    }
    if (n == 0) {
        status = lt__err(LT_ERR_IO, "%s: directory %s has no *.bin shard files", fn, dir);
        goto done;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_names);
done:
    closedir(d);
    if (status != LT_OK) {
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        return status;
    }
    *out = names;
    *n_out = n;
    return LT_OK;
}

LT_API lt_status lt_dataset_open(const char *path, int64_t vocab_size, lt_dataset **out) {
    static const char *fn = "lt_dataset_open";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, path);
    if (vocab_size < 1 || vocab_size > 65536)
        return lt__err(LT_ERR_ARG, "%s: vocab_size %lld outside [1, 65536] (tokens are uint16)", fn,
                       (long long)vocab_size);
    struct stat st;
    if (stat(path, &st) != 0) return lt__err(LT_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));

    char **paths = NULL;
    int n_paths = 0;
    char *single = (char *)path;
    if (S_ISDIR(st.st_mode)) {
        LT_TRY(list_bins(fn, path, &paths, &n_paths));
    } else {
        paths = &single;
        n_paths = 1;
    }

    lt_status status = LT_OK;
    lt_dataset *ds = NULL;
    lt__shards *sh = calloc(1, sizeof *sh);
    if (sh) sh->s = calloc((size_t)n_paths, sizeof *sh->s);
    if (sh) sh->starts = calloc((size_t)n_paths + 1, sizeof *sh->starts);
    if (!sh || !sh->s || !sh->starts) {
        status = lt__err(LT_ERR_OOM, "%s: out of memory", fn);
        goto done;
    }
    for (int i = 0; i < n_paths; i++) {
        int64_t n = 0;
        status = shard_open(fn, paths[i], vocab_size, &sh->s[i], &n);
        if (status != LT_OK) goto done;
        sh->n = i + 1;
        sh->starts[i + 1] = sh->starts[i] + n;
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) {
        status = lt__err(LT_ERR_OOM, "%s: out of memory", fn);
        goto done;
    }
    ds->sh = sh;
    ds->owner = true;
    ds->start = 0;
    ds->n = sh->starts[sh->n];
done:
    if (paths != &single) {
        for (int i = 0; i < n_paths; i++) free(paths[i]);
        free(paths);
    }
    if (status != LT_OK) {
        shards_free(sh);
        return status;
    }
    *out = ds;
    return LT_OK;
}

LT_API void lt_dataset_free(lt_dataset *ds) {
    if (!ds) return;
    if (ds->owner) shards_free(ds->sh);
    free(ds);
}

LT_API int64_t lt_dataset_tokens(const lt_dataset *ds) { return ds ? ds->n : 0; }

LT_API lt_status lt_dataset_slice(lt_dataset *ds, int64_t start, int64_t end, lt_dataset **out) {
    static const char *fn = "lt_dataset_slice";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, ds);
    if (start < 0 || end < start || end > ds->n)
        return lt__err(LT_ERR_RANGE, "%s: tokens [%lld, %lld) are not inside the dataset's [0, %lld)", fn,
                       (long long)start, (long long)end, (long long)ds->n);
    lt_dataset *s = calloc(1, sizeof *s);
    if (!s) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    s->sh = ds->sh;
    s->owner = false;
    s->start = ds->start + start;
    s->n = end - start;
    *out = s;
    return LT_OK;
}

/* For loader.c: copies tokens [pos, pos + n) of ds (which the caller keeps inside the dataset) as int32 into dst,
 * crossing shard boundaries as the concatenation does. */
void lt__dataset_read_i32(const lt_dataset *ds, int64_t pos, int64_t n, int32_t *dst) {
    LT_ASSERT(pos >= 0 && n >= 0 && pos + n <= ds->n);
    const lt__shards *sh = ds->sh;
    int64_t g = ds->start + pos;
    /* the last shard whose start is <= g: shards are few, but a directory may hold thousands */
    int lo = 0, hi = sh->n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (sh->starts[mid] <= g)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (int i = lo; n > 0; i++) {
        LT_ASSERT(i < sh->n);
        int64_t off = g - sh->starts[i];
        int64_t take = sh->starts[i + 1] - g;
        if (take > n) take = n;
        const uint16_t *src = sh->s[i].tokens + off;
        for (int64_t k = 0; k < take; k++) dst[k] = src[k];
        dst += take;
        g += take;
        n -= take;
    }
}
