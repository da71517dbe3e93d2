"""Group fairness on the sensitive features of the brief (core layer, fairlearn).

A fairlearn ``MetricFrame`` per sensitive feature with the metrics of the task, and the differences
between groups judged against ``omg.yaml`` ``fairness:`` thresholds:

- **binary**: count, selection rate, true and false positive rates and accuracy per group; the
  demographic parity difference and the equalized odds difference;
- **multi-class**: count, accuracy and balanced accuracy per group; demographic parity and equalized
  odds **one class against the rest**, and the worst class's value judged (each class's value in
  ``per_class``). A class is left out of equalized odds where a group holds fewer than
  ``MIN_CLASS_ROWS`` test rows of it (its rates would be noise);
- **regression**: count, MAE, RMSE, mean target and mean prediction per group; demographic parity and
  equalized odds are defined for classes, so what is judged is the spread of the primary metric
  between groups (``fairness.metric_difference``, in the metric's units) when the brief sets it;
  the spread of the mean prediction is reported beside it.

Every task also reports ``metric_difference``: the largest minus the smallest primary metric across
groups. A numeric sensitive feature with more than ``MAX_NUMERIC_GROUPS`` values (an age) is compared
in groups cut at its quartiles. Groups with fewer than ``min_group_size`` test rows are shown but left
out of the differences; the report says so, and an entry's ``not_computed`` says why a difference is
missing.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

MIN_GROUP_SIZE = 30
MIN_CLASS_ROWS = 5
MAX_NUMERIC_GROUPS = 10  # a numeric sensitive feature with more values is compared in quartiles
THRESHOLD_KEYS = ("demographic_parity_difference", "equalized_odds_difference", "metric_difference")


def _group_metrics(task: str, binary: bool) -> dict[str, Any]:
    import numpy as np
    from fairlearn.metrics import count, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, mean_absolute_error

    if binary:
        return {"count": count, "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate, "accuracy": accuracy_score}
    if task == "regression":
        return {"count": count, "mae": mean_absolute_error,
                "rmse": lambda t, p: float(np.sqrt(np.mean((np.asarray(t) - np.asarray(p)) ** 2))),
                "mean_target": lambda t, p: float(np.mean(t)),
                "mean_prediction": lambda t, p: float(np.mean(p))}
    return {"count": count, "accuracy": accuracy_score,
            "balanced_accuracy": lambda t, p: float(balanced_accuracy_score(t, p))}


def _groups(values: Any) -> tuple[Any, bool]:
    """Group labels of one sensitive feature (text; missing values are the group ``missing``), and
    whether a number with many values (an age, an income) was cut into quartile groups."""
    import numpy as np
    import pandas as pd

    binned = False
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > MAX_NUMERIC_GROUPS:
        edges = np.unique(np.nanquantile(values.astype(float), [0, 0.25, 0.5, 0.75, 1]))
        if len(edges) > 2:
            bins = pd.cut(values.astype(float), bins=edges, include_lowest=True)
            labels = {iv: f"{iv.left:.4g} to {iv.right:.4g}" for iv in bins.cat.categories}
            values, binned = bins.map(labels).astype(object), True
    return values.astype(object).where(values.notna(), "missing").astype(str), binned


def _one_vs_rest(y: Any, pred: Any, groups: Any, classes: list[str]) -> tuple[dict, list[str]]:
    """Demographic parity and equalized odds of each class against the rest (kept groups only)."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    per_class: dict[str, dict[str, float]] = {}
    thin = []
    members = [(groups == g).to_numpy() for g in groups.unique()]
    for k, name in enumerate(classes):
        truth, chosen = (y == k).astype(int), (pred == k).astype(int)
        entry = {"demographic_parity_difference": float(demographic_parity_difference(
            truth, chosen, sensitive_features=groups))}
        positives = [int(truth[m].sum()) for m in members]
        negatives = [int(m.sum()) - p for m, p in zip(members, positives, strict=True)]
        if min(positives) >= MIN_CLASS_ROWS and min(negatives) > 0:
            entry["equalized_odds_difference"] = float(equalized_odds_difference(
                truth, chosen, sensitive_features=groups))
        else:
            thin.append(name)
        per_class[name] = entry
    return per_class, thin


