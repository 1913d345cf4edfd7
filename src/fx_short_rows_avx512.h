/*
 * fx_short_rows_avx512.h -- float32 short rows (C <= 64), 16 rows at a time
 * in AVX-512 registers: the AVX-512 twins of fx_short_rows_avx2.h's
 * functions where the wider registers pay.
 *
 * - fx_score16: fx_score.h's per-lane passes of 16 short rows, bit for bit
 *   fx_score8 twice (same operations per lane, in class order).  The
 *   passes are chains of dependent operations through the classes (the
 *   running max, the sums); 16 lanes per register halve the chains and the
 *   instructions per row, and the counts and selects go through mask
 *   registers.
 *
 * Only builds with AVX-512 F, VL, BW and DQ define FX_HAVE_F32X16; within a
 * build every route gives the same bits (the tests compare them).
 */
#ifndef FX_SHORT_ROWS_AVX512_H
#define FX_SHORT_ROWS_AVX512_H

#if defined(FX_HAVE_F32X8) && defined(__AVX512F__) && defined(__AVX512VL__) \
    && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define FX_HAVE_F32X16 1

/* fx_v8_expf_normal on 16 lanes, bit for bit (same constants, same FMAs) */
FX_INLINE __m512 fx_v16_expf_normal(__m512 x)
{
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4b400000 - 127));
    return _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(e, 23)));
}

/* fx_tr8x8 on both 256-bit halves of r[0..7] at once: r[i] holds rows i
 * and 8 + i in its halves, r[c] then column c of rows 0-7 and 8-15: 16
 * rows for the shuffles of 8 (the last step a two-source permute in place
 * of vperm2f128, which works within 256 bits) */
FX_INLINE void fx_tr8x8x2(__m512 r[8])
{
    __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t1 = _mm512_unpackhi_ps(r[0], r[1]);
    __m512 t2 = _mm512_unpacklo_ps(r[2], r[3]), t3 = _mm512_unpackhi_ps(r[2], r[3]);
    __m512 t4 = _mm512_unpacklo_ps(r[4], r[5]), t5 = _mm512_unpackhi_ps(r[4], r[5]);
    __m512 t6 = _mm512_unpacklo_ps(r[6], r[7]), t7 = _mm512_unpackhi_ps(r[6], r[7]);
    __m512 s0 = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m512 s1 = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m512 s2 = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m512 s3 = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m512 s4 = _mm512_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m512 s5 = _mm512_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m512 s6 = _mm512_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m512 s7 = _mm512_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    /* per half: the low 128 bits of a then of b (vperm2f128's 0x20), the
     * high ones (0x31) */
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19,
                                         8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23,
                                         12, 13, 14, 15, 28, 29, 30, 31);
    r[0] = _mm512_permutex2var_ps(s0, lo, s4);
    r[1] = _mm512_permutex2var_ps(s1, lo, s5);
    r[2] = _mm512_permutex2var_ps(s2, lo, s6);
    r[3] = _mm512_permutex2var_ps(s3, lo, s7);
    r[4] = _mm512_permutex2var_ps(s0, hi, s4);
    r[5] = _mm512_permutex2var_ps(s1, hi, s5);
    r[6] = _mm512_permutex2var_ps(s2, hi, s6);
    r[7] = _mm512_permutex2var_ps(s3, hi, s7);
}

/* a float32 sum of 16 lanes added into two double sums of 8, and zeroed
 * (fx_fold8 on 16 lanes) */
FX_INLINE void fx_fold16(__m512 *sum, __m512d *lo, __m512d *hi)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(*sum)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(*sum, 1)));
    *sum = _mm512_setzero_ps();
}

/* fx_fold16 at the end of each run of FX_SUM_RUN classes and of the row
 * (class c of C), for rows of more than FX_SUM_RUN classes (fx_fold8_run
 * on 16 lanes) */
FX_INLINE void fx_fold16_run(Py_ssize_t C, Py_ssize_t c, __m512 *sum, __m512d *lo, __m512d *hi)
{
    if (FX_SUM_RUN_END(C, c)) fx_fold16(sum, lo, hi);
}

/* the double sums of fx_fold16_run rounded once into 16 float lanes (sum
 * itself for rows of at most FX_SUM_RUN classes; fx_unfold8 on 16 lanes) */
FX_INLINE __m512 fx_unfold16(Py_ssize_t C, __m512 sum, __m512d lo, __m512d hi)
{
    return C > FX_SUM_RUN ? _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)),
                                               _mm512_cvtpd_ps(hi), 1)
                          : sum;
}

/*
 * fx_score8 for 16 rows xr[i], i < n <= 16, of C <= 64 contiguous float32
 * classes (the same arguments, 16 lanes each): lanes from n on hold z = 0.
 * The rows come in 8 classes at a time, rows i and 8 + i in the halves of
 * a register, through one fx_tr8x8x2; masked loads never touch memory past
 * a row.
 */
