/* CUDA elementwise kernels: unary ops and their derivatives, binary and scalar arithmetic, and where, for f32 and
 * f64, with the formulas of src/cpu/elementwise.c (the reference). f64 computes in double with the CPU's formulas;
 * f32 computes in float with CUDA's float functions, and in the forms src/cpu/fastmath.h uses for GELU(tanh) (no
 * cancellation for negative x). Binary + - * / in float round exactly as the CPU's double-then-round does; scalar
 * + * rsub rdiv apply s in double as the CPU does, so the same bits come out.
 *
 * Each op is a functor; a call runs one of two kernels: the contiguous one when every operand is contiguous (flat
 * index, 16 bytes of each input per thread per pass, loaded before any store so that y may alias an input exactly), or
 * the strided one over the operands' coalesced geometry (size-1 dims dropped, dims merged where every operand steps
 * through them linearly), which turns broadcasts and transposes into offsets with one or two divisions. */
#include "common.cuh"

#include <math.h>

namespace lt_cuda {
namespace {

/* ---- Math in the compute type: float functions for f32, double ones for f64 ---- */

__device__ inline float m_exp(float x) { return expf(x); }
__device__ inline double m_exp(double x) { return ::exp(x); }
__device__ inline float m_log(float x) { return logf(x); }
__device__ inline double m_log(double x) { return ::log(x); }
__device__ inline float m_sqrt(float x) { return sqrtf(x); }
__device__ inline double m_sqrt(double x) { return ::sqrt(x); }
__device__ inline float m_tanh(float x) { return tanhf(x); }
__device__ inline double m_tanh(double x) { return ::tanh(x); }
__device__ inline float m_erfc(float x) { return erfcf(x); }
__device__ inline double m_erfc(double x) { return ::erfc(x); }
__device__ inline double m_pow(double a, double b) { return ::pow(a, b); }
__device__ inline float m_pow(float a, float b) { return powf(a, b); }

constexpr double kSqrt2OverPi = 0.79788456080286535588; /* sqrt(2/pi) */
constexpr double kGeluCubic = 0.044715;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794; /* the standard normal density at 0 */

/* GPT-2's GELU. f64: 0.5 x (1 + tanh(u)) as the CPU's reference; f32: x / (1 + e^(-2u)) as cpu/fastmath.h, which
 * keeps its relative accuracy for negative x; gelu(-inf) is NaN in both, as PyTorch gives. */
__device__ inline double gelu_tanh(double x) {
    return 0.5 * x * (1.0 + ::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
}
__device__ inline float gelu_tanh(float x) {
    const float u = (float)kSqrt2OverPi * (x + (float)kGeluCubic * x * x * x);
    const float y = x / (1.0f + expf(-2.0f * u));
    return x == -INFINITY ? x * 0.0f : y; /* -inf * 0 = NaN, as in the tanh form */
}

/* d gelu_tanh / dx. f64: 0.5 (1 + t) + 0.5 x (1 - t^2) u'; f32: s + 2 x s (1 - s) u' with s = sigmoid(2u) and
 * 1 - s = e^(-2u) s. Where e^(-2u) overflows (x below about -9.9), 1 - s is 1, not inf * 0. */
__device__ inline double gelu_tanh_grad(double x) {
    const double t = ::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * x * x);
}
__device__ inline float gelu_tanh_grad(float x) {
    const float u = (float)kSqrt2OverPi * (x + (float)kGeluCubic * x * x * x);
    const float e = expf(-2.0f * u);
    const float s = 1.0f / (1.0f + e);
    const float oms = e == INFINITY ? 1.0f : e * s;
    const float du = (float)kSqrt2OverPi * (1.0f + 3.0f * (float)kGeluCubic * x * x);
    return s + 2.0f * x * s * oms * du;
}

/* x Phi(x) = 0.5 x erfc(-x / sqrt 2), and its derivative Phi(x) + x phi(x). */
template <class T> __device__ inline T gelu_erf(T x) { return T(0.5) * x * m_erfc(-x * T(kInvSqrt2)); }
template <class T> __device__ inline T gelu_erf_grad(T x) {
    return T(0.5) * m_erfc(-x * T(kInvSqrt2)) + x * T(kInvSqrt2Pi) * m_exp(T(-0.5) * x * x);
}

/* ---- The ops as functors: f(a) or f(a, b) ---- */

struct FNeg {
    template <class T> __device__ T operator()(T a) const { return -a; }
};
struct FExp {
    template <class T> __device__ T operator()(T a) const { return m_exp(a); }
};
struct FLog {
    template <class T> __device__ T operator()(T a) const { return m_log(a); }
};
struct FSqrt {
    template <class T> __device__ T operator()(T a) const { return m_sqrt(a); }
};
struct FRsqrt {
    template <class T> __device__ T operator()(T a) const { return T(1) / m_sqrt(a); }
};
struct FTanh {
    template <class T> __device__ T operator()(T a) const { return m_tanh(a); }
};
struct FSigmoid {
    template <class T> __device__ T operator()(T a) const { return T(1) / (T(1) + m_exp(-a)); }
};
/* NaN passes through, as PyTorch's relu does. */
struct FRelu {
    template <class T> __device__ T operator()(T a) const { return a > T(0) || a != a ? a : T(0); }
};
struct FGeluTanh {
    template <class T> __device__ T operator()(T a) const { return gelu_tanh(a); }
};
struct FGeluErf {
    template <class T> __device__ T operator()(T a) const { return gelu_erf(a); }
};

/* Unary backward: gx = f(a, b) with b = gy and a the tensor the CPU reads (x, y = f(x), or gy for neg). */
struct BNeg {
    template <class T> __device__ T operator()(T, T b) const { return -b; }
};
struct BExp {
    template <class T> __device__ T operator()(T a, T b) const { return b * a; }
};
struct BLog {
    template <class T> __device__ T operator()(T a, T b) const { return b / a; }
};
struct BSqrt {
    template <class T> __device__ T operator()(T a, T b) const { return T(0.5) * b / a; }
};
struct BRsqrt {
    template <class T> __device__ T operator()(T a, T b) const { return T(-0.5) * b * a * a * a; }
};
struct BTanh {
    template <class T> __device__ T operator()(T a, T b) const { return b * (T(1) - a * a); }
};
struct BSigmoid {
    template <class T> __device__ T operator()(T a, T b) const { return b * a * (T(1) - a); }
};
struct BRelu {
    template <class T> __device__ T operator()(T a, T b) const { return a > T(0) ? b : T(0); }
};
struct BGeluTanh {
    template <class T> __device__ T operator()(T a, T b) const { return b * gelu_tanh_grad(a); }
};
struct BGeluErf {
    template <class T> __device__ T operator()(T a, T b) const { return b * gelu_erf_grad(a); }
};

struct OAdd {
    template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct OSub {
    template <class T> __device__ T operator()(T a, T b) const { return a - b; }
};
struct OMul {
    template <class T> __device__ T operator()(T a, T b) const { return a * b; }
};
struct ODiv {
    template <class T> __device__ T operator()(T a, T b) const { return a / b; }
};
struct OPow {
    template <class T> __device__ T operator()(T a, T b) const { return m_pow(a, b); }
};

/* Scalar ops apply s in double and round once, as the CPU does; for f64 the conversions are no-ops. */
struct SAdd {
    double s;
    template <class T> __device__ T operator()(T a) const { return T((double)a + s); }
};
struct SMul {
    double s;
    template <class T> __device__ T operator()(T a) const { return T((double)a * s); }
};
struct SRsub {
    double s;
    template <class T> __device__ T operator()(T a) const { return T(s - (double)a); }
};
struct SRdiv {
    double s;
    template <class T> __device__ T operator()(T a) const { return T(s / (double)a); }
};
/* a ** s: a * a for s == 2 (exact, as pow's is); f32 uses powf when s is a float, double pow otherwise. */
struct SPow {
    double s;
    __device__ double operator()(double a) const { return s == 2.0 ? a * a : ::pow(a, s); }
    __device__ float operator()(float a) const {
        const float sf = (float)s;
        if (s == 2.0) return a * a;
        return (double)sf == s ? powf(a, sf) : (float)::pow((double)a, s);
    }
};

/* ---- Geometry ---- */

/* Elements per thread per pass of the contiguous kernels: 16 bytes of each input in flight (4 floats, 2 doubles). */
template <class T> constexpr int kUnroll = 16 / (int)sizeof(T);

/* The iteration space of a call over y's contiguous elements: y's shape with size-1 dims dropped and dims merged
 * wherever each of the N inputs steps through the pair as through one dim, and each input's strides over it. */
template <int N> struct Geom {
    int ndim;
    int64_t shape[LT_MAX_DIMS];
    int64_t stride[N][LT_MAX_DIMS];
};

template <int N> Geom<N> make_geom(const lt_tensor *y, const lt_tensor *const *in) {
    Geom<N> g{};
    for (int d = 0; d < y->ndim; d++) {
        const int64_t size = y->shape[d];
        if (size == 1) continue;
        bool merge = g.ndim > 0;
        for (int k = 0; k < N && merge; k++) merge = g.stride[k][g.ndim - 1] == in[k]->strides[d] * size;
        const int slot = merge ? g.ndim - 1 : g.ndim++;
        g.shape[slot] = merge ? g.shape[slot] * size : size;
        for (int k = 0; k < N; k++) g.stride[k][slot] = in[k]->strides[d];
    }
    if (g.ndim == 0) { /* a single element */
        g.ndim = 1;
        g.shape[0] = 1;
        for (int k = 0; k < N; k++) g.stride[k][0] = 1;
    }
    return g;
}

/* Every input walks y's elements in order with unit stride: the flat kernels apply. */
template <int N> bool is_flat(const Geom<N> &g) {
    if (g.ndim != 1) return false;
    for (int k = 0; k < N; k++)
        if (g.stride[k][0] != 1 && g.shape[0] != 1) return false;
    return true;
}

/* The offsets, in elements, of element i (row-major over g's shape) in each input. */
template <int N> __device__ inline void offsets(const Geom<N> &g, int64_t i, int64_t *off) {
    for (int k = 0; k < N; k++) off[k] = 0;
    for (int d = g.ndim - 1; d > 0; d--) {
        int64_t r;
        i = div_rem(i, g.shape[d], &r);
        for (int k = 0; k < N; k++) off[k] += r * g.stride[k][d];
    }
    for (int k = 0; k < N; k++) off[k] += i * g.stride[k][0]; /* i < shape[0]: no division for the outermost dim */
}

/* ---- Kernels ---- */

/* y[i] = f(a[i]) over contiguous operands; y may be a. Each pass loads kUnroll elements a grid apart before it
 * stores any, which keeps several loads in flight per thread. */
template <class T, class F> __global__ void map1_flat(T *y, const T *a, F f, int64_t n) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (; i + (kUnroll<T> - 1) * step < n; i += kUnroll<T> * step) {
        T v[kUnroll<T>];
        for (int u = 0; u < kUnroll<T>; u++) v[u] = a[i + u * step];
        for (int u = 0; u < kUnroll<T>; u++) y[i + u * step] = f(v[u]);
    }
    for (; i < n; i += step) y[i] = f(a[i]);
}

template <class T, class F> __global__ void map2_flat(T *y, const T *a, const T *b, F f, int64_t n) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (; i + (kUnroll<T> - 1) * step < n; i += kUnroll<T> * step) {
        T va[kUnroll<T>], vb[kUnroll<T>];
        for (int u = 0; u < kUnroll<T>; u++) {
            va[u] = a[i + u * step];
            vb[u] = b[i + u * step];
        }
        for (int u = 0; u < kUnroll<T>; u++) y[i + u * step] = f(va[u], vb[u]);
    }
    for (; i < n; i += step) y[i] = f(a[i], b[i]);
}

/* The same over strided inputs (stride 0 for broadcasts); y is contiguous. */
template <class T, class F> __global__ void map1_strided(T *y, const T *a, Geom<1> g, F f, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[1];
        offsets(g, i, off);
        y[i] = f(a[off[0]]);
    }
}

