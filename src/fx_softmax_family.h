/*
 * fx_softmax_family.h -- logsumexp, softmax and log_softmax of rows, of
 * columns and of many short rows, one storage type.  The other families
 * build on its functions (max, row_state, the short-row transposes).
 *
 * Included once per storage type by fx_kernels_for_dtype.h, with the
 * macros listed there (FX_T, FX_W, FX_NAME, FX_EXP, ...) set.
 *
 * A "row" is n elements at x[0], x[s], x[2s], ...  Every function is written
 * for a general element stride s and has an always-inline body, so that the
 * s == 1 call (by far the common case) is compiled as its own specialization
 * with plain vector loads.
 *
 * Determinism: sums are taken over fixed chunks of FX_CHUNK elements and the
 * chunks are added in order, so a result does not depend on the thread count
 * (a long row split over threads is split on the same chunk boundaries).
 * Within a chunk the SIMD reduction order depends on the vector width, so the
 * baseline and AVX2 builds may differ in the last bits.  It must not depend
 * on an output's stride: the loops that sum write their outputs with unit
 * stride (the callers route other strides through a buffer).
 */

#define FX_AT(p, j, s) FX_LOAD((p)[(Py_ssize_t)(j) * (s)])

/* ---- maximum, NaN ignored (NaN reaches the result through the sum) ---- */

FX_INLINE FX_W FX_NAME(max_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s)
{
    FX_W m = -INFINITY;
    FX_SIMD_REDUCE(max:m)
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W v = FX_AT(x, j, s);
        m = v > m ? v : m;
    }
    return m;
}

static FX_W FX_NAME(max)(const FX_T *x, Py_ssize_t n, Py_ssize_t s)
{
    return s == 1 ? FX_NAME(max_body)(x, n, 1) : FX_NAME(max_body)(x, n, s);
}

/* maximum over the elements whose weight is not zero (SciPy masks b == 0) */
FX_INLINE FX_W FX_NAME(max_w_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                   const FX_T *b, Py_ssize_t bs)
{
    FX_W m = -INFINITY;
    FX_SIMD_PRAGMA(reduction(max:m))
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W v = FX_AT(b, j, bs) == 0 ? -INFINITY : FX_AT(x, j, s);
        m = v > m ? v : m;
    }
    return m;
}

/* contiguous operands get a loop with unit strides (a stride known only at
 * run time makes the loads gathers) */
static FX_W FX_NAME(max_w)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                           const FX_T *b, Py_ssize_t bs)
{
    return s == 1 && bs == 1 ? FX_NAME(max_w_body)(x, n, 1, b, 1)
                             : FX_NAME(max_w_body)(x, n, s, b, bs);
}

/* ---- the (m, k, s) state of a row, read once ----
 * A row is read in blocks of FX_FLUSH elements: each block's max is taken
 * while the block is in L1, then its sum of exp(x - max) with the max terms
 * counted apart, and the block is merged into the running state
 * (fx_state_merge rescales the smaller side).  So the row streams from memory
 * once and the exp work overlaps the reads. */

/* one block (n <= FX_FLUSH) merged into *st; the SIMD partial sums are
 * folded into double every FX_FOLD elements, which keeps float32 sums of
 * long rows as accurate as NumPy's pairwise summation */
/* maximum and minimum of a block (NaN ignored) */
FX_INLINE FX_W FX_NAME(minmax_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W *lo)
{
    FX_W m = -INFINITY, l = INFINITY;
    FX_SIMD_MINMAX(m, l)
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W v = FX_AT(x, j, s);
        m = v > m ? v : m;
        l = v < l ? v : l;
    }
    *lo = l;
    return m;
}

/* the sums of one block against its max m; `normal` (a compile-time
 * constant at each call): every x - m is in [FX_EXP_NORMAL_MIN, 0], so the
 * cheaper exp without underflow handling serves */
FX_INLINE void FX_NAME(block_sums)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W m,
                                   const int normal, double *tot, double *totk)
{
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W acc = 0, cnt = 0;
        FX_PREFETCH_NEXT(x, s, n, j0);
        FX_SIMD_REDUCE(+:acc,cnt)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, s);
            int eq = v == m;
            if (normal) {
                FX_W e = FX_EXP_NORMAL(v - m);
                acc += eq ? (FX_W)0 : e;
            } else {
                /* exp(-inf) = 0 drops the max terms without a second select */
                acc += FX_EXP(eq ? (FX_W)-INFINITY : v - m);
            }
            cnt += eq ? (FX_W)1 : (FX_W)0;
        }
        *tot += (double)acc;
        *totk += (double)cnt;
    }
}

FX_INLINE void FX_NAME(block_state)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                    fx_lse_state *st)
{
    FX_W lo;
    FX_W m = FX_NAME(minmax_body)(x, n, s, &lo);
    double tot = 0.0, totk = 0.0;
    /* false for -inf entries, an inf max or a block of NaN */
    if (lo - m >= (FX_W)FX_EXP_NORMAL_MIN)
        FX_NAME(block_sums)(x, n, s, m, 1, &tot, &totk);
    else
        FX_NAME(block_sums)(x, n, s, m, 0, &tot, &totk);
    fx_state_merge(st, (double)m, totk, tot);
}

/* the state of one chunk (n <= FX_CHUNK): the unit a long row is split into
 * across threads, so that splitting does not change the result */
static fx_lse_state FX_NAME(chunk_state)(const FX_T *x, Py_ssize_t n, Py_ssize_t s)
{
    fx_lse_state st = FX_STATE_INIT;
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
#ifdef FX_VIA_F32
        if (s == 1) {
            float buf[FX_FLUSH];
            fx_halves_to_floats(x + j, len, buf);
            fx_f32_block_state(buf, len, 1, &st);
            continue;
        }
#endif
        if (s == 1) FX_NAME(block_state)(x + j, len, 1, &st);
        else FX_NAME(block_state)(x + j * s, len, s, &st);
    }
    return st;
}

