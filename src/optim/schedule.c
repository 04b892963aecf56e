/* Learning-rate schedules: pure functions of the step, so a resumed run gets the same rates as an uninterrupted one. */
#include "libtrain/optim.h"

#include <math.h>

/* Linear warm-up (step + 1) / warmup, so the first step already moves, then half a cosine from max_lr at `warmup`
 * down to min_lr at `total`, as llm.c and nanoGPT schedule GPT-2. A negative warmup counts as none, a negative step
 * as step 0; with total <= warmup the warm-up ends straight at min_lr. */
LT_API double lt_lr_cosine(int64_t step, int64_t warmup_steps, int64_t total_steps, double max_lr, double min_lr) {
    if (step < 0) step = 0;
    if (step < warmup_steps) return max_lr * (double)(step + 1) / (double)warmup_steps;
    if (step >= total_steps) return min_lr;
    /* here max(warmup_steps, 0) <= step < total_steps, so the span is positive */
    const int64_t start = warmup_steps > 0 ? warmup_steps : 0;
    const double ratio = (double)(step - start) / (double)(total_steps - start);
    return min_lr + 0.5 * (1.0 + cos(M_PI * ratio)) * (max_lr - min_lr);
}