FX_INLINE void fx_score16(const float *const *xr, Py_ssize_t n, Py_ssize_t C, int tmode,
                          float tw, const int32_t *yl, float *zy, float *m, float *gt, float *pr,
                          float *ok, float *acc, float *cnt, float *sd, float *sq, float *ey)
{
    __m512 T[64];   /* C <= 64 (FX_SCORE_LANES_C) */
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (Py_ssize_t c0 = 0; c0 < C; c0 += 8) {
        Py_ssize_t nc = C - c0 < 8 ? C - c0 : 8;
        const __mmask8 cols = (__mmask8)((1u << nc) - 1u);
        __m512 r[8];
        for (int i = 0; i < 8; i++) {
            __m256 a = i < n ? _mm256_maskz_loadu_ps(cols, xr[i] + c0) : _mm256_setzero_ps();
            __m256 b = 8 + i < n ? _mm256_maskz_loadu_ps(cols, xr[8 + i] + c0)
                                 : _mm256_setzero_ps();
            r[i] = _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1);
        }
        fx_tr8x8x2(r);
        for (int c = 0; c < 8; c++)
            T[c0 + c] = tmode == 0 ? r[c]
                      : tmode == 1 ? _mm512_mul_ps(r[c], _mm512_set1_ps(tw))
                      : _mm512_div_ps(r[c], _mm512_set1_ps(tw));
    }
    /* the label's class as a mask per class, used twice (its z, its exp);
     * the class numbers as constants in memory, broadcast by loads rather
     * than formed from an integer register each time */
    static const int32_t iota[64] = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
        48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    static const float fiota[64] = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
        48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    __mmask16 isy[64];
    __m512 z = _mm512_set1_ps(NAN);
    const __m512i vy = _mm512_loadu_si512((const void *)yl);
    for (Py_ssize_t c = 0; c < C; c++) {
        isy[c] = _mm512_cmpeq_epi32_mask(vy, _mm512_set1_epi32(iota[c]));
        z = _mm512_mask_mov_ps(z, isy[c], T[c]);
    }
    _mm512_storeu_ps(zy, z);
    __m512 vm = _mm512_set1_ps(-INFINITY), vlo = _mm512_set1_ps(INFINITY);
    __m512 vgt = zero, vpr = zero;
    for (Py_ssize_t c = 0; c < C; c++) {
        __m512 v = T[c];
        __mmask16 g = _mm512_cmp_ps_mask(v, vm, _CMP_GT_OQ);   /* strictly: the first argmax */
        vpr = _mm512_mask_mov_ps(vpr, g, _mm512_set1_ps(fiota[c]));
        vm = _mm512_mask_mov_ps(vm, g, v);
        vlo = _mm512_min_ps(v, vlo);
        /* adding 1 where the compare holds is fx_score8's add of (cmp & 1):
         * the other lanes add +0, which changes no count */
        vgt = _mm512_mask_add_ps(vgt, _mm512_cmp_ps_mask(v, z, _CMP_GT_OQ), vgt, one);
    }
    /* ok but for a NaN, tested after the sums through the NaN sum of exps
     * it gives, as fx_score8 does */
    __mmask16 good = _mm512_cmp_ps_mask(vm, _mm512_set1_ps(INFINITY), _CMP_NEQ_OQ)
                   & _mm512_cmp_ps_mask(vm, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ)
                   & _mm512_cmp_ps_mask(_mm512_sub_ps(vlo, vm),
                                        _mm512_set1_ps(FX_EXPF_NORMAL_LO), _CMP_GE_OQ);
    __m512 vacc = zero, vcnt = zero, vsd = zero, vsq = zero, vey = zero;
    /* rows of more than FX_SUM_RUN classes: runs added in double, as
     * score_lanes_passes adds them */
    __m512d alo = _mm512_setzero_pd(), ahi = alo, dlo = alo, dhi = alo, qlo = alo, qhi = alo;
    for (Py_ssize_t c = 0; c < C; c++) {
        __m512 v = T[c];
        __mmask16 eq = _mm512_cmp_ps_mask(v, vm, _CMP_EQ_OQ);
        __m512 t = _mm512_maskz_sub_ps(good, v, vm);
        __m512 e1 = fx_v16_expf_normal(t);
        __m512 e = _mm512_maskz_mov_ps((__mmask16)~eq, e1);
        vey = _mm512_mask_mov_ps(vey, isy[c], e1);
        vsd = _mm512_fmadd_ps(e, t, vsd);
        vacc = _mm512_add_ps(vacc, e);
        vcnt = _mm512_mask_add_ps(vcnt, eq, vcnt, one);
        vsq = _mm512_fmadd_ps(e, e, vsq);
        fx_fold16_run(C, c, &vacc, &alo, &ahi);
        fx_fold16_run(C, c, &vsd, &dlo, &dhi);
        fx_fold16_run(C, c, &vsq, &qlo, &qhi);
    }
    vacc = fx_unfold16(C, vacc, alo, ahi);
    vsd = fx_unfold16(C, vsd, dlo, dhi);
    vsq = fx_unfold16(C, vsq, qlo, qhi);
    good &= _mm512_cmp_ps_mask(vacc, vacc, _CMP_ORD_Q);
    _mm512_storeu_ps(m, vm);
    _mm512_storeu_ps(gt, vgt);
    _mm512_storeu_ps(pr, vpr);
    _mm512_storeu_ps(ok, _mm512_maskz_mov_ps(good, one));
    _mm512_storeu_ps(acc, vacc);
    _mm512_storeu_ps(cnt, vcnt);
    _mm512_storeu_ps(sd, vsd);
    _mm512_storeu_ps(sq, vsq);
    _mm512_storeu_ps(ey, vey);
}

#endif /* AVX-512 F, VL, BW, DQ */
#endif /* FX_SHORT_ROWS_AVX512_H */