/* the state of a whole row: chunk states merged in order */
static fx_lse_state FX_NAME(row_state)(const FX_T *x, Py_ssize_t n, Py_ssize_t s)
{
    fx_lse_state st = FX_STATE_INIT;
    for (Py_ssize_t c = 0; c < n; c += FX_CHUNK) {
        fx_lse_state cs = FX_NAME(chunk_state)(x + c * s, n - c < FX_CHUNK ? n - c : FX_CHUNK, s);
        fx_state_merge(&st, cs.m, cs.k, cs.s);
    }
    return st;
}

#ifndef FX_NEUMAIER_DEFINED   /* once, not per storage type */
#define FX_NEUMAIER_DEFINED
/* Neumaier's step: *s + v into *s, its rounding error into *c */
FX_INLINE void fx_neumaier(double *s, double *c, double v)
{
    double t = *s + v;
    *c += fabs(*s) >= fabs(v) ? (*s - t) + v : (v - t) + *s;
    *s = t;
}

/* elements per plain partial sum of sumexp_excl_w */
#define FX_WBLOCK 64
#endif

/* weighted: sum of b exp(x - m) over the elements != m; *k += sum of their b.
 * Plain sums of FX_WBLOCK elements (vectorized: their terms in the SIMD
 * lanes' order) are added up compensated (Neumaier), so the error stays
 * that of a short row however long the row is (one running double sum of
 * 1e7 terms is off by thousands of ulp), for a few percent of the time of
 * compensating every term.  The compensation of a sum that overflowed (or
 * met inf or NaN terms) is dropped: the plain sum is the answer there. */
FX_INLINE double FX_NAME(sumexp_excl_w_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                             const FX_T *b, Py_ssize_t bs, FX_W m, double *k)
{
    double tot = 0.0, totc = 0.0, tk = 0.0, tkc = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_WBLOCK) {
        Py_ssize_t end = n - j0 < FX_WBLOCK ? n : j0 + FX_WBLOCK;
        double bt = 0.0, bk = 0.0;
        FX_SIMD_REDUCE(+:bt,bk)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W w = FX_AT(b, j, bs);
            FX_W v = w == 0 ? -INFINITY : FX_AT(x, j, s);
            int eq = v == m;
            FX_W e = w * FX_EXP(v - m);
            bt += eq ? 0.0 : (double)e;
            bk += eq ? (double)w : 0.0;
        }
        fx_neumaier(&tot, &totc, bt);
        fx_neumaier(&tk, &tkc, bk);
    }
    *k += isfinite(tk) ? tk + tkc : tk;
    return isfinite(tot) ? tot + totc : tot;
}

static double FX_NAME(sumexp_excl_w)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                     const FX_T *b, Py_ssize_t bs, FX_W m, double *k)
{
    return s == 1 && bs == 1 ? FX_NAME(sumexp_excl_w_body)(x, n, 1, b, 1, m, k)
                             : FX_NAME(sumexp_excl_w_body)(x, n, s, b, bs, m, k);
}

/* the direct sum of b exp(x) in the working precision, overflow and all:
 * SciPy falls back to it where the stable formula is not finite */
static FX_W FX_NAME(naive)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                           const FX_T *b, Py_ssize_t bs)
{
    FX_W tot = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W e = FX_EXP_ANY(FX_AT(x, j, s));
        tot += b ? FX_AT(b, j, bs) * e : e;
    }
    return tot;
}

/* ---- whole-row logsumexp ---- */

static double FX_NAME(row_lse)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                               const FX_T *b, Py_ssize_t bs, int want_sign, double *sgn)
{
    fx_lse_state st;
    if (b) {
        st.m = FX_NAME(max_w)(x, n, s, b, bs);
        st.k = 0.0;
        st.s = FX_NAME(sumexp_excl_w)(x, n, s, b, bs, (FX_W)st.m, &st.k);
    } else {
        st = FX_NAME(row_state)(x, n, s);
    }
    double out = fx_lse_finish(st.m, st.k, st.s, want_sign, sgn);
    if (!isfinite(out))
        out = fx_lse_naive((double)FX_NAME(naive)(x, n, s, b, bs), want_sign, sgn);
    return out;
}

/* ---- softmax: out = exp(x - m) / sum ---- */

/* writes e = exp(x - m) (with `store`, a constant); returns the sum of e
 * over the elements != m and adds their count to *k.  Keeping the 1s of
 * the max terms out of the sum keeps the divisor k + s accurate when one
 * element dominates.  pf (0: none) is the address of a row of 2-byte
 * elements requested from memory alongside, element j's line with element j
 * (see row_softmax_f32); it is never read. */
FX_INLINE double FX_NAME(store_exp_chunk)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                          FX_W m, FX_T *out, Py_ssize_t os, double *k,
                                          const int store, uintptr_t pf)
{
    double tot = 0.0, totk = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        if (pf != 0)
            for (int o = 0; o < FX_FOLD * 2; o += 64)
                FX_PREFETCH(pf + (uintptr_t)(j0 * 2 + o));
        FX_W acc = 0, cnt = 0;
        FX_SIMD_REDUCE(+:acc,cnt)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, s);
            int eq = v == m;
            FX_W e = FX_EXP(v - m);
            if (store) out[j * os] = FX_STORE(e);
            acc += eq ? (FX_W)0 : e;
            cnt += eq ? (FX_W)1 : (FX_W)0;
        }
        tot += (double)acc;
        totk += (double)cnt;
    }
    *k += totk;
    return tot;
}

/* store_exp_chunk into a unit-stride output: the one compiled copy of the
 * loop that every output layout goes through (pf: see store_exp_chunk) */
static FX_NOINLINE double FX_NAME(store_exp_unit)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                                 FX_W m, FX_T *out, double *k, uintptr_t pf)
{
    return s == 1 ? FX_NAME(store_exp_chunk)(x, n, 1, m, out, 1, k, 1, pf)
                  : FX_NAME(store_exp_chunk)(x, n, s, m, out, 1, k, 1, pf);
}

/* store_exp, requesting the row at pf from memory on the way (0: none; a
 * unit-stride output only, see store_exp_chunk) */
