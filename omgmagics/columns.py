"""What each column of a table is, and what the kit does with it (floor layer).

One analysis that ``omg ml init``, the data audit and feature inference share, so that they agree on
which columns are identifiers, constants, dates, free text or leaks of the target. Thresholds follow
the table's size, never a column name of any data set. The expensive checks run on a seeded sample of
at most 20,000 rows (the reason says so when it did).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

SAMPLE = 20_000
ID_NAME = re.compile(r"(^|[^a-z])(id|uuid|guid|ref|key|code|number|no)$|^id[^a-z]", re.I)
BOOL_WORDS = {frozenset({"yes", "no"}), frozenset({"true", "false"}), frozenset({"y", "n"}),
              frozenset({"t", "f"}), frozenset({"0", "1"})}
NUMBER = r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?"


@dataclass
class ColumnRole:
    """What a column is (``kind``), whether it is a model input as it is (``use``), and why."""

    name: str
    kind: str  # target, id, constant, datetime, text, boolean, numeric, categorical, leak
    use: bool
    reason: str


def _n(value: int) -> str:
    return f"{int(value):,}"


def parses_as_dates(values: Any) -> bool:
    """Text that parses as dates or timestamps in at least 95 % of `values` (not plain numbers)."""
    import pandas as pd

    sample = values.dropna().astype(str).head(500)
    if len(sample) == 0 or sample.str.fullmatch(NUMBER).mean() > 0.5:
        return False
    if not sample.str.contains(r"\d", regex=True).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed", dayfirst=bool(
            sample.str.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{4}.*").mean() > 0.5))
    return bool(parsed.notna().mean() >= 0.95)


def _is_leak(s: Any, y: Any) -> str | None:
    """Why `s` leaks the target `y` (equal to it, a one-to-one recoding, or |r| > 0.99), or None."""
    import numpy as np
    import pandas as pd

    both = s.notna() & y.notna()
    if both.sum() < 20:
        return None
    a, b = s[both], y[both]
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) and \
            not pd.api.types.is_bool_dtype(a) and b.nunique() > 20:
        with np.errstate(all="ignore"):
            r = np.corrcoef(a.to_numpy(dtype=float), b.to_numpy(dtype=float))[0, 1]
        if np.isfinite(r) and abs(r) > 0.99:
            return f"correlation {r:.3f} with the target: a leak of it, excluded"
        return None
    if b.nunique() > 200 or a.nunique() != b.nunique():
        return None
    pairs = pd.DataFrame({"a": a.astype(str).to_numpy(), "b": b.astype(str).to_numpy()})
    if pairs.groupby("a")["b"].nunique().max() == 1 and pairs.groupby("b")["a"].nunique().max() == 1:
        if (pairs["a"] == pairs["b"]).all():
            return "equal to the target: a leak of it, excluded"
        return "a one-to-one recoding of the target: a leak of it, excluded"
    return None


def column_roles(df: Any, target: str | None = None, *, time_column: str | None = None,
                 task: str | None = None) -> dict[str, ColumnRole]:
    """The role of every column of `df` (see the module docstring); `time_column` is always a date."""
    import pandas as pd

    sampled = len(df) > SAMPLE
    part = df.sample(SAMPLE, random_state=0) if sampled else df
    note = f" (on a sample of {_n(SAMPLE)} rows)" if sampled else ""
    y = part[target] if target is not None and target in part.columns else None
    roles: dict[str, ColumnRole] = {}
    for col in df.columns:
        name = str(col)
        s = part[col]
        values = s.dropna()
        n, distinct = len(values), int(values.nunique())
        if col == target:
            roles[name] = ColumnRole(name, "target", False, "the target")
            continue
        if n == 0:
            roles[name] = ColumnRole(name, "constant", False, "every value missing: excluded")
            continue
        if distinct == 1:
            roles[name] = ColumnRole(name, "constant", False,
                                     f"one value ({values.iloc[0]!s}) in every row: excluded")
            continue
        if col == time_column or pd.api.types.is_datetime64_any_dtype(s) or (
                s.dtype == object and parses_as_dates(values)):
            why = "the brief's time column" if col == time_column else "dates or timestamps"
            roles[name] = ColumnRole(name, "datetime", False,
                                     f"{why}: parsed into date parts{note}")
            continue
        leak = _is_leak(s, y) if y is not None else None
        if leak:
            roles[name] = ColumnRole(name, "leak", False, leak + note)
            continue
        share = distinct / n
        if pd.api.types.is_bool_dtype(s) or (distinct == 2 and frozenset(
                values.astype(str).str.lower().unique()) in BOOL_WORDS):
            roles[name] = ColumnRole(name, "boolean", True, "two values: a yes/no flag")
            continue
        text = values.astype(str)
        words = float(text.str.count(r"\s+").mean()) + 1
        if s.dtype == object and share > 0.5 and (
                text.str.contains(r"\S\s+\S", regex=True).mean() >= 0.5 or text.str.len().mean() > 30):
            roles[name] = ColumnRole(name, "text", False,
                                     f"free text ({_n(distinct)} distinct values, about "
                                     f"{words:.0f} words each): hashed into word counts")
            continue
        integer_like = pd.api.types.is_integer_dtype(s)
        if s.dtype == object or integer_like:
            name_says_id = bool(ID_NAME.search(name.strip()))
            if n > 50 and (share >= 0.95 or (name_says_id and share >= 0.5)):
                roles[name] = ColumnRole(
                    name, "id", False, f"{_n(distinct)} distinct values in {_n(n)} rows"
                    f"{' and an id-like name' if name_says_id and share < 0.95 else ''}: an "
                    f"identifier, excluded{note}")
                continue
        if pd.api.types.is_numeric_dtype(s):
            roles[name] = ColumnRole(name, "numeric", True, "numbers")
            continue
        numeric_share = float(text.str.fullmatch(NUMBER).mean())
        if 0.05 < numeric_share < 0.95:
            roles[name] = ColumnRole(name, "categorical", True,
                                     f"mixed types ({numeric_share:.0%} numbers, the rest text): "
                                     "treated as categories")
            continue
        roles[name] = ColumnRole(name, "categorical", True, f"{_n(distinct)} categories")
    return roles


def excluded_columns(roles: dict[str, ColumnRole]) -> list[str]:
    """The id, constant and leak columns, in table order: never model inputs."""
    return [name for name, role in roles.items() if role.kind in ("id", "constant", "leak")]