template <class T, class F> __global__ void map2_strided(T *y, const T *a, const T *b, Geom<2> g, F f, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[2];
        offsets(g, i, off);
        y[i] = f(a[off[0]], b[off[1]]);
    }
}

/* y = cond ? a : b, moving the element's bits (U is an unsigned integer of its width), as the CPU does. */
template <class U> __global__ void where_flat(U *y, const uint8_t *c, const U *a, const U *b, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = c[i] ? a[i] : b[i];
}

template <class U> __global__ void where_strided(U *y, const uint8_t *c, const U *a, const U *b, Geom<3> g, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[3];
        offsets(g, i, off);
        y[i] = c[off[0]] ? a[off[1]] : b[off[2]];
    }
}

/* ---- Launchers ---- */

template <class T> unsigned flat_blocks(int64_t n) { return blocks_for((n + kUnroll<T> - 1) / kUnroll<T>); }

template <class T, class F> lt_status run1(const char *who, const lt_tensor *a, lt_tensor *y, F f) {
    const int64_t n = numel(y);
    if (n == 0) return LT_OK;
    Context &ctx = context_of(y);
    const lt_tensor *in[1] = {a};
    const Geom<1> g = make_geom<1>(y, in);
    if (is_flat(g)) {
        LT_LAUNCH((map1_flat<T, F>), flat_blocks<T>(n), kThreads, 0, ctx.stream, data<T>(y), data<const T>(a), f, n);
        LT_CU_LAUNCHED(who, "map1_flat");
    } else {
        LT_LAUNCH((map1_strided<T, F>), blocks_for(n), kThreads, 0, ctx.stream, data<T>(y), data<const T>(a), g, f, n);
        LT_CU_LAUNCHED(who, "map1_strided");
    }
    return LT_OK;
}

