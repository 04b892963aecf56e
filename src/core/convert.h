/* Scalar conversions between libtrain's dtypes, one definition for the CPU backend (C) and the CUDA backend's host
 * and device code (cuda/), so that a copy gives the same bits on every device: bf16 and f16 round to nearest even,
 * and integers truncate toward zero and saturate (NaN becomes 0), where a plain C cast would be undefined. */
#ifndef LT_CORE_CONVERT_H
#define LT_CORE_CONVERT_H

#include "libtrain/core.h"

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define LT_HD __host__ __device__
#else
#define LT_HD
#endif

static inline LT_HD uint32_t lt__f32_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

static inline LT_HD float lt__bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

static inline LT_HD float lt__bf16_to_f32(uint16_t h) { return lt__bits_f32((uint32_t)h << 16); }

static inline LT_HD uint16_t lt__f32_to_bf16(float f) {
    uint32_t u = lt__f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline LT_HD float lt__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    return lt__bits_f32(u);
}

static inline LT_HD uint16_t lt__f32_to_f16(float f) {
    uint32_t u = lt__f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);  /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow (rounds to >= 65520) -> inf */
    if (a < 0x38800000u) { /* below the smallest normal: subnormal or zero, rounded to nearest even */
        if (a < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (a & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(a >> 23); /* 14..24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1); /* round mantissa to 10 bits, nearest even */
    return (uint16_t)(sign | (((r >> 23) - 127 + 15) << 10) | ((r >> 13) & 0x3ff));
}

/* lt_dtype_size for host and device code. */
static inline LT_HD int lt__dtype_bytes(lt_dtype d) {
    switch (d) {
    case LT_F64:
    case LT_I64: return 8;
    case LT_F32:
    case LT_I32: return 4;
    case LT_BF16:
    case LT_F16:
    case LT_U16: return 2;
    default: return 1;
    }
}

/* Element i of an array of dtype d, as a double (i64 beyond 2^53 rounds). */
static inline LT_HD double lt__load(const void *base, int64_t i, lt_dtype d) {
    switch (d) {
    case LT_F32: return ((const float *)base)[i];
    case LT_F64: return ((const double *)base)[i];
    case LT_BF16: return lt__bf16_to_f32(((const uint16_t *)base)[i]);
    case LT_F16: return lt__f16_to_f32(((const uint16_t *)base)[i]);
    case LT_I32: return ((const int32_t *)base)[i];
    case LT_I64: return (double)((const int64_t *)base)[i];
    case LT_U16: return ((const uint16_t *)base)[i];
    case LT_U8: return ((const uint8_t *)base)[i];
    default: return 0;
    }
}

/* Stores v as element i of an array of dtype d: floats round (bf16 and f16 through f32), integers truncate toward
 * zero and saturate, NaN becomes 0. */
static inline LT_HD void lt__store(void *base, int64_t i, lt_dtype d, double v) {
    switch (d) {
    case LT_F32: ((float *)base)[i] = (float)v; break;
    case LT_F64: ((double *)base)[i] = v; break;
    case LT_BF16: ((uint16_t *)base)[i] = lt__f32_to_bf16((float)v); break;
    case LT_F16: ((uint16_t *)base)[i] = lt__f32_to_f16((float)v); break;
    case LT_I32:
        ((int32_t *)base)[i] = v != v ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
        break;
    case LT_I64:
        ((int64_t *)base)[i] = v != v                        ? 0
                               : v >= 9.2233720368547758e18  ? INT64_MAX
                               : v <= -9.2233720368547758e18 ? INT64_MIN
                                                             : (int64_t)v;
        break;
    case LT_U16: ((uint16_t *)base)[i] = v != v || v <= 0 ? 0 : v >= 65535.0 ? 65535 : (uint16_t)v; break;
    case LT_U8: ((uint8_t *)base)[i] = v != v || v <= 0 ? 0 : v >= 255.0 ? 255 : (uint8_t)v; break;
    default: break;
    }
}

#endif
