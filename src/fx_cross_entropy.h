/*
 * fx_cross_entropy.h -- per-row cross-entropy, one storage type (included by
 * fx_kernels_for_dtype.h after fx_softmax_family.h, same macros).
 *
 * With p = softmax(x), class weights w (all 1 without weights), smoothing e
 * and C classes, PyTorch's loss of a row is
 *
 *     loss = sum_c a_c (lse - x_c) + b (lse - x_y)
 *
 * with, for a class-index target y:   a_c = (e / C) w_c,  b = (1 - e) w_y,
 * and for a probability target q:     a_c = w_c ((1 - e) q_c + e / C),  b = 0.
 * Its gradient, scaled by gscale (1 / the 'mean' denominator, or 1), is
 *
 *     d loss / d x_c = (sum_c a_c + b) p_c - a_c - b [c == y].
 *
 * The row is read once, block by block as row_state does.  The a-sum is kept
 * per block as (lse - m_b) A_b + sum_c a_c (m_b - x_c): every term is >= 0,
 * so nothing cancels however large the logits.  With a gradient the
 * block's exp(x - m_b) are stored in the gradient row and rescaled by
 * exp(m_b - lse) in a second pass over the row while it is still in cache:
 * one exp per element for loss and gradient together.
 */

#ifndef FX_XENT_COMMON
#define FX_XENT_COMMON
/* blocks (FX_FLUSH) and chunks (FX_CHUNK) of a row of n classes, and the
 * doubles of row_xent's scratch: (m_b, A_b, distance sum) per block, and
 * (m, k, s) per chunk of a row longer than one chunk */
#define FX_XENT_NB(n) (((n) + FX_FLUSH - 1) / FX_FLUSH)
#define FX_XENT_NCH(n) (((n) + FX_CHUNK - 1) / FX_CHUNK)
#define FX_XENT_SCRATCH(n) (3 * FX_XENT_NB(n) + (FX_XENT_NCH(n) > 1 ? 3 * FX_XENT_NCH(n) : 0))
/* what a row's gradient needs from its loss (xent_finish) */
typedef struct {
    double m;      /* the row max */
    double lse;    /* its log-sum-exp; NaN for a row without a distribution */
    double off;    /* lse - m, kept apart */
    double bw;     /* (1 - e) w_y of a class index, 0 for probabilities */
    double asum;   /* the sum of the coefficients a_c */
} fx_xent_row;
#endif

#define FX_AT(p, j, s) FX_LOAD((p)[(Py_ssize_t)(j) * (s)])
/* the scale of the summed a (m - x): 1/2 for a float working type */
#define FX_XENT_HALF (sizeof(FX_W) == sizeof(float) ? 0.5 : 1.0)

/* a_c: the per-class coefficient of the row (see the top of this file) */
#define FX_XENT_COEF(j) ((has_w ? FX_AT(w, j, ws) : (FX_W)1) * \
                         (has_q ? qa * FX_AT(q, j, qs) + qb : qb))

/* a_c in double: the same products without float32's overflow */
#define FX_XENT_COEF_D(j) ((has_w ? (double)FX_AT(w, j, ws) : 1.0) * \
                           (has_q ? qa * (double)FX_AT(q, j, qs) + qb : qb))

/* one block of the row: updates the state, returns its a-sum terms.  The
 * has_* flags are compile-time constants at every call (see xent_blocks),
 * so each combination is its own branch-free, vectorized loop. */
/* the loop of xent_block; `normal` (a constant): every x - m of the block
 * is in [FX_EXP_NORMAL_MIN, 0], so the cheaper exp serves (same bits) */
FX_INLINE void FX_NAME(xent_block_loop)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                        const FX_T *w, Py_ssize_t ws, const FX_T *q,
                                        Py_ssize_t qs, FX_W qa, FX_W qb, FX_T *g,
                                        Py_ssize_t gs, const int has_g, const int coef,
                                        const int has_w, const int has_q, const int normal,
                                        FX_W m, double *sums)
{
    double tot = 0.0, totk = 0.0, tota = 0.0, totd = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W acc = 0, cnt = 0, sa = 0, sd = 0;
        FX_PREFETCH_NEXT(x, s, n, j0);
        if (has_q) FX_PREFETCH_NEXT(q, qs, n, j0);
        FX_SIMD_REDUCE(+:acc,cnt,sa,sd)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, s);
            int eq = v == m;
            FX_W e;
            if (normal) {
                FX_W e1 = FX_EXP_NORMAL(v - m);   /* exactly 1 at the max */
                e = eq ? (FX_W)0 : e1;
                if (has_g) g[j * gs] = FX_STORE(e1);
            } else {
                e = FX_EXP(eq ? (FX_W)-INFINITY : v - m);
                if (has_g) g[j * gs] = FX_STORE(eq ? (FX_W)1 : e);
            }
            acc += e;
            cnt += eq ? (FX_W)1 : (FX_W)0;
            if (coef) {
                FX_W a = FX_XENT_COEF(j);
                /* m - x is +inf at a -inf logit; a zero coefficient there
                 * contributes its limit, 0 (PyTorch: 0 * inf = NaN).  At
                 * the block max d is 0 and the whole term is in the
                 * (lse - m_b) A_b part, also for an infinite coefficient.
                 * So a * d = NaN (only those two products: NaN data reach
                 * the loss through lse and A_b) adds 0 */
                /* float32 halved: m - x of finite float32 logits may
                 * overflow (3e38 - -3e38) where the loss, formed in double,
                 * is finite; float64 as the float64 reference */
                FX_W d = v == -INFINITY ? (FX_W)INFINITY
                       : m * (FX_W)FX_XENT_HALF - v * (FX_W)FX_XENT_HALF;
                sa += a;
                FX_W ad = a * d;
                sd += ad == ad ? ad : (FX_W)0;
            }
        }
        tot += (double)acc;
        totk += (double)cnt;
        tota += (double)sa;
        totd += (double)sd;
    }
    sums[0] = tot;
    sums[1] = totk;
    sums[2] = tota;
    sums[3] = totd;
}

FX_INLINE void FX_NAME(xent_block)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                   const FX_T *w, Py_ssize_t ws, const FX_T *q, Py_ssize_t qs,
                                   FX_W qa, FX_W qb, FX_T *g, Py_ssize_t gs,
                                   const int has_g, const int coef, const int has_w,
                                   const int has_q, fx_lse_state *st,
                                   double *bm, double *ba, double *bd)
{
    FX_W lo;
    FX_W m = FX_NAME(minmax_body)(x, n, s, &lo);
    double sums[4];
    /* false for -inf entries, an inf max or a block of NaN */
    if (lo - m >= (FX_W)FX_EXP_NORMAL_MIN)
        FX_NAME(xent_block_loop)(x, n, s, w, ws, q, qs, qa, qb, g, gs, has_g, coef, has_w,
                                 has_q, 1, m, sums);
    else
        FX_NAME(xent_block_loop)(x, n, s, w, ws, q, qs, qa, qb, g, gs, has_g, coef, has_w,
                                 has_q, 0, m, sums);
    fx_state_merge(st, (double)m, sums[1], sums[0]);
    *bm = (double)m;
    *ba = sums[2];
    *bd = sums[3] / FX_XENT_HALF;   /* the a (m - x) were summed scaled */
}

