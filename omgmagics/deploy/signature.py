"""The input signature of a bundle and the validation of request bodies against it (core layer).

``signature.json`` lists the raw input columns the feature pipeline reads (from the feature set's
``raw_columns``), each with a JSON type (``integer``, ``number``, ``string``, ``boolean``,
``datetime``), its training dtype, whether training data had missing values (``nullable``) and, for
text columns, the categories seen in training. :class:`RequestValidator` checks a request body in
plain Python (fast enough for single records) and reports every problem with the field named.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

from ..errors import did_you_mean

SIGNATURE_VERSION = 1
MAX_CATEGORIES = 2000
MAX_ERRORS = 20
MAX_EXTRA_FIELDS = 20  # a record with more unknown fields than this is refused outright
MAX_SUGGESTIONS = 5  # unknown field names that get a "did you mean" lookup
MAX_EXACT_INT = 2**53  # a float64 holds every integer below this magnitude exactly


def json_type(dtype: str) -> str:
    d = str(dtype).lower()
    if d.startswith(("int", "uint")):
        return "integer"
    if d.startswith("float"):
        return "number"
    if d.startswith("bool"):
        return "boolean"
    if d.startswith("datetime"):
        return "datetime"
    return "string"


def build_signature(raw_columns: dict[str, str], train: Any = None, *, target: str | None = None,
                    task: str = "classification", classes: list | None = None,
                    max_batch: int = 1024) -> dict[str, Any]:
    """The signature of raw columns `raw_columns` (name -> training dtype).

    Parameters
    ----------
    train : DataFrame, optional
        The raw training split: categories and missing values are read from it. Without it, every
        column is nullable and text columns accept any value.
    """
    columns = []
    notes = []
    for name, dtype in raw_columns.items():
        col: dict[str, Any] = {"name": str(name), "type": json_type(dtype), "dtype": str(dtype)}
        if train is not None and name in train.columns:
            s = train[name]
            col["nullable"] = bool(s.isna().any())
            if col["type"] == "string":
                from ..columns import parses_as_dates

                values = sorted({str(v) for v in s.dropna().unique()})
                if parses_as_dates(s):  # dates as text: any date, not the training ones only
                    notes.append(f"'{name}' holds dates as text: any text is accepted.")
                elif len(values) > 0.5 * max(1, int(s.notna().sum())):  # free text, identifiers
                    notes.append(f"'{name}' has mostly distinct values (free text or an "
                                 "identifier): any text is accepted.")
                elif len(values) <= MAX_CATEGORIES:
                    col["categories"] = values
                else:
                    notes.append(f"'{name}' has {len(values)} distinct values: any text is accepted.")
        else:
            col["nullable"] = True
        columns.append(col)
    return {"version": SIGNATURE_VERSION, "columns": columns, "target": target, "task": task,
            "classes": classes, "max_batch": int(max_batch), "notes": notes}


def numeric_signature(feature_names: list[str], max_batch: int = 1024, **kw: Any) -> dict[str, Any]:
    """A signature for a model without a feature pipeline: its feature columns, all numbers."""
    sig = build_signature({n: "float64" for n in feature_names}, None, max_batch=max_batch, **kw)
    for col in sig["columns"]:
        col["nullable"] = False
    return sig


def to_mlflow_signature(signature: dict[str, Any]) -> Any:
    """The same columns as an MLflow ``ModelSignature`` (for the pyfunc flavor)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    kinds = {"integer": "long", "number": "double", "string": "string", "boolean": "boolean",
             "datetime": "datetime"}
    specs = []
    for col in signature["columns"]:
        kind = kinds[col["type"]]
        if col["type"] == "integer" and col.get("nullable"):
            kind = "double"  # a missing value turns an integer column into floats
        specs.append(ColSpec(kind, col["name"], required=not col.get("nullable", True)))
    return ModelSignature(inputs=Schema(specs))


class InvalidRequest(Exception):  # noqa: N818 - control flow: becomes an HTTP 4xx
    """A request body the signature rejects; `errors` name the fields (FastAPI's 422 shape)."""

    def __init__(self, errors: list[dict[str, Any]], status: int = 422):
        super().__init__(errors[0]["msg"] if errors else "invalid request")
        self.errors = errors
        self.status = status

    def body(self) -> dict[str, Any]:
        first = self.errors[0]["msg"] if self.errors else "invalid request"
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return {"detail": self.errors, "message": first + more}


def _err(loc: list[Any], field: str | None, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "field": field, "msg": msg, "type": kind}


