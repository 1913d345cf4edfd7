"""Choice of the compiled kernel module, thread counts and build facts.

The kernels are compiled once per CPU target (``fastxent._kernels_baseline``
everywhere; ``fastxent._kernels_avx2`` and ``fastxent._kernels_avx512`` on
x86-64).  At import the best target the CPU supports is chosen;
``FASTXENT_CPU=baseline`` (or ``avx2``, ``avx512``) in the environment forces
one, and :func:`cpu_path` switches temporarily.
"""
import contextlib
import importlib
import os

import numpy as np

try:
    from . import _kernels_baseline
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "fastxent's compiled kernels could not be loaded. Install the package "
        "(`pip install .`) rather than importing it from the source tree; if it "
        f"was installed, its OpenMP runtime may be missing. Original error: {exc}"
    ) from exc

# every CPU path, each needing the one before it: the order of preference,
# worst first
_PATHS = ("baseline", "avx2", "avx512")
_MODULES = {"baseline": _kernels_baseline}
# an x86-64 module's own initialization runs its instructions: import it
# only on a CPU that has them (and none when the baseline is forced)
if os.environ.get("FASTXENT_CPU", "").strip().lower() != "baseline":
    for _name, _has in zip(_PATHS[1:], (_kernels_baseline.cpu_has_avx2_fma,
                                        _kernels_baseline.cpu_has_avx512)):
        if not _has():
            break
        try:
            _MODULES[_name] = importlib.import_module(f"fastxent._kernels_{_name}")
        except ImportError:  # not built (non-x86 machine)
            break

# GNU libgomp cannot start a parallel region in a child forked after the
# parent used its thread pool: the child waits forever for pool threads that
# fork did not copy (GCC bug 60035).  Whether the pool was started cannot be
# told from here: the runtime is shared with every library that loaded
# libgomp.so.1 first (PyTorch's copy serves fastxent when torch is imported
# before it).  So a forked child runs every kernel on one thread, whatever
# n_threads asks; spawn and forkserver children start clean and keep threads.
_forked = False


def _after_fork_in_child():
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# best first
_PREFERENCE = [p for p in reversed(_PATHS) if p in _MODULES]


def _default_path():
    forced = os.environ.get("FASTXENT_CPU", "").strip().lower()
    if forced:
        if forced not in _PATHS:
            raise ImportError(f"FASTXENT_CPU={forced!r} is not a CPU path: choose one of "
                              f"{', '.join(map(repr, _PATHS))} (here {list(_MODULES)})")
        if forced not in _MODULES:
            raise ImportError(f"FASTXENT_CPU={forced!r} is not usable on this machine; "
                              f"choose one of {list(_MODULES)}")
        return forced
    return _PREFERENCE[0]


# the kernels, by the name of their Python entry
_KERNELS = ("logsumexp", "softmax", "cross_entropy", "kl_div", "bce_with_logits",
            "row_entropies", "lse_states", "score_states",
            "entropy_states", "merge_states")
# the compute dtypes of the kernels
_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _table(module):
    """{kernel name: {compute dtype: entry}} of `module`.  Each entry serves
    every dtype: it reads its operands through their buffers and picks the
    specialization of the element type it finds there (checked against
    every operand); the table refuses any other dtype."""
    return {name: {d: getattr(module, name) for d in _DTYPES} for name in _KERNELS}


_TABLES = {path: _table(module) for path, module in _MODULES.items()}

# the module in use and its table: plain globals, read on every call (a
# thread-local would cost more than a small kernel call)
active = _MODULES[_default_path()]
_active_table = _TABLES[active.CPU_PATH]


def kernels():
    """The kernel module in use."""
    return active


def kernel(name, dtype):
    """The entry of kernel `name` of the module in use for data of the
    compute `dtype` (float16, float32 or float64)."""
    return _active_table[name][dtype]


@contextlib.contextmanager
def cpu_path(name):
    """Run the enclosed calls on the named CPU code path.

    ``name`` is one of ``get_config()['cpu_paths']``. Meant for checking that
    every path gives the same results: the switch is process-wide, so do not
    use it while other threads call fastxent.
    """
    global active, _active_table
    if name not in _MODULES:
        raise ValueError(f"cpu path {name!r} is not available here; "
                         f"choose one of {list(_MODULES)}")
    previous = active
    active, _active_table = _MODULES[name], _TABLES[name]
    try:
        yield
    finally:
        active, _active_table = previous, _TABLES[previous.CPU_PATH]


def resolve_threads(n_threads):
    """The thread count for a call: n_threads, or the OpenMP default; 1 in a
    forked child (checked all the same)."""
    if n_threads is None:
        return 1 if _forked else _kernels_baseline.max_threads()
    n = checked_threads(n_threads)
    return 1 if _forked else n


def checked_threads(n_threads):
    """A given `n_threads` checked (TypeError, ValueError) and capped at
    2^16, as every call takes it."""
    try:
        if isinstance(n_threads, (bool, np.bool_)):
            raise TypeError
        n = int(n_threads.__index__())   # a 1-element array's raises TypeError too
    except (TypeError, AttributeError):
        raise TypeError(f"n_threads must be None or a positive integer, "
                        f"got {n_threads!r}") from None
    if n < 1:
        raise ValueError(f"n_threads must be None or a positive integer, got {n}")
    return min(n, 1 << 16)


def get_config():
    """How this fastxent was built and what it runs.

    Returns
    -------
    dict
        ``openmp``: compiled with OpenMP (False: the kernels run serially);
        ``cpu_path``: the code path in use; ``cpu_paths``: the paths this
        machine can run; ``max_threads``: the default thread count
        (``OMP_NUM_THREADS``, or threadpoolctl's limit; 1 in a forked
        child); ``serial_after_fork``: True in a process made by
        ``os.fork()`` (a ``multiprocessing`` worker with the ``fork`` start
        method), where every call runs on one thread because the OpenMP
        runtime cannot start threads there.
    """
    return {
        "openmp": _kernels_baseline.openmp_enabled(),
        "cpu_path": kernels().CPU_PATH,
        "cpu_paths": list(_MODULES),
        "max_threads": resolve_threads(None),
        "serial_after_fork": _forked,
    }


def show_config():
    """Print :func:`get_config` and the versions of fastxent and NumPy."""
    from . import __version__
    print(f"fastxent {__version__} (NumPy {np.__version__})")
    for key, value in get_config().items():
        print(f"  {key}: {value}")
