/*
 * fx_entropies.h -- entropies of one row, one storage type (included by
 * fx_kernels_for_dtype.h after fx_softmax_family.h, same macros).
 *
 * From logits (softmax_entropy, softmax_cross_entropy, softmax_kl_div), with
 * p = softmax(x), q = softmax(y), maxima mx, my and e_c = exp(x_c - mx):
 *
 *     H(p)    = log Sx + T / Sx,          T = sum_c e_c (mx - x_c)
 *     H(p, q) = log Sy + U / Sx,          U = sum_c e_c (my - y_c)
 *     KL      = log(Sy / Sx) + V / Sx,    V = sum_c e_c ((x_c - mx) - (y_c - my))
 *
 * with Sx = sum_c e_c, Sy = sum_c exp(y_c - my).  T and U are sums of
 * non-negative terms, so the entropies do not cancel however large the
 * logits; V is exactly 0 for identical rows.  The row is read once, in blocks
 * of FX_FLUSH elements whose maxima are taken while the block is in cache;
 * when a block raises a maximum, the sums so far are rescaled.  The terms
 * equal to the maximum are counted apart (log S = log k + log1p(s / k)), so a
 * row dominated by one logit keeps the digits of its small entropy, and
 * log(Sy / Sx) is taken as log1p((Sy - Sx) / Sx) (or its mirror), which
 * does not cancel for close rows as log Sy - log Sx would.
 *
 * Then a kernel for many short rows side by side, and scipy.stats.entropy
 * (normalized pk, qk) last.
 */

#define FX_AT(p, j, s) FX_LOAD((p)[(Py_ssize_t)(j) * (s)])


/* ---- entropy of softmax(x) ---- */

FX_INLINE void FX_NAME(ent_block_sums)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W mw,
                                       const int normal, double *sum, double *k, double *T);

FX_INLINE void FX_NAME(ent_block)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                  double *m, double *k, double *sum, double *T)
{
    FX_W lo;
    FX_W bm = FX_NAME(minmax_body)(x, n, s, &lo);
    if ((double)bm > *m) {
        if (*k > 0) {   /* rescale what was summed: m - x grows by bm - m */
            double a = exp(*m - (double)bm), S = *k + *sum;
            /* a = 0: the old terms vanish (and bm - m may overflow) */
            *T = a == 0 ? 0.0 : a * (*T + S * ((double)bm - *m));
            *sum = a * S;
            *k = 0;
        }
        *m = (double)bm;
    }
    if (*m == INFINITY) return;   /* the row is NaN */
    /* all -inf (or NaN) so far: exp(-inf - 0) = 0 adds nothing, NaN stays */
    FX_W mw = *m == -INFINITY ? (FX_W)0 : (FX_W)*m;
    /* the cheaper exp (same bits) where no x - m can underflow */
    if (lo - mw >= (FX_W)FX_EXP_NORMAL_MIN)
        FX_NAME(ent_block_sums)(x, n, s, mw, 1, sum, k, T);
    else
        FX_NAME(ent_block_sums)(x, n, s, mw, 0, sum, k, T);
}

FX_INLINE void FX_NAME(ent_block_sums)(const FX_T *x, Py_ssize_t n, Py_ssize_t s, FX_W mw,
                                       const int normal, double *sum, double *k, double *T)
{
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W acc = 0, cnt = 0, t = 0;
        FX_PREFETCH_NEXT(x, s, n, j0);
        FX_SIMD_REDUCE(+:acc,cnt,t)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, s);
            int eq = v == mw;
            FX_W e = normal ? FX_EXP_NORMAL(v - mw) : FX_EXP(v - mw);
            acc += eq ? (FX_W)0 : e;
            cnt += eq ? (FX_W)1 : (FX_W)0;
            /* e = 0 (a -inf logit: probability 0) contributes 0, also
             * where m - v overflows; e > 0 keeps m - v small.  In a normal
             * block every e is positive: no test */
            t += (normal || e != 0) ? e * (mw - v) : (FX_W)0;
        }
        *sum += (double)acc;
        *k += (double)cnt;
        *T += (double)t;
    }
}

/* the same for every storage type: defined once */
#ifndef FX_ENTROPY_STATES
#define FX_ENTROPY_STATES
/* b (the state of the segment after a's) added into a: the side of the
 * smaller max rescaled as ent_block rescales the sums so far (its max
 * terms join the others; a = 0 drops it, also where the gap overflows) */
static inline void fx_softmax_entropy_merge(double *a, const double *b)
{
    double lo[4], hi[4];
    const double *h = b[0] > a[0] ? b : a, *l = b[0] > a[0] ? a : b;
    for (int j = 0; j < 4; j++) { hi[j] = h[j]; lo[j] = l[j]; }
    if (lo[0] < hi[0]) {
        double r = exp(lo[0] - hi[0]), S = lo[1] + lo[2];
        lo[3] = r == 0 ? 0.0 : r * (lo[3] + S * (hi[0] - lo[0]));
        lo[2] = r * S;
        lo[1] = 0;
    }
    a[0] = hi[0];
    a[1] = hi[1] + lo[1];
    a[2] = hi[2] + lo[2];
    a[3] = hi[3] + lo[3];
}

/* H(p) from a row's merged state */
static inline double fx_softmax_entropy_finish(const double *st)
{
    double m = st[0], k = st[1], sum = st[2], T = st[3];
    /* +inf, or only -inf (or NaN): no softmax */
    if (!isfinite(m)) return NAN;
    /* k == 1 (one maximal logit) is the common case: skip a log call */
    return (k == 1 ? 0.0 : log(k)) + log1p(sum / k) + T / (k + sum);
}

/* a pair state (see pair_block) moved to the maxima MX >= st[0], MY >=
 * st[3], as pair_block moves the sums so far when a block raises them */
static inline void fx_softmax_pair_rescale(double *p, double MX, double MY)
{
    double Sx = p[1] + p[2];
    if (MY > p[3]) {
        if (Sx > 0 && p[4] > 0) {   /* my - y_c grows by MY - my */
            double hd = 0.5 * MY - 0.5 * p[3];
            p[6] += hd;
            p[7] += hd;
        }
        if (p[4] > 0) {
            p[5] = exp(p[3] - MY) * (p[4] + p[5]);
            p[4] = 0;
        }
        p[3] = MY;
    }
    if (MX > p[0]) {
        if (Sx > 0) {   /* x_c - mx falls by MX - mx */
            p[7] -= 0.5 * MX - 0.5 * p[0];
            p[2] = exp(p[0] - MX) * Sx;
            p[1] = 0;
        }
        p[0] = MX;
    }
}

/* b (the state of the segments after a's) added into a: both moved to the
 * common maxima, the moments (kept divided by 2 Sx) weighted by each
 * side's share of Sx */
static inline void fx_softmax_pair_merge(double *a, const double *b)
{
    double c[9];
    for (int j = 0; j < 9; j++) c[j] = b[j];
    double MX = c[0] > a[0] ? c[0] : a[0], MY = c[3] > a[3] ? c[3] : a[3];
    fx_softmax_pair_rescale(a, MX, MY);
    fx_softmax_pair_rescale(c, MX, MY);
    double SA = a[1] + a[2], SB = c[1] + c[2], S = SA + SB;
    if (S > 0) {
        a[6] = a[6] * (SA / S) + c[6] * (SB / S);
        a[7] = a[7] * (SA / S) + c[7] * (SB / S);
    } else {   /* no probability yet: zeros, or NaN */
        a[6] += c[6];
        a[7] += c[7];
    }
    a[1] += c[1];
    a[2] += c[2];
    a[4] += c[4];
    a[5] += c[5];
    a[8] = (a[8] != 0 || c[8] != 0) ? 1.0 : 0.0;
}

/* H(p, q) (kl = 0) or KL(p || q) (kl = 1) from a pair's merged state */
static inline double fx_softmax_pair_finish(const double *st, int kl)
{
    int qzero = st[8] != 0;
    if (!isfinite(st[0]) || !isfinite(st[3])) return NAN;
    /* a NaN x reaches only Sx (its U and V terms may have been skipped for
     * y = -inf), which H(p, q) does not read otherwise */
    if (isnan(st[1] + st[2])) return NAN;
    double r;
    if (kl) {
        /* log(Sy / Sx) as log1p of a small ratio for close rows, where
         * log Sy - log Sx would cancel */
        double Sx = st[1] + st[2], Sy = st[4] + st[5];
        double d = (st[4] - st[1]) + (st[5] - st[2]);
        r = (d >= 0 ? log1p(d / Sx) : -log1p(-d / Sy)) + 2.0 * st[7];
    } else {
        r = (st[4] == 1 ? 0.0 : log(st[4])) + log1p(st[5] / st[4]) + 2.0 * st[6];
    }
    return (qzero && r == r) ? INFINITY : r;
}

#endif

/* the state of a row, or of a segment of it: st = (m, k, sum, T) -- the max
 * (NaN ignored), the count of elements equal to it, the sum of the other
 * exps and T; NaN sums for a NaN, and m = +inf for a +inf (the Dask
 * reductions merge the segments of a split row) */
