/* CUDA embedding lookup and its deterministic scatter-add (src/cpu/indexing.c is the reference).
 *
 * Forward: a gather of rows, y[i, :] = w[idx[i], :], with the threads of a block laid out along the row (up to 256
 * columns) and the rest of the block over consecutive rows, so that every load and store is coalesced.
 *
 * Backward: gw[idx[i], :] += gy[i, :] without atomics, so the result is the same on every run, and in the CPU's
 * order of summation (each element of gw starts from its current value and adds its gy rows in index order), so the
 * two backends agree bit for bit. The indices are few (one per token), so they are read back to the host, where a
 * stable sort buckets the positions by vocabulary row; the buckets go back to the device and each warp owns one
 * (distinct row, 32-column tile): its lanes walk the row's positions in order, each summing one column in a
 * register. Tiles spread a frequent row's work over many warps; no two warps write the same element. */
#include "common.cuh"

#include <algorithm>
#include <stdlib.h>

namespace lt_cuda {
namespace {

const char *const kWho = "cuda embedding";
const char *const kBackWho = "cuda embedding_backward";

/* y[r, :] = w[idx[r], :] for r in [0, m): threadIdx.x walks the columns, threadIdx.y and the grid the rows. */
template <class T, class I> __global__ void embedding_kernel(const T *w, const I *idx, T *y, int64_t m, int64_t c) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.y + threadIdx.y; r < m; r += (int64_t)gridDim.x * blockDim.y) {
        const T *src = w + (int64_t)idx[r] * c;
        T *dst = y + r * c;
        for (int64_t j = threadIdx.x; j < c; j += blockDim.x) dst[j] = src[j];
    }
}

/* One warp (threadIdx.y of a 32-wide block) per item = (distinct row rows[b], tile t of 32 columns): each lane sums
 * gy[order[p], col] for p in [starts[b], starts[b + 1]) in order onto gw[rows[b], col]. */
template <class T>
__global__ void embedding_backward_kernel(const T *gy, int64_t s0, int64_t s1, const int64_t *rows,
                                          const int64_t *starts, const int64_t *order, int64_t items, int64_t tiles,
                                          int64_t c, T *gw) {
    for (int64_t item = blockIdx.x * (int64_t)blockDim.y + threadIdx.y; item < items;
         item += (int64_t)gridDim.x * blockDim.y) {
        const int64_t b = item / tiles, col = (item - b * tiles) * 32 + threadIdx.x;
        if (col >= c) continue;
        T *dst = gw + rows[b] * c + col;
        T acc = *dst;
        for (int64_t p = starts[b], end = starts[b + 1]; p < end; p++) acc += gy[order[p] * s0 + col * s1];
        *dst = acc;
    }
}

template <class T> lt_status launch_forward(Context &ctx, const lt_tensor *w, const lt_tensor *idx, lt_tensor *y) {
    const int64_t m = numel(idx), c = w->shape[1];
    /* columns per block: all of a short row (rounded up to a warp), at most the whole block */
    const int64_t tx = c >= kThreads ? kThreads : (c + 31) / 32 * 32;
    const int64_t ty = kThreads / tx;
    const int64_t blocks = (m + ty - 1) / ty;
    const dim3 grid((unsigned)(blocks > kMaxBlocks ? kMaxBlocks : blocks)), block((unsigned)tx, (unsigned)ty);
    if (idx->dtype == LT_I64)
        LT_LAUNCH((embedding_kernel<T, int64_t>), grid, block, 0, ctx.stream, data<T>(w), data<int64_t>(idx),
                  data<T>(y), m, c);
    else
        LT_LAUNCH((embedding_kernel<T, int32_t>), grid, block, 0, ctx.stream, data<T>(w), data<int32_t>(idx),
                  data<T>(y), m, c);
    LT_CU_LAUNCHED(kWho, "embedding_kernel");
    return LT_OK;
}

/* A malloc'd host buffer freed on every path. */
struct HostBuffer {
    void *p = nullptr;
    ~HostBuffer() { free(p); }
};

struct Entry {
    int64_t row, pos;
    bool operator<(const Entry &o) const { return row < o.row || (row == o.row && pos < o.pos); }
};

