/* The autograd engine: recording nodes, releasing graphs without recursion, and back-propagation in reverse
 * topological order (Kahn's algorithm over consumer counts), each node's backward inside its own scope so that
 * temporaries die as soon as the node is done. */
#include "autograd/autograd.h"

#include "backend.h"
#include "core/error.h"

#include <string.h>

static _Thread_local int lt__no_grad_depth;
static _Thread_local uint64_t lt__epoch;

bool lt__grad_mode(void) { return lt__no_grad_depth == 0; }
LT_API void lt_no_grad_begin(void) { lt__no_grad_depth++; }
LT_API void lt_no_grad_end(void) {
    if (lt__no_grad_depth > 0) lt__no_grad_depth--;
}
LT_API bool lt_grad_enabled(void) { return lt__grad_mode(); }

/* A growable stack of node pointers per thread, reused across calls so the steady state does not allocate. */
typedef struct lt__node_stack {
    lt_node **items;
    size_t n, cap;
} lt__node_stack;

static bool lt__push(lt__node_stack *s, lt_node *n) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        lt_node **items = realloc(s->items, sizeof(lt_node *) * cap);
        if (!items) return false;
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = n;
    return true;
}

/* Nodes with up to this many inputs come from a pool; larger ones (lt_cat of many tensors) from malloc. */
#define LT_POOLED_INPUTS 3
static lt__pool lt__nodes = LT__POOL_INIT(sizeof(lt_node) + sizeof(lt__edge) * LT_POOLED_INPUTS);

static lt_node *lt__node_alloc(int n_inputs) {
    size_t size = sizeof(lt_node) + sizeof(lt__edge) * (size_t)n_inputs;
    return n_inputs <= LT_POOLED_INPUTS ? lt__pool_get(&lt__nodes) : malloc(size);
}

static void lt__node_dealloc(lt_node *n) {
    if (n->n_inputs <= LT_POOLED_INPUTS)
        lt__pool_put(&lt__nodes, n);
    else
        free(n);
}

void lt__node_retain(lt_node *n) {
    if (n) atomic_fetch_add(&n->refcount, 1);
}

static void lt__node_free_saved(lt_node *n) {
    for (int i = 0; i < n->n_saved; i++) lt_tensor_release(n->saved[i]);
    n->n_saved = 0;
}

/* Freeing a node releases its inputs' nodes, which may free them in turn; a long chain would recurse once per
 * op, so dead nodes go on a per-thread list that the outermost call drains. */
static _Thread_local lt__node_stack lt__dead;
static _Thread_local bool lt__draining;

void lt__node_release(lt_node *n) {
    if (!n || atomic_fetch_sub(&n->refcount, 1) != 1) return;
    if (!lt__push(&lt__dead, n)) LT_ASSERT(!"out of memory while freeing an autograd graph");
    if (lt__draining) return;
    lt__draining = true;
    while (lt__dead.n > 0) {
        lt_node *d = lt__dead.items[--lt__dead.n];
        lt__node_free_saved(d);
        lt_tensor_release(d->grad);
        for (int i = 0; i < d->n_inputs; i++) {
            lt_tensor_release(d->inputs[i].leaf);
            lt__node_release(d->inputs[i].fn);
        }
        lt__node_dealloc(d);
    }
    lt__draining = false;
}

lt_status lt__record(const char *name, lt__backward_fn backward, lt_tensor *out, const lt_tensor *const *inputs,
                     int n_inputs, lt_node **node) {
    *node = NULL;
    if (!lt__grad_mode()) return LT_OK;
    bool any = false;
    for (int i = 0; i < n_inputs; i++) any |= inputs[i] && inputs[i]->requires_grad;
    if (!any) return LT_OK;
    lt_node *n = lt__node_alloc(n_inputs);
    if (!n) return lt__err(LT_ERR_OOM, "%s: out of memory recording the autograd graph", name);
    memset(n, 0, sizeof *n);
    atomic_init(&n->refcount, 1);
    n->name = name;
    n->backward = backward;
    n->n_inputs = n_inputs;
    for (int i = 0; i < n_inputs; i++) {
        lt__edge *e = &n->inputs[i];
        memset(e, 0, sizeof *e);
        const lt_tensor *in = inputs[i];
        if (!in) continue;
        e->ndim = in->ndim;
        memcpy(e->shape, in->shape, sizeof e->shape);
        e->dtype = in->dtype;
        if (!in->requires_grad) continue;
        if (in->grad_fn) {
            e->fn = in->grad_fn;
            lt__node_retain(e->fn);
        } else {
            e->leaf = (lt_tensor *)in;
            lt_tensor_retain(e->leaf);
        }
    }
    lt__node_release(out->grad_fn);
    out->grad_fn = n;
    out->requires_grad = true;
    *node = n;
    return LT_OK;
}

