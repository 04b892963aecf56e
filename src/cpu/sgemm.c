/* Row-major f32 GEMM for AVX-512 (x86-64-v4), BLIS-style, for the training step's shapes on Zen 4 (see sgemm.h).
 *
 * Micro-kernel: a 12 x 32 tile of c in 24 zmm accumulators. Each k step loads one 32-float row of the packed b
 * micro-panel (two zmm) and broadcasts 12 values of the packed a micro-panel, 24 FMAs. Edge tiles: 1..11-row
 * instantiations of the same code, and masked loads/stores for a last tile narrower than 32 columns (packed b is
 * zero-filled there), so nothing outside the matrices is read or written.
 *
 * Blocking, per thread (loops outermost first):
 *   jc: the thread's columns in blocks of nc (multiple of 32) <= NC_MAX when kc = KC_MAX (a shorter kc allows a
 *       wider block, in the same space),
 *   pc: k in blocks of kc <= KC_MAX: b[pc:pc+kc, jc:jc+nc] is packed into 32-column micro-panels (kc x nc floats,
 *       <= 768 KiB, beside up to 4 a micro-panels: 840 KiB in all, within the core's 1 MiB L2),
 *   ic: rows in steps of 48: a[ic:ic+48, pc:pc+kc] is packed k-major into 4 micro-panels of 12 rows (kc x 12 floats,
 *       <= 18 KiB each: the one in use stays in L1; packing 4 at once reads whole cache lines of a transposed a),
 *   ir: the 12-row micro-panels of that block, and for each
 *   jr: the micro-kernel over the nc/32 micro-panels of b, which stream from L2 (prefetched 8 k steps ahead).
 * The k blocks are the same ones (balanced, from k alone) whatever the threads, and each c element is summed in k
 * order inside a block, the blocks added to c in order: the result does not depend on the thread count.
 *
 * When the thread's columns take several nc blocks and its rows are few (packed a for all of them, m x kc, fits in
 * the buffer beside a b block of at least NC_MIN_RES columns: m <= 432 for kc = 384, as in gpt2's m = 256), the
 * loops become pc, jc, ic instead: each k block of a is packed once (during the first column block) and stays
 * resident in L2, with narrower b blocks beside it, rather than packed again for every column block.
 *
 * Threading: the calling thread's OpenMP team splits the larger of m and n; each thread packs its own b and a (no
 * shared buffers). Splitting n duplicates the packing of a (m x k per thread, more for each nc block unless a stays
 * resident), splitting m that of b, a few % of the FLOPs at worst.
 * The split is balanced at run time (struct sgemm_sched) where it can be: a core that runs slower for a while (a
 * busy neighbour, an interrupt) then no longer holds up the others. With a fixed split one of 2 threads waited for
 * the other 5-9% of the small GPT's step, mostly at the end of its GEMMs.
 *   - The split dimension is cut into blocks and the work into units (pass, block). Splitting m, a block is whole
 *     MC-row steps and a pass one (column block, k block) of the classic loops: each thread packs the pass's b block
 *     once for all the units it takes in that pass. Splitting n, a block is a few 32-column panels and a pass a k
 *     block, with all of a resident: each thread packs the pass's a once.
 *   - Each thread owns a contiguous run of blocks and takes its units in order (pass by pass) from an atomic
 *     counter; a thread that has finished its own takes the next units of the others'.
 *   - Per block, a pass starts only when the block's previous pass is done (an acquire/release counter per block),
 *     so every element is still summed in the same k order.
 *   - The split is fixed instead (contiguous runs of whole tiles, one per thread) for more than 64 threads, a split
 *     of n whose a does not fit resident beside a 128-column b block, and a split of m with a resident.
 *
 * Memory: one 64-byte-aligned buffer per thread, allocated on its first call and kept until the thread exits
 * (pthread key destructor). If any thread of the team cannot get one, no thread touches c and the call returns false.
 */
#include "sgemm.h"
#include "x86.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef LT_CPU_X86
#define LT_AVX512 __attribute__((target("arch=x86-64-v4")))
#define LT_INLINE static inline __attribute__((always_inline))
#endif

bool lt__sgemm_avx512_available(void) {
#ifdef LT_CPU_X86
    return lt__cpu_x86_64_v4();
#else
    return false;
#endif
}

#ifdef LT_CPU_X86

#define MR 12
#define NR 32
#ifndef KC_MAX /* (overridable, for tuning) */
#define KC_MAX 384
#endif
/* 512 rather than 480: with k = 256 a block then takes 768 columns, so the 768-column products (gpt2's LM-head dw,
 * whose a is the transposed [50304, 256] logit gradient, and small's qkv forward) pack a once instead of twice;
 * gpt2-124M's step was 0.3% faster (two A/B runs), small and tiny unchanged. */
