/* Thread count for CPU kernels: one OpenMP runtime serves both our loops and OpenBLAS (Debian's OpenMP build),
 * so setting it in one place keeps the two from oversubscribing the cores. */
#include "core/error.h"

#include <omp.h>

void openblas_set_num_threads(int num_threads);

LT_API lt_status lt_set_num_threads(int n) {
    lt__clear_error();
    if (n < 0) return lt__err(LT_ERR_ARG, "lt_set_num_threads: n is %d, must be >= 0", n);
    if (n == 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return LT_OK;
}

LT_API int lt_get_num_threads(void) { return omp_get_max_threads(); }
