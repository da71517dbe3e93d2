"""Rebalancing the training split (core layer), with imbalanced-learn.

* ``smote``: SMOTE on numeric features; SMOTENC when categorical columns exist too, SMOTEN when all
  features are categorical. New rows are interpolated between a minority row and its neighbours,
  found on standardised numeric columns (then mapped back to the original units; integer columns
  rounded).
* ``random_over`` / ``random_under``: duplicate minority rows / drop majority rows.

Nothing is resampled (a report says why) for a regression target, a single class, classes that are
balanced already, or classes SMOTE cannot interpolate (one row). SMOTE's ``k_neighbors`` defaults to
5, fewer when the smallest class to oversample is smaller; text columns with many distinct values
(ids, free text) are copied from a row of the same class, not interpolated.

Only a training split is ever rebalanced: synthetic or dropped rows in validation or test data would
make every evaluation figure wrong. Original rows come back unchanged; synthetic rows get new
``row_id`` values above every existing one, and ``label_source = "synthetic"`` when that column exists.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, UsageError, unknown_choice
from ..results import Report
from ._util import show

STRATEGIES = ("smote", "random_over", "random_under")
DEFAULT_K = 5  # SMOTE's own default neighbours
BALANCED = 0.8  # smallest/largest class from which the classes count as balanced
MAX_LEVELS = 50  # text columns with more distinct values are carried over, not interpolated
BOOKKEEPING = ("row_id", "label_source", "label_confidence")
MISSING = "__missing__"


def check_split(split: str) -> None:
    """Refuse anything but the training split.

    Raises
    ------
    UsageError
    """
    if split != "train":
        raise UsageError(f"Only the training split can be augmented, not '{split}': synthetic or "
                         "removed rows in validation or test data would make every evaluation figure "
                         "wrong. Use --split train (the default).")


def _kinds(df: Any, columns: list[str]) -> tuple[list[str], list[str], list[str]]:
    from pandas.api import types as t

    numeric, categorical, dates = [], [], []
    for c in columns:
        s = df[c]
        if t.is_datetime64_any_dtype(s):
            dates.append(c)
        elif t.is_numeric_dtype(s) and not t.is_bool_dtype(s):
            numeric.append(c)
        else:
            categorical.append(c)
    return numeric, categorical, dates


def skipped_report(strategy: str, reason: str, counts: Any = None) -> Report:
    """The report of an augmentation that had nothing to do; `reason` is a clause saying why."""
    report = Report(f"Augmentation skipped: {reason}",
                    summary={"status": "skipped", "strategy": strategy, "reason": reason},
                    tables={"class counts": counts} if counts is not None else {})
    report.messages.append("Nothing was written: `omg feature extract` fits on the training split "
                           "as it is.")
    return report


def _counts_table(before: Any) -> Any:
    import pandas as pd

    return pd.DataFrame({"class": [str(c) for c in before.index], "rows": before.to_numpy(),
                         "share": (before / before.sum()).to_numpy()})


def augment_frame(train: Any, target: str, strategy: str = "smote", k_neighbors: int | None = None,
                  seed: int = 42, ratio: float | None = None, next_id: int | None = None,
                  objective: str | None = None, balanced: float = BALANCED) -> Report:
    """Rebalance the classes of a training DataFrame.

    Parameters
    ----------
    k_neighbors : int, optional
        SMOTE neighbours (default: 5, or one less than the smallest class to oversample when that
        has 5 rows or fewer). A class of a single row cannot be interpolated and is left as is.
    ratio : float, optional
        Wanted minority/majority ratio after resampling (binary targets); default: fully balanced.
    next_id : int, optional
        First ``row_id`` for synthetic rows (default: one above the largest in `train`).
    objective : str, optional
        ``regression`` skips (classes only); default: judged from the target (many distinct floats).
    balanced : float
        Smallest/largest class share from which the classes count as balanced already (skipped).

    Returns
    -------
    Report
        ``value`` is the rebalanced DataFrame (original rows first, in order); a skipped
        augmentation (regression target, one class, balanced classes, nothing SMOTE can
        oversample) returns a report with ``summary["status"] == "skipped"`` and no value.

    Raises
    ------
    DataError
        For a missing target, or a `k_neighbors` larger than a class to oversample allows.
    """
    y, before, skipped = _check_target(train, target, strategy, ratio, objective, balanced)
    if skipped is not None:
        return skipped
    notes: list[str] = []
    per_class = None
    if strategy == "smote":
        plan = _smote_plan(before, ratio, k_neighbors, notes)
        if isinstance(plan, Report):
            return plan
        k_neighbors, per_class = plan
    features = [c for c in train.columns if c != target and c not in BOOKKEEPING]
    if not features:
        raise DataError("The training split has no feature columns to resample.")
    if strategy == "smote":
        done = _smote(train, target, y, features, per_class or "auto", k_neighbors, seed, next_id,
                      notes, before)
        if isinstance(done, Report):
            return done
        out, sampler = done
    else:
        out, sampler = _resample_rows(train, y, strategy, ratio if ratio is not None else "auto",
                                      seed, next_id)
    return _augment_report(train, out, target, features, before, strategy, sampler, k_neighbors,
                           notes)


def _check_target(train: Any, target: str, strategy: str, ratio: float | None,
                  objective: str | None, balanced: float) -> tuple[Any, Any, Report | None]:
    """The target's values and class counts, or the report of an augmentation with nothing to do."""
    import pandas as pd

    if strategy not in STRATEGIES:
        raise UsageError(unknown_choice("augmentation strategy", strategy, STRATEGIES))
    if target not in train.columns:
        raise DataError(f"The training split has no target column '{target}'.")
    y = train[target]
    if y.isna().any():
        raise DataError(f"{int(y.isna().sum())} training rows have no '{target}'. Label or drop them first.")
    if objective == "regression" or (objective is None and pd.api.types.is_float_dtype(y)
                                     and y.nunique() > 20):
        return y, None, skipped_report(
            strategy, f"'{target}' is a regression target ({y.nunique()} distinct values); "
            "augmentation rebalances classes of a classification target")
    before = y.value_counts()
    if len(before) < 2:
        return y, before, skipped_report(strategy, f"the training split has a single class "
                                         f"({show(before.index[0])}): nothing to rebalance",
                                         _counts_table(before))
    if ratio is not None and (len(before) != 2 or not 0 < ratio <= 1):
        raise UsageError("--ratio applies to two classes and must be in (0, 1], e.g. 0.5.")
    share = float(before.min() / before.max())
    wanted = ratio if ratio is not None else balanced
    if share >= wanted:
        return y, before, skipped_report(
            strategy, f"the classes are balanced already (smallest/largest {share:.2f}, at least "
            f"{wanted:g}): nothing needs doing", _counts_table(before))
    return y, before, None


