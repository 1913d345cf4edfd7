"""Shared fixtures and the hypothesis profile of the fastxent test suite."""

import os
import sys

import numpy as np
import pytest

# pytest runs with --import-mode=importlib, which does not put this folder on
# sys.path; the test modules import the shared zoo as ``arrays``.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is optional; test_properties skips without it
    pass
else:
    # the default run (and CI) draws the same examples every time, so a
    # failure is reproducible and the suite's verdict does not depend on
    # the draw; FASTXENT_HYPOTHESIS_PROFILE=thorough draws fresh random
    # examples, many more of them, to hunt for new failures
    settings.register_profile(
        "fastxent",
        max_examples=60,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
    )
    settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True)
    settings.load_profile(os.environ.get("FASTXENT_HYPOTHESIS_PROFILE", "fastxent"))

@pytest.fixture(scope="session")
def fx():
    """The compiled package under test."""
    import fastxent

    return fastxent


@pytest.fixture(scope="session")
def ref():
    """The plain-NumPy twin shipped in the package."""
    from fastxent import reference

    return reference


@pytest.fixture(scope="session")
def scipy_special():
    """scipy.special, or skip."""
    return pytest.importorskip("scipy.special")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or skip."""
    return pytest.importorskip("torch")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def cpu_paths():
    """The CPU code paths usable on this machine."""
    import fastxent

    return list(fastxent.get_config()["cpu_paths"])


@pytest.fixture(scope="module")
def torch_on_one_thread():
    """PyTorch's thread pool costs far more than the tiny tensors of the
    tests, and spins badly when the cores are busy: one thread for the module,
    restored afterwards.  A module asks for it with
    ``pytestmark = pytest.mark.usefixtures("torch_on_one_thread")``."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["baseline", "avx2", "avx512"])
def module(request):
    """Each compiled kernel module this machine runs, made the active one
    (the drivers below the Python layers: test_kernel_entry,
    test_small_calls)."""
    import fastxent
    from fastxent import _dispatch

    if request.param not in fastxent.get_config()["cpu_paths"]:
        pytest.skip(f"the {request.param} kernels do not run on this machine")
    with fastxent.cpu_path(request.param):
        yield _dispatch.kernels()
