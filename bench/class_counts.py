#!/usr/bin/env python
"""Time against the number of classes: the same work (``--elements`` float32
logits, default 20,000,000) cut into rows of 2 to 256 classes, each function
of fastxent next to PyTorch's, in one run.

Rows of up to 64 classes take fastxent's short-row kernels (64 rows side by
side as SIMD lanes); longer rows take the row kernels.  A cliff in a column is where a
function leaves the lanes.  Each figure is the median of ``--repeats`` calls,
in milliseconds, on ``--threads`` threads (default 1: the kernels' own cost,
without the scheduling of two); outputs go to arrays made once (``out=``,
``grad_out=``) where a function takes them.  PyTorch is skipped, and named,
when it cannot be imported.

Usage::

    python bench/class_counts.py                        # about 2 minutes
    python bench/class_counts.py --classes 10,17,64,65 --repeats 5
    python bench/class_counts.py --markdown
"""
import argparse
import statistics
import time

import numpy as np

import fastxent as fx
from fastxent._benchmark.report import _table

SEED = 20260101
FUNCTIONS = ("logsumexp", "log_softmax", "softmax", "cross_entropy", "cross_entropy_grad",
             "softmax_entropy", "score")


def _median_ms(call, repeats):
    call()   # warm-up: pages of the outputs, code paths
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _cases(x, labels, nt, torch):
    """{function: (fastxent call, PyTorch call or None)}"""
    out = np.empty_like(x)
    grad = np.empty_like(x)
    fx_calls = {
        "logsumexp": lambda: fx.logsumexp(x, axis=1, n_threads=nt),
        "log_softmax": lambda: fx.log_softmax(x, axis=1, out=out, n_threads=nt),
        "softmax": lambda: fx.softmax(x, axis=1, out=out, n_threads=nt),
        "cross_entropy": lambda: fx.cross_entropy(x, labels, reduction="none", n_threads=nt),
        "cross_entropy_grad": lambda: fx.cross_entropy(x, labels, reduction="sum",
                                                       return_grad=True, grad_out=grad,
                                                       n_threads=nt),
        "softmax_entropy": lambda: fx.softmax_entropy(x, axis=1, n_threads=nt),
        "score": lambda: fx.score(x, labels, n_threads=nt),
    }
    if torch is None:
        return {k: (v, None) for k, v in fx_calls.items()}
    F = torch.nn.functional
    tx, ty = torch.from_numpy(x), torch.from_numpy(labels)
    to = torch.from_numpy(out)

    def ce_grad():
        xg = tx.detach().requires_grad_()
        F.cross_entropy(xg, ty, reduction="sum").backward()

    def entropy():
        lp = torch.log_softmax(tx, 1)
        return -(lp.exp() * lp).sum(1)

    torch_calls = {
        "logsumexp": lambda: torch.logsumexp(tx, 1),
        "log_softmax": lambda: torch.log_softmax(tx, 1, out=to),
        "softmax": lambda: torch.softmax(tx, 1, out=to),
        "cross_entropy": lambda: F.cross_entropy(tx, ty, reduction="none"),
        "cross_entropy_grad": ce_grad,
        "softmax_entropy": entropy,
        "score": None,   # no one-call peer: see bench/score.py
    }
    return {k: (fx_calls[k], torch_calls[k]) for k in fx_calls}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default="2,5,10,16,17,24,32,48,64,65,100,128,256")
    ap.add_argument("--elements", type=float, default=2e7)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch is not installed: fastxent alone")
    names = args.functions.split(",")
    print(f"# {int(args.elements):,} float32 elements, {args.threads} thread(s), "
          f"median of {args.repeats}, milliseconds (PyTorch in brackets)")
    head = ["classes"] + names
    if not args.markdown:
        print("  ".join(f"{v:>18}" for v in head), flush=True)
    rows = []
    rng = np.random.default_rng(SEED)
    for c in (int(v) for v in args.classes.split(",")):
        n = int(args.elements) // c
        x = rng.standard_normal((n, c), dtype=np.float32)
        labels = rng.integers(0, c, n)
        cases = _cases(x, labels, args.threads, torch)
        cells = [str(c)]
        for name in names:
            mine, peer = cases[name]
            t = _median_ms(mine, args.repeats)
            cell = f"{t:.1f}"
            if peer is not None:
                cell += f" ({_median_ms(peer, args.repeats):.1f})"
            cells.append(cell)
        rows.append(cells)
        if not args.markdown:
            print("  ".join(f"{v:>18}" for v in cells), flush=True)
    if args.markdown:
        print(_table(head, rows, markdown=True))


if __name__ == "__main__":
    main()
