"""``fastxent score``: the metrics of stored logits against stored labels.

    fastxent score LOGITS [TARGETS] [--topk 1,5] [--bins 15] [--temperature T]
                   [--ignore-index I] [--threads N] [--json FILE] [--per-row FILE]
                   [--plot FILE] [--quiet] [--chunk-mb M]
    fastxent score --demo [--rows N] [--classes C] [--demo-dir DIR] [options]

LOGITS is a .npy file of (rows, classes) logits, an .npz holding them as
``logits`` (with ``labels`` beside them, then TARGETS may be left out), or
a folder of .npy shards concatenated in name order.  Files are read in
chunks of --chunk-mb MiB, so they may be larger than memory.  Exit status:
0, 1 for bad input (one line on stderr), 2 for bad options, 130 on Ctrl-C,
143 on SIGTERM (a batch system's stop); neither leaves a file behind.
"""
import argparse
import json
import math
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np

PROG = "fastxent score"


class _InputError(Exception):
    """Bad input or options: reported as one line, exit status 1 (2 for options)."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


class _Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt, through every `finally`
    that removes a temporary file, to exit status 143."""


def _raise_terminated(signum, frame):
    # a second SIGTERM (a batch system's reminder) must not cut the cleanup
    # short; main puts the default back at the end
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated()


