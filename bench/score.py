"""Time of a whole evaluation (loss, perplexity, top-1/top-5 accuracy, ECE
and MCE over 15 bins, Brier score, entropy) of logits against labels:
fastxent.score against fastxent.logsumexp of the same array (one read of
it: the floor an evaluation could reach), the fastest composition of
PyTorch + torchmetrics, and of SciPy + scikit-learn computing the same
metrics; and fastxent.score_file streaming the array from a page-cached
.npy against fastxent.score of the array in memory.

    python bench/score.py [--quick] [--repeats 3] [--threads 2] [--impls ...]

Median milliseconds over the repeats (implementations interleaved), and
each one's time over fastxent.score's.  Peers that are not installed are
left out.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import fastxent

SHAPES = [((1024, 50257), np.float32), ((1_000_000, 10), np.float32),
          ((100_000, 1000), np.float64)]
QUICK_SHAPES = [((128, 50257), np.float32), ((200_000, 10), np.float32),
                ((20_000, 1000), np.float64)]


def _torch_impl(threads):
    import torch
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    torch.set_num_threads(threads)

    def run(x, t):
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        with torch.no_grad():
            logp = torch.log_softmax(xt, dim=1)
            nll = -logp.gather(1, tt[:, None])[:, 0].double().mean()
            p = logp.exp()
            conf, pred = p.max(dim=1)
            top5 = logp.topk(5, dim=1).indices
            hit = pred == tt
            acc1 = hit.double().mean()
            acc5 = (top5 == tt[:, None]).any(dim=1).double().mean()
            entropy = -torch.nan_to_num(p * logp).sum(dim=1).double().mean()
            p_y = p.gather(1, tt[:, None])[:, 0]
            # sum_c (p_c - y_c)^2 without forming the one-hot array
            brier = (p.pow(2).sum(dim=1) - 2 * p_y + 1).double().mean()
            ece = _ce_compute(conf.float(), hit.float(), 15, norm="l1")
            mce = _ce_compute(conf.float(), hit.float(), 15, norm="max")
        return {"nll": float(nll), "perplexity": float(nll.exp()), "accuracy@1": float(acc1),
                "accuracy@5": float(acc5), "ece": float(ece), "mce": float(mce),
                "brier": float(brier), "entropy": float(entropy)}
    return run


def _sklearn_impl():
    from scipy.special import log_softmax
    from sklearn import metrics

    def run(x, t):
        c = x.shape[1]
        labels = np.arange(c)
        logp = log_softmax(x, axis=1)
        p = np.exp(logp)
        nll = metrics.log_loss(t, p, labels=labels)
        conf, pred = p.max(axis=1), p.argmax(axis=1)
        hit = pred == t
        # scikit-learn has no multiclass calibration error: NumPy's binning
        b = np.minimum(np.digitize(conf, np.linspace(0, 1, 16)) - 1, 15)
        n = np.bincount(b, minlength=16)
        gap = np.abs(np.bincount(b, hit, 16) - np.bincount(b, conf, 16))[n > 0] / n[n > 0]
        return {"nll": nll, "perplexity": float(np.exp(nll)),
                "accuracy@1": metrics.top_k_accuracy_score(t, p, k=1, labels=labels),
                "accuracy@5": metrics.top_k_accuracy_score(t, p, k=5, labels=labels),
                "ece": float(np.sum(gap * n[n > 0]) / len(t)), "mce": float(gap.max()),
                "brier": metrics.brier_score_loss(t, p, labels=labels, scale_by_half=False),
                "entropy": float(np.mean(-np.sum(np.where(p > 0, p * logp, 0), axis=1)))}
    return run


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty(shape, dtype)
    step = max(1, (16 << 20) // (shape[1] * 8))
    for i in range(0, shape[0], step):
        n = min(step, shape[0] - i)
        x[i:i + n] = rng.standard_normal((n, shape[1])) * 2
    t = rng.integers(0, shape[1], shape[0])
    return x, t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller arrays")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--impls", default="logsumexp,score,score_file,torch,sklearn",
                   help="comma-separated subset of logsumexp,score,score_file,torch,sklearn")
    args = p.parse_args(argv)
    wanted = args.impls.split(",")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    peers = {}
    if "torch" in wanted:
        try:
            peers["torch+torchmetrics"] = _torch_impl(args.threads)
        except ImportError as e:
            print(f"(torch left out: {e})", file=sys.stderr)
    if "sklearn" in wanted:
        try:
            peers["scipy+sklearn"] = _sklearn_impl()
        except ImportError as e:
            print(f"(scikit-learn left out: {e})", file=sys.stderr)
    n = args.threads
    print(f"fastxent {fastxent.__version__}, {fastxent.get_config()['cpu_path']} kernels, "
          f"{n} threads, median of {args.repeats}; ms (time / fastxent.score)")
    print()
    print("| shape | dtype | implementation | ms | x score | nll | ece |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as d:
        for shape, dtype in shapes:
            x, t = _data(shape, dtype)
            impls = {}
            if "logsumexp" in wanted:
                impls["fastxent.logsumexp"] = lambda: fastxent.logsumexp(x, axis=1, n_threads=n)
            impls["fastxent.score"] = lambda: fastxent.score(x, t, n_threads=n)
            if "score_file" in wanted:
                xp, tp = os.path.join(d, "x.npy"), os.path.join(d, "t.npy")
                np.save(xp, x)
                np.save(tp, t)
                fastxent.score_file(xp, tp)   # into the page cache
                impls["fastxent.score_file (page-cached .npy)"] = (
                    lambda: fastxent.score_file(xp, tp, n_threads=n))
            for name, f in peers.items():
                impls[name] = (lambda f=f: f(x, t))
            times = {k: [] for k in impls}
            results = {}
            for _ in range(args.repeats):
                for k, f in impls.items():
                    t0 = time.perf_counter()
                    results[k] = f()
                    times[k].append(time.perf_counter() - t0)
            base = statistics.median(times["fastxent.score"])
            label = " x ".join(str(s) for s in shape)
            for k in impls:
                ms = statistics.median(times[k]) * 1e3
                r = results[k]
                nll = f"{r['nll']:.6f}" if isinstance(r, dict) else ""
                ece = f"{r['ece']:.5f}" if isinstance(r, dict) else ""
                print(f"| {label} | {np.dtype(dtype).name} | {k} | {ms:.1f} | "
                      f"{ms / 1e3 / base:.2f} | {nll} | {ece} |")
            del x, t


if __name__ == "__main__":
    main()
