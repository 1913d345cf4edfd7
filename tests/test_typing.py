"""The stubs (fastxent/*.pyi) against the code and against a user's mypy.

mypy.stubtest checks that every stubbed signature matches the function at
run time; ``mypy --strict`` must accept typed_usage.py (correct calls, with
the types the stubs give pinned) and report each marked line of
typed_misuse.py.  Skipped without mypy (the ``typing`` extra).
"""
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("mypy")

HERE = Path(__file__).resolve().parent


def _mypy_env(tmp_path):
    """An environment in which mypy finds the fastxent under test.  mypy
    cannot follow the import hook of an editable install, so the folder that
    holds the package goes on MYPYPATH, unless it is site-packages (where
    mypy looks anyway and refuses it on MYPYPATH)."""
    import fastxent

    root = Path(fastxent.__file__).resolve().parent.parent
    env = dict(os.environ)
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    env.pop("MYPYPATH", None)
    if root not in site:
        env["MYPYPATH"] = str(root)
    env["MYPY_CACHE_DIR"] = str(tmp_path / "mypy_cache")
    return env


def _run(args, tmp_path):
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env=_mypy_env(tmp_path),
                          capture_output=True, text=True, timeout=600)


def test_stubs_match_the_code(tmp_path):
    proc = _run(["mypy.stubtest", "fastxent",
                 "--mypy-config-file", str(HERE / "stubtest.ini"),
                 "--allowlist", str(HERE / "stubtest_allowlist.txt")], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_user_code(tmp_path):
    usage, misuse = HERE / "typed_usage.py", HERE / "typed_misuse.py"
    proc = _run(["mypy", "--strict", "--no-error-summary", "--hide-error-context",
                 "--no-pretty", str(usage), str(misuse)], tmp_path)
    errors = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(.*?):(\d+): error: .*\[([\w-]+)\]$", line)
        if m:
            errors.setdefault((Path(m[1]).name, int(m[2])), set()).add(m[3])
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert not [k for k in errors if k[0] == usage.name], proc.stdout

    expected = {}
    for number, text in enumerate(misuse.read_text().splitlines(), 1):
        m = re.search(r"# E: ([\w-]+)$", text)
        if m:
            expected[(misuse.name, number)] = {m[1]}
    assert len(expected) >= 5
    assert errors == expected, proc.stdout


def test_typed_usage_runs():
    """The calls of typed_usage.py give at run time what the stubs say."""
    pytest.importorskip("typing_extensions")
    import runpy

    runpy.run_path(str(HERE / "typed_usage.py"), run_name="__main__")
