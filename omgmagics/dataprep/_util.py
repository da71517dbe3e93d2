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


_MTIMES: dict[str, float] = {}


def import_project_module(ref: str, root: str | Path | None = None, what: str = "module") -> Any:
    """Import the project's module `ref` (dotted name, e.g. ``projectlib.labeling``, or a ``.py`` path).

    The project folder `root` goes first on ``sys.path``; a same-named package imported earlier from
    another folder (another project in the same kernel) is dropped first, and a module whose file
    changed since it was imported (re-exported by nbdev) is reloaded.

    Raises
    ------
    ConfigError
        When the module cannot be imported, with how to fix it.
    """
    import importlib
    import importlib.util
    import sys

    from ..errors import ConfigError

    root = Path(root).resolve() if root else None
    if ref.endswith(".py") or "/" in ref or "\\" in ref:
        path = Path(ref)
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.is_file():
            raise ConfigError(f"The {what} file {path} does not exist. Check the path.")
        name = f"omg_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code: any error is reported the same way
            raise ConfigError(f"Importing the {what} {path} failed: {type(exc).__name__}: {exc}. "
                              "Fix the code.") from None
        return module
    top = ref.split(".")[0]
    if root is not None:
        if str(root) in sys.path:
            sys.path.remove(str(root))
        sys.path.insert(0, str(root))  # this project's package wins over another project's
        loaded = sys.modules.get(top)
        loaded_file = getattr(loaded, "__file__", None)
        if loaded_file and not Path(loaded_file).resolve().is_relative_to(root):
            for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
                del sys.modules[key]
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"Cannot import the {what} '{ref}': {exc}. Export the notebook's `#| export` cells with "
            "`nbdev-export` (run in the project folder), or pass a .py file path instead.") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"Importing the {what} '{ref}' failed: {type(exc).__name__}: {exc}. "
                          "Fix the code in the notebook's export cell and re-export.") from None
    file = getattr(module, "__file__", None)
    if file:
        mtime = Path(file).stat().st_mtime
        if ref in _MTIMES and _MTIMES[ref] != mtime:
            module = importlib.reload(module)
        _MTIMES[ref] = mtime
    return module


def show(value: Any) -> str:
    """A value for a message: ``'text'`` quoted, numbers plain (never a numpy repr like
    ``np.int64(5)``)."""
    if isinstance(value, str):
        return repr(str(value))
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    return repr(value) if isinstance(value, str) else str(value)


def date_format(values: Any, min_share: float = 0.9, sample: int = 1000) -> str | None:
    """The strftime format that parses text dates in `values` (a Series), or ``None``.

    Candidate formats are guessed from a few values, month first and day first (``31.12.2021`` is
    day first, ``2024-01-01 10:00`` ISO); the one that parses the largest share of a sample wins
    (on a tie: day first for dotted dates, else month first), if it parses at least `min_share` of
    the non-missing values.
    """
    import re
    import warnings

    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    s = pd.Series(values).dropna()
    if not len(s) or pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return None
    s = s.astype(str).str.strip()
    s = s[s != ""]
    if not len(s):
        return None
    s = s.sample(min(len(s), sample), random_state=0) if len(s) > sample else s
    candidates: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in s.head(20):
            # 31.12.2021: dotted dates are day first where both readings fit
            order = (True, False) if re.match(r"^\d{1,2}\.\d{1,2}\.\d{2,4}", v) else (False, True)
            for dayfirst in order:
                fmt = guess_datetime_format(v, dayfirst=dayfirst)
                if fmt and fmt not in candidates:
                    candidates.append(fmt)
        best, best_share = None, 0.0
        for fmt in candidates:
            share = float(pd.to_datetime(s, format=fmt, errors="coerce").notna().mean())
            if share > best_share:
                best, best_share = fmt, share
    return best if best_share >= min_share else None


def parse_dates(values: Any, fmt: str | None = None) -> Any:
    """`values` as datetimes: a datetime Series as is, text with `fmt` (default: :func:`date_format`);
    values that do not parse become ``NaT``. Raises ``ValueError`` when text holds no dates."""
    import warnings

    import pandas as pd

    s = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    fmt = fmt or date_format(s)
    if fmt is None:
        raise ValueError("no date format fits these values")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(s.where(s.notna(), None).astype(object).map(
            lambda v: v if v is None else str(v).strip()), format=fmt, errors="coerce")


# --- command-line paths, shared by the steps and the batched readers -------------------------------
def rel(project: Any, path: Path) -> str:
    """`path` relative to the project folder when inside it (for reports and manifests)."""
    try:
        return str(Path(path).resolve().relative_to(project.root.resolve()))
    except ValueError:
        return str(path)
