#!/usr/bin/env python
"""The per-row scores (score_rows) and the sums of an evaluation chunk
(_score_state) next to logsumexp on the same array: the cost of the score
kernel over the one reduction every score needs.

Each array is made once; the three calls are then timed in turn, `repeat`
times, so that a slow spell of the machine reaches all three alike; the
figure is the median in milliseconds, and the ratio to logsumexp's median.

Usage::

    python bench/score_state.py               # 7 repeats, 2 threads
    python bench/score_state.py --repeat 15 --threads 1
"""
import argparse
import time

import numpy as np

import fastxent
from fastxent._score_rows import _score_state

CASES = [((1024, 50257), np.float32), ((1000000, 10), np.float32),
         ((100000, 1000), np.float64)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    nt = args.threads
    for shape, dtype in CASES:
        x = (2 * rng.standard_normal(shape, dtype=np.float32)).astype(dtype)
        t = rng.integers(0, shape[1], shape[0])
        calls = {"logsumexp": lambda: fastxent.logsumexp(x, axis=1, n_threads=nt),
                 "score_rows": lambda: fastxent.score_rows(x, t, n_threads=nt),
                 "_score_state": lambda: _score_state(x, t, n_threads=nt)}
        times = {name: [] for name in calls}
        for f in calls.values():   # warm: pages, thread pool
            f()
        for _ in range(args.repeat):
            for name, f in calls.items():
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(v)) for name, v in times.items()}
        print(f"{shape[0]} x {shape[1]} {np.dtype(dtype).name}, {nt} threads: " + ", ".join(
            f"{name} {v * 1e3:.1f} ms ({v / med['logsumexp']:.2f}x)" for name, v in med.items()),
            flush=True)


if __name__ == "__main__":
    main()
