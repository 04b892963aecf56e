/* CUDA causal multi-head attention over qkv [B, T, 3C], flash-style: no T x T matrix ever reaches global memory.
 *
 * Every kernel works on tiles staged in shared memory by blocks of 128 threads (4 warps). A block's rows (queries in
 * the forward and dQ, keys in dK/dV) are split into 16 row groups of R consecutive rows; the 8 consecutive lanes of a
 * row group split the columns of each score tile (8 kCols = 32 columns, lane c owning columns c, c + 8, ...) and the
 * head dims of the outputs (lane c owning dims W c .. W c + W - 1, then 8 W further on, W the elements of a 16-byte
 * vector). So each thread keeps R x kCols scores and R x DM/8 output accumulators in registers; the two products of a
 * tile are register-blocked dot products over shared memory, read a 16-byte vector at a time:
 *   dot_tile: s[i][j] = A[r0 + i] . B[c + 8 j] over the head dim (scores: q . k, and dy . v in the backward);
 *   acc_tile: acc[i][e] += sum_c M[r0 + i][c] B[c][dim(e)] (p v, ds k, p^T dy, ds^T q), M a score tile in shared
 *             memory.
 * Tiles are [rows][DM + W]: the head dim padded to DM (32, 64 or 128) with zeros, so every loop has a compile-time
 * trip count, plus W elements that put the 8 rows a row group reads on different banks. Rows past T are zeros too,
 * and scores of masked pairs are exactly 0 after the exponential, so full tiles are summed without bounds checks.
 *
 * Forward: one block per (b, h, tile of 16 R queries), the heaviest (last) tiles first; key/value tiles of 32 up to
 * the causal limit with the online softmax (running max per row, per-lane partial sums reduced at the end); writes
 * y and lse (natural log of the sum of exp of the scaled scores, as the CPU's). The scale is folded into q as it is
 * loaded.
 * Backward, deterministic (no atomics; each output element summed in a fixed order by one thread):
 *   1. Di = dy_i . y_i for every (b, h, row), one warp per row, into scratch [B, H, T];
 *   2. dK, dV: one block per (b, h, tile of 16 R keys), over the query tiles of 32 at or after it: p^T = exp(s^T -
 *      lse), ds^T = p^T (dp^T - D) from k q^T and v dy^T, then dv += p^T dy and dk += ds^T (scale q);
 *   3. dQ: one block per (b, h, tile of 16 R queries), over its key tiles of 32: p and ds as above, dq += ds k,
 *      scaled at the end.
 * Everything accumulates in the compute type (f32 for f32, as the CPU does). Head dims above 128 are refused. */
#include "common.cuh"

#include <math.h>

/* Loop unrolling, spelled for each build (the host compiler's unrolling only speeds up the emulator). */
#if defined(__CUDACC__)
#define ATT_UNROLL _Pragma("unroll")
#define ATT_UNROLL_2 _Pragma("unroll 2")
#define ATT_UNROLL_4 _Pragma("unroll 4")
#else
#define ATT_UNROLL _Pragma("GCC unroll 16")
#define ATT_UNROLL_2 _Pragma("GCC unroll 2")
#define ATT_UNROLL_4 _Pragma("GCC unroll 4")
#endif

