/* Named parameter sets over one flat parameter buffer and one flat gradient buffer. Parameters are views into the
 * buffers' storage, so growing the buffers swaps the storage's data pointer and every view follows. */
#include "libtrain/params.h"
#include "autograd/autograd.h"
#include "backend.h"
#include "core/error.h"

#include <string.h>

#define LT_PARAM_NAME_MAX 255

typedef struct lt__param {
    char name[LT_PARAM_NAME_MAX + 1];
    lt_tensor *t;
    bool decay;
} lt__param;

struct lt_params {
    lt_dtype dtype;
    lt_device device;
    lt_tensor *buf, *gbuf;   /* 1-D, `capacity` elements; owned */
    lt_tensor *flat, *gflat; /* 1-D views of the first `numel` elements; owned */
    int64_t numel, capacity;
    lt__param *items;
    int n, cap;
};

LT_API lt_status lt_params_create(lt_dtype dtype, lt_device device, lt_params **out) {
    static const char *fn = "lt_params_create";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    if (dtype != LT_F32 && dtype != LT_F64)
        return lt__err(LT_ERR_DTYPE, "%s: dtype %s; parameters are f32 or f64", fn, lt_dtype_name(dtype));
    const lt__backend *be;
    LT_TRY(lt__backend_for(fn, device, &be));
    lt_params *p = calloc(1, sizeof *p);
    if (!p) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
    p->dtype = dtype;
    p->device = device;
    *out = p;
    return LT_OK;
}

LT_API void lt_params_free(lt_params *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) lt_tensor_release(p->items[i].t);
    lt_tensor_release(p->flat);
    lt_tensor_release(p->gflat);
    lt_tensor_release(p->buf);
    lt_tensor_release(p->gbuf);
    free(p->items);
    free(p);
}

/* A new owned 1-D buffer of n elements: the old contents copied, the rest zero. */
static lt_status lt__grow_one(const char *fn, lt_params *p, lt_tensor *old, int64_t n, lt_tensor **out) {
    lt_tensor *t;
    LT_TRY(lt__tensor_alloc(fn, &n, 1, p->dtype, p->device, &t));
    lt__keep(t);
    const lt__backend *be = lt__backend_of(t);
    lt_status st = be->fill(t, 0.0);
    if (st == LT_OK && old && p->numel > 0) {
        lt_tensor *head, *src;
        st = lt__tensor_view_of(t, &p->numel, (const int64_t[]){1}, 1, 0, &head);
        if (st == LT_OK) st = lt__tensor_view_of(old, &p->numel, (const int64_t[]){1}, 1, 0, &src);
        if (st == LT_OK) st = be->copy(head, src);
        lt__drop(head);
        lt__drop(src);
    }
    if (st != LT_OK) {
        lt_tensor_release(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

/* Makes `into` (an existing buffer whose storage the parameter views share) take over `fresh`'s memory, and
 * `fresh` take the old memory, which is then released with it. */
static void lt__swap_storage(lt_tensor *into, lt_tensor *fresh) {
    lt__storage *a = into->storage, *b = fresh->storage;
    void *d = a->data;
    size_t nb = a->nbytes;
    a->data = b->data;
    a->nbytes = b->nbytes;
    b->data = d;
    b->nbytes = nb;
    into->shape[0] = fresh->shape[0];
    lt_tensor_release(fresh);
}

static lt_status lt__reserve(const char *fn, lt_params *p, int64_t need) {
    if (need <= p->capacity) return LT_OK;
    int64_t cap = p->capacity * 2 > need ? p->capacity * 2 : need;
    lt_tensor *b, *g;
    LT_TRY(lt__grow_one(fn, p, p->buf, cap, &b));
    lt_status st = lt__grow_one(fn, p, p->gbuf, cap, &g);
    if (st != LT_OK) {
        lt_tensor_release(b);
        return st;
    }
    if (!p->buf) {
        p->buf = b;
        p->gbuf = g;
    } else {
        lt__swap_storage(p->buf, b);
        lt__swap_storage(p->gbuf, g);
    }
    p->capacity = cap;
    return LT_OK;
}

static lt_status lt__slice_of(lt_tensor *buf, int64_t offset, const int64_t *shape, int ndim, lt_tensor **out) {
    int64_t strides[LT_MAX_DIMS];
    lt__contiguous_strides(shape, ndim, strides);
    LT_TRY(lt__tensor_view_of(buf, shape, strides, ndim, offset, out));
    lt__keep(*out);
    return LT_OK;
}

LT_API lt_status lt_params_add(lt_params *p, const char *name, const int64_t *shape, int ndim, lt_tensor **out) {
    static const char *fn = "lt_params_add";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    LT_CHECK_NOT_NULL(fn, name);
    size_t len = strlen(name);
    if (len == 0 || len > LT_PARAM_NAME_MAX)
        return lt__err(LT_ERR_ARG, "%s: name must have 1 to %d bytes, it has %zu", fn, LT_PARAM_NAME_MAX, len);
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0)
            return lt__err(LT_ERR_ARG, "%s: a parameter named '%s' exists", fn, name);
    if (ndim < 0 || ndim > LT_MAX_DIMS)
        return lt__err(LT_ERR_ARG, "%s: ndim is %d, must be in [0, %d]", fn, ndim, LT_MAX_DIMS);
    if (ndim > 0) LT_CHECK_NOT_NULL(fn, shape);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return lt__err(LT_ERR_ARG, "%s: '%s' dim %d is negative", fn, name, i);
        if (__builtin_mul_overflow(n, shape[i], &n)) return lt__err(LT_ERR_OOM, "%s: '%s' is too large", fn, name);
    }
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        lt__param *items = realloc(p->items, sizeof *items * (size_t)cap);
        if (!items) return lt__err(LT_ERR_OOM, "%s: out of memory", fn);
        p->items = items;
        p->cap = cap;
    }
    LT_TRY(lt__reserve(fn, p, p->numel + n));
    lt_tensor *t, *g, *flat, *gflat;
    int64_t total = p->numel + n;
    LT_TRY(lt__slice_of(p->buf, p->numel, shape, ndim, &t));
    lt_status st = lt__slice_of(p->gbuf, p->numel, shape, ndim, &g);
    if (st == LT_OK) st = lt__slice_of(p->buf, 0, &total, 1, &flat);
    if (st == LT_OK) st = lt__slice_of(p->gbuf, 0, &total, 1, &gflat);
    if (st != LT_OK) {
        lt_tensor_release(t);
        lt_tensor_release(g);
        return st;
    }
    t->grad = g;
    t->requires_grad = true;
    lt_tensor_release(p->flat);
    lt_tensor_release(p->gflat);
    p->flat = flat;
    p->gflat = gflat;
    p->numel = total;
    lt__param *it = &p->items[p->n++];
    memcpy(it->name, name, len + 1);
    it->t = t;
    it->decay = ndim >= 2;
    *out = t;
    return LT_OK;
}

