"""Logits and labels stored in files (``.npy``, ``.npz``, folders of ``.npy``
shards), read in chunks of rows of a bounded size, and scored.

Memory: an uncompressed array is memory-mapped and the pages of each chunk
are dropped from the process (``madvise(MADV_DONTNEED)``; they stay in the
page cache) once the chunk is scored, so the resident memory stays a small
multiple of the chunk size whatever the size of the file.  A compressed
``.npz`` member is decompressed chunk by chunk into fresh arrays.

bfloat16: ``np.save`` of an ``ml_dtypes.bfloat16`` array writes the
dtype as ``'<V2'`` (a 2-byte void: NumPy's header has no name for it), and
``np.load`` gives back ``|V2``.  A 2-byte void array of logits is read as
bfloat16: as ``ml_dtypes.bfloat16`` when ml_dtypes is installed, else
widened exactly to float32 (``bits << 16``) chunk by chunk.
"""
import ast
import math
import mmap
import os
import struct
import zipfile
import zlib

import numpy as np

from ._scorer import Scorer

__all__ = ["score_file", "open_logits", "open_labels", "score_sources"]

CHUNK_BYTES = 64 << 20

# array names looked up in an .npz, in this order
LOGITS_NAMES = ("logits", "input")
LABELS_NAMES = ("labels", "target")

_PAGE = mmap.PAGESIZE
_SCORABLE = "float16, float32, float64 or bfloat16"


def _is_bfloat16(dtype):
    return dtype.name == "bfloat16" or (dtype.kind == "V" and dtype.itemsize == 2
                                        and dtype.fields is None)


# what zipfile raises for a damaged member (a bad CRC, data that do not
# inflate, a bad local header) as it is read
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError)
try:   # Python 3.14's zipfile decompresses Zstandard members
    from compression.zstd import ZstdError
    _DAMAGED += (ZstdError,)
except ImportError:
    pass


def _read_npy_header(f, where):
    """(shape, fortran_order, dtype) of the .npy whose header starts at the
    current position of `f`; leaves `f` at the first data byte."""
    try:
        major, minor = np.lib.format.read_magic(f)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif (major, minor) == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        elif (major, minor) == (3, 0):  # a utf-8 header, otherwise as 2.0
            n, = struct.unpack("<I", f.read(4))
            d = ast.literal_eval(f.read(n).decode("utf-8"))
            if not isinstance(d, dict) or sorted(d) != ["descr", "fortran_order", "shape"]:
                raise ValueError("the header is not a dict of 'descr', 'fortran_order' and "
                                 "'shape'")
            shape, fortran, dtype = d["shape"], d["fortran_order"], np.dtype(d["descr"])
        else:
            raise ValueError(f"unknown format version {major}.{minor}")
        # NumPy's readers of versions 1 and 2 let a negative length through
        if not (isinstance(shape, tuple) and all(type(k) is int and k >= 0 for k in shape)
                and isinstance(fortran, bool)):
            raise ValueError(f"bad shape {shape!r} or fortran_order {fortran!r}")
    except (ValueError, TypeError, KeyError, SyntaxError, MemoryError, UnicodeDecodeError,
            struct.error) + _DAMAGED as e:
        # whatever a damaged header makes the parsers raise: one line
        raise ValueError(f"{where}: not a readable .npy array ({e})") from None
    return tuple(shape), bool(fortran), dtype


class _Source:
    """Rows of one stored array: ``shape``, ``dtype`` (as stored), and
    ``read(start, stop)`` for increasing row ranges."""

    origin = None   # an .npz's path and member, for messages

    drop_pages = True

    def read(self, start, stop):
        """Rows ``start:stop`` (a view where the storage allows)."""
        raise NotImplementedError

    def release(self, stop):
        """Rows before `stop` will not be read again (free their memory)."""

    def close(self):
        pass

    @property
    def boundaries(self):
        return [0, self.shape[0]] if self.shape else [0, 1]