#ifndef NC_MAX
#define NC_MAX 512
#endif
/* k steps ahead of the b micro-panel that the kernel prefetches (8 x 128 bytes) */
#ifndef PF_STEPS
#define PF_STEPS 8
#endif
/* Multiply-adds below which a call stays on the calling thread (a parallel region costs a few microseconds). */
#define PAR_MIN_MNK 524288.0
/* rows ahead that pack_b_n prefetches */
#ifndef PF_ROWS
#define PF_ROWS 4
#endif
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T0
#endif
/* rows of a packed at a time: MC_PANELS micro-panels (see pack_a_t) */
#ifndef MC_PANELS
#define MC_PANELS 4
#endif
#define MC (MR * MC_PANELS)
#define BUF_MAIN ((int64_t)KC_MAX * NC_MAX + (int64_t)KC_MAX * MC)
#define BUF_FLOATS ((size_t)BUF_MAIN + 64)
/* narrowest b block worth keeping a resident for (see sgemm_worker) */
#ifndef NC_MIN_RES
#define NC_MIN_RES 128
#endif
/* A split balanced at run time (sgemm_sched): at most this many threads (a larger team splits statically) and
 * blocks (larger m takes blocks of several MC-row steps; larger n splits statically). */
#define DYN_MAX_THREADS 64
#define DYN_MAX_BLOCKS 1024
/* Most doubles of per-block partials for the row sums of a taken while packing (8 MiB); beyond, their own pass. */
#define SUM_FUSED_MAX ((int64_t)1 << 20)

enum { C_STORE, C_ADD, C_BETA };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- Per-thread packing buffer ---- */

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static bool buf_key_ok;

static void buf_key_make(void) { buf_key_ok = pthread_key_create(&buf_key, free) == 0; }

static float *thread_buf(void) {
    pthread_once(&buf_once, buf_key_make);
    if (!buf_key_ok) return NULL;
    float *p = pthread_getspecific(buf_key);
    if (p) return p;
    void *q = NULL;
    if (posix_memalign(&q, 64, BUF_FLOATS * sizeof(float)) != 0) return NULL;
    if (pthread_setspecific(buf_key, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

/* Doubles of scratch for the row sums of a, kept per thread like the packing buffer (grown when a call needs more),
 * so that the steady state does not allocate. NULL when out of memory. */
typedef struct sum_buf {
    size_t cap;
    double d[];
} sum_buf;

static pthread_key_t sum_key;
static pthread_once_t sum_once = PTHREAD_ONCE_INIT;
static bool sum_key_ok;

static void sum_key_make(void) { sum_key_ok = pthread_key_create(&sum_key, free) == 0; }

static double *thread_sums(size_t n) {
    pthread_once(&sum_once, sum_key_make);
    if (!sum_key_ok) return NULL;
    sum_buf *b = pthread_getspecific(sum_key);
    if (b && b->cap >= n) return b->d;
    sum_buf *nb = malloc(sizeof(sum_buf) + n * sizeof(double));
    if (!nb || pthread_setspecific(sum_key, nb) != 0) {
        free(nb);
        return NULL;
    }
    free(b);
    nb->cap = n;
    return nb->d;
}

/* ---- Micro-kernel ---- */

/* One k step of the tile: rows r < mr of (x0 | x1) += ap[r] * the 32 floats at bp. */
LT_AVX512 LT_INLINE void kstep(const int mr, const float *restrict ap, const float *restrict bp, __m512 *x0,
                               __m512 *x1) {
    __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        __m512 av = _mm512_set1_ps(ap[r]);
        x0[r] = _mm512_fmadd_ps(av, b0, x0[r]);
        x1[r] = _mm512_fmadd_ps(av, b1, x1[r]);
    }
}

/* c[0:mr, 0:32 masked by m0|m1] (=|+=) ap (kc x MR, k-major) * bp (kc x NR) (+ bias[0:32] on every row, when not
 * NULL). */
LT_AVX512 LT_INLINE void tile(const int mr, int64_t kc, const float *restrict ap, const float *restrict bp,
                              const float *restrict bias, float *restrict c, int64_t ldc, __mmask16 m0, __mmask16 m1,
                              int mode, float beta) {
    __m512 x0[MR], x1[MR];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        x0[r] = _mm512_setzero_ps();
        x1[r] = _mm512_setzero_ps();
    }
    int64_t p = 0, kmain = kc > 24 ? kc - 24 : 0;
#pragma GCC unroll 4
    for (; p < kmain; p++) {
        _mm_prefetch((const char *)(bp + PF_STEPS * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + PF_STEPS * NR + 16), _MM_HINT_T0);
        kstep(mr, ap, bp, x0, x1);
        ap += MR;
        bp += NR;
    }
    /* the c tile, for the update below (prefetches never fault, so the rows past a narrow tile's end are fine) */
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (; p < kc; p++) {
        kstep(mr, ap, bp, x0, x1);
        ap += MR;
        bp += NR;
    }
    if (bias) {
        __m512 v0 = _mm512_maskz_loadu_ps(m0, bias), v1 = _mm512_maskz_loadu_ps(m1, bias + 16);
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            x0[r] = _mm512_add_ps(x0[r], v0);
            x1[r] = _mm512_add_ps(x1[r], v1);
        }
    }
    if (mode == C_STORE) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            _mm512_mask_storeu_ps(c + r * ldc, m0, x0[r]);
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, x1[r]);
        }
    } else if (mode == C_ADD) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            float *cr = c + r * ldc;
            _mm512_mask_storeu_ps(cr, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), x0[r]));
            _mm512_mask_storeu_ps(cr + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), x1[r]));
        }
    } else {
        __m512 bv = _mm512_set1_ps(beta);
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            float *cr = c + r * ldc;
            _mm512_mask_storeu_ps(cr, m0, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), bv, x0[r]));
            _mm512_mask_storeu_ps(cr + 16, m1, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), bv, x1[r]));
        }
    }
}

