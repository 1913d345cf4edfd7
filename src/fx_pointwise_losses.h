/*
 * fx_pointwise_losses.h -- the element-wise losses, one storage type
 * (included by fx_kernels_for_dtype.h after fx_softmax_family.h, same macros).
 *
 * kl_div and binary_cross_entropy_with_logits are sums of independent
 * per-element terms.  A "segment" is n elements of each operand, each at its
 * own stride (0 for an operand broadcast along it).  A segment function
 * returns the sum of its terms (in double, SIMD partial sums folded every
 * FX_FOLD elements) and, on request, writes each term to `out` and the
 * gradient of the terms times gscale to `g`.  Every term is formed in the
 * working type (float32 for float16/float32 data) and rounded once; the
 * SIMD partial sums hold the terms times 2^-8 (exact but for subnormals), so
 * that FX_FOLD = 256 finite terms never overflow their sum: a mean of float32
 * terms near the top of their range stays finite.
 *
 * Zero times an infinite logarithm is zero: a term whose coefficient is
 * exactly 0 contributes 0 where its logarithm is infinite (the limit of the
 * loss, and 0 log 0 = 0); PyTorch computes 0 * inf = NaN there.  A NaN in
 * the data still gives NaN.
 */

#define FX_AT(p, j, s) FX_LOAD((p)[(Py_ssize_t)(j) * (s)])
#ifndef FX_SUM_SCALE
#define FX_SUM_SCALE 0.00390625   /* 2^-8 = 1 / FX_FOLD */

/* one BCE term in double from x = v, y = t, weight wt, pos_weight pv and
 * l = log1p(exp(-|v|)): w (1 - y) sp(x) + w pw y sp(-x), a zero coefficient
 * contributing 0 against an infinite softplus; an infinite target under a
 * finite x, whose two terms are infinite of opposite signs, gives their
 * limit w (sp(x) + y (pw sp(-x) - sp(x))) (PyTorch's -inf at y = inf,
 * x = 2).  The blocks that the vectorized loops leave go through it. */
static inline double fx_bce_term(double v, double t, double wt, double pv, double l)
{
    double sp_pos = (v > 0 ? v : 0.0) + l, sp_neg = (v < 0 ? -v : 0.0) + l;
    if (isinf(t) && !isinf(v)) return wt * (sp_pos + t * (pv * sp_neg - sp_pos));
    double a = wt * (1.0 - t), b = wt * (pv * t);
    double ta = a == 0 && sp_pos == INFINITY ? 0.0 : a * sp_pos;
    double tb = b == 0 && sp_neg == INFINITY ? 0.0 : b * sp_neg;
    return ta + tb;
}
#endif

/* ---- blocks of strided operands: k rows of L elements (row stride rs,
 * element stride s) as one contiguous block of k L elements.  rows_in reads
 * an operand in place where its rows follow each other (unit stride, row
 * stride L), else gathers it into b (with `again` 0, b still holds it: an
 * operand broadcast along the rows is gathered once); rows_dst is where an
 * output block is written, rows_out copies a buffered one to its place.
 * A strided segment is one row of up to FX_FOLD elements at a time (k = 1):
 * the unit loops then read unit strides, as they need to vectorize. */
FX_INLINE const FX_T *FX_NAME(rows_in)(const FX_T *p, Py_ssize_t rs, Py_ssize_t s,
                                       Py_ssize_t k, Py_ssize_t L, FX_T *b, int again)
{
    if (s == 1 && rs == L) return p;
    if (again)
        for (Py_ssize_t i = 0; i < k; i++)
            for (Py_ssize_t j = 0; j < L; j++) b[i * L + j] = p[i * rs + j * s];
    return b;
}

FX_INLINE void FX_NAME(rows_out)(const FX_T *b, Py_ssize_t k, Py_ssize_t L, FX_T *p,
                                 Py_ssize_t rs, Py_ssize_t s)
{
    if (b != p)
        for (Py_ssize_t i = 0; i < k; i++)
            for (Py_ssize_t j = 0; j < L; j++) p[i * rs + j * s] = b[i * L + j];
}

