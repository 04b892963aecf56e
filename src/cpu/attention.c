/* CPU causal multi-head attention over qkv [B, T, 3C], flash-style: forward and backward walk key blocks with an
 * online softmax and keep only the per-row log-sum-exp, so no T x T matrix is ever stored. Deterministic: each output
 * element is summed in a fixed order by one thread, whatever the thread count. Never allocates beyond its scratch. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/fastmath.h"
#include "cpu/x86.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Each kernel exists in three builds per dtype, picked at run time: for AVX-512 with 64-byte vectors, for AVX2 + FMA
 * with 32-byte ones, and for the baseline ISA (SSE2, or NEON elsewhere) with 16-byte ones. A vector must not be wider
 * than the target's registers: GCC splits wider generic vectors through the stack, 20x slower. On Zen 4 a 512-bit FMA
 * does the work of two 256-bit ones in one slot, so the AVX-512 build halves the instructions per flop, and its 32
 * registers hold a 4 x 4-vector tile. */
#ifdef LT_CPU_X86
#define LT_AVX2 __attribute__((target("arch=x86-64-v3")))
#define LT_AVX512 __attribute__((target("arch=x86-64-v4")))
#endif
#define LT_INLINE static inline __attribute__((always_inline))

/* Rows per register tile: each loaded b vector feeds MR FMAs, and 64-row blocks split into whole tiles. */
#define MR 4
/* Keys per key block and query rows per query block: a block of K^T, V^T, p or ds (16 KiB in f32) stays in L1 while
 * every tile of the other block's rows streams past it, and per-block work (softmax bookkeeping, rescaling, copies)
 * is spread over 64 x 64 products. Both grids start at 0, so a query block meets exactly one diagonal key block. */
#define BLK 64
/* Multiply-adds below which a call runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 262144
/* Rows of qkv, y and dy lie 3C or C apart, too far for the hardware prefetchers to run ahead of a row copy; the
 * copies ask for the row PF_ROWS ahead themselves. */
#define PF_ROWS 8
static inline void prefetch_row(const void *p, int64_t nbytes) {
    for (int64_t b = 0; b < nbytes; b += 64) __builtin_prefetch((const char *)p + b);
}

