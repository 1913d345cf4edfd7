"""Timing: each implementation warmed up and checked once, then the repeats
interleaved across implementations, and the median kept."""

from __future__ import annotations

import gc
import statistics
import time

from .cases import DEFAULT_SEED, cases, make_data
from .operations import (DIVERGENCE_OPS, Unavailable, _NUMPY_OPS, _drop_derived, _kinds_needed,
                         prepare, reference_result)


DEFAULT_REPEATS = 7


QUICK_REPEATS = 3


# Calls per sample on the call-overhead row (time many calls, report the mean
# call of each sample, then the median sample).
OVERHEAD_CALLS = 2000


QUICK_OVERHEAD_CALLS = 200


def _check(op, case, x, result, tolerance_rows=256, *, seed=DEFAULT_SEED, reference=None):
    """Max error of ``result`` against a float64 NumPy reference, scaled.

    Only the first ``tolerance_rows`` rows of a per-row result are checked (a
    sanity check that the table does not compare wrong answers, not a test);
    a one-number result (kl_div, bce_with_logits) is checked against the
    float64 reference over the whole array. ``reference``: that reference,
    when already computed (:func:`reference_result`).
    """
    import numpy as np

    k = min(case.rows, tolerance_rows)
    if reference is not None:
        ref = np.asarray(reference)
    elif op in DIVERGENCE_OPS:
        ref = np.asarray(reference_result(op, x, seed, rows=k))
    else:
        ref = _NUMPY_OPS[op](np.asarray(x[:k], dtype=np.float64))
    got = np.asarray(result)
    got = (got if got.ndim == 0 else got[:k]).astype(np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - ref))) / scale


def _tolerance(dtype):
    return {"float16": 5e-3, "float32": 1e-4}.get(dtype, 1e-9)


def time_case(case, op, x, impls, threads, repeats, overhead_calls, log, seed=DEFAULT_SEED):
    """Time ``op`` on ``x`` for each impl; return ``{impl: seconds or Exception}``.

    Each implementation is warmed up (and checked) once, then the repeats run
    with the implementations interleaved: repeat ``r`` starts with the
    ``r``-th implementation, so none always runs first or after the same one.
    ``seed`` makes the second input of DIVERGENCE_OPS (:func:`op_inputs`).
    """
    calls, errors, mismatch = {}, {}, {}
    reference = []  # computed once, at the first implementation that runs
    for impl in impls:
        try:
            call, to_numpy = prepare(impl, op, x, threads, overhead=case.overhead, seed=seed)
            result = call()  # warm-up: imports, JAX compile, thread pools
            if not reference:
                if op in DIVERGENCE_OPS:
                    reference.append(reference_result(op, x, seed))
                else:
                    reference.append(None)
            err = _check(op, case, x, to_numpy(result), seed=seed, reference=reference[0])
            del result
            if case.overhead:
                for _ in range(min(50, overhead_calls)):
                    call()
        except Unavailable as exc:
            errors[impl] = exc
            continue
        except Exception as exc:  # an implementation's own failure: report, go on
            errors[impl] = exc
            log(f"  {impl}: {type(exc).__name__}: {exc}")
            continue
        if not err <= _tolerance(case.dtype):
            mismatch[impl] = err
            log(f"  {impl}: result differs from the float64 reference by {err:.3g} (scaled)")
        calls[impl] = call

    names = list(calls)
    samples = {name: [] for name in names}
    perf_counter = time.perf_counter
    loop = range(overhead_calls)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names) if names else 0
            for name in names[k:] + names[:k]:
                call = calls[name]
                if case.overhead:
                    t0 = perf_counter()
                    for _ in loop:
                        call()
                    samples[name].append((perf_counter() - t0) / overhead_calls)
                else:
                    # The result is freed after the clock stops, for every impl alike.
                    t0 = perf_counter()
                    keep = [call()]
                    samples[name].append(perf_counter() - t0)
                    keep.clear()
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {name: statistics.median(s) for name, s in samples.items()}
    out.update(errors)
    return out, mismatch


def time_cases(ns, log):
    """Time every operation of ``ns.ops`` on every case of the run, each
    shape's data made once; return the rows of the speed table."""
    speed = []
    try:
        for case in cases(ns.quick, ns.large, ns.calls):
            x = make_data(case, ns.seed)
            calls = QUICK_OVERHEAD_CALLS if ns.quick else OVERHEAD_CALLS
            for i, op in enumerate(ns.ops):
                log(f"timing {op} {case.label} {case.dtype} ...")
                times, mismatch = time_case(case, op, x, ns.impls, ns.threads, ns.repeats, calls, log,
                                            seed=ns.seed)
                speed.append({"op": op, "case": case, "times": times, "mismatch": mismatch})
                # Keep only the derived inputs that the operations still to come use.
                _drop_derived(keep=_kinds_needed(ns.ops[i + 1:]))
            _drop_derived()
            del x
            gc.collect()
    finally:
        _drop_derived()
    return speed
