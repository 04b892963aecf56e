/* Tensor and storage lifetime, scopes, creation, inspection and copies. Views live in views.c.
 * Every tensor made here goes through lt__scope_register exactly once, which is what makes scopes work. */
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* tensor_impl.h shows C++ (cuda/) a plain int where C has atomic_int: the layouts must agree. */
_Static_assert(sizeof(atomic_int) == sizeof(int) && _Alignof(atomic_int) == _Alignof(int),
               "lt__refcount differs between C and C++");

/* ---- Scopes: one growable array of registered tensors per thread, with a mark per open scope ---- */

#define LT_MAX_SCOPES 64

static _Thread_local lt_tensor **lt__scope_items;
static _Thread_local size_t lt__scope_n, lt__scope_cap;
static _Thread_local size_t lt__scope_marks[LT_MAX_SCOPES];
static _Thread_local int lt__scope_depth;

void lt__scope_register(lt_tensor *t) {
    if (lt__scope_depth == 0) return; /* the caller owns the reference */
    if (lt__scope_n == lt__scope_cap) {
        size_t cap = lt__scope_cap ? lt__scope_cap * 2 : 256;
        lt_tensor **items = realloc(lt__scope_items, sizeof(lt_tensor *) * cap);
        LT_ASSERT(items != NULL); /* a few KiB; if even that fails there is no way to keep the ownership rule */
        lt__scope_items = items;
        lt__scope_cap = cap;
    }
    lt__scope_items[lt__scope_n++] = t;
}

void lt__keep(lt_tensor *t) {
    if (lt__scope_depth > 0) lt_tensor_retain(t);
}

void lt__drop(lt_tensor *t) {
    if (t && lt__scope_depth == 0) lt_tensor_release(t);
}

lt_status lt__scope_begin(void) {
    if (lt__scope_depth == LT_MAX_SCOPES)
        return lt__err(LT_ERR_STATE, "lt_scope_begin: scopes nested deeper than %d", LT_MAX_SCOPES);
    lt__scope_marks[lt__scope_depth++] = lt__scope_n;
    return LT_OK;
}

void lt__scope_end(void) {
    LT_ASSERT(lt__scope_depth > 0);
    size_t mark = lt__scope_marks[--lt__scope_depth];
    /* release newest first: outputs die before the inputs their graph nodes reference */
    while (lt__scope_n > mark) lt_tensor_release(lt__scope_items[--lt__scope_n]);
}

LT_API lt_status lt_scope_begin(void) {
    lt__clear_error();
    return lt__scope_begin();
}

LT_API lt_status lt_scope_end(void) {
    lt__clear_error();
    if (lt__scope_depth == 0) return lt__err(LT_ERR_STATE, "lt_scope_end: no scope is open");
    lt__scope_end();
    return LT_OK;
}

/* ---- Lifetime ---- */

/* The owner_free of wrapped memory that libtrain merely borrows (the caller frees it). */
static void lt__borrowed(void *ctx) { (void)ctx; }

static void lt__storage_release(lt__storage *s) {
    if (atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->owner_free) {
        s->owner_free(s->owner_ctx);
    } else if (s->data) {
        const lt__backend *be = NULL;
        if (lt__backend_for("lt_tensor_release", s->device, &be) == LT_OK)
            lt__free(be->allocator(s->device.index), s->data);
    }
    lt__pool_put(lt__pool_storages(), s);
}

LT_API void lt_tensor_retain(lt_tensor *t) {
    if (t) atomic_fetch_add(&t->refcount, 1);
}

LT_API void lt_tensor_release(lt_tensor *t) {
    if (!t || atomic_fetch_sub(&t->refcount, 1) != 1) return;
    lt__storage_release(t->storage);
    lt_tensor_release(t->grad);
    lt__node_release(t->grad_fn);
    lt__pool_put(lt__pool_tensors(), t);
}

static lt_tensor *lt__header_new(lt__storage *s) {
    lt_tensor *t = lt__pool_get(lt__pool_tensors());
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    atomic_init(&t->refcount, 1);
    t->storage = s;
    return t;
}

