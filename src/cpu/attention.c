/* CPU causal multi-head attention over qkv [B, T, 3C], flash-style: forward and backward walk key blocks with an
 * online softmax and keep only the per-row log-sum-exp, so no T x T matrix is ever stored. Deterministic: each output
 * element is summed in a fixed order by one thread, whatever the thread count. Never allocates beyond its scratch. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/fastmath.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Each kernel exists in three builds per dtype, picked at run time: for AVX-512 and for AVX2 + FMA with 32-byte
 * vectors, and for the baseline ISA (SSE2, or NEON elsewhere) with 16-byte ones. A vector must not be wider than the
 * target's registers: GCC splits wider generic vectors through the stack, 20x slower. 512-bit FMAs ran no faster
 * than 256-bit ones on this Zen 5, but the AVX-512 build still gains from its 32 registers and mask registers
 * (B = 8, T = 256, 4 heads of 64, one thread: 22 ms forward and backward, against 26 ms for the AVX2 build). */
#if defined(__x86_64__) && defined(__GNUC__)
#define LT_X86_BUILDS 1
#define LT_AVX2 __attribute__((target("arch=x86-64-v3")))
#define LT_AVX512 __attribute__((target("arch=x86-64-v4")))
#endif
#define LT_INLINE static inline __attribute__((always_inline))

/* A strip is NVEC vectors; accum keeps two rows of strips (8 vectors) in registers, which with the broadcasts and a
 * load fit the 16 of AVX2 or SSE2. Key and query blocks are two strips (64 f32 keys with AVX2): as fast as one strip
 * here, with half the per-block overhead. */
#define NVEC 4
/* Multiply-adds below which a call runs on one thread: starting a parallel region costs a few microseconds. */
#define PAR_MIN_WORK 262144

typedef float vec8_f32 __attribute__((vector_size(32)));
typedef double vec4_f64 __attribute__((vector_size(32)));
typedef float vec4_f32 __attribute__((vector_size(16)));
typedef double vec2_f64 __attribute__((vector_size(16)));

/* Shapes of one call; hs = C / H, ld = 3C (the row stride of qkv). */
typedef struct attn_dims {
    int64_t B, len, C, H, hs, ld; /* len is T, the sequence length */
    double scale;
} attn_dims;

/* One instance of the kernels below (a dtype and a vector width); pointers are untyped so both dtypes share it. */
typedef struct attn_kernels {
    int64_t bk; /* keys per block, and query rows per block */
    void (*pack)(const attn_dims *dm, const void *qkv, int64_t h, void *kt, void *vp);
    void (*fwd)(const attn_dims *dm, const void *qkv, const void *kt, const void *vp, void *y, void *lse, int64_t h,
                int64_t i0, int64_t rows, void *scratch);
    void (*bwd)(const attn_dims *dm, const void *qkv, const void *y, const void *lse, const void *gy, int64_t h,
                void *g, void *scratch);
} attn_kernels;

/* Kernels for T (the element and accumulation type), V (a vector of T), EXP (its exp) and TARGET (the ISA).
 *
 * accum: out_r[0:n] = beta_r * out_r[0:n] + sum_k a_r[k * as] * b[k * ldb + 0:n] for R = 1 or 2 rows r. Every
 *   product of the forward and backward is a sequence of these: rows of one operand times a block of rows of the
 *   other. The output rows stay in registers (strip, NVEC vectors each) while the b rows stream from cache, and two
 *   rows share each b load: 8 independent FMA chains. Scores use K^T blocks (kt: row d holds the keys' d-th
 *   features) so that they too run along a row. beta == 0 never reads out (it may hold poison).
 * transpose: kt[d * BK + j] = k[j * ld + d] for the nk keys of a block, zero-padded to BK columns.
 * pack: n rows of hs elements at row stride ld, copied back to back. The b operands of accum are always such packed
 *   or transposed copies: rows of qkv lie 3C apart, a stride that maps them onto a few L1 sets, which then thrash.
 * softmax_row: the online-softmax step for one row of raw scores s (lim valid keys): the new running max m, the
 *   factor corr = exp(m_old - m_new) that rescales the row's earlier sums, s overwritten with p = exp(s * scale - m)
 *   (0 past lim) and l = l * corr + sum(p).
 * fwd_rows: rows [i0, i0 + rows) of one (b, h): for each key block, two query rows at a time, s = q k^T, softmax_row,
 *   o = o * corr + p v; finally y = o / l and lse = m + log(l).
 * bwd_head: one (b, h), FlashAttention-2's order: for each key block, over the query blocks that see it, rebuild
 *   p = exp(s * scale - lse), dp = dy v^T, ds = p * (dp - D) * scale with D_i = dy_i . y_i, dq += ds k, then
 *   dv += p^T dy and dk += ds^T q. dk and dv rows belong to this key block and dq rows are first written by key
 *   block 0, so all three accumulate in place in gqkv. */