template <class T, class F> lt_status run2(const char *who, const lt_tensor *a, const lt_tensor *b, lt_tensor *y, F f) {
    const int64_t n = numel(y);
    if (n == 0) return LT_OK;
    Context &ctx = context_of(y);
    const lt_tensor *in[2] = {a, b};
    const Geom<2> g = make_geom<2>(y, in);
    if (is_flat(g)) {
        LT_LAUNCH((map2_flat<T, F>), flat_blocks<T>(n), kThreads, 0, ctx.stream, data<T>(y), data<const T>(a),
                  data<const T>(b), f, n);
        LT_CU_LAUNCHED(who, "map2_flat");
    } else {
        LT_LAUNCH((map2_strided<T, F>), blocks_for(n), kThreads, 0, ctx.stream, data<T>(y), data<const T>(a),
                  data<const T>(b), g, f, n);
        LT_CU_LAUNCHED(who, "map2_strided");
    }
    return LT_OK;
}

template <class U>
lt_status run_where(const char *who, const lt_tensor *c, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    const int64_t n = numel(y);
    Context &ctx = context_of(y);
    const lt_tensor *in[3] = {c, a, b};
    const Geom<3> g = make_geom<3>(y, in);
    if (is_flat(g)) {
        LT_LAUNCH((where_flat<U>), blocks_for(n), kThreads, 0, ctx.stream, data<U>(y), data<const uint8_t>(c),
                  data<const U>(a), data<const U>(b), n);
        LT_CU_LAUNCHED(who, "where_flat");
    } else {
        LT_LAUNCH((where_strided<U>), blocks_for(n), kThreads, 0, ctx.stream, data<U>(y), data<const uint8_t>(c),
                  data<const U>(a), data<const U>(b), g, n);
        LT_CU_LAUNCHED(who, "where_strided");
    }
    return LT_OK;
}

