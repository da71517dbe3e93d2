"""Robustness checks (core layer): the primary metric on the test split under perturbation.

Four degradation curves, each seeded:

- **noise**: Gaussian noise of ``level x std`` (training std) on the continuous features;
- **missing**: a share of cells set missing (a model that cannot take missing values gets the
  training means, as a serving fallback would);
- **categories**: a share of the values of categorical-like columns (at most 10 distinct values in
  training, e.g. one-hot indicators) replaced by draws from the column's training values;
- **shift**: a covariate shift: the test rows resampled with weights ``exp(level x z)`` of the
  standardised most important feature, so the inputs move while ``P(y | x)`` stays the same.

A curve point whose metric is worse than the unperturbed one by more than ``tolerance`` is a
limitation; the model card lists them.
"""

from __future__ import annotations

from typing import Any

LEVELS = {
    "noise": [0.0, 0.1, 0.25, 0.5, 1.0],
    "missing": [0.0, 0.05, 0.1, 0.2, 0.4],
    "categories": [0.0, 0.05, 0.1, 0.2, 0.4],
    "shift": [0.0, 0.5, 1.0, 2.0],
}
WHAT = {
    "noise": "Gaussian noise of {level} std on continuous features",
    "missing": "{pct} of values missing",
    "categories": "{pct} of categorical values perturbed",
    "shift": "a covariate shift on '{feature}' (weight exp({level} z))",
}


def _predict(model: Any, X: Any, fill: Any) -> tuple[Any, bool]:
    """Scores for `X`; missing values filled with `fill` if the model cannot take them."""
    import numpy as np

    if np.isnan(X).any():
        try:
            s = model.predict_scores(X)
            if not np.isnan(s).any():
                return s, False
        except (ValueError, TypeError):
            pass
        X = np.where(np.isnan(X), fill, X)
        return model.predict_scores(X), True
    return model.predict_scores(X), False


def column_kinds(X_train: Any, max_categories: int = 10) -> tuple[list[int], list[int]]:
    """Indices of continuous and of categorical-like columns."""
    import numpy as np

    cont, cat = [], []
    for j in range(X_train.shape[1]):
        col = X_train[:, j]
        (cat if len(np.unique(col[~np.isnan(col)])) <= max_categories else cont).append(j)
    return cont, cat


def robustness_curves(model: Any, data: Any, metric: str, *, seed: int = 0,
                      shift_feature: str | None = None, tolerance: float = 0.02) -> dict[str, Any]:
    """Degradation curves and the limitations they reveal.

    Returns
    -------
    dict
        ``curves`` ({name: [(level, value), ...]}), ``baseline`` (unperturbed value),
        ``limitations`` (sentences), ``imputed`` (whether missing values had to be filled),
        ``shift_feature``.
    """
    import numpy as np

    from ..metrics import get_metric, score

    rng = np.random.default_rng(seed)
    Xtr, X, y = data.X["train"], data.X["test"], data.y["test"]
    fill = np.nanmean(Xtr, axis=0)
    std = np.nanstd(Xtr, axis=0)
    cont, cat = column_kinds(Xtr)
    higher = get_metric(metric).greater_is_better
    base = score(metric, y, model.predict_scores(X), data.task)
    curves: dict[str, list[tuple[float, float]]] = {}
    imputed = False

    curves["noise"] = []
    for level in LEVELS["noise"]:
        Xp = X.copy()
        if cont and level:
            Xp[:, cont] += rng.normal(size=(len(X), len(cont))) * (level * std[cont])
        curves["noise"].append((level, score(metric, y, model.predict_scores(Xp), data.task)))

    curves["missing"] = []
    for level in LEVELS["missing"]:
        Xp = X.copy()
        Xp[rng.random(X.shape) < level] = np.nan
        s, filled = _predict(model, Xp, fill)
        imputed = imputed or filled
        curves["missing"].append((level, score(metric, y, s, data.task)))

    if cat:
        curves["categories"] = []
        for level in LEVELS["categories"]:
            Xp = X.copy()
            for j in cat:
                hit = rng.random(len(X)) < level
                Xp[hit, j] = rng.choice(Xtr[:, j], size=int(hit.sum()))
            curves["categories"].append((level, score(metric, y, model.predict_scores(Xp),
                                                      data.task)))

    names = data.feature_names
    if shift_feature not in names or names.index(shift_feature) not in cont:
        shift_feature = names[cont[0]] if cont else None
    if shift_feature is not None:
        j = names.index(shift_feature)
        z = (X[:, j] - np.nanmean(Xtr[:, j])) / (std[j] or 1.0)
        curves["shift"] = []
        for level in LEVELS["shift"]:
            w = np.exp(np.clip(level * z, -20, 20))
            idx = rng.choice(len(X), size=len(X), replace=True, p=w / w.sum()) if level else \
                np.arange(len(X))
            curves["shift"].append((level, score(metric, y[idx], model.predict_scores(X[idx]),
                                                 data.task)))

    limitations = []
    for name, points in curves.items():
        for level, value in points:
            drop = (base - value) if higher else (value - base)
            if level and drop > tolerance:
                what = WHAT[name].format(level=level, pct=f"{level:.0%}", feature=shift_feature)
                limitations.append(f"{metric} falls from {base:.4f} to {value:.4f} with {what}.")
                break
    return {"metric": metric, "baseline": base, "curves": curves, "limitations": limitations,
            "imputed": imputed, "shift_feature": shift_feature, "tolerance": tolerance,
            "continuous_columns": len(cont), "categorical_columns": len(cat)}
