"""Ctrl-C stops a long call within about a second.

A child process runs long calls, one driver after another; the test sends
SIGINT 0.3 s into each and expects KeyboardInterrupt soon after, then a clean
exit.  The inputs are broadcast views (stride 0), so calls of several seconds
need little memory.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

# the delay before the signal, the time allowed to react, and a deadline
# for the child's other answers
DELAY = 0.3
ALLOWED = 1.5
DEADLINE = 60.0
if "libasan" in os.environ.get("LD_PRELOAD", ""):
    # a sanitized build (tools/sanitize.sh) computes several times slower,
    # so a batch between two checks takes longer
    ALLOWED = 6.0

# Each call runs for several seconds when it is not interrupted (15-180 s
# on a busy 2-core machine); the checks in Python before the kernel starts
# take well under DELAY.
CHILD = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    import fastxent as fx

    # a shell starts background jobs with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored: install its usual handler
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def rows(n_rows, n_cols, dtype=np.float32, lo=-3.0):
        return np.broadcast_to(np.linspace(lo, 3.0, n_cols).astype(dtype), (n_rows, n_cols))

    def full(shape, value, dtype=np.float32):
        return np.broadcast_to(np.asarray(value, dtype), shape)

    N, C = 2_000_000, 4096

    CALLS = {
        "logsumexp rows": lambda nt: fx.logsumexp(rows(N, C, np.float64), axis=1, n_threads=nt),
        "logsumexp columns": lambda nt: fx.logsumexp(rows(C, N), axis=0, n_threads=nt),
        "logsumexp split row": lambda nt: fx.logsumexp(full((1, N * C), 0.5), axis=1,
                                                       n_threads=nt),
        "cross_entropy rows": lambda nt: fx.cross_entropy(
            rows(N, C), full(N, 7, np.int64), reduction="sum", n_threads=nt),
        "cross_entropy short rows": lambda nt: fx.cross_entropy(
            rows(100_000_000, 16, np.float64), full(100_000_000, 7, np.int64),
            reduction="sum", n_threads=nt),
        "cross_entropy columns": lambda nt: fx.cross_entropy(
            full((8000, 1000, 512), np.linspace(-3, 3, 512)), full((8000, 512), 7, np.int64),
            reduction="sum", n_threads=nt),
        "nll_loss": lambda nt: fx.nll_loss(
            rows(2_000_000_000, 16), full(2_000_000_000, 7, np.int64), reduction="sum",
            n_threads=nt),
        "kl_div": lambda nt: fx.kl_div(rows(N, C), full((N, C), 0.5), reduction="sum",
                                       n_threads=nt),
        "bce_with_logits": lambda nt: fx.binary_cross_entropy_with_logits(
            rows(N, C), full((N, C), 1.0), reduction="sum", n_threads=nt),
        "softmax_entropy": lambda nt: fx.softmax_entropy(rows(N, C), n_threads=nt),
        "entropy": lambda nt: fx.entropy(rows(N, C, lo=1.0), axis=1, n_threads=nt),
    }

    for line in sys.stdin:
        name, nt = line.rsplit(" ", 1)
        call = CALLS[name]
        print("go", flush=True)
        start = time.perf_counter()
        try:
            call(int(nt))
        except KeyboardInterrupt:
            print("interrupted", time.perf_counter() - start, flush=True)
        else:
            print("finished", time.perf_counter() - start, flush=True)
""")

# (call, thread count): the serial and the threaded loop of each driver
CASES = [
    ("logsumexp rows", 1), ("logsumexp rows", 2), ("logsumexp columns", 2),
    ("logsumexp split row", 2), ("cross_entropy rows", 2), ("cross_entropy short rows", 1),
    ("cross_entropy columns", 2), ("nll_loss", 2), ("kl_div", 2), ("bce_with_logits", 1),
    ("softmax_entropy", 2), ("entropy", 2),
]


def _readline(proc, deadline, what):
    """A line of the child's output, or fail (and kill it) at the deadline."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(max(0.0, deadline - time.monotonic())):
            proc.kill()
            proc.wait()
            pytest.fail(f"{what}: no answer in time")
    return proc.stdout.readline().strip()


def test_ctrl_c_stops_long_calls(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # run outside the source tree, so that the child imports the installed package
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(tmp_path))
    try:
        for name, nt in CASES:
            proc.stdin.write(f"{name} {nt}\n")
            proc.stdin.flush()
            case = f"{name}, n_threads={nt}"
            assert _readline(proc, time.monotonic() + DEADLINE, case) == "go", proc.stderr.read()
            time.sleep(DELAY)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            answer = _readline(proc, sent + ALLOWED, f"{case}: KeyboardInterrupt after SIGINT")
            assert answer.startswith("interrupted"), f"{case}: {answer}"
        proc.stdin.close()
        assert proc.wait(timeout=DEADLINE) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