typedef void (*tile_fn)(int64_t kc, const float *ap, const float *bp, const float *bias, float *c, int64_t ldc,
                        __mmask16 m0, __mmask16 m1, int mode, float beta);
#define DEFINE_TILE(R)                                                                                                 \
    LT_AVX512 static void tile_##R(int64_t kc, const float *ap, const float *bp, const float *bias, float *c,          \
                                   int64_t ldc, __mmask16 m0, __mmask16 m1, int mode, float beta) {                    \
        tile(R, kc, ap, bp, bias, c, ldc, m0, m1, mode, beta);                                                         \
    }
DEFINE_TILE(1)
DEFINE_TILE(2)
DEFINE_TILE(3)
DEFINE_TILE(4)
DEFINE_TILE(5)
DEFINE_TILE(6)
DEFINE_TILE(7)
DEFINE_TILE(8)
DEFINE_TILE(9)
DEFINE_TILE(10)
DEFINE_TILE(11)
DEFINE_TILE(12)
static const tile_fn tiles[MR + 1] = {NULL,   tile_1, tile_2, tile_3,  tile_4,  tile_5, tile_6,
                                      tile_7, tile_8, tile_9, tile_10, tile_11, tile_12};

/* ---- Packing ---- */

/* Transposes the 16 x 16 block r in place (r[i] lane j <-> r[j] lane i). */
LT_AVX512 LT_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 16; i += 8) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
    }
}

/* psum[0:np] += the sum of a micro-panel's 12 rows r[0:12] (zero past its rows), in float by a fixed tree and then
 * added in double: the one definition of the row sums of a (see lt__sgemm_avx512's asum), in the packer and in
 * asum_direct alike. */
LT_AVX512 LT_INLINE void add_panel_sum(const __m512 r[MR], int64_t np, double *psum) {
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), _mm512_add_ps(r[2], r[3])),
                             _mm512_add_ps(_mm512_add_ps(r[4], r[5]), _mm512_add_ps(r[6], r[7])));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(r[8], r[9]), _mm512_add_ps(r[10], r[11])));
    __mmask16 m = lt__lanes16(np);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(s)), hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(s, 1));
    _mm512_mask_storeu_pd(psum, (__mmask8)m, _mm512_add_pd(_mm512_maskz_loadu_pd((__mmask8)m, psum), lo));
    _mm512_mask_storeu_pd(psum + 8, (__mmask8)(m >> 8),
                          _mm512_add_pd(_mm512_maskz_loadu_pd((__mmask8)(m >> 8), psum + 8), hi));
}

/* r[0:n] = rows [0, rows) of 16 floats lying ld apart from src (the first np of each; rows >= `rows` and lanes >= np
 * are zero): the packer's loads, which asum_range repeats for the same row sums. */
