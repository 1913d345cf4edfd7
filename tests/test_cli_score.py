"""The ``fastxent score`` command: exit codes, one-line errors without a
traceback, the metric table, --json, --per-row, --plot, the progress bar,
Ctrl-C, and --demo.  Run in-process through the command's main function, and
in a subprocess started outside the source tree (``python -m fastxent`` in
the clone's root would import the uncompiled source folder)."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastxent
from fastxent import __main__ as cli
from fastxent import _score_rows


def _overcommit_always():
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() == "1"
    except OSError:
        return sys.platform != "linux"   # elsewhere: not relied on


_OVERCOMMIT_ALWAYS = _overcommit_always()


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((400, 9)) * 2).astype(np.float32)
    t = rng.integers(0, 9, 400)
    t[::10] = -100
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    return tmp_path, x, t


class _Tty(io.StringIO):
    def isatty(self):
        return True


def run(argv, stderr=None):
    """(exit status, stdout, stderr) of ``fastxent score argv``."""
    from fastxent import _score_cli

    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    status = _score_cli.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def only_inputs(folder, *names):
    """No temporary file left: the folder holds exactly `names`."""
    assert sorted(os.listdir(folder)) == sorted(names)


def test_table_and_json(files):
    d, x, t = files
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--topk", "1,3", "--bins", "10",
                            "--json", str(d / "m.json")])
    assert status == 0, err
    assert err == ""                                   # not a terminal: no progress bar
    want = fastxent.score(x, t, topk=(1, 3), n_bins=10)
    for k in want:
        assert k in out
    assert f"{want['nll']:.6g}" in out
    doc = json.loads((d / "m.json").read_text())
    assert doc["rows"] == 400 and doc["classes"] == 9 and doc["dtype"] == "float32"
    assert doc["settings"] == {"topk": [1, 3], "n_bins": 10, "ignore_index": -100,
                               "temperature": 1.0}
    for k, v in want.items():
        assert doc["metrics"][k] == pytest.approx(v, rel=1e-12)
    assert sum(doc["reliability"]["count"]) == want["count"]
    only_inputs(d, "x.npy", "t.npy", "m.json")


def test_json_to_stdout_and_options(files):
    d, x, t = files
    t = np.where(t == -100, 0, t)
    np.save(d / "t0.npy", t)
    status, out, err = run([str(d / "x.npy"), str(d / "t0.npy"), "--json", "-", "--temperature",
                            "2", "--ignore-index", "0", "--threads", "1", "--chunk-mb", "0.001",
                            "--quiet"])
    assert status == 0, err
    doc = json.loads(out)
    want = fastxent.score(x, t, temperature=2.0, ignore_index=0)
    assert doc["metrics"]["count"] == want["count"]
    assert doc["metrics"]["nll"] == pytest.approx(want["nll"], rel=1e-12)


def test_nan_metrics_are_null_in_json(files):
    d, x, t = files
    np.save(d / "none.npy", np.full(400, -100))
    status, out, _ = run([str(d / "x.npy"), str(d / "none.npy"), "--json", "-"])
    assert status == 0
    doc = json.loads(out)
    assert doc["metrics"]["count"] == 0 and doc["metrics"]["nll"] is None


def test_per_row(files):
    d, x, t = files
    status, _, err = run([str(d / "x.npy"), str(d / "t.npy"), "--per-row", str(d / "rows.npz"),
                          "--chunk-mb", "0.002"])
    assert status == 0, err
    got = np.load(d / "rows.npz")
    want = _score_rows.score_rows(x, t)
    assert sorted(got.files) == sorted(want._fields)
    for name in want._fields:
        np.testing.assert_array_equal(got[name], getattr(want, name), err_msg=name)
        assert got[name].dtype == getattr(want, name).dtype
    only_inputs(d, "x.npy", "t.npy", "rows.npz")


def test_plot(files):
    pytest.importorskip("matplotlib")
    d, _, _ = files
    status, _, err = run([str(d / "x.npy"), str(d / "t.npy"), "--plot", str(d / "r.png")])
    assert status == 0, err
    assert (d / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    only_inputs(d, "x.npy", "t.npy", "r.png")


def test_plot_without_matplotlib(files, monkeypatch):
    d, _, _ = files
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--plot", str(d / "r.png")])
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "--plot needs matplotlib" in err


def test_progress_bar_only_on_a_terminal(files):
    d, _, _ = files
    status, _, err = run([str(d / "x.npy"), str(d / "t.npy"), "--chunk-mb", "0.001"],
                         stderr=_Tty())
    assert status == 0
    assert "rows/s" in err and "\r" in err and "left" in err
    status, _, err = run([str(d / "x.npy"), str(d / "t.npy"), "--quiet"], stderr=_Tty())
    assert status == 0 and err == ""


@pytest.mark.parametrize("make, argv, status, message", [
    (None, ["{d}/nope.npy", "{d}/t.npy"], 1, "logits: no such file or folder"),
    (None, ["{d}/x.npy"], 1, "no labels given"),
    (lambda d: np.save(d / "x3.npy", np.zeros((2, 3, 4), np.float32)),
     ["{d}/x3.npy", "{d}/t.npy"], 1, "logits: expected a 2-d array"),
    (lambda d: np.save(d / "short.npy", np.zeros(399, np.int64)),
     ["{d}/x.npy", "{d}/short.npy"], 1, "labels: 399 labels for 400 rows"),
    (lambda d: np.save(d / "big.npy", np.r_[np.zeros(5, int), 9, 3, 12, np.zeros(392, int)]),
     ["{d}/x.npy", "{d}/big.npy"], 1, "labels: 2 labels out of range for 9 classes.*"
                                      "the first is 9 at row 5"),
    (lambda d: np.save(d / "xi.npy", np.zeros((400, 9), np.int64)),
     ["{d}/xi.npy", "{d}/t.npy"], 1, "logits: dtype int64 cannot be scored"),
    (lambda d: np.save(d / "tf.npy", np.zeros(400)),
     ["{d}/x.npy", "{d}/tf.npy"], 1, "labels: expected integer class labels"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--topk", "0"], 2, "--topk"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--topk", "a,b"], 2, "--topk"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--bins", "-3"], 2, "--bins"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--bins", str(2**70)], 2, "--bins: expected 1 to"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--topk", f"1,{2**70}"], 2, "--topk: at most"),
    # in range, but a state larger than any memory: an option error too
    # (where the kernel refuses such an allocation: not with overcommit on)
    *([] if _OVERCOMMIT_ALWAYS else [
        (None, ["{d}/x.npy", "{d}/t.npy", "--bins", str(10**12)], 2,
         "--bins, --topk: out of memory .*; lower --bins or the largest --topk"),
        (None, ["{d}/x.npy", "{d}/t.npy", "--topk", str(2**40)], 2,
         "--bins, --topk: out of memory")]),
    (lambda d: (d / "f").write_bytes(b""), ["--demo", "--demo-dir", "{d}/f"], 2,
     "--demo-dir: cannot make the folder .*f"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--temperature", "nan"], 2, "--temperature"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--temperature", "0"], 2, "--temperature"),
    # positive, but 0 in the float32 that these logits are scored in: known
    # once the logits are opened, and still an option error, before any output
    (None, ["{d}/x.npy", "{d}/t.npy", "--temperature", "1e-50", "--per-row", "{d}/r.npz"], 2,
     "--temperature: 1e-50 rounds to 0 in float32, the precision of these float32 logits"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--threads", "0"], 2, "--threads"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--chunk-mb", "0"], 2, "--chunk-mb"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--ignore-index", "x"], 2, "--ignore-index"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--frobnicate"], 2, "unrecognized arguments"),
    (None, [], 2, "expected LOGITS"),
    (None, ["--demo", "{d}/x.npy"], 2, "--demo writes its own files"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--rows", "10"], 2, "--rows: only with --demo"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--per-row", "{d}/no/such/dir/r.npz"], 1, "--per-row"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--json", "{d}/no/such/dir/m.json"], 1, "--json"),
    # outputs that would replace an input or each other, or cannot be written
    (None, ["{d}/x.npy", "{d}/t.npy", "--per-row", "{d}/x.npy"], 2,
     "--per-row: .*x.npy is the LOGITS being scored"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--json", "{d}/t.npy"], 2,
     "--json: .*t.npy is the TARGETS being scored"),
    (lambda d: os.link(d / "x.npy", d / "h.npy"),
     ["{d}/x.npy", "{d}/t.npy", "--per-row", "{d}/h.npy"], 2, "h.npy is the LOGITS being scored"),
    (lambda d: os.symlink(d / "t.npy", d / "s.npy"),
     ["{d}/x.npy", "{d}/t.npy", "--json", "{d}/s.npy"], 2, "s.npy is the TARGETS being scored"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--json", "{d}/o", "--per-row", "{d}/o"], 2,
     "--json and --per-row both name"),
    (lambda d: (os.mkdir(d / "sh"), np.save(d / "sh" / "a.npy", np.zeros((400, 9), np.float32))),
     ["{d}/sh", "{d}/t.npy", "--json", "{d}/sh/b.npy"], 2,
     "--json: .*b.npy would be a shard of the LOGITS folder"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--per-row", "-"], 2, "--per-row: '-' .* only for --json"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--plot", "-"], 2, "--plot: '-' .* only for --json"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--json", "{d}"], 1, "--json: .* is a folder"),
    (None, ["{d}/x.npy", "{d}/t.npy", "--json", "{d}/m.json", "--per-row", "{d}/r.npz",
            "--plot", "{d}/no/such/dir/p.png"], 1, "--plot: no such folder"),
])
def test_bad_input_is_one_line(files, make, argv, status, message):
    d, _, _ = files
    if make is not None:
        make(d)
    before = sorted(os.listdir(d))
    got, out, err = run([a.format(d=d) for a in argv])
    assert got == status
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fastxent score: error: "), err
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert sorted(os.listdir(d)) == before


def test_plot_format_checked_before_anything_is_written(files):
    pytest.importorskip("matplotlib")
    d, _, _ = files
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--json", str(d / "m.json"),
                            "--per-row", str(d / "r.npz"), "--plot", str(d / "p.xyz")])
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "--plot: matplotlib cannot write .xyz files" in err
    only_inputs(d, "x.npy", "t.npy")


def test_scheduler_address_that_cannot_be_parsed_fails_at_once(files):
    """Client's constructor failing on it left a half-made client whose
    finalizer held the exit for a minute and printed a traceback."""
    pytest.importorskip("distributed")
    d, _, _ = files
    started = time.monotonic()
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--scheduler", "garbage"])
    assert status == 1 and out == "" and err.count("\n") == 1
    assert "--scheduler: cannot connect to 'garbage'" in err
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("stop", ["error", "ctrl-c"])
def test_a_late_failure_leaves_no_output(files, monkeypatch, stop):
    """Every output is written under a temporary name and renamed only when
    all of them are complete: a plot that fails (or Ctrl-C while it is
    drawn) leaves neither the JSON nor the per-row file, and replaces no
    existing file; the message names the user's path, not the temporary."""
    from fastxent import _score_cli

    pytest.importorskip("matplotlib")   # --plot is checked for it first
    d, _, _ = files
    (d / "m.json").write_text("old")

    def write(tmp):
        open(tmp, "w").close()
        if stop == "ctrl-c":
            raise KeyboardInterrupt
        raise PermissionError(13, "Permission denied", tmp)

    monkeypatch.setattr(_score_cli, "_plot",
                        lambda path, scorer, title, staged: staged.write("--plot", path, write))
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--json", str(d / "m.json"),
                            "--per-row", str(d / "r.npz"), "--plot", str(d / "p.png"),
                            "--quiet"])
    if stop == "ctrl-c":
        assert status == 130 and "interrupted" in err
    else:
        assert status == 1
        assert err == f"fastxent score: error: --plot: cannot write {d / 'p.png'}: " \
                      "Permission denied\n"
    assert "Traceback" not in err
    only_inputs(d, "x.npy", "t.npy", "m.json")
    assert (d / "m.json").read_text() == "old"


