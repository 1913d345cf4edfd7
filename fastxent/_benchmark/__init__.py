"""Speed and peak-memory comparison of fastxent with NumPy, SciPy, PyTorch and JAX.

One process, one run: every implementation that can be imported is timed on the
same seeded data, with the implementations interleaved across repeats so that
machine noise hits all of them alike, and the median is reported. Each
(operation, shape, dtype) row shows the time of every implementation, the ratio
peer / fastxent, and the fraction of the roofline (the physical limit of this
machine, from ``docs/design.rst``) that fastxent reaches. A second table gives the
peak memory a fastxent call takes beyond its input, measured in a fresh
subprocess per call, next to the size of the output it must return.

Run it with ``python -m fastxent._benchmark --help``, ``python bench/compare.py``
or through :func:`run` (``python -m fastxent`` uses that). Options:
``--quick`` (smaller shapes, fewer repeats: a self-check), ``--large`` (adds
4096 x 50257 float32), ``--ops``, ``--impls``, ``--threads``, ``--repeats``,
``--markdown`` (a table for the README), ``--mem-impls``/``--no-mem``.

Operations (``--ops``, names or groups, comma-separated): the default run
times the group ``default`` (``logsumexp``, ``log_softmax``, ``softmax``,
``cross_entropy``, ``cross_entropy_grad``); the group ``divergences``
(``kl_div``, ``bce_with_logits``, ``entropy``, ``softmax_kl_div``,
``softmax_entropy``) is selected with ``--ops divergences``; ``losses`` is
``cross_entropy``, ``cross_entropy_grad``, ``kl_div``, ``bce_with_logits``;
``softmax_family`` the first three; ``all`` every operation.

What is timed, per implementation (the input conversion is done once, outside
the timed region; every call allocates its output, as a user's call would):

``fastxent``
    ``fastxent.<op>(x, axis=-1, n_threads=threads)``; on the 1 x 10 call-overhead
    row without ``n_threads`` (a user's small call; the kernels never start
    threads below their size threshold).
``fastxent_out`` (not in the default set)
    the same with ``out=`` a preallocated, already-touched array: shows the cost
    of faulting in fresh output pages.
``numpy``
    a plain numerically stable NumPy implementation: ``x - max``, ``exp``,
    ``sum``, ``log`` (single-threaded, full-size temporaries).
``scipy``
    ``scipy.special.<op>(x, axis=-1)``.
``torch``
    ``torch.logsumexp/softmax/log_softmax(t, dim=-1)`` on
    ``t = torch.from_numpy(x)`` (zero-copy), with ``torch.set_num_threads(threads)``.
``jax``
    ``jax.jit(partial(jax.nn.<op>, axis=-1))`` on ``jax.device_put(x)``, waited for
    with ``block_until_ready``; compilation happens in the untimed warm-up call.
    float64 needs ``jax_enable_x64``, which is switched on. JAX's CPU thread pool
    is sized by XLA at import: with ``--threads 1`` this sets ``XLA_FLAGS`` to a
    single-threaded Eigen pool (only if JAX was not imported yet and ``XLA_FLAGS``
    is unset); otherwise JAX uses all cores.

The divergences run on inputs made once per shape from the case's logits
``x`` and the seed, outside the timed region (:func:`op_inputs`): a second
array of logits ``y``, ``softmax``/``log_softmax`` rows computed in float64
and rounded to the dtype, and 0/1 targets. Per implementation:

``kl_div``
    ``reduction='batchmean'`` of the target ``p = softmax(y)`` against the
    input ``log q = log_softmax(x)``: ``fastxent.kl_div(log q, p,
    reduction='batchmean')``; numpy ``sum(where(p > 0, p log p, 0) - p log q) /
    rows``; scipy ``rel_entr(p, q).sum() / rows`` on ``q = exp(log q)`` (made
    untimed: SciPy takes probabilities); torch ``F.kl_div(log q, p,
    reduction='batchmean')``; jax the same formula with ``xlogy``, jitted.
``bce_with_logits``
    ``reduction='mean'`` of logits ``x`` against 0/1 targets (in the dtype of
    ``x``): ``fastxent.binary_cross_entropy_with_logits``; numpy and jax the
    softplus formula ``max(x, 0) - x t + log1p(exp(-|x|))``; torch
    ``F.binary_cross_entropy_with_logits``; SciPy has none.
``entropy``
    per-row ``scipy.stats.entropy(p, axis=-1)`` of ``p = softmax(x)`` (rows
    normalized again, as SciPy does): ``fastxent.entropy(p, axis=-1)``; numpy
    and jax normalize and sum ``-xlogy(p, p)``; scipy ``scipy.stats.entropy``;
    torch ``Categorical(probs=p, validate_args=False).entropy()``.
``softmax_kl_div``
    per-row ``KL(softmax(x) || softmax(y))``: ``fastxent.softmax_kl_div(x,
    y)``; numpy and jax ``sum(exp(lp) (lp - lq))`` from the two stable
    log_softmax; scipy ``rel_entr(softmax(x), softmax(y)).sum(-1)``; torch
    ``F.kl_div(F.log_softmax(y, -1), F.log_softmax(x, -1), log_target=True,
    reduction='none').sum(-1)``.
``softmax_entropy``
    per-row entropy of ``softmax(x)``: ``fastxent.softmax_entropy(x)``; numpy
    and jax ``-sum(exp(lp) lp)``; scipy ``entr(softmax(x)).sum(-1)``; torch
    ``Categorical(logits=x, validate_args=False).entropy()``.

Every answer is checked once against a float64 NumPy reference of the same
operation (the first 256 rows of a per-row result; the whole array, summed in
float64 by row chunks, for the one-number ``kl_div`` and ``bce_with_logits``).

Roofline (``docs/design.rst``, measured on the project's 2-core machine; thread counts
above 2 use the 2-thread figures): a row reduction (logsumexp) is bound by exp
throughput, ``N*V / 5.4e9`` s for float32 and ``N*V / 1.6e9`` s for float64 on two
threads (the read stream, ``N*V*itemsize / 26e9`` s, is below that); a function
that writes a full-size output (softmax, log_softmax) is bound by
``max(exp bound, bytes read + written / 22e9 B/s)``. The divergences take
``max(transcendentals per element / exp throughput, bytes read / 26e9 B/s)``
(docs/design.rst measures exp only; a vectorized log or log1p is taken to cost
the same): ``entropy`` and ``softmax_entropy`` one log or exp per element and
one array read; ``kl_div`` one log per element (``p log p``) and two arrays
read (memory bound in float32, the two bounds about equal in float64);
``bce_with_logits`` one exp and one log1p per element and two arrays read;
``softmax_kl_div`` two exps per element and two arrays read (4096 x 50257
float32: 76 ms). See :func:`roofline_seconds`. The 1 x 10 row is compared
with the floor of a Cython call (0.24 us with raw pointers).

The modules: ``cases`` (the shapes and their seeded data), ``operations``
(what is timed per implementation), ``timing`` (interleaved repeats,
medians), ``roofline`` (the machine limits), ``memory`` (peak memory in a
subprocess), ``report`` (the tables, the environment, the command that
repeats a run) and ``cli`` (the options, :func:`run`, :func:`main`).
"""

from .cases import Case, cases
from .cli import build_parser, main, run
from .memory import peak_memory_subprocess
from .roofline import roofline_seconds

__all__ = ["build_parser", "run", "main", "roofline_seconds"]