/* every block of a row, with the flags made constants */
FX_INLINE void FX_NAME(xent_blocks_body)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                         const FX_T *w, Py_ssize_t ws, const FX_T *q,
                                         Py_ssize_t qs, FX_W qa, FX_W qb, FX_T *g, Py_ssize_t gs,
                                         const int has_g, const int coef, const int has_w,
                                         const int has_q, fx_lse_state *st, double *bm,
                                         double *ba, double *bd)
{
    for (Py_ssize_t b = 0, j = 0; j < n; b++, j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        FX_NAME(xent_block)(x + j * s, len, s, w + j * ws, ws, q + j * qs, qs, qa, qb,
                            g + j * gs, gs, has_g, coef, has_w, has_q, st, bm + b, ba + b, bd + b);
    }
}

/* U: every input present has unit stride (the `contig` case), so the
 * strides are the constant 1 and the loop gets plain vector loads; otherwise
 * each input keeps its own stride.  The gradient always has unit stride. */
#define FX_XENT_BLOCKS(U, HG, HC, HW, HQ) \
    FX_NAME(xent_blocks_body)(x, n, U ? 1 : s, w, U && HW ? 1 : ws, q, U && HQ ? 1 : qs, \
                              qa, qb, g, HG ? 1 : 0, HG, HC, HW, HQ, st, bm, ba, bd)

/* the blocks of a row with a unit-stride gradient (or none): the one
 * compiled copy of the loops that every gradient layout goes through */
static FX_NOINLINE void FX_NAME(xent_blocks_unit)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                                 const FX_T *w, Py_ssize_t ws,
                                                 const FX_T *q, Py_ssize_t qs,
                                                 FX_W qa, FX_W qb, int coef, FX_T *g,
                                                 fx_lse_state *st, double *bm, double *ba,
                                                 double *bd)
{
    int has_g = g != NULL, has_w = w != NULL, has_q = q != NULL;
    /* the inputs' strides alone choose the loop */
    int contig = s == 1 && (!has_w || ws == 1) && (!has_q || qs == 1);
    /* absent arrays point at a real place with stride 0 (never read): no
     * arithmetic on NULL */
    FX_T dummy;
    if (!has_w) { w = x; ws = 0; }
    if (!has_q) { q = x; qs = 0; }
    if (!has_g) g = &dummy;
    int key = has_g + 2 * (coef ? 1 + has_w + 2 * has_q : 0);
#define FX_XENT_CASES(U) \
    switch (key) { \
    case 0: FX_XENT_BLOCKS(U, 0, 0, 0, 0); break; \
    case 1: FX_XENT_BLOCKS(U, 1, 0, 0, 0); break; \
    case 2: FX_XENT_BLOCKS(U, 0, 1, 0, 0); break; \
    case 3: FX_XENT_BLOCKS(U, 1, 1, 0, 0); break; \
    case 4: FX_XENT_BLOCKS(U, 0, 1, 1, 0); break; \
    case 5: FX_XENT_BLOCKS(U, 1, 1, 1, 0); break; \
    case 6: FX_XENT_BLOCKS(U, 0, 1, 0, 1); break; \
    case 7: FX_XENT_BLOCKS(U, 1, 1, 0, 1); break; \
    case 8: FX_XENT_BLOCKS(U, 0, 1, 1, 1); break; \
    default: FX_XENT_BLOCKS(U, 1, 1, 1, 1); break; \
    }
    if (contig) { FX_XENT_CASES(1) } else { FX_XENT_CASES(0) }
#undef FX_XENT_CASES
}

static void FX_NAME(xent_blocks)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                 const FX_T *w, Py_ssize_t ws, const FX_T *q, Py_ssize_t qs,
                                 FX_W qa, FX_W qb, int coef, FX_T *g, Py_ssize_t gs,
                                 fx_lse_state *st, double *bm, double *ba, double *bd,
                                 float *keep)
{
    (void)keep;
#ifdef FX_VIA_F32
    if (g == NULL && q == NULL && s == 1 && (w == NULL || !coef)) {
        /* the loss from class labels, float16 through float32's blocks
         * (fx_halves_to_floats), a block at a time as below: the loop reads
         * no weights (without smoothing a class weight enters only the
         * label's term).  keep (n floats, NULL: none; only without
         * smoothing): the blocks are converted there and float32's loop
         * leaves their exps in place, for xent_grad_kept */
        float buf[FX_FLUSH];
        for (Py_ssize_t b = 0, j = 0; j < n; b++, j += FX_FLUSH) {
            Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
            float *fb = keep != NULL ? keep + j : buf;
            fx_halves_to_floats(x + j, len, fb);
            fx_f32_xent_blocks_unit(fb, len, 1, NULL, 0, NULL, 0, qa, qb, coef,
                                    keep != NULL ? fb : NULL, st, bm + b, ba + b, bd + b);
        }
        return;
    }
#endif
    if (g == NULL || gs == 1) {
        FX_NAME(xent_blocks_unit)(x, n, s, w, ws, q, qs, qa, qb, coef, g, st, bm, ba, bd);
        return;
    }
    /* a gradient of another stride: the exps go through a unit-stride
     * buffer, a block at a time, so that the sums run in the very loop (and
     * order) of a contiguous gradient -- a loss must not depend on the
     * layout of its gradient -- and are copied out */
    FX_T gb[FX_FLUSH];
    for (Py_ssize_t b = 0, j = 0; j < n; b++, j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        FX_NAME(xent_blocks_unit)(x + j * s, len, s, w ? w + j * ws : NULL, ws,
                                  q ? q + j * qs : NULL, qs, qa, qb, coef, gb, st,
                                  bm + b, ba + b, bd + b);
        for (Py_ssize_t i = 0; i < len; i++) g[(j + i) * gs] = gb[i];
    }
}
#undef FX_XENT_BLOCKS

/* g = g * f - a_c * gscale over one block, in double: for float32 the
 * coefficients may overflow float32 where the gradient does not (w q = 3e48
 * against p = 1), and p f - a cancels where p is near 1 (float32 would
 * leave 0 for the -(1 - p) a of 1e22 that a float16 gradient rounds to
 * -inf) */