static void FX_NAME(softmax_entropy_state)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                           double *st)
{
    double m = -INFINITY, k = 0, sum = 0, T = 0;
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
#ifdef FX_VIA_F32
        if (s == 1) {   /* float16 through float32's block (fx_halves_to_floats) */
            float buf[FX_FLUSH];
            fx_halves_to_floats(x + j, len, buf);
            fx_f32_ent_block(buf, len, 1, &m, &k, &sum, &T);
            continue;
        }
#endif
        if (s == 1) FX_NAME(ent_block)(x + j, len, 1, &m, &k, &sum, &T);
        else FX_NAME(ent_block)(x + j * s, len, s, &m, &k, &sum, &T);
    }
    st[0] = m;
    st[1] = k;
    st[2] = sum;
    st[3] = T;
}

/* a row in chunks of FX_CHUNK elements, their states merged in order: the
 * unit a long row is split into across threads (row_entropies), so that
 * splitting does not change the result */
static double FX_NAME(softmax_entropy_row)(const FX_T *x, Py_ssize_t n, Py_ssize_t s)
{
    double st[4], part[4];
    FX_NAME(softmax_entropy_state)(x, n < FX_CHUNK ? n : FX_CHUNK, s, st);
    for (Py_ssize_t c = FX_CHUNK; c < n; c += FX_CHUNK) {
        FX_NAME(softmax_entropy_state)(x + c * s, n - c < FX_CHUNK ? n - c : FX_CHUNK, s, part);
        fx_softmax_entropy_merge(st, part);
    }
    return fx_softmax_entropy_finish(st);
}

/* ---- cross-entropy and KL divergence of softmax(x) from softmax(y) ---- */

/* st: mx, kx, sx, my, ky, sy, U / (2 Sx), V / (2 Sx).  U and V are kept
 * divided by 2 Sx, which is invariant when mx rises (both scale by the
 * same exp), and the block terms are summed as e (my - y) 2^-9: so no
 * intermediate overflows for finite logits however far apart, unless the
 * result itself does. */
FX_INLINE void FX_NAME(pair_block_sums)(const FX_T *x, Py_ssize_t sx, const FX_T *y,
                                        Py_ssize_t sy, Py_ssize_t n, FX_W mx, FX_W my,
                                        const int normal, double *st, int *qzero);

FX_INLINE void FX_NAME(pair_block)(const FX_T *x, Py_ssize_t sx, const FX_T *y, Py_ssize_t sy,
                                   Py_ssize_t n, double *st, int *qzero)
{
    FX_W lx, ly;
    FX_W bx = FX_NAME(minmax_body)(x, n, sx, &lx), by = FX_NAME(minmax_body)(y, n, sy, &ly);
    double Sx = st[1] + st[2];
    if ((double)by > st[3]) {
        if (Sx > 0 && st[4] > 0) {   /* my - y_c grows by by - my */
            double hd = 0.5 * (double)by - 0.5 * st[3];
            st[6] += hd;
            st[7] += hd;
        }
        if (st[4] > 0) {
            double a = exp(st[3] - (double)by);
            st[5] = a * (st[4] + st[5]);
            st[4] = 0;
        }
        st[3] = (double)by;
    }
    if ((double)bx > st[0]) {
        if (Sx > 0) {   /* x_c - mx falls by bx - mx */
            st[7] -= 0.5 * (double)bx - 0.5 * st[0];
            st[2] = exp(st[0] - (double)bx) * Sx;
            st[1] = 0;
        }
        st[0] = (double)bx;
    }
    if (st[0] == INFINITY || st[3] == INFINITY) return;   /* the row is NaN */
    /* an input all -inf (or NaN) so far is taken against 0: its exps are 0
     * and its y = -inf terms are skipped; NaN propagates */
    FX_W mx = st[0] == -INFINITY ? (FX_W)0 : (FX_W)st[0];
    FX_W my = st[3] == -INFINITY ? (FX_W)0 : (FX_W)st[3];
    /* the cheaper exp (same bits) where no x - m can underflow */
    if ((lx - mx >= (FX_W)FX_EXP_NORMAL_MIN) & (ly - my >= (FX_W)FX_EXP_NORMAL_MIN))
        FX_NAME(pair_block_sums)(x, sx, y, sy, n, mx, my, 1, st, qzero);
    else
        FX_NAME(pair_block_sums)(x, sx, y, sy, n, mx, my, 0, st, qzero);
}

FX_INLINE void FX_NAME(pair_block_sums)(const FX_T *x, Py_ssize_t sx, const FX_T *y,
                                        Py_ssize_t sy, Py_ssize_t n, FX_W mx, FX_W my,
                                        const int normal, double *st, int *qzero)
{
    const FX_W q = (FX_W)0.001953125;   /* 2^-9 */
    /* each block's exps first, in a loop of their own: with the seven sums
     * in the same loop, the chains are too long and the registers too few
     * for the core to overlap elements (docs/design.rst, "Short dependency
     * chains") */
    FX_W eb[FX_FOLD], fb[FX_FOLD];
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W ax = 0, cx = 0, ay = 0, cy = 0, u = 0, v = 0, z = 0;
        FX_PREFETCH_NEXT(x, sx, n, j0);
        FX_PREFETCH_NEXT(y, sy, n, j0);
        FX_SIMD
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W xv = FX_AT(x, j, sx), yv = FX_AT(y, j, sy);
            eb[j - j0] = normal ? FX_EXP_NORMAL(xv - mx) : FX_EXP(xv - mx);
            fb[j - j0] = normal ? FX_EXP_NORMAL(yv - my) : FX_EXP(yv - my);
        }
        FX_SIMD_REDUCE(+:ax,cx,ay,cy,u,v,z)
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W xv = FX_AT(x, j, sx), yv = FX_AT(y, j, sy);
            int ex_ = xv == mx, ey_ = yv == my;
            FX_W e = eb[j - j0], f = fb[j - j0];
            ax += ex_ ? (FX_W)0 : e;
            cx += ex_ ? (FX_W)1 : (FX_W)0;
            ay += ey_ ? (FX_W)0 : f;
            cy += ey_ ? (FX_W)1 : (FX_W)0;
            /* p_c = 0 (x = -inf) contributes 0; p_c > 0 = q_c (y = -inf under
             * a finite x) makes the row +inf: counted apart so that the
             * sums stay finite.  A normal block (every x - mx and y - my
             * above FX_EXP_NORMAL_MIN) holds no -inf: neither test */
            FX_W dy = my * q - yv * q;
            if (normal) {
                u += e * dy;
                v += e * ((xv * q - mx * q) + dy);
            } else {
                int skip = (xv == -INFINITY) | (yv == -INFINITY);
                u += skip ? (FX_W)0 : e * dy;
                v += skip ? (FX_W)0 : e * ((xv * q - mx * q) + dy);
                z += ((xv > -INFINITY) & (yv == -INFINITY)) ? (FX_W)1 : (FX_W)0;
            }
        }
        double S0 = st[1] + st[2];
        st[2] += (double)ax;
        st[1] += (double)cx;
        st[5] += (double)ay;
        st[4] += (double)cy;
        double S1 = st[1] + st[2];
        if (S1 > 0) {
            double keep = S0 / S1;
            st[6] = st[6] * keep + ((double)u / S1) * 256.0;
            st[7] = st[7] * keep + ((double)v / S1) * 256.0;
        } else if (u != u || v != v) {
            st[6] = st[7] = NAN;
        }
        *qzero |= z > 0;
    }
}

/* kl = 0: H(p, q); kl = 1: KL(p || q) */
/* the state of a pair of rows, or of segments of them: st[0..7] as
 * pair_block keeps it, st[8] = 1 where a class of probability 0 under q
 * has one under p (the row is +inf) */
static void FX_NAME(softmax_pair_state)(const FX_T *x, Py_ssize_t sx, const FX_T *y,
                                        Py_ssize_t sy, Py_ssize_t n, double *st)
{
    int qzero = 0;
    st[0] = st[3] = -INFINITY;
    st[1] = st[2] = st[4] = st[5] = st[6] = st[7] = 0;
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
#ifdef FX_VIA_F32
        if (sx == 1 && sy == 1) {   /* float16 through float32's block */
            float bx[FX_FLUSH], by[FX_FLUSH];
            fx_halves_to_floats(x + j, len, bx);
            fx_halves_to_floats(y + j, len, by);
            fx_f32_pair_block(bx, 1, by, 1, len, st, &qzero);
            continue;
        }
#endif
        if (sx == 1 && sy == 1) FX_NAME(pair_block)(x + j, 1, y + j, 1, len, st, &qzero);
        else FX_NAME(pair_block)(x + j * sx, sx, y + j * sy, sy, len, st, &qzero);
    }
    st[8] = qzero;
}

/* a row pair in chunks of FX_CHUNK elements, their states merged in order
 * (see softmax_entropy_row) */