/* Checks a shape and computes its element count, with overflow protection. */
static lt_status lt__check_shape(const char *who, const int64_t *shape, int ndim, int64_t *numel) {
    if (ndim < 0 || ndim > LT_MAX_DIMS)
        return lt__err(LT_ERR_ARG, "%s: ndim is %d, must be in [0, %d]", who, ndim, LT_MAX_DIMS);
    if (ndim > 0 && !shape) return lt__err(LT_ERR_ARG, "%s: shape is NULL", who);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return lt__err(LT_ERR_ARG, "%s: dim %d has negative size %lld", who, i, (long long)shape[i]);
        if (__builtin_mul_overflow(n, shape[i], &n)) return lt__err(LT_ERR_OOM, "%s: element count overflows", who);
    }
    *numel = n;
    return LT_OK;
}

lt_status lt__tensor_alloc(const char *who, const int64_t *shape, int ndim, lt_dtype dtype, lt_device device,
                           lt_tensor **out) {
    *out = NULL;
    int64_t n = 0;
    LT_TRY(lt__check_shape(who, shape, ndim, &n));
    if ((unsigned)dtype >= LT_DTYPE_COUNT) return lt__err(LT_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
    const lt__backend *be;
    LT_TRY(lt__backend_for(who, device, &be));
    size_t nbytes;
    if (__builtin_mul_overflow((size_t)n, lt_dtype_size(dtype), &nbytes))
        return lt__err(LT_ERR_OOM, "%s: size in bytes overflows", who);
    lt__allocator *a = be->allocator(device.index);
    if (!a) return lt__err(LT_ERR_OOM, "%s: could not create the allocator", who);
    lt__storage *s = lt__pool_get(lt__pool_storages());
    if (!s) return lt__err(LT_ERR_OOM, "%s: out of memory", who);
    memset(s, 0, sizeof *s);
    atomic_init(&s->refcount, 1);
    s->device = device;
    s->nbytes = nbytes;
    lt_status st = lt__alloc(a, nbytes, who, &s->data);
    lt_tensor *t = st == LT_OK ? lt__header_new(s) : NULL;
    if (!t) {
        lt__storage_release(s);
        return st != LT_OK ? st : lt__err(LT_ERR_OOM, "%s: out of memory", who);
    }
    t->ndim = ndim;
    t->dtype = dtype;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    lt__contiguous_strides(t->shape, ndim, t->strides);
    lt__scope_register(t);
    *out = t;
    return LT_OK;
}

static lt_status lt__view_new(const lt_tensor *t, const int64_t *shape, const int64_t *strides, int ndim,
                              int64_t offset, lt_tensor **out) {
    *out = NULL;
    lt_tensor *v = lt__header_new(t->storage);
    if (!v) return lt__err(LT_ERR_OOM, "view: out of memory");
    atomic_fetch_add(&t->storage->refcount, 1);
    v->ndim = ndim;
    v->dtype = t->dtype;
    v->offset = offset;
    if (ndim) {
        memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
        memcpy(v->strides, strides, sizeof(int64_t) * (size_t)ndim);
    }
    *out = v;
    return LT_OK;
}

lt_status lt__tensor_view_of(const lt_tensor *t, const int64_t *shape, const int64_t *strides, int ndim, int64_t offset,
                             lt_tensor **out) {
    LT_TRY(lt__view_new(t, shape, strides, ndim, offset, out));
    lt__scope_register(*out);
    return LT_OK;
}

lt_status lt__tensor_alias(const lt_tensor *t, lt_tensor **out) {
    return lt__view_new(t, t->shape, t->strides, t->ndim, t->offset, out);
}

lt_status lt__tensor_wrap(void *data, const int64_t *shape, const int64_t *strides, int ndim, lt_dtype dtype,
                          lt_device device, void (*owner_free)(void *), void *owner_ctx, lt_tensor **out) {
    *out = NULL;
    lt__storage *s = lt__pool_get(lt__pool_storages());
    if (!s) return lt__err(LT_ERR_OOM, "wrap: out of memory");
    memset(s, 0, sizeof *s);
    atomic_init(&s->refcount, 1);
    s->device = device;
    s->data = data;
    s->owner_free = owner_free ? owner_free : lt__borrowed;
    s->owner_ctx = owner_ctx;
    lt_tensor *t = lt__header_new(s);
    if (!t) {
        lt__pool_put(lt__pool_storages(), s);
        return lt__err(LT_ERR_OOM, "wrap: out of memory");
    }
    t->ndim = ndim;
    t->dtype = dtype;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    if (strides && ndim)
        memcpy(t->strides, strides, sizeof(int64_t) * (size_t)ndim);
    else
        lt__contiguous_strides(t->shape, ndim, t->strides);
    lt__scope_register(t);
    *out = t;
    return LT_OK;
}

/* ---- Geometry ---- */

int64_t lt__numel(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void lt__contiguous_strides(const int64_t *shape, int ndim, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

bool lt__is_contiguous(const lt_tensor *t) {
    if (lt__numel(t->shape, t->ndim) == 0) return true; /* no element to misplace */
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool lt__same_shape(const lt_tensor *a, const lt_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

lt_status lt__norm_dim(const char *who, int dim, int ndim, int *out) {
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim)
        return lt__err(LT_ERR_RANGE, "%s: dim %d is out of range for a tensor of %d dims", who, dim, ndim);
    *out = d;
    return LT_OK;
}

lt_status lt__broadcast_shape(const char *who, const int64_t *sa, int na, const int64_t *sb, int nb, int64_t *out,
                              int *nout) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t a = i < n - na ? 1 : sa[i - (n - na)];
        int64_t b = i < n - nb ? 1 : sb[i - (n - nb)];
        if (a != b && a != 1 && b != 1) {
            char x[LT_SHAPE_STR_LEN], y[LT_SHAPE_STR_LEN];
            return lt__err(LT_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", who,
                           lt__fmt_shape(x, sizeof x, sa, na), lt__fmt_shape(y, sizeof y, sb, nb));
        }
        out[i] = a == 1 ? b : a;
    }
    *nout = n;
    return LT_OK;
}

lt_status lt__broadcast_header(const lt_tensor *t, const int64_t *shape, int ndim, lt_tensor *hdr) {
    int lead = ndim - t->ndim;
    if (lead < 0 || ndim > LT_MAX_DIMS) return lt__err(LT_ERR_SHAPE, "expand: target has fewer dims than the tensor");
    memset(hdr, 0, sizeof *hdr);
    hdr->storage = t->storage;
    hdr->offset = t->offset;
    hdr->dtype = t->dtype;
    hdr->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        hdr->shape[i] = shape[i];
        if (i < lead) continue;
        int64_t s = t->shape[i - lead];
        if (s != shape[i] && s != 1) {
            char x[LT_SHAPE_STR_LEN], y[LT_SHAPE_STR_LEN];
            return lt__err(LT_ERR_SHAPE, "expand: %s cannot broadcast to %s",
                           lt__fmt_shape(x, sizeof x, t->shape, t->ndim), lt__fmt_shape(y, sizeof y, shape, ndim));
        }
        hdr->strides[i] = s == shape[i] ? t->strides[i - lead] : 0;
    }
    return LT_OK;
}

/* A stack header over borrowed contiguous host memory, for kernels that copy to or from the caller's buffer. */
static void lt__host_header(void *data, const int64_t *shape, int ndim, lt_dtype dtype, lt__storage *s, lt_tensor *t) {
    memset(s, 0, sizeof *s);
    s->data = data;
    s->device = LT_DEVICE_CPU;
    memset(t, 0, sizeof *t);
    t->storage = s;
    t->ndim = ndim;
    t->dtype = dtype;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    lt__contiguous_strides(t->shape, ndim, t->strides);
}

/* ---- Checks ---- */

lt_status lt__check_tensor(const char *who, const char *arg, const lt_tensor *t) {
    if (!t) return lt__err(LT_ERR_ARG, "%s: %s is NULL", who, arg);
    return LT_OK;
}

lt_status lt__check_compute_dtype(const char *who, const char *arg, const lt_tensor *t) {
    LT_TRY(lt__check_tensor(who, arg, t));
    if (t->dtype != LT_F32 && t->dtype != LT_F64)
        return lt__err(LT_ERR_DTYPE, "%s: %s has dtype %s, expected f32 or f64", who, arg, lt_dtype_name(t->dtype));
    return LT_OK;
}

lt_status lt__check_same_dtype(const char *who, const lt_tensor *a, const lt_tensor *b) {
    if (a->dtype != b->dtype)
        return lt__err(LT_ERR_DTYPE, "%s: dtypes differ (%s and %s)", who, lt_dtype_name(a->dtype),
                       lt_dtype_name(b->dtype));
    return LT_OK;
}

lt_status lt__check_same_device(const char *who, const lt_tensor *a, const lt_tensor *b) {
    lt_device x = a->storage->device, y = b->storage->device;
    if (x.type != y.type || x.index != y.index)
        return lt__err(LT_ERR_DEVICE, "%s: tensors are on different devices (%s:%d and %s:%d)", who,
                       x.type == LT_CUDA ? "cuda" : "cpu", x.index, y.type == LT_CUDA ? "cuda" : "cpu", y.index);
    return LT_OK;
}

/* ---- Creation ---- */

static lt_status lt__create(const char *who, const int64_t *shape, int ndim, lt_dtype dtype, lt_device device,
                            lt_tensor **out) {
    LT_CHECK_NOT_NULL(who, out);
    *out = NULL;
    lt__clear_error();
    return lt__tensor_alloc(who, shape, ndim, dtype, device, out);
}

LT_API lt_status lt_tensor_empty(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_tensor **out) {
    return lt__create("lt_tensor_empty", shape, ndim, dtype, device, out);
}

static lt_status lt__full(const char *who, const int64_t *shape, int ndim, double value, lt_dtype dtype,
                          lt_device device, lt_tensor **out) {
    LT_CHECK_NOT_NULL(who, out);
    *out = NULL;
    lt_tensor *t;
    LT_TRY(lt__create(who, shape, ndim, dtype, device, &t));
    lt_status st = lt__backend_of(t)->fill(t, value);
    if (st != LT_OK) {
        lt__drop(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

LT_API lt_status lt_tensor_zeros(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_tensor **out) {
    return lt__full("lt_tensor_zeros", shape, ndim, 0.0, dtype, device, out);
}

LT_API lt_status lt_tensor_ones(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_tensor **out) {
    return lt__full("lt_tensor_ones", shape, ndim, 1.0, dtype, device, out);
}

LT_API lt_status lt_tensor_full(const int64_t *shape, int ndim, double value, lt_dtype dtype, lt_device device,
                                lt_tensor **out) {
    return lt__full("lt_tensor_full", shape, ndim, value, dtype, device, out);
}

LT_API lt_status lt_tensor_arange(double start, double end, double step, lt_dtype dtype, lt_device device,
                                  lt_tensor **out) {
    static const char *fn = "lt_tensor_arange";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
        return lt__err(LT_ERR_ARG, "%s: start %g, end %g, step %g: need finite values and a non-zero step", fn, start,
                       end, step);
    double count = ceil((end - start) / step);
    if (count < 0)
        return lt__err(LT_ERR_ARG, "%s: step %g moves away from end (start %g, end %g)", fn, step, start, end);
    if (count > 9.0e15) return lt__err(LT_ERR_OOM, "%s: %g elements is too many", fn, count);
    int64_t n = (int64_t)count;
    lt_tensor *t;
    LT_TRY(lt__create(fn, &n, 1, dtype, device, &t));
    lt_status st = lt__backend_of(t)->arange(t, start, step);
    if (st != LT_OK) {
        lt__drop(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

static lt_status lt__random(const char *who, const int64_t *shape, int ndim, lt_dtype dtype, lt_device device,
                            lt_philox *rng, bool normal, lt_tensor **out) {
    LT_CHECK_NOT_NULL(who, out);
    *out = NULL;
    LT_CHECK_NOT_NULL(who, rng);
    if (!lt__is_float(dtype))
        return lt__err(LT_ERR_DTYPE, "%s: dtype %s is not a float dtype", who, lt_dtype_name(dtype));
    lt_tensor *t;
    LT_TRY(lt__create(who, shape, ndim, dtype, device, &t));
    lt_status st = lt__backend_of(t)->philox(t, rng->seed, rng->offset, normal);
    if (st != LT_OK) {
        lt__drop(t);
        return st;
    }
    rng->offset += ((uint64_t)lt__numel(shape, ndim) + 3) & ~(uint64_t)3;
    *out = t;
    return LT_OK;
}

LT_API lt_status lt_tensor_rand(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_philox *rng,
                                lt_tensor **out) {
    return lt__random("lt_tensor_rand", shape, ndim, dtype, device, rng, false, out);
}

LT_API lt_status lt_tensor_randn(const int64_t *shape, int ndim, lt_dtype dtype, lt_device device, lt_philox *rng,
                                 lt_tensor **out) {
    return lt__random("lt_tensor_randn", shape, ndim, dtype, device, rng, true, out);
}

LT_API lt_status lt_tensor_from_host(const void *data, const int64_t *shape, int ndim, lt_dtype dtype, lt_device device,
                                     lt_tensor **out) {
    static const char *fn = "lt_tensor_from_host";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    LT_CHECK_NOT_NULL(fn, data);
    lt_tensor *t, src;
    lt__storage ss;
    LT_TRY(lt__create(fn, shape, ndim, dtype, device, &t));
    lt__host_header((void *)data, shape, ndim, dtype, &ss, &src);
    lt_status st = lt__backend_of(t)->copy(t, &src);
    if (st != LT_OK) {
        lt__drop(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

LT_API lt_status lt_tensor_from_blob(void *data, const int64_t *shape, const int64_t *strides, int ndim, lt_dtype dtype,
                                     lt_device device, void (*deleter)(void *ctx), void *ctx, lt_tensor **out) {
    static const char *fn = "lt_tensor_from_blob";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    int64_t n = 0;
    LT_TRY(lt__check_shape(fn, shape, ndim, &n));
    if ((unsigned)dtype >= LT_DTYPE_COUNT) return lt__err(LT_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    const lt__backend *be;
    LT_TRY(lt__backend_for(fn, device, &be));
    if (!data && n > 0) return lt__err(LT_ERR_ARG, "%s: data is NULL for %lld elements", fn, (long long)n);
    for (int i = 0; strides && i < ndim; i++)
        if (strides[i] < 0)
            return lt__err(LT_ERR_ARG, "%s: stride %d is negative (%lld)", fn, i, (long long)strides[i]);
    return lt__tensor_wrap(data, shape, strides, ndim, dtype, device, deleter, ctx, out);
}

/* ---- Inspection ---- */

LT_API int lt_tensor_ndim(const lt_tensor *t) { return t ? t->ndim : 0; }

LT_API int64_t lt_tensor_dim(const lt_tensor *t, int dim) {
    if (!t) return -1;
    int d = dim < 0 ? dim + t->ndim : dim;
    return d >= 0 && d < t->ndim ? t->shape[d] : -1;
}

LT_API lt_status lt_tensor_shape(const lt_tensor *t, int64_t *shape) {
    lt__clear_error();
    LT_CHECK_NOT_NULL("lt_tensor_shape", t);
    LT_CHECK_NOT_NULL("lt_tensor_shape", shape);
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return LT_OK;
}

LT_API lt_status lt_tensor_strides(const lt_tensor *t, int64_t *strides) {
    lt__clear_error();
    LT_CHECK_NOT_NULL("lt_tensor_strides", t);
    LT_CHECK_NOT_NULL("lt_tensor_strides", strides);
    memcpy(strides, t->strides, sizeof(int64_t) * (size_t)t->ndim);
    return LT_OK;
}

LT_API int64_t lt_tensor_numel(const lt_tensor *t) { return t ? lt__numel(t->shape, t->ndim) : 0; }
LT_API lt_dtype lt_tensor_dtype(const lt_tensor *t) { return t ? t->dtype : LT_F32; }
LT_API lt_device lt_tensor_device(const lt_tensor *t) { return t ? t->storage->device : LT_DEVICE_CPU; }
LT_API bool lt_tensor_is_contiguous(const lt_tensor *t) { return t && lt__is_contiguous(t); }
LT_API void *lt_tensor_data(const lt_tensor *t) { return t ? lt__data(t) : NULL; }

/* ---- Copies ---- */

LT_API lt_status lt_tensor_to_host(const lt_tensor *t, void *dst, size_t nbytes) {
    static const char *fn = "lt_tensor_to_host";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    LT_CHECK_NOT_NULL(fn, dst);
    size_t want = (size_t)lt__numel(t->shape, t->ndim) * lt_dtype_size(t->dtype);
    if (nbytes != want) return lt__err(LT_ERR_ARG, "%s: nbytes is %zu, the tensor holds %zu bytes", fn, nbytes, want);
    lt_tensor host;
    lt__storage hs;
    lt__host_header(dst, t->shape, t->ndim, t->dtype, &hs, &host);
    return lt__backend_of(t)->copy(&host, t);
}

/* dst = src on any two devices (one of them the CPU when they differ); dst may be strided, src is already broadcast
 * to dst's shape. Within a device the backend copies; across devices the device backend moves data from or to a
 * contiguous host side (backend.h, copy), so a strided host side goes through a contiguous host temporary. */
static lt_status lt__copy_any(const char *who, lt_tensor *dst, const lt_tensor *src) {
    lt_device a = dst->storage->device, b = src->storage->device;
    if (a.type == b.type && a.index == b.index) return lt__backend_of(dst)->copy(dst, src);
    if (a.type != LT_CPU && b.type != LT_CPU)
        return lt__err(LT_ERR_UNSUPPORTED, "%s: copies between two GPUs (cuda:%d to cuda:%d) go through the host", who,
                       b.index, a.index);
    bool upload = b.type == LT_CPU;
    const lt_tensor *host = upload ? src : dst, *device = upload ? dst : src;
    if (lt__is_contiguous(host)) return lt__backend_of(device)->copy(dst, src);
    lt_tensor *tmp;
    LT_TRY(lt__tensor_alloc(who, host->shape, host->ndim, host->dtype, LT_DEVICE_CPU, &tmp));
    lt_status st = upload ? lt__cpu_backend.copy(tmp, src) : lt__backend_of(src)->copy(tmp, src);
    if (st == LT_OK) st = upload ? lt__backend_of(dst)->copy(dst, tmp) : lt__cpu_backend.copy(dst, tmp);
    lt__drop(tmp);
    return st;
}

LT_API lt_status lt_tensor_copy(lt_tensor *dst, const lt_tensor *src) {
    static const char *fn = "lt_tensor_copy";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, dst);
    LT_CHECK_NOT_NULL(fn, src);
    lt_tensor view;
    if (lt__broadcast_header(src, dst->shape, dst->ndim, &view) != LT_OK) {
        char x[LT_SHAPE_STR_LEN], y[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: src %s does not broadcast to dst %s", fn,
                       lt__fmt_shape(x, sizeof x, src->shape, src->ndim),
                       lt__fmt_shape(y, sizeof y, dst->shape, dst->ndim));
    }
    return lt__copy_any(fn, dst, &view);
}

static lt_status lt__to_backward(lt_node *n, const lt_tensor *gy, lt_tensor **gx) {
    lt_device device = {(int32_t)n->i[0], (int32_t)n->i[1]};
    lt_tensor *g;
    LT_TRY(lt__tensor_alloc(n->name, gy->shape, gy->ndim, n->inputs[0].dtype, device, &g));
    lt_status st = lt__copy_any(n->name, g, gy);
    if (st != LT_OK) {
        lt__drop(g);
        return st;
    }
    gx[0] = g;
    return LT_OK;
}

LT_API lt_status lt_tensor_to(const lt_tensor *t, lt_dtype dtype, lt_device device, lt_tensor **out) {
    static const char *fn = "lt_tensor_to";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    const lt__backend *be;
    LT_TRY(lt__backend_for(fn, device, &be));
    if ((unsigned)dtype >= LT_DTYPE_COUNT) return lt__err(LT_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    lt_tensor *y;
    LT_TRY(lt__tensor_alloc(fn, t->shape, t->ndim, dtype, device, &y));
    lt_status st = lt__copy_any(fn, y, t);
    if (st == LT_OK && lt__is_float(dtype) && lt__is_float(t->dtype)) {
        lt_node *n = NULL;
        st = lt__record(fn, lt__to_backward, y, (const lt_tensor *[]){t}, 1, &n);
        if (n) {
            n->i[0] = t->storage->device.type;
            n->i[1] = t->storage->device.index;
        }
    }
    if (st != LT_OK) {
        lt__drop(y);
        return st;
    }
    *out = y;
    return LT_OK;
}
