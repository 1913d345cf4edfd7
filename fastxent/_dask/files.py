"""Stored logits as lazy Dask arrays, and their scoring on a Dask cluster
(``fastxent score ... --scheduler ADDRESS``).

A ``.npy`` file, an uncompressed ``.npz`` member or a folder of ``.npy``
shards becomes one task per chunk of rows, each of which memory-maps the
bytes of its rows on its worker and hands the kernels a view of them (no
copy; see _read_rows for the exceptions): the files must be readable at the
same absolute path on every worker (a shared or local file system) and must
not be rewritten while they are read (a mapped chunk of a file truncated
under it stops its worker with SIGBUS), and the client sends no data, only
file names and row ranges.  A zarr store (a folder holding ``zarr.json`` or
``.zarray``) is read with ``dask.array.from_zarr``.  The labels (8 bytes a
row) are read by the client, checked, and sent along.
"""
import mmap
import os
import sys

import numpy as np

import dask
import dask.array as da

from .. import _score_files as _files

__all__ = ["is_zarr_store", "lazy_logits", "read_labels", "score_on_scheduler"]


def is_zarr_store(path):
    """True for a folder that is a zarr store (v3 ``zarr.json``, v2 ``.zarray``)."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in ("zarr.json", ".zarray"))


def _from_zarr(path, name):
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise ValueError(f"{name}: {path} is a zarr store, and zarr is not installed "
                         "(pip install zarr)") from None
    return da.from_zarr(path)


def _scorable_dtype(dtype):
    """The dtype a chunk of `dtype` is scored as (see _score_files._as_scorable)."""
    return _files._as_scorable(np.empty(0, dtype)).dtype


# Before Python 3.13 a memory map holds a duplicate of its file's
# descriptor for as long as it lives: one descriptor per chunk in memory
_MMAP_OPTIONS = {"trackfd": False} if sys.version_info >= (3, 13) else {}


def _read_rows(path, offset, shape, fortran, dtype, start, stop):
    """Rows ``start:stop`` of the array stored at byte `offset` of `path`
    (run on a worker): a read-only view of a memory map of the bytes that
    hold them, so the kernels read the page cache directly and the worker
    allocates nothing for the chunk (the map lives as long as the chunk; a
    chunk sent to another worker is pickled as a copy).  Copied instead:
    the rows of a Fortran-ordered array (spread over the whole file) and
    data not aligned to its item size (an ``.npz`` member can be; the
    kernels would copy it)."""
    dtype = np.dtype(dtype)
    n, c = shape
    row_bytes = c * dtype.itemsize
    if stop <= start or row_bytes == 0:
        return _files._as_scorable(np.empty((max(stop - start, 0), c), dtype))
    copy = fortran or offset % dtype.itemsize != 0
    if fortran:
        lo, hi = offset, offset + n * row_bytes
    else:
        lo, hi = offset + start * row_bytes, offset + stop * row_bytes
    base = lo - lo % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), hi - base, access=mmap.ACCESS_READ, offset=base,
                      **_MMAP_OPTIONS)
    if not copy:
        rows = np.ndarray((stop - start, c), dtype, buffer=m, offset=lo - base)
        return _files._as_scorable(rows)
    with m:
        if fortran:
            whole = np.ndarray(shape, dtype, buffer=m, offset=lo - base, order="F")
            rows = np.array(whole[start:stop], order="C")
        else:
            whole = np.ndarray((stop - start, c), dtype, buffer=m, offset=lo - base)
            rows = np.array(whole)
        del whole
    return _files._as_scorable(rows)


def lazy_logits(path, chunk_bytes):
    """The logits stored at `path` as a lazy ``(rows, classes)`` Dask array
    in chunks of at most `chunk_bytes` (one row at least, never across two
    shards)."""
    if is_zarr_store(path):
        x = _from_zarr(os.path.abspath(path), "logits")
        if x.ndim != 2:
            raise ValueError(f"logits: expected a 2-d array (rows, classes), got shape "
                             f"{x.shape} in {path}")
        return x
    src = _files.open_logits(path)
    try:
        parts = getattr(src, "parts", [src])
        for p in parts:
            if not hasattr(p, "offset"):
                raise ValueError(
                    f"logits: {path}: a compressed .npz member cannot be read by row ranges "
                    "on workers; use .npy files, a folder of .npy shards, an uncompressed .npz "
                    "or a zarr store")
        n_classes = src.shape[1]
        dtype = _scorable_dtype(src.dtype)
        step = max(1, int(chunk_bytes) // max(n_classes * src.dtype.itemsize, 1))
        blocks = []
        for p in parts:
            for start in range(0, p.shape[0], step):
                stop = min(start + step, p.shape[0])
                task = dask.delayed(_read_rows, pure=True)(
                    os.path.abspath(p.path), p.offset, p.shape, p.fortran, p.dtype.str,
                    start, stop)
                blocks.append(da.from_delayed(task, (stop - start, n_classes), dtype=dtype))
    finally:
        src.close()
    if not blocks:
        return da.empty((0, n_classes), dtype=dtype)
    return da.concatenate(blocks, axis=0)


def read_labels(path, logits_path):
    """The labels (a 1-d NumPy array of integers): from a file as
    ``fastxent score`` reads them, or from a zarr store."""
    if path is not None and is_zarr_store(path):
        t = np.asarray(_from_zarr(path, "labels").compute())
        if t.ndim != 1 or t.dtype.kind not in "iu":
            raise ValueError(f"labels: expected a 1-d array of integers, got {t.dtype} "
                             f"{t.shape} in {path}")
        return t
    src = _files.open_labels(path, None if is_zarr_store(logits_path) else logits_path)
    try:
        return np.array(src.read(0, src.shape[0]))
    finally:
        src.close()


def score_on_scheduler(address, logits, labels, scorer):
    """Add the rows of the lazy `logits` against the NumPy `labels` to
    `scorer`, computed on the Dask scheduler at `address`; returns it."""
    try:
        import distributed
    except ImportError:
        raise ValueError("--scheduler needs Dask's distributed scheduler, which is not "
                         "installed (pip install 'dask[distributed]')") from None
    n, n_classes = logits.shape
    if labels.shape[0] != n:
        raise ValueError(f"labels: {labels.shape[0]} labels for {n} rows of logits")
    _files.check_labels(_InMemory(labels), n_classes, scorer.ignore_index)
    try:
        # an address Client cannot parse fails in its constructor, after which
        # the half-made client blocks the exit for a minute (its __del__
        # waits for a connection); parsed first, it fails here at once
        distributed.comm.get_address_host(address)
        # the connect timeout is Dask's (distributed.comm.timeouts.connect)
        client = distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise OSError(f"--scheduler: cannot connect to {address!r}: "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    with client, dask.config.set(scheduler=client):
        return scorer.update(logits, labels)


class _InMemory:
    """An in-memory array with the read/release interface of the stored ones."""

    def __init__(self, a):
        self.a, self.shape = a, a.shape

    def read(self, start, stop):
        return self.a[start:stop]

    def release(self, stop):
        pass
