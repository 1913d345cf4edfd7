"""Wrong calls that ``mypy --strict`` must report (test_typing.py).

Each line marked ``# E: <code>`` must give a mypy error with that code, and
no other line may give one.  Never run.
"""
import numpy as np

import fastxent

x = np.zeros((4, 3))
labels = np.array([0, 1, 2, 0])

fastxent.cross_entropy(x, labels, reduction="avg")  # E: call-overload
fastxent.kl_div(x, x, reduction="avg")  # E: call-overload
fastxent.softmax(x, n_threads="2")  # E: arg-type
fastxent.logsumexp(x, axis="1")  # E: call-overload
fastxent.entropy(x, base="e")  # E: call-overload
loss, grad = fastxent.cross_entropy(x, labels)  # E: misc
grad_only = fastxent.cross_entropy(x, labels, return_grad=True).shape  # E: attr-defined
sign_only = fastxent.logsumexp(x, return_sign=True) + 1.0  # E: operator
fastxent.get_config()["threads"]  # E: typeddict-item
