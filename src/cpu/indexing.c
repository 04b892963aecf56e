/* CPU kernels for the embedding lookup, its scatter-add, and the elementwise select of where.
 * The scatter-add splits work by columns, never by rows, so each gradient element sums its rows in index order and
 * the result is bit for bit the same on every run and thread count. */
#include "core/error.h"
#include "cpu/cpu.h"

#include <string.h>

/* Below this many elements an OpenMP fork/join costs more than the loop it would split. */
#define LT_INDEXING_MIN_PARALLEL 32768
/* Columns per scatter-add task: wide enough that two threads rarely share a cache line of gw. */
#define LT_EMBEDDING_COL_BLOCK 64

static inline int64_t index_at(const void *idx, bool i64, int64_t i) {
    return i64 ? ((const int64_t *)idx)[i] : ((const int32_t *)idx)[i];
}

lt_status lt__cpu_embedding(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y) {
    int64_t m = lt__numel(idx->shape, idx->ndim), c = w->shape[1];
    size_t row = (size_t)c * lt_dtype_size(w->dtype);
    const char *pw = lt__data(w);
    const void *pi = lt__data(idx);
    char *py = lt__data(y);
    bool i64 = idx->dtype == LT_I64;
#pragma omp parallel for schedule(static) if (m * c >= LT_INDEXING_MIN_PARALLEL)
    for (int64_t i = 0; i < m; i++) memcpy(py + (size_t)i * row, pw + (size_t)index_at(pi, i64, i) * row, row);
    return LT_OK;
}

/* gw[idx[i], c0:c1] += gy[i, c0:c1] for every i in order, one column block per task. gy may be any 2-D view. */
#define LT_DEFINE_EMBEDDING_BACKWARD(name, T)                                                                          \
    static void name(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw) {                                       \
        int64_t m = gy->shape[0], c = gy->shape[1], s0 = gy->strides[0], s1 = gy->strides[1];                          \
        int64_t blocks = (c + LT_EMBEDDING_COL_BLOCK - 1) / LT_EMBEDDING_COL_BLOCK;                                    \
        const T *g = lt__data(gy);                                                                                     \
        const void *pi = lt__data(idx);                                                                                \
        T *dst = lt__data(gw);                                                                                         \
        bool i64 = idx->dtype == LT_I64, par = blocks > 1 && m * c >= LT_INDEXING_MIN_PARALLEL;                        \
        _Pragma("omp parallel for schedule(static) if (par)") for (int64_t blk = 0; blk < blocks; blk++) {             \
            int64_t c0 = blk * LT_EMBEDDING_COL_BLOCK;                                                                 \
            int64_t c1 = c0 + LT_EMBEDDING_COL_BLOCK < c ? c0 + LT_EMBEDDING_COL_BLOCK : c;                            \
            for (int64_t i = 0; i < m; i++) {                                                                          \
                T *d = dst + index_at(pi, i64, i) * c;                                                                 \
                const T *s = g + i * s0;                                                                               \
                for (int64_t j = c0; j < c1; j++) d[j] += s[j * s1];                                                   \
            }                                                                                                          \
        }                                                                                                              \
    }

LT_DEFINE_EMBEDDING_BACKWARD(embedding_backward_f32, float)
LT_DEFINE_EMBEDDING_BACKWARD(embedding_backward_f64, double)

lt_status lt__cpu_embedding_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw) {
    if (gy->dtype == LT_F32)
        embedding_backward_f32(gy, idx, gw);
    else if (gy->dtype == LT_F64)
        embedding_backward_f64(gy, idx, gw);
    else
        return lt__err(LT_ERR_DTYPE, "lt__cpu_embedding_backward: dtype %s, expected f32 or f64",
                       lt_dtype_name(gy->dtype));
    return LT_OK;
}

/* The geometry where walks: y's shape without size-1 dims, with adjacent dims merged wherever cond, a and b all step
 * through them linearly (y is contiguous, so it always does), so broadcast masks keep long inner rows. */
typedef struct where_geom {
    int nd;
    int64_t shape[LT_MAX_DIMS];
    int64_t st[3][LT_MAX_DIMS]; /* cond, a, b */
} where_geom;

static void where_geom_init(where_geom *g, const lt_tensor *const t[3], const lt_tensor *y) {
    g->nd = 0;
    for (int d = 0; d < y->ndim; d++) {
        if (y->shape[d] == 1) continue;
        int k = g->nd;
        bool merge = k > 0;
        for (int x = 0; x < 3 && merge; x++) merge = g->st[x][k - 1] == t[x]->strides[d] * y->shape[d];
        if (merge) {
            g->shape[k - 1] *= y->shape[d];
        } else {
            g->shape[k] = y->shape[d];
            g->nd++;
        }
        for (int x = 0; x < 3; x++) g->st[x][g->nd - 1] = t[x]->strides[d];
    }
}

/* Rows of the innermost merged dim are independent: each finds its operands' offsets from its row number. The select
 * moves raw bits of the element's width, so NaN payloads and signed zeros pass through untouched. */
#define LT_DEFINE_WHERE(name, T)                                                                                       \
    static void name(const where_geom *g, const uint8_t *c, const T *a, const T *b, T *y) {                            \
        int nd = g->nd;                                                                                                \
        int64_t len = nd ? g->shape[nd - 1] : 1, rows = 1;                                                             \
        int64_t sc = nd ? g->st[0][nd - 1] : 0, sa = nd ? g->st[1][nd - 1] : 0, sb = nd ? g->st[2][nd - 1] : 0;        \
        for (int d = 0; d < nd - 1; d++) rows *= g->shape[d];                                                          \
        bool par = rows > 1 && rows * len >= LT_INDEXING_MIN_PARALLEL;                                                 \
        _Pragma("omp parallel for schedule(static) if (par)") for (int64_t r = 0; r < rows; r++) {                     \
            int64_t o[3] = {0, 0, 0}, q = r;                                                                           \
            for (int d = nd - 2; d >= 0; d--) {                                                                        \
                int64_t i = q % g->shape[d];                                                                           \
                q /= g->shape[d];                                                                                      \
                for (int x = 0; x < 3; x++) o[x] += i * g->st[x][d];                                                   \
            }                                                                                                          \
            const uint8_t *cr = c + o[0];                                                                              \
            const T *ar = a + o[1], *br = b + o[2];                                                                    \
            T *yr = y + r * len;                                                                                       \
            for (int64_t j = 0; j < len; j++) yr[j] = cr[j * sc] ? ar[j * sa] : br[j * sb];                            \
        }                                                                                                              \
    }

LT_DEFINE_WHERE(where_u32, uint32_t)
LT_DEFINE_WHERE(where_u64, uint64_t)

lt_status lt__cpu_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    if (lt__numel(y->shape, y->ndim) == 0) return LT_OK;
    where_geom g;
    where_geom_init(&g, (const lt_tensor *const[3]){cond, a, b}, y);
    if (cond->dtype != LT_U8 || a->dtype != y->dtype || b->dtype != y->dtype)
        return lt__err(LT_ERR_INTERNAL, "lt__cpu_where: cond must be u8 and a, b, y share a dtype");
    switch (lt_dtype_size(y->dtype)) {
    case 4: where_u32(&g, lt__data(cond), lt__data(a), lt__data(b), lt__data(y)); break;
    case 8: where_u64(&g, lt__data(cond), lt__data(a), lt__data(b), lt__data(y)); break;
    default: return lt__err(LT_ERR_DTYPE, "lt__cpu_where: dtype %s, expected f32 or f64", lt_dtype_name(y->dtype));
    }
    return LT_OK;
}
