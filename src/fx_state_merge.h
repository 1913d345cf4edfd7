/*
 * fx_state_merge.h -- the merge of the partial states of rows split over
 * blocks of their classes (the Dask reductions over a chunked class axis),
 * as records of 8-byte fields, every block's records of all the rows in one
 * run (included by fx_kernels.h; no storage type).
 *
 * Two kinds of record, each merged over the blocks b = 0..B-1 against the
 * rows' common maximum M = max_b m_b (NaN if any m_b is NaN), with
 * top_b = (m_b == M); every sum over the blocks is formed in block order
 * from 0 (NumPy's sum over the first axis of (blocks, rows) does the same
 * for several rows, and sums one row pairwise: the results agree within
 * rounding):
 *
 * - a log-sum-exp state (fastxent._dask.row_state.LSE): doubles m, k, r,
 *   z, pos, neg.  w_b = 1 at the top, else exp(m_b - M) (0 where NaN);
 *   K = sum top_b ? k_b : 0;  R = sum top_b ? r_b : (w_b > 0 ? (k_b + r_b) w_b : 0);
 *   z, pos, neg: their largest.
 * - a scorer state (fastxent._dask.score.STATE): doubles m, k, s, d, q,
 *   then int64 gt, pred, first_nan, bad, n.  With r_b = 1 at the top, else
 *   exp(m_b - M), and ks_b = k_b + s_b:
 *   K = sum top_b ? k_b : 0;  S = sum top_b ? s_b : r_b ks_b;
 *   D = sum top_b ? d_b : r_b (d_b + g_b), g_b = (top_b or r_b == 0) ? 0 : (m_b - M) ks_b;
 *   Q = sum top_b ? q_b : r_b r_b (k_b + q_b);
 *   gt, n: their sums; bad: the largest; pred: the smallest at the top
 *   (INT64_MAX if none); first_nan: the smallest that is >= 0, else -1.
 *
 * - the states of the softmax entropies (fastxent._dask.row_state.ENTROPY,
 *   XENT, KL): doubles m, k, r as a log-sum-exp's, then a moment t
 *   (ENTROPY), or the second row's my, ky, ry (merged as m, k, r, against
 *   their own maximum My) and a moment u (XENT) or v (KL).  With
 *   gap(M, m) = (m == M) ? 0 : M - m, the moment's shift is gap(M, m_b)
 *   (ENTROPY), gap(My, my_b) (XENT), gap(My, my_b) - gap(M, m_b) (KL), and
 *   its sum adds w_b > 0 ? w_b (t_b + shift_b (k_b + r_b)) : 0, +inf where
 *   t_b is +inf, 0 where m_b is -inf.
 *
 * - a cross-entropy state (fastxent._dask.losses.CE): doubles m, k, r as a
 *   log-sum-exp's, then A, B, ignored.  A: the sum; B adds B_b where
 *   A_b == 0 or m_b == M, else B_b + (M - m_b) A_b; ignored: the largest.
 *
 * These are the formulas of the NumPy merges beside them in fastxent._dask,
 * operation for operation; the exps are libm's.  The rows go FX_MERGE_TILE
 * at a time: the maxima of a tile over every block, then its sums, each
 * block's records of the tile read as one run, still in cache the second
 * time.  No allocation, no temporary: a merge in a Dask worker (whose
 * allocator hands freed memory back to the system at once) pays no fresh
 * pages.
 */

#ifndef FX_STATE_MERGE_H
#define FX_STATE_MERGE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FX_MERGE_TILE 256
/* the kinds of record, as merge_states numbers them, and their fields */
enum { FX_MERGE_LSE, FX_MERGE_SCORE, FX_MERGE_ENTROPY, FX_MERGE_XENT, FX_MERGE_KL,
       FX_MERGE_CE };
#define FX_MERGE_LSE_WORDS 6
#define FX_MERGE_SCORE_WORDS 10
#define FX_MERGE_ENTROPY_WORDS 4
#define FX_MERGE_PAIR_WORDS 7

/* NumPy's maximum: NaN if either is NaN; the second of equal ones (0.0
 * and -0.0) */
static inline double fx_merge_max(double a, double b)
{
    if (a != a) return a;
    if (b != b) return b;
    return b >= a ? b : a;
}

/* the common maxima M[0..n) of field f of the records of rows r0..r0+n of
 * every block (blk[b]: block b's records, `words` doubles each) */