FX_INLINE void FX_NAME(xent_grad_body)(FX_T *g, Py_ssize_t n, Py_ssize_t gs, double f,
                                       const FX_T *w, Py_ssize_t ws, const FX_T *q,
                                       Py_ssize_t qs, double qa, double qb, double gscale,
                                       const int has_w, const int has_q)
{
    for (Py_ssize_t j = 0; j < n; j++)
        g[j * gs] = FX_STORE((FX_W)((double)FX_LOAD(g[j * gs]) * f
                                    - FX_XENT_COEF_D(j) * gscale));
}

static void FX_NAME(xent_grad_block)(FX_T *g, Py_ssize_t n, Py_ssize_t gs, double f,
                                     const FX_T *w, Py_ssize_t ws, const FX_T *q,
                                     Py_ssize_t qs, double qa, double qb, double gscale)
{
    int contig = gs == 1 && (!w || ws == 1) && (!q || qs == 1);
    if (contig) {
        if (w && q) FX_NAME(xent_grad_body)(g, n, 1, f, w, 1, q, 1, qa, qb, gscale, 1, 1);
        else if (w) FX_NAME(xent_grad_body)(g, n, 1, f, w, 1, q, 1, qa, qb, gscale, 1, 0);
        else if (q) FX_NAME(xent_grad_body)(g, n, 1, f, w, 1, q, 1, qa, qb, gscale, 0, 1);
        else FX_NAME(xent_grad_body)(g, n, 1, f, w, 1, q, 1, qa, qb, gscale, 0, 0);
    } else {
        FX_NAME(xent_grad_body)(g, n, gs, f, w, ws, q, qs, qa, qb, gscale, w != NULL, q != NULL);
    }
}

/* float16: g = W exp((x - m) - off) - a_c gscale - [c == y] bwg, with
 * off = lse - m, computed in float32 and rounded once (the unnormalized exps
 * would underflow in a float16 buffer); x - lse rounded next to a large m
 * would lose off.  Reads x_c before writing g_c: g may be x. */
static void FX_NAME(xent_grad_exp)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, double m,
                                   double off, double W, const FX_T *w, Py_ssize_t ws, const FX_T *q,
                                   Py_ssize_t qs, FX_W qa, FX_W qb, int coef, double gscale,
                                   Py_ssize_t y, double bwg, FX_T *g, Py_ssize_t gs)
{
    int has_w = w != NULL, has_q = q != NULL;
    FX_W Wf = (FX_W)W, mf = (FX_W)m, of = (FX_W)off, gsf = (FX_W)gscale;
    if (!coef && s == 1 && gs == 1) {
        /* labels without smoothing, contiguous rows: a loop GCC
         * vectorizes (the general one below, with its optional loads, it
         * leaves scalar: a float16 gradient ran 7x slower than float32's).
         * a = 0 subtracts nothing, so v is W e, less bwg at the label */
        int has_y = y >= 0 && y < n;
        /* the label's term from x_y before the loop overwrites it (g may be x) */
        FX_W gy = has_y ? Wf * FX_EXP((FX_LOAD(x[y]) - mf) - of) - (FX_W)bwg : (FX_W)0;
#ifdef FX_VIA_F32
        /* through float32 blocks (fx_halves_to_floats): the same float32
         * operations without the element-wise conversions, each as costly
         * as the exp */
        float buf[FX_FLUSH];
        for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FLUSH) {
            Py_ssize_t len = n - j0 < FX_FLUSH ? n - j0 : FX_FLUSH;
            fx_halves_to_floats(x + j0, len, buf);
            FX_SIMD
            for (Py_ssize_t j = 0; j < len; j++)
                buf[j] = Wf * FX_EXP((buf[j] - mf) - of);
            fx_floats_to_halves(buf, len, g + j0);
        }
#else
        FX_SIMD
        for (Py_ssize_t j = 0; j < n; j++)
            g[j] = FX_STORE(Wf * FX_EXP((FX_LOAD(x[j]) - mf) - of));
#endif
        if (has_y)
            g[y] = FX_STORE(gy);
        return;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        FX_W a = coef ? FX_XENT_COEF(j) : (FX_W)0;
        FX_W v = Wf * FX_EXP((FX_AT(x, j, s) - mf) - of) - a * gsf - (j == y ? (FX_W)bwg : (FX_W)0);
        g[j * gs] = FX_STORE(v);
    }
}

/* g = p W - a_c gscale over one block for an infinite W = sum(a) gscale,
 * with p = exp(x - m_b) r rounded to the working type first: 0 where it
 * underflows there, and 0 * inf = NaN, as PyTorch (and the reference) form
 * softmax times an infinite sum */
static void FX_NAME(xent_grad_inf)(FX_T *g, Py_ssize_t n, Py_ssize_t gs, double r, double W,
                                   const FX_T *w, Py_ssize_t ws, const FX_T *q, Py_ssize_t qs,
                                   double qa, double qb, double gscale, int coef,
                                   const FX_T *x, Py_ssize_t s, double m, double off)
{
    int has_w = w != NULL, has_q = q != NULL;
    for (Py_ssize_t j = 0; j < n; j++) {
        double e = (double)FX_LOAD(g[j * gs]);
        /* a subnormal exp(x - m_b) times r rounds twice: from x when it is
         * still there (x = NULL: the gradient is written over it) */
        double p = x != NULL && e < (double)FX_TINY
                 ? (double)(FX_W)exp(((double)FX_AT(x, j, s) - m) - off)
                 : (double)(FX_W)(e * r);
        double a = coef ? FX_XENT_COEF_D(j) * gscale : 0.0;
        g[j * gs] = FX_STORE((FX_W)(p * W - a));
    }
}

/* sum_c a_c of a block in double (the float32 sums overflow where a
 * product w q does) */
static double FX_NAME(xent_coef_sum)(Py_ssize_t n, const FX_T *w, Py_ssize_t ws,
                                     const FX_T *q, Py_ssize_t qs, double qa, double qb)
{
    int has_w = w != NULL, has_q = q != NULL;
    double sa = 0.0;
    for (Py_ssize_t j = 0; j < n; j++)
        sa += FX_XENT_COEF_D(j);
    return sa;
}

/* sum_c a_c (m_b - x_c) of a block in double, as xent_block_loop forms it
 * (0 for a NaN product: a zero coefficient at a -inf logit, an infinite
 * one at the block max) */
static double FX_NAME(xent_coef_dist_sum)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, double m,
                                          const FX_T *w, Py_ssize_t ws, const FX_T *q,
                                          Py_ssize_t qs, double qa, double qb)
{
    int has_w = w != NULL, has_q = q != NULL;
    double sd = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        double v = (double)FX_AT(x, j, s);
        double ad = FX_XENT_COEF_D(j) * (v == -INFINITY ? INFINITY : m - v);
        sd += ad == ad ? ad : 0.0;
    }
    return sd;
}

