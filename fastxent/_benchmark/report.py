"""The printed report: the speed and memory tables (text or Markdown), the
environment the numbers depend on, and the command that repeats the run."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from functools import partial

from .operations import IMPLS, PEERS, Unavailable, _LIB_CACHE, _load
from .roofline import CALL_FLOOR_US, roofline_seconds
from .timing import _tolerance


# Environment variables that change what the run measures; they are echoed in
# the reproduce command.
_ENV_PREFIXES = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "XLA_", "FASTXENT_", "JAX_")


def _fmt(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _fmt_ratio(r):
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def _mib(n):
    return n / 2**20


def _table(header, rows, markdown, text_columns=3):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    def line(cells):
        return "  ".join(c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def speed_table(results, impls, threads, markdown=False):
    """Rows: op, shape, dtype, each impl's time (ratio to fastxent), roofline, % reached."""
    shown = [i for i in impls if any(isinstance(r["times"].get(i), float) for r in results)]
    header = ["operation", "shape", "dtype"]
    header += [f"{i} (x fastxent)" if i in PEERS and "fastxent" in shown else i for i in shown]
    header += ["roofline", "fastxent % of roofline"]
    rows = []
    for r in results:
        case, times = r["case"], r["times"]
        unit, scale = ("us", 1e6) if case.overhead else ("ms", 1e3)
        fx = times.get("fastxent")
        fx = fx if isinstance(fx, float) else None
        cells = [r["op"], f"{case.label}" + (" (call, us)" if case.overhead else ""), case.dtype]
        for impl in shown:
            t = times.get(impl)
            if not isinstance(t, float):
                cells.append("-")
                continue
            cell = _fmt(t * scale)
            if impl in r.get("mismatch", {}):
                cell += " (!)"
            if fx and impl in PEERS:
                cell += f" ({_fmt_ratio(t / fx)})"
            cells.append(cell)
        if case.overhead:
            floor = CALL_FLOOR_US * 1e-6
            cells.append(f"{_fmt(CALL_FLOOR_US)} us call floor")
        else:
            floor = roofline_seconds(r["op"], case, threads)
            cells.append(f"{_fmt(floor * scale)} {unit}")
        cells.append(f"{100 * floor / fx:.0f}%" if fx else "-")
        rows.append(cells)
    return _table(header, rows, markdown)


def memory_table(mem_results, markdown=False):
    header = ["impl", "operation", "shape", "dtype", "input MiB", "output MiB", "peak extra MiB",
              "extra / output"]
    rows = []
    for m in mem_results:
        case = m["case"]
        if "error" in m:
            rows.append([m["impl"], m["op"], case.label, case.dtype, "-", "-", m["error"], "-"])
            continue
        out_b, extra = m["output_bytes"], m["extra_bytes"]
        rows.append([
            m["impl"], m["op"], case.label, case.dtype,
            f"{_mib(m['input_bytes']):.1f}", f"{_mib(out_b):.3f}" if out_b < 2**20 else f"{_mib(out_b):.1f}",
            f"{_mib(extra):.2f}", f"{extra / out_b:.2f}" if out_b >= 2**20 else "(output < 1 MiB)",
        ])
    return _table(header, rows, markdown, text_columns=4)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_first_line(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return "n/a"


def reproduce_command(ns):
    """The exact command line (environment included) that repeats this run."""
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)]
    if __package__ == "fastxent._benchmark":
        cmd = [sys.executable, "-m", "fastxent._benchmark"]
    else:  # loaded from its folder, without fastxent (see __main__.py)
        cmd = [sys.executable, os.path.dirname(os.path.abspath(__file__))]
    cmd += ["--ops", ",".join(ns.ops), "--impls", ",".join(ns.impls), "--threads", str(ns.threads),
            "--repeats", str(ns.repeats), "--seed", str(ns.seed)]
    if ns.no_mem:
        cmd.append("--no-mem")
    else:
        cmd += ["--mem-impls", ",".join(ns.mem_impls)]
    flags = (("--quick", ns.quick), ("--large", ns.large), ("--calls", ns.calls),
             ("--markdown", ns.markdown))
    cmd += [flag for flag, on in flags if on]
    return " ".join(env + [shlex.join(cmd)])