/* where an output block is written: in place if its rows follow each
 * other (a gradient over x then reaches the segment as x itself, which it
 * handles), else the buffer */
FX_INLINE FX_T *FX_NAME(rows_dst)(FX_T *p, Py_ssize_t rs, Py_ssize_t s, Py_ssize_t L, FX_T *b)
{
    return p == NULL ? NULL : s == 1 && rs == L ? p : b;
}

/* ---- kl_div: p (log p - x) with p = t, or exp(t) (t - x) if log_target ---- */

/* fast: p (log p - x) with the logarithm of a positive normal p (p = 0
 * selected in the term); kl_log_fast raises *bad for any other p
 * (subnormal, negative, inf, NaN), whose block the caller redoes with the
 * general term */
FX_INLINE FX_W FX_NAME(kl_log_fast)(FX_W p, FX_W *bad)
{
    *bad += ((p == 0) | ((p >= (FX_W)FX_TINY) & (p < (FX_W)INFINITY))) ? (FX_W)0 : (FX_W)1;
    return FX_LOG_CORE(p);
}

FX_INLINE FX_W FX_NAME(kl_term_fast)(FX_W x, FX_W p, FX_W logp)
{
    FX_W term = p * (logp - x);
    return p == 0 ? (x == x ? (FX_W)0 : x) : term;
}

FX_INLINE FX_W FX_NAME(kl_term)(FX_W x, FX_W t, const int log_target, FX_W *p_out)
{
    FX_W p, term;
    if (log_target) {
        p = FX_EXP_ANY(t);
        FX_W d = t - x;
        /* t = x: the term is 0 also where exp(t) overflows the working type
         * (t > 88 for float32), as in the reference's float64 */
        term = d == 0 ? (FX_W)0 : p * d;
        /* exp(t) = 0 under a finite x whose float32 t - x may overflow
         * (t = -3e38, x = 3e38): 0, not 0 * inf; an infinite x keeps
         * PyTorch's 0 * inf = NaN.  Tested as the NaN of a finite x and t,
         * not as p == 0: GCC 12 merges that test with the exp's underflow
         * select into one it cannot vectorize, and the loop stayed scalar */
        term = (term != term) & (x - x == 0) & (t == t) ? (FX_W)0 : term;
        /* x = -inf under p > 0 is +inf even where exp(t) underflows */
        term = ((x == -INFINITY) & (t > -INFINITY)) ? (FX_W)INFINITY : term;
        term = t == -INFINITY ? (x == x ? (FX_W)0 : x) : term;
    } else {
        p = t;
        /* log of a negative p is NaN, as PyTorch's xlogy */
        term = p * (FX_LOG(p) - x);
        /* p = +inf: PyTorch's xlogy(p, p) - p x is inf - inf x, NaN unless
         * x < 0 */
        term = p == INFINITY ? (x < 0 ? (FX_W)INFINITY : (FX_W)NAN) : term;
        term = p == 0 ? (x == x ? (FX_W)0 : x) : term;
    }
    *p_out = p;
    return term;
}

