"""The data audit checklist, part 2 (core layer): volume, labels, and :func:`run_checklist`.

:func:`run_checklist` runs every item in section order: sources and quality (:mod:`.checks`),
volume and labels (here), privacy (:mod:`.privacy`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .checks import (
    RULES,
    Facts,
    Item,
    _list,
    _pct,
    check_constant,
    check_duplicates,
    check_missing,
    check_mixed_types,
    check_outliers,
    check_sources,
    column_facts,
    leak_limit,
)
from .privacy import check_personal_data, check_sensitive
from .tables import single_feature_scores

# --- volume --------------------------------------------------------------------------------------

def check_volume(facts: Facts, labeled: int, class_counts: pd.Series | None) -> list[Item]:
    nf = len(facts.features)
    per_feature = labeled / nf
    rule = (f"at least {RULES['min_rows_warn']:,.0f} labeled rows (fail below {RULES['min_rows_fail']:.0f}) "
            f"and {RULES['rows_per_feature']:.0f} labeled rows per feature (the one-in-ten rule of thumb)")
    status = "pass"
    if labeled < RULES["min_rows_warn"] or per_feature < RULES["rows_per_feature"]:
        status = "warn"
    if labeled < RULES["min_rows_fail"]:
        status = "fail"
    evidence = f"{labeled:,} labeled rows for {nf} feature(s): {per_feature:,.1f} rows per feature"
    if status != "pass":
        evidence += (". Small data: expect wide confidence intervals; prefer simple, regularized models "
                     "and cross-validation, or collect more rows")
    items = [Item("volume.rows", "volume", "Volume sufficient: rows per feature", status, evidence, rule)]
    if class_counts is None:
        return items
    rarest, m = str(class_counts.index[-1]), int(class_counts.iloc[-1])
    epv = m / nf
    rule = (f"the rarest class has {RULES['events_per_feature']:.0f} rows per feature (events per variable, "
            f"Peduzzi et al. 1996); fail below {RULES['min_class_rows']:.0f} rows in any class")
    status = "pass" if epv >= RULES["events_per_feature"] else "warn"
    if m < RULES["min_class_rows"]:
        status = "fail"
    each = _list([(str(k), f"{int(v):,}") for k, v in class_counts.items()], limit=6)
    evidence = f"rarest class '{rarest}': {m:,} rows = {epv:,.1f} per feature; classes: {each}"
    if status == "fail":
        evidence += ". Too few to cross-validate and hold out a test set: collect or label more rows of it"
    elif status == "warn":
        evidence += ". Use class weights or SMOTE (phase 2 `augment`) and fewer features"
    items.append(Item("volume.per_class", "volume", "Volume sufficient: rows per class", status,
                      evidence, rule))
    return items


# --- labels --------------------------------------------------------------------------------------

def check_labels(df: pd.DataFrame, brief: Any, facts: Facts, target_facts: dict[str, Any],
                 exact: dict[str, Any] | None = None) -> tuple[list[Item], pd.DataFrame]:
    """The label items; `exact` (a table read in batches, `df` its sample): the target's exact
    ``missing`` count and ``counts`` (classification)."""
    target = brief.target
    y = df[target]
    n_missing = int(y.isna().sum()) if exact is None else int(exact["missing"])
    items = []
    desc = f"'{target}' ({y.dtype})"
    if brief.task == "classification":
        desc += f": {target_facts['n_classes']} classes"
        if "positive" in target_facts:
            desc += f", positive class {target_facts['positive']!r}"
    else:
        desc += f": numeric, mean {target_facts['target_mean']:.4g}, std {target_facts['target_std']:.4g}"
    items.append(Item("labels.target", "labels", "Labels available: target present", "pass", desc,
                      "the target named in brief.objective.target is a column with labels"))
    share = n_missing / facts.n
    rule = "warn when any row has no label (it cannot be used for supervised training as is)"
    if n_missing:
        evidence = (f"{n_missing:,} rows ({_pct(share)}) have no '{target}' value. Label them in phase 2 "
                    "(`data label`) or leave them out of training")
        items.append(Item("labels.missing", "labels", "Labels available: missing labels", "warn",
                          evidence, rule))
    else:
        items.append(Item("labels.missing", "labels", "Labels available: missing labels", "pass",
                          "every row is labeled", rule))
    if brief.task == "classification":
        counts = y.value_counts() if exact is None else exact["counts"]
        ratio = float(counts.iloc[0] / counts.iloc[-1])
        rule = f"warn when the largest class outnumbers the smallest more than {RULES['imbalance_warn']:g} to 1"
        shares = _list([(str(k), _pct(v / counts.sum())) for k, v in counts.items()], limit=6)
        status = "warn" if ratio > RULES["imbalance_warn"] else "pass"
        evidence = f"imbalance {ratio:.1f}:1; {shares}"
        if status == "warn":
            evidence += (". Stratify splits, use class weights or SMOTE, and judge by PR AUC / recall, "
                         "not accuracy")
        items.append(Item("labels.balance", "labels", "Labels available: class balance", status,
                          evidence, rule))
    else:
        yv = y.dropna()
        skew = float(yv.skew()) if len(yv) > 2 else 0.0
        top = float(yv.value_counts(normalize=True).iloc[0])
        status = "warn" if abs(skew) > 2 or top > 0.5 else "pass"
        evidence = f"skewness {skew:.2f}; most frequent value in {_pct(top)} of rows"
        if status == "warn":
            evidence += ". Consider a log transform or a two-part model; judge by MAE as well as RMSE"
        items.append(Item("labels.distribution", "labels", "Labels available: target distribution",
                          status, evidence, "warn when |skewness| > 2 or one value covers half the rows"))
    scores = single_feature_scores(df, facts.features, target, brief.task, codes=facts.codes,
                                   seed=brief.seed)
    limit = leak_limit(brief.task)
    leaks = scores[scores["score"] >= limit]
    basis = ("out-of-sample skill of the feature's values or quantile bins alone: "
             + ("Brier skill score" if brief.task == "classification" else "R squared")
             + " across two seeded halves, 0 = no better than the overall rate, 1 = perfect")
    rule = f"fail when one feature alone predicts the target almost perfectly (score >= {limit:g}; {basis})"
    if leaks.empty:
        top3 = _list([(r.feature, f"{r.score:.2f}") for r in scores.head(3).itertuples()], limit=3)
        items.append(Item("labels.leakage", "labels", "Target leakage", "pass",
                          f"no single feature predicts '{target}' almost perfectly; strongest: {top3}", rule))
    else:
        found = _list([(r.feature, f"score {r.score:.3f}") for r in leaks.itertuples()])
        items.append(Item("labels.leakage", "labels", "Target leakage", "fail",
                          f"leakage suspects: {found}. A feature known only after the outcome (or a copy of "
                          "it) makes the model useless in production: drop it, or list it in "
                          "data.exclude_columns, unless it is truly available at prediction time", rule))
    return items, scores


# --- all -----------------------------------------------------------------------------------------

def run_checklist(df: pd.DataFrame, brief: Any, target_facts: dict[str, Any], *,
                  source: dict[str, Any], lineage: list[dict[str, Any]] | None = None,
                  step: Any = None, scan: Any = None) -> dict[str, Any]:
    """Run every check; `df` and `brief` must already have passed ``brief.check_data(df)``.

    Parameters
    ----------
    step : callable, optional
        Called with the name of each check as it starts (progress reporting).
    scan : omgmagics.discovery.stream.Scan, optional
        A table read in batches: its exact counts, `df` being its seeded row sample (outliers and
        single-feature scores are then computed on the sample).

    Returns
    -------
    dict
        ``items`` (list of :class:`Item`), ``columns`` (per-column table), ``personal_data`` and
        ``single_feature`` tables, ``details`` (figures behind the items).
    """
    def tick(name: str) -> None:
        if step is not None:
            step(name)

    tick("column statistics")
    exact = None
    if scan is None:
        facts = column_facts(df, brief)
    else:
        from .stream import facts_from_scan

        facts = facts_from_scan(scan, brief)
        exact = {"missing": scan.missing[brief.target],
                 "counts": scan.counts[brief.target].value_counts()
                 if brief.task == "classification" else None}
    items = [check_sources(source, lineage or [])]
    tick("quality")
    items.append(check_missing(facts))
    dup_item, dup = check_duplicates(df, facts, None if scan is None else scan.row_hashes)
    items.append(dup_item)
    items.append(check_constant(facts))
    items.append(check_mixed_types(df, facts))
    out_item, outliers = check_outliers(df, facts)
    items.append(out_item)
    tick("volume and labels")
    y = df[brief.target]
    if exact is None:
        counts = y.value_counts() if brief.task == "classification" else None
        labeled = int(y.notna().sum())
    else:
        counts, labeled = exact["counts"], facts.n - exact["missing"]
    items += check_volume(facts, labeled, counts)
    label_items, scores = check_labels(df, brief, facts, target_facts, exact)
    items += label_items
    tick("privacy")
    pii_item, pii = check_personal_data(df, brief, facts, brief.seed)
    items.append(pii_item)
    items.append(check_sensitive(df, brief, facts))
    columns = facts.columns.copy()
    columns["outliers"] = columns["column"].map(outliers)
    columns["single-feature score"] = columns["column"].map(scores.set_index("feature")["score"])
    return {"items": items, "columns": columns, "personal_data": pii, "single_feature": scores,
            "details": {"duplicates": dup, "features": facts.features, "rows": facts.n,
                        "labeled": labeled, "missing_cells": float(columns["missing"].mean())}}