class _MappedArray(_Source):
    """An uncompressed array at byte `offset` of the file `path`, memory-mapped."""

    def __init__(self, path, offset, shape, fortran, dtype, name, member=None):
        self.path, self.offset, self.shape, self.dtype, self.name = path, offset, shape, dtype, name
        self.fortran = fortran
        if dtype.hasobject:
            # the bytes would be pointers: say what it is, not that it is short
            raise TypeError(f"{name}: {path} holds Python objects (dtype {dtype}), not numbers")
        self.nbytes = math.prod(shape) * dtype.itemsize
        # a stored .npz member ends where its recorded size does (the next
        # member's bytes follow it), a .npy file at its end
        end = os.path.getsize(path)
        where = path
        if member is not None:
            where = f"{path} member {member[0]}"
            end = min(end, member[1])
        if end < offset + self.nbytes:
            raise ValueError(f"{name}: {where} is truncated ({end - offset} bytes of data, the "
                             f"header says {self.nbytes})")
        self._released = 0
        self._map = None
        if self.nbytes:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._array = None

    def _whole(self):
        if self._array is None:
            if self._map is None:
                self._array = np.empty(self.shape, self.dtype)
            else:
                self._array = np.ndarray(self.shape, self.dtype, buffer=self._map,
                                         offset=self.offset, order="F" if self.fortran else "C")
        return self._array

    def read(self, start, stop):
        if len(self.shape) == 0:
            return self._whole()
        return self._whole()[start:stop]

    def release(self, stop):
        # a Fortran-ordered array's rows are spread over the whole file
        if self._map is None or self.fortran or not self.drop_pages or not self.shape:
            return
        row_bytes = self.nbytes // max(self.shape[0], 1)
        end = (self.offset + stop * row_bytes) // _PAGE * _PAGE
        if end > self._released:
            self._map.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end

    def close(self):
        self._array = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a chunk is still referenced: the GC unmaps it later
                pass
            self._map = None


