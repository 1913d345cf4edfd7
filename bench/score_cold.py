#!/usr/bin/env python
"""score_file from a cold file (not in the page cache) and from a warm one,
and what ``fastxent score --plot`` adds.

The logits (default 1,000,000 x 256 float32, 1 GiB) and labels are written
to a folder on disk (--dir, default a temporary one, removed at the end),
fsync'ed, and dropped from the page cache with
``posix_fadvise(POSIX_FADV_DONTNEED)`` before each cold run (Linux; on a
RAM-backed folder such as tmpfs nothing is dropped, and cold equals warm).
Rates are GB/s of logits (10^9 bytes) and rows/s; each figure is the median
of `--repeat` runs.  Then ``fastxent score --demo`` is timed with and
without ``--plot`` (a subprocess each, median of `--repeat`).

Usage::

    python bench/score_cold.py
    python bench/score_cold.py --rows 4000000 --classes 256 --dir /data/tmp
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def _drop(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _time(fn, repeat, before=None):
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--classes", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    args = p.parse_args(argv)

    import fastxent

    folder = tempfile.mkdtemp(prefix="fastxent-cold-", dir=args.dir)
    try:
        logits = os.path.join(folder, "logits.npy")
        labels = os.path.join(folder, "labels.npy")
        x = np.lib.format.open_memmap(logits, mode="w+", dtype=np.float32,
                                      shape=(args.rows, args.classes))
        rng = np.random.default_rng(0)
        for r0 in range(0, args.rows, 1 << 16):
            r1 = min(r0 + (1 << 16), args.rows)
            x[r0:r1] = rng.standard_normal((r1 - r0, args.classes), dtype=np.float32)
        x.flush()
        nbytes = x.nbytes
        del x
        np.save(labels, rng.integers(0, args.classes, args.rows))

        def run():
            fastxent.score_file(logits, labels)

        def drop():
            _drop(logits)
            _drop(labels)

        cold = _time(run, args.repeat, before=drop)
        warm = _time(run, args.repeat)
        print(f"score_file, {args.rows} x {args.classes} float32 ({nbytes / 1e9:.2f} GB) in "
              f"{folder}, median of {args.repeat}")
        for name, t in (("cold (page cache dropped)", cold), ("warm (page-cached)", warm)):
            print(f"  {name:26} {t:7.3f} s  {nbytes / t / 1e9:6.2f} GB/s  "
                  f"{args.rows / t:12,.0f} rows/s")

        demo = [sys.executable, "-m", "fastxent", "score", "--demo", "--quiet"]
        plot = os.path.join(folder, "reliability.png")
        subprocess.run(demo, check=True, capture_output=True)   # warm-up: imports, files
        plain = _time(lambda: subprocess.run(demo, check=True, capture_output=True),
                      args.repeat)
        with_plot = _time(lambda: subprocess.run(demo + ["--plot", plot], check=True,
                                                 capture_output=True), args.repeat)
        assert os.path.getsize(plot) > 0
        print(f"fastxent score --demo (20000 x 1000 float32), median of {args.repeat} "
              f"processes: {plain:.2f} s; with --plot {with_plot:.2f} s "
              f"(+{with_plot - plain:.2f} s)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
