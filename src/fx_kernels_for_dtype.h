/*
 * fx_kernels_for_dtype.h -- every kernel family compiled for one storage
 * type.  No include guard: fx_kernels.h includes it once per row of its
 * dtype table, after setting the macros below; it includes the family
 * headers (each defines functions named FX_NAME(kernel)) and then
 * undefines those macros, so that the next storage type starts clean.
 *
 * The macros of a storage type:
 *   FX_NAME(x)         the type's name for kernel x: fx_f32_##x, ...
 *   FX_T               storage type (uint16_t for float16, float, double)
 *   FX_W               working type (float for float16/float32, double for
 *                      float64)
 *   FX_WI              signed integer as wide as FX_W (int32_t, int64_t): the
 *                      type of counts in vectorized loops over FX_W, where a
 *                      comparison's mask adds as one instruction
 *   FX_WU              the unsigned integer as wide as FX_W (a value's bits)
 *   FX_WFMA(a, b, c)   a * b + c in FX_W: one rounding on CPUs with FMA (the
 *                      build contracts nothing by itself, see fx_math.h)
 *   FX_LOAD(v)         storage -> working;  FX_STORE(w) working -> storage
 *   FX_EXP             vectorizable exp of FX_W for arguments <= 0 (x - max)
 *   FX_EXP_NORMAL      the cheaper exp for arguments in
 *                      [FX_EXP_NORMAL_MIN, 0], whose results are normal
 *   FX_EXP_NORMAL_MIN  the lower end of that range
 *   FX_EXP_ANY         vectorizable exp of FX_W for any argument
 *   FX_LOG             vectorizable log of FX_W, special values included
 *   FX_LOG_CORE(v)     log of a positive normal finite v (no special values)
 *   FX_LOG1P01         log1p of FX_W for arguments >= 0
 *   FX_LOG1P_UNIT      log1p of FX_W for arguments in [0, 1] (softplus)
 *   FX_TINY            the smallest positive normal FX_W
 *   FX_STORES_EXP      1 when the output may hold the unnormalized exp(x -
 *                      max) between two passes (softmax, the cross-entropy
 *                      gradient); 0 for float16, whose range and precision
 *                      are too small for them: the kernels compute exp twice
 *   FX_VIA_F32         optional: defined for float16 where F16C converts
 *                      blocks, which some kernels then hand to float32's
 *   FX_SHORT_X8        optional: defined when the short-row kernels take the
 *                      AVX2 routes of fx_short_rows_avx2.h (float32 in a build
 *                      with FX_HAVE_F32X8)
 *   FX_SHORT_VIA8      optional: float16 in such a build with F16C; its short
 *                      rows are converted into float32 blocks that take
 *                      float32's routes (tr_in_minmax, tr_out)
 */

/* FX_STORES_EXP as a constant the drivers can read (fx_f16_stores_exp, ...) */
enum { FX_NAME(stores_exp) = FX_STORES_EXP };
/* 1 when row_softmax_buf and row_xent take a scratch row of floats
 * (fx_f16_row_scratch, ...) */
#ifdef FX_VIA_F32
enum { FX_NAME(row_scratch) = 1 };
#else
enum { FX_NAME(row_scratch) = 0 };
#endif

#include "fx_softmax_family.h"
#include "fx_cross_entropy.h"
#include "fx_pointwise_losses.h"
#include "fx_entropies.h"
#include "fx_nll_loss.h"
#include "fx_score.h"

#undef FX_NAME
#undef FX_T
#undef FX_W
#undef FX_WI
#undef FX_WU
#undef FX_WFMA
#undef FX_LOAD
#undef FX_STORE
#undef FX_EXP
#undef FX_EXP_NORMAL
#undef FX_EXP_NORMAL_MIN
#undef FX_EXP_ANY
#undef FX_LOG
#undef FX_LOG_CORE
#undef FX_LOG1P01
#undef FX_LOG1P_UNIT
#undef FX_TINY
#undef FX_STORES_EXP
#undef FX_SHORT_X8
#undef FX_SHORT_VIA8
#undef FX_VIA_F32
