"""Group fairness on the sensitive features of the brief (core layer, fairlearn).

For a binary classifier: a fairlearn ``MetricFrame`` per sensitive feature (count, selection rate, true
and false positive rates, accuracy per group), the demographic parity difference and the equalized odds
difference, each judged against ``omg.yaml`` ``fairness:`` thresholds. Groups with fewer than
``min_group_size`` test rows are shown but left out of the differences (their rates are noise); the
report says so. Regressors and multi-class classifiers get the per-group metric and its spread.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

MIN_GROUP_SIZE = 30


def fairness_report(y: Any, scores: Any, attributes: Any, *, task: str, metric: str,
                    thresholds: dict[str, float | None],
                    min_group_size: int = MIN_GROUP_SIZE) -> dict[str, Any]:
    """Per-feature group tables and differences.

    Parameters
    ----------
    y, scores : array-like
        Encoded truth and model scores of the test rows.
    attributes : DataFrame
        One column per sensitive feature, aligned with `y`.
    thresholds : dict
        ``demographic_parity_difference`` / ``equalized_odds_difference`` (None: not judged).
    """
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, mean_absolute_error

    from ..metrics import score

    y = np.asarray(y)
    scores = np.asarray(scores)
    binary = task != "regression" and scores.ndim == 1
    if task == "regression":
        pred = scores
    else:
        pred = (scores >= 0.5).astype(int) if binary else scores.argmax(axis=1)
    features: dict[str, Any] = {}
    tables = {}
    messages = []
    for col in attributes.columns:
        groups = attributes[col].astype(object).where(attributes[col].notna(), "missing").astype(str)
        sizes = groups.value_counts()
        kept = sizes[sizes >= min_group_size].index
        small = sorted(sizes[sizes < min_group_size].index)
        if binary:
            metrics = {"count": count, "selection_rate": selection_rate,
                       "true_positive_rate": true_positive_rate,
                       "false_positive_rate": false_positive_rate, "accuracy": accuracy_score}
        elif task == "regression":
            metrics = {"count": count, "mae": mean_absolute_error}
        else:
            metrics = {"count": count, "accuracy": accuracy_score}
        frame = MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=groups)
        by_group = frame.by_group.reset_index().rename(columns={"sensitive_feature_0": col})
        by_group[metric] = [score(metric, y[(groups == g).to_numpy()], scores[(groups == g).to_numpy()],
                                  task) if (groups == g).sum() > 1 else float("nan")
                            for g in by_group[col]]
        by_group["in differences"] = by_group[col].isin(kept)
        tables[col] = by_group
        mask = groups.isin(kept).to_numpy()
        entry: dict[str, Any] = {"groups": int(len(sizes)), "small_groups": small,
                                 "by_group": by_group.to_dict(orient="records")}
        if small:
            messages.append(f"{col}: group(s) {', '.join(small)} have fewer than {min_group_size} "
                            "test rows and are left out of the differences.")
        if len(kept) < 2:
            messages.append(f"{col}: fewer than two groups with {min_group_size}+ test rows; "
                            "differences not computed.")
        elif binary:
            dpd = float(demographic_parity_difference(y[mask], pred[mask],
                                                      sensitive_features=groups[mask]))
            eod = float(equalized_odds_difference(y[mask], pred[mask],
                                                  sensitive_features=groups[mask]))
            entry["demographic_parity_difference"] = dpd
            entry["equalized_odds_difference"] = eod
        else:
            values = by_group.loc[by_group["in differences"], metric].astype(float)
            entry[f"{metric}_difference"] = float(values.max() - values.min())
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
    if not binary:
        messages.append("Demographic parity and equalized odds are defined for binary "
                        "classification; this report shows per-group metrics and their spread.")
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
