/* Internal autograd: the node that an op records, and how ops record one.
 * A node references the nodes of its inputs (or, for leaves, the leaf tensors) and the tensors its backward needs;
 * it never references its own output, so the graph has no cycles and dies with the last tensor that uses it. */
#ifndef LT_AUTOGRAD_H
#define LT_AUTOGRAD_H

#include "tensor/tensor_impl.h"

typedef struct lt_node lt_node;

/* Computes the gradient of each input that needs one (lt__node_needs(n, i)) from gy, the gradient of the op's
 * output, and stores it in gx[i] (a tensor of exactly input i's shape and dtype, created in the current scope).
 * Entries left NULL mean "no gradient" (treated as zero). Called in no-grad mode. */
typedef lt_status (*lt__backward_fn)(lt_node *n, const lt_tensor *gy, lt_tensor **gx);

#define LT_NODE_MAX_SAVED 6

typedef struct lt__edge {
    lt_node *fn;     /* the input's node (retained), or NULL */
    lt_tensor *leaf; /* the input itself (retained) when it is a leaf that requires grad, or NULL */
    int ndim;        /* the input's geometry, for reshaping gradients back to it */
    int64_t shape[LT_MAX_DIMS];
    lt_dtype dtype;
} lt__edge;

struct lt_node {
    atomic_int refcount;
    const char *name; /* the public op, for messages: "lt_matmul" */
    lt__backward_fn backward;
    lt_tensor *saved[LT_NODE_MAX_SAVED]; /* detached aliases: no grad_fn, so no cycles */
    int n_saved;
    double f[4]; /* op parameters for the backward */
    int64_t i[LT_MAX_DIMS + 2];
    /* engine bookkeeping */
    bool consumed;   /* saved tensors were freed by an earlier backward */
    int pending;     /* consumers not yet processed in the current backward */
    uint64_t epoch;  /* which backward pass last visited */
    lt_tensor *grad; /* gradient accumulated for this node's output in the current backward */
    int n_inputs;
    lt__edge inputs[]; /* n_inputs entries */
};

/* Whether input i of n needs a gradient. */
static inline bool lt__node_needs(const lt_node *n, int i) { return n->inputs[i].fn || n->inputs[i].leaf; }

/* The gradient buffer that input i's gradient may be added to directly, or NULL. Non-NULL only when input i is a
 * leaf whose gradient already exists, contiguous and of the input's shape and dtype: a parameter, whose gradient is
 * a view into the flat gradient buffer. A backward that adds its result there itself (a GEMM with beta = 1, an
 * embedding's scatter-add) leaves gx[i] NULL, and the engine then has nothing left to add: this saves a temporary
 * the size of the parameter and a pass over it, per parameter and step. *overwrite says whether the gradient reads as
 * zero (lt_params_zero_grad_lazy): the backward must then write its result (beta = 0) instead of adding it; the
 * call clears that mark, so it is for a backward that will write the buffer. */
lt_tensor *lt__grad_sink(const lt_node *n, int i, bool *overwrite);
/* Where a backward writes input i's gradient: the sink when there is one (as lt__grad_sink), else a new tensor of
 * the input's shape and dtype on dev, handed to the engine in gx[i], with *overwrite true (its data is undefined). */
lt_status lt__grad_out(const lt_node *n, int i, lt_device dev, lt_tensor **gx, lt_tensor **out, bool *overwrite);
/* Leaf gradients that read as zero: lt__grad_mark_zero marks leaf's gradient (if any) so, without touching its data;
 * lt__grad_settle zero-fills a marked gradient (NULL or unmarked: nothing to do) and clears the mark, for readers. */
void lt__grad_mark_zero(lt_tensor *leaf);
lt_status lt__grad_settle(lt_tensor *grad);

/* When grad mode is on and any input requires grad, creates a node for output `out`, sets out->grad_fn and
 * out->requires_grad, and returns it in *node; otherwise *node = NULL and nothing is recorded. Inputs may contain
 * NULL (an optional argument), which never needs a gradient. */
lt_status lt__record(const char *name, lt__backward_fn backward, lt_tensor *out, const lt_tensor *const *inputs,
                     int n_inputs, lt_node **node);
/* Saves t (a detached alias of it) for the backward. At most LT_NODE_MAX_SAVED per node. */
lt_status lt__node_save(lt_node *n, const lt_tensor *t);

void lt__node_retain(lt_node *n);
void lt__node_release(lt_node *n);

/* Back-propagates gy (the shape of `out`) from out; `who` names the public caller in messages. lt_backward is this
 * with gy = 1. */
lt_status lt__backward_from(const char *who, lt_tensor *out, const lt_tensor *gy);

/* A tensor of `shape` (ndim dims) holding g summed over the dims that broadcasting added or expanded: the
 * gradient of an input that was broadcast to g's shape. Returns a new reference to g when no reduction is needed.
 * No autograd. */
lt_status lt__sum_to(const lt_tensor *g, const int64_t *shape, int ndim, lt_tensor **out);

/* True when this thread records ops. */
bool lt__grad_mode(void);

#endif