def environment_lines(ns):
    """Versions and settings that the numbers depend on."""
    lines = [
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        f"transparent huge pages: {_read_first_line('/sys/kernel/mm/transparent_hugepage/enabled')}",
        f"threads: {ns.threads}; repeats: {ns.repeats} (median, implementations interleaved); seed: {ns.seed}",
    ]
    if hasattr(os, "getloadavg"):  # other work on the machine makes every number noisier
        lines.append("load average at start (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    versions = []
    wanted = {"fastxent" if i == "fastxent_out" else i for i in ns.impls} | {"numpy"}
    for impl in (i for i in IMPLS if i in wanted):
        try:
            lib = _load(impl, ns.threads)
        except Unavailable as exc:
            versions.append(f"{impl} unavailable ({exc})")
            continue
        mod = sys.modules.get(impl, lib)
        versions.append(f"{impl} {getattr(mod, '__version__', '?')}")
    lines.append("versions: " + "; ".join(versions))
    fx = _LIB_CACHE.get("fastxent")
    if fx is not None and not isinstance(fx, Unavailable):
        try:
            lines.append(f"fastxent config: {fx.get_config()}")
        except Exception as exc:
            lines.append(f"fastxent config: unavailable ({type(exc).__name__}: {exc})")
    try:
        from threadpoolctl import threadpool_info

        pools = sorted({f"{p['internal_api']} ({p.get('prefix')}, {p['num_threads']} threads)"
                        for p in threadpool_info()})
        lines.append("thread pools loaded: " + ", ".join(pools))
    except Exception:
        pass
    if "OPENBLAS_CORETYPE" in os.environ or "OPENBLAS_L2_SIZE" in os.environ:
        lines.append(
            "note: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; they slow OpenBLAS (numpy's BLAS), which "
            "none of these operations use; unset both in this command to compare against a current numpy's BLAS"
        )
    return lines


def write_report(out, ns, command, header, speed, memory, elapsed):
    """Print the report of a run to ``out``: the command that repeats it, the
    environment, the speed table and what did not run, the memory table."""
    p = partial(print, file=out)
    if ns.markdown:
        p("Reproduce with:\n\n```\n" + command + "\n```\n")
        p("\n".join(f"- {line}" for line in header))
        p()
    else:
        p("Reproduce with: " + command)
        p("\n".join(header))
        p()
    p("Time per call, ms (median), and peer time / fastxent time:")
    p()
    p(speed_table(speed, ns.impls, ns.threads, ns.markdown))
    not_run = {}  # (impl, reason) -> operations
    for r in speed:
        for i, t in r["times"].items():
            if isinstance(t, Unavailable):
                ops_ = not_run.setdefault((i, str(t)), [])
                if r["op"] not in ops_:
                    ops_.append(r["op"])
    failed = sorted({f"{i} {r['op']}: {type(t).__name__}: {t}" for r in speed for i, t in r["times"].items()
                     if isinstance(t, Exception) and not isinstance(t, Unavailable)})
    if not_run:
        p()
        for (impl, reason), ops_ in sorted(not_run.items()):
            p(f"not run: {impl} ({reason}): {', '.join(ops_)}")
    for line in failed:
        p(f"failed: {line}")
    if any(r["mismatch"] for r in speed):
        p("(!) result differs from a float64 NumPy reference by more than "
          f"{_tolerance('float16')} (float16) / {_tolerance('float32')} (float32) / "
          f"{_tolerance('float64')} (float64), scaled by max |reference|")
    if memory:
        p()
        p("Peak memory of one call beyond its input (fresh process, "
          f"{memory[0].get('method', 'VmHWM')} after reset), against the output it returns:")
        p()
        p(memory_table(memory, ns.markdown))
    p()
    p(f"total time {elapsed:.0f} s")