namespace lt_cuda {
namespace {

constexpr int kThreadsA = 128;              // threads of every attention block (4 warps)
constexpr int kLanes = 8;                   // lanes of a row group
constexpr int kGroups = kThreadsA / kLanes; // row groups of a block
constexpr int kCols = 4;                    // score-tile columns per thread: tiles of 32 keys (or queries)
constexpr int kTileC = kLanes * kCols;      // columns of a score tile
constexpr int kMaxHeadDim = 128;            // the largest head dim the kernels take
constexpr size_t kDefaultSmem = 48 * 1024;  // dynamic shared memory a kernel gets without opting in

/* 16-byte vectors for shared-memory reads. */
template <class T> struct Vec;
template <> struct Vec<float> { static constexpr int n = 4; };
template <> struct Vec<double> { static constexpr int n = 2; };
__device__ inline void load_vec(const float *p, float *o) {
    float4 v = *reinterpret_cast<const float4 *>(p);
    o[0] = v.x;
    o[1] = v.y;
    o[2] = v.z;
    o[3] = v.w;
}
__device__ inline void load_vec(const double *p, double *o) {
    double2 v = *reinterpret_cast<const double2 *>(p);
    o[0] = v.x;
    o[1] = v.y;
}

__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return exp(x); }
__device__ inline float log_of(float x) { return logf(x); }
__device__ inline double log_of(double x) { return log(x); }

/* Max and sum over the 8 lanes of a row group (every lane gets the same bits: the butterfly adds each pair in both
 * orders, and + commutes exactly). All 32 lanes of the warp take part. */
template <class T> __device__ inline T group_max(T v) {
    for (int o = kLanes / 2; o > 0; o /= 2) {
        T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}
template <class T> __device__ inline T group_sum(T v) {
    for (int o = kLanes / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Rows per thread (R, 4, 2 or 1) for a kernel keeping `sets` arrays of R x DM/8 accumulators and `tiles` score tiles
 * of R x kCols in registers: the largest whose arrays take at most 96 registers for f32, 64 for f64 (whose vector
 * loads take twice the registers too). Beyond that ptxas spills. */
template <class T> constexpr int rows_per_thread(int dm, int sets, int tiles) {
    constexpr int words = (int)(sizeof(T) / 4), budget = sizeof(T) == 4 ? 96 : 64;
    int r = 4;
    while (r > 1 && r * (sets * (dm / kLanes) + tiles * kCols) * words > budget) r /= 2;
    return r;
}

/* Blocks per SM the launch bounds promise for a kernel of `smem` bytes of shared memory: what that memory allows
 * on an H100 (228 KiB an SM, 1 KiB of it reserved per block), kept within 2 and 3. It caps registers at 255 or 168
 * a thread: without it ptxas aims for fewer registers still and spills some of the accumulators. */
constexpr int min_blocks(size_t smem) {
    size_t n = 228 * 1024 / (smem + 1024);
    return n < 2 ? 2 : n > 3 ? 3 : (int)n;
}

/* The shapes shared by the kernels of a dtype T, padded head dim DM and R rows per thread. */
template <class T, int DM, int R> struct Shape {
    static constexpr int W = Vec<T>::n;
    static constexpr int E = DM / kLanes;  // output dims per thread
    static constexpr int LD = DM + W;      // row stride of a [rows][DM] tile
    static constexpr int LDM = kTileC + W; // row stride of a score tile
    static constexpr int BR = kGroups * R; // rows of a block
    static_assert(E % W == 0, "a thread's dims are whole vectors");
    __device__ static int dim(int lane, int e) { return W * lane + W * kLanes * (e / W) + e % W; }
};

/* tile[r][d] = src[r * ld + d] * mul for r < nvalid and d < D; 0 for the other rows (< ROWS) and dims (< DM).
 * Coalesced along d; unrolled so that several loads are in flight per thread. */
template <class T, int ROWS, int DM, int LD>
__device__ inline void load_tile(T *tile, const T *__restrict__ src, int64_t ld, int nvalid, int D, T mul) {
    static_assert(ROWS * DM % kThreadsA == 0, "a tile is whole rounds of the block");
    ATT_UNROLL_2
    for (int k = 0; k < ROWS * DM / kThreadsA; k++) {
        const int idx = k * kThreadsA + (int)threadIdx.x, r = idx / DM, d = idx % DM;
        tile[r * LD + d] = r < nvalid && d < D ? src[r * ld + d] * mul : T(0);
    }
}

/* s[i][j] = A[r0 + i] . B[lane + 8 j] over DM dims (tiles of row stride LD). */
template <class T, int R, int DM, int LD>
__device__ inline void dot_tile(const T *A, const T *B, int r0, int lane, T (&s)[R][kCols]) {
    constexpr int W = Vec<T>::n;
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        ATT_UNROLL
        for (int j = 0; j < kCols; j++) s[i][j] = 0;
    }
    ATT_UNROLL_2
    for (int d = 0; d < DM; d += W) {
        T a[R][W], b[kCols][W];
        ATT_UNROLL
        for (int i = 0; i < R; i++) load_vec(A + (r0 + i) * LD + d, a[i]);
        ATT_UNROLL
        for (int j = 0; j < kCols; j++) load_vec(B + (lane + kLanes * j) * LD + d, b[j]);
        ATT_UNROLL
        for (int w = 0; w < W; w++) {
            ATT_UNROLL
            for (int i = 0; i < R; i++) {
                ATT_UNROLL
                for (int j = 0; j < kCols; j++) s[i][j] += a[i][w] * b[j][w];
            }
        }
    }
}

/* acc[i][e] += sum over the kTileC columns c of M[r0 + i][c] * B[c][dim(e)] (M of row stride LDM, B of LD). */
template <class T, int R, int DM, int LD, int LDM>
__device__ inline void acc_tile(const T *M, const T *B, int r0, int lane, T (&acc)[R][DM / kLanes]) {
    constexpr int W = Vec<T>::n, E = DM / kLanes;
    ATT_UNROLL_2
    for (int c = 0; c < kTileC; c += W) {
        T m[R][W];
        ATT_UNROLL
        for (int i = 0; i < R; i++) load_vec(M + (r0 + i) * LDM + c, m[i]);
        ATT_UNROLL
        for (int w = 0; w < W; w++) {
            T b[E];
            ATT_UNROLL
            for (int v = 0; v < E / W; v++) load_vec(B + (c + w) * LD + W * lane + W * kLanes * v, b + v * W);
            ATT_UNROLL
            for (int i = 0; i < R; i++) {
                ATT_UNROLL
                for (int e = 0; e < E; e++) acc[i][e] += m[i][w] * b[e];
            }
        }
    }
}

/* The block's place: bh = b * H + h, and its tile; tiles with more work (heavier causal rows) come first when
 * `last_first`. */
struct Place {
    int64_t b, h, bh;
    int tile;
};
__device__ inline Place place_of(int n_bh, int H, int n_tiles, bool last_first) {
    Place p;
    int64_t id = blockIdx.x;
    p.bh = id % n_bh;
    p.b = p.bh / H;
    p.h = p.bh % H;
    int rank = (int)(id / n_bh);
    p.tile = last_first ? n_tiles - 1 - rank : rank;
    return p;
}

/* Shared memory of the forward and of the dQ kernel (elements): the block's rows (Q, and dy for dQ), the key and
 * value tiles, and one score tile. */
template <class T, int DM> struct FwdCfg {
    static constexpr int R = rows_per_thread<T>(DM, 1, 2);
    using S = Shape<T, DM, R>;
    static constexpr size_t fwd_elems = (size_t)S::BR * S::LD + 2 * (size_t)kTileC * S::LD + (size_t)S::BR * S::LDM;
    static constexpr size_t dq_elems = fwd_elems + (size_t)S::BR * S::LD;
    static constexpr int fwd_blocks = min_blocks(fwd_elems * sizeof(T)), dq_blocks = min_blocks(dq_elems * sizeof(T));
};

template <class T, int DM>
__global__ void __launch_bounds__(kThreadsA, FwdCfg<T, DM>::fwd_blocks)
    attention_fwd_kernel(const T *__restrict__ qkv, T *__restrict__ y, T *__restrict__ lse, int len, int H, int D,
                         int64_t C, T scale, int n_bh, int n_qt) {
    using Cfg = FwdCfg<T, DM>;
    using S = typename Cfg::S;
    constexpr int R = Cfg::R, E = S::E, LD = S::LD, LDM = S::LDM, BR = S::BR;
    LT_DYNAMIC_SHARED(T, smem);
    T *Qs = smem, *Ks = Qs + BR * LD, *Vs = Ks + kTileC * LD, *Ps = Vs + kTileC * LD;
    const Place pl = place_of(n_bh, H, n_qt, true);
    const int lane = threadIdx.x % kLanes, r0 = threadIdx.x / kLanes * R;
    const int q0 = pl.tile * BR, nq = len - q0 < BR ? len - q0 : BR, kend = q0 + nq;
    const int64_t ld = 3 * C;
    const T *base = qkv + pl.b * len * ld + pl.h * D;
    load_tile<T, BR, DM, LD>(Qs, base + q0 * ld, ld, nq, D, scale);

    T o[R][E], m[R], l[R];
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
        ATT_UNROLL
        for (int e = 0; e < E; e++) o[i][e] = 0;
    }
    for (int j0 = 0; j0 < kend; j0 += kTileC) {
        const int nk = kend - j0 < kTileC ? kend - j0 : kTileC;
        load_tile<T, kTileC, DM, LD>(Ks, base + C + j0 * ld, ld, nk, D, T(1));
        load_tile<T, kTileC, DM, LD>(Vs, base + 2 * C + j0 * ld, ld, nk, D, T(1));
        __syncthreads();
        T s[R][kCols];
        dot_tile<T, R, DM, LD>(Qs, Ks, r0, lane, s);
        const bool full = j0 + kTileC <= q0 + 1; // every row sees every key of the tile
        ATT_UNROLL
        for (int i = 0; i < R; i++) {
            const int row = q0 + r0 + i;
            T mx = -INFINITY;
            ATT_UNROLL
            for (int j = 0; j < kCols; j++) {
                if (!full && j0 + lane + kLanes * j > row) s[i][j] = -INFINITY;
                mx = s[i][j] > mx ? s[i][j] : mx;
            }
            mx = group_max(mx);
            // Finite: key 0 is in the first tile and every row sees it (rows past T see zero keys).
            const T mnew = mx > m[i] ? mx : m[i];
            const T corr = exp_of(m[i] - mnew);
            m[i] = mnew;
            T sum = 0;
            ATT_UNROLL
            for (int j = 0; j < kCols; j++) {
                const T p = exp_of(s[i][j] - mnew);
                Ps[(r0 + i) * LDM + lane + kLanes * j] = p;
                sum += p;
            }
            l[i] = l[i] * corr + sum;
            ATT_UNROLL
            for (int e = 0; e < E; e++) o[i][e] *= corr;
        }
        __syncthreads();
        acc_tile<T, R, DM, LD, LDM>(Ps, Vs, r0, lane, o);
        __syncthreads();
    }
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        const T sum = group_sum(l[i]);
        const int row = q0 + r0 + i;
        if (row >= len) continue;
        const T inv = T(1) / sum;
        T *yr = y + (pl.b * len + row) * C + pl.h * D;
        ATT_UNROLL
        for (int e = 0; e < E; e++) {
            const int d = S::dim(lane, e);
            if (d < D) yr[d] = o[i][e] * inv;
        }
        if (lane == 0) lse[pl.bh * len + row] = m[i] + log_of(sum);
    }
}

/* Di[(b H + h) T + t] = dy . y over the head's dims of row (b, t): one warp per (b, t, h), in that order. */
template <class T>
__global__ void attention_rowdot_kernel(const T *__restrict__ y, const T *__restrict__ gy, T *__restrict__ Di,
                                        int64_t rows, int len, int H, int D) {
    const int lane = threadIdx.x % 32;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
        const T *yr = y + r * D, *gr = gy + r * D;
        T acc = 0;
        for (int d = lane; d < D; d += 32) acc += yr[d] * gr[d];
        for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) {
            const int64_t bt = r / H, h = r % H, b = bt / len, t = bt % len;
            Di[(b * H + h) * len + t] = acc;
        }
    }
}

