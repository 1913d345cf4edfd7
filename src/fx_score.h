/*
 * fx_score.h -- the per-row scores of logits against class labels, one
 * storage type (included by fx_kernels_for_dtype.h after
 * fx_softmax_family.h and fx_nll_loss.h, same macros).
 *
 * With z = x / T (T the temperature), M = max z, S = sum_c exp(z_c - M) and
 * p = softmax(z), a row with label y gives
 *
 *     nll        = lse - z_y = (M - z_y) + log S
 *     rank       = #{c : z_c > z_y}
 *     prediction = the first argmax of z (the first NaN if any, as np.argmax)
 *     confidence = max p = 1 / S
 *     entropy    = log S - sum_c p_c (z_c - M)       (both terms >= 0)
 *     brier      = (1 - p_y)^2 + sum_{c != y} p_c^2
 *
 * The row is read once, in blocks of FX_FLUSH elements as row_state reads
 * it: a first pass over the block (in L1) takes its max, its min, the count
 * of elements above z_y and whether it holds a NaN; a second pass sums, with
 * the block max m_b, e = exp(z - m_b), e (z - m_b) and e^2 over the elements
 * below m_b (those equal to it are counted apart, as fx_lse_state does, so
 * that 1 - p_y of a confident row keeps its digits), in the working type,
 * folded into double every FX_FOLD elements.  Blocks merge as fx_state_merge
 * rescales them; every merged term has one sign, so nothing cancels.
 *
 * A row holding a NaN or +inf, or only -inf (or no class), has no
 * distribution: its nll, confidence, entropy and Brier score are NaN and
 * its rank is C.  An ignored row (label == ignore_index) has nll 0, Brier 0,
 * rank -1.
 *
 * Every operand is walked through byte strides over the row dims, as
 * fx_nll_loss.h does (any layout, labels of any integer type); for the
 * per-row outputs the labels are checked in a pass of their own before any
 * logit is read, and the sums check each label before its row is read (the
 * driver drops them on a bad one).  bfloat16 data
 * (2-byte storage with a->bf16 set) are widened from their bits; float16
 * through FX_LOAD.
 */

#ifndef FX_SCORE_COMMON
#define FX_SCORE_COMMON

#include <stdint.h>
#include <string.h>

/* the per-row outputs, in the order of RowScores */
#define FX_SCORE_NOUT 6
enum { FX_SCORE_NLL, FX_SCORE_RANK, FX_SCORE_PRED, FX_SCORE_CONF, FX_SCORE_ENT, FX_SCORE_BRIER };

/* what a call of score_block does */
#define FX_SCORE_CHECK 0   /* check the labels only */
#define FX_SCORE_ROWS 1    /* write the per-row outputs that are not NULL */
#define FX_SCORE_STATE 2   /* add the rows into the sums of an evaluation */

typedef struct {
    Py_ssize_t nd;                                 /* row dims, >= 1 */
    Py_ssize_t shape[FX_NLL_MAXDIM];
    Py_ssize_t xs[FX_NLL_MAXDIM];                  /* input */
    Py_ssize_t ls[FX_NLL_MAXDIM];                  /* labels */
    Py_ssize_t os[FX_SCORE_NOUT][FX_NLL_MAXDIM];   /* outputs */
    Py_ssize_t C, xc;                              /* classes, class stride of x */
    const char *x, *lab;
    char *out[FX_SCORE_NOUT];   /* float outputs in the result type, rank and
                                 * prediction int64; NULL: not written */
    int lkind;                  /* label bytes, negative if unsigned */
    int bf16;                   /* 2-byte storage holds bfloat16 */
    int has_ignore;
    int64_t ignore_index;
    int ignore_big;             /* ignore_index: the bits of a uint64 above
                                 * INT64_MAX, which only such a label equals */
    int tmode;                  /* 0: T = 1; 1: z = x * t (1/T exact); 2: z = x / t */
    double t;
    Py_ssize_t max_rank, n_bins;
    const double *edges;        /* FX_SCORE_STATE: b / n_bins for b <= n_bins */
} fx_score_args;

/* one row's results, before rounding to the result type */
typedef struct {
    double nll, conf, ent, brier;
    int64_t rank, pred;
    int undefined;
} fx_score_row;

/* the results of a group of up to FX_BLOCK_W short rows scored side by
 * side (score_lanes), as arrays, so that the loops over them vectorize;
 * done[i] = 0: row i needs the general body, nothing else of it is set */
typedef struct {
    double nll[FX_BLOCK_W], conf[FX_BLOCK_W], ent[FX_BLOCK_W], brier[FX_BLOCK_W];
    /* under C <= FX_SCORE_LANES_C: int32, which the loops over the lanes
     * compare 16 at a time (int64, 8) */
    int32_t rank[FX_BLOCK_W], pred[FX_BLOCK_W];
    unsigned char done[FX_BLOCK_W];
    Py_ssize_t ndone;   /* how many of the group's rows are done */
} fx_score_lanes_res;

/* score_block's sums of the rows scored as lanes, in a block of at least
 * FX_SCORE_ACC_ROWS rows: per lane (nll, entropy, Brier), the bins'
 * confidence sums, and one count per (bin, rank, correct) cell: a row adds
 * 1 to its cell, and the bins' counts, their correct counts and the rank
 * counts are the cells' sums, formed at the end of the block (one add per
 * row, where a count each took three).  The cells and the confidence sums
 * are kept FX_SCORE_SPLIT ways (lane i adds to way i % FX_SCORE_SPLIT), so
 * that no add waits for the one before it through memory (the rows of a
 * confident model fall in one cell); folded in a fixed order at the end of
 * the block.  Used when n_bins + 1 <= FX_SCORE_ACC_BINS.  The cells have a
 * rank axis of max_rank + 1 (ranks at or above max_rank share the last)
 * when that fits in FX_SCORE_ACC_CELLS; otherwise ranks go to counts
 * directly, and the cells are (bin, correct) only. */
#define FX_SCORE_ACC_ROWS 256
#define FX_SCORE_SPLIT 4
#define FX_SCORE_ACC_BINS 64
#define FX_SCORE_ACC_CELLS 512
typedef struct {
    double nll[FX_BLOCK_W], ent[FX_BLOCK_W], brier[FX_BLOCK_W];
    double bconf[FX_SCORE_SPLIT * FX_SCORE_ACC_BINS];
    int64_t cells[FX_SCORE_SPLIT * FX_SCORE_ACC_CELLS];
    Py_ssize_t nr;   /* the cells' rank axis: max_rank + 1, or 1 */
} fx_score_acc;

/* the merged sums of the blocks of a row: max m, count k of the elements
 * equal to it, and over the others s = sum e, d = sum e (z - m) (<= 0),
 * q = sum e^2, e = exp(z - m) */
typedef struct { double m, k, s, d, q; } fx_score_state;

static inline void fx_score_merge(fx_score_state *a, double m, double k, double s, double d,
                                  double q)
{
    if (a->m == -INFINITY && a->k == 0.0) {
        a->m = m; a->k = k; a->s = s; a->d = d; a->q = q;
    } else if (m == a->m) {
        a->k += k; a->s += s; a->d += d; a->q += q;
    } else {
        /* the side with the smaller max is rescaled by r = exp(lo - hi):
         * its max terms join the others, and z - hi = (z - lo) + (lo - hi);
         * a side of -inf only (r = 0) vanishes */
        fx_score_state lo = *a;
        double hm = m, hk = k, hs = s, hd = d, hq = q;
        if (m < a->m) {
            lo.m = m; lo.k = k; lo.s = s; lo.d = d; lo.q = q;
            hm = a->m; hk = a->k; hs = a->s; hd = a->d; hq = a->q;
        }
        double r = exp(lo.m - hm), all = lo.s + lo.k;
        a->m = hm;
        a->k = hk;
        a->s = hs + all * r;
        a->d = hd + (r == 0.0 ? 0.0 : r * (lo.d + (lo.m - hm) * all));
        a->q = hq + (lo.q + lo.k) * (r * r);
    }
}

/* what one read of a row (or of a segment of it) leaves: its merged sums,
 * its largest z (NaN ignored), the count of z above z_y, the first argmax,
 * the first NaN (-1: none) and whether a NaN or +inf was seen (then the
 * sums stop) */
typedef struct {
    fx_score_state st;
    double best;
    Py_ssize_t gt, pred, first_nan;
    int bad;
} fx_score_scan;

/* bfloat16 bits to float: the upper half of a float32 */
static inline float fx_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* a label of kind lkind (see fx_nll_args); *big: a uint64 above INT64_MAX */
static inline int64_t fx_score_label(const char *p, int lkind, int *big)
{
    *big = 0;
    switch (lkind) {
    case 1: { int8_t v; memcpy(&v, p, 1); return v; }
    case 2: { int16_t v; memcpy(&v, p, 2); return v; }
    case 4: { int32_t v; memcpy(&v, p, 4); return v; }
    case -1: { uint8_t v; memcpy(&v, p, 1); return v; }
    case -2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case -4: { uint32_t v; memcpy(&v, p, 4); return v; }
    case -8: { uint64_t v; memcpy(&v, p, 8); *big = v > (uint64_t)INT64_MAX; return (int64_t)v; }
    default: { int64_t v; memcpy(&v, p, 8); return v; }
    }
}