def _smote_plan(before: Any, ratio: float | None, k_neighbors: int | None,
                notes: list[str]) -> tuple[int, Any] | Report:
    """SMOTE's neighbours and per-class targets (None: imblearn's "auto"), or a skipped report."""
    if k_neighbors is not None and k_neighbors < 1:
        raise UsageError(f"--k-neighbors must be at least 1, got {k_neighbors}.")
    goal = (before.max() * ratio) if ratio is not None else before.max()
    grow = before[before < goal]
    single = grow[grow < 2]
    grow = grow[grow >= 2]
    if single.any():
        notes.append("Left as is (SMOTE needs at least 2 rows of a class to interpolate): "
                     + ", ".join(f"class {show(c)} with {int(n)} row" for c, n in single.items())
                     + ".")
    if not len(grow):
        return skipped_report("smote", "every class to oversample has a single row in the "
                              "training split: SMOTE cannot interpolate (try --strategy "
                              "random_over)", _counts_table(before))
    smallest = int(grow.min())
    if k_neighbors is None:
        k_neighbors = min(DEFAULT_K, smallest - 1)
        if k_neighbors < DEFAULT_K:
            notes.append(f"k_neighbors {k_neighbors} (the smallest class to oversample, "
                         f"{show(grow.idxmin())}, has {smallest} rows).")
    small = grow[grow <= k_neighbors]
    if len(small):
        cls, n = small.index[0], int(small.iloc[0])
        raise DataError(f"Class {show(cls)} has {n} row(s) in the training split, but SMOTE needs "
                        f"more than --k-neighbors ({k_neighbors}) rows of every class it "
                        f"oversamples. Lower --k-neighbors to {n - 1}, or leave it out (derived "
                        "from the smallest class), or use --strategy random_over.")
    sampling = None
    if len(single) or ratio is not None:
        sampling = {c: max(int(round(goal)), int(before[c])) for c in grow.index}
    return k_neighbors, sampling


