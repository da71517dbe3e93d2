"""The audit of a table read in batches (core layer): one pass gathers the checklist's exact counts
and a seeded row sample, in memory bounded by the batch and sample sizes.

Exact (every row): rows, missing values per column, distinct values and the top value's share, value
counts of text and boolean columns (and of the target and the sensitive attributes), constant columns,
mixed types, duplicate rows (a 64-bit hash per row: 8 bytes a row), label counts, class counts and the
regression target's mean and standard deviation, volume. Distinct counts keep a 64-bit hash per
distinct value (8 bytes, 16 with its count for text columns beyond :data:`KEEP_VALUES` distinct
values, whose value list for the mixed-type and personal-data scans is then the first
:data:`KEEP_VALUES` values seen).

Sampled (a seeded sample of :data:`SAMPLE_ROWS` rows, :class:`omgmagics.io.rowsample.RowSample`):
outlier fences and shares, single-feature (leakage and proxy) scores, the regression target's
skewness, the time column's format, the profile. A table of at most that many rows is its own sample,
so its audit is the in-memory one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SAMPLE_ROWS = 100_000   # = audit.PROFILE_MAX_ROWS: the profile takes the same sample
KEEP_VALUES = 50_000    # distinct values kept per text column (their counts stay exact)
FLOAT_DISTINCT_ROWS = 200_000  # as checks.column_facts: exact float distinct counts up to this size


def _values(uniques: Any) -> list[Any]:
    return list(np.asarray(uniques, dtype=object)) if isinstance(uniques, pd.Categorical) \
        else uniques.tolist()


class _Hashes:
    """Distinct values of a column as sorted 64-bit hashes, with their counts when asked."""

    def __init__(self, counts: bool = False):
        self.keys = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64) if counts else None

    def add(self, s: pd.Series) -> None:
        s = s.dropna()
        if not len(s):
            return
        h = pd.util.hash_pandas_object(s, index=False).to_numpy()
        if self.counts is None:
            self.keys = np.union1d(self.keys, h)
            return
        keys, cnt = np.unique(h, return_counts=True)
        pos = np.searchsorted(self.keys, keys)
        old = pos < len(self.keys)
        old[old] = self.keys[pos[old]] == keys[old]
        self.counts[pos[old]] += cnt[old]
        k = np.concatenate([self.keys, keys[~old]])
        order = np.argsort(k, kind="stable")
        self.keys, self.counts = k[order], np.concatenate([self.counts, cnt[~old]])[order]

    def __len__(self) -> int:
        return len(self.keys)


class _Counts:
    """Value counts of a column in order of first appearance; beyond `keep` distinct values only
    the first `keep` are counted by value, and every value by hash (exact distinct and top count)."""

    def __init__(self, keep: int = KEEP_VALUES):
        self.keep = keep
        self.counts: dict[Any, int] = {}
        self.hashes: _Hashes | None = None

    def add(self, s: pd.Series) -> None:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        tally = np.bincount(codes[codes >= 0], minlength=len(uniques)).tolist()
        values = _values(uniques)
        d = self.counts
        if self.hashes is None and len(d) + len(values) > self.keep \
                and len(d) + sum(v not in d for v in values) > self.keep:
            # from now on every value is also counted by hash, those counted so far included
            self.hashes = _Hashes(counts=True)
            self.hashes.add(pd.Series(list(d), dtype=s.dtype).repeat(list(d.values())))
        if self.hashes is not None:
            self.hashes.add(s)
        for value, n in zip(values, tally, strict=True):
            if value in d:
                d[value] += n
            elif len(d) < self.keep:
                d[value] = n

    @property
    def distinct(self) -> int:
        return len(self.hashes) if self.hashes is not None else len(self.counts)

    @property
    def top(self) -> int:
        if self.hashes is not None and len(self.hashes):
            return int(self.hashes.counts.max())
        return max(self.counts.values()) if self.counts else 0

    def series(self) -> pd.Series:
        """As ``value_counts()``: most frequent first, ties in order of first appearance."""
        tally = np.fromiter(self.counts.values(), dtype=np.int64, count=len(self.counts))
        order = np.argsort(-tally, kind="stable")
        index = pd.Index(list(self.counts))
        return pd.Series(tally[order], index=index.take(order) if len(index) else index)

    def value_counts(self) -> pd.Series:
        """Ordered exactly as pandas' ``value_counts()`` orders them."""
        s = pd.Series(list(self.counts.values()), index=pd.Index(list(self.counts)), name="count",
                      dtype=np.int64)
        return s.sort_values(ascending=False)


@dataclass
class Scan:
    """What one pass over a table gathered (see the module docstring)."""

    rows: int
    dtypes: dict[str, Any]
    missing: dict[str, int]
    counts: dict[str, _Counts]
    distinct: dict[str, int | None]
    minmax: dict[str, tuple[float, float]]
    row_hashes: np.ndarray
    sample: pd.DataFrame
    target_sums: tuple[float, float, float] | None = None  # n, mean, M2 (Chan et al.)
    notes: dict[str, Any] = field(default_factory=dict)

    def target_stats(self, brief: Any) -> dict[str, Any]:
        """The exact facts about the target that ``Brief.check_data`` needs."""
        target = brief.target
        out: dict[str, Any] = {"rows": self.rows, "missing": dict(self.missing)}
        if target in self.counts:
            out["target_counts"] = self.counts[target].value_counts()
        if target in self.distinct:
            out["target_distinct"] = self.distinct[target]
        if self.target_sums is not None:
            n, mean, m2 = self.target_sums
            out["target_mean"] = mean if n else float("nan")
            out["target_std"] = float(np.sqrt(m2 / (n - 1))) if n > 1 else float("nan")
        return out


