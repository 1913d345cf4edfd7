"""Forked children compute, on one thread, what the parent computes.

GNU libgomp hangs a child forked after the parent used its thread pool
(GCC bug 60035); fastxent runs serially in forked children instead.  Every
child here runs under a deadline, so a regression fails instead of hanging
the suite.
"""

import multiprocessing
import os
import pickle
import signal
import sys
import time

import numpy as np
import pytest

import fastxent

from arrays import assert_bitwise_equal

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"),
                                reason="needs os.fork")

DEADLINE = 60.0


def _inputs():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, 1024))             # rows: two threads in the parent
    long_row = 3 * rng.standard_normal((1, 300000))  # split inside the row
    labels = rng.integers(0, 1024, 256)
    p = fastxent.softmax(rng.standard_normal((256, 1024)).astype(np.float32), axis=1)
    return x, long_row, labels, p


def _calls(n_threads):
    """Results of threaded-size calls of each driver family."""
    x, long_row, labels, p = _inputs()
    x32 = x.astype(np.float32)
    return [
        fastxent.logsumexp(x, axis=1, n_threads=n_threads),
        fastxent.log_softmax(long_row, axis=1, n_threads=n_threads),
        fastxent.softmax(x32.T, axis=0, n_threads=n_threads),
        fastxent.cross_entropy(x, labels, reduction="sum", n_threads=n_threads),
        fastxent.kl_div(np.log(p), p[::-1], reduction="batchmean", n_threads=n_threads),
        fastxent.softmax_entropy(x32, n_threads=n_threads),
        fastxent.entropy(p, axis=1, n_threads=n_threads),
    ]


def _in_forked_child(fn):
    """fn() run in a child made by os.fork(), its pickled result read back
    before DEADLINE; the child is killed when it does not finish."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(r)
            with os.fdopen(w, "wb") as f:
                pickle.dump(fn(), f)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    start = time.monotonic()
    with os.fdopen(r, "rb") as f:
        os.set_blocking(f.fileno(), False)
        data = b""
        while True:
            chunk = f.read()
            if chunk:
                data += chunk
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                os.set_blocking(f.fileno(), True)
                data += f.read() or b""
                break
            if time.monotonic() - start > DEADLINE:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child did not finish within {DEADLINE} s")
            time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    return pickle.loads(data)


def _child_report():
    return fastxent.get_config(), _calls(None), _calls(3)


def _grandchild_report():
    return _in_forked_child(_child_report)


@pytest.fixture(scope="module")
def parent_results():
    """The parent's results, computed with threads (the pool is started)."""
    if not fastxent.get_config()["openmp"]:
        pytest.skip("a serial build starts no thread pool")
    return _calls(2)


def test_parent_is_not_serial():
    assert fastxent.get_config()["serial_after_fork"] is False


def test_os_fork_child_runs_serially_and_agrees(parent_results):
    config, default, three = _in_forked_child(_child_report)
    assert config["serial_after_fork"] is True
    assert config["max_threads"] == 1
    for got in (default, three):
        for i, (a, b) in enumerate(zip(got, parent_results)):
            assert_bitwise_equal(a, b, f"call {i} in the forked child")


def test_grandchild_agrees(parent_results):
    config, default, three = _in_forked_child(_grandchild_report)
    assert config["serial_after_fork"] is True
    for i, (a, b) in enumerate(zip(default, parent_results)):
        assert_bitwise_equal(a, b, f"call {i} in the grandchild")


def test_multiprocessing_fork_pool(parent_results):
    x, _, labels, _ = _inputs()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        config = pool.apply_async(fastxent.get_config).get(timeout=DEADLINE)
        jobs = [pool.apply_async(fastxent.logsumexp, (x[i::2],), {"axis": 1, "n_threads": 2})
                for i in range(2)]
        loss = pool.apply_async(fastxent.cross_entropy, (x, labels),
                                {"reduction": "sum"}).get(timeout=DEADLINE)
        halves = [job.get(timeout=DEADLINE) for job in jobs]
    assert config["serial_after_fork"] is True
    assert_bitwise_equal(halves[0], parent_results[0][0::2], "pool worker, even rows")
    assert_bitwise_equal(halves[1], parent_results[0][1::2], "pool worker, odd rows")
    assert_bitwise_equal(loss, parent_results[3], "pool worker, cross_entropy")