static double FX_NAME(softmax_pair_row)(const FX_T *x, Py_ssize_t sx, const FX_T *y,
                                        Py_ssize_t sy, Py_ssize_t n, int kl)
{
    double st[9], part[9];
    FX_NAME(softmax_pair_state)(x, sx, y, sy, n < FX_CHUNK ? n : FX_CHUNK, st);
    for (Py_ssize_t c = FX_CHUNK; c < n; c += FX_CHUNK) {
        FX_NAME(softmax_pair_state)(x + c * sx, sx, y + c * sy, sy,
                                    n - c < FX_CHUNK ? n - c : FX_CHUNK, part);
        fx_softmax_pair_merge(st, part);
    }
    return fx_softmax_pair_finish(st, kl);
}

/* ---- short rows (C <= FX_SMALL_C): FX_BLOCK_W rows side by side ----
 * As small_lse: a block of rows is transposed into T (rows become SIMD
 * lanes) and reduced across rows in the working type; the entropies are
 * finished in double.  Rows whose result is not finite (NaN, +inf, only -inf, a q = 0
 * under p > 0) are redone by the row functions above, which hold the
 * special-value rules.  T holds (2 C + 8) FX_BLOCK_W working values: the
 * two blocks, then the per-row arrays.  kind 0: H(p) of x; 1: H(p, q); 2: KL(p || q). */
static void FX_NAME(small_entropies)(const FX_T *x, const FX_T *y, Py_ssize_t nrows,
                                     Py_ssize_t C, Py_ssize_t rs, Py_ssize_t yrs, int kind,
                                     FX_W *T, FX_T *out, Py_ssize_t os)
{
    FX_W *U = T + C * FX_BLOCK_W;
    FX_W *mx = U + C * FX_BLOCK_W, *sx = mx + FX_BLOCK_W, *kx = sx + FX_BLOCK_W;
    FX_W *my = kx + FX_BLOCK_W, *sy = my + FX_BLOCK_W, *ky = sy + FX_BLOCK_W;
    FX_W *u = ky + FX_BLOCK_W, *v = u + FX_BLOCK_W;
    for (Py_ssize_t r0 = 0; r0 < nrows; r0 += FX_BLOCK_W) {
        Py_ssize_t W = nrows - r0 < FX_BLOCK_W ? nrows - r0 : FX_BLOCK_W;
        const FX_T *xb = x + r0 * rs;
        const FX_T *yb = kind ? y + r0 * yrs : NULL;
#if defined(FX_SHORT_X8) || defined(FX_SHORT_VIA8)
        /* the transposes with each lane's max and min, then the sums in
         * registers (fx_ent_sums8), the same bits as the loops below */
        FX_W *lx = u, *ly = v;   /* the mins, until the sums replace them */
        FX_NAME(tr_in_minmax)(xb, C, rs, W, T, mx, lx);
        if (kind) FX_NAME(tr_in_minmax)(yb, C, yrs, W, U, my, ly);
        for (Py_ssize_t g = 0; g < W; g += 8)
            fx_ent_sums8(T + g, kind ? U + g : NULL, C, FX_BLOCK_W, mx + g, lx + g, my + g,
                         ly + g, sx + g, kx + g, sy + g, ky + g, u + g, v + g);
#else
        FX_NAME(tr_in)(xb, C, rs, W, T);
        if (kind) FX_NAME(tr_in)(yb, C, yrs, W, U);
        for (int i = 0; i < FX_BLOCK_W; i++) {
            mx[i] = T[i]; my[i] = kind ? U[i] : 0;
            sx[i] = kx[i] = sy[i] = ky[i] = u[i] = v[i] = 0;
        }
        for (Py_ssize_t c = 1; c < C; c++)
            for (int i = 0; i < FX_BLOCK_W; i++) {
                FX_W a = T[c * FX_BLOCK_W + i];
                mx[i] = a > mx[i] ? a : mx[i];
            }
        if (kind)
            for (Py_ssize_t c = 1; c < C; c++)
                for (int i = 0; i < FX_BLOCK_W; i++) {
                    FX_W b = U[c * FX_BLOCK_W + i];
                    my[i] = b > my[i] ? b : my[i];
                }
        /* rows of more than FX_SUM_RUN classes: the sums in runs of
         * FX_SUM_RUN classes, added in double, rounded once */
        double dsx[FX_BLOCK_W], dsy[FX_BLOCK_W], du[FX_BLOCK_W], dv[FX_BLOCK_W];
        if (C > FX_SUM_RUN)
            for (int i = 0; i < FX_BLOCK_W; i++) dsx[i] = dsy[i] = du[i] = dv[i] = 0.0;
        for (Py_ssize_t c = 0; c < C; c++) {
            if (kind == 0) {
                for (int i = 0; i < FX_BLOCK_W; i++) {
                    FX_W a = T[c * FX_BLOCK_W + i];
                    int eq = a == mx[i];
                    FX_W e = FX_EXP(a - mx[i]);
                    sx[i] += eq ? (FX_W)0 : e;
                    kx[i] += eq ? (FX_W)1 : (FX_W)0;
                    u[i] += e == 0 ? (FX_W)0 : e * (mx[i] - a);
                }
            } else {
                for (int i = 0; i < FX_BLOCK_W; i++) {
                    FX_W a = T[c * FX_BLOCK_W + i], b = U[c * FX_BLOCK_W + i];
                    int ex_ = a == mx[i], ey_ = b == my[i];
                    FX_W e = FX_EXP(a - mx[i]), f = FX_EXP(b - my[i]);
                    sx[i] += ex_ ? (FX_W)0 : e;
                    kx[i] += ex_ ? (FX_W)1 : (FX_W)0;
                    sy[i] += ey_ ? (FX_W)0 : f;
                    ky[i] += ey_ ? (FX_W)1 : (FX_W)0;
                    /* -inf logits give NaN here; those rows are redone */
                    FX_W dy = my[i] - b;
                    u[i] += e * dy;
                    v[i] += e * ((a - mx[i]) + dy);
                }
            }
            if (FX_SUM_RUN_END(C, c))
                for (int i = 0; i < FX_BLOCK_W; i++) {
                    dsx[i] += (double)sx[i];
                    dsy[i] += (double)sy[i];
                    du[i] += (double)u[i];
                    dv[i] += (double)v[i];
                    sx[i] = sy[i] = u[i] = v[i] = 0;
                }
        }
        if (C > FX_SUM_RUN)
            for (int i = 0; i < FX_BLOCK_W; i++) {
                sx[i] = (FX_W)dsx[i];
                sy[i] = (FX_W)dsy[i];
                u[i] = (FX_W)du[i];
                v[i] = (FX_W)dv[i];
            }
#endif
        /* finished in double: log Sy - log Sx cancels for close rows.  One
         * loop per kind: in a single loop the vectorized body computed every
         * kind's logs and divisions and selected one (four logs and three
         * divisions per row where softmax_entropy needs one of each: more
         * than half of its time on rows of 10 classes) */
        if (kind == 0) {
            for (int i = 0; i < FX_BLOCK_W; i++) {
                double k1 = (double)kx[i], S1 = k1 + (double)sx[i];
                double lx = fx_log_count_sum(k1, (double)sx[i], sizeof(FX_W) == 4);
                u[i] = (FX_W)(lx + (double)u[i] / S1);
            }
        } else if (kind == 1) {
            for (int i = 0; i < FX_BLOCK_W; i++) {
                double S1 = (double)kx[i] + (double)sx[i];
                double ly = fx_log_count_sum((double)ky[i], (double)sy[i],
                                             sizeof(FX_W) == 4);
                u[i] = (FX_W)(ly + (double)u[i] / S1);
            }
        } else {
            for (int i = 0; i < FX_BLOCK_W; i++) {
                double k1 = (double)kx[i], S1 = k1 + (double)sx[i];
                double k2 = (double)ky[i], S2 = k2 + (double)sy[i];
                /* log(S2 / S1) as log1p of a small ratio: accurate for
                 * close rows, where log S2 - log S1 would cancel */
                double d = (k2 - k1) + ((double)sy[i] - (double)sx[i]);
                /* one log1p of the selected ratio (selecting between two
                 * log1p's computed both, across lanes) */
                int up = d >= 0;
                double l = fx_log1p_ge0((up ? d : -d) / (up ? S1 : S2));
                double lr = up ? l : -l;
                u[i] = (FX_W)(lr + (double)v[i] / S1);
            }
        }
        for (Py_ssize_t i = 0; i < W; i++) {
            FX_W r = u[i];
            if (!(r - r == 0) || !(kx[i] >= 1) || (kind && !(ky[i] >= 1))) {
                double d = kind ? FX_NAME(softmax_pair_row)(xb + i * rs, 1, yb + i * yrs, 1, C, kind == 2)
                                : FX_NAME(softmax_entropy_row)(xb + i * rs, C, 1);
                r = (FX_W)d;
            }
            out[(r0 + i) * os] = FX_STORE(r);
        }
    }
}

/* ---- scipy.stats.entropy: pk and qk normalized along the row ----
 *
 * A row is read in chunks of FX_CHUNK elements, each twice while it is in
 * cache: first its sums, then its terms with r = p / Sp and u = q / Sq
 * taken against the running sums Sp, Sq (those of the row so far).  When a
 * later chunk raises the sums by the factors 1/a, 1/b, the terms so far are
 * rescaled exactly: H -> a (H - log a), D -> a (D + log(a / b)).  A row of a
 * single chunk (up to 16384 elements) is computed as SciPy computes it,
 * up to the rounding of the reciprocal 1 / S.
 * Rows that need SciPy's special cases (a negative, infinite or NaN entry, a
 * zero or overflowing sum) are redone by a plain two-pass loop. */

