#!/usr/bin/env python
"""Dask arrays: the cost of splitting the class axis into chunks.

Times logsumexp, log_softmax, cross_entropy (reduction 'sum') and nll_loss
(reduction 'none') of one in-memory float32 array three ways: the NumPy
call, a Dask array chunked by rows only (each block's rows whole: the
compiled kernel per block), and a Dask array chunked along the class axis
too (per-block partial states merged exactly).  Dask runs with the
threaded scheduler on `--workers` threads, each task's kernel on one
thread; the NumPy call gets the same number of threads.  Figures are the
minimum over `--repeat` runs, in ms.

Usage::

    python bench/dask_chunks.py                     # 2000 x 20000 float32
    python bench/dask_chunks.py --rows 500 --classes 50000 --workers 4
"""
import argparse
import time

import numpy as np

import dask
import dask.array as da

import fastxent


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=20000)
    parser.add_argument("--row-chunk", type=int, default=500)
    parser.add_argument("--class-chunk", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.classes), dtype=np.float32)
    labels = rng.integers(0, args.classes, args.rows)
    by_rows = da.from_array(x, chunks=(args.row_chunk, args.classes))
    by_both = da.from_array(x, chunks=(args.row_chunk, args.class_chunk))
    ops = {
        "logsumexp": lambda a, **kw: fastxent.logsumexp(a, axis=1, **kw),
        "log_softmax": lambda a, **kw: fastxent.log_softmax(a, axis=1, **kw),
        "cross_entropy": lambda a, **kw: fastxent.cross_entropy(a, labels, reduction="sum",
                                                                **kw),
        # the per-row losses: the gather of one element per row and block
        "nll_loss": lambda a, **kw: fastxent.nll_loss(a, labels, reduction="none", **kw),
    }
    print(f"{args.rows} x {args.classes} float32, chunks ({args.row_chunk}, {args.classes}) and "
          f"({args.row_chunk}, {args.class_chunk}), {args.workers} threads, ms (min of "
          f"{args.repeat})")
    print(f"{'operation':<15}{'NumPy':>10}{'Dask rows':>12}{'Dask rows+classes':>20}")
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        for name, op in ops.items():
            t_np = best(lambda: op(x, n_threads=args.workers), args.repeat)
            t_rows = best(lambda: op(by_rows).compute(), args.repeat)
            t_both = best(lambda: op(by_both).compute(), args.repeat)
            print(f"{name:<15}{t_np:>10.1f}{t_rows:>12.1f}{t_both:>20.1f}")


if __name__ == "__main__":
    main()
