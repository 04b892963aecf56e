/* Internal error helpers: set the thread-local message where a failure starts, propagate it everywhere else.
 * Never abort on a caller's input; LT_ASSERT is for broken internal invariants only. */
#ifndef LT_CORE_ERROR_H
#define LT_CORE_ERROR_H

#include "libtrain/core.h"

#include <stdio.h>
#include <stdlib.h>

/* Sets the thread's message (printf-style) and returns status, so a failure reads `return lt__err(...)`. */
lt_status lt__err(lt_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the message at the start of a public call. */
void lt__clear_error(void);

#define LT_TRY(expr)                                                                                                   \
    do {                                                                                                               \
        lt_status lt__s = (expr);                                                                                      \
        if (lt__s != LT_OK) return lt__s;                                                                              \
    } while (0)

/* Like LT_TRY, but jumps to a cleanup label, keeping the status in a local `st`. */
#define LT_TRY_GOTO(expr, label)                                                                                       \
    do {                                                                                                               \
        st = (expr);                                                                                                   \
        if (st != LT_OK) goto label;                                                                                   \
    } while (0)

/* Argument checks that name the calling public function through `fn`, a `static const char *` or literal. */
#define LT_CHECK_NOT_NULL(fn, p)                                                                                       \
    do {                                                                                                               \
        if ((p) == NULL) return lt__err(LT_ERR_ARG, "%s: %s is NULL", (fn), #p);                                       \
    } while (0)

#define LT_ASSERT(cond)                                                                                                \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "libtrain: internal invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Formats a shape as "4x3" into buf (for messages). Returns buf. */
char *lt__fmt_shape(char *buf, size_t n, const int64_t *shape, int ndim);
#define LT_SHAPE_STR_LEN 160

#endif
