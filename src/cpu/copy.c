/* CPU kernels for memory and creation: fill, strided copy with dtype conversion, arange, Philox draws.
 * Copies walk N-d indices only when a layout needs it; contiguous same-dtype copies are one memcpy, split over the
 * threads when large (as are zero-fills). */
#include "core/error.h"
#include "core/philox.h"
#include "cpu/cpu.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Contiguous moves and zero-fills of at least this many bytes are split over the OpenMP team: one core's stream gets
 * about half of the memory bandwidth (copying on the 2-core Zen 4: 24 GB/s on one thread, 46 on two). The gradient
 * of a tied 50304 x 768 embedding (155 MB) is one such move per step. */
#define PAR_BYTES ((size_t)4 << 20)

/* The calling thread's share [*lo, *hi) of `bytes` inside a parallel region, cut at 4 KiB multiples. */
static void byte_span(size_t bytes, size_t *lo, size_t *hi) {
    const size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    const size_t chunk = ((bytes + nt - 1) / nt + 4095) & ~(size_t)4095;
    *lo = t * chunk < bytes ? t * chunk : bytes;
    *hi = *lo + chunk < bytes ? *lo + chunk : bytes;
}

static void move_bytes(char *d, const char *s, size_t bytes) {
    const uintptr_t a = (uintptr_t)d, b = (uintptr_t)s;
    if (bytes < PAR_BYTES || (a < b + bytes && b < a + bytes)) { /* overlapping: only memmove's order is right */
        memmove(d, s, bytes);
        return;
    }
#pragma omp parallel
    {
        size_t lo, hi;
        byte_span(bytes, &lo, &hi);
        memcpy(d + lo, s + lo, hi - lo);
    }
}

static void zero_bytes(char *p, size_t bytes) {
#pragma omp parallel if (bytes >= PAR_BYTES)
    {
        size_t lo, hi;
        byte_span(bytes, &lo, &hi);
        memset(p + lo, 0, hi - lo);
    }
}

lt_status lt__cpu_fill(lt_tensor *y, double value) {
    int64_t n = lt__numel(y->shape, y->ndim);
    size_t es = lt_dtype_size(y->dtype);
    char *p = lt__data(y);
    if (n == 0) return LT_OK;
    if (value == 0.0 && !signbit(value)) { /* all-zero bits in every dtype */
        zero_bytes(p, (size_t)n * es);
        return LT_OK;
    }
    lt__store(p, 0, y->dtype, value);
    for (int64_t i = 1; i < n; i++) memcpy(p + i * (int64_t)es, p, es);
    return LT_OK;
}

lt_status lt__cpu_arange(lt_tensor *y, double start, double step) {
    int64_t n = lt__numel(y->shape, y->ndim);
    char *p = lt__data(y);
    for (int64_t i = 0; i < n; i++) lt__store(p, i, y->dtype, start + (double)i * step);
    return LT_OK;
}

/* Copies one element of es bytes without conversion. */
static inline void lt__move(char *d, const char *s, size_t es) {
    switch (es) {
    case 1: *d = *s; break;
    case 2: memcpy(d, s, 2); break;
    case 4: memcpy(d, s, 4); break;
    default: memcpy(d, s, 8); break;
    }
}

