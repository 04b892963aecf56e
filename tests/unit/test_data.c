/* Unit tests of data.h: the byte tokenizer, shard formats and their validation (a sweep of bad files), directories,
 * slices, and the loader's windows, shuffle, rank split, epochs and resumable cursor. Every file is written by the
 * test under a mkdtemp directory (removed at the end), and every expected token comes from the bytes written here. */
#define _GNU_SOURCE /* nftw */
#include "test.h"

#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

/* A non-NULL value stored in *out before a failing call, to see that the call resets it to NULL. */
#define SENTINEL ((void *)&tt_sentinel)

typedef struct path_buf {
    char s[512];
} path_buf;

/* g_dir/name, usable inline as P("x.bin").s (the temporary lives to the end of the full expression). */
static path_buf P(const char *name) {
    path_buf p;
    snprintf(p.s, sizeof p.s, "%s/%s", g_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
}

/* An llm.c shard: header (magic, version, count) then the tokens. The host is little-endian, as the format. */
static void write_llmc_ex(const char *path, const uint16_t *tok, size_t n, int32_t version, int32_t count) {
    size_t bytes = 1024 + 2 * n;
    unsigned char *buf = calloc(1, bytes);
    int32_t hdr[256] = {20240520, version, count};
    memcpy(buf, hdr, sizeof hdr);
    if (n) memcpy(buf + 1024, tok, 2 * n);
    write_bytes(path, buf, bytes);
    free(buf);
}

static void write_llmc(const char *path, const uint16_t *tok, size_t n) { write_llmc_ex(path, tok, n, 1, (int32_t)n); }

static uint16_t *rand_tokens(size_t n, int vocab) {
    uint16_t *t = malloc(2 * n);
    for (size_t i = 0; i < n; i++) t[i] = (uint16_t)tt_uniform(0, vocab);
    return t;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Every token of ds (at least 2) through one loader window of T = n - 1: x is tokens [0, n-1), y ends with n-1. */
static int32_t *read_all(lt_dataset *ds) {
    int64_t n = lt_dataset_tokens(ds);
    if (n < 2) return NULL;
    lt_loader *L = NULL;
    lt_tensor *x = NULL, *y = NULL;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)n), *ybuf = malloc(sizeof(int32_t) * (size_t)(n - 1));
    bool ok = lt_loader_create(ds, 1, n - 1, 7, 0, 1, &L) == LT_OK &&
              lt_loader_next(L, LT_DEVICE_CPU, &x, &y) == LT_OK &&
              lt_tensor_to_host(x, all, sizeof(int32_t) * (size_t)(n - 1)) == LT_OK &&
              lt_tensor_to_host(y, ybuf, sizeof(int32_t) * (size_t)(n - 1)) == LT_OK;
    if (ok) {
        all[n - 1] = ybuf[n - 2];
        /* y is x shifted by one */
        for (int64_t i = 0; i + 1 < n - 1; i++) ok = ok && ybuf[i] == all[i + 1];
    }
    if (!ok) fprintf(stderr, "read_all: %s\n", lt_last_error());
    lt_loader_free(L);
    free(ybuf);
    if (!ok) {
        free(all);
        return NULL;
    }
    return all;
}

static bool same_tokens(const int32_t *got, const uint16_t *ref, int64_t n) {
    if (!got) return false;
    for (int64_t i = 0; i < n; i++)
        if (got[i] != ref[i]) {
            fprintf(stderr, "token %lld: got %d, expected %u\n", (long long)i, got[i], ref[i]);
            return false;
        }
    return true;
}

/* ---- Tokenizer and formats ---- */

static void test_tokenize_roundtrip(void) {
    enum { N = 10007 };
    unsigned char text[N];
    for (int i = 0; i < N; i++) text[i] = (unsigned char)tt_uniform(0, 256);
    text[0] = 0, text[1] = 255, text[2] = '\n'; /* the extremes are bytes like any other */
    write_bytes(P("rt.txt").s, text, N);
    CHECK_OK(lt_tokenize_bytes(P("rt.txt").s, P("rt.bin").s));

    /* the file itself: llm.c header, then one little-endian uint16 per byte */
    FILE *f = fopen(P("rt.bin").s, "rb");
    CHECK(f != NULL);
    if (!f) return;
    static unsigned char raw[1024 + 2 * N + 1];
    size_t got = fread(raw, 1, sizeof raw, f);
    fclose(f);
    CHECK(got == 1024 + 2 * N);
    int32_t hdr[3];
    memcpy(hdr, raw, sizeof hdr);
    CHECK(hdr[0] == 20240520 && hdr[1] == 1 && hdr[2] == N);
    for (int i = 3; i < 256; i++) CHECK(raw[4 * i] == 0);
    bool bytes_ok = true;
    for (int i = 0; i < N; i++) bytes_ok = bytes_ok && raw[1024 + 2 * i] == text[i] && raw[1024 + 2 * i + 1] == 0;
    CHECK(bytes_ok);

    lt_dataset *ds = NULL;
    CHECK_OK(lt_dataset_open(P("rt.bin").s, 256, &ds));
    CHECK(lt_dataset_tokens(ds) == N);
    int32_t *all = read_all(ds);
    uint16_t ref[N];
    for (int i = 0; i < N; i++) ref[i] = text[i];
    CHECK(same_tokens(all, ref, N));
    free(all);
    lt_dataset_free(ds);

    /* no temporary is left beside the shard */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", P("rt.bin").s, (long)getpid());
    CHECK(!file_exists(tmp));

    /* re-tokenizing over an existing shard replaces it whole */
    write_bytes(P("rt2.txt").s, "hi", 2);
    CHECK_OK(lt_tokenize_bytes(P("rt2.txt").s, P("rt.bin").s));
    CHECK_OK(lt_dataset_open(P("rt.bin").s, 256, &ds));
    CHECK(lt_dataset_tokens(ds) == 2);
    all = read_all(ds);
    CHECK(all && all[0] == 'h' && all[1] == 'i');
    free(all);
    lt_dataset_free(ds);
}