static inline void fx_merge_maxima(const char *const *blk, Py_ssize_t B, Py_ssize_t words,
                                   Py_ssize_t f, Py_ssize_t r0, Py_ssize_t n, double *M)
{
    const double *p = (const double *)blk[0] + r0 * words + f;
    for (Py_ssize_t i = 0; i < n; i++) M[i] = p[i * words];
    for (Py_ssize_t b = 1; b < B; b++) {
        p = (const double *)blk[b] + r0 * words + f;
        for (Py_ssize_t i = 0; i < n; i++) M[i] = fx_merge_max(M[i], p[i * words]);
    }
}

/* a block's (m, k, r) against the maximum M: its weight w (1 at the top,
 * exp(m - M) below, 0 where that is NaN) and its terms of K and R */
static inline double fx_merge_mkr(double m, double k, double r, double M, double *kt, double *rt)
{
    const int top = m == M;
    double w = top ? 1.0 : exp(m - M);
    if (w != w) w = 0.0;   /* -inf blocks under a -inf or +inf maximum */
    *kt = top ? k : 0.0;
    *rt = top ? r : (w > 0.0 ? (k + r) * w : 0.0);
    return w;
}

/* v added to the sum *acc, which the first block starts from 0 (0 + v:
 * NumPy's sum of -0.0 is 0.0) */
static inline void fx_merge_sum(double *acc, double v, int first)
{
    *acc = (first ? 0.0 : *acc) + v;
}

/* gap(M, m) of the header */
static inline double fx_merge_gap(double M, double m)
{
    return m == M ? 0.0 : M - m;
}

/* R rows of log-sum-exp states (kind FX_MERGE_LSE) or cross-entropy
 * states (FX_MERGE_CE: the same three fields first, six in all) over B
 * blocks into out (R records) */
static void fx_merge_lse_states(const char *const *blk, Py_ssize_t B, Py_ssize_t R, int kind,
                                char *out)
{
    const Py_ssize_t W = FX_MERGE_LSE_WORDS;
    double M[FX_MERGE_TILE];
    double *o = (double *)out;
    for (Py_ssize_t r0 = 0; r0 < R; r0 += FX_MERGE_TILE) {
        const Py_ssize_t n = R - r0 < FX_MERGE_TILE ? R - r0 : FX_MERGE_TILE;
        fx_merge_maxima(blk, B, W, 0, r0, n, M);
        for (Py_ssize_t b = 0; b < B; b++) {
            const double *p = (const double *)blk[b] + r0 * W;
            for (Py_ssize_t i = 0; i < n; i++) {
                const double *s = p + i * W;
                double *t = o + (r0 + i) * W;
                double kt, rt;
                const int first = b == 0;
                fx_merge_mkr(s[0], s[1], s[2], M[i], &kt, &rt);
                t[0] = M[i];
                fx_merge_sum(&t[1], kt, first);
                fx_merge_sum(&t[2], rt, first);
                if (kind == FX_MERGE_CE) {
                    /* B moved to the common maximum (no shift where the
                     * maxima are equal, also both -inf: a partial merge
                     * of blocks of only -inf) */
                    const double A = s[3];
                    const double Bt = (A == 0.0 || s[0] == M[i]) ? s[4] : s[4] + (M[i] - s[0]) * A;
                    fx_merge_sum(&t[3], A, first);
                    fx_merge_sum(&t[4], Bt, first);
                    t[5] = first ? s[5] : fx_merge_max(t[5], s[5]);
                } else {
                    for (int f = 3; f < 6; f++) t[f] = first ? s[f] : fx_merge_max(t[f], s[f]);
                }
            }
        }
    }
}

