"""fastxent.score_file and the readers of fastxent/_score_files.py: .npy,
.npz (stored and compressed), folders of shards, label files of any integer
dtype, bfloat16; chunks within the byte budget; pages dropped behind them;
one clear error per kind of bad file."""
import os
import sys

import numpy as np
import pytest

import fastxent
from fastxent import _score_files as sf

ROWS, CLASSES = 700, 11


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((ROWS, CLASSES)) * 2).astype(np.float32)
    t = rng.integers(0, CLASSES, ROWS)
    x[np.arange(ROWS) % 3 == 0, t[np.arange(ROWS) % 3 == 0]] += 4
    t[::13] = -100
    return x, t


def assert_same(got, want, rtol=1e-12):
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * 1e-3, err_msg=k)


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.int16, np.int8, np.uint16])
def test_npy_files(tmp_path, data, label_dtype):
    x, t = data
    if np.dtype(label_dtype).kind == "u":
        t = np.where(t < 0, 0, t)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t.astype(label_dtype))
    want = fastxent.score(x, t)
    for chunk_bytes in (1, 1000, 10 ** 9):
        assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy",
                                        chunk_bytes=chunk_bytes), want)


def test_options_pass_through(tmp_path, data):
    x, t = data
    t = np.where(t == -100, 3, t)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    opts = dict(topk=(2, 3), n_bins=7, ignore_index=3, temperature=1.7, n_threads=1)
    assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy", chunk_bytes=999,
                                    **opts), fastxent.score(x, t, **opts))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_files(tmp_path, data, save):
    x, t = data
    want = fastxent.score(x, t)
    save(tmp_path / "both.npz", logits=x, labels=t)
    save(tmp_path / "named.npz", input=x, target=t)
    save(tmp_path / "positional.npz", x, t)
    save(tmp_path / "labels.npz", labels=t)
    for path in ("both.npz", "named.npz", "positional.npz"):
        assert_same(fastxent.score_file(tmp_path / path, chunk_bytes=500), want)
    assert_same(fastxent.score_file(tmp_path / "both.npz", tmp_path / "labels.npz",
                                    chunk_bytes=500), want)
    np.save(tmp_path / "x.npy", x)
    assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "labels.npz"), want)


def test_shards(tmp_path, data):
    x, t = data
    want = fastxent.score(x, t)
    (tmp_path / "x").mkdir()
    (tmp_path / "t").mkdir()
    cuts = [0, 100, 101, 350, ROWS]
    # names sort in row order; a non-.npy file is not a shard
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        np.save(tmp_path / "x" / f"part-{i:03d}.npy", x[a:b])
    for i, (a, b) in enumerate([(0, 500), (500, ROWS)]):
        np.save(tmp_path / "t" / f"{i}.npy", t[a:b])
    (tmp_path / "x" / "README.txt").write_text("not a shard")
    np.save(tmp_path / "t.npy", t)
    for chunk_bytes in (1, 2000, 10 ** 9):
        assert_same(fastxent.score_file(tmp_path / "x", tmp_path / "t.npy",
                                        chunk_bytes=chunk_bytes), want)
        assert_same(fastxent.score_file(tmp_path / "x", tmp_path / "t",
                                        chunk_bytes=chunk_bytes), want)


def test_shards_must_agree(tmp_path, data):
    x, t = data
    (tmp_path / "x").mkdir()
    np.save(tmp_path / "x" / "a.npy", x[:10])
    np.save(tmp_path / "x" / "b.npy", x[10:, :5])
    np.save(tmp_path / "t.npy", t)
    with pytest.raises(ValueError, match="shards differ"):
        fastxent.score_file(tmp_path / "x", tmp_path / "t.npy")


@pytest.mark.parametrize("first", [True, False])
def test_zero_dim_shard_is_named_once(tmp_path, data, first):
    """A 0-d shard holds no rows: refused by its own name, first or not (the
    message compared the first shard with itself)."""
    x, t = data
    (tmp_path / "x").mkdir()
    np.save(tmp_path / "x" / "a.npy", np.float32(1.0) if first else x[:10])
    np.save(tmp_path / "x" / "b.npy", np.float32(2.0))
    np.save(tmp_path / "t.npy", t)
    bad = "a.npy" if first else "b.npy"
    with pytest.raises(ValueError, match=rf"logits: shard \S*{bad} holds a 0-d array \(float32\)"):
        fastxent.score_file(tmp_path / "x", tmp_path / "t.npy")


