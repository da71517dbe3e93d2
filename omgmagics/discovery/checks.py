"""The data audit checklist, part 1 (core layer): rules, per-column facts, sources and quality.

Each item is ``pass``, ``warn`` or ``fail`` with its evidence and the rule that decided it. Every check
is vectorized pandas/numpy over all rows (one ``factorize`` per text column, one row hash for
duplicates, ``bincount`` contingency tables for leakage), so a 1,000,000 x 30 table takes seconds.
Volume and labels are in :mod:`.checklist`, personal data in :mod:`.privacy`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .tables import (
    codes_for,
    factorized,
    feature_columns,
    is_numeric,
    sample_values,
)

# The thresholds every rule states; kept in one place and written into data_audit.json.
RULES: dict[str, float] = {
    "missing_warn": 0.05,        # a column missing more than this share is worth a look
    "duplicates_warn": 0.005,    # exact duplicate rows
    "duplicates_fail": 0.10,
    "outlier_fence_iqr": 3.0,    # Tukey's far-out fences: Q1 - 3 IQR, Q3 + 3 IQR
    "outliers_warn": 0.01,
    "rows_per_feature": 10,      # one-in-ten rule: labeled rows per feature
    "events_per_feature": 10,    # rows of the rarest class per feature (Peduzzi et al. 1996)
    "min_rows_warn": 1000,
    "min_rows_fail": 100,
    "min_class_rows": 10,        # fewer cannot be split for cross-validation and a test set
    "imbalance_warn": 10.0,      # majority / minority class rows
    "leak_score": 0.85,          # out-of-sample skill of one feature alone on the target (Brier)
    "leak_score_regression": 0.95,  # ... (R squared: binning a copy of the target keeps ~0.99)
    "proxy_score": 0.3,          # ... on a sensitive attribute
    "small_group": 0.01,         # a sensitive group below this share gets wide fairness intervals
}
SECTIONS = ["sources", "quality", "volume", "labels", "privacy"]


def leak_limit(task: str) -> float:
    """The single-feature score from which a feature is a leakage suspect."""
    return RULES["leak_score"] if task == "classification" else RULES["leak_score_regression"]


@dataclass
class Item:
    """One checklist line."""

    id: str
    section: str
    check: str
    status: str
    evidence: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Facts:
    """Per-column statistics computed once and shared by the checks."""

    n: int
    features: list[str]
    columns: pd.DataFrame            # one row per column
    counts: dict[str, pd.Series]     # value_counts of text/categorical columns
    codes: dict[str, tuple[np.ndarray, int]]  # small codes of features (see tables.codes_for)
    factors: dict[str, np.ndarray]   # full factorize codes of text columns (-1: missing)
    # a table read in batches (.stream): exact value counts of sensitive attributes that are not text
    # (at most 20 values); None for a table in memory
    extra_counts: dict[str, pd.Series] | None = None


def _pct(x: float) -> str:
    return f"{x:.1%}" if x >= 0.001 or x == 0 else f"{x:.2%}"


def _list(pairs: list[tuple[str, str]], limit: int = 5) -> str:
    shown = ", ".join(f"{a} ({b})" for a, b in pairs[:limit])
    return shown + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


def _is_text(s: pd.Series) -> bool:
    return (s.dtype == object or pd.api.types.is_string_dtype(s)
            or isinstance(s.dtype, pd.CategoricalDtype)) and not is_numeric(s)


def column_facts(df: pd.DataFrame, brief: Any) -> Facts:
    """One pass over the columns: dtype, missing share, distinct values, top value share, role."""
    n = len(df)
    features = feature_columns(df, brief)
    missing = df.isna().sum()
    rows, counts, factors, uniq = [], {}, {}, {}
    roles = {brief.target: "target", brief.id_column: "id", brief.time_column: "time"}
    for col in df.columns:
        s = df[col]
        name = str(col)
        role = roles.get(name) or ("excluded" if name in brief.exclude_columns else "feature")
        if name in brief.sensitive:
            role += ", sensitive"
        non_null = n - int(missing[col])
        if _is_text(s) or pd.api.types.is_bool_dtype(s):
            # One factorize per text column gives its value counts, its row-hash input and its codes.
            codes, uniques = factorized(s)
            factors[name], uniq[name] = codes, uniques
            tally = np.bincount(codes[codes >= 0], minlength=len(uniques))
            order = np.argsort(-tally, kind="stable")
            vc = pd.Series(tally[order], index=uniques.take(order) if len(uniques) else uniques)
            counts[name] = vc
            n_unique = len(vc)
            top = float(vc.iloc[0] / non_null) if non_null else 0.0
        elif is_numeric(s) and pd.api.types.is_float_dtype(s):
            # Floats: exact distinct counts cost a hash table each; min == max settles "constant".
            n_unique = int(s.nunique()) if n <= 200_000 else -1
            top = np.nan
            if n_unique == -1 and non_null and s.min() == s.max():
                n_unique = 1
        else:
            n_unique = int(s.nunique())
            top = np.nan
        rows.append({"column": name, "role": role, "dtype": str(s.dtype),
                     "missing": float(missing[col] / n), "distinct": n_unique if n_unique >= 0 else None,
                     "distinct share": (n_unique / non_null) if n_unique >= 0 and non_null else None,
                     "top value share": top})
    table = pd.DataFrame(rows)
    codes = {c: codes_for(df[c], factors=(factors[c], uniq[c]) if c in factors else None)
             for c in features}
    return Facts(n, features, table, counts, codes, factors)


# --- sources -------------------------------------------------------------------------------------

def check_sources(source: dict[str, Any], lineage: list[dict[str, Any]]) -> Item:
    rule = "each table is traced to a source: a file (path, sha256), the collection lineage or the demo data"
    parts = []
    for rec in lineage:
        where = rec.get("location") or rec.get("source") or rec.get("path") or "?"
        extra = ", ".join(f"{k} {str(rec[k])[:12] + '...' if k == 'sha256' else rec[k]}"
                          for k in ("rows", "sha256") if rec.get(k) is not None)
        parts.append(f"{where}" + (f" ({extra})" if extra else ""))
    kind = source.get("kind")
    if kind == "demo":
        parts.insert(0, f"bundled demo data: {source.get('location')}")
    elif kind == "file":
        sha = source.get("sha256")
        parts.insert(0, f"file {source.get('location')}" + (f" (sha256 {sha[:12]}...)" if sha else ""))
    elif kind == "dataframe":
        declared = source.get("declared")
        note = f"notebook DataFrame '{source.get('location')}'"
        if declared:
            note += f", taken from the project's declared source {declared}"
        parts.insert(0, note)
    identified = kind in ("demo", "file") or bool(lineage) or bool(source.get("declared"))
    status = "pass" if identified else "warn"
    evidence = "; ".join(parts) or "no source recorded"
    if not identified:
        evidence += (". Record where the table comes from: collect it with the `data collect` verb or set "
                     "data.source in omg.yaml")
    return Item("sources.identified", "sources", "Data sources identified", status, evidence, rule)


# --- quality -------------------------------------------------------------------------------------

def check_missing(facts: Facts) -> Item:
    t = facts.columns
    share = t.set_index("column")["missing"]
    total = float(share.mean())
    high = share[share > RULES["missing_warn"]].sort_values(ascending=False)
    rule = f"warn when a column misses more than {_pct(RULES['missing_warn'])} of its values"
    if high.empty:
        evidence = f"{_pct(total)} of all cells missing; no column above {_pct(RULES['missing_warn'])}"
        some = share[share > 0].sort_values(ascending=False)
        if not some.empty:
            evidence += "; some missing in " + _list([(c, _pct(v)) for c, v in some.items()])
        return Item("quality.missing", "quality", "Missing values", "pass", evidence, rule)
    evidence = (f"{len(high)} column(s) above {_pct(RULES['missing_warn'])}: "
                f"{_list([(c, _pct(v)) for c, v in high.items()])}; {_pct(total)} of all cells missing. "
                "Impute or drop them in phase 2 (missing-value indicators keep the signal)")
    return Item("quality.missing", "quality", "Missing values", "warn", evidence, rule)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads the bits of 64-bit keys (vectorized, wraps on overflow)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _row_hashes(df: pd.DataFrame, factors: dict[str, np.ndarray]) -> np.ndarray:
    """A 64-bit hash per row: equal rows, equal hashes (text via its factorize codes)."""
    h = np.zeros(len(df), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, col in enumerate(df.columns):
            if str(col) in factors:
                key = factors[str(col)].astype(np.int64).view(np.uint64)
            else:
                s = df[col]
                if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
                    s = pd.Series(s.array.asi8, index=s.index)  # NaT is one fixed integer
                try:
                    v = s.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # -0.0 == 0.0
                    v[np.isnan(v)] = np.nan  # one NaN bit pattern
                    key = v.view(np.uint64)
                except (TypeError, ValueError):
                    key = factorized(s.astype(str))[0].astype(np.int64).view(np.uint64)
            h = _mix(h ^ (key + np.uint64(0x9E3779B97F4A7C15) * np.uint64(i + 1)))
    return h


def check_duplicates(df: pd.DataFrame, facts: Facts, hashes: np.ndarray | None = None
                     ) -> tuple[Item, dict[str, Any]]:
    """Exact duplicate rows; `hashes`: a 64-bit hash per row computed elsewhere (a table read in
    batches), else from `df`."""
    n = facts.n
    codes, _ = pd.factorize(_row_hashes(df, facts.factors) if hashes is None else hashes)
    # factorize numbers values in order of first appearance: a row is a first occurrence exactly
    # when its code exceeds every earlier code.
    seen = np.maximum.accumulate(codes)
    first = np.flatnonzero(codes > np.r_[-1, seen[:-1]])
    origin = first[codes]
    dup_pos = np.flatnonzero(origin != np.arange(n))
    share = len(dup_pos) / n
    rule = (f"warn above {_pct(RULES['duplicates_warn'])} exact duplicate rows, fail above "
            f"{_pct(RULES['duplicates_fail'])} when a column has many distinct values (copies, not "
            "coincidences)")
    detail: dict[str, Any] = {"duplicate_rows": int(len(dup_pos)), "share": share}
    if not len(dup_pos):
        return Item("quality.duplicates", "quality", "Duplicate rows", "pass",
                    "no exact duplicate rows", rule), detail
    # The longest block of consecutive rows that repeats a consecutive earlier block.
    orig = origin[dup_pos]
    breaks = np.flatnonzero((np.diff(dup_pos) != 1) | (np.diff(orig) != 1)) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, len(dup_pos)]
    k = int(np.argmax(ends - starts))
    length = int(ends[k] - starts[k])
    evidence = f"{len(dup_pos):,} rows ({_pct(share)}) repeat an earlier row"
    if length >= 10:
        a, b = int(dup_pos[starts[k]]), int(dup_pos[ends[k] - 1])
        evidence += (f"; the largest block, row positions {a:,}-{b:,}, repeats rows "
                     f"{int(orig[starts[k]]):,}-{int(orig[ends[k] - 1]):,} (data loaded twice?)")
        detail["largest_block"] = {"rows": [a, b], "repeats": [int(orig[starts[k]]),
                                                                int(orig[ends[k] - 1])]}
    distinct = facts.columns["distinct share"].fillna(1.0)
    copies = bool((distinct > 0.5).any()) or length >= 10
    status = "pass" if share <= RULES["duplicates_warn"] else "warn"
    if share > RULES["duplicates_fail"] and copies:
        status = "fail"
    if status != "pass":
        evidence += (". Drop them before splitting (`df.drop_duplicates()`), or rows land in both train "
                     "and test and inflate the scores")
        if share > RULES["duplicates_fail"] and not copies:
            evidence += "; every column has few distinct values, so some identical rows are expected"
    return Item("quality.duplicates", "quality", "Duplicate rows", status, evidence, rule), detail


def check_constant(facts: Facts) -> Item:
    t = facts.columns
    const = t[(t["distinct"] == 1)]["column"].tolist()
    near = t[(t["top value share"] >= 0.995) & (t["distinct"] > 1)]["column"].tolist()
    rule = "warn when a column holds a single distinct value (it carries no information)"
    if not const:
        evidence = "no constant column"
        if near:
            evidence += f"; nearly constant (one value in 99.5%+ of rows): {', '.join(near[:5])}"
        return Item("quality.constant", "quality", "Constant columns", "pass", evidence, rule)
    evidence = (f"{len(const)} constant column(s): {', '.join(const[:8])}. Drop them or list them in "
                "data.exclude_columns")
    return Item("quality.constant", "quality", "Constant columns", "warn", evidence, rule)


def check_mixed_types(df: pd.DataFrame, facts: Facts) -> Item:
    rule = "warn when a text column mixes value types or holds numbers stored as text (90%+ parse)"
    found = []
    for col, vc in facts.counts.items():
        if df[col].dtype != object or len(vc) == 0:
            continue
        values = vc.index[:5000].to_series()
        kinds = values.map(lambda v: type(v).__name__).unique()
        if len(kinds) > 1:
            found.append((col, "types " + "/".join(sorted(kinds))))
            continue
        if kinds[0] == "str":
            parsed = pd.to_numeric(values, errors="coerce")
            weights = vc.to_numpy()[: len(values)]
            share = float(weights[parsed.notna().to_numpy()].sum() / weights.sum())
            if share >= 0.9:
                bad = values[parsed.isna()].head(1).tolist()
                found.append((col, f"{_pct(share)} numbers as text" + (f", e.g. {bad[0]!r}" if bad else "")))
    if not found:
        return Item("quality.mixed_types", "quality", "Mixed types", "pass",
                    "every column holds one type of value", rule)
    return Item("quality.mixed_types", "quality", "Mixed types", "warn",
                f"{_list(found)}. Convert them to one type in phase 2 (validate --schema)", rule)


def check_outliers(df: pd.DataFrame, facts: Facts) -> tuple[Item, dict[str, float]]:
    k = RULES["outlier_fence_iqr"]
    rule = (f"Tukey far-out fences [Q1 - {k:g} IQR, Q3 + {k:g} IQR] (quartiles from a seeded sample of "
            f"200,000 values when larger); warn when a numeric feature has more than "
            f"{_pct(RULES['outliers_warn'])} of values outside, or infinite values")
    shares, infinite, flat = {}, [], []
    for col in facts.features:
        s = df[col]
        if not is_numeric(s):
            continue
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        inf = np.isinf(v)
        if inf.any():
            infinite.append((col, f"{int(inf.sum()):,} infinite"))
            v = np.where(inf, np.nan, v)
        finite = v[~np.isnan(v)]
        if len(finite) < 10:
            continue
        q1, q3 = np.quantile(sample_values(finite), [0.25, 0.75])
        iqr = q3 - q1
        if iqr == 0:
            flat.append(col)
            continue
        out = (finite < q1 - k * iqr) | (finite > q3 + k * iqr)
        shares[col] = float(out.mean())
    high = sorted(((c, v) for c, v in shares.items() if v > RULES["outliers_warn"]), key=lambda x: -x[1])
    parts = []
    if high:
        parts.append("far-out values in " + _list([(c, _pct(v)) for c, v in high]))
    if infinite:
        parts.append("infinite values in " + _list(infinite))
    status = "warn" if parts else "pass"
    if not parts:
        parts.append(f"{len(shares)} numeric feature(s) checked, none above {_pct(RULES['outliers_warn'])}")
    if flat:
        parts.append(f"not judged (half the values or more are one value, IQR 0): {', '.join(flat[:5])}")
    evidence = "; ".join(parts)
    if status == "warn":
        evidence += ". Check they are real (clip, log-transform or keep: tree models are robust)"
    return Item("quality.outliers", "quality", "Outliers", status, evidence, rule), shares
