"""A quick model that judges a phase 2 transformation (core layer).

A transformation that changes what phase 3 trains on (feature selection; the training rows that
augmentation and weak labels add) is kept only when it helps: the same quick model (early-stopped gradient-boosted trees with the library's defaults, on
both cores for a large table) is fitted on the training split with and without it and scored on
the validation split with the brief's primary metric. The figures go into the report, so a reader
sees why a step was used or "tried, not used".
"""

from __future__ import annotations

from typing import Any

QUICK_TREES = 300
QUICK_PATIENCE = 30
QUICK_MAX_ROWS = 100_000  # a seeded sample of a larger training split judges the step
SMALL_CELLS = 2_000_000  # below, one thread is faster (OpenMP start-up and contention cost more)


def _encode(y: Any, positive_label: Any) -> tuple[Any, list[str]]:
    """Class indices by the classes' text (binary: the brief's positive class is 1)."""
    import numpy as np
    import pandas as pd

    text = pd.Series(y).astype(str)
    classes = sorted(text.unique())
    if len(classes) == 2 and positive_label is not None and str(positive_label) in classes:
        classes = [c for c in classes if c != str(positive_label)] + [str(positive_label)]
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray(text.map(index), dtype=np.int64), classes


def quick_score(train: Any, val: Any, target: str, features: list[str], *, task: str, metric: str,
                positive_label: Any = None, seed: int = 42) -> float:
    """The validation `metric` of the quick model fitted on `features` of the training split."""
    import numpy as np
    import xgboost as xgb

    from ..metrics import score

    Xtr = train[features].to_numpy(dtype=np.float64)
    Xva = val[features].to_numpy(dtype=np.float64)
    params = {"n_estimators": QUICK_TREES, "learning_rate": 0.1, "max_depth": 6,
              "tree_method": "hist", "early_stopping_rounds": QUICK_PATIENCE, "random_state": seed,
              "n_jobs": 1 if Xtr.size < SMALL_CELLS else 2}
    if task == "regression":
        ytr, yva = train[target].to_numpy(dtype=np.float64), val[target].to_numpy(dtype=np.float64)
        model = xgb.XGBRegressor(**params).fit(Xtr, ytr, eval_set=[(Xva, yva)], verbose=False)
        return float(score(metric, yva, model.predict(Xva), task))
    ytr, classes = _encode(train[target], positive_label)
    index = {c: i for i, c in enumerate(classes)}
    text = val[target].astype(str)
    seen = text.isin(index).to_numpy()  # a class the training split lacks cannot be scored
    yva = np.asarray(text[seen].map(index), dtype=np.int64)
    model = xgb.XGBClassifier(**params).fit(Xtr, ytr, eval_set=[(Xva[seen], yva)], verbose=False)
    proba = model.predict_proba(Xva[seen])
    return float(score(metric, yva, proba[:, 1] if len(classes) == 2 else proba, task))


def compare_selection(train: Any, val: Any, target: str, all_features: list[str],
                      selected: list[str], *, task: str, metric: str, greater_is_better: bool,
                      positive_label: Any = None, seed: int = 42) -> dict[str, Any]:
    """The quick model's validation `metric` with every feature and with the selected ones, and
    whether the selection is used (only when it scores strictly better)."""
    if len(train) > QUICK_MAX_ROWS:
        train = train.sample(n=QUICK_MAX_ROWS, random_state=seed)
    with_all = quick_score(train, val, target, all_features, task=task, metric=metric,
                           positive_label=positive_label, seed=seed)
    with_sel = quick_score(train, val, target, selected, task=task, metric=metric,
                           positive_label=positive_label, seed=seed)
    better = _better(with_sel, with_all, greater_is_better)
    return {"metric": metric, "all_features": len(all_features), "selected_features": len(selected),
            "score_all": with_all, "score_selected": with_sel, "used": bool(better),
            "model": f"xgboost, up to {QUICK_TREES} trees early-stopped on the validation split",
            "rows": len(train)}


def _better(a: float, b: float, greater_is_better: bool) -> bool:
    return a > b if greater_is_better else a < b


def compare_rows(train: Any, val: Any, target: str, features: list[str],
                 variants: list[tuple[str, Any]], *, task: str, metric: str,
                 greater_is_better: bool, positive_label: Any = None,
                 seed: int = 42) -> dict[str, Any]:
    """The quick model's validation `metric` on each variant of the training rows.

    `variants` are ``(label, boolean mask over the rows of train)``, the plainest first (the rows a
    human labelled, then with weak labels, then with synthetic rows). A variant is chosen over a
    plainer one only when it scores strictly better; ``chosen`` is its index.
    """
    import numpy as np

    rows: list[dict[str, Any]] = []
    chosen = 0
    for i, (label, mask) in enumerate(variants):
        part = train[np.asarray(mask, dtype=bool)]
        n = len(part)
        if n > QUICK_MAX_ROWS:
            part = part.sample(n=QUICK_MAX_ROWS, random_state=seed)
        value = quick_score(part, val, target, features, task=task, metric=metric,
                            positive_label=positive_label, seed=seed)
        rows.append({"training rows": label, "rows": n, "score": value})
        if i and _better(value, rows[chosen]["score"], greater_is_better):
            chosen = i
    return {"metric": metric, "variants": rows, "chosen": chosen,
            "model": f"xgboost, up to {QUICK_TREES} trees early-stopped on the validation split"}