def test_fortran_order_and_float64_and_float16(tmp_path, data):
    x, t = data
    np.save(tmp_path / "t.npy", t)
    for a in (np.asfortranarray(x), x.astype(np.float64), x.astype(np.float16)):
        np.save(tmp_path / "x.npy", a)
        assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy", chunk_bytes=300),
                    fastxent.score(a, t))


def test_bfloat16_files(tmp_path, data, monkeypatch):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x, t = data
    xb = x.astype(ml_dtypes.bfloat16)
    np.save(tmp_path / "x.npy", xb)
    np.save(tmp_path / "t.npy", t)
    # NumPy's header has no name for the type: it comes back as a 2-byte void
    assert np.load(tmp_path / "x.npy").dtype == np.dtype("V2")
    want = fastxent.score(xb, t)
    assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy", chunk_bytes=512),
                want)
    # without ml_dtypes the bits are widened to float32 (exactly) and scored by
    # the float32 kernel, whose per-row results are float32 roundings of the
    # same quantities: within a float32 ulp of the bfloat16 kernel's
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy", chunk_bytes=512),
                want, rtol=1e-6)


def test_bfloat16_widening_is_exact(monkeypatch):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bits = np.arange(0, 1 << 16, dtype=np.uint16).reshape(256, 256)
    want = bits.view(ml_dtypes.bfloat16).astype(np.float32)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    got = sf._as_scorable(bits.view("V2"))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_chunks_stay_within_the_budget_and_pages_are_dropped(tmp_path, data):
    x, t = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    logits, labels = sf.open_logits(tmp_path / "x.npy"), sf.open_labels(tmp_path / "t.npy")
    seen = []
    budget = 3000
    sf.score_sources(logits, labels, fastxent.Scorer(), chunk_bytes=budget,
                     on_chunk=lambda a, b, xc, tc: seen.append((a, b, xc.nbytes, tc.shape[0])))
    assert all(nbytes <= budget for _, _, nbytes, _ in seen)
    assert [s[0] for s in seen] == [0] + [s[1] for s in seen[:-1]] and seen[-1][1] == ROWS
    assert all(b - a == n for a, b, _, n in seen)
    # everything up to the last whole page before the end was given back
    end = logits.offset + logits.nbytes
    assert logits._released == end // sf._PAGE * sf._PAGE
    logits.close()
    labels.close()


def test_a_row_larger_than_the_budget_is_one_chunk(tmp_path, data):
    x, t = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    assert_same(fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy", chunk_bytes=1),
                fastxent.score(x, t))


def test_empty_and_all_ignored_files(tmp_path):
    np.save(tmp_path / "x.npy", np.empty((0, 4), np.float32))
    np.save(tmp_path / "t.npy", np.empty(0, np.int64))
    got = fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy")
    assert got["count"] == 0 and np.isnan(got["nll"])
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    np.save(tmp_path / "t.npy", np.full(3, -100))
    assert fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy")["count"] == 0


