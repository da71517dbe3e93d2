"""Schema validation (core layer): the rules of a checked schema (:mod:`.schema`) run on a table,
whole or read in batches, every violation reported with its count and examples.

The per-row rules (dtype, nullable, min, max, allowed, regex) run through pandera on each batch; the
rules across rows are kept across batches: ``unique`` by a 64-bit hash per distinct value (with its
count and first row), the row-count bounds by the total. Counts are exact, and the examples of a rule
are its first distinct failing values in table order, so a table gives the same violations read
whole or in batches of any size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..errors import DataError
from ..results import Report
from ._util import examples

# pandera's own check names -> the rule names of our format
PANDERA_RULES = {"not_nullable": "nullable", "field_uniqueness": "unique",
                 "column_in_dataframe": "required", "column_in_schema": "allow_extra_columns"}
VIOLATION_COLUMNS = ["column", "rule", "expected", "count", "examples"]
# the order of a column's rules in the report (table rules and extra columns come first)
RULE_ORDER = ("required", "dtype", "nullable", "unique", "min", "max", "allowed", "regex")
N_EXAMPLES = 5


class _Missing:
    """Missing-value masks computed once per column and validation run.

    pandera's default (``ignore_na=True``) tests every check's column for NaN again, which costs a full
    pass over the column per rule on text columns; our checks instead share one mask per column, treat
    missing values as passing (``nullable`` is pandera's own rule) and return a plain ``True`` when the
    whole column passes, so pandera has no failure cases to collect.
    """

    def __init__(self) -> None:
        self.masks: dict[Any, Any] = {}

    def of(self, s: Any) -> Any:
        key = (s.name, len(s))
        if key not in self.masks:
            self.masks[key] = s.isna()
        return self.masks[key]

    def result(self, s: Any, ok: Any) -> Any:
        """`ok` (a boolean Series or a bool) with missing values counted as passing."""
        if isinstance(ok, bool):
            return ok
        ok = ok.fillna(False).astype(bool) if ok.dtype != bool else ok
        if bool(ok.all()):
            return True
        ok = ok | self.of(s)
        return True if bool(ok.all()) else ok


def _dtype_check(kind: str, missing: _Missing):
    import numpy as np
    import pandas as pd
    from pandas.api import types as t

    def isinstance_mask(s: Any, types: tuple) -> Any:
        return s.map(lambda v: isinstance(v, types) and not isinstance(v, (bool, np.bool_)))

    def check(s: Any) -> Any:
        if kind == "bool":
            return True if t.is_bool_dtype(s) else \
                missing.result(s, s.map(lambda v: isinstance(v, (bool, np.bool_))))
        if t.is_bool_dtype(s):
            return pd.Series(False, index=s.index)
        if kind == "int":
            if t.is_integer_dtype(s):
                return True
            if t.is_float_dtype(s):
                return missing.result(s, s % 1 == 0)
            if s.dtype == object:
                return missing.result(s, isinstance_mask(s, (int, np.integer)))
        elif kind == "float":
            if t.is_numeric_dtype(s):
                return True
            if s.dtype == object:
                return missing.result(s, isinstance_mask(s, (int, float, np.number)))
        elif kind == "datetime":
            if t.is_datetime64_any_dtype(s):
                return True
        else:  # str, category
            if isinstance(s.dtype, (pd.CategoricalDtype, pd.StringDtype)) or s.dtype == object and \
                    pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
                return True  # C-speed: no per-value Python call when every value is text
            if s.dtype == object:
                return missing.result(s, s.map(lambda v: isinstance(v, str)))
        return missing.result(s, pd.Series(False, index=s.index))
    return check


def _bound_check(kind: str, bound: str, value: Any, missing: _Missing):
    from pandas.api import types as t

    def check(s: Any) -> Any:
        ok = t.is_datetime64_any_dtype(s) if kind == "datetime" else \
            t.is_numeric_dtype(s) and not t.is_bool_dtype(s)
        if not ok:
            return True  # the dtype rule already reports this column
        return missing.result(s, s >= value if bound == "min" else s <= value)
    return check


def _allowed_check(allowed: list[Any], missing: _Missing):
    def check(s: Any) -> Any:
        return missing.result(s, s.isin(allowed))
    return check


def _regex_check(pattern: str, missing: _Missing):
    def check(s: Any) -> Any:
        text = s if s.dtype == object else s.astype(str)
        return missing.result(s, text.str.fullmatch(pattern))
    return check


def _compile(schema: dict[str, Any], per_batch: bool = False) -> tuple[Any, _Missing]:
    import pandera.pandas as pa

    missing = _Missing()
    columns = {}
    for name, rules in schema["columns"].items():
        kind = rules["dtype"]
        checks = [pa.Check(_dtype_check(kind, missing), name="dtype", ignore_na=False)]
        for bound in ("min", "max"):
            if bound in rules:
                checks.append(pa.Check(_bound_check(kind, bound, rules[bound], missing), name=bound,
                                       ignore_na=False))
        if "allowed" in rules:
            checks.append(pa.Check(_allowed_check(list(rules["allowed"]), missing), name="allowed",
                                   ignore_na=False))
        if "regex" in rules:
            checks.append(pa.Check(_regex_check(rules["regex"], missing), name="regex",
                                   ignore_na=False))
        columns[name] = pa.Column(None, checks=checks, nullable=rules.get("nullable", False),
                                  unique=rules.get("unique", False) and not per_batch,
                                  required=rules.get("required", True), name=name)
    table = schema.get("table", {})
    frame_checks = []
    if table.get("min_rows") is not None and not per_batch:
        lo = table["min_rows"]
        frame_checks.append(pa.Check(lambda df, lo=lo: len(df) >= lo, name="min_rows"))
    if table.get("max_rows") is not None and not per_batch:
        hi = table["max_rows"]
        frame_checks.append(pa.Check(lambda df, hi=hi: len(df) <= hi, name="max_rows"))
    return pa.DataFrameSchema(columns, checks=frame_checks,
                              strict=not table.get("allow_extra_columns", True)), missing


def compile_schema(schema: dict[str, Any]) -> Any:
    """The checked schema as one ``pandera.DataFrameSchema`` (no coercion, every rule a named check).

    Compile once per validation: the checks share that run's missing-value masks.
    """
    return _compile(schema)[0]


def _expected(schema: dict[str, Any], column: Any, rule: str, dtypes: dict[str, Any]) -> str:
    table = schema.get("table", {})
    if rule in ("min_rows", "max_rows"):
        return f"{rule} {table.get(rule)}"
    if rule == "allow_extra_columns":
        return "only the schema's columns"
    rules = schema["columns"].get(column, {})
    if rule == "dtype":
        actual = f" (column dtype {dtypes[column]})" if column in dtypes else ""
        return f"{rules.get('dtype')}{actual}"
    if rule == "nullable":
        return "no missing values"
    if rule == "unique":
        return "unique values"
    if rule == "required":
        return "column present"
    if rule == "allowed":
        allowed = rules.get("allowed", [])
        text = ", ".join(map(str, allowed[:8])) + (" ..." if len(allowed) > 8 else "")
        return f"one of {text}"
    return f"{rule} {rules.get(rule)}"


class _Duplicates:
    """Values of one column seen so far, as 64-bit hashes with their count and first row (24 bytes
    per distinct value), plus the values of the earliest duplicated ones (for examples)."""

    MISSING = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64)
        self.first = np.empty(0, dtype=np.int64)
        self.shown: dict[int, tuple[int, Any]] = {}  # hash -> (first row, value), the earliest few

    def add(self, s: Any, offset: int) -> None:
        import pandas as pd

        if not len(s):
            return
        h = pd.util.hash_pandas_object(s, index=False).to_numpy()
        h[s.isna().to_numpy()] = self.MISSING
        keys, idx, cnt = np.unique(h, return_index=True, return_counts=True)
        pos = np.searchsorted(self.keys, keys)
        old = pos < len(self.keys)
        old[old] = self.keys[pos[old]] == keys[old]
        before = np.zeros(len(keys), dtype=np.int64)
        before[old] = self.counts[pos[old]]
        first = np.where(old, 0, offset + idx)
        first[old] = self.first[pos[old]]
        self.counts[pos[old]] += cnt[old]
        new = ~old
        if new.any():
            k = np.concatenate([self.keys, keys[new]])
            order = np.argsort(k, kind="stable")
            self.keys = k[order]
            self.counts = np.concatenate([self.counts, cnt[new]])[order]
            self.first = np.concatenate([self.first, first[new]])[order]
        became = np.flatnonzero((before < 2) & (before + cnt >= 2))
        values = s.to_numpy()
        for j in became[np.argsort(first[became], kind="stable")][:N_EXAMPLES]:
            self.shown[int(keys[j])] = (int(first[j]), values[idx[j]])
        if len(self.shown) > N_EXAMPLES:
            keep = sorted(self.shown.items(), key=lambda kv: kv[1][0])[:N_EXAMPLES]
            self.shown = dict(keep)

    def result(self) -> tuple[int, list[Any]]:
        dup = self.counts >= 2
        count = int(self.counts[dup].sum())
        shown = [v for _, v in sorted(self.shown.values(), key=lambda fv: fv[0])]
        return count, examples(shown, N_EXAMPLES)


class Violations:
    """Violations of a checked schema gathered over the batches of one table, in table order.

    ``add(batch)`` for each batch in order, then :meth:`table`. The columns and dtypes are those of
    the whole table (`dtypes`, default: the first batch's).
    """

    def __init__(self, schema: dict[str, Any], dtypes: dict[str, Any] | None = None):
        self.schema = schema
        self.compiled, self.missing = _compile(schema, per_batch=True)
        self.dtypes = dict(dtypes) if dtypes is not None else None
        self.rows = 0
        self.found: dict[tuple[str, str], list[Any]] = {}
        self.unique = {name: _Duplicates() for name, r in schema["columns"].items() if r.get("unique")}
        self.columns: list[str] | None = None

    def add(self, df: Any) -> None:
        import pandas as pd
        from pandera.errors import SchemaErrors

        first = self.columns is None
        if first:
            self.columns = [c for c in df.columns]
            if self.dtypes is None:
                self.dtypes = {c: t for c, t in df.dtypes.items()}
        if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.step != 1:
            df = df.set_axis(pd.RangeIndex(len(df)), axis=0)  # row positions for the examples' order
        self.missing.masks.clear()
        cases = None
        try:
            with warnings.catch_warnings():
                # pandera's own concat of failure cases trips a pandas FutureWarning; not ours to show
                warnings.simplefilter("ignore", FutureWarning)
                self.compiled.validate(df, lazy=True, inplace=True)  # no coercion: nothing to copy
        except SchemaErrors as exc:
            cases = exc.failure_cases
        for name, dups in self.unique.items():
            if name in df.columns:
                dups.add(df[name], self.rows)
        self.rows += len(df)
        if cases is None:
            return
        for (column, check), grp in cases.groupby(["column", "check"], dropna=False, sort=False):
            rule = PANDERA_RULES.get(check, check)
            if rule in ("required", "allow_extra_columns"):
                if first:
                    for name in grp["failure_case"]:
                        self.found[(name, rule)] = [1, [name]]
                continue
            grp = grp.sort_values("index", kind="stable")  # pandera's own sort is not stable
            entry = self.found.setdefault((column, rule), [0, []])
            entry[0] += len(grp)
            if len(entry[1]) < N_EXAMPLES:
                entry[1] = examples(list(entry[1]) + examples(grp["failure_case"], N_EXAMPLES),
                                    N_EXAMPLES)

    def table(self) -> Any:
        """The violations: column, rule, expected, count, examples (empty: the data passes).

        Order: the table's row-count rules, extra columns, then each schema column in schema order
        with its rules in the order of :data:`RULE_ORDER`.
        """
        import pandas as pd

        found = dict(self.found)
        for name, dups in self.unique.items():
            count, shown = dups.result()
            if count:
                found[(name, "unique")] = [count, shown]
        table = self.schema.get("table", {})
        rows = []
        for rule in ("min_rows", "max_rows"):
            bound = table.get(rule)
            if bound is not None and (self.rows < bound if rule == "min_rows" else self.rows > bound):
                rows.append({"column": "(table)", "rule": rule, "expected": f"{rule} {bound}",
                             "count": 1, "examples": [f"{self.rows} rows"]})
        dtypes = self.dtypes or {}
        extra = [c for c in (self.columns or []) if (c, "allow_extra_columns") in found]
        keys = [(c, "allow_extra_columns") for c in extra]
        keys += [(c, r) for c in self.schema["columns"] for r in RULE_ORDER if (c, r) in found]
        for column, rule in keys:
            count, shown = found[(column, rule)]
            rows.append({"column": column, "rule": rule,
                         "expected": _expected(self.schema, column, rule, dtypes),
                         "count": int(count), "examples": shown})
        return pd.DataFrame(rows, columns=VIOLATION_COLUMNS)


def find_violations(df: Any, schema: dict[str, Any]) -> Any:
    """Every violation of `schema` in `df`: a DataFrame with column, rule, expected, count, examples.

    An empty DataFrame means the data passes.
    """
    found = Violations(schema)
    found.add(df)
    return found.table()


def _report(violations: Any, schema: dict[str, Any], source: str, rows: int, columns: int,
            strict: bool) -> Report:
    n_rules = sum(len([k for k in r if k not in ("description", "required")]) + 1
                  for r in schema["columns"].values())
    n_rules += sum(1 for k in ("min_rows", "max_rows") if schema["table"].get(k) is not None)
    status = "pass" if violations.empty else "fail"
    summary = {"status": status, "rows": rows, "columns": columns,
               "schema columns": len(schema["columns"]), "rules checked": n_rules,
               "violations": len(violations),
               "violating values": int(violations["count"].sum()) if len(violations) else 0}
    report = Report(f"Schema validation of {source}: {status}", summary=summary,
                    tables={"violations": violations} if len(violations) else {},
                    data={"violations": violations.to_dict(orient="records")})
    if violations.empty:
        report.messages.append("Every rule of the schema holds on every row.")
    else:
        worst = violations.iloc[0]
        report.messages.append(
            f"{len(violations)} rule(s) broken, e.g. column '{worst['column']}' rule {worst['rule']} "
            f"({worst['count']} value(s), e.g. {worst['examples'][:3]}). Fix the data or adjust the "
            "schema if the rule was wrong.")
    if strict and not violations.empty:
        raise strict_error(report, source)
    return report


def validate_frame(df: Any, schema: dict[str, Any], source: str = "data",
                   strict: bool = False) -> Report:
    """Validate `df` against a checked `schema` and report every violation.

    Raises
    ------
    DataError
        With `strict`, when there is any violation (the message lists them).
    """
    if len(df.columns) == 0:
        raise DataError(f"{source} has no columns to validate.")
    return _report(find_violations(df, schema), schema, source, len(df), df.shape[1], strict)


GC_EVERY = 4  # batches between two full garbage collections in validate_table


def validate_table(table: Any, schema: dict[str, Any], source: str = "data", strict: bool = False,
                   progress: Callable[..., Any] | None = None,
                   each: Iterable[Callable[[Any], None]] = ()) -> Report:
    """Validate a table read in batches (a :class:`omgmagics.io.sources.Source`: a parquet file or
    hive-partitioned folder, a DataFrame) against a checked `schema`: the same report as
    :func:`validate_frame` on the whole table, in memory bounded by the batch size (plus 24 bytes per
    distinct value of each ``unique`` column).

    Parameters
    ----------
    progress : callable, optional
        ``progress(iterable, total=, desc=)`` (tqdm), advanced once per batch.
    each : callables, optional
        Also called with every batch, in order (e.g. a row sample, a content hash).

    Raises
    ------
    DataError
        With `strict`, when there is any violation (the message lists them).
    """
    dtypes = table.dtypes()
    if not dtypes:
        raise DataError(f"{source} has no columns to validate.")
    found = Violations(schema, dtypes)
    frames = table.frames()
    if progress is not None:
        batch = max(1, int(getattr(table, "batch_rows", 1)))
        frames = progress(frames, total=-(-int(table.rows) // batch) or 1, desc="validate")
    import gc

    for i, df in enumerate(frames, 1):
        found.add(df)
        for fn in each:
            fn(df)
        if i % GC_EVERY == 0:
            # pandera's checks leave pandas Series in reference cycles that only a full collection
            # frees, and Python runs one rarely in a process this size: their arrays (a few MB per
            # batch) would pile up. One collection per GC_EVERY batches costs about 0.1 s.
            del df
            gc.collect()
    return _report(found.table(), schema, source, found.rows, len(dtypes), strict)


def strict_error(report: Report, source: str = "data") -> DataError:
    """The error ``--strict`` raises for a failed validation report (listing the violations)."""
    rows = report.data.get("violations", [])
    lines = "; ".join(f"{r['column']}: {r['rule']} ({r['count']}, e.g. {r['examples'][:2]})"
                      for r in rows[:8])
    more = f" and {len(rows) - 8} more" if len(rows) > 8 else ""
    return DataError(f"Strict validation of {source} failed: {len(rows)} violation(s): {lines}{more}. "
                     "Fix the data, or correct the schema if a rule is wrong.")
