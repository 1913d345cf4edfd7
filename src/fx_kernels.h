/*
 * fx_kernels.h -- every kernel of fastxent, for every storage type: the one
 * header a kernel module includes.
 *
 * It holds what the families share (constants, the logsumexp state and its
 * type-independent finishing formulas) and the C layer's dtype table: one
 * block of macros per storage type, each followed by fx_kernels_for_dtype.h,
 * which compiles every family for that type (the macros are listed there).
 * The families, one header each:
 *   fx_softmax_family.h    logsumexp, softmax, log_softmax (rows, columns,
 *                          short rows)
 *   fx_cross_entropy.h     cross-entropy of rows, loss and gradient
 *   fx_pointwise_losses.h  the element-wise terms of kl_div and BCE with logits
 *   fx_entropies.h         entropies of rows (from logits or probabilities)
 *   fx_nll_loss.h          nll_loss, read through byte strides
 *   fx_score.h             the per-row scores of an evaluation (score_rows)
 * Their functions are named fx_<dtype>_<kernel> (fx_f32_row_lse, ...); the
 * Cython side declares them from one table (fx_kernels.pxd.tp).
 *
 * This header is compiled into every CPU-specific extension module; the
 * compiler flags of that module (baseline, AVX2+FMA or AVX-512) decide the
 * SIMD code.
 */
#ifndef FX_KERNELS_H
#define FX_KERNELS_H

#include <Python.h>
#include <float.h>

/* the short-row kernels' lanes sum the exps of more classes than this in
 * runs of this many, each summed in the working type and added in double:
 * one float32 chain of 64 terms was 8 eps off near log1p's zero, where a
 * chain of 16 is 2-3 (the short rows of up to FX_SMALL_C classes) */
#define FX_SUM_RUN 16
/* whether class c of a row of C classes ends a run: the sums of a row of
 * more than FX_SUM_RUN classes go into double there (at the end of each
 * run and at the end of the row), in every route alike */
#define FX_SUM_RUN_END(C, c) \
    ((C) > FX_SUM_RUN && ((c) % FX_SUM_RUN == FX_SUM_RUN - 1 || (c) == (C) - 1))

#include "fx_math.h"
#include "fx_short_rows_avx2.h"
#include "fx_short_rows_avx512.h"
#include "fx_state_merge.h"

/* "omp simd" lets the compiler reassociate just these reductions (the only
 * thing it needs to vectorize them); -fopenmp-simd enables it without the
 * OpenMP runtime, and compilers without it (MSVC's OpenMP 2.0 has no simd)
 * run the same loops serially */
#define FX_PRAGMA(x) _Pragma(#x)
#if !defined(_MSC_VER) && (defined(_OPENMP) || defined(__clang__) || defined(__GNUC__))
#define FX_SIMD_REDUCE(...) FX_PRAGMA(omp simd reduction(__VA_ARGS__))
#define FX_SIMD FX_PRAGMA(omp simd)
#define FX_SIMD_MINMAX(hi, lo) FX_PRAGMA(omp simd reduction(max:hi) reduction(min:lo))
#define FX_SIMD_PRAGMA(clauses) FX_PRAGMA(omp simd clauses)
#else
#define FX_SIMD_REDUCE(...)
#define FX_SIMD
#define FX_SIMD_MINMAX(hi, lo)
#define FX_SIMD_PRAGMA(clauses)
#endif

/* While a block is summed from L1, the same part of the next block (n
 * elements on: the next block of a contiguous row) is requested from
 * memory, so that the next block's first pass (its max) does not wait for
 * DRAM with no arithmetic to overlap.  A prefetch never faults, so one past
 * the end of the data is harmless. */
#if defined(__GNUC__) || defined(__clang__)
#define FX_PREFETCH_NEXT(p, s, n, j0) do {                                          \
        if ((s) == 1) {                                                           \
            /* an address, not a pointer past the array (undefined) */        \
            uintptr_t fx_pf_ = (uintptr_t)(p)                                     \
                + (uintptr_t)((n) + (j0)) * sizeof(*(p));                         \
            for (int fx_o_ = 0; fx_o_ < (int)(FX_FOLD * sizeof(*(p))); fx_o_ += 64) \
                __builtin_prefetch((const void *)(fx_pf_ + (uintptr_t)fx_o_), 0, 3); \
        }                                                                         \
    } while (0)
/* the line at address a (an integer: it may lie past an array's end, which
 * a pointer may not) requested for reading */