/* (lse - m_b) A_b of a block holding the row max m = m_b whose A_b is
 * infinite, where the log-probability at the max, -(lse - m) = -off, is 0
 * in the working precision (see row_xent): NaN if a class at the max has an
 * infinite or NaN coefficient (PyTorch's 0 * inf), else off times the
 * finite coefficients (the infinite ones below the max are +-inf in the
 * a (m - x) sums).  A gradient written over x holds exp(x - m_b), 1 at the
 * max, instead of x */
static double FX_NAME(xent_max_coef)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W m,
                                     int x_is_exp, const FX_T *w, Py_ssize_t ws,
                                     const FX_T *q, Py_ssize_t qs, double qa, double qb,
                                     double off)
{
    int has_w = w != NULL, has_q = q != NULL;
    double sa = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        double a = FX_XENT_COEF_D(j);
        if (isfinite(a))
            sa += a;
        else if (FX_AT(x, j, s) == (x_is_exp ? (FX_W)1 : m))
            return NAN;
    }
    return off * sa;
}

#ifdef FX_VIA_F32
/* whether a float16 row's gradient is float32's rounded once (xent_grad_kept):
 * class labels without smoothing (a class weight enters only W and the
 * label's term), a contiguous row */
FX_INLINE int FX_NAME(xent_keeps)(const FX_T *g, int coef, Py_ssize_t s)
{
    return g != NULL && !coef && s == 1;
}

/*
 * The gradient of blocks [j0, j1) of such a row (finite W = bw gscale here,
 * the other cases take xent_grad_exp): float32's, e f_b with e = exp(x -
 * m_b) as xent_block_loop stores it and f_b = W exp((m_b - m) - off), less
 * bw gscale at the label, then rounded once to float16.  The exps come from
 * buf, where xent_chunks kept the row's (one exp per element for the loss
 * and the gradient; the row stays in L2 between the passes), or, without
 * buf (the split path), are formed again a block at a time by the same
 * float32 loop: the same bits either way.  Reads a block of x before
 * writing its gradient (g may be x).
 */
static void FX_NAME(xent_grad_kept)(const FX_T *x, Py_ssize_t y, double m, double off,
                                    double W, double bwg, FX_T *g, Py_ssize_t gs,
                                    const double *bm, const float *buf, Py_ssize_t j0,
                                    Py_ssize_t j1)
{
    float eb[FX_FLUSH];
    FX_T hb[FX_FLUSH];
    for (Py_ssize_t j = j0, b = j0 / FX_FLUSH; j < j1; j += FX_FLUSH, b++) {
        Py_ssize_t len = j1 - j < FX_FLUSH ? j1 - j : FX_FLUSH;
        const float *e = eb;
        if (buf != NULL) {
            e = buf + j;
        } else {
            fx_lse_state st = FX_STATE_INIT;
            double dm, da, dd;
            FX_NAME(xent_blocks)(x + j, len, 1, NULL, 0, NULL, 0, 1.0f, 0.0f, 0, NULL, 0, &st,
                                 &dm, &da, &dd, eb);
        }
        /* (m_b - m) - off, not m_b - lse, as the other dtypes */
        const float f = (float)(W * exp((bm[b] - m) - off));
        FX_SIMD
        for (Py_ssize_t i = 0; i < len; i++) eb[i] = e[i] * f;
        if (y >= j && y < j + len) eb[y - j] = eb[y - j] - (float)bwg;
        if (gs == 1) {
            fx_floats_to_halves(eb, len, g + j);
        } else {
            fx_floats_to_halves(eb, len, hb);
            for (Py_ssize_t i = 0; i < len; i++) g[(j + i) * gs] = hb[i];
        }
    }
}
#endif

/*
 * Loss of one row.  Class-index target: y in [0, n), or y < 0 for an ignored
 * row (loss 0, gradient 0), q = NULL.  Probability target: q the target row
 * (stride qs), y < 0.  bscratch: FX_XENT_SCRATCH(n) doubles; g may be NULL
 * (no gradient).
 *
 * The row runs in three steps, so that the FX_CHUNK-element chunks of a
 * long row can be shared among threads (src/losses.pxi) with the bits of
 * this single-thread row: xent_chunks (each chunk's blocks from a fresh
 * state: the block sums to bscratch, the chunk's (m, k, s) to cst, the exps
 * into g), xent_finish (the chunk states merged in order, the loss, what
 * the gradient needs) and xent_grad_chunks (each chunk's gradient).
 */
static void FX_NAME(xent_chunks)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, const FX_T *q,
                                 Py_ssize_t qs, const FX_T *w, Py_ssize_t ws, double eps,
                                 FX_T *g, Py_ssize_t gs, Py_ssize_t c0, Py_ssize_t c1,
                                 double *bscratch, double *cst, float *buf)
{
    /* a_c = w_c (qa q_c + qb) */
    FX_W qa = (FX_W)(1.0 - eps), qb = (FX_W)(eps / (double)n);
    int coef = q != NULL || eps > 0;
    Py_ssize_t nb = FX_XENT_NB(n);
    double *bm = bscratch, *ba = bscratch + nb, *bd = bscratch + 2 * nb;
    (void)buf;
    for (Py_ssize_t c = c0; c < c1; c++) {
        Py_ssize_t j = c * FX_CHUNK, len = n - j < FX_CHUNK ? n - j : FX_CHUNK, b = j / FX_FLUSH;
        fx_lse_state st = FX_STATE_INIT;
        /* float16 keeps no exps in the gradient but, where it can, in buf
         * (float32's loop with a gradient: the same sums; see
         * xent_grad_kept) */
        float *keep = NULL;
#ifdef FX_VIA_F32
        if (buf != NULL && FX_NAME(xent_keeps)(g, coef, s)) keep = buf + j;
#endif
        FX_NAME(xent_blocks)(x + j * s, len, s, w ? w + j * ws : NULL, ws,
                             q ? q + j * qs : NULL, qs, qa, qb, coef,
                             (FX_STORES_EXP && g) ? g + j * gs : NULL, gs, &st,
                             bm + b, ba + b, bd + b, keep);
        cst[3 * c] = st.m;
        cst[3 * c + 1] = st.k;
        cst[3 * c + 2] = st.s;
    }
}

/* the loss of a row whose chunks are done (xy: x at the label, read before
 * the chunks, as g may be x); r: what its gradient needs */