/*
 * The calibration bin of a confidence c in [0, 1], as torchmetrics'
 * bucketize(c, linspace(0, 1, n + 1), right=True) - 1: the b with
 * edges[b] <= c < edges[b + 1], and n for c == 1, where edges[b] is the
 * correctly rounded b / n (a table the driver makes once per call: two
 * divisions per row were a sixth of a short row's time).
 */
static inline Py_ssize_t fx_score_bin(double c, Py_ssize_t n, const double *edges)
{
    if (c >= 1.0) return n;
    Py_ssize_t b = (Py_ssize_t)(c * (double)n);
    if (b > n - 1) b = n - 1;
    if (b < 0) b = 0;
    /* c n is within an ulp of the exact product, so b is at most one off:
     * one step each way, then loops that never run but make that need no
     * proof.  The steps are selects: written (b > 0) & (c < edges[b]), GCC
     * kept the flag in a byte on the stack and read it back as 8 bytes, a
     * failed store forward that was a third of score's time on rows of 10 */
    b = b > 0 && c < edges[b] ? b - 1 : b;
    b = b < n - 1 && c >= edges[b + 1] ? b + 1 : b;
    while (b > 0 && c < edges[b]) b--;
    while (b < n - 1 && c >= edges[b + 1]) b++;
    return b;
}

/*
 * The calibration bins of the confidences cc[0..W) (each in [0, 1]; n <
 * 2^31 bins) into bin, fx_score_bin's for each.  The first guess b =
 * floor(c n) is right unless c n lies within a rounding of an integer:
 * edges[b] is b / n within half an ulp of 1, so c n - b (formed exactly
 * enough by one FMA) at least delta = (n + 1) 2^-51 from 0 and from 1 puts
 * c strictly inside [edges[b], edges[b + 1]).  AVX2 checks four lanes at a
 * time, AVX-512 eight, with c == 0 (bin 0) and c == 1 (bin n) taken as
 * they come; the few lanes left go through fx_score_bin.  (Gathering the
 * two edges of each lane instead cost a tenth of score's time on rows of
 * 10 classes, the scalar search a tenth more.)
 */
static inline void fx_score_bins(const double *cc, Py_ssize_t W, Py_ssize_t n,
                                 const double *edges, int32_t *bin)
{
    Py_ssize_t w = 0;
#if defined(FX_HAVE_F32X8)
    const double delta = (double)(n + 1) * 0x1p-51;
#endif
#if defined(FX_HAVE_F32X16)
    const __m512d vn = _mm512_set1_pd((double)n), vlo = _mm512_set1_pd(delta);
    const __m512d vhi = _mm512_set1_pd(1.0 - delta), vone = _mm512_set1_pd(1.0);
    const __m256i top = _mm256_set1_epi32((int)(n - 1)), vnb = _mm256_set1_epi32((int)n);
    for (; w + 8 <= W; w += 8) {
        __m512d c = _mm512_loadu_pd(cc + w);
        /* c n >= 0, truncated; at most n - 1 (c n may round up to n) */
        __m256i b = _mm256_min_epi32(_mm512_cvttpd_epi32(_mm512_mul_pd(c, vn)), top);
        __m512d r = _mm512_fmsub_pd(c, vn, _mm512_cvtepi32_pd(b));
        __mmask8 full = _mm512_cmp_pd_mask(c, vone, _CMP_GE_OQ);
        unsigned ok = (_mm512_cmp_pd_mask(r, vlo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(r, vhi, _CMP_LE_OQ))
                    | _mm512_cmp_pd_mask(c, _mm512_setzero_pd(), _CMP_EQ_OQ) | full;
        _mm256_storeu_si256((__m256i *)(bin + w), _mm256_mask_mov_epi32(b, full, vnb));
        for (unsigned off = ~ok & 0xffu, j = 0; off; j++, off >>= 1)
            if (off & 1) bin[w + j] = (int32_t)fx_score_bin(cc[w + j], n, edges);
    }
#elif defined(FX_HAVE_F32X8)
    const __m256d vn = _mm256_set1_pd((double)n), vlo = _mm256_set1_pd(delta);
    const __m256d vhi = _mm256_set1_pd(1.0 - delta), vone = _mm256_set1_pd(1.0);
    const __m128i top = _mm_set1_epi32((int)(n - 1)), vnb = _mm_set1_epi32((int)n);
    for (; w + 4 <= W; w += 4) {
        __m256d c = _mm256_loadu_pd(cc + w);
        /* c n >= 0, truncated; at most n - 1 (c n may round up to n) */
        __m128i b = _mm_min_epi32(_mm256_cvttpd_epi32(_mm256_mul_pd(c, vn)), top);
        __m256d r = _mm256_fmsub_pd(c, vn, _mm256_cvtepi32_pd(b));
        __m256d full = _mm256_cmp_pd(c, vone, _CMP_GE_OQ);
        __m256d ok = _mm256_or_pd(_mm256_and_pd(_mm256_cmp_pd(r, vlo, _CMP_GE_OQ),
                                                _mm256_cmp_pd(r, vhi, _CMP_LE_OQ)),
                                  _mm256_or_pd(_mm256_cmp_pd(c, _mm256_setzero_pd(), _CMP_EQ_OQ),
                                               full));
        /* the full lanes' 64-bit masks narrowed to 32 bits per lane */
        __m128i fl = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
            _mm256_castpd_si256(full), _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));
        _mm_storeu_si128((__m128i *)(bin + w), _mm_blendv_epi8(b, vnb, fl));
        int off = ~_mm256_movemask_pd(ok) & 0xf;
        for (int j = 0; j < 4; j++)
            if ((off >> j) & 1) bin[w + j] = (int32_t)fx_score_bin(cc[w + j], n, edges);
    }
#endif
    for (; w < W; w++)
        bin[w] = (int32_t)fx_score_bin(cc[w], n, edges);
}

/* omp simd with several reductions (see FX_SIMD_REDUCE) */
#if !defined(_MSC_VER) && (defined(_OPENMP) || defined(__clang__) || defined(__GNUC__))
#define FX_SCORE_SIMD_SCAN(m, lo, a, b) \
    FX_PRAGMA(omp simd reduction(max:m) reduction(min:lo) reduction(+:a) reduction(+:b))
#else
#define FX_SCORE_SIMD_SCAN(m, lo, a, b)
#endif

/* a row's nll, confidence, entropy and Brier term from its merged sums
 * (max m, count k of the terms equal to it, s, d, q as fx_score_state), its
 * label's z and ey = exp(zy - m) (unused when zy == m).  fsum: s is a
 * float, the sum of a short row's exps (at most 64, k <= 64), not a double
 * one.
 * Branch-free, so that a loop over rows side by side vectorizes. */
static inline void fx_score_values(double m, double k, double s, double d, double q, double zy,
                                   double ey, int fsum, double *nll, double *conf, double *ent,
                                   double *brier)
{
    double S = k + s;
    /* fx_math.h's branch-free logs (under 1 ulp and a few ulp), which cost
     * a fraction of libm's log1p on short rows */
    double logS = fx_log_count_sum(k, s, fsum);
    /* one division: the others were most of a short row's result time */
    double inv = 1.0 / S;
    *conf = inv;
    *ent = logS - d * inv;
    *nll = (m - zy) + logS;
    /* 1 - p_y (times S) and sum_{c != y} e_c^2 */
    int top = zy == m;
    double omp = top ? (k - 1.0) + s : S - ey;
    double oq = top ? (k - 1.0) + q : (k + q) - ey * ey;
    omp *= inv;
    *brier = omp * omp + oq * (inv * inv);
}

/* rows of at most this many classes go through score_row_short first */
#define FX_SCORE_SHORT 32
/* rows of at most this many classes are scored FX_BLOCK_W at a time, side
 * by side as lanes (score_lanes), as the softmax family's short rows are;
 * one at a time, a row of 17 to 64 classes cost 3-7x its lanes' time */
#define FX_SCORE_LANES_C 64

/* ---- the metrics of an evaluation's sums (Scorer.result, score) ----
 *
 * The sums: f = nll, entropy and Brier sums, then the n_bins + 1 bins'
 * confidence sums; c = count, undefined, the max_rank rank counts, the bins'
 * counts, the bins' correct counts (the layout of FX_SCORE_STATE's totals).
 */

/* the exactly rounded sum of t[0..n) (Shewchuk's partials with the final
 * half-way correction: the algorithm and the bits of Python's math.fsum)
 * in p, scratch of n doubles (the partials never outnumber the terms seen).
 * Non-finite terms give their plain sum (NaN for inf - inf, where math.fsum
 * raises; so does an overflow of the partials); the terms of the ece are
 * finite and in [0, 1]. */