class _CompressedMember(_Source):
    """A deflated .npz member, decompressed as the rows are read (in order;
    reading an earlier row starts again from the beginning)."""

    def __init__(self, path, member, name):
        self.path, self.member, self.name = path, member, name
        self._open()

    def _guarded(self, read, *args):
        """read(*args), whatever a damaged member makes zipfile raise (a
        bad CRC, data that do not inflate, a bad local header) turned into
        one ValueError naming the file and member."""
        try:
            return read(*args)
        except _DAMAGED as e:
            raise ValueError(f"{self.name}: {self.path} member {self.member} is damaged "
                             f"({e})") from None

    def _truncated(self):
        return ValueError(f"{self.name}: {self.path} member {self.member} is truncated")

    def _open(self):
        self._zip = zipfile.ZipFile(self.path)
        try:
            self._f = self._guarded(self._zip.open, self.member)
        except (NotImplementedError, RuntimeError) as e:
            # a compression method zipfile has no decoder for (zstd), or
            # whose module this Python lacks (bz2, lzma)
            self._zip.close()
            raise ValueError(f"{self.name}: {self.path} member {self.member} cannot be "
                             f"decompressed here ({e}); save it with np.savez or "
                             "np.savez_compressed") from None
        except ValueError:
            self._zip.close()
            raise
        self.shape, fortran, self.dtype = _read_npy_header(
            self._f, f"{self.name}: {self.path}[{self.member}]")
        if self.dtype.hasobject:
            raise TypeError(f"{self.name}: {self.path}[{self.member}] holds Python objects "
                            f"(dtype {self.dtype}), not numbers")
        if fortran and len(self.shape) > 1:
            raise ValueError(f"{self.name}: a compressed Fortran-ordered array cannot be read by "
                             "rows; save it in C order or uncompressed")
        self._row = 0

    def read(self, start, stop):
        if not self.shape:
            b = self._guarded(self._f.read, self.dtype.itemsize)
            if len(b) < self.dtype.itemsize:
                raise self._truncated()
            return np.frombuffer(b, self.dtype).reshape(())
        if start < self._row:
            self.close()
            self._open()
        row_items = math.prod(self.shape[1:])
        row_bytes = row_items * self.dtype.itemsize
        if start > self._row:
            self._skip((start - self._row) * row_bytes)
        out = np.empty((stop - start,) + self.shape[1:], self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        got = 0
        while got < len(view):
            n = self._guarded(self._f.readinto, view[got:])
            if not n:
                raise self._truncated()
            got += n
        self._row = stop
        if stop == self.shape[0]:
            # zipfile checks a member's CRC only when a read meets its end:
            # without this read, damaged data that still inflate would be
            # scored as they are
            self._guarded(self._f.read, 1)
        return out

    def _skip(self, n):
        while n:
            b = self._guarded(self._f.read, min(n, 1 << 20))
            if not b:
                raise self._truncated()
            n -= len(b)

    def close(self):
        self._f.close()
        self._zip.close()


class _Shards(_Source):
    """Arrays of the same trailing shape and dtype, concatenated along rows."""

    def __init__(self, parts, name):
        self.parts, self.name = parts, name
        first = parts[0]
        for p in parts:
            if len(p.shape) == 0:
                # a shard holds rows: a 0-d array has none, whatever the others hold
                raise ValueError(f"{name}: shard {p.path} holds a 0-d array ({p.dtype}); "
                                 "each shard of a folder holds rows of the same shape")
            if p.shape[1:] != first.shape[1:] or p.dtype != first.dtype:
                raise ValueError(
                    f"{name}: shards differ: {first.path} holds {first.dtype} {first.shape}, "
                    f"{p.path} holds {p.dtype} {p.shape} (rows may differ, nothing else)")
        self.shape = (sum(p.shape[0] for p in parts),) + first.shape[1:]
        self.dtype = first.dtype
        self.path = os.path.dirname(first.path)
        starts = np.cumsum([0] + [p.shape[0] for p in parts])
        self._starts = starts.tolist()

    @property
    def boundaries(self):
        return self._starts

    def read(self, start, stop):
        pieces = []
        for p, lo, hi in zip(self.parts, self._starts[:-1], self._starts[1:]):
            if lo < stop and start < hi:
                pieces.append(p.read(max(start, lo) - lo, min(stop, hi) - lo))
        if len(pieces) == 1:
            return pieces[0]
        if not pieces:
            return np.empty((0,) + self.shape[1:], self.dtype)
        return np.concatenate(pieces)

    def release(self, stop):
        for p, lo, hi in zip(self.parts, self._starts[:-1], self._starts[1:]):
            if lo < stop:
                p.release(min(stop, hi) - lo)

    def close(self):
        for p in self.parts:
            p.close()


def _open_npy(path, name):
    with open(path, "rb") as f:
        shape, fortran, dtype = _read_npy_header(f, f"{name}: {path}")
        offset = f.tell()
    return _MappedArray(path, offset, shape, fortran, dtype, name)


def _npz_member(path, zf, member, name):
    info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        return _CompressedMember(path, member, name)
    with open(path, "rb") as f:
        # the data follow the member's local header, whose two lengths may
        # differ from those of the central directory
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{name}: {path} is not a valid .npz (bad local header)")
        n_name, n_extra = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + n_name + n_extra
        f.seek(start)
        shape, fortran, dtype = _read_npy_header(f, f"{name}: {path}[{member}]")
        offset = f.tell()
    return _MappedArray(path, offset, shape, fortran, dtype, name,
                        member=(member, start + info.file_size))


def _npz_names(path):
    try:
        with zipfile.ZipFile(path) as zf:
            return {m[:-4]: m for m in zf.namelist() if m.endswith(".npy")}
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a valid .npz file") from None


def _pick(names, wanted, path, what, positional):
    for w in wanted:
        if w in names:
            return names[w]
    if positional in names:  # np.savez(file, logits, labels) names them arr_0, arr_1
        return names[positional]
    raise ValueError(f"{path}: no {what} array in it (looked for "
                     f"{', '.join(repr(w) for w in wanted)} or {positional!r}; it holds "
                     f"{', '.join(repr(n) for n in sorted(names)) or 'nothing'})")


def _open_path(path, name, names_in_npz, positional):
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".npy"))
        if not files:
            raise ValueError(f"{name}: folder {path} holds no .npy file")
        return _Shards([_open_npy(os.path.join(path, f), name) for f in files], name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such file or folder: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PK\x03\x04":
        members = _npz_names(path)
        member = _pick(members, names_in_npz, path, name, positional)
        with zipfile.ZipFile(path) as zf:
            src = _npz_member(path, zf, member, name)
        src.origin = f"{os.path.abspath(path)} [{member}]"
        return src
    if magic == b"\x93NUMPY":
        return _open_npy(path, name)
    raise ValueError(f"{name}: {path} is neither a .npy nor a .npz file")


def _place(path, name, logits_path=None):
    """(file, names looked for in an .npz, positional name) of the array
    open_logits (`name` 'logits') or open_labels ('labels') reads: labels
    without a path of their own are the second array of the logits' .npz."""
    if name == "logits":
        return path, LOGITS_NAMES, "arr_0"
    if path is None:
        return logits_path, LABELS_NAMES, "arr_1"
    return path, LABELS_NAMES, "arr_0"


def origin(path, name, logits_path=None):
    """Where open_logits (`name` 'logits') or open_labels ('labels') reads:
    the absolute path, and the member of an .npz; for messages and reports
    of callers that read elsewhere (a Dask cluster's workers)."""
    path, wanted, positional = _place(path, name, logits_path)
    where = os.path.abspath(path)
    if not os.path.isdir(path) and _is_zip(path):
        return f"{where} [{_pick(_npz_names(path), wanted, path, name, positional)}]"
    return where


def open_logits(path):
    """The logits stored at `path`: a ``.npy`` file, an ``.npz`` holding an
    array named ``logits`` (or ``input``, or ``arr_0``), or a folder whose
    ``.npy`` files, sorted by name, are concatenated along rows.  Must be
    2-d ``(rows, classes)`` of float16, float32, float64 or bfloat16."""
    file, wanted, positional = _place(path, "logits")
    src = _open_path(file, "logits", wanted, positional)
    try:
        if len(src.shape) != 2:
            raise ValueError(f"logits: expected a 2-d array (rows, classes), got shape "
                             f"{src.shape} in {path}")
        if not (src.dtype.kind == "f" and src.dtype.itemsize in (2, 4, 8)
                or _is_bfloat16(src.dtype)):
            raise TypeError(f"logits: dtype {src.dtype} cannot be scored (expected {_SCORABLE}) "
                            f"in {path}")
        if src.dtype.byteorder == ">" or (src.dtype.byteorder == "<" and not np.little_endian):
            raise TypeError(f"logits: byte-swapped dtype {src.dtype.str} in {path}: convert it "
                            "to native order first")
    except Exception:
        src.close()
        raise
    return src


def open_labels(path, logits_path=None):
    """The class labels stored at `path` (``.npy``, an ``.npz`` holding
    ``labels``, ``target`` or ``arr_1``, or a folder of ``.npy`` shards),
    or, with `path` None, in the ``.npz`` of `logits_path`.  1-d, any
    integer dtype."""
    if path is None and (logits_path is None or os.path.isdir(logits_path)
                         or not _is_zip(logits_path)):
        raise ValueError("targets: no labels given (pass a labels file, or an .npz holding "
                         "both 'logits' and 'labels')")
    file, wanted, positional = _place(path, "labels", logits_path)
    src = _open_path(file, "labels", wanted, positional)
    where = src.origin or file
    try:
        if len(src.shape) != 1:
            raise ValueError(f"labels: expected a 1-d array, got shape {src.shape} in {where}")
        if src.dtype.kind not in "iu":
            raise TypeError(f"labels: expected integer class labels, got dtype {src.dtype} "
                            f"in {where}")
    except Exception:
        src.close()
        raise
    return src


def _is_zip(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _as_scorable(x):
    """A chunk of stored logits as an array fastxent scores: 2-byte voids as
    bfloat16."""
    if x.dtype.kind == "V":
        try:
            import ml_dtypes
        except ImportError:
            wide = x.view(np.uint16).astype(np.uint32) << 16
            return wide.view(np.float32)
        return x.view(ml_dtypes.bfloat16)
    return x


def check_labels(labels, n_classes, ignore_index, chunk_rows=1 << 20):
    """Raise IndexError if a label (other than `ignore_index`) is not in
    ``[0, n_classes)``, saying how many and the first one."""
    bad, first = 0, None
    for start in range(0, labels.shape[0], chunk_rows):
        stop = min(start + chunk_rows, labels.shape[0])
        t = labels.read(start, stop)
        # the usual chunk, every label a class: its min and max say so
        # without the temporaries of the test below (which took a fifth of
        # a page-cached file's time on rows of 10 classes)
        if t.size and not (t.min() >= 0 and t.max() < n_classes):
            wrong = (t != ignore_index) & ((t < 0) | (t >= n_classes))
            k = int(np.count_nonzero(wrong))
            if k and first is None:
                i = int(np.argmax(wrong))
                first = (start + i, int(t[i]))
            bad += k
        labels.release(stop)
    if bad:
        raise IndexError(f"labels: {bad} label{'s' * (bad > 1)} out of range for {n_classes} "
                         f"classes (valid: 0 to {n_classes - 1}, or ignore_index="
                         f"{ignore_index}); the first is {first[1]} at row {first[0]}")


def score_sources(logits, labels, scorer, *, chunk_bytes=CHUNK_BYTES, on_chunk=None):
    """Add every row of the opened `logits` and `labels` to `scorer`, in
    chunks of at most `chunk_bytes` of logits (one row at least, never
    across two shards); ``on_chunk(start, stop, x, t)`` is called after
    each chunk.  Returns `scorer`."""
    n, n_classes = logits.shape
    if labels.shape[0] != n:
        raise ValueError(f"labels: {labels.shape[0]} labels for {n} rows of logits")
    check_labels(labels, n_classes, scorer.ignore_index)
    row_bytes = max(n_classes * logits.dtype.itemsize, 1)
    step = max(1, int(chunk_bytes) // row_bytes)
    bounds = logits.boundaries
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            x = _as_scorable(logits.read(start, stop))
            t = labels.read(start, stop)
            scorer.update(x, t)
            if on_chunk is not None:
                on_chunk(start, stop, x, t)
            del x
            logits.release(stop)
            labels.release(stop)
    return scorer


def score_file(logits_path, targets_path=None, *, topk=(1, 5), n_bins=15, ignore_index=-100,
               temperature=1.0, n_threads=None, chunk_bytes=CHUNK_BYTES):
    """Summary metrics of logits stored in a file against stored labels,
    read in chunks of rows so that files larger than memory can be scored.

    Parameters
    ----------
    logits_path : str or path
        A ``.npy`` file of ``(rows, classes)`` logits (float16, float32,
        float64, or bfloat16 as written by ``np.save`` of an
        ``ml_dtypes.bfloat16`` array); an ``.npz`` holding them as
        ``logits`` (else ``input``, else ``arr_0``); or a folder of ``.npy``
        shards, sorted by name and concatenated along rows.
    targets_path : str or path, optional
        The labels (``(rows,)``, any integer dtype): a ``.npy``, an ``.npz``
        (``labels``, ``target`` or ``arr_0``) or a folder of shards.  None:
        ``labels`` (or ``target``, or ``arr_1``) of the ``.npz`` at
        `logits_path`.
    topk, n_bins, ignore_index, temperature, n_threads
        As for :func:`fastxent.score`.
    chunk_bytes : int
        Bytes of logits scored at a time (at least one row).

    Returns
    -------
    dict
        As :func:`fastxent.score`.
    """
    if (isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, (int, np.integer))
            or chunk_bytes < 1):
        raise ValueError(f"chunk_bytes: expected a positive integer, got {chunk_bytes!r}")
    scorer = Scorer(topk=topk, n_bins=n_bins, ignore_index=ignore_index,
                    temperature=temperature, n_threads=n_threads)
    logits = open_logits(logits_path)
    try:
        labels = open_labels(targets_path, logits_path)
        try:
            score_sources(logits, labels, scorer, chunk_bytes=chunk_bytes)
        finally:
            labels.close()
    finally:
        logits.close()
    return scorer.result()
