"""Input checks and column helpers shared by the phase 1 steps (core layer).

Every step starts with :func:`check_table`, so bad input (not a table, no rows, one column, a column
with no values, a missing or single-class target) fails with one clear :class:`DataError` before any
file is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, unknown_choice

# A column whose name holds one of these was probably read with the wrong separator.
_SEPARATORS = {";": "';'", "\t": "a tab", "|": "'|'"}


def _names(cols: list[Any], limit: int = 8) -> str:
    shown = ", ".join(f"'{c}'" for c in cols[:limit])
    return shown + (f" and {len(cols) - limit} more" if len(cols) > limit else "")


def check_table(df: Any, *, target: str | None = None, task: str = "classification",
                exclude: list[str] | None = None, what: str = "the data") -> None:
    """Raise a :class:`DataError` naming the problem and the fix when `df` cannot be audited or modelled.

    Parameters
    ----------
    df : pandas.DataFrame
    target : str, optional
        The target column; checked to exist (with a "did you mean"), to have labels and, for
        classification, at least two classes.
    task : {"classification", "regression"}
    exclude : list of str, optional
        Columns the brief excludes (``data.exclude_columns``); they may be empty.
    what : str
        How to name the data in messages ("the data", "notebook DataFrame 'df'", a path).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} is a {type(df).__name__}, not a table. Pass a pandas DataFrame or a "
                        "csv/parquet/jsonl file.")
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"{what} is empty ({len(df)} rows x {df.shape[1]} columns). Point at a table "
                        "with a header and at least one row.")
    dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if dupes:
        raise DataError(f"{what} has duplicated column names: {_names(dupes)}. Rename them so each "
                        "column has a unique name.")
    if df.shape[1] == 1:
        name = str(df.columns[0])
        hint = next((f" The header '{name[:60]}' contains {sep}: the file was probably read with the "
                     f"wrong separator; re-save it comma-separated or read it with sep={sep}."
                     for ch, sep in _SEPARATORS.items() if ch in name), "")
        raise DataError(f"{what} has a single column ('{name[:60]}'): an audit and a model need a "
                        f"target and at least one feature.{hint} Point at the full table.")
    excluded = set(exclude or [])
    empty = [str(c) for c in df.columns[df.isna().all().to_numpy()] if str(c) not in excluded]
    if empty and str(target) not in empty:
        raise DataError(f"Column(s) {_names(empty)} of {what} have no values (all {len(df):,} missing): "
                        "they carry no information. Drop them from the source (e.g. "
                        f"df.drop(columns={empty[:3]!r})) or list them in data.exclude_columns in "
                        "omg.yaml, then re-run.")
    if target is None:
        return
    columns = [str(c) for c in df.columns]
    if target not in columns:
        raise DataError(unknown_choice(f"target column (brief.objective.target) in {what}", target,
                                       columns) +
                        " Fix brief.objective.target in omg.yaml or pass a table that has the column.")
    y = df[target]
    n_labeled = int(y.notna().sum())
    if n_labeled == 0:
        raise DataError(f"Target column '{target}' of {what} has no values (all {len(df):,} missing): "
                        "nothing to learn from. Label some rows (phase 2, `label`) or choose another "
                        "target in brief.objective.target.")
    if len(columns) - 1 - len(excluded & set(columns)) < 1:
        raise DataError(f"{what} has no feature column left besides the target '{target}' (excluded: "
                        f"{_names(sorted(excluded))}). Keep at least one feature.")
    if task == "classification":
        classes = y.dropna().unique()
        if len(classes) < 2:
            raise DataError(f"Target column '{target}' of {what} has a single class ({classes[0]!r} in "
                            f"all {n_labeled:,} labeled rows): a classifier needs at least two. Check "
                            "the extract (a filter may have dropped the other class) or the target.")
    elif task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(f"Target column '{target}' of {what} is {y.dtype} but the objective is "
                            "regression, which needs numbers. Set brief.objective.type: classification "
                            "or convert the column.")
        if y.dropna().nunique() < 2:
            raise DataError(f"Target column '{target}' of {what} is constant ({y.dropna().iloc[0]!r}): "
                            "there is nothing to predict. Check the extract or the target.")


