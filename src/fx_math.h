/*
 * fx_math.h -- scalar building blocks that the compiler turns into SIMD.
 *
 * Every function here is branch-free straight-line code on one element, so that
 * a loop over a fixed number of lanes calling it auto-vectorizes (check with
 * -fopt-info-vec).  Special values are handled by explicit selects, never by
 * -ffast-math: exp(-inf) = 0, exp(+inf) = inf, exp(NaN) = NaN, overflow gives
 * inf and underflow gives the correctly scaled subnormal or 0.
 *
 * Why not libm: a scalar exp call costs ~10x a vectorized polynomial on this
 * kind of machine (see docs/design.rst), and libmvec needs -ffast-math.
 */
#ifndef FX_MATH_H
#define FX_MATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#if defined(_MSC_VER)
#define FX_INLINE static __forceinline
#define FX_NOINLINE __declspec(noinline)
#else
#define FX_INLINE static inline __attribute__((always_inline))
/* one compiled copy of a loop that several callers share, so that they all
 * get its exact vectorization (and so the same sums) */
#define FX_NOINLINE __attribute__((noinline))
#endif

/* Contraction of a * b + c into an FMA is switched off for the whole build
 * (-ffp-contract=off in setup.py): otherwise the compiler fuses differently
 * in each specialization of a loop, and the same element would get
 * different bits with and without a gradient, or in the vector body and the
 * scalar tail.  The polynomials below ask for their FMAs explicitly, on
 * CPUs that have them. */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define FX_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#define FX_FMA(a, b, c) __builtin_fma((a), (b), (c))
#else
#define FX_FMAF(a, b, c) ((a) * (b) + (c))
#define FX_FMA(a, b, c) ((a) * (b) + (c))
#endif