/* Shared memory of the dK/dV kernel (elements): the block's keys and values, a query and a dy tile, the p^T and
 * ds^T tiles, and the query tile's lse and D. */
template <class T, int DM> struct KvCfg {
    static constexpr int R = rows_per_thread<T>(DM, 2, 2);
    using S = Shape<T, DM, R>;
    static constexpr size_t elems =
        2 * (size_t)S::BR * S::LD + 2 * (size_t)kTileC * S::LD + 2 * (size_t)S::BR * S::LDM + 2 * (size_t)kTileC;
    static constexpr int blocks = min_blocks(elems * sizeof(T));
};

template <class T, int DM>
__global__ void __launch_bounds__(kThreadsA, KvCfg<T, DM>::blocks)
    attention_bwd_kv_kernel(const T *__restrict__ qkv, const T *__restrict__ gy, const T *__restrict__ lse,
                            const T *__restrict__ Di, T *__restrict__ g, int len, int H, int D, int64_t C, T scale,
                            int n_bh, int n_kt) {
    using Cfg = KvCfg<T, DM>;
    using S = typename Cfg::S;
    constexpr int R = Cfg::R, E = S::E, LD = S::LD, LDM = S::LDM, BR = S::BR;
    LT_DYNAMIC_SHARED(T, smem);
    T *Ks = smem, *Vs = Ks + BR * LD, *Qs = Vs + BR * LD, *Gs = Qs + kTileC * LD, *Ps = Gs + kTileC * LD;
    T *Ss = Ps + BR * LDM, *Ls = Ss + BR * LDM, *Ds = Ls + kTileC;
    const Place pl = place_of(n_bh, H, n_kt, false); // the first key tiles see the most queries
    const int lane = threadIdx.x % kLanes, r0 = threadIdx.x / kLanes * R;
    const int k0 = pl.tile * BR, nk = len - k0 < BR ? len - k0 : BR;
    const int64_t ld = 3 * C;
    const T *base = qkv + pl.b * len * ld + pl.h * D, *gbase = gy + pl.b * len * C + pl.h * D;
    const T *lrow = lse + pl.bh * len, *drow = Di + pl.bh * len;
    load_tile<T, BR, DM, LD>(Ks, base + C + k0 * ld, ld, nk, D, T(1));
    load_tile<T, BR, DM, LD>(Vs, base + 2 * C + k0 * ld, ld, nk, D, T(1));

    T dk[R][E], dv[R][E];
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        ATT_UNROLL
        for (int e = 0; e < E; e++) dk[i][e] = dv[i][e] = 0;
    }
    for (int c0 = k0 / kTileC * kTileC; c0 < len; c0 += kTileC) {
        const int nq = len - c0 < kTileC ? len - c0 : kTileC;
        load_tile<T, kTileC, DM, LD>(Qs, base + c0 * ld, ld, nq, D, scale);
        load_tile<T, kTileC, DM, LD>(Gs, gbase + c0 * C, C, nq, D, T(1));
        for (int c = threadIdx.x; c < kTileC; c += kThreadsA) {
            Ls[c] = c < nq ? lrow[c0 + c] : T(0);
            Ds[c] = c < nq ? drow[c0 + c] : T(0);
        }
        __syncthreads();
        T s[R][kCols], dp[R][kCols];
        dot_tile<T, R, DM, LD>(Ks, Qs, r0, lane, s);
        dot_tile<T, R, DM, LD>(Vs, Gs, r0, lane, dp);
        const bool full = c0 >= k0 + BR - 1 && nq == kTileC; // every query of the tile sees every key of the block
        ATT_UNROLL
        for (int i = 0; i < R; i++) {
            const int key = k0 + r0 + i;
            ATT_UNROLL
            for (int j = 0; j < kCols; j++) {
                const int c = lane + kLanes * j, q = c0 + c;
                const T p = full || (q >= key && q < len) ? exp_of(s[i][j] - Ls[c]) : T(0);
                Ps[(r0 + i) * LDM + c] = p;
                Ss[(r0 + i) * LDM + c] = p * (dp[i][j] - Ds[c]);
            }
        }
        __syncthreads();
        acc_tile<T, R, DM, LD, LDM>(Ps, Gs, r0, lane, dv);
        acc_tile<T, R, DM, LD, LDM>(Ss, Qs, r0, lane, dk);
        __syncthreads();
    }
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        const int key = k0 + r0 + i;
        if (key >= len) continue;
        T *gk = g + (pl.b * len + key) * ld + C + pl.h * D, *gv = gk + C;
        ATT_UNROLL
        for (int e = 0; e < E; e++) {
            const int d = S::dim(lane, e);
            if (d < D) {
                gk[d] = dk[i][e];
                gv[d] = dv[i][e];
            }
        }
    }
}

