"""Custom feature functions (core layer, import-light): the decorator projects use in ``#| export`` cells.

::

    from omgmagics.features.functions import feature_function

    @feature_function(columns=["total_spend", "refunds"])
    def net_spend(df):
        return (df["total_spend"] - df["refunds"]).rename("net_spend")

A feature function takes a DataFrame holding its ``columns`` and returns a Series, a DataFrame or an
array with one row per input row. It must be stateless (it sees one batch at a time, in training and
in serving). Reference it in features.yaml as ``transform: custom`` with ``function:
projectlib.features.net_spend``; ``omg feature extract --infer`` adds every decorated function of
``projectlib.features`` by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

FEATURE_ATTR = "_omg_feature_function"


def feature_function(columns: list[str], name: str | None = None,
                     params: dict[str, Any] | None = None) -> Callable:
    """Mark a function as a custom feature over `columns` (its name prefixes the output columns)."""
    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, FEATURE_ATTR, {"name": name or func.__name__, "columns": list(columns),
                                     "params": dict(params or {})})
        return func
    return deco


def discover_feature_functions(module: str, root: str | Path | None = None) -> list[dict[str, Any]]:
    """Feature definitions (``transform: custom``) for the decorated functions of `module`.

    Returns an empty list when the project folder `root` has no such module file.
    """
    import inspect

    from ..dataprep._util import import_project_module

    if root is not None and not (Path(root) / (module.replace(".", "/") + ".py")).is_file():
        return []
    mod = import_project_module(module, root, "feature functions module")
    out = []
    for attr, func in inspect.getmembers(mod, inspect.isfunction):
        meta = getattr(func, FEATURE_ATTR, None)
        if meta:
            entry = {"name": meta["name"], "transform": "custom", "function": f"{module}.{attr}",
                     "columns": meta["columns"]}
            if meta["params"]:
                entry["params"] = meta["params"]
            out.append(entry)
    return out