FX_INLINE double FX_NAME(kl_div_body)(const FX_T *x, Py_ssize_t xs, const FX_T *t, Py_ssize_t ts,
                                      Py_ssize_t n, const int log_target,
                                      FX_T *out, Py_ssize_t os, FX_T *g, Py_ssize_t gs,
                                      FX_W gscale, const int has_out, const int has_g)
{
    double tot = 0.0;
    FX_W lb[FX_FOLD];
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W acc = 0, bad = 0;
        if (!log_target) {
            /* probabilities are nearly always 0 or normal: the logarithm
             * without its special-value selects, about 1.4x faster.  The
             * block's logarithms first, in a loop of their own: chained
             * with the term and the sum in one loop, each element's chain
             * is too long for the core to overlap enough elements (about
             * 1.4x slower, see docs/design.rst) */
            FX_SIMD_REDUCE(+:bad)
            for (Py_ssize_t j = j0; j < end; j++)
                lb[j - j0] = FX_NAME(kl_log_fast)(FX_AT(t, j, ts), &bad);
            FX_SIMD_REDUCE(+:acc)
            for (Py_ssize_t j = j0; j < end; j++) {
                FX_W p = FX_AT(t, j, ts);
                FX_W term = FX_NAME(kl_term_fast)(FX_AT(x, j, xs), p, lb[j - j0]);
                acc += term * (FX_W)FX_SUM_SCALE;
                if (has_out) out[j * os] = FX_STORE(term);
                if (has_g) g[j * gs] = FX_STORE(-p * gscale);
            }
        }
        FX_W sub = 0;
        if (log_target || bad != 0) {
            acc = 0;
            FX_SIMD_REDUCE(+:acc,sub)
            for (Py_ssize_t j = j0; j < end; j++) {
                FX_W p, tj = FX_AT(t, j, ts);
                FX_W term = FX_NAME(kl_term)(FX_AT(x, j, xs), tj, log_target, &p);
                acc += term * (FX_W)FX_SUM_SCALE;
                /* exp(t) may be below the normal range (a superset of
                 * p < FX_TINY, which the redo tests; not p itself, for
                 * the reason above) */
                sub += (tj < (FX_W)FX_EXP_NORMAL_MIN) & (tj > -INFINITY) ? (FX_W)1 : (FX_W)0;
                if (has_out) out[j * os] = FX_STORE(term);
                if (has_g) g[j * gs] = FX_STORE(-p * gscale);
            }
        }
        if (sizeof(FX_T) == sizeof(float) && log_target && sub != 0) {
            /* float32 exp(t) below the smallest normal number keeps too few
             * bits (or none) of a term that may be normal (t = -104,
             * x = -3e38: 2e-7): those terms in double, as the reference */
            acc = 0;
            for (Py_ssize_t j = j0; j < end; j++) {
                FX_W p, xj = FX_AT(x, j, xs), tj = FX_AT(t, j, ts);
                FX_W term = FX_NAME(kl_term)(xj, tj, log_target, &p);
                if ((p < (FX_W)FX_TINY) & (tj > -INFINITY) & (xj != tj) & (xj > -INFINITY))
                    term = (FX_W)(exp((double)tj) * ((double)tj - (double)xj));
                acc += term * (FX_W)FX_SUM_SCALE;
                if (has_out) out[j * os] = FX_STORE(term);
            }
        }
        tot += (double)acc * (1.0 / FX_SUM_SCALE);
    }
    return tot;
}

/* contiguous operands, every flag a constant in its own loop: a flag or a
 * stride read at run time is control flow or a gather in the loop, which
 * GCC leaves scalar (5-10x slower).  Outputs are written with unit stride
 * here; kl_div_seg routes other strides through buffers. */
static FX_NOINLINE double FX_NAME(kl_div_unit)(const FX_T *x, const FX_T *t, Py_ssize_t n,
                                              int log_target, FX_T *out, FX_T *g, FX_W gsc)
{
#define FX_KL_CASE(lt, ho, hg) \
    case (lt) | (ho) << 1 | (hg) << 2: \
        return FX_NAME(kl_div_body)(x, 1, t, 1, n, lt, out, 1, g, 1, gsc, ho, hg);
    switch ((log_target != 0) | (out != NULL) << 1 | (g != NULL) << 2) {
    FX_KL_CASE(0, 0, 0) FX_KL_CASE(1, 0, 0) FX_KL_CASE(0, 1, 0) FX_KL_CASE(1, 1, 0)
    FX_KL_CASE(0, 0, 1) FX_KL_CASE(1, 0, 1) FX_KL_CASE(0, 1, 1)
    default: FX_KL_CASE(1, 1, 1)
    }
#undef FX_KL_CASE
}

#ifdef FX_VIA_F32
/* the loss alone of two contiguous float16 operands through float32's unit
 * loop on blocks converted by F16C (fx_halves_to_floats); FX_FLUSH is a
 * multiple of FX_FOLD, so the folds are the row's.  f(bx, by, len, flag,
 * gsc): float32's loss of a block (fx_kl_div_loss_f32, fx_bce_loss_f32) */
