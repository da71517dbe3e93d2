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
      plan:
        dtype: str
        nullable: true
        allowed: [basic, premium]
      customer_id:
        dtype: str
        unique: true
        regex: 'C\\d{6}'        # must match the whole value

A schema compiles to one ``pandera.DataFrameSchema`` validated lazily, so the report lists every
violation at once: column, rule, count and example values. Validation itself (whole tables and
tables read in batches) is in :mod:`.validation`; its names are re-exported here.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from ..config import read_yaml, validate
from ..errors import ConfigError, unknown_choice

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


# --- validation (in .validation; re-exported for callers of this module) -----------------------
from .validation import (  # noqa: E402
    compile_schema,
    find_violations,
    strict_error,
    validate_frame,
    validate_table,
)

__all__ = ["DTYPES", "check_schema", "compile_schema", "dtype_family", "find_violations",
           "infer_schema", "load_schema", "schema_to_yaml", "strict_error", "validate_frame",
           "validate_table"]