def test_bad_files(tmp_path, data):
    x, t = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    p = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="logits: no such file"):
        fastxent.score_file(p + "/nope.npy", p + "/t.npy")
    with pytest.raises(FileNotFoundError, match="labels: no such file"):
        fastxent.score_file(p + "/x.npy", p + "/nope.npy")
    with pytest.raises(ValueError, match="no labels given"):
        fastxent.score_file(p + "/x.npy")
    np.save(tmp_path / "x3.npy", x.reshape(7, 100, 11))
    with pytest.raises(ValueError, match="logits: expected a 2-d array"):
        fastxent.score_file(p + "/x3.npy", p + "/t.npy")
    np.save(tmp_path / "xi.npy", x.astype(np.int32))
    with pytest.raises(TypeError, match="logits: dtype int32 cannot be scored"):
        fastxent.score_file(p + "/xi.npy", p + "/t.npy")
    np.save(tmp_path / "xc.npy", x.astype(np.complex64))
    with pytest.raises(TypeError, match="cannot be scored"):
        fastxent.score_file(p + "/xc.npy", p + "/t.npy")
    np.save(tmp_path / "tf.npy", t.astype(np.float64))
    with pytest.raises(TypeError, match="labels: expected integer"):
        fastxent.score_file(p + "/x.npy", p + "/tf.npy")
    np.save(tmp_path / "t2.npy", t[:-1])
    with pytest.raises(ValueError, match="labels: 699 labels for 700 rows"):
        fastxent.score_file(p + "/x.npy", p + "/t2.npy")
    bad = t.copy()
    bad[[20, 30, 40]] = [11, -1, 99]
    np.save(tmp_path / "tb.npy", bad)
    with pytest.raises(IndexError, match="3 labels out of range for 11 classes.*first is 11 at "
                                         "row 20"):
        fastxent.score_file(p + "/x.npy", p + "/tb.npy", chunk_bytes=100)
    (tmp_path / "junk.npy").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="neither a .npy nor a .npz"):
        fastxent.score_file(p + "/junk.npy", p + "/t.npy")
    np.savez(tmp_path / "other.npz", foo=x, bar=t)
    with pytest.raises(ValueError, match="no logits array in it.*'bar', 'foo'"):
        fastxent.score_file(p + "/other.npz", p + "/t.npy")
    with open(tmp_path / "x.npy", "rb") as f:
        head = f.read(2000)
    (tmp_path / "cut.npy").write_bytes(head)
    with pytest.raises(ValueError, match="truncated"):
        fastxent.score_file(p + "/cut.npy", p + "/t.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .npy"):
        fastxent.score_file(p + "/empty", p + "/t.npy")
    with pytest.raises(ValueError, match="chunk_bytes"):
        fastxent.score_file(p + "/x.npy", p + "/t.npy", chunk_bytes=0)
    with pytest.raises(ValueError, match="topk"):
        fastxent.score_file(p + "/x.npy", p + "/t.npy", topk=0)


def test_files_are_closed(tmp_path, data):
    """No file stays open or mapped after a call, also after an error."""
    x, t = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t[:-1])
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(3):
        with pytest.raises(ValueError):
            fastxent.score_file(tmp_path / "x.npy", tmp_path / "t.npy")
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds


def _v3_npy(path, header):
    """A .npy of format 3.0 whose header text is `header` (padded), then
    the bytes of 10 x 3 float32 zeros."""
    text = header.encode("utf-8")
    text += b" " * (-(len(text) + 13) % 64) + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x03\x00" + len(text).to_bytes(4, "little") + text)
        f.write(np.zeros((10, 3), np.float32).tobytes())


@pytest.mark.parametrize("header, reason", [
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 3), }", None),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 3)", "never closed"),
    ("{'descr': '<f4', 'shape': (10, 3), }", "not a dict of"),
    ("[1, 2, 3]", "not a dict of"),
    ("{'descr': 'zzz', 'fortran_order': False, 'shape': (10, 3), }", "data type"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-10, 3), }", "bad shape"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (10.0, 3), }", "bad shape"),
])
def test_damaged_headers_are_one_clear_error(tmp_path, header, reason):
    """Whatever a damaged .npy header makes the parsers raise (SyntaxError,
    KeyError, struct.error...) comes out as a ValueError naming the file."""
    p = tmp_path / "x.npy"
    _v3_npy(p, header)
    np.save(tmp_path / "t.npy", np.zeros(10, np.int64))
    if reason is None:
        assert fastxent.score_file(str(p), str(tmp_path / "t.npy"))["count"] == 10
        return
    with pytest.raises(ValueError, match=f"logits: .*x.npy: not a readable .npy array .*{reason}"):
        fastxent.score_file(str(p), str(tmp_path / "t.npy"))


