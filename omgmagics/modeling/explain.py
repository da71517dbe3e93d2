"""SHAP explanations (core layer).

Tree models (XGBoost, LightGBM, scikit-learn trees and forests) use ``shap.TreeExplainer`` (exact and
fast); any other model a model-agnostic permutation explainer over a small background sample of the
training split. Global importance is the mean absolute SHAP value per feature; local explanations
are the largest contributions for a few test rows (highest, median and lowest score). A multi-class
model is explained per class as well: the mean absolute SHAP value of each feature on each class's
score (``per_class``), drawn as stacked bars, so a feature that only separates one class shows.
"""

from __future__ import annotations

from typing import Any


def shap_values(model: Any, data: Any, *, rows: int = 200, background: int = 50,
                seed: int = 0) -> dict[str, Any]:
    """SHAP values of up to `rows` test rows.

    Returns
    -------
    dict
        ``explainer`` (name), ``values`` ((n, p) array; for multi-class the mean absolute over
        classes), ``per_class`` ((n, p, k) array for a multi-class model, else None), ``X`` (the
        explained rows), ``idx`` (their positions in the test split).
    """
    import warnings

    import numpy as np
    import shap

    rng = np.random.default_rng(seed)
    X = data.X["test"]
    idx = np.sort(rng.choice(len(X), size=min(rows, len(X)), replace=False))
    Xs = X[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model.family_impl.is_tree(model):
            explainer = shap.TreeExplainer(model.estimator)
            values = explainer.shap_values(Xs)
            name = "TreeExplainer"
        else:
            Xtr = data.X["train"]
            bg = Xtr[rng.choice(len(Xtr), size=min(background, len(Xtr)), replace=False)]
            p = Xs.shape[1]

            def f(A: Any) -> Any:
                return model.predict_scores(A)

            explainer = shap.explainers.Permutation(f, shap.maskers.Independent(bg,
                                                                                max_samples=len(bg)))
            values = explainer(Xs, max_evals=max(2 * p + 1, 200), silent=True).values
            name = f"PermutationExplainer (background {len(bg)} rows)"
    values = np.asarray(values[1] if isinstance(values, list) and len(values) == 2 else values)
    per_class = None
    if values.ndim == 3:
        arr = values if values.shape[0] == len(Xs) else np.moveaxis(values, 0, -1)  # -> (n, p, k)
        if arr.shape[2] == 2:
            values = arr[:, :, 1]
        else:
            per_class = arr
            values = np.abs(arr).mean(axis=2)
    return {"explainer": name, "values": values, "per_class": per_class, "X": Xs, "idx": idx}


def shap_summary(model: Any, data: Any, *, rows: int = 200, seed: int = 0,
                 n_local: int = 3, top: int = 5) -> dict[str, Any]:
    """Global importance, local explanations and their figure."""
    import numpy as np
    import pandas as pd

    from . import plots

    sv = shap_values(model, data, rows=rows, seed=seed)
    values = sv["values"]
    names = data.feature_names
    importance = dict(sorted(zip(names, np.abs(values).mean(axis=0).tolist(), strict=True),
                             key=lambda kv: kv[1], reverse=True))
    scores = model.predict_scores(sv["X"])
    s1 = scores if scores.ndim == 1 else scores.max(axis=1)
    order = np.argsort(s1)
    picks = sorted({int(order[-1]), int(order[len(order) // 2]), int(order[0])})[:n_local]
    local = []
    for i in picks:
        contrib = sorted(zip(names, values[i], sv["X"][i], strict=True), key=lambda t: abs(t[1]),
                         reverse=True)[:top]
        row_id = data.ids["test"][sv["idx"][i]]
        for feat, shap_value, value in contrib:
            local.append({"row_id": row_id, "score": float(s1[i]), "feature": feat,
                          "value": float(value), "shap": float(shap_value)})
    explainer = sv["explainer"].split(" ")[0]
    out: dict[str, Any] = {"explainer": sv["explainer"], "rows": len(sv["X"]), "global": importance,
                           "local": pd.DataFrame(local)}
    if sv["per_class"] is not None:
        classes = [str(c) for c in (data.classes or range(sv["per_class"].shape[2]))]
        by_class = np.abs(sv["per_class"]).mean(axis=0)  # (p, k)
        out["per_class"] = {c: dict(zip(names, by_class[:, i].tolist(), strict=True))
                            for i, c in enumerate(classes)}
        fig = plots.shap_classes(by_class, names, classes,
                                 f"Global importance per class: mean |SHAP| ({explainer})")
    else:
        fig = plots.barh(list(importance), list(importance.values()),
                         f"Global importance: mean |SHAP| ({explainer})", "mean |SHAP value|")
    out["figure"] = plots.to_png(fig)
    xlabel = ("mean |SHAP value| over the classes" if sv["per_class"] is not None
              else "SHAP value (impact on the model output)")
    out["summary_figure"] = plots.to_png(plots.shap_beeswarm(values, sv["X"], names, xlabel=xlabel))
    return out
