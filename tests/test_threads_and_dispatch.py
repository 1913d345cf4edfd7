"""Results do not depend on the thread count (bitwise) nor on the CPU code
path (beyond a few ulp); the configuration says what runs."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from arrays import FLOAT_DTYPES, Failures, assert_agree, assert_bitwise_equal, axes_for, zoo

FUNCS = ("logsumexp", "softmax", "log_softmax")


def _cases(seed=0):
    """(label, array, kwargs): sizes where the kernels split work over threads."""
    rng = np.random.default_rng(seed)
    short64 = rng.standard_normal((20000, 10))
    short64[rng.random(short64.shape) < 0.05] = -np.inf  # masked logits
    long64 = 3 * rng.standard_normal((1, 300000))
    long64[0, 12345] = 40.0
    cases = [
        ("20000 x 10 float64, last axis", short64, {"axis": -1}),
        ("20000 x 10 float32, last axis", short64.astype(np.float32), {"axis": 1}),
        ("20000 x 10 float16, last axis", short64.astype(np.float16), {"axis": -1}),
        ("20000 x 10 float64 F order, last axis", np.asfortranarray(short64), {"axis": -1}),
        ("1 x 300000 float64, last axis", long64, {"axis": -1}),
        ("1 x 300000 float32, last axis", long64.astype(np.float32), {"axis": 1}),
        ("300000 float32, axis None", long64[0].astype(np.float32), {}),
        ("300000 float16, axis None", long64[0].astype(np.float16), {}),
        ("10 x 20000 float64, axis 0", np.ascontiguousarray(short64.T), {"axis": 0}),
        ("300000 x 2 float32, axis 0", rng.standard_normal((300000, 2)).astype(np.float32),
         {"axis": 0}),
        ("600 x 500 float64, axis None", rng.standard_normal((600, 500)), {}),
        ("50 x 300 x 20 float32, axis 1", rng.standard_normal((50, 300, 20)).astype(np.float32),
         {"axis": 1}),
        ("50 x 300 x 20 float64, axes (0, 2)", rng.standard_normal((50, 300, 20)), {"axis": (0, 2)}),
        ("20000 x 10 int16, last axis", rng.integers(-5, 5, (20000, 10)).astype(np.int16),
         {"axis": -1}),
    ]
    return cases


CASES = _cases()


def _call(fx, name, x, kwargs, **extra):
    return getattr(fx, name)(x, **kwargs, **extra)


# ---------------------------------------------------------------------------
# threads

@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("label, x, kwargs", CASES, ids=[c[0] for c in CASES])
def test_bitwise_identical_for_any_thread_count(fx, name, label, x, kwargs):
    one = _call(fx, name, x, kwargs, n_threads=1)
    for n in (2, 3, None):
        assert_bitwise_equal(_call(fx, name, x, kwargs, n_threads=n), one, f"{label}, n_threads={n}")


@pytest.mark.parametrize("label, x, kwargs", CASES[:7], ids=[c[0] for c in CASES[:7]])
def test_weighted_bitwise_identical_for_any_thread_count(fx, label, x, kwargs):
    b = np.abs(np.cos(np.arange(x.size, dtype=np.float64))).reshape(x.shape)
    b[b < 0.1] = 0.0
    b[::2] *= -0.25  # some negative weights
    b = b.astype(x.dtype) if x.dtype.kind == "f" else b
    one = fx.logsumexp(x, b=b, return_sign=True, n_threads=1, **kwargs)
    for n in (2, 3):
        assert_bitwise_equal(fx.logsumexp(x, b=b, return_sign=True, n_threads=n, **kwargs), one,
                             f"{label}, n_threads={n}")


def test_bitwise_identical_with_out(fx):
    x = CASES[0][1]
    outs = []
    for n in (1, 2, 3):
        out = np.empty_like(x)
        fx.log_softmax(x, axis=1, out=out, n_threads=n)
        outs.append(out)
    assert_bitwise_equal(outs[1], outs[0])
    assert_bitwise_equal(outs[2], outs[0])


def test_many_threads(fx):
    # 64 threads x the elements between two signal checks is 2**31, past a C
    # int: the batch size is formed in Py_ssize_t, and the result is still
    # the one of a single thread
    x = np.random.default_rng(3).standard_normal((64, 32768))
    one = fx.logsumexp(x, axis=1, n_threads=1)
    assert_bitwise_equal(fx.logsumexp(x, axis=1, n_threads=64), one, "n_threads=64")
    labels = np.arange(64) % x.shape[1]
    assert_bitwise_equal(fx.cross_entropy(x, labels, reduction="none", n_threads=64),
                         fx.cross_entropy(x, labels, reduction="none", n_threads=1), "n_threads=64")


def test_threadpool_limits(fx):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    default = [_call(fx, name, x, kwargs) for name in FUNCS for _, x, kwargs in CASES[:6]]
    with threadpoolctl.threadpool_limits(1):
        if fx.get_config()["openmp"]:
            assert fx.get_config()["max_threads"] == 1
        limited = [_call(fx, name, x, kwargs) for name in FUNCS for _, x, kwargs in CASES[:6]]
    for got, want in zip(limited, default):
        assert_bitwise_equal(got, want, "threadpool_limits(1)")
    with threadpoolctl.threadpool_limits(2):
        if fx.get_config()["openmp"]:
            assert fx.get_config()["max_threads"] == 2


SUBPROCESS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastxent
    sys.path.insert(0, {tests_dir!r})
    from test_threads_and_dispatch import CASES, FUNCS
    results = {{}}
    for name in FUNCS:
        for label, x, kwargs in CASES[:7]:
            results[name + " | " + label] = np.asarray(getattr(fastxent, name)(x, **kwargs))
    np.savez({path!r}, **results)
    print(json.dumps(fastxent.get_config()))
""")


