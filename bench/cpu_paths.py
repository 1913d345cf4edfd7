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
    python bench/cpu_paths.py --options              # options and layouts

`--options` times instead a fixed list of options and layouts, each of
which once ran a scalar loop on some build (see docs/design.rst, "Every
option in a vector loop"): a path whose time is near the baseline's there
has lost its vector loop again.
"""
import argparse
import time

import numpy as np

import fastxent
from fastxent._benchmark.report import _table

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


def _option_cases(rng, n_threads):
    """(name, shape, dtype, call) of the options and layouts of --options"""
    kw = {"n_threads": n_threads}
    f32, f16, f64 = np.float32, np.float16, np.float64

    def logits(shape, dtype):
        return (3 * rng.standard_normal(shape)).astype(dtype)

    x = logits((64, 4096), f32)
    p, q = (fastxent.softmax(logits((64, 4096), f32), axis=1) for _ in range(2))
    y = rng.random((64, 4096)).astype(f32)
    b = (rng.random((64, 4096)) + 0.5).astype(f32)
    pw = np.full(4096, 3.0, f32)
    xs, ys = logits((20000, 10), f32), rng.random((20000, 10)).astype(f32)
    pws = (rng.random(10) + 0.5).astype(f32)
    lp16 = fastxent.log_softmax(logits((64, 4096), f32), axis=1).astype(f16)
    p16 = fastxent.softmax(logits((64, 4096), f32), axis=1).astype(f16)
    lq = fastxent.log_softmax(logits((64, 4096), f32), axis=1)
    bce = fastxent.binary_cross_entropy_with_logits
    cases = [
        ("logsumexp b=", x, lambda: fastxent.logsumexp(x, axis=1, b=b, **kw)),
        ("entropy(pk, qk)", p, lambda: fastxent.entropy(p, q, axis=1, **kw)),
        ("bce pos_weight", x, lambda: bce(x, y, pos_weight=pw, **kw)),
        ("bce weight", x, lambda: bce(x, y, weight=b, **kw)),
        ("bce none + grad", x, lambda: bce(x, y, reduction="none", return_grad=True, **kw)),
        ("bce (C,) pos_weight", xs, lambda: bce(xs, ys, pos_weight=pws, **kw)),
        ("kl_div log_target", lq, lambda: fastxent.kl_div(lq, lq[::-1], log_target=True, **kw)),
        ("kl_div none + grad", lp16, lambda: fastxent.kl_div(
            lp16, p16, reduction="none", return_grad=True, **kw)),
        ("kl_div none", lp16, lambda: fastxent.kl_div(lp16, p16, reduction="none", **kw)),
    ]
    for shape, dtype in (((8, 4096, 8), f32), ((4, 4096, 16), f16), ((16, 4096, 4), f64)):
        a = logits(shape, dtype)
        cases.append(("logsumexp axis=1", a,
                      lambda a=a: fastxent.logsumexp(a, axis=1, **kw)))
    return [(name, " x ".join(map(str, a.shape)), a.dtype.name, call)
            for name, a, call in cases]


def _time(call, threads):
    clock = time.thread_time if threads == 1 else time.perf_counter
    start = clock()
    call()
    return clock() - start


def _cases(args, rng):
    """(name, shape, dtype, call) of every timed call"""
    if args.options:
        yield from _option_cases(rng, args.threads)
        return
    for spec in args.shapes.split(","):
        dims, dtype = spec.split(":")
        n, c = (int(v) for v in dims.split("x"))
        x = rng.standard_normal((n, c), np.float32).astype(dtype)
        y = rng.integers(0, c, n)
        p = fastxent.softmax(x, axis=1)
        for name, call in _operations(x, y, p, args.threads):
            yield name, f"{n} x {c}", dtype, call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="comma-separated ROWSxCLASSES:DTYPE (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--options", action="store_true",
                        help="time the options and layouts list instead of --shapes")
    args = parser.parse_args(argv)
    paths = fastxent.get_config()["cpu_paths"]
    rng = np.random.default_rng(SEED)
    head = ["operation", "shape", "dtype"] + [f"{p} ms" for p in paths] + \
           [f"{p} / {paths[-1]}" for p in paths[:-1]]
    rows = []
    for name, shape, dtype, call in _cases(args, rng):
        best = {path: float("inf") for path in paths}
        for _ in range(args.repeat):
            for path in paths:
                with fastxent.cpu_path(path):
                    best[path] = min(best[path], _time(call, args.threads))
        ms = [best[path] * 1e3 for path in paths]
        rows.append([name, shape, dtype] + [f"{v:.3g}" for v in ms]
                    + [f"{v / ms[-1]:.2f}x" for v in ms[:-1]])
        if not args.markdown:
            print("  ".join(f"{cell:>12}" for cell in rows[-1]), flush=True)
    print(f"fastxent {fastxent.__version__}, paths {paths}, {args.threads} thread(s), "
          f"minimum of {args.repeat}; the last columns: each path's time over {paths[-1]}'s")
    if args.markdown:
        print(_table(head, rows, markdown=True))


if __name__ == "__main__":
    main()
