# The kernels compiled for the "baseline" CPU target (flags in setup.py).
# fastxent._dispatch picks one module at import time from the CPU's features.

include "softmax_family.pxi"
include "losses.pxi"
include "pointwise_losses.pxi"
include "entropies.pxi"
include "nll_loss.pxi"

CPU_PATH = "baseline"