FX_INLINE double FX_NAME(via_f32_pair_loss)(double (*f)(const float *, const float *,
                                                        Py_ssize_t, int, float),
                                            const FX_T *x, const FX_T *y, Py_ssize_t n,
                                            int flag, FX_W gsc)
{
    float bx[FX_FLUSH], by[FX_FLUSH];
    double tot = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FLUSH) {
        Py_ssize_t len = n - j0 < FX_FLUSH ? n - j0 : FX_FLUSH;
        fx_halves_to_floats(x + j0, len, bx);
        fx_halves_to_floats(y + j0, len, by);
        tot += f(bx, by, len, flag, gsc);
    }
    return tot;
}

static double fx_kl_div_loss_f32(const float *x, const float *t, Py_ssize_t n, int log_target,
                                 float gsc)
{
    return fx_f32_kl_div_unit(x, t, n, log_target, NULL, NULL, gsc);
}

static double fx_bce_loss_f32(const float *x, const float *y, Py_ssize_t n, int unused,
                              float gsc)
{
    (void)unused;
    return fx_f32_bce_unit(x, y, NULL, NULL, n, NULL, NULL, gsc);
}
#endif

static double FX_NAME(kl_div_seg)(const FX_T *x, Py_ssize_t xs, const FX_T *t, Py_ssize_t ts,
                                  Py_ssize_t n, int log_target, FX_T *out, Py_ssize_t os,
                                  FX_T *g, Py_ssize_t gs, double gscale)
{
    FX_W gsc = (FX_W)gscale;
    /* a gradient written over x goes through the buffer too: a block's
     * double-precision redo reads x after its gradient */
    int alias = g != NULL && (const void *)g == (const void *)x;
    if (xs != 1 || ts != 1) {
        /* strided inputs gathered FX_FOLD at a time (the folds of a
         * contiguous segment), so that the unit loops read unit strides;
         * a block of x is read before its gradient is written */
        FX_T bx[FX_FOLD], bt[FX_FOLD];
        double tot = 0.0;
        for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
            Py_ssize_t len = n - j0 < FX_FOLD ? n - j0 : FX_FOLD;
            const FX_T *px = FX_NAME(rows_in)(x + j0 * xs, len, xs, 1, len, bx, 1);
            const FX_T *pt = FX_NAME(rows_in)(t + j0 * ts, len, ts, 1, len, bt,
                                              j0 == 0 || ts != 0);
            tot += FX_NAME(kl_div_seg)(px, 1, pt, 1, len, log_target,
                                       out ? out + j0 * os : NULL, os,
                                       g ? g + j0 * gs : NULL, gs, gscale);
        }
        return tot;
    }
#ifdef FX_VIA_F32
    if (out == NULL && g == NULL)
        /* the loss alone, float16 through float32's loop */
        return FX_NAME(via_f32_pair_loss)(fx_kl_div_loss_f32, x, t, n, log_target, gsc);
#endif
    if ((out == NULL || os == 1) && (g == NULL || gs == 1) && !alias)
        return FX_NAME(kl_div_unit)(x, t, n, log_target, out, g, gsc);
    /* an output of another stride: the terms go through unit-stride
     * buffers, FX_FOLD at a time, so that the sums run in the very loop
     * (and order) of contiguous outputs: a loss must not depend on the
     * layout of its outputs */
    FX_T ob[FX_FOLD], gb[FX_FOLD];
    double tot = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t len = n - j0 < FX_FOLD ? n - j0 : FX_FOLD;
        FX_T *o = out == NULL ? NULL : os == 1 ? out + j0 : ob;
        FX_T *gg = g == NULL ? NULL : gs == 1 && !alias ? g + j0 : gb;
        tot += FX_NAME(kl_div_unit)(x + j0, t + j0, len, log_target, o, gg, gsc);
        if (o == ob) FX_NAME(rows_out)(ob, 1, len, out + j0 * os, len, os);
        if (gg == gb) FX_NAME(rows_out)(gb, 1, len, g + j0 * gs, len, gs);
    }
    return tot;
}