template <class T, int DM>
__global__ void __launch_bounds__(kThreadsA, FwdCfg<T, DM>::dq_blocks)
    attention_bwd_q_kernel(const T *__restrict__ qkv, const T *__restrict__ gy, const T *__restrict__ lse,
                           const T *__restrict__ Di, T *__restrict__ g, int len, int H, int D, int64_t C, T scale,
                           int n_bh, int n_qt) {
    using Cfg = FwdCfg<T, DM>;
    using S = typename Cfg::S;
    constexpr int R = Cfg::R, E = S::E, LD = S::LD, LDM = S::LDM, BR = S::BR;
    LT_DYNAMIC_SHARED(T, smem);
    T *Qs = smem, *Gs = Qs + BR * LD, *Ks = Gs + BR * LD, *Vs = Ks + kTileC * LD, *Ss = Vs + kTileC * LD;
    const Place pl = place_of(n_bh, H, n_qt, true);
    const int lane = threadIdx.x % kLanes, r0 = threadIdx.x / kLanes * R;
    const int q0 = pl.tile * BR, nq = len - q0 < BR ? len - q0 : BR, kend = q0 + nq;
    const int64_t ld = 3 * C;
    const T *base = qkv + pl.b * len * ld + pl.h * D;
    load_tile<T, BR, DM, LD>(Qs, base + q0 * ld, ld, nq, D, scale);
    load_tile<T, BR, DM, LD>(Gs, gy + (pl.b * len + q0) * C + pl.h * D, C, nq, D, T(1));
    T lrow[R], drow[R], dq[R][E];
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        const int row = q0 + r0 + i;
        lrow[i] = row < len ? lse[pl.bh * len + row] : T(0);
        drow[i] = row < len ? Di[pl.bh * len + row] : T(0);
        ATT_UNROLL
        for (int e = 0; e < E; e++) dq[i][e] = 0;
    }
    for (int j0 = 0; j0 < kend; j0 += kTileC) {
        const int nk = kend - j0 < kTileC ? kend - j0 : kTileC;
        load_tile<T, kTileC, DM, LD>(Ks, base + C + j0 * ld, ld, nk, D, T(1));
        load_tile<T, kTileC, DM, LD>(Vs, base + 2 * C + j0 * ld, ld, nk, D, T(1));
        __syncthreads();
        T s[R][kCols], dp[R][kCols];
        dot_tile<T, R, DM, LD>(Qs, Ks, r0, lane, s);
        dot_tile<T, R, DM, LD>(Gs, Vs, r0, lane, dp);
        const bool full = j0 + kTileC <= q0 + 1 && nq == BR; // every row (all of them real) sees every key
        ATT_UNROLL
        for (int i = 0; i < R; i++) {
            const int row = q0 + r0 + i;
            ATT_UNROLL
            for (int j = 0; j < kCols; j++) {
                const int c = lane + kLanes * j;
                const T p = full || (j0 + c <= row && row < len) ? exp_of(s[i][j] - lrow[i]) : T(0);
                Ss[(r0 + i) * LDM + c] = p * (dp[i][j] - drow[i]);
            }
        }
        __syncthreads();
        acc_tile<T, R, DM, LD, LDM>(Ss, Ks, r0, lane, dq);
        __syncthreads();
    }
    ATT_UNROLL
    for (int i = 0; i < R; i++) {
        const int row = q0 + r0 + i;
        if (row >= len) continue;
        T *gq = g + (pl.b * len + row) * ld + pl.h * D;
        ATT_UNROLL
        for (int e = 0; e < E; e++) {
            const int d = S::dim(lane, e);
            if (d < D) gq[d] = dq[i][e] * scale;
        }
    }
}