@pytest.mark.parametrize("omp", ["1", "3"])
def test_omp_num_threads_in_subprocess(fx, tmp_path, omp):
    path = str(tmp_path / f"omp{omp}.npz")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fx.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS=omp)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_SCRIPT.format(tests_dir=tests_dir, path=path)],
        env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout.strip().splitlines()[-1])
    if config["openmp"]:
        assert config["max_threads"] == int(omp)
    saved = np.load(path)
    for name in FUNCS:
        for label, x, kwargs in CASES[:7]:
            want = np.asarray(_call(fx, name, x, kwargs))
            assert_bitwise_equal(saved[name + " | " + label], want, f"OMP_NUM_THREADS={omp}: {label}")


# ---------------------------------------------------------------------------
# configuration and CPU paths

def test_get_config(fx):
    config = fx.get_config()
    assert set(config) >= {"openmp", "cpu_path", "cpu_paths", "max_threads"}
    assert isinstance(config["openmp"], bool)
    assert config["cpu_path"] in ("avx512", "avx2", "baseline")
    assert isinstance(config["cpu_paths"], list) and "baseline" in config["cpu_paths"]
    # each path needs the one before it: listed in that order, none skipped
    assert config["cpu_paths"] == ["baseline", "avx2", "avx512"][:len(config["cpu_paths"])]
    assert config["cpu_path"] in config["cpu_paths"]
    assert isinstance(config["max_threads"], int) and config["max_threads"] >= 1
    if not config["openmp"]:
        assert config["max_threads"] == 1


def test_best_path_is_default(fx):
    config = fx.get_config()
    if "FASTXENT_CPU" not in os.environ:
        assert config["cpu_path"] == config["cpu_paths"][-1]


def _cpu_flags():
    """The flags of the first CPU in /proc/cpuinfo (Linux), as a set."""
    if sys.platform != "linux" or not os.path.exists("/proc/cpuinfo"):
        pytest.skip("reads /proc/cpuinfo")
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    pytest.skip("no flags line in /proc/cpuinfo")


def test_x86_paths_offered_when_cpu_has_them(fx, tmp_path):
    flags = _cpu_flags()
    has = {"avx2", "fma", "f16c"} <= flags
    has512 = has and {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags
    # in a process where no path is forced: this one may run with
    # FASTXENT_CPU=baseline, which offers the baseline alone
    env = {k: v for k, v in os.environ.items() if k != "FASTXENT_CPU"}
    code = "import fastxent; print(' '.join(fastxent.get_config()['cpu_paths']))"
    paths = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True, cwd=tmp_path).stdout.split()
    assert ("avx2" in paths) == has
    assert ("avx512" in paths) == has512
    if os.environ.get("FASTXENT_CPU", "").strip().lower() == "baseline":
        assert fx.get_config()["cpu_paths"] == ["baseline"]
    else:
        assert fx.get_config()["cpu_paths"] == paths


def test_show_config_prints_the_config(fx, capsys):
    fx.show_config()
    printed = capsys.readouterr().out
    for key, value in fx.get_config().items():
        assert key in printed
        assert str(value) in printed


def test_cpu_path_switches_and_restores(fx, cpu_paths):
    before = fx.get_config()["cpu_path"]
    for path in cpu_paths:
        with fx.cpu_path(path):
            assert fx.get_config()["cpu_path"] == path
        assert fx.get_config()["cpu_path"] == before
    with pytest.raises(RuntimeError):
        with fx.cpu_path(cpu_paths[0]):
            raise RuntimeError
    assert fx.get_config()["cpu_path"] == before


