"""Statistics of model evaluation (core layer): bootstrap confidence intervals and paired tests.

- :func:`bootstrap_ci`: percentile interval of a metric over resampled test rows.
- :func:`mcnemar`: do two classifiers make different numbers of errors on the same rows? Exact binomial
  test when fewer than 25 rows disagree, chi-square with continuity correction otherwise.
- :func:`paired_bootstrap`: the difference of a metric between two models over the same resampled
  rows, with a one-sided p-value that the first is not better.
"""

from __future__ import annotations

from typing import Any


def _resamples(n: int, n_boot: int, seed: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(metric: str, y: Any, scores: Any, task: str, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` on (y, scores)."""
    import numpy as np

    from ..metrics import score

    y, scores = np.asarray(y), np.asarray(scores)
    if n_boot <= 0 or len(y) < 2:
        return float("nan"), float("nan")
    values = []
    for idx in _resamples(len(y), n_boot, seed):
        values.append(score(metric, y[idx], scores[idx], task))
    values = np.asarray(values, dtype=float)
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


def paired_bootstrap(metric: str, y: Any, scores_a: Any, scores_b: Any, task: str,
                     n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Bootstrap of ``metric(A) - metric(B)`` on the same rows (oriented so > 0 means A is better).

    ``p_value`` is the share of resamples in which A is not better (one-sided).
    """
    import numpy as np

    from ..metrics import get_metric, score

    sign = 1.0 if get_metric(metric).greater_is_better else -1.0
    y, a, b = np.asarray(y), np.asarray(scores_a), np.asarray(scores_b)
    observed = sign * (score(metric, y, a, task) - score(metric, y, b, task))
    diffs = []
    for idx in _resamples(len(y), n_boot, seed):
        diffs.append(sign * (score(metric, y[idx], a[idx], task) - score(metric, y[idx], b[idx], task)))
    diffs = np.asarray(diffs, dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    if not len(diffs):
        return {"test": "paired bootstrap", "difference": observed, "ci_low": float("nan"),
                "ci_high": float("nan"), "p_value": float("nan"), "n_boot": 0}
    return {"test": "paired bootstrap", "difference": float(observed),
            "ci_low": float(np.quantile(diffs, 0.025)), "ci_high": float(np.quantile(diffs, 0.975)),
            "p_value": float(np.mean(diffs <= 0)), "n_boot": int(len(diffs))}


def significance(metric: str, task: str, y: Any, a: Any, b: Any, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Is model A (scores `a`) really better than B on these rows?

    Classifiers: McNemar on the predicted labels decides, and A must also have the better `metric`;
    the paired bootstrap of `metric` is reported beside it. Regressors: the paired bootstrap decides.
    """
    import numpy as np

    from ..metrics import better, score

    boot = paired_bootstrap(metric, y, a, b, task, n_boot, seed)
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
