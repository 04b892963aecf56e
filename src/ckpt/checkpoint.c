/* HDF5 checkpoints of a trainer (layout: docs/checkpoint-format.md): an atomic writer (temp file, fsync, rename,
 * fsync dir) and a reader that validates every structure, type, dim and CRC before it touches the trainer.
 * Every HDF5 failure becomes an lt_status naming the function, the file and HDF5's own message; nothing aborts. */
#include "core/error.h"
#include "libtrain/ckpt.h"
#include "train/trainer_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef LT_HAVE_HDF5

static lt_status no_hdf5(const char *fn) {
    return lt__err(LT_ERR_UNSUPPORTED,
                   "%s: this libtrain was built without HDF5; install libhdf5-dev and configure with -DLT_HDF5=ON", fn);
}
LT_API lt_status lt_trainer_save(lt_trainer *t, const char *dir, int keep_last) {
    (void)t, (void)dir, (void)keep_last;
    lt__clear_error();
    return no_hdf5("lt_trainer_save");
}
LT_API lt_status lt_trainer_resume(lt_trainer *t, const char *path_or_dir, lt_ckpt_mode mode) {
    (void)t, (void)path_or_dir, (void)mode;
    lt__clear_error();
    return no_hdf5("lt_trainer_resume");
}
LT_API lt_status lt_ckpt_validate(const char *path, const lt_trainer *against, lt_ckpt_info *info) {
    (void)path, (void)against, (void)info;
    lt__clear_error();
    return no_hdf5("lt_ckpt_validate");
}

#else

#include "ckpt/ckpt_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- HDF5 session: silenced error printing, no filter plugins, both restored on exit ---- */

void lt__h5_enter(lt__h5_session *s) {
    H5Eget_auto2(H5E_DEFAULT, &s->old_func, &s->old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    s->old_plugins = 0;
    H5PLget_loading_state(&s->old_plugins);
    /* A file can name a filter plugin that libhdf5 would dlopen from HDF5_PLUGIN_PATH: never load code from a file. */
    H5PLset_loading_state(0);
}

void lt__h5_leave(lt__h5_session *s) {
    H5Eclear2(H5E_DEFAULT);
    H5PLset_loading_state(s->old_plugins);
    H5Eset_auto2(H5E_DEFAULT, s->old_func, s->old_data);
}

typedef struct walk_msg {
    char first[160], last[160];
    unsigned n;
} walk_msg;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    walk_msg *w = data;
    const char *d = e->desc && e->desc[0] ? e->desc : "(no description)";
    if (n == 0) snprintf(w->first, sizeof w->first, "%s: %s", e->func_name ? e->func_name : "?", d);
    snprintf(w->last, sizeof w->last, "%s", d);
    w->n = n + 1;
    return 0;
}