/* R rows of scorer states over B blocks into out (R records) */
static void fx_merge_score_states(const char *const *blk, Py_ssize_t B, Py_ssize_t R, char *out)
{
    const Py_ssize_t W = FX_MERGE_SCORE_WORDS;
    const int64_t big = INT64_MAX;
    double M[FX_MERGE_TILE];
    for (Py_ssize_t r0 = 0; r0 < R; r0 += FX_MERGE_TILE) {
        const Py_ssize_t n = R - r0 < FX_MERGE_TILE ? R - r0 : FX_MERGE_TILE;
        fx_merge_maxima(blk, B, W, 0, r0, n, M);
        for (Py_ssize_t b = 0; b < B; b++) {
            const char *p = blk[b] + r0 * W * 8;
            for (Py_ssize_t i = 0; i < n; i++) {
                double f[5], sf[5];
                int64_t c[5], si[5];
                char *t = out + (r0 + i) * W * 8;
                memcpy(f, p + i * W * 8, 40);
                memcpy(c, p + i * W * 8 + 40, 40);
                const double m = f[0], k = f[1], s = f[2], d = f[3], q = f[4];
                const int top = m == M[i];
                const double r = top ? 1.0 : exp(m - M[i]);
                const double ks = k + s;
                const double gap = (top || r == 0.0) ? 0.0 : (m - M[i]) * ks;
                const double kt = top ? k : 0.0;
                const double st = top ? s : r * ks;
                const double dt = top ? d : r * (d + gap);
                const double qt = top ? q : r * r * (k + q);
                const int64_t pt = top ? c[1] : big, ft = c[2] >= 0 ? c[2] : big;
                const int first = b == 0;
                if (!first) memcpy(sf, t, 40);
                sf[0] = M[i];
                fx_merge_sum(&sf[1], kt, first);
                fx_merge_sum(&sf[2], st, first);
                fx_merge_sum(&sf[3], dt, first);
                fx_merge_sum(&sf[4], qt, first);
                if (first) {
                    si[0] = c[0]; si[1] = pt; si[2] = ft; si[3] = c[3]; si[4] = c[4];
                } else {
                    memcpy(si, t + 40, 40);
                    /* counts as NumPy sums int64: wrapping, never trapping */
                    si[0] = (int64_t)((uint64_t)si[0] + (uint64_t)c[0]);
                    si[1] = pt < si[1] ? pt : si[1];
                    si[2] = ft < si[2] ? ft : si[2];
                    si[3] = c[3] > si[3] ? c[3] : si[3];
                    si[4] = (int64_t)((uint64_t)si[4] + (uint64_t)c[4]);
                }
                if (b == B - 1 && si[2] == big) si[2] = -1;
                memcpy(t, sf, 40);
                memcpy(t + 40, si, 40);
            }
        }
    }
}

/* R rows of the softmax entropies' states (kind FX_MERGE_ENTROPY, _XENT or
 * _KL) over B blocks into out (R records) */
static void fx_merge_softmax_states(const char *const *blk, Py_ssize_t B, Py_ssize_t R,
                                    int kind, char *out)
{
    const int pair = kind != FX_MERGE_ENTROPY;
    const Py_ssize_t W = pair ? FX_MERGE_PAIR_WORDS : FX_MERGE_ENTROPY_WORDS, mom = W - 1;
    double M[FX_MERGE_TILE], My[FX_MERGE_TILE];
    double *o = (double *)out;
    for (Py_ssize_t r0 = 0; r0 < R; r0 += FX_MERGE_TILE) {
        const Py_ssize_t n = R - r0 < FX_MERGE_TILE ? R - r0 : FX_MERGE_TILE;
        fx_merge_maxima(blk, B, W, 0, r0, n, M);
        if (pair) fx_merge_maxima(blk, B, W, 3, r0, n, My);
        for (Py_ssize_t b = 0; b < B; b++) {
            const double *p = (const double *)blk[b] + r0 * W;
            for (Py_ssize_t i = 0; i < n; i++) {
                const double *s = p + i * W;
                double *t = o + (r0 + i) * W;
                double kt, rt, kyt = 0.0, ryt = 0.0, shift;
                const double w = fx_merge_mkr(s[0], s[1], s[2], M[i], &kt, &rt);
                if (pair) {
                    fx_merge_mkr(s[3], s[4], s[5], My[i], &kyt, &ryt);
                    shift = fx_merge_gap(My[i], s[3]);
                    if (kind == FX_MERGE_KL) shift = shift - fx_merge_gap(M[i], s[0]);
                } else {
                    shift = fx_merge_gap(M[i], s[0]);
                }
                double mt = w > 0.0 ? w * (s[mom] + shift * (s[1] + s[2])) : 0.0;
                if (s[mom] == INFINITY) mt = INFINITY;
                if (s[0] == -INFINITY) mt = 0.0;
                const int first = b == 0;
                t[0] = M[i];
                fx_merge_sum(&t[1], kt, first);
                fx_merge_sum(&t[2], rt, first);
                if (pair) {
                    t[3] = My[i];
                    fx_merge_sum(&t[4], kyt, first);
                    fx_merge_sum(&t[5], ryt, first);
                }
                fx_merge_sum(&t[mom], mt, first);
            }
        }
    }
}

#endif /* FX_STATE_MERGE_H */
