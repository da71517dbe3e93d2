"""The bootstrap's vectorized metrics give exactly what the metric gives one resample at a time, on
the same resamples, whatever the block size the resamples are drawn in."""

from __future__ import annotations

import numpy as np
import pytest

from omgmagics.metrics import score
from omgmagics.modeling import stats

RNG = np.random.default_rng(0)
Y2, S2 = RNG.integers(0, 2, 300), np.round(RNG.random(300), 2)  # rounded: tied scores
Y5, S5 = RNG.integers(0, 5, 200), RNG.dirichlet(np.ones(5), 200)
YR = RNG.normal(size=250)
SR = YR + RNG.normal(size=250)
CASES = ([(m, Y2, S2, "classification") for m in ("roc_auc", "accuracy", "f1", "f1_macro",
                                                  "balanced_accuracy", "average_precision")]
         + [(m, Y5, S5, "classification") for m in ("accuracy", "f1", "f1_macro",
                                                    "balanced_accuracy", "roc_auc")]
         + [(m, YR, SR, "regression") for m in ("rmse", "mae", "r2")]
         + [("roc_auc", RNG.integers(0, 2, 6), RNG.random(6), "classification")])


def _one_at_a_time(metric, y, s, task, n_boot, seed):
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    return np.asarray([score(metric, y[i], s[i], task) for i in idx], dtype=float)


@pytest.mark.parametrize(("metric", "y", "s", "task"), CASES,
                         ids=[f"{c[0]}-{c[2].ndim}d-{len(c[1])}" for c in CASES])
def test_every_resample_scores_as_the_metric_does(metric, y, s, task, monkeypatch):
    expected = _one_at_a_time(metric, y, s, task, 120, 3)
    assert np.allclose(stats.bootstrap_values(metric, y, s, task, 120, 3), expected,
                       rtol=1e-12, atol=1e-12, equal_nan=True)
    monkeypatch.setattr(stats, "RESAMPLE_CELLS", 7 * len(y))  # blocks of 7 resamples
    assert np.allclose(stats.bootstrap_values(metric, y, s, task, 120, 3), expected,
                       rtol=1e-12, atol=1e-12, equal_nan=True)


def test_a_resample_with_one_class_has_no_auc():
    values = stats.bootstrap_values("roc_auc", np.array([0, 1]), np.array([0.2, 0.7]),
                                    "classification", 50, 0)
    assert np.isnan(values).any() and np.nanmax(values) == 1.0
