/*
 * fx_nll_loss.h -- nll_loss over a block of rows, one storage type (included
 * by fx_kernels_for_dtype.h for each of them, with the macros listed there).
 *
 * A row is one target: the loss of a class index y of weight w_y is
 * -w_y x[y] (0 for an ignored target), and its gradient row is
 * -w_y gscale at y and 0 elsewhere.  Nothing but x[y] is read from a row, so
 * a call costs O(rows) reads plus, with a gradient, the gradient's writes.
 *
 * Every operand is walked through byte strides over the row dims (the input's
 * dims without the class axis), so any layout and any strides work without a
 * copy: PyTorch's (N, C), (C,) and (N, C, d1, ..., dk).  Labels are read in
 * their own integer type (memcpy loads: a packed record field works too) and
 * checked here -- in [0, C) or equal to the ignore index -- before x is
 * touched, so a bad label never makes the kernel read outside the input.
 *
 * The arithmetic is the reference's: float16 data compute in float32 (and
 * their weights are rounded to float32 first), float32 and float64 in
 * double, so -w_y x[y] of finite float32 values cannot overflow where the
 * mean is finite.  Sums are double, in row order within a block, of the
 * terms times FX_NLL_SUM_SCALE (2^-8, exact for normal numbers): no partial
 * sum of fewer than 256 terms of either sign can overflow, so the sum is
 * infinite only where its true value is, whatever the order of the rows
 * (the caller scales back once, at the end).
 */

#ifndef FX_NLL_LOSS_COMMON
#define FX_NLL_LOSS_COMMON

#include <stdint.h>
#include <string.h>

/* NumPy's limit on dimensions (NPY_MAXDIMS) */
#define FX_NLL_MAXDIM 64

/* the factor of every summed term and weight (see above) */
#define FX_NLL_SUM_SCALE 0.00390625

/* what a call of nll_block does to each row */
#define FX_NLL_LOSS 1   /* check the label, write the loss or add it up */
#define FX_NLL_GRAD 2   /* write the gradient row */

/*
 * One call's operands.  The row dims are merged where every operand allows
 * and are walked with the last one fastest (C order of the target).  Byte
 * strides: x and g are aligned (the Python layer makes sure); labels and
 * weights are read with memcpy and may be misaligned.
 */
typedef struct {
    Py_ssize_t nd;                   /* row dims, >= 1 */
    Py_ssize_t shape[FX_NLL_MAXDIM];
    Py_ssize_t xs[FX_NLL_MAXDIM];    /* input */
    Py_ssize_t ls[FX_NLL_MAXDIM];    /* labels */
    Py_ssize_t os[FX_NLL_MAXDIM];    /* per-row losses (when out != NULL) */
    Py_ssize_t gs[FX_NLL_MAXDIM];    /* gradient (when g != NULL) */
    Py_ssize_t C, xc, gc;            /* classes; class strides of x and g */
    const char *x, *lab, *w;
    char *out, *g;
    int g_zeroed;                    /* g holds zeros: only targets are written */
    int lkind;                       /* label bytes, negative if unsigned */
    int wkind;                       /* weight bytes (2, 4, 8 float); 0: none */
    Py_ssize_t ws;
    int64_t ignore_index;
    double gscale;                   /* the gradient's factor: 1 / denominator or 1 */
} fx_nll_args;

/* the weight of class y (1 without weights) */
static inline double fx_nll_weight(const fx_nll_args *a, Py_ssize_t y)
{
    const char *p = a->w + y * a->ws;
    switch (a->wkind) {
    case 2: { uint16_t h; memcpy(&h, p, 2); return (double)fx_half_to_float(h); }
    case 4: { float f; memcpy(&f, p, 4); return (double)f; }
    case 8: { double d; memcpy(&d, p, 8); return d; }
    default: return 1.0;
    }
}

#endif /* FX_NLL_LOSS_COMMON */

/* float16 data compute in float32, as the reference (a compile-time constant) */
#define FX_NLL_HALF (sizeof(FX_T) == 2)