def feature_columns(df: pd.DataFrame, brief: Any) -> list[str]:
    """The model inputs: every column but the target, the id and time columns and excluded ones."""
    drop = {brief.target, brief.id_column, brief.time_column, *brief.exclude_columns}
    return [str(c) for c in df.columns if str(c) not in drop]


def is_numeric(s: pd.Series) -> bool:
    """Numbers (bools excluded): what gets quantiles and outlier fences."""
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def codes_for(s: pd.Series, bins: int = 32, top: int = 100) -> tuple[np.ndarray, int]:
    """Small integer codes of a column for contingency counts: ``(codes, n_codes)``.

    Numbers with more than ``2 * bins`` distinct values are cut at their quantiles; other values keep
    their identity, except that only the `top` most frequent text values do (the rest share one code),
    so an identifier cannot look predictive just because every value is unique. Missing values get
    their own code.
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        s = pd.Series(s.to_numpy(dtype="datetime64[ns]").view("int64"), index=s.index).where(s.notna())
    if is_numeric(s):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        stride = max(1, len(finite) // 8192)
        if len(np.unique(finite[::stride])) > 2 * bins:
            return _binned(values, finite, bins)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    n = len(uniques)
    if is_numeric(s) and n > 2 * bins:  # the strided look above missed them (e.g. sorted data)
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        return _binned(values, values[np.isfinite(values)], bins)
    if n > top:
        counts = np.bincount(codes[codes >= 0], minlength=n)
        keep = np.argsort(-counts, kind="stable")[:top]
        remap = np.full(n, top, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        n = top + 1
    codes = np.where(codes < 0, n, codes)
    return codes.astype(np.int64), n + 1


def _binned(values: np.ndarray, finite: np.ndarray, bins: int) -> tuple[np.ndarray, int]:
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    codes = np.searchsorted(edges, values, side="right")
    n = len(edges) + 1
    codes[~np.isfinite(values)] = n
    return codes.astype(np.int64), n + 1


def single_feature_scores(df: pd.DataFrame, features: list[str], target: str, task: str) -> pd.DataFrame:
    """How well each feature alone predicts the target, in 0..1 (1: perfectly).

    Classification: the accuracy of predicting the majority class of each value (or quantile bin) of
    the feature, rescaled so that 0 is the majority-class baseline and 1 is perfect,
    ``(purity - base) / (1 - base)``. Regression: the correlation ratio eta squared of the target over
    the feature's values or bins (share of target variance explained). Rows without a label are left
    out. A leaked copy of the target scores 1.

    Returns
    -------
    pandas.DataFrame
        ``feature, score`` sorted by score, highest first.
    """
    labeled = df[target].notna().to_numpy()
    y = df.loc[labeled, target]
    rows = []
    if task == "classification":
        y_codes, classes = pd.factorize(y)
        k = len(classes)
        base = np.bincount(y_codes, minlength=k).max() / len(y_codes)
        for col in features:
            x, n = codes_for(df.loc[labeled, col])
            table = np.bincount(x * k + y_codes, minlength=n * k).reshape(n, k)
            purity = table.max(axis=1).sum() / len(y_codes)
            score = 0.0 if base >= 1 else (purity - base) / (1 - base)
            rows.append((col, float(np.clip(score, 0, 1))))
    else:
        yv = y.to_numpy(dtype="float64")
        total = ((yv - yv.mean()) ** 2).sum()
        for col in features:
            x, n = codes_for(df.loc[labeled, col])
            counts = np.bincount(x, minlength=n)
            sums = np.bincount(x, weights=yv, minlength=n)
            means = np.divide(sums, counts, out=np.zeros(n), where=counts > 0)
            between = (counts * (means - yv.mean()) ** 2).sum()
            rows.append((col, float(np.clip(between / total, 0, 1)) if total > 0 else 0.0))
    out = pd.DataFrame(rows, columns=["feature", "score"])
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def resolve_positive(y: pd.Series, positive_label: Any) -> Any:
    """The value of `y` that is the brief's positive label (``1`` in YAML matches ``"1"`` or 1)."""
    values = list(pd.unique(y.dropna()))
    for v in values:
        if v == positive_label or str(v) == str(positive_label):
            return v
    return None