FX_INLINE double FX_NAME(store_exp_ahead)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W m,
                                          FX_T *out, Py_ssize_t os, double *k, uintptr_t pf)
{
    double tot = 0.0;
    FX_T ob[FX_FOLD];
    for (Py_ssize_t c = 0; c < n; c += FX_CHUNK) {
        Py_ssize_t len = n - c < FX_CHUNK ? n - c : FX_CHUNK;
        if (os == 1) {
            tot += FX_NAME(store_exp_unit)(x + c * s, len, s, m, out + c, k,
                                           pf == 0 ? 0 : pf + (uintptr_t)(2 * c));
            continue;
        }
        /* another output stride: FX_FOLD elements at a time through a
         * buffer, summed as store_exp_chunk sums its folds, so that the
         * divisor (and so every output) has the bits of a contiguous output */
        double sub = 0.0;
        for (Py_ssize_t f = 0; f < len; f += FX_FOLD) {
            Py_ssize_t fl = len - f < FX_FOLD ? len - f : FX_FOLD;
            sub += FX_NAME(store_exp_unit)(x + (c + f) * s, fl, s, m, ob, k, 0);
            for (Py_ssize_t j = 0; j < fl; j++) out[(c + f + j) * os] = ob[j];
        }
        tot += sub;
    }
    return tot;
}

static double FX_NAME(store_exp)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                 FX_W m, FX_T *out, Py_ssize_t os, double *k)
{
    return FX_NAME(store_exp_ahead)(x, n, s, m, out, os, k, 0);
}

FX_INLINE void FX_NAME(divide_body)(FX_T *out, Py_ssize_t n, Py_ssize_t os, FX_W d)
{
    for (Py_ssize_t j = 0; j < n; j++)
        out[j * os] = FX_STORE(FX_LOAD(out[j * os]) / d);
}

static void FX_NAME(divide)(FX_T *out, Py_ssize_t n, Py_ssize_t os, FX_W d)
{
    if (os == 1) FX_NAME(divide_body)(out, n, 1, d);
    else FX_NAME(divide_body)(out, n, os, d);
}

FX_INLINE void FX_NAME(scale_body)(FX_T *out, Py_ssize_t n, Py_ssize_t os, FX_W f)
{
    for (Py_ssize_t j = 0; j < n; j++)
        out[j * os] = FX_STORE(FX_LOAD(out[j * os]) * f);
}

static void FX_NAME(scale)(FX_T *out, Py_ssize_t n, Py_ssize_t os, FX_W f)
{
    if (os == 1) FX_NAME(scale_body)(out, n, 1, f);
    else FX_NAME(scale_body)(out, n, os, f);
}

FX_INLINE void FX_NAME(fill_body)(FX_T *out, Py_ssize_t n, Py_ssize_t os, FX_W v)
{
    for (Py_ssize_t j = 0; j < n; j++) out[j * os] = FX_STORE(v);
}

static void FX_NAME(fill)(FX_T *out, Py_ssize_t n, Py_ssize_t os, FX_W v)
{
    if (os == 1) FX_NAME(fill_body)(out, n, 1, v);
    else FX_NAME(fill_body)(out, n, os, v);
}

/* exp(x - m) / d in one go, for float16 output (storing the unnormalized
 * exponentials in float16 first would round twice) */
FX_INLINE void FX_NAME(exp_div_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                     FX_W m, FX_W d, FX_T *out, Py_ssize_t os)
{
    for (Py_ssize_t j = 0; j < n; j++)
        out[j * os] = FX_STORE(FX_EXP(FX_AT(x, j, s) - m) / d);
}

#ifdef FX_VIA_F32
/* a contiguous float16 row through float32's element-wise body f(x, n, 1,
 * a, b, out, 1) (exp_div_body, shift_body), a block at a time: converted
 * in, computed in place, converted out (fx_halves_to_floats) */
FX_INLINE void FX_NAME(via_f32_map)(void (*f)(const float *, Py_ssize_t, Py_ssize_t, float,
                                               float, float *, Py_ssize_t),
                                     const FX_T *x, Py_ssize_t n, FX_W a, FX_W b, FX_T *out)
{
    float buf[FX_FLUSH];
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        fx_halves_to_floats(x + j, len, buf);
        f(buf, len, 1, a, b, buf, 1);
        fx_floats_to_halves(buf, len, out + j);
    }
}
#endif

static void FX_NAME(exp_div)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                             FX_W m, FX_W d, FX_T *out, Py_ssize_t os)
{
#ifdef FX_VIA_F32
    if (s == 1 && os == 1) {
        FX_NAME(via_f32_map)(fx_f32_exp_div_body, x, n, m, d, out);
        return;
    }
#endif
    if (s == 1 && os == 1) FX_NAME(exp_div_body)(x, n, 1, m, d, out, 1);
    else FX_NAME(exp_div_body)(x, n, s, m, d, out, os);
}

/* SciPy: exp(x - max) / sum(exp(x - max)); a non-finite max (+inf, all -inf)
 * or a NaN anywhere gives a row of NaN */
static void FX_NAME(row_softmax)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                 FX_T *out, Py_ssize_t os)
{
    if (FX_STORES_EXP) {
        FX_W m = FX_NAME(max)(x, n, s);
        if (!isfinite(m)) { FX_NAME(fill)(out, n, os, NAN); return; }
        double k = 0.0;
        double tot = FX_NAME(store_exp)(x, n, s, m, out, os, &k);
        FX_NAME(divide)(out, n, os, (FX_W)(tot + k));
    } else {
        /* the state's max is the row's (NaN left out, which makes s NaN and
         * so every output): no pass of its own for the test */
        fx_lse_state st = FX_NAME(row_state)(x, n, s);
        if (!isfinite(st.m)) { FX_NAME(fill)(out, n, os, NAN); return; }
        FX_NAME(exp_div)(x, n, s, (FX_W)st.m, (FX_W)(st.s + st.k), out, os);
    }
}

#ifdef FX_VIA_F32
/* x[0..n) (stride s) into the floats buf, F16C's 8 at a time when s == 1 */
FX_INLINE void FX_NAME(to_floats)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, float *buf)
{
    if (s == 1)
        fx_halves_to_floats(x, n, buf);
    else
        for (Py_ssize_t j = 0; j < n; j++) buf[j] = FX_LOAD(x[j * s]);
}