def test_damaged_versions_and_lengths(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros(10, np.int64))
    t = str(tmp_path / "t.npy")
    (tmp_path / "short.npy").write_bytes(b"\x93NUMPY\x03\x00\x10")
    with pytest.raises(ValueError, match="short.npy: not a readable .npy array"):
        fastxent.score_file(str(tmp_path / "short.npy"), t)
    (tmp_path / "v9.npy").write_bytes(b"\x93NUMPY\x09\x00" + bytes(100))
    with pytest.raises(ValueError, match="unknown format version 9.0"):
        fastxent.score_file(str(tmp_path / "v9.npy"), t)
    # NumPy's own version-1 reader takes a negative length
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    raw = (tmp_path / "x.npy").read_bytes().replace(b"(10, 3)", b"(-10, 3)", 1)
    (tmp_path / "neg.npy").write_bytes(raw)
    with pytest.raises(ValueError, match=r"bad shape \(-10, 3\)"):
        fastxent.score_file(str(tmp_path / "neg.npy"), t)
    np.save(tmp_path / "tobj.npy", np.array([1, "a"] * 5, dtype=object), allow_pickle=True)
    with pytest.raises(TypeError, match="labels: .*tobj.npy holds Python objects"):
        fastxent.score_file(str(tmp_path / "x.npy"), str(tmp_path / "tobj.npy"))


@pytest.mark.parametrize("member", ["logits", "labels"])
def test_damaged_compressed_members(tmp_path, data, member):
    """A deflated member whose data fail their CRC or do not inflate: a
    ValueError naming the file and member (zipfile's BadZipFile and zlib's
    error are neither)."""
    x, t = data
    p = tmp_path / "c.npz"
    np.savez_compressed(p, logits=x, labels=t)
    import zipfile

    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo(member + ".npy")
        size = info.compress_size
    raw = bytearray(p.read_bytes())
    # the data follow the local header, whose lengths may differ from the
    # central directory's
    local = raw[info.header_offset:info.header_offset + 30]
    start = (info.header_offset + 30 + int.from_bytes(local[26:28], "little")
             + int.from_bytes(local[28:30], "little"))
    for where, name in ((start + size // 2, "crc"), (start, "inflate")):
        bad = raw.copy()
        bad[where:where + 16] = bytes(16) if name == "crc" else b"\xff" * 16
        q = tmp_path / f"{name}.npz"
        q.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match=f"{member}: .*{name}.npz.*{member}.npy"):
            fastxent.score_file(str(q))


def test_a_stored_member_ends_at_its_recorded_size(tmp_path):
    """A stored .npz member whose header claims more rows than it holds is
    truncated, not read on into the next member's bytes."""
    import io
    import zipfile

    b = io.BytesIO()
    np.lib.format.write_array(b, np.zeros((10, 7), np.float32))
    lying = b.getvalue().replace(b"(10, 7)", b"(20, 7)")
    assert lying != b.getvalue()
    labels = io.BytesIO()
    np.lib.format.write_array(labels, np.zeros(20, np.int64))
    p = tmp_path / "lie.npz"
    with zipfile.ZipFile(p, "w") as zf:   # stored: the data are mapped in place
        zf.writestr("logits.npy", lying)
        zf.writestr("labels.npy", labels.getvalue())
    with pytest.raises(ValueError, match="logits: .*lie.npz member logits.npy is truncated"):
        fastxent.score_file(str(p))
    # the labels member, lying the same way, at the end of the file
    p2 = tmp_path / "lie2.npz"
    short = io.BytesIO()
    np.lib.format.write_array(short, np.zeros(10, np.int64))
    with zipfile.ZipFile(p2, "w") as zf:
        zf.writestr("logits.npy", b.getvalue())
        zf.writestr("labels.npy", short.getvalue().replace(b"(10,)", b"(90,)"))
        zf.writestr("zzz.npy", bytes(4096))
    with pytest.raises(ValueError, match="labels: .*lie2.npz member labels.npy is truncated"):
        fastxent.score_file(str(p2))


def test_a_compression_zipfile_cannot_read_is_one_clear_error(tmp_path, data):
    import struct

    x, t = data
    p = tmp_path / "c.npz"
    np.savez_compressed(p, logits=x, labels=t)
    raw = bytearray(p.read_bytes())
    # every header's method field: 93 (Zstandard), which zipfile names but
    # cannot decompress here
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        j = raw.find(sig)
        while j >= 0:
            raw[j + at:j + at + 2] = struct.pack("<H", 93)
            j = raw.find(sig, j + 4)
    q = tmp_path / "zstd.npz"
    q.write_bytes(bytes(raw))
    # (Python 3.14 has a Zstandard decoder, to which these bytes are damaged)
    with pytest.raises(ValueError, match="logits: .*zstd.npz member logits.npy (cannot be "
                                         "decompressed here|is damaged)"):
        fastxent.score_file(str(q))