LT_AVX512 LT_INLINE void load_rows(const float *src, int64_t ld, int rows, int64_t np, __m512 *r, int n) {
    __mmask16 lm = lt__lanes16(np);
#pragma GCC unroll 16
    for (int i = 0; i < n; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(lm, src + i * ld) : _mm512_setzero_ps();
}

/* Loads rows [0, rows) of 16 floats (the first np of each; rows >= `rows` and lanes >= np are zero) lying ld apart
 * from src, (when psum is not NULL, adds the sum of the first MR rows to psum as add_panel_sum does,) transposes,
 * and stores output row i (i < np) with mask `keep` at dst + i * dstride. */
LT_AVX512 LT_INLINE void transpose_block(const float *src, int64_t ld, int rows, int64_t np, float *dst,
                                         int64_t dstride, __mmask16 keep, double *psum) {
    __m512 r[16];
    load_rows(src, ld, rows, np, r, 16);
    if (psum) add_panel_sum(r, np, psum);
    transpose16(r);
    /* (unrolled with constant indices, so that r stays in registers) */
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (i < np) _mm512_mask_storeu_ps(dst + i * dstride, keep, r[i]);
}

/* a micro-panel, op(a) = a: rows [0, mr) of a (contiguous in k, lda apart), k in [0, kc) -> ap[p * MR + r]; with
 * psum, the panel's row sums are added to psum[0:kc]. */
LT_AVX512 static void pack_a_n(const float *a, int64_t lda, int mr, int64_t kc, float *ap, double *psum) {
    for (int64_t p0 = 0; p0 < kc; p0 += 16)
        transpose_block(a + p0, lda, mr, min64(16, kc - p0), ap + p0 * MR, MR, (__mmask16)0x0FFF,
                        psum ? psum + p0 : NULL);
}

/* rows [0, rows) of op(a) = a^T as consecutive micro-panels (panel q at ap + q * kc * MR): a holds op(a)'s columns
 * as rows, so each k gives `rows` contiguous values. All the panels are filled in one pass over k, which uses every
 * cache line it fetches: one panel at a time would fetch each k's line (lda apart, often aliasing in the caches) again
 * for the next panel. */
LT_AVX512 static void pack_a_t(const float *a, int64_t lda, int64_t rows, int64_t kc, float *ap) {
    for (int64_t p = 0; p < kc; p++) {
        const float *src = a + p * lda;
        for (int64_t q = 0; q < rows; q += MR)
            _mm512_mask_storeu_ps(ap + q * kc + p * MR, (__mmask16)0x0FFF,
                                  _mm512_maskz_loadu_ps(lt__lanes16(min64(MR, rows - q)), src + q));
    }
}

/* b block, op(b) = b: kc rows of nc contiguous values, ldb apart -> 32-column micro-panels bp[jr * kc + p * NR + j],
 * zero past nc. */
LT_AVX512 static void pack_b_n(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp) {
    for (int64_t p = 0; p < kc; p++) {
        const float *src = b + p * ldb;
        /* the rows lie ldb apart, each a short run: fetch PF_ROWS rows ahead rather than wait for the hardware
         * prefetcher to find each new run */
        if (p + PF_ROWS < kc)
            for (int64_t j = 0; j < nc; j += 16) _mm_prefetch((const char *)(src + PF_ROWS * ldb + j), PF_HINT);
        for (int64_t jr = 0; jr < nc; jr += NR) {
            float *dst = bp + jr * kc + p * NR;
            if (nc - jr >= NR) {
                _mm512_store_ps(dst, _mm512_loadu_ps(src + jr));
                _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + jr + 16));
            } else {
                _mm512_store_ps(dst, _mm512_maskz_loadu_ps(lt__lanes16(nc - jr), src + jr));
                _mm512_store_ps(dst + 16,
                                _mm512_maskz_loadu_ps(lt__lanes16(nc - jr - 16 > 0 ? nc - jr - 16 : 0), src + jr + 16));
            }
        }
    }
}

/* b block, op(b) = b^T: b holds op(b)'s columns as rows (contiguous in k): 16 x 16 transposes. */
LT_AVX512 static void pack_b_t(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp) {
    for (int64_t jr = 0; jr < nc; jr += NR) {
        for (int h = 0; h < NR; h += 16) {
            int64_t rows = min64(16, nc - jr - h);
            float *dst = bp + jr * kc + h;
            if (rows <= 0) {
                for (int64_t p = 0; p < kc; p++) _mm512_store_ps(dst + p * NR, _mm512_setzero_ps());
                continue;
            }
            const float *src = b + (jr + h) * ldb;
            for (int64_t p0 = 0; p0 < kc; p0 += 16) {
                /* the next 16 x 16 block's rows (the next block of columns) */
                if (p0 + 16 < kc)
                    for (int64_t i = 0; i < rows; i++)
                        _mm_prefetch((const char *)(src + i * ldb + p0 + 16), _MM_HINT_T0);
                transpose_block(src + p0, ldb, (int)rows, min64(16, kc - p0), dst + p0 * NR, NR, (__mmask16)0xFFFF,
                                NULL);
            }
        }
    }
}

/* ---- Driver ---- */

/* The shared state of a split balanced at run time (see the header comment): rows (or columns, splitting n) in nb
 * blocks of ub, thread t owning blocks [first[t], first[t + 1]); its units (pass, block) are numbered pass-major and
 * next[t] counts those taken; done[b] is the number of passes finished on block b. */