def test_signals_wait_for_the_renames(files, monkeypatch):
    """SIGINT arriving between two renames of the commit is held back until
    the set is complete, then stops the command (exit 130) with every
    output in place: never half of a new set beside half of an old one."""
    from fastxent import _score_cli

    d, _, _ = files
    real = os.replace
    calls = []

    def replace_then_interrupt(src, dst):
        real(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)   # held: the second rename still runs

    monkeypatch.setattr(_score_cli.os, "replace", replace_then_interrupt)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--json",
                                str(d / "m.json"), "--per-row", str(d / "r.npz"), "--quiet"])
    finally:
        signal.signal(signal.SIGINT, old)
    assert len(calls) == 2
    assert status == 130 and "interrupted" in err
    only_inputs(d, "x.npy", "t.npy", "m.json", "r.npz")


def test_damaged_local_header_of_a_compressed_member(files):
    d, x, t = files
    p = d / "c.npz"
    np.savez_compressed(p, logits=x, labels=t)
    import zipfile

    with zipfile.ZipFile(p) as zf:
        offset = zf.getinfo("labels.npy").header_offset
    raw = bytearray(p.read_bytes())
    raw[offset] ^= 0xFF   # the local header's signature
    p.write_bytes(bytes(raw))
    status, out, err = run([str(p)])
    assert status == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "labels.npy is damaged" in err


