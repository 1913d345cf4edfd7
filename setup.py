"""Build of fastxent's compiled kernels.

The kernels in src/ are compiled once per CPU target -- a baseline build that
runs everywhere and, on x86-64, an AVX2+FMA build and an AVX-512 build, the
best one the CPU has chosen at import time -- so wheels never need
-march=native.  OpenMP is probed with
the compiler that will really be used; without it the kernels build serial and
``fastxent.get_config()['openmp']`` says so.  Metadata lives in pyproject.toml.

Cython runs only when extensions are built, so making an sdist needs nothing
but setuptools.  So do the templates: src/NAME.tp is rendered into src/NAME
with Cython.Tempita just before Cython runs (the rendered files are build
products, neither in git nor in the sdist).

Environment switches:
  FASTXENT_REQUIRE_OPENMP=1  fail the build when OpenMP is not available
  FASTXENT_OPENMP=0          build serial kernels without trying OpenMP (the
                             build a compiler without OpenMP makes, on purpose)
  FASTXENT_DEBUG=1           bounds and initialization checks on, -O0 -g
  FASTXENT_SANITIZE=address,undefined
                             build for the sanitizers (gcc/clang): -fsanitize=...
                             -fno-sanitize-recover=all -fno-omit-frame-pointer
                             -g -O1, in the compile and link of the extensions
                             and of the OpenMP probe, so OpenMP stays on.  Load
                             the runtimes with LD_PRELOAD (tools/sanitize.sh).

CFLAGS and LDFLAGS from the environment reach the OpenMP probe as well (the
include and library folders of a libomp on macOS, a sanitizer a user adds), so
they cannot silently turn OpenMP off; when the probe fails, the build prints
why.
"""
import glob
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTXENT_DEBUG", "0") == "1"
REQUIRE_OPENMP = os.environ.get("FASTXENT_REQUIRE_OPENMP", "0") == "1"
USE_OPENMP = os.environ.get("FASTXENT_OPENMP", "1") != "0"
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
SANITIZE = os.environ.get("FASTXENT_SANITIZE", "").strip()
# -O1 keeps the sanitizers' reports readable and their runs fast enough;
# recover off, so the first report stops the process (a test run fails)
SANITIZE_COMPILE = ([f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all",
                     "-fno-omit-frame-pointer", "-g", "-O1"] if SANITIZE else [])
SANITIZE_LINK = [f"-fsanitize={SANITIZE}"] if SANITIZE else []

# Safe for the kernels: they keep inf and NaN by explicit selects and never
# read errno or FP exception flags.  -fno-trapping-math lets gcc if-convert the
# selects of the exp polynomial and vectorize it; -fopenmp-simd honours the
# "omp simd reduction" pragmas (reassociation of those sums only) even in a
# build without OpenMP.  -ffp-contract=off: a * b + c is fused only where the
# code asks for it (FX_FMA in fx_math.h), so every specialization of a loop
# gives the same bits.  Never -ffast-math.
GCC_FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-fopenmp-simd",
             "-ffp-contract=off", "-Werror=implicit-function-declaration"]
# Release builds carry no debug information: Python's own CFLAGS often hold
# -g, which makes each module about 9 MB instead of under 1 MB.  -g0 comes
# after them on the command line and wins; stripping at link time catches
# whatever else brings some in.
GCC_RELEASE_FLAGS = ["-g0"]
if sys.platform == "darwin":
    RELEASE_LINK_FLAGS = ["-Wl,-S"]
elif sys.platform.startswith("win") or sys.platform == "cygwin":
    RELEASE_LINK_FLAGS = []
else:
    RELEASE_LINK_FLAGS = ["-Wl,--strip-debug"]
TARGETS = {"baseline": []}
if X86:
    TARGETS["avx2"] = ["-mavx2", "-mfma", "-mf16c"]
    # AVX-512 F, VL, BW and DQ: every AVX-512 CPU since Skylake-SP (and AMD
    # since Zen 4) has them.  The same C as the avx2 module: the compiler's
    # vectorized loops in 16-lane registers with masked tails, the hand-written
    # 8-lane short-row code as it is.  512-bit vectors are asked for
    # explicitly, since gcc's tuning for some of these CPUs keeps 256.
    TARGETS["avx512"] = TARGETS["avx2"] + ["-mavx512f", "-mavx512vl", "-mavx512bw",
                                           "-mavx512dq", "-mprefer-vector-width=512"]

