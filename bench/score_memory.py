"""Peak resident memory of scoring a logits file several times larger than
the chunk budget, each way of reading it in a fresh process (VmHWM from
/proc/self/status, Linux).

    python bench/score_memory.py [--rows 1000000] [--classes 100] [--chunk-mb 8]

Ways compared, all giving the same metrics:

- ``score_file``: fastxent.score_file, the file memory-mapped and the pages
  of each scored chunk dropped (``madvise(MADV_DONTNEED)``);
- ``score_file, pages kept``: the same without dropping the pages, which
  then stay mapped in the process until the end;
- ``np.load mmap + score``: ``fastxent.score(np.load(path, mmap_mode='r'), t)``;
- ``np.fromfile per chunk``: each chunk read into a fresh array (a copy,
  the file re-opened per chunk);
- ``np.load`` (whole file in memory) + score, for scale.

The file is written once into a temporary folder (or --dir) and removed.
Peak figures are the process's VmHWM minus that of a process which only
imported fastxent and read the labels.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
import numpy as np
import fastxent
from fastxent import _score_files as sf

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
mode, path, labels, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = np.load(labels)
start = time.perf_counter()
result = None
if mode == "score_file":
    result = fastxent.score_file(path, labels, chunk_bytes=chunk)
elif mode == "score_file, pages kept":
    sf._Source.drop_pages = False
    result = fastxent.score_file(path, labels, chunk_bytes=chunk)
elif mode == "np.load mmap + score":
    result = fastxent.score(np.load(path, mmap_mode="r"), t)
elif mode == "np.fromfile per chunk":
    x = np.load(path, mmap_mode="r")
    shape, dtype, offset = x.shape, x.dtype, x.offset
    del x
    step = max(1, chunk // (shape[1] * dtype.itemsize))
    s = fastxent.Scorer()
    for i in range(0, shape[0], step):
        n = min(step, shape[0] - i)
        c = np.fromfile(path, dtype, n * shape[1], offset=offset + i * shape[1] * dtype.itemsize)
        s.update(c.reshape(n, shape[1]), t[i:i + n])
    result = s.result()
elif mode == "np.load (in memory) + score":
    result = fastxent.score(np.load(path), t)
seconds = time.perf_counter() - start
print(json.dumps({"hwm": hwm(), "seconds": seconds, "nll": result and result["nll"]}))
"""

MODES = ["baseline", "score_file", "score_file, pages kept", "np.load mmap + score",
         "np.fromfile per chunk", "np.load (in memory) + score"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--chunk-mb", type=float, default=8.0)
    p.add_argument("--dir", default=None, help="folder for the test file (default: a temporary one)")
    args = p.parse_args(argv)
    import numpy as np

    chunk = int(args.chunk_mb * (1 << 20))
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path, labels = os.path.join(d, "x.npy"), os.path.join(d, "t.npy")
        x = np.lib.format.open_memmap(path, "w+", np.float32, (args.rows, args.classes))
        rng = np.random.default_rng(0)
        step = max(1, (32 << 20) // (args.classes * 4))
        for i in range(0, args.rows, step):
            n = min(step, args.rows - i)
            x[i:i + n] = rng.standard_normal((n, args.classes), np.float32)
        x.flush()
        del x
        np.save(labels, rng.integers(0, args.classes, args.rows))
        size = os.path.getsize(path)
        print(f"file: {args.rows} x {args.classes} float32, {size / 2**20:.0f} MiB; chunk budget "
              f"{args.chunk_mb:g} MiB ({size / chunk:.0f} chunks); fastxent._score_rows on "
              f"{sys.executable}")
        print(f"| way | peak RSS above baseline, MiB | x chunk | seconds | nll |")
        print("| --- | --- | --- | --- | --- |")
        base = None
        for mode in MODES:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, mode, path, labels, str(chunk)],
                                 capture_output=True, text=True, cwd=d)
            if out.returncode:
                print(f"| {mode} | failed: {out.stderr.strip().splitlines()[-1]} | | | |")
                continue
            r = json.loads(out.stdout)
            if mode == "baseline":
                base = r["hwm"]
                print(f"| baseline (imports, labels) | {base / 2**20:.0f} (absolute) | | | |")
                continue
            extra = (r["hwm"] - base) / 2**20
            print(f"| {mode} | {extra:.0f} | {extra / args.chunk_mb:.1f} | {r['seconds']:.2f} | "
                  f"{r['nll']:.6f} |")
            del t0


if __name__ == "__main__":
    main()