/* SciPy's rel_entr(r, u), and entr(r) = -r log r when u is NULL-like (has_q 0) */
static double FX_NAME(entropy_term_slow)(double r, double u, int has_q)
{
    if (isnan(r) || isnan(u)) return NAN;
    if (!has_q) return r > 0 ? -r * log(r) : (r == 0 ? 0.0 : -INFINITY);
    if (r > 0 && u > 0) {
        double ratio = r / u;
        double lr = (isfinite(ratio) && ratio >= DBL_MIN) ? log(ratio) : log(r) - log(u);
        return r * lr;
    }
    return (r == 0 && u >= 0) ? 0.0 : INFINITY;
}

/* the scale of a row: its sum, or, where the sum of finite values overflows,
 * the largest magnitude (then 1 / (sum of x / that)) */
static void FX_NAME(entropy_norm)(const FX_T *x, Py_ssize_t n, Py_ssize_t s,
                                  double *pre, double *post)
{
    double tot = 0, big = 0;
    int finite = 1;
    for (Py_ssize_t j = 0; j < n; j++) {
        double v = (double)FX_AT(x, j, s);
        tot += v;
        finite &= isfinite(v) != 0;
        big = fabs(v) > big ? fabs(v) : big;
    }
    *pre = 1.0;
    *post = tot;
    if (isinf(tot) && finite) {
        tot = 0;
        for (Py_ssize_t j = 0; j < n; j++) tot += (double)FX_AT(x, j, s) / big;
        *pre = big;
        *post = tot;
    }
}

static double FX_NAME(entropy_row_slow)(const FX_T *p, Py_ssize_t sp, const FX_T *q,
                                        Py_ssize_t sq, Py_ssize_t n)
{
    double pp, pd, qp = 1, qd = 1;
    FX_NAME(entropy_norm)(p, n, sp, &pp, &pd);
    if (q) FX_NAME(entropy_norm)(q, n, sq, &qp, &qd);
    double tot = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        /* computed in the working precision, as the reference normalizes */
        FX_W r = (FX_W)(((double)FX_AT(p, j, sp) / pp) / pd);
        FX_W u = q ? (FX_W)(((double)FX_AT(q, j, sq) / qp) / qd) : 0;
        tot += FX_NAME(entropy_term_slow)((double)r, (double)u, q != NULL);
    }
    return tot;
}

/* r = p / S as p times the reciprocal 1 / S; an element holding all the
 * mass is exactly 1 (entropy 0) */
FX_INLINE FX_W FX_NAME(entropy_r)(FX_W pv, FX_W ip, FX_W Sw)
{
    return pv == Sw ? (FX_W)1 : pv * ip;
}

/* min(r, 1) for r >= 0, taken on r's bits: as a float select, GCC takes the
 * logarithm of the unclamped r and masks each step of it with the select
 * (log 1 = 0), eight more instructions in a loop of forty */
FX_INLINE FX_W FX_NAME(entropy_clamp1)(FX_W r)
{
    const FX_W one = 1;
    FX_WI b, b1;
    memcpy(&b, &r, sizeof b);
    memcpy(&b1, &one, sizeof b1);
    b = b < b1 ? b : b1;
    memcpy(&r, &b, sizeof r);
    return r;
}

/* the smallest positive element from the smallest of the bits less one
 * (entropy_chunk_sums), inf where no element was positive (the bits
 * wrapped from 0) */
FX_INLINE FX_W FX_NAME(entropy_pmin)(FX_WU blo)
{
    FX_WU b = blo + 1;
    FX_W v;
    memcpy(&v, &b, sizeof v);
    return blo == (FX_WU)-1 ? (FX_W)INFINITY : v;
}

/* the reciprocal ip = 1 / S (positive, normal) an ulp up where the largest
 * element pmax is the sum Sw and S ip rounds below 1, so that r = min(p
 * ip, 1) is exactly 1 for an element holding all the mass (entropy 0); so
 * every r is the p ip of the select pv == Sw ? 1 : pv ip (entropy_r).
 * Branch-free, for the columns' loop too */
FX_INLINE FX_W FX_NAME(entropy_ip)(FX_W ip, FX_W Sw, FX_W pmax)
{
    FX_WU b;
    memcpy(&b, &ip, sizeof b);
    b += (pmax == Sw) & (Sw * ip < (FX_W)1);
    memcpy(&ip, &b, sizeof b);
    return ip;
}

/* the terms of one chunk against the reciprocals ip, iq of the running
 * sums (r = p ip: a division per element would halve the speed; r differs
 * from SciPy's p / S by at most an ulp, or two where ip moves up below);
 * mm: the chunk's smallest positive and largest p (entropy_chunk_sums),
 * used without q; returns 0 if a term needs the slow path (a ratio r / u
 * outside the normal range) */
FX_INLINE int FX_NAME(entropy_chunk_terms)(const FX_T *p, Py_ssize_t sp, const FX_T *q,
                                           Py_ssize_t sq, Py_ssize_t n, FX_W ip, FX_W iq,
                                           FX_W Sw, FX_W Qw, const FX_W *mm, const int has_q,
                                           double *acc_out)
{
    double tot = 0;
    /* with q, each block's r, u and logarithms first, in a loop of their
     * own, then the terms from those buffers: one loop for both chains the
     * logarithm, the selects of the term and the sum, too long for the core
     * to overlap enough elements (see docs/design.rst, "Short dependency
     * chains"); the second loop reads r back rather than recomputing it:
     * recomputed, GCC splits the product at r's select into two masked
     * loads.  Without q the term has no select, and one loop is faster */
    FX_W bad = 0, lb[FX_FOLD], rb[FX_FOLD], ub[FX_FOLD];
    int sub_r = 0;
    if (!has_q) {
        ip = FX_NAME(entropy_ip)(ip, Sw, mm[1]);
        /* p ip rounds monotonically: the smallest positive p has the
         * smallest r */
        sub_r = !(mm[0] * ip >= (FX_W)FX_TINY);
    }
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n, len = end - j0;
        FX_W acc = 0;
        /* the next chunk's first pass (its sums) then finds its data on
         * the way (docs/design.rst, "Prefetching the next block") */
        FX_PREFETCH_NEXT(p, sp, n, j0);
        if (has_q) FX_PREFETCH_NEXT(q, sq, n, j0);
        if (has_q) {
            FX_SIMD_REDUCE(+:bad)
            for (Py_ssize_t j = j0; j < end; j++) {
                FX_W pv = FX_AT(p, j, sp), qv = FX_AT(q, j, sq);
                FX_W r = FX_NAME(entropy_r)(pv, ip, Sw);
                FX_W u = FX_NAME(entropy_r)(qv, iq, Qw);
                FX_W ratio = r / u;
                /* both positive tested on p and q, not on r and u: GCC 12
                 * merges r > 0 with entropy_r's select into a select of
                 * booleans of two widths, which it cannot vectorize, and
                 * the loop ran scalar (5x slower).  An r or u that
                 * underflows to 0 gives a ratio of 0 or inf: bad */
                int both = (pv > 0) & (qv > 0);
                bad += (both & !((ratio >= (FX_W)FX_TINY) & (ratio < (FX_W)INFINITY)))
                       ? (FX_W)1 : (FX_W)0;
                rb[j - j0] = r;
                ub[j - j0] = u;
                /* a ratio that is not normal sends the row to the slow
                 * path (bad), and the term drops the others' logarithms */
                lb[j - j0] = FX_LOG_CORE(ratio);
            }
            FX_SIMD_REDUCE(+:acc)
            for (Py_ssize_t i = 0; i < len; i++) {
                FX_W r = rb[i], t = r * lb[i];
                int both = (r > 0) & (ub[i] > 0);
                acc += both ? t : (r == 0 ? (FX_W)0 : (FX_W)INFINITY);
            }
        } else {
            /* r = min(p ip, 1) is in [0, 1] (the sums checked the data):
             * the logarithm of a normal r without the special-value selects,
             * and the term's sum in the same loop.  A zero r needs no select
             * either: the core's logarithm of 0 is finite (-127 log 2), its
             * term 0.  A chunk where r may be subnormal (rare: its smallest
             * positive p times ip is below the normal range) takes the full
             * logarithm. */
            if (sub_r == 0) {
                FX_SIMD_REDUCE(+:acc)
                for (Py_ssize_t j = j0; j < end; j++) {
                    FX_W r = FX_NAME(entropy_clamp1)(FX_AT(p, j, sp) * ip);
                    acc += r * FX_LOG_CORE(r);
                }
            } else {
                FX_SIMD_REDUCE(+:acc)
                for (Py_ssize_t j = j0; j < end; j++) {
                    FX_W r = FX_NAME(entropy_clamp1)(FX_AT(p, j, sp) * ip);
                    FX_W t = r * FX_LOG(r);
                    acc += r > 0 ? t : (FX_W)0;
                }
            }
            acc = -acc;
        }
        tot += (double)acc;
    }
    *acc_out = tot;
    return bad == 0;
}

