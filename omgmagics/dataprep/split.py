"""Train / validation / test splits (core layer).

Three modes, all deterministic for a seed:

* **stratified** (default): class shares kept in every split (a regression target is stratified on
  its deciles). Rows with identical features are kept together in one split, so a duplicate can
  never leak from training into evaluation. Rows labelled by weak supervision (``label_source == "weak"``) go to
  training only: validation and test are scored against real labels.
* **group** (``group=COL``): every value of the column lands in exactly one split.
* **time** (``time=COL``): ordered by time; every validation row is later than every training row and
  every test row later than every validation row (ties stay in one split).

Each split gets a stable integer ``row_id`` (the row's position in the input when it has none).
After splitting, :func:`leakage_checks` looks for identical rows across splits.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, UsageError, did_you_mean
from ..results import Report

SPLITS = ("train", "val", "test")
ID = "row_id"
LABEL_SOURCE = "label_source"
NOT_CONTENT = (ID, LABEL_SOURCE)  # bookkeeping columns, not part of a row's content


def check_fractions(train: float, val: float, test: float) -> tuple[float, float, float]:
    """Check split fractions: each in (0, 1) and summing to 1.

    Raises
    ------
    UsageError
    """
    fr = {"--train": train, "--val": val, "--test": test}
    for flag, value in fr.items():
        if not 0 < value < 1:
            raise UsageError(f"{flag} {value} must be between 0 and 1 (exclusive), e.g. "
                             "--train 0.7 --val 0.15 --test 0.15.")
    total = train + val + test
    if abs(total - 1) > 1e-6:
        hint = round(1 - val - test, 6)
        raise UsageError(f"Split fractions must sum to 1, got {train} + {val} + {test} = {total:g}. "
                         f"Adjust them, e.g. --train {hint} --val {val} --test {test}.")
    return train, val, test


def _require(df: Any, column: str, what: str) -> None:
    if column not in df.columns:
        raise DataError(f"The {what} column '{column}' is not in the data.{did_you_mean(column, df.columns)} "
                        f"Columns: {', '.join(map(str, df.columns))}.")


def row_hashes(df: Any, exclude: tuple[str, ...] = NOT_CONTENT) -> Any:
    """One 64-bit hash per row over every column but `exclude` (identical rows, identical hash)."""
    import pandas as pd

    cols = [c for c in df.columns if c not in exclude]
    return pd.util.hash_pandas_object(df[cols], index=False).to_numpy()


def _quotas(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
    if min(n_val, n_test) < 1 or n - n_val - n_test < 1:
        raise DataError(f"{n} rows are too few to split {fractions[0]}/{fractions[1]}/{fractions[2]}: "
                        "every split needs at least one row. Use more data.")
    return n_val, n_test


def _stratified(df: Any, target: str, fractions: tuple[float, float, float], seed: int,
                stratify: bool, objective: str) -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    n = len(df)
    n_val, n_test = _quotas(n, fractions)
    # rows with identical features (whatever their target) share a unit and so a split
    units = pd.Series(row_hashes(df, (*NOT_CONTENT, target))).factorize()[0]
    first = pd.Series(np.arange(n)).groupby(units).first().to_numpy()
    sizes = np.bincount(units)
    weak = df[LABEL_SOURCE].eq("weak").to_numpy() if LABEL_SOURCE in df.columns else np.zeros(n, bool)
    unit_weak = np.bincount(units, weights=weak.astype(float)) > 0
    eligible = np.flatnonzero(~unit_weak)
    rows_eligible = int(sizes[eligible].sum())
    if rows_eligible < n_val + n_test:
        raise DataError(f"Only {rows_eligible} rows have real (not weak) labels, but validation and test "
                        f"need {n_val + n_test}. Label more rows, or lower --val and --test.")
    y = df[target].to_numpy()[first[eligible]]
    if stratify and objective == "regression":
        y = pd.qcut(pd.Series(y).rank(method="first"), q=min(10, len(y)), labels=False).to_numpy()
    strat = y if stratify else None
    try:
        rest, hold = train_test_split(eligible, test_size=(n_val + n_test) / rows_eligible,
                                      random_state=seed, stratify=strat)
        strat_hold = None
        if stratify:
            strat_hold = pd.Series(y, index=eligible).loc[hold].to_numpy()
        val_u, test_u = train_test_split(hold, test_size=n_test / (n_val + n_test),
                                         random_state=seed, stratify=strat_hold)
    except ValueError as exc:
        if stratify and "least populated class" in str(exc):
            counts = pd.Series(y).value_counts()
            rare = counts[counts < 3]
            raise DataError(
                f"Stratified splitting needs at least 3 rows of each class; {target} has "
                + ", ".join(f"'{k}' with {v}" for k, v in rare.items())
                + ". Merge or drop the rare classes, or split without stratification "
                "(--no-stratify).") from None
        raise DataError(f"Cannot split the data: {exc}.") from None
    assign = np.zeros(len(sizes), dtype=np.int8)  # 0 train, 1 val, 2 test
    assign[val_u], assign[test_u] = 1, 2
    return assign[units]


def _ordered(units: Any, order: Any, fractions: tuple[float, float, float]) -> Any:
    """Assign whole units, in `order`, to train then val then test by cumulative row share."""
    import numpy as np

    sizes = np.bincount(units)
    n = int(sizes.sum())
    _quotas(n, fractions)
    cum = np.cumsum(sizes[order])
    start = cum - sizes[order]  # rows before each unit
    assign_ordered = np.where(start < fractions[0] * n, 0,
                              np.where(start < (fractions[0] + fractions[1]) * n, 1, 2))
    assign = np.empty(len(sizes), dtype=np.int8)
    assign[order] = assign_ordered
    counts = np.bincount(assign[units], minlength=3)
    if counts.min() == 0:
        empty = SPLITS[int(np.argmin(counts))]
        raise DataError(f"The {empty} split came out empty: a few large groups or time stamps hold "
                        "most rows. Use a finer group/time column or change the fractions.")
    return assign[units]


def split_frame(df: Any, target: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                seed: int = 42, group: str | None = None, time: str | None = None,
                stratify: bool = True, objective: str = "classification") -> dict[str, Any]:
    """Split `df` into ``train`` / ``val`` / ``test`` DataFrames (each with a ``row_id`` column).

    Raises
    ------
    UsageError
        For bad fractions or both `group` and `time`.
    DataError
        For a missing column, missing target values, missing group/time values, too few rows.
    """
    import numpy as np
    import pandas as pd

    check_fractions(*fractions)
    if group and time:
        raise UsageError("Use either --group or --time, not both.")
    _require(df, target, "target")
    missing = int(df[target].isna().sum())
    if missing:
        raise DataError(f"{missing} rows have no value in the target '{target}'. Label them first "
                        "(`omg data label`) or drop them before splitting.")
    df = df.reset_index(drop=True)
    if ID in df.columns:
        ids = df[ID]
        if not pd.api.types.is_integer_dtype(ids) or not ids.is_unique:
            raise DataError(f"The '{ID}' column must hold unique integers; rename it if it is "
                            "something else.")
    else:
        df.insert(0, ID, np.arange(len(df), dtype="int64"))
    if group:
        _require(df, group, "group")
        if df[group].isna().any():
            raise DataError(f"The group column '{group}' has {int(df[group].isna().sum())} missing "
                            "values; every row needs a group.")
        units = df[group].factorize()[0]
        order = np.random.default_rng(seed).permutation(units.max() + 1)
        assign = _ordered(units, order, fractions)
    elif time:
        _require(df, time, "time")
        stamps = df[time]
        if not (pd.api.types.is_numeric_dtype(stamps) or pd.api.types.is_datetime64_any_dtype(stamps)):
            try:
                stamps = pd.to_datetime(stamps)
            except (ValueError, TypeError):
                raise DataError(f"The time column '{time}' is neither numeric nor dates "
                                f"(e.g. {stamps.iloc[0]!r}). Convert it first.") from None
        if stamps.isna().any():
            raise DataError(f"The time column '{time}' has {int(stamps.isna().sum())} missing values; "
                            "a time-ordered split needs a time on every row.")
        codes, uniques = pd.factorize(stamps, sort=True)
        assign = _ordered(codes, np.arange(len(uniques)), fractions)
    else:
        assign = _stratified(df, target, fractions, seed, stratify, objective)
    return {name: df[assign == i].reset_index(drop=True) for i, name in enumerate(SPLITS)}


def leakage_checks(splits: dict[str, Any], target: str, group: str | None = None,
                   time: str | None = None) -> Any:
    """Checks for leakage across splits, as a table: check, status, count, detail.

    Identical rows (every column but ``row_id``) and identical feature rows (also ignoring the
    target) found in a later split and in an earlier one; with `group`, groups shared by splits; with
    `time`, splits overlapping in time.
    """
    import numpy as np
    import pandas as pd

    rows = []
    pairs = [("train", "val"), ("train", "test"), ("val", "test")]
    for label, exclude in (("identical rows", NOT_CONTENT),
                           ("identical features, any target", (*NOT_CONTENT, target))):
        hashes = {k: row_hashes(v, exclude) for k, v in splits.items()}
        for a, b in pairs:
            hit = np.isin(hashes[b], hashes[a])
            count = int(hit.sum())
            ids = splits[b].loc[hit, ID].head(3).tolist() if ID in splits[b] else []
            rows.append({"check": f"{label}: {b} vs {a}", "status": "warn" if count else "pass",
                         "count": count,
                         "detail": f"{b} row_ids e.g. {ids}" if count else "none"})
    if group:
        for a, b in pairs:
            shared = set(splits[a][group]) & set(splits[b][group])
            rows.append({"check": f"groups shared: {a} and {b}", "status": "fail" if shared else "pass",
                         "count": len(shared), "detail": f"e.g. {sorted(map(str, shared))[:3]}"
                         if shared else "none"})
    if time:
        for a, b in (("train", "val"), ("val", "test")):
            ta, tb = pd.Series(splits[a][time]), pd.Series(splits[b][time])
            if not pd.api.types.is_numeric_dtype(ta) and not pd.api.types.is_datetime64_any_dtype(ta):
                ta, tb = pd.to_datetime(ta), pd.to_datetime(tb)
            late = int((ta >= tb.min()).sum())
            rows.append({"check": f"time order: {a} before {b}", "status": "fail" if late else "pass",
                         "count": late, "detail": f"{a} ends {ta.max()}, {b} starts {tb.min()}"})
    return pd.DataFrame(rows, columns=["check", "status", "count", "detail"])


def class_balance(splits: dict[str, Any], target: str, objective: str = "classification") -> Any:
    """Per split: rows and class counts/shares (classification) or target statistics (regression)."""
    import pandas as pd

    rows = []
    for name, df in splits.items():
        y = df[target]
        if objective == "regression":
            rows.append({"split": name, "rows": len(df), "mean": float(y.mean()),
                         "std": float(y.std()), "min": float(y.min()), "max": float(y.max())})
            continue
        counts = y.value_counts()
        for cls, count in counts.sort_index().items():
            rows.append({"split": name, "class": str(cls), "rows": int(count),
                         "share": float(count / len(df))})
    return pd.DataFrame(rows)


def split_report(splits: dict[str, Any], target: str, fractions: tuple[float, float, float],
                 mode: str, seed: int, group: str | None = None, time: str | None = None,
                 objective: str = "classification") -> Report:
    """The report of a split: sizes, class balance, leakage checks."""
    total = sum(len(v) for v in splits.values())
    checks = leakage_checks(splits, target, group, time)
    balance = class_balance(splits, target, objective)
    leaks = int(checks.loc[checks["check"].str.startswith("identical"), "count"].sum())
    status = "fail" if (checks["status"] == "fail").any() else "warn" if leaks else "pass"
    summary = {"mode": mode, "seed": seed, "rows": total,
               **{name: f"{len(df)} ({len(df) / total:.1%})" for name, df in splits.items()},
               "leakage": status}
    report = Report(f"Split {total} rows {fractions[0]}/{fractions[1]}/{fractions[2]} ({mode})",
                    summary=summary, tables={"class balance": balance, "leakage checks": checks})
    from .plots import class_balance as balance_figure

    report.add_figure("class balance", balance_figure(balance, target, objective))
    if LABEL_SOURCE in splits["train"].columns:
        weak = {k: int(v[LABEL_SOURCE].eq("weak").sum()) for k, v in splits.items()}
        report.messages.append(f"Weakly labelled rows per split: {weak} (evaluation splits hold real "
                               "labels only, except in time mode).")
    if leaks:
        report.messages.append(f"{leaks} rows of a later split have an identical copy (or identical "
                               "features) in an earlier split: evaluation would partly score memorised "
                               "rows. Drop duplicates or split by a group column.")
    report.data = {"leakage": checks.to_dict(orient="records"),
                   "balance": balance.to_dict(orient="records")}
    return report