lt_status lt__node_save(lt_node *n, const lt_tensor *t) {
    LT_ASSERT(n->n_saved < LT_NODE_MAX_SAVED);
    lt_tensor *alias;
    LT_TRY(lt__tensor_alias(t, &alias));
    n->saved[n->n_saved++] = alias;
    return LT_OK;
}

lt_status lt__sum_to(const lt_tensor *g, const int64_t *shape, int ndim, lt_tensor **out) {
    *out = NULL;
    int lead = g->ndim - ndim;
    LT_ASSERT(lead >= 0);
    uint32_t mask = 0;
    int64_t kshape[LT_MAX_DIMS];
    for (int i = 0; i < g->ndim; i++) {
        bool reduce = i < lead || (shape[i - lead] == 1 && g->shape[i] != 1);
        if (reduce) mask |= 1u << i;
        kshape[i] = reduce ? 1 : g->shape[i];
    }
    if (!mask) {
        lt_tensor_retain((lt_tensor *)g);
        lt__scope_register((lt_tensor *)g);
        *out = (lt_tensor *)g;
        return LT_OK;
    }
    lt_tensor *r;
    LT_TRY(lt__tensor_alloc("lt_backward", kshape, g->ndim, g->dtype, g->storage->device, &r));
    LT_TRY(lt__backend_of(g)->reduce(LT_ROP_SUM, g, mask, r));
    int64_t strides[LT_MAX_DIMS];
    lt__contiguous_strides(shape, ndim, strides);
    return lt__tensor_view_of(r, shape, strides, ndim, r->offset, out);
}

/* sum = a + b (sum may alias a). The compute kernels take f32 and f64; bf16 and f16 gradients (of bf16 matmul
 * operands used twice) add in f32 and round once. */
static lt_status lt__add_grads(const lt_tensor *a, const lt_tensor *b, lt_tensor *sum) {
    const lt__backend *be = lt__backend_of(sum);
    if (sum->dtype == LT_F32 || sum->dtype == LT_F64) return be->binary(LT_BOP_ADD, a, b, sum);
    lt_tensor *fa, *fb = NULL;
    LT_TRY(lt__tensor_alloc("lt_backward", a->shape, a->ndim, LT_F32, a->storage->device, &fa));
    lt_status st = lt__tensor_alloc("lt_backward", b->shape, b->ndim, LT_F32, b->storage->device, &fb);
    if (st == LT_OK) st = be->copy(fa, a);
    if (st == LT_OK) st = be->copy(fb, b);
    if (st == LT_OK) st = be->binary(LT_BOP_ADD, fa, fb, fa);
    if (st == LT_OK) st = be->copy(sum, fa);
    lt__drop(fa);
    lt__drop(fb);
    return st;
}

/* grad += g for a leaf (grad = g when it reads as zero); the leaf owns its gradient (for parameters, a view into the
 * flat gradient buffer). */
static lt_status lt__accumulate_leaf(lt_tensor *leaf, const lt_tensor *g) {
    const lt__backend *be = lt__backend_of(leaf);
    if (leaf->grad && leaf->grad->zero_pending) {
        leaf->grad->zero_pending = false;
        return be->copy(leaf->grad, g);
    }
    if (!leaf->grad) {
        lt_tensor *t;
        LT_TRY(lt__tensor_alloc("lt_backward", leaf->shape, leaf->ndim, leaf->dtype, leaf->storage->device, &t));
        lt_status st = be->copy(t, g);
        if (st != LT_OK) {
            lt__drop(t);
            return st;
        }
        lt_tensor_retain(t); /* the current scope drops one reference; the leaf keeps the other */
        leaf->grad = t;
        return LT_OK;
    }
    return lt__add_grads(leaf->grad, g, leaf->grad);
}

lt_tensor *lt__grad_sink(const lt_node *n, int i, bool *overwrite) {
    const lt__edge *e = &n->inputs[i];
    lt_tensor *g = e->leaf && !e->fn ? e->leaf->grad : NULL;
    *overwrite = false;
    if (!g || g->dtype != e->dtype || g->ndim != e->ndim ||
        memcmp(g->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim) != 0 || !lt__is_contiguous(g))
        return NULL;
    *overwrite = g->zero_pending;
    g->zero_pending = false;
    return g;
}

lt_status lt__grad_out(const lt_node *n, int i, lt_device dev, lt_tensor **gx, lt_tensor **out, bool *overwrite) {
    *out = lt__grad_sink(n, i, overwrite);
    if (*out) return LT_OK;
    const lt__edge *e = &n->inputs[i];
    LT_TRY(lt__tensor_alloc(n->name, e->shape, e->ndim, e->dtype, dev, &gx[i]));
    *out = gx[i];
    *overwrite = true;
    return LT_OK;
}

