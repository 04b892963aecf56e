/* CPU elementwise kernels (unary ops and their derivatives, binary and scalar arithmetic) for f32 and f64: the
 * reference that other backends are tested against. Every value is computed in double and rounded once on store.
 * Arguments were checked by src/ops; these kernels only guard the backend contract and report breaks as internal. */
#include "core/error.h"
#include "cpu/cpu.h"
#include "cpu/fastmath.h"
#include "cpu/gelu_avx512.h"

#include <math.h>
#include <omp.h>

#define EW_MAX_IN 2
/* Below this many elements a kernel runs on the calling thread: waking the OpenMP team costs more than it saves. */
#define EW_PARALLEL_MIN 32768

/* ---- Per-element math, in double ---- */

static const double SQRT_2_OVER_PI = 0.79788456080286535588; /* sqrt(2/pi) */
static const double GELU_CUBIC = 0.044715;
static const double INV_SQRT_2 = 0.70710678118654752440;
static const double INV_SQRT_2PI = 0.39894228040143267794; /* 1/sqrt(2 pi): the standard normal density at 0 */

/* NaN passes through, as PyTorch's relu does, instead of becoming 0. */
static inline double relu(double x) { return x > 0 || isnan(x) ? x : 0.0; }

static inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* GPT-2's gelu: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline double gelu_tanh(double x) {
    return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)));
}

/* d/dx of gelu_tanh: 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx, with t = tanh(u), du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
 */
static inline double gelu_tanh_grad(double x) {
    const double t = tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
}

/* x Phi(x) with the normal CDF Phi(x) = 0.5 (1 + erf(x / sqrt 2)) written as 0.5 erfc(-x / sqrt 2), which keeps its
 * relative accuracy for negative x where 1 + erf cancels. */
static inline double gelu_erf(double x) { return 0.5 * x * erfc(-x * INV_SQRT_2); }

/* d/dx of x Phi(x) = Phi(x) + x phi(x), phi the standard normal density. */
static inline double gelu_erf_grad(double x) {
    return 0.5 * erfc(-x * INV_SQRT_2) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
}

/* ---- Rows: the innermost loops ---- */

/* One row of a walk: out[0..n) is contiguous; input k starts at in[k] and steps stride[k] elements (0 = broadcast). */
typedef struct ew_row {
    const void *in[EW_MAX_IN];
    int64_t stride[EW_MAX_IN];
    void *out;
    int64_t n;
    double s; /* the scalar operand of scalar ops */
} ew_row;

typedef void (*ew_row_fn)(const ew_row *r);

/* A row function per storage type; the element math is the same. */
typedef struct ew_kernel {
    ew_row_fn f32, f64;
} ew_kernel;

/* Defines NAME_f32 and NAME_f64 computing out = EXPR of one input `a` (and the scalar s). Unit stride gets its own
 * loop, the whole kernel when every operand is contiguous; `omp simd` vectorises it at -O2, where GCC would not
 * add the runtime alias checks itself. Lanes stay independent even when out is exactly an input. */
