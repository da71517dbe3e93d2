"""Train / validation / test splits (core layer).

Three modes, all deterministic for a seed:

* **stratified** (default): class shares kept in every split (a regression target is stratified on
  quantile bins of at least 20 rows; classes too rare to stratify alone share one stratum, and a
  split that cannot be stratified is a plain seeded one, said in the report). Rows with identical
  features are kept together in one split, so a duplicate can never leak from training into
  evaluation. Rows labelled by weak supervision (``label_source == "weak"``) go to training only:
  validation and test are scored against real labels (in group and time mode, weak rows that fall
  into validation or test are left out).
* **group** (``group=COL``): every value of the column lands in exactly one split.
* **time** (``time=COL``): ordered by time (text dates such as ``31.12.2021`` are parsed); every
  validation row is later than every training row and every test row later than every validation
  row (ties stay in one split).

Rows without a target value are kept out of every split (counted in the report).

Each split gets a stable integer ``row_id`` (the row's position in the input when it has none).
After splitting, :func:`leakage_checks` looks for identical rows across splits.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, UsageError, did_you_mean
from ..results import Report
from ._util import parse_dates, show

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


def _strata(labels: Any, min_count: int = 2) -> tuple[Any, list[tuple[Any, int]]]:
    """Stratification labels in which classes with fewer than `min_count` rows share one stratum
    (with the largest class when even together they are too few); and the merged classes."""
    import pandas as pd

    s = pd.Series(labels).astype(str).to_numpy()
    counts = pd.Series(s).value_counts()
    rare = counts[counts < min_count]
    if not len(rare):
        return s, []
    merged = "\x00rare" if int(rare.sum()) >= min_count else str(counts.index[0])
    return pd.Series(s).where(~pd.Series(s).isin(rare.index), merged).to_numpy(), \
        [(k, int(v)) for k, v in rare.items()]


def _split_units(units: Any, labels: Any, test_size: float, seed: int,
                 notes: list[str]) -> tuple[Any, Any]:
    """`units` cut in two (rest, held out) by `train_test_split`, stratified on `labels` when
    given and possible; otherwise a plain seeded split (said in `notes`)."""
    from sklearn.model_selection import train_test_split

    if labels is not None:
        strata, _ = _strata(labels)
        try:
            return tuple(train_test_split(units, test_size=test_size, random_state=seed,
                                          stratify=strata))
        except ValueError as exc:
            notes.append(f"Too few rows to stratify ({str(exc).rstrip('.')}): that part of the split "
                         "is a plain seeded random split.")
    return tuple(train_test_split(units, test_size=test_size, random_state=seed))


def _stratified(df: Any, target: str, fractions: tuple[float, float, float], seed: int,
                stratify: bool, objective: str, notes: list[str] | None = None) -> Any:
    import numpy as np
    import pandas as pd

    notes = notes if notes is not None else []
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
        bins = min(10, max(1, len(y) // 20))  # quantile bins of at least 20 rows
        y = pd.qcut(pd.Series(y).rank(method="first"), q=bins, labels=False).to_numpy()
    elif stratify:
        _, rare = _strata(y, 3)
        if rare:
            notes.append("Too few rows to be in every split: " + ", ".join(
                f"{show(k)} with {v}" for k, v in rare[:5]) + (" ..." if len(rare) > 5 else "")
                + f" (class of {target}); rare classes are stratified together, so a split may "
                "miss them.")
    strat = y if stratify else None
    if rows_eligible == n_val + n_test:
        raise DataError(f"{n} rows are too few to split {fractions[0]}/{fractions[1]}/{fractions[2]}: "
                        "the training split would be empty. Use more data.")
    rest, hold = _split_units(eligible, strat, (n_val + n_test) / rows_eligible, seed, notes)
    strat_hold = pd.Series(y, index=eligible).loc[hold].to_numpy() if stratify else None
    val_u, test_u = _split_units(hold, strat_hold, n_test / (n_val + n_test), seed, notes)
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
                stratify: bool = True, objective: str = "classification",
                info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Split `df` into ``train`` / ``val`` / ``test`` DataFrames (each with a ``row_id`` column).

    Rows without a target value (unlabeled, and not labeled by ``omg data label``) are kept out of
    every split; weakly labelled rows go to training only (in group and time mode, the ones that
    fall into validation or test are left out). `info`, when given, is filled with what was done:
    ``unlabeled_excluded``, ``weak_excluded`` (row counts) and ``notes`` (sentences for the report).

    Raises
    ------
    UsageError
        For bad fractions or both `group` and `time`.
    DataError
        For a missing column, no labelled row, missing group/time values, too few rows.
    """
    import numpy as np
    import pandas as pd

    info = info if info is not None else {}
    notes = info.setdefault("notes", [])
    check_fractions(*fractions)
    if group and time:
        raise UsageError("Use either --group or --time, not both.")
    _require(df, target, "target")
    df = df.reset_index(drop=True)
    if ID in df.columns:
        ids = df[ID]
        if not pd.api.types.is_integer_dtype(ids) or not ids.is_unique:
            raise DataError(f"The '{ID}' column must hold unique integers; rename it if it is "
                            "something else.")
    else:
        df.insert(0, ID, np.arange(len(df), dtype="int64"))
    missing = df[target].isna().to_numpy()
    info["unlabeled_excluded"] = int(missing.sum())
    if missing.all():
        raise DataError(f"No row has a value in the target '{target}'. Check the target column, or "
                        "label rows first (`omg data label`).")
    if missing.any():
        df = df[~missing].reset_index(drop=True)
        notes.append(f"{int(missing.sum())} rows have no '{target}' value (unlabeled, and not labeled "
                     "by `omg data label`): they are kept out of train, val and test.")
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
        stamps = time_values(df[time], time)
        if stamps.isna().any():
            raise DataError(f"The time column '{time}' has {int(stamps.isna().sum())} missing or "
                            "unreadable values; a time-ordered split needs a time on every row.")
        codes, uniques = pd.factorize(stamps, sort=True)
        assign = _ordered(codes, np.arange(len(uniques)), fractions)
    else:
        assign = _stratified(df, target, fractions, seed, stratify, objective, notes)
    info["weak_excluded"] = 0
    if (group or time) and LABEL_SOURCE in df.columns:
        out = (df[LABEL_SOURCE].eq("weak") & (assign > 0)).to_numpy()
        if out.any():
            info["weak_excluded"] = int(out.sum())
            notes.append(f"{int(out.sum())} weakly labelled rows fell into validation or test and were "
                         "left out (evaluation uses real labels only; weak labels train only).")
            df, assign = df[~out].reset_index(drop=True), assign[~out]
    return {name: df[assign == i].reset_index(drop=True) for i, name in enumerate(SPLITS)}


def time_values(values: Any, column: str) -> Any:
    """A time column as numbers or datetimes (text dates parsed, e.g. ``31.12.2021``).

    Raises
    ------
    DataError
        When the column is neither numeric nor dates.
    """
    import pandas as pd

    s = pd.Series(values)
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return s
    try:
        return parse_dates(s)
    except (ValueError, TypeError):
        example = s.dropna().iloc[0] if s.notna().any() else None
        raise DataError(f"The time column '{column}' is neither numeric nor dates (e.g. "
                        f"{show(example)}). Convert it first, or split without it.") from None


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
            both = time_values(pd.concat([splits[a][time], splits[b][time]], ignore_index=True), time)
            ta, tb = both.iloc[:len(splits[a])], both.iloc[len(splits[a]):]
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
                               "labels only).")
    if leaks:
        report.messages.append(f"{leaks} rows of a later split have an identical copy (or identical "
                               "features) in an earlier split: evaluation would partly score memorised "
                               "rows. Drop duplicates or split by a group column.")
    report.data = {"leakage": checks.to_dict(orient="records"),
                   "balance": balance.to_dict(orient="records")}
    return report