/* the sum of a chunk, its smallest positive element (inf if none) and its
 * largest (mm[0], mm[1]); 0 if an element is negative.  An infinite or NaN element needs no test of
 * its own: it makes the sum infinite or NaN, which the callers send to the
 * slow path with the sums that overflow.  The smallest positive element is
 * that of the bits less one, as unsigned integers, where 0 wraps to the
 * largest value (and a negative element is larger than any positive): a
 * select of v != 0 made GCC blend the sum as well, three times slower */
FX_INLINE int FX_NAME(entropy_chunk_sums)(const FX_T *x, Py_ssize_t s, Py_ssize_t n, double *out,
                                          FX_W *mm)
{
    double tot = 0;
    FX_W lo = 0, hi = 0;
    FX_WU blo = (FX_WU)-1;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_FOLD) {
        Py_ssize_t end = j0 + FX_FOLD < n ? j0 + FX_FOLD : n;
        FX_W acc = 0;
        FX_SIMD_PRAGMA(reduction(+:acc) reduction(min:lo,blo) reduction(max:hi))
        for (Py_ssize_t j = j0; j < end; j++) {
            FX_W v = FX_AT(x, j, s);
            FX_WU b;
            memcpy(&b, &v, sizeof b);
            b -= 1;
            acc += v;
            lo = v < lo ? v : lo;
            blo = b < blo ? b : blo;
            hi = v > hi ? v : hi;
        }
        tot += (double)acc;
    }
    *out = tot;
    mm[0] = FX_NAME(entropy_pmin)(blo);
    mm[1] = hi;
    return lo >= 0;
}

/* entropy_chunk_sums and entropy_chunk_terms (without q) of a contiguous
 * chunk; with FX_VIA_F32 a block of FX_FLUSH at a time, converted by F16C
 * into a float32 buffer on the stack (8 KiB: threads of some platforms
 * have small stacks) and handed to float32's functions, the same operations
 * without the element-wise conversions (each as costly as the logarithm):
 * the blocks' sums added in order, their extremes combined, each block's
 * terms against the chunk's extremes and reciprocal.  The row body and the
 * split path both come here, so a row's bits do not depend on the thread
 * count. */
FX_INLINE int FX_NAME(entropy_sums_unit)(const FX_T *p, Py_ssize_t n, double *out, FX_W *mm)
{
#ifdef FX_VIA_F32
    float fb[FX_FLUSH];
    double tot = 0.0;
    float lo = INFINITY, hi = 0.0f;
    int ok = 1;
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        double t;
        float bm[2];
        fx_halves_to_floats(p + j, len, fb);
        ok &= fx_f32_entropy_chunk_sums(fb, 1, len, &t, bm);
        tot += t;
        lo = bm[0] < lo ? bm[0] : lo;
        hi = bm[1] > hi ? bm[1] : hi;
    }
    *out = tot;
    mm[0] = lo;
    mm[1] = hi;
    return ok;
#else
    return FX_NAME(entropy_chunk_sums)(p, 1, n, out, mm);
#endif
}

FX_INLINE int FX_NAME(entropy_terms_unit)(const FX_T *p, Py_ssize_t n, FX_W ip, FX_W Sw,
                                          const FX_W *mm, double *acc_out)
{
#ifdef FX_VIA_F32
    float fb[FX_FLUSH];
    double tot = 0.0;
    int ok = 1;
    for (Py_ssize_t j = 0; j < n; j += FX_FLUSH) {
        Py_ssize_t len = n - j < FX_FLUSH ? n - j : FX_FLUSH;
        double t;
        fx_halves_to_floats(p + j, len, fb);
        ok &= fx_f32_entropy_chunk_terms(fb, 1, NULL, 0, len, ip, 1.0f, Sw, 1.0f, mm, 0, &t);
        tot += t;
    }
    *acc_out = tot;
    return ok;
#else
    return FX_NAME(entropy_chunk_terms)(p, 1, NULL, 0, n, ip, (FX_W)1.0, Sw, (FX_W)1.0, mm, 0,
                                        acc_out);
#endif
}

FX_INLINE double FX_NAME(entropy_row_body)(const FX_T *p, Py_ssize_t sp, const FX_T *q,
                                           Py_ssize_t sq, Py_ssize_t n, const int has_q)
{
    double Sp = 0, Sq = 0, acc = 0;
    /* the unit-stride entropy of float16 through float32 (entropy_sums_unit) */
    const int unit = !has_q && sp == 1;
    for (Py_ssize_t c = 0; c < n; c += FX_CHUNK) {
        Py_ssize_t len = n - c < FX_CHUNK ? n - c : FX_CHUNK;
        const FX_T *pc = p + c * sp, *qc = has_q ? q + c * sq : NULL;
        double cp, cq = 0, t;
        FX_W pmm[2], qmm[2];
        if (unit) {
            if (!FX_NAME(entropy_sums_unit)(pc, len, &cp, pmm)) goto slow;
        } else if (!FX_NAME(entropy_chunk_sums)(pc, sp, len, &cp, pmm)) {
            goto slow;
        }
        if (has_q && !FX_NAME(entropy_chunk_sums)(qc, sq, len, &cq, qmm)) goto slow;
        double Sp1 = Sp + cp, Sq1 = Sq + cq;
        /* an overflowing sum, or a scale 1 / S out of the working type's
         * normal range: the plain loop in double */
        if (!(Sp1 <= 1e30 && Sq1 <= 1e30)) goto slow;
        if ((Sp1 > 0 && Sp1 < 1e-30) || (has_q && Sq1 > 0 && Sq1 < 1e-30)) goto slow;
        if (Sp > 0) {
            double a = Sp / Sp1;
            if (has_q) {
                if (!(Sq > 0)) goto slow;
                acc = a * (acc + log(a / (Sq / Sq1)));
            } else {
                acc = a * (acc - log(a));
            }
        }
        if (!(Sp1 > 0) || (has_q && !(Sq1 > 0))) {
            if (c + len < n) { Sp = Sp1; Sq = Sq1; continue; }   /* zeros so far */
            goto slow;
        }
        if (unit) {
            if (!FX_NAME(entropy_terms_unit)(pc, len, (FX_W)(1.0 / Sp1), (FX_W)Sp1, pmm, &t))
                goto slow;
        } else if (!FX_NAME(entropy_chunk_terms)(pc, sp, qc, sq, len, (FX_W)(1.0 / Sp1),
                                                 (FX_W)(has_q ? 1.0 / Sq1 : 1.0), (FX_W)Sp1,
                                                 (FX_W)(has_q ? Sq1 : 1.0), pmm, has_q, &t)) {
            goto slow;
        }
        acc += t;
        Sp = Sp1;
        Sq = Sq1;
    }
    return acc;
slow:
    return FX_NAME(entropy_row_slow)(p, sp, has_q ? q : NULL, sq, n);
}

/* entropy (q NULL) or relative entropy of one row, divided by `div`
 * (log(base), or 1) */
static double FX_NAME(entropy_row)(const FX_T *p, Py_ssize_t sp, const FX_T *q, Py_ssize_t sq,
                                   Py_ssize_t n, double div)
{
    double r;
    if (n == 0) r = 0.0;
    else if (q == NULL)
        r = sp == 1 ? FX_NAME(entropy_row_body)(p, 1, NULL, 0, n, 0)
                    : FX_NAME(entropy_row_body)(p, sp, NULL, 0, n, 0);
    else
        r = (sp == 1 && sq == 1) ? FX_NAME(entropy_row_body)(p, 1, q, 1, n, 1)
                                 : FX_NAME(entropy_row_body)(p, sp, q, sq, n, 1);
    return div == 1.0 ? r : r / div;
}

/* ---- scipy.stats.entropy of a few long rows, their chunks shared among
 * threads (src/entropies.pxi): entropy_row_body's steps apart, with its
 * bits.  entropy_split_sums: chunk c's sums; fx_entropy_fold: from the chunk
 * sums in order, the running sums after each chunk and the chunks whose
 * terms count (t NULL), then the result folded from the terms in order;
 * entropy_split_terms: chunk c's terms against its running sums.  Each
 * step makes the body's calls with the body's constant strides, and the
 * fold the body's arithmetic in the body's order; 0 from any step sends the
 * row to entropy_row_slow, as the body does. */
#ifndef FX_ENTROPY_FOLD
#define FX_ENTROPY_FOLD
static inline int fx_entropy_fold(const double *cs, Py_ssize_t nch, int has_q, double *S,
                                  unsigned char *take, const double *t, double *result)
{
    double Sp = 0, Sq = 0, acc = 0;
    for (Py_ssize_t c = 0; c < nch; c++) {
        double cp = cs[2 * c], cq = has_q ? cs[2 * c + 1] : 0;
        double Sp1 = Sp + cp, Sq1 = Sq + cq;
        if (!(Sp1 <= 1e30 && Sq1 <= 1e30)) return 0;
        if ((Sp1 > 0 && Sp1 < 1e-30) || (has_q && Sq1 > 0 && Sq1 < 1e-30)) return 0;
        if (Sp > 0) {
            double a = Sp / Sp1;
            if (has_q) {
                if (!(Sq > 0)) return 0;
                acc = a * (acc + log(a / (Sq / Sq1)));
            } else {
                acc = a * (acc - log(a));
            }
        }
        if (!(Sp1 > 0) || (has_q && !(Sq1 > 0))) {
            if (c + 1 < nch) {   /* zeros so far */
                Sp = Sp1;
                Sq = Sq1;
                if (take) take[c] = 0;
                continue;
            }
            return 0;
        }
        if (take) {
            take[c] = 1;
            S[2 * c] = Sp1;
            S[2 * c + 1] = Sq1;
        }
        if (t) acc += t[c];
        Sp = Sp1;
        Sq = Sq1;
    }
    *result = acc;
    return 1;
}
#endif