static double FX_NAME(xent_finish)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, Py_ssize_t y,
                                   double xy, const FX_T *q, Py_ssize_t qs, const FX_T *w,
                                   Py_ssize_t ws, double eps, const FX_T *g, double *bscratch,
                                   const double *cst, fx_xent_row *r)
{
    int coef = q != NULL || eps > 0;
    Py_ssize_t nb = FX_XENT_NB(n), nch = FX_XENT_NCH(n);
    double *bm = bscratch, *ba = bscratch + nb, *bd = bscratch + 2 * nb;
    fx_lse_state st = FX_STATE_INIT;
    for (Py_ssize_t c = 0; c < nch; c++)
        fx_state_merge(&st, cst[3 * c], cst[3 * c + 1], cst[3 * c + 2]);
    double sg;
    double lse = fx_lse_finish(st.m, st.k, st.s, 0, &sg);
    /* not finite only for a row with a NaN, a +inf or only -inf, where
     * PyTorch's log_softmax -- and so the loss -- is NaN */
    if (!isfinite(lse)) lse = NAN;
    /* lse - m, kept apart so that lse - x = (m - x) + off keeps the digits
     * of a loss near zero (x the max) */
    double off = isnan(lse) ? NAN : (st.k == 1.0 ? 0.0 : log(st.k)) + log1p(st.s / st.k);
    /* float32 coefficients w q that overflow float32 but not double, and
     * float32 sums of a (m - x) / 2 that overflow (a row loss beyond 6.8e38,
     * whose 'mean' may be in range): those block sums again in double.  Not
     * the latter under a gradient written over x, which holds the exps by
     * now */
    if (coef && sizeof(FX_W) == sizeof(float)) {
        int gone = g != NULL && (const void *)g == (const void *)x && FX_STORES_EXP;
        for (Py_ssize_t b = 0; b < nb; b++) {
            Py_ssize_t j = b * FX_FLUSH, len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
            if (!isfinite(ba[b]))
                ba[b] = FX_NAME(xent_coef_sum)(len, w ? w + j * ws : NULL, ws,
                                              q ? q + j * qs : NULL, qs, 1.0 - eps,
                                              eps / (double)n);
            if (!isfinite(bd[b]) && !gone)
                bd[b] = FX_NAME(xent_coef_dist_sum)(x + j * s, len, s, bm[b],
                                                   w ? w + j * ws : NULL, ws,
                                                   q ? q + j * qs : NULL, qs, 1.0 - eps,
                                                   eps / (double)n);
        }
    }
    /* PyTorch's log-probability at a single max, -log(1 + s), is 0 where
     * 1 + s rounds to 1 in its precision (float32 for float16 and float32
     * data): an infinite coefficient there is 0 * inf = NaN, elsewhere
     * +-inf (x = [-17, 0], q = [0.5, inf]: NaN for float32, +inf for
     * float64) */
    int off_zero = st.k == 1.0 && (FX_W)(1.0 + st.s) == (FX_W)1;
    double bw = 0.0, loss = 0.0, asum = 0.0;
    if (!q) {
        bw = (1.0 - eps) * (w ? (double)FX_AT(w, y, ws) : 1.0);
        double d = (st.m - xy) + off;   /* +inf at a -inf target, NaN for a NaN row */
        /* an infinite weight at a single max whose log-probability is 0 in
         * the working precision: PyTorch's 0 * inf */
        if (isinf(bw) && off_zero && xy == st.m) d = 0.0;
        loss = bw == 0 && !isnan(d) ? 0.0 : bw * d;   /* 0 * inf: the limit, 0 */
    }
    if (coef) {
        double sa = 0.0;
        for (Py_ssize_t b = 0; b < nb; b++) {
            /* a block of -inf logits with zero coefficients: limit 0 */
            double fb = (st.m - bm[b]) + off;
            double tb = ba[b] == 0 && !isnan(lse) ? 0.0 : fb * ba[b];
            /* the row max's block with an infinite A_b, where the
             * log-probability at the max is 0 in the working precision:
             * the infinite coefficients below the block max are +inf in
             * bd; 0 * inf is PyTorch's NaN only for one at the max (C = 1:
             * x = [0.5], q = [inf]) */
            if (off_zero && bm[b] == st.m && isinf(ba[b]) && !isnan(lse)) {
                Py_ssize_t j = b * FX_FLUSH, len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
                int gone = g != NULL && (const void *)g == (const void *)x;
                tb = FX_NAME(xent_max_coef)(x + j * s, len, s, (FX_W)bm[b], gone && FX_STORES_EXP,
                                            w ? w + j * ws : NULL, ws, q ? q + j * qs : NULL, qs,
                                            1.0 - eps, eps / (double)n, off);
            }
            sa += tb + bd[b];
            asum += ba[b];
        }
        loss += sa;
    }
    r->m = st.m;
    r->lse = lse;
    r->off = off;
    r->bw = bw;
    r->asum = asum;
    return loss;
}

/* the gradient of chunks [c0, c1) of a row (see row_xent), r from
 * xent_finish */
static void FX_NAME(xent_grad_chunks)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, Py_ssize_t y,
                                      const FX_T *q, Py_ssize_t qs, const FX_T *w, Py_ssize_t ws,
                                      double eps, FX_T *g, Py_ssize_t gs, double gscale,
                                      const double *bscratch, const fx_xent_row *r,
                                      Py_ssize_t c0, Py_ssize_t c1, const float *buf)
{
    FX_W qa = (FX_W)(1.0 - eps), qb = (FX_W)(eps / (double)n);
    int coef = q != NULL || eps > 0;
    const double *bm = bscratch;
    const double lse = r->lse, off = r->off, bw = r->bw, asum = r->asum, m = r->m;
    Py_ssize_t j0 = c0 * FX_CHUNK, j1 = c1 * FX_CHUNK < n ? c1 * FX_CHUNK : n;
    (void)buf;
    if (!isfinite(lse)) {
        FX_NAME(fill)(g + j0 * gs, j1 - j0, gs, NAN);   /* softmax of the row is NaN */
#ifdef FX_VIA_F32
    } else if (FX_NAME(xent_keeps)(g, coef, s) && isfinite((asum + bw) * gscale)) {
        FX_NAME(xent_grad_kept)(x, y, m, off, (asum + bw) * gscale, bw * gscale, g, gs, bm, buf,
                                j0, j1);
#endif
    } else if (!FX_STORES_EXP) {
        FX_NAME(xent_grad_exp)(x + j0 * s, j1 - j0, s, m, off, (asum + bw) * gscale,
                               w ? w + j0 * ws : NULL, ws, q ? q + j0 * qs : NULL, qs, qa, qb,
                               coef, gscale, q ? -1 : y - j0, bw * gscale, g + j0 * gs, gs);
    } else {
        double W = (asum + bw) * gscale;
        for (Py_ssize_t b = j0 / FX_FLUSH, j = j0; j < j1; b++, j += FX_FLUSH) {
            Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
            /* (m_b - m) - off, not m_b - lse: lse rounded next to a
             * large m loses off */
            double f = W * exp((bm[b] - m) - off);
            if (isinf(W))
                FX_NAME(xent_grad_inf)(g + j * gs, len, gs, exp((bm[b] - m) - off), W,
                                       w ? w + j * ws : NULL, ws, q ? q + j * qs : NULL, qs,
                                       1.0 - eps, eps / (double)n, gscale, coef,
                                       (const void *)g == (const void *)x ? NULL : x + j * s,
                                       s, m, off);
            else if (!coef)
                FX_NAME(scale)(g + j * gs, len, gs, (FX_W)f);
            else
                FX_NAME(xent_grad_block)(g + j * gs, len, gs, f, w ? w + j * ws : NULL, ws,
                                         q ? q + j * qs : NULL, qs, 1.0 - eps,
                                         eps / (double)n, gscale);
        }
        if (!q && y >= j0 && y < j1)
            g[y * gs] = FX_STORE(FX_LOAD(g[y * gs]) - (FX_W)(bw * gscale));
    }
}