/* One call's shapes. */
struct Dims {
    int64_t B, C;
    int len, H, D;
    double scale;
};

/* src/ops has checked the public arguments; these guard the kernels' own assumptions, as the CPU's do. */
lt_status check_args(const char *who, const lt_tensor *qkv, int n_head, const lt_tensor *const *ts,
                     const int64_t (*shapes)[3], int n, Dims *d) {
    if ((qkv->dtype != LT_F32 && qkv->dtype != LT_F64) || qkv->ndim != 3 || !lt__is_contiguous(qkv) || n_head < 1 ||
        qkv->shape[2] % (3 * (int64_t)n_head) != 0)
        return lt__err(LT_ERR_INTERNAL, "%s: qkv must be contiguous f32/f64 [B, T, 3C] with C divisible by n_head",
                       who);
    for (int i = 0; i < n; i++) {
        const int64_t *s = shapes[i];
        bool ok = ts[i]->dtype == qkv->dtype && ts[i]->ndim == 3 && lt__is_contiguous(ts[i]) &&
                  ts[i]->storage->device.type == LT_CUDA && ts[i]->storage->device.index == qkv->storage->device.index;
        for (int k = 0; ok && k < 3; k++) ok = ts[i]->shape[k] == s[k];
        if (!ok)
            return lt__err(LT_ERR_INTERNAL,
                           "%s: tensor %d is not contiguous [%lld, %lld, %lld] of qkv's dtype and device", who, i,
                           (long long)s[0], (long long)s[1], (long long)s[2]);
    }
    d->B = qkv->shape[0];
    d->C = qkv->shape[2] / 3;
    d->H = n_head;
    int64_t hs = d->C / n_head, len = qkv->shape[1];
    if (hs > kMaxHeadDim)
        return lt__err(LT_ERR_UNSUPPORTED, "%s: head dim %lld (C / n_head) is over the %d the cuda kernels take", who,
                       (long long)hs, kMaxHeadDim);
    if (len > INT32_MAX / 2 || d->B * n_head > INT32_MAX)
        return lt__err(LT_ERR_UNSUPPORTED, "%s: T = %lld with B * n_head = %lld is too large for the cuda kernels", who,
                       (long long)len, (long long)(d->B * n_head));
    d->len = (int)len;
    d->D = (int)hs;
    d->scale = hs > 0 ? 1.0 / sqrt((double)hs) : 1.0;
    return LT_OK;
}

