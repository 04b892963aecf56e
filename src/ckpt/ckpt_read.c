/* The checkpoint reader: trusts no file. Every object's kind, type, rank, dims, storage and string length is checked
 * against bounds and the model before any tensor data is read; every tensor's CRC-32 is checked after; the trainer
 * is changed only when all of it passed, so a failed resume leaves it as it was. */
#ifdef LT_HAVE_HDF5
#include "ckpt/ckpt_impl.h"
#include "core/error.h"
#include "tensor/tensor_impl.h"
#include "train/trainer_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LT__MAX_ELEMS ((int64_t)1 << 40) /* per dataset: far above any model, far below overflow of bytes */

/* One dataset to check and read. */
typedef struct entry {
    char path[LT__CKPT_MAX_NAME + 16];
    int param;     /* index in the model, or -1 */
    int which;     /* 0 params, 1 m, 2 v (slot of the staging buffers) */
    int64_t numel; /* from the file, after checks */
    uint32_t crc;  /* stored */
} entry;

typedef struct reader {
    lt__h5_ctx c;
    hid_t f;
    lt_trainer *t;     /* NULL when only validating structure */
    lt_ckpt_mode mode; /* with t */
    lt_dtype dtype;
    hid_t ftype, mtype;
    size_t esz;
    int world;
    entry *e;
    int n_e;
    char **names; /* parameter names, in model order (t) or file order */
    int n_names;
} reader;

/* ---- Bounded attribute readers ---- */

static lt_status open_attr(reader *r, hid_t obj, const char *where, const char *name, hid_t *a) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return lt__h5_err(LT_ERR_FORMAT, &r->c, name);
    if (ex == 0)
        return lt__err(LT_ERR_FORMAT, "%s: %s has no attribute %s: not a complete libtrain checkpoint (%s)", r->c.fn,
                       where, name, r->c.path);
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) return lt__h5_err(LT_ERR_FORMAT, &r->c, name);
    hid_t sp = H5Aget_space(*a);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (n != 1) {
        H5Aclose(*a);
        return lt__err(LT_ERR_FORMAT, "%s: attribute %s of %s holds %lld values, expected 1 (%s)", r->c.fn, name, where,
                       (long long)n, r->c.path);
    }
    return LT_OK;
}

/* A number attribute of integer or float class, converted by HDF5 to mtype (range errors fail the read). */
static lt_status attr_num(reader *r, hid_t obj, const char *where, const char *name, hid_t mtype, void *v) {
    hid_t a = H5I_INVALID_HID;
    LT_TRY(open_attr(r, obj, where, name, &a));
    hid_t ty = H5Aget_type(a);
    H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    if (ty >= 0) H5Tclose(ty);
    lt_status st = LT_OK;
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        st = lt__err(LT_ERR_FORMAT, "%s: attribute %s of %s is not a number (%s)", r->c.fn, name, where, r->c.path);
    else if (H5Aread(a, mtype, v) < 0)
        st = lt__h5_err(LT_ERR_FORMAT, &r->c, name);
    H5Aclose(a);
    return st;
}

static lt_status attr_i64(reader *r, hid_t obj, const char *where, const char *name, int64_t *v) {
    return attr_num(r, obj, where, name, H5T_NATIVE_INT64, v);
}
static lt_status attr_f64(reader *r, hid_t obj, const char *where, const char *name, double *v) {
    return attr_num(r, obj, where, name, H5T_NATIVE_DOUBLE, v);
}

/* A fixed-length string attribute of at most cap - 1 bytes (and LT__CKPT_MAX_STR), NUL-terminated into buf. */
static lt_status attr_str(reader *r, hid_t obj, const char *where, const char *name, char *buf, size_t cap) {
    hid_t a = H5I_INVALID_HID, ty = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    LT_TRY(open_attr(r, obj, where, name, &a));
    lt_status st = LT_OK;
    ty = H5Aget_type(a);
    size_t n = ty >= 0 ? H5Tget_size(ty) : 0;
    if (ty < 0 || H5Tget_class(ty) != H5T_STRING || H5Tis_variable_str(ty) != 0) {
        st = lt__err(LT_ERR_FORMAT, "%s: attribute %s of %s is not a fixed-length string (%s)", r->c.fn, name, where,
                     r->c.path);
    } else if (n == 0 || n >= cap || n > LT__CKPT_MAX_STR) {
        st = lt__err(LT_ERR_FORMAT, "%s: attribute %s of %s is %zu bytes long, the limit is %zu (%s)", r->c.fn, name,
                     where, n, cap - 1, r->c.path);
    } else {
        mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, n) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 || H5Aread(a, mt, buf) < 0)
            st = lt__h5_err(LT_ERR_FORMAT, &r->c, name);
        else
            buf[n] = '\0';
    }
    if (mt >= 0) H5Tclose(mt);
    if (ty >= 0) H5Tclose(ty);
    H5Aclose(a);
    return st;
}

/* ---- Dataset checks ---- */

/* Whether every prefix of path exists as a link (H5Lexists fails on a missing intermediate group). */
static bool link_exists(hid_t f, const char *path) {
    char buf[LT__CKPT_MAX_NAME + 16];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) return false;
            *p = saved;
            if (saved == '\0') return true;
        }
    }
}

static const char *type_name(hid_t ty, char *buf, size_t n) {
    H5T_class_t cls = H5Tget_class(ty);
    const char *k = cls == H5T_FLOAT     ? "float"
                    : cls == H5T_INTEGER ? "integer"
                    : cls == H5T_STRING  ? "string"
                                         : "non-numeric";
    snprintf(buf, n, "%s of %zu bytes%s", k, H5Tget_size(ty), H5Tget_order(ty) == H5T_ORDER_BE ? " big-endian" : "");
    return buf;
}