/* to_floats returning the max (NaN ignored), taken block by block while in L1 */
FX_INLINE float FX_NAME(to_floats_max)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, float *buf)
{
    float m = -INFINITY;
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        FX_NAME(to_floats)(x + j * s, len, s, buf + j);
        float bm = fx_f32_max(buf + j, len, 1);
        m = bm > m ? bm : m;
    }
    return m;
}

/*
 * A float16 row through buf, n floats of the caller's per-thread scratch:
 * converted into it (its max taken on the way), then float32's store_exp in
 * place (requesting the row nx, the next this thread will likely do, from
 * memory meanwhile, when both rows are contiguous), then each block divided
 * and converted out.  One exp per element
 * where the state's pass and exp_div take two: float16 cannot hold the
 * unnormalized exponentials (FX_STORES_EXP) but a float32 copy of the row
 * can, and it stays in L2 between the passes.  The results are float32's
 * softmax of the row rounded once to float16, whatever the strides (the
 * split path's chunk_sumexp and exp_div give the same bits).
 */
static void FX_NAME(row_softmax_f32)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_T *out,
                                     Py_ssize_t os, float *buf, const FX_T *nx)
{
    float m = FX_NAME(to_floats_max)(x, n, s, buf);
    if (!isfinite(m)) { FX_NAME(fill)(out, n, os, NAN); return; }
    /* store_exp in place, with the next row requested from memory on the
     * way: this pass, bound by the exps, leaves the memory idle, and the
     * next row's first pass, which converts it, would otherwise wait for
     * DRAM with nothing to overlap (1024 x 50257 into out=, 2 threads: 26
     * -> 23-24 ms) */
    double k = 0.0;
    double tot = fx_f32_store_exp_ahead(buf, n, 1, m, buf, 1, &k,
                                        s == 1 ? (uintptr_t)nx : 0);
    float d = (float)(tot + k);
    FX_T hb[FX_FLUSH];
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        fx_f32_divide(buf + j, len, 1, d);
        if (os == 1) {
            fx_floats_to_halves(buf + j, len, out + j);
        } else {
            fx_floats_to_halves(buf + j, len, hb);
            for (Py_ssize_t t = 0; t < len; t++) out[(j + t) * os] = hb[t];
        }
    }
}
#endif

/* store_exp's sum (and count k) of a chunk (n <= FX_CHUNK) against the
 * row's max m, without its stores: for the split path of the dtypes whose
 * row_scratch is 1, through buf (n floats) as row_softmax_f32 forms
 * them, so that the divisor has the rows path's bits; elsewhere the
 * working type's sums */
static double FX_NAME(chunk_sumexp)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W m,
                                    double *k, float *buf)
{
#ifdef FX_VIA_F32
    if (buf != NULL) {
        FX_NAME(to_floats)(x, n, s, buf);
        return fx_f32_store_exp(buf, n, 1, m, buf, 1, k);
    }
#endif
    (void)buf;
    return FX_NAME(store_exp_chunk)(x, n, s, m, NULL, 0, k, 0, 0);
}

/* row_softmax with buf, nbuf floats of scratch (NULL: none), for the
 * dtypes whose row_scratch is 1: a row that fits goes through
 * row_softmax_f32, a longer one (nbuf >= FX_CHUNK) takes the split path's
 * steps a chunk at a time (max, chunk_sumexp, exp_div: exp twice), with
 * the same bits.  nx: the row (same strides) the caller will likely pass
 * next, only ever prefetched; NULL if none. */
static void FX_NAME(row_softmax_buf)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                     FX_T *out, Py_ssize_t os, float *buf, Py_ssize_t nbuf,
                                     const FX_T *nx)
{
    (void)nx;
#ifdef FX_VIA_F32
    if (buf != NULL && nbuf >= n) {
        FX_NAME(row_softmax_f32)(x, n, s, out, os, buf, nx);
        return;
    }
    if (buf != NULL && nbuf >= FX_CHUNK) {
        FX_W m = FX_NAME(max)(x, n, s);
        if (!isfinite(m)) { FX_NAME(fill)(out, n, os, NAN); return; }
        double tot = 0.0, k = 0.0;
        for (Py_ssize_t c = 0; c < n; c += FX_CHUNK)
            tot += FX_NAME(chunk_sumexp)(x + c * s, n - c < FX_CHUNK ? n - c : FX_CHUNK, s, m,
                                         &k, buf);
        FX_NAME(exp_div)(x, n, s, m, (FX_W)(tot + k), out, os);
        return;
    }
#endif
    (void)buf;
    (void)nbuf;
    FX_NAME(row_softmax)(x, n, s, out, os);
}

/* ---- log_softmax: out = (x - m) - c ---- */

FX_INLINE void FX_NAME(shift_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                   FX_W m, FX_W c, FX_T *out, Py_ssize_t os)
{
    for (Py_ssize_t j = 0; j < n; j++)
        out[j * os] = FX_STORE((FX_AT(x, j, s) - m) - c);
}

static void FX_NAME(shift)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                           FX_W m, FX_W c, FX_T *out, Py_ssize_t os)
{
#ifdef FX_VIA_F32
    if (s == 1 && os == 1) {
        FX_NAME(via_f32_map)(fx_f32_shift_body, x, n, m, c, out);
        return;
    }
#endif
    if (s == 1 && os == 1) FX_NAME(shift_body)(x, n, 1, m, c, out, 1);
    else FX_NAME(shift_body)(x, n, s, m, c, out, os);
}

static void FX_NAME(row_log_softmax)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                     FX_T *out, Py_ssize_t os)
{
    fx_lse_state st = FX_NAME(row_state)(x, n, s);
    double m_eff;
    double c = fx_log_softmax_offset(st.m, st.k, st.s, &m_eff);
    FX_NAME(shift)(x, n, s, (FX_W)m_eff, (FX_W)c, out, os);
}

/* ---- columns: W adjacent rows of unit inner stride, reduced along sc ----
 * (PyTorch's (N, C, d1, ...) layout, or axis=0 of a C-ordered matrix).
 * Vectorized across the W rows; every row's sum runs in order over c in
 * double, so the result does not depend on how rows are blocked. */