lt_status lt__cpu_copy(lt_tensor *dst, const lt_tensor *src) {
    int nd = dst->ndim;
    int64_t n = lt__numel(dst->shape, nd);
    if (n == 0) return LT_OK;
    size_t des = lt_dtype_size(dst->dtype), ses = lt_dtype_size(src->dtype);
    char *dp = lt__data(dst);
    const char *sp = lt__data(src);
    bool same = dst->dtype == src->dtype;
    if (same && lt__is_contiguous(dst) && lt__is_contiguous(src)) {
        move_bytes(dp, sp, (size_t)n * des);
        return LT_OK;
    }
    int64_t inner = nd ? dst->shape[nd - 1] : 1;
    int64_t dsi = nd ? dst->strides[nd - 1] : 1, ssi = nd ? src->strides[nd - 1] : 1;
    int64_t outer = n / inner;
    /* Contiguous rows between different storages (a bias broadcast over a GEMM's output before OpenBLAS adds onto
     * it: 8 MB per fc layer of the small config) move in parallel, each row's offsets found from its index. */
    if (same && dsi == 1 && ssi == 1 && outer > 1 && (size_t)n * des >= PAR_BYTES / 4 && dst->storage != src->storage) {
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < outer; o++) {
            int64_t doff = 0, soff = 0, rest = o;
            for (int k = nd - 2; k >= 0; k--) {
                const int64_t i = rest % dst->shape[k];
                rest /= dst->shape[k];
                doff += i * dst->strides[k];
                soff += i * src->strides[k];
            }
            memcpy(dp + doff * (int64_t)des, sp + soff * (int64_t)ses, (size_t)inner * des);
        }
        return LT_OK;
    }
    /* Walk the innermost dim in a tight loop and the outer dims with an odometer. */
    int64_t idx[LT_MAX_DIMS] = {0};
    for (int64_t o = 0; o < outer; o++) {
        int64_t doff = 0, soff = 0;
        for (int k = 0; k < nd - 1; k++) {
            doff += idx[k] * dst->strides[k];
            soff += idx[k] * src->strides[k];
        }
        char *d = dp + doff * (int64_t)des;
        const char *s = sp + soff * (int64_t)ses;
        if (same && dsi == 1 && ssi == 1) { /* rows of a transpose's outer dims or a broadcast bias: one move each */
            memmove(d, s, (size_t)inner * des);
        } else if (same) {
            for (int64_t i = 0; i < inner; i++) lt__move(d + i * dsi * (int64_t)des, s + i * ssi * (int64_t)ses, des);
        } else if (dst->dtype == LT_F32 && src->dtype == LT_F64) {
            for (int64_t i = 0; i < inner; i++) ((float *)d)[i * dsi] = (float)((const double *)s)[i * ssi];
        } else if (dst->dtype == LT_F64 && src->dtype == LT_F32) {
            for (int64_t i = 0; i < inner; i++) ((double *)d)[i * dsi] = ((const float *)s)[i * ssi];
        } else {
            for (int64_t i = 0; i < inner; i++) lt__store(d, i * dsi, dst->dtype, lt__load(s, i * ssi, src->dtype));
        }
        for (int k = nd - 2; k >= 0; k--) {
            if (++idx[k] < dst->shape[k]) break;
            idx[k] = 0;
        }
    }
    return LT_OK;
}

/* Elements per work item of a Philox draw: even, so that no Box-Muller pair is split between two items. */
#define PHILOX_CHUNK 8192

/* Word w of the stream through a one-block cache: consecutive words share a 10-round Philox block. */
typedef struct philox_cursor {
    uint64_t seed, block;
    lt__u32x4 words;
    bool valid;
} philox_cursor;

static uint32_t philox_next(philox_cursor *c, uint64_t w) {
    if (!c->valid || c->block != w >> 2) {
        c->block = w >> 2;
        c->words = lt__philox_block(c->seed, c->block);
        c->valid = true;
    }
    return c->words.v[w & 3];
}

/* Element i takes word offset + i (uniform), or the pair of words (offset + 2k, offset + 2k + 1) for i = 2k, 2k + 1
 * (normal: sin to the first, cos to the second). Each value is a pure function of (seed, offset, i), so work items
 * run in parallel and the draw is the same for every thread count; each block and each pair is computed once. */
lt_status lt__cpu_philox(lt_tensor *y, uint64_t seed, uint64_t offset, bool normal) {
    const int64_t n = lt__numel(y->shape, y->ndim);
    char *p = lt__data(y);
    const lt_dtype dt = y->dtype;
#pragma omp parallel for schedule(static) if (n > PHILOX_CHUNK)
    for (int64_t lo = 0; lo < n; lo += PHILOX_CHUNK) {
        const int64_t hi = n - lo < PHILOX_CHUNK ? n : lo + PHILOX_CHUNK;
        philox_cursor c = {.seed = seed};
        if (!normal) {
            for (int64_t i = lo; i < hi; i++)
                lt__store(p, i, dt, lt__philox_u01(philox_next(&c, offset + (uint64_t)i)));
            continue;
        }
        for (int64_t i = lo; i < hi; i += 2) {
            const uint32_t x = philox_next(&c, offset + (uint64_t)i), z = philox_next(&c, offset + (uint64_t)i + 1);
            float n0, n1;
            lt__philox_box_muller(x, z, &n0, &n1);
            lt__store(p, i, dt, n0);
            if (i + 1 < hi) lt__store(p, i + 1, dt, n1);
        }
    }
    return LT_OK;
}
