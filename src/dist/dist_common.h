/* Small pieces that src/dist/mpi.c, nccl.c and zero.c all use, in every build (with or without MPI and NCCL).
 * Nothing outside src/dist/ includes it. */
#ifndef LT_DIST_DIST_COMMON_H
#define LT_DIST_DIST_COMMON_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The status of a call that needs MPI in a build without it, saying what to install. */
#define LT_NO_MPI(fn)                                                                                                  \
    lt__err(LT_ERR_UNSUPPORTED,                                                                                        \
            "%s: this libtrain was built without MPI; install libopenmpi-dev and openmpi-bin, then reconfigure "       \
            "with -DLT_MPI=ON",                                                                                        \
            fn)

/* 64-bit hash of a buffer, word by word (a multiply-xorshift mix): any flipped bit changes it. The MPI and the NCCL
 * paths of lt_dist_check_params_equal both use it, so they compare the same way. */
static inline uint64_t lt__dist_hash(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
}

#endif
