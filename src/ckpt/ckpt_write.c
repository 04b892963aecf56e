/* The checkpoint writer: one HDF5 file under a temporary name, fsynced and renamed into place, then the `latest`
 * pointer the same way, then old checkpoints pruned. libhdf5 never fsyncs, so durability is ours to provide; a crash
 * at any point leaves the previous checkpoint and a `latest` that names a complete file. */
#ifdef LT_HAVE_HDF5
#include "ckpt/ckpt_impl.h"
#include "core/error.h"
#include "train/trainer_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LT_H5_TRY(call, what)                                                                                          \
    do {                                                                                                               \
        if ((call) < 0) {                                                                                              \
            st = lt__h5_err(LT_ERR_BACKEND, c, what);                                                                  \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)

/* Attribute writers: each opens, writes and closes, so a failure leaks no handle. */
static lt_status attr_write(const lt__h5_ctx *c, hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                            const void *value) {
    lt_status st = LT_OK;
    hid_t space = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    LT_H5_TRY(space, "H5Screate");
    LT_H5_TRY(a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT), name);
    LT_H5_TRY(H5Awrite(a, mtype, value), name);
done:
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    return st;
}

static lt_status attr_i64(const lt__h5_ctx *c, hid_t obj, const char *name, int64_t v) {
    return attr_write(c, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
static lt_status attr_u64(const lt__h5_ctx *c, hid_t obj, const char *name, uint64_t v) {
    return attr_write(c, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}
static lt_status attr_f64(const lt__h5_ctx *c, hid_t obj, const char *name, double v) {
    return attr_write(c, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}
static lt_status attr_u32(const lt__h5_ctx *c, hid_t obj, const char *name, uint32_t v) {
    return attr_write(c, obj, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &v);
}

/* A fixed-length ASCII string (h5py reads it as bytes; h5dump prints it), null-padded. */
static lt_status attr_str(const lt__h5_ctx *c, hid_t obj, const char *name, const char *s) {
    lt_status st = LT_OK;
    size_t n = strlen(s);
    hid_t type = H5Tcopy(H5T_C_S1);
    LT_H5_TRY(type, "H5Tcopy");
    LT_H5_TRY(H5Tset_size(type, n > 0 ? n : 1), "H5Tset_size");
    LT_H5_TRY(H5Tset_strpad(type, H5T_STR_NULLPAD), "H5Tset_strpad");
    st = attr_write(c, obj, name, type, type, n > 0 ? s : "");
done:
    if (type >= 0) H5Tclose(type);
    return st;
}

/* One dataset of `dims` written from host memory, contiguous and unfiltered, with its CRC-32 when crc is set. */
static lt_status write_dataset(const lt__h5_ctx *c, hid_t parent, const char *name, hid_t ftype, hid_t mtype,
                               const int64_t *shape, int ndim, const void *data, size_t nbytes, bool crc) {
    lt_status st = LT_OK;
    hsize_t dims[8];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = ndim > 0 ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR), d = H5I_INVALID_HID;
    LT_H5_TRY(space, "H5Screate_simple");
    LT_H5_TRY(d = H5Dcreate2(parent, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), name);
    LT_H5_TRY(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
    if (crc) st = attr_u32(c, d, "crc32", lt__crc32(data, nbytes));
done:
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    return st;
}

static lt_status make_group(const lt__h5_ctx *c, hid_t parent, const char *name, hid_t *g) {
    *g = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    return *g < 0 ? lt__h5_err(LT_ERR_BACKEND, c, name) : LT_OK;
}

static lt_status write_root(const lt__h5_ctx *c, hid_t f, lt_trainer *t) {
    const lt_train_config *cfg = &t->cfg;
    char json[1024];
    lt__model_json(t, json, sizeof json);
    const int64_t tokens = t->steps_done * cfg->batch_size * cfg->seq_len * cfg->grad_accum * t->world;
    LT_TRY(attr_str(c, f, "format", LT__CKPT_FORMAT));
    LT_TRY(attr_i64(c, f, "version", LT__CKPT_VERSION));
    LT_TRY(attr_str(c, f, "model_config", json));
    LT_TRY(attr_str(c, f, "dtype", lt_dtype_name(cfg->dtype)));
    LT_TRY(attr_i64(c, f, "step", t->steps_done));
    LT_TRY(attr_i64(c, f, "tokens_seen", tokens));
    LT_TRY(attr_i64(c, f, "world_size", t->world));
    LT_TRY(attr_i64(c, f, "zero_stage", lt__ckpt_sharded(t) ? 1 : 0)); /* the file's layout is the same either way */
    LT_TRY(attr_str(c, f, "library_version", lt_version()));
    return LT_OK;
}

/* /params, /optim, /rng, /data and /schedule (docs/checkpoint-format.md); rows[r] is rank r's own state. */
static lt_status write_body(const lt__h5_ctx *c, hid_t f, lt_trainer *t, const lt__flat *flat,
                            const lt__rank_row *rows) {
    const lt_train_config *cfg = &t->cfg;
    lt_status st = LT_OK;
    hid_t params = H5I_INVALID_HID, optim = H5I_INVALID_HID, pg = H5I_INVALID_HID, rng = H5I_INVALID_HID,
          sched = H5I_INVALID_HID;
    const hid_t ftype = flat->dtype == LT_F64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
    const hid_t mtype = flat->dtype == LT_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    LT_TRY_GOTO(make_group(c, f, "params", &params), done);
    LT_TRY_GOTO(make_group(c, f, "optim", &optim), done);
    const int n = lt_params_count(lt_gpt_params(t->model));
    for (int i = 0; i < n; i++) {
        lt_tensor *p;
        const char *name;
        const int64_t off = lt__param_offset(t, i, &p, &name), numel = lt_tensor_numel(p);
        int64_t shape[8];
        const int ndim = lt_tensor_ndim(p);
        lt_tensor_shape(p, shape);
        const size_t bytes = (size_t)numel * flat->esz, at = (size_t)off * flat->esz;
        LT_TRY_GOTO(write_dataset(c, params, name, ftype, mtype, shape, ndim, (char *)flat->buf[0] + at, bytes, true),
                    done);
        LT_TRY_GOTO(make_group(c, optim, name, &pg), done);
        LT_TRY_GOTO(write_dataset(c, pg, "m", ftype, mtype, shape, ndim, (char *)flat->buf[1] + at, bytes, true), done);
        LT_TRY_GOTO(write_dataset(c, pg, "v", ftype, mtype, shape, ndim, (char *)flat->buf[2] + at, bytes, true), done);
        H5Gclose(pg);
        pg = H5I_INVALID_HID;
    }
    LT_TRY_GOTO(attr_str(c, optim, "type", "adamw"), done);
    LT_TRY_GOTO(attr_i64(c, optim, "step", lt_optim_steps(t->opt)), done);
    LT_TRY_GOTO(attr_f64(c, optim, "lr", cfg->lr), done);
    LT_TRY_GOTO(attr_f64(c, optim, "beta1", cfg->beta1), done);
    LT_TRY_GOTO(attr_f64(c, optim, "beta2", cfg->beta2), done);
    LT_TRY_GOTO(attr_f64(c, optim, "eps", cfg->eps), done);
    LT_TRY_GOTO(attr_f64(c, optim, "weight_decay", cfg->weight_decay), done);
    LT_TRY_GOTO(attr_f64(c, optim, "grad_clip", cfg->grad_clip), done);

    /* Per-rank state: one row per rank, rank r's in row r. */
    const int64_t world = t->world;
    uint64_t *cols = malloc(sizeof(uint64_t) * 5 * (size_t)world);
    if (!cols) {
        st = lt__err(LT_ERR_OOM, "%s: out of memory for %lld ranks' rows", c->fn, (long long)world);
        goto done;
    }
    uint64_t *rng_rows = cols, *cursors = cols + 2 * world;
    for (int64_t r = 0; r < world; r++) {
        memcpy(rng_rows + 2 * r, rows[r].rng, sizeof rows[r].rng);
        memcpy(cursors + 3 * r, rows[r].cursor, sizeof rows[r].cursor);
    }
    st = make_group(c, f, "rng", &rng);
    if (st == LT_OK) st = attr_str(c, rng, "generator", "philox4x32-10 (seed, offset) as curand_init(seed, 0, offset)");
    if (st == LT_OK)
        st = write_dataset(c, rng, "dropout", H5T_STD_U64LE, H5T_NATIVE_UINT64, (int64_t[]){world, 2}, 2, rng_rows,
                           sizeof(uint64_t) * 2 * (size_t)world, true);
    if (st == LT_OK)
        st = write_dataset(c, f, "data", H5T_STD_U64LE, H5T_NATIVE_UINT64, (int64_t[]){world, 3}, 2, cursors,
                           sizeof(uint64_t) * 3 * (size_t)world, true);
    free(cols);
    if (st != LT_OK) goto done;
    hid_t data = H5Dopen2(f, "data", H5P_DEFAULT);
    LT_H5_TRY(data, "data");
    st = attr_str(c, data, "columns", "seed,epoch,batch");
    if (st == LT_OK) st = attr_i64(c, data, "batch_size", cfg->batch_size);
    if (st == LT_OK) st = attr_i64(c, data, "seq_len", cfg->seq_len);
    if (st == LT_OK) st = attr_i64(c, data, "grad_accum", cfg->grad_accum);
    H5Dclose(data);
    if (st != LT_OK) goto done;

    LT_TRY_GOTO(make_group(c, f, "schedule", &sched), done);
    LT_TRY_GOTO(attr_str(c, sched, "kind", "warmup_cosine"), done);
    LT_TRY_GOTO(attr_i64(c, sched, "step", t->steps_done), done);
    LT_TRY_GOTO(attr_i64(c, sched, "warmup_steps", cfg->warmup_steps), done);
    LT_TRY_GOTO(attr_i64(c, sched, "total_steps", cfg->steps), done);
    LT_TRY_GOTO(attr_f64(c, sched, "max_lr", cfg->lr), done);
    LT_TRY_GOTO(attr_f64(c, sched, "min_lr", cfg->min_lr), done);
    LT_TRY_GOTO(attr_u64(c, sched, "seed", cfg->seed), done);
done:
    if (sched >= 0) H5Gclose(sched);
    if (rng >= 0) H5Gclose(rng);
    if (pg >= 0) H5Gclose(pg);
    if (optim >= 0) H5Gclose(optim);
    if (params >= 0) H5Gclose(params);
    return st;
}

static lt_status write_file(const lt__h5_ctx *c, const char *path, lt_trainer *t, const lt__rank_row *rows,
                            void *const *moments) {
    lt_status st = LT_OK;
    lt__flat flat;
    LT_TRY(lt__flat_host(c->fn, t, moments, &flat));
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = H5I_INVALID_HID;
    LT_H5_TRY(fapl, "H5Pcreate");
    /* Readable by HDF5 1.8 and later (h5py builds of older libhdf5 included). */
    LT_H5_TRY(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V110), "H5Pset_libver_bounds");
    LT_H5_TRY(f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "H5Fcreate");
    LT_TRY_GOTO(write_root(c, f, t), done);
    LT_TRY_GOTO(write_body(c, f, t, &flat, rows), done);
    herr_t closed = H5Fclose(f);
    f = H5I_INVALID_HID;
    LT_H5_TRY(closed, "H5Fclose");
done:
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    lt__flat_free(&flat);
    return st;
}

/* ---- File-system steps of the commit ---- */

static lt_status fsync_path(const char *fn, const char *path, bool dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return lt__err(LT_ERR_IO, "%s: cannot open %s to fsync it: %s", fn, path, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0) return lt__err(LT_ERR_IO, "%s: fsync of %s failed: %s", fn, path, strerror(e));
    return LT_OK;
}

static lt_status rename_into_place(const char *fn, const char *from, const char *to) {
    if (rename(from, to) != 0) {
        int e = errno;
        unlink(from);
        return lt__err(LT_ERR_IO, "%s: cannot rename %s to %s: %s", fn, from, to, strerror(e));
    }
    return LT_OK;
}

static lt_status join(const char *fn, char *buf, size_t n, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
        return lt__err(LT_ERR_ARG, "%s: path %s/%s is longer than %zu bytes", fn, dir, name, n - 1);
    return LT_OK;
}

/* Writes `latest` (one line: the checkpoint's file name) through a fsynced temporary and a rename. */
static lt_status write_latest(const char *fn, const char *dir, const char *name) {
    char tmp[4096], dst[4096], base[64];
    snprintf(base, sizeof base, ".latest.tmp-%ld", (long)getpid());
    LT_TRY(join(fn, tmp, sizeof tmp, dir, base));
    LT_TRY(join(fn, dst, sizeof dst, dir, "latest"));
    FILE *f = fopen(tmp, "w");
    if (!f) return lt__err(LT_ERR_IO, "%s: cannot write %s: %s", fn, tmp, strerror(errno));
    bool ok = fprintf(f, "%s\n", name) > 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return lt__err(LT_ERR_IO, "%s: cannot write %s: %s", fn, tmp, strerror(e));
    }
    return rename_into_place(fn, tmp, dst);
}

/* step-<digits>.h5 -> the step, else -1. */
static long long step_of(const char *name) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    const char *p = name + 5, *q = p;
    while (*q >= '0' && *q <= '9') q++;
    if (q == p || q - p > 18 || strcmp(q, ".h5") != 0) return -1;
    return strtoll(p, NULL, 10);
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Removes temporaries left by killed saves (ours are dot-files with ".tmp-"), then all but the keep newest
 * checkpoints, never `current`. Failing to delete is not an error: the new checkpoint is already committed. */
static void prune(const char *dir, int keep, long long current) {
    DIR *d = opendir(dir);
    if (!d) return;
    long long *steps = NULL;
    size_t n = 0, cap = 0;
    char path[4096];
    for (struct dirent *e; (e = readdir(d));) {
        if ((strncmp(e->d_name, ".step-", 6) == 0 || strncmp(e->d_name, ".latest", 7) == 0) &&
            strstr(e->d_name, ".tmp-")) {
            if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path) unlink(path);
            continue;
        }
        long long s = step_of(e->d_name);
        if (s < 0 || keep <= 0) continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            long long *g = realloc(steps, nc * sizeof *g);
            if (!g) break;
            steps = g, cap = nc;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (keep > 0 && n > (size_t)keep) {
        qsort(steps, n, sizeof *steps, cmp_ll);
        for (size_t i = 0; i + (size_t)keep < n; i++) {
            if (steps[i] == current) continue;
            snprintf(path, sizeof path, "%s/step-%08lld.h5", dir, steps[i]);
            unlink(path);
        }
    }
    free(steps);
}

/* This rank's cursor and dropout stream. */
static lt_status own_row(lt_trainer *t, lt__rank_row *row) {
    lt_loader_state ls;
    LT_TRY(lt_loader_get_state(t->train_loader, &ls));
    const lt_philox *ph = lt_gpt_rng(t->model);
    *row = (lt__rank_row){{ls.seed, ls.epoch, ls.batch}, {ph->seed, ph->offset}};
    return LT_OK;
}

/* The paths of one save, and rank 0's directory made ready (created, stale temporaries removed). */
typedef struct save_paths {
    char name[64], tmp[4096], dst[4096];
} save_paths;

static lt_status prepare_dir(const char *fn, lt_trainer *t, const char *dir, save_paths *p) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lt__err(LT_ERR_IO, "%s: cannot create directory %s: %s", fn, dir, strerror(errno));
    prune(dir, 0, -1); /* stale temporaries only */
    char tmpname[96];
    snprintf(p->name, sizeof p->name, "step-%08lld.h5", (long long)t->steps_done);
    snprintf(tmpname, sizeof tmpname, ".%s.tmp-%ld", p->name, (long)getpid());
    LT_TRY(join(fn, p->tmp, sizeof p->tmp, dir, tmpname));
    return join(fn, p->dst, sizeof p->dst, dir, p->name);
}

static lt_status write_synced(const char *fn, lt_trainer *t, const save_paths *p, const lt__rank_row *rows,
                              void *const *moments) {
    lt__h5_session s;
    lt__h5_enter(&s);
    lt__h5_ctx c = {fn, p->tmp};
    lt_status st = write_file(&c, p->tmp, t, rows, moments);
    lt__h5_leave(&s);
    if (st == LT_OK) st = fsync_path(fn, p->tmp, false);
    if (st != LT_OK) unlink(p->tmp);
    return st;
}

static lt_status commit(const char *fn, const char *dir, const save_paths *p) {
    LT_TRY(rename_into_place(fn, p->tmp, p->dst));
    LT_TRY(fsync_path(fn, dir, true));
    LT_TRY(write_latest(fn, dir, p->name));
    return fsync_path(fn, dir, true);
}

/* ZeRO-1: every rank's shard of m and v into rank 0's full buffers (allocated by it before the first agreement). */
static lt_status gather_moments(lt_trainer *t, void *const *full) {
    lt_tensor *m, *v;
    LT_TRY(lt_optim_state(t->opt, &m, &v));
    const int64_t n = lt_params_numel(lt_gpt_params(t->model));
    LT_TRY(lt_dist_gather_shards(t->cfg.dist, lt_tensor_data(m), full[0], n, t->cfg.dtype, 0));
    return lt_dist_gather_shards(t->cfg.dist, lt_tensor_data(v), full[1], n, t->cfg.dtype, 0);
}

/* One process, or rank 0 of many: rank 0 alone touches the directory, so it need not be shared for saving. Every
 * rank's row is gathered to rank 0 first, and under ZeRO-1 every rank's shard of the moments, into the full m and v
 * that rank 0 writes as at stage 0 (so a file does not depend on the stage); after rank 0 has written and fsynced the
 * temporary file, the ranks agree on success (lt__ckpt_agree: an all-reduce, then the failing rank's message to all),
 * and only then does rank 0 rename it into place and update latest; the commit's own result is agreed again, so every
 * rank returns the same status. The deadline grows while rank 0 writes (lt__ckpt_deadline_begin). */
LT_API lt_status lt_trainer_save(lt_trainer *t, const char *dir, int keep_last) {
    static const char *fn = "lt_trainer_save";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    LT_CHECK_NOT_NULL(fn, dir);
    const bool root = t->rank == 0, sharded = lt__ckpt_sharded(t);
    const double deadline = lt__ckpt_deadline_begin(t);
    lt__rank_row row, *rows = NULL;
    void *moments[2] = {NULL, NULL}; /* ZeRO-1: the full m and v, at rank 0 */
    save_paths p;
    lt_status st = own_row(t, &row);
    if (st == LT_OK && root && !(rows = malloc(sizeof *rows * (size_t)t->world)))
        st = lt__err(LT_ERR_OOM, "%s: out of memory for %d ranks' rows", fn, t->world);
    const size_t mbytes = (size_t)lt_params_numel(lt_gpt_params(t->model)) * lt_dtype_size(t->cfg.dtype);
    for (int k = 0; st == LT_OK && root && sharded && k < 2; k++)
        if (!(moments[k] = malloc(mbytes > 0 ? mbytes : 1)))
            st = lt__err(LT_ERR_OOM, "%s: out of memory for the full AdamW moments (%zu bytes each) of ZeRO-1", fn,
                         mbytes);
    if (st == LT_OK && root) st = prepare_dir(fn, t, dir, &p);
    /* After each agreement the status is the same on every rank, so every rank takes the same branches. */
    if ((st = lt__ckpt_agree(t, st)) != LT_OK) goto done;
    if (t->world > 1)
        st = lt_dist_gather(t->cfg.dist, &row, (int64_t)sizeof row, rows, 0);
    else
        rows[0] = row;
    if (st == LT_OK && sharded) st = gather_moments(t, moments);
    if (st == LT_OK && root) st = write_synced(fn, t, &p, rows, sharded ? moments : NULL);
    /* The commit point: nothing is renamed unless every rank succeeded. */
    if ((st = lt__ckpt_agree(t, st)) != LT_OK) {
        if (root) unlink(p.tmp);
        goto done;
    }
    if (root) {
        st = commit(fn, dir, &p);
        if (st == LT_OK) prune(dir, keep_last, (long long)t->steps_done);
    }
    if ((st = lt__ckpt_agree(t, st)) == LT_OK) t->last_saved = t->steps_done;
done:
    free(rows);
    free(moments[0]);
    free(moments[1]);
    return lt__ckpt_deadline_end(t, deadline, st);
}

#else
typedef int lt__ckpt_write_needs_hdf5; /* keeps the translation unit non-empty without HDF5 */
#endif