/* ---- binary_cross_entropy_with_logits ----
 * With softplus(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), the
 * loss of an element is  w (1 - y) softplus(x) + w pw y softplus(-x)  (no
 * cancellation; one exp and one log1p per element), its gradient
 * w ((1 - y) sigmoid(x) - pw y sigmoid(-x)). */

FX_INLINE double FX_NAME(bce_body)(const FX_T *x, Py_ssize_t xs, const FX_T *y, Py_ssize_t ys,
                                   const FX_T *w, Py_ssize_t ws, const FX_T *pw, Py_ssize_t pws,
                                   Py_ssize_t n, FX_T *out, Py_ssize_t os,
                                   FX_T *g, Py_ssize_t gs, FX_W gscale,
                                   const int has_w, const int has_pw,
                                   const int has_out, const int has_g)
{
    double tot = 0.0;
    FX_W eb[FX_FOLD], lb[FX_FOLD];
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        /* the block's exp(-|x|) first, into a buffer in L1: exp, log1p and
         * the loss in one loop make a chain of dependent operations too
         * long for the core to overlap neighbouring elements (float32: the
         * two loops are 1.5x faster); in double, whose polynomials are
         * longer, log1p gets a loop of its own too (12% faster; 4% slower
         * in float32) */
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, xs);
            eb[j - j0] = FX_EXP(v < 0 ? v : -v);    /* NaN stays NaN */
        }
        if (sizeof(FX_W) == sizeof(double))
            for (Py_ssize_t j = 0; j < end - j0; j++) lb[j] = FX_LOG1P_UNIT(eb[j]);
        FX_W acc = 0, redo = 0;
        FX_SIMD_REDUCE(+:acc,redo)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, xs);
            FX_W t = FX_AT(y, j, ys);
            FX_W wt = has_w ? FX_AT(w, j, ws) : (FX_W)1;
            FX_W pv = has_pw ? FX_AT(pw, j, pws) : (FX_W)1;
            FX_W pt = pv * t;
            FX_W av = v < 0 ? -v : v;
            FX_W e = eb[j - j0];                     /* exp(-av) */
            FX_W l = sizeof(FX_W) == sizeof(double) ? lb[j - j0]
                   : FX_LOG1P_UNIT(e);               /* e in [0, 1] */
            FX_W sp_pos = (v > 0 ? v : (FX_W)0) + l;   /* softplus(x) */
            FX_W sp_neg = (v < 0 ? -v : (FX_W)0) + l;  /* softplus(-x) */
            FX_W a = wt * ((FX_W)1 - t);
            FX_W b = wt * pt;
            FX_W ta = a * sp_pos, tb = b * sp_neg;
            if (sizeof(FX_W) == sizeof(float)) {
                /* a softplus is infinite only at an infinite x, where a
                 * zero coefficient may be the limit's zero (0, no term) or
                 * one that underflowed float32 (w pw y = 4e-51; the term is
                 * +inf): such a block again in double, below */
                redo += av == INFINITY ? (FX_W)1 : (FX_W)0;
            } else {
                ta = ((a == 0) & (sp_pos == INFINITY)) ? (FX_W)0 : ta;
                tb = ((b == 0) & (sp_neg == INFINITY)) ? (FX_W)0 : tb;
            }
            FX_W term = ta + tb;
            acc += term * (FX_W)FX_SUM_SCALE;
            if (has_out) out[j * os] = FX_STORE(term);
            if (has_g) {
                /* (1 - y) sigmoid(x) - pw y sigmoid(-x): the same as
                 * (1 - y + pw y) sigmoid(x) - pw y, without its cancellation
                 * when sigmoid(x) is near 1 */
                FX_W d = (FX_W)1 + e;
                FX_W sig = (v >= 0 ? (FX_W)1 : e) / d;
                FX_W sig_neg = (v >= 0 ? e : (FX_W)1) / d;
                g[j * gs] = FX_STORE(wt * (((FX_W)1 - t) * sig - pt * sig_neg) * gscale);
            }
        }
        if (sizeof(FX_W) == sizeof(double) && !(acc - acc == 0)) {
            /* a term that is not finite, maybe the NaN of an infinite
             * target under a finite x: that one gets its limit
             * (fx_bce_term), set here, out of the loop.  A sum that is not
             * finite does not depend on the order of its terms, so the
             * block's is formed again in this one */
            acc = 0;
            for (Py_ssize_t j = j0; j < end; j++) {
                double v = FX_AT(x, j, xs), t = FX_AT(y, j, ys);
                double term = fx_bce_term(v, t, has_w ? FX_AT(w, j, ws) : 1.0,
                                          has_pw ? FX_AT(pw, j, pws) : 1.0, lb[j - j0]);
                if (has_out && isinf(t) && !isinf(v)) out[j * os] = FX_STORE((FX_W)term);
                acc += (FX_W)(term * FX_SUM_SCALE);
            }
        }
        if (sizeof(FX_W) == sizeof(float) && (!(acc - acc == 0) || redo != 0)) {
            /* an inf or NaN float32 term (float16 and float32 data): a
             * product may have overflowed on the way to a finite term
             * (w pw y > 3.4e38 times softplus(-x) < 1), or a softplus(-x)
             * that float32 cannot hold (2e-55 at x = 125.75) met an
             * infinite coefficient; or an infinite x: the block again in
             * double, as the reference */
            acc = 0;
            for (Py_ssize_t j = j0; j < end; j++) {
                double v = FX_AT(x, j, xs), t = FX_AT(y, j, ys);
                double wt = has_w ? FX_AT(w, j, ws) : 1.0;
                double pt = has_pw ? FX_AT(pw, j, pws) * t : t;
                double e = exp(-fabs(v));
                FX_W term = (FX_W)fx_bce_term(v, t, wt, has_pw ? FX_AT(pw, j, pws) : 1.0,
                                              log1p(e));
                acc += term * (FX_W)FX_SUM_SCALE;
                if (has_out) out[j * os] = FX_STORE(term);
                if (has_g) {
                    double sig = (v >= 0 ? 1.0 : e) / (1.0 + e), sig_neg = (v >= 0 ? e : 1.0) / (1.0 + e);
                    g[j * gs] = FX_STORE((FX_W)(wt * ((1.0 - t) * sig - pt * sig_neg) * (double)gscale));
                }
            }
        }
        tot += (double)acc * (1.0 / FX_SUM_SCALE);
    }
    return tot;
}