/* chunk c's sums into cs[2 c], cs[2 c + 1] (p's, q's); without q, p's
 * smallest positive and largest element into mm[2 c], mm[2 c + 1], which
 * its terms need */
static int FX_NAME(entropy_split_sums)(const FX_T *p, Py_ssize_t sp, const FX_T *q,
                                       Py_ssize_t sq, Py_ssize_t n, Py_ssize_t c, double *cs,
                                       double *mm)
{
    Py_ssize_t j = c * FX_CHUNK, len = n - j < FX_CHUNK ? n - j : FX_CHUNK;
    FX_W pmm[2], qmm[2];
    int ok;
    cs[2 * c + 1] = 0;
    if (q == NULL) {
        ok = sp == 1 ? FX_NAME(entropy_sums_unit)(p + j, len, &cs[2 * c], pmm)
                     : FX_NAME(entropy_chunk_sums)(p + j * sp, sp, len, &cs[2 * c], pmm);
        mm[2 * c] = (double)pmm[0];
        mm[2 * c + 1] = (double)pmm[1];
        return ok;
    }
    if (sp == 1 && sq == 1)
        return FX_NAME(entropy_chunk_sums)(p + j, 1, len, &cs[2 * c], pmm)
               && FX_NAME(entropy_chunk_sums)(q + j, 1, len, &cs[2 * c + 1], qmm);
    return FX_NAME(entropy_chunk_sums)(p + j * sp, sp, len, &cs[2 * c], pmm)
           && FX_NAME(entropy_chunk_sums)(q + j * sq, sq, len, &cs[2 * c + 1], qmm);
}

static int FX_NAME(entropy_split_terms)(const FX_T *p, Py_ssize_t sp, const FX_T *q,
                                        Py_ssize_t sq, Py_ssize_t n, Py_ssize_t c,
                                        const double *S, const double *mm, double *t)
{
    Py_ssize_t j = c * FX_CHUNK, len = n - j < FX_CHUNK ? n - j : FX_CHUNK;
    double Sp1 = S[2 * c], Sq1 = S[2 * c + 1];
    const FX_W pmm[2] = {(FX_W)mm[2 * c], (FX_W)mm[2 * c + 1]};
    if (q == NULL) {
        if (sp == 1)
            return FX_NAME(entropy_terms_unit)(p + j, len, (FX_W)(1.0 / Sp1), (FX_W)Sp1, pmm,
                                               &t[c]);
        return FX_NAME(entropy_chunk_terms)(p + j * sp, sp, NULL, 0, len, (FX_W)(1.0 / Sp1),
                                            (FX_W)1.0, (FX_W)Sp1, (FX_W)1.0, pmm, 0, &t[c]);
    }
    if (sp == 1 && sq == 1)
        return FX_NAME(entropy_chunk_terms)(p + j, 1, q + j, 1, len, (FX_W)(1.0 / Sp1),
                                            (FX_W)(1.0 / Sq1), (FX_W)Sp1, (FX_W)Sq1, pmm, 1, &t[c]);
    return FX_NAME(entropy_chunk_terms)(p + j * sp, sp, q + j * sq, sq, len, (FX_W)(1.0 / Sp1),
                                        (FX_W)(1.0 / Sq1), (FX_W)Sp1, (FX_W)Sq1, pmm, 1, &t[c]);
}

/* ---- scipy.stats.entropy of neighbouring columns ----
 * nc <= FX_COL_W columns side by side (column i: p[i], p[sp + i], ...,
 * n classes; q likewise, or NULL), as an axis whose neighbours lie next to
 * each other in memory (entropy(p, axis=0) of a C-ordered p).  A row walk
 * would take one element of each cache line per column; here each pass
 * reads whole lines for all of its columns and the arithmetic runs across
 * the columns.  The arithmetic is the row body's (entropy_row_body), lane
 * by lane, with chunks of FX_COL_CHUNK classes, whose FX_COL_W columns
 * stay in cache between the two passes: the chunk's sums (and checks),
 * the running result rescaled to the new sums, then the chunk's terms
 * against their reciprocals.  A column that needs SciPy's special cases (a
 * negative, infinite or NaN entry, a zero, tiny or overflowing sum, a
 * ratio outside the normal range) is redone by entropy_row_slow, as a row
 * is.  out[i]: the entropy of column i divided by div. */
#ifndef FX_COL_CHUNK
#define FX_COL_CHUNK 256
#endif

/* without q, each column's reciprocal as entropy_chunk_terms takes it
 * (entropy_ip), and a column whose smallest positive p gives a subnormal r
 * counted bad (the slow path takes it) */
FX_INLINE void FX_NAME(col_entropy_scales)(FX_W *ip, const FX_W *Sw, const FX_W *phi,
                                           const FX_WU *pblo, FX_W *chunk_bad, Py_ssize_t nc)
{
    FX_PRAGMA(omp simd)
    for (Py_ssize_t i = 0; i < nc; i++) {
        FX_W v = FX_NAME(entropy_ip)(ip[i], Sw[i], phi[i]);
        ip[i] = v;
        /* no positive p: pmin is inf, nothing to check */
        chunk_bad[i] = !(FX_NAME(entropy_pmin)(pblo[i]) * v >= (FX_W)FX_TINY)
                       ? (FX_W)1 : (FX_W)0;
    }
}