typedef struct sgemm_sched {
    int nth;
    int64_t ub, nb, kcb, ncb, npc, npass;
    int64_t first[DYN_MAX_THREADS + 1];
    struct {
        _Atomic int64_t v;
        char pad[64 - sizeof(int64_t)]; /* one counter per cache line */
    } next[DYN_MAX_THREADS];
    _Atomic int32_t done[DYN_MAX_BLOCKS];
} sgemm_sched;

typedef struct sgemm_args {
    bool ta, tb, split_n;
    int64_t m, n, k, lda, ldb, ldc;
    const float *a, *b, *bias;
    float *c;
    float beta;
    double *apart;      /* the row sums of a per row block ([nb][k], see lt__sgemm_avx512's asum), or NULL */
    sgemm_sched *sched; /* a split balanced at run time; NULL: the fixed split */
} sgemm_args;

/* The micro-kernel along one row of tiles: c[0:mr, 0:nc] (=|+=) ap (a micro-panel) * the nc/32 b micro-panels
 * (+ bias[0:nc], when not NULL). */
LT_AVX512 static void tile_row(int mr, int64_t kc, const float *ap, const float *bp, const float *bias, int64_t nc,
                               float *crow, int64_t ldc, int mode, float beta) {
    tile_fn fn = tiles[mr];
    for (int64_t jr = 0; jr < nc; jr += NR) {
        int64_t nr = nc - jr;
        __mmask16 k0 = lt__lanes16(nr), k1 = lt__lanes16(nr > 16 ? nr - 16 : 0);
        fn(kc, ap, bp + jr * kc, bias ? bias + jr : NULL, crow + jr, ldc, k0, k1, mode, beta);
    }
}

/* rows [ic, ic + rows) of op(a), k in [pc, pc + kc), as consecutive micro-panels (each MR * kc floats) at ap; with
 * psum (op(a) = a only), their row sums are added to psum[0:kc], panel by panel. */
LT_AVX512 LT_INLINE void pack_a(const sgemm_args *g, int64_t ic, int64_t rows, int64_t pc, int64_t kc, float *ap,
                                double *psum) {
    if (g->ta) {
        pack_a_t(g->a + pc * g->lda + ic, g->lda, rows, kc, ap);
        return;
    }
    for (int64_t q = 0; q < rows; q += MR, ap += MR * kc)
        pack_a_n(g->a + (ic + q) * g->lda + pc, g->lda, (int)min64(MR, rows - q), kc, ap, psum);
}

LT_AVX512 LT_INLINE void pack_b(const sgemm_args *g, int64_t jc, int64_t nc, int64_t pc, int64_t kc, float *bp) {
    if (g->tb)
        pack_b_t(g->b + jc * g->ldb + pc, g->ldb, kc, nc, bp);
    else
        pack_b_n(g->b + pc * g->ldb + jc, g->ldb, kc, nc, bp);
}

/* c[ic:ic+rows, jc:jc+nc] (=|+=) the a micro-panels at ap (packed there first when `pack`, adding their row sums to
 * psum when not NULL) * the packed b block. */
LT_AVX512 static void row_block(const sgemm_args *g, int64_t ic, int64_t rows, int64_t pc, int64_t kc, float *ap,
                                bool pack, double *psum, const float *bp, int64_t jc, int64_t nc, int mode) {
    if (pack) pack_a(g, ic, rows, pc, kc, ap, psum);
    for (int64_t q = 0; q < rows; q += MR)
        tile_row((int)min64(MR, rows - q), kc, ap + q * kc, bp, pc == 0 && g->bias ? g->bias + jc : NULL, nc,
                 g->c + (ic + q) * g->ldc + jc, g->ldc, mode, g->beta);
}

/* k block and column block for cols columns of op(b): kcb, the balanced k blocks of at most KC_MAX, and ncb, the
 * balanced column blocks of at most the widest b block beside MC_PANELS a micro-panels in the buffer (NC_MAX when
 * kcb = KC_MAX, wider for a shorter k: the same L2 footprint, so fewer column blocks pack a again). */
static void blocking(int64_t k, int64_t cols, int64_t *kcb, int64_t *ncb) {
    *kcb = cdiv(k, cdiv(k, KC_MAX));
    int64_t nc_max = (BUF_MAIN - MC * *kcb) / *kcb / NR * NR;
    *ncb = cdiv(cdiv(cols, cdiv(cols, nc_max)), NR) * NR;
}

/* The widest b block (whole panels; 0 or less when none fits) beside a resident a of `rows` rows by kcb. */
static int64_t beside_resident(int64_t rows, int64_t kcb) {
    return (BUF_MAIN - cdiv(rows, MR) * MR * kcb) / kcb / NR * NR;
}