def fairness_report(y: Any, scores: Any, attributes: Any, *, task: str, metric: str,
                    thresholds: dict[str, float | None], classes: list[Any] | None = None,
                    min_group_size: int = MIN_GROUP_SIZE) -> dict[str, Any]:
    """Per-feature group tables and differences.

    Parameters
    ----------
    y, scores : array-like
        Encoded truth and model scores of the test rows.
    attributes : DataFrame
        One column per sensitive feature, aligned with `y`.
    thresholds : dict
        Any of ``THRESHOLD_KEYS`` (None: not judged).
    classes : list, optional
        Class labels by encoded position (multi-class: names the per-class differences).
    """
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
    )

    from ..metrics import score

    y = np.asarray(y)
    scores = np.asarray(scores)
    binary = task != "regression" and scores.ndim == 1
    multiclass = task != "regression" and not binary
    if task == "regression":
        pred = scores
    else:
        pred = (scores >= 0.5).astype(int) if binary else scores.argmax(axis=1)
    names = [str(c) for c in (classes or range(scores.shape[1] if multiclass else 2))]
    metrics = _group_metrics(task, binary)
    features: dict[str, Any] = {}
    tables = {}
    messages = []
    for col in attributes.columns:
        groups, binned = _groups(attributes[col])
        if binned:
            messages.append(f"{col}: {attributes[col].nunique()} distinct values, compared in "
                            f"{groups[groups != 'missing'].nunique()} groups cut at its quartiles.")
        sizes = groups.value_counts()
        kept = sizes[sizes >= min_group_size].index
        small = sorted(sizes[sizes < min_group_size].index)
        frame = MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=groups)
        by_group = frame.by_group.reset_index().rename(columns={"sensitive_feature_0": col})
        if metric not in by_group:
            by_group[metric] = [score(metric, y[(groups == g).to_numpy()],
                                      scores[(groups == g).to_numpy()], task)
                                if (groups == g).sum() > 1 else float("nan")
                                for g in by_group[col]]
        by_group["in differences"] = by_group[col].isin(kept)
        tables[col] = by_group
        mask = groups.isin(kept).to_numpy()
        entry: dict[str, Any] = {"groups": int(len(sizes)), "small_groups": small, "metric": metric,
                                 "by_group": by_group.to_dict(orient="records")}
        if small:
            messages.append(f"{col}: group(s) {', '.join(small)} have fewer than {min_group_size} "
                            "test rows and are left out of the differences.")
        if len(kept) < 2:
            entry["not_computed"] = f"fewer than two groups with {min_group_size}+ test rows"
            messages.append(f"{col}: {entry['not_computed']}; differences not computed.")
        else:
            values = by_group.loc[by_group["in differences"], metric].astype(float)
            entry["metric_difference"] = float(values.max() - values.min())
            if binary:
                entry["demographic_parity_difference"] = float(demographic_parity_difference(
                    y[mask], pred[mask], sensitive_features=groups[mask]))
                entry["equalized_odds_difference"] = float(equalized_odds_difference(
                    y[mask], pred[mask], sensitive_features=groups[mask]))
            elif multiclass:
                per_class, thin = _one_vs_rest(y[mask], pred[mask], groups[mask].reset_index(
                    drop=True), names)
                entry["per_class"] = per_class
                for key in ("demographic_parity_difference", "equalized_odds_difference"):
                    judged = {c: v[key] for c, v in per_class.items() if key in v}
                    if judged:
                        worst = max(judged, key=judged.get)
                        entry[key] = judged[worst]
                        entry[f"{key}_class"] = worst
                if thin:
                    messages.append(f"{col}: class(es) {', '.join(thin)} have fewer than "
                                    f"{MIN_CLASS_ROWS} test rows in some group and are left out of "
                                    "equalized odds.")
            else:
                means = by_group.loc[by_group["in differences"], "mean_prediction"].astype(float)
                entry["mean_prediction_difference"] = float(means.max() - means.min())
                entry["not_computed"] = ("demographic parity and equalized odds are defined for "
                                         "classes, not for a regression")
        checks = []
        for key, limit in thresholds.items():
            if limit is None or key not in entry:
                continue
            checks.append({"feature": col, "criterion": key, "value": entry[key],
                           "threshold": float(limit), "status": "pass" if entry[key] <= limit
                           else "fail"})
        entry["checks"] = checks
        features[col] = entry
    checks = [c for e in features.values() for c in e["checks"]]
    if multiclass:
        messages.append("Multi-class: demographic parity and equalized odds are taken one class "
                        "against the rest; the worst class's value is judged.")
    elif task == "regression":
        messages.append(f"Regression: the groups are compared on {metric} and on the mean "
                        "prediction; fairness.metric_difference in omg.yaml sets the largest "
                        f"spread of {metric} accepted between groups.")
    summary = pd.DataFrame(checks) if checks else pd.DataFrame(
        [{"feature": f, **{k: v for k, v in e.items() if k.endswith("difference")}}
         for f, e in features.items()])
    return {"features": features, "checks": checks, "tables": tables, "summary": summary,
            "thresholds": thresholds, "min_group_size": min_group_size, "messages": messages,
            "passed": all(c["status"] == "pass" for c in checks)}


def require_sensitive(project: Any) -> list[str]:
    cols = project.sensitive_features
    if not cols:
        raise ConfigError("--fairness needs sensitive features: list them in omg.yaml under "
                        "brief.sensitive_features (e.g. [sex, race]).")
    return cols
