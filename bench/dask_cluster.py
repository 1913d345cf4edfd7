#!/usr/bin/env python
"""fastxent on a Dask cluster: a float32 array of logits on disk, scored by
worker processes, against the same call in this process and against the
same quantity composed from Dask's own operations.

The array (default 16384 x 32768 float32, 2 GiB) is written once to a
``.npy`` file in a temporary folder (removed at the end).  A LocalCluster of
`--workers` single-threaded worker processes reads it in 16 chunks -- along
the rows, and separately along the classes -- each task memory-mapping the
file and copying its block (page-cached after the first pass: every figure
is the minimum of `--repeat` runs after a warm-up).  Timed, in seconds:

- ``in-process``: fastxent on the memory-mapped file in this process, on
  `--workers` threads (``logsumexp(axis=1)``; ``score``);
- ``cluster``: the same fastxent call on the Dask array, on the cluster;
- ``dask ops``: ``m + log(sum(exp(x - m)))`` with ``m = max(x)`` from
  ``dask.array`` operations (``logsumexp`` only: Dask has no scorer), on the
  cluster.

The workers' memory: each worker's peak anonymous resident memory during
one call (``RssAnon`` of ``/proc/self/status`` sampled every 2 ms; Linux
only) above its value before the call, against the size of one chunk: the
arrays the tasks hold.  The file's pages that the memory maps bring into a
worker are page cache, shared and reclaimable, and not counted (a block of
columns maps most of the file: the kernel maps pages around each fault).

Usage::

    python bench/dask_cluster.py                       # 2 GiB, 2 workers
    python bench/dask_cluster.py --rows 4096 --classes 8192 --repeat 2   # quick
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def _read_block(path, r0, r1, c0, c1):
    """Rows r0:r1, classes c0:c1 of the .npy at `path` (on a worker)."""
    x = np.load(path, mmap_mode="r")
    return np.array(x[r0:r1, c0:c1])


def _lazy(path, shape, dtype, row_chunk, class_chunk):
    import dask
    import dask.array as da

    rows = []
    for r0 in range(0, shape[0], row_chunk):
        r1 = min(r0 + row_chunk, shape[0])
        row = []
        for c0 in range(0, shape[1], class_chunk):
            c1 = min(c0 + class_chunk, shape[1])
            task = dask.delayed(_read_block, pure=True)(path, r0, r1, c0, c1)
            row.append(da.from_delayed(task, (r1 - r0, c1 - c0), dtype=dtype))
        rows.append(row)
    return da.block(rows)


def _memory_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def _start_sampler(dask_worker):
    """Sample the worker's anonymous resident memory every 2 ms."""
    import threading

    state = {"base": _memory_kib("RssAnon"), "peak": 0, "stop": threading.Event()}

    def loop():
        while not state["stop"].is_set():
            state["peak"] = max(state["peak"], _memory_kib("RssAnon"))
            time.sleep(0.002)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    dask_worker.fastxent_sampler = (state, thread)
    return state["base"] >= 0


def _stop_sampler(dask_worker):
    """The peak anonymous memory above the start, in MiB."""
    state, thread = dask_worker.fastxent_sampler
    state["stop"].set()
    thread.join()
    return (state["peak"] - state["base"]) / 1024


def best(fn, repeat):
    fn()   # warm-up: page cache, worker imports
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--classes", type=int, default=32768)
    parser.add_argument("--chunks", type=int, default=16, help="chunks per layout (default 16)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    import fastxent

    folder = tempfile.mkdtemp(prefix="fastxent-bench-")
    try:
        path = os.path.join(folder, "logits.npy")
        shape = (args.rows, args.classes)
        x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        rng = np.random.default_rng(0)
        for r0 in range(0, args.rows, 1024):
            r1 = min(r0 + 1024, args.rows)
            x[r0:r1] = rng.standard_normal((r1 - r0, args.classes), dtype=np.float32)
        x.flush()
        del x
        labels = rng.integers(0, args.classes, args.rows)
        x = np.load(path, mmap_mode="r")
        gib = x.nbytes / 2**30
        row_chunk = -(-args.rows // args.chunks)
        class_chunk = -(-args.classes // args.chunks)
        layouts = {
            f"rows ({row_chunk}, {args.classes})": (row_chunk, args.classes),
            f"classes ({args.rows}, {class_chunk})": (args.rows, class_chunk),
        }
        print(f"{args.rows} x {args.classes} float32 ({gib:.2f} GiB) on disk, {args.chunks} "
              f"chunks, LocalCluster of {args.workers} single-threaded worker processes; "
              f"seconds, min of {args.repeat} after a warm-up")
        here = {
            "logsumexp": best(lambda: fastxent.logsumexp(x, axis=1, n_threads=args.workers),
                              args.repeat),
            "score": best(lambda: fastxent.score(x, labels, n_threads=args.workers),
                          args.repeat),
        }
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None,
                                      memory_limit=0) as cluster, \
                distributed.Client(cluster) as client, \
                dask.config.set(scheduler=client):
            print(f"{'layout':28} {'function':10} {'in-process':>10} {'cluster':>8} "
                  f"{'ratio':>6} {'dask ops':>9} {'dask/fastxent':>13} "
                  f"{'worker anon MiB':>15} {'chunk MiB':>9}")
            for name, chunks in layouts.items():
                lazy = _lazy(path, shape, np.float32, *chunks)
                chunk_mib = chunks[0] * chunks[1] * 4 / 2**20

                def composed():
                    m = lazy.max(axis=1, keepdims=True)
                    return (m[:, 0] + da.log(da.exp(lazy - m).sum(axis=1))).compute()

                calls = {
                    "logsumexp": lambda: fastxent.logsumexp(lazy, axis=1).compute(),
                    "score": lambda: fastxent.score(lazy, labels),
                }
                for fname, call in calls.items():
                    t = best(call, args.repeat)
                    ok = client.run(_start_sampler)
                    call()
                    peaks = client.run(_stop_sampler)
                    peak_text = f"{max(peaks.values()):.0f}" if all(ok.values()) else "n/a"
                    if fname == "logsumexp":
                        t_dask = best(composed, args.repeat)
                        dask_text = f"{t_dask:9.3f} {t_dask / t:13.1f}"
                    else:
                        dask_text = f"{'':9} {'':13}"
                    print(f"{name:28} {fname:10} {here[fname]:10.3f} {t:8.3f} "
                          f"{t / here[fname]:6.2f} {dask_text} {peak_text:>15} "
                          f"{chunk_mib:9.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