/* The backend contract, guarded as the CPU does: a known op, f32 or f64 throughout, inputs of y's shape and a
 * contiguous y. src/ops guarantees it, so a violation is a libtrain bug, reported instead of run. */
lt_status check(const char *who, int op, int op_count, const lt_tensor *y, const lt_tensor *const *in, int n_in) {
    if (op < 0 || op >= op_count) return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, op);
    if (!y || (!lt__is_contiguous(y) && numel(y) > 0))
        return lt__err(LT_ERR_INTERNAL, "%s: output must be a contiguous f32 or f64 tensor", who);
    if (y->dtype != LT_F32 && y->dtype != LT_F64)
        return lt__err(LT_ERR_DTYPE, "%s: the cuda backend computes in f32 or f64, not %s", who,
                       lt_dtype_name(y->dtype));
    for (int k = 0; k < n_in; k++)
        if (!in[k] || in[k]->dtype != y->dtype || !lt__same_shape(in[k], y))
            return lt__err(LT_ERR_INTERNAL, "%s: input %d is missing or differs from the output in dtype or shape", who,
                           k);
    return LT_OK;
}

template <class T> lt_status unary_t(lt__unary_op op, const lt_tensor *x, lt_tensor *y) {
    static const char *who = "cuda unary";
    switch (op) {
    case LT_UOP_NEG: return run1<T>(who, x, y, FNeg{});
    case LT_UOP_EXP: return run1<T>(who, x, y, FExp{});
    case LT_UOP_LOG: return run1<T>(who, x, y, FLog{});
    case LT_UOP_SQRT: return run1<T>(who, x, y, FSqrt{});
    case LT_UOP_RSQRT: return run1<T>(who, x, y, FRsqrt{});
    case LT_UOP_TANH: return run1<T>(who, x, y, FTanh{});
    case LT_UOP_SIGMOID: return run1<T>(who, x, y, FSigmoid{});
    case LT_UOP_RELU: return run1<T>(who, x, y, FRelu{});
    case LT_UOP_GELU_TANH: return run1<T>(who, x, y, FGeluTanh{});
    case LT_UOP_GELU_ERF: return run1<T>(who, x, y, FGeluErf{});
    default: return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, (int)op);
    }
}