def test_scheduler_given_an_empty_address_is_refused(files):
    pytest.importorskip("distributed")
    d, _, _ = files
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--scheduler", ""])
    assert status == 1 and out == "" and "--scheduler: cannot connect to ''" in err


def test_a_full_disk_leaves_no_temporary_files(files, monkeypatch):
    """A write of the per-row file that fails (a full disk fails the
    write, then the flush of the close again) ends with one line naming
    --per-row and its path, and no temporary folder."""
    from fastxent import _score_cli

    d, _, _ = files

    class Full(io.FileIO):
        def write(self, b):
            raise OSError(28, "No space left on device")

    def full_open(path, mode="r", *args, **kwargs):
        return io.BufferedWriter(Full(path, "w"), 8) if "w" in mode else open(path, mode)

    monkeypatch.setattr(_score_cli, "open", full_open, raising=False)
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--per-row", str(d / "r.npz"),
                            "--quiet"])
    assert status == 1 and out == ""
    assert err == f"fastxent score: error: --per-row: cannot write {d / 'r.npz'}: " \
                  "No space left on device\n"
    only_inputs(d, "x.npy", "t.npy")


def test_ctrl_c_leaves_nothing(files, monkeypatch):
    d, _, _ = files
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = _score_rows.score_rows
    monkeypatch.setattr(_score_rows, "score_rows", interrupted)
    status, out, err = run([str(d / "x.npy"), str(d / "t.npy"), "--per-row", str(d / "r.npz"),
                            "--json", str(d / "m.json"), "--chunk-mb", "0.001"])
    assert status == 130 and len(calls) == 2
    assert "interrupted" in err and "Traceback" not in err and out == ""
    only_inputs(d, "x.npy", "t.npy")


