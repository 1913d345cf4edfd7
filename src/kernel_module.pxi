# What every kernel module holds, whatever its CPU target: the build facts
# and the drivers of every family.  Each driver cimports what it uses
# (fx_kernels.pxd holds the shared part), so their order here does not
# matter; a new family is one more include.

from fx_kernels cimport (FX_OPENMP, fx_max_threads, fx_cpu_has_avx2_fma, fx_cpu_has_avx512,
                        fx_formats_init)
cimport numpy as cnp

# NumPy's C API (fx_get_buffer reads the operands' fields through it) and
# the static format strings of fx_get_buffer, before any driver runs
cnp.import_array()
fx_formats_init()


cdef object no_memory(double nbytes):
    """The MemoryError of a driver whose working memory (partial sums per
    row and block of classes, or per thread) could not be allocated: its
    size, as NumPy's own allocation errors give one."""
    size = (f"{nbytes / 2.0**30:.3g} GiB" if nbytes >= 2.0**30
            else f"{nbytes / 2.0**20:.3g} MiB")
    return MemoryError(f"out of memory: cannot allocate {size} of working memory for this call")


include "softmax_family.pxi"
include "losses.pxi"
include "pointwise_losses.pxi"
include "entropies.pxi"
include "nll_loss.pxi"
include "score.pxi"
include "state_merge.pxi"


def openmp_enabled():
    """True when this module was compiled with OpenMP."""
    return bool(FX_OPENMP)


def max_threads():
    """The OpenMP default thread count (1 without OpenMP)."""
    return fx_max_threads()


def cpu_has_avx2_fma():
    """True when the CPU and the OS support AVX2 and FMA."""
    return bool(fx_cpu_has_avx2_fma())


def cpu_has_avx512():
    """True when the CPU and the OS support the avx512 module's instructions
    (AVX2, FMA, F16C, AVX-512 F, VL, BW and DQ)."""
    return bool(fx_cpu_has_avx512())