template <class T> lt_status unary_backward_t(lt__unary_op op, const lt_tensor *a, const lt_tensor *gy, lt_tensor *gx) {
    static const char *who = "cuda unary_backward";
    switch (op) {
    case LT_UOP_NEG: return run2<T>(who, a, gy, gx, BNeg{});
    case LT_UOP_EXP: return run2<T>(who, a, gy, gx, BExp{});
    case LT_UOP_LOG: return run2<T>(who, a, gy, gx, BLog{});
    case LT_UOP_SQRT: return run2<T>(who, a, gy, gx, BSqrt{});
    case LT_UOP_RSQRT: return run2<T>(who, a, gy, gx, BRsqrt{});
    case LT_UOP_TANH: return run2<T>(who, a, gy, gx, BTanh{});
    case LT_UOP_SIGMOID: return run2<T>(who, a, gy, gx, BSigmoid{});
    case LT_UOP_RELU: return run2<T>(who, a, gy, gx, BRelu{});
    case LT_UOP_GELU_TANH: return run2<T>(who, a, gy, gx, BGeluTanh{});
    case LT_UOP_GELU_ERF: return run2<T>(who, a, gy, gx, BGeluErf{});
    default: return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, (int)op);
    }
}

template <class T> lt_status binary_t(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    static const char *who = "cuda binary";
    switch (op) {
    case LT_BOP_ADD: return run2<T>(who, a, b, y, OAdd{});
    case LT_BOP_SUB: return run2<T>(who, a, b, y, OSub{});
    case LT_BOP_MUL: return run2<T>(who, a, b, y, OMul{});
    case LT_BOP_DIV: return run2<T>(who, a, b, y, ODiv{});
    case LT_BOP_POW: return run2<T>(who, a, b, y, OPow{});
    default: return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, (int)op);
    }
}