/* contiguous operands, every flag a constant, as kl_div_unit */
static FX_NOINLINE double FX_NAME(bce_unit)(const FX_T *x, const FX_T *y, const FX_T *w,
                                           const FX_T *pw, Py_ssize_t n, FX_T *out, FX_T *g,
                                           FX_W gsc)
{
#define FX_BCE_CASE(hw, hp, ho, hg) \
    case (hw) | (hp) << 1 | (ho) << 2 | (hg) << 3: \
        return FX_NAME(bce_body)(x, 1, y, 1, w, 1, pw, 1, n, out, 1, g, 1, gsc, \
                                 hw, hp, ho, hg);
    switch ((w != NULL) | (pw != NULL) << 1 | (out != NULL) << 2 | (g != NULL) << 3) {
    FX_BCE_CASE(0, 0, 0, 0) FX_BCE_CASE(1, 0, 0, 0) FX_BCE_CASE(0, 1, 0, 0)
    FX_BCE_CASE(1, 1, 0, 0) FX_BCE_CASE(0, 0, 1, 0) FX_BCE_CASE(1, 0, 1, 0)
    FX_BCE_CASE(0, 1, 1, 0) FX_BCE_CASE(1, 1, 1, 0) FX_BCE_CASE(0, 0, 0, 1)
    FX_BCE_CASE(1, 0, 0, 1) FX_BCE_CASE(0, 1, 0, 1) FX_BCE_CASE(1, 1, 0, 1)
    FX_BCE_CASE(0, 0, 1, 1) FX_BCE_CASE(1, 0, 1, 1) FX_BCE_CASE(0, 1, 1, 1)
    default: FX_BCE_CASE(1, 1, 1, 1)
    }
#undef FX_BCE_CASE
}