static void test_tokenize_errors(void) {
    const char *fn = "lt_tokenize_bytes";
    CHECK_ERR(lt_tokenize_bytes(NULL, P("x.bin").s), LT_ERR_ARG, fn);
    CHECK_ERR(lt_tokenize_bytes(P("x.txt").s, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_tokenize_bytes(P("missing.txt").s, P("x.bin").s), LT_ERR_IO, fn);
    CHECK(strstr(lt_last_error(), "missing.txt") != NULL);
    write_bytes(P("empty.txt").s, "", 0);
    CHECK_ERR(lt_tokenize_bytes(P("empty.txt").s, P("empty.bin").s), LT_ERR_FORMAT, fn);
    CHECK(!file_exists(P("empty.bin").s));
    /* a failure leaves neither the shard nor its temporary */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", P("empty.bin").s, (long)getpid());
    CHECK(!file_exists(tmp));
    write_bytes(P("t.txt").s, "abc", 3);
    CHECK_ERR(lt_tokenize_bytes(P("t.txt").s, P("no_such_dir/t.bin").s), LT_ERR_IO, fn);
    mkdir(P("empty_dir").s, 0755);
    CHECK_ERR(lt_tokenize_bytes(P("empty_dir").s, P("d.bin").s), LT_ERR_FORMAT, fn); /* no text files in it */
    CHECK(!file_exists(P("d.bin").s));
}

/* A directory of text files (the fortunes package's layout) is read in name order, skipping binary files,
 * symbolic links and hidden files. */
static void test_tokenize_directory(void) {
    mkdir(P("corpus").s, 0755);
    write_bytes(P("corpus/b").s, "xy", 2);
    write_bytes(P("corpus/a").s, "12", 2);
    write_bytes(P("corpus/a.dat").s, "\0\1\2", 3); /* an index: binary */
    write_bytes(P("corpus/.hidden").s, "zz", 2);
    CHECK(symlink("a", P("corpus/a.u8").s) == 0);
    CHECK_OK(lt_tokenize_bytes(P("corpus").s, P("corpus.bin").s));
    lt_dataset *ds = NULL;
    CHECK_OK(lt_dataset_open(P("corpus.bin").s, 256, &ds));
    CHECK(lt_dataset_tokens(ds) == 4);
    int32_t *all = read_all(ds);
    CHECK(all && all[0] == '1' && all[1] == '2' && all[2] == 'x' && all[3] == 'y');
    free(all);
    lt_dataset_free(ds);
}

static void test_llmc_shard(void) {
    enum { N = 4099 };
    uint16_t *tok = rand_tokens(N, 50257);
    tok[0] = 50256, tok[1] = 256, tok[2] = 0; /* GPT-2's <|endoftext|> and tokens past a byte */
    write_llmc(P("gpt2.bin").s, tok, N);
    lt_dataset *ds = NULL;
    CHECK_OK(lt_dataset_open(P("gpt2.bin").s, 50257, &ds));
    CHECK(lt_dataset_tokens(ds) == N);
    int32_t *all = read_all(ds);
    CHECK(same_tokens(all, tok, N));
    free(all);
    lt_dataset_free(ds);
    free(tok);
}

static void test_raw_file(void) {
    enum { N = 3001 };
    uint16_t *tok = rand_tokens(N, 50304);
    write_bytes(P("raw.bin").s, tok, 2 * N);
    lt_dataset *ds = NULL;
    CHECK_OK(lt_dataset_open(P("raw.bin").s, 50304, &ds));
    CHECK(lt_dataset_tokens(ds) == N);
    int32_t *all = read_all(ds);
    CHECK(same_tokens(all, tok, N));
    free(all);
    lt_dataset_free(ds);

    /* vocab 65536 accepts every uint16; one less rejects 65535 and names where it is */
    tok[1234] = 65535;
    write_bytes(P("raw_max.bin").s, tok, 2 * N);
    CHECK_OK(lt_dataset_open(P("raw_max.bin").s, 65536, &ds));
    lt_dataset_free(ds);
    CHECK_ERR(lt_dataset_open(P("raw_max.bin").s, 65535, &ds), LT_ERR_FORMAT, "lt_dataset_open");
    CHECK(ds == NULL);
    CHECK(strstr(lt_last_error(), "raw_max.bin") != NULL && strstr(lt_last_error(), "token 1234") != NULL);
    free(tok);
}

/* ---- Directories and slices ---- */

enum { S0 = 1001, S1 = 517, S2 = 1490, SN = S0 + S1 + S2 };

/* dir/ holds three shards whose name order differs from their creation order, a raw one among them, and files the
 * loader must ignore. *ref receives the concatenation in name order (malloc'd). */
static void make_shard_dir(const char *dir, uint16_t **ref) {
    mkdir(P(dir).s, 0755);
    uint16_t *t = rand_tokens(SN, 50257);
    char path[600];
    snprintf(path, sizeof path, "%s/c_002.bin", P(dir).s);
    write_llmc(path, t + S0 + S1, S2);
    snprintf(path, sizeof path, "%s/a_000.bin", P(dir).s);
    write_llmc(path, t, S0);
    snprintf(path, sizeof path, "%s/b_001.bin", P(dir).s);
    write_bytes(path, t + S0, 2 * S1);
    snprintf(path, sizeof path, "%s/notes.txt", P(dir).s);
    write_bytes(path, "not a shard", 11);
    snprintf(path, sizeof path, "%s/.hidden.bin", P(dir).s);
    write_bytes(path, "odd", 3); /* as the shell's *.bin, hidden files are not shards */
    *ref = t;
}

static void test_directory(void) {
    uint16_t *ref;
    make_shard_dir("dir3", &ref);
    lt_dataset *ds = NULL;
    CHECK_OK(lt_dataset_open(P("dir3").s, 50257, &ds));
    CHECK(lt_dataset_tokens(ds) == SN);
    int32_t *all = read_all(ds);
    CHECK(same_tokens(all, ref, SN));
    free(all);
    lt_dataset_free(ds);
    /* a trailing slash names the same directory */
    CHECK_OK(lt_dataset_open(P("dir3/").s, 50257, &ds));
    CHECK(lt_dataset_tokens(ds) == SN);
    lt_dataset_free(ds);
    free(ref);
}

static void test_slice(void) {
    uint16_t *ref;
    make_shard_dir("dir_slice", &ref);
    lt_dataset *ds = NULL, *s = NULL, *ss = NULL;
    CHECK_OK(lt_dataset_open(P("dir_slice").s, 50257, &ds));
    /* across both shard boundaries */
    CHECK_OK(lt_dataset_slice(ds, 900, 2000, &s));
    CHECK(lt_dataset_tokens(s) == 1100);
    int32_t *all = read_all(s);
    CHECK(same_tokens(all, ref + 900, 1100));
    free(all);
    /* a slice of a slice counts from the slice */
    CHECK_OK(lt_dataset_slice(s, 100, 700, &ss));
    CHECK(lt_dataset_tokens(ss) == 600);
    all = read_all(ss);
    CHECK(same_tokens(all, ref + 1000, 600));
    free(all);
    lt_dataset_free(ss);
    /* the bounds themselves */
    CHECK_OK(lt_dataset_slice(ds, 0, SN, &ss));
    CHECK(lt_dataset_tokens(ss) == SN);
    lt_dataset_free(ss);
    CHECK_OK(lt_dataset_slice(ds, SN - 2, SN, &ss));
    all = read_all(ss);
    CHECK(same_tokens(all, ref + SN - 2, 2));
    free(all);
    lt_dataset_free(ss);
    CHECK_OK(lt_dataset_slice(ds, 5, 5, &ss));
    CHECK(lt_dataset_tokens(ss) == 0);
    lt_dataset_free(ss);

    const char *fn = "lt_dataset_slice";
    ss = SENTINEL;
    CHECK_ERR(lt_dataset_slice(ds, -1, 10, &ss), LT_ERR_RANGE, fn);
    CHECK(ss == NULL);
    CHECK_ERR(lt_dataset_slice(ds, 0, SN + 1, &ss), LT_ERR_RANGE, fn);
    CHECK_ERR(lt_dataset_slice(ds, 10, 9, &ss), LT_ERR_RANGE, fn);
    CHECK_ERR(lt_dataset_slice(s, 0, 1101, &ss), LT_ERR_RANGE, fn);
    CHECK_ERR(lt_dataset_slice(NULL, 0, 1, &ss), LT_ERR_ARG, fn);
    CHECK_ERR(lt_dataset_slice(ds, 0, 1, NULL), LT_ERR_ARG, fn);
    lt_dataset_free(s);
    lt_dataset_free(ds);
    lt_dataset_free(NULL);
    free(ref);
}

/* ---- The loader ---- */

enum { LT_T = 8, NW = (SN - 1) / LT_T }; /* 375 windows */

typedef struct fixture {
    lt_dataset *ds;
    uint16_t *ref;
} fixture;

static fixture g_fx;

/* The window index of each row of the next batch (found by matching x against every window of the source), after
 * checking that x and y are i32 [B, T] and that y is the same window shifted by one token. */
static bool next_windows(lt_loader *L, int64_t B, int64_t *ks) {
    for (int64_t b = 0; b < B; b++) ks[b] = -1; /* callers may index with ks even after a failure */
    bool ok = lt_scope_begin() == LT_OK;
    lt_tensor *x = NULL, *y = NULL;
    int32_t *xb = malloc(sizeof(int32_t) * (size_t)(B * LT_T)), *yb = malloc(sizeof(int32_t) * (size_t)(B * LT_T));
    ok = ok && lt_loader_next(L, LT_DEVICE_CPU, &x, &y) == LT_OK;
    ok = ok && lt_tensor_dtype(x) == LT_I32 && lt_tensor_dtype(y) == LT_I32 && lt_tensor_ndim(x) == 2 &&
         lt_tensor_dim(x, 0) == B && lt_tensor_dim(x, 1) == LT_T && lt_tensor_ndim(y) == 2 &&
         lt_tensor_dim(y, 0) == B && lt_tensor_dim(y, 1) == LT_T;
    ok = ok && lt_tensor_to_host(x, xb, sizeof(int32_t) * (size_t)(B * LT_T)) == LT_OK &&
         lt_tensor_to_host(y, yb, sizeof(int32_t) * (size_t)(B * LT_T)) == LT_OK;
    for (int64_t b = 0; ok && b < B; b++) {
        for (int64_t k = 0; k < NW && ks[b] < 0; k++) {
            bool match = true;
            for (int t = 0; t < LT_T && match; t++) match = xb[b * LT_T + t] == g_fx.ref[k * LT_T + t];
            if (match) ks[b] = k;
        }
        if (ks[b] < 0) {
            fprintf(stderr, "row %lld of x is no window of the source\n", (long long)b);
            ok = false;
            break;
        }
        for (int t = 0; t < LT_T; t++)
            if (yb[b * LT_T + t] != g_fx.ref[ks[b] * LT_T + t + 1]) ok = false;
        if (!ok) fprintf(stderr, "row %lld of y is not window %lld shifted by one\n", (long long)b, (long long)ks[b]);
    }
    if (!ok && lt_last_error()[0]) fprintf(stderr, "next_windows: %s\n", lt_last_error());
    free(xb);
    free(yb);
    lt_scope_end();
    return ok;
}

/* An independent reference of the documented shuffle: Philox4x32-10 written from the paper's constants, the epoch
 * key from words 2e and 2e+1 of the seed's stream, then Fisher-Yates with rejection-sampled bounded draws. */
static uint32_t ref_philox_word(uint64_t key, uint64_t w) {
    uint32_t c[4] = {(uint32_t)(w >> 2), (uint32_t)(w >> 34), 0, 0}, k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n[4] = {(uint32_t)(p1 >> 32) ^ c[1] ^ k0, (uint32_t)p1, (uint32_t)(p0 >> 32) ^ c[3] ^ k1,
                         (uint32_t)p0};
        memcpy(c, n, sizeof c);
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    return c[w & 3];
}

static void ref_perm(uint64_t seed, uint64_t epoch, int64_t n, int64_t *p) {
    uint64_t key = ref_philox_word(seed, 2 * epoch) | (uint64_t)ref_philox_word(seed, 2 * epoch + 1) << 32, w = 0;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t bound = (uint32_t)(i + 1), x;
        do x = ref_philox_word(key, w++);
        while (x < (uint32_t)(0x100000000ull % bound));
        int64_t j = x % bound, t = p[i];
        p[i] = p[j], p[j] = t;
    }
}