/* Checks the dataset at path: a dataset (not a group or a link elsewhere), exactly want_type, rank <= 8 and, when
 * want_dims is given, exactly those dims; contiguous or chunked, no external storage, no filters, storage that lies
 * inside the file; a scalar u32 crc32 attribute. Reads nothing else. */
static lt_status check_dataset(reader *r, const char *path, hid_t want_type, const char *want_name,
                               const int64_t *want_dims, int want_ndim, int64_t *numel, uint32_t *crc) {
    const char *fn = r->c.fn, *file = r->c.path;
    if (!link_exists(r->f, path)) return lt__err(LT_ERR_FORMAT, "%s: dataset /%s is missing from %s", fn, path, file);
    lt_status st = LT_OK;
    hid_t d = H5Oopen(r->f, path, H5P_DEFAULT), ty = H5I_INVALID_HID, sp = H5I_INVALID_HID, pl = H5I_INVALID_HID;
    if (d < 0) return lt__h5_err(LT_ERR_FORMAT, &r->c, path);
    char tbuf[64], s1[LT_SHAPE_STR_LEN], s2[LT_SHAPE_STR_LEN];
    if (H5Iget_type(d) != H5I_DATASET) {
        st = lt__err(LT_ERR_FORMAT, "%s: /%s in %s is not a dataset", fn, path, file);
        goto done;
    }
    ty = H5Dget_type(d);
    if (ty < 0 || H5Tequal(ty, want_type) <= 0) {
        st = lt__err(LT_ERR_DTYPE, "%s: dataset /%s in %s is %s, expected %s", fn, path, file,
                     ty < 0 ? "of unknown type" : type_name(ty, tbuf, sizeof tbuf), want_name);
        goto done;
    }
    sp = H5Dget_space(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[32];
    if (nd < 0 || nd > 8 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        st = lt__err(LT_ERR_FORMAT, "%s: dataset /%s in %s has rank %d (at most 8 accepted)", fn, path, file, nd);
        goto done;
    }
    int64_t n = 1, sh[8];
    for (int i = 0; i < nd; i++) {
        if (dims[i] > (hsize_t)LT__MAX_ELEMS || (dims[i] > 0 && n > LT__MAX_ELEMS / (int64_t)dims[i])) {
            st = lt__err(LT_ERR_FORMAT, "%s: dataset /%s in %s has absurd dims (dim %d is %llu)", fn, path, file, i,
                         (unsigned long long)dims[i]);
            goto done;
        }
        sh[i] = (int64_t)dims[i];
        n *= sh[i];
    }
    if (want_dims) {
        bool same = nd == want_ndim;
        for (int i = 0; same && i < nd; i++) same = sh[i] == want_dims[i];
        if (!same) {
            st = lt__err(LT_ERR_SHAPE, "%s: dataset /%s in %s is %s, the model's is %s", fn, path, file,
                         lt__fmt_shape(s1, sizeof s1, sh, nd), lt__fmt_shape(s2, sizeof s2, want_dims, want_ndim));
            goto done;
        }
    }
    pl = H5Dget_create_plist(d);
    H5D_layout_t layout = pl >= 0 ? H5Pget_layout(pl) : H5D_LAYOUT_ERROR;
    if (layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED) {
        st = lt__err(LT_ERR_FORMAT, "%s: dataset /%s in %s has a %s layout; only contiguous and chunked are read", fn,
                     path, file,
                     layout == H5D_VIRTUAL   ? "virtual"
                     : layout == H5D_COMPACT ? "compact"
                                             : "unknown");
        goto done;
    }
    if (H5Pget_external_count(pl) != 0 || H5Pget_nfilters(pl) != 0) {
        st = lt__err(LT_ERR_FORMAT, "%s: dataset /%s in %s uses external storage or filters, which are not read", fn,
                     path, file);
        goto done;
    }
    /* Storage must be allocated and, when contiguous, lie inside the file: catches truncation before reading. */
    const hsize_t bytes = (hsize_t)n * H5Tget_size(ty), stored = H5Dget_storage_size(d);
    hsize_t fsize = 0;
    H5Fget_filesize(r->f, &fsize);
    /* Unfiltered chunks cannot hold more than the file does: a chunk index claiming so is corrupt (and would make a
     * reader allocate what it claims). */
    bool bad = layout == H5D_CONTIGUOUS ? stored != bytes : stored < bytes || stored > fsize;
    if (!bad && layout == H5D_CONTIGUOUS && bytes > 0) {
        haddr_t off = H5Dget_offset(d);
        bad = off == HADDR_UNDEF || off > fsize || fsize - off < bytes;
    }
    if (bad) {
        st = lt__err(LT_ERR_FORMAT,
                     "%s: dataset /%s in %s has %llu bytes stored of %llu (file of %llu bytes): "
                     "truncated or never written",
                     fn, path, file, (unsigned long long)stored, (unsigned long long)bytes, (unsigned long long)fsize);
        goto done;
    }
    hid_t a = H5I_INVALID_HID;
    LT_TRY_GOTO(open_attr(r, d, path, "crc32", &a), done);
    hid_t aty = H5Aget_type(a);
    bool u32 = aty >= 0 && H5Tequal(aty, H5T_STD_U32LE) > 0;
    if (aty >= 0) H5Tclose(aty);
    if (!u32 || H5Aread(a, H5T_NATIVE_UINT32, crc) < 0)
        st = lt__err(LT_ERR_FORMAT, "%s: the crc32 attribute of /%s in %s is not a u32", fn, path, file);
    H5Aclose(a);
    *numel = n;
done:
    H5Eclear2(H5E_DEFAULT);
    if (pl >= 0) H5Pclose(pl);
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    H5Oclose(d);
    return st;
}

/* Reads a checked dataset into dst (n elements of mtype) and verifies its CRC-32. */
static lt_status read_dataset(reader *r, const char *path, hid_t mtype, void *dst, size_t bytes, uint32_t crc) {
    hid_t d = H5Dopen2(r->f, path, H5P_DEFAULT);
    if (d < 0) return lt__h5_err(LT_ERR_FORMAT, &r->c, path);
    herr_t rc = H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
    H5Dclose(d);
    if (rc < 0) return lt__h5_err(LT_ERR_FORMAT, &r->c, path);
    uint32_t got = lt__crc32(dst, bytes);
    if (got != crc)
        return lt__err(LT_ERR_FORMAT, "%s: CRC mismatch in /%s of %s (stored 0x%08x, computed 0x%08x): corrupt file",
                       r->c.fn, path, r->c.path, crc, got);
    return LT_OK;
}

/* Group members are listed with H5Literate in native order, which walks dense storage's B-tree one link at a time.
 * Not with H5Lget_name_by_idx: it first builds a table of every link, and libhdf5 1.10.8 frees uninitialised
 * entries of that table when a corrupt link fails to decode (found by tests/fuzz/fuzz_ckpt: a crash in
 * H5G__link_release_table). */
typedef struct member_walk {
    reader *r;
    const char *group;
    bool collect; /* append each name to r->names; else check that it is one of them */
    size_t cap, seen;
    lt_status st;
} member_walk;

static herr_t member_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g, (void)info;
    member_walk *w = data;
    reader *r = w->r;
    const size_t len = strnlen(name, LT__CKPT_MAX_NAME + 1);
    if (++w->seen > LT__CKPT_MAX_LINKS) {
        w->st = lt__err(LT_ERR_FORMAT, "%s: group /%s of %s has more than %d members", r->c.fn, w->group, r->c.path,
                        LT__CKPT_MAX_LINKS);
        return 1;
    }
    if (len == 0 || len > LT__CKPT_MAX_NAME) {
        w->st = lt__err(LT_ERR_FORMAT, "%s: a member of /%s in %s has an empty or overlong name", r->c.fn, w->group,
                        r->c.path);
        return 1;
    }
    if (w->collect) {
        if ((size_t)r->n_names == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 64;
            char **grown = realloc(r->names, cap * sizeof *grown);
            if (!grown) {
                w->st = lt__err(LT_ERR_OOM, "%s: out of memory", r->c.fn);
                return 1;
            }
            r->names = grown, w->cap = cap;
        }
        if (!(r->names[r->n_names] = strdup(name))) {
            w->st = lt__err(LT_ERR_OOM, "%s: out of memory", r->c.fn);
            return 1;
        }
        r->n_names++;
        return 0;
    }
    for (int k = 0; k < r->n_names; k++)
        if (strcmp(r->names[k], name) == 0) return 0;
    w->st = lt__err(LT_ERR_FORMAT, "%s: extra member /%s/%s in %s: the model has no such parameter", r->c.fn, w->group,
                    name, r->c.path);
    return 1;
}