FX_INLINE uint32_t fx_f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
FX_INLINE float fx_f32_from(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
FX_INLINE uint64_t fx_f64_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
FX_INLINE double fx_f64_from(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/*
 * expf: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then the
 * degree-7 (Cephes) polynomial, about 1 ulp.  n is rounded with the 1.5*2^23
 * "magic number" so no float->int conversion (slow, and UB on NaN) is needed.
 * 2^n is applied as two factors 2^n1 * 2^n2 so that results in the subnormal
 * range get a single correct rounding instead of flushing to zero.
 */
#define FX_EXPF_HI 88.72283935546875f      /* largest x with finite expf(x) */
#define FX_EXPF_LO (-103.97283935546875f)  /* below this expf(x) rounds to 0 */

/* exp(x) = 2^n * fx_expf_reduced(x, &t), n read from the bits of t */
FX_INLINE float fx_expf_reduced(float x, float *t_out)
{
    const float magic = 12582912.0f;        /* 1.5 * 2^23 */
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;      /* few mantissa bits: n*ln2_hi exact */
    const float ln2_lo = -2.12194440e-4f;
    /* no clamp: outside [LO, HI] the callers' selects replace whatever the
     * arithmetic produced, and a NaN flows through every step */
    float t = FX_FMAF(x, log2e, magic);
    float n = t - magic;
    float r = FX_FMAF(-n, ln2_hi, x);
    r = FX_FMAF(-n, ln2_lo, r);
    float p = 1.9875691500e-4f;
    p = FX_FMAF(p, r, 1.3981999507e-3f);
    p = FX_FMAF(p, r, 8.3334519073e-3f);
    p = FX_FMAF(p, r, 4.1665795894e-2f);
    p = FX_FMAF(p, r, 1.6666665459e-1f);
    p = FX_FMAF(p, r, 5.0000001201e-1f);
    *t_out = t;
    return FX_FMAF(p, r * r, r) + 1.0f;
}

FX_INLINE int32_t fx_expf_n(float t)
{
    return (int32_t)(fx_f32_bits(t) - fx_f32_bits(12582912.0f));
}

FX_INLINE float fx_expf(float x)
{
    float t;
    float y = fx_expf_reduced(x, &t);
    /* n is in [-150, 128]; split it so both factors are normal floats */
    int32_t ni = fx_expf_n(t);
    int32_t n1 = ni >> 1;
    int32_t n2 = ni - n1;
    float s1 = fx_f32_from((uint32_t)(n1 + 127) << 23);
    float s2 = fx_f32_from((uint32_t)(n2 + 127) << 23);
    y = (y * s1) * s2;
    y = x > FX_EXPF_HI ? INFINITY : y;
    y = x < FX_EXPF_LO ? 0.0f : y;
    return y;
}

/* exp of arguments in [-87, 0] (or NaN), whose results are normal floats:
 * a single scaling by 2^n, no underflow select.  The kernels take it for a
 * block whose smallest x - max is not below -87 (the common case), about
 * 10% faster than fx_expf_le0 */
#define FX_EXPF_NORMAL_LO (-87.0f)
FX_INLINE float fx_expf_normal(float x)
{
    float t;
    float y = fx_expf_reduced(x, &t);
    return y * fx_f32_from((uint32_t)(fx_expf_n(t) + 127) << 23);
}

/*
 * exp (double): the same scheme with a degree-13 Taylor polynomial on
 * |r| <= ln2/2 (truncation error < 2^-57), Horner form, about 1 ulp.
 * n is split in double arithmetic because AVX2 has no 64-bit arithmetic
 * shift or double->int64 conversion.
 */
#define FX_EXP_HI 709.782712893383973096   /* largest x with finite exp(x) */
#define FX_EXP_LO (-745.1332191019412)     /* below this exp(x) rounds to 0 */
#define FX_EXP_MAGIC 6755399441055744.0    /* 1.5 * 2^52 */

FX_INLINE double fx_exp_reduced(double x, double *t_out)
{
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;   /* 32 significant bits */
    const double ln2_lo = 1.90821492927058770002e-10;
    double t = FX_FMA(x, log2e, FX_EXP_MAGIC);   /* no clamp: see fx_expf_reduced */
    double n = t - FX_EXP_MAGIC;
    double r = FX_FMA(-n, ln2_hi, x);
    r = FX_FMA(-n, ln2_lo, r);
    double p = 1.0 / 6227020800.0;                 /* 1/13! */
    p = FX_FMA(p, r, 1.0 / 479001600.0);
    p = FX_FMA(p, r, 1.0 / 39916800.0);
    p = FX_FMA(p, r, 1.0 / 3628800.0);
    p = FX_FMA(p, r, 1.0 / 362880.0);
    p = FX_FMA(p, r, 1.0 / 40320.0);
    p = FX_FMA(p, r, 1.0 / 5040.0);
    p = FX_FMA(p, r, 1.0 / 720.0);
    p = FX_FMA(p, r, 1.0 / 120.0);
    p = FX_FMA(p, r, 1.0 / 24.0);
    p = FX_FMA(p, r, 1.0 / 6.0);
    p = FX_FMA(p, r, 0.5);
    *t_out = t;
    return FX_FMA(p, r * r, r) + 1.0;
}

FX_INLINE double fx_exp(double x)
{
    double t;
    double y = fx_exp_reduced(x, &t);
    /* n in [-1075, 1024]: n1 = round(n/2), n2 = n - n1, both in normal range */
    double n = t - FX_EXP_MAGIC;
    double t1 = FX_FMA(n, 0.5, FX_EXP_MAGIC);
    double n1 = t1 - FX_EXP_MAGIC;
    double t2 = (n - n1) + FX_EXP_MAGIC;
    int64_t i1 = (int64_t)(fx_f64_bits(t1) - fx_f64_bits(FX_EXP_MAGIC));
    int64_t i2 = (int64_t)(fx_f64_bits(t2) - fx_f64_bits(FX_EXP_MAGIC));
    double s1 = fx_f64_from((uint64_t)(i1 + 1023) << 52);
    double s2 = fx_f64_from((uint64_t)(i2 + 1023) << 52);
    y = (y * s1) * s2;
    y = x > FX_EXP_HI ? INFINITY : y;
    y = x < FX_EXP_LO ? 0.0 : y;
    return y;
}

/*
 * exp of arguments <= 0 (or NaN): the only kind the kernels need, since they
 * exponentiate x - max(x).  One scaling multiply instead of two: for
 * n in [-150, 0], 2^(n+64) is a normal float and the final multiply by 2^-64
 * rounds a subnormal result exactly once.  About 30% faster than fx_expf.
 */
FX_INLINE float fx_expf_le0(float x)
{
    float t;
    float y = fx_expf_reduced(x, &t);
    y = (y * fx_f32_from((uint32_t)(fx_expf_n(t) + 127 + 64) << 23)) * 5.42101086e-20f;  /* 2^-64 */
    return x < FX_EXPF_LO ? 0.0f : y;
}

FX_INLINE double fx_exp_le0(double x)
{
    double t;
    double y = fx_exp_reduced(x, &t);
    int64_t ni = (int64_t)(fx_f64_bits(t) - fx_f64_bits(FX_EXP_MAGIC));
    /* n in [-1075, 0]: 2^(n+512) is normal, then one rounding by 2^-512 */
    y = (y * fx_f64_from((uint64_t)(ni + 1023 + 512) << 52)) * 7.458340731200207e-155;
    return x < FX_EXP_LO ? 0.0 : y;
}

/* exp of arguments in [-708, 0] (or NaN), whose results are normal
 * doubles: a single scaling, as fx_expf_normal */
#define FX_EXP_NORMAL_LO (-708.0)
FX_INLINE double fx_exp_normal(double x)
{
    double t;
    double y = fx_exp_reduced(x, &t);
    int64_t ni = (int64_t)(fx_f64_bits(t) - fx_f64_bits(FX_EXP_MAGIC));
    return y * fx_f64_from((uint64_t)(ni + 1023) << 52);
}

/* the reduction and polynomial for a positive normal finite x, minus
 * ebias * log(2) (subnormals arrive scaled by 2^ebias) */
FX_INLINE double fx_log_core(double x, double ebias)
{
    uint64_t bits = fx_f64_bits(x);
    /* reduce the mantissa to [sqrt(1/2), sqrt(2)) */
    uint64_t hx = (bits >> 32) + (0x3ff00000u - 0x3fe6a09eu);
    /* exponent to double through the 2^52 magic: AVX2 cannot convert int64 */
    double e = fx_f64_from(0x4330000000000000ull | (hx >> 20)) - (4503599627370496.0 + 1023.0);
    e = e - ebias;
    uint64_t mbits = ((uint64_t)((hx & 0x000fffffu) + 0x3fe6a09eu) << 32) | (bits & 0xffffffffu);
    double f = fx_f64_from(mbits) - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * FX_FMA(w, FX_FMA(w, 1.531383769920937332e-01, 2.222219843214978396e-01), 3.999999999940941908e-01);
    double t2 = z * FX_FMA(w, FX_FMA(w, FX_FMA(w, 1.479819860511658591e-01, 1.818357216161805012e-01), 2.857142874366239149e-01), 6.666666666666735130e-01);
    double R = t2 + t1;
    double r = FX_FMA(s, hfsq + R, e * 1.90821492927058770002e-10) - hfsq + f;
    return FX_FMA(e, 6.93147180369123816490e-01, r);
}

/*
 * log(x) for x >= 1 (finite, or NaN which propagates): the only arguments the
 * block finalization needs (log k and log(1 + s/k), k >= 1).  fdlibm's
 * scheme -- x = 2^e (1 + f), s = f / (2 + f), a degree-14 polynomial in s --
 * branch-free, under 1 ulp.
 */
FX_INLINE double fx_log_ge1(double x)
{
    double r = fx_log_core(x, 0.0);
    return x == x ? r : x;
}

/*
 * log(x) for every double: fx_log_core with subnormals scaled by 2^54 first
 * and the special values selected (log 0 = -inf, log of a negative = NaN,
 * log inf = inf, NaN stays NaN).  Branch-free, so it vectorizes; under 1 ulp.
 */
FX_INLINE double fx_log(double x)
{
    int sub = x < 2.2250738585072014e-308;      /* also 0 and negatives */
    /* scale by a selected factor rather than select between two scaled
     * inputs: the compiler then evaluates the polynomial once */
    double r = fx_log_core(x * (sub ? 18014398509481984.0 : 1.0), sub ? 54.0 : 0.0);
    r = x == 0.0 ? -INFINITY : r;
    r = x < 0.0 ? NAN : r;
    r = x == INFINITY ? INFINITY : r;
    return x == x ? r : x;
}

/* the float reduction and polynomial, for positive normal finite x:
 * x = 2^k (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1), and
 * log(1 + f) = f - f^2/2 + f^3 P(f) with Cephes' degree-8 P, evaluated in
 * Estrin's form.  No division: fdlibm's s = f / (2 + f) put a divide on
 * every element's dependency chain; without it a loop of logarithms alone
 * runs about 20% faster in the AVX2 + FMA build (0.37 against 0.46 ns per
 * element on one core of this machine; in the SSE2 baseline build 1.09
 * against 1.11).  Still faithful (below 1 ulp) over every normal float,
 * against long double: 0.947 ulp worst in the baseline build, 0.937 with
 * FMA (fdlibm's form: 0.835) */
FX_INLINE float fx_logf_normal(float x, float kbias)
{
    uint32_t ix = fx_f32_bits(x) + (0x3f800000u - 0x3f3504f3u);
    float k = (float)((int32_t)(ix >> 23) - 127) - kbias;
    float f = fx_f32_from((ix & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
    float f2 = f * f, f4 = f2 * f2;
    float a = FX_FMAF(7.0376836292e-2f, f, -1.1514610310e-1f);
    float b = FX_FMAF(1.1676998740e-1f, f, -1.2420140846e-1f);
    float c = FX_FMAF(1.4249322787e-1f, f, -1.6668057665e-1f);
    float d = FX_FMAF(2.0000714765e-1f, f, -2.4999993993e-1f);
    float e = FX_FMAF(3.3333331174e-1f, f, -0.5f);
    float q = FX_FMAF(FX_FMAF(FX_FMAF(a, f2, b), f4, FX_FMAF(c, f2, d)), f2, e);
    float r = FX_FMAF(f2, q, f);
    /* log 2 = 0.693138122558 (few bits: k log2_hi exact) + 9.0580006145e-6 */
    return FX_FMAF(k, 6.9313812256e-01f, FX_FMAF(k, 9.0580006145e-06f, r));
}

FX_INLINE float fx_logf(float x)
{
    int sub = x < 1.17549435e-38f;
    float r = fx_logf_normal(x * (sub ? 33554432.0f : 1.0f), sub ? 25.0f : 0.0f);   /* 2^25 */
    r = x == 0.0f ? -INFINITY : r;
    r = x < 0.0f ? NAN : r;
    r = x == INFINITY ? INFINITY : r;
    return x == x ? r : x;
}

/* log1p(u) for finite u >= 0 (or NaN) in float: log(v) for v = 1 + u
 * rounded, plus the first-order term of what that rounding lost,
 * (u - (v - 1)) / v (v - 1 is exact).  Within 1.32 ulp on [0, 16] (1.20
 * with FMA; checked against double log1p over every float there); Goldberg's
 * log(v) u / (v - 1), as fx_log1p_ge0, reaches 2.5 ulp in float because of
 * its extra division and product */
FX_INLINE float fx_log1pf_ge0(float u)
{
    float v = 1.0f + u;
    return fx_logf_normal(v, 0.0f) + (u - (v - 1.0f)) / v;
}

/* log1p(u) for u >= 0 (or NaN), accurate for tiny u: Goldberg's
 * log(1 + u) * u / ((1 + u) - 1) cancels the rounding of 1 + u */
FX_INLINE double fx_log1p_ge0(double u)
{
    double v = 1.0 + u;
    double d = v - 1.0;
    double r = fx_log_ge1(v) * (u / (d == 0.0 ? 1.0 : d));
    return d == 0.0 ? u : r;
}

/* log(k + s) for a short row's count k >= 1 of the terms at its max and
 * sum s >= 0 of its other exps.  fsum: s is a float sum (under 16, 24
 * bits), which makes 1 + s exact in double unless s < 2^-28, where
 * log1p(s) = s within a relative 2^-29, far below a float result's
 * rounding (k + s, k > 1, within a double's rounding): one log.  Otherwise
 * log k + log1p(s / k), which keeps the digits of a double s, at another
 * log and two divisions.  Branch-free (fsum a constant where it is
 * inlined), so that a loop over rows side by side vectorizes. */
FX_INLINE double fx_log_count_sum(double k, double s, const int fsum)
{
    if (fsum)
        return k == 1 && s < 0x1p-28 ? s : fx_log_ge1(k + s);
    return (k == 1 ? 0.0 : fx_log_ge1(k)) + fx_log1p_ge0(s / k);
}

/*
 * log1p(u) for u in [0, 1] (or NaN), the range of log1p(exp(-|x|)) in
 * softplus, without fx_log1pf_ge0's divisions or exponent extraction: for
 * u < 1/2 the polynomial takes f = u itself; above, f = (u - 1) / 2 (exact
 * by Sterbenz: 1/2 <= u <= 1) and log 2 is added, so f stays in
 * [-1/4, 1/2), where log1p(f) = f + f^2 Q(f) with Q of degree 8 (weighted
 * least squares on that interval, within 0.15 ulp with the coefficients
 * rounded to float); f = u m + c is exact in one FMA.  Within 0.93 ulp over
 * every float in [0, 1], and log1p(exp(-a)) within 1.7 ulp over every float
 * a in [0, 104] (checked against long double; fx_log1pf_ge0 there: 1.32 and
 * 2.03 in the baseline build).  Horner's form: Estrin's was no faster in the kernels and 0.1 ulp
 * less accurate.
 */
FX_INLINE float fx_log1pf_01(float u)
{
    /* the selects pick factors of one FMA rather than two values of f:
     * offered two, GCC runs the polynomial on both and selects at the end */
    float k = u >= 0.5f ? 1.0f : 0.0f;
    float f = FX_FMAF(u, u >= 0.5f ? 0.5f : 1.0f, u >= 0.5f ? -0.5f : 0.0f);
    float q = -4.490908980e-02f;
    q = FX_FMAF(q, f, 1.044827774e-01f);
    q = FX_FMAF(q, f, -1.316222399e-01f);
    q = FX_FMAF(q, f, 1.448206753e-01f);
    q = FX_FMAF(q, f, -1.664776802e-01f);
    q = FX_FMAF(q, f, 1.999060661e-01f);
    q = FX_FMAF(q, f, -2.500005364e-01f);
    q = FX_FMAF(q, f, 3.333345354e-01f);
    q = FX_FMAF(q, f, -5.000000000e-01f);
    float r = FX_FMAF(f * f, q, f);
    /* log 2 = 0.693145751953125 (16 bits) + 1.4286068e-6 */
    return FX_FMAF(k, 0.693145751953125f, FX_FMAF(k, 1.428606820e-06f, r));
}

/*
 * log1p(u) for u in [0, 1] (or NaN) in double, with one division instead of
 * fx_log1p_ge0's two and no exponent extraction: f as in fx_log1pf_01, then
 * fdlibm's log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f),
 * with R's degree-7 polynomial refitted for s up to 1/5 (fdlibm's stops at
 * 0.1716, beyond which it loses digits).  Within 1.0 ulp (fx_log1p_ge0: 2.4)
 * on 3e7 random u, log1p(exp(-a)) within 1.7 ulp (2.8), against long double.
 */
FX_INLINE double fx_log1p_01(double u)
{
    double k = u >= 0.5 ? 1.0 : 0.0;
    double f = FX_FMA(u, u >= 0.5 ? 0.5 : 1.0, u >= 0.5 ? -0.5 : 0.0);   /* see above */
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * FX_FMA(w, FX_FMA(w, 0.15250188002691342, 0.22222138500544178),
                           0.3999999999616156);
    double t2 = z * FX_FMA(w, FX_FMA(w, FX_FMA(w, 0.15368194936459764, 0.18186356103369467),
                                     0.28571429395305686), 0.6666666666667271);
    double R = t2 + t1;
    double r = FX_FMA(s, hfsq + R, k * 1.90821492927058770002e-10) - hfsq + f;
    return FX_FMA(k, 6.93147180369123816490e-01, r);
}

/*
 * IEEE half <-> float, branch-free (so they vectorize), exact for every
 * value; inf/NaN keep their class.  float -> half rounds to nearest even.
 */
FX_INLINE float fx_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = (uint32_t)(h & 0x7fffu);
    /* normal: the exponent rebiased (127 - 15 = 112) in the bits */
    uint32_t normal = (em << 13) + (112u << 23);
    /* subnormal and zero: em 2^-24, from an integer conversion.  Not the
     * shifted bits times 2^112: that multiply reads a float32 subnormal,
     * which Intel cores take through a microcode assist, about 100x slower
     * (float16 probabilities over 50k classes are mostly subnormal) */
    uint32_t sub = fx_f32_bits((float)(int32_t)em * 5.9604644775390625e-8f);
    uint32_t infnan = (em << 13) | 0x7f800000u;
    uint32_t bits = em >= 0x7c00u ? infnan : em >= 0x0400u ? normal : sub;
    return fx_f32_from(bits | sign);
}

FX_INLINE uint16_t fx_float_to_half(float f)
{
    uint32_t x = fx_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    /* NaN stays a (quiet) NaN, overflow becomes inf */
    uint32_t nan_h = 0x7e00u;
    /* normal range: rebias and round to nearest even on the dropped 13 bits */
    uint32_t norm = ((ax - 0x38000000u) + 0x0fffu + ((ax >> 13) & 1u)) >> 13;
    /* subnormal range: let the float adder do the rounding */
    float sub_f = fx_f32_from(ax) + 0.5f;
    uint32_t sub = fx_f32_bits(sub_f) - fx_f32_bits(0.5f);
    uint32_t h = ax < 0x38800000u ? sub : norm;
    h = ax >= 0x477ff000u ? 0x7c00u : h;          /* rounds to >= 65520 */
    h = ax > 0x7f800000u ? nan_h : h;
    return (uint16_t)(h | sign);
}

#endif /* FX_MATH_H */
