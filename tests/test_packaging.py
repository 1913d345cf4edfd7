"""What ships: the sdist holds everything the build needs, the metadata says
what the package says, and a source folder without compiled kernels refuses
to import with a message that says what to do.

The sdist and source checks need the repository (they skip on a copy of the
tests alone); the metadata checks need an installed fastxent.
"""
import importlib.metadata
import os
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_source = pytest.mark.skipif(
    not (ROOT / "setup.py").exists() or not (ROOT / "MANIFEST.in").exists(),
    reason="needs the source tree (setup.py, MANIFEST.in, src/)")

# Cython's and C's ways of naming another file of the kernels.
_INCLUDES = [
    re.compile(r'^\s*include\s+"([^"]+)"', re.M),                   # Cython include
    re.compile(r'^\s*cdef\s+extern\s+from\s+"([^"]+)"', re.M),     # a C header
    re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M),              # C include
]
_CIMPORTS = re.compile(r"^\s*(?:from\s+([\w.]+)\s+cimport|cimport\s+([\w.]+))", re.M)


def _kernel_sources(src):
    """Every file under ``src`` that a ``.pyx`` there reaches, itself included;
    a file that the build renders from a template (NAME.tp) counts as the
    template, which is what the sources hold."""
    todo = sorted(src.glob("*.pyx"))
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8")
        names = [m.group(1) for pattern in _INCLUDES for m in pattern.finditer(text)]
        names += [(m.group(1) or m.group(2)).replace(".", "/") + ".pxd"
                  for m in _CIMPORTS.finditer(text)]
        names = [name + ".tp" if (src / (name + ".tp")).is_file() else name for name in names]
        # names that are not in src/ are the compiler's, Python's or Cython's own
        todo += [src / name for name in names if (src / name).is_file()]
    return {p.relative_to(src.parent).as_posix() for p in seen}


def _rendered_files(src):
    """The files the build renders from templates (src/NAME.tp -> src/NAME)."""
    return {p.with_suffix("").relative_to(src.parent).as_posix() for p in src.glob("*.tp")}


def _copy_tree(dest):
    """The repository as a fresh clone would have it, build products included
    (they must stay out of the sdist), without VCS data, venvs or old builds."""
    def ignore(folder, names):
        return {n for n in names
                if n.startswith(".") or n in ("build", "dist", "wheelhouse")
                or n.endswith(".egg-info")}
    shutil.copytree(ROOT, dest, ignore=ignore)


def _setup_extensions(tree, monkeypatch):
    """The Extension objects setup.py hands to setup(), without building."""
    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(tree)
    runpy.run_path(str(tree / "setup.py"), run_name="__main__")
    return captured["ext_modules"]


