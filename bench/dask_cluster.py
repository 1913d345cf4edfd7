#!/usr/bin/env python
"""fastxent on a Dask cluster: a float32 array of logits on disk, scored by
worker processes, against the same call in this process and against the
same quantity composed from Dask's own operations.

The array (default 16384 x 32768 float32, 2 GiB) is written once, in a
temporary folder (removed at the end), in two layouts: one C-ordered
``.npy`` file, and the same values as `--chunks` ``.npy`` shards of
consecutive classes (a vocabulary written in parts: each block of classes
stored contiguously, as a chunked store such as zarr keeps each chunk).  A
LocalCluster of `--workers` single-threaded worker processes reads it in
`--chunks` chunks: along the rows from the single file, with the loader of
``fastxent score --scheduler`` (each task maps the bytes of its rows and
hands the kernel a view: no copy); along the classes, one shard per chunk,
each task mapping its shard.  The files are in the page cache after a
warm-up; every figure is the minimum of `--repeat` runs.  Timed, in seconds:

- ``in-process``: fastxent on the file memory-mapped once in this process
  (its pages mapped by the earlier runs: the array as if in memory), on
  `--workers` threads (``logsumexp(axis=1)``; ``score``);
- ``from file``: the same, with ``np.load(..., mmap_mode="r")`` inside the
  timed call, so its pages are mapped during the call, as each cluster task
  must map its own;
- ``cluster``: the same fastxent call on the Dask array, on the cluster;
- ``dask ops``: ``m + log(sum(exp(x - m)))`` with ``m = max(x)`` from
  ``dask.array`` operations (``logsumexp`` only: Dask has no scorer), on the
  cluster, from the same chunks.

The same two chunkings are also timed on chunks held in the workers'
memory (``in worker memory``): each chunk copied once into its worker's
memory with ``persist``, and the labels too, as a Dask user keeps a working
set on a cluster with ``client.persist``; there a call pays the kernels and
Dask's own costs, without the reading of the files.

With ``--scattered``, also class chunks read from the single C-ordered
file (each task a view of its block of columns: 16384 pieces of 8 KiB
spread over the whole file, by default) and, for comparison, copied out of
it.  Before the timings, the fixed cost of a ``distributed`` compute: a
graph of `--chunks` tasks of one element each, summed.

The workers' memory during one call, sampled every 2 ms from
``/proc/self/status`` (Linux only) above its value before the call: the peak
anonymous memory (``RssAnon``: the arrays the tasks allocate), and the peak
of file pages mapped (``RssFile``: page cache, shared and reclaimable, the
chunks themselves), against the size of one chunk.

Usage::

    python bench/dask_cluster.py                       # 2 GiB, 2 workers
    python bench/dask_cluster.py --rows 4096 --classes 8192 --repeat 2   # quick
    python bench/dask_cluster.py --scattered           # + blocks of columns of one file
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def _map_shard(path):
    """A shard of classes, as a read-only view of its memory map (on a worker)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _column_block(path, c0, c1, copy):
    """Classes c0:c1 of every row of the .npy at `path` (on a worker): a
    view of the file's memory map, or a copy of it."""
    block = np.load(path, mmap_mode="r")[:, c0:c1]
    return np.array(block) if copy else np.asarray(block)


def _class_blocks(path, shape, class_chunk, copy):
    """The lazy array of blocks of columns of the single file."""
    import dask
    import dask.array as da

    blocks = []
    for c0 in range(0, shape[1], class_chunk):
        c1 = min(c0 + class_chunk, shape[1])
        task = dask.delayed(_column_block, pure=True)(path, c0, c1, copy)
        blocks.append(da.from_delayed(task, (shape[0], c1 - c0), dtype=np.float32))
    return da.concatenate(blocks, axis=1)


def _class_shards(folder, x, class_chunk):
    """Write the columns of `x` as shards of `class_chunk` classes; return
    the lazy array that reads them, one task a shard."""
    import dask
    import dask.array as da

    blocks = []
    for c0 in range(0, x.shape[1], class_chunk):
        c1 = min(c0 + class_chunk, x.shape[1])
        path = os.path.join(folder, f"classes-{c0:09d}.npy")
        shard = np.lib.format.open_memmap(path, mode="w+", dtype=x.dtype,
                                          shape=(x.shape[0], c1 - c0))
        for r0 in range(0, x.shape[0], 1024):
            shard[r0:r0 + 1024] = x[r0:r0 + 1024, c0:c1]
        shard.flush()
        del shard
        task = dask.delayed(_map_shard, pure=True)(path)
        blocks.append(da.from_delayed(task, (x.shape[0], c1 - c0), dtype=x.dtype))
    return da.concatenate(blocks, axis=1)


