/*
 * fx_short_rows_avx2.h -- float32 short rows (C <= 64), 8 rows at a time in
 * AVX2 registers: the parts of fx_softmax_family.h's short-row kernels that the
 * compiler does not vectorize well by itself.
 *
 * - Rows into lanes: the kernels put a block's rows side by side as SIMD
 *   lanes.  Copying elements one at a time costs two instructions each, as
 *   much as their exp; an 8 x 8 register transpose of masked row loads
 *   costs about half an instruction.  Masked loads never touch memory past
 *   a row, so the last rows of an array need no special case.
 * - Per-lane max, count and sum over the columns, with the accumulators in
 *   registers (the 64-lane loops of block_stats keep them in memory) and
 *   expf written out in intrinsics, bit for bit fx_math.h's.
 * - log_softmax of contiguous rows straight from x: each element's row
 *   value is a lane permutation, so the rows need no transpose back.
 * - The exps of softmax and of the cross-entropy gradient kept where the
 *   sums form them (one exp per element), and like every other output
 *   back into rows by the same register transposes, with whole-vector
 *   stores where they only run over what is rewritten later.
 * - The per-lane passes of fx_score.h's short rows (fx_score8) and the
 *   sums of fx_entropies.h's (fx_ent_sums8).
 *
 * Only builds with AVX2 and FMA define FX_HAVE_F32X8; the others keep the
 * portable loops.  Within a build both give the same bits (the tests
 * compare the routes bit for bit).
 */
#ifndef FX_SHORT_ROWS_AVX2_H
#define FX_SHORT_ROWS_AVX2_H

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FX_HAVE_F32X8 1

/* r[0..7] (row i in r[i]) -> r[c] holds column c, lane i */
FX_INLINE void fx_tr8x8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* lanes [0, n) set */
FX_INLINE __m256i fx_mask8(Py_ssize_t n)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lane);
}

/* columns T[c * ts + (0..7)], c < C <= 64, back into rows out[i * ors],
 * i < n <= 8, except the rows with skip[i] set (skip may be NULL), 8
 * columns at a time through one 8 x 8 transpose each; with div (may be
 * NULL), each lane's values divided by div[i] on the way (softmax's
 * division, without a pass over T of its own).  A whole vector is
 * stored where what it runs over is rewritten later: the last columns (a
 * row's end, fewer than 8) go first, so that a store running into the next
 * rows' starts (contiguous rows, all written) is overwritten by them; other
 * row ends go element by element (masked stores are slow on some CPUs) */
FX_INLINE void fx_rows8_out(const float *T, Py_ssize_t C, Py_ssize_t ts, float *out,
                            Py_ssize_t ors, Py_ssize_t n, const unsigned char *skip,
                            const float *div)
{
    const __m256 d = div ? _mm256_loadu_ps(div) : _mm256_set1_ps(1.0f);
    int anyskip = 0;
    for (Py_ssize_t i = 0; skip && i < n; i++) anyskip |= skip[i];
    const Py_ssize_t last = (C - 1) / 8 * 8;
    for (Py_ssize_t j = 0; j * 8 < C; j++) {
        const Py_ssize_t c0 = j == 0 ? last : (j - 1) * 8, nc = C - c0 < 8 ? C - c0 : 8;
        __m256 a[8];
        for (int c = 0; c < 8; c++) {
            a[c] = c < nc ? _mm256_loadu_ps(T + (c0 + c) * ts) : _mm256_setzero_ps();
            if (div) a[c] = _mm256_div_ps(a[c], d);
        }
        fx_tr8x8(a);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (anyskip && skip[i]) continue;
            float *o = out + i * ors + c0;
            /* a store may run into the following rows (stored later) but
             * not past the last */
            int spill = ors == C && !anyskip && i * C + c0 + 8 <= n * C;
            if (nc == 8 || spill) {
                _mm256_storeu_ps(o, a[i]);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, a[i]);
                for (Py_ssize_t c = 0; c < nc; c++) o[c] = tmp[c];
            }
        }
    }
}

/* the expf of fx_math.h on 8 lanes, bit for bit (same constants, same
 * FMAs): the reduced part, then 2^n for normal results or, with
 * underflow, the le0 scaling and the flush to 0 below FX_EXPF_LO */
FX_INLINE __m256 fx_v8_expf_reduced(__m256 x, __m256 *t_out)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
    __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    *t_out = t;
    return _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
}