static inline double fx_fsum(const double *t, Py_ssize_t n, double *p)
{
    Py_ssize_t np_ = 0, i, j;
    double special = 0.0, x, y, hi, lo = 0.0, yr;
    for (j = 0; j < n; j++) {
        x = t[j];
        if (!isfinite(x)) {
            special += x;
            continue;
        }
        i = 0;
        for (Py_ssize_t k = 0; k < np_; k++) {
            y = p[k];
            if (fabs(x) < fabs(y)) {
                double tmp = x;
                x = y;
                y = tmp;
            }
            hi = x + y;
            yr = hi - x;
            lo = y - yr;
            if (lo != 0.0)
                p[i++] = lo;
            x = hi;
        }
        np_ = i;
        if (x != 0.0)
            p[np_++] = x;
    }
    if (special != 0.0 || isnan(special))
        return special;
    hi = 0.0;
    if (np_ > 0) {
        hi = p[--np_];
        /* add the partials from the top down, stopping where the sum
         * becomes inexact */
        while (np_ > 0) {
            x = hi;
            y = p[--np_];
            hi = x + y;
            yr = hi - x;
            lo = y - yr;
            if (lo != 0.0)
                break;
        }
        /* a half-way case is rounded by the sign of the next partial */
        if (np_ > 0 && ((lo < 0.0 && p[np_ - 1] < 0.0) || (lo > 0.0 && p[np_ - 1] > 0.0))) {
            y = lo * 2.0;
            x = hi + y;
            yr = x - hi;
            if (y == yr)
                hi = x;
        }
    }
    return hi;
}

/* The metrics of the sums into out: nll, perplexity, bits_per_token,
 * accuracy@ks[i] for each of the nk ks (each <= max_rank), ece, mce, brier,
 * entropy -- the formulas of Scorer's docstring, NaN but for the counts
 * when no row counts or an undefined row does.  scratch: 2 (n_bins + 1)
 * doubles.  Ratios of counts are correctly rounded (as Python's int / int)
 * below 2^53 rows, where a count converts to double exactly. */
static inline void fx_score_metrics(const double *f, const int64_t *c, Py_ssize_t max_rank,
                                    Py_ssize_t n_bins, const Py_ssize_t *ks, Py_ssize_t nk,
                                    double *out, double *scratch)
{
    const int64_t n = c[0], undefined = c[1];
    const int64_t *ranks = c + 2, *bin_count = c + 2 + max_rank;
    const int64_t *bin_correct = bin_count + n_bins + 1;
    const double *bin_conf = f + 3;
    Py_ssize_t i, b, ng = 0;
    if (n == 0 || undefined) {
        for (i = 0; i < 7 + nk; i++)
            out[i] = NAN;
        return;
    }
    const double dn = (double)n;
    double nll = f[0] / dn;
    out[0] = nll;
    out[1] = exp(nll);   /* inf above log(DBL_MAX) */
    out[2] = nll / 0.693147180559945309417232121458176568;   /* ln 2 */
    for (i = 0; i < nk; i++) {
        int64_t hits = 0;
        for (Py_ssize_t r = 0; r < ks[i]; r++)
            hits += ranks[r];
        out[3 + i] = (double)hits / dn;
    }
    /* the bins' gaps |acc_b - conf_b| weighted by their share of the binned
     * rows, summed exactly rounded; mce the largest gap, the first of equal
     * ones (Python's max) */
    int64_t binned = 0;
    for (b = 0; b <= n_bins; b++)
        binned += bin_count[b];
    double mce = NAN, *terms = scratch, *partials = scratch + n_bins + 1;
    for (b = 0; b <= n_bins; b++) {
        if (bin_count[b] <= 0)
            continue;
        double cnt = (double)bin_count[b];
        double gap = fabs((double)bin_correct[b] / cnt - bin_conf[b] / cnt);
        terms[ng++] = gap * (cnt / (double)binned);
        if (ng == 1 || gap > mce)
            mce = gap;
    }
    out[3 + nk] = ng ? fx_fsum(terms, ng, partials) : NAN;
    out[4 + nk] = mce;
    out[5 + nk] = f[2] / dn;
    out[6 + nk] = f[1] / dn;
}

#endif /* FX_SCORE_COMMON */

/* a logit of storage r as z in the working type; bf16 and tmode are
 * compile-time constants at each use */
#define FX_SCORE_RAW(r) ((sizeof(FX_T) == 2 && bf16) ? (FX_W)fx_bf16_to_float((uint16_t)(r)) \
                                                     : FX_LOAD(r))
#define FX_SCORE_Z(r) (tmode == 0 ? FX_SCORE_RAW(r) \
                       : tmode == 1 ? FX_SCORE_RAW(r) * tw : FX_SCORE_RAW(r) / tw)

/* the sums of one block against its max m; `normal` (a constant): every
 * z - m is in [FX_EXP_NORMAL_MIN, 0] */
FX_INLINE void FX_NAME(score_sums)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W m,
                                   const int bf16, const int tmode, FX_W tw,
                                   const int normal, double *sums)
{
    double tot = 0.0, totk = 0.0, totd = 0.0, totq = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W acc = 0, cnt = 0, sd = 0, sq = 0;
        /* the next block's first pass then finds it on its way (as
         * block_sums of the softmax family) */
        FX_PREFETCH_NEXT(x, s, n, j0);
        FX_SIMD_REDUCE(+:acc,cnt,sd,sq)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_SCORE_Z(x[j * s]);
            FX_W t = v - m, e, one = v == m ? (FX_W)1 : (FX_W)0;
            if (normal) {
                /* e1 is exactly 1 at the max (t = 0): subtracting the max's
                 * count drops its term, and e1 t is 0 there, so no select
                 * feeds a sum and each sum's chain stays one add long */
                FX_W e1 = FX_EXP_NORMAL(t);
                e = e1 - one;
                sd = FX_WFMA(e1, t, sd);
            } else {
                e = FX_EXP(one != (FX_W)0 ? (FX_W)-INFINITY : t);
                /* 0 at -inf logits, whose e is 0 (0 * -inf would be NaN) */
                sd += e == (FX_W)0 ? (FX_W)0 : e * t;
            }
            acc += e;
            cnt += one;
            sq = FX_WFMA(e, e, sq);
        }
        tot += (double)acc;
        totk += (double)cnt;
        totd += (double)sd;
        totq += (double)sq;
    }
    sums[0] = tot;
    sums[1] = totk;
    sums[2] = totd;
    sums[3] = totq;
}

/* elements a search for the first maximum tests before it looks closer */
#define FX_SCORE_SEARCH 64

/* the index of the first element of a block (n <= FX_FLUSH) whose z equals
 * m (or is NaN, with `nan`; a constant), n if none: FX_SCORE_SEARCH
 * elements at a time, tested by a vectorized count, and the one stretch
 * that holds it scanned.  The row's first pass could not keep that index
 * without losing its vectorization */
FX_INLINE Py_ssize_t FX_NAME(score_first)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W m,
                                          const int bf16, const int tmode, FX_W tw,
                                          const int nan)
{
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_SCORE_SEARCH) {
        Py_ssize_t end = j0 + FX_SCORE_SEARCH < n ? j0 + FX_SCORE_SEARCH : n;
        FX_W hit = 0;
        FX_SIMD_REDUCE(+:hit)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_SCORE_Z(x[j * s]);
            hit += (nan ? v != v : v == m) ? (FX_W)1 : (FX_W)0;
        }
        if (hit == 0) continue;
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_SCORE_Z(x[j * s]);
            if (nan ? v != v : v == m) return j;
        }
    }
    return n;
}

/* a row's results from its merged sums st, the count gt of logits above
 * z_y, the first argmax pred, the first NaN (-1: none) and whether a NaN or
 * +inf was seen */
FX_INLINE void FX_NAME(score_finish)(const fx_score_state *stp, Py_ssize_t gt, Py_ssize_t pred,
                                     Py_ssize_t first_nan, int bad, FX_W zy, Py_ssize_t n,
                                     fx_score_row *r)
{
    const fx_score_state st = *stp;
    r->pred = first_nan >= 0 ? first_nan : pred;
    r->undefined = bad || st.m == -INFINITY;
    if (r->undefined) {
        r->nll = r->conf = r->ent = r->brier = NAN;
        r->rank = n;
        return;
    }
    double zyd = (double)zy;
    r->rank = gt;
    fx_score_values(st.m, st.k, st.s, st.d, st.q, zyd, zyd == st.m ? 1.0 : exp(zyd - st.m), 0,
                    &r->nll, &r->conf, &r->ent, &r->brier);
}

/*
 * A short row (n <= FX_SCORE_SHORT) in two passes over its z, copied to
 * the stack: a scalar one for the max, first argmax, min and count above
 * z_y, then the vectorized sums of score_sums.  The vectorized passes of score_row_body cost
 * more than their work on rows this short (reductions across lanes, loop
 * tails, a separate search for the argmax).  Returns 0, having written
 * nothing, for a row that needs the general body: a NaN or +inf, only
 * -inf, or a z - M below the normal range of FX_EXP_NORMAL (the rare rows
 * whose exps underflow).  Any stride, so that every layout of a row gives
 * the same bits.
 */
