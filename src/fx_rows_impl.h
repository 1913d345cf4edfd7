/*
 * fx_rows_impl.h -- per-row kernels of the softmax family, one storage type.
 *
 * Included by fx_rows.h once per storage type with these macros set:
 *   FX_T       storage type (uint16_t for float16, float, double)
 *   FX_W       working type (float for float16/float32, double for float64)
 *   FX_LOAD(v) storage -> working,  FX_STORE(w) working -> storage
 *   FX_EXP     the vectorizable exp of FX_W
 *   FX_NAME(x) the suffixed name
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
 * baseline and AVX2 builds may differ in the last bits.
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
static FX_W FX_NAME(max_w)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                           const FX_T *b, Py_ssize_t bs)
{
    FX_W m = -INFINITY;
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W v = FX_AT(b, j, bs) == 0 ? -INFINITY : FX_AT(x, j, s);
        m = v > m ? v : m;
    }
    return m;
}

/* ---- sum of exp(x - m) over the elements != m; *k += their count ---- */

/* one chunk (n <= FX_CHUNK); the SIMD partial sums are folded into double
 * every FX_FLUSH elements so float32 partial sums never grow long */
FX_INLINE double FX_NAME(sumexp_chunk)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                       FX_W m, double *k)
{
    double tot = 0.0, totk = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FLUSH) {
        Py_ssize_t end = j0 + FX_FLUSH < n ? j0 + FX_FLUSH : n;
        FX_W acc = 0, cnt = 0;
        FX_SIMD_REDUCE(+:acc,cnt)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, s);
            int eq = v == m;
            /* exp(-inf) = 0 drops the max terms without a second select */
            acc += FX_EXP(eq ? (FX_W)-INFINITY : v - m);
            cnt += eq ? (FX_W)1 : (FX_W)0;
        }
        tot += (double)acc;
        totk += (double)cnt;
    }
    *k += totk;
    return tot;
}

static double FX_NAME(sumexp_excl)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                   FX_W m, double *k)
{
    double tot = 0.0;
    for (Py_ssize_t c = 0; c < n; c += FX_CHUNK) {
        Py_ssize_t len = n - c < FX_CHUNK ? n - c : FX_CHUNK;
        tot += s == 1 ? FX_NAME(sumexp_chunk)(x + c, len, 1, m, k)
                      : FX_NAME(sumexp_chunk)(x + c * s, len, s, m, k);
    }
    return tot;
}

/* weighted: sum of b exp(x - m) over the elements != m; *k += sum of their b */
static double FX_NAME(sumexp_excl_w)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                     const FX_T *b, Py_ssize_t bs, FX_W m, double *k)
{
    double tot = 0.0, totk = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W w = FX_AT(b, j, bs);
        FX_W v = w == 0 ? -INFINITY : FX_AT(x, j, s);
        int eq = v == m;
        FX_W e = w * FX_EXP(v - m);
        tot += eq ? 0.0 : (double)e;
        totk += eq ? (double)w : 0.0;
    }
    *k += totk;
    return tot;
}

/* the direct sum of b exp(x) in the working precision, overflow and all:
 * SciPy falls back to it where the stable formula is not finite */
static FX_W FX_NAME(naive)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                           const FX_T *b, Py_ssize_t bs)
{
    FX_W tot = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W e = FX_EXP(FX_AT(x, j, s));
        tot += b ? FX_AT(b, j, bs) * e : e;
    }
    return tot;
}

/* ---- whole-row logsumexp ---- */

static double FX_NAME(row_lse)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                               const FX_T *b, Py_ssize_t bs, int want_sign, double *sgn)
{
    double k = 0.0, sum;
    FX_W m;
    if (b) {
        m = FX_NAME(max_w)(x, n, s, b, bs);
        sum = FX_NAME(sumexp_excl_w)(x, n, s, b, bs, m, &k);
    } else {
        m = FX_NAME(max)(x, n, s);
        sum = FX_NAME(sumexp_excl)(x, n, s, m, &k);
    }
    double out = fx_lse_finish((double)m, k, sum, want_sign, sgn);
    if (!isfinite(out))
        out = fx_lse_naive((double)FX_NAME(naive)(x, n, s, b, bs), want_sign, sgn);
    return out;
}

/* ---- softmax: out = exp(x - m) / sum ---- */