def _stop_on_sigterm():
    """Make SIGTERM raise _Terminated while the command runs (a batch system
    stops a job with it; the default action would kill the process with its
    temporary files in place).  Returns the function that restores the
    previous handler.  Left alone off the main thread, where Python cannot
    set handlers, and where SIGTERM is not at its default (ignored or
    handled by the program that calls main)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        return lambda: None
    signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _InputError(message, status=2)


def _positive_int(name):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") \
                from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
        return v
    return parse


def _topk(text):
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r}") from None
    if any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return ks


def _temperature(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0.0 < v < math.inf:
        raise argparse.ArgumentTypeError(
            f"expected a positive finite number, got {text!r}")
    return v


def _chunk_mb(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0.0 < v < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _parser():
    p = _Parser(prog=PROG, description="Metrics of stored logits against class labels.",
                epilog="Exit status: 0, 1 for bad input, 2 for bad options, 130 on Ctrl-C, "
                       "143 on SIGTERM.")
    p.add_argument("logits", nargs="?", help=".npy, .npz or folder of .npy shards")
    p.add_argument("targets", nargs="?",
                   help="labels: .npy, .npz or folder of shards (default: 'labels' of LOGITS.npz)")
    p.add_argument("--topk", type=_topk, default=(1, 5), metavar="K[,K...]", help="k of accuracy@k (default 1,5)")
    p.add_argument("--bins", type=_positive_int("--bins"), default=15, metavar="N",
                   help="calibration bins (default 15)")
    p.add_argument("--temperature", type=_temperature, default=1.0, metavar="T",
                   help="divide logits by T (default 1)")
    p.add_argument("--ignore-index", type=int, default=-100, metavar="I",
                   help="label of rows to skip (default -100)")
    p.add_argument("--threads", type=_positive_int("--threads"), default=None, metavar="N",
                   help="threads (default: OpenMP's)")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON ('-': stdout)")
    p.add_argument("--per-row", metavar="FILE",
                   help="write the per-row scores to FILE (.npz: nll, rank, prediction, "
                        "confidence, entropy, brier)")
    p.add_argument("--plot", metavar="FILE", help="reliability diagram (needs matplotlib)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="score on the Dask cluster at ADDRESS (tcp://host:port); the files "
                        "must be readable at the same path on its workers")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no notes")
    p.add_argument("--chunk-mb", type=_chunk_mb, default=64.0, metavar="M",
                   help="MiB of logits read at a time (default 64)")
    p.add_argument("--demo", action="store_true",
                   help="write synthetic logits and labels, then score them")
    p.add_argument("--rows", type=_positive_int("--rows"), default=None, metavar="N",
                   help="rows of the demo (default 20000)")
    p.add_argument("--classes", type=_positive_int("--classes"), default=None, metavar="C",
                   help="classes of the demo (default 1000)")
    p.add_argument("--demo-dir", metavar="DIR",
                   help="folder for the demo's files (default: a temporary folder, removed)")
    return p


def write_demo(folder, rows, classes, seed=0):
    """Write ``logits.npy`` (float32, ``rows x classes``) and ``labels.npy``
    into `folder`: labels drawn from the softmax of the logits (a model
    calibrated by construction: its ECE is sampling noise).  Returns the
    two paths."""
    rng = np.random.default_rng(seed)
    logits_path = os.path.join(folder, "logits.npy")
    labels_path = os.path.join(folder, "labels.npy")
    logits = np.lib.format.open_memmap(logits_path, mode="w+", dtype=np.float32,
                                       shape=(rows, classes))
    labels = np.empty(rows, np.int64)
    step = max(1, (8 << 20) // (classes * 8))
    for i in range(0, rows, step):
        n = min(step, rows - i)
        # a few classes per row stand out, as in a trained model
        x = rng.standard_normal((n, classes)) * 2.0
        x[np.arange(n), rng.integers(0, classes, n)] += 6.0
        logits[i:i + n] = x
        # Gumbel-max: argmax(x + G) is distributed as softmax(x)
        labels[i:i + n] = np.argmax(x.astype(np.float32) + rng.gumbel(size=x.shape), axis=1)
    logits.flush()
    del logits
    np.save(labels_path, labels)
    return logits_path, labels_path


class _Progress:
    """A one-line progress bar on a terminal: rows done, rows/s, time left."""

    def __init__(self, total, stream):
        self.total, self.stream = total, stream
        self.start = self.last = time.monotonic()

    def __call__(self, done):
        now = time.monotonic()
        if now - self.last < 0.1 and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else math.inf
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(frac * 30)
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "--"
        self.stream.write(f"\r[{bar:<30}] {frac:6.1%} {done}/{self.total} rows "
                          f"{rate:,.0f} rows/s, {eta} left ")
        self.stream.flush()

    def close(self):
        self.stream.write("\r" + " " * 79 + "\r")
        self.stream.flush()


def _temp_name(path, ext=""):
    """A fresh hidden name beside `path`, not yet created: whoever holds it
    can always clean up, whenever an interrupt comes."""
    base = os.path.basename(path)
    return os.path.join(os.path.dirname(path),
                        f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}")


def _cannot_write(option, path, e):
    """The one line of a failed write: the option and the user's path, not
    the temporary name the error names."""
    return _InputError(f"{option}: cannot write {path}: {e.strerror or e}")


def _hold_signals():
    """Record SIGINT and SIGTERM instead of acting on them (on the main
    thread, where Python runs signal handlers); returns what
    _release_signals needs.  Blocking them with pthread_sigmask would not
    do: the kernel hands a process's signal to any thread that does not
    block it (an OpenMP worker), and Python then runs the handler on the
    main thread all the same."""
    if threading.current_thread() is not threading.main_thread():
        return None
    pending = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda n, frame: pending.append(n))
    return previous, pending


def _release_signals(held):
    """Put the handlers back, then deliver what arrived meanwhile to them."""
    if held is None:
        return
    previous, pending = held
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    for signum in dict.fromkeys(pending):
        signal.raise_signal(signum)


class _Staged:
    """The run's output files, each written under a temporary name beside
    its path and renamed into place by :meth:`commit` once every one of them
    is complete; :meth:`abort` removes whatever was not renamed (an error,
    Ctrl-C or SIGTERM anywhere before the end leaves no file behind, nor
    replaces an existing one).  Items have ``commit()`` and ``abort()``."""

    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return item

    def write(self, option, path, write):
        """Call ``write(tmp)`` on a temporary name beside `path`, to be
        renamed to `path` at the commit."""
        self.add(_StagedFile(option, path)).produce(write)

    def commit(self):
        # Ctrl-C or SIGTERM between two renames would leave half of a new
        # set beside half of an old one: recorded until the renames are
        # done, then delivered (the outputs are complete by then)
        held = _hold_signals()
        try:
            while self.items:
                self.items[0].commit()
                self.items.pop(0)
        finally:
            _release_signals(held)

    def abort(self):
        for item in self.items:
            item.abort()
        self.items = []


class _StagedFile:
    """One file written by a callable under a temporary name."""

    def __init__(self, option, path):
        self.option, self.path = option, os.path.abspath(path)
        self.tmp = _temp_name(self.path, os.path.splitext(self.path)[1])

    def produce(self, write):
        """Call ``write(tmp)``; a failure names the option and the path."""
        try:
            write(self.tmp)
        except OSError as e:
            raise _cannot_write(self.option, self.path, e) from None

    def commit(self):
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise _cannot_write(self.option, self.path, e) from None

    def abort(self):
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class _PerRowWriter(_StagedFile):
    """Per-row scores streamed to a temporary folder beside `path`
    (:meth:`start`, :meth:`write`), packed by :meth:`finish` into the
    temporary .npz that :meth:`commit` renames to `path` (which appears
    whole or not at all); :meth:`abort` leaves nothing behind, also after a
    failed write (a full disk).  Creating it creates nothing on disk."""

    def __init__(self, path):
        super().__init__("--per-row", path)
        self.tmpdir = _temp_name(self.path)
        self.files = {}

    def start(self, n_rows, float_dtype):
        from ._score_rows import ROW_FIELDS

        try:
            os.mkdir(self.tmpdir)
            for name in ROW_FIELDS:
                dtype = np.dtype(np.int64 if name in ("rank", "prediction") else float_dtype)
                f = open(os.path.join(self.tmpdir, name + ".npy"), "wb")
                self.files[name] = (f, dtype)
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                        "shape": (n_rows,)})
        except OSError as e:
            raise _cannot_write(self.option, self.path, e) from None

    def write(self, rows):
        try:
            for name, a in rows._asdict().items():
                f, dtype = self.files[name]
                f.write(np.ascontiguousarray(a, dtype=dtype).data)
        except OSError as e:
            raise _cannot_write(self.option, self.path, e) from None

    def finish(self):
        import zipfile

        def pack(tmp):
            for f, _ in self.files.values():
                f.close()
            with open(tmp, "xb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED,
                                                         allowZip64=True) as zf:
                for name in self.files:
                    zf.write(os.path.join(self.tmpdir, name + ".npy"), name + ".npy")

        self.produce(pack)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def abort(self):
        """Remove the temporary files (harmless after :meth:`commit`)."""
        for f, _ in self.files.values():
            try:
                f.close()   # its flush may fail again (a full disk); it closes anyway
            except OSError:
                pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        super().abort()


_INPUT_NAMES = {"logits": "LOGITS", "targets": "TARGETS"}


def _check_outputs(args):
    """Refuse, before anything is read, the outputs that cannot be written
    or would destroy an input: a missing folder, a folder as the file, '-'
    outside --json, a path that is an input or another output, a --plot
    format matplotlib does not write."""
    outputs = [(o, p) for o, p in (("--json", args.json), ("--per-row", args.per_row),
                                   ("--plot", args.plot)) if p is not None]
    inputs = [(_INPUT_NAMES[k], os.path.realpath(getattr(args, k)))
              for k in ("logits", "targets") if getattr(args, k) is not None]
    folders = [(n, p) for n, p in inputs if os.path.isdir(p)]
    seen = {}
    for option, path in outputs:
        if path == "-":
            if option == "--json":
                continue
            raise _InputError(f"{option}: '-' (standard output) is only for --json; give a "
                              "file name", 2)
        full = os.path.abspath(path)
        folder = os.path.dirname(full)
        if not os.path.isdir(folder):
            raise _InputError(f"{option}: no such folder: {folder}")
        if os.path.isdir(full):
            raise _InputError(f"{option}: {full} is a folder, not a file name")
        real = os.path.realpath(full)
        for name, where in inputs:
            # the same path, or another name of the same file (a hard link)
            if real == where or (os.path.exists(real) and os.path.exists(where)
                                 and os.path.samefile(real, where)):
                raise _InputError(f"{option}: {path} is the {name} being scored; give "
                                  "another file name", 2)
        for name, where in folders:
            # a .npy there would replace a shard, or be one the next time
            if os.path.dirname(real) == where and real.endswith(".npy"):
                raise _InputError(f"{option}: {path} would be a shard of the {name} folder; "
                                  "give a name outside it", 2)
        if real in seen:
            raise _InputError(f"{seen[real]} and {option} both name {path}; give each its own "
                              "file", 2)
        seen[real] = option
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (first: it alone says whether matplotlib is there)
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            raise _InputError("--plot needs matplotlib, which is not installed "
                              "(pip install matplotlib)") from None
        ext = os.path.splitext(args.plot)[1].lstrip(".").lower()
        formats = FigureCanvasBase.get_supported_filetypes()
        if ext and ext not in formats:
            raise _InputError(f"--plot: matplotlib cannot write .{ext} files (it writes "
                              f"{', '.join('.' + f for f in sorted(formats))})", 2)


def _plot(path, scorer, title, staged):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = scorer.reliability()
    n = scorer.n_bins
    width = 1.0 / n
    centers = np.linspace(0.0, 1.0, n + 1)[:-1] + width / 2
    acc = np.nan_to_num(bins["accuracy"][:n])
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centers, acc, width=width, edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    hx.bar(centers, bins["count"][:n], width=width, edgecolor="black")
    hx.set_xlabel("confidence (top-label probability)")
    hx.set_ylabel("rows")
    hx.set_xlim(0, 1)
    fig.tight_layout()
    ext = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    try:
        staged.write("--plot", path, lambda tmp: fig.savefig(tmp, format=ext))
    finally:
        plt.close(fig)


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _table(result, info):
    lines = [f"logits  {info['logits']}  ({info['rows']} x {info['classes']} {info['dtype']})",
             f"labels  {info['targets']}", ""]
    units = {"nll": "nats", "bits_per_token": "bits", "entropy": "nats"}
    width = max(len(k) for k in result)
    for k, v in result.items():
        if isinstance(v, float):
            text = f"{v:.6g}" if k != "count" else str(v)
        else:
            text = str(v)
        lines.append(f"{k:<{width}}  {text:>12}  {units.get(k, '')}".rstrip())
    return "\n".join(lines)


def run(args, stdout, stderr):
    from ._scorer import Scorer

    _check_outputs(args)
    try:
        scorer = Scorer(topk=args.topk, n_bins=args.bins, ignore_index=args.ignore_index,
                        temperature=args.temperature, n_threads=args.threads)
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        # a setting out of the scorer's range, or whose state would not fit in
        # memory, is a bad option (exit 2), named as one
        text = str(e).replace("max(topk)", "the largest --topk")
        for name, option in (("n_bins", "--bins"), ("topk", "--topk"),
                             ("ignore_index", "--ignore-index"), ("n_threads", "--threads")):
            text = re.sub(rf"(?<![-\w]){name}\b", option, text)
        raise _InputError(text, 2) from None
    staged = _Staged()
    try:
        info = (_run_on_scheduler(args, scorer) if args.scheduler is not None
                else _run_here(args, scorer, stderr, staged))
        _report(args, scorer, info, stdout, staged)
        staged.commit()
    finally:
        staged.abort()
    return 0


def _check_temperature(temperature, dtype):
    """A --temperature that the logits' working precision (float32 below
    float64) rounds to 0 is a bad option (exit 2), known once the logits'
    dtype is: the kernels would divide by 0."""
    from ._score_rows import _zero_in_float32

    if dtype != np.float64 and _zero_in_float32(temperature):
        raise _InputError(f"argument --temperature: {temperature!r} rounds to 0 in float32, "
                          f"the precision of these {_dtype_name(dtype)} logits", 2)


def _run_on_scheduler(args, scorer):
    """Score the files on the Dask cluster at args.scheduler."""
    if args.per_row:
        raise _InputError("--per-row is not available with --scheduler (write per-row scores "
                          "with fastxent.score_rows on Dask arrays)", 2)
    try:
        from ._dask import files
    except ImportError:
        raise _InputError("--scheduler needs Dask, which is not installed "
                          "(pip install 'dask[distributed]')") from None
    logits = files.lazy_logits(args.logits, max(1, int(args.chunk_mb * (1 << 20))))
    _check_temperature(args.temperature, logits.dtype)
    labels = files.read_labels(args.targets, args.logits)
    started = time.monotonic()
    files.score_on_scheduler(args.scheduler, logits, labels, scorer)
    from ._score_files import origin

    return {"logits": origin(args.logits, "logits"),
            "targets": origin(args.targets, "labels", args.logits),
            "rows": logits.shape[0], "classes": logits.shape[1],
            "dtype": _dtype_name(logits.dtype), "seconds": time.monotonic() - started,
            "scheduler": args.scheduler}


def _run_here(args, scorer, stderr, staged):
    """Score the files in this process, chunk by chunk; the per-row file, if
    any, is staged for the commit of `staged`."""
    from ._score_files import open_labels, open_logits, score_sources
    from ._score_rows import score_rows

    logits = open_logits(args.logits)
    labels = writer = progress = None
    try:
        _check_temperature(args.temperature, logits.dtype)
        labels = open_labels(args.targets, args.logits)
        n, classes = logits.shape
        float_dtype = np.float64 if logits.dtype == np.float64 else np.float32
        if args.per_row:
            # staged before it creates anything: removed whenever an interrupt comes
            writer = staged.add(_PerRowWriter(args.per_row))
            writer.start(n, float_dtype)
        if not args.quiet and stderr.isatty():
            progress = _Progress(n, stderr)

        def on_chunk(start, stop, x, t):
            if writer is not None:
                writer.write(score_rows(x, t, ignore_index=args.ignore_index,
                                        temperature=args.temperature, n_threads=args.threads))
            if progress is not None:
                progress(stop)

        started = time.monotonic()
        score_sources(logits, labels, scorer, chunk_bytes=max(1, int(args.chunk_mb * (1 << 20))),
                      on_chunk=on_chunk)
        seconds = time.monotonic() - started
        if progress is not None:
            progress.close()
        if writer is not None:
            writer.finish()
        info = {"logits": logits.origin or os.path.abspath(args.logits),
                "targets": labels.origin or os.path.abspath(args.targets or args.logits),
                "rows": n, "classes": classes, "dtype": _dtype_name(logits.dtype),
                "seconds": seconds}
    finally:
        if labels is not None:
            labels.close()
        logits.close()
    return info


def _report(args, scorer, info, stdout, staged):
    """Print the metrics; stage the JSON and the reliability diagram."""
    n, seconds = info["rows"], info["seconds"]
    result = scorer.result()
    if args.json:
        doc = dict(info, settings={"topk": list(scorer.topk), "n_bins": scorer.n_bins,
                                   "ignore_index": scorer.ignore_index,
                                   "temperature": scorer.temperature},
                   metrics={k: _json_value(v) for k, v in result.items()},
                   reliability={k: [_json_value(float(x)) for x in v]
                                for k, v in scorer.reliability().items()})
        text = json.dumps(doc, indent=2, allow_nan=False)
        if args.json == "-":
            stdout.write(text + "\n")
        else:
            def write_json(tmp):
                with open(tmp, "w") as f:
                    f.write(text + "\n")
            staged.write("--json", args.json, write_json)
    if args.json != "-":
        stdout.write(_table(result, info) + "\n")
        if not args.quiet:
            rate = n / seconds if seconds > 0 else math.inf
            stdout.write(f"\n{n} rows in {seconds:.2f} s ({rate:,.0f} rows/s)\n")
    if args.plot:
        _plot(args.plot, scorer, f"reliability, {result['count']} rows (ECE {result['ece']:.4f})",
              staged)


def _dtype_name(dtype):
    return "bfloat16" if dtype.kind == "V" and dtype.itemsize == 2 else dtype.name


def main(argv=None, stdout=None, stderr=None):
    """Run ``fastxent score`` with the arguments `argv`; returns the exit status."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    argv = sys.argv[1:] if argv is None else list(argv)
    demo_dir = None
    restore_sigterm = _stop_on_sigterm()
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0)
        demo_only = [o for o, v in (("--rows", args.rows), ("--classes", args.classes),
                                    ("--demo-dir", args.demo_dir)) if v is not None]
        if demo_only and not args.demo:
            raise _InputError(f"{', '.join(demo_only)}: only with --demo", 2)
        if args.demo:
            args.rows = 20000 if args.rows is None else args.rows
            args.classes = 1000 if args.classes is None else args.classes
            if args.logits or args.targets:
                raise _InputError("--demo writes its own files: give no LOGITS or TARGETS", 2)
            folder = args.demo_dir
            if folder is None:
                # named before it exists, so that `finally` removes it whenever
                # an interrupt comes
                folder = demo_dir = os.path.join(
                    tempfile.gettempdir(), f"fastxent-demo-{os.getpid()}-{secrets.token_hex(4)}")
                os.mkdir(folder)
            else:
                try:
                    os.makedirs(folder, exist_ok=True)
                except OSError as e:   # a file of that name, a read-only parent
                    raise _InputError(f"--demo-dir: cannot make the folder {folder} "
                                      f"({e.strerror or e})", 2) from None
            args.logits, args.targets = write_demo(folder, args.rows, args.classes)
            if not args.quiet:
                kept = "" if args.demo_dir else " (removed at the end; --demo-dir DIR keeps them)"
                stderr.write(f"demo: {args.rows} x {args.classes} float32 logits, labels drawn "
                             f"from their softmax, in {folder}{kept}\n")
        elif args.logits is None:
            raise _InputError("expected LOGITS (a .npy, .npz or folder of .npy), or --demo", 2)
        return run(args, stdout, stderr)
    except _InputError as e:
        stderr.write(f"{PROG}: error: {e}\n")
        return e.status
    except (ValueError, TypeError, IndexError, OSError) as e:
        stderr.write(f"{PROG}: error: {e}\n")
        return 1
    except MemoryError as e:
        # the scorer's own say which setting asked for too much
        stderr.write(f"{PROG}: error: {e}\n" if str(e).startswith(("n_bins", "topk"))
                     else f"{PROG}: error: out of memory (try a smaller --chunk-mb)\n")
        return 1
    except KeyboardInterrupt:
        stderr.write(f"\n{PROG}: interrupted\n")
        return 130
    except _Terminated:
        stderr.write(f"\n{PROG}: terminated\n")
        return 143
    finally:
        if demo_dir is not None:
            shutil.rmtree(demo_dir, ignore_errors=True)
        restore_sigterm()