def _smote(train: Any, target: str, y: Any, features: list[str], sampling: Any, k_neighbors: int,
           seed: int, next_id: int | None, notes: list[str], before: Any) -> tuple[Any, Any] | Report:
    """Synthetic rows interpolated by SMOTE / SMOTEN / SMOTENC, appended to `train`."""
    import numpy as np
    import pandas as pd
    from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC

    numeric, categorical, dates = _kinds(train, features)
    # text with many distinct values (ids, free text, dates as text) cannot be interpolated and would
    # swamp the neighbour search: synthetic rows copy it from a seeded row of their class
    carried = [c for c in categorical if train[c].nunique() > MAX_LEVELS]
    categorical = [c for c in categorical if c not in carried]
    features = [c for c in features if c not in carried]
    if not features:
        return skipped_report("smote", "no column SMOTE can interpolate (every feature is text "
                              f"with more than {MAX_LEVELS} distinct values); try --strategy "
                              "random_over", _counts_table(before))
    X = train[features].copy()
    for c in dates:
        X[c] = X[c].astype("int64").where(X[c].notna())
    for c in categorical:
        X[c] = X[c].astype(object).where(X[c].notna(), MISSING).astype(str)
    for c in numeric + dates:
        if X[c].isna().any():  # SMOTE cannot interpolate NaN; the original rows keep theirs
            X[c] = X[c].fillna(X[c].median())
    # neighbours are searched on standardised numbers, or the widest-ranged column would decide alone
    scale = {c: (float(X[c].mean()), float(X[c].std()) or 1.0) for c in numeric + dates}
    for c, (mu, sd) in scale.items():
        X[c] = (X[c].astype(float) - mu) / sd
    n = len(train)
    if not categorical:
        sampler = SMOTE(sampling_strategy=sampling, k_neighbors=k_neighbors, random_state=seed)
    elif not numeric and not dates:
        sampler = SMOTEN(sampling_strategy=sampling, k_neighbors=k_neighbors, random_state=seed)
    else:
        sampler = SMOTENC(categorical_features=[X.columns.get_loc(c) for c in categorical],
                          sampling_strategy=sampling, k_neighbors=k_neighbors, random_state=seed)
    X_res, y_res = sampler.fit_resample(X, y)
    new = pd.DataFrame(X_res).iloc[n:].reset_index(drop=True)
    new.columns = features
    new[target] = np.asarray(y_res)[n:]
    for c, (mu, sd) in scale.items():
        new[c] = new[c].astype(float) * sd + mu
    for c in categorical:
        new[c] = new[c].where(new[c] != MISSING, None)
        if pd.api.types.is_bool_dtype(train[c]):
            new[c] = new[c].map({"True": True, "False": False})
    for c in numeric:
        if pd.api.types.is_integer_dtype(train[c]):
            new[c] = np.round(new[c].astype(float)).astype(train[c].dtype)
    for c in dates:
        new[c] = pd.to_datetime(np.round(new[c]).astype("int64"))
    if carried:
        rng = np.random.default_rng(seed)
        donors = [rng.choice(np.flatnonzero(y.to_numpy() == cls)) for cls in new[target]]
        for c in carried:
            new[c] = train[c].to_numpy()[donors] if donors else []
        notes.append("Copied from a seeded training row of the same class, not interpolated: "
                     + ", ".join(f"'{c}'" for c in carried) + f" (text with more than "
                     f"{MAX_LEVELS} distinct values).")
    return _append(train, new, next_id), sampler


def _resample_rows(train: Any, y: Any, strategy: str, sampling: Any, seed: int,
                   next_id: int | None) -> tuple[Any, Any]:
    """Rows copied (random_over) or dropped (random_under) by imbalanced-learn."""
    import numpy as np
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    n = len(train)
    cls = RandomOverSampler if strategy == "random_over" else RandomUnderSampler
    sampler = cls(sampling_strategy=sampling, random_state=seed)
    sampler.fit_resample(np.zeros((n, 1)), y)
    idx = np.asarray(sampler.sample_indices_)
    if strategy == "random_under":
        return train.iloc[np.sort(idx)].reset_index(drop=True), sampler
    copies = train.iloc[idx[n:]].drop(columns=[c for c in BOOKKEEPING if c in train.columns])
    return _append(train, copies.reset_index(drop=True), next_id), sampler


def _augment_report(train: Any, out: Any, target: str, features: list[str], before: Any,
                    strategy: str, sampler: Any, k_neighbors: int | None,
                    notes: list[str]) -> Report:
    import pandas as pd

    numeric = _kinds(train, features)[0]
    n = len(train)
    after = out[target].value_counts()
    counts = pd.DataFrame({"class": [str(c) for c in before.index], "before": before.to_numpy(),
                           "after": [int(after.get(c, 0)) for c in before.index]})
    counts["change"] = counts["after"] - counts["before"]
    counts["share after"] = counts["after"] / counts["after"].sum()
    method = type(sampler).__name__
    report = Report(f"Rebalanced the training split with {method}: {n} -> {len(out)} rows",
                    summary={"strategy": strategy, "method": method, "rows before": n,
                             "rows after": len(out), "synthetic rows": max(0, len(out) - n)
                             if strategy != "random_under" else 0,
                             "removed rows": n - len(out) if strategy == "random_under" else 0,
                             **({"k_neighbors": k_neighbors} if strategy == "smote" else {})},
                    tables={"class counts": counts}, value=out)
    from .plots import class_counts_change

    report.add_figure("class counts", class_counts_change(counts, method))
    if strategy == "smote" and numeric and train[numeric].isna().any().any():
        report.messages.append("Missing numeric values were filled with the median for interpolation "
                               "only; original rows keep their missing values.")
    report.messages[:0] = notes
    report.messages.append("Validation and test splits are untouched: evaluate on real rows only.")
    return report


def _append(train: Any, new: Any, next_id: int | None) -> Any:
    import numpy as np
    import pandas as pd

    new = new.copy()
    if "row_id" in train.columns:
        start = int(train["row_id"].max()) + 1 if next_id is None else int(next_id)
        new["row_id"] = np.arange(start, start + len(new), dtype="int64")
    if "label_source" in train.columns:
        new["label_source"] = "synthetic"
    out = pd.concat([train, new[[c for c in train.columns if c in new.columns]]], ignore_index=True)
    for c in train.columns:
        if out[c].dtype != train[c].dtype and not out[c].isna().any():
            try:
                out[c] = out[c].astype(train[c].dtype)
            except (TypeError, ValueError):
                pass
    return out