/* Blocks for n_bh heads of n_tiles tiles each, or an error when the grid would be too large. */
lt_status grid_of(const char *who, const Dims &d, int rows_per_block, unsigned *out) {
    int64_t tiles = ((int64_t)d.len + rows_per_block - 1) / rows_per_block, n = tiles * d.B * d.H;
    if (n > INT32_MAX) return lt__err(LT_ERR_UNSUPPORTED, "%s: %lld blocks are over the grid limit", who, (long long)n);
    *out = (unsigned)n;
    return LT_OK;
}

/* Lets `kernel` take `bytes` of dynamic shared memory (above the default 48 KiB it must opt in). */
template <class K> lt_status allow_smem(K kernel, size_t bytes, const char *who) {
    if (bytes <= kDefaultSmem) return LT_OK;
    LT_CU(cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int)bytes),
          who);
    return LT_OK;
}

template <class T, int DM>
lt_status launch_fwd(Context &ctx, const Dims &d, const T *qkv, T *y, T *lse, const char *who) {
    using Cfg = FwdCfg<T, DM>;
    unsigned grid = 0;
    LT_TRY(grid_of(who, d, Cfg::S::BR, &grid));
    const size_t smem = Cfg::fwd_elems * sizeof(T);
    const int n_bh = (int)(d.B * d.H), n_qt = (d.len + Cfg::S::BR - 1) / Cfg::S::BR;
    LT_TRY(allow_smem(attention_fwd_kernel<T, DM>, smem, who));
    LT_LAUNCH((attention_fwd_kernel<T, DM>), grid, kThreadsA, smem, ctx.stream, qkv, y, lse, d.len, d.H, d.D, d.C,
              (T)d.scale, n_bh, n_qt);
    LT_CU_LAUNCHED(who, "attention_fwd_kernel");
    return LT_OK;
}