/* as kl_div_seg: outputs of other strides through unit-stride buffers */
static double FX_NAME(bce_seg)(const FX_T *x, Py_ssize_t xs, const FX_T *y, Py_ssize_t ys,
                               const FX_T *w, Py_ssize_t ws, const FX_T *pw, Py_ssize_t pws,
                               Py_ssize_t n, FX_T *out, Py_ssize_t os,
                               FX_T *g, Py_ssize_t gs, double gscale)
{
    FX_W gsc = (FX_W)gscale;
    /* as kl_div_seg: a gradient written over x through the buffer */
    int alias = g != NULL && (const void *)g == (const void *)x;
    if (xs != 1 || ys != 1 || (w != NULL && ws != 1) || (pw != NULL && pws != 1)) {
        /* as kl_div_seg: strided inputs gathered FX_FOLD at a time */
        FX_T bx[FX_FOLD], by[FX_FOLD], bw[FX_FOLD], bp[FX_FOLD];
        double tot = 0.0;
        for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
            Py_ssize_t len = n - j0 < FX_FOLD ? n - j0 : FX_FOLD;
            const FX_T *px = FX_NAME(rows_in)(x + j0 * xs, len, xs, 1, len, bx, 1);
            const FX_T *py = FX_NAME(rows_in)(y + j0 * ys, len, ys, 1, len, by,
                                              j0 == 0 || ys != 0);
            const FX_T *pww = w ? FX_NAME(rows_in)(w + j0 * ws, len, ws, 1, len, bw,
                                                   j0 == 0 || ws != 0) : NULL;
            const FX_T *ppw = pw ? FX_NAME(rows_in)(pw + j0 * pws, len, pws, 1, len, bp,
                                                    j0 == 0 || pws != 0) : NULL;
            tot += FX_NAME(bce_seg)(px, 1, py, 1, pww, 1, ppw, 1, len,
                                    out ? out + j0 * os : NULL, os,
                                    g ? g + j0 * gs : NULL, gs, gscale);
        }
        return tot;
    }
#ifdef FX_VIA_F32
    if (out == NULL && g == NULL && w == NULL && pw == NULL)
        /* as kl_div_seg: float16 through float32's loop */
        return FX_NAME(via_f32_pair_loss)(fx_bce_loss_f32, x, y, n, 0, gsc);
#endif
    if ((out == NULL || os == 1) && (g == NULL || gs == 1) && !alias)
        return FX_NAME(bce_unit)(x, y, w, pw, n, out, g, gsc);
    FX_T ob[FX_FOLD], gb[FX_FOLD];
    double tot = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t len = n - j0 < FX_FOLD ? n - j0 : FX_FOLD;
        FX_T *o = out == NULL ? NULL : os == 1 ? out + j0 : ob;
        FX_T *gg = g == NULL ? NULL : gs == 1 && !alias ? g + j0 : gb;
        tot += FX_NAME(bce_unit)(x + j0, y + j0, w ? w + j0 : NULL, pw ? pw + j0 : NULL,
                                 len, o, gg, gsc);
        if (o == ob) FX_NAME(rows_out)(ob, 1, len, out + j0 * os, len, os);
        if (gg == gb) FX_NAME(rows_out)(gb, 1, len, g + j0 * gs, len, gs);
    }
    return tot;
}

/* ---- rows shorter than half a fold: k = FX_FOLD / L whole rows at a time
 * as one contiguous block, one call of the unit loop over k L elements.
 * Called row by row, a row of 10 elements ran the loop's scalar remainder
 * and its set-up (85 ns a row, 10x the vector loop's time).  An operand
 * whose rows follow each other in memory is read in place, the others
 * gathered (see rows_in: an operand broadcast along the rows, such as
 * per-class weights, once), outputs likewise scattered.  A block's terms are summed in its order, so the sum
 * of R rows depends on R and L alone. */