/* 2^(n + bias) from t of fx_v8_expf_reduced */
FX_INLINE __m256 fx_v8_pow2n(__m256 t, int bias)
{
    __m256i e = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4b400000 - bias));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

FX_INLINE __m256 fx_v8_expf_normal(__m256 x)
{
    __m256 t, y = fx_v8_expf_reduced(x, &t);
    return _mm256_mul_ps(y, fx_v8_pow2n(t, 127));
}

FX_INLINE __m256 fx_v8_expf_le0(__m256 x)
{
    __m256 t, y = fx_v8_expf_reduced(x, &t);
    y = _mm256_mul_ps(_mm256_mul_ps(y, fx_v8_pow2n(t, 127 + 64)), _mm256_set1_ps(5.42101086e-20f));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(FX_EXPF_LO), _CMP_LT_OQ), y);
}

/* rows x[i * rs], i < n <= 8, of C <= 64 elements into the columns
 * T[c * ts + i] (lanes from n on hold 0), with the max and the min of
 * each lane in mx[i] and lo[i] */
FX_INLINE void fx_rows8_in(const float *x, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t n,
                           float *T, Py_ssize_t ts, float *mx, float *lo)
{
    __m256 m = _mm256_setzero_ps(), l = m;
    for (Py_ssize_t c0 = 0; c0 < C; c0 += 8) {
        Py_ssize_t nc = C - c0 < 8 ? C - c0 : 8;
        __m256i cols = fx_mask8(nc), none = _mm256_setzero_si256();
        __m256 r[8];
        for (int i = 0; i < 8; i++) {
            /* a row past the last reads nothing (from a valid address) */
            const float *p = i < n ? x + i * rs + c0 : x;
            r[i] = nc == 8 && i < n ? _mm256_loadu_ps(p)
                                    : _mm256_maskload_ps(p, i < n ? cols : none);
        }
        fx_tr8x8(r);
        if (c0 == 0) m = l = r[0];
        for (Py_ssize_t c = 0; c < nc; c++) {
            _mm256_storeu_ps(T + (c0 + c) * ts, r[c]);
            m = _mm256_max_ps(r[c], m);
            l = _mm256_min_ps(r[c], l);
        }
    }
    _mm256_storeu_ps(mx, m);
    _mm256_storeu_ps(lo, l);
}

/* a float32 sum of 8 lanes added into two double sums of 4, and zeroed */
FX_INLINE void fx_fold8(__m256 *sum, __m256d *lo, __m256d *hi)
{
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(*sum)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(*sum, 1)));
    *sum = _mm256_setzero_ps();
}

/* fx_fold8 at the end of each run of FX_SUM_RUN classes and of the row
 * (class c of C), for rows of more than FX_SUM_RUN classes */
FX_INLINE void fx_fold8_run(Py_ssize_t C, Py_ssize_t c, __m256 *sum, __m256d *lo, __m256d *hi)
{
    if (FX_SUM_RUN_END(C, c)) fx_fold8(sum, lo, hi);
}

/* the double sums of fx_fold8_run rounded once into 8 float lanes (sum
 * itself for rows of at most FX_SUM_RUN classes) */
FX_INLINE __m256 fx_unfold8(Py_ssize_t C, __m256 sum, __m256d lo, __m256d hi)
{
    return C > FX_SUM_RUN ? _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)) : sum;
}

/* per lane of the columns T[c * ts + (0..7)], c < C, with the max mx and
 * min lo of fx_rows8_in: the count k of elements equal to mx and the sum s
 * of exp(x - mx) over the others (s may be lo), bit for bit block_stats'
 * loops (same order of the sums) with the accumulators in registers; with
 * keep (a constant at each call) T is overwritten, as block_stats' keep_exp
 * does, by exp(x - mx), 1 at the max: the exps of softmax and of the
 * cross-entropy gradient formed once.  Rows longer than FX_SUM_RUN sum
 * runs of FX_SUM_RUN classes in float and add the runs in double, rounded
 * to float once at the end */