template <class T> lt_status launch_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw) {
    const int64_t m = numel(idx), c = gw->shape[1], v = gw->shape[0];
    Context &ctx = context_of(gw);
    /* the indices, read back */
    const bool i64 = idx->dtype == LT_I64;
    const size_t idx_bytes = (size_t)m * (i64 ? 8 : 4);
    HostBuffer raw, sorted, packed;
    if (!(raw.p = malloc(idx_bytes)) || !(sorted.p = malloc((size_t)m * sizeof(Entry))))
        return lt__err(LT_ERR_OOM, "%s: no host memory to bucket %lld indices", kBackWho, (long long)m);
    LT_CU(cudaMemcpyAsync(raw.p, lt__data(idx), idx_bytes, cudaMemcpyDeviceToHost, ctx.stream), kBackWho);
    LT_TRY(sync(ctx, kBackWho));
    /* positions sorted by (row, position): the buckets, each in index order */
    Entry *e = static_cast<Entry *>(sorted.p);
    for (int64_t i = 0; i < m; i++) {
        const int64_t row = i64 ? static_cast<const int64_t *>(raw.p)[i] : static_cast<const int32_t *>(raw.p)[i];
        if (row < 0 || row >= v)
            return lt__err(LT_ERR_RANGE, "%s: index %lld at position %lld is outside [0, %lld)", kBackWho,
                           (long long)row, (long long)i, (long long)v);
        e[i] = Entry{row, i};
    }
    std::sort(e, e + m);
    /* packed as [rows: n_rows][starts: n_rows + 1][order: m] int64 */
    if (!(packed.p = malloc(sizeof(int64_t) * (size_t)(3 * m + 1))))
        return lt__err(LT_ERR_OOM, "%s: no host memory to bucket %lld indices", kBackWho, (long long)m);
    int64_t *rows = static_cast<int64_t *>(packed.p), n_rows = 0;
    for (int64_t i = 0; i < m; i++)
        if (i == 0 || e[i].row != e[i - 1].row) rows[n_rows++] = e[i].row;
    int64_t *starts = rows + n_rows, *order = starts + n_rows + 1;
    for (int64_t i = 0, b = 0; i < m; i++) {
        if (i == 0 || e[i].row != e[i - 1].row) starts[b++] = i;
        order[i] = e[i].pos;
    }
    starts[n_rows] = m;
    const size_t bytes = sizeof(int64_t) * (size_t)(2 * n_rows + 1 + m);
    Scratch dev;
    LT_TRY(dev.alloc(ctx, bytes, kBackWho));
    /* From pageable memory the copy has staged the data when it returns, so the host buffer may go right after. */
    LT_CU(cudaMemcpyAsync(dev.as<void>(), packed.p, bytes, cudaMemcpyHostToDevice, ctx.stream), kBackWho);
    const int64_t *d_rows = dev.as<int64_t>(), *d_starts = d_rows + n_rows, *d_order = d_starts + n_rows + 1;
    const int64_t tiles = (c + 31) / 32, items = n_rows * tiles, warps = kThreads / 32;
    const int64_t blocks = (items + warps - 1) / warps;
    const dim3 grid((unsigned)(blocks > kMaxBlocks ? kMaxBlocks : blocks)), block(32, (unsigned)warps);
    LT_LAUNCH(embedding_backward_kernel<T>, grid, block, 0, ctx.stream, data<T>(gy), gy->strides[0], gy->strides[1],
              d_rows, d_starts, d_order, items, tiles, c, data<T>(gw));
    LT_CU_LAUNCHED(kBackWho, "embedding_backward_kernel");
    return LT_OK;
}

bool index_dtype(const lt_tensor *idx) { return idx->dtype == LT_I32 || idx->dtype == LT_I64; }

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_embedding(const lt_tensor *w, const lt_tensor *idx, lt_tensor *y) {
    return dispatch_float(w->dtype, kWho, [&](auto zero) -> lt_status {
        using T = decltype(zero);
        if (!index_dtype(idx)) return lt__err(LT_ERR_DTYPE, "%s: idx has dtype %s", kWho, lt_dtype_name(idx->dtype));
        if (numel(y) == 0) return LT_OK;
        return launch_forward<T>(context_of(y), w, idx, y);
    });
}

extern "C" lt_status lt__cuda_embedding_backward(const lt_tensor *gy, const lt_tensor *idx, lt_tensor *gw) {
    return dispatch_float(gw->dtype, kBackWho, [&](auto zero) -> lt_status {
        using T = decltype(zero);
        if (!index_dtype(idx))
            return lt__err(LT_ERR_DTYPE, "%s: idx has dtype %s", kBackWho, lt_dtype_name(idx->dtype));
        if (numel(idx) == 0 || gw->shape[1] == 0) return LT_OK;
        return launch_backward<T>(gy, idx, gw);
    });
}