static lt_status walk_members(reader *r, const char *group, bool collect) {
    hid_t g = H5Gopen2(r->f, group, H5P_DEFAULT);
    if (g < 0) return lt__err(LT_ERR_FORMAT, "%s: group /%s is missing from %s", r->c.fn, group, r->c.path);
    member_walk w = {.r = r, .group = group, .collect = collect, .st = LT_OK};
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, member_cb, &w);
    H5Gclose(g);
    if (w.st != LT_OK) return w.st;
    if (rc < 0) {
        char what[64];
        snprintf(what, sizeof what, "listing the members of /%s", group);
        return lt__h5_err(LT_ERR_FORMAT, &r->c, what);
    }
    return LT_OK;
}

/* Every member of group must be one of the parameter names. */
static lt_status check_members(reader *r, const char *group) { return walk_members(r, group, false); }

/* The parameter names: the model's, or (validating without a trainer) those under /params in the file's order. */
static lt_status collect_names(reader *r) {
    if (r->t) {
        lt_params *p = lt_gpt_params(r->t->model);
        r->n_names = lt_params_count(p);
        r->names = calloc((size_t)r->n_names + 1, sizeof *r->names);
        if (!r->names) return lt__err(LT_ERR_OOM, "%s: out of memory", r->c.fn);
        for (int i = 0; i < r->n_names; i++) lt_params_get(p, i, (const char **)&r->names[i], NULL);
        return LT_OK;
    }
    LT_TRY(walk_members(r, "params", true));
    if (r->n_names == 0) return lt__err(LT_ERR_FORMAT, "%s: /params of %s is empty", r->c.fn, r->c.path);
    return LT_OK;
}

/* ---- STRICT comparisons: saved hyperparameters against the trainer's ---- */

static lt_status same_f64(reader *r, hid_t obj, const char *where, const char *name, double mine) {
    double v;
    LT_TRY(attr_f64(r, obj, where, name, &v));
    if (v != mine)
        return lt__err(LT_ERR_ARG, "%s: STRICT: %s %s is %.17g in %s, the trainer's is %.17g", r->c.fn, where, name, v,
                       r->c.path, mine);
    return LT_OK;
}

