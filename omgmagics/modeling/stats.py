"""Statistics of model evaluation (core layer): bootstrap confidence intervals and paired tests.

- :func:`bootstrap_ci`: percentile interval of a metric over resampled test rows.
- :func:`mcnemar`: do two classifiers make different numbers of errors on the same rows? Exact binomial
  test when fewer than 25 rows disagree, chi-square with continuity correction otherwise.
- :func:`paired_bootstrap`: the difference of a metric between two models over the same resampled
  rows, with a one-sided p-value that the first is not better.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

RESAMPLE_CELLS = 2_000_000  # row indices drawn at a time (16 MB), whatever the number of rows


def _resamples(n: int, n_boot: int, seed: int) -> Iterator[Any]:
    """The row indices of `n_boot` resamples of `n` rows, in blocks of resamples; the blocks
    concatenate to the same draws as one (n_boot, n) draw of the same seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    step = max(1, RESAMPLE_CELLS // max(n, 1))
    for start in range(0, n_boot, step):
        yield rng.integers(0, n, size=(min(step, n_boot - start), n))


def bootstrap_ci(metric: str, y: Any, scores: Any, task: str, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` on (y, scores)."""
    import numpy as np

    y, scores = np.asarray(y), np.asarray(scores)
    if n_boot <= 0 or len(y) < 2:
        return float("nan"), float("nan")
    values = bootstrap_values(metric, y, scores, task, n_boot, seed)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def mcnemar(y: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """McNemar's test on the correctness of two classifiers' predictions of the same rows.

    Returns
    -------
    dict
        ``a_only`` (rows only A gets right), ``b_only``, ``statistic``, ``p_value``, ``method``.
    """
    import numpy as np
    from scipy import stats

    y, a, b = np.asarray(y), np.asarray(pred_a), np.asarray(pred_b)
    ok_a, ok_b = a == y, b == y
    a_only, b_only = int(np.sum(ok_a & ~ok_b)), int(np.sum(~ok_a & ok_b))
    n = a_only + b_only
    if n == 0:
        return {"test": "McNemar", "a_only": 0, "b_only": 0, "statistic": 0.0, "p_value": 1.0,
                "method": "no disagreement"}
    if n < 25:
        p = stats.binomtest(a_only, n, 0.5).pvalue
        return {"test": "McNemar", "a_only": a_only, "b_only": b_only, "statistic": float(a_only),
                "p_value": float(p), "method": "exact binomial"}
    stat = (abs(a_only - b_only) - 1) ** 2 / n
    return {"test": "McNemar", "a_only": a_only, "b_only": b_only, "statistic": float(stat),
            "p_value": float(stats.chi2.sf(stat, 1)), "method": "chi-square, continuity corrected"}


def bootstrap_values(metric: str, y: Any, scores: Any, task: str, n_boot: int = 1000,
                     seed: int = 0) -> Any:
    """`metric` on each of `n_boot` resamples of the rows (NaN where undefined); the same `seed`
    and row count draw the same resamples, so two models' values pair up row for row.

    The common metrics (ROC AUC of a binary classifier, accuracy, F1, balanced accuracy, RMSE, MAE)
    are computed for every resample at once with numpy, to the values
    :func:`omgmagics.metrics.score` gives one resample at a time; the others resample by resample.
    """
    import numpy as np

    from ..metrics import score

    y, scores = np.asarray(y), np.asarray(scores, dtype=float)
    out = []
    for block in _resamples(len(y), n_boot, seed):
        fast = _vectorized(metric, y, scores, task, block)
        out.append(fast if fast is not None else
                   np.asarray([score(metric, y[i], scores[i], task) for i in block], dtype=float))
    return np.concatenate(out) if out else np.zeros(0)


def _vectorized(metric: str, y: Any, scores: Any, task: str, idx: Any) -> Any:
    """Every resample's metric at once, or None for a metric without a vectorized form here."""
    import numpy as np

    if task == "regression" or metric in ("rmse", "mae"):
        if metric not in ("rmse", "mae") or scores.ndim != 1:
            return None
        err = y.astype(float)[idx] - scores[idx]
        return np.sqrt(np.mean(err ** 2, axis=1)) if metric == "rmse" else np.abs(err).mean(axis=1)
    yy = y.astype(np.int64)[idx]
    if metric == "roc_auc":
        if scores.ndim != 1:
            return None
        from scipy.stats import rankdata

        ranks = rankdata(scores[idx], axis=1)  # ties share their average rank, as in sklearn
        pos = yy.sum(axis=1).astype(float)
        neg = yy.shape[1] - pos
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = ((ranks * yy).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
        return np.where((pos > 0) & (neg > 0), auc, np.nan)
    if metric not in ("accuracy", "f1", "f1_macro", "balanced_accuracy"):
        return None
    pred = scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(np.int64)
    pp = pred[idx]
    if metric == "accuracy":
        return (pp == yy).mean(axis=1)
    k = int(max(yy.max(initial=0), pp.max(initial=0))) + 1
    boots = np.arange(len(idx))[:, None]
    cm = np.bincount(((boots * k + yy) * k + pp).ravel(),
                     minlength=len(idx) * k * k).reshape(len(idx), k, k).astype(float)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    true, predicted = cm.sum(axis=2), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "balanced_accuracy":  # recall of the classes present in the resample's truth
            recall = np.where(true > 0, tp / true, np.nan)
            return np.nanmean(recall, axis=1)
        f1 = np.where(true + predicted > 0, 2 * tp / (true + predicted), 0.0)
    if metric == "f1" and scores.ndim == 1:
        return f1[:, 1] if k > 1 else np.zeros(len(idx))
    present = (true + predicted) > 0  # sklearn averages over the labels seen in truth or prediction
    return (f1 * present).sum(axis=1) / present.sum(axis=1)


def paired_bootstrap(metric: str, y: Any, scores_a: Any, scores_b: Any, task: str,
                     n_boot: int = 1000, seed: int = 0, values_a: Any = None) -> dict[str, Any]:
    """Bootstrap of ``metric(A) - metric(B)`` on the same rows (oriented so > 0 means A is better).

    ``p_value`` is the share of resamples in which A is not better (one-sided). `values_a`: A's
    :func:`bootstrap_values` for the same `n_boot` and `seed`, when A is tested against several
    models (computed here otherwise).
    """
    import numpy as np

    from ..metrics import get_metric, score

    sign = 1.0 if get_metric(metric).greater_is_better else -1.0
    y, a, b = np.asarray(y), np.asarray(scores_a), np.asarray(scores_b)
    observed = sign * (score(metric, y, a, task) - score(metric, y, b, task))
    if values_a is None:
        values_a = bootstrap_values(metric, y, a, task, n_boot, seed)
    diffs = sign * (np.asarray(values_a, dtype=float) -
                    bootstrap_values(metric, y, b, task, n_boot, seed))
    diffs = diffs[~np.isnan(diffs)]
    if not len(diffs):
        return {"test": "paired bootstrap", "difference": observed, "ci_low": float("nan"),
                "ci_high": float("nan"), "p_value": float("nan"), "n_boot": 0}
    return {"test": "paired bootstrap", "difference": float(observed),
            "ci_low": float(np.quantile(diffs, 0.025)), "ci_high": float(np.quantile(diffs, 0.975)),
            "p_value": float(np.mean(diffs <= 0)), "n_boot": int(len(diffs))}


def significance(metric: str, task: str, y: Any, a: Any, b: Any, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05, values_a: Any = None) -> dict[str, Any]:
    """Is model A (scores `a`) really better than B on these rows?

    Classifiers: McNemar on the predicted labels decides, and A must also have the better `metric`;
    the paired bootstrap of `metric` is reported beside it. Regressors: the paired bootstrap decides.
    """
    import numpy as np

    from ..metrics import better, score

    boot = paired_bootstrap(metric, y, a, b, task, n_boot, seed, values_a)
    value_a, value_b = score(metric, y, a, task), score(metric, y, b, task)
    out: dict[str, Any] = {"metric": metric, "a": value_a, "b": value_b, "bootstrap": boot,
                           "alpha": alpha}
    if task == "regression":
        out.update(test="paired bootstrap", p_value=boot["p_value"])
    else:
        a, b = np.asarray(a), np.asarray(b)
        pa = a.argmax(axis=1) if a.ndim == 2 else (a >= 0.5).astype(int)
        pb = b.argmax(axis=1) if b.ndim == 2 else (b >= 0.5).astype(int)
        mc = mcnemar(y, pa, pb)
        out.update(test="McNemar", p_value=mc["p_value"], mcnemar=mc)
    # McNemar is two-sided: A must also be the one making fewer errors.
    fewer_errors = task == "regression" or out["mcnemar"]["a_only"] > out["mcnemar"]["b_only"]
    out["significant"] = bool(better(metric, value_a, value_b) and fewer_errors
                              and out["p_value"] < alpha)
    return out
