"""Risks of a project, derived from the data, the audit and the prototype (core layer).

Each risk is a dict ``{risk, severity, evidence, mitigation, blocking}``; ``blocking`` risks stop the
feasibility recommendation. The drift check splits the rows at the median of the brief's time column
and compares the halves with the population stability index (PSI).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .brief import Brief, as_time
from .checks import RULES
from .tables import codes_for, feature_columns, sample_values

PSI_MEDIUM, PSI_HIGH = 0.1, 0.25  # the usual reading of the population stability index


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = np.maximum(expected / max(expected.sum(), 1), eps)
    q = np.maximum(actual / max(actual.sum(), 1), eps)
    return float(((q - p) * np.log(q / p)).sum())


def _psi_column(first: pd.Series, second: pd.Series) -> float:
    both = pd.concat([first, second], ignore_index=True)
    if pd.api.types.is_numeric_dtype(both) and not pd.api.types.is_bool_dtype(both) \
            and both.nunique() > 20:
        a = first.to_numpy(dtype="float64", na_value=np.nan)
        finite = a[np.isfinite(a)]
        if len(finite) == 0:
            return 0.0
        edges = np.unique(np.quantile(sample_values(finite), np.linspace(0, 1, 11)[1:-1]))

        def hist(v: np.ndarray) -> np.ndarray:
            codes = np.searchsorted(edges, v, side="right")
            codes[~np.isfinite(v)] = len(edges) + 1
            return np.bincount(codes, minlength=len(edges) + 2).astype(float)

        return psi(hist(a), hist(second.to_numpy(dtype="float64", na_value=np.nan)))
    codes, n = codes_for(both, top=20)
    return psi(np.bincount(codes[: len(first)], minlength=n).astype(float),
               np.bincount(codes[len(first):], minlength=n).astype(float))


def time_drift(df: pd.DataFrame, brief: Brief) -> dict[str, Any] | None:
    """PSI per feature (and for the target) between the first and second half in time."""
    t = as_time(df[brief.time_column])
    valid = t.notna().to_numpy()
    if valid.sum() < 20:
        return None
    order = np.argsort(t[valid].to_numpy(), kind="stable")
    rows = df[valid].iloc[order]
    half = len(rows) // 2
    first, second = rows.iloc[:half], rows.iloc[half:]
    split_at = t[valid].iloc[order].iloc[half]
    per_feature = {c: _psi_column(first[c], second[c]) for c in feature_columns(df, brief)}
    target = _psi_column(first[brief.target].dropna(), second[brief.target].dropna())
    return {"split_at": str(split_at), "psi": dict(sorted(per_feature.items(), key=lambda kv: -kv[1])),
            "target_psi": target}


def _risk(risk: str, severity: str, evidence: str, mitigation: str, blocking: bool = False
          ) -> dict[str, Any]:
    return {"risk": risk, "severity": severity, "evidence": evidence, "mitigation": mitigation,
            "blocking": blocking}


def derive_risks(df: pd.DataFrame, brief: Brief, facts: dict[str, Any], items: dict[str, Any],
                 scores: pd.DataFrame, leaks: list[str], cvres: dict[str, Any],
                 estimated: dict[str, Any], serving: dict[str, Any]
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """Risks from the data and the prototype, and notes on what could not be assessed."""
    risks, notes = [], []
    y = df[brief.target]
    m = brief.metric_info
    # Leakage.
    if leaks:
        top = scores.set_index("feature")["score"]
        risks.append(_risk(
            "Target leakage", "high",
            "one feature alone predicts the target almost perfectly: " +
            ", ".join(f"{c} (score {top[c]:.3f})" for c in leaks) + ". The prototype left them out",
            "Confirm each is known at prediction time; otherwise list it in data.exclude_columns "
            "(or drop it at the source) and re-run phase 1", blocking=True))
    # Class imbalance.
    if brief.task == "classification":
        counts = y.value_counts()
        ratio = float(counts.iloc[0] / counts.iloc[-1])
        if ratio > 3:
            sev = "high" if ratio > 50 else "medium" if ratio > RULES["imbalance_warn"] else "low"
            risks.append(_risk(
                "Class imbalance", sev,
                f"largest class '{counts.index[0]}' outnumbers the rarest '{counts.index[-1]}' "
                f"{ratio:.1f} to 1 ({counts.iloc[-1] / counts.sum():.1%} of labeled rows)",
                "Stratified splits; class weights or SMOTE on the training split only (phase 2 "
                "`augment`); tune the decision threshold; report PR AUC and recall per class"))
    # Small data.
    labeled = int(y.notna().sum())
    n_feat = len(feature_columns(df, brief))
    rarest = int(y.value_counts().iloc[-1]) if brief.task == "classification" else labeled
    per_feature = rarest / max(n_feat, 1)
    if labeled < RULES["min_rows_warn"] or per_feature < RULES["events_per_feature"]:
        sev = "high" if labeled < RULES["min_rows_fail"] else "medium"
        what = "rows of the rarest class" if brief.task == "classification" else "labeled rows"
        risks.append(_risk(
            "Small data", sev,
            f"{labeled:,} labeled rows; {per_feature:.1f} {what} per feature (rule of thumb: "
            f"{RULES['events_per_feature']:.0f}; at least {RULES['min_rows_warn']:,.0f} rows)",
            "Regularized, simple models; repeated cross-validation instead of one split; fewer "
            "features (phase 2 `select`); collect or label more rows"))
    # Missing labels.
    missing = int(y.isna().sum())
    if missing:
        share = missing / len(y)
        risks.append(_risk(
            "Missing labels", "medium" if share > 0.2 else "low",
            f"{missing:,} rows ({share:.1%}) have no '{brief.target}' value",
            "Label them with labeling functions (phase 2 `label --strategy weak_supervision`) or "
            "leave them out; check that unlabeled rows are not a biased subset"))
    # Drift over time.
    if brief.time_column:
        drift = time_drift(df, brief)
        if drift is None:
            notes.append(f"Drift: too few rows with a value in '{brief.time_column}' to compare halves.")
        else:
            worst = [(c, v) for c, v in drift["psi"].items() if v >= PSI_MEDIUM]
            if worst or drift["target_psi"] >= PSI_MEDIUM:
                top = max([v for _, v in worst] + [drift["target_psi"]])
                parts = ", ".join(f"{c} {v:.2f}" for c, v in worst[:5])
                risks.append(_risk(
                    "Drift over time", "high" if top >= PSI_HIGH else "medium",
                    f"PSI between the halves before and after {drift['split_at']} of "
                    f"'{brief.time_column}': " + (parts or "features stable") +
                    f"; target PSI {drift['target_psi']:.2f} (0.1 moderate, 0.25 large shift)",
                    "Split by time (phase 2 `split --time`) so validation sees the future; monitor "
                    "drift in production (phase 5) and retrain on recent data"))
            else:
                notes.append(f"Drift: no feature moved between the halves of '{brief.time_column}' "
                             f"(largest PSI {max(drift['psi'].values(), default=0):.3f}).")
    else:
        notes.append("Drift: no time column in the brief (brief.time_column), so drift between "
                     "periods was not assessed.")
    # Data quality from the audit.
    dup = items.get("quality.duplicates")
    if dup is not None and dup.status != "pass":
        risks.append(_risk("Duplicate rows", "high" if dup.status == "fail" else "medium", dup.evidence,
                           "Drop duplicates before splitting (phase 2), or group them into one split"))
    pii = items.get("privacy.personal_data")
    if pii is not None and pii.status != "pass":
        risks.append(_risk(
            "Personal data", "high" if pii.status == "fail" else "medium", pii.evidence,
            "Drop or pseudonymize direct identifiers before modelling; keep ids for joins only; "
            "record the legal basis and retention (DPIA where required)"))
    if brief.sensitive:
        sens = items.get("privacy.sensitive")
        risks.append(_risk(
            "Unfair outcomes across groups", "medium",
            f"sensitive attributes {', '.join(brief.sensitive)}" + (f": {sens.evidence}" if sens else ""),
            "Fairness metrics per group in phase 3 (`evaluate --fairness`) against the fairness "
            "thresholds of omg.yaml; mitigate by reweighting or per-group thresholds"))
    # The prototype.
    if brief.threshold is not None:
        t = float(brief.threshold)
        better = (lambda a, b: a >= b) if m.greater_is_better else (lambda a, b: a <= b)
        optimistic = estimated["high"] if m.greater_is_better else estimated["low"]
        if not better(optimistic, t):
            risks.append(_risk(
                "Success threshold out of reach", "high",
                f"the prototype's {m.name} range {estimated['low']:.4f}-{estimated['high']:.4f} does "
                f"not reach the threshold {t:g}",
                "Revisit the threshold with the stakeholders, find stronger features or more data "
                "before investing in phase 2", blocking=True))
        elif not better(estimated["mean"], t):
            risks.append(_risk(
                "Success threshold only at the optimistic end", "medium",
                f"mean {m.name} {estimated['mean']:.4f} misses {t:g}; the range reaches it",
                "Feature engineering (phase 2) and tuning (phase 3); agree a fallback threshold"))
    d, md = cvres["dummy"], cvres["model"]
    spread = np.hypot(d["std"], md["std"])
    gain = (md["mean"] - d["mean"]) * (1 if m.greater_is_better else -1)
    if gain <= max(2 * spread, 1e-9):
        risks.append(_risk(
            "No signal over the baseline", "high",
            f"HistGradientBoosting {m.name} {md['mean']:.4f} vs dummy {d['mean']:.4f} "
            f"(difference within 2 x the fold spread {spread:.4f})",
            "Check the target definition and the features with domain experts; gather predictive "
            "features before building", blocking=True))
    # Bounded metrics (AUC, accuracy ...) in absolute units, unbounded ones (RMSE ...) relative.
    unstable = md["std"] > 0.05 if m.high <= 1 else md["std"] > 0.1 * max(abs(md["mean"]), 1e-9)
    if unstable:
        risks.append(_risk(
            "Unstable estimate", "medium",
            f"{m.name} varies across folds (std {md['std']:.4f})",
            "More data or repeated cross-validation; report confidence intervals in phase 3"))
    # Serving constraints of the brief against the prototype.
    for key, got, label in (("latency_p99_ms", serving["latency_p99_ms"], "single-row latency p99"),
                            ("model_size_mb", serving["model_size_mb"], "model size")):
        limit = brief.constraints.get(key)
        if limit is None:
            continue
        unit = "ms" if key.endswith("_ms") else "MB"
        if got > limit:
            risks.append(_risk(
                f"Constraint {key}", "medium",
                f"the prototype's {label} is {got:g} {unit}, above the brief's {limit:g} {unit} "
                f"({serving['measured']})",
                "Smaller models, quantization or ONNX export (phase 4); batch requests"))
        elif got > 0.5 * limit:
            risks.append(_risk(
                f"Constraint {key}", "low",
                f"the prototype's {label} is {got:g} {unit}, over half the brief's {limit:g} {unit}",
                "Profile the final model early (phase 4 `profile`)"))
    return risks, notes
