/* Minimal test harness shared by the C tests: checks that report file and line, random inputs from a generator
 * independent of the library's Philox, f64 readback, and a finite-difference gradient check.
 * Each test program ends by printing "N passed, N failed" and exits non-zero on any failure. */
#ifndef LT_TEST_H
#define LT_TEST_H

#include "libtrain/libtrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int tt_failed_checks;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
            tt_failed_checks++;                                                                                        \
        }                                                                                                              \
    } while (0)

/* Asserts LT_OK, printing lt_last_error() otherwise; returns from the test function (which must return void). */
#define CHECK_OK(expr)                                                                                                 \
    do {                                                                                                               \
        lt_status tt__s = (expr);                                                                                      \
        if (tt__s != LT_OK) {                                                                                          \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr, lt_status_name(tt__s),           \
                    lt_last_error());                                                                                  \
            tt_failed_checks++;                                                                                        \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

/* Asserts that expr fails with status st and that lt_last_error() names fn. */
#define CHECK_ERR(expr, st, fn)                                                                                        \
    do {                                                                                                               \
        lt_status tt__s = (expr);                                                                                      \
        if (tt__s != (st)) {                                                                                           \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #expr,                    \
                    lt_status_name(tt__s), lt_status_name(st), lt_last_error());                                       \
            tt_failed_checks++;                                                                                        \
        } else if (strstr(lt_last_error(), (fn)) == NULL) {                                                            \
            fprintf(stderr, "%s:%d: message \"%s\" does not name %s\n", __FILE__, __LINE__, lt_last_error(), (fn));    \
            tt_failed_checks++;                                                                                        \
        }                                                                                                              \
    } while (0)

/* CHECK_ERR for a call that returns a tensor through `out`: also checks that the failed call set *out to NULL
 * (it is first set to a sentinel that is not NULL). */
#define CHECK_ERR_OUT(call, out, st, fn)                                                                               \
    do {                                                                                                               \
        (out) = (lt_tensor *)&tt_sentinel;                                                                             \
        CHECK_ERR(call, st, fn);                                                                                       \
        CHECK((out) == NULL);                                                                                          \
    } while (0)
extern int tt_sentinel;

/* Runs one test function, counting it as passed when it added no failed check. */
#define RUN(test)                                                                                                      \
    do {                                                                                                               \
        int tt__before = tt_failed_checks;                                                                             \
        lt_scope_begin();                                                                                              \
        test();                                                                                                        \
        lt_scope_end();                                                                                                \
        tt_record(#test, tt_failed_checks == tt__before);                                                              \
    } while (0)

void tt_record(const char *name, bool ok);
/* Prints the summary line and returns the process exit code. */
int tt_finish(void);

/* ---- Random inputs (xorshift, seeded; independent of libtrain's RNG) ---- */
void tt_seed(uint64_t seed);
double tt_uniform(double lo, double hi);
/* A contiguous CPU tensor of uniform values in [lo, hi). Float dtypes only. Owned by the current scope. */
lt_tensor *tt_rand(const int64_t *shape, int ndim, lt_dtype dtype, double lo, double hi);
/* Random integers in [0, n). Integer dtypes. */
lt_tensor *tt_randint(const int64_t *shape, int ndim, lt_dtype dtype, int64_t n);
/* Uniform values in [-2, 2) stored one of three ways with the same logical shape: layout 0 contiguous, 1 every
 * other element of a wider buffer (tt_strided), 2 a permuted view of a tensor stored with its dims reversed. */
lt_tensor *tt_layout(const int64_t *shape, int ndim, lt_dtype dtype, int layout);
/* A non-contiguous view (every other element of a wider buffer along the last dim) holding t's values. */
lt_tensor *tt_strided(const lt_tensor *t);

/* ---- Readback ---- */
/* Row-major values of any tensor as a malloc'd f64 array (caller frees). */
double *tt_values(const lt_tensor *t);
/* Max |a - b| / (atol + rtol * |ref|) style check: prints the first offender and returns false when any element
 * of got differs from ref by more than atol + rtol * |ref|, or is NaN where ref is not. */
bool tt_close(const char *what, const double *got, const double *ref, int64_t n, double atol, double rtol);
/* tt_close against a tensor's values. */
bool tt_tensor_close(const char *what, const lt_tensor *got, const double *ref, double atol, double rtol);

/* ---- Gradient check ----
 * f computes one output from the inputs. Every float input must be a contiguous f64 CPU leaf with requires_grad.
 * The check draws a random upstream gradient r, back-propagates it, and compares each input's gradient with the
 * central difference (L(x + eps) - L(x - eps)) / 2 eps of L = sum(f(x) * r), element by element. */
typedef lt_status (*tt_fn)(void *ctx, lt_tensor **inputs, lt_tensor **out);
bool tt_gradcheck(const char *what, tt_fn f, void *ctx, lt_tensor **inputs, int n_inputs);
/* A contiguous f64 leaf of uniform values in [lo, hi) that requires grad. */
lt_tensor *tt_leaf(const int64_t *shape, int ndim, double lo, double hi);

#endif