FX_INLINE void FX_NAME(col_max)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
                             Py_ssize_t W, FX_W *mx)
{
    for (Py_ssize_t i = 0; i < W; i++) mx[i] = -INFINITY;
    for (Py_ssize_t c = 0; c < C; c++) {
        const FX_T *p = x + c * sc;
        for (Py_ssize_t i = 0; i < W; i++) {
            FX_W v = FX_LOAD(p[i]);
            mx[i] = v > mx[i] ? v : mx[i];
        }
    }
}

/* the sums of exp(x - mx) over the elements != mx (their count in k); with
 * out (only where FX_STORES_EXP: the storage type holds the exps exactly),
 * each exp is also stored there (class stride osc, position stride osi), so
 * that the output pass need not form it again */
FX_INLINE void FX_NAME(col_sumexp_body)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
                                        Py_ssize_t W, const FX_W *mx, double *sum, double *k,
                                        FX_T *out, Py_ssize_t osc, Py_ssize_t osi)
{
    for (Py_ssize_t i = 0; i < W; i++) { sum[i] = 0.0; k[i] = 0.0; }
    for (Py_ssize_t c = 0; c < C; c++) {
        const FX_T *p = x + c * sc;
        FX_T *q = out ? out + c * osc : NULL;
        for (Py_ssize_t i = 0; i < W; i++) {
            FX_W v = FX_LOAD(p[i]);
            FX_W e = FX_EXP(v - mx[i]);
            int eq = v == mx[i];
            sum[i] += eq ? 0.0 : (double)e;
            k[i] += eq ? 1.0 : 0.0;
            if (out) q[i * osi] = FX_STORE(e);
        }
    }
}

FX_INLINE void FX_NAME(col_sumexp_excl)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
                                     Py_ssize_t W, const FX_W *mx, double *sum, double *k)
{
    FX_NAME(col_sumexp_body)(x, C, sc, W, mx, sum, k, NULL, 0, 0);
}

/* col_sumexp_excl storing the exps in out (FX_STORES_EXP dtypes only) */
FX_INLINE void FX_NAME(col_sumexp_store)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
                                      Py_ssize_t W, const FX_W *mx, double *sum, double *k,
                                      FX_T *out, Py_ssize_t osc, Py_ssize_t osi)
{
    if (osi == 1) FX_NAME(col_sumexp_body)(x, C, sc, W, mx, sum, k, out, osc, 1);
    else FX_NAME(col_sumexp_body)(x, C, sc, W, mx, sum, k, out, osc, osi);
}

FX_INLINE void FX_NAME(col_exp_div)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                                 const FX_W *mx, const FX_W *d,
                                 FX_T *out, Py_ssize_t osc, Py_ssize_t osi)
{
    for (Py_ssize_t c = 0; c < C; c++) {
        const FX_T *p = x + c * sc;
        FX_T *q = out + c * osc;
        if (osi == 1)
            for (Py_ssize_t i = 0; i < W; i++) q[i] = FX_STORE(FX_EXP(FX_LOAD(p[i]) - mx[i]) / d[i]);
        else
            for (Py_ssize_t i = 0; i < W; i++) q[i * osi] = FX_STORE(FX_EXP(FX_LOAD(p[i]) - mx[i]) / d[i]);
    }
}

FX_INLINE void FX_NAME(col_shift)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                               const FX_W *mx, const FX_W *d,
                               FX_T *out, Py_ssize_t osc, Py_ssize_t osi)
{
    for (Py_ssize_t c = 0; c < C; c++) {
        const FX_T *p = x + c * sc;
        FX_T *q = out + c * osc;
        if (osi == 1)
            for (Py_ssize_t i = 0; i < W; i++) q[i] = FX_STORE((FX_LOAD(p[i]) - mx[i]) - d[i]);
        else
            for (Py_ssize_t i = 0; i < W; i++) q[i * osi] = FX_STORE((FX_LOAD(p[i]) - mx[i]) - d[i]);
    }
}

/* logsumexp of W columns; scratch holds 3*W doubles */
FX_INLINE void FX_NAME(col_lse_body)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                                     FX_W *mx, double *scratch, int want_sign,
                                     double *out, double *sgn)
{
    double *sum = scratch, *k = scratch + W;
    FX_NAME(col_max)(x, C, sc, W, mx);
    FX_NAME(col_sumexp_excl)(x, C, sc, W, mx, sum, k);
    for (Py_ssize_t i = 0; i < W; i++) {
        out[i] = fx_lse_finish((double)mx[i], k[i], sum[i], want_sign, &sgn[i]);
        if (!isfinite(out[i]))
            out[i] = fx_lse_naive((double)FX_NAME(naive)(x + i, C, sc, NULL, 0), want_sign, &sgn[i]);
    }
}

FX_COL_KERNEL(col_lse, (const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, FX_W *mx,
                        double *scratch, int want_sign, double *out, double *sgn),
              (x, C, sc, W, mx, scratch, want_sign, out, sgn))

/* softmax (log_softmax when logarithm is set) of W columns; scratch 3*W */
FX_INLINE void FX_NAME(col_softmax_body)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
                                         Py_ssize_t W, FX_W *mx, double *scratch,
                                         int logarithm, FX_T *out, Py_ssize_t osc,
                                         Py_ssize_t osi)
{
    double *sum = scratch, *k = scratch + W;
    FX_W *d = (FX_W *)(scratch + 2 * W);
    /* the exps are formed again for the output: keeping them in out (read
     * back by the division) was slower, 18.6 -> 24.5 ms for softmax along
     * axis 0 of a C-ordered 1000 x 20000 float32 (likely because out's
     * block and x's no longer both fit in L2) */
    FX_NAME(col_max)(x, C, sc, W, mx);
    FX_NAME(col_sumexp_excl)(x, C, sc, W, mx, sum, k);
    for (Py_ssize_t i = 0; i < W; i++) {
        if (logarithm) {
            double m_eff;
            d[i] = (FX_W)fx_log_softmax_offset((double)mx[i], k[i], sum[i], &m_eff);
            mx[i] = (FX_W)m_eff;
        } else {
            d[i] = isfinite(mx[i]) ? (FX_W)(sum[i] + k[i]) : (FX_W)NAN;
            mx[i] = isfinite(mx[i]) ? mx[i] : 0;
        }
    }
    if (logarithm) FX_NAME(col_shift)(x, C, sc, W, mx, d, out, osc, osi);
    else FX_NAME(col_exp_div)(x, C, sc, W, mx, d, out, osc, osi);
}

