"""Reading user tables (core layer): csv, parquet, json lines, with clear errors for bad files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError

READERS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "json", ".ndjson": "json", ".json": "json", ".gz": "csv"}


def read_table(path: str | os.PathLike, **kwargs: Any) -> Any:
    """Read a csv / parquet / json-lines file into a DataFrame.

    Raises
    ------
    DataError
        For a missing file, an unknown extension, an empty file, or a file that is not a table.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(f"Data file {path} does not exist. Check the path (relative paths are "
                        "resolved from the project folder).")
    if path.is_dir():
        try:
            return pd.read_parquet(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a data problem here
            raise DataError(f"{path} is a folder but not a partitioned parquet data set: {exc}") from None
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"Cannot read {path}: unknown file type '{path.suffix}'. "
                        f"Use one of: {', '.join(sorted(READERS))}.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file {path} is empty (0 bytes). Point at a file with a header and rows.")
    try:
        if kind == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            df = pd.read_csv(path, sep=sep, **kwargs)
        elif kind == "parquet":
            df = pd.read_parquet(path, **kwargs)
        else:
            df = pd.read_json(path, lines=path.suffix.lower() != ".json", **kwargs)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text. Re-save it as UTF-8 or pass the encoding.") from None
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path} could not be read as a {kind} table: {str(exc).splitlines()[0]}. "
                        "Check that the file is a complete table of this type.") from None
    if kind == "csv":
        _check_header(path, sep)
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"{path} has no rows or no columns ({len(df)} rows x {df.shape[1]} columns). "
                        "Point at a table with a header and at least one row.")
    return df


def _check_header(path: Path, sep: str) -> None:
    """pandas silently renames duplicate columns (a, a.1): refuse them instead."""
    import csv
    from collections import Counter

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh, delimiter=sep), [])
    except (UnicodeDecodeError, csv.Error):
        return
    dupes = [f"'{name}' ({n}x)" for name, n in Counter(header).items() if n > 1]
    if dupes:
        raise DataError(f"{path} has duplicate column names: {', '.join(dupes)}. "
                        "Rename them so each column has one name.")


def project_output(root: str | os.PathLike, value: str | os.PathLike | None, flag: str
                   ) -> str | None:
    """`value` of an output option, checked: a relative path must stay inside the project.

    A relative path is read from the project folder; one that climbs out of it (``../../x``) is
    refused, since it is almost always a typo. An absolute path is taken as given (the user meant
    it). None stays None (the verb's default).

    Raises
    ------
    UsageError
        For a relative path that resolves outside the project.
    """
    if value is None:
        return None
    from ..errors import UsageError

    path = Path(value)
    if path.is_absolute():
        return str(value)
    base = Path(root).resolve()
    full = (base / path).resolve()
    if full != base and base not in full.parents:
        raise UsageError(f"{flag} {value} resolves to {full}, outside the project {base}. Give a "
                         f"path inside the project, or an absolute path to write there on purpose.")
    return str(value)


def inside(root: str | os.PathLike, relative: Any, what: str) -> Path:
    """``root / relative`` if it stays inside `root` (a path read from a bundle or model folder).

    Raises
    ------
    DataError
        For an absolute path, a ``..`` that climbs out, or a symlink pointing outside.
    """
    base = Path(root).resolve()
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        raise DataError(f"{what} in {base} must be a relative path inside it, got {relative!r}; "
                        "the folder was not loaded.")
    path = (base / relative).resolve()
    if path != base and base not in path.parents:
        raise DataError(f"{what} in {base} points outside it ({relative!r}); the folder was not "
                        "loaded.")
    return path


# ------------------------------------------------------------------------------- path rules
def input_path(path: str | os.PathLike, base: str | os.PathLike | None) -> Path:
    """The rule for a file the user hands in (``--data``, ``--config``, a table): as given when it
    exists (absolute, or relative to the working folder, where a shell completed it), else relative
    to `base`, the project folder. Paths in omg.yaml and outputs use :meth:`Project.resolve`."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or base is None:
        return p
    return Path(base) / p


def resolve(project: Any, path: str | Path | None, default: str) -> Path:
    """A path given on the command line: absolute as is, relative from the project folder."""
    return project.resolve(path if path is not None else default)


def parquet_path(project: Any, data: str | Path) -> Path | None:
    """`data` (a path, relative to the working folder, else the project) when it is an existing
    parquet file or folder, which is read in batches; None for anything else (loaded whole)."""
    path = input_path(data, project.root)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in (".parquet", ".pq")):
        return path
    return None


def declared_parquet(project: Any) -> Path | None:
    """The project's ``data.source`` when it is an unsampled parquet file or folder."""
    declared = project.config.get_path("data.source", "demo")
    frac = project.config.get_path("data.sample_frac", 1.0)
    if declared in (None, "demo") or (frac is not None and float(frac) < 1.0):
        return None
    return parquet_path(project, resolve(project, declared, declared))
