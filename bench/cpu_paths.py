#!/usr/bin/env python
"""The CPU code paths side by side: each function on the benchmark shapes,
on every path this machine can run (``fastxent.get_config()['cpu_paths']``:
baseline, avx2, avx512), in one process.

Each call is timed by CPU time on one thread (``n_threads=1``), or by wall
time with `--threads` N > 1; the figure is the minimum over `--repeat`
calls, the paths taking turns within each repeat, so a busy spell of the
machine falls on all of them.  Outputs are preallocated (``out=``) where the
function takes one, so that the page zeroing of a fresh output, the same on
every path, does not dilute the difference.  Printed: milliseconds per call
on each path and the ratio of each path's time to the best path's.

Usage::

    python bench/cpu_paths.py                        # 1 thread, 9 repeats
    python bench/cpu_paths.py --threads 2 --repeat 15
    python bench/cpu_paths.py --shapes 1024x50257:float32 --markdown
"""
import argparse
import time

import numpy as np

import fastxent

SEED = 20261207
SHAPES = ("1024x50257:float32", "1000000x10:float32", "20000x1000:float64")


def _operations(x, y, p, n_threads):
    """(name, call) of every function on logits x, labels y, probabilities p"""
    kw = {"n_threads": n_threads}
    lse_out = np.empty(x.shape[0], x.dtype)
    full_out = np.empty_like(x)
    grad_out = np.empty_like(x)
    return [
        ("logsumexp", lambda: fastxent.logsumexp(x, axis=1, out=lse_out, **kw)),
        ("log_softmax", lambda: fastxent.log_softmax(x, axis=1, out=full_out, **kw)),
        ("softmax", lambda: fastxent.softmax(x, axis=1, out=full_out, **kw)),
        ("cross_entropy", lambda: fastxent.cross_entropy(x, y, **kw)),
        ("cross_entropy_grad", lambda: fastxent.cross_entropy(
            x, y, reduction="sum", return_grad=True, grad_out=grad_out, **kw)),
        ("kl_div", lambda: fastxent.kl_div(x, p, reduction="batchmean", **kw)),
        ("bce_with_logits", lambda: fastxent.binary_cross_entropy_with_logits(x, p, **kw)),
        ("entropy", lambda: fastxent.entropy(p, axis=1, **kw)),
        ("softmax_entropy", lambda: fastxent.softmax_entropy(x, **kw)),
        ("softmax_kl_div", lambda: fastxent.softmax_kl_div(x, x[::-1], **kw)),
        ("score", lambda: fastxent.score(x, y, **kw)),
    ]


def _time(call, threads):
    clock = time.thread_time if threads == 1 else time.perf_counter
    start = clock()
    call()
    return clock() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="comma-separated ROWSxCLASSES:DTYPE (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    paths = fastxent.get_config()["cpu_paths"]
    rng = np.random.default_rng(SEED)
    head = ["operation", "shape", "dtype"] + [f"{p} ms" for p in paths] + \
           [f"{p} / {paths[-1]}" for p in paths[:-1]]
    rows = []
    for spec in args.shapes.split(","):
        dims, dtype = spec.split(":")
        n, c = (int(v) for v in dims.split("x"))
        x = rng.standard_normal((n, c), np.float32).astype(dtype)
        y = rng.integers(0, c, n)
        p = fastxent.softmax(x, axis=1)
        for name, call in _operations(x, y, p, args.threads):
            best = {path: float("inf") for path in paths}
            for _ in range(args.repeat):
                for path in paths:
                    with fastxent.cpu_path(path):
                        best[path] = min(best[path], _time(call, args.threads))
            ms = [best[path] * 1e3 for path in paths]
            rows.append([name, f"{n} x {c}", dtype] + [f"{v:.3g}" for v in ms]
                        + [f"{v / ms[-1]:.2f}x" for v in ms[:-1]])
            if not args.markdown:
                print("  ".join(f"{cell:>12}" for cell in rows[-1]), flush=True)
    print(f"fastxent {fastxent.__version__}, paths {paths}, {args.threads} thread(s), "
          f"minimum of {args.repeat}; the last columns: each path's time over {paths[-1]}'s")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