FX_INLINE void fx_sums8(float *T, Py_ssize_t C, Py_ssize_t ts, const float *mx,
                        const float *lo, float *s, float *k, const int keep)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 m = _mm256_loadu_ps(mx);
    __m256 sum = _mm256_setzero_ps();
    __m256d dlo = _mm256_setzero_pd(), dhi = _mm256_setzero_pd();
    __m256i cnt = _mm256_setzero_si256();
    __m256 normal = _mm256_cmp_ps(_mm256_sub_ps(_mm256_loadu_ps(lo), m),
                                  _mm256_set1_ps(FX_EXPF_NORMAL_LO), _CMP_GE_OQ);
    if (_mm256_movemask_ps(normal) == 0xff) {
        for (Py_ssize_t c = 0; c < C; c++) {
            __m256 v = _mm256_loadu_ps(T + c * ts);
            __m256 eq = _mm256_cmp_ps(v, m, _CMP_EQ_OQ);
            __m256 e = fx_v8_expf_normal(_mm256_sub_ps(v, m));
            sum = _mm256_add_ps(sum, _mm256_andnot_ps(eq, e));
            cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(eq));
            /* exp(0) is 1 here; the blend keeps the stored 1 independent of that */
            if (keep) _mm256_storeu_ps(T + c * ts, _mm256_blendv_ps(e, one, eq));
            fx_fold8_run(C, c, &sum, &dlo, &dhi);
        }
    } else {
        for (Py_ssize_t c = 0; c < C; c++) {
            __m256 v = _mm256_loadu_ps(T + c * ts);
            __m256 eq = _mm256_cmp_ps(v, m, _CMP_EQ_OQ);
            __m256 d = _mm256_blendv_ps(_mm256_sub_ps(v, m), _mm256_set1_ps(-INFINITY), eq);
            __m256 e = fx_v8_expf_le0(d);
            sum = _mm256_add_ps(sum, e);
            cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(eq));
            if (keep) _mm256_storeu_ps(T + c * ts, _mm256_blendv_ps(e, one, eq));
            fx_fold8_run(C, c, &sum, &dlo, &dhi);
        }
    }
    _mm256_storeu_ps(s, fx_unfold8(C, sum, dlo, dhi));
    _mm256_storeu_ps(k, _mm256_cvtepi32_ps(cnt));
}

/* small_entropies' sums of 8 lanes of the columns T[c * ts + (0..7)],
 * c < C, bit for bit its loops (same operations per lane, in class order)
 * with the accumulators in registers.  Lanes of x (max mx, min lo from
 * fx_rows8_in): with e = exp(x - mx), sx = the sum of e below the max, kx =
 * the count at the max, u = the sum of e (mx - x), 0 where e is 0.  With
 * U (pair, of y: max my, min ly) also sy, ky of y and, with f = exp(y - my)
 * and dy = my - y, u = the sum of e dy and v = the sum of e ((x - mx) + dy)
 * (NaN for -inf logits, whose rows the caller redoes).  C <= 64: rows of
 * more than FX_SUM_RUN classes sum runs of FX_SUM_RUN in float and add the
 * runs in double, rounded to float once at the end. */
