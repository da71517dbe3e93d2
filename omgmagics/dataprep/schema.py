"""Data schemas: the YAML format, inference, and validation with pandera (core layer).

The format (documented in ``docs/schema_format.md``)::

    table:
      min_rows: 1000            # row-count bounds
      max_rows: null
      allow_extra_columns: true # false: a column not listed here is a violation
    columns:
      age:
        dtype: int              # int, float, str, bool, datetime, category
        nullable: false
        min: 17
        max: 90
        description: Age in years
      workclass:
        dtype: str
        nullable: true
        allowed: [Private, State-gov]
      customer_id:
        dtype: str
        unique: true
        regex: 'C\\d{6}'        # must match the whole value

A schema compiles to one ``pandera.DataFrameSchema`` validated lazily, so the report lists every
violation at once: column, rule, count and example values.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from pathlib import Path
from typing import Any

from ..config import read_yaml, validate
from ..errors import ConfigError, DataError, unknown_choice
from ..results import Report
from ._util import examples

DTYPES = ("int", "float", "str", "bool", "datetime", "category")
NUM = (int, float)
COLUMN_SPEC: dict[str, Any] = {
    "dtype": str, "nullable": bool, "required": bool, "unique": bool,
    "min": (int, float, str, _dt.date), "max": (int, float, str, _dt.date), "allowed": list, "regex": str,
    "description": (str, type(None)),
}
TABLE_SPEC: dict[str, Any] = {"min_rows": (int, type(None)), "max_rows": (int, type(None)),
                              "allow_extra_columns": bool}
SCHEMA_SPEC: dict[str, Any] = {"table": TABLE_SPEC, "columns": dict, "version": int}
# pandera's own check names -> the rule names of our format
PANDERA_RULES = {"not_nullable": "nullable", "field_uniqueness": "unique",
                 "column_in_dataframe": "required", "column_in_schema": "allow_extra_columns"}
VIOLATION_COLUMNS = ["column", "rule", "expected", "count", "examples"]


# --- the format ------------------------------------------------------------------------------------
def check_schema(schema: Any, source: str = "schema.yaml") -> dict[str, Any]:
    """Check a loaded schema mapping and return it normalised (every column has dtype/nullable).

    Raises
    ------
    ConfigError
        For an unknown rule (with a did-you-mean), a wrong type, an unknown dtype, an invalid regex,
        min above max, or min/max/regex on a dtype they do not apply to.
    """
    if not isinstance(schema, dict) or not isinstance(schema.get("columns"), dict) \
            or not schema["columns"]:
        raise ConfigError(f"{source}: expected a 'columns:' mapping of column names to rules. "
                          "Write a starting schema with `omg data validate --infer`.")
    validate(schema, SCHEMA_SPEC, source=source)
    out: dict[str, Any] = {"table": dict(schema.get("table") or {}), "columns": {}}
    for name, rules in schema["columns"].items():
        where = f"columns.{name}"
        rules = rules or {}
        validate(rules, COLUMN_SPEC, where, source)
        rules = dict(rules)
        dtype = rules.get("dtype")
        if dtype is None:
            raise ConfigError(f"{source}: {where} has no 'dtype'. Add one of: {', '.join(DTYPES)}.")
        if dtype not in DTYPES:
            raise ConfigError(f"{source}: {where}: " + unknown_choice("dtype", dtype, DTYPES))
        rules.setdefault("nullable", False)
        for bound in ("min", "max"):
            if bound in rules:
                value = rules[bound]
                if dtype in ("int", "float") and (isinstance(value, bool) or not isinstance(value, NUM)):
                    raise ConfigError(f"{source}: {where}.{bound} must be a number for dtype {dtype}, "
                                      f"got {value!r}.")
                if dtype == "datetime":
                    rules[bound] = _timestamp(value, f"{source}: {where}.{bound}")
                if dtype not in ("int", "float", "datetime"):
                    raise ConfigError(f"{source}: {where}.{bound} applies to int, float or datetime "
                                      f"columns, not {dtype}. Use 'allowed' or 'regex' instead.")
        if "min" in rules and "max" in rules and rules["min"] > rules["max"]:
            raise ConfigError(f"{source}: {where}: min {rules['min']} is above max {rules['max']}. "
                              "Swap them.")
        if "regex" in rules:
            if dtype not in ("str", "category"):
                raise ConfigError(f"{source}: {where}.regex applies to str columns, not {dtype}.")
            try:
                re.compile(rules["regex"])
            except re.error as exc:
                raise ConfigError(f"{source}: {where}.regex {rules['regex']!r} is not a valid regular "
                                  f"expression: {exc}.") from None
        out["columns"][str(name)] = rules
    table = out["table"]
    lo, hi = table.get("min_rows"), table.get("max_rows")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{source}: table.min_rows {lo} is above table.max_rows {hi}.")
    return out


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read and check a schema YAML file (see :func:`check_schema`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The schema file {path} does not exist. Write a starting one from the data "
                          "with `omg data validate --infer` (format: docs/schema_format.md).")
    return check_schema(read_yaml(path, "schema file"), path.name)


def _timestamp(value: Any, where: str) -> Any:
    import pandas as pd

    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{where} {value!r} is not a date/time. Use ISO 8601, e.g. 2024-01-31.") from None


# --- inference -------------------------------------------------------------------------------------
def dtype_family(series: Any) -> str:
    """The schema dtype of a pandas Series: int, float, str, bool, datetime or category."""
    import pandas as pd
    from pandas.api import types as t

    if t.is_bool_dtype(series):
        return "bool"
    if t.is_integer_dtype(series):
        return "int"
    if t.is_float_dtype(series):
        values = series.dropna()
        return "int" if len(values) and bool((values % 1 == 0).all()) and \
            bool((values.abs() < 2**53).all()) else "float"
    if t.is_datetime64_any_dtype(series):
        return "datetime"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "category"
    kind = pd.api.types.infer_dtype(series, skipna=True)
    return {"boolean": "bool", "integer": "int", "floating": "float", "mixed-integer-float": "float",
            "datetime": "datetime", "datetime64": "datetime"}.get(kind, "str")


def infer_schema(df: Any, max_allowed: int = 30, id_columns: tuple[str, ...] = ()) -> dict[str, Any]:
    """A starting schema from the data: dtypes, nullability, observed ranges, allowed values, ids.

    Parameters
    ----------
    max_allowed : int
        Text columns with at most this many distinct values get an ``allowed`` list.
    id_columns : tuple of str
        Columns to mark ``unique`` (when they are unique in the data); columns named ``id`` or
        ``*_id`` are considered too.
    """
    from ..results import jsonable

    columns: dict[str, Any] = {}
    for name in df.columns:
        s = df[name]
        dtype = dtype_family(s)
        rules: dict[str, Any] = {"dtype": dtype, "nullable": bool(s.isna().any())}
        values = s.dropna()
        if dtype in ("int", "float") and len(values):
            lo, hi = values.min(), values.max()
            rules["min"] = int(lo) if dtype == "int" else float(lo)
            rules["max"] = int(hi) if dtype == "int" else float(hi)
        elif dtype == "datetime" and len(values):
            rules["min"], rules["max"] = values.min().isoformat(), values.max().isoformat()
        elif dtype in ("str", "category") and len(values):
            distinct = values.unique()
            if len(distinct) <= max_allowed and len(distinct) <= len(values) / 2:
                rules["allowed"] = sorted(jsonable(list(distinct)), key=str)
        idlike = name in id_columns or str(name).lower() == "id" or str(name).lower().endswith("_id")
        if idlike and dtype in ("int", "str") and s.is_unique:
            rules["unique"] = True
        rules["description"] = ""
        columns[str(name)] = rules
    return {"version": 1, "table": {"min_rows": 1, "max_rows": None, "allow_extra_columns": True},
            "columns": columns}


def schema_to_yaml(schema: dict[str, Any], source: str = "") -> str:
    """The schema as commented YAML, ready to edit."""
    import yaml

    head = ("# Data schema checked by `omg data validate --schema` (format: docs/schema_format.md).\n"
            + (f"# Inferred from {source}: review the ranges and allowed values, add descriptions.\n"
               if source else ""))
    body = yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=100)
    return head + body


# --- validation ------------------------------------------------------------------------------------
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


def compile_schema(schema: dict[str, Any]) -> Any:
    """The checked schema as one ``pandera.DataFrameSchema`` (no coercion, every rule a named check).

    Compile once per validation: the checks share that run's missing-value masks.
    """
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
                                  unique=rules.get("unique", False),
                                  required=rules.get("required", True), name=name)
    table = schema.get("table", {})
    frame_checks = []
    if table.get("min_rows") is not None:
        lo = table["min_rows"]
        frame_checks.append(pa.Check(lambda df, lo=lo: len(df) >= lo, name="min_rows"))
    if table.get("max_rows") is not None:
        hi = table["max_rows"]
        frame_checks.append(pa.Check(lambda df, hi=hi: len(df) <= hi, name="max_rows"))
    return pa.DataFrameSchema(columns, checks=frame_checks,
                              strict=not table.get("allow_extra_columns", True))


def _expected(schema: dict[str, Any], column: Any, rule: str, df: Any) -> str:
    table = schema.get("table", {})
    if rule in ("min_rows", "max_rows"):
        return f"{rule} {table.get(rule)}"
    if rule == "allow_extra_columns":
        return "only the schema's columns"
    rules = schema["columns"].get(column, {})
    if rule == "dtype":
        actual = f" (column dtype {df[column].dtype})" if column in df.columns else ""
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


def find_violations(df: Any, schema: dict[str, Any]) -> Any:
    """Every violation of `schema` in `df`: a DataFrame with column, rule, expected, count, examples.

    An empty DataFrame means the data passes.
    """
    import pandas as pd
    from pandera.errors import SchemaErrors

    compiled = compile_schema(schema)
    try:
        with warnings.catch_warnings():
            # pandera's own concat of failure cases trips a pandas FutureWarning; not ours to show
            warnings.simplefilter("ignore", FutureWarning)
            compiled.validate(df, lazy=True, inplace=True)  # no coercion: nothing to copy
        return pd.DataFrame(columns=VIOLATION_COLUMNS)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    rows = []
    order = {c: i for i, c in enumerate(schema["columns"])}
    for (column, check), grp in cases.groupby(["column", "check"], dropna=False, sort=False):
        rule = PANDERA_RULES.get(check, check)
        if rule in ("required", "allow_extra_columns"):
            for name in grp["failure_case"]:
                rows.append({"column": name, "rule": rule, "expected": _expected(schema, name, rule, df),
                             "count": 1, "examples": [name]})
            continue
        column = None if pd.isna(column) else column
        if rule in ("min_rows", "max_rows"):
            count, sample = 1, [f"{len(df)} rows"]
        else:
            count, sample = len(grp), examples(grp["failure_case"])
        rows.append({"column": column if column is not None else "(table)", "rule": rule,
                     "expected": _expected(schema, column, rule, df), "count": int(count),
                     "examples": sample})
    out = pd.DataFrame(rows, columns=VIOLATION_COLUMNS)
    out["_order"] = out["column"].map(lambda c: order.get(c, -1))
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


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
    violations = find_violations(df, schema)
    n_rules = sum(len([k for k in r if k not in ("description", "required")]) + 1
                  for r in schema["columns"].values())
    n_rules += sum(1 for k in ("min_rows", "max_rows") if schema["table"].get(k) is not None)
    status = "pass" if violations.empty else "fail"
    summary = {"status": status, "rows": len(df), "columns": df.shape[1],
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


def strict_error(report: Report, source: str = "data") -> DataError:
    """The error ``--strict`` raises for a failed validation report (listing the violations)."""
    rows = report.data.get("violations", [])
    lines = "; ".join(f"{r['column']}: {r['rule']} ({r['count']}, e.g. {r['examples'][:2]})"
                      for r in rows[:8])
    more = f" and {len(rows) - 8} more" if len(rows) > 8 else ""
    return DataError(f"Strict validation of {source} failed: {len(rows)} violation(s): {lines}{more}. "
                     "Fix the data, or correct the schema if a rule is wrong.")