FX_COL_KERNEL(col_softmax, (const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                            FX_W *mx, double *scratch, int logarithm, FX_T *out,
                            Py_ssize_t osc, Py_ssize_t osi),
              (x, C, sc, W, mx, scratch, logarithm, out, osc, osi))

#undef FX_AT

/* ---- short rows: FX_BLOCK_W rows side by side ----
 * Rows of at most FX_SMALL_C elements are too short to vectorize along, and
 * their per-row bookkeeping (max, sums, two logs) would cost more than the
 * exps.  A block of rows is transposed into scratch T[c * FX_BLOCK_W + i]
 * (rows become SIMD lanes), reduced with vector ops across rows and
 * finalized with the vectorized logs of fx_math.h.  Rows whose result is
 * not finite (inf, NaN, all -inf) are redone by the row kernels above, which
 * hold SciPy's special-value rules.  Lanes past the last row hold stale
 * values and are computed but never stored.  With FX_SHORT_X8 (float32 in
 * the AVX2 build) the transposes, the sums and the write-back go through
 * fx_short_rows_avx2.h, with the same bits. */

/* the W rows at x into T; with FX_SHORT_X8 also each lane's max and min
 * into mx and lo (all the block's rows are read before any exp: a burst of
 * loads, then arithmetic, is faster than the two interleaved per 8 rows;
 * a compile-time 8 rows drops the row masks) */
FX_INLINE void FX_NAME(tr_in_body)(const FX_T *x, Py_ssize_t C, Py_ssize_t rs,
                                   Py_ssize_t W, FX_W *T, FX_W *mx, FX_W *lo)
{
#if defined(FX_SHORT_X8)
    Py_ssize_t g = 0;
    for (; g + 8 <= W; g += 8)
        fx_rows8_in(x + g * rs, C, rs, 8, T + g, FX_BLOCK_W, mx + g, lo + g);
    if (g < W)
        fx_rows8_in(x + g * rs, C, rs, W - g, T + g, FX_BLOCK_W, mx + g, lo + g);
#else
    (void)mx;
    (void)lo;
    for (Py_ssize_t i = 0; i < W; i++)
        for (Py_ssize_t c = 0; c < C; c++)
            T[c * FX_BLOCK_W + i] = FX_LOAD(x[i * rs + c]);
#endif
}

/* a compile-time C unrolls the inner loop (and keeps the AVX2 transposes in
 * registers), which is most of the cost.  With FX_SHORT_VIA8 (float16 in the
 * AVX2 build) the rows are converted by F16C into a float32 block and go
 * through float32's route: the same values, so the same bits as the loops
 * here, without their element-wise conversions */
FX_INLINE void FX_NAME(tr_in_minmax)(const FX_T *x, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t W,
                                     FX_W *T, FX_W *mx, FX_W *lo)
{
#if defined(FX_SHORT_VIA8)
    /* a block of short rows, as at every caller (C <= FX_SMALL_C,
     * W <= FX_BLOCK_W): no fallback, since block_in_stats needs mx and lo */
    float xf[FX_SMALL_C * FX_BLOCK_W];
    if (rs == C)
        fx_halves_to_floats(x, W * C, xf);
    else
        for (Py_ssize_t i = 0; i < W; i++) fx_halves_to_floats(x + i * rs, C, xf + i * C);
    fx_f32_tr_in_minmax(xf, C, C, W, T, mx, lo);
    return;
#endif
    switch (C) {
#define FX_TR_CASE(n) case n: FX_NAME(tr_in_body)(x, n, rs, W, T, mx, lo); return;
    FX_TR_CASE(1) FX_TR_CASE(2) FX_TR_CASE(3) FX_TR_CASE(4) FX_TR_CASE(5) FX_TR_CASE(6)
    FX_TR_CASE(7) FX_TR_CASE(8) FX_TR_CASE(9) FX_TR_CASE(10) FX_TR_CASE(11) FX_TR_CASE(12)
    FX_TR_CASE(13) FX_TR_CASE(14) FX_TR_CASE(15) FX_TR_CASE(16)
#undef FX_TR_CASE
    default: FX_NAME(tr_in_body)(x, C, rs, W, T, mx, lo);
    }
}

static void FX_NAME(tr_in)(const FX_T *x, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t W, FX_W *T)
{
    FX_W mx[FX_BLOCK_W], lo[FX_BLOCK_W];   /* not needed here */
    FX_NAME(tr_in_minmax)(x, C, rs, W, T, mx, lo);
}

/* per lane: max mx, count k of the max, sum s of exp(x - mx) over the rest;
 * with keep_exp, T is overwritten by exp(x - mx) (1 at the max) */
FX_INLINE void FX_NAME(block_stats)(FX_W *T, Py_ssize_t C, FX_W *mx, FX_W *s, FX_W *k,
                                    int keep_exp)
{
    for (int i = 0; i < FX_BLOCK_W; i++) { mx[i] = T[i]; s[i] = 0; k[i] = 0; }
    for (Py_ssize_t c = 1; c < C; c++)
        for (int i = 0; i < FX_BLOCK_W; i++) {
            FX_W v = T[c * FX_BLOCK_W + i];
            mx[i] = v > mx[i] ? v : mx[i];
        }
    /* rows of more than FX_SUM_RUN classes: runs of FX_SUM_RUN
     * classes summed in the working type, added in double, rounded once */
    double sd[FX_BLOCK_W];
    if (C > FX_SUM_RUN)
        for (int i = 0; i < FX_BLOCK_W; i++) sd[i] = 0.0;
    for (Py_ssize_t c = 0; c < C; c++) {
        for (int i = 0; i < FX_BLOCK_W; i++) {
            FX_W v = T[c * FX_BLOCK_W + i];
            int eq = v == mx[i];
            FX_W e = FX_EXP(eq ? (FX_W)-INFINITY : v - mx[i]);
            s[i] += e;
            k[i] += eq ? (FX_W)1 : (FX_W)0;
            if (keep_exp) T[c * FX_BLOCK_W + i] = eq ? (FX_W)1 : e;
        }
        if (FX_SUM_RUN_END(C, c))
            for (int i = 0; i < FX_BLOCK_W; i++) {
                sd[i] += (double)s[i];
                s[i] = 0;
            }
    }
    if (C > FX_SUM_RUN)
        for (int i = 0; i < FX_BLOCK_W; i++) s[i] = (FX_W)sd[i];
}