static lt_status same_i64(reader *r, hid_t obj, const char *where, const char *name, int64_t mine) {
    int64_t v;
    LT_TRY(attr_i64(r, obj, where, name, &v));
    if (v != mine)
        return lt__err(LT_ERR_ARG, "%s: STRICT: %s %s is %lld in %s, the trainer's is %lld", r->c.fn, where, name,
                       (long long)v, r->c.path, (long long)mine);
    return LT_OK;
}

/* Attributes of /optim, /schedule and /data: always read (bounded), compared with the trainer in STRICT mode. */
static lt_status check_groups(reader *r, int64_t *opt_step, int64_t *sched_step) {
    const bool strict = r->t && r->mode == LT_CKPT_STRICT;
    const lt_train_config *c = r->t ? &r->t->cfg : NULL;
    char kind[64];
    lt_status st = LT_OK;
    hid_t o = H5Oopen(r->f, "optim", H5P_DEFAULT), s = H5I_INVALID_HID, d = H5I_INVALID_HID;
    if (o < 0 || H5Iget_type(o) != H5I_GROUP) {
        st = lt__err(LT_ERR_FORMAT, "%s: group /optim is missing from %s", r->c.fn, r->c.path);
        goto done;
    }
    LT_TRY_GOTO(attr_str(r, o, "/optim", "type", kind, sizeof kind), done);
    if (strcmp(kind, "adamw") != 0) {
        st = lt__err(LT_ERR_FORMAT, "%s: /optim type is '%s' in %s; this library restores adamw", r->c.fn, kind,
                     r->c.path);
        goto done;
    }
    LT_TRY_GOTO(attr_i64(r, o, "/optim", "step", opt_step), done);
    if (strict) {
        LT_TRY_GOTO(same_f64(r, o, "/optim", "lr", c->lr), done);
        LT_TRY_GOTO(same_f64(r, o, "/optim", "beta1", c->beta1), done);
        LT_TRY_GOTO(same_f64(r, o, "/optim", "beta2", c->beta2), done);
        LT_TRY_GOTO(same_f64(r, o, "/optim", "eps", c->eps), done);
        LT_TRY_GOTO(same_f64(r, o, "/optim", "weight_decay", c->weight_decay), done);
        LT_TRY_GOTO(same_f64(r, o, "/optim", "grad_clip", c->grad_clip), done);
    }
    s = H5Oopen(r->f, "schedule", H5P_DEFAULT);
    if (s < 0 || H5Iget_type(s) != H5I_GROUP) {
        st = lt__err(LT_ERR_FORMAT, "%s: group /schedule is missing from %s", r->c.fn, r->c.path);
        goto done;
    }
    LT_TRY_GOTO(attr_i64(r, s, "/schedule", "step", sched_step), done);
    if (strict) {
        LT_TRY_GOTO(same_i64(r, s, "/schedule", "warmup_steps", c->warmup_steps), done);
        LT_TRY_GOTO(same_f64(r, s, "/schedule", "max_lr", c->lr), done);
        LT_TRY_GOTO(same_f64(r, s, "/schedule", "min_lr", c->min_lr), done);
        d = H5Dopen2(r->f, "data", H5P_DEFAULT);
        if (d < 0) {
            st = lt__err(LT_ERR_FORMAT, "%s: dataset /data is missing from %s", r->c.fn, r->c.path);
            goto done;
        }
        LT_TRY_GOTO(same_i64(r, d, "/data", "batch_size", c->batch_size), done);
        LT_TRY_GOTO(same_i64(r, d, "/data", "seq_len", c->seq_len), done);
        LT_TRY_GOTO(same_i64(r, d, "/data", "grad_accum", c->grad_accum), done);
    }
done:
    H5Eclear2(H5E_DEFAULT);
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Oclose(s);
    if (o >= 0) H5Oclose(o);
    return st;
}

/* ---- The whole read: open, validate, read and CRC-check; lt_trainer_resume then restores the trainer ---- */

/* path_or_dir: a file, or a directory whose `latest` names a file in it (a bare name: no '/', no leading '.'). */
static lt_status resolve(const char *fn, const char *path_or_dir, char *out, size_t n) {
    struct stat sb;
    if (stat(path_or_dir, &sb) != 0)
        return lt__err(LT_ERR_IO, "%s: cannot open %s: %s", fn, path_or_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        if ((size_t)snprintf(out, n, "%s", path_or_dir) >= n)
            return lt__err(LT_ERR_ARG, "%s: path %s is too long", fn, path_or_dir);
        return LT_OK;
    }
    char latest[4096], name[LT__CKPT_MAX_NAME + 2] = {0};
    if ((size_t)snprintf(latest, sizeof latest, "%s/latest", path_or_dir) >= sizeof latest)
        return lt__err(LT_ERR_ARG, "%s: path %s is too long", fn, path_or_dir);
    FILE *f = fopen(latest, "r");
    if (!f)
        return lt__err(LT_ERR_IO, "%s: no checkpoint in %s (cannot read %s: %s)", fn, path_or_dir, latest,
                       strerror(errno));
    size_t len = fread(name, 1, sizeof name - 1, f);
    fclose(f);
    while (len > 0 && (name[len - 1] == '\n' || name[len - 1] == '\r')) name[--len] = '\0';
    if (len == 0 || len > LT__CKPT_MAX_NAME || strchr(name, '/') || name[0] == '.' || memchr(name, '\0', len))
        return lt__err(LT_ERR_FORMAT, "%s: %s does not hold a checkpoint file name", fn, latest);
    if ((size_t)snprintf(out, n, "%s/%s", path_or_dir, name) >= n)
        return lt__err(LT_ERR_ARG, "%s: path %s/%s is too long", fn, path_or_dir, name);
    return LT_OK;
}