FX_INLINE void fx_ent_sums8(const float *T, const float *U, Py_ssize_t C, Py_ssize_t ts,
                            const float *mx, const float *lo, const float *my,
                            const float *ly, float *sx, float *kx, float *sy, float *ky,
                            float *u, float *v)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 nlo = _mm256_set1_ps(FX_EXPF_NORMAL_LO);
    __m256 m = _mm256_loadu_ps(mx);
    __m256 vsx = zero, vkx = zero, vu = zero;
    /* rows of more than FX_SUM_RUN classes: the sums in runs, added in
     * double (fx_fold8_run), as small_entropies' loops add them */
    __m256d d0 = _mm256_setzero_pd(), d1 = d0, d2 = d0, d3 = d0, d4 = d0, d5 = d0;
    __m256d d6 = d0, d7 = d0;
    int normal = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(_mm256_loadu_ps(lo), m), nlo,
                                                  _CMP_GE_OQ)) == 0xff;
    if (!U) {
        /* e is 0 only off the normal range */
        if (normal) {
            for (Py_ssize_t c = 0; c < C; c++) {
                __m256 a = _mm256_loadu_ps(T + c * ts);
                __m256 eq = _mm256_cmp_ps(a, m, _CMP_EQ_OQ);
                __m256 e = fx_v8_expf_normal(_mm256_sub_ps(a, m));
                vsx = _mm256_add_ps(vsx, _mm256_andnot_ps(eq, e));
                vkx = _mm256_add_ps(vkx, _mm256_and_ps(eq, one));
                vu = _mm256_add_ps(vu, _mm256_mul_ps(e, _mm256_sub_ps(m, a)));
                fx_fold8_run(C, c, &vsx, &d0, &d1);
                fx_fold8_run(C, c, &vu, &d2, &d3);
            }
        } else {
            for (Py_ssize_t c = 0; c < C; c++) {
                __m256 a = _mm256_loadu_ps(T + c * ts);
                __m256 eq = _mm256_cmp_ps(a, m, _CMP_EQ_OQ);
                __m256 e = fx_v8_expf_le0(_mm256_sub_ps(a, m));
                __m256 nz = _mm256_cmp_ps(e, zero, _CMP_NEQ_UQ);
                vsx = _mm256_add_ps(vsx, _mm256_andnot_ps(eq, e));
                vkx = _mm256_add_ps(vkx, _mm256_and_ps(eq, one));
                vu = _mm256_add_ps(vu, _mm256_and_ps(nz, _mm256_mul_ps(e, _mm256_sub_ps(m, a))));
                fx_fold8_run(C, c, &vsx, &d0, &d1);
                fx_fold8_run(C, c, &vu, &d2, &d3);
            }
        }
        _mm256_storeu_ps(sx, fx_unfold8(C, vsx, d0, d1));
        _mm256_storeu_ps(kx, vkx);
        _mm256_storeu_ps(u, fx_unfold8(C, vu, d2, d3));
        return;
    }
    __m256 n = _mm256_loadu_ps(my);
    __m256 vsy = zero, vky = zero, vv = zero;
    normal &= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(_mm256_loadu_ps(ly), n), nlo,
                                               _CMP_GE_OQ)) == 0xff;
    for (Py_ssize_t c = 0; c < C; c++) {
        __m256 a = _mm256_loadu_ps(T + c * ts), b = _mm256_loadu_ps(U + c * ts);
        __m256 ex = _mm256_cmp_ps(a, m, _CMP_EQ_OQ), ey = _mm256_cmp_ps(b, n, _CMP_EQ_OQ);
        __m256 da = _mm256_sub_ps(a, m), db = _mm256_sub_ps(b, n);
        __m256 e = normal ? fx_v8_expf_normal(da) : fx_v8_expf_le0(da);
        __m256 f = normal ? fx_v8_expf_normal(db) : fx_v8_expf_le0(db);
        vsx = _mm256_add_ps(vsx, _mm256_andnot_ps(ex, e));
        vkx = _mm256_add_ps(vkx, _mm256_and_ps(ex, one));
        vsy = _mm256_add_ps(vsy, _mm256_andnot_ps(ey, f));
        vky = _mm256_add_ps(vky, _mm256_and_ps(ey, one));
        __m256 dy = _mm256_sub_ps(n, b);
        vu = _mm256_add_ps(vu, _mm256_mul_ps(e, dy));
        vv = _mm256_add_ps(vv, _mm256_mul_ps(e, _mm256_add_ps(da, dy)));
        fx_fold8_run(C, c, &vsx, &d0, &d1);
        fx_fold8_run(C, c, &vu, &d2, &d3);
        fx_fold8_run(C, c, &vsy, &d4, &d5);
        fx_fold8_run(C, c, &vv, &d6, &d7);
    }
    _mm256_storeu_ps(sx, fx_unfold8(C, vsx, d0, d1));
    _mm256_storeu_ps(kx, vkx);
    _mm256_storeu_ps(sy, fx_unfold8(C, vsy, d4, d5));
    _mm256_storeu_ps(ky, vky);
    _mm256_storeu_ps(u, fx_unfold8(C, vu, d2, d3));
    _mm256_storeu_ps(v, fx_unfold8(C, vv, d6, d7));
}

/* the labels' logits of n rows of float32 logits (row stride rs, labels
 * contiguous and in range, checked before): xy[i] = x[i rs + y_i] in double
 * and yl[i] = lab[i], with y_i = 0 where lab[i] == ign.  Returns whether
 * some lab[i] == ign.  Four rows per gather: a scalar loop spent about 3
 * cycles a row on this (its loads, selects and stores), an eighth of a
 * short row's cross-entropy. */
FX_INLINE int fx_label_logits(const float *x, Py_ssize_t rs, const int64_t *lab, Py_ssize_t n,
                              int64_t ign, double *xy, int64_t *yl)
{
    const __m256i vign = _mm256_set1_epi64x(ign), step = _mm256_set1_epi64x(4 * (int64_t)rs);
    __m256i at = _mm256_setr_epi64x(0, rs, 2 * (int64_t)rs, 3 * (int64_t)rs);
    __m256i any = _mm256_setzero_si256();
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i y = _mm256_loadu_si256((const __m256i *)(lab + i));
        __m256i ig = _mm256_cmpeq_epi64(y, vign);
        __m128 v = _mm256_i64gather_ps(x, _mm256_add_epi64(at, _mm256_andnot_si256(ig, y)), 4);
        _mm256_storeu_pd(xy + i, _mm256_cvtps_pd(v));
        _mm256_storeu_si256((__m256i *)(yl + i), y);
        any = _mm256_or_si256(any, ig);
        at = _mm256_add_epi64(at, step);
    }
    int some = !_mm256_testz_si256(any, any);
    for (; i < n; i++) {
        int64_t y = lab[i];
        xy[i] = (double)x[i * rs + (y == ign ? 0 : y)];
        yl[i] = y;
        some |= y == ign;
    }
    return some;
}

