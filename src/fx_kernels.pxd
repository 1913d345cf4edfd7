# Declarations of the C kernels (fx_rows.h) and platform helpers
# (fx_platform.h), shared by every CPU-specific extension module.

from libc.stdint cimport uint16_t, int64_t

cdef extern from "fx_platform.h" nogil:
    int FX_OPENMP
    int fx_max_threads()
    int fx_cpu_has_avx2_fma()

cdef extern from "fx_kernels.h" nogil:
    Py_ssize_t FX_CHUNK
    Py_ssize_t FX_FLUSH
    Py_ssize_t FX_SMALL_C
    Py_ssize_t FX_BLOCK_W
    double *fx_align64(double *p)

    ctypedef struct fx_lse_state:
        double m
        double k
        double s
    void fx_state_merge(fx_lse_state *a, double m, double k, double s)

    uint16_t fx_float_to_half(float)
    float fx_half_to_float(uint16_t)
    double fx_lse_finish(double m, double k, double s, int want_sign, double *sgn)
    double fx_lse_naive(double total, int want_sign, double *sgn)
    double fx_log_softmax_offset(double m, double k, double s, double *m_eff)

    # one block per storage type; W is the working type (float for float16)
    float fx_f32_max(const float *x, Py_ssize_t n, Py_ssize_t s)
    fx_lse_state fx_f32_chunk_state(const float *x, Py_ssize_t n, Py_ssize_t s)
    float fx_f32_naive(const float *x, Py_ssize_t n, Py_ssize_t s, const float *b, Py_ssize_t bs)
    double fx_f32_row_lse(const float *x, Py_ssize_t n, Py_ssize_t s, const float *b, Py_ssize_t bs, int want_sign, double *sgn)
    double fx_f32_store_exp(const float *x, Py_ssize_t n, Py_ssize_t s, float m, float *out, Py_ssize_t os, double *k)
    void fx_f32_divide(float *out, Py_ssize_t n, Py_ssize_t os, float d)
    void fx_f32_fill(float *out, Py_ssize_t n, Py_ssize_t os, float v)
    void fx_f32_exp_div(const float *x, Py_ssize_t n, Py_ssize_t s, float m, float d, float *out, Py_ssize_t os)
    void fx_f32_shift(const float *x, Py_ssize_t n, Py_ssize_t s, float m, float c, float *out, Py_ssize_t os)
    void fx_f32_row_softmax(const float *x, Py_ssize_t n, Py_ssize_t s, float *out, Py_ssize_t os)
    void fx_f32_row_log_softmax(const float *x, Py_ssize_t n, Py_ssize_t s, float *out, Py_ssize_t os)
    void fx_f32_col_lse(const float *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, float *mx, double *scratch, int want_sign, double *out, double *sgn)
    void fx_f32_col_softmax(const float *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, float *mx, double *scratch, int logarithm, float *out, Py_ssize_t osc, Py_ssize_t osi)
    double fx_f32_row_xent(const float *x, Py_ssize_t n, Py_ssize_t s, Py_ssize_t y, const float *q, Py_ssize_t qs, const float *w, Py_ssize_t ws, double eps, float *g, Py_ssize_t gs, double gscale, double *bscratch)
    void fx_f32_small_xent(const float *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, const int64_t *lab, Py_ssize_t ls, int64_t ignore_index, const float *w, Py_ssize_t ws, double eps, float *g, Py_ssize_t grs, Py_ssize_t gcs, double gscale, float *T, double *bscratch, double *loss)
    void fx_f32_col_xent(const float *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, const int64_t *lab, Py_ssize_t ls, int64_t ignore_index, const float *w, Py_ssize_t ws, double eps, float *g, Py_ssize_t gsc, Py_ssize_t gsi, double gscale, float *mx, double *scratch, unsigned char *kind, double *bscratch, double *loss)
    void fx_f32_small_lse(const float *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, float *T, int want_sign, float *out, Py_ssize_t os, float *sgn, Py_ssize_t gs)
    void fx_f32_small_softmax(const float *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, float *T, int logarithm, float *out, Py_ssize_t ors, Py_ssize_t osc)

    double fx_f64_max(const double *x, Py_ssize_t n, Py_ssize_t s)
    fx_lse_state fx_f64_chunk_state(const double *x, Py_ssize_t n, Py_ssize_t s)
    double fx_f64_naive(const double *x, Py_ssize_t n, Py_ssize_t s, const double *b, Py_ssize_t bs)
    double fx_f64_row_lse(const double *x, Py_ssize_t n, Py_ssize_t s, const double *b, Py_ssize_t bs, int want_sign, double *sgn)
    double fx_f64_store_exp(const double *x, Py_ssize_t n, Py_ssize_t s, double m, double *out, Py_ssize_t os, double *k)
    void fx_f64_divide(double *out, Py_ssize_t n, Py_ssize_t os, double d)
    void fx_f64_fill(double *out, Py_ssize_t n, Py_ssize_t os, double v)
    void fx_f64_exp_div(const double *x, Py_ssize_t n, Py_ssize_t s, double m, double d, double *out, Py_ssize_t os)
    void fx_f64_shift(const double *x, Py_ssize_t n, Py_ssize_t s, double m, double c, double *out, Py_ssize_t os)
    void fx_f64_row_softmax(const double *x, Py_ssize_t n, Py_ssize_t s, double *out, Py_ssize_t os)
    void fx_f64_row_log_softmax(const double *x, Py_ssize_t n, Py_ssize_t s, double *out, Py_ssize_t os)
    void fx_f64_col_lse(const double *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, double *mx, double *scratch, int want_sign, double *out, double *sgn)
    void fx_f64_col_softmax(const double *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, double *mx, double *scratch, int logarithm, double *out, Py_ssize_t osc, Py_ssize_t osi)
    double fx_f64_row_xent(const double *x, Py_ssize_t n, Py_ssize_t s, Py_ssize_t y, const double *q, Py_ssize_t qs, const double *w, Py_ssize_t ws, double eps, double *g, Py_ssize_t gs, double gscale, double *bscratch)
    void fx_f64_small_xent(const double *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, const int64_t *lab, Py_ssize_t ls, int64_t ignore_index, const double *w, Py_ssize_t ws, double eps, double *g, Py_ssize_t grs, Py_ssize_t gcs, double gscale, double *T, double *bscratch, double *loss)
    void fx_f64_col_xent(const double *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, const int64_t *lab, Py_ssize_t ls, int64_t ignore_index, const double *w, Py_ssize_t ws, double eps, double *g, Py_ssize_t gsc, Py_ssize_t gsi, double gscale, double *mx, double *scratch, unsigned char *kind, double *bscratch, double *loss)
    void fx_f64_small_lse(const double *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, double *T, int want_sign, double *out, Py_ssize_t os, double *sgn, Py_ssize_t gs)
    void fx_f64_small_softmax(const double *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, double *T, int logarithm, double *out, Py_ssize_t ors, Py_ssize_t osc)

    float fx_f16_max(const uint16_t *x, Py_ssize_t n, Py_ssize_t s)
    fx_lse_state fx_f16_chunk_state(const uint16_t *x, Py_ssize_t n, Py_ssize_t s)
    float fx_f16_naive(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, const uint16_t *b, Py_ssize_t bs)
    double fx_f16_row_lse(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, const uint16_t *b, Py_ssize_t bs, int want_sign, double *sgn)
    void fx_f16_fill(uint16_t *out, Py_ssize_t n, Py_ssize_t os, float v)
    void fx_f16_exp_div(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, float m, float d, uint16_t *out, Py_ssize_t os)
    void fx_f16_shift(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, float m, float c, uint16_t *out, Py_ssize_t os)
    void fx_f16_row_softmax(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, uint16_t *out, Py_ssize_t os)
    void fx_f16_row_log_softmax(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, uint16_t *out, Py_ssize_t os)
    void fx_f16_col_lse(const uint16_t *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, float *mx, double *scratch, int want_sign, double *out, double *sgn)
    void fx_f16_col_softmax(const uint16_t *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, float *mx, double *scratch, int logarithm, uint16_t *out, Py_ssize_t osc, Py_ssize_t osi)
    double fx_f16_row_xent(const uint16_t *x, Py_ssize_t n, Py_ssize_t s, Py_ssize_t y, const uint16_t *q, Py_ssize_t qs, const uint16_t *w, Py_ssize_t ws, double eps, uint16_t *g, Py_ssize_t gs, double gscale, double *bscratch)
    void fx_f16_small_xent(const uint16_t *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, const int64_t *lab, Py_ssize_t ls, int64_t ignore_index, const uint16_t *w, Py_ssize_t ws, double eps, uint16_t *g, Py_ssize_t grs, Py_ssize_t gcs, double gscale, float *T, double *bscratch, double *loss)
    void fx_f16_col_xent(const uint16_t *x, Py_ssize_t C, Py_ssize_t sc, Py_ssize_t W, const int64_t *lab, Py_ssize_t ls, int64_t ignore_index, const uint16_t *w, Py_ssize_t ws, double eps, uint16_t *g, Py_ssize_t gsc, Py_ssize_t gsi, double gscale, float *mx, double *scratch, unsigned char *kind, double *bscratch, double *loss)
    void fx_f16_small_lse(const uint16_t *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, float *T, int want_sign, uint16_t *out, Py_ssize_t os, uint16_t *sgn, Py_ssize_t gs)
    void fx_f16_small_softmax(const uint16_t *x, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, float *T, int logarithm, uint16_t *out, Py_ssize_t ors, Py_ssize_t osc)

    # element-wise losses (fx_pointwise_impl.h) and row entropies (fx_entropy_impl.h)
    double fx_f32_kl_div_seg(const float *x, Py_ssize_t xs, const float *t, Py_ssize_t ts, Py_ssize_t n, int log_target, float *out, Py_ssize_t os, float *g, Py_ssize_t gs, double gscale)
    double fx_f32_bce_seg(const float *x, Py_ssize_t xs, const float *y, Py_ssize_t ys, const float *w, Py_ssize_t ws, const float *pw, Py_ssize_t pws, Py_ssize_t n, float *out, Py_ssize_t os, float *g, Py_ssize_t gs, double gscale)
    double fx_f32_softmax_entropy_row(const float *x, Py_ssize_t n, Py_ssize_t s)
    double fx_f32_softmax_pair_row(const float *x, Py_ssize_t sx, const float *y, Py_ssize_t sy, Py_ssize_t n, int kl)
    double fx_f32_entropy_row(const float *p, Py_ssize_t sp, const float *q, Py_ssize_t sq, Py_ssize_t n, double div)

    double fx_f64_kl_div_seg(const double *x, Py_ssize_t xs, const double *t, Py_ssize_t ts, Py_ssize_t n, int log_target, double *out, Py_ssize_t os, double *g, Py_ssize_t gs, double gscale)
    double fx_f64_bce_seg(const double *x, Py_ssize_t xs, const double *y, Py_ssize_t ys, const double *w, Py_ssize_t ws, const double *pw, Py_ssize_t pws, Py_ssize_t n, double *out, Py_ssize_t os, double *g, Py_ssize_t gs, double gscale)
    double fx_f64_softmax_entropy_row(const double *x, Py_ssize_t n, Py_ssize_t s)
    double fx_f64_softmax_pair_row(const double *x, Py_ssize_t sx, const double *y, Py_ssize_t sy, Py_ssize_t n, int kl)
    double fx_f64_entropy_row(const double *p, Py_ssize_t sp, const double *q, Py_ssize_t sq, Py_ssize_t n, double div)

    double fx_f16_kl_div_seg(const uint16_t *x, Py_ssize_t xs, const uint16_t *t, Py_ssize_t ts, Py_ssize_t n, int log_target, uint16_t *out, Py_ssize_t os, uint16_t *g, Py_ssize_t gs, double gscale)
    double fx_f16_bce_seg(const uint16_t *x, Py_ssize_t xs, const uint16_t *y, Py_ssize_t ys, const uint16_t *w, Py_ssize_t ws, const uint16_t *pw, Py_ssize_t pws, Py_ssize_t n, uint16_t *out, Py_ssize_t os, uint16_t *g, Py_ssize_t gs, double gscale)
    double fx_f16_softmax_entropy_row(const uint16_t *x, Py_ssize_t n, Py_ssize_t s)
    double fx_f16_softmax_pair_row(const uint16_t *x, Py_ssize_t sx, const uint16_t *y, Py_ssize_t sy, Py_ssize_t n, int kl)
    double fx_f16_entropy_row(const uint16_t *p, Py_ssize_t sp, const uint16_t *q, Py_ssize_t sq, Py_ssize_t n, double div)
    void fx_f32_small_entropies(const float *x, const float *y, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t yrs, int kind, float *T, float *out, Py_ssize_t os)
    void fx_f64_small_entropies(const double *x, const double *y, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t yrs, int kind, double *T, double *out, Py_ssize_t os)
    void fx_f16_small_entropies(const uint16_t *x, const uint16_t *y, Py_ssize_t nrows, Py_ssize_t C, Py_ssize_t rs, Py_ssize_t yrs, int kind, float *T, uint16_t *out, Py_ssize_t os)

