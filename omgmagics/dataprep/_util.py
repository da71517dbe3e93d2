"""Small helpers shared by the data-preparation modules (core layer)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any


def read_json_or(path: str | Path, default: Any) -> Any:
    """The JSON content of `path`, or a copy of `default` when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return copy.deepcopy(default)
    return json.loads(path.read_text(encoding="utf-8"))


def now_iso() -> str:
    """The current UTC time, to the second, ISO 8601."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def examples(values: Any, n: int = 5) -> list[Any]:
    """Up to `n` distinct example values, as plain Python values (for reports and JSON)."""
    from ..results import jsonable

    out: list[Any] = []
    for v in values:
        v = jsonable(v)
        if v not in out:
            out.append(v)
        if len(out) >= n:
            break
    return out