static void test_loader_windows(void) {
    lt_loader *L = NULL;
    CHECK_OK(lt_loader_create(g_fx.ds, 4, LT_T, 1234, 0, 1, &L));
    CHECK(lt_loader_batches_per_epoch(L) == NW / 4);
    /* the first epoch and the start of the next follow the reference permutation row by row */
    int64_t perm[NW], ks[4];
    for (uint64_t e = 0; e < 2; e++) {
        ref_perm(1234, e, NW, perm);
        for (int64_t i = 0; i < (e == 0 ? NW / 4 : 3); i++) {
            CHECK(next_windows(L, 4, ks));
            for (int b = 0; b < 4; b++) CHECK(ks[b] == perm[i * 4 + b]);
        }
    }
    lt_loader_free(L);
    lt_loader_free(NULL);
}

static void test_loader_seeds(void) {
    enum { B = 5, NB = 40 };
    lt_loader *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 42, 0, 1, &a));
    CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 42, 0, 1, &b));
    CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 43, 0, 1, &c));
    static int64_t ka[NB * B], kb[NB * B], kc[NB * B];
    for (int i = 0; i < NB; i++) {
        CHECK(next_windows(a, B, ka + i * B));
        CHECK(next_windows(b, B, kb + i * B));
        CHECK(next_windows(c, B, kc + i * B));
    }
    CHECK(memcmp(ka, kb, sizeof ka) == 0);
    int differ = 0;
    for (int i = 0; i < NB * B; i++) differ += ka[i] != kc[i];
    CHECK(differ > NB * B / 2); /* two random orders of 375 agree at ~1 place in 375 */
    /* and consecutive epochs of one seed are shuffled differently */
    lt_loader_state st;
    CHECK_OK(lt_loader_get_state(a, &st));
    st.epoch = 1, st.batch = 0;
    CHECK_OK(lt_loader_set_state(a, &st));
    int64_t k1[B];
    CHECK(next_windows(a, B, k1));
    CHECK(memcmp(k1, ka, sizeof k1) != 0);
    lt_loader_free(a);
    lt_loader_free(b);
    lt_loader_free(c);
}