#define FX_PREFETCH(a) __builtin_prefetch((const void *)(uintptr_t)(a), 0, 3)
#else
#define FX_PREFETCH_NEXT(p, s, n, j0) ((void)0)
#define FX_PREFETCH(a) ((void)0)
#endif

/* the longest row of floats a thread's scratch holds for float16's softmax
 * and cross-entropy gradient (row_softmax_buf, row_xent): 4 MiB */
#define FX_ROW_SCRATCH_MAX 1048576
/* elements per chunk of a long row: the unit of work when one row is split
 * across threads, and of the ordered summation that keeps results
 * independent of the thread count */
#define FX_CHUNK 16384
/* elements of a block: read once into L1, max taken, then exps summed;
 * also the length after which float32 sums are folded into double */
#define FX_FLUSH 2048
/* elements after which SIMD partial sums are folded into double */
#define FX_FOLD 256
/* The AVX-512 build vectorizes for 512-bit registers, and GCC 12 runs a
 * loop shorter than one such vector (16 float32 columns, with double sums
 * 16 of them too) in its scalar remainder: the column kernels of a few
 * positions ((N, C, 8) float32) ran slower than the baseline build.  They
 * get a twin compiled for 256-bit vectors, taken below FX_COL_NARROW(T)
 * columns (the same operations per column, so the same bits); never
 * inlined, as its loops would then be vectorized for the caller's width. */
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#define FX_NARROW_VECTORS __attribute__((target("prefer-vector-width=256")))
#define FX_COL_NARROW(T) (sizeof(T) == 2 ? 32 : 64 / (Py_ssize_t)sizeof(T))
#endif
/* the column kernel `name` of W columns: name##_body, through its twin
 * below FX_COL_NARROW(FX_T) columns where there is one (params and args
 * parenthesized, as in the definition and a call) */