@pytest.mark.parametrize("bad", ["avx512bw", "AVX3", "", "native", "AVX2"])
def test_cpu_path_unknown_name_raises(fx, bad):
    before = fx.get_config()["cpu_path"]
    with pytest.raises(ValueError):
        with fx.cpu_path(bad):
            pass
    assert fx.get_config()["cpu_path"] == before


@pytest.mark.parametrize("name", FUNCS)
def test_cpu_paths_agree_on_zoo(fx, cpu_paths, name):
    if len(cpu_paths) < 2:
        pytest.skip("one CPU path on this machine")
    failures = Failures()
    f = getattr(fx, name)
    for desc, arr in zoo(dtypes=FLOAT_DTYPES + (np.int16,), empty=False):
        for axis in axes_for(arr.ndim):
            results = {}
            for path in cpu_paths:
                with fx.cpu_path(path):
                    results[path] = f(arr, axis=axis)
            base = results[cpu_paths[0]]
            for path in cpu_paths[1:]:
                label = f"{name} {desc}, axis={axis}: {path} vs {cpu_paths[0]}"
                with failures.case(label):
                    assert_agree(results[path], base, arr, name, label)
    failures.check()


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("label, x, kwargs", CASES, ids=[c[0] for c in CASES])
def test_cpu_paths_agree_on_large_inputs(fx, cpu_paths, name, label, x, kwargs):
    if len(cpu_paths) < 2:
        pytest.skip("one CPU path on this machine")
    results = {}
    for path in cpu_paths:
        with fx.cpu_path(path):
            results[path] = _call(fx, name, x, kwargs)
            # and the thread count still does not matter on this path
            assert_bitwise_equal(_call(fx, name, x, kwargs, n_threads=1), results[path],
                                 f"{path}: {label}")
    for path in cpu_paths[1:]:
        assert_agree(results[path], results[cpu_paths[0]], x, name, f"{path}: {label}")


def test_cpu_paths_agree_with_weights(fx, cpu_paths):
    if len(cpu_paths) < 2:
        pytest.skip("one CPU path on this machine")
    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 70))
    b = rng.uniform(-0.2, 2.0, a.shape)
    b[rng.random(a.shape) < 0.1] = 0.0
    for axis in (None, 0, 1):
        results = {}
        for path in cpu_paths:
            with fx.cpu_path(path):
                results[path] = fx.logsumexp(a, axis=axis, b=b, return_sign=True)
        for path in cpu_paths[1:]:
            assert_agree(results[path], results[cpu_paths[0]], a, "logsumexp",
                                f"{path} axis={axis}")


def test_forced_baseline_never_loads_the_x86_modules(tmp_path):
    # an x86 module's initialization runs its own instructions: on a CPU
    # without them, importing it would crash; forcing the baseline must
    # import neither
    code = ("import sys, fastxent; print(fastxent.get_config()['cpu_path'], "
            "'fastxent._kernels_avx2' in sys.modules, 'fastxent._kernels_avx512' in sys.modules)")
    env = dict(os.environ, FASTXENT_CPU="baseline")
    # `-c` looks in the current folder first: not the source tree's fastxent/
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.split()
    assert out == ["baseline", "False", "False"]


@pytest.mark.parametrize("path", ["avx2", "avx512"])
def test_forced_path_is_used_or_refused(tmp_path, path):
    code = "import fastxent; print(fastxent.get_config()['cpu_path'])"
    env = dict(os.environ, FASTXENT_CPU=path.upper())
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path)
    plain = dict(os.environ)
    plain.pop("FASTXENT_CPU", None)
    offered = subprocess.run([sys.executable, "-c", code.replace(
        "['cpu_path']", "['cpu_paths']")], env=plain, capture_output=True, text=True,
        check=True, cwd=tmp_path).stdout
    if f"'{path}'" in offered:
        assert run.returncode == 0 and run.stdout.split() == [path]
    else:
        # a path this CPU cannot run is refused at import, by name
        assert run.returncode != 0
        assert f"FASTXENT_CPU={path!r}" in run.stderr and "not usable" in run.stderr


@pytest.mark.parametrize("name", ["avx-512", "native", "sse2"])
def test_forced_name_that_is_no_path_says_so(tmp_path, name):
    env = dict(os.environ, FASTXENT_CPU=name)
    run = subprocess.run([sys.executable, "-c", "import fastxent"], env=env, capture_output=True,
                         text=True, cwd=tmp_path)
    assert run.returncode != 0
    assert f"FASTXENT_CPU={name!r} is not a CPU path" in run.stderr
    assert "'baseline', 'avx2', 'avx512'" in run.stderr