void lt__grad_mark_zero(lt_tensor *leaf) {
    if (leaf->grad) leaf->grad->zero_pending = true;
}

lt_status lt__grad_settle(lt_tensor *g) {
    if (!g || !g->zero_pending) return LT_OK;
    LT_TRY(lt__backend_of(g)->fill(g, 0.0));
    g->zero_pending = false;
    return LT_OK;
}

/* A node's gradient is the sum of what its consumers send; the first contribution is kept by reference. */
static lt_status lt__accumulate_node(lt_node *n, lt_tensor *g) {
    if (!n->grad) {
        lt_tensor_retain(g);
        n->grad = g;
        return LT_OK;
    }
    lt_tensor *sum;
    LT_TRY(lt__tensor_alloc("lt_backward", g->shape, g->ndim, g->dtype, g->storage->device, &sum));
    LT_TRY(lt__add_grads(n->grad, g, sum));
    lt_tensor_retain(sum);
    lt_tensor_release(n->grad);
    n->grad = sum;
    return LT_OK;
}

static _Thread_local lt__node_stack lt__visit, lt__order;

/* Collects the nodes reachable from root and counts, for each, the edges that consume its output. */
static lt_status lt__collect(const char *who, lt_node *root, uint64_t epoch) {
    lt__visit.n = lt__order.n = 0;
    root->epoch = epoch;
    root->pending = 0;
    if (!lt__push(&lt__visit, root)) return lt__err(LT_ERR_OOM, "lt_backward: out of memory");
    while (lt__visit.n > 0) {
        lt_node *n = lt__visit.items[--lt__visit.n];
        if (n->consumed)
            return lt__err(LT_ERR_STATE, "%s: the graph through %s was already freed by an earlier backward", who,
                           n->name);
        if (!lt__push(&lt__order, n)) return lt__err(LT_ERR_OOM, "lt_backward: out of memory");
        for (int i = 0; i < n->n_inputs; i++) {
            lt_node *m = n->inputs[i].fn;
            if (!m) continue;
            if (m->epoch != epoch) {
                m->epoch = epoch;
                m->pending = 0;
                if (!lt__push(&lt__visit, m)) return lt__err(LT_ERR_OOM, "lt_backward: out of memory");
            }
            m->pending++;
        }
    }
    return LT_OK;
}

static lt_status lt__run_node(lt_node *n, lt__node_stack *ready) {
    lt_tensor *gx_small[8];
    lt_tensor **gx = n->n_inputs <= 8 ? gx_small : calloc((size_t)n->n_inputs, sizeof(lt_tensor *));
    if (!gx) return lt__err(LT_ERR_OOM, "lt_backward: out of memory");
    for (int i = 0; i < n->n_inputs; i++) gx[i] = NULL;
    lt_status st = lt__scope_begin();
    if (st != LT_OK) goto done;
    if (n->grad) { /* without one, no consumer sent a gradient: every input's is zero and stays NULL */
        lt_no_grad_begin();
        st = n->backward(n, n->grad, gx);
        lt_no_grad_end();
    }
    for (int i = 0; st == LT_OK && i < n->n_inputs; i++) {
        lt__edge *e = &n->inputs[i];
        if (gx[i] && (e->fn || e->leaf)) {
            if (gx[i]->ndim != e->ndim || memcmp(gx[i]->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim) != 0 ||
                gx[i]->dtype != e->dtype) {
                char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
                st = lt__err(LT_ERR_INTERNAL, "lt_backward: %s gave input %d a gradient of shape %s %s, expected %s %s",
                             n->name, i, lt__fmt_shape(a, sizeof a, gx[i]->shape, gx[i]->ndim),
                             lt_dtype_name(gx[i]->dtype), lt__fmt_shape(b, sizeof b, e->shape, e->ndim),
                             lt_dtype_name(e->dtype));
                break;
            }
            st = e->fn ? lt__accumulate_node(e->fn, gx[i]) : lt__accumulate_leaf(e->leaf, gx[i]);
        }
        if (e->fn && --e->fn->pending == 0 && !lt__push(ready, e->fn))
            st = lt__err(LT_ERR_OOM, "lt_backward: out of memory");
    }
    lt__scope_end();
done:
    if (gx != gx_small) free(gx);
    lt_tensor_release(n->grad);
    n->grad = NULL;
    lt__node_free_saved(n);
    n->consumed = true;
    return st;
}

static _Thread_local lt__node_stack lt__ready;