template <class T, int DM>
lt_status launch_bwd(Context &ctx, const Dims &d, const T *qkv, const T *gy, const T *lse, const T *Di, T *g,
                     const char *who) {
    using Kv = KvCfg<T, DM>;
    using Q = FwdCfg<T, DM>;
    const int n_bh = (int)(d.B * d.H);
    unsigned grid = 0;
    LT_TRY(grid_of(who, d, Kv::S::BR, &grid));
    size_t smem = Kv::elems * sizeof(T);
    LT_TRY(allow_smem(attention_bwd_kv_kernel<T, DM>, smem, who));
    LT_LAUNCH((attention_bwd_kv_kernel<T, DM>), grid, kThreadsA, smem, ctx.stream, qkv, gy, lse, Di, g, d.len, d.H, d.D,
              d.C, (T)d.scale, n_bh, (d.len + Kv::S::BR - 1) / Kv::S::BR);
    LT_CU_LAUNCHED(who, "attention_bwd_kv_kernel");
    LT_TRY(grid_of(who, d, Q::S::BR, &grid));
    smem = Q::dq_elems * sizeof(T);
    LT_TRY(allow_smem(attention_bwd_q_kernel<T, DM>, smem, who));
    LT_LAUNCH((attention_bwd_q_kernel<T, DM>), grid, kThreadsA, smem, ctx.stream, qkv, gy, lse, Di, g, d.len, d.H, d.D,
              d.C, (T)d.scale, n_bh, (d.len + Q::S::BR - 1) / Q::S::BR);
    LT_CU_LAUNCHED(who, "attention_bwd_q_kernel");
    return LT_OK;
}

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse) {
    static const char *who = "cuda attention";
    Dims d;
    const int64_t B = qkv->shape[0], len = qkv->shape[1];
    const int64_t shapes[2][3] = {{B, len, qkv->shape[2] / 3}, {B, n_head, len}};
    const lt_tensor *const outs[2] = {y, lse};
    LT_TRY(check_args(who, qkv, n_head, outs, shapes, 2, &d));
    if (numel(lse) == 0) return LT_OK; // no rows (with C = 0 the rows still get their lse, y being empty)
    Context &ctx = context_of(qkv);
    return dispatch_float(qkv->dtype, who, [&](auto zero) -> lt_status {
        using T = decltype(zero);
        const T *x = data<T>(qkv);
        T *yp = data<T>(y), *lp = data<T>(lse);
        if (d.D <= 32) return launch_fwd<T, 32>(ctx, d, x, yp, lp, who);
        if (d.D <= 64) return launch_fwd<T, 64>(ctx, d, x, yp, lp, who);
        return launch_fwd<T, 128>(ctx, d, x, yp, lp, who);
    });
}

