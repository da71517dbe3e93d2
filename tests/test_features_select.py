"""select: mutual information (classification and regression), variance, correlation filter, model."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from omgmagics.errors import UsageError
from omgmagics.features.select import score_features, select_features


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n = 800
    signal = rng.normal(size=n)
    X = pd.DataFrame({"noise1": rng.normal(size=n), "signal": signal,
                      "signal_copy": signal * 2 + 0.001 * rng.normal(size=n),
                      "weak": signal + 2 * rng.normal(size=n), "constant": np.ones(n),
                      "flag": (rng.random(n) < 0.3).astype(float)})
    y_class = pd.Series(np.where(signal + 0.3 * rng.normal(size=n) > 0, "yes", "no"))
    y_reg = pd.Series(3 * signal + rng.normal(size=n))
    return X, y_class, y_reg


@pytest.mark.parametrize("method", ["mutual_info", "correlation", "model"])
def test_informative_features_rank_first(data, method):
    X, y, _ = data
    scores = score_features(X, y, method)
    assert set(scores.index[:2]) == {"signal", "signal_copy"}
    assert scores["constant"] == pytest.approx(0.0, abs=1e-9)


def test_mutual_info_for_regression(data):
    X, _, y = data
    scores = score_features(X, y, "mutual_info", objective="regression")
    assert scores.index[0] in ("signal", "signal_copy") and scores["noise1"] < scores["weak"]


def test_selection_table_plot_and_correlation_filter(data):
    X, y, _ = data
    report = select_features(X, y, "correlation", k=3, threshold=0.9)
    # signal_copy ranks second but correlates 1.0 with signal: filtered; kept in column order
    assert report.data["selected"] == ["noise1", "signal", "weak"]
    table = report.tables["ranking"]
    assert list(table.columns) == ["rank", "feature", "score", "selected"]
    assert table["rank"].tolist() == list(range(1, 7)) and table["selected"].sum() == 3
    assert report.figures["scores"].startswith(b"\x89PNG")
    variance = select_features(X, y, "variance", k=6)
    assert "constant" not in variance.data["selected"] and len(variance.data["selected"]) == 5
    assert "fewer than --k 6" in variance.messages[0]


def test_k_is_checked_against_the_number_of_features(data):
    X, y, _ = data
    report = select_features(X, y, k=50)  # more than there are: all kept, said so
    assert report.data["k"] == 6 and len(report.data["selected"]) == 6
    assert "--k 50 keeps every feature: there are 6, so nothing is left out." in report.messages
    assert not any("keeps every" in m for m in select_features(X, y, k=6).messages)
    with pytest.raises(UsageError, match=re.escape("--k must be at least 1, got 0.")):
        select_features(X, y, k=0)
    auto = select_features(X, y)  # default: auto, from the rows, at most every feature
    assert auto.data["k"] == 6 and ("k 6 (auto: one feature per 10 training rows, at least 10, at "
                                    "most the 6 features; 800 rows).") in auto.messages


def test_k_auto_follows_the_training_rows():
    from omgmagics.features.select import auto_k, check_k

    assert [auto_k(500, n) for n in (105, 280, 1750, 30000)] == [10, 28, 175, 500]
    assert auto_k(4, 105) == 4 and check_k("auto", 40, 1500)[0] == 40
    assert check_k(12, 40, 1500) == (12, None)


def test_the_quick_model_keeps_a_selection_only_when_it_scores_better():
    """Two informative columns among 100 of noise on 240 training rows: the quick model scores better
    on the two alone (the selection is used); keeping one of the two loses (tried, not used)."""
    import numpy as np
    import pandas as pd

    from omgmagics.features.quick import compare_selection

    rng = np.random.default_rng(0)
    n, noise = 400, 100
    X = pd.DataFrame(rng.normal(size=(n, noise)), columns=[f"n{i}" for i in range(noise)])
    X["a"], X["b"] = rng.normal(size=n), rng.normal(size=n)
    logit = 2.5 * X["a"] - 2.0 * X["b"]
    X["y"] = np.where(logit + rng.logistic(size=n) > 0, "yes", "no")
    train, val = X.iloc[:240], X.iloc[240:]
    features = [c for c in X.columns if c != "y"]
    used = compare_selection(train, val, "y", features, ["a", "b"], task="classification",
                             metric="roc_auc", greater_is_better=True, positive_label="yes")
    assert used["used"] is True and used["score_selected"] > used["score_all"]
    assert (used["all_features"], used["selected_features"], used["rows"]) == (102, 2, 240)
    lost = compare_selection(train, val, "y", features, ["n0"], task="classification",
                             metric="roc_auc", greater_is_better=True, positive_label="yes")
    assert lost["used"] is False and lost["score_selected"] < lost["score_all"]
    # regression, a metric that falls: lower is better
    reg = X.assign(y=logit + rng.normal(scale=0.3, size=n))
    r = compare_selection(reg.iloc[:240], reg.iloc[240:], "y", features, ["a", "b"],
                          task="regression", metric="rmse", greater_is_better=False)
    assert r["used"] is True and r["score_selected"] < r["score_all"]