static lt_status copy_into(lt_tensor *dst, void *src, int64_t numel) {
    if (lt_tensor_device(dst).type == LT_CPU) {
        memcpy(lt_tensor_data(dst), src, (size_t)numel * lt_dtype_size(lt_tensor_dtype(dst)));
        return LT_OK;
    }
    lt_tensor *blob;
    LT_TRY(lt_tensor_from_blob(src, &numel, NULL, 1, lt_tensor_dtype(dst), LT_DEVICE_CPU, NULL, NULL, &blob));
    lt_status st = lt_tensor_copy(dst, blob); /* uploads to dst's device */
    lt__drop(blob);
    return st;
}

static lt_status add_entry(reader *r, const char *fmt, const char *name, int param, int which) {
    entry *e = &r->e[r->n_e++];
    snprintf(e->path, sizeof e->path, fmt, name);
    e->param = param;
    e->which = which;
    return LT_OK;
}

/* What a successful read leaves for the commit (lt_trainer_resume), laid out like the trainer's flat buffers. */
typedef struct staged {
    void *buf[3]; /* params, then AdamW m and v (STRICT only): total elements each, in the model's dtype; under ZeRO-1
                   * a rank other than 0 holds only its shard of m and v (rank 0's shard starts its full buffers) */
    int64_t total, step, opt_step;
    lt__rank_row *rows; /* STRICT only: one per rank of the saving run (the same world size as this one) */
    char path[4096];    /* the file read, for messages */
} staged;

static void staged_free(staged *s) {
    for (int w = 0; w < 3; w++) free(s->buf[w]);
    free(s->rows);
    memset(s, 0, sizeof *s);
}

/* Validates and reads everything into staging buffers; with out (and a trainer) hands them over, else frees them.
 * The trainer is never changed here. */