/* The column block width with a resident (see sgemm_worker) for rows x cols, or 0 when a does not stay resident:
 * when the columns take several nc blocks, the classic loops would pack the rows of a again for each. If the packed
 * a of all the rows (rows x kcb) leaves room in the buffer for a b block of at least NC_MIN_RES columns, each k block
 * of a is packed once instead (during the first column block) and kept, with narrower column blocks of b in the rest
 * of the buffer (a and b together stay within the 1 MiB L2). */
static int64_t resident_nc(int64_t rows, int64_t cols, int64_t kcb, int64_t ncb) {
    int64_t nc_res = beside_resident(rows, kcb);
    if (cols <= ncb || nc_res < NC_MIN_RES) return 0;
    return cdiv(cdiv(cols, cdiv(cols, nc_res)), NR) * NR; /* <= nc_res */
}

/* Rows per block of a balanced split of m, and of the row sums of a: whole MC-row steps, at most DYN_MAX_BLOCKS
 * blocks. Depends on m alone. */
static int64_t sum_block_rows(int64_t m) { return cdiv(cdiv(m, MC), DYN_MAX_BLOCKS) * MC; }

static int c_mode(const sgemm_args *g, int64_t pc) {
    return pc > 0 || g->beta == 1.0f ? C_ADD : g->beta == 0.0f ? C_STORE : C_BETA;
}

/* Sets up s for a split over nth threads balanced at run time; false when g does not take one, and the fixed split
 * runs (more than DYN_MAX_THREADS threads, a split of m whose rows per thread keep a resident, a split of n whose a
 * cannot stay resident, or more than DYN_MAX_BLOCKS column blocks). */
static bool sched_init(sgemm_sched *s, const sgemm_args *g, int nth) {
    if (nth < 2 || nth > DYN_MAX_THREADS) return false;
    blocking(g->k, g->n, &s->kcb, &s->ncb);
    s->npc = cdiv(g->k, s->kcb);
    if (g->split_n) {
        /* blocks of columns, at least 4 per thread and pass, with all of a resident beside them */
        int64_t nc_res = beside_resident(g->m, s->kcb);
        if (nc_res < NC_MIN_RES) return false;
        int64_t per = cdiv(cdiv(g->n, NR), 4 * (int64_t)nth);
        s->ub = min64(per * NR, nc_res);
        s->npass = s->npc;
    } else {
        if (resident_nc(cdiv(cdiv(g->m, MR), nth) * MR, g->n, s->kcb, s->ncb) > 0) return false;
        s->ub = sum_block_rows(g->m);
        s->npass = cdiv(g->n, s->ncb) * s->npc;
    }
    s->nb = cdiv(g->split_n ? g->n : g->m, s->ub);
    if (s->nb > DYN_MAX_BLOCKS) return false;
    s->nth = nth;
    for (int t = 0; t <= nth; t++) s->first[t] = s->nb * t / nth;
    for (int t = 0; t < nth; t++) atomic_init(&s->next[t].v, 0);
    for (int64_t b = 0; b < s->nb; b++) atomic_init(&s->done[b], 0);
    return true;
}

/* A thread of a balanced split (see the header comment): its own units, then the others' (each owner's counter in
 * turn until all are spent). Whichever thread takes a unit, it does the same arithmetic on the same elements. */
LT_AVX512 static void sched_worker(const sgemm_args *g, int tid, float *buf) {
    sgemm_sched *s = g->sched;
    bool cols = g->split_n;
    /* rows: the pass's b block, then the a micro-panels being packed; columns: the unit's b block, then all of a */
    float *bp = buf, *ap = buf + s->kcb * (cols ? s->ub : s->ncb);
    int64_t packed = -1; /* the pass whose b block (rows) or a (columns) is packed */
    for (int o = tid % s->nth, spent = 0; spent < s->nth;) {
        int64_t own = s->first[o + 1] - s->first[o];
        int64_t u = atomic_fetch_add_explicit(&s->next[o].v, 1, memory_order_relaxed);
        if (u >= own * s->npass) {
            o = (o + 1) % s->nth;
            spent++;
            continue;
        }
        int64_t pass = u / own, blk = s->first[o] + u % own;
        int64_t pc = pass % s->npc * s->kcb, kc = min64(s->kcb, g->k - pc);
        int64_t jc = cols ? blk * s->ub : pass / s->npc * s->ncb, nc = min64(cols ? s->ub : s->ncb, g->n - jc);
        int64_t r0 = cols ? 0 : blk * s->ub, r1 = cols ? g->m : min64(g->m, r0 + s->ub);
        bool fresh = pass != packed;
        packed = pass;
        if (cols || fresh) pack_b(g, jc, nc, pc, kc, bp);
        bool pack_rows = !cols || fresh;
        if (cols && fresh && g->ta) { /* all of a^T in one pass over k, reading each of its rows once */
            pack_a(g, 0, g->m, pc, kc, ap, NULL);
            pack_rows = false;
        }
        /* the block's row sums of a over this k block, while its first column block packs it */
        double *psum = g->apart && jc == 0 ? g->apart + blk * g->k + pc : NULL;
        if (psum)
            for (int64_t p = 0; p < kc; p++) psum[p] = 0;
        /* the block's previous pass, when another thread took it, may still be running */
        while (atomic_load_explicit(&s->done[blk], memory_order_acquire) != pass) __builtin_ia32_pause();
        for (int64_t ic = r0; ic < r1; ic += MC)
            row_block(g, ic, min64(MC, r1 - ic), pc, kc, cols ? ap + ic * kc : ap, pack_rows, psum, bp, jc, nc,
                      c_mode(g, pc));
        atomic_store_explicit(&s->done[blk], (int32_t)(pass + 1), memory_order_release);
    }
}