def _short(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 60 else text[:57] + "..."


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_EXACT_INT:
        digits = len(str(abs(value))) if abs(value) < 10**4000 else 4000
        return f"an integer of {digits} digits" if digits > 30 else str(value)
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (ValueError, TypeError, RecursionError):
        text = _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class RequestValidator:
    """Checks and normalises request records against a signature.

    Parameters
    ----------
    signature : dict
        As written by :func:`build_signature`.
    max_batch : int
        Most records one request may carry.
    """

    def __init__(self, signature: dict[str, Any], max_batch: int):
        self.columns = signature["columns"]
        self.names = [c["name"] for c in self.columns]
        self.name_set = set(self.names)
        self.max_batch = int(max_batch)
        self.categories = {c["name"]: set(c["categories"]) for c in self.columns if "categories" in c}

    def records(self, payload: Any) -> tuple[list[dict[str, Any]], bool]:
        """The records of a decoded JSON body: one object, or a list of objects.

        Returns
        -------
        (records, single)
            Records with values coerced to the column types, in signature order; whether the body
            was a single object.

        Raises
        ------
        InvalidRequest
        """
        if isinstance(payload, dict):
            items, single = [payload], True
        elif isinstance(payload, list):
            items, single = payload, False
            if not items:
                raise InvalidRequest([_err([], None, "the batch is empty: send one record (a JSON "
                                                     "object) or a non-empty list of records",
                                           "value_error.empty")])
            if len(items) > self.max_batch:
                raise InvalidRequest([_err([], None, f"the batch has {len(items)} records, more than "
                                                     f"the limit of {self.max_batch} (serving."
                                                     "max_batch); split it", "value_error.too_many")])
        else:
            raise InvalidRequest([_err([], None, "the body must be one record (a JSON object) or a "
                                                 f"list of records, got {_kind(payload)}",
                                       "type_error.body")])
        out, errors = [], []
        for i, item in enumerate(items):
            loc = [] if single else [i]
            if not isinstance(item, dict):
                errors.append(_err(loc, None, f"record {i} must be a JSON object of field: value, "
                                              f"got {_kind(item)}", "type_error.record"))
                continue
            out.append(self._record(item, loc, errors))
            if len(errors) >= MAX_ERRORS:
                break
        if errors:
            raise InvalidRequest(errors[:MAX_ERRORS])
        return out, single

    def _record(self, item: dict[str, Any], loc: list[Any], errors: list[dict[str, Any]]
                ) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        where = f" (record {loc[0]})" if loc else ""
        if len(item) != len(self.names) or not self.name_set.issuperset(item):
            extra = [key for key in item if key not in self.name_set]
            if len(extra) > MAX_EXTRA_FIELDS:
                errors.append(_err(loc, None, f"the record{where} has {len(extra)} fields that are "
                                   f"not inputs of this model, more than the limit of "
                                   f"{MAX_EXTRA_FIELDS}", "value_error.too_many_fields"))
                return rec
            for n, key in enumerate(extra):
                hint = did_you_mean(str(key), self.names) if n < MAX_SUGGESTIONS else ""
                errors.append(_err([*loc, key], str(key), f"field '{_short(key)}'{where} is not an "
                                   f"input of this model.{hint}", "value_error.extra"))
        for col in self.columns:
            name = col["name"]
            if name not in item:
                errors.append(_err([*loc, name], name, f"field '{name}'{where} is required "
                                                       f"({col['type']})", "value_error.missing"))
                continue
            value = item[name]
            if value is None:
                if not col.get("nullable", True):
                    errors.append(_err([*loc, name], name, f"field '{name}'{where} must not be null "
                                       "(training data had no missing values here)",
                                       "value_error.null"))
                rec[name] = None
                continue
            ok, norm = _coerce(value, col["type"])
            if ok is None:
                errors.append(_err([*loc, name], name, f"field '{name}'{where} is out of range: "
                                   f"integers must be smaller than 2**53 in magnitude, got "
                                   f"{_show(value)}", "value_error.range"))
                continue
            if not ok:
                errors.append(_err([*loc, name], name, f"field '{name}'{where} must be "
                                   f"{_article(col['type'])}, got {_kind(value)} {_show(value)}",
                                   f"type_error.{col['type']}"))
                continue
            cats = self.categories.get(name)
            if cats is not None and norm not in cats:
                known = sorted(cats)
                hint = did_you_mean(norm, known)
                shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
                errors.append(_err([*loc, name], name, f"field '{name}'{where} has the unknown "
                                   f"category {_show(value)}.{hint} Known: {shown}",
                                   "value_error.category"))
                continue
            rec[name] = norm
        return rec


def _article(kind: str) -> str:
    return {"integer": "an integer", "number": "a number", "string": "a string",
            "boolean": "true or false", "datetime": "an ISO-8601 date/time string"}[kind]


def _coerce(value: Any, kind: str) -> tuple[bool | None, Any]:
    if isinstance(value, int) and not isinstance(value, bool) and kind in ("number", "integer") \
            and not -MAX_EXACT_INT < value < MAX_EXACT_INT:
        return None, None  # out of range: float conversion would overflow or lose digits
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return True, float(value)
        return False, None
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if isinstance(value, float) and value.is_integer():
            if not -MAX_EXACT_INT < value < MAX_EXACT_INT:
                return None, None
            return True, int(value)
        return False, None
    if kind == "string":
        return (True, value) if isinstance(value, str) else (False, None)
    if kind == "boolean":
        return (True, value) if isinstance(value, bool) else (False, None)
    if kind == "datetime":
        if isinstance(value, str):
            try:
                _dt.datetime.fromisoformat(value)
                return True, value
            except ValueError:
                return False, None
        return False, None
    return False, None


def jsonable_record(record: dict[str, Any]) -> dict[str, Any]:
    """A raw data row (numpy / pandas values, NaN) as plain JSON values (NaN -> null)."""
    out = {}
    for k, v in record.items():
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        elif v is not None and not isinstance(v, (str, int, float, bool)):
            try:
                import pandas as pd

                if pd.isna(v):
                    v = None
            except (TypeError, ValueError):
                v = str(v)
        out[str(k)] = v
    return out


def check_rows(bundle: Any, rows: Any) -> tuple[list[dict], list[bool], list[str]]:
    """(records, whether the signature accepts each, why the rejected ones are rejected)."""
    validator = RequestValidator(bundle.signature, max_batch=1)
    records = [jsonable_record(r) for r in rows[bundle.input_names].to_dict("records")]
    mask, reasons = [], []
    for rec in records:
        try:
            validator.records(rec)
            mask.append(True)
        except InvalidRequest as exc:
            mask.append(False)
            reasons.append(exc.errors[0]["msg"])
    return records, mask, reasons