#define EW_ROW1_T(NAME, T, EXPR)                                                                                       \
    static void NAME(const ew_row *r) {                                                                                \
        const T *x0 = r->in[0];                                                                                        \
        const int64_t s0 = r->stride[0];                                                                               \
        T *y = r->out;                                                                                                 \
        const double s = r->s;                                                                                         \
        (void)s;                                                                                                       \
        if (s0 == 1) {                                                                                                 \
            _Pragma("omp simd") for (int64_t i = 0; i < r->n; i++) {                                                   \
                const double a = x0[i];                                                                                \
                y[i] = (T)(EXPR);                                                                                      \
            }                                                                                                          \
        } else {                                                                                                       \
            for (int64_t i = 0; i < r->n; i++) {                                                                       \
                const double a = x0[i * s0];                                                                           \
                y[i] = (T)(EXPR);                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

/* As EW_ROW1_T for two inputs `a` and `b`. out may be the same memory as an input (in-place accumulate): each
 * element is read before it is written, at the same index. */
#define EW_ROW2_T(NAME, T, EXPR)                                                                                       \
    static void NAME(const ew_row *r) {                                                                                \
        const T *x0 = r->in[0], *x1 = r->in[1];                                                                        \
        const int64_t s0 = r->stride[0], s1 = r->stride[1];                                                            \
        T *y = r->out;                                                                                                 \
        if (s0 == 1 && s1 == 1) {                                                                                      \
            _Pragma("omp simd") for (int64_t i = 0; i < r->n; i++) {                                                   \
                const double a = x0[i], b = x1[i];                                                                     \
                y[i] = (T)(EXPR);                                                                                      \
            }                                                                                                          \
        } else {                                                                                                       \
            for (int64_t i = 0; i < r->n; i++) {                                                                       \
                const double a = x0[i * s0], b = x1[i * s1];                                                           \
                y[i] = (T)(EXPR);                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

/* The EXPR arguments below are parenthesised where clang-format would otherwise read `b * a` as a declaration. */
#define EW_ROW1(NAME, EXPR) EW_ROW1_T(NAME##_f32, float, EXPR) EW_ROW1_T(NAME##_f64, double, EXPR)
#define EW_ROW2(NAME, EXPR) EW_ROW2_T(NAME##_f32, float, EXPR) EW_ROW2_T(NAME##_f64, double, EXPR)
#define EW_KERNEL(NAME)                                                                                                \
    { NAME##_f32, NAME##_f64 }

/* Unary forward: y = f(a). */
EW_ROW1(fwd_neg, -a)
EW_ROW1(fwd_exp, exp(a))
EW_ROW1(fwd_log, log(a))
EW_ROW1(fwd_sqrt, sqrt(a))
EW_ROW1(fwd_rsqrt, (1.0 / sqrt(a)))
EW_ROW1(fwd_tanh, tanh(a))
EW_ROW1(fwd_sigmoid, sigmoid(a))
EW_ROW1(fwd_relu, relu(a))
/* GELU(tanh) is the hot elementwise op of a GPT step: its f32 rows use the vectorised form of cpu/fastmath.h
 * (within a few ulp of the double reference), contiguous ones on AVX-512 CPUs through cpu/gelu_avx512.c (bitwise the
 * same results, faster); f64 keeps the libm reference that gradchecks rely on. */
EW_ROW1_T(fwd_gelu_tanh_f64, double, gelu_tanh(a))
LT_CLONES static void fwd_gelu_tanh_f32(const ew_row *r) {
    const float *x = r->in[0];
    float *y = r->out;
    const int64_t s0 = r->stride[0];
#ifdef LT_CPU_X86
    if (s0 == 1 && lt__cpu_x86_64_v4()) {
        lt__gelu_tanh_f32_avx512(x, y, r->n);
        return;
    }
#endif
    if (s0 == 1)
        _Pragma("omp simd") for (int64_t i = 0; i < r->n; i++) y[i] = lt__gelu_tanh_f32(x[i]);
    else
        for (int64_t i = 0; i < r->n; i++) y[i] = lt__gelu_tanh_f32(x[i * s0]);
}
EW_ROW1(fwd_gelu_erf, gelu_erf(a))

_Static_assert(LT_UOP_COUNT == 10, "add the new unary op to unary_kernels and unary_backward_kernels");
static const ew_kernel unary_kernels[LT_UOP_COUNT] = {
    [LT_UOP_NEG] = EW_KERNEL(fwd_neg),
    [LT_UOP_EXP] = EW_KERNEL(fwd_exp),
    [LT_UOP_LOG] = EW_KERNEL(fwd_log),
    [LT_UOP_SQRT] = EW_KERNEL(fwd_sqrt),
    [LT_UOP_RSQRT] = EW_KERNEL(fwd_rsqrt),
    [LT_UOP_TANH] = EW_KERNEL(fwd_tanh),
    [LT_UOP_SIGMOID] = EW_KERNEL(fwd_sigmoid),
    [LT_UOP_RELU] = EW_KERNEL(fwd_relu),
    [LT_UOP_GELU_TANH] = EW_KERNEL(fwd_gelu_tanh),
    [LT_UOP_GELU_ERF] = EW_KERNEL(fwd_gelu_erf),
};

/* Unary backward: gx = gy * f'(x) with b = gy and a = whichever of x and y = f(x) gives f' most cheaply (the
 * reads column below); exp, sqrt, rsqrt, tanh and sigmoid use y, as backend.h promises. */
EW_ROW2(bwd_neg, ((void)a, -b)) /* a is gy again (see READS_NONE), unused */
EW_ROW2(bwd_exp, (b * a))
EW_ROW2(bwd_log, (b / a))
EW_ROW2(bwd_sqrt, (0.5 * b / a))
EW_ROW2(bwd_rsqrt, (-0.5 * b * a * a * a))
EW_ROW2(bwd_tanh, (b * (1.0 - a * a)))
EW_ROW2(bwd_sigmoid, (b * a * (1.0 - a)))
EW_ROW2(bwd_relu, (a > 0 ? b : 0.0))
EW_ROW2_T(bwd_gelu_tanh_f64, double, (b * gelu_tanh_grad(a)))
LT_CLONES static void bwd_gelu_tanh_f32(const ew_row *r) {
    const float *x = r->in[0], *gy = r->in[1];
    float *gx = r->out;
    const int64_t s0 = r->stride[0], s1 = r->stride[1];
#ifdef LT_CPU_X86
    if (s0 == 1 && s1 == 1 && lt__cpu_x86_64_v4()) {
        lt__gelu_tanh_grad_f32_avx512(x, gy, gx, r->n);
        return;
    }
#endif
    if (s0 == 1 && s1 == 1)
        _Pragma("omp simd") for (int64_t i = 0; i < r->n; i++) gx[i] = gy[i] * lt__gelu_tanh_grad_f32(x[i]);
    else
        for (int64_t i = 0; i < r->n; i++) gx[i] = gy[i * s1] * lt__gelu_tanh_grad_f32(x[i * s0]);
}
EW_ROW2(bwd_gelu_erf, (b * gelu_erf_grad(a)))

/* Which forward tensor a unary backward reads as `a`. NEG reads neither, and gy stands in for it. */
typedef enum ew_reads { READS_NONE, READS_X, READS_Y } ew_reads;

static const struct {
    ew_kernel kernel;
    ew_reads reads;
} unary_backward_kernels[LT_UOP_COUNT] = {
    [LT_UOP_NEG] = {EW_KERNEL(bwd_neg), READS_NONE},
    [LT_UOP_EXP] = {EW_KERNEL(bwd_exp), READS_Y},
    [LT_UOP_LOG] = {EW_KERNEL(bwd_log), READS_X},
    [LT_UOP_SQRT] = {EW_KERNEL(bwd_sqrt), READS_Y},
    [LT_UOP_RSQRT] = {EW_KERNEL(bwd_rsqrt), READS_Y},
    [LT_UOP_TANH] = {EW_KERNEL(bwd_tanh), READS_Y},
    [LT_UOP_SIGMOID] = {EW_KERNEL(bwd_sigmoid), READS_Y},
    [LT_UOP_RELU] = {EW_KERNEL(bwd_relu), READS_X},
    [LT_UOP_GELU_TANH] = {EW_KERNEL(bwd_gelu_tanh), READS_X},
    [LT_UOP_GELU_ERF] = {EW_KERNEL(bwd_gelu_erf), READS_X},
};

/* Binary: y = a OP b. */
EW_ROW2(bin_add, (a + b))
EW_ROW2(bin_sub, (a - b))
EW_ROW2(bin_mul, (a * b))
EW_ROW2(bin_div, (a / b))
EW_ROW2(bin_pow, pow(a, b))

_Static_assert(LT_BOP_COUNT == 5, "add the new binary op to binary_kernels");
static const ew_kernel binary_kernels[LT_BOP_COUNT] = {
    [LT_BOP_ADD] = EW_KERNEL(bin_add), [LT_BOP_SUB] = EW_KERNEL(bin_sub), [LT_BOP_MUL] = EW_KERNEL(bin_mul),
    [LT_BOP_DIV] = EW_KERNEL(bin_div), [LT_BOP_POW] = EW_KERNEL(bin_pow),
};

/* Scalar: y = a OP s, with s applied in double. */
EW_ROW1(sc_add, (a + s))
EW_ROW1(sc_mul, (a * s))
EW_ROW1(sc_pow, pow(a, s))
EW_ROW1(sc_rsub, (s - a))
EW_ROW1(sc_rdiv, (s / a))

_Static_assert(LT_SOP_COUNT == 5, "add the new scalar op to scalar_kernels");
static const ew_kernel scalar_kernels[LT_SOP_COUNT] = {
    [LT_SOP_ADD] = EW_KERNEL(sc_add),   [LT_SOP_MUL] = EW_KERNEL(sc_mul),   [LT_SOP_POW] = EW_KERNEL(sc_pow),
    [LT_SOP_RSUB] = EW_KERNEL(sc_rsub), [LT_SOP_RDIV] = EW_KERNEL(sc_rdiv),
};

/* ---- The walk: from strided N-d operands to rows ---- */

/* The iteration space of one call: the output's shape after coalescing, and each input's strides over it (in
 * elements; the output is contiguous, so its offset is the flat index). */
typedef struct ew_geom {
    int ndim; /* >= 1 */
    int64_t shape[LT_MAX_DIMS];
    int n_in;
    int64_t stride[EW_MAX_IN][LT_MAX_DIMS];
    const char *in[EW_MAX_IN];
    char *out;
    int64_t esize;
} ew_geom;

/* Drops size-1 dims and merges each dim into the next inner one wherever every input steps through the pair as
 * through one dim (outer stride == inner stride * inner size). Contiguous and uniformly broadcast operands thus
 * become one long row, and the rows of the rest are as long as their layout allows. */
static void ew_geom_init(ew_geom *g, lt_tensor *y, const lt_tensor *const *in, int n_in) {
    g->ndim = 0;
    g->n_in = n_in;
    g->esize = (int64_t)lt_dtype_size(y->dtype);
    g->out = lt__data(y);
    for (int k = 0; k < n_in; k++) g->in[k] = lt__data(in[k]);
    for (int d = 0; d < y->ndim; d++) {
        const int64_t size = y->shape[d];
        if (size == 1) continue;
        bool merge = g->ndim > 0;
        for (int k = 0; k < n_in && merge; k++) merge = g->stride[k][g->ndim - 1] == in[k]->strides[d] * size;
        const int slot = merge ? g->ndim - 1 : g->ndim++;
        g->shape[slot] = merge ? g->shape[slot] * size : size;
        for (int k = 0; k < n_in; k++) g->stride[k][slot] = in[k]->strides[d];
    }
    if (g->ndim == 0) { /* a single element */
        g->ndim = 1;
        g->shape[0] = 1;
        for (int k = 0; k < n_in; k++) g->stride[k][0] = 0;
    }
}

/* Runs fn over the output elements [begin, end) in row-major order: resolves begin into a multi-index once, then
 * hands over one innermost row (partial at either end of the range) at a time. */
static void ew_walk(const ew_geom *g, ew_row_fn fn, double s, int64_t begin, int64_t end) {
    const int last = g->ndim - 1;
    int64_t idx[LT_MAX_DIMS];
    int64_t rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % g->shape[d];
        rem /= g->shape[d];
    }
    ew_row r = {.s = s};
    for (int k = 0; k < g->n_in; k++) r.stride[k] = g->stride[k][last];
    for (int64_t i = begin; i < end; i += r.n) {
        r.n = g->shape[last] - idx[last] < end - i ? g->shape[last] - idx[last] : end - i;
        for (int k = 0; k < g->n_in; k++) {
            int64_t off = 0;
            for (int d = 0; d <= last; d++) off += idx[d] * g->stride[k][d];
            r.in[k] = g->in[k] + off * g->esize;
        }
        r.out = g->out + i * g->esize;
        fn(&r);
        idx[last] += r.n;
        for (int d = last; d > 0 && idx[d] == g->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

/* Start of part p when n elements are split into `parts` near-equal contiguous ranges. */
static int64_t ew_part_begin(int64_t n, int64_t parts, int64_t p) {
    return p * (n / parts) + (p < n % parts ? p : n % parts);
}

/* y = fn(inputs) elementwise, the inputs already broadcast to y's shape. Large calls give each thread one
 * contiguous range of the output; every element is computed alone, so results do not depend on the thread count. */
static void ew_run(lt_tensor *y, const lt_tensor *const *in, int n_in, const ew_kernel *kernel, double s) {
    const int64_t n = lt__numel(y->shape, y->ndim);
    if (n == 0) return;
    ew_geom g;
    ew_geom_init(&g, y, in, n_in);
    const ew_row_fn fn = y->dtype == LT_F32 ? kernel->f32 : kernel->f64;
    const int64_t parts = n > EW_PARALLEL_MIN ? omp_get_max_threads() : 1;
#pragma omp parallel for schedule(static) if (parts > 1)
    for (int64_t p = 0; p < parts; p++) ew_walk(&g, fn, s, ew_part_begin(n, parts, p), ew_part_begin(n, parts, p + 1));
}

/* Guards the backend contract before any table lookup: a known op, f32 or f64 throughout, inputs of y's shape and a
 * contiguous y. src/ops guarantees all of it, so a violation is a libtrain bug, reported instead of run. */
static lt_status ew_check(const char *who, int op, int op_count, const lt_tensor *y, const lt_tensor *const *in,
                          int n_in) {
    if (op < 0 || op >= op_count) return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, op);
    /* an empty output has no layout to get wrong */
    if (!y || (y->dtype != LT_F32 && y->dtype != LT_F64) || (!lt__is_contiguous(y) && lt__numel(y->shape, y->ndim) > 0))
        return lt__err(LT_ERR_INTERNAL, "%s: output must be a contiguous f32 or f64 tensor", who);
    for (int k = 0; k < n_in; k++) {
        if (!in[k] || in[k]->dtype != y->dtype || !lt__same_shape(in[k], y))
            return lt__err(LT_ERR_INTERNAL, "%s: input %d is missing or differs from the output in dtype or shape", who,
                           k);
    }
    return LT_OK;
}

/* ---- Backend entries ---- */

lt_status lt__cpu_unary(lt__unary_op op, const lt_tensor *x, lt_tensor *y) {
    const lt_tensor *in[] = {x};
    LT_TRY(ew_check("cpu unary", (int)op, LT_UOP_COUNT, y, in, 1));
    ew_run(y, in, 1, &unary_kernels[op], 0.0);
    return LT_OK;
}

/* Reads x or y (the other may be NULL) as unary_backward_kernels says, and gy. */
lt_status lt__cpu_unary_backward(lt__unary_op op, const lt_tensor *x, const lt_tensor *y, const lt_tensor *gy,
                                 lt_tensor *gx) {
    static const char *who = "cpu unary_backward";
    if ((int)op < 0 || op >= LT_UOP_COUNT) return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, (int)op);
    const ew_reads reads = unary_backward_kernels[op].reads;
    const lt_tensor *in[] = {reads == READS_X ? x : reads == READS_Y ? y : gy, gy};
    LT_TRY(ew_check(who, (int)op, LT_UOP_COUNT, gx, in, 2));
    ew_run(gx, in, 2, &unary_backward_kernels[op].kernel, 0.0);
    return LT_OK;
}

lt_status lt__cpu_binary(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    const lt_tensor *in[] = {a, b};
    LT_TRY(ew_check("cpu binary", (int)op, LT_BOP_COUNT, y, in, 2));
    ew_run(y, in, 2, &binary_kernels[op], 0.0);
    return LT_OK;
}

lt_status lt__cpu_scalar(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y) {
    const lt_tensor *in[] = {x};
    LT_TRY(ew_check("cpu scalar", (int)op, LT_SOP_COUNT, y, in, 1));
    ew_run(y, in, 1, &scalar_kernels[op], s);
    return LT_OK;
}