/* the W rows at x into T, and their max, count and sum as block_stats
 * (keep_exp a constant at each call); lanes from W on are stale or 0 */
FX_INLINE void FX_NAME(block_in_stats)(const FX_T *x, Py_ssize_t C, Py_ssize_t rs,
                                       Py_ssize_t W, FX_W *T, FX_W *mx, FX_W *s, FX_W *k,
                                       const int keep_exp)
{
#if defined(FX_SHORT_X8) || defined(FX_SHORT_VIA8)
    /* s holds each lane's min until fx_sums8 replaces it by the sum */
    FX_NAME(tr_in_minmax)(x, C, rs, W, T, mx, s);
    for (Py_ssize_t g = 0; g < W; g += 8)
        fx_sums8(T + g, C, FX_BLOCK_W, mx + g, s + g, s + g, k + g, keep_exp);
#else
    FX_NAME(tr_in)(x, C, rs, W, T);
    FX_NAME(block_stats)(T, C, mx, s, k, keep_exp);
#endif
}

/* the W rows at x into T, with their max, count and sum */
FX_INLINE void FX_NAME(block_in)(const FX_T *x, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t W,
                                 FX_W *T, FX_W *mx, FX_W *s, FX_W *k)
{
    FX_NAME(block_in_stats)(x, C, rs, W, T, mx, s, k, 0);
}

/* the W rows at x into T as exp(x - max) (1 at the max), with the max,
 * count and sum */
FX_INLINE void FX_NAME(block_in_exp)(const FX_T *x, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t W,
                                     FX_W *T, FX_W *mx, FX_W *s, FX_W *k)
{
    FX_NAME(block_in_stats)(x, C, rs, W, T, mx, s, k, 1);
}

/* rows with skip[i] set are left alone (skip may be NULL) */
FX_INLINE void FX_NAME(tr_out_body)(const FX_W *T, Py_ssize_t C, Py_ssize_t W,
                                    FX_T *out, Py_ssize_t ors, Py_ssize_t osc,
                                    const unsigned char *skip)
{
#if defined(FX_SHORT_X8)
    if (osc == 1) {
        for (Py_ssize_t g = 0; g < W; g += 8)
            fx_rows8_out(T + g, C, FX_BLOCK_W, out + g * ors, ors, W - g < 8 ? W - g : 8,
                         skip ? skip + g : NULL, NULL);
        return;
    }
#endif
    for (Py_ssize_t i = 0; i < W; i++) {
        if (skip && skip[i]) continue;
        for (Py_ssize_t c = 0; c < C; c++)
            out[i * ors + c * osc] = FX_STORE(T[c * FX_BLOCK_W + i]);
    }
}

static void FX_NAME(tr_out)(const FX_W *T, Py_ssize_t C, Py_ssize_t W,
                            FX_T *out, Py_ssize_t ors, Py_ssize_t osc,
                            const unsigned char *skip)
{
#if defined(FX_SHORT_VIA8)
    /* float16 rows: float32's register transposes into a float32 block,
     * then each row converted by F16C (rounding as FX_STORE does) */
    if (osc == 1) {   /* C <= FX_SMALL_C, W <= FX_BLOCK_W, as at every caller */
        float of[FX_SMALL_C * FX_BLOCK_W];
        fx_f32_tr_out(T, C, W, of, C, 1, NULL);
        for (Py_ssize_t i = 0; i < W; i++)
            if (!(skip && skip[i])) fx_floats_to_halves(of + i * C, C, out + i * ors);
        return;
    }
#endif
    if (osc != 1) { FX_NAME(tr_out_body)(T, C, W, out, ors, osc, skip); return; }
    switch (C) {
#define FX_TR_CASE(n) case n: FX_NAME(tr_out_body)(T, n, W, out, ors, 1, skip); return;
    FX_TR_CASE(1) FX_TR_CASE(2) FX_TR_CASE(3) FX_TR_CASE(4) FX_TR_CASE(5) FX_TR_CASE(6)
    FX_TR_CASE(7) FX_TR_CASE(8) FX_TR_CASE(9) FX_TR_CASE(10) FX_TR_CASE(11) FX_TR_CASE(12)
    FX_TR_CASE(13) FX_TR_CASE(14) FX_TR_CASE(15) FX_TR_CASE(16)
#undef FX_TR_CASE
    default: FX_NAME(tr_out_body)(T, C, W, out, ors, 1, skip);
    }
}

/* log k + log1p(s / k) per lane, into s; log k is skipped when every k is 1
 * (no ties at the max: the usual case) */
FX_INLINE void FX_NAME(block_log_offset)(const FX_W *k, FX_W *s)
{
    int ones = 1;
    for (int i = 0; i < FX_BLOCK_W; i++) ones &= k[i] == 1;
    if (ones) {
        for (int i = 0; i < FX_BLOCK_W; i++) s[i] = FX_LOG1P01(s[i]);
    } else {
        /* a lane with k == 1 as in the branch above, so that a row's result
         * does not depend on the other rows of its block */
        for (int i = 0; i < FX_BLOCK_W; i++) {
            double kk = (double)k[i];
            FX_W tied = (FX_W)(fx_log_ge1(kk) + fx_log1p_ge0((double)s[i] / kk));
            s[i] = k[i] == 1 ? FX_LOG1P01(s[i]) : tied;
        }
    }
}