static lt_status run_reader(reader *r, staged *out, lt_ckpt_info *info) {
    const char *fn = r->c.fn, *file = r->c.path;
    char buf[LT__CKPT_MAX_STR + 1];
    int64_t version, step, tokens, world, zero, opt_step = 0, sched_step = 0;
    LT_TRY(attr_str(r, r->f, "/", "format", buf, 64));
    if (strcmp(buf, LT__CKPT_FORMAT) != 0)
        return lt__err(LT_ERR_FORMAT, "%s: %s is not a libtrain checkpoint (format '%s')", fn, file, buf);
    LT_TRY(attr_i64(r, r->f, "/", "version", &version));
    if (version != LT__CKPT_VERSION)
        return lt__err(LT_ERR_FORMAT, "%s: %s is format version %lld; this library reads version %d", fn, file,
                       (long long)version, LT__CKPT_VERSION);
    LT_TRY(attr_i64(r, r->f, "/", "step", &step));
    LT_TRY(attr_i64(r, r->f, "/", "tokens_seen", &tokens));
    LT_TRY(attr_i64(r, r->f, "/", "world_size", &world));
    LT_TRY(attr_i64(r, r->f, "/", "zero_stage", &zero));
    LT_TRY(attr_str(r, r->f, "/", "library_version", buf, 64));
    /* zero_stage only says how the saving run held its moments: the file holds them whole at either stage */
    if (step < 0 || tokens < 0 || world < 1 || world > LT__CKPT_MAX_WORLD || (zero != 0 && zero != 1))
        return lt__err(LT_ERR_FORMAT,
                       "%s: %s has step %lld, tokens_seen %lld, world_size %lld, zero_stage %lld: out of "
                       "range (zero_stage must be 0 or 1)",
                       fn, file, (long long)step, (long long)tokens, (long long)world, (long long)zero);
    /* Each rank's part of every batch and its dropout stream depend on the world size, so another one cannot
     * continue the run exactly; the parameters alone are the same on every rank and load anywhere. */
    if (r->t && r->mode == LT_CKPT_STRICT && world != r->t->world)
        return lt__err(
            LT_ERR_UNSUPPORTED,
            "%s: %s was saved with world size %lld but this run has world size %d: an exact resume needs the same "
            "one (resume it with world size %lld, or load the parameters only with LT_CKPT_PARAMS_ONLY)",
            fn, file, (long long)world, r->t->world, (long long)world);
    r->world = (int)world;
    LT_TRY(attr_str(r, r->f, "/", "dtype", buf, 8));
    r->dtype = strcmp(buf, "f32") == 0 ? LT_F32 : strcmp(buf, "f64") == 0 ? LT_F64 : LT_DTYPE_COUNT;
    if (r->dtype == LT_DTYPE_COUNT)
        return lt__err(LT_ERR_FORMAT, "%s: %s has dtype '%s'; f32 or f64 expected", fn, file, buf);
    if (r->t && r->dtype != r->t->cfg.dtype)
        return lt__err(LT_ERR_DTYPE, "%s: %s holds %s parameters, the model is %s", fn, file, buf,
                       lt_dtype_name(r->t->cfg.dtype));
    r->ftype = r->dtype == LT_F64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
    r->mtype = r->dtype == LT_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    r->esz = lt_dtype_size(r->dtype);
    LT_TRY(attr_str(r, r->f, "/", "model_config", buf, sizeof buf));

    /* Structure and metadata of every tensor first: nothing is read until all of it passes. */
    LT_TRY(collect_names(r));
    const bool full = !r->t || r->mode == LT_CKPT_STRICT;
    r->e = calloc((size_t)r->n_names * 3, sizeof *r->e);
    if (!r->e) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    for (int i = 0; i < r->n_names; i++) {
        add_entry(r, "params/%s", r->names[i], r->t ? i : -1, 0);
        if (full) add_entry(r, "optim/%s/m", r->names[i], r->t ? i : -1, 1);
        if (full) add_entry(r, "optim/%s/v", r->names[i], r->t ? i : -1, 2);
    }
    for (int k = 0; k < r->n_e; k++) {
        entry *e = &r->e[k];
        int64_t shape[8];
        int nd = 0;
        lt_tensor *p = NULL;
        if (e->param >= 0) {
            lt_params_get(lt_gpt_params(r->t->model), e->param, NULL, &p);
            nd = lt_tensor_ndim(p);
            lt_tensor_shape(p, shape);
        }
        LT_TRY(check_dataset(r, e->path, r->ftype, lt_dtype_name(r->dtype), p ? shape : NULL, nd, &e->numel, &e->crc));
    }
    if (full) {
        LT_TRY(check_members(r, "params"));
        LT_TRY(check_members(r, "optim"));
        for (int i = 0; i < r->n_names; i++) {
            char g[LT__CKPT_MAX_NAME + 16];
            snprintf(g, sizeof g, "optim/%s", r->names[i]);
            hid_t h = H5Gopen2(r->f, g, H5P_DEFAULT);
            H5G_info_t gi;
            bool ok = h >= 0 && H5Gget_info(h, &gi) >= 0 && gi.nlinks == 2;
            if (h >= 0) H5Gclose(h);
            if (!ok) return lt__err(LT_ERR_FORMAT, "%s: /%s in %s must hold exactly m and v", fn, g, file);
        }
    }
    uint32_t rng_crc = 0, data_crc = 0;
    int64_t nrng, ndata;
    const int64_t rng_dims[2] = {world, 2}, data_dims[2] = {world, 3};
    if (full) {
        LT_TRY(check_dataset(r, "rng/dropout", H5T_STD_U64LE, "u64", rng_dims, 2, &nrng, &rng_crc));
        LT_TRY(check_dataset(r, "data", H5T_STD_U64LE, "u64", data_dims, 2, &ndata, &data_crc));
        LT_TRY(check_groups(r, &opt_step, &sched_step));
    }
    if (r->t && r->mode == LT_CKPT_STRICT) {
        char mine[1024];
        lt__model_json(r->t, mine, sizeof mine);
        if (strcmp(mine, buf) != 0)
            return lt__err(LT_ERR_ARG, "%s: STRICT: model_config of %s is %s, the trainer's is %s", fn, file, buf,
                           mine);
    }

    /* Read and CRC-check everything into staging buffers laid out like the flat buffers (or one scratch buffer). */
    lt_status st = LT_OK;
    int64_t total = 0, biggest = 0;
    for (int k = 0; k < r->n_e; k++) {
        if (r->e[k].which == 0) total += r->e[k].numel;
        if (r->e[k].numel > biggest) biggest = r->e[k].numel;
    }
    void *stage[3] = {NULL, NULL, NULL}, *scratch = NULL;
    uint64_t *rows = NULL; /* world rows of (seed, offset) from /rng/dropout, then world rows of /data's cursor */
    if (r->t) {
        total = lt_params_numel(lt_gpt_params(r->t->model));
        for (int w = 0; w < (full ? 3 : 1); w++)
            if (!(stage[w] = malloc((size_t)(total > 0 ? total : 1) * r->esz)))
                st = lt__err(LT_ERR_OOM, "%s: out of memory staging %lld elements", fn, (long long)total);
    } else if (!(scratch = malloc((size_t)(biggest > 0 ? biggest : 1) * r->esz))) {
        st = lt__err(LT_ERR_OOM, "%s: out of memory reading %lld elements", fn, (long long)biggest);
    }
    for (int k = 0; st == LT_OK && k < r->n_e; k++) {
        entry *e = &r->e[k];
        void *dst = scratch;
        if (r->t) {
            lt_tensor *p;
            const char *name;
            dst = (char *)stage[e->which] + (size_t)lt__param_offset(r->t, e->param, &p, &name) * r->esz;
        }
        st = read_dataset(r, e->path, r->mtype, dst, (size_t)e->numel * r->esz, e->crc);
    }
    const size_t nw = (size_t)world;
    if (st == LT_OK && full) {
        rows = malloc(sizeof(uint64_t) * 5 * nw);
        st = rows ? read_dataset(r, "rng/dropout", H5T_NATIVE_UINT64, rows, sizeof(uint64_t) * 2 * nw, rng_crc)
                  : lt__err(LT_ERR_OOM, "%s: out of memory", fn);
        if (st == LT_OK)
            st = read_dataset(r, "data", H5T_NATIVE_UINT64, rows + 2 * nw, sizeof(uint64_t) * 3 * nw, data_crc);
    }
    if (st == LT_OK && r->t && r->mode == LT_CKPT_STRICT) {
        /* every rank's loader runs from rank 0's seed */
        for (size_t w = 0; st == LT_OK && w < nw; w++)
            if (rows[2 * nw + 3 * w] != r->t->cfg.seed)
                st = lt__err(LT_ERR_ARG, "%s: STRICT: /data seed of rank %zu is %llu in %s, the trainer's is %llu", fn,
                             w, (unsigned long long)rows[2 * nw + 3 * w], file, (unsigned long long)r->t->cfg.seed);
        if (st == LT_OK && (opt_step != step || sched_step != step))
            st = lt__err(LT_ERR_FORMAT, "%s: %s is inconsistent: step %lld, /optim step %lld, /schedule step %lld", fn,
                         file, (long long)step, (long long)opt_step, (long long)sched_step);
        else if (st == LT_OK && step > r->t->cfg.steps)
            st = lt__err(LT_ERR_ARG, "%s: %s is at step %lld, beyond the trainer's %lld steps", fn, file,
                         (long long)step, (long long)r->t->cfg.steps);
    }

    /* Hand the staged state to the caller, which commits it (lt_trainer_resume). */
    if (st == LT_OK && out && r->t) {
        if (full && !(out->rows = malloc(sizeof *out->rows * nw))) st = lt__err(LT_ERR_OOM, "%s: out of memory", fn);
        for (size_t w = 0; st == LT_OK && full && w < nw; w++) {
            memcpy(out->rows[w].rng, rows + 2 * w, sizeof out->rows[w].rng);
            memcpy(out->rows[w].cursor, rows + 2 * nw + 3 * w, sizeof out->rows[w].cursor);
        }
        if (st == LT_OK) {
            for (int w = 0; w < 3; w++) out->buf[w] = stage[w], stage[w] = NULL;
            out->total = total;
            out->step = step;
            out->opt_step = opt_step;
            snprintf(out->path, sizeof out->path, "%s", file);
        }
    }
    if (st == LT_OK && info) {
        size_t keep = info->struct_size;
        memset(info, 0, sizeof *info);
        info->struct_size = keep;
        info->version = (int)version;
        info->step = step;
        info->tokens_seen = tokens;
        info->world_size = (int)world;
        info->zero_stage = (int)zero;
        info->n_params = r->n_names;
        for (int k = 0; k < r->n_e; k++)
            if (r->e[k].which == 0) info->numel += r->e[k].numel;
        snprintf(info->dtype, sizeof info->dtype, "%s", lt_dtype_name(r->dtype));
    }
    for (int w = 0; w < 3; w++) free(stage[w]);
    free(scratch);
    free(rows);
    return st;
}

