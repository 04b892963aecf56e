/* CPU inverted dropout: element i (row-major) keeps x when the uniform of Philox word offset + i exceeds p, the draw
 * the CUDA kernel gets from curand_uniform4, so both backends zero the same elements. Consumes no other words. */
#include "core/error.h"
#include "core/philox.h"
#include "cpu/cpu.h"

/* Below this many elements an OpenMP fork/join costs more than the loop it would split. */
#define LT_DROPOUT_MIN_PARALLEL 32768

/* Element offset of row-major index i in a strided tensor; only the rare non-contiguous input pays for it. */
static int64_t strided_offset(const lt_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->strides[d];
        i /= t->shape[d];
    }
    return off;
}

lt_status lt__cpu_dropout(const lt_tensor *x, double p, double scale, uint64_t seed, uint64_t offset, lt_tensor *y,
                          lt_tensor *mask) {
    int64_t n = lt__numel(x->shape, x->ndim);
    if (x->dtype != LT_F32 && x->dtype != LT_F64)
        return lt__err(LT_ERR_DTYPE, "lt__cpu_dropout: dtype %s, expected f32 or f64", lt_dtype_name(x->dtype));
    if (n == 0) return LT_OK;
    bool f32 = x->dtype == LT_F32, contiguous = lt__is_contiguous(x);
    const void *px = lt__data(x);
    void *py = lt__data(y);
    uint8_t *pm = lt__data(mask);
    /* One Philox block gives the words of four consecutive elements; threads split the blocks that cover
     * words [offset, offset + n). */
    uint64_t first = offset >> 2;
    int64_t blocks = (int64_t)(((offset + (uint64_t)n - 1) >> 2) - first) + 1;
#pragma omp parallel for schedule(static) if (n >= LT_DROPOUT_MIN_PARALLEL)
    for (int64_t bi = 0; bi < blocks; bi++) {
        uint64_t block = first + (uint64_t)bi;
        lt__u32x4 r = lt__philox_block(seed, block);
        for (int lane = 0; lane < 4; lane++) {
            int64_t i = (int64_t)(block * 4 + (uint64_t)lane - offset);
            if (i < 0 || i >= n) continue;
            /* compared in double: the float draw converts exactly, so no rounding of p can flip a decision */
            bool keep = (double)lt__philox_u01(r.v[lane]) > p;
            int64_t xo = contiguous ? i : strided_offset(x, i);
            pm[i] = keep;
            if (f32)
                ((float *)py)[i] = keep ? ((const float *)px)[xo] * (float)scale : 0.0f;
            else
                ((double *)py)[i] = keep ? ((const double *)px)[xo] * scale : 0.0;
        }
    }
    return LT_OK;
}
