#!/usr/bin/env python
"""How time grows with the work: nanoseconds per element of every fastxent
function from 1e4 to 1e8 elements, on one thread and on two, in one run.

The inputs are rows of ``--classes`` classes (default 1000, float32), 10 to
100000 of them, so that a point's size is rows x classes elements.  Each
point is the median of ``--repeats`` timings of a loop of calls that lasts
at least ``--min-time`` seconds; the figure is that time divided by the
calls and the elements (nanoseconds per element: flat when the cost is
proportional to the work).  Outputs go to arrays made once (``out=``,
``grad_out=``) where a function takes them, so that the figure is the
kernel's work and not the zeroing of a fresh output's pages; ``score_rows``
and the reductions return new arrays of one value per row.

Two tables: nanoseconds per element on ``--threads`` threads (default 2)
at each size, and the speed-up from one thread to ``--threads`` at each
size.  Calls of fewer than 32768 elements per thread run on fewer threads
by design (a parallel region costs microseconds), so the speed-up is 1 at
the smallest sizes.

Usage::

    python bench/scaling.py                  # about 4 minutes
    python bench/scaling.py --classes 10     # rows of 10 classes
    python bench/scaling.py --sizes 1e4,1e6 --functions logsumexp,softmax
    python bench/scaling.py --markdown
"""
import argparse
import math
import statistics
import time

import numpy as np

import fastxent as fx

SEED = 20260101


def _inputs(rows, classes, dtype, rng):
    """Logits, a second set of logits, probabilities, log-probabilities,
    labels and bits, made once per size."""
    x = rng.standard_normal((rows, classes), dtype=np.float32).astype(dtype, copy=False)
    y = rng.standard_normal((rows, classes), dtype=np.float32).astype(dtype, copy=False)
    logq = fx.log_softmax(y, axis=1)
    p = fx.softmax(x, axis=1)
    labels = rng.integers(0, classes, rows)
    bits = (rng.random((rows, classes), dtype=np.float32) < 0.5).astype(dtype)
    return x, y, p, logq, labels, bits


def _cases(data):
    """{name: call(n_threads)} over `data` (see _inputs)."""
    x, y, p, logq, labels, bits = data
    out = np.empty_like(x)
    return {
        "logsumexp": lambda nt: fx.logsumexp(x, axis=1, n_threads=nt),
        "softmax": lambda nt: fx.softmax(x, axis=1, out=out, n_threads=nt),
        "log_softmax": lambda nt: fx.log_softmax(x, axis=1, out=out, n_threads=nt),
        "cross_entropy": lambda nt: fx.cross_entropy(x, labels, n_threads=nt),
        "cross_entropy+grad": lambda nt: fx.cross_entropy(x, labels, return_grad=True,
                                                          grad_out=out, n_threads=nt),
        "kl_div": lambda nt: fx.kl_div(logq, p, reduction="batchmean", n_threads=nt),
        "bce_with_logits": lambda nt: fx.binary_cross_entropy_with_logits(x, bits,
                                                                          n_threads=nt),
        "entropy": lambda nt: fx.entropy(p, axis=1, n_threads=nt),
        "softmax_entropy": lambda nt: fx.softmax_entropy(x, n_threads=nt),
        "softmax_cross_entropy": lambda nt: fx.softmax_cross_entropy(x, y, n_threads=nt),
        "softmax_kl_div": lambda nt: fx.softmax_kl_div(x, y, n_threads=nt),
        "score_rows": lambda nt: fx.score_rows(x, labels, n_threads=nt),
        "score": lambda nt: fx.score(x, labels, n_threads=nt),
    }


def _time(call, nt, min_time, repeats):
    """Median seconds per call of call(nt), each repeat a loop of at least
    min_time seconds."""
    call(nt)   # warm: pages of the outputs, the thread team
    t0 = time.perf_counter()
    call(nt)
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, math.ceil(min_time / one))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            call(nt)
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def _table(title, sizes, names, cell, markdown):
    head = ["function"] + [f"{s:.0e}".replace("e+0", "e") for s in sizes]
    rows = [[n] + [cell(n, s) for s in sizes] for n in names]
    print(title)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("| --- |" + " ---: |" * len(sizes))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = max(len(n) for n in names) + 2
        print(head[0].ljust(w) + "".join(h.rjust(9) for h in head[1:]))
        for r in rows:
            print(r[0].ljust(w) + "".join(c.rjust(9) for c in r[1:]))
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--sizes", default="1e4,1e5,1e6,1e7,1e8",
                    help="elements per call, comma-separated")
    ap.add_argument("--functions", default="", help="comma-separated (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.02)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    rng = np.random.default_rng(SEED)
    ns = {}   # (name, size, threads) -> ns per element
    names = None
    for size in sizes:
        rows = max(1, size // args.classes)
        data = _inputs(rows, args.classes, np.dtype(args.dtype), rng)
        cases = _cases(data)
        if args.functions:
            cases = {n: cases[n] for n in args.functions.split(",")}
        names = list(cases)
        for name, call in cases.items():
            for nt in (1, args.threads):
                seconds = _time(call, nt, args.min_time, args.repeats)
                ns[name, size, nt] = seconds / (rows * args.classes) * 1e9
        del data, cases
    print(f"rows of {args.classes} {args.dtype} classes; median of {args.repeats} repeats "
          f"(fastxent {fx.__version__}, {fx.get_config()['cpu_path']}, "
          f"max threads {fx.get_config()['max_threads']})\n")
    _table(f"nanoseconds per element, {args.threads} threads", sizes, names,
           lambda n, s: f"{ns[n, s, args.threads]:.3f}", args.markdown)
    _table(f"speed-up from 1 to {args.threads} threads", sizes, names,
           lambda n, s: f"{ns[n, s, 1] / ns[n, s, args.threads]:.2f}", args.markdown)


if __name__ == "__main__":
    main()