/* Thread tid of nth: its share of the tiles, start to end (or, with g->sched, sched_worker). buf holds BUF_FLOATS
 * floats, 64-byte aligned. */
LT_AVX512 static void sgemm_worker(const sgemm_args *g, int tid, int nth, float *buf) {
    if (g->sched) {
        sched_worker(g, tid, buf);
        return;
    }
    int64_t m0 = 0, m1 = g->m, n0 = 0, n1 = g->n;
    if (g->split_n) {
        int64_t panels = cdiv(g->n, NR);
        n0 = panels * tid / nth * NR;
        n1 = min64(g->n, panels * (tid + 1) / nth * NR);
    } else {
        int64_t panels = cdiv(g->m, MR);
        m0 = panels * tid / nth * MR;
        m1 = min64(g->m, panels * (tid + 1) / nth * MR);
    }
    if (m0 >= m1 || n0 >= n1) return;
    int64_t kcb, ncb;
    blocking(g->k, n1 - n0, &kcb, &ncb);
    /* a resident: the loops become pc, jc, ic */
    int64_t ncr = resident_nc(m1 - m0, n1 - n0, kcb, ncb);
    if (ncr > 0) {
        float *bp = buf, *apall = buf + kcb * ncr;
        for (int64_t pc = 0; pc < g->k; pc += kcb) {
            int64_t kc = min64(kcb, g->k - pc);
            for (int64_t jc = n0; jc < n1; jc += ncr) {
                int64_t nc = min64(ncr, n1 - jc);
                pack_b(g, jc, nc, pc, kc, bp);
                for (int64_t ic = m0; ic < m1; ic += MC)
                    row_block(g, ic, min64(MC, m1 - ic), pc, kc, apall + (ic - m0) * kc, jc == n0, NULL, bp, jc, nc,
                              c_mode(g, pc));
            }
        }
        return;
    }
    float *bp = buf, *ap = buf + kcb * ncb;
    for (int64_t jc = n0; jc < n1; jc += ncb) {
        int64_t nc = min64(ncb, n1 - jc);
        for (int64_t pc = 0; pc < g->k; pc += kcb) {
            int64_t kc = min64(kcb, g->k - pc);
            pack_b(g, jc, nc, pc, kc, bp);
            for (int64_t ic = m0; ic < m1; ic += MC)
                row_block(g, ic, min64(MC, m1 - ic), pc, kc, ap, true, NULL, bp, jc, nc, c_mode(g, pc));
        }
    }
}

/* c = beta c, for k == 0 (beta == 0 writes zeros without reading). */
static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f)
            memset(row, 0, (size_t)n * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) row[j] *= beta;
    }
}

/* asum[0:k] from the per-block partials apart [nb][k]: added in block order, in double (in tot, k doubles), rounded
 * once. */
static void asum_reduce(const double *apart, int64_t nb, int64_t k, double *tot, float *asum) {
    for (int64_t p = 0; p < k; p++) tot[p] = 0;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t p = 0; p < k; p++) tot[p] += apart[b * k + p];
    for (int64_t p = 0; p < k; p++) asum[p] = (float)tot[p];
}

/* asum[p0:p1] as the packer computes it (see lt__sgemm_avx512): op(a) = a in blocks of sum_block_rows(m) rows, each
 * block's partial the panels' sums added in order (add_panel_sum), the partials added in block order; op(a) = a^T
 * summed in double. s holds 2 k doubles (this range's slices are used). */