# Templates of kernel sources: src/NAME.tp renders to src/NAME.
TEMPLATES = sorted(path.replace(os.sep, "/") for path in glob.glob("src/*.tp"))
# Every header, .pxi, .pxd and template the kernels are made of: a change to
# any of them rebuilds both modules.  A glob, so that a new file cannot be
# left out; a rendered file is named by its template.
DEPENDS = sorted(path for path in (p.replace(os.sep, "/")
                                   for pattern in ("src/*.h", "src/*.pxi", "src/*.pxd")
                                   for p in glob.glob(pattern))
                 if path + ".tp" not in TEMPLATES) + TEMPLATES

# The kernel modules read their operands' fields through NumPy's C API
# (fx_get_buffer in src/fx_kernels.pxd.tp): built against NumPy 2's headers,
# for any NumPy from the oldest that fastxent supports (NPY_TARGET_VERSION),
# as NumPy's guide to downstream builds describes.  NumPy's include folder
# is looked up in build_extensions, so making an sdist needs no NumPy.
NUMPY_MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_25_API_VERSION"),
                ("NPY_TARGET_VERSION", "NPY_1_25_API_VERSION")]

extensions = [
    Extension(
        f"fastxent._kernels_{name}",
        [f"src/_kernels_{name}.pyx"],
        include_dirs=["src"],
        define_macros=NUMPY_MACROS,
        depends=DEPENDS,
    )
    for name in TARGETS
]

# The Python layers every call goes through -- argument checks, layout,
# dispatch and the public modules -- are plain Python, compiled by Cython as
# they stand (no Cython syntax in them): a 1 x 10 call is all Python-level
# overhead, and compiled it costs about a third less.  The .py files stay
# the source and ship in the wheel beside their modules; Python imports the
# compiled module first.
# C-level answers to the questions those layers ask of every array
# (src/_arrays.pyx: flags, through NumPy's C API), compiled as a layer.
ARRAYS = Extension("fastxent._arrays", ["src/_arrays.pyx"], define_macros=NUMPY_MACROS)

LAYERS = ["_checks", "_layout", "_dispatch", "_softmax_family", "_losses",
          "_pointwise_losses", "_entropies", "_score_rows", "_scorer"]
layers = [Extension(f"fastxent.{name}", [f"fastxent/{name}.py"]) for name in LAYERS]

# Python semantics unchanged: no C division, no `__test__` dict (doctest finds
# the compiled functions' docstrings by itself); free-threading compatible as
# the .py modules are, with no state beyond what they already guard.
layer_directives = {
    "language_level": 3,
    "binding": True,
    "autotestdict": False,
    "freethreading_compatible": True,
}

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    # The kernels keep no global Python state and release the GIL only around
    # loops over their own arrays: safe to import without a GIL.
    "freethreading_compatible": True,
}


def _render_templates():
    """Render every template (Cython.Tempita) next to itself, minus ``.tp``.

    A rendered file is rewritten only when its text changes, so that Cython,
    which compares time stamps, rebuilds only what a change reaches.
    """
    from Cython import Tempita

    for path in TEMPLATES:
        with open(path, encoding="utf-8") as f:
            text = Tempita.Template(f.read(), name=path).substitute()
        target = path[:-len(".tp")]
        if os.path.exists(target):
            with open(target, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)


def _env_flags(name):
    return shlex.split(os.environ.get(name, ""))


