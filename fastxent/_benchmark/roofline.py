"""The machine limits: the lower bound on the time of each operation
(``docs/design.rst``, "Machine facts" and "Rooflines")."""

from __future__ import annotations


# docs/design.rst, "Machine facts" (2 cores, Zen 3, AVX2 + FMA):
# vectorized exp throughput per dtype (exp/s), streaming read and read + write
# bandwidth with plain stores (B/s), for 1 and 2 threads.
_LIMITS = {
    1: {"exp": {"float32": 2.8e9, "float64": 0.9e9}, "read": 18e9, "read_write": 16e9},
    2: {"exp": {"float32": 5.4e9, "float64": 1.6e9}, "read": 26e9, "read_write": 22e9},
}


# docs/design.rst, "Rooflines", call overhead: a Cython function taking a (1, 10) array.
CALL_FLOOR_US = 0.24


def roofline_seconds(op, case, threads):
    """Lower bound on the time of ``op`` over ``case`` with ``threads`` threads.

    The docs/design.rst model: the transcendental functions every element needs at
    the vectorized exp throughput (docs/design.rst measures exp only; a vectorized
    log or log1p is a polynomial of the same cost, so the exp figures stand
    for them), and the memory traffic (the inputs read, plus the output
    written for a full-size output), whichever is slower:

    - ``logsumexp``, ``cross_entropy``, ``softmax_entropy``: one exp per
      element, one array read;
    - ``entropy`` (of probabilities): one log per element, one array read;
    - ``kl_div`` (target probabilities ``p`` against ``log q``): two arrays
      read, and one log per element (``p log p``); the read bound is the
      larger in float32, the two are about equal in float64;
    - ``bce_with_logits``: two arrays read (logits, targets), one exp and
      one log1p per element (two transcendentals);
    - ``softmax_kl_div``: two logit arrays read, two exps per element (the
      softmax of each row);
    - ``softmax``, ``log_softmax``, ``cross_entropy_grad``: one exp per
      element, one array read and one written;
    - ``score_rows``: one exp per element, one array read, and its six
      per-row results written (four floats of the working precision,
      float32 for float16 rows, and two int64): the exp bound for long
      rows, the traffic for rows of a few classes.
    """
    limits = _LIMITS[min(max(int(threads), 1), 2)]
    itemsize = {"float16": 2, "float32": 4}.get(case.dtype, 8)
    n = case.size
    # float16 is computed in float32: float32's exps, float16's bytes
    per_exp = 1 / limits["exp"]["float32" if case.dtype == "float16" else case.dtype]
    read = n * itemsize / limits["read"]
    if op in ("logsumexp", "cross_entropy", "softmax_entropy", "entropy"):
        return max(n * per_exp, read)
    if op == "score_rows":
        per_row = 4 * (8 if case.dtype == "float64" else 4) + 2 * 8
        return max(n * per_exp, read + case.rows * per_row / limits["read_write"])
    if op == "kl_div":
        return max(n * per_exp, 2 * read)
    if op in ("bce_with_logits", "softmax_kl_div"):
        return max(2 * n * per_exp, 2 * read)
    return max(n * per_exp, 2 * n * itemsize / limits["read_write"])