lt_status lt__backward_from(const char *who, lt_tensor *out, const lt_tensor *gy) {
    if (!out->grad_fn) {
        LT_TRY(lt__scope_begin());
        lt_status st = lt__accumulate_leaf(out, gy);
        lt__scope_end();
        return st;
    }
    lt_node *root = out->grad_fn;
    uint64_t epoch = ++lt__epoch;
    LT_TRY(lt__collect(who, root, epoch));
    lt_tensor_retain((lt_tensor *)gy);
    root->grad = (lt_tensor *)gy;
    lt__ready.n = 0;
    lt_status st = lt__push(&lt__ready, root) ? LT_OK : lt__err(LT_ERR_OOM, "lt_backward: out of memory");
    while (st == LT_OK && lt__ready.n > 0) st = lt__run_node(lt__ready.items[--lt__ready.n], &lt__ready);
    if (st != LT_OK) /* drop the partial gradients still held by nodes that never ran */
        for (size_t i = 0; i < lt__order.n; i++) {
            lt_tensor_release(lt__order.items[i]->grad);
            lt__order.items[i]->grad = NULL;
        }
    return st;
}

static lt_status lt__check_backward_root(const char *fn, const lt_tensor *out) {
    LT_CHECK_NOT_NULL(fn, out);
    if (!out->requires_grad)
        return lt__err(LT_ERR_ARG, "%s: the tensor does not require grad (no input of it required grad)", fn);
    return LT_OK;
}

LT_API lt_status lt_backward(lt_tensor *loss) {
    static const char *fn = "lt_backward";
    lt__clear_error();
    LT_TRY(lt__check_backward_root(fn, loss));
    if (lt__numel(loss->shape, loss->ndim) != 1) {
        char s[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: loss has shape %s; it must have exactly one element", fn,
                       lt__fmt_shape(s, sizeof s, loss->shape, loss->ndim));
    }
    LT_TRY(lt__scope_begin());
    lt_tensor *one;
    lt_status st = lt__tensor_alloc(fn, loss->shape, loss->ndim, loss->dtype, loss->storage->device, &one);
    if (st == LT_OK) st = lt__backend_of(one)->fill(one, 1.0);
    if (st == LT_OK) st = lt__backward_from(fn, loss, one);
    lt__scope_end();
    return st;
}

LT_API lt_status lt_backward_grad(lt_tensor *out, const lt_tensor *grad) {
    static const char *fn = "lt_backward_grad";
    lt__clear_error();
    LT_TRY(lt__check_backward_root(fn, out));
    LT_CHECK_NOT_NULL(fn, grad);
    LT_TRY(lt__check_same_device(fn, out, grad));
    if (!lt__same_shape(out, grad) || out->dtype != grad->dtype) {
        char a[LT_SHAPE_STR_LEN], b[LT_SHAPE_STR_LEN];
        return lt__err(LT_ERR_SHAPE, "%s: grad is %s %s, the tensor is %s %s", fn,
                       lt__fmt_shape(a, sizeof a, grad->shape, grad->ndim), lt_dtype_name(grad->dtype),
                       lt__fmt_shape(b, sizeof b, out->shape, out->ndim), lt_dtype_name(out->dtype));
    }
    return lt__backward_from(fn, out, grad);
}

LT_API lt_status lt_tensor_set_requires_grad(lt_tensor *t, bool requires_grad) {
    static const char *fn = "lt_tensor_set_requires_grad";
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    if (t->grad_fn)
        return lt__err(LT_ERR_ARG, "%s: the tensor is the output of %s, not a leaf; use lt_detach first", fn,
                       t->grad_fn->name);
    if (requires_grad && !lt__is_float(t->dtype))
        return lt__err(LT_ERR_DTYPE, "%s: only float tensors can require grad, this one is %s", fn,
                       lt_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return LT_OK;
}

LT_API bool lt_tensor_requires_grad(const lt_tensor *t) { return t && t->requires_grad; }

LT_API lt_status lt_tensor_grad(const lt_tensor *t, lt_tensor **out) {
    static const char *fn = "lt_tensor_grad";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    if (t->grad) {
        LT_TRY(lt__grad_settle(t->grad));
        lt_tensor_retain(t->grad);
        lt__scope_register(t->grad);
        *out = t->grad;
    }
    return LT_OK;
}

LT_API lt_status lt_tensor_zero_grad(lt_tensor *t) {
    lt__clear_error();
    LT_CHECK_NOT_NULL("lt_tensor_zero_grad", t);
    if (!t->grad) return LT_OK;
    t->grad->zero_pending = false;
    return lt__backend_of(t->grad)->fill(t->grad, 0.0);
}

LT_API lt_status lt_detach(const lt_tensor *t, lt_tensor **out) {
    static const char *fn = "lt_detach";
    LT_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    lt__clear_error();
    LT_CHECK_NOT_NULL(fn, t);
    return lt__tensor_view_of(t, t->shape, t->strides, t->ndim, t->offset, out);
}