FX_INLINE void FX_NAME(col_entropy_body)(const FX_T *p, Py_ssize_t sp, const FX_T *q,
                                          Py_ssize_t sq, Py_ssize_t n, Py_ssize_t nc, double div,
                                          double *out, const int has_q)
{
    double Sp[FX_COL_W], Sq[FX_COL_W], acc[FX_COL_W];
    FX_W ip[FX_COL_W], iq[FX_COL_W], Sw[FX_COL_W], Qw[FX_COL_W];
    FX_W fp[FX_COL_W], fq[FX_COL_W], bad[FX_COL_W], chunk_bad[FX_COL_W];
    FX_W live[FX_COL_W], plo[FX_COL_W], phi[FX_COL_W];
    FX_WU pblo[FX_COL_W];
    Py_ssize_t i;
    for (i = 0; i < nc; i++) {
        Sp[i] = Sq[i] = acc[i] = 0.0;
        bad[i] = 0;
    }
    for (Py_ssize_t c0 = 0; c0 < n; c0 += FX_COL_CHUNK) {
        Py_ssize_t end = c0 + FX_COL_CHUNK < n ? c0 + FX_COL_CHUNK : n;
        /* the chunk's sums, folded in the working type over FX_FOLD classes
         * (FX_COL_CHUNK is at most FX_FOLD), and its negative, NaN or inf
         * entries; without q, as the row body's entropy_chunk_sums: the
         * smallest p (negative: bad; an inf or NaN shows in the sum), the
         * smallest positive (through its bits) and the largest */
        for (i = 0; i < nc; i++) {
            fp[i] = fq[i] = chunk_bad[i] = plo[i] = phi[i] = 0;
            pblo[i] = (FX_WU)-1;
        }
        for (Py_ssize_t c = c0; c < end; c++) {
            /* (no arithmetic on a NULL q) */
            const FX_T *pc = p + c * sp, *qc = has_q ? q + c * sq : pc;
            FX_PRAGMA(omp simd)
            for (i = 0; i < nc; i++) {
                FX_W v = FX_LOAD(pc[i]);
                fp[i] += v;
                if (has_q) {
                    chunk_bad[i] += ((v >= 0) & (v < (FX_W)INFINITY)) ? (FX_W)0 : (FX_W)1;
                    FX_W u = FX_LOAD(qc[i]);
                    fq[i] += u;
                    chunk_bad[i] += ((u >= 0) & (u < (FX_W)INFINITY)) ? (FX_W)0 : (FX_W)1;
                } else {
                    FX_WU b;
                    memcpy(&b, &v, sizeof b);
                    b -= 1;
                    plo[i] = v < plo[i] ? v : plo[i];
                    pblo[i] = b < pblo[i] ? b : pblo[i];
                    phi[i] = v > phi[i] ? v : phi[i];
                }
            }
        }
        /* per column, the row body's steps between its two passes; the
         * first chunk has nothing to rescale, and without the logs of the
         * rescaling its loop vectorizes (short rows are one chunk: this
         * loop's scalar steps were most of their time) */
        if (c0 == 0) {
            for (i = 0; i < nc; i++) {
                double Sp1 = (double)fp[i], Sq1 = has_q ? (double)fq[i] : 0.0;
                int b = has_q ? chunk_bad[i] != 0 : plo[i] < 0;
                b |= !(Sp1 <= 1e30 && Sq1 <= 1e30);
                b |= (Sp1 > 0 && Sp1 < 1e-30) || (has_q && Sq1 > 0 && Sq1 < 1e-30);
                int on = Sp1 > 0 && (!has_q || Sq1 > 0);
                b |= !on && end == n;
                bad[i] = b ? (FX_W)1 : (FX_W)0;
                int use = on && !b;
                live[i] = use ? (FX_W)1 : (FX_W)0;
                ip[i] = (FX_W)(1.0 / (use ? Sp1 : 1.0));
                iq[i] = (FX_W)(1.0 / (use && has_q ? Sq1 : 1.0));
                Sw[i] = (FX_W)(use ? Sp1 : 1.0);
                Qw[i] = (FX_W)(use && has_q ? Sq1 : 1.0);
                Sp[i] = Sp1;
                Sq[i] = Sq1;
            }
        } else
        for (i = 0; i < nc; i++) {
            double Sp1 = Sp[i] + (double)fp[i], Sq1 = Sq[i] + (has_q ? (double)fq[i] : 0.0);
            int b = has_q ? chunk_bad[i] != 0 : plo[i] < 0;
            b |= !(Sp1 <= 1e30 && Sq1 <= 1e30);
            b |= (Sp1 > 0 && Sp1 < 1e-30) || (has_q && Sq1 > 0 && Sq1 < 1e-30);
            if (!b && Sp[i] > 0) {
                double a = Sp[i] / Sp1;
                if (has_q) {
                    if (!(Sq[i] > 0)) b = 1;
                    else acc[i] = a * (acc[i] + log(a / (Sq[i] / Sq1)));
                } else {
                    acc[i] = a * (acc[i] - log(a));
                }
            }
            /* a column of zeros so far: no terms (the last chunk: slow) */
            int on = Sp1 > 0 && (!has_q || Sq1 > 0);
            if (!on && end == n) b = 1;
            bad[i] += b ? (FX_W)1 : (FX_W)0;
            /* the scales of the terms; a column without them gets values
             * the working type holds (its terms are never added) */
            int use = on && !b;
            live[i] = use ? (FX_W)1 : (FX_W)0;
            ip[i] = (FX_W)(use ? 1.0 / Sp1 : 1.0);
            iq[i] = (FX_W)(use && has_q ? 1.0 / Sq1 : 1.0);
            Sw[i] = (FX_W)(use ? Sp1 : 1.0);
            Qw[i] = (FX_W)(use && has_q ? Sq1 : 1.0);
            Sp[i] = Sp1;
            Sq[i] = Sq1;
        }
        /* the chunk's terms, while it is in cache.  The logarithm without
         * its special-value selects (FX_LOG_CORE, the same bits as FX_LOG
         * for a positive normal argument): a ratio or, without q, an r that
         * is not normal makes the column bad (entropy_row_slow takes it) */
        for (i = 0; i < nc; i++) fp[i] = chunk_bad[i] = 0;
        if (!has_q) FX_NAME(col_entropy_scales)(ip, Sw, phi, pblo, chunk_bad, nc);
        for (Py_ssize_t c = c0; c < end; c++) {
            const FX_T *pc = p + c * sp, *qc = has_q ? q + c * sq : pc;
            FX_PRAGMA(omp simd)
            for (i = 0; i < nc; i++) {
                FX_W pv = FX_LOAD(pc[i]);
                if (has_q) {
                    /* an element holding all the mass is exactly 1 */
                    FX_W r = pv == Sw[i] ? (FX_W)1 : pv * ip[i];
                    FX_W qv = FX_LOAD(qc[i]);
                    FX_W u = qv == Qw[i] ? (FX_W)1 : qv * iq[i];
                    FX_W ratio = r / u;
                    FX_W t = r * FX_LOG_CORE(ratio);
                    int both = (r > 0) & (u > 0);
                    chunk_bad[i] += (both & !((ratio >= (FX_W)FX_TINY)
                                              & (ratio < (FX_W)INFINITY))) ? (FX_W)1 : (FX_W)0;
                    fp[i] += both ? t : (r == 0 ? (FX_W)0 : (FX_W)INFINITY);
                } else {
                    /* as entropy_chunk_terms: no select (r = 0 gives 0) */
                    FX_W r = FX_NAME(entropy_clamp1)(pv * ip[i]);
                    fp[i] -= r * FX_LOG_CORE(r);
                }
            }
        }
        for (i = 0; i < nc; i++) {
            acc[i] += live[i] != 0 ? (double)fp[i] : 0.0;
            bad[i] += live[i] != 0 ? chunk_bad[i] : (FX_W)0;
        }
    }
    for (i = 0; i < nc; i++) {
        double r = bad[i] == 0 ? acc[i] : FX_NAME(entropy_row_slow)(p + i, sp, has_q ? q + i : NULL,
                                                                    sq, n);
        out[i] = div == 1.0 ? r : r / div;
    }
}

/* has_q a constant in each loop, so that every loop vectorizes */
static void FX_NAME(col_entropy)(const FX_T *p, Py_ssize_t sp, const FX_T *q, Py_ssize_t sq,
                                 Py_ssize_t n, Py_ssize_t nc, double div, double *out)
{
    if (q != NULL) FX_NAME(col_entropy_body)(p, sp, q, sq, n, nc, div, out, 1);
    else FX_NAME(col_entropy_body)(p, sp, NULL, 0, n, nc, div, out, 0);
}

/* ---- scipy.stats.entropy of short rows ----
 * nrows <= FX_BLOCK_W rows of C <= FX_SMALL_ENT_C classes (row i at p + i ps,
 * unit class stride; q likewise, or NULL) copied as the columns of a block
 * on the stack, in their storage type, and taken as neighbouring columns
 * (col_entropy_body: the row body's arithmetic lane by lane; a row that
 * needs SciPy's special cases goes through entropy_row_slow, as a row
 * does).  Row by row, the vectorized passes of entropy_row_body cost more
 * than their work on rows this short: a reduction across the vector's
 * lanes, loop tails, two divisions per row.  out[i]: the entropy of row i
 * divided by div. */
static void FX_NAME(small_entropy)(const FX_T *p, const FX_T *q, Py_ssize_t nrows, Py_ssize_t C,
                                   Py_ssize_t ps, Py_ssize_t qs, double div, double *out)
{
    FX_T P[FX_SMALL_ENT_C * FX_BLOCK_W], Q[FX_SMALL_ENT_C * FX_BLOCK_W];
    if (sizeof(FX_T) == sizeof(FX_W)) {
        /* storage is the working type: the short-row transposes (register
         * transposes in the AVX2 build), which copy values unchanged */
        FX_NAME(tr_in)(p, C, ps, nrows, (FX_W *)(void *)P);
        if (q != NULL) FX_NAME(tr_in)(q, C, qs, nrows, (FX_W *)(void *)Q);
    } else {
        for (Py_ssize_t i = 0; i < nrows; i++)
            for (Py_ssize_t c = 0; c < C; c++)
                P[c * FX_BLOCK_W + i] = p[i * ps + c];
        if (q != NULL)
            for (Py_ssize_t i = 0; i < nrows; i++)
                for (Py_ssize_t c = 0; c < C; c++)
                    Q[c * FX_BLOCK_W + i] = q[i * qs + c];
    }
    FX_NAME(col_entropy)(P, FX_BLOCK_W, q != NULL ? Q : NULL, FX_BLOCK_W, C, nrows, div, out);
}

/* ---- softmax_entropy of neighbouring columns ----
 * nc <= FX_COL_W columns side by side (column i: x[i], x[s + i], ..., n
 * logits), in chunks of FX_COL_CHUNK classes that stay in cache between
 * two passes, as softmax_entropy_row takes its blocks (ent_block): the
 * chunk's maxima, the sums so far rescaled where a maximum rises, then the
 * chunk's sums against the maxima (the exps apart from the terms equal to
 * the maximum, their count, T = sum e (m - x), folded in the working type);
 * the same finish.  A NaN propagates through the sums; +inf or only -inf:
 * NaN. */