/* the row of each element of the v-th vector of 8 contiguous rows of C:
 * (int)((8 v + lane + 0.5) / C), exact in float for C <= 64: p = 8 v +
 * lane + 0.5 < 512 lies at least 1/2 from a multiple of C, so p / C at
 * least 1/128 from an integer, where p fl(1/C) and its rounding are within
 * 2^-14 of p / C */
FX_INLINE __m256i fx_flat_rows(Py_ssize_t C, Py_ssize_t v)
{
    __m256 p = _mm256_add_ps(_mm256_setr_ps(0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f),
                             _mm256_set1_ps(8.0f * (float)v));
    return _mm256_cvttps_epi32(_mm256_mul_ps(p, _mm256_set1_ps(1.0f / (float)C)));
}

/* log_softmax of 8 contiguous rows of C <= 64 elements (8 C floats from x
 * to out, which may be x): out = (x - mx[row]) - off[row], the row of each
 * element found by a lane permutation, so the rows need no transpose back */
FX_INLINE void fx_shift8_flat(const float *x, Py_ssize_t C, const float *mx, const float *off,
                              float *out)
{
    __m256 m = _mm256_loadu_ps(mx), d = _mm256_loadu_ps(off);
    for (Py_ssize_t v = 0; v < C; v++) {
        __m256i row = fx_flat_rows(C, v);
        __m256 y = _mm256_sub_ps(_mm256_loadu_ps(x + 8 * v), _mm256_permutevar8x32_ps(m, row));
        _mm256_storeu_ps(out + 8 * v, _mm256_sub_ps(y, _mm256_permutevar8x32_ps(d, row)));
    }
}

/*
 * fx_score.h's score_lanes_body for 8 rows xr[i], i < n, of C <= 64
 * contiguous float32 classes, bit for bit (same operations per lane, in
 * class order; the exp of fx_math.h): z = x (tmode 0), x * tw (1) or
 * x / tw (2), lanes from n on z = 0.  Per lane: the label's z zy (class
 * yl, NaN for yl = -1), taken from the transposed lanes rather than read
 * from each row apart (a scattered first touch of the row, which stalled
 * the driver); the max m, first argmax pr, count gt of z > zy and ok (no
 * NaN, a finite max, every z - m in the normal range of exp); then, with
 * t = z - m (0 where not ok), the sums over the classes below the max of
 * e = exp(t) (acc), e t (sd), e^2 (sq), the count of those at the max
 * (cnt), and exp(t) of the label's class (ey; 0 for yl = -1), which the
 * results take rather than an exp of their own.  The rows come in by
 * masked loads and register transposes, the sums stay in registers.
 */