#ifdef FX_NARROW_VECTORS
#define FX_COL_KERNEL(name, params, args)                                       \
    static FX_NOINLINE FX_NARROW_VECTORS void FX_NAME(name##_narrow) params     \
    {                                                                           \
        FX_NAME(name##_body) args;                                              \
    }                                                                           \
    static void FX_NAME(name) params                                            \
    {                                                                           \
        if (W < FX_COL_NARROW(FX_T)) FX_NAME(name##_narrow) args;               \
        else FX_NAME(name##_body) args;                                         \
    }
#else
#define FX_COL_KERNEL(name, params, args) \
    static void FX_NAME(name) params { FX_NAME(name##_body) args; }
#endif
/* short rows: at most FX_SMALL_C elements, processed FX_BLOCK_W at a time
 * (logsumexp, log_softmax, softmax, cross_entropy with labels, the
 * entropies of logits).  One row at a time, a row of 17 to 64 elements cost
 * about 100 ns of set-up (its blocks, their reductions across the SIMD
 * lanes, a log), 2-10x the lanes' time.  scipy.stats.entropy's short rows,
 * whose probabilities are copied in their storage type onto the stack, take
 * rows of up to FX_SMALL_ENT_C. */
#define FX_SMALL_C 64
#define FX_SMALL_ENT_C 16
#define FX_BLOCK_W 64
/* rows processed side by side by the column kernels (neighbouring rows
 * along inner, the class axis strided); the drivers' COL_W */
#define FX_COL_W 64
/* scratch of the short-row kernels, in working-type elements: 3 per-row
 * arrays and a transposed block of FX_SMALL_C x FX_BLOCK_W for small_lse,
 * small_softmax and small_xent, of which a block of C classes uses the
 * first (3 + C) FX_BLOCK_W (FX_SMALL_SCRATCH_OF); two blocks of C classes
 * and 8 per-row arrays, (2 C + 8) FX_BLOCK_W (FX_SMALL_ENT_SCRATCH_OF), for
 * small_entropies.  The drivers give each thread
 * at least what the kernel uses, in doubles (room for any working type):
 * multiples of 8, so that every thread's part starts on a cache line. */
#define FX_SMALL_SCRATCH_OF(C) ((3 + (C)) * FX_BLOCK_W)
#define FX_SMALL_SCRATCH FX_SMALL_SCRATCH_OF(FX_SMALL_C)
#define FX_SMALL_ENT_SCRATCH_OF(C) ((2 * (C) + 8) * FX_BLOCK_W)

/* the first cache line at or after p, at most 7 doubles further: the
 * short-row kernels' scratch starts there (vector loads that split cache
 * lines cost them about 10%) */
static inline double *fx_align64(double *p)
{
    return (double *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}
/* doubles an allocation takes beyond its use, for fx_align64 */
#define FX_ALIGN_SLACK 8

/* float16 blocks through F16C (the AVX2 build): n values converted to float32
 * (exactly) into a buffer, or from one (rounding to nearest even, as
 * fx_float_to_half), one instruction per 8 values where fx_half_to_float and
 * fx_float_to_half take 10-15 (GCC leaves the compiler's _Float16
 * conversions scalar in a vectorized loop).  Where a float16 kernel is the
 * float32 kernel on FX_LOAD'ed values, the float16 instantiation
 * (FX_VIA_F32) converts each block and calls the float32 one: the same
 * arithmetic on the same values. */
#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define FX_F16_BLOCKS 1
static inline void fx_halves_to_floats(const uint16_t *x, Py_ssize_t n, float *out)
{
    Py_ssize_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(out + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j))));
    for (; j < n; j++) out[j] = fx_half_to_float(x[j]);
}

static inline void fx_floats_to_halves(const float *v, Py_ssize_t n, uint16_t *out)
{
    Py_ssize_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm_storeu_si128((__m128i *)(out + j),
                         _mm256_cvtps_ph(_mm256_loadu_ps(v + j), _MM_FROUND_TO_NEAREST_INT));
    for (; j < n; j++) out[j] = fx_float_to_half(v[j]);
}
#endif

/*
 * The state of a partial logsumexp: its maximum m, the count k of the
 * elements equal to m and the sum s of exp(x - m) over the others.  NaN
 * elements are not counted in m but make s NaN.
 */
typedef struct { double m, k, s; } fx_lse_state;
#define FX_STATE_INIT {-INFINITY, 0.0, 0.0}

/*
 * Labels tp[i * ts], i < n, without class weights: 1 when each is in
 * [0, C) or equal to ignore, with the number of the others in *count;
 * 0 when one is not (the caller's exact loop then finds the first).  No
 * branch on the data, so a contiguous run vectorizes: the scalar loop that
 * stops at the first bad label was a tenth of a cross-entropy of rows of 10.
 */
static inline int fx_labels_in_range(const int64_t *tp, Py_ssize_t n, Py_ssize_t ts,
                                     Py_ssize_t C, int64_t ignore, Py_ssize_t *count)
{
    int64_t bad = 0, kept = 0;
    const uint64_t c = (uint64_t)C;
    if (ts == 1) {
        FX_SIMD_REDUCE(+:bad,kept)
        for (Py_ssize_t i = 0; i < n; i++) {
            const int64_t y = tp[i];
            const int64_t ign = y == ignore;
            bad += !ign & ((uint64_t)y >= c);
            kept += !ign;
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            const int64_t y = tp[i * ts];
            const int64_t ign = y == ignore;
            bad += !ign & ((uint64_t)y >= c);
            kept += !ign;
        }
    }
    *count = (Py_ssize_t)kept;
    return bad == 0;
}

/* fold the state (m, k, s) of more elements into *a; the side with the
 * smaller max is rescaled and joins the "others" sum */
static inline void fx_state_merge(fx_lse_state *a, double m, double k, double s)
{
    if (a->m == -INFINITY && a->k == 0.0) {   /* empty so far: no rescaling */
        a->m = m;
        a->k = k;
        a->s += s;
    } else if (m == a->m) {
        a->k += k;
        a->s += s;
    } else if (m > a->m) {
        a->s = s + (a->s + a->k) * exp(a->m - m);
        a->k = k;
        a->m = m;
    } else {
        a->s += (s + k) * exp(m - a->m);
    }
}

/*
 * SciPy's stable logsumexp from the row maximum m, the count (or summed
 * weight) k of the elements equal to m and the sum s of b exp(x - m) over the
 * others: log1p(s/k) + log(k) + m.  Keeping the max terms apart keeps results
 * near zero accurate.  *sgn receives the sign of the sum.
 */
static inline double fx_lse_finish(double m, double k, double s, int want_sign, double *sgn)
{
    s = s == 0.0 ? s : s / k;
    double t = s + 1.0;
    double sg = (double)((t > 0) - (t < 0)) * (double)((k > 0) - (k < 0));
    if (isnan(t) || isnan(k)) sg = NAN;
    if (s < -1.0) s = -s - 2.0;
    /* the common k == 1 skips a log call: rows are often short */
    double out = log1p(s) + (k == 1.0 ? 0.0 : log(fabs(k))) + m;
    *sgn = sg;
    if (!want_sign && sg < 0) out = NAN;
    return out;
}

/* the plain log(sum b exp(x)) that SciPy returns where the stable form is
 * not finite (rows with +inf, all -inf, or cancelling weights) */
static inline double fx_lse_naive(double total, int want_sign, double *sgn)
{
    *sgn = isnan(total) ? NAN : (double)((total > 0) - (total < 0));
    return want_sign ? log(fabs(total)) : log(total);
}

/*
 * log_softmax(x) = (x - m_eff) - c.  Finite max: m_eff = m and
 * c = log(k) + log1p(s/k), accurate near zero.  Otherwise SciPy's rules:
 * a non-finite max is replaced by 0 and c = log(sum exp(x)), i.e. +inf for a
 * row with +inf (finite entries -> -inf, +inf entries -> NaN) and -inf for a
 * row of -inf (all NaN); a NaN anywhere makes the row NaN.
 */
static inline double fx_log_softmax_offset(double m, double k, double s, double *m_eff)
{
    *m_eff = isfinite(m) ? m : 0.0;
    if (isnan(s)) return NAN;
    if (m == INFINITY) return INFINITY;
    if (m == -INFINITY) return -INFINITY;
    return log(k) + log1p(s / k);
}

/* ---- the dtype table: one block per storage type ----
 * Each block sets the macros that fx_kernels_for_dtype.h documents and
 * includes it; it compiles every family for the type and undefines them.
 * A new storage type is one more block here (and a row of DTYPES in
 * fx_kernels.pxd.tp). */

#define FX_NAME(x) fx_f32_##x
#define FX_LOG fx_logf
#define FX_LOG_CORE(v) fx_logf_normal((v), 0.0f)
#define FX_LOG1P01 fx_log1pf_ge0
#define FX_LOG1P_UNIT fx_log1pf_01
#define FX_TINY FLT_MIN
#define FX_T float
#define FX_W float
#define FX_WI int32_t
#define FX_WU uint32_t
#define FX_WFMA FX_FMAF
#define FX_LOAD(v) (v)
#define FX_STORE(w) (w)
#define FX_EXP fx_expf_le0
#define FX_EXP_NORMAL fx_expf_normal
#define FX_EXP_NORMAL_MIN FX_EXPF_NORMAL_LO
#define FX_EXP_ANY fx_expf
#define FX_STORES_EXP 1
#ifdef FX_HAVE_F32X8
#define FX_SHORT_X8 1   /* short rows through fx_short_rows_avx2.h */
#endif
#include "fx_kernels_for_dtype.h"

#define FX_NAME(x) fx_f64_##x
#define FX_LOG fx_log
#define FX_LOG_CORE(v) fx_log_core((v), 0.0)
#define FX_LOG1P01 fx_log1p_ge0
#define FX_LOG1P_UNIT fx_log1p_01
#define FX_TINY DBL_MIN
#define FX_T double
#define FX_W double
#define FX_WI int64_t
#define FX_WU uint64_t
#define FX_WFMA FX_FMA
#define FX_LOAD(v) (v)
#define FX_STORE(w) (w)
#define FX_EXP fx_exp_le0
#define FX_EXP_NORMAL fx_exp_normal
#define FX_EXP_NORMAL_MIN FX_EXP_NORMAL_LO
#define FX_EXP_ANY fx_exp
#define FX_STORES_EXP 1
#include "fx_kernels_for_dtype.h"

/* float16 is read as its bits and computed in float32 */
#define FX_NAME(x) fx_f16_##x
#ifdef FX_F16_BLOCKS
#define FX_VIA_F32 1   /* see fx_halves_to_floats */
#ifdef FX_HAVE_F32X8
#define FX_SHORT_VIA8 1   /* short rows through float32's AVX2 route (tr_in_minmax) */
#endif
#endif
#define FX_LOG fx_logf
#define FX_LOG_CORE(v) fx_logf_normal((v), 0.0f)
#define FX_LOG1P01 fx_log1pf_ge0
#define FX_LOG1P_UNIT fx_log1pf_01
#define FX_TINY FLT_MIN
#define FX_T uint16_t
#define FX_W float
#define FX_WI int32_t
#define FX_WU uint32_t
#define FX_WFMA FX_FMAF
#define FX_LOAD(v) fx_half_to_float(v)
#define FX_STORE(w) fx_float_to_half(w)
#define FX_EXP fx_expf_le0
#define FX_EXP_NORMAL fx_expf_normal
#define FX_EXP_NORMAL_MIN FX_EXPF_NORMAL_LO
#define FX_EXP_ANY fx_expf
#define FX_STORES_EXP 0
#include "fx_kernels_for_dtype.h"

#endif /* FX_KERNELS_H */
