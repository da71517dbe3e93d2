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


def string_columns(df: Any) -> Any:
    """`df` with every column name a string (``42`` -> ``"42"``), without copying the data."""
    if isinstance(df, pd.DataFrame) and not all(isinstance(c, str) for c in df.columns):
        return df.set_axis([str(c) for c in df.columns], axis=1, copy=False)
    return df


def check_table(df: Any, *, target: str | None = None, task: str = "classification",
                exclude: list[str] | None = None, what: str = "the data",
                stats: dict[str, Any] | None = None) -> None:
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
    stats : dict, optional
        A table read in batches (`df` is then its sample): exact ``rows``, ``missing`` per column,
        ``target_counts`` and ``target_distinct`` (:meth:`omgmagics.discovery.stream.Scan.target_stats`).
    """
    n = len(df) if stats is None else int(stats["rows"])
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} is a {type(df).__name__}, not a table. Pass a pandas DataFrame or a "
                        "csv/parquet/jsonl file.")
    if df.shape[1] == 0 or n == 0:
        raise DataError(f"{what} is empty ({n} rows x {df.shape[1]} columns). Point at a table "
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
    if stats is None:
        empty = [str(c) for c in df.columns[df.isna().all().to_numpy()] if str(c) not in excluded]
    else:
        empty = [str(c) for c in df.columns if stats["missing"][str(c)] == n and str(c) not in excluded]
    if empty and str(target) not in empty:
        raise DataError(f"Column(s) {_names(empty)} of {what} have no values (all {n:,} missing): "
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
    n_labeled = int(y.notna().sum()) if stats is None else n - int(stats["missing"][target])
    if n_labeled == 0:
        raise DataError(f"Target column '{target}' of {what} has no values (all {n:,} missing): "
                        "nothing to learn from. Label some rows (phase 2, `label`) or choose another "
                        "target in brief.objective.target.")
    if len(columns) - 1 - len(excluded & set(columns)) < 1:
        raise DataError(f"{what} has no feature column left besides the target '{target}' (excluded: "
                        f"{_names(sorted(excluded))}). Keep at least one feature.")
    if task == "classification":
        classes = y.dropna().unique() if stats is None else list(stats["target_counts"].index)
        if len(classes) < 2:
            raise DataError(f"Target column '{target}' of {what} has a single class ({classes[0]!r} in "
                            f"all {n_labeled:,} labeled rows): a classifier needs at least two. Check "
                            "the extract (a filter may have dropped the other class) or the target.")
    elif task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(f"Target column '{target}' of {what} is {y.dtype} but the objective is "
                            "regression, which needs numbers. Set brief.objective.type: classification "
                            "or convert the column.")
        if (y.dropna().nunique() if stats is None else stats.get("target_distinct") or 0) < 2:
            raise DataError(f"Target column '{target}' of {what} is constant ({y.dropna().iloc[0]!r}): "
                            "there is nothing to predict. Check the extract or the target.")


def feature_columns(df: pd.DataFrame, brief: Any) -> list[str]:
    """The model inputs: every column but the target, the id and time columns and excluded ones."""
    drop = {brief.target, brief.id_column, brief.time_column, *brief.exclude_columns}
    return [str(c) for c in df.columns if str(c) not in drop]


def is_numeric(s: pd.Series) -> bool:
    """Numbers (bools excluded): what gets quantiles and outlier fences."""
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


QUANTILE_SAMPLE = 200_000  # quantile edges and quartiles come from a seeded sample this large


def sample_values(finite: np.ndarray, size: int = QUANTILE_SAMPLE, seed: int = 0) -> np.ndarray:
    """At most `size` values of `finite`, drawn with a fixed seed (for quantile estimates)."""
    if len(finite) <= size:
        return finite
    return finite[np.random.default_rng(seed).integers(0, len(finite), size)]


def factorized(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize`` with missing values as -1, codes as int32."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int32, copy=False), uniques


def codes_for(s: pd.Series, bins: int = 32, top: int = 100,
              factors: tuple[np.ndarray, Any] | None = None) -> tuple[np.ndarray, int]:
    """Small integer codes of a column for contingency counts: ``(codes, n_codes)``.

    Numbers with more than ``2 * bins`` distinct values are cut at their quantiles (estimated on a
    seeded sample); other values keep their identity, except that only the `top` most frequent values
    do (the rest share one code). Missing values get their own code.

    Parameters
    ----------
    factors : tuple, optional
        ``factorized(s)`` when the caller already has it.
    """
    if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
        s = pd.Series(s.array.asi8, index=s.index).where(s.notna())  # tz-aware too
    if factors is None and is_numeric(s):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        stride = max(1, len(finite) // 8192)
        if len(np.unique(finite[::stride])) > 2 * bins:
            return _binned(values, finite, bins)
    codes, uniques = factors if factors is not None else factorized(s)
    n = len(uniques)
    if is_numeric(s) and n > 2 * bins:  # the strided look above missed them (e.g. sorted data)
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        return _binned(values, values[np.isfinite(values)], bins)
    if n > top:
        counts = np.bincount(codes[codes >= 0], minlength=n)
        keep = np.argsort(-counts, kind="stable")[:top]
        remap = np.full(n + 1, top, dtype=np.int32)
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        remap[n] = top + 1  # missing (code -1 indexes the last slot)
        return remap[codes], top + 2
    return np.where(codes < 0, n, codes).astype(np.int32), n + 1


def _binned(values: np.ndarray, finite: np.ndarray, bins: int) -> tuple[np.ndarray, int]:
    edges = np.unique(np.quantile(sample_values(finite), np.linspace(0, 1, bins + 1)[1:-1]))
    codes = np.searchsorted(edges, values, side="right").astype(np.int32)
    n = len(edges) + 1
    codes[~np.isfinite(values)] = n
    return codes, n + 1


def single_feature_scores(df: pd.DataFrame, features: list[str], target: str, task: str,
                          codes: dict[str, tuple[np.ndarray, int]] | None = None,
                          seed: int = 0) -> pd.DataFrame:
    """How well each feature alone predicts the target, out of sample, in 0..1 (1: perfectly).

    The labeled rows are split into two seeded halves. Each half is predicted from the other half's
    target distribution per value (or quantile bin) of the feature, shrunk toward the overall one by
    one pseudo-row, so values seen in one half only (identifiers, rare categories) earn nothing. The
    score is a skill score against predicting the overall distribution, clipped to 0..1:

    - classification: Brier skill score, ``1 - Brier(feature) / Brier(class prior)``;
    - regression: out-of-sample R squared of the per-value means.

    A copy of the target scores about 1; a useless feature 0. One ``bincount`` per feature.

    Parameters
    ----------
    codes : dict, optional
        ``{feature: codes_for(df[feature])}`` computed once by the caller and reused.

    Returns
    -------
    pandas.DataFrame
        ``feature, score`` sorted by score, highest first.
    """
    labeled = df[target].notna().to_numpy()
    every = bool(labeled.all())
    y = df[target] if every else df.loc[labeled, target]
    half = (np.random.default_rng(seed).random(len(y)) < 0.5).astype(np.int64)
    rows = []

    def feature_codes(col: str) -> tuple[np.ndarray, int]:
        x, n = codes[col] if codes is not None and col in codes else codes_for(df[col])
        return (x if every else x[labeled]).astype(np.int64), n

    if task == "classification":
        y_codes, classes = pd.factorize(y)
        k = len(classes)
        inner = y_codes.astype(np.int64) * 2 + half  # (class, half) in one index
        for col in features:
            x, n = feature_codes(col)
            t = np.bincount(x * (2 * k) + inner, minlength=n * 2 * k).reshape(n, k, 2).astype(float)
            loss = base = 0.0
            for a in (0, 1):
                ta, tb = t[:, :, a], t[:, :, 1 - a]
                prior = tb.sum(axis=0) / max(tb.sum(), 1.0)
                p = (tb + prior) / (tb.sum(axis=1, keepdims=True) + 1.0)
                # Brier over the rows of bin j: n_j (1 + sum_k p_k^2) - 2 sum_k count_jk p_k
                na = ta.sum(axis=1)
                loss += float((na * (1 + (p ** 2).sum(axis=1))).sum() - 2 * (ta * p).sum())
                base += float(na.sum() * (1 + (prior ** 2).sum()) - 2 * (ta.sum(axis=0) * prior).sum())
            rows.append((col, float(np.clip(1 - loss / base, 0, 1)) if base > 0 else 0.0))
    else:
        yv = y.to_numpy(dtype="float64")
        y2 = yv ** 2
        for col in features:
            x, n = feature_codes(col)
            idx = x * 2 + half
            cnt = np.bincount(idx, minlength=2 * n).reshape(n, 2).astype(float)
            sm = np.bincount(idx, yv, 2 * n).reshape(n, 2)
            sq = np.bincount(idx, y2, 2 * n).reshape(n, 2)
            sse = base = 0.0
            for a in (0, 1):
                b = 1 - a
                mean_b = sm[:, b].sum() / max(cnt[:, b].sum(), 1.0)
                mu = (sm[:, b] + mean_b) / (cnt[:, b] + 1.0)
                sse += float((sq[:, a] - 2 * mu * sm[:, a] + cnt[:, a] * mu ** 2).sum())
                base += float((sq[:, a] - 2 * mean_b * sm[:, a] + cnt[:, a] * mean_b ** 2).sum())
            rows.append((col, float(np.clip(1 - sse / base, 0, 1)) if base > 0 else 0.0))
    out = pd.DataFrame(rows, columns=["feature", "score"])
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def resolve_positive(y: pd.Series, positive_label: Any) -> Any:
    """The value of `y` that is the brief's positive label (``1`` in YAML matches ``"1"`` or 1)."""
    values = list(pd.unique(y.dropna()))
    for v in values:
        if v == positive_label or str(v) == str(positive_label):
            return v
    return None