/* The butterfly transpose of an L x L tile in registers (L a power of 2): stage h swaps, in each pair of rows i and
 * i + h with bit h of i clear, the lanes whose bit h is set in row i with those clear in row i + h, i.e. bit h of the
 * row index with bit h of the lane index; after the stages h = 1, 2, .., L / 2 element (r, c) sits at (c, r). TLO and
 * THI are the lane indices of the two outputs (0 .. L - 1 from row i, L .. 2L - 1 from row i + h); the % keeps the
 * indices of stages that a narrower L never runs within range. GCC 12 and clang have __builtin_shufflevector;
 * elsewhere transposes stay scalar. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define LT_SHUFFLE 1
#endif
#endif
#ifdef LT_SHUFFLE
#define SHUFFLE_ONLY(...) __VA_ARGS__
#else
#define SHUFFLE_ONLY(...)
#endif
#define TLO(L, h, c) ((((c) / (h)) % 2 == 0 ? (c) : (L) + (c) - (h)) % (2 * (L)))
#define THI(L, h, c) ((((c) / (h)) % 2 == 0 ? (c) + (h) : (L) + (c)) % (2 * (L)))
#define LANES2(F, L, h) F(L, h, 0), F(L, h, 1)
#define LANES4(F, L, h) LANES2(F, L, h), F(L, h, 2), F(L, h, 3)
#define LANES8(F, L, h) LANES4(F, L, h), F(L, h, 4), F(L, h, 5), F(L, h, 6), F(L, h, 7)
#define LANES16(F, L, h)                                                                                               \
    LANES8(F, L, h), F(L, h, 8), F(L, h, 9), F(L, h, 10), F(L, h, 11), F(L, h, 12), F(L, h, 13), F(L, h, 14),          \
        F(L, h, 15)
/* Lane selects and max for generic vectors, written with integer masks since C has no ?: for vectors. */
#define VSEL(V, m, x, y) ((V)(((m) & (__typeof__(m))(x)) | (~(m) & (__typeof__(m))(y))))
#define VMAX(V, x, y) VSEL(V, (x) > (y), x, y)
#define VADD(V, x, y) ((x) + (y))
/* One step of a horizontal reduction: lane c combines with lane c + h (mod L). */
#define ROT(L, h, c) (((c) + (h)) % (L))
#define HSTAGE(V, L, x, h, OP)                                                                                         \
    if ((L) > (h)) {                                                                                                   \
        V y = __builtin_shufflevector(x, x, LANES##L(ROT, L, h));                                                      \
        x = OP(V, x, y);                                                                                               \
    }
#define TSTAGE(V, L, x, h)                                                                                             \
    if ((L) > (h)) {                                                                                                   \
        _Pragma("GCC unroll 16") for (int i = 0; i < (L); i++) {                                                       \
            if ((i / (h)) % 2 == 0) {                                                                                  \
                V lo = x[i], hi = x[i + (h)];                                                                          \
                x[i] = __builtin_shufflevector(lo, hi, LANES##L(TLO, L, h));                                           \
                x[i + (h)] = __builtin_shufflevector(lo, hi, LANES##L(THI, L, h));                                     \
            }                                                                                                          \
        }                                                                                                              \
    }

typedef float vec16_f32 __attribute__((vector_size(64)));
typedef double vec8_f64 __attribute__((vector_size(64)));
typedef float vec8_f32 __attribute__((vector_size(32)));
typedef double vec4_f64 __attribute__((vector_size(32)));
typedef float vec4_f32 __attribute__((vector_size(16)));
typedef double vec2_f64 __attribute__((vector_size(16)));

/* Shapes of one call; hs = C / H, ld = 3C (the row stride of qkv), hsp = hs rounded up to whole vectors (the row
 * stride of the packed copies and accumulators, whose padding columns are zero or ignored). */
typedef struct attn_dims {
    int64_t B, len, C, H, hs, ld, hsp; /* len is T, the sequence length */
    double scale;
} attn_dims;

/* One instance of the kernels below (a dtype and a vector width); pointers are untyped so both dtypes share it. */
typedef struct attn_kernels {
    int64_t vl; /* elements per vector */
    void (*fwd)(const attn_dims *dm, const void *qkv, void *y, void *lse, int64_t h, int64_t qb0, int64_t qb1,
                void *scratch);
    void (*bwd)(const attn_dims *dm, const void *qkv, const void *y, const void *lse, const void *gy, int64_t h,
                void *g, void *scratch);
} attn_kernels;

/* tile: out[r][0 : N vectors] = beta[r] * in[r] + sum_k a[r * ars + k * aks] * b[k * ldb + 0 : N vectors] for the
 *   M rows r of a register tile (beta NULL: in is not read, so it may hold poison; in may be out, or a packed copy
 *   whose final sum goes straight to its place in the output). Every product of the forward
 *   and backward is a run of these: the M x N accumulators stay in registers while rows of the packed b operand
 *   stream from L1, each loaded b vector feeds M FMAs and each broadcast a element N, so the FMAs, not the loads, set
 *   the pace. The strides of a let one tile read rows of a block (ars = row stride) or its columns (aks = row stride:
 *   p^T and ds^T in the backward's dv and dk) without a transposed copy. One function per (M, N), called through a
 *   table, keeps the tails (fewer rows, fewer vectors) from multiplying the inlined copies. */
#define DEFINE_TILE(T, V, SFX, TARGET, M, N)                                                                           \
    TARGET static void tile_##SFX##_##M##N(T *out, int64_t ldo, const T *in, int64_t ldi, const T *beta, const T *a,   \
                                           int64_t ars, int64_t aks, const T *b, int64_t ldb, int64_t K) {             \
        enum { VL = sizeof(V) / sizeof(T) };                                                                           \
        V acc[M][N];                                                                                                   \
        _Pragma("GCC unroll 4") for (int r = 0; r < M; r++) {                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < N; v++) {                                                      \
                V o = {0};                                                                                             \
                if (beta) {                                                                                            \
                    memcpy(&o, in + r * ldi + v * VL, sizeof(V));                                                      \
                    o *= beta[r];                                                                                      \
                }                                                                                                      \
                acc[r][v] = o;                                                                                         \
            }                                                                                                          \
        }                                                                                                              \
        for (int64_t k = 0; k < K; k++) {                                                                              \
            V x[N];                                                                                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < N; v++) memcpy(&x[v], b + k * ldb + v * VL, sizeof(V));        \
            _Pragma("GCC unroll 4") for (int r = 0; r < M; r++) {                                                      \
                T c = a[r * ars + k * aks];                                                                            \
                _Pragma("GCC unroll 4") for (int v = 0; v < N; v++) acc[r][v] += c * x[v];                             \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 4") for (int r = 0; r < M; r++) {                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < N; v++) memcpy(out + r * ldo + v * VL, &acc[r][v], sizeof(V)); \
        }                                                                                                              \
    }

typedef void tile_fn_float(float *out, int64_t ldo, const float *in, int64_t ldi, const float *beta, const float *a,
                           int64_t ars, int64_t aks, const float *b, int64_t ldb, int64_t K);
typedef void tile_fn_double(double *out, int64_t ldo, const double *in, int64_t ldi, const double *beta,
                            const double *a, int64_t ars, int64_t aks, const double *b, int64_t ldb, int64_t K);

/* Tiles of 1 to MR rows and 1 to N vectors, N = 2 (16 registers: 8 accumulators, 2 b vectors, a broadcast) or 4
 * (32 registers: 16 accumulators, 4 b vectors, a broadcast), and their table tiles_SFX[rows - 1][vectors - 1]. */
#define DEFINE_TILES_2(T, V, SFX, TARGET)                                                                              \
    DEFINE_TILE(T, V, SFX, TARGET, 1, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 1, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 2, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 2, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 3, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 3, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 4, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 4, 2)                                                                               \
    static tile_fn_##T *const tiles_##SFX[MR][2] = {{tile_##SFX##_11, tile_##SFX##_12},                                \
                                                    {tile_##SFX##_21, tile_##SFX##_22},                                \
                                                    {tile_##SFX##_31, tile_##SFX##_32},                                \
                                                    {tile_##SFX##_41, tile_##SFX##_42}};
#define DEFINE_TILES_4(T, V, SFX, TARGET)                                                                              \
    DEFINE_TILE(T, V, SFX, TARGET, 1, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 1, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 1, 3)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 1, 4)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 2, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 2, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 2, 3)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 2, 4)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 3, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 3, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 3, 3)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 3, 4)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 4, 1)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 4, 2)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 4, 3)                                                                               \
    DEFINE_TILE(T, V, SFX, TARGET, 4, 4)                                                                               \
    static tile_fn_##T *const tiles_##SFX[MR][4] = {                                                                   \
        {tile_##SFX##_11, tile_##SFX##_12, tile_##SFX##_13, tile_##SFX##_14},                                          \
        {tile_##SFX##_21, tile_##SFX##_22, tile_##SFX##_23, tile_##SFX##_24},                                          \
        {tile_##SFX##_31, tile_##SFX##_32, tile_##SFX##_33, tile_##SFX##_34},                                          \
        {tile_##SFX##_41, tile_##SFX##_42, tile_##SFX##_43, tile_##SFX##_44}};

/* Kernels for T (the element and accumulation type), V (a vector of L elements of T), EXP (T's scalar exp), TARGET
 * (the ISA) and NV (the tile width in vectors, as DEFINE_TILES_NV made the tiles).
 *
 * mm: out[r][0 : nvec vectors] = beta[r] * out[r] + sum_k a[r * ars + k * aks] * b[k * ldb + 0 : nvec vectors] for
 *   m <= MR rows: tiles side by side; mm_to reads beta's operand from in instead.
 * transpose: kt[d * BLK + j] = k[j * ld + d] for the nk keys of a block, zero-padded to BLK columns, L x L tiles at a
 *   time in registers. Scores take K^T (and dp V^T) so that a tile's b rows run along the keys.
 * pack: n rows of hs elements at row stride ld, copied back to back at stride hsp, zero-padded. The b operands of mm
 *   are always such copies: whole vectors with no tails, and rows of qkv lie 3C apart, a stride that maps them onto a
 *   few L1 sets, which then thrash.
 * fwd_rows: query rows [i0, i0 + rows) of one (b, h), one query block: for each key block up to the diagonal, a tile
 *   of MR rows at a time: s = q k^T over the whole vectors of keys the tile's last row sees (on the diagonal block
 *   that skips the masked half but for a vector's slack), softmax_tile, o = o * corr + p v; finally y = o / l and
 *   lse = m + log(l).
 * bwd_head: one (b, h), FlashAttention-2's order: for each key block, over the query blocks that see it, rebuild
 *   p = exp(s * scale - lse) and dp = dy v^T a tile at a time, ds = p * (dp - D) * scale with D_i = dy_i . y_i
 *   computed once per head, dq += ds k; then for the whole query block dv += p^T dy and dk += ds^T q, each key tile
 *   starting at the first query that sees it. dk and dv build up in packed accumulators over the query blocks and
 *   are copied out once per key block; dq in a packed copy over the key blocks (key block 0 writes it), copied out at
 *   the end. Five products of the block's size per block pair, which is what the backward has to do without a stored
 *   p; everything else is a pass over rows. */
#define DEFINE_ATTENTION(T, V, SFX, EXP, TARGET, NV, L)                                                                \
    enum { VL_##SFX = L };                                                                                             \
    _Static_assert(sizeof(V) == L * sizeof(T), "L is the vector's length");                                            \
    static const T ones_##SFX[MR] = {1, 1, 1, 1};                                                                      \
                                                                                                                       \
    TARGET LT_INLINE void mm_to_##SFX(int64_t m, int64_t nvec, T *out, int64_t ldo, const T *in, int64_t ldi,          \
                                      const T *beta, const T *a, int64_t ars, int64_t aks, const T *b, int64_t ldb,    \
                                      int64_t K) {                                                                     \
        for (int64_t c = 0; c < nvec; c += NV) {                                                                       \
            int64_t nv = nvec - c < NV ? nvec - c : NV;                                                                \
            tiles_##SFX[m - 1][nv - 1](out + c * L, ldo, in + c * L, ldi, beta, a, ars, aks, b + c * L, ldb, K);       \
        }                                                                                                              \
    }                                                                                                                  \
    TARGET LT_INLINE void mm_##SFX(int64_t m, int64_t nvec, T *out, int64_t ldo, const T *beta, const T *a,            \
                                   int64_t ars, int64_t aks, const T *b, int64_t ldb, int64_t K) {                     \
        mm_to_##SFX(m, nvec, out, ldo, out, ldo, beta, a, ars, aks, b, ldb, K);                                        \
    }                                                                                                                  \
                                                                                                                       \
    /* Row copies a vector at a time: hs is usually whole vectors, and libc's memcpy costs a call per row. */          \
    TARGET LT_INLINE void copy_row_##SFX(T *restrict dst, const T *src, int64_t n) {                                   \
        int64_t d = 0;                                                                                                 \
        for (; d + L <= n; d += L) memcpy(dst + d, src + d, sizeof(V));                                                \
        for (; d < n; d++) dst[d] = src[d];                                                                            \
    }                                                                                                                  \
                                                                                                                       \
    TARGET LT_INLINE void transpose_##SFX(const T *k, int64_t ld, int64_t nk, int64_t hs, T *restrict kt) {            \
        int64_t j = 0;                                                                                                 \
        SHUFFLE_ONLY(for (; j + L <= nk; j += L) {                                                                     \
            int64_t d = 0;                                                                                             \
            for (; d + L <= hs; d += L) {                                                                              \
                V x[L];                                                                                                \
                _Pragma("GCC unroll 16") for (int t = 0; t < L; t++) memcpy(&x[t], k + (j + t) * ld + d, sizeof(V));   \
                TSTAGE(V, L, x, 1)                                                                                     \
                TSTAGE(V, L, x, 2)                                                                                     \
                TSTAGE(V, L, x, 4)                                                                                     \
                TSTAGE(V, L, x, 8)                                                                                     \
                _Pragma("GCC unroll 16") for (int t = 0; t < L; t++) memcpy(kt + (d + t) * BLK + j, &x[t], sizeof(V)); \
            }                                                                                                          \
            for (; d < hs; d++)                                                                                        \
                for (int t = 0; t < L; t++) kt[d * BLK + j + t] = k[(j + t) * ld + d];                                 \
        })                                                                                                             \
        for (; j < nk; j++)                                                                                            \
            for (int64_t d = 0; d < hs; d++) kt[d * BLK + j] = k[j * ld + d];                                          \
        for (int64_t d = 0; d < hs; d++)                                                                               \
            for (j = nk; j < BLK; j++) kt[d * BLK + j] = 0;                                                            \
    }                                                                                                                  \
                                                                                                                       \
    TARGET LT_INLINE void pack_##SFX(const T *x, int64_t ld, int64_t n, int64_t hs, int64_t hsp, T *restrict xp) {     \
        for (int64_t j = 0; j < n; j++) {                                                                              \
            if (j + PF_ROWS < n) prefetch_row(x + (j + PF_ROWS) * ld, hs * (int64_t)sizeof(T));                        \
            copy_row_##SFX(xp + j * hsp, x + j * ld, hs);                                                              \
            for (int64_t d = hs; d < hsp; d++) xp[j * hsp + d] = 0;                                                    \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    TARGET LT_INLINE void unpack_##SFX(const T *xp, int64_t hsp, int64_t n, int64_t hs, T *restrict x, int64_t ld) {   \
        for (int64_t j = 0; j < n; j++) copy_row_##SFX(x + j * ld, xp + j * hsp, hs);                                  \
    }                                                                                                                  \
                                                                                                                       \
    /* Horizontal max and sum of a vector, a tree of log2(L) shuffles: a scalar loop over the lanes is a chain of L    \
     * dependent adds, which cost as much as a row's exps. */                                                          \
    TARGET LT_INLINE T hmax_##SFX(V x) {                                                                               \
        SHUFFLE_ONLY(HSTAGE(V, L, x, 8, VMAX) HSTAGE(V, L, x, 4, VMAX) HSTAGE(V, L, x, 2, VMAX)                        \
                         HSTAGE(V, L, x, 1, VMAX) return x[0];)                                                        \
        T r = x[0];                                                                                                    \
        for (int v = 1; v < L; v++) r = x[v] > r ? x[v] : r;                                                           \
        return r;                                                                                                      \
    }                                                                                                                  \
    TARGET LT_INLINE T hsum_##SFX(V x) {                                                                               \
        SHUFFLE_ONLY(HSTAGE(V, L, x, 8, VADD) HSTAGE(V, L, x, 4, VADD) HSTAGE(V, L, x, 2, VADD)                        \
                         HSTAGE(V, L, x, 1, VADD) return x[0];)                                                        \
        T r = x[0];                                                                                                    \
        for (int v = 1; v < L; v++) r += x[v];                                                                         \
        return r;                                                                                                      \
    }                                                                                                                  \
                                                                                                                       \
    /* e^x on a whole vector, as lt__expf and lt__exp compute it lane by lane (the same reduction and polynomial, so   \
     * the same values), for the exponents softmax makes: x <= 0 up to rounding (anything up to 88 is right). Fewer    \
     * operations: no overflow path, no clamp (below lo the garbage that 2^n's bits make is masked to 0 at the end,    \
     * -inf included), and 2^n from the low bits of the rounding sum, so no float-to-int conversion. NaN stays NaN. */ \
    TARGET LT_INLINE V vexp_##SFX(V x) {                                                                               \
        typedef __typeof__(x < x) IV;                                                                                  \
        const bool f32 = sizeof(T) == 4;                                                                               \
        const T lo = f32 ? (T)-87.3f : (T)-708.0, magic = f32 ? (T)12582912.0f : (T)6755399441055744.0;                \
        V t = x * (f32 ? (T)1.44269504088896341f : (T)1.4426950408889634) + magic, n = t - magic, r, p;                \
        if (f32) {                                                                                                     \
            r = (x - n * (T)0.693359375f) - n * (T)-2.12194440e-4f;                                                    \
            p = (V){0} + (T)1.9875691500e-4f;                                                                          \
            p = p * r + (T)1.3981999507e-3f;                                                                           \
            p = p * r + (T)8.3334519073e-3f;                                                                           \
            p = p * r + (T)4.1665795894e-2f;                                                                           \
            p = p * r + (T)1.6666665459e-1f;                                                                           \
            p = p * r + (T)5.0000001201e-1f;                                                                           \
        } else {                                                                                                       \
            r = (x - n * (T)6.93147180369123816490e-01) - n * (T)1.90821492927058770002e-10;                           \
            p = (V){0} + (T)(1.0 / 39916800);                                                                          \
            p = p * r + (T)(1.0 / 3628800);                                                                            \
            p = p * r + (T)(1.0 / 362880);                                                                             \
            p = p * r + (T)(1.0 / 40320);                                                                              \
            p = p * r + (T)(1.0 / 5040);                                                                               \
            p = p * r + (T)(1.0 / 720);                                                                                \
            p = p * r + (T)(1.0 / 120);                                                                                \
            p = p * r + (T)(1.0 / 24);                                                                                 \
            p = p * r + (T)(1.0 / 6);                                                                                  \
            p = p * r + (T)0.5;                                                                                        \
        }                                                                                                              \
        p = p * r * r + r + 1;                                                                                         \
        IV bits = ((IV)t + (f32 ? 127 : 1023)) << (f32 ? 23 : 52); /* t's low bits hold n: 2^n's exponent field */     \
        V y = (V)((IV)(p * (V)bits) & ~(x < lo));                                                                      \
        return VSEL(V, x != x, x, y);                                                                                  \
    }                                                                                                                  \
                                                                                                                       \
    /* The online-softmax step for the mr rows of a score tile s (rows BLK apart, ns columns computed): row r sees the \
     * first lim = min(first + r, nk) keys. For each row the new running max m, the factor corr = exp(m_old - m_new)   \
     * that rescales the row's earlier sums, s overwritten with p = exp(s * scale - m) (0 past lim), and               \
     * l = l * corr + sum(p). */                                                                                       \
    TARGET LT_INLINE void softmax_tile_##SFX(T *s, int64_t mr, int64_t first, int64_t nk, int64_t ns, T scale, T *m,   \
                                             T *l, T *corr) {                                                          \
        /* Phase by phase over the rows, so that the rows' reduction chains (max, tree, exp, sum, tree) run side by    \
         * side instead of one row's latency after another's. */                                                       \
        V iota, x, mx[MR], sum[MR];                                                                                    \
        T mnew[MR];                                                                                                    \
        int64_t lim[MR];                                                                                               \
        for (int v = 0; v < L; v++) iota[v] = (T)v;                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                                                         \
            lim[r] = first + r < nk ? first + r : nk;                                                                  \
            mx[r] = (V){0} - (T)INFINITY;                                                                              \
            sum[r] = (V){0};                                                                                           \
            mnew[r] = 0;                                                                                               \
        }                                                                                                              \
        for (int64_t j0 = 0; j0 < ns; j0 += L) {                                                                       \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) if (r < mr) {                                         \
                memcpy(&x, s + r * BLK + j0, sizeof(V));                                                               \
                if (j0 + L > lim[r]) x = VSEL(V, iota + (T)j0 < (T)lim[r], x, (V){0} - (T)INFINITY);                   \
                mx[r] = VMAX(V, mx[r], x);                                                                             \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) if (r < mr) {                                             \
            T rm = hmax_##SFX(mx[r]) * scale;                                                                          \
            mnew[r] = rm > m[r] ? rm : m[r];                                                                           \
        }                                                                                                              \
        for (int64_t j0 = 0; j0 < ns; j0 += L) {                                                                       \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) if (r < mr) {                                         \
                memcpy(&x, s + r * BLK + j0, sizeof(V));                                                               \
                x = vexp_##SFX(x * scale - mnew[r]);                                                                   \
                if (j0 + L > lim[r]) x = VSEL(V, iota + (T)j0 < (T)lim[r], x, (V){0});                                 \
                memcpy(s + r * BLK + j0, &x, sizeof(V));                                                               \
                sum[r] += x;                                                                                           \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) if (r < mr) {                                             \
            corr[r] = mnew[r] == m[r] ? 1 : EXP(m[r] - mnew[r]); /* the max seldom moves after the first blocks */     \
            l[r] = l[r] * corr[r] + hsum_##SFX(sum[r]);                                                                \
            m[r] = mnew[r];                                                                                            \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* The first n keys and values of one (b, h) laid out for the forward and shared by all its query blocks: kt holds \
     * K^T block by block ([n / BLK][hs][BLK], zero past n), vp the value rows ([n][hsp]). */                          \
    TARGET LT_INLINE void fwd_pack_##SFX(const attn_dims *dm, const T *qkv, int64_t h, int64_t n, T *kt, T *vp) {      \
        int64_t hs = dm->hs, ld = dm->ld;                                                                              \
        const T *k = qkv + dm->C + h * hs;                                                                             \
        for (int64_t j0 = 0; j0 < n; j0 += BLK)                                                                        \
            transpose_##SFX(k + j0 * ld, ld, n - j0 < BLK ? n - j0 : BLK, hs, kt + j0 * hs);                           \
        pack_##SFX(qkv + 2 * dm->C + h * hs, ld, n, hs, dm->hsp, vp);                                                  \
    }                                                                                                                  \
                                                                                                                       \
    TARGET LT_INLINE void fwd_rows_##SFX(const attn_dims *dm, const T *qkv, const T *kt, const T *vp, T *y, T *lse,    \
                                         int64_t h, int64_t i0, int64_t rows, T *scratch) {                            \
        enum { VL = VL_##SFX };                                                                                        \
        int64_t hs = dm->hs, hsp = dm->hsp, ld = dm->ld, C = dm->C, end = i0 + rows;                                   \
        T scale = (T)dm->scale, m[BLK], l[BLK], corr[MR];                                                              \
        T *o = scratch, *s = o + BLK * hsp, *qp = s + MR * BLK;                                                        \
        pack_##SFX(qkv + i0 * ld + h * hs, ld, rows, hs, hs, qp);                                                      \
        for (int64_t i = 0; i < rows; i++) m[i] = -INFINITY, l[i] = 0;                                                 \
        for (int64_t j0 = 0; j0 < end; j0 += BLK) {                                                                    \
            int64_t nk = end - j0 < BLK ? end - j0 : BLK;                                                              \
            const T *ktb = kt + j0 * hs, *vb = vp + j0 * hsp;                                                          \
            for (int64_t i = 0; i < rows; i += MR) {                                                                   \
                int64_t mr = rows - i < MR ? rows - i : MR, need = i0 + i + mr - j0 < nk ? i0 + i + mr - j0 : nk;      \
                int64_t nvs = (need + VL - 1) / VL;                                                                    \
                mm_##SFX(mr, nvs, s, BLK, NULL, qp + i * hs, hs, 1, ktb, BLK, hs);                                     \
                softmax_tile_##SFX(s, mr, i0 + i - j0 + 1, nk, nvs * VL, scale, m + i, l + i, corr);                   \
                mm_##SFX(mr, hsp / VL, o + i * hsp, hsp, j0 == 0 ? NULL : corr, s, BLK, 1, vb, hsp, need);             \
            }                                                                                                          \
        }                                                                                                              \
        for (int64_t i = 0; i < rows; i++) {                                                                           \
            T inv = 1 / l[i], *yr = y + (i0 + i) * C + h * hs, *orow = o + i * hsp;                                    \
            int64_t d = 0;                                                                                             \
            for (; d + L <= hs; d += L) {                                                                              \
                V x;                                                                                                   \
                memcpy(&x, orow + d, sizeof(V));                                                                       \
                x *= inv;                                                                                              \
                memcpy(yr + d, &x, sizeof(V));                                                                         \
            }                                                                                                          \
            for (; d < hs; d++) yr[d] = orow[d] * inv;                                                                 \
            lse[i0 + i] = m[i] + (T)log((double)l[i]);                                                                 \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* Query blocks [qb0, qb1) of one (b, h): its keys and values up to the last of those rows are packed into this    \
     * thread's scratch, where they stay in L2 while every query block reads them. */                                  \
    TARGET LT_INLINE void fwd_chunk_##SFX(const attn_dims *dm, const T *qkv, T *y, T *lse, int64_t h, int64_t qb0,     \
                                          int64_t qb1, T *scratch) {                                                   \
        int64_t n = dm->len, end = qb1 * BLK < n ? qb1 * BLK : n;                                                      \
        T *kt = scratch, *vp = kt + (n + BLK - 1) / BLK * BLK * dm->hs, *rest = vp + n * dm->hsp;                      \
        fwd_pack_##SFX(dm, qkv, h, end, kt, vp);                                                                       \
        for (int64_t qb = qb0; qb < qb1; qb++) {                                                                       \
            int64_t i0 = qb * BLK, rows = n - i0 < BLK ? n - i0 : BLK;                                                 \
            fwd_rows_##SFX(dm, qkv, kt, vp, y, lse, h, i0, rows, rest);                                                \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* For the mr rows of a tile (BLK apart; row r sees lim = min(first + r, nk) keys, ns columns computed): p =       \
     * exp(s * scale - lse) (0 past lim) over s, ds = p * (dp - D) * scale over dp; then zeros up to the block's keys  \
     * in whole vectors, which dv's and dk's tiles read down a column. */                                              \
    TARGET LT_INLINE void grad_tile_##SFX(T *p, T *ds, int64_t mr, int64_t first, int64_t nk, int64_t ns, T scale,     \
                                          const T *lse, const T *D) {                                                  \
        int64_t nkr = (nk + L - 1) / L * L;                                                                            \
        V iota;                                                                                                        \
        for (int v = 0; v < L; v++) iota[v] = (T)v;                                                                    \
        for (int64_t r = 0; r < mr; r++) {                                                                             \
            T *pr = p + r * BLK, *dr = ds + r * BLK;                                                                   \
            int64_t lim = first + r < nk ? first + r : nk;                                                             \
            for (int64_t j0 = 0; j0 < ns; j0 += L) {                                                                   \
                V x, g;                                                                                                \
                memcpy(&x, pr + j0, sizeof(V));                                                                        \
                memcpy(&g, dr + j0, sizeof(V));                                                                        \
                x = vexp_##SFX(x * scale - lse[r]);                                                                    \
                if (j0 + L > lim) x = VSEL(V, iota + (T)j0 < (T)lim, x, (V){0});                                       \
                g = x * (g - D[r]) * scale;                                                                            \
                memcpy(pr + j0, &x, sizeof(V));                                                                        \
                memcpy(dr + j0, &g, sizeof(V));                                                                        \
            }                                                                                                          \
            for (int64_t j0 = ns; j0 < nkr; j0 += L) {                                                                 \
                memset(pr + j0, 0, sizeof(V));                                                                         \
                memset(dr + j0, 0, sizeof(V));                                                                         \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    TARGET LT_INLINE void bwd_head_##SFX(const attn_dims *dm, const T *qkv, const T *y, const T *lse, const T *gy,     \
                                         int64_t h, T *g, T *scratch) {                                                \
        enum { VL = VL_##SFX };                                                                                        \
        int64_t n = dm->len, hs = dm->hs, hsp = dm->hsp, ld = dm->ld, C = dm->C, nh = hsp / VL;                        \
        const T *q = qkv + h * hs, *k = qkv + C + h * hs, *v = qkv + 2 * C + h * hs;                                   \
        T *dq = g + h * hs, *dk = g + C + h * hs, *dv = g + 2 * C + h * hs, scale = (T)dm->scale;                      \
        T *qp = scratch, *kp = qp + n * hsp, *gp = kp + n * hsp, *dqp = gp + n * hsp, *dkp = dqp + n * hsp;            \
        T *dvp = dkp + BLK * hsp, *kt = dvp + BLK * hsp, *vt = kt + hs * BLK, *p = vt + hs * BLK, *ds = p + BLK * BLK; \
        T *D = ds + BLK * BLK;                                                                                         \
        /* With whole-vector rows, each final sum is stored straight into gqkv by the tile that completes it, spread   \
         * through the work rather than in copy passes at the end; otherwise the tiles would write the padding over    \
         * the next head's columns, and the packed copies are copied out. */                                           \
        bool direct = hs == hsp;                                                                                       \
        y += h * hs;                                                                                                   \
        gy += h * hs;                                                                                                  \
        pack_##SFX(q, ld, n, hs, hsp, qp);                                                                             \
        pack_##SFX(k, ld, n, hs, hsp, kp);                                                                             \
        pack_##SFX(gy, C, n, hs, hsp, gp);                                                                             \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T acc = 0;                                                                                                 \
            const T *gr = gy + i * C, *yr = y + i * C;                                                                 \
            if (i + PF_ROWS < n) prefetch_row(yr + PF_ROWS * C, hs * (int64_t)sizeof(T));                              \
            _Pragma("omp simd reduction(+ : acc)") for (int64_t d = 0; d < hs; d++) acc += gr[d] * yr[d];              \
            D[i] = acc;                                                                                                \
        }                                                                                                              \
        for (int64_t j0 = 0; j0 < n; j0 += BLK) {                                                                      \
            int64_t nk = n - j0 < BLK ? n - j0 : BLK;                                                                  \
            transpose_##SFX(kp + j0 * hsp, hsp, nk, hs, kt);                                                           \
            transpose_##SFX(v + j0 * ld, ld, nk, hs, vt);                                                              \
            for (int64_t i0 = j0; i0 < n; i0 += BLK) {                                                                 \
                int64_t rows = n - i0 < BLK ? n - i0 : BLK;                                                            \
                for (int64_t i = 0; i < rows; i += MR) {                                                               \
                    int64_t r0 = i0 + i, mr = rows - i < MR ? rows - i : MR;                                           \
                    int64_t need = r0 + mr - j0 < nk ? r0 + mr - j0 : nk, nvs = (need + VL - 1) / VL;                  \
                    mm_##SFX(mr, nvs, p + i * BLK, BLK, NULL, qp + r0 * hsp, hsp, 1, kt, BLK, hs);                     \
                    mm_##SFX(mr, nvs, ds + i * BLK, BLK, NULL, gp + r0 * hsp, hsp, 1, vt, BLK, hs);                    \
                    grad_tile_##SFX(p + i * BLK, ds + i * BLK, mr, r0 - j0 + 1, nk, nvs * VL, scale, lse + r0,         \
                                    D + r0);                                                                           \
                    T *dqo = direct && i0 == j0 ? dq + r0 * ld : dqp + r0 * hsp; /* the last key block it sees */      \
                    mm_to_##SFX(mr, nh, dqo, direct &&i0 == j0 ? ld : hsp, dqp + r0 * hsp, hsp,                        \
                                j0 == 0 ? NULL : ones_##SFX, ds + i * BLK, BLK, 1, kp + j0 * hsp, hsp, need);          \
                }                                                                                                      \
                const T *beta = i0 == j0 ? NULL : ones_##SFX;                                                          \
                bool last = direct && i0 + BLK >= n; /* the last query block: dk and dv go to their place */           \
                T *dko = last ? dk + j0 * ld : dkp, *dvo = last ? dv + j0 * ld : dvp;                                  \
                int64_t ldo = last ? ld : hsp;                                                                         \
                for (int64_t j = 0; j < nk; j += MR) {                                                                 \
                    int64_t mr = nk - j < MR ? nk - j : MR, ks = j0 + j > i0 ? j0 + j - i0 : 0;                        \
                    mm_to_##SFX(mr, nh, dvo + j * ldo, ldo, dvp + j * hsp, hsp, beta, p + ks * BLK + j, 1, BLK,        \
                                gp + (i0 + ks) * hsp, hsp, rows - ks);                                                 \
                    mm_to_##SFX(mr, nh, dko + j * ldo, ldo, dkp + j * hsp, hsp, beta, ds + ks * BLK + j, 1, BLK,       \
                                qp + (i0 + ks) * hsp, hsp, rows - ks);                                                 \
                }                                                                                                      \
            }                                                                                                          \
            if (!direct) {                                                                                             \
                unpack_##SFX(dkp, hsp, nk, hs, dk + j0 * ld, ld);                                                      \
                unpack_##SFX(dvp, hsp, nk, hs, dv + j0 * ld, ld);                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if (!direct) unpack_##SFX(dqp, hsp, n, hs, dq, ld);                                                            \
    }                                                                                                                  \
                                                                                                                       \
    TARGET static void fwd_entry_##SFX(const attn_dims *dm, const void *qkv, void *y, void *lse, int64_t h,            \
                                       int64_t qb0, int64_t qb1, void *scratch) {                                      \
        fwd_chunk_##SFX(dm, qkv, y, lse, h, qb0, qb1, scratch);                                                        \
    }                                                                                                                  \
    TARGET static void bwd_entry_##SFX(const attn_dims *dm, const void *qkv, const void *y, const void *lse,           \
                                       const void *gy, int64_t h, void *g, void *scratch) {                            \
        bwd_head_##SFX(dm, qkv, y, lse, gy, h, g, scratch);                                                            \
    }                                                                                                                  \
    static const attn_kernels kernels_##SFX = {VL_##SFX, fwd_entry_##SFX, bwd_entry_##SFX};

DEFINE_TILES_2(float, vec4_f32, f32_base, )
DEFINE_TILES_2(double, vec2_f64, f64_base, )
DEFINE_ATTENTION(float, vec4_f32, f32_base, lt__expf, , 2, 4)
DEFINE_ATTENTION(double, vec2_f64, f64_base, lt__exp, , 2, 2)
#ifdef LT_CPU_X86
DEFINE_TILES_2(float, vec8_f32, f32_avx2, LT_AVX2)
DEFINE_TILES_2(double, vec4_f64, f64_avx2, LT_AVX2)
DEFINE_ATTENTION(float, vec8_f32, f32_avx2, lt__expf, LT_AVX2, 2, 8)
DEFINE_ATTENTION(double, vec4_f64, f64_avx2, lt__exp, LT_AVX2, 2, 4)
DEFINE_TILES_4(float, vec16_f32, f32_avx512, LT_AVX512)
DEFINE_TILES_4(double, vec8_f64, f64_avx512, LT_AVX512)
DEFINE_ATTENTION(float, vec16_f32, f32_avx512, lt__expf, LT_AVX512, 4, 16)
DEFINE_ATTENTION(double, vec8_f64, f64_avx512, lt__exp, LT_AVX512, 4, 8)
#endif

/* The best build this CPU runs. */
static const attn_kernels *kernels_for(bool f64) {
#ifdef LT_CPU_X86
    if (lt__cpu_x86_64_v4()) return f64 ? &kernels_f64_avx512 : &kernels_f32_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return f64 ? &kernels_f64_avx2 : &kernels_f32_avx2;
#endif
    return f64 ? &kernels_f64_base : &kernels_f32_base;
}

/* Scratch per thread, in bytes rounded up to whole cache lines (no two threads share one): the forward's K^T blocks
 * and values of one (b, h), output accumulators, score tile and packed query block; the backward's packed q, k, dy
 * and dq, dk and dv accumulators, K^T and V^T blocks, p and ds blocks and D. */
static size_t fwd_scratch(const attn_dims *d, size_t es) {
    int64_t n = (d->len + BLK - 1) / BLK * BLK * d->hs + d->len * d->hsp + BLK * d->hsp + MR * BLK + BLK * d->hs;
    return ((size_t)n * es + 63) / 64 * 64;
}

static size_t bwd_scratch(const attn_dims *d, size_t es) {
    int64_t n = 4 * d->len * d->hsp + 2 * BLK * d->hsp + 2 * d->hs * BLK + 2 * BLK * BLK + d->len;
    return ((size_t)n * es + 63) / 64 * 64;
}

/* src/ops has checked everything; these guard the kernel's own assumptions (a bad internal caller, a backend test). */
static lt_status check_args(const char *who, const lt_tensor *qkv, int n_head, const lt_tensor *const *ts,
                            const int64_t (*shapes)[3], int n, attn_dims *d) {
    if ((qkv->dtype != LT_F32 && qkv->dtype != LT_F64) || qkv->ndim != 3 || !lt__is_contiguous(qkv) || n_head < 1 ||
        qkv->shape[2] % (3 * (int64_t)n_head) != 0)
        return lt__err(LT_ERR_INTERNAL, "%s: qkv must be contiguous f32/f64 [B, T, 3C] with C divisible by n_head",
                       who);
    d->B = qkv->shape[0];
    d->len = qkv->shape[1];
    d->C = qkv->shape[2] / 3;
    d->H = n_head;
    d->hs = d->C / n_head;
    d->ld = 3 * d->C;
    d->hsp = d->hs;
    d->scale = d->hs > 0 ? 1.0 / sqrt((double)d->hs) : 1.0;
    for (int i = 0; i < n; i++) {
        const int64_t *s = shapes[i];
        bool ok = ts[i]->dtype == qkv->dtype && ts[i]->ndim == 3 && lt__is_contiguous(ts[i]);
        for (int k = 0; ok && k < 3; k++) ok = ts[i]->shape[k] == s[k];
        if (!ok)
            return lt__err(LT_ERR_INTERNAL, "%s: tensor %d is not contiguous [%lld, %lld, %lld] of qkv's dtype", who, i,
                           (long long)s[0], (long long)s[1], (long long)s[2]);
    }
    return LT_OK;
}

/* Scratch from the caching allocator, so that a training step's steady state does not call malloc. */
static lt_status scratch_alloc(const char *who, size_t nbytes, void **out) {
    lt__allocator *a = lt__cpu_allocator(0);
    if (!a) return lt__err(LT_ERR_OOM, "%s: no CPU allocator", who);
    return lt__alloc(a, nbytes, who, out);
}

/* The first query block of chunk c when each (b, h)'s nqb query blocks are cut into nch chunks of about equal work
 * (query block q sees q + 1 key blocks, so the first q cost q (q + 1) / 2). */
static int64_t chunk_start(int64_t nqb, int64_t nch, int64_t c) {
    double work = (double)c / (double)nch * (double)nqb * (double)(nqb + 1);
    int64_t q = 0;
    while (q < nqb && (double)q * (double)(q + 1) < work) q++;
    return q;
}

lt_status lt__cpu_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse) {
    static const char *who = "cpu attention";
    attn_dims d;
    int64_t B = qkv->shape[0], T = qkv->shape[1];
    const int64_t shapes[2][3] = {{B, T, qkv->shape[2] / 3}, {B, n_head, T}};
    LT_TRY(check_args(who, qkv, n_head, (const lt_tensor *[]){y, lse}, shapes, 2, &d));
    if (B == 0 || T == 0) return LT_OK;
    const attn_kernels *kn = kernels_for(qkv->dtype == LT_F64);
    d.hsp = (d.hs + kn->vl - 1) / kn->vl * kn->vl;
    size_t es = lt_dtype_size(qkv->dtype), per = fwd_scratch(&d, es);
    int threads = omp_get_max_threads();
    char *scratch;
    LT_TRY(scratch_alloc(who, per * (size_t)threads, (void **)&scratch));
    const char *xp = lt__data(qkv);
    char *yp = lt__data(y), *lp = lt__data(lse);
    /* A task is a run of query blocks of one (b, h), which packs the keys it needs once. Whole heads when there are
     * enough to go round the threads twice; otherwise each head is cut into chunks (the results do not depend on
     * the cut: every row runs the same sums). */
    int64_t bh = B * d.H, nqb = (T + BLK - 1) / BLK, nch = (2 * threads + bh - 1) / bh;
    nch = nch < nqb ? nch : nqb;
#pragma omp parallel for schedule(dynamic, 1) if (B * d.H * T * T * (d.hs + 1) >= PAR_MIN_WORK)
    for (int64_t t = 0; t < bh * nch; t++) {
        int64_t c = nch - 1 - t / bh, b = t % bh / d.H, h = t % d.H;
        int64_t qb0 = chunk_start(nqb, nch, c), qb1 = chunk_start(nqb, nch, c + 1);
        if (qb0 == qb1) continue;
        const char *x = xp + (size_t)(b * T * d.ld) * es;
        void *yb = yp + (size_t)(b * T * d.C) * es, *lb = lp + (size_t)((b * d.H + h) * T) * es;
        kn->fwd(&d, x, yb, lb, h, qb0, qb1, scratch + per * (size_t)omp_get_thread_num());
    }
    lt__free(lt__cpu_allocator(0), scratch);
    return LT_OK;
}