FX_INLINE int FX_NAME(score_row_short)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W zy,
                                       const int bf16, const int tmode, FX_W tw,
                                       fx_score_row *r)
{
    FX_W z[FX_SCORE_SHORT];
    FX_W m = -INFINITY, lo = INFINITY;
    Py_ssize_t gt = 0, pred = 0;
    int nan = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W v = FX_SCORE_Z(x[j * s]);
        z[j] = v;
        if (v > m) { m = v; pred = j; }
        lo = v < lo ? v : lo;
        gt += v > zy;
        nan |= v != v;
    }
    /* false for -inf entries, an all -inf row and an empty one (m = -inf) */
    if (nan || m == (FX_W)INFINITY || !(lo - m >= (FX_W)FX_EXP_NORMAL_MIN))
        return 0;
    /* padded to a multiple of 8 with the max, whose terms are counted apart
     * (e = 0) and taken off the count after: whole vectors, no scalar tail */
    Py_ssize_t padded = (n + 7) & ~(Py_ssize_t)7;
    for (Py_ssize_t j = n; j < padded; j++) z[j] = m;
    FX_W acc = 0, cnt = 0, sd = 0, sq = 0;
    /* z is contiguous here whatever the row's stride: vectorized alike */
    FX_SIMD_REDUCE(+:acc,cnt,sd,sq)
    for (Py_ssize_t j = 0; j < padded; j++) {
        FX_W t = z[j] - m;
        int eq = z[j] == m;
        FX_W e1 = FX_EXP_NORMAL(t);
        FX_W e = eq ? (FX_W)0 : e1;
        sd += e * t;
        acc += e;
        cnt += eq ? (FX_W)1 : (FX_W)0;
        sq += e * e;
    }
    cnt -= (FX_W)(padded - n);
    /* one block merged into the empty state: its sums as they are */
    fx_score_state st = {(double)m, (double)cnt, (double)acc, (double)sd, (double)sq};
    FX_NAME(score_finish)(&st, gt, pred, -1, 0, zy, n, r);
    return 1;
}

/* one block of a row (len <= FX_FLUSH elements, from element j0 of the
 * row or segment) read into the scan *sc: its max, min, count above zy and
 * check, then its first maximum (or NaN) where it leads, and its sums
 * merged into the running state (zy: the label's z, NaN for an ignored row) */
FX_INLINE void FX_NAME(score_scan_block)(const FX_T *xb, Py_ssize_t len, Py_ssize_t s,
                                         Py_ssize_t j0, FX_W zy, const int bf16,
                                         const int tmode, FX_W tw, fx_score_scan *sc)
{
    FX_W m = -INFINITY, lo = INFINITY, chk = 0;
    FX_WI cgt = 0;
    FX_SCORE_SIMD_SCAN(m, lo, cgt, chk)
    for (Py_ssize_t j = 0; j < len; j++) {
        FX_W v = FX_SCORE_Z(xb[j * s]);
        m = v > m ? v : m;
        lo = v < lo ? v : lo;
        cgt += v > zy;
        /* not finite as soon as a NaN or an infinity is added (or,
         * rarely, a sum of huge logits overflows): one instruction
         * where counting NaNs took three */
        chk += v;
    }
    sc->gt += (Py_ssize_t)cgt;
    FX_W cnan = 0;
    if (!(chk - chk == (FX_W)0)) {   /* rare: count the NaNs */
        FX_SIMD_REDUCE(+:cnan)
        for (Py_ssize_t j = 0; j < len; j++) {
            FX_W v = FX_SCORE_Z(xb[j * s]);
            cnan += v != v ? (FX_W)1 : (FX_W)0;
        }
    }
    if (cnan > 0 && sc->first_nan < 0)
        sc->first_nan = j0 + FX_NAME(score_first)(xb, len, s, m, bf16, tmode, tw, 1);
    if ((double)m > sc->best || (j0 == 0 && (double)m == sc->best)) {
        /* the first element equal to the new max: this block is in L1 */
        sc->pred = j0 + FX_NAME(score_first)(xb, len, s, m, bf16, tmode, tw, 0);
        sc->best = (double)m;
    }
    sc->bad |= cnan > 0 || m == (FX_W)INFINITY;
    if (sc->bad) return;   /* only the prediction is still needed */
    double sums[4] = {0.0, (double)len, 0.0, 0.0};
    if (m != -INFINITY) {   /* a block of -inf only: k = len, nothing else */
        /* false for -inf entries */
        if (lo - m >= (FX_W)FX_EXP_NORMAL_MIN)
            FX_NAME(score_sums)(xb, len, s, m, bf16, tmode, tw, 1, sums);
        else
            FX_NAME(score_sums)(xb, len, s, m, bf16, tmode, tw, 0, sums);
    }
    fx_score_merge(&sc->st, (double)m, sums[1], sums[0], sums[2], sums[3]);
}

/* one read of a row, or of a segment of it (zy: the label's z, NaN for an
 * ignored row), a block of FX_FLUSH at a time.  A float16 row (not
 * bfloat16) with FX_VIA_F32 goes through float32's block: each block
 * converted once into a buffer (by F16C where contiguous, element by
 * element otherwise, so that every layout gives the same bits), the
 * element-wise conversions costing as much as the exps */
FX_INLINE void FX_NAME(score_row_scan)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W zy,
                                       const int bf16, const int tmode, FX_W tw,
                                       fx_score_scan *out)
{
    fx_score_scan sc = {{-INFINITY, 0.0, 0.0, 0.0, 0.0}, -INFINITY, 0, 0, -1, 0};
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FLUSH) {
        Py_ssize_t len = n - j0 < FX_FLUSH ? n - j0 : FX_FLUSH;
#ifdef FX_VIA_F32
        if (!bf16) {
            float fb[FX_FLUSH];
            if (s == 1)
                fx_halves_to_floats(x + j0, len, fb);
            else
                for (Py_ssize_t j = 0; j < len; j++) fb[j] = FX_LOAD(x[(j0 + j) * s]);
            fx_f32_score_scan_block(fb, len, 1, j0, zy, 0, tmode, tw, &sc);
            continue;
        }
#endif
        FX_NAME(score_scan_block)(x + j0 * s, len, s, j0, zy, bf16, tmode, tw, &sc);
    }
    *out = sc;
}

/* one row */
FX_INLINE void FX_NAME(score_row_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W zy,
                                       const int bf16, const int tmode, FX_W tw,
                                       fx_score_row *r)
{
    fx_score_scan sc;
    FX_NAME(score_row_scan)(x, n, s, zy, bf16, tmode, tw, &sc);
    FX_NAME(score_finish)(&sc.st, sc.gt, sc.pred, sc.first_nan, sc.bad, zy, n, r);
}

/* lanes of one call of score_lanes_passes: a block of 64 classes of this
 * many lanes is 16 KiB of float64 on the stack (threads on some platforms,
 * musl's among them, have stacks of 128 KiB) */
#define FX_SCORE_PASS_W 32

/* score_lanes_body's per-lane passes over W rows (lanes W..L, if any, hold
 * zeros; L <= FX_SCORE_PASS_W): the rows into columns T, the label's z zl
 * (class yl, NaN for yl = -1) from them, then per lane, in class order, the max,
 * first argmax, min, count above zl and NaN count, ok, the sums of
 * score_sums (see score_lanes_body) and ey, exp(z - M) of the label's class
 * (0 for yl = -1) */
FX_INLINE void FX_NAME(score_lanes_passes)(const FX_T *const *xr, Py_ssize_t W, Py_ssize_t L,
                                           Py_ssize_t C, Py_ssize_t s, const int bf16,
                                           const int tmode, FX_W tw, const int32_t *yl,
                                           FX_W *zl, FX_W *m,
                                           FX_W *lo, FX_W *gt, FX_W *nan, FX_W *pr, FX_W *ok,
                                           FX_W *acc, FX_W *cnt, FX_W *sd, FX_W *sq, FX_W *ey)
{
    FX_W T[FX_SCORE_LANES_C * FX_SCORE_PASS_W];
    for (Py_ssize_t i = 0; i < L; i++)
        for (Py_ssize_t c = 0; c < C; c++)
            T[c * FX_SCORE_PASS_W + i] = i < W ? FX_SCORE_Z(xr[i][c * s]) : (FX_W)0;
    for (Py_ssize_t i = 0; i < L; i++)
        zl[i] = yl[i] >= 0 ? T[yl[i] * FX_SCORE_PASS_W + i] : (FX_W)NAN;
    /* the label as a class of the working type: the selects below then
     * compare values of one width, which GCC vectorizes */
    FX_W yw[FX_SCORE_PASS_W];
    for (Py_ssize_t i = 0; i < L; i++) {
        m[i] = (FX_W)-INFINITY;
        lo[i] = (FX_W)INFINITY;
        gt[i] = nan[i] = pr[i] = 0;
        acc[i] = cnt[i] = sd[i] = sq[i] = ey[i] = 0;
        yw[i] = (FX_W)yl[i];
    }
    for (Py_ssize_t c = 0; c < C; c++)
        for (Py_ssize_t i = 0; i < L; i++) {
            FX_W v = T[c * FX_SCORE_PASS_W + i];
            int g = v > m[i];   /* strictly: the first argmax */
            pr[i] = g ? (FX_W)c : pr[i];
            m[i] = g ? v : m[i];
            lo[i] = v < lo[i] ? v : lo[i];
            gt[i] += v > zl[i] ? (FX_W)1 : (FX_W)0;
            nan[i] += v != v ? (FX_W)1 : (FX_W)0;
        }
    for (Py_ssize_t i = 0; i < L; i++)
        /* false for -inf entries, NaN, +inf, and rows without a finite max
         * (only -inf, or no class) */
        ok[i] = (nan[i] == 0 && m[i] != (FX_W)INFINITY && m[i] != (FX_W)-INFINITY
                 && lo[i] - m[i] >= (FX_W)FX_EXP_NORMAL_MIN) ? (FX_W)1 : (FX_W)0;
    /* rows of more than FX_SUM_RUN classes: the sums in runs of
     * FX_SUM_RUN classes in the working type, added in double, rounded once
     * (as the softmax family's short rows sum theirs) */
    double dacc[FX_SCORE_PASS_W], dsd[FX_SCORE_PASS_W], dsq[FX_SCORE_PASS_W];
    if (C > FX_SUM_RUN)
        for (Py_ssize_t i = 0; i < L; i++) dacc[i] = dsd[i] = dsq[i] = 0.0;
    for (Py_ssize_t c = 0; c < C; c++) {
        for (Py_ssize_t i = 0; i < L; i++) {
            FX_W v = T[c * FX_SCORE_PASS_W + i];
            int eq = v == m[i];
            /* a row that falls back keeps exp's argument in range */
            FX_W t = ok[i] != 0 ? v - m[i] : (FX_W)0;
            FX_W e1 = FX_EXP_NORMAL(t);
            FX_W e = eq ? (FX_W)0 : e1;
            ey[i] = yw[i] == (FX_W)c ? e1 : ey[i];
            /* the entropy and Brier terms as FMAs, as the rows' sums take
             * them (one rounding each, one instruction each) */
            sd[i] = FX_WFMA(e, t, sd[i]);
            acc[i] += e;
            cnt[i] += eq ? (FX_W)1 : (FX_W)0;
            sq[i] = FX_WFMA(e, e, sq[i]);
        }
        if (FX_SUM_RUN_END(C, c))
            for (Py_ssize_t i = 0; i < L; i++) {
                dacc[i] += (double)acc[i];
                dsd[i] += (double)sd[i];
                dsq[i] += (double)sq[i];
                acc[i] = sd[i] = sq[i] = 0;
            }
    }
    if (C > FX_SUM_RUN)
        for (Py_ssize_t i = 0; i < L; i++) {
            acc[i] = (FX_W)dacc[i];
            sd[i] = (FX_W)dsd[i];
            sq[i] = (FX_W)dsq[i];
        }
}