def _openmp_flags(compiler):
    """(compile, link) flags that make OpenMP work with this compiler, or None.

    The probe is compiled and linked with the flags the extensions get
    (the sanitizer's, CFLAGS and LDFLAGS: distutils links executables
    without them), so a flag that needs its runtime at link time does not
    make the probe fail.
    """
    ctype = compiler.compiler_type
    if ctype == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "omp_probe.c")
        with open(path, "w") as f:
            f.write(src)
        extra_c = [] if ctype == "msvc" else SANITIZE_COMPILE
        extra_l = [] if ctype == "msvc" else (_env_flags("CFLAGS") + _env_flags("LDFLAGS")
                                              + SANITIZE_LINK)
        # a sanitized probe runs without the runtime's leak report, which
        # libgomp's pool (alive at exit) would trip
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        for cflags, lflags in candidates:
            try:
                objs = compiler.compile([path], output_dir=tmp, extra_postargs=extra_c + cflags)
                compiler.link_executable(objs, "omp_probe", output_dir=tmp,
                                         extra_postargs=extra_l + lflags)
                subprocess.run([os.path.join(tmp, "omp_probe")], check=True,
                               capture_output=True, env=env)
                return cflags, lflags
            except Exception as exc:
                detail = getattr(exc, "stderr", None) or b""
                print(f"fastxent: the OpenMP probe with {' '.join(cflags + lflags)} failed: "
                      f"{exc} {detail.decode(errors='replace').strip()}".rstrip())
                continue
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # the modules are independent translation units: compile them side by
        # side unless the caller chose (-j / --parallel)
        if self.parallel is None:
            self.parallel = True

    def build_extensions(self):
        from Cython.Build import cythonize

        _render_templates()
        # .pyx to .c here, not at import, so that an sdist needs no Cython;
        # the sources are swapped in place because setuptools has already
        # annotated these Extension objects
        kernels = [ext for ext in self.extensions if ext.name.rsplit(".", 1)[-1] not in LAYERS]
        import numpy

        for ext in kernels:   # the kernel modules and _arrays
            ext.include_dirs.append(numpy.get_include())
        translated = {ext.name: ext for ext in cythonize(
            kernels, compiler_directives=directives, include_path=["src"], quiet=True)}
        translated.update((ext.name, ext) for ext in cythonize(
            [ext for ext in self.extensions if ext not in kernels],
            compiler_directives=layer_directives, quiet=True))
        for ext in self.extensions:
            ext.sources = translated[ext.name].sources
        if REQUIRE_OPENMP and not USE_OPENMP:
            raise RuntimeError("FASTXENT_REQUIRE_OPENMP=1 contradicts FASTXENT_OPENMP=0")
        omp = _openmp_flags(self.compiler) if USE_OPENMP else None
        if omp is None:
            if REQUIRE_OPENMP:
                raise RuntimeError("FASTXENT_REQUIRE_OPENMP=1 but the compiler has no working OpenMP")
            print("fastxent: " + ("OpenMP not available" if USE_OPENMP else "FASTXENT_OPENMP=0")
                  + ", building serial kernels")
            omp = ([], [])
        else:
            print(f"fastxent: building with OpenMP ({' '.join(omp[0])})")
        if SANITIZE:
            print(f"fastxent: sanitizers {SANITIZE}: compile {' '.join(SANITIZE_COMPILE)}, "
                  f"link {' '.join(SANITIZE_LINK)}")
        msvc = self.compiler.compiler_type == "msvc"
        for ext in self.extensions:
            if ext.name.rsplit(".", 1)[-1] in LAYERS or ext is ARRAYS:
                # Python-level code: no OpenMP, no CPU target, no kernel flags
                if msvc:
                    ext.extra_compile_args = ["/O2"]
                elif SANITIZE:
                    ext.extra_compile_args, ext.extra_link_args = SANITIZE_COMPILE, SANITIZE_LINK
                else:
                    ext.extra_compile_args = ["-O0", "-g"] if DEBUG else ["-O2", "-g0"]
                    ext.extra_link_args = [] if DEBUG else RELEASE_LINK_FLAGS
                continue
            target = ext.name.rsplit("_", 1)[-1]
            link = list(omp[1])
            if msvc:
                flags = ["/O2", "/fp:precise"] + {"avx2": ["/arch:AVX2"],
                                                   "avx512": ["/arch:AVX512"]}.get(target, [])
            else:
                flags = (["-O0", "-g"] if DEBUG else GCC_FLAGS) + TARGETS[target]
                if SANITIZE:
                    flags += SANITIZE_COMPILE  # its -O1 and -g come last and win
                    link += SANITIZE_LINK
                elif not DEBUG:
                    # shipped modules without debug info: a 2 MB wheel, not 6
                    flags += GCC_RELEASE_FLAGS
                    link += RELEASE_LINK_FLAGS
            ext.extra_compile_args = flags + omp[0]
            ext.extra_link_args = link
            print(f"fastxent: {ext.name}: {' '.join(ext.extra_compile_args)}"
                  f" | link: {' '.join(ext.extra_link_args)}")
        super().build_extensions()


setup(
    ext_modules=extensions + [ARRAYS] + layers,
    cmdclass={"build_ext": BuildExt},
)
