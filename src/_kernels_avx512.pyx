# The kernels compiled for the "avx512" CPU target (flags in setup.py).
# fastxent._dispatch picks one module at import time from the CPU's features.

include "kernel_module.pxi"

CPU_PATH = "avx512"