/*
 * n rows along the last row dim (strides xl, ll, ol, gl), labels of type LT,
 * MODE a constant.  Everything the loop reads from *a is copied to locals
 * first: the stores go through char pointers, which could alias *a.
 */
#define FX_NLL_RUN_BODY(LT, BIG, MODE)                                                 \
    for (Py_ssize_t j = 0; j < n; j++) {                                               \
        LT lv;                                                                         \
        memcpy(&lv, lp + j * ll, sizeof(LT));                                          \
        /* a uint64 label above INT64_MAX is out of range (BIG) */                     \
        int64_t y = (int64_t)lv;                                                       \
        int ignored = !(BIG) && y == ignore_index;                                     \
        if (!ignored && ((BIG) || y < 0 || y >= C)) {                                  \
            if (bad < 0) bad = j;                                                      \
            continue;                                                                  \
        }                                                                              \
        double wy = ignored ? 0.0 : wkind ? fx_nll_weight(a, y) : 1.0;                 \
        if (FX_NLL_HALF) wy = (double)(float)wy;                                       \
        if ((MODE) & FX_NLL_LOSS) {                                                    \
            double term = 0.0;                                                         \
            if (!ignored) {                                                            \
                FX_T xv;                                                               \
                memcpy(&xv, xp + j * xl + y * xc, sizeof(FX_T));                       \
                double v = (double)FX_LOAD(xv);                                        \
                term = FX_NLL_HALF ? (double)((float)-wy * (float)v) : -wy * v;        \
                /* weight 0 at a log-probability of -inf: the limit 0, as          \
                 * cross_entropy (PyTorch: 0 * inf = NaN) */                           \
                if (wy == 0.0 && isinf(v)) term = 0.0;                                 \
            }                                                                          \
            if (op != NULL) {                                                          \
                FX_T o = FX_STORE((FX_W)term);                                         \
                memcpy(op + j * ol, &o, sizeof(FX_T));                                 \
            }                                                                          \
            lsum += term * FX_NLL_SUM_SCALE;                                           \
            wsum += wy * FX_NLL_SUM_SCALE;                                             \
        }                                                                              \
        if ((MODE) & FX_NLL_GRAD) {                                                    \
            char *gr = gp + j * gl;                                                    \
            if (!zeroed) {                                                             \
                if (gc == (Py_ssize_t)sizeof(FX_T))                                    \
                    memset(gr, 0, (size_t)C * sizeof(FX_T));                           \
                else                                                                   \
                    for (Py_ssize_t c = 0; c < C; c++)                                 \
                        memset(gr + c * gc, 0, sizeof(FX_T));                          \
            }                                                                          \
            if (!ignored) {                                                            \
                /* -w_y gscale, in the working type (float for float16) */            \
                FX_T gv = FX_NLL_HALF ? FX_STORE((FX_W)(-(float)wy * (float)gscale))   \
                                      : FX_STORE((FX_W)(-wy * gscale));                \
                memcpy(gr + y * gc, &gv, sizeof(FX_T));                                \
            }                                                                          \
        }                                                                              \
    }

#define FX_NLL_RUN_MODES(LT, BIG)                                                      \
    if (mode == FX_NLL_LOSS) { FX_NLL_RUN_BODY(LT, BIG, FX_NLL_LOSS) }                 \
    else if (mode == FX_NLL_GRAD) { FX_NLL_RUN_BODY(LT, BIG, FX_NLL_GRAD) }            \
    else { FX_NLL_RUN_BODY(LT, BIG, FX_NLL_LOSS | FX_NLL_GRAD) }