/* Ranks 0..W-1 with B rows each read, for each global batch, exactly the rows one rank with W*B rows reads. */
static void check_ranks(int W) {
    enum { B = 4 };
    lt_loader *one = NULL, *ranks[3] = {0};
    CHECK_OK(lt_loader_create(g_fx.ds, W * B, LT_T, 99, 0, 1, &one));
    for (int r = 0; r < W; r++) CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 99, r, W, &ranks[r]));
    int64_t bpe = lt_loader_batches_per_epoch(one);
    CHECK(bpe == NW / (W * B));
    for (int r = 0; r < W; r++) CHECK(lt_loader_batches_per_epoch(ranks[r]) == bpe);
    int64_t kone[3 * B], kr[3 * B];
    for (int64_t i = 0; i < bpe + 2; i++) { /* one epoch and into the next */
        CHECK(next_windows(one, W * B, kone));
        for (int r = 0; r < W; r++) CHECK(next_windows(ranks[r], B, kr + r * B));
        CHECK(memcmp(kone, kr, sizeof(int64_t) * (size_t)(W * B)) == 0);
        for (int u = 0; u < W * B; u++)
            for (int v = u + 1; v < W * B; v++) CHECK(kr[u] != kr[v]);
    }
    lt_loader_free(one);
    for (int r = 0; r < W; r++) lt_loader_free(ranks[r]);
}