template <class T> lt_status scalar_t(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y) {
    static const char *who = "cuda scalar";
    switch (op) {
    case LT_SOP_ADD: return run1<T>(who, x, y, SAdd{s});
    case LT_SOP_MUL: return run1<T>(who, x, y, SMul{s});
    case LT_SOP_POW: return run1<T>(who, x, y, SPow{s});
    case LT_SOP_RSUB: return run1<T>(who, x, y, SRsub{s});
    case LT_SOP_RDIV: return run1<T>(who, x, y, SRdiv{s});
    default: return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, (int)op);
    }
}

static_assert(LT_UOP_COUNT == 10 && LT_BOP_COUNT == 5 && LT_SOP_COUNT == 5, "add the new op to cuda/elementwise.cu");

} // namespace
} // namespace lt_cuda

using namespace lt_cuda;

extern "C" lt_status lt__cuda_unary(lt__unary_op op, const lt_tensor *x, lt_tensor *y) {
    const lt_tensor *in[] = {x};
    LT_TRY(check("cuda unary", (int)op, LT_UOP_COUNT, y, in, 1));
    return y->dtype == LT_F32 ? unary_t<float>(op, x, y) : unary_t<double>(op, x, y);
}

/* Reads y = f(x) for exp, sqrt, rsqrt, tanh and sigmoid, x for the others, gy alone for neg (backend.h). */
extern "C" lt_status lt__cuda_unary_backward(lt__unary_op op, const lt_tensor *x, const lt_tensor *y,
                                             const lt_tensor *gy, lt_tensor *gx) {
    static const char *who = "cuda unary_backward";
    if ((int)op < 0 || op >= LT_UOP_COUNT) return lt__err(LT_ERR_INTERNAL, "%s: unknown op %d", who, (int)op);
    const lt_tensor *a = gy;
    switch (op) {
    case LT_UOP_NEG: break;
    case LT_UOP_EXP:
    case LT_UOP_SQRT:
    case LT_UOP_RSQRT:
    case LT_UOP_TANH:
    case LT_UOP_SIGMOID: a = y; break;
    default: a = x; break;
    }
    const lt_tensor *in[] = {a, gy};
    LT_TRY(check(who, (int)op, LT_UOP_COUNT, gx, in, 2));
    return gx->dtype == LT_F32 ? unary_backward_t<float>(op, a, gy, gx) : unary_backward_t<double>(op, a, gy, gx);
}

extern "C" lt_status lt__cuda_binary(lt__binary_op op, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    const lt_tensor *in[] = {a, b};
    LT_TRY(check("cuda binary", (int)op, LT_BOP_COUNT, y, in, 2));
    return y->dtype == LT_F32 ? binary_t<float>(op, a, b, y) : binary_t<double>(op, a, b, y);
}

extern "C" lt_status lt__cuda_scalar(lt__scalar_op op, const lt_tensor *x, double s, lt_tensor *y) {
    const lt_tensor *in[] = {x};
    LT_TRY(check("cuda scalar", (int)op, LT_SOP_COUNT, y, in, 1));
    return y->dtype == LT_F32 ? scalar_t<float>(op, x, s, y) : scalar_t<double>(op, x, s, y);
}

/* Any dtype of 4 or 8 bytes moves as raw bits, as the CPU's where does. */
extern "C" lt_status lt__cuda_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *y) {
    static const char *who = "cuda where";
    if (numel(y) == 0) return LT_OK;
    if (!cond || !a || !b || cond->dtype != LT_U8 || a->dtype != y->dtype || b->dtype != y->dtype ||
        !lt__same_shape(cond, y) || !lt__same_shape(a, y) || !lt__same_shape(b, y) || !lt__is_contiguous(y))
        return lt__err(LT_ERR_INTERNAL, "%s: cond must be u8, a, b and y share a dtype and shape, y contiguous", who);
    switch (lt_dtype_size(y->dtype)) {
    case 4: return run_where<uint32_t>(who, cond, a, b, y);
    case 8: return run_where<uint64_t>(who, cond, a, b, y);
    default: return lt__err(LT_ERR_DTYPE, "%s: dtype %s, expected f32 or f64", who, lt_dtype_name(y->dtype));
    }
}