static lt_status read_checkpoint(const char *fn, const char *path_or_dir, lt_trainer *t, lt_ckpt_mode mode, staged *out,
                                 lt_ckpt_info *info) {
    char path[4096];
    LT_TRY(resolve(fn, path_or_dir, path, sizeof path));
    struct stat sb;
    if (stat(path, &sb) != 0) return lt__err(LT_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return lt__err(LT_ERR_IO, "%s: %s is not a regular file", fn, path);
    lt__h5_session s;
    lt__h5_enter(&s);
    reader r = {.c = {fn, path}, .f = H5I_INVALID_HID, .t = t, .mode = mode};
    lt_status st = LT_OK;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* STRONG: closing the file closes anything a failed path left open. */
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        st = lt__h5_err(LT_ERR_BACKEND, &r.c, "H5Pset_fclose_degree");
    } else if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        st = lt__err(LT_ERR_FORMAT, "%s: %s is not an HDF5 file", fn, path);
    } else if ((r.f = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
        st = lt__h5_err(LT_ERR_FORMAT, &r.c, "H5Fopen (truncated or corrupt file?)");
    } else {
        st = run_reader(&r, out, info);
    }
    if (r.f >= 0) H5Fclose(r.f);
    if (fapl >= 0) H5Pclose(fapl);
    if (!t)
        for (int i = 0; i < r.n_names; i++) free(r.names[i]);
    free(r.names);
    free(r.e);
    lt__h5_leave(&s);
    return st;
}

/* Rank 0's staged state on every other rank: a header first, then (after the ranks agree that each could allocate
 * its buffers) the buffers themselves. Rank 0 alone reads the file, so only its node needs to see the directory. */
static lt_status share_header(const char *fn, lt_trainer *t, lt_ckpt_mode mode, staged *s) {
    struct {
        int64_t total, step, opt_step;
        char path[4096];
    } h = {s->total, s->step, s->opt_step, ""};
    snprintf(h.path, sizeof h.path, "%s", s->path);
    LT_TRY(lt__ckpt_bcast(t, &h, sizeof h));
    if (t->rank == 0) return LT_OK;
    s->total = h.total, s->step = h.step, s->opt_step = h.opt_step;
    memcpy(s->path, h.path, sizeof s->path);
    const int64_t mine = lt_params_numel(lt_gpt_params(t->model));
    if (mine != s->total)
        return lt__err(LT_ERR_STATE, "%s: this rank's model has %lld parameters, rank 0's %lld", fn, (long long)mine,
                       (long long)s->total);
    const size_t bytes = (size_t)(s->total > 0 ? s->total : 1) * lt_dtype_size(t->cfg.dtype);
    lt_dist_shard sh;
    LT_TRY(lt_dist_shard_of(t->cfg.dist, s->total, &sh));
    const size_t shard_bytes = (size_t)(sh.count > 0 ? sh.count : 1) * lt_dtype_size(t->cfg.dtype);
    for (int w = 0; w < (mode == LT_CKPT_STRICT ? 3 : 1); w++)
        if (!(s->buf[w] = malloc(w > 0 && lt__ckpt_sharded(t) ? shard_bytes : bytes)))
            return lt__err(LT_ERR_OOM, "%s: out of memory staging %lld elements", fn, (long long)s->total);
    if (mode == LT_CKPT_STRICT && !(s->rows = malloc(sizeof *s->rows * (size_t)t->world)))
        return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    return LT_OK;
}