LT_API lt_status lt_params_reserve(lt_params *p, int64_t numel) {
    static const char *fn = "lt_params_reserve";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    if (numel < 0) return lt__err(LT_ERR_ARG, "%s: numel %lld is negative", fn, (long long)numel);
    return lt__reserve(fn, p, numel);
}

LT_API int lt_params_count(const lt_params *p) { return p ? p->n : 0; }
LT_API int64_t lt_params_numel(const lt_params *p) { return p ? p->numel : 0; }

LT_API lt_status lt_params_get(const lt_params *p, int i, const char **name, lt_tensor **param) {
    static const char *fn = "lt_params_get";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    if (i < 0 || i >= p->n) return lt__err(LT_ERR_RANGE, "%s: index %d, the set has %d parameters", fn, i, p->n);
    if (name) *name = p->items[i].name;
    if (param) *param = p->items[i].t;
    return LT_OK;
}

LT_API lt_status lt_params_find(const lt_params *p, const char *name, lt_tensor **param) {
    static const char *fn = "lt_params_find";
    LT_CHECK_NOT_NULL(fn, param);
    *param = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    LT_CHECK_NOT_NULL(fn, name);
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0) {
            *param = p->items[i].t;
            return LT_OK;
        }
    return lt__err(LT_ERR_RANGE, "%s: no parameter named '%s'", fn, name);
}

LT_API lt_status lt_params_flat(const lt_params *p, lt_tensor **params, lt_tensor **grads) {
    static const char *fn = "lt_params_flat";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    if (!p->flat) return lt__err(LT_ERR_STATE, "%s: the set is empty", fn);
    if (grads) /* whoever reads the buffer sees zeros where lt_params_zero_grad_lazy left them pending */
        for (int i = 0; i < p->n; i++) LT_TRY(lt__grad_settle(p->items[i].t->grad));
    if (params) *params = p->flat;
    if (grads) *grads = p->gflat;
    return LT_OK;
}

LT_API lt_status lt_params_set_decay(lt_params *p, const char *name, bool decay) {
    static const char *fn = "lt_params_set_decay";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, p);
    LT_CHECK_NOT_NULL(fn, name);
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0) {
            p->items[i].decay = decay;
            return LT_OK;
        }
    return lt__err(LT_ERR_RANGE, "%s: no parameter named '%s'", fn, name);
}

LT_API bool lt_params_get_decay(const lt_params *p, int i) { return p && i >= 0 && i < p->n && p->items[i].decay; }

LT_API lt_status lt_params_zero_grad(lt_params *p) {
    lt__clear_error();
    LT_CHECK_NOT_NULL("lt_params_zero_grad", p);
    for (int i = 0; i < p->n; i++) p->items[i].t->grad->zero_pending = false;
    return p->gflat ? lt__backend_of(p->gflat)->fill(p->gflat, 0.0) : LT_OK;
}

LT_API lt_status lt_params_zero_grad_lazy(lt_params *p) {
    lt__clear_error();
    LT_CHECK_NOT_NULL("lt_params_zero_grad_lazy", p);
    for (int i = 0; i < p->n; i++) lt__grad_mark_zero(p->items[i].t);
    return LT_OK;
}