/* logsumexp of nrows short rows (C <= FX_SMALL_C; row stride rs, unit
 * element stride); scratch: FX_SMALL_SCRATCH = (FX_SMALL_C + 3) *
 * FX_BLOCK_W working-type elements, of which it uses the first
 * (3 + C) * FX_BLOCK_W (the per-row arrays, then the block), the part a
 * caller clears */
static void FX_NAME(small_lse)(const FX_T *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs,
                               FX_W *scratch, int want_sign, FX_T *out, Py_ssize_t os,
                               FX_T *sgn, Py_ssize_t gs)
{
    FX_W *mx = scratch, *s = mx + FX_BLOCK_W, *k = s + FX_BLOCK_W, *T = k + FX_BLOCK_W;
    for (Py_ssize_t r0 = 0; r0 < nrows; r0 += FX_BLOCK_W) {
        Py_ssize_t W = nrows - r0 < FX_BLOCK_W ? nrows - r0 : FX_BLOCK_W;
        const FX_T *xb = x + r0 * rs;
        FX_NAME(block_in)(xb, C, rs, W, T, mx, s, k);
        FX_NAME(block_log_offset)(k, s);
        /* the offset is added in the working type: for float32 rows that is
         * SciPy's own rounding of log1p(s) + m */
        int bad = 0;
        for (int i = 0; i < FX_BLOCK_W; i++) {
            s[i] = s[i] + mx[i];
            bad |= !(s[i] - s[i] == 0) | !(k[i] >= 1);   /* inf or NaN; no max */
        }
        if (os == 1)
            for (Py_ssize_t i = 0; i < W; i++) out[r0 + i] = FX_STORE(s[i]);
        else
            for (Py_ssize_t i = 0; i < W; i++) out[(r0 + i) * os] = FX_STORE(s[i]);
        if (sgn)
            for (Py_ssize_t i = 0; i < W; i++) sgn[(r0 + i) * gs] = FX_STORE((FX_W)1);
        for (Py_ssize_t i = 0; bad && i < W; i++) {
            if (!isfinite(s[i]) || !(k[i] >= 1)) {
                double g;
                double r = FX_NAME(row_lse)(xb + i * rs, C, 1, NULL, 0, want_sign, &g);
                out[(r0 + i) * os] = FX_STORE((FX_W)r);
                if (sgn) sgn[(r0 + i) * gs] = FX_STORE((FX_W)g);
            }
        }
    }
}

/* softmax (log_softmax with logarithm) of nrows short rows (C <=
 * FX_SMALL_C); scratch as small_lse's */
static void FX_NAME(small_softmax)(const FX_T *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs,
                                   FX_W *scratch, int logarithm, FX_T *out, Py_ssize_t ors,
                                   Py_ssize_t osc)
{
    FX_W *mx = scratch, *s = mx + FX_BLOCK_W, *k = s + FX_BLOCK_W, *T = k + FX_BLOCK_W;
    for (Py_ssize_t r0 = 0; r0 < nrows; r0 += FX_BLOCK_W) {
        Py_ssize_t W = nrows - r0 < FX_BLOCK_W ? nrows - r0 : FX_BLOCK_W;
        const FX_T *xb = x + r0 * rs;
        FX_T *ob = out + r0 * ors;
        /* softmax needs exp(x - max) in T */
        if (logarithm)
            FX_NAME(block_in)(xb, C, rs, W, T, mx, s, k);
        else
            FX_NAME(block_in_exp)(xb, C, rs, W, T, mx, s, k);
        /* s becomes the offset (log_softmax) or the divisor (softmax) */
        if (logarithm)
            FX_NAME(block_log_offset)(k, s);
        else
            for (int i = 0; i < FX_BLOCK_W; i++) s[i] = s[i] + k[i];
        int bad = 0;
        for (int i = 0; i < FX_BLOCK_W; i++) bad |= !(mx[i] - mx[i] == 0) | !(s[i] - s[i] == 0);
        Py_ssize_t done = 0;   /* rows written */
#if defined(FX_SHORT_X8)
        /* log_softmax of contiguous rows: 8 at a time straight from x,
         * without the transpose back (softmax's exps are in T already:
         * forming them again from x cost more than the transposes) */
        if (!bad && logarithm && rs == C && ors == C && osc == 1)
            for (; done + 8 <= W; done += 8)
                fx_shift8_flat(xb + done * C, C, mx + done, s + done, ob + done * C);
        if (done == W) continue;
        /* softmax of float32 rows: divided on the way out */
        if (!bad && !logarithm && osc == 1) {
            for (Py_ssize_t g = 0; g < W; g += 8)
                fx_rows8_out(T + g, C, FX_BLOCK_W, ob + g * ors, ors, W - g < 8 ? W - g : 8,
                             NULL, s + g);
            continue;
        }
#endif
        if (logarithm)
            for (Py_ssize_t c = 0; c < C; c++)
                for (int i = 0; i < FX_BLOCK_W; i++)
                    T[c * FX_BLOCK_W + i] = (T[c * FX_BLOCK_W + i] - mx[i]) - s[i];
        else
            for (Py_ssize_t c = 0; c < C; c++)
                for (int i = 0; i < FX_BLOCK_W; i++)
                    T[c * FX_BLOCK_W + i] = T[c * FX_BLOCK_W + i] / s[i];
        if (!bad) {
            FX_NAME(tr_out)(T + done, C, W - done, ob + done * ors, ors, osc, NULL);
            continue;
        }
        /* special rows are redone by the row kernels first, while x is
         * intact (out may be x itself), and then left alone */
        unsigned char skip[FX_BLOCK_W];
        for (Py_ssize_t i = 0; i < W; i++) {
            skip[i] = !isfinite(mx[i]) || !isfinite(s[i]);
            if (skip[i] && logarithm)
                FX_NAME(row_log_softmax)(xb + i * rs, C, 1, ob + i * ors, osc);
            else if (skip[i])
                FX_NAME(row_softmax)(xb + i * rs, C, 1, ob + i * ors, osc);
        }
        FX_NAME(tr_out)(T, C, W, ob, ors, osc, skip);
    }
}