extern "C" lt_status lt__cuda_attention_backward(const lt_tensor *qkv, const lt_tensor *y, const lt_tensor *lse,
                                                 const lt_tensor *gy, int n_head, lt_tensor *gqkv) {
    static const char *who = "cuda attention_backward";
    Dims d;
    const int64_t B = qkv->shape[0], len = qkv->shape[1], C3 = qkv->shape[2];
    const int64_t shapes[4][3] = {{B, len, C3 / 3}, {B, n_head, len}, {B, len, C3 / 3}, {B, len, C3}};
    const lt_tensor *const args[4] = {y, lse, gy, gqkv};
    LT_TRY(check_args(who, qkv, n_head, args, shapes, 4, &d));
    if (numel(gqkv) == 0) return LT_OK;
    Context &ctx = context_of(qkv);
    return dispatch_float(qkv->dtype, who, [&](auto zero) -> lt_status {
        using T = decltype(zero);
        const int64_t rows = d.B * d.len * d.H;
        Scratch di;
        LT_TRY(di.alloc(ctx, (size_t)rows * sizeof(T), who));
        LT_LAUNCH(attention_rowdot_kernel<T>, blocks_for(rows * 32), kThreads, 0, ctx.stream, data<T>(y), data<T>(gy),
                  di.as<T>(), rows, d.len, d.H, d.D);
        LT_CU_LAUNCHED(who, "attention_rowdot_kernel");
        const T *x = data<T>(qkv), *gp = data<T>(gy), *lp = data<T>(lse);
        T *g = data<T>(gqkv);
        if (d.D <= 32) return launch_bwd<T, 32>(ctx, d, x, gp, lp, di.as<T>(), g, who);
        if (d.D <= 64) return launch_bwd<T, 64>(ctx, d, x, gp, lp, di.as<T>(), g, who);
        return launch_bwd<T, 128>(ctx, d, x, gp, lp, di.as<T>(), g, who);
    });
}