LT_AVX512 static void asum_range(bool ta, int64_t m, int64_t k, const float *a, int64_t lda, int64_t p0, int64_t p1,
                                 float *asum, double *s) {
    if (ta) {
        for (int64_t p = p0; p < p1; p++) {
            double t = 0;
            for (int64_t i = 0; i < m; i++) t += a[p * lda + i];
            asum[p] = (float)t;
        }
        return;
    }
    double *part = s, *tot = s + k;
    int64_t ub = sum_block_rows(m);
    for (int64_t p = p0; p < p1; p++) tot[p] = 0;
    for (int64_t r0 = 0; r0 < m; r0 += ub) {
        int64_t r1 = min64(m, r0 + ub);
        for (int64_t p = p0; p < p1; p++) part[p] = 0;
        for (int64_t q = r0; q < r1; q += MR) {
            int mr = (int)min64(MR, r1 - q);
            for (int64_t c = p0; c < p1; c += 16) {
                int64_t np = min64(16, p1 - c);
                __m512 r[MR];
                load_rows(a + q * lda + c, lda, mr, np, r, MR);
                add_panel_sum(r, np, part + c);
            }
        }
        for (int64_t p = p0; p < p1; p++) tot[p] += part[p];
    }
    for (int64_t p = p0; p < p1; p++) asum[p] = (float)tot[p];
}

/* asum in a pass of its own, columns of op(a) spread over the team in runs of 64 (each element's sum is the same
 * whichever thread runs it). */
static void asum_direct(bool ta, int64_t m, int64_t k, const float *a, int64_t lda, float *asum, double *s) {
    int64_t runs = cdiv(k, 64);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && (double)m * (double)k >= PAR_MIN_MNK / 4)
#endif
    for (int64_t r = 0; r < runs; r++) asum_range(ta, m, k, a, lda, r * 64, min64(k, r * 64 + 64), asum, s);
}

bool lt__sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float beta, const float *bias, float *asum, float *c, int64_t ldc) {
    if (!lt__sgemm_avx512_available()) return false;
    if (asum && k <= 0) asum = NULL;  /* nothing to sum */
    if (m <= 0 || n <= 0 || k <= 0) { /* no products: asum straight from a (zeros when m = 0) */
        if (asum) {
            double *sums = thread_sums(2 * (size_t)k);
            if (!sums) return false;
            asum_direct(ta, m, k, a, lda, asum, sums);
        }
    }
    if (m <= 0 || n <= 0) return true;
    if (k <= 0) {
        scale_c(m, n, beta, c, ldc);
        if (bias)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) c[i * ldc + j] += bias[j];
        return true;
    }
    sgemm_args g = {.ta = ta,
                    .tb = tb,
                    .split_n = n >= m,
                    .m = m,
                    .n = n,
                    .k = k,
                    .lda = lda,
                    .ldb = ldb,
                    .ldc = ldc,
                    .a = a,
                    .b = b,
                    .bias = bias,
                    .c = c,
                    .beta = beta};
    int nt = 1;
#ifdef _OPENMP
    if (!omp_in_parallel() && (double)m * (double)n * (double)k >= PAR_MIN_MNK) nt = omp_get_max_threads();
#endif
    int64_t panels = g.split_n ? cdiv(n, NR) : cdiv(m, MR);
    if (nt > panels) nt = (int)panels;
    sgemm_sched sched;
    if (nt > 1 && sched_init(&sched, &g, nt)) g.sched = &sched;
    /* a's row sums: while its blocks are packed where the balanced split of m packs each element of a exactly once
     * (in its first column block), into per-block partials; otherwise after the product, by asum_direct (the same
     * sums) */
    bool fused = asum && g.sched && !g.split_n && !ta && g.sched->nb * k <= SUM_FUSED_MAX;
    double *sums = NULL;
    if (asum) {
        sums = thread_sums(fused ? (size_t)((g.sched->nb + 1) * k) : 2 * (size_t)k); /* fused: partials, then a total */
        if (!sums) return false;
        if (fused) g.apart = sums;
    }
    if (nt <= 1) {
        float *buf = thread_buf();
        if (!buf) return false;
        sgemm_worker(&g, 0, 1, buf);
        if (asum) asum_direct(ta, m, k, a, lda, asum, sums);
        return true;
    }
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        float *buf = thread_buf();
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        int f;
#pragma omp atomic read
        f = failed;
        if (!f) sgemm_worker(&g, omp_get_thread_num(), omp_get_num_threads(), buf);
    }
#endif
    if (failed) return false;
    if (fused)
        asum_reduce(sums, g.sched->nb, k, sums + g.sched->nb * k, asum);
    else if (asum)
        asum_direct(ta, m, k, a, lda, asum, sums);
    return true;
}

#else /* not x86-64 GCC/Clang */

bool lt__sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float beta, const float *bias, float *asum, float *c, int64_t ldc) {
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)beta, (void)bias,
        (void)asum, (void)c, (void)ldc;
    return false;
}

#endif
