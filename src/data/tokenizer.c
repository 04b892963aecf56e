/* The byte-level tokenizer: streams a text file, or a directory's text files, into an llm.c shard (one uint16
 * token per byte). Writes to a
 * temporary file, fsyncs and renames it, so the shard path only ever holds a complete shard. */
#include "core/error.h"
#include "libtrain/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LT_SHARD_MAGIC 20240520
#define LT_SHARD_VERSION 1
#define LT_SHARD_HEADER_BYTES 1024 /* 256 x int32 */
#define LT_TOK_CHUNK 65536         /* bytes of text per read */

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Writes all n bytes at offset (pwrite may write fewer, or be interrupted). */
static lt_status write_all(const char *fn, const char *path, int fd, const void *buf, size_t n, off_t offset) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, offset);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return lt__err(LT_ERR_IO, "%s: cannot write %s: %s", fn, path, w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
        offset += w;
    }
    return LT_OK;
}

/* Appends the bytes of one text file to the shard as tokens, starting after *count tokens. */
static lt_status append_text(const char *fn, const char *text_path, const char *tmp_path, int fd, unsigned char *buf,
                             uint64_t *count) {
    int text_fd = open(text_path, O_RDONLY | O_CLOEXEC);
    if (text_fd < 0) return lt__err(LT_ERR_IO, "%s: cannot open %s: %s", fn, text_path, strerror(errno));
    unsigned char *text = buf, *out = buf + LT_TOK_CHUNK;
    lt_status st = LT_OK;
    for (;;) {
        ssize_t r = read(text_fd, text, LT_TOK_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = lt__err(LT_ERR_IO, "%s: cannot read %s: %s", fn, text_path, strerror(errno));
            break;
        }
        if (r == 0) break;
        if (*count + (uint64_t)r > INT32_MAX) {
            st = lt__err(LT_ERR_FORMAT,
                         "%s: the text has more than %d bytes, more tokens than an llm.c header can count", fn,
                         INT32_MAX);
            break;
        }
        for (ssize_t i = 0; i < r; i++) { /* uint16 little-endian: the byte, then 0 */
            out[2 * i] = text[i];
            out[2 * i + 1] = 0;
        }
        st = write_all(fn, tmp_path, fd, out, 2 * (size_t)r, (off_t)(LT_SHARD_HEADER_BYTES + 2 * *count));
        if (st != LT_OK) break;
        *count += (uint64_t)r;
    }
    close(text_fd);
    return st;
}

/* Streams the text files into the open temporary shard: tokens first, then the header with the count actually
 * read, so a text that changes size while it is read still yields a shard that agrees with itself. */
static lt_status write_shard(const char *fn, const char *what, char *const *paths, int n, const char *tmp_path,
                             int fd) {
    unsigned char *buf = malloc(3 * LT_TOK_CHUNK); /* the text chunk, then its tokens */
    if (!buf) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    lt_status st = LT_OK;
    uint64_t count = 0;
    for (int i = 0; i < n && st == LT_OK; i++) st = append_text(fn, paths[i], tmp_path, fd, buf, &count);
    free(buf);
    LT_TRY(st);
    if (count == 0) return lt__err(LT_ERR_FORMAT, "%s: %s holds no text; a shard needs at least one token", fn, what);
    unsigned char header[LT_SHARD_HEADER_BYTES] = {0};
    put_le32(header, LT_SHARD_MAGIC);
    put_le32(header + 4, LT_SHARD_VERSION);
    put_le32(header + 8, (uint32_t)count);
    LT_TRY(write_all(fn, tmp_path, fd, header, sizeof header, 0));
    if (fsync(fd) != 0) return lt__err(LT_ERR_IO, "%s: cannot fsync %s: %s", fn, tmp_path, strerror(errno));
    return LT_OK;
}

/* Whether a directory entry is a text file: a regular file (symbolic links are skipped, so aliases such as the
 * fortunes package's *.u8 links are not read twice) with no NUL byte in its first 4 KiB (index files are binary). */
static bool is_text_file(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char head[4096];
    ssize_t r = read(fd, head, sizeof head);
    close(fd);
    return r > 0 && memchr(head, 0, (size_t)r) == NULL;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* The text files to read for text_path: itself, or a directory's text files in name order. *paths is malloc'd. */
static lt_status list_texts(const char *fn, const char *text_path, char ***paths, int *n) {
    struct stat st;
    *paths = NULL;
    *n = 0;
    if (stat(text_path, &st) != 0) return lt__err(LT_ERR_IO, "%s: cannot open %s: %s", fn, text_path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        *paths = malloc(sizeof(char *));
        if (!*paths || !((*paths)[0] = strdup(text_path))) {
            free(*paths);
            *paths = NULL;
            return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
        }
        *n = 1;
        return LT_OK;
    }
    struct dirent **entries;
    int m = scandir(text_path, &entries, NULL, by_name);
    if (m < 0) return lt__err(LT_ERR_IO, "%s: cannot list %s: %s", fn, text_path, strerror(errno));
    lt_status status = LT_OK;
    *paths = calloc((size_t)m + 1, sizeof(char *));
    if (!*paths) status = lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    for (int i = 0; i < m; i++) {
        char full[PATH_MAX];
        int w = snprintf(full, sizeof full, "%s/%s", text_path, entries[i]->d_name);
        if (status == LT_OK && entries[i]->d_name[0] != '.' && w > 0 && w < (int)sizeof full && is_text_file(full)) {
            (*paths)[*n] = strdup(full);
            if (!(*paths)[*n])
                status = lt__err(LT_ERR_OOM, "%s: out of memory", fn);
            else
                (*n)++;
        }
        free(entries[i]);
    }
    free(entries);
    if (status == LT_OK && *n == 0) status = lt__err(LT_ERR_FORMAT, "%s: %s holds no text files", fn, text_path);
    return status;
}

/* Makes the rename itself durable. Some filesystems refuse fsync on a directory; the shard's own data is already
 * synced then, so this stays best-effort. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

LT_API lt_status lt_tokenize_bytes(const char *text_path, const char *shard_path) {
    static const char *fn = "lt_tokenize_bytes";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, text_path);
    LT_CHECK_NOT_NULL(fn, shard_path);
    char **paths;
    int n;
    lt_status st = list_texts(fn, text_path, &paths, &n);
    size_t len = strlen(shard_path) + 32;
    char *tmp_path = st == LT_OK ? malloc(len) : NULL;
    if (st == LT_OK && !tmp_path) st = lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    if (st == LT_OK && tmp_path) { /* (tmp_path is set whenever st is OK; said twice for gcc's -Wformat-truncation) */
        snprintf(tmp_path, len, "%s.tmp.%ld", shard_path, (long)getpid());
        /* O_TRUNC, not O_EXCL: a leftover file of this pid belongs to a process that is gone */
        int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            st = lt__err(LT_ERR_IO, "%s: cannot create %s: %s", fn, tmp_path, strerror(errno));
        } else {
            st = write_shard(fn, text_path, paths, n, tmp_path, fd);
            if (close(fd) != 0 && st == LT_OK)
                st = lt__err(LT_ERR_IO, "%s: cannot close %s: %s", fn, tmp_path, strerror(errno));
            if (st == LT_OK && rename(tmp_path, shard_path) != 0)
                st = lt__err(LT_ERR_IO, "%s: cannot rename %s to %s: %s", fn, tmp_path, shard_path, strerror(errno));
            if (st != LT_OK)
                unlink(tmp_path);
            else
                sync_parent_dir(shard_path);
        }
    }
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(tmp_path);
    return st;
}
