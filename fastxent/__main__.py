"""The ``fastxent`` command (``python -m fastxent``): a self-check, then the speed table;
``fastxent score ...`` scores stored logits (``fastxent score --help``).

The self-check compares every public function with its NumPy reference
(``fastxent.reference``; and with SciPy when it
is installed) on built-in seeded data covering the special
values, on every CPU code path this machine runs, and exits non-zero on a
mismatch.  The speed table is fastxent._benchmark's; options after the
command are passed to it (``fastxent --quick``, ``--help``).
"""
import sys

import numpy as np


def _cases():
    rng = np.random.default_rng(20261125)
    x = rng.standard_normal((257, 1000)) * 4
    x[0, 3] = np.inf
    x[1] = -np.inf
    x[2, 5] = np.nan
    x[3, :2] = x[3].max() + 1  # a tie at the max
    yield "float64 257 x 1000, special rows", x, -1
    yield "float32 64 x 50257", (rng.standard_normal((64, 50257)) * 3).astype(np.float32), -1
    yield "float32 20000 x 10 (short rows)", rng.standard_normal((20000, 10)).astype(np.float32), 1
    yield "float64 30 x 40 x 50, axis 1 (columns)", rng.standard_normal((30, 40, 50)), 1
    yield "float16 100 x 3000", rng.standard_normal((100, 3000)).astype(np.float16), -1


def self_check(out=sys.stdout):
    """Compare fastxent with its NumPy reference (and SciPy); True if all agree."""
    import fastxent
    from fastxent import reference

    try:
        import scipy.special as peer
    except ImportError:
        peer = None
    fastxent.show_config()
    ok = True
    for path in fastxent.get_config()["cpu_paths"]:
        with fastxent.cpu_path(path):
            for label, x, axis in _cases():
                for name in ("logsumexp", "softmax", "log_softmax"):
                    got = getattr(fastxent, name)(x, axis=axis)
                    rtol = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-12}[x.dtype.type]
                    wants = [("reference", getattr(reference, name)(x, axis=axis))]
                    if peer is not None and x.dtype != np.float16:  # SciPy rounds float16 in float16
                        with np.errstate(all="ignore"):
                            wants.append(("scipy", getattr(peer, name)(x, axis=axis)))
                    for who, want in wants:
                        good = np.allclose(got, want, rtol=rtol, atol=rtol * 10, equal_nan=True)
                        ok &= bool(good)
                        if not good:
                            print(f"MISMATCH [{path}] {name} {label} vs {who}", file=out)
            ok &= _check_losses(fastxent, path, out)
    print(f"self-check: {'all results agree' if ok else 'MISMATCHES above'} "
          f"(reference{', scipy' if peer else ''}; paths {fastxent.get_config()['cpu_paths']})",
          file=out)
    return ok


def _check_losses(fastxent, path, out):
    """The losses and entropies against fastxent.reference."""
    from fastxent import reference as ref

    rng = np.random.default_rng(20261126)
    ok = True
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        x = (rng.standard_normal((300, 12)) * 3).astype(dtype)
        y = (rng.standard_normal((300, 12)) * 3).astype(dtype)
        x[0, 2] = -np.inf
        y[1, 0] = -np.inf
        p = np.exp(y - y.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[2, :3] = 0
        labels = rng.integers(0, 12, 300)
        labels[5] = -100
        calls = [
            ("cross_entropy", (x, labels), {"label_smoothing": 0.1}),
            ("kl_div", (x, p), {"reduction": "none"}),
            ("binary_cross_entropy_with_logits", (x, (p > 0.1).astype(dtype)), {"reduction": "none"}),
            ("entropy", (p,), {"axis": 1}),
            ("entropy", (p, p[::-1]), {"axis": 1}),
            ("softmax_entropy", (x,), {}),
            ("softmax_cross_entropy", (x, y), {}),
            ("softmax_kl_div", (x, y), {}),
        ]
        for name, args, kw in calls:
            got = getattr(fastxent, name)(*args, **kw)
            want = getattr(ref, name)(*args, **kw)
            if name in ("cross_entropy", "kl_div", "binary_cross_entropy_with_logits"):
                got_l, got_g = getattr(fastxent, name)(*args, **kw, return_grad=True)
                want_l, want_g = getattr(ref, name)(*args, **kw, return_grad=True)
                good = np.allclose(got_g, want_g, rtol=rtol, atol=rtol, equal_nan=True)
            else:
                good = True
            good &= np.allclose(got, want, rtol=rtol, atol=rtol * 10, equal_nan=True)
            ok &= bool(good)
            if not good:
                print(f"MISMATCH [{path}] {name} {np.dtype(dtype).name} vs reference", file=out)
    return ok


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["score"]:
        from fastxent import _score_cli
        return _score_cli.main(argv[1:])
    if "-h" in argv or "--help" in argv:
        print(__doc__)
    elif not self_check():
        return 1
    print()
    from fastxent import _benchmark
    return _benchmark.main(argv)


if __name__ == "__main__":
    sys.exit(main())