static double FX_NAME(row_xent)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, Py_ssize_t y,
                                const FX_T *q, Py_ssize_t qs,
                                const FX_T *w, Py_ssize_t ws, double eps,
                                FX_T *g, Py_ssize_t gs, double gscale, double *bscratch,
                                float *buf)
{
    if (y < 0 && !q) {
        /* an ignored row: no loss, gradient 0 (PyTorch's autograd gives NaN
         * where the row's log_softmax is NaN: 0 * NaN) */
        if (g) FX_NAME(fill)(g, n, gs, 0);
        return 0.0;
    }
    /* read before the pass: g may be x itself (the caller's choice) */
    double xy = q ? 0.0 : (double)FX_AT(x, y, s);
    Py_ssize_t nch = FX_XENT_NCH(n);
    /* a row of one chunk keeps its state here (bscratch has room for the
     * states of longer rows only) */
    double one[3];
    double *cst = nch > 1 ? bscratch + 3 * FX_XENT_NB(n) : one;
    fx_xent_row r;
    FX_NAME(xent_chunks)(x, n, s, q, qs, w, ws, eps, g, gs, 0, nch, bscratch, cst, buf);
    double loss = FX_NAME(xent_finish)(x, n, s, y, xy, q, qs, w, ws, eps, g, bscratch, cst, &r);
    if (g)
        FX_NAME(xent_grad_chunks)(x, n, s, y, q, qs, w, ws, eps, g, gs, gscale, bscratch, &r, 0,
                                  nch, buf);
    return loss;
}

#undef FX_XENT_COEF
#undef FX_XENT_COEF_D
#undef FX_XENT_HALF
#undef FX_AT

/* ---- short rows: class-index cross-entropy of nrows rows of C <= FX_SMALL_C
 * contiguous logits, FX_BLOCK_W rows side by side as in small_lse (the
 * gradient at row stride grs, class stride gcs).  Per-row
 * losses go to loss[0..nrows) (double); special rows (inf, NaN, all -inf)
 * are redone by row_xent.  scratch: as small_lse's, of which it uses the
 * first (3 + C) * FX_BLOCK_W working-type elements; bscratch: 3 doubles
 * (row_xent's, one block). */
