"""Feature selection (core layer): score, rank, keep the best `k`.

Methods, each computed on the training features only:

* ``mutual_info``: mutual information with the target (classification or regression estimator;
  0/1 columns treated as discrete);
* ``variance``: the feature's variance (constant features score 0 and are never kept);
* ``correlation``: |Pearson correlation| with the target (one-vs-rest maximum for several classes),
  walking down the ranking and skipping a feature correlated above `threshold` with one already kept;
* ``model``: impurity importance of a random forest.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, UsageError, unknown_choice
from ..results import Report

METHODS = ("mutual_info", "variance", "correlation", "model")
DEFAULT_K = 50  # without a row count, auto is min(50, features)
ROWS_PER_FEATURE = 10
AUTO_MIN = 10


def _sample(X: Any, y: Any, max_rows: int, seed: int) -> tuple[Any, Any]:
    if len(X) <= max_rows:
        return X, y
    idx = X.sample(n=max_rows, random_state=seed).index
    return X.loc[idx], y.loc[idx]


def _target_matrix(y: Any, objective: str) -> Any:
    import pandas as pd

    if objective == "regression":
        return pd.DataFrame({"y": pd.to_numeric(y, errors="coerce")})
    dummies = pd.get_dummies(y.astype(str), dtype=float)
    return dummies.iloc[:, [1]] if dummies.shape[1] == 2 else dummies


def score_features(X: Any, y: Any, method: str, objective: str = "classification", seed: int = 42,
                   max_rows: int = 20000) -> Any:
    """A score per feature (higher is better), as a Series sorted best first."""
    import numpy as np
    import pandas as pd

    if method not in METHODS:
        raise UsageError(unknown_choice("selection method", method, METHODS))
    X = X.astype("float64")
    if X.isna().any().any():
        X = X.fillna(X.median())
    X, y = _sample(X, y, max_rows, seed)
    if method == "variance":
        scores = X.var(ddof=0)
    elif method == "mutual_info":
        from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

        discrete = np.array([set(np.unique(X[c].to_numpy())) <= {0.0, 1.0} for c in X.columns])
        func = mutual_info_regression if objective == "regression" else mutual_info_classif
        target = pd.to_numeric(y) if objective == "regression" else y.astype(str)
        scores = pd.Series(func(X.to_numpy(), target, discrete_features=discrete, random_state=seed),
                           index=X.columns)
    elif method == "correlation":
        Y = _target_matrix(y, objective)
        std = X.std(ddof=0).replace(0, np.nan)
        Xc = (X - X.mean()) / std
        Yc = (Y - Y.mean()) / Y.std(ddof=0)
        corr = (Xc.to_numpy().T @ Yc.to_numpy()) / len(X)
        scores = pd.Series(np.nanmax(np.abs(np.nan_to_num(corr, nan=0.0)), axis=1), index=X.columns)
    else:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if objective == "regression" else RandomForestClassifier
        model = cls(n_estimators=100, min_samples_leaf=5, max_features="sqrt", random_state=seed,
                    n_jobs=2)
        model.fit(X.to_numpy(), pd.to_numeric(y) if objective == "regression" else y.astype(str))
        scores = pd.Series(model.feature_importances_, index=X.columns)
    return scores.fillna(0.0).sort_values(ascending=False, kind="stable")


def auto_k(n_features: int, n_rows: int) -> int:
    """``--k auto``: about one feature per ten training rows, at least 10, at most every feature."""
    return max(1, min(n_features, max(AUTO_MIN, n_rows // ROWS_PER_FEATURE)))


def check_k(k: int | str | None, n_features: int, n_rows: int | None = None) -> tuple[int, str | None]:
    """The number of features to keep and a note on how it was chosen.

    `k` is a number, ``"auto"`` or ``None`` (both: :func:`auto_k` of `n_rows`). A `k` of at least
    the number of features keeps them all, with a note.

    Raises
    ------
    UsageError
        When `k` is below 1.
    """
    if k is None or k == "auto":
        rows = n_rows if n_rows is not None else ROWS_PER_FEATURE * DEFAULT_K
        chosen = auto_k(n_features, rows)
        return chosen, (f"k {chosen} (auto: one feature per {ROWS_PER_FEATURE} training rows, at least "
                        f"{AUTO_MIN}, at most the {n_features} features; {rows} rows).")
    if k < 1:
        raise UsageError(f"--k must be at least 1, got {k}.")
    if k >= n_features:
        return n_features, (f"--k {k} keeps every feature: there are {n_features}, so nothing is "
                            "left out." if k > n_features else None)
    return k, None


def select_features(X: Any, y: Any, method: str = "mutual_info", k: int | str | None = None,
                    objective: str = "classification", seed: int = 42, threshold: float = 0.95,
                    max_rows: int = 20000) -> Report:
    """Rank the columns of `X` by `method` and keep the best `k`.

    Parameters
    ----------
    k : int or "auto", optional
        How many to keep; ``auto`` or ``None``: :func:`auto_k` of the training rows. A `k` of at
        least the number of features keeps them all (with a message).
    threshold : float
        For ``correlation``: skip a feature whose |correlation| with an already kept one is above this.
    max_rows : int
        Score on a seeded sample of at most this many rows (stated in the report).

    Returns
    -------
    Report
        A ranked table (rank, feature, score, selected) and a bar plot; ``data["selected"]`` lists the
        kept features in the original column order.
    """
    import numpy as np
    import pandas as pd

    if method not in METHODS:
        raise UsageError(unknown_choice("selection method", method, METHODS))
    if X.shape[1] == 0:
        raise DataError("No feature columns to select from. Run `omg feature extract` first.")
    if y.isna().any():
        raise DataError(f"The target has {int(y.isna().sum())} missing values in the training split.")
    k, k_note = check_k(k, X.shape[1], len(X))
    if not 0 < threshold <= 1:
        raise UsageError(f"--threshold must be in (0, 1], got {threshold}.")
    scores = score_features(X, y, method, objective, seed, max_rows)
    if method == "correlation":
        Xs = _sample(X.astype("float64"), y, max_rows, seed)[0]
        corr = Xs[scores.index].corr().abs().fillna(0.0)
        chosen: list[str] = []
        for feat in scores.index:
            if len(chosen) == k:
                break
            if all(corr.at[feat, c] <= threshold for c in chosen):
                chosen.append(feat)
    else:
        chosen = [f for f in scores.index if method != "variance" or scores[f] > 0][:k]
    keep = set(chosen)
    table = pd.DataFrame({"rank": np.arange(1, len(scores) + 1), "feature": scores.index,
                          "score": scores.to_numpy(), "selected": [f in keep for f in scores.index]})
    selected = [c for c in X.columns if c in keep]
    report = Report(f"Selected {len(selected)} of {X.shape[1]} features by {method}",
                    summary={"method": method, "features": X.shape[1], "k": k,
                             "selected": len(selected),
                             "rows scored": min(len(X), max_rows)},
                    tables={"ranking": table},
                    data={"selected": selected, "method": method, "k": k,
                          "scores": {str(f): float(v) for f, v in scores.items()}})
    report.add_figure("scores", _plot(table, method))
    if k_note:
        report.messages.append(k_note)
    if len(selected) < k:
        why = ("constant features have zero variance" if method == "variance" else
               f"the others correlate above {threshold} with a kept feature")
        report.messages.append(f"Only {len(selected)} features kept, fewer than --k {k}: {why}.")
    if len(X) > max_rows:
        report.messages.append(f"Scores computed on a seeded sample of {max_rows} of {len(X)} rows.")
    return report


def _plot(table: Any, method: str) -> Any:
    from ..plotstyle import MUTED, PRIMARY, TICK_SIZE, label_axes, new_figure

    # the best 40, and enough beyond the cut (up to 60) that the first unselected ones show
    shown = min(len(table), max(40, min(int(table["selected"].sum()) + 8, 60)))
    top = table.head(shown).iloc[::-1]
    fig, ax = new_figure(7, max(2.5, 0.22 * len(top) + 1.2))
    colours = [PRIMARY if s else MUTED for s in top["selected"]]
    ax.barh(top["feature"].astype(str), top["score"], color=colours)
    ax.tick_params(axis="y", labelsize=TICK_SIZE - 1)
    ax.grid(axis="y", visible=False)
    label_axes(ax, f"Feature scores ({method}; blue = selected)"
               + (f", top {shown} of {len(table)}" if len(table) > shown else ""),
               f"{method} score", "feature", x_unit=_UNITS.get(method))
    return fig


_UNITS = {"mutual_info": "nats", "variance": "squared units", "correlation": "|r|"}