static double FX_NAME(kl_div_rows)(const FX_T *x, Py_ssize_t xr, Py_ssize_t xs, const FX_T *t,
                                   Py_ssize_t tr, Py_ssize_t ts, Py_ssize_t R, Py_ssize_t L,
                                   int log_target, FX_T *out, Py_ssize_t orr, Py_ssize_t os,
                                   FX_T *g, Py_ssize_t gr, Py_ssize_t gs, double gscale)
{
    FX_T bx[FX_FOLD], bt[FX_FOLD], bo[FX_FOLD], bg[FX_FOLD];
    Py_ssize_t K = FX_FOLD / L;
    double tot = 0.0;
    for (Py_ssize_t r0 = 0; r0 < R; r0 += K) {
        Py_ssize_t k = R - r0 < K ? R - r0 : K;
        const FX_T *px = FX_NAME(rows_in)(x + r0 * xr, xr, xs, k, L, bx, 1);
        const FX_T *pt = FX_NAME(rows_in)(t + r0 * tr, tr, ts, k, L, bt, r0 == 0 || tr != 0);
        FX_T *po = FX_NAME(rows_dst)(out ? out + r0 * orr : NULL, orr, os, L, bo);
        FX_T *pg = FX_NAME(rows_dst)(g ? g + r0 * gr : NULL, gr, gs, L, bg);
        tot += FX_NAME(kl_div_seg)(px, 1, pt, 1, k * L, log_target, po, 1, pg, 1, gscale);
        if (out) FX_NAME(rows_out)(po, k, L, out + r0 * orr, orr, os);
        if (g) FX_NAME(rows_out)(pg, k, L, g + r0 * gr, gr, gs);
    }
    return tot;
}

static double FX_NAME(bce_rows)(const FX_T *x, Py_ssize_t xr, Py_ssize_t xs, const FX_T *y,
                                Py_ssize_t yr, Py_ssize_t ys, const FX_T *w, Py_ssize_t wr,
                                Py_ssize_t ws, const FX_T *pw, Py_ssize_t pr, Py_ssize_t pws,
                                Py_ssize_t R, Py_ssize_t L, FX_T *out, Py_ssize_t orr,
                                Py_ssize_t os, FX_T *g, Py_ssize_t gr, Py_ssize_t gs,
                                double gscale)
{
    FX_T bx[FX_FOLD], by[FX_FOLD], bw[FX_FOLD], bp[FX_FOLD], bo[FX_FOLD], bg[FX_FOLD];
    Py_ssize_t K = FX_FOLD / L;
    double tot = 0.0;
    for (Py_ssize_t r0 = 0; r0 < R; r0 += K) {
        Py_ssize_t k = R - r0 < K ? R - r0 : K;
        const FX_T *px = FX_NAME(rows_in)(x + r0 * xr, xr, xs, k, L, bx, 1);
        const FX_T *py = FX_NAME(rows_in)(y + r0 * yr, yr, ys, k, L, by, r0 == 0 || yr != 0);
        const FX_T *pww = w ? FX_NAME(rows_in)(w + r0 * wr, wr, ws, k, L, bw,
                                               r0 == 0 || wr != 0) : NULL;
        const FX_T *ppw = pw ? FX_NAME(rows_in)(pw + r0 * pr, pr, pws, k, L, bp,
                                                r0 == 0 || pr != 0) : NULL;
        FX_T *po = FX_NAME(rows_dst)(out ? out + r0 * orr : NULL, orr, os, L, bo);
        FX_T *pg = FX_NAME(rows_dst)(g ? g + r0 * gr : NULL, gr, gs, L, bg);
        tot += FX_NAME(bce_seg)(px, 1, py, 1, pww, 1, ppw, 1, k * L, po, 1, pg, 1, gscale);
        if (out) FX_NAME(rows_out)(po, k, L, out + r0 * orr, orr, os);
        if (g) FX_NAME(rows_out)(pg, k, L, g + r0 * gr, gr, gs);
    }
    return tot;
}

#undef FX_AT