/*
 * W <= FX_BLOCK_W rows of C <= FX_SCORE_LANES_C classes (row i at xr[i],
 * class stride s; ys[i] its label, in [0, C) unless ign[i]), scored side by
 * side: the rows are copied into T as columns of lanes, and every
 * pass runs across the lanes, which the compiler vectorizes whatever C is
 * (the per-row passes of score_row cost a row's fixed overhead each, which
 * on rows this short is most of the work).  Per lane, in class order: the
 * max, first argmax, min, count above z_y and NaN count; then the sums of
 * score_sums.  The results go to res; res->done[i] = 0 for the rows that
 * need the general body: a NaN or +inf, only -inf, or a z - M below the normal range
 * of FX_EXP_NORMAL.  Any stride: every layout of a row gives the same bits.
 */
FX_INLINE void FX_NAME(score_lanes_body)(const FX_T *const *xr, Py_ssize_t W, Py_ssize_t C,
                                         Py_ssize_t s, const int64_t *ys,
                                         const unsigned char *ign, const int bf16,
                                         const int tmode, FX_W tw, fx_score_lanes_res *res)
{
    FX_W m[FX_BLOCK_W], lo[FX_BLOCK_W], gt[FX_BLOCK_W], nan[FX_BLOCK_W], pr[FX_BLOCK_W];
    FX_W zl[FX_BLOCK_W], ok[FX_BLOCK_W];
    /* the lanes' labels, -1 for ignored rows and lanes without a row (their
     * z is NaN, as the driver's was for an ignored row) */
    int32_t yl[FX_BLOCK_W];
    FX_W acc[FX_BLOCK_W], cnt[FX_BLOCK_W], sd[FX_BLOCK_W], sq[FX_BLOCK_W], ey[FX_BLOCK_W];
    /* the portable passes run over the W rows alone, not FX_BLOCK_W lanes: a
     * group of a few rows (a small call) costs a few rows.  Every lane is
     * computed by the same operations, vectorized or not, so a row's bits
     * do not depend on how many rows share its group. */
    Py_ssize_t L = W;
#if defined(FX_SHORT_X8) || defined(FX_SHORT_VIA8)
    if (s == 1) {
        /* contiguous float32 rows: the same passes 8 lanes at a time in
         * registers, bit for bit (fx_short_rows_avx2.h); lanes without a
         * row hold zeros, computed and dropped */
#if defined(FX_SHORT_VIA8)
        /* float16 and bfloat16 rows converted into float32 rows first (by
         * F16C; bfloat16's bits shifted), then float32's passes: the same
         * values and operations as the loops below, so the same bits, at
         * about the cost of float32's (the loops below cost half as much
         * again) */
        float xf[FX_BLOCK_W * FX_SCORE_LANES_C];
        const float *xq[FX_BLOCK_W];
        /* the rows follow one another (every row, not just the last: rows
         * walked over several dims need not be evenly spaced) */
        int dense = 1;
        for (Py_ssize_t i = 1; i < W; i++)
            dense &= (uintptr_t)xr[i] == (uintptr_t)xr[0] + (uintptr_t)(i * C * 2);
        for (Py_ssize_t i = 0; i < (dense ? 1 : W); i++) {
            const Py_ssize_t n = dense ? W * C : C;
            float *d = xf + i * C;
            if (bf16)
                for (Py_ssize_t j = 0; j < n; j++) d[j] = fx_bf16_to_float((uint16_t)xr[i][j]);
            else
                fx_halves_to_floats((const uint16_t *)xr[i], n, d);
        }
        for (Py_ssize_t i = 0; i < W; i++) xq[i] = xf + i * C;
        const float *const *xv = xq;
#else
        const float *const *xv = (const float *const *)xr;
#endif
#if defined(FX_HAVE_F32X16)
        /* 16 lanes at a time (fx_short_rows_avx512.h), the same bits */
        const Py_ssize_t V = 16;
#else
        const Py_ssize_t V = 8;
#endif
        L = (W + V - 1) / V * V;
        for (Py_ssize_t i = 0; i < L; i++)
            yl[i] = i < W && !ign[i] ? (int32_t)ys[i] : -1;
        for (Py_ssize_t i = 0; i < L; i += V)
#if defined(FX_HAVE_F32X16)
            fx_score16(xv + i, W - i < V ? W - i : V, C, tmode, tw, yl + i, zl + i, m + i,
                       gt + i, pr + i, ok + i, acc + i, cnt + i, sd + i, sq + i, ey + i);
#else
            fx_score8(xv + i, W - i < V ? W - i : V, C, tmode, tw, yl + i, zl + i, m + i,
                      gt + i, pr + i, ok + i, acc + i, cnt + i, sd + i, sq + i, ey + i);
#endif
    } else
#endif
    {
        for (Py_ssize_t i = 0; i < W; i++)
            yl[i] = ign[i] ? -1 : (int32_t)ys[i];
        /* one row (a small call) with the lane count a constant: loops
         * without a vector set-up each, the same operations */
        if (W == 1)
            FX_NAME(score_lanes_passes)(xr, 1, 1, C, s, bf16, tmode, tw, yl, zl, m, lo, gt, nan,
                                        pr, ok, acc, cnt, sd, sq, ey);
        else
            for (Py_ssize_t i = 0; i < W; i += FX_SCORE_PASS_W) {
                const Py_ssize_t n = W - i < FX_SCORE_PASS_W ? W - i : FX_SCORE_PASS_W;
                FX_NAME(score_lanes_passes)(xr + i, n, n, C, s, bf16, tmode, tw, yl + i, zl + i,
                                            m + i, lo + i, gt + i, nan + i, pr + i, ok + i,
                                            acc + i, cnt + i, sd + i, sq + i, ey + i);
            }
    }
    /* the results, across the lanes too: fx_score_values, with the label's
     * exp(z_y - M) the one the sums added (in the working type, as every
     * term of s and q is: an exp in double of its own cost a sixth of this
     * loop); lanes that are not ok compute garbage that nobody reads */
    for (Py_ssize_t i = 0; i < L; i++) {   /* L: the lanes set above */
        double mv = (double)m[i], zyd = (double)zl[i];
        fx_score_values(mv, (double)cnt[i], (double)acc[i], (double)sd[i], (double)sq[i], zyd,
                        (double)ey[i], sizeof(FX_W) == 4, &res->nll[i], &res->conf[i],
                        &res->ent[i], &res->brier[i]);
    }
    /* both under C <= 64: through int32, which converts across lanes
     * (float to int64 has no vector instruction below AVX-512) */
    for (Py_ssize_t i = 0; i < L; i++) {
        res->pred[i] = (int32_t)pr[i];
        res->rank[i] = (int32_t)gt[i];
    }
    Py_ssize_t ndone = 0;
    for (Py_ssize_t i = 0; i < W; i++) {
        res->done[i] = ok[i] != 0;
        ndone += ok[i] != 0;
    }
    res->ndone = ndone;
}