/* The parameters to every rank; the moments too, or under ZeRO-1 each rank's shard of them only (a scatter: no rank
 * but 0 ever holds the full moments). */
static lt_status share_buffers(lt_trainer *t, lt_ckpt_mode mode, staged *s) {
    const size_t bytes = (size_t)s->total * lt_dtype_size(t->cfg.dtype);
    for (int w = 0; w < (mode == LT_CKPT_STRICT ? 3 : 1); w++) {
        if (w > 0 && lt__ckpt_sharded(t))
            LT_TRY(lt_dist_scatter_shards(t->cfg.dist, s->buf[w], s->buf[w], s->total, t->cfg.dtype, 0));
        else
            LT_TRY(lt__ckpt_bcast(t, s->buf[w], bytes));
    }
    if (mode == LT_CKPT_STRICT) LT_TRY(lt__ckpt_bcast(t, s->rows, sizeof *s->rows * (size_t)t->world));
    return LT_OK;
}

/* The one step of the commit that can fail on a CPU trainer: this rank's cursor into its loader. old gets the
 * loader's state before, to undo it when another rank failed. */
static lt_status commit_cursor(const char *fn, lt_trainer *t, const staged *s, lt_loader_state *old) {
    LT_TRY(lt_loader_get_state(t->train_loader, old));
    const uint64_t *c = s->rows[t->rank].cursor;
    lt_loader_state ls = {.seed = c[0], .epoch = c[1], .batch = c[2]};
    lt_status st = lt_loader_set_state(t->train_loader, &ls);
    if (st != LT_OK) return lt__err(st, "%s: /data of %s does not fit this loader: %s", fn, s->path, lt_last_error());
    return LT_OK;
}

static lt_status commit_rest(lt_trainer *t, lt_ckpt_mode mode, const staged *s) {
    lt_tensor *flat, *m, *v;
    LT_TRY(lt_params_flat(lt_gpt_params(t->model), &flat, NULL));
    LT_TRY(lt_optim_state(t->opt, &m, &v));
    if (mode == LT_CKPT_STRICT) {
        /* the optimizer's range: all of the buffer, or this rank's ZeRO-1 shard, which starts the staged moments */
        int64_t n;
        LT_TRY(lt_optim_range(t->opt, NULL, &n));
        if (n > 0) LT_TRY(copy_into(m, s->buf[1], n));
        if (n > 0) LT_TRY(copy_into(v, s->buf[2], n));
        LT_TRY(lt_optim_set_steps(t->opt, s->opt_step));
        lt_philox *ph = lt_gpt_rng(t->model);
        ph->seed = s->rows[t->rank].rng[0];
        ph->offset = s->rows[t->rank].rng[1];
        t->steps_done = s->step;
        t->last_saved = s->step;
    }
    return copy_into(flat, s->buf[0], s->total);
}

/* With one process: read, then commit. Under MPI (collective): rank 0 reads and validates, every rank learns the
 * outcome, the staged state is broadcast, each rank takes its own row (cursor and dropout stream), and each step that
 * can fail on one rank is agreed, so every rank returns the same status and a failure leaves every trainer as it was
 * (except a device copy failing half-way, which leaves the trainer unusable). */
LT_API lt_status lt_trainer_resume(lt_trainer *t, const char *path_or_dir, lt_ckpt_mode mode) {
    static const char *fn = "lt_trainer_resume";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    LT_CHECK_NOT_NULL(fn, path_or_dir);
    if (mode != LT_CKPT_STRICT && mode != LT_CKPT_PARAMS_ONLY)
        return lt__err(LT_ERR_ARG, "%s: unknown mode %d", fn, (int)mode);
    staged s;
    memset(&s, 0, sizeof s);
    const double deadline = lt__ckpt_deadline_begin(t); /* the others wait while rank 0 reads */
    /* After each agreement the status is the same on every rank, so every rank takes the same branches. */
    lt_status st = t->rank == 0 ? read_checkpoint(fn, path_or_dir, t, mode, &s, NULL) : LT_OK;
    if ((st = lt__ckpt_agree(t, st)) != LT_OK) goto done;
    if (t->world > 1) {
        if ((st = lt__ckpt_agree(t, share_header(fn, t, mode, &s))) != LT_OK) goto done;
        if ((st = lt__ckpt_agree(t, share_buffers(t, mode, &s))) != LT_OK) goto done;
    }
    lt_loader_state old;
    bool moved = false;
    if (mode == LT_CKPT_STRICT) moved = (st = commit_cursor(fn, t, &s, &old)) == LT_OK;
    if ((st = lt__ckpt_agree(t, st)) != LT_OK) {
        if (moved) lt_loader_set_state(t->train_loader, &old);
        goto done;
    }
    st = lt__ckpt_agree(t, commit_rest(t, mode, &s));
done:
    staged_free(&s);
    return lt__ckpt_deadline_end(t, deadline, st);
}

LT_API lt_status lt_ckpt_validate(const char *path, const lt_trainer *against, lt_ckpt_info *info) {
    static const char *fn = "lt_ckpt_validate";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, path);
    if (info && info->struct_size < sizeof *info)
        return lt__err(LT_ERR_ARG, "%s: info->struct_size is %zu, expected %zu", fn, info->struct_size, sizeof *info);
    /* The trainer is only read: nothing is handed over for a commit. */
    return read_checkpoint(fn, path, (lt_trainer *)against, LT_CKPT_STRICT, NULL, info);
}

#else
typedef int lt__ckpt_read_needs_hdf5; /* keeps the translation unit non-empty without HDF5 */
#endif