static void FX_NAME(small_xent)(const FX_T *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs,
                                const int64_t *lab, Py_ssize_t ls, int64_t ignore_index,
                                const FX_T *w, Py_ssize_t ws, double eps,
                                FX_T *g, Py_ssize_t grs, Py_ssize_t gcs, double gscale,
                                FX_W *scratch, double *bscratch, double *loss)
{
    FX_W *mx = scratch, *s = mx + FX_BLOCK_W, *k = s + FX_BLOCK_W, *T = k + FX_BLOCK_W;
    double off[FX_BLOCK_W];
    double qb = eps / (double)C;
    /* gradient terms: per row wp (the factor of exp(x - max)), bw gscale
     * and the label; per class a gscale; rows written by row_xent skipped */
    double wp[FX_BLOCK_W], bwg[FX_BLOCK_W], ag[FX_SMALL_C];
    int64_t yl[FX_BLOCK_W];
    unsigned char skip[FX_BLOCK_W];
    int agz = 1;   /* every ag[c] 0: no smoothing terms in the gradient */
    for (Py_ssize_t c = 0; c < C && c < FX_SMALL_C; c++) {
        ag[c] = (eps > 0 ? qb * (w ? (double)FX_LOAD(w[c * ws]) : 1.0) : 0.0) * gscale;
        agz &= ag[c] == 0 && !signbit(ag[c]);   /* x - (-0) is not x at -0 */
    }
    for (int i = 0; i < FX_BLOCK_W; i++) { wp[i] = 0; bwg[i] = 0; yl[i] = -1; }
    for (Py_ssize_t r0 = 0; r0 < nrows; r0 += FX_BLOCK_W) {
        Py_ssize_t W = nrows - r0 < FX_BLOCK_W ? nrows - r0 : FX_BLOCK_W;
        const FX_T *xb = x + r0 * rs;
        /* with a gradient T keeps exp(x - max), 1 at the max */
        if (g) {
            FX_NAME(block_in_exp)(xb, C, rs, W, T, mx, s, k);
        } else {
            FX_NAME(block_in)(xb, C, rs, W, T, mx, s, k);
        }
        /* lse - max; log k only where the max is tied (rare) */
        int ones = 1, exact = 1;
        /* a float sum s >= 2^-29 (or 0) has 1 + s exact in double, where
         * fx_log1p_ge0's factor u / ((1 + u) - 1) is exactly 1: its log
         * alone gives the same bits, without the division */
        for (int i = 0; i < FX_BLOCK_W; i++) {
            ones &= k[i] == 1;
            exact &= (s[i] >= (FX_W)0x1p-29) | (s[i] == 0);
        }
        exact &= sizeof(FX_W) == sizeof(float);
        if (ones && exact)
            for (int i = 0; i < FX_BLOCK_W; i++) off[i] = fx_log_ge1(1.0 + (double)s[i]);
        else if (ones)
            for (int i = 0; i < FX_BLOCK_W; i++) off[i] = fx_log1p_ge0((double)s[i]);
        else
            for (int i = 0; i < FX_BLOCK_W; i++) {
                double kk = (double)k[i];
                off[i] = fx_log_ge1(kk) + fx_log1p_ge0((double)s[i] / kk);
            }
        int redo = 1;
        if (eps == 0) {
            /* the usual call (no label smoothing), vectorized: the loss and
             * gradient terms of every row as the loop below computes them;
             * a block with an ignored or special row is redone by that loop */
            double xy[FX_BLOCK_W], bw[FX_BLOCK_W];
            redo = 0;
#if defined(FX_SHORT_X8)
            if (ls == 1) {
                redo = fx_label_logits(xb, rs, lab + r0, W, ignore_index, xy, yl);
                for (Py_ssize_t i = 0; i < W; i++)
                    bw[i] = w ? (double)w[(yl[i] == ignore_index ? 0 : yl[i]) * ws] : 1.0;
            } else
#endif
            for (Py_ssize_t i = 0; i < W; i++) {
                int64_t y = lab[(r0 + i) * ls];
                Py_ssize_t yy = y == ignore_index ? 0 : (Py_ssize_t)y;
                xy[i] = (double)FX_LOAD(xb[i * rs + yy]);
                bw[i] = w ? (double)FX_LOAD(w[yy * ws]) : 1.0;
                yl[i] = y;
                redo |= y == ignore_index;
            }
            for (Py_ssize_t i = 0; i < W; i++) {
                double m = (double)mx[i], o = off[i];
                double d = (m - xy[i]) + o;
                loss[r0 + i] = (bw[i] == 0) & !isnan(d) ? 0.0 : bw[i] * d;
                redo |= !(m - m == 0) | !(o - o == 0) | !(bw[i] - bw[i] == 0);
            }
            if (g)
                for (Py_ssize_t i = 0; i < W; i++) {
                    wp[i] = (0.0 + bw[i]) * gscale / ((double)k[i] + (double)s[i]);
                    bwg[i] = bw[i] * gscale;
                    skip[i] = 0;
                }
        }
        for (Py_ssize_t i = 0; redo && i < W; i++) {
            const FX_T *xr = xb + i * rs;
            FX_T *gr = g ? g + (r0 + i) * grs : NULL;
            int64_t y = lab[(r0 + i) * ls];
            /* a row whose gradient is written here is skipped below */
            skip[i] = 1;
            if (y == ignore_index) {
                loss[r0 + i] = 0.0;
                if (gr) for (Py_ssize_t c = 0; c < C; c++) gr[c * gcs] = FX_STORE((FX_W)0);
                continue;
            }
            double m = (double)mx[i], o = off[i];
            if (!isfinite(m) || !isfinite(o)) {   /* PyTorch's NaN rows */
                loss[r0 + i] = FX_NAME(row_xent)(xr, C, 1, (Py_ssize_t)y, NULL, 0, w, ws, eps,
                                                 gr, gcs, gscale, bscratch, NULL);
                continue;
            }
            double bw = (1.0 - eps) * (w ? (double)FX_LOAD(w[y * ws]) : 1.0);
            double d = (m - (double)FX_LOAD(xr[y])) + o;
            /* as row_xent: an infinite weight where the log-probability at
             * a single max is 0 in the working precision */
            if (isinf(bw) && k[i] == 1 && (FX_W)(1.0 + (double)s[i]) == (FX_W)1
                && (double)FX_LOAD(xr[y]) == m)
                d = 0.0;
            double l = bw == 0 && !isnan(d) ? 0.0 : bw * d;
            double asum = 0.0;
            if (eps > 0) {
                double sa = 0.0;
                /* the log-probability at a single max is 0 where 1 + s
                 * rounds to 1 in the working precision (see row_xent) */
                int oz = k[i] == 1 && (FX_W)(1.0 + (double)s[i]) == (FX_W)1;
                for (Py_ssize_t c = 0; c < C; c++) {
                    double a = qb * (w ? (double)FX_LOAD(w[c * ws]) : 1.0);
                    double v = (double)FX_LOAD(xr[c]);
                    double dc = v == -INFINITY ? INFINITY : oz && v == m ? 0.0 : (m - v) + o;
                    asum += a;
                    sa += a == 0 ? 0.0 : a * dc;
                }
                l += sa;
            }
            if (gr && isinf((asum + bw) * gscale)) {
                /* an infinite factor of p: row_xent rounds p first, so that
                 * one that underflows gives PyTorch's 0 * inf = NaN */
                loss[r0 + i] = FX_NAME(row_xent)(xr, C, 1, (Py_ssize_t)y, NULL, 0, w, ws, eps,
                                                 gr, gcs, gscale, bscratch, NULL);
                continue;
            }
            loss[r0 + i] = l;
            if (gr) {
                /* p = exp(x - max) / (k + s); g = (asum + bw) p - a - bw [c == y] */
                wp[i] = (asum + bw) * gscale / ((double)k[i] + (double)s[i]);
                bwg[i] = bw * gscale;
                yl[i] = y;
                skip[i] = 0;
            }
        }
        if (g && agz) {
            /* no smoothing: g = wp exp(x - max) but at the label, which is
             * formed first and put back after the loop (the same bits as
             * the loop below, whose ag[c] and other classes' terms are 0;
             * lanes of skipped rows or past W are never written out) */
            FX_W lv[FX_BLOCK_W];
            Py_ssize_t li[FX_BLOCK_W];
            for (int i = 0; i < FX_BLOCK_W; i++) {
                li[i] = yl[i] >= 0 && yl[i] < C ? (Py_ssize_t)yl[i] * FX_BLOCK_W + i : i;
                lv[i] = (FX_W)(wp[i] * (double)T[li[i]] - bwg[i]);
            }
            for (Py_ssize_t c = 0; c < C; c++)
                for (int i = 0; i < FX_BLOCK_W; i++)
                    T[c * FX_BLOCK_W + i] = (FX_W)(wp[i] * (double)T[c * FX_BLOCK_W + i]);
            for (int i = 0; i < FX_BLOCK_W; i++)
                if (yl[i] >= 0 && yl[i] < C) T[li[i]] = lv[i];
            FX_NAME(tr_out)(T, C, W, g + r0 * grs, grs, gcs, skip);
        } else if (g) {
            /* the gradients of the block's other rows, vectorized across
             * rows in T, then written out as rows */
            for (Py_ssize_t c = 0; c < C; c++)
                for (int i = 0; i < FX_BLOCK_W; i++) {
                    double v = wp[i] * (double)T[c * FX_BLOCK_W + i] - ag[c]
                               - (yl[i] == c ? bwg[i] : 0.0);
                    T[c * FX_BLOCK_W + i] = (FX_W)v;
                }
            FX_NAME(tr_out)(T, C, W, g + r0 * grs, grs, gcs, skip);
        }
    }
}

/* ---- columns: class-index cross-entropy of W positions side by side, the
 * classes strided by sc and the positions contiguous (PyTorch's
 * (N, C, d1, ...) layout), vectorized across positions.  Per-position losses
 * go to loss[0..W).  Special positions (inf, NaN, all -inf) are done first
 * by row_xent, while x is intact (g may be x), and left alone after.
 * scratch: 5 * W doubles; mx: W working-type elements; kind: W bytes;
 * bscratch as row_xent's. */