static void test_loader_ranks(void) {
    check_ranks(2);
    check_ranks(3);
}

static void test_loader_epoch(void) {
    enum { B = 4, W = 3 };
    lt_loader *L[W];
    for (int r = 0; r < W; r++) CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 5, r, W, &L[r]));
    int64_t bpe = lt_loader_batches_per_epoch(L[0]);
    CHECK(bpe == NW / (W * B)); /* 31 */
    int seen[NW] = {0}, total = 0;
    int64_t ks[B];
    for (int64_t i = 0; i < bpe; i++)
        for (int r = 0; r < W; r++) {
            CHECK(next_windows(L[r], B, ks));
            for (int b = 0; b < B; b++) {
                CHECK(ks[b] >= 0 && ks[b] < NW);
                if (ks[b] >= 0 && ks[b] < NW) seen[ks[b]]++, total++;
            }
        }
    int max_seen = 0;
    for (int k = 0; k < NW; k++) max_seen = seen[k] > max_seen ? seen[k] : max_seen;
    CHECK(max_seen == 1 && total == bpe * W * B);
    /* having read the last full batch, the cursor is at the next epoch's start */
    lt_loader_state st;
    CHECK_OK(lt_loader_get_state(L[0], &st));
    CHECK(st.seed == 5 && st.epoch == 1 && st.batch == 0);
    for (int r = 0; r < W; r++) lt_loader_free(L[r]);

    /* windows start at multiples of T and need T + 1 tokens: 8T + 1 tokens hold 8 windows, 8T tokens 7 */
    lt_dataset *s = NULL;
    CHECK_OK(lt_dataset_slice(g_fx.ds, 0, 8 * LT_T + 1, &s));
    lt_loader *l1 = NULL;
    CHECK_OK(lt_loader_create(s, 1, LT_T, 0, 0, 1, &l1));
    CHECK(lt_loader_batches_per_epoch(l1) == 8);
    lt_loader_free(l1);
    lt_dataset_free(s);
    CHECK_OK(lt_dataset_slice(g_fx.ds, 0, 8 * LT_T, &s));
    CHECK_OK(lt_loader_create(s, 1, LT_T, 0, 0, 1, &l1));
    CHECK(lt_loader_batches_per_epoch(l1) == 7);
    lt_loader_free(l1);
    lt_dataset_free(s);
}