/* score_lanes_body for every flag; the rows it leaves go through score_row */
static FX_NOINLINE void FX_NAME(score_lanes)(const FX_T *const *xr, Py_ssize_t W, Py_ssize_t C,
                                            Py_ssize_t s, const int64_t *ys,
                                            const unsigned char *ign, int bf16, int tmode,
                                            FX_W tw, fx_score_lanes_res *res)
{
    if (sizeof(FX_T) == 2 && bf16) {
        if (tmode == 0) FX_NAME(score_lanes_body)(xr, W, C, s, ys, ign, 1, 0, tw, res);
        else if (tmode == 1) FX_NAME(score_lanes_body)(xr, W, C, s, ys, ign, 1, 1, tw, res);
        else FX_NAME(score_lanes_body)(xr, W, C, s, ys, ign, 1, 2, tw, res);
    } else {
        if (tmode == 0) FX_NAME(score_lanes_body)(xr, W, C, s, ys, ign, 0, 0, tw, res);
        else if (tmode == 1) FX_NAME(score_lanes_body)(xr, W, C, s, ys, ign, 0, 1, tw, res);
        else FX_NAME(score_lanes_body)(xr, W, C, s, ys, ign, 0, 2, tw, res);
    }
}

/* the row body specialized for unit stride and for every flag */
static FX_NOINLINE void FX_NAME(score_row)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W zy,
                                          int bf16, int tmode, FX_W tw, fx_score_row *r)
{
    if (n <= FX_SCORE_SHORT) {
        int done;
        if (sizeof(FX_T) == 2 && bf16)
            done = tmode == 0 ? FX_NAME(score_row_short)(x, n, s, zy, 1, 0, tw, r)
                 : tmode == 1 ? FX_NAME(score_row_short)(x, n, s, zy, 1, 1, tw, r)
                 : FX_NAME(score_row_short)(x, n, s, zy, 1, 2, tw, r);
        else
            done = tmode == 0 ? FX_NAME(score_row_short)(x, n, s, zy, 0, 0, tw, r)
                 : tmode == 1 ? FX_NAME(score_row_short)(x, n, s, zy, 0, 1, tw, r)
                 : FX_NAME(score_row_short)(x, n, s, zy, 0, 2, tw, r);
        if (done) return;
    }
#define FX_SCORE_CASES(BF)                                                              \
    if (s == 1) {                                                                       \
        if (tmode == 0) FX_NAME(score_row_body)(x, n, 1, zy, BF, 0, tw, r);             \
        else if (tmode == 1) FX_NAME(score_row_body)(x, n, 1, zy, BF, 1, tw, r);        \
        else FX_NAME(score_row_body)(x, n, 1, zy, BF, 2, tw, r);                        \
    } else {                                                                            \
        if (tmode == 0) FX_NAME(score_row_body)(x, n, s, zy, BF, 0, tw, r);             \
        else if (tmode == 1) FX_NAME(score_row_body)(x, n, s, zy, BF, 1, tw, r);        \
        else FX_NAME(score_row_body)(x, n, s, zy, BF, 2, tw, r);                        \
    }
    if (sizeof(FX_T) == 2 && bf16) { FX_SCORE_CASES(1) } else { FX_SCORE_CASES(0) }
#undef FX_SCORE_CASES
}

/*
 * The partial state of a segment of a row -- the classes of one block of a
 * class axis split over blocks (the Dask reductions, which merge the
 * segments' states and finish them as score_finish does): f = (largest z,
 * k, s, d, q) as fx_score_state, i = (count above zy, first argmax, first
 * NaN or -1, bad); indices within the segment.  The sums of a segment with
 * a NaN or +inf are not formed (its row has no distribution).
 */
static FX_NOINLINE void FX_NAME(score_row_state)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                                FX_W zy, int bf16, int tmode, FX_W tw,
                                                double *f, int64_t *i)
{
    fx_score_scan sc;
#define FX_SCORE_CASES(BF)                                                              \
    if (s == 1) {                                                                       \
        if (tmode == 0) FX_NAME(score_row_scan)(x, n, 1, zy, BF, 0, tw, &sc);           \
        else if (tmode == 1) FX_NAME(score_row_scan)(x, n, 1, zy, BF, 1, tw, &sc);      \
        else FX_NAME(score_row_scan)(x, n, 1, zy, BF, 2, tw, &sc);                      \
    } else {                                                                            \
        if (tmode == 0) FX_NAME(score_row_scan)(x, n, s, zy, BF, 0, tw, &sc);           \
        else if (tmode == 1) FX_NAME(score_row_scan)(x, n, s, zy, BF, 1, tw, &sc);      \
        else FX_NAME(score_row_scan)(x, n, s, zy, BF, 2, tw, &sc);                      \
    }
    if (sizeof(FX_T) == 2 && bf16) { FX_SCORE_CASES(1) } else { FX_SCORE_CASES(0) }
#undef FX_SCORE_CASES
    f[0] = sc.best;
    f[1] = sc.st.k;
    f[2] = sc.st.s;
    f[3] = sc.st.d;
    f[4] = sc.st.q;
    i[0] = sc.gt;
    i[1] = sc.pred;
    i[2] = sc.first_nan;
    i[3] = sc.bad;
}

/* z of one element (outside the loops: the flags need not be constants) */
static inline FX_W FX_NAME(score_z)(FX_T raw, int bf16, int tmode, FX_W tw)
{
    FX_W v = (sizeof(FX_T) == 2 && bf16) ? (FX_W)fx_bf16_to_float((uint16_t)raw) : FX_LOAD(raw);
    return tmode == 0 ? v : tmode == 1 ? v * tw : v / tw;
}

/* v rounded to the result type (double for double storage, float
 * otherwise), as score_put stores it.  Never a plain (double)(float) round
 * trip: GCC 12 at -O2 was seen to drop it here, so the sums were not those
 * of the rows */
static inline double FX_NAME(score_round)(double v)
{
    if (sizeof(FX_T) == 8) return v;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
    /* an empty asm that takes and gives the float in a register: the
     * compiler must form it (a volatile's store and load, the portable
     * way, cost a short row several cycles) */
    float f = (float)v;
#if defined(__aarch64__)
    __asm__("" : "+w"(f));
#else
    __asm__("" : "+x"(f));
#endif
    return (double)f;
#else
    volatile float f = (float)v;
    return (double)f;
#endif
}
#define FX_SCORE_R(v) FX_NAME(score_round)(v)

static inline void FX_NAME(score_put)(char *p, double v)
{
    if (sizeof(FX_T) == 8) memcpy(p, &v, 8);
    else { float f = (float)v; memcpy(p, &f, 4); }
}

/* one row's terms added to the sums of score_block's FX_SCORE_STATE */
FX_INLINE void FX_NAME(score_add_row)(const fx_score_row *row, int64_t y, const fx_score_args *a,
                                      double *fsums, int64_t *counts, double *sums)
{
    const Py_ssize_t max_rank = a->max_rank, nb = a->n_bins;
    double conf = FX_SCORE_R(row->conf);
    sums[0] += FX_SCORE_R(row->nll);
    sums[1] += FX_SCORE_R(row->ent);
    sums[2] += FX_SCORE_R(row->brier);
    counts[0] += 1;
    /* without a branch (ranks at or above max_rank, and C for an undefined
     * row, add 0 to the first rank's count): a rank is the data's, so a
     * branch on it is mispredicted half the time */
    const int64_t in_top = row->rank < max_rank;
    counts[2 + (in_top ? row->rank : 0)] += in_top;
    if (row->undefined) {
        counts[1] += 1;
        return;   /* in no bin */
    }
    Py_ssize_t b = fx_score_bin(conf, nb, a->edges);
    fsums[3 + b] += conf;
    counts[2 + max_rank + b] += 1;
    counts[2 + max_rank + nb + 1 + b] += row->pred == y;
}

/*
 * The rows of a group that the lanes scored (res->done) and that count
 * (not ign) added to acc (see fx_score_acc), in loops over the lanes that
 * vectorize: the values rounded to the result type, the per-lane sums, the
 * bins (fx_score_bins), the cells; then one loop of two adds per row.
 * Ranks go to counts directly when the cells have no rank axis.
 */