lt_status lt__cpu_attention_backward(const lt_tensor *qkv, const lt_tensor *y, const lt_tensor *lse,
                                     const lt_tensor *gy, int n_head, lt_tensor *gqkv) {
    static const char *who = "cpu attention_backward";
    attn_dims d;
    int64_t B = qkv->shape[0], T = qkv->shape[1], C3 = qkv->shape[2];
    const int64_t shapes[4][3] = {{B, T, C3 / 3}, {B, n_head, T}, {B, T, C3 / 3}, {B, T, C3}};
    LT_TRY(check_args(who, qkv, n_head, (const lt_tensor *[]){y, lse, gy, gqkv}, shapes, 4, &d));
    if (B == 0 || T == 0) return LT_OK;
    const attn_kernels *kn = kernels_for(qkv->dtype == LT_F64);
    d.hsp = (d.hs + kn->vl - 1) / kn->vl * kn->vl;
    size_t es = lt_dtype_size(qkv->dtype), per = bwd_scratch(&d, es);
    int threads = omp_get_max_threads();
    char *scratch;
    LT_TRY(scratch_alloc(who, per * (size_t)threads, (void **)&scratch));
    const char *xp = lt__data(qkv), *yp = lt__data(y), *lp = lt__data(lse), *gp = lt__data(gy);
    char *op = lt__data(gqkv);
    int64_t bh = B * d.H;
#pragma omp parallel if (B * d.H * T * T * (d.hs + 1) >= PAR_MIN_WORK)
    {
        void *scr = scratch + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < bh; t++) {
            int64_t b = t / d.H, h = t % d.H;
            size_t xo = (size_t)(b * T * d.ld) * es, yo = (size_t)(b * T * d.C) * es, lo = (size_t)(t * T) * es;
            kn->bwd(&d, xp + xo, yp + yo, lp + lo, gp + yo, h, op + xo, scr);
        }
    }
    lt__free(lt__cpu_allocator(0), scratch);
    return LT_OK;
}