/* Runs `skip` batches on a, saves its state, and checks that a fresh loader set to it reads the same next 5. */
static void check_resume(int64_t skip) {
    enum { B = 6 };
    lt_loader *a = NULL, *b = NULL;
    CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 77, 1, 2, &a));
    CHECK_OK(lt_loader_create(g_fx.ds, B, LT_T, 77, 1, 2, &b));
    int64_t bpe = lt_loader_batches_per_epoch(a), ka[B], kb[B];
    for (int64_t i = 0; i < skip; i++) CHECK(next_windows(a, B, ka));
    lt_loader_state st;
    CHECK_OK(lt_loader_get_state(a, &st));
    CHECK(st.seed == 77 && st.epoch == (uint64_t)(skip / bpe) && st.batch == (uint64_t)(skip % bpe));
    CHECK_OK(lt_loader_set_state(b, &st));
    for (int i = 0; i < 5; i++) {
        CHECK(next_windows(a, B, ka));
        CHECK(next_windows(b, B, kb));
        CHECK(memcmp(ka, kb, sizeof ka) == 0);
    }
    lt_loader_state sa, sb;
    CHECK_OK(lt_loader_get_state(a, &sa));
    CHECK_OK(lt_loader_get_state(b, &sb));
    CHECK(sa.epoch == sb.epoch && sa.batch == sb.batch);
    lt_loader_free(a);
    lt_loader_free(b);
}

static void test_loader_resume(void) {
    int64_t bpe = NW / (2 * 6); /* 31 */
    check_resume(7);            /* mid-epoch */
    check_resume(bpe - 2);      /* the next 5 cross into epoch 1 */
    check_resume(2 * bpe + 3);  /* a later epoch, whose permutation b computes without replaying */
}

static void test_loader_errors(void) {
    const char *fn = "lt_loader_create";
    lt_loader *L = SENTINEL;
    CHECK_ERR(lt_loader_create(g_fx.ds, 0, LT_T, 1, 0, 1, &L), LT_ERR_ARG, fn);
    CHECK(L == NULL);
    CHECK_ERR(lt_loader_create(g_fx.ds, 4, 0, 1, 0, 1, &L), LT_ERR_ARG, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, -1, LT_T, 1, 0, 1, &L), LT_ERR_ARG, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, 4, LT_T, 1, -1, 2, &L), LT_ERR_ARG, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, 4, LT_T, 1, 2, 2, &L), LT_ERR_ARG, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, 4, LT_T, 1, 0, 0, &L), LT_ERR_ARG, fn);
    CHECK_ERR(lt_loader_create(NULL, 4, LT_T, 1, 0, 1, &L), LT_ERR_ARG, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, 4, LT_T, 1, 0, 1, NULL), LT_ERR_ARG, fn);
    /* 375 windows: 3 ranks x 125 rows fit exactly, 126 do not; a window longer than the data gives none */
    CHECK_OK(lt_loader_create(g_fx.ds, NW / 3, LT_T, 1, 2, 3, &L));
    CHECK(lt_loader_batches_per_epoch(L) == 1);
    lt_loader_free(L);
    CHECK_ERR(lt_loader_create(g_fx.ds, NW / 3 + 1, LT_T, 1, 2, 3, &L), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, 1, SN, 1, 0, 1, &L), LT_ERR_SHAPE, fn);
    CHECK_ERR(lt_loader_create(g_fx.ds, INT64_MAX, 1, 1, 0, 3, &L), LT_ERR_SHAPE, fn);
    lt_dataset *empty = NULL;
    CHECK_OK(lt_dataset_slice(g_fx.ds, 3, 3, &empty));
    CHECK_ERR(lt_loader_create(empty, 1, 1, 1, 0, 1, &L), LT_ERR_SHAPE, fn);
    lt_dataset_free(empty);

    CHECK_OK(lt_loader_create(g_fx.ds, 4, LT_T, 1, 0, 1, &L));
    lt_tensor *x = NULL, *y = NULL;
    CHECK_ERR(lt_loader_next(NULL, LT_DEVICE_CPU, &x, &y), LT_ERR_ARG, "lt_loader_next");
    CHECK(x == NULL && y == NULL);
    CHECK_ERR(lt_loader_next(L, LT_DEVICE_CPU, NULL, &y), LT_ERR_ARG, "lt_loader_next");
    CHECK_ERR(lt_loader_next(L, LT_DEVICE_CPU, &x, NULL), LT_ERR_ARG, "lt_loader_next");
    /* a device that does not exist: the failure names the loader, and the cursor stays */
    CHECK_ERR(lt_loader_next(L, ((lt_device){LT_CUDA, 99}), &x, &y), LT_ERR_DEVICE, "lt_loader_next");
    CHECK(x == NULL && y == NULL);
    lt_loader_state st = {0};
    CHECK_OK(lt_loader_get_state(L, &st));
    CHECK(st.seed == 1 && st.epoch == 0 && st.batch == 0);

    CHECK_ERR(lt_loader_get_state(NULL, &st), LT_ERR_ARG, "lt_loader_get_state");
    CHECK_ERR(lt_loader_get_state(L, NULL), LT_ERR_ARG, "lt_loader_get_state");
    CHECK_ERR(lt_loader_set_state(NULL, &st), LT_ERR_ARG, "lt_loader_set_state");
    CHECK_ERR(lt_loader_set_state(L, NULL), LT_ERR_ARG, "lt_loader_set_state");
    lt_loader_state bad = {.seed = 2, .epoch = 0, .batch = 0};
    CHECK_ERR(lt_loader_set_state(L, &bad), LT_ERR_ARG, "lt_loader_set_state");
    bad = (lt_loader_state){.seed = 1, .epoch = 0, .batch = (uint64_t)lt_loader_batches_per_epoch(L)};
    CHECK_ERR(lt_loader_set_state(L, &bad), LT_ERR_RANGE, "lt_loader_set_state");
    CHECK_OK(lt_loader_get_state(L, &st)); /* failed set_state calls changed nothing */
    CHECK(st.seed == 1 && st.epoch == 0 && st.batch == 0);
    CHECK(lt_loader_batches_per_epoch(NULL) == 0);
    CHECK(lt_dataset_tokens(NULL) == 0);
    lt_loader_free(L);
}

