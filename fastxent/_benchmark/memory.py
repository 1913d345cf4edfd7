"""Peak memory of one call beyond its input, measured in a fresh subprocess."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from .cases import Case, cases, make_data
from .operations import (DIVERGENCE_OPS, Unavailable, _LIB_CACHE, _load, fastxent_function,
                         op_inputs, prepare)


def _status_kib():
    """VmRSS and VmHWM of this process in KiB, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0])
    return values


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM" in _status_kib()
    except OSError:
        return False


def _maxrss_kib():
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS


def measure_peak_memory(impl, op, case, seed, threads):
    """Run one call of ``op`` in this process and return its peak extra memory.

    Call in a fresh process (see :func:`peak_memory_subprocess`): the input is
    allocated and touched (with the second input of DIVERGENCE_OPS), the
    libraries are loaded and warmed up on a tiny input, the high-water mark is
    reset, then the timed call runs once. ``input_bytes`` counts every array
    the call takes.
    """
    import numpy as np

    x = make_data(case, seed)
    call, _ = prepare(impl, op, x, threads, aot=True, seed=seed)
    inputs = op_inputs(op, x, seed)
    input_bytes = sum(int(a.nbytes) for a in {id(a): a for a in inputs}.values())
    # Warm up on a tiny input: lazy imports, dispatch tables, first allocations.
    tiny_call, _ = prepare(impl, op, np.ones((2, 3), dtype=x.dtype), threads, seed=seed)
    tiny_call()
    del tiny_call
    gc.collect()
    if _reset_peak():
        method = "VmHWM"
        base = _status_kib()["VmRSS"]
        result = call()
        peak = _status_kib()["VmHWM"]
    else:
        method = "ru_maxrss"
        base = _maxrss_kib()
        result = call()
        peak = _maxrss_kib()
    out_bytes = int(getattr(result, "nbytes", 0))
    return {
        "impl": impl,
        "op": op,
        "method": method,
        "input_bytes": input_bytes,
        "output_bytes": out_bytes,
        "extra_bytes": max(peak - base, 0) * 1024,
    }


def _mem_child_main(spec_json):
    spec = json.loads(spec_json)
    case = Case(spec["rows"], spec["cols"], spec["dtype"])
    res = measure_peak_memory(spec["impl"], spec["op"], case, spec["seed"], spec["threads"])
    sys.stdout.write("FASTXENT_MEM " + json.dumps(res) + "\n")


def peak_memory_subprocess(impl, op, case, seed, threads, timeout=600):
    """Measure :func:`measure_peak_memory` in a fresh Python process."""
    spec = json.dumps(
        {"impl": impl, "op": op, "rows": case.rows, "cols": case.cols, "dtype": case.dtype,
         "seed": seed, "threads": threads}
    )
    # Load this package from its folder under another name (fastxent may not be
    # importable when it is not built: bench/compare.py then times the peers),
    # and let it import fastxent as the parent did.
    # `-c` puts the current folder first on sys.path: started in a clone's root
    # the child would import the uncompiled source folder, so it is dropped.
    folder = os.path.dirname(os.path.abspath(__file__))
    code = (
        "import importlib, importlib.util, sys\n"
        "sys.path = [p for p in sys.path if p != '']\n"
        "spec = importlib.util.spec_from_file_location(\n"
        f"    '_fastxent_benchmark', {os.path.join(folder, '__init__.py')!r},\n"
        f"    submodule_search_locations=[{folder!r}])\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "importlib.import_module(spec.name + '.memory')._mem_child_main(sys.argv[1])\n"
    )
    env = dict(os.environ)
    fx = sys.modules.get("fastxent")
    fx_file = getattr(fx, "__file__", None)
    if fx_file:  # the child imports the same fastxent as this process
        root = os.path.dirname(os.path.dirname(os.path.abspath(fx_file)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code, spec], capture_output=True, text=True, env=env, timeout=timeout
    )
    for line in proc.stdout.splitlines():
        if line.startswith("FASTXENT_MEM "):
            return json.loads(line[len("FASTXENT_MEM "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"memory subprocess failed (exit {proc.returncode}): {tail}")


def measure_memory(ns, log):
    """The peak memory of each implementation of ``ns.mem_impls`` on every
    operation and case of the run (none with ``ns.no_mem``); return the rows
    of the memory table."""
    memory = []
    if not ns.no_mem:
        for impl in ns.mem_impls:
            for case in cases(ns.quick, ns.large, ns.calls):
                if case.overhead:
                    continue
                for op in ns.ops:
                    log(f"peak memory {impl} {op} {case.label} {case.dtype} ...")
                    try:
                        lib = _load(impl, ns.threads)  # not importable here: no subprocess
                        if impl in ("fastxent", "fastxent_out") and op in DIVERGENCE_OPS:
                            fastxent_function(lib, op)  # nor when this fastxent lacks the function
                        m = peak_memory_subprocess(impl, op, case, ns.seed, ns.threads)
                    except Unavailable as exc:
                        key = "fastxent" if impl == "fastxent_out" else impl
                        not_importable = isinstance(_LIB_CACHE.get(key), Unavailable)
                        m = {"impl": impl, "op": op, "error": "not importable" if not_importable else "not available"}
                        if not not_importable:
                            log(f"  {exc}")
                    except Exception as exc:
                        m = {"impl": impl, "op": op, "error": "failed"}
                        log(f"  {(str(exc).splitlines() or ['?'])[0]}")
                    m["case"] = case
                    memory.append(m)
    return memory