lt_status lt__h5_err(lt_status st, const lt__h5_ctx *c, const char *what) {
    walk_msg w = {{0}, {0}, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (w.n == 0) return lt__err(st, "%s: %s failed on %s", c->fn, what, c->path);
    if (w.n == 1) return lt__err(st, "%s: %s failed on %s (HDF5: %s)", c->fn, what, c->path, w.first);
    return lt__err(st, "%s: %s failed on %s (HDF5: %s; %s)", c->fn, what, c->path, w.first, w.last);
}

/* ---- CRC-32 (IEEE 802.3, reflected 0xEDB88320): zlib.crc32 gives the same value, so Python can check files ---- */

/* Slicing-by-8: eight bytes per step through eight tables, about 5x the byte-wise loop, so hashing stays well below
 * the write time. The tables are built per call (8 KiB, microseconds) to keep the library free of mutable globals. */
uint32_t lt__crc32(const void *data, size_t n) {
    uint32_t tab[8][256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        tab[0][i] = c;
    }
    for (int s = 1; s < 8; s++)
        for (int i = 0; i < 256; i++) tab[s][i] = (tab[s - 1][i] >> 8) ^ tab[0][tab[s - 1][i] & 0xFF];
    const unsigned char *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = tab[7][lo & 0xFF] ^ tab[6][(lo >> 8) & 0xFF] ^ tab[5][(lo >> 16) & 0xFF] ^ tab[4][lo >> 24] ^
              tab[3][hi & 0xFF] ^ tab[2][(hi >> 8) & 0xFF] ^ tab[1][(hi >> 16) & 0xFF] ^ tab[0][hi >> 24];
    }
    for (; n > 0; n--, p++) crc = tab[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ---- Small state shared by the writer and the reader ---- */

void lt__model_json(const lt_trainer *t, char *buf, size_t n) {
    lt_gpt_config m = {.struct_size = sizeof m};
    lt_gpt_get_config(t->model, &m);
    snprintf(buf, n,
             "{\"vocab_size\": %" PRId64 ", \"padded_vocab_size\": %" PRId64 ", \"block_size\": %" PRId64
             ", \"n_layer\": %" PRId64 ", \"n_head\": %" PRId64 ", \"n_embd\": %" PRId64 ", \"dropout\": %.17g}",
             m.vocab_size, m.padded_vocab_size ? m.padded_vocab_size : m.vocab_size, m.block_size, m.n_layer, m.n_head,
             m.n_embd, m.dropout);
}

/* Host pointers to the flat params, m and v; for a CPU trainer they alias the live buffers, otherwise copies. The
 * moments are the caller's full ones when given (gathered from ZeRO-1 shards). */
lt_status lt__flat_host(const char *fn, lt_trainer *t, void *const *moments, lt__flat *f) {
    memset(f, 0, sizeof *f);
    lt_params *p = lt_gpt_params(t->model);
    lt_tensor *flat, *m, *v;
    LT_TRY(lt_params_flat(p, &flat, NULL));
    LT_TRY(lt_optim_state(t->opt, &m, &v));
    if (!m || !v) return lt__err(LT_ERR_INTERNAL, "%s: the trainer's optimizer has no AdamW moments", fn);
    f->dtype = lt_tensor_dtype(flat);
    f->esz = lt_dtype_size(f->dtype);
    f->numel = lt_params_numel(p);
    lt_tensor *src[3] = {flat, m, v};
    const bool host = lt_tensor_device(flat).type == LT_CPU;
    for (int k = 0; k < 3; k++) {
        if (k > 0 && moments) {
            f->buf[k] = moments[k - 1];
            continue;
        }
        if (host) {
            f->buf[k] = lt_tensor_data(src[k]);
            continue;
        }
        f->buf[k] = malloc((size_t)f->numel * f->esz);
        f->owned[k] = f->buf[k] != NULL;
        if (!f->buf[k]) {
            lt__flat_free(f);
            return lt__err(LT_ERR_OOM, "%s: out of memory staging %lld elements", fn, (long long)f->numel);
        }
        lt_status st = lt_tensor_to_host(src[k], f->buf[k], (size_t)f->numel * f->esz);
        if (st != LT_OK) {
            lt__flat_free(f);
            return st;
        }
    }
    return LT_OK;
}

void lt__flat_free(lt__flat *f) {
    for (int k = 0; k < 3; k++)
        if (f->owned[k]) free(f->buf[k]);
    memset(f, 0, sizeof *f);
}

bool lt__ckpt_sharded(const lt_trainer *t) { return t->world > 1 && t->cfg.zero_stage == 1; }

double lt__ckpt_deadline_begin(lt_trainer *t) {
    const double saved = lt_dist_timeout(t->cfg.dist);
    if (t->world <= 1 || !isfinite(saved)) return saved;
    const double bytes = 3.0 * (double)lt_params_numel(lt_gpt_params(t->model)) * (double)lt_dtype_size(t->cfg.dtype);
    lt_dist_set_timeout(t->cfg.dist, saved + bytes / LT__CKPT_IO_BYTES_PER_S, lt_dist_aborts_on_timeout(t->cfg.dist));
    return saved;
}

lt_status lt__ckpt_deadline_end(lt_trainer *t, double saved, lt_status st) {
    if (t->world <= 1 || !isfinite(saved)) return st;
    char msg[1024]; /* lt_dist_set_timeout clears the thread's message: keep st's */
    snprintf(msg, sizeof msg, "%s", lt_last_error());
    lt_dist_set_timeout(t->cfg.dist, saved, lt_dist_aborts_on_timeout(t->cfg.dist));
    return st == LT_OK ? LT_OK : lt__err(st, "%s", msg);
}

/* ---- Agreement between data-parallel ranks: every rank returns the same status and message ---- */

lt_status lt__ckpt_agree(lt_trainer *t, lt_status st) {
    if (t->world <= 1) return st;
    lt_dist *d = t->cfg.dist;
    /* The dist calls clear the thread's message: keep ours first. */
    struct {
        int32_t status;
        char msg[1000];
    } m = {(int32_t)st, ""};
    if (st != LT_OK) snprintf(m.msg, sizeof m.msg, "%s [rank %d of %d]", lt_last_error(), t->rank, t->world);
    double first = st == LT_OK ? (double)t->world : (double)t->rank;
    LT_TRY(lt_dist_allreduce_scalar(d, &first, LT_DIST_MIN));
    if (first >= (double)t->world) return LT_OK;
    LT_TRY(lt_dist_broadcast(d, &m, (int64_t)sizeof m, (int)first));
    m.msg[sizeof m.msg - 1] = '\0';
    return lt__err(m.status > LT_OK && m.status <= LT_ERR_INTERNAL ? (lt_status)m.status : LT_ERR_INTERNAL, "%s",
                   m.msg);
}

lt_status lt__ckpt_bcast(lt_trainer *t, void *buf, size_t nbytes) {
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < nbytes; off += piece)
        LT_TRY(lt_dist_broadcast(t->cfg.dist, (char *)buf + off, (int64_t)(nbytes - off < piece ? nbytes - off : piece),
                                 0));
    return LT_OK;
}

/* Offset of parameter i in the flat buffer, in elements (pointer difference: works on any device). */
int64_t lt__param_offset(lt_trainer *t, int i, lt_tensor **param, const char **name) {
    lt_params *p = lt_gpt_params(t->model);
    lt_tensor *flat;
    lt_params_flat(p, &flat, NULL);
    lt_params_get(p, i, name, param);
    return (int64_t)(((const char *)lt_tensor_data(*param) - (const char *)lt_tensor_data(flat)) /
                     (ptrdiff_t)lt_dtype_size(lt_tensor_dtype(flat)));
}

#endif