/* ---- Validation at open ---- */

static void test_open_errors(void) {
    const char *fn = "lt_dataset_open";
    lt_dataset *ds = SENTINEL;
    CHECK_ERR(lt_dataset_open(NULL, 256, &ds), LT_ERR_ARG, fn);
    CHECK(ds == NULL);
    CHECK_ERR(lt_dataset_open(P("rt.bin").s, 256, NULL), LT_ERR_ARG, fn);
    CHECK_ERR(lt_dataset_open(P("raw.bin").s, 0, &ds), LT_ERR_ARG, fn);
    CHECK_ERR(lt_dataset_open(P("raw.bin").s, -5, &ds), LT_ERR_ARG, fn);
    CHECK_ERR(lt_dataset_open(P("raw.bin").s, 65537, &ds), LT_ERR_ARG, fn);
    CHECK_ERR(lt_dataset_open(P("nope.bin").s, 256, &ds), LT_ERR_IO, fn);
    CHECK(strstr(lt_last_error(), "nope.bin") != NULL);
    mkdir(P("empty_dir").s, 0755);
    CHECK_ERR(lt_dataset_open(P("empty_dir").s, 256, &ds), LT_ERR_IO, fn);
    mkdir(P("txt_dir").s, 0755);
    write_bytes(P("txt_dir/a.txt").s, "ab", 2);
    write_bytes(P("txt_dir/bin").s, "ab", 2);
    CHECK_ERR(lt_dataset_open(P("txt_dir").s, 256, &ds), LT_ERR_IO, fn);
    CHECK(strstr(lt_last_error(), "txt_dir") != NULL);
    /* a subdirectory named like a shard is not silently skipped */
    mkdir(P("sub_dir").s, 0755);
    mkdir(P("sub_dir/x.bin").s, 0755);
    CHECK_ERR(lt_dataset_open(P("sub_dir").s, 256, &ds), LT_ERR_IO, fn);
    CHECK(strstr(lt_last_error(), "x.bin") != NULL);
    CHECK(ds == NULL);
}

typedef struct bad_file {
    const char *name;
    lt_status status;
    const char *mentions; /* a piece of the message besides the file's name */
} bad_file;

/* Every kind of broken file fails with its status, names the file, and leaks and crashes nothing (run under ASan).
 * The same files then break a directory that holds them beside a good shard. */
