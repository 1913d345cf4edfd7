#!/usr/bin/env python
"""Call overhead: every public function of fastxent on a 1 x 10 float64 row,
next to PyTorch's equivalent, in one run.

A 1 x 10 call does almost no arithmetic, so its time is what the Python
layer (checks, layout, dispatch) and the kernel entry cost.  Each call is
timed by ``timeit`` in a loop of many calls; the figure is the minimum over
the repeats, in microseconds per call (the minimum is the run least
disturbed by the other processes of the machine).  PyTorch runs on tensors
made once by ``torch.from_numpy``; a missing PyTorch leaves its column empty.

Usage::

    python bench/small_calls.py              # 7 repeats
    python bench/small_calls.py --repeat 15  # steadier minimum
    python bench/small_calls.py --cpu-time   # CPU time: steadier on a busy machine
    python bench/small_calls.py --markdown   # a Markdown table

The fastxent calls take their defaults (``n_threads=None``); PyTorch runs
with ``torch.set_num_threads(1)``, which is what it uses for tensors this
small anyway.
"""
import argparse
import time
import timeit

import numpy as np

import fastxent

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the fastxent column alone
    torch = F = None

SEED = 20260101


def _cases():
    """(name, fastxent call, torch call or None, torch expression)."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((1, 10))
    y = rng.standard_normal((1, 10))
    p = np.exp(x) / np.exp(x).sum()
    labels = np.array([3])
    bits = (rng.random((1, 10)) < 0.5).astype(np.float64)
    logq = x - fastxent.logsumexp(x, axis=1, keepdims=True)
    fx = fastxent
    scorer = fx.Scorer()
    cases = [
        ("logsumexp", lambda: fx.logsumexp(x, axis=1),
         "torch.logsumexp(x, dim=1)"),
        ("score_rows", lambda: fx.score_rows(x, labels),
         "F.cross_entropy(x, labels, reduction='none')"),
        ("score", lambda: fx.score(x, labels),
         "F.cross_entropy(x, labels)"),
        ("Scorer", lambda: scorer.update(x, labels),
         "F.cross_entropy(x, labels)"),
        ("softmax", lambda: fx.softmax(x, axis=1),
         "torch.softmax(x, dim=1)"),
        ("log_softmax", lambda: fx.log_softmax(x, axis=1),
         "torch.log_softmax(x, dim=1)"),
        ("cross_entropy", lambda: fx.cross_entropy(x, labels),
         "F.cross_entropy(x, labels)"),
        ("nll_loss", lambda: fx.nll_loss(logq, labels),
         "F.nll_loss(logq, labels)"),
        ("kl_div", lambda: fx.kl_div(logq, p, reduction="batchmean"),
         "F.kl_div(logq, p, reduction='batchmean')"),
        ("binary_cross_entropy_with_logits",
         lambda: fx.binary_cross_entropy_with_logits(x, bits),
         "F.binary_cross_entropy_with_logits(x, bits)"),
        ("entropy", lambda: fx.entropy(p, axis=1),
         "torch.special.entr(p / p.sum(1, keepdim=True)).sum(1)"),
        ("softmax_entropy", lambda: fx.softmax_entropy(x),
         "-(torch.softmax(x, 1) * torch.log_softmax(x, 1)).sum(1)"),
        ("softmax_cross_entropy", lambda: fx.softmax_cross_entropy(x, y),
         "-(torch.softmax(x, 1) * torch.log_softmax(y, 1)).sum(1)"),
        ("softmax_kl_div", lambda: fx.softmax_kl_div(x, y),
         "F.kl_div(torch.log_softmax(y, 1), torch.log_softmax(x, 1), "
         "log_target=True, reduction='none').sum(1)"),
    ]
    # score_file reads a file: its cost is measured by bench/score.py
    missing = set(fastxent.__all__) - {c[0] for c in cases} - {
        "get_config", "show_config", "cpu_path", "RowScores", "score_file"}
    assert not missing, f"public functions without a case: {sorted(missing)}"
    if torch is None:
        return [(name, f, None, expr) for name, f, expr in cases]
    env = {"torch": torch, "F": F}
    env.update({k: torch.from_numpy(v) for k, v in
                dict(x=x, y=y, p=p, labels=labels, bits=bits, logq=logq).items()})
    return [(name, f, eval(f"lambda: {expr}", env), expr) for name, f, expr in cases]


def _best(func, repeat, clock):
    """Minimum over `repeat` runs of the time of one call, in microseconds."""
    timer = timeit.Timer(func, timer=clock)
    number, _ = timer.autorange()   # loops of at least 0.2 s
    number = max(number // 4, 1)    # ... cut to about 50 ms, `repeat` times
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="repeats per call (default 7)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time (time.process_time) instead of "
                             "the wall clock: steadier on a machine shared with other work")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(1)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = []
    for name, f, t, expr in _cases():
        f()
        if t is not None:
            t()
        rows.append((name, _best(f, args.repeat, clock),
                     None if t is None else _best(t, args.repeat, clock), expr))
    torch_v = "not installed" if torch is None else torch.__version__
    print(f"1 x 10 float64, microseconds per call, minimum of {args.repeat} repeats "
          f"of {'CPU' if args.cpu_time else 'wall'} time (fastxent {fastxent.__version__}, NumPy {np.__version__}, PyTorch {torch_v})")
    fmt = "| {} | {} | {} | {} |" if args.markdown else "{:<33} {:>9} {:>9}  {}"
    print(fmt.format("function", "fastxent", "torch", "torch call"))
    if args.markdown:
        print("| --- | ---: | ---: | --- |")
    for name, a, b, expr in rows:
        print(fmt.format(name, f"{a:.2f}", "-" if b is None else f"{b:.2f}", expr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