/* writes e = exp(x - m) and returns their sum (same chunking as sumexp) */
FX_INLINE double FX_NAME(store_exp_chunk)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                          FX_W m, FX_T *out, Py_ssize_t os)
{
    double tot = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FLUSH) {
        Py_ssize_t end = j0 + FX_FLUSH < n ? j0 + FX_FLUSH : n;
        FX_W acc = 0;
        FX_SIMD_REDUCE(+:acc)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W e = FX_EXP(FX_AT(x, j, s) - m);
            out[j * os] = FX_STORE(e);
            acc += e;
        }
        tot += (double)acc;
    }
    return tot;
}

static double FX_NAME(store_exp)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                 FX_W m, FX_T *out, Py_ssize_t os)
{
    double tot = 0.0;
    for (Py_ssize_t c = 0; c < n; c += FX_CHUNK) {
        Py_ssize_t len = n - c < FX_CHUNK ? n - c : FX_CHUNK;
        tot += (s == 1 && os == 1)
            ? FX_NAME(store_exp_chunk)(x + c, len, 1, m, out + c, 1)
            : FX_NAME(store_exp_chunk)(x + c * s, len, s, m, out + c * os, os);
    }
    return tot;
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

static void FX_NAME(exp_div)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                             FX_W m, FX_W d, FX_T *out, Py_ssize_t os)
{
    if (s == 1 && os == 1) FX_NAME(exp_div_body)(x, n, 1, m, d, out, 1);
    else FX_NAME(exp_div_body)(x, n, s, m, d, out, os);
}

/* SciPy: exp(x - max) / sum(exp(x - max)); a non-finite max (+inf, all -inf)
 * or a NaN anywhere gives a row of NaN */
static void FX_NAME(row_softmax)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                 FX_T *out, Py_ssize_t os)
{
    FX_W m = FX_NAME(max)(x, n, s);
    if (!isfinite(m)) { FX_NAME(fill)(out, n, os, NAN); return; }
    if (FX_STORES_EXP) {
        double tot = FX_NAME(store_exp)(x, n, s, m, out, os);
        FX_NAME(divide)(out, n, os, (FX_W)tot);
    } else {
        double k = 0.0;
        double tot = FX_NAME(sumexp_excl)(x, n, s, m, &k) + k;
        FX_NAME(exp_div)(x, n, s, m, (FX_W)tot, out, os);
    }
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
    if (s == 1 && os == 1) FX_NAME(shift_body)(x, n, 1, m, c, out, 1);
    else FX_NAME(shift_body)(x, n, s, m, c, out, os);
}

static void FX_NAME(row_log_softmax)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                     FX_T *out, Py_ssize_t os)
{
    FX_W m = FX_NAME(max)(x, n, s);
    /* the sum is taken for a non-finite max too: it carries a NaN of the row */
    double k = 0.0;
    double sum = FX_NAME(sumexp_excl)(x, n, s, m, &k);
    double m_eff;
    double c = fx_log_softmax_offset((double)m, k, sum, &m_eff);
    FX_NAME(shift)(x, n, s, (FX_W)m_eff, (FX_W)c, out, os);
}

/* ---- columns: W adjacent rows of unit inner stride, reduced along sc ----
 * (PyTorch's (N, C, d1, ...) layout, or axis=0 of a C-ordered matrix).
 * Vectorized across the W rows; every row's sum runs in order over c in
 * double, so the result does not depend on how rows are blocked. */

static void FX_NAME(col_max)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
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

static void FX_NAME(col_sumexp_excl)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc,
                                     Py_ssize_t W, const FX_W *mx, double *sum, double *k)
{
    for (Py_ssize_t i = 0; i < W; i++) { sum[i] = 0.0; k[i] = 0.0; }
    for (Py_ssize_t c = 0; c < C; c++) {
        const FX_T *p = x + c * sc;
        for (Py_ssize_t i = 0; i < W; i++) {
            FX_W v = FX_LOAD(p[i]);
            FX_W e = FX_EXP(v - mx[i]);
            int eq = v == mx[i];
            sum[i] += eq ? 0.0 : (double)e;
            k[i] += eq ? 1.0 : 0.0;
        }
    }
}

static void FX_NAME(col_exp_div)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
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

static void FX_NAME(col_shift)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
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
static void FX_NAME(col_lse)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
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

/* softmax (log_softmax when logarithm is set) of W columns; scratch 3*W */
static void FX_NAME(col_softmax)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                                 FX_W *mx, double *scratch, int logarithm,
                                 FX_T *out, Py_ssize_t osc, Py_ssize_t osi)
{
    double *sum = scratch, *k = scratch + W;
    FX_W *d = (FX_W *)(scratch + 2 * W);
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

#undef FX_AT