FX_INLINE void FX_NAME(score_lanes_add)(const fx_score_lanes_res *res, Py_ssize_t W,
                                        const unsigned char *ign, const int64_t *ys,
                                        const fx_score_args *a, fx_score_acc *acc,
                                        int64_t *counts)
{
    const Py_ssize_t max_rank = a->max_rank, nb = a->n_bins;
    const int32_t nr = (int32_t)acc->nr;
    int32_t use[FX_BLOCK_W], bin[FX_BLOCK_W];
    /* the values rounded to the result type (float below 8-byte storage)
     * through arrays of it, a loop that vectorizes */
    double rn[FX_BLOCK_W], re[FX_BLOCK_W], rb[FX_BLOCK_W], rc[FX_BLOCK_W];
    for (Py_ssize_t w = 0; w < W; w++) use[w] = res->done[w] & (ign[w] ^ 1);
    if (sizeof(FX_T) == 8) {
        memcpy(rn, res->nll, W * sizeof(double));
        memcpy(re, res->ent, W * sizeof(double));
        memcpy(rb, res->brier, W * sizeof(double));
        memcpy(rc, res->conf, W * sizeof(double));
    } else {
        float fn[FX_BLOCK_W], fe[FX_BLOCK_W], fb[FX_BLOCK_W], fc[FX_BLOCK_W];
        for (Py_ssize_t w = 0; w < W; w++) {
            fn[w] = (float)res->nll[w];
            fe[w] = (float)res->ent[w];
            fb[w] = (float)res->brier[w];
            fc[w] = (float)res->conf[w];
        }
        for (Py_ssize_t w = 0; w < W; w++) {
            rn[w] = (double)fn[w];
            re[w] = (double)fe[w];
            rb[w] = (double)fb[w];
            rc[w] = (double)fc[w];
        }
    }
    for (Py_ssize_t w = 0; w < W; w++) {
        acc->nll[w] += use[w] ? rn[w] : 0.0;
        acc->ent[w] += use[w] ? re[w] : 0.0;
        acc->brier[w] += use[w] ? rb[w] : 0.0;
    }
    /* the lanes' confidences are in (0, 1]; a lane that does not count is
     * binned as 0 and adds nothing */
    double cc[FX_BLOCK_W];
    for (Py_ssize_t w = 0; w < W; w++) cc[w] = use[w] ? rc[w] : 0.0;
    fx_score_bins(cc, W, nb, a->edges, bin);
    /* the lanes' slots (way, bin) and cells (way, bin, rank, correct),
     * across the lanes first: the loop of additions then has nothing else
     * to do */
    int32_t cell[FX_BLOCK_W], slot[FX_BLOCK_W];
    for (Py_ssize_t w = 0; w < W; w++) {
        const int32_t way = (int32_t)(w % FX_SCORE_SPLIT);
        /* unsigned: a lane that does not count may hold any rank */
        const int32_t r = (uint32_t)res->rank[w] < (uint32_t)(nr - 1) ? res->rank[w] : nr - 1;
        const int32_t cor = res->pred[w] == (int32_t)ys[w];
        slot[w] = way * FX_SCORE_ACC_BINS + bin[w];
        cell[w] = way * FX_SCORE_ACC_CELLS + (bin[w] * nr + r) * 2 + cor;
    }
    for (Py_ssize_t w = 0; w < W; w++) {
        acc->bconf[slot[w]] += cc[w];
        acc->cells[cell[w]] += use[w];
    }
    if (nr == 1 && max_rank > 0)
        for (Py_ssize_t w = 0; w < W; w++) {
            const int64_t in_top = use[w] & (res->rank[w] < max_rank);
            counts[2 + (in_top ? res->rank[w] : 0)] += in_top;
        }
}

/* a group's per-row results (one row dim, rows g0 + w, w < W) into the
 * outputs that are not NULL, one output at a time: the values rounded to
 * the result type as score_put rounds them, across the lanes, then copied
 * whole where the output is contiguous */
FX_INLINE void FX_NAME(score_lanes_out)(const fx_score_lanes_res *res, Py_ssize_t W,
                                        const fx_score_args *a, Py_ssize_t g0)
{
    const double *vals[FX_SCORE_NOUT] = {res->nll, NULL, NULL, res->conf, res->ent,
                                         res->brier};
    for (int o = 0; o < FX_SCORE_NOUT; o++) {
        if (!a->out[o]) continue;
        const Py_ssize_t st = a->os[o][0];
        char *p = a->out[o] + g0 * st;
        if (o == FX_SCORE_RANK || o == FX_SCORE_PRED) {
            const int32_t *v = o == FX_SCORE_RANK ? res->rank : res->pred;
            int64_t t[FX_BLOCK_W];
            for (Py_ssize_t w = 0; w < W; w++) t[w] = v[w];
            if (st == 8) memcpy(p, t, W * 8);
            else for (Py_ssize_t w = 0; w < W; w++) memcpy(p + w * st, &t[w], 8);
        } else if (sizeof(FX_T) == 8) {
            if (st == 8) memcpy(p, vals[o], W * 8);
            else for (Py_ssize_t w = 0; w < W; w++) memcpy(p + w * st, &vals[o][w], 8);
        } else {
            float f[FX_BLOCK_W];
            for (Py_ssize_t w = 0; w < W; w++) f[w] = (float)vals[o][w];
            if (st == 4) memcpy(p, f, W * 4);
            else for (Py_ssize_t w = 0; w < W; w++) memcpy(p + w * st, &f[w], 4);
        }
    }
}

/*
 * Rows [r0, r1) in C order of the row dims.  FX_SCORE_CHECK: only the
 * labels.  FX_SCORE_ROWS: the outputs.  FX_SCORE_STATE: the sums of the
 * rows that count: fsums (3 + n_bins + 1 doubles: nll, entropy, Brier,
 * then the confidence of each bin) and counts (int64: count, undefined,
 * rank_counts[max_rank], bin_count[n_bins + 1], bin_correct[n_bins + 1]),
 * both added to.  The per-row values are rounded to the result type first,
 * so the sums are those of score_rows' rows; in an order fixed by the
 * block's rows (row order, or per lane and folded, see fx_score_acc), never
 * by the threads.  Returns the first row (flat index) with a bad label, or
 * -1; in the check and state modes (the state's sums are then partial).
 */