@needs_source
def test_sdist_holds_what_the_build_needs(tmp_path, monkeypatch):
    pytest.importorskip("build", reason="needs the `build` package (test extras)")
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("needs setuptools>=77 (test extras) to read pyproject.toml's license")
    tree = tmp_path / "fastxent"
    _copy_tree(tree)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--skip-dependency-check",
         "--outdir", str(tmp_path / "dist"), str(tree)],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("fastxent-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}

    kernels = _kernel_sources(tree / "src")
    assert {"src/_kernels_baseline.pyx", "src/fx_platform.h", "src/fx_short_rows_avx2.h",
            "src/fx_kernels.pxd.tp"} <= kernels  # the scan itself works
    extensions = _setup_extensions(tree, monkeypatch)
    declared = {f for ext in extensions for f in [*ext.sources, *ext.depends]}
    # setup.py names every file a kernel is made of (so editing one rebuilds) ...
    assert kernels - declared == set(), "files the .pyx include but setup.py does not name"
    needed = (kernels | declared
              | {"setup.py", "pyproject.toml", "LICENSE", "README.md"}
              | {p.relative_to(tree).as_posix() for p in (tree / "fastxent").rglob("*")
                 if p.suffix in (".py", ".pyi") or p.name == "py.typed"}
              | {p.relative_to(tree).as_posix() for p in (tree / "tests").glob("*.py")})
    # ... and the sdist holds all of it, and no build product
    assert needed - members == set(), "missing from the sdist"
    built = {m for m in members if m.endswith((".so", ".pyd", ".dylib", ".pyc"))
             or re.fullmatch(r"(src/_kernels_|src/_arrays|fastxent/)\w*\.c", m)} | (members & _rendered_files(tree / "src"))
    assert built == set(), "build products in the sdist"


@needs_source
def test_kernels_never_take_the_gil():
    """The kernels run under prange without the GIL; a `with gil` block there
    would serialize the threads (and is not allowed on a free-threaded build's
    hot path either)."""
    sources = sorted(p for ext in ("*.pyx", "*.pxi", "*.pxd") for p in (ROOT / "src").glob(ext))
    assert sources
    offenders = [f"{p.name}:{n}" for p in sources
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\bwith\s+gil\b", line.split("#", 1)[0])]
    assert offenders == []


@needs_source
def test_every_kernel_is_declared_and_selected_for_every_dtype():
    """Each C kernel exists once per storage type (fx_f16_NAME, fx_f32_NAME,
    ...), and the drivers reach it through a function that selects it by
    dtype.  A kernel named for one dtype in the declarations, or in the
    selection code, is named there for every dtype: float16 once had no
    `divide`, and selecting it for float16 silently did nothing."""
    tempita = pytest.importorskip("Cython.Tempita", reason="needs Cython to render the templates")
    src = ROOT / "src"
    texts = [tempita.Template(p.read_text(encoding="utf-8"), name=p.name).substitute()
             for p in sorted(src.glob("*.tp"))]
    rendered = {Path(name).name for name in _rendered_files(src)}
    texts += [p.read_text(encoding="utf-8") for ext in ("*.pxd", "*.pxi", "*.pyx")
              for p in sorted(src.glob(ext)) if p.name not in rendered]
    declared, used = {}, {}
    for text in texts:
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            # a declaration: a type, then the name (and the arguments of a function)
            is_declaration = re.match(r"\s*[\w ]+?[\s*]fx_f\d+_\w+(\(|\s*$)", code) is not None
            for dtype, kernel in re.findall(r"\bfx_(f\d+)_(\w+)\b", code):
                (declared if is_declaration else used).setdefault(kernel, set()).add(dtype)
    dtypes = set().union(*declared.values())
    assert {"f16", "f32", "f64"} <= dtypes and "divide" in declared
    assert {k: sorted(dtypes - d) for k, d in declared.items() if d != dtypes} == {}
    assert {k: sorted(dtypes - d) for k, d in used.items() if d != dtypes} == {}
    assert set(used) - set(declared) == set()


def _distribution():
    try:
        return importlib.metadata.distribution("fastxent")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastxent is not installed (no distribution metadata)")


def test_version_has_one_source(fx):
    assert _distribution().version == fx.__version__


def test_license_metadata():
    dist = _distribution()
    assert dist.metadata["License-Expression"] == "BSD-3-Clause"
    files = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert files, "LICENSE is not among the installed distribution's files"
    assert "BSD 3-Clause License" in files[0].read_text()


def _uncompiled_clone(tmp_path):
    """A clone's root as `git clone` leaves it: the source folder, no kernels."""
    clone = tmp_path / "clone"
    (clone / "src").mkdir(parents=True)
    shutil.copy(ROOT / "setup.py", clone)
    shutil.copy(ROOT / "src" / "_kernels_baseline.pyx", clone / "src")
    shutil.copytree(ROOT / "fastxent", clone / "fastxent",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return clone


@needs_source
def test_source_folder_without_kernels_says_what_to_do(tmp_path):
    """`python -m fastxent` started in a clone's root imports the source folder:
    the error names it and the commands that work."""
    clone = _uncompiled_clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import fastxent"], cwd=clone, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: fastxent is being imported from its source folder")
    assert os.path.join("clone", "fastxent") in message  # the folder it found
    for advice in ("`fastxent --quick`", "`pytest`", "pip install -e . --no-build-isolation"):
        assert advice in message


@needs_source
def test_main_job_from_a_clone_root_measures_memory(fx, tmp_path, monkeypatch):
    """The main job's peak-memory children import the fastxent the job runs
    on, also when it is started in a clone's root (the README's first command)."""
    from fastxent import _benchmark

    monkeypatch.chdir(_uncompiled_clone(tmp_path))
    case = _benchmark.Case(10, 1000, "float64")
    mem = _benchmark.peak_memory_subprocess("fastxent", "logsumexp", case, seed=0, threads=1)
    assert (mem["input_bytes"], mem["output_bytes"]) == (10 * 1000 * 8, 10 * 8)


# the Python layers every call goes through, which the build compiles (see
# LAYERS in setup.py): the small-call figures of the README depend on it
COMPILED_LAYERS = ("_checks", "_layout", "_dispatch", "_softmax_family", "_losses",
                   "_pointwise_losses", "_entropies", "_score_rows", "_scorer")


def test_python_layers_are_compiled():
    import importlib
    import importlib.machinery

    for name in COMPILED_LAYERS:
        module = importlib.import_module(f"fastxent.{name}")
        assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), (
            f"fastxent.{name} was imported from {module.__file__}, not from its compiled module")


@needs_source
def test_setup_compiles_the_python_layers(monkeypatch):
    names = {ext.name for ext in _setup_extensions(ROOT, monkeypatch)}
    # beside the layers: the kernel modules and _arrays (C, from src/)
    assert {f"fastxent.{name}" for name in COMPILED_LAYERS} == {
        n for n in names if not n.startswith("fastxent._kernels_") and n != "fastxent._arrays"}
    assert "fastxent._arrays" in names