FX_INLINE void fx_score8(const float *const *xr, Py_ssize_t n, Py_ssize_t C, int tmode,
                         float tw, const int32_t *yl, float *zy, float *m, float *gt, float *pr,
                         float *ok, float *acc, float *cnt, float *sd, float *sq, float *ey)
{
    __m256 T[64];   /* C <= 64 (FX_SCORE_LANES_C) */
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (Py_ssize_t c0 = 0; c0 < C; c0 += 8) {
        Py_ssize_t nc = C - c0 < 8 ? C - c0 : 8;
        __m256i cols = fx_mask8(nc);
        __m256 r[8];
        for (int i = 0; i < 8; i++)
            r[i] = i >= n ? zero : nc == 8 ? _mm256_loadu_ps(xr[i] + c0)
                                          : _mm256_maskload_ps(xr[i] + c0, cols);
        fx_tr8x8(r);
        /* all 8 columns (those past C are zeros, never read): a loop of nc
         * copies became a rep movs, whose start-up was a tenth of a short
         * row's time */
        for (int c = 0; c < 8; c++)
            T[c0 + c] = tmode == 0 ? r[c]
                      : tmode == 1 ? _mm256_mul_ps(r[c], _mm256_set1_ps(tw))
                      : _mm256_div_ps(r[c], _mm256_set1_ps(tw));
    }
    /* the label's class as a mask per class, used for its z and its exp */
    __m256 isy[64];
    __m256 z = _mm256_set1_ps(NAN);
    const __m256i vy = _mm256_loadu_si256((const __m256i *)yl);
    for (Py_ssize_t c = 0; c < C; c++) {
        isy[c] = _mm256_castsi256_ps(_mm256_cmpeq_epi32(vy, _mm256_set1_epi32((int)c)));
        z = _mm256_blendv_ps(z, T[c], isy[c]);
    }
    _mm256_storeu_ps(zy, z);
    __m256 vm = _mm256_set1_ps(-INFINITY), vlo = _mm256_set1_ps(INFINITY);
    __m256 vgt = zero, vpr = zero;
    for (Py_ssize_t c = 0; c < C; c++) {
        __m256 v = T[c];
        __m256 g = _mm256_cmp_ps(v, vm, _CMP_GT_OQ);   /* strictly: the first argmax */
        vpr = _mm256_blendv_ps(vpr, _mm256_set1_ps((float)c), g);
        vm = _mm256_blendv_ps(vm, v, g);
        vlo = _mm256_min_ps(v, vlo);                    /* v < lo ? v : lo */
        vgt = _mm256_add_ps(vgt, _mm256_and_ps(_mm256_cmp_ps(v, z, _CMP_GT_OQ), one));
    }
    /* ok but for a NaN, which the max and min passed over: a lane holding
     * one that is otherwise good gets a NaN exp, so its sum of exps is NaN
     * (the only way it can be: its terms are exps of arguments in the
     * normal range), tested after the sums rather than counted per class */
    __m256 good = _mm256_and_ps(
        _mm256_cmp_ps(vm, _mm256_set1_ps(INFINITY), _CMP_NEQ_OQ),
        _mm256_and_ps(_mm256_cmp_ps(vm, _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ),
                      _mm256_cmp_ps(_mm256_sub_ps(vlo, vm), _mm256_set1_ps(FX_EXPF_NORMAL_LO),
                                    _CMP_GE_OQ)));
    __m256 vacc = zero, vcnt = zero, vsd = zero, vsq = zero, vey = zero;
    /* rows of more than FX_SUM_RUN classes: runs added in double, as
     * score_lanes_passes adds them */
    __m256d alo = _mm256_setzero_pd(), ahi = alo, dlo = alo, dhi = alo, qlo = alo, qhi = alo;
    for (Py_ssize_t c = 0; c < C; c++) {
        __m256 v = T[c];
        __m256 eq = _mm256_cmp_ps(v, vm, _CMP_EQ_OQ);
        __m256 t = _mm256_and_ps(good, _mm256_sub_ps(v, vm));
        __m256 e1 = fx_v8_expf_normal(t);
        __m256 e = _mm256_andnot_ps(eq, e1);
        vey = _mm256_blendv_ps(vey, e1, isy[c]);
        vsd = _mm256_fmadd_ps(e, t, vsd);
        vacc = _mm256_add_ps(vacc, e);
        vcnt = _mm256_add_ps(vcnt, _mm256_and_ps(eq, one));
        vsq = _mm256_fmadd_ps(e, e, vsq);
        fx_fold8_run(C, c, &vacc, &alo, &ahi);
        fx_fold8_run(C, c, &vsd, &dlo, &dhi);
        fx_fold8_run(C, c, &vsq, &qlo, &qhi);
    }
    vacc = fx_unfold8(C, vacc, alo, ahi);
    vsd = fx_unfold8(C, vsd, dlo, dhi);
    vsq = fx_unfold8(C, vsq, qlo, qhi);
    good = _mm256_and_ps(good, _mm256_cmp_ps(vacc, vacc, _CMP_ORD_Q));
    _mm256_storeu_ps(m, vm);
    _mm256_storeu_ps(gt, vgt);
    _mm256_storeu_ps(pr, vpr);
    _mm256_storeu_ps(ok, _mm256_and_ps(good, one));
    _mm256_storeu_ps(acc, vacc);
    _mm256_storeu_ps(cnt, vcnt);
    _mm256_storeu_ps(sd, vsd);
    _mm256_storeu_ps(sq, vsq);
    _mm256_storeu_ps(ey, vey);
}

#endif /* __AVX2__ && __FMA__ */
#endif /* FX_SHORT_ROWS_AVX2_H */