#define DEFINE_ATTENTION(T, V, SFX, EXP, TARGET)                                                                       \
    enum { VL_##SFX = sizeof(V) / sizeof(T), BK_##SFX = 2 * NVEC * VL_##SFX, BQ_##SFX = BK_##SFX };                    \
                                                                                                                       \
    LT_INLINE void strip_##SFX(int R, int nv, T *restrict o0, T *restrict o1, T beta0, T beta1, const T *a0,           \
                               const T *a1, int64_t as, const T *b, int64_t ldb, int64_t K) {                          \
        V acc[2][NVEC];                                                                                                \
        T beta[2] = {beta0, beta1};                                                                                    \
        T *out[2] = {o0, o1};                                                                                          \
        _Pragma("GCC unroll 2") for (int r = 0; r < R; r++) {                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {                                                     \
                acc[r][v] = (V){0};                                                                                    \
                if (beta[r] != 0) {                                                                                    \
                    V o;                                                                                               \
                    memcpy(&o, out[r] + v * VL_##SFX, sizeof(V));                                                      \
                    acc[r][v] = beta[r] * o;                                                                           \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int64_t k = 0; k < K; k++) {                                                                              \
            T c0 = a0[k * as], c1 = R > 1 ? a1[k * as] : 0;                                                            \
            const T *bk = b + k * ldb;                                                                                 \
            _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {                                                     \
                V x;                                                                                                   \
                memcpy(&x, bk + v * VL_##SFX, sizeof(V));                                                              \
                acc[0][v] += c0 * x;                                                                                   \
                if (R > 1) acc[1][v] += c1 * x;                                                                        \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("GCC unroll 2") for (int r = 0; r < R; r++) {                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) memcpy(out[r] + v * VL_##SFX, &acc[r][v], sizeof(V)); \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    LT_INLINE void accum_##SFX(int R, T *o0, T *o1, int64_t n, T beta0, T beta1, const T *a0, const T *a1, int64_t as, \
                               const T *b, int64_t ldb, int64_t K) {                                                   \
        int64_t c = 0;                                                                                                 \
        for (; c + NVEC * VL_##SFX <= n; c += NVEC * VL_##SFX)                                                         \
            strip_##SFX(R, NVEC, o0 + c, o1 + c, beta0, beta1, a0, a1, as, b + c, ldb, K);                             \
        if (n - c >= 2 * VL_##SFX) {                                                                                   \
            strip_##SFX(R, 2, o0 + c, o1 + c, beta0, beta1, a0, a1, as, b + c, ldb, K);                                \
            c += 2 * VL_##SFX;                                                                                         \
        }                                                                                                              \
        if (n - c >= VL_##SFX) {                                                                                       \
            strip_##SFX(R, 1, o0 + c, o1 + c, beta0, beta1, a0, a1, as, b + c, ldb, K);                                \
            c += VL_##SFX;                                                                                             \
        }                                                                                                              \
        T *out[2] = {o0, o1}, beta[2] = {beta0, beta1};                                                                \
        const T *a[2] = {a0, a1};                                                                                      \
        for (int r = 0; r < R && c < n; r++) { /* fewer than one vector of columns */                                  \
            T acc[VL_##SFX];                                                                                           \
            for (int64_t l = c; l < n; l++) acc[l - c] = beta[r] != 0 ? beta[r] * out[r][l] : 0;                       \
            for (int64_t k = 0; k < K; k++)                                                                            \
                for (int64_t l = c; l < n; l++) acc[l - c] += a[r][k * as] * b[k * ldb + l];                           \
            for (int64_t l = c; l < n; l++) out[r][l] = acc[l - c];                                                    \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    LT_INLINE void transpose_##SFX(const T *k, int64_t ld, int64_t nk, int64_t hs, T *restrict kt) {                   \
        for (int64_t d = 0; d < hs; d++)                                                                               \
            for (int64_t j = nk; j < BK_##SFX; j++) kt[d * BK_##SFX + j] = 0;                                          \
        for (int64_t j = 0; j < nk; j++)                                                                               \
            for (int64_t d = 0; d < hs; d++) kt[d * BK_##SFX + j] = k[j * ld + d];                                     \
    }                                                                                                                  \
                                                                                                                       \
    LT_INLINE void pack_##SFX(const T *x, int64_t ld, int64_t n, int64_t hs, T *restrict xp) {                         \
        for (int64_t j = 0; j < n; j++) memcpy(xp + j * hs, x + j * ld, sizeof(T) * (size_t)hs);                       \
    }                                                                                                                  \
                                                                                                                       \
    LT_INLINE void softmax_step_##SFX(T *s, int64_t lim, T scale, T *m, T *l, T *corr) {                               \
        T lane[VL_##SFX], mx = -INFINITY, sum = 0; /* the max lane by lane: no reduction for compilers to recognise */ \
        for (int v = 0; v < VL_##SFX; v++) lane[v] = -INFINITY;                                                        \
        for (int64_t j0 = 0; j0 < BK_##SFX; j0 += VL_##SFX) {                                                          \
            _Pragma("omp simd") for (int v = 0; v < VL_##SFX; v++) {                                                   \
                T sj = j0 + v < lim ? s[j0 + v] : -INFINITY;                                                           \
                lane[v] = sj > lane[v] ? sj : lane[v];                                                                 \
            }                                                                                                          \
        }                                                                                                              \
        for (int v = 0; v < VL_##SFX; v++) mx = lane[v] > mx ? lane[v] : mx;                                           \
        T mnew = lim > 0 && mx * scale > *m ? mx * scale : *m;                                                         \
        _Pragma("omp simd reduction(+ : sum)") for (int64_t j = 0; j < BK_##SFX; j++) {                                \
            T p = EXP(j < lim ? s[j] * scale - mnew : -INFINITY);                                                      \
            s[j] = p;                                                                                                  \
            sum += p;                                                                                                  \
        }                                                                                                              \
        *corr = lim > 0 ? EXP(*m - mnew) : 1;                                                                          \
        *l = *l * *corr + sum;                                                                                         \
        *m = mnew;                                                                                                     \
    }                                                                                                                  \
    /* Full blocks (all but the diagonal one) get a copy of the loops without the causal mask. */                      \
    LT_INLINE void softmax_row_##SFX(T *s, int64_t lim, T scale, T *m, T *l, T *corr) {                                \
        if (lim >= BK_##SFX)                                                                                           \
            softmax_step_##SFX(s, BK_##SFX, scale, m, l, corr);                                                        \
        else                                                                                                           \
            softmax_step_##SFX(s, lim, scale, m, l, corr);                                                             \
    }                                                                                                                  \
                                                                                                                       \
    /* Query rows q and q + ld (R of them) of the forward against one key block (kt its K^T, vb its packed values);    \
     * key j of the block is seen by the first row when j < first. */                                                  \
    LT_INLINE void fwd_pair_##SFX(int R, const T *q, int64_t ld, const T *kt, const T *vb, int64_t hs, int64_t first,  \
                                  int64_t nk, bool j0_first, T scale, T *s, T *o, T *m, T *l) {                        \
        int64_t K = 0;                                                                                                 \
        T corr[2] = {0, 0};                                                                                            \
        accum_##SFX(R, s, s + BK_##SFX, BK_##SFX, 0, 0, q, q + ld, 1, kt, BK_##SFX, hs);                               \
        for (int r = 0; r < R; r++) {                                                                                  \
            int64_t lim = first + r < nk ? first + r : nk;                                                             \
            softmax_row_##SFX(s + r * BK_##SFX, lim, scale, m + r, l + r, corr + r);                                   \
            K = lim > K ? lim : K;                                                                                     \
        }                                                                                                              \
        if (j0_first) corr[0] = corr[1] = 0;                                                                           \
        accum_##SFX(R, o, o + hs, hs, corr[0], corr[1], s, s + BK_##SFX, 1, vb, hs, K);                                \
    }                                                                                                                  \
                                                                                                                       \
    /* One (b, h)'s keys and values laid out for the forward and shared by all its query blocks: kt holds K^T block    \
     * by block ([T / BK][hs][BK], zero past T), vp the value rows back to back ([T][hs]). */                          \
    LT_INLINE void fwd_pack_##SFX(const attn_dims *dm, const T *qkv, int64_t h, T *kt, T *vp) {                        \
        int64_t hs = dm->hs, ld = dm->ld, n = dm->len;                                                                 \
        const T *k = qkv + dm->C + h * hs;                                                                             \
        for (int64_t j0 = 0; j0 < n; j0 += BK_##SFX)                                                                   \
            transpose_##SFX(k + j0 * ld, ld, n - j0 < BK_##SFX ? n - j0 : BK_##SFX, hs, kt + j0 * hs);                 \
        pack_##SFX(qkv + 2 * dm->C + h * hs, ld, n, hs, vp);                                                           \
    }                                                                                                                  \
                                                                                                                       \
    LT_INLINE void fwd_rows_##SFX(const attn_dims *dm, const T *qkv, const T *kt, const T *vp, T *y, T *lse,           \
                                  int64_t h, int64_t i0, int64_t rows, T *scratch) {                                   \
        enum { BK = BK_##SFX };                                                                                        \
        int64_t hs = dm->hs, ld = dm->ld, C = dm->C;                                                                   \
        const T *q = qkv + h * hs;                                                                                     \
        T scale = (T)dm->scale, m[BQ_##SFX], l[BQ_##SFX];                                                              \
        T *s = scratch, *o = s + 2 * BK;                                                                               \
        for (int64_t i = 0; i < rows; i++) m[i] = -INFINITY, l[i] = 0;                                                 \
        for (int64_t j0 = 0; j0 < i0 + rows; j0 += BK) {                                                               \
            int64_t nk = i0 + rows - j0 < BK ? i0 + rows - j0 : BK;                                                    \
            const T *ktb = kt + j0 * hs, *vb = vp + j0 * hs;                                                           \
            for (int64_t i = 0; i < rows; i += 2) {                                                                    \
                const T *qi = q + (i0 + i) * ld;                                                                       \
                int64_t first = i0 + i - j0 + 1;                                                                       \
                if (i + 1 < rows)                                                                                      \
                    fwd_pair_##SFX(2, qi, ld, ktb, vb, hs, first, nk, j0 == 0, scale, s, o + i * hs, m + i, l + i);    \
                else                                                                                                   \
                    fwd_pair_##SFX(1, qi, ld, ktb, vb, hs, first, nk, j0 == 0, scale, s, o + i * hs, m + i, l + i);    \
            }                                                                                                          \
        }                                                                                                              \
        for (int64_t i = 0; i < rows; i++) {                                                                           \
            T inv = 1 / l[i], *yr = y + (i0 + i) * C + h * hs;                                                         \
            for (int64_t d = 0; d < hs; d++) yr[d] = o[i * hs + d] * inv;                                              \
            lse[i0 + i] = m[i] + (T)log((double)l[i]);                                                                 \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* p = exp(s * scale - lse) over the lim keys a row sees (0 past them) and ds = p * (dp - D) * scale, in place. */ \
    LT_INLINE void grad_row_##SFX(T *p, T *ds, int64_t lim, T scale, T lse, T D) {                                     \
        _Pragma("omp simd") for (int64_t j = 0; j < BK_##SFX; j++) {                                                   \
            T pj = EXP(j < lim ? p[j] * scale - lse : -INFINITY);                                                      \
            p[j] = pj;                                                                                                 \
            ds[j] = pj * (ds[j] - D) * scale;                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* Query rows i and i + 1 (R of them; q and gy packed, rows hs apart) of the backward against one key block: p,    \
     * ds and their dq (rows of gqkv, ld apart). */                                                                    \
    LT_INLINE void bwd_pair_##SFX(int R, const T *q, const T *gy, const T *kt, const T *vt, const T *kb, int64_t ld,   \
                                  int64_t hs, int64_t first, int64_t nk, bool j0_first, T scale, const T *lse,         \
                                  const T *D, T *p, T *ds, T *dq) {                                                    \
        accum_##SFX(R, p, p + BK_##SFX, BK_##SFX, 0, 0, q, q + hs, 1, kt, BK_##SFX, hs);                               \
        accum_##SFX(R, ds, ds + BK_##SFX, BK_##SFX, 0, 0, gy, gy + hs, 1, vt, BK_##SFX, hs);                           \
        for (int r = 0; r < R; r++) {                                                                                  \
            int64_t lim = first + r < nk ? first + r : nk;                                                             \
            if (lim >= BK_##SFX)                                                                                       \
                grad_row_##SFX(p + r * BK_##SFX, ds + r * BK_##SFX, BK_##SFX, scale, lse[r], D[r]);                    \
            else                                                                                                       \
                grad_row_##SFX(p + r * BK_##SFX, ds + r * BK_##SFX, lim, scale, lse[r], D[r]);                         \
        }                                                                                                              \
        T beta = j0_first ? 0 : 1;                                                                                     \
        accum_##SFX(R, dq, dq + ld, hs, beta, beta, ds, ds + BK_##SFX, 1, kb, hs, nk);                                 \
    }                                                                                                                  \
                                                                                                                       \
    LT_INLINE void bwd_head_##SFX(const attn_dims *dm, const T *qkv, const T *y, const T *lse, const T *gy, int64_t h, \
                                  T *g, T *scratch) {                                                                  \
        enum { BK = BK_##SFX, BQ = BQ_##SFX };                                                                         \
        int64_t n = dm->len, hs = dm->hs, ld = dm->ld, C = dm->C;                                                      \
        const T *q = qkv + h * hs, *k = qkv + C + h * hs, *v = qkv + 2 * C + h * hs;                                   \
        T *dq = g + h * hs, *dk = g + C + h * hs, *dv = g + 2 * C + h * hs, scale = (T)dm->scale;                      \
        T *kt = scratch, *vt = kt + hs * BK, *p = vt + hs * BK, *ds = p + BQ * BK, *D = ds + BQ * BK;                  \
        T *qp = D + n, *kp = qp + n * hs, *gp = kp + n * hs;                                                           \
        y += h * hs;                                                                                                   \
        gy += h * hs;                                                                                                  \
        pack_##SFX(q, ld, n, hs, qp);                                                                                  \
        pack_##SFX(k, ld, n, hs, kp);                                                                                  \
        pack_##SFX(gy, C, n, hs, gp);                                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T acc = 0;                                                                                                 \
            const T *gr = gy + i * C, *yr = y + i * C;                                                                 \
            _Pragma("omp simd reduction(+ : acc)") for (int64_t d = 0; d < hs; d++) acc += gr[d] * yr[d];              \
            D[i] = acc;                                                                                                \
        }                                                                                                              \
        for (int64_t j0 = 0; j0 < n; j0 += BK) {                                                                       \
            int64_t nk = n - j0 < BK ? n - j0 : BK;                                                                    \
            transpose_##SFX(kp + j0 * hs, hs, nk, hs, kt);                                                             \
            transpose_##SFX(v + j0 * ld, ld, nk, hs, vt);                                                              \
            for (int64_t i0 = j0 / BQ * BQ; i0 < n; i0 += BQ) {                                                        \
                int64_t rows = n - i0 < BQ ? n - i0 : BQ;                                                              \
                for (int64_t i = 0; i < rows; i += 2) {                                                                \
                    int64_t r = i0 + i, first = r - j0 + 1;                                                            \
                    if (i + 1 < rows)                                                                                  \
                        bwd_pair_##SFX(2, qp + r * hs, gp + r * hs, kt, vt, kp + j0 * hs, ld, hs, first, nk, j0 == 0,  \
                                       scale, lse + r, D + r, p + i * BK, ds + i * BK, dq + r * ld);                   \
                    else                                                                                               \
                        bwd_pair_##SFX(1, qp + r * hs, gp + r * hs, kt, vt, kp + j0 * hs, ld, hs, first, nk, j0 == 0,  \
                                       scale, lse + r, D + r, p + i * BK, ds + i * BK, dq + r * ld);                   \
                }                                                                                                      \
                T beta = i0 == j0 / BQ * BQ ? 0 : 1;                                                                   \
                int64_t j = 0;                                                                                         \
                for (; j + 2 <= nk; j += 2) {                                                                          \
                    T *v0 = dv + (j0 + j) * ld, *k0 = dk + (j0 + j) * ld;                                              \
                    accum_##SFX(2, v0, v0 + ld, hs, beta, beta, p + j, p + j + 1, BK, gp + i0 * hs, hs, rows);         \
                    accum_##SFX(2, k0, k0 + ld, hs, beta, beta, ds + j, ds + j + 1, BK, qp + i0 * hs, hs, rows);       \
                }                                                                                                      \
                if (j < nk) {                                                                                          \
                    T *v0 = dv + (j0 + j) * ld, *k0 = dk + (j0 + j) * ld;                                              \
                    accum_##SFX(1, v0, v0, hs, beta, beta, p + j, p + j, BK, gp + i0 * hs, hs, rows);                  \
                    accum_##SFX(1, k0, k0, hs, beta, beta, ds + j, ds + j, BK, qp + i0 * hs, hs, rows);                \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    TARGET static void pack_entry_##SFX(const attn_dims *dm, const void *qkv, int64_t h, void *kt, void *vp) {         \
        fwd_pack_##SFX(dm, qkv, h, kt, vp);                                                                            \
    }                                                                                                                  \
    TARGET static void fwd_entry_##SFX(const attn_dims *dm, const void *qkv, const void *kt, const void *vp, void *y,  \
                                       void *lse, int64_t h, int64_t i0, int64_t rows, void *scratch) {                \
        fwd_rows_##SFX(dm, qkv, kt, vp, y, lse, h, i0, rows, scratch);                                                 \
    }                                                                                                                  \
    TARGET static void bwd_entry_##SFX(const attn_dims *dm, const void *qkv, const void *y, const void *lse,           \
                                       const void *gy, int64_t h, void *g, void *scratch) {                            \
        bwd_head_##SFX(dm, qkv, y, lse, gy, h, g, scratch);                                                            \
    }                                                                                                                  \
    static const attn_kernels kernels_##SFX = {BK_##SFX, pack_entry_##SFX, fwd_entry_##SFX, bwd_entry_##SFX};

DEFINE_ATTENTION(float, vec4_f32, f32_base, lt__expf, )
DEFINE_ATTENTION(double, vec2_f64, f64_base, lt__exp, )
#ifdef LT_X86_BUILDS
DEFINE_ATTENTION(float, vec8_f32, f32_avx2, lt__expf, LT_AVX2)
DEFINE_ATTENTION(double, vec4_f64, f64_avx2, lt__exp, LT_AVX2)
DEFINE_ATTENTION(float, vec8_f32, f32_avx512, lt__expf, LT_AVX512)
DEFINE_ATTENTION(double, vec4_f64, f64_avx512, lt__exp, LT_AVX512)
#endif

/* The best build this CPU runs. */
static const attn_kernels *kernels_for(bool f64) {
#ifdef LT_X86_BUILDS
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq"))
        return f64 ? &kernels_f64_avx512 : &kernels_f32_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return f64 ? &kernels_f64_avx2 : &kernels_f32_avx2;
#endif
    return f64 ? &kernels_f64_base : &kernels_f32_base;
}

/* Scratch per thread, in bytes rounded up to whole cache lines (no two threads share one): the forward's score rows
 * and output accumulators; the backward's K^T and V^T blocks, p and ds blocks, D and the packed q, k and dy. */
static size_t fwd_scratch(const attn_dims *d, int64_t bk, size_t es) {
    int64_t n = 2 * bk + bk * d->hs;
    return ((size_t)n * es + 63) / 64 * 64;
}

static size_t bwd_scratch(const attn_dims *d, int64_t bk, size_t es) {
    int64_t n = 2 * d->hs * bk + 2 * bk * bk + d->len + 3 * d->len * d->hs;
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

lt_status lt__cpu_attention(const lt_tensor *qkv, int n_head, lt_tensor *y, lt_tensor *lse) {
    static const char *who = "cpu attention";
    attn_dims d;
    int64_t B = qkv->shape[0], T = qkv->shape[1];
    const int64_t shapes[2][3] = {{B, T, qkv->shape[2] / 3}, {B, n_head, T}};
    LT_TRY(check_args(who, qkv, n_head, (const lt_tensor *[]){y, lse}, shapes, 2, &d));
    if (B == 0 || T == 0) return LT_OK;
    const attn_kernels *kn = kernels_for(qkv->dtype == LT_F64);
    int64_t bq = kn->bk, nqb = (T + bq - 1) / bq, bh = B * d.H, tasks = bh * nqb;
    size_t es = lt_dtype_size(qkv->dtype), per = fwd_scratch(&d, bq, es);
    size_t ktn = (size_t)(d.hs * nqb * bq), head = ktn + (size_t)(d.hs * T); /* per head: blocked K^T, packed V */
    int threads = omp_get_max_threads();
    char *scratch;
    LT_TRY(scratch_alloc(who, per * (size_t)threads + (size_t)bh * head * es, (void **)&scratch));
    char *packed = scratch + per * (size_t)threads;
    const char *xp = lt__data(qkv);
    char *yp = lt__data(y), *lp = lt__data(lse);
    /* Every head's keys and values are packed first (each of its query blocks reads all of them); then the tasks
     * (b, h, query block), the last query blocks (the most keys) handed out first. */
#pragma omp parallel if (B * d.H * T * T * (d.hs + 1) >= PAR_MIN_WORK)
    {
        void *scr = scratch + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t t = 0; t < bh; t++) {
            char *kt = packed + (size_t)t * head * es;
            kn->pack(&d, xp + (size_t)(t / d.H * T * d.ld) * es, t % d.H, kt, kt + ktn * es);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) {
            int64_t qb = nqb - 1 - t / bh, b = t % bh / d.H, h = t % d.H;
            int64_t i0 = qb * bq, rows = T - i0 < bq ? T - i0 : bq;
            const char *x = xp + (size_t)(b * T * d.ld) * es, *kt = packed + (size_t)(t % bh) * head * es;
            void *yb = yp + (size_t)(b * T * d.C) * es, *lb = lp + (size_t)((b * d.H + h) * T) * es;
            kn->fwd(&d, x, kt, kt + ktn * es, yb, lb, h, i0, rows, scr);
        }
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
    size_t es = lt_dtype_size(qkv->dtype), per = bwd_scratch(&d, kn->bk, es);
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
