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