def _is_text(dtype: Any) -> bool:
    from .checks import _is_text as text

    empty = pd.Series([], dtype=dtype)
    return text(empty) or pd.api.types.is_bool_dtype(empty)


def scan(source: Any, brief: Any, *, sample_rows: int = SAMPLE_ROWS, seed: int = 0,
         progress: Callable[..., Any] | None = None) -> Scan:
    """One pass over `source` (a :class:`omgmagics.io.sources.Source`)."""
    from ..io.rowsample import RowSample

    dtypes = {str(c): t for c, t in source.dtypes().items()}
    n_total = int(source.rows)
    texty = {c for c, t in dtypes.items() if _is_text(t)}
    counted = set(texty) | {c for c in (brief.target, *brief.sensitive) if c in dtypes}
    floats = {c for c, t in dtypes.items() if c not in texty and pd.api.types.is_float_dtype(t)}
    missing = dict.fromkeys(dtypes, 0)
    counts = {c: _Counts() for c in counted}
    hashes = {c: _Hashes() for c in dtypes if c not in texty
              and (c not in floats or n_total <= FLOAT_DISTINCT_ROWS)}
    minmax: dict[str, tuple[float, float]] = {}
    row_hashes = []
    sample = RowSample(sample_rows, seed)
    regression = brief.task == "regression" and brief.target in dtypes
    tn, tmean, tm2 = 0.0, 0.0, 0.0
    frames = source.frames()
    if progress is not None:
        batch = max(1, int(getattr(source, "batch_rows", 1)))
        frames = progress(frames, total=-(-n_total // batch) or 1, desc="audit pass")
    rows = 0
    for df in frames:
        df = df.set_axis([str(c) for c in df.columns], axis=1)
        rows += len(df)
        row_hashes.append(pd.util.hash_pandas_object(df, index=False).to_numpy())
        sample.add(df)
        for col in dtypes:
            s = df[col]
            missing[col] += int(s.isna().sum())
            if col in counts:
                counts[col].add(s)
            if col in hashes:
                hashes[col].add(s)
            if col in floats and s.notna().any():
                lo, hi = float(s.min()), float(s.max())
                old = minmax.get(col, (lo, hi))
                minmax[col] = (min(old[0], lo), max(old[1], hi))
        if regression:
            y = pd.to_numeric(df[brief.target], errors="coerce").dropna().to_numpy(dtype=float)
            if len(y):  # Chan et al.: merge the batch's mean and M2 into the running ones
                bn, bmean = float(len(y)), float(y.mean())
                bm2 = float(((y - bmean) ** 2).sum())
                delta = bmean - tmean
                total = tn + bn
                tm2 += bm2 + delta ** 2 * tn * bn / total
                tmean += delta * bn / total
                tn = total
    distinct: dict[str, int | None] = {}
    for col in dtypes:
        if col in texty:
            distinct[col] = counts[col].distinct
        elif col in hashes:
            distinct[col] = len(hashes[col])
        else:
            distinct[col] = None
    frame = sample.frame(source.dtypes())
    if frame is None:
        frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    return Scan(rows=rows, dtypes=dtypes, missing=missing, counts=counts, distinct=distinct,
                minmax=minmax, row_hashes=np.concatenate(row_hashes) if row_hashes else
                np.empty(0, dtype=np.uint64), sample=frame,
                target_sums=(tn, tmean, tm2) if regression else None,
                notes={"sampled": len(frame) < rows, "sample_rows": len(frame)})


def facts_from_scan(sc: Scan, brief: Any) -> Any:
    """The checklist's :class:`~.checks.Facts` from a scan: counts exact, codes from the sample."""
    from .checks import Facts
    from .tables import codes_for, factorized, feature_columns

    df = sc.sample
    n = sc.rows
    features = feature_columns(df, brief)
    roles = {brief.target: "target", brief.id_column: "id", brief.time_column: "time"}
    rows, counts = [], {}
    for name, dtype in sc.dtypes.items():
        role = roles.get(name) or ("excluded" if name in brief.exclude_columns else "feature")
        if name in brief.sensitive:
            role += ", sensitive"
        non_null = n - sc.missing[name]
        n_unique = sc.distinct[name]
        top = np.nan
        if _is_text(dtype):
            c = sc.counts[name]
            counts[name] = c.series()
            top = float(c.top / non_null) if non_null else 0.0
        elif pd.api.types.is_float_dtype(dtype) and n_unique is None:
            n_unique = -1
            lo_hi = sc.minmax.get(name)
            if non_null and lo_hi is not None and lo_hi[0] == lo_hi[1]:
                n_unique = 1
        n_unique = -1 if n_unique is None else n_unique
        rows.append({"column": name, "role": role, "dtype": str(dtype),
                     "missing": float(sc.missing[name] / n), "distinct": n_unique if n_unique >= 0 else None,
                     "distinct share": (n_unique / non_null) if n_unique >= 0 and non_null else None,
                     "top value share": top})
    table = pd.DataFrame(rows)
    factors = {c: factorized(df[c]) for c in counts}
    codes = {c: codes_for(df[c], factors=factors[c] if c in factors else None) for c in features}
    extra = {}
    for attr in brief.sensitive:
        if attr not in counts and attr in sc.counts and sc.counts[attr].distinct <= 20:
            extra[attr] = sc.counts[attr].value_counts()
    return Facts(n, features, table, counts, codes, {c: f[0] for c, f in factors.items()},
                 extra_counts=extra)