def test_the_fastxent_command_dispatches(files, capsys):
    d, _, _ = files
    assert cli.main(["score", str(d / "x.npy"), str(d / "t.npy"), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 400
    assert cli.main(["score", "--help"]) == 0
    assert "--per-row" in capsys.readouterr().out


def test_demo_in_a_folder(tmp_path):
    status, out, err = run(["--demo", "--rows", "300", "--classes", "20", "--demo-dir",
                            str(tmp_path / "demo"), "--json", "-"])
    assert status == 0, err
    doc = json.loads(out)
    assert doc["rows"] == 300 and doc["classes"] == 20
    x = np.load(tmp_path / "demo" / "logits.npy")
    t = np.load(tmp_path / "demo" / "labels.npy")
    assert doc["metrics"]["nll"] == pytest.approx(fastxent.score(x, t)["nll"], rel=1e-12)


def _command(*args):
    return [sys.executable, "-m", "fastxent", "score", *args]


def test_subprocess_exit_codes_and_no_traceback(files):
    d, _, _ = files
    ok = subprocess.run(_command("x.npy", "t.npy"), cwd=d, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "accuracy@5" in ok.stdout
    bad = subprocess.run(_command("x.npy", "nope.npy"), cwd=d, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1
    assert bad.stderr == f"fastxent score: error: labels: no such file or folder: nope.npy\n"
    demo = subprocess.run(_command("--demo", "--rows", "200", "--classes", "30"), cwd=d,
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "perplexity" in demo.stdout
    assert "removed at the end" in demo.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child")
def test_subprocess_ctrl_c_and_sigterm_exit_promptly(tmp_path):
    # a million rows read one at a time (a chunk of 10 bytes holds less than
    # a row): some 7 microseconds a row make a run of seconds, far longer
    # than the 10 ms poll below, so the signal always finds it scoring
    np.save(tmp_path / "x.npy", np.ones((1000000, 4), np.float32))
    np.save(tmp_path / "t.npy", np.zeros(1000000, np.int64))
    # `python -m fastxent score ...` with SIGINT's usual handler installed
    # first: a terminal's Ctrl-C reaches a foreground command whose SIGINT
    # has its default action, but a shell starts background jobs (a CI
    # runner's, say) with SIGINT ignored, which this child would inherit and
    # keep, running to its end
    # (SIGTERM set to its default too, whatever the parent's)
    child = ("import runpy, signal\n"
             "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
             "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
             "runpy.run_module('fastxent', run_name='__main__', alter_sys=True)\n")
    command = [sys.executable, "-c", child, "score", "x.npy", "t.npy", "--per-row", "rows.npz",
               "--chunk-mb", "0.00001"]
    for sig, status, said in [(signal.SIGINT, 130, "interrupted"),
                              (signal.SIGTERM, 143, "terminated")]:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            # wait until the per-row folder exists: scoring has started
            deadline = time.monotonic() + 60
            while not any(n.startswith(".rows.npz.") for n in os.listdir(tmp_path)):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.01)
            sent = time.monotonic()
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == status, (proc.returncode, out, err, os.listdir(tmp_path))
        assert "Traceback" not in err and said in err
        assert took < 5
        only_inputs(tmp_path, "x.npy", "t.npy")


def test_main_leaves_the_sigterm_handler_as_it_was(files, capsys):
    # in-process calls (a notebook, a test) put SIGTERM's handler back
    d, _, _ = files
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["score", str(d / "x.npy"), str(d / "t.npy"), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 400
    assert signal.getsignal(signal.SIGTERM) is before


def test_demo_needs_only_numpy(tmp_path):
    """The README's main job runs on a fresh install, without any peer."""
    blocked = ("scipy", "torch", "sklearn", "matplotlib", "ml_dtypes", "torchmetrics", "dask")
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "from fastxent import __main__\n"
            "sys.exit(__main__.main(['score', '--demo', '--rows', '500', '--classes', '40']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy@5" in proc.stdout and "Traceback" not in proc.stderr