/* Returns the first row of the run with a bad label, or -1. */
static Py_ssize_t FX_NAME(nll_run)(const fx_nll_args *a, Py_ssize_t n, Py_ssize_t xo,
                                   Py_ssize_t lo, Py_ssize_t oo, Py_ssize_t go,
                                   Py_ssize_t xl, Py_ssize_t ll, Py_ssize_t ol, Py_ssize_t gl,
                                   int mode, double *sums)
{
    const Py_ssize_t C = a->C, xc = a->xc, gc = a->gc;
    const char *lp = a->lab + lo, *xp = a->x + xo;
    char *op = a->out != NULL ? a->out + oo : NULL;
    char *gp = a->g != NULL ? a->g + go : NULL;
    const int wkind = a->wkind;
    const int64_t ignore_index = a->ignore_index;
    const double gscale = a->gscale;
    Py_ssize_t bad = -1;
    double lsum = 0.0, wsum = 0.0;
    /* a gradient that is zero already (a new zeroed array) gets only its
     * targets written.  Otherwise, one whose rows are strided but whose run
     * is contiguous (PyTorch's (N, C, d) layout) is zeroed as C contiguous
     * stretches of the run first: in a pass that reads no input (after the
     * check), or into the kernel's own array */
    int zeroed = a->g_zeroed;
    if (!zeroed && (mode & FX_NLL_GRAD) && gl == (Py_ssize_t)sizeof(FX_T)
            && gc != (Py_ssize_t)sizeof(FX_T) && n > 1) {
        for (Py_ssize_t c = 0; c < C; c++)
            memset(gp + c * gc, 0, (size_t)n * sizeof(FX_T));
        zeroed = 1;
    }
    switch (a->lkind) {
    case 1: FX_NLL_RUN_MODES(int8_t, 0) break;
    case 2: FX_NLL_RUN_MODES(int16_t, 0) break;
    case 4: FX_NLL_RUN_MODES(int32_t, 0) break;
    case -1: FX_NLL_RUN_MODES(uint8_t, 0) break;
    case -2: FX_NLL_RUN_MODES(uint16_t, 0) break;
    case -4: FX_NLL_RUN_MODES(uint32_t, 0) break;
    case -8: FX_NLL_RUN_MODES(uint64_t, lv > (uint64_t)INT64_MAX) break;
    default: FX_NLL_RUN_MODES(int64_t, 0) break;
    }
    sums[0] += lsum;
    sums[1] += wsum;
    return bad;
}

/*
 * Rows [r0, r1) in C order of the row dims (the flat index of the target).
 * mode: FX_NLL_LOSS and/or FX_NLL_GRAD.  Adds the block's losses and target
 * weights to sums[0] and sums[1], in row order; returns the first row with a
 * bad label (its flat index), or -1.
 */
static Py_ssize_t FX_NAME(nll_block)(const fx_nll_args *a, Py_ssize_t r0, Py_ssize_t r1,
                                     int mode, double *sums)
{
    Py_ssize_t idx[FX_NLL_MAXDIM];
    const Py_ssize_t nd = a->nd, last = nd - 1, len = a->shape[last];
    Py_ssize_t bad = -1, rem = r0;
    for (Py_ssize_t d = last; d >= 0; d--) {
        idx[d] = rem % a->shape[d];
        rem /= a->shape[d];
    }
    for (Py_ssize_t r = r0; r < r1;) {
        Py_ssize_t xo = 0, lo = 0, oo = 0, go = 0;
        for (Py_ssize_t d = 0; d < nd; d++) {
            xo += idx[d] * a->xs[d];
            lo += idx[d] * a->ls[d];
            oo += idx[d] * a->os[d];
            go += idx[d] * a->gs[d];
        }
        Py_ssize_t n = len - idx[last] < r1 - r ? len - idx[last] : r1 - r;
        Py_ssize_t b = FX_NAME(nll_run)(a, n, xo, lo, oo, go, a->xs[last], a->ls[last],
                                        a->os[last], a->gs[last], mode, sums);
        if (b >= 0 && bad < 0) bad = r + b;
        r += n;
        /* the next run: carry into the outer dims */
        idx[last] += n;
        for (Py_ssize_t d = last; d > 0 && idx[d] == a->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
    return bad;
}

#undef FX_NLL_RUN_BODY
#undef FX_NLL_RUN_MODES
#undef FX_NLL_HALF
