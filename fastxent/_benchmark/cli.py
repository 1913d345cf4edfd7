"""The command line: the options, and :func:`run`, which measures and prints."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .cases import DEFAULT_SEED
from .memory import measure_memory
from .operations import DEFAULT_OPS, EXTRA_IMPLS, IMPLS, OPS, OP_GROUPS
from .report import environment_lines, reproduce_command, write_report
from .timing import DEFAULT_REPEATS, QUICK_REPEATS, time_cases


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _csv(choices, groups=None):
    groups = groups or {}

    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices and t not in groups]
        if bad or not items:
            names = list(choices) + [f"{g} (group)" for g in groups]
            raise argparse.ArgumentTypeError(f"choose from {', '.join(names)} (got {text!r})")
        return expand_ops(items, groups)
    return parse


def expand_ops(names, groups=OP_GROUPS):
    """Replace group names (OP_GROUPS) by their operations; drop repeats, keep order."""
    out = []
    for name in names:
        for op in groups.get(name, (name,)):
            if op not in out:
                out.append(op)
    return out


def build_parser(parser=None):
    """Add this harness's options to ``parser`` (a new one when None)."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m fastxent._benchmark",
            description="Time fastxent against NumPy, SciPy, PyTorch and JAX, and measure its peak memory.",
        )
    all_impls = IMPLS + EXTRA_IMPLS
    parser.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats (a self-check)")
    parser.add_argument("--large", action="store_true", help="add 4096 x 50257 float32 (256 x 50257 with --quick)")
    parser.add_argument("--calls", action="store_true",
                        help="only the call-overhead shape (1 x 10 float64, microseconds per call)")
    groups = "; ".join(f"{g} = {','.join(ops)}" for g, ops in OP_GROUPS.items() if g != "all")
    parser.add_argument("--ops", type=_csv(OPS, OP_GROUPS), default=list(DEFAULT_OPS),
                        help="comma-separated operations or groups: " + ",".join(OPS)
                        + f" (default: the group default); groups: {groups}; all = every operation")
    parser.add_argument("--impls", type=_csv(all_impls), default=list(IMPLS),
                        help="comma-separated: " + ",".join(all_impls) + " (default: all but fastxent_out)")
    parser.add_argument("--threads", type=int, default=None, help="threads for fastxent and torch (default: all CPUs)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed calls per implementation (default {DEFAULT_REPEATS}, --quick {QUICK_REPEATS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the data generator")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    parser.add_argument("--mem-impls", type=_csv(all_impls), default=["fastxent"],
                        help="implementations whose peak memory is measured (default: fastxent)")
    parser.add_argument("--no-mem", action="store_true", help="skip the peak-memory subprocesses")
    return parser


def _resolve(ns):
    ops = expand_ops([ns.ops] if isinstance(ns.ops, str) else list(ns.ops))
    bad = [op for op in ops if op not in OPS]
    if bad or not ops:
        raise SystemExit(f"--ops: unknown operation {bad[0] if bad else '(none)'!r}; choose from "
                         + ", ".join(list(OPS) + list(OP_GROUPS)))
    ns.ops = ops
    if ns.threads is None:
        ns.threads = default_threads()
    if ns.threads < 1:
        raise SystemExit("--threads must be at least 1")
    if ns.repeats is None:
        ns.repeats = QUICK_REPEATS if ns.quick else DEFAULT_REPEATS
    if ns.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    return ns


def run(argv=None, *, file=None, **options):
    """Run the comparison and print it; return the results.

    Parameters
    ----------
    argv : list of str or argparse.Namespace, optional
        Command-line arguments (``sys.argv[1:]`` when None), or a namespace
        already parsed by a parser that :func:`build_parser` filled.
    file : file-like, optional
        Where the tables go (``sys.stdout``); progress goes to ``sys.stderr``.
    **options
        Override parsed options by name, e.g. ``run([], quick=True, ops=["softmax"])``.

    Returns
    -------
    dict
        ``{"speed": [...], "memory": [...], "command": str}``.
    """
    if isinstance(argv, argparse.Namespace):
        ns = argparse.Namespace(**vars(argv))
    else:
        ns = build_parser().parse_args(argv)
    defaults = vars(build_parser().parse_args([]))
    for key, value in defaults.items():
        if not hasattr(ns, key):
            setattr(ns, key, value)
    for key, value in options.items():
        if key not in defaults:
            raise TypeError(f"run() got an unexpected option {key!r}")
        setattr(ns, key, value)
    ns = _resolve(ns)
    out = file if file is not None else sys.stdout

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    torch_threads = None
    if "torch" in sys.modules:
        torch_threads = sys.modules["torch"].get_num_threads()
    command = reproduce_command(ns)
    header = environment_lines(ns)
    started = time.perf_counter()

    try:
        speed = time_cases(ns, log)
    finally:  # environment_lines set torch's threads to the run's
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)
    memory = measure_memory(ns, log)
    elapsed = time.perf_counter() - started
    write_report(out, ns, command, header, speed, memory, elapsed)
    return {"speed": speed, "memory": memory, "command": command}


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    run(argv)
    return 0