static void test_bad_file_sweep(void) {
    enum { N = 300 };
    uint16_t *tok = rand_tokens(N, 256);
    unsigned char *buf = calloc(1, 1024 + 2 * N + 2);
    int32_t hdr[256] = {20240520, 1, N};
    memcpy(buf, hdr, sizeof hdr);
    memcpy(buf + 1024, tok, 2 * N);
    write_bytes(P("bad_truncated.bin").s, buf, 1024 + 2 * N - 2); /* one token short */
    write_bytes(P("bad_truncated_hdr.bin").s, buf, 1000);         /* the magic, then not even the header */
    write_bytes(P("bad_magic4.bin").s, buf, 4);
    write_bytes(P("bad_trailing.bin").s, buf, 1024 + 2 * N + 2); /* one token more than counted */
    write_bytes(P("bad_trailing_odd.bin").s, buf, 1024 + 2 * N + 1);
    buf[4] ^= 0x02; /* version 1 -> 3 */
    write_bytes(P("bad_version.bin").s, buf, 1024 + 2 * N);
    buf[4] ^= 0x02;
    buf[8] ^= 0x80; /* a count bit flipped */
    write_bytes(P("bad_count.bin").s, buf, 1024 + 2 * N);
    buf[8] ^= 0x80;
    buf[11] ^= 0x80; /* a negative count */
    write_bytes(P("bad_negative.bin").s, buf, 1024 + 2 * N);
    buf[11] ^= 0x80;
    tok[N - 1] = 256;
    write_llmc(P("bad_token_llmc.bin").s, tok, N);
    write_bytes(P("bad_token_raw.bin").s, tok, 2 * N);
    write_bytes(P("bad_odd.bin").s, tok, 2 * N - 1);
    write_bytes(P("bad_3byte.bin").s, "abc", 3);
    write_bytes(P("bad_empty.bin").s, "", 0);
    write_llmc(P("bad_zero_tokens.bin").s, tok, 0);
    mkdir(P("bad_dir.bin").s, 0755);
    free(buf);

    const bad_file files[] = {
        {"bad_truncated.bin", LT_ERR_FORMAT, "token count"},
        {"bad_truncated_hdr.bin", LT_ERR_FORMAT, "header"},
        {"bad_magic4.bin", LT_ERR_FORMAT, "header"},
        {"bad_trailing.bin", LT_ERR_FORMAT, "token count"},
        {"bad_trailing_odd.bin", LT_ERR_FORMAT, "token count"},
        {"bad_version.bin", LT_ERR_FORMAT, "version 3"},
        {"bad_count.bin", LT_ERR_FORMAT, "token count"},
        {"bad_negative.bin", LT_ERR_FORMAT, "token count"},
        {"bad_token_llmc.bin", LT_ERR_FORMAT, "token 299"},
        {"bad_token_raw.bin", LT_ERR_FORMAT, "token 299"},
        {"bad_odd.bin", LT_ERR_FORMAT, "odd"},
        {"bad_3byte.bin", LT_ERR_FORMAT, "3 bytes"},
        {"bad_empty.bin", LT_ERR_FORMAT, "empty"},
        {"bad_zero_tokens.bin", LT_ERR_FORMAT, "no tokens"},
        {"bad_dir.bin", LT_ERR_IO, "bad_dir.bin"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        lt_dataset *ds = SENTINEL;
        lt_status st = lt_dataset_open(P(files[i].name).s, 256, &ds);
        bool ok = st == files[i].status && ds == NULL && strstr(lt_last_error(), "lt_dataset_open") &&
                  strstr(lt_last_error(), files[i].name) && strstr(lt_last_error(), files[i].mentions);
        if (!ok)
            fprintf(stderr, "%s: %s (expected %s mentioning \"%s\"): %s\n", files[i].name, lt_status_name(st),
                    lt_status_name(files[i].status), files[i].mentions, lt_last_error());
        CHECK(ok);
        if (st == LT_OK) lt_dataset_free(ds);

        /* in a directory after a good shard: the open fails the same way, after mapping the good one */
        if (files[i].status == LT_ERR_IO) continue;
        char dir[64], path[600];
        snprintf(dir, sizeof dir, "sweep_%zu", i);
        mkdir(P(dir).s, 0755);
        snprintf(path, sizeof path, "%s/a.bin", P(dir).s);
        write_llmc(path, tok, N - 1);
        snprintf(path, sizeof path, "%s/b.bin", P(dir).s);
        if (rename(P(files[i].name).s, path) != 0) abort();
        ds = SENTINEL;
        CHECK_ERR(lt_dataset_open(P(dir).s, 256, &ds), files[i].status, "lt_dataset_open");
        CHECK(ds == NULL && strstr(lt_last_error(), "b.bin") != NULL);
    }
    free(tok);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lt_test_data_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    tt_seed(2024);
    RUN(test_tokenize_roundtrip);
    RUN(test_tokenize_errors);
    RUN(test_tokenize_directory);
    RUN(test_llmc_shard);
    RUN(test_raw_file);
    RUN(test_directory);
    RUN(test_slice);

    make_shard_dir("loader", &g_fx.ref);
    if (lt_dataset_open(P("loader").s, 50257, &g_fx.ds) != LT_OK) {
        fprintf(stderr, "fixture: %s\n", lt_last_error());
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 1;
    }
    RUN(test_loader_windows);
    RUN(test_loader_seeds);
    RUN(test_loader_ranks);
    RUN(test_loader_epoch);
    RUN(test_loader_resume);
    RUN(test_loader_errors);
    lt_dataset_free(g_fx.ds);
    free(g_fx.ref);

    RUN(test_open_errors);
    RUN(test_bad_file_sweep);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tt_finish();
}