FX_INLINE void FX_NAME(col_xent_body)(const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                                      const int64_t *lab, Py_ssize_t ls, int64_t ignore_index,
                                      const FX_T *w, Py_ssize_t ws, double eps,
                                      FX_T *g, Py_ssize_t gsc, Py_ssize_t gsi, double gscale,
                                      FX_W *mx, double *scratch, unsigned char *kind,
                                      double *bscratch, double *loss)
{
    enum { LIVE = 0, IGNORED = 1, SPECIAL = 2 };
    double *sum = scratch, *k = scratch + W, *off = scratch + 2 * W;
    double *bw = scratch + 3 * W, *wp = scratch + 4 * W;
    double qb = eps / (double)C;
    /* the smoothing coefficients' sum, the same for every position */
    double asum = 0.0;
    for (Py_ssize_t c = 0; eps > 0 && c < C; c++)
        asum += qb * (w ? (double)FX_LOAD(w[c * ws]) : 1.0);
    /* the gradient keeps its exps in g where the dtype holds them and g is
     * not x (special positions read x after this pass): one exp per element */
    int keep = g != NULL && FX_STORES_EXP && (const void *)g != (const void *)x;
    FX_NAME(col_max)(x, C, sc, W, mx);
    if (keep)
        FX_NAME(col_sumexp_store)(x, C, sc, W, mx, sum, k, g, gsc, gsi);
    else
        FX_NAME(col_sumexp_excl)(x, C, sc, W, mx, sum, k);
    for (Py_ssize_t i = 0; i < W; i++) {
        int64_t y = lab[i * ls];
        off[i] = fx_log_ge1(k[i]) + fx_log1p_ge0(sum[i] / k[i]);   /* lse - max */
        kind[i] = y == ignore_index ? IGNORED
                : !isfinite((double)mx[i]) || !isfinite(off[i]) ? SPECIAL : LIVE;
        bw[i] = 0.0;
        loss[i] = 0.0;
        if (kind[i] == SPECIAL)
            loss[i] = FX_NAME(row_xent)(x + i, C, sc, (Py_ssize_t)y, NULL, 0, w, ws, eps,
                                        g ? g + i * gsi : NULL, gsc, gscale, bscratch, NULL);
        if (kind[i] != LIVE) continue;
        bw[i] = (1.0 - eps) * (w ? (double)FX_LOAD(w[y * ws]) : 1.0);
        if (g && isinf((asum + bw[i]) * gscale)) {
            /* an infinite factor of p: row_xent rounds p first, so that one
             * that underflows gives PyTorch's 0 * inf = NaN; done now, while
             * x is intact */
            kind[i] = SPECIAL;
            bw[i] = 0.0;
            loss[i] = FX_NAME(row_xent)(x + i, C, sc, (Py_ssize_t)y, NULL, 0, w, ws, eps,
                                        g + i * gsi, gsc, gscale, bscratch, NULL);
            continue;
        }
        double d = ((double)mx[i] - (double)FX_LOAD(x[y * sc + i])) + off[i];
        /* as row_xent: an infinite weight where the log-probability at a
         * single max is 0 in the working precision */
        if (isinf(bw[i]) && k[i] == 1 && (FX_W)(1.0 + sum[i]) == (FX_W)1
            && (double)FX_LOAD(x[y * sc + i]) == (double)mx[i])
            d = 0.0;
        loss[i] = bw[i] == 0 && !isnan(d) ? 0.0 : bw[i] * d;
    }
    if (eps > 0) {
        for (Py_ssize_t c = 0; c < C; c++) {
            double a = qb * (w ? (double)FX_LOAD(w[c * ws]) : 1.0);
            const FX_T *p = x + c * sc;
            for (Py_ssize_t i = 0; i < W; i++) {
                double v = (double)FX_LOAD(p[i]);
                /* as small_xent: 0 at a single max where 1 + s rounds to 1 */
                int oz = k[i] == 1 && (FX_W)(1.0 + sum[i]) == (FX_W)1;
                double dc = v == -INFINITY ? INFINITY
                          : oz && v == (double)mx[i] ? 0.0 : ((double)mx[i] - v) + off[i];
                loss[i] += kind[i] == LIVE && a != 0 ? a * dc : 0.0;
            }
        }
    }
    if (!g) return;
    /* g = (asum + bw) p - a - bw [c == y], p = exp(x - max) / (k + s).  The
     * label's element is formed first, in double with its -bw, and stored
     * after the loop: subtracted from the stored p, it would cancel the
     * rounded p (float16: p = 1 - 4.5e-5 stored as 1 gave 0 at the label,
     * not -4.5e-5).  Read before the loop writes g (g may be x); off holds
     * it (its loss is formed by now) */
    double *gy = off;
    for (Py_ssize_t i = 0; i < W; i++) {
        wp[i] = (asum + bw[i]) * gscale / (k[i] + sum[i]);
        if (kind[i] != LIVE) continue;
        Py_ssize_t y = (Py_ssize_t)lab[i * ls];
        double a = eps > 0 ? qb * (w ? (double)FX_LOAD(w[y * ws]) : 1.0) * gscale : 0.0;
        double e = keep ? (double)FX_LOAD(g[y * gsc + i * gsi])
                        : (double)FX_EXP(FX_LOAD(x[y * sc + i]) - mx[i]);
        gy[i] = wp[i] * e - a - bw[i] * gscale;
    }
    for (Py_ssize_t c = 0; c < C; c++) {
        double a = eps > 0 ? qb * (w ? (double)FX_LOAD(w[c * ws]) : 1.0) * gscale : 0.0;
        const FX_T *p = x + c * sc;
        FX_T *q = g + c * gsc;
        if (keep)
            for (Py_ssize_t i = 0; i < W; i++) {
                double v = wp[i] * (double)FX_LOAD(q[i * gsi]) - a;
                q[i * gsi] = kind[i] == SPECIAL ? q[i * gsi]
                           : FX_STORE((FX_W)(kind[i] == LIVE ? v : 0.0));
            }
        else
            for (Py_ssize_t i = 0; i < W; i++) {
                double v = wp[i] * (double)FX_EXP(FX_LOAD(p[i]) - mx[i]) - a;
                q[i * gsi] = kind[i] == SPECIAL ? q[i * gsi]
                           : FX_STORE((FX_W)(kind[i] == LIVE ? v : 0.0));
            }
    }
    for (Py_ssize_t i = 0; i < W; i++)
        if (kind[i] == LIVE)
            g[lab[i * ls] * gsc + i * gsi] = FX_STORE((FX_W)gy[i]);
}

FX_COL_KERNEL(col_xent, (const FX_T *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W,
                         const int64_t *lab, Py_ssize_t ls, int64_t ignore_index,
                         const FX_T *w, Py_ssize_t ws, double eps, FX_T *g, Py_ssize_t gsc,
                         Py_ssize_t gsi, double gscale, FX_W *mx, double *scratch,
                         unsigned char *kind, double *bscratch, double *loss),
              (x, C, sc, W, lab, ls, ignore_index, w, ws, eps, g, gsc, gsi, gscale, mx,
               scratch, kind, bscratch, loss))