static void FX_NAME(col_softmax_entropy)(const FX_T *x, Py_ssize_t s, Py_ssize_t n,
                                         Py_ssize_t nc, double *out)
{
    FX_W bm[FX_COL_W], mw[FX_COL_W], fa[FX_COL_W], fk[FX_COL_W], ft[FX_COL_W];
    double m[FX_COL_W], sum[FX_COL_W], k[FX_COL_W], T[FX_COL_W];
    Py_ssize_t i;
    for (i = 0; i < nc; i++) {
        m[i] = -INFINITY;
        sum[i] = k[i] = T[i] = 0.0;
    }
    for (Py_ssize_t c0 = 0; c0 < n; c0 += FX_COL_CHUNK) {
        Py_ssize_t end = c0 + FX_COL_CHUNK < n ? c0 + FX_COL_CHUNK : n;
        for (i = 0; i < nc; i++) bm[i] = -INFINITY;
        for (Py_ssize_t c = c0; c < end; c++) {
            const FX_T *xc = x + c * s;
            FX_PRAGMA(omp simd)
            for (i = 0; i < nc; i++) {
                FX_W v = FX_LOAD(xc[i]);
                bm[i] = v > bm[i] ? v : bm[i];
            }
        }
        for (i = 0; i < nc; i++) {
            if ((double)bm[i] > m[i]) {
                if (k[i] > 0) {   /* rescale what was summed: m - x grows by bm - m */
                    double a = exp(m[i] - (double)bm[i]), S = k[i] + sum[i];
                    /* a = 0: the old terms vanish (and bm - m may overflow) */
                    T[i] = a == 0 ? 0.0 : a * (T[i] + S * ((double)bm[i] - m[i]));
                    sum[i] = a * S;
                    k[i] = 0;
                }
                m[i] = (double)bm[i];
            }
            /* -inf only so far is taken against 0; +inf: the column is NaN
             * (its sums are not read) */
            mw[i] = isfinite(m[i]) ? (FX_W)m[i] : (FX_W)0;
        }
        for (i = 0; i < nc; i++) fa[i] = fk[i] = ft[i] = 0;
        for (Py_ssize_t c = c0; c < end; c++) {
            const FX_T *xc = x + c * s;
            FX_PRAGMA(omp simd)
            for (i = 0; i < nc; i++) {
                FX_W v = FX_LOAD(xc[i]);
                int eq = v == mw[i];
                FX_W e = FX_EXP(v - mw[i]);
                fa[i] += eq ? (FX_W)0 : e;
                fk[i] += eq ? (FX_W)1 : (FX_W)0;
                /* e = 0 (a -inf logit) contributes 0, also where m - v
                 * overflows */
                ft[i] += e == 0 ? (FX_W)0 : e * (mw[i] - v);
            }
        }
        for (i = 0; i < nc; i++) {
            sum[i] += (double)fa[i];
            k[i] += (double)fk[i];
            T[i] += (double)ft[i];
        }
    }
    for (i = 0; i < nc; i++)
        out[i] = !isfinite(m[i]) ? NAN
               : (k[i] == 1 ? 0.0 : log(k[i])) + log1p(sum[i] / k[i]) + T[i] / (k[i] + sum[i]);
}

/* ---- softmax_cross_entropy and softmax_kl_div of neighbouring columns ----
 * nc <= FX_COL_W columns side by side (column i: x[i], x[sx + i], ..., and
 * y likewise), in chunks of FX_COL_CHUNK classes that stay in cache
 * between two passes, as softmax_pair_row takes its blocks (pair_block):
 * the chunk's maxima of x and y, the state so far rescaled where they rise,
 * then pair_block_sums' sums lane by lane (folded over FX_FOLD classes);
 * softmax_pair_row's finish. */
static void FX_NAME(col_softmax_pair)(const FX_T *x, Py_ssize_t sx, const FX_T *y,
                                      Py_ssize_t sy, Py_ssize_t n, Py_ssize_t nc, int kl,
                                      double *out)
{
    const FX_W q = (FX_W)0.001953125;   /* 2^-9, as pair_block_sums */
    FX_W bx[FX_COL_W], by[FX_COL_W], mx[FX_COL_W], my[FX_COL_W];
    FX_W ax[FX_COL_W], cx[FX_COL_W], ay[FX_COL_W], cy[FX_COL_W];
    FX_W u[FX_COL_W], v[FX_COL_W], z[FX_COL_W];
    /* softmax_pair_row's state: mx, kx, sx, my, ky, sy, U / (2 Sx), V / (2 Sx) */
    double st[8][FX_COL_W];
    int qzero[FX_COL_W];
    Py_ssize_t i;
    for (i = 0; i < nc; i++) {
        for (int j = 0; j < 8; j++) st[j][i] = 0.0;
        st[0][i] = st[3][i] = -INFINITY;
        qzero[i] = 0;
    }
    for (Py_ssize_t c0 = 0; c0 < n; c0 += FX_COL_CHUNK) {
        Py_ssize_t end = c0 + FX_COL_CHUNK < n ? c0 + FX_COL_CHUNK : n;
        for (i = 0; i < nc; i++) bx[i] = by[i] = -INFINITY;
        for (Py_ssize_t c = c0; c < end; c++) {
            const FX_T *xc = x + c * sx, *yc = y + c * sy;
            FX_PRAGMA(omp simd)
            for (i = 0; i < nc; i++) {
                FX_W a = FX_LOAD(xc[i]), b = FX_LOAD(yc[i]);
                bx[i] = a > bx[i] ? a : bx[i];
                by[i] = b > by[i] ? b : by[i];
            }
        }
        /* pair_block's rescaling, per column */
        for (i = 0; i < nc; i++) {
            double Sx = st[1][i] + st[2][i];
            if ((double)by[i] > st[3][i]) {
                if (Sx > 0 && st[4][i] > 0) {   /* my - y_c grows by by - my */
                    double hd = 0.5 * (double)by[i] - 0.5 * st[3][i];
                    st[6][i] += hd;
                    st[7][i] += hd;
                }
                if (st[4][i] > 0) {
                    double a = exp(st[3][i] - (double)by[i]);
                    st[5][i] = a * (st[4][i] + st[5][i]);
                    st[4][i] = 0;
                }
                st[3][i] = (double)by[i];
            }
            if ((double)bx[i] > st[0][i]) {
                if (Sx > 0) {   /* x_c - mx falls by bx - mx */
                    st[7][i] -= 0.5 * (double)bx[i] - 0.5 * st[0][i];
                    st[2][i] = exp(st[0][i] - (double)bx[i]) * Sx;
                    st[1][i] = 0;
                }
                st[0][i] = (double)bx[i];
            }
            /* -inf only so far is taken against 0; +inf: the column is NaN
             * (its sums are not read) */
            mx[i] = isfinite(st[0][i]) ? (FX_W)st[0][i] : (FX_W)0;
            my[i] = isfinite(st[3][i]) ? (FX_W)st[3][i] : (FX_W)0;
        }
        for (Py_ssize_t f0 = c0; f0 < end; f0 += FX_FOLD) {
            Py_ssize_t fend = f0 + FX_FOLD < end ? f0 + FX_FOLD : end;
            for (i = 0; i < nc; i++) ax[i] = cx[i] = ay[i] = cy[i] = u[i] = v[i] = z[i] = 0;
            for (Py_ssize_t c = f0; c < fend; c++) {
                const FX_T *xc = x + c * sx, *yc = y + c * sy;
                FX_PRAGMA(omp simd)
                for (i = 0; i < nc; i++) {
                    FX_W xv = FX_LOAD(xc[i]), yv = FX_LOAD(yc[i]);
                    int ex_ = xv == mx[i], ey_ = yv == my[i];
                    FX_W e = FX_EXP(xv - mx[i]);
                    FX_W f = FX_EXP(yv - my[i]);
                    ax[i] += ex_ ? (FX_W)0 : e;
                    cx[i] += ex_ ? (FX_W)1 : (FX_W)0;
                    ay[i] += ey_ ? (FX_W)0 : f;
                    cy[i] += ey_ ? (FX_W)1 : (FX_W)0;
                    int skip = (xv == -INFINITY) | (yv == -INFINITY);
                    FX_W dy = my[i] * q - yv * q;
                    u[i] += skip ? (FX_W)0 : e * dy;
                    v[i] += skip ? (FX_W)0 : e * ((xv * q - mx[i] * q) + dy);
                    z[i] += ((xv > -INFINITY) & (yv == -INFINITY)) ? (FX_W)1 : (FX_W)0;
                }
            }
            for (i = 0; i < nc; i++) {
                double S0 = st[1][i] + st[2][i];
                st[2][i] += (double)ax[i];
                st[1][i] += (double)cx[i];
                st[5][i] += (double)ay[i];
                st[4][i] += (double)cy[i];
                double S1 = st[1][i] + st[2][i];
                if (S1 > 0) {
                    double keep = S0 / S1;
                    st[6][i] = st[6][i] * keep + ((double)u[i] / S1) * 256.0;
                    st[7][i] = st[7][i] * keep + ((double)v[i] / S1) * 256.0;
                } else if (u[i] != u[i] || v[i] != v[i]) {
                    st[6][i] = st[7][i] = NAN;
                }
                qzero[i] |= z[i] > 0;
            }
        }
    }
    for (i = 0; i < nc; i++) {
        /* softmax_pair_row's finish */
        double r;
        if (!isfinite(st[0][i]) || !isfinite(st[3][i]) || isnan(st[1][i] + st[2][i])) {
            out[i] = NAN;
            continue;
        }
        if (kl) {
            double Sx = st[1][i] + st[2][i], Sy = st[4][i] + st[5][i];
            double d = (st[4][i] - st[1][i]) + (st[5][i] - st[2][i]);
            r = (d >= 0 ? log1p(d / Sx) : -log1p(-d / Sy)) + 2.0 * st[7][i];
        } else {
            r = (st[4][i] == 1 ? 0.0 : log(st[4][i])) + log1p(st[5][i] / st[4][i])
                + 2.0 * st[6][i];
        }
        out[i] = (qzero[i] && r == r) ? INFINITY : r;
    }
}

#undef FX_AT