def _memory_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def _start_sampler(dask_worker):
    """Sample the worker's anonymous and file-mapped memory every 2 ms."""
    import threading

    keys = ("RssAnon", "RssFile")
    state = {"base": {k: _memory_kib(k) for k in keys}, "peak": dict.fromkeys(keys, 0),
             "stop": threading.Event()}

    def loop():
        while not state["stop"].is_set():
            for k in keys:
                state["peak"][k] = max(state["peak"][k], _memory_kib(k))
            time.sleep(0.002)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    dask_worker.fastxent_sampler = (state, thread)
    return all(v >= 0 for v in state["base"].values())


def _stop_sampler(dask_worker):
    """The peaks above the start, in MiB: (anonymous, file-mapped)."""
    state, thread = dask_worker.fastxent_sampler
    state["stop"].set()
    thread.join()
    return tuple(max(0, state["peak"][k] - state["base"][k]) / 1024
                 for k in ("RssAnon", "RssFile"))


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
    parser.add_argument("--scattered", action="store_true",
                        help="also class chunks read out of the single C-ordered file")
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    import fastxent
    from fastxent._dask.files import lazy_logits

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
            f"rows ({row_chunk}, {args.classes})":
                (lazy_logits(path, row_chunk * args.classes * 4), row_chunk * args.classes),
            f"classes ({args.rows}, {class_chunk})":
                (_class_shards(folder, x, class_chunk), args.rows * class_chunk),
        }
        if args.scattered:
            for copy in (False, True):
                layouts[f"columns of 1 file{', copied' if copy else ''}"] = (
                    _class_blocks(path, shape, class_chunk, copy), args.rows * class_chunk)
        print(f"{args.rows} x {args.classes} float32 ({gib:.2f} GiB) on disk, {args.chunks} "
              f"chunks, LocalCluster of {args.workers} single-threaded worker processes; "
              f"seconds, min of {args.repeat} after a warm-up")
        here = {
            "logsumexp": best(lambda: fastxent.logsumexp(x, axis=1, n_threads=args.workers),
                              args.repeat),
            "score": best(lambda: fastxent.score(x, labels, n_threads=args.workers),
                          args.repeat),
        }
        from_file = {
            "logsumexp": best(lambda: fastxent.logsumexp(np.load(path, mmap_mode="r"), axis=1,
                                                         n_threads=args.workers), args.repeat),
            "score": best(lambda: fastxent.score(np.load(path, mmap_mode="r"), labels,
                                                 n_threads=args.workers), args.repeat),
        }
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None,
                                      memory_limit=0) as cluster, \
                distributed.Client(cluster) as client, \
                dask.config.set(scheduler=client):
            tiny = da.ones((args.chunks,), chunks=1)
            print(f"fixed cost of a compute ({args.chunks} one-element tasks, summed): "
                  f"{best(lambda: tiny.sum().compute(), args.repeat) * 1e3:.0f} ms")
            print(f"{'layout':26} {'function':10} {'in-process':>10} {'from file':>9} "
                  f"{'cluster':>8} {'ratio':>6} {'dask ops':>9} {'dask/fastxent':>13} "
                  f"{'anon MiB':>8} {'file MiB':>8} {'chunk MiB':>9}")
            for name in list(layouts)[:2]:
                # the chunks and labels copied into the workers' memory
                lazy, chunk_items = layouts[name]
                held = lazy.map_blocks(np.array, dtype=lazy.dtype).persist()
                distributed.wait(held)
                held_labels = da.from_array(labels, chunks=(held.chunks[0],)).persist()
                layouts[name.split(" ")[0] + ", in worker memory"] = (held, chunk_items,
                                                                     held_labels)
            for name, (lazy, chunk_items, *held_labels) in layouts.items():
                chunk_mib = chunk_items * 4 / 2**20
                lazy_labels = held_labels[0] if held_labels else labels

                def composed():
                    m = lazy.max(axis=1, keepdims=True)
                    return (m[:, 0] + da.log(da.exp(lazy - m).sum(axis=1))).compute()

                calls = {
                    "logsumexp": lambda: fastxent.logsumexp(lazy, axis=1).compute(),
                    "score": lambda: fastxent.score(lazy, lazy_labels),
                }
                for fname, call in calls.items():
                    t = best(call, args.repeat)
                    ok = client.run(_start_sampler)
                    call()
                    peaks = client.run(_stop_sampler)
                    if all(ok.values()):
                        anon = f"{max(p[0] for p in peaks.values()):.0f}"
                        mapped = f"{max(p[1] for p in peaks.values()):.0f}"
                    else:
                        anon = mapped = "n/a"
                    if fname == "logsumexp":
                        t_dask = best(composed, args.repeat)
                        dask_text = f"{t_dask:9.3f} {t_dask / t:13.1f}"
                    else:
                        dask_text = f"{'':9} {'':13}"
                    print(f"{name:26} {fname:10} {here[fname]:10.3f} {from_file[fname]:9.3f} "
                          f"{t:8.3f} {t / here[fname]:6.2f} {dask_text} {anon:>8} "
                          f"{mapped:>8} {chunk_mib:9.0f}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