static Py_ssize_t FX_NAME(score_block)(const fx_score_args *a, Py_ssize_t r0, Py_ssize_t r1,
                                       int mode, double *fsums, int64_t *counts)
{
    Py_ssize_t idx[FX_NLL_MAXDIM];
    const Py_ssize_t nd = a->nd, last = nd - 1, C = a->C, xc = a->xc;
    const Py_ssize_t s = xc / (Py_ssize_t)sizeof(FX_T);
    const int bf16 = a->bf16, tmode = a->tmode, lkind = a->lkind, has_ignore = a->has_ignore;
    const int ignore_big = a->ignore_big;
    /* int64 labels (kind 8) never equal an ignore_index above INT64_MAX */
    const int ignore_small = has_ignore && !ignore_big;
    const int64_t ignore_index = a->ignore_index;
    const FX_W tw = (FX_W)a->t;
    const Py_ssize_t max_rank = a->max_rank, nb = a->n_bins;
    /* short rows go FX_BLOCK_W at a time through score_lanes, others one by one */
    const Py_ssize_t group = (mode != FX_SCORE_CHECK && C <= FX_SCORE_LANES_C) ? FX_BLOCK_W : 1;
    /* a group's rows: their logits, labels, outputs' offsets, results.  The
     * label's z is formed where the row is read (the lanes take it from
     * their transposed rows), or by FX_SCORE_ZY for a row scored alone */
    const FX_T *xr[FX_BLOCK_W];
    int64_t ys[FX_BLOCK_W];
    unsigned char ign[FX_BLOCK_W];
    /* the row a group ahead asked for (its first and last element): short
     * rows are scored faster than the hardware's prefetch brought them in
     * (a third of score's time at 1e6 x 10 float32 went to their first
     * loads).  At base + off bytes, formed as an integer: the address may
     * be past the array, which a prefetch never faults on */
#define FX_SCORE_PREFETCH(base, off)                                                \
    do {                                                                            \
        const uintptr_t q_ = (uintptr_t)(base) + (uintptr_t)(off);                  \
        FX_PREFETCH(q_);                                                            \
        if (pf_end) FX_PREFETCH(q_ + (uintptr_t)((C - 1) * xc));                    \
    } while (0)
    /* rows that follow one another, each within 64 bytes: the lines of a
     * row's end are the next row's start, asked for with it */
    const int pf_end = !(xc == (Py_ssize_t)sizeof(FX_T) && a->xs[0] == C * xc
                         && C * xc <= 64);
#define FX_SCORE_ZY(w) (ign[w] ? (FX_W)NAN : FX_NAME(score_z)(xr[w][ys[w] * s], bf16, tmode, tw))
    Py_ssize_t oos[FX_BLOCK_W][FX_SCORE_NOUT];
    fx_score_lanes_res res;
    if (mode == FX_SCORE_CHECK && nd == 1 && lkind == 8) {
        /* the usual labels (one row dim of int64): a plain loop, without
         * the walk over the row dims, which was most of the check's time */
        const Py_ssize_t ls = a->ls[0];
        for (Py_ssize_t r = r0; r < r1; r++) {
            int64_t y;
            memcpy(&y, a->lab + r * ls, 8);
            if ((uint64_t)y >= (uint64_t)C && !(ignore_small && y == ignore_index)) return r;
        }
        return -1;
    }
    /* the block's float sums (nll, entropy, Brier) in locals, written once
     * at the end: the slots of neighbouring blocks may share a cache line */
    double sums[3] = {0.0, 0.0, 0.0};
    /* the lanes' own sums (short rows, blocks long enough to repay their
     * set-up) */
    const int lanes_acc = mode == FX_SCORE_STATE && group > 1 && r1 - r0 >= FX_SCORE_ACC_ROWS
                          && nb + 1 <= FX_SCORE_ACC_BINS;
    fx_score_acc acc;
    if (lanes_acc) {
        memset(acc.nll, 0, sizeof(acc.nll));
        memset(acc.ent, 0, sizeof(acc.ent));
        memset(acc.brier, 0, sizeof(acc.brier));
        /* nb + 1 <= 64 bins: 2 (nb + 1) cells of each rank fit */
        acc.nr = (nb + 1) * 2 * (max_rank + 1) <= FX_SCORE_ACC_CELLS ? max_rank + 1 : 1;
        const Py_ssize_t ncell = (nb + 1) * 2 * acc.nr;
        for (Py_ssize_t j = 0; j < FX_SCORE_SPLIT; j++) {
            for (Py_ssize_t b = 0; b <= nb; b++) acc.bconf[j * FX_SCORE_ACC_BINS + b] = 0.0;
            memset(acc.cells + j * FX_SCORE_ACC_CELLS, 0, ncell * sizeof(int64_t));
        }
    }
    Py_ssize_t rem = r0;
    for (Py_ssize_t d = last; d >= 0; d--) {
        idx[d] = rem % a->shape[d];
        rem /= a->shape[d];
    }
    /* the usual rows (one row dim, int64 labels) take a loop without the
     * general one's cases */
    const int plain = nd == 1 && lkind == 8 && mode != FX_SCORE_CHECK && group > 1;
    /* the per-row outputs of one row dim: written from the lanes' results,
     * one output at a time */
    const int rows_lanes = mode == FX_SCORE_ROWS && nd == 1 && group > 1;
    for (Py_ssize_t g0 = r0; g0 < r1; g0 += group) {
        const Py_ssize_t W = r1 - g0 < group ? r1 - g0 : group;
        if (plain) {
            const Py_ssize_t xs0 = a->xs[0], ls0 = a->ls[0];
            const char *xg = a->x + g0 * xs0, *lg = a->lab + g0 * ls0;
            /* the labels read and checked in a loop of their own, which
             * vectorizes (the row with a bad one found after it); the lanes
             * set every done[w] */
            int bad = 0;
            for (Py_ssize_t w = 0; w < W; w++) {
                int64_t y;
                memcpy(&y, lg + w * ls0, 8);
                const int ignored = ignore_small & (y == ignore_index);
                bad |= (ignored ^ 1) & ((uint64_t)y >= (uint64_t)C);
                ys[w] = y;
                ign[w] = (unsigned char)ignored;
            }
            if (bad)
                for (Py_ssize_t w = 0; w < W; w++)
                    if (!ign[w] && (uint64_t)ys[w] >= (uint64_t)C) return g0 + w;
            for (Py_ssize_t w = 0; w < W; w++) {
                xr[w] = (const FX_T *)(xg + w * xs0);
                FX_SCORE_PREFETCH(xg, (w + FX_BLOCK_W) * xs0);
            }
        }
        for (Py_ssize_t w = 0; w < W && !plain; w++) {
            Py_ssize_t xo = 0, lo = 0;
            if (nd == 1) {
                /* one row dim (the usual case): no walk */
                const Py_ssize_t r = g0 + w;
                xo = r * a->xs[0];
                lo = r * a->ls[0];
                if (group > 1) FX_SCORE_PREFETCH(a->x, (r + FX_BLOCK_W) * a->xs[0]);
                if (mode == FX_SCORE_ROWS && !rows_lanes)
                    for (int o = 0; o < FX_SCORE_NOUT; o++) oos[w][o] = r * a->os[o][0];
            } else {
                for (int o = 0; o < FX_SCORE_NOUT; o++) oos[w][o] = 0;
                for (Py_ssize_t d = 0; d < nd; d++) {
                    xo += idx[d] * a->xs[d];
                    lo += idx[d] * a->ls[d];
                    if (mode == FX_SCORE_ROWS)
                        for (int o = 0; o < FX_SCORE_NOUT; o++) oos[w][o] += idx[d] * a->os[o][d];
                }
                /* the next row: carry into the outer dims */
                idx[last]++;
                for (Py_ssize_t d = last; d > 0 && idx[d] == a->shape[d]; d--) {
                    idx[d] = 0;
                    idx[d - 1]++;
                }
            }
            int big;
            int64_t y = fx_score_label(a->lab + lo, lkind, &big);
            int ignored = has_ignore && big == ignore_big && y == ignore_index;
            /* the sums check their labels as they go (the driver drops
             * them on a bad one); the outputs' were checked first */
            if (mode != FX_SCORE_ROWS && !ignored && (big || y < 0 || y >= C)) return g0 + w;
            if (mode == FX_SCORE_CHECK) continue;
            xr[w] = (const FX_T *)(a->x + xo);
            ys[w] = y;
            ign[w] = (unsigned char)ignored;
            res.done[w] = 0;
        }
        if (mode == FX_SCORE_CHECK) continue;
        if (group > 1) FX_NAME(score_lanes)(xr, W, C, s, ys, ign, bf16, tmode, tw, &res);
        if (lanes_acc) {
            /* the rows the lanes left, then the lanes' rows */
            for (Py_ssize_t w = 0; w < W && res.ndone < W; w++) {
                if (res.done[w] || ign[w]) continue;
                fx_score_row row;
                FX_NAME(score_row)(xr[w], C, s, FX_SCORE_ZY(w), bf16, tmode, tw, &row);
                FX_NAME(score_add_row)(&row, ys[w], a, fsums, counts, sums);
            }
            FX_NAME(score_lanes_add)(&res, W, ign, ys, a, &acc, counts);
            continue;
        }
        if (rows_lanes) {
            /* the rows the lanes left and the ignored rows' values into
             * the lanes' results (rank and prediction at most C) */
            int any_ign = 0;
            for (Py_ssize_t w = 0; w < W; w++) any_ign |= ign[w];
            for (Py_ssize_t w = 0; w < W && (res.ndone < W || any_ign); w++) {
                if (!res.done[w]) {
                    fx_score_row row;
                    FX_NAME(score_row)(xr[w], C, s, FX_SCORE_ZY(w), bf16, tmode, tw, &row);
                    res.nll[w] = row.nll;
                    res.conf[w] = row.conf;
                    res.ent[w] = row.ent;
                    res.brier[w] = row.brier;
                    res.rank[w] = (int32_t)row.rank;
                    res.pred[w] = (int32_t)row.pred;
                }
                if (ign[w]) {
                    res.nll[w] = 0.0;
                    res.brier[w] = 0.0;
                    res.rank[w] = -1;
                }
            }
            FX_NAME(score_lanes_out)(&res, W, a, g0);
            continue;
        }
        for (Py_ssize_t w = 0; w < W; w++) {
            /* an ignored row counts in nothing: not computed for the sums */
            if (ign[w] && mode == FX_SCORE_STATE) continue;
            fx_score_row row;
            if (res.done[w]) {
                row.nll = res.nll[w];
                row.conf = res.conf[w];
                row.ent = res.ent[w];
                row.brier = res.brier[w];
                row.rank = res.rank[w];
                row.pred = res.pred[w];
                row.undefined = 0;
            } else {
                FX_NAME(score_row)(xr[w], C, s, FX_SCORE_ZY(w), bf16, tmode, tw, &row);
            }
            if (mode == FX_SCORE_STATE) {
                FX_NAME(score_add_row)(&row, ys[w], a, fsums, counts, sums);
                continue;
            }
            if (ign[w]) {
                row.nll = 0.0;
                row.brier = 0.0;
                row.rank = -1;
            }
            char *const *out = a->out;
            const Py_ssize_t *oo = oos[w];
            if (out[FX_SCORE_NLL])
                FX_NAME(score_put)(out[FX_SCORE_NLL] + oo[FX_SCORE_NLL], row.nll);
            if (out[FX_SCORE_RANK]) memcpy(out[FX_SCORE_RANK] + oo[FX_SCORE_RANK], &row.rank, 8);
            if (out[FX_SCORE_PRED]) memcpy(out[FX_SCORE_PRED] + oo[FX_SCORE_PRED], &row.pred, 8);
            if (out[FX_SCORE_CONF])
                FX_NAME(score_put)(out[FX_SCORE_CONF] + oo[FX_SCORE_CONF], row.conf);
            if (out[FX_SCORE_ENT])
                FX_NAME(score_put)(out[FX_SCORE_ENT] + oo[FX_SCORE_ENT], row.ent);
            if (out[FX_SCORE_BRIER])
                FX_NAME(score_put)(out[FX_SCORE_BRIER] + oo[FX_SCORE_BRIER], row.brier);
        }
    }
    if (mode != FX_SCORE_STATE) return -1;
    if (lanes_acc) {
        /* the lanes folded in lane order, the split bins in way order */
        double f[3] = {0.0, 0.0, 0.0};
        for (Py_ssize_t w = 0; w < FX_BLOCK_W; w++) {
            f[0] += acc.nll[w];
            f[1] += acc.ent[w];
            f[2] += acc.brier[w];
        }
        for (int k = 0; k < 3; k++) sums[k] += f[k];
        for (Py_ssize_t b = 0; b <= nb; b++) {
            double c = 0.0;
            for (Py_ssize_t j = 0; j < FX_SCORE_SPLIT; j++) c += acc.bconf[j * FX_SCORE_ACC_BINS + b];
            fsums[3 + b] += c;
        }
        /* the cells' counts into the bins' counts and correct counts, the
         * ranks' counts and the count of rows */
        for (Py_ssize_t j = 0; j < FX_SCORE_SPLIT; j++)
            for (Py_ssize_t b = 0; b <= nb; b++)
                for (Py_ssize_t r = 0; r < acc.nr; r++) {
                    const int64_t *k = acc.cells + j * FX_SCORE_ACC_CELLS + (b * acc.nr + r) * 2;
                    counts[0] += k[0] + k[1];
                    if (r < max_rank && acc.nr > 1) counts[2 + r] += k[0] + k[1];
                    counts[2 + max_rank + b] += k[0] + k[1];
                    counts[2 + max_rank + nb + 1 + b] += k[1];
                }
    }
    fsums[0] += sums[0];
    fsums[1] += sums[1];
    fsums[2] += sums[2];
    return -1;
}

#undef FX_SCORE_ZY
#undef FX_SCORE_PREFETCH
#undef FX_SCORE_RAW
#undef FX_SCORE_Z
#undef FX_SCORE_R
