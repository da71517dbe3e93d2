"""Collecting sources into ``data/raw/`` (core layer).

A sources file (``sources.yaml``, format in ``docs/sources_format.md``) lists named sources: csv, parquet
or json-lines files, SQL queries on SQLite or DuckDB database files, or the bundled demo data. Each lands
in the output folder as ``NAME.parquet`` with a lineage record (location, query, rows, columns, sha256 of
the source and of the written file, time) in ``lineage.json`` beside it.

Raw data is immutable: every source is loaded and checked before anything is written, and an existing
file is never replaced - collecting the same content again is a no-op, different content is refused.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from .. import clock
from ..atomic import atomic_path, sha256_file, write_json
from ..config import read_yaml, validate
from ..errors import ConfigError, DataError, UsageError, unknown_choice
from ..results import Report
from ._util import read_json_or, rel

KINDS = ("csv", "parquet", "jsonl", "sqlite", "duckdb", "demo")
SQL_KINDS = ("sqlite", "duckdb")
SOURCE_SPEC: dict[str, Any] = {
    "name": str, "kind": str, "path": (str, type(None)), "query": (str, type(None)),
    "table": (str, type(None)), "options": (dict, type(None)), "description": (str, type(None)),
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LINEAGE_FILE = "lineage.json"
EXAMPLE = ("sources:\n  - name: customers\n    kind: csv\n    path: external/customers.csv\n"
           "  - name: orders\n    kind: sqlite\n    path: external/shop.db\n"
           "    query: SELECT * FROM orders")


def load_sources(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a sources file; relative source paths become absolute (from the file's folder).

    Raises
    ------
    ConfigError
        For a missing file, bad YAML, an unknown key or kind, a missing path or query, a duplicate name.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The sources file {path} does not exist. Write one like:\n{EXAMPLE}\n"
                          "(format: docs/sources_format.md), or pass --sources PATH.")
    data = read_yaml(path, "sources file")
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list) or not data["sources"]:
        raise ConfigError(f"{path.name}: expected a top-level 'sources:' list with at least one "
                          f"source. Example:\n{EXAMPLE}")
    unknown = set(data) - {"sources"}
    if unknown:
        raise ConfigError(f"{path.name}: unknown top-level key '{sorted(unknown)[0]}'. "
                          "Only 'sources' is allowed.")
    specs, seen = [], set()
    for i, entry in enumerate(data["sources"]):
        where = f"sources[{i}]"
        validate(entry, SOURCE_SPEC, where, path.name)
        spec = {k: v for k, v in entry.items() if v is not None}
        spec["options"] = dict(entry.get("options") or {})
        spec["sources_file"] = str(path)
        for key in ("name", "kind"):
            if key not in spec:
                raise ConfigError(f"{path.name}: {where} has no '{key}'. Every source needs a name "
                                  "and a kind.")
        where = f"source '{spec['name']}'"
        if not NAME_RE.match(spec["name"]):
            raise ConfigError(f"{path.name}: {where}: the name must be letters, digits, '-' or '_' "
                              "(it becomes the file name NAME.parquet).")
        if spec["name"] in seen:
            raise ConfigError(f"{path.name}: two sources are named '{spec['name']}'. Names must be "
                              "unique: each becomes data/raw/NAME.parquet.")
        seen.add(spec["name"])
        if spec["kind"] not in KINDS:
            raise ConfigError(f"{path.name}: {where}: " + unknown_choice("source kind", spec["kind"], KINDS))
        if spec["kind"] != "demo" and "path" not in spec:
            raise ConfigError(f"{path.name}: {where} of kind {spec['kind']} needs a 'path'.")
        if spec["kind"] in SQL_KINDS and not (spec.get("query") or spec.get("table")):
            raise ConfigError(f"{path.name}: {where} of kind {spec['kind']} needs a 'query' "
                              "(or a 'table' to read whole).")
        if spec["kind"] not in SQL_KINDS and ("query" in spec or "table" in spec):
            raise ConfigError(f"{path.name}: {where}: 'query'/'table' only apply to sqlite and "
                              f"duckdb sources, not {spec['kind']}.")
        if "path" in spec:
            p = Path(spec["path"]).expanduser()
            spec["path"] = str(p if p.is_absolute() else (path.parent / p).resolve())
        specs.append(spec)
    return specs


def read_source(spec: dict[str, Any]) -> Any:
    """Load one checked source into a DataFrame.

    Raises
    ------
    DataError
        For a missing file, an unreadable file, a failing SQL query or an empty result.
    """
    import pandas as pd

    name, kind = spec["name"], spec["kind"]
    if kind == "demo":
        from ..datasets import load_demo

        return load_demo()
    path = Path(spec["path"])
    if not path.is_file():
        raise DataError(f"Source '{name}': {path} does not exist. Fix 'path' in "
                        f"{Path(spec.get('sources_file', 'sources.yaml')).name} (relative paths are "
                        "resolved from the sources file's folder).")
    opts = spec.get("options", {})
    try:
        if kind == "csv":
            df = pd.read_csv(path, **opts)
        elif kind == "parquet":
            df = pd.read_parquet(path, **opts)
        elif kind == "jsonl":
            df = pd.read_json(path, lines=True, **opts)
        else:
            df = _read_sql(spec, path)
    except DataError:
        raise
    except (TypeError, ValueError, OSError, UnicodeDecodeError, ImportError) as exc:
        if isinstance(exc, TypeError) and "unexpected keyword" in str(exc):
            raise ConfigError(f"Source '{name}': an option is not accepted by the {kind} reader: "
                              f"{exc}. Fix 'options' in the sources file.") from None
        raise DataError(f"Source '{name}': {path} could not be read as {kind}: "
                        f"{str(exc).splitlines()[0]}. Check the file and its kind.") from None
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError(f"Source '{name}' returned no rows ({len(df)} rows x {df.shape[1]} columns). "
                        "Check the file or the query.")
    return df


def _read_sql(spec: dict[str, Any], path: Path) -> Any:
    table = str(spec.get("table", "")).replace('"', '""')  # a quoted identifier, whatever its name
    query = spec.get("query") or f'SELECT * FROM "{table}"'
    if spec["kind"] == "sqlite":
        import sqlite3

        import pandas as pd

        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
                return pd.read_sql_query(query, con)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise DataError(_sql_message(spec, path, exc)) from None
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DataError(f"Source '{spec['name']}': {path} is not a DuckDB database: "
                        f"{str(exc).splitlines()[0]}.") from None
    try:
        return con.execute(query).df()
    except duckdb.Error as exc:
        raise DataError(_sql_message(spec, path, exc)) from None
    finally:
        con.close()


def _sql_message(spec: dict[str, Any], path: Path, exc: Exception) -> str:
    detail = str(exc).splitlines()[0]
    return (f"Source '{spec['name']}': the SQL query failed on {path.name} ({spec['kind']}): {detail}. "
            f"Query: {spec.get('query') or spec.get('table')}. Fix the query in the sources file.")


def content_sha256(df: Any) -> str:
    """A hash of a DataFrame's values, column names and dtypes (independent of the file format)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _source_sha(spec: dict[str, Any]) -> str | None:
    if spec["kind"] == "demo":
        from importlib import resources

        h = hashlib.sha256()
        for part in ("adult.data.gz", "adult.test.gz"):
            h.update(resources.files("omgmagics.datasets").joinpath("data", part).read_bytes())
        return h.hexdigest()
    return sha256_file(spec["path"])


def collect(specs: list[dict[str, Any]], output: str | Path, sample_frac: float | None = None,
            seed: int = 42, progress: Any = None) -> Report:
    """Load every source and write each as ``OUTPUT/NAME.parquet`` with lineage.

    Parameters
    ----------
    specs : list of dict
        Checked sources (:func:`load_sources`).
    output : path
        The raw-data folder.
    sample_frac : float, optional
        Keep a seeded share of each source's rows (stated in the lineage).
    progress : callable, optional
        ``progress(iterable, total=, desc=)``, e.g. a tqdm factory.

    Raises
    ------
    DataError
        When a source cannot be read, or a raw file exists with different content. Nothing is
        written in that case.
    """
    output = Path(output)
    if sample_frac is not None and not 0 < sample_frac <= 1:
        raise DataError(f"--sample-frac must be in (0, 1], got {sample_frac}.")
    lineage_path = output / LINEAGE_FILE
    lineage = read_json_or(lineage_path, {"sources": {}})
    iterable = progress(specs, total=len(specs), desc="collect") if progress else specs
    loaded = []
    for spec in iterable:  # read and check everything before writing anything
        df = read_source(spec)
        if sample_frac is not None and sample_frac < 1:
            df = df.sample(frac=sample_frac, random_state=seed).sort_index().reset_index(drop=True)
        target = output / f"{spec['name']}.parquet"
        digest = content_sha256(df)
        status = "written"
        if target.exists():
            known = lineage["sources"].get(spec["name"], {})
            old = known.get("content_sha256") if known.get("file") == target.name else None
            if old is None:
                import pandas as pd

                old = content_sha256(pd.read_parquet(target))
            if old != digest:
                raise DataError(
                    f"{target} already exists with different content, and raw data is never "
                    f"overwritten. Give source '{spec['name']}' a new name (e.g. "
                    f"{spec['name']}_{clock.today():%Y%m%d}) or move the old file away deliberately.")
            status = "unchanged"
        loaded.append((spec, df, target, digest, status))
    now = clock.stamp()
    rows = []
    for spec, df, target, digest, status in loaded:
        if status == "written":
            with atomic_path(target, suffix=".parquet") as tmp:
                df.to_parquet(tmp, index=False)
            lineage["sources"][spec["name"]] = {
                "name": spec["name"], "kind": spec["kind"],
                "location": spec.get("path", "omgmagics.datasets:adult (bundled demo data)"),
                "query": spec.get("query") or (f"table {spec['table']}" if spec.get("table") else None),
                "description": spec.get("description"),
                "rows": int(len(df)), "columns": {str(c): str(t) for c, t in df.dtypes.items()},
                "source_sha256": _source_sha(spec), "file": target.name,
                "sha256": sha256_file(target), "content_sha256": digest,
                "sample_frac": sample_frac, "collected_at": now,
                "sources_file": spec.get("sources_file"),
            }
        rows.append({"source": spec["name"], "kind": spec["kind"], "rows": len(df),
                     "columns": df.shape[1], "file": str(target), "status": status})
    # one source collected alone is the raw table the next steps read; several leave the choice open
    if len(loaded) == 1:
        lineage["current"] = loaded[0][0]["name"]
    else:
        lineage.pop("current", None)
    write_json(lineage_path, lineage)
    import pandas as pd

    table = pd.DataFrame(rows)
    written = int((table["status"] == "written").sum())
    report = Report(
        f"Collected {len(rows)} source(s) into {output}",
        summary={"sources": len(rows), "written": written, "unchanged": len(rows) - written,
                 "rows": int(table["rows"].sum())},
        tables={"sources": table},
        artifacts={"lineage": str(lineage_path),
                   **{r["source"]: r["file"] for r in rows}},
        data={"lineage": {s["name"]: lineage["sources"].get(s["name"]) for s, *_ in loaded}},
    )
    if sample_frac is not None and sample_frac < 1:
        report.messages.append(f"Each source was sampled to {sample_frac:.0%} of its rows (seed {seed}).")
    if written < len(rows):
        report.messages.append("Unchanged sources were already collected with identical content; "
                               "raw files are never rewritten.")
    return report


def raw_table(project: Any) -> tuple[Any, dict[str, Any]]:
    """The raw table the data steps read: the last single source collected (lineage ``current``),
    else the only source in ``data/raw``, else the project's source if nothing was collected.

    Raises
    ------
    UsageError
        When several sources were collected together: name one with ``--data``.
    """
    import pandas as pd


    lineage = read_json_or(project.raw_dir / LINEAGE_FILE, {"sources": {}})
    present = {n: r for n, r in lineage["sources"].items() if (project.raw_dir / r["file"]).is_file()}
    current = lineage.get("current")
    if current in present:
        present = {current: present[current]}
    if len(present) > 1:
        raise UsageError("Several raw sources are collected (" + ", ".join(sorted(present)) + "). "
                         "Name one with --data data/raw/NAME.parquet, or join them into one table first.")
    if present:
        (name, record), = present.items()
        path = project.raw_dir / record["file"]
        return pd.read_parquet(path), {"path": rel(project, path), "content_sha256":
                                       record.get("content_sha256"), "rows": record.get("rows")}
    df = project.load_source_data()
    return df, {"path": "project data.source (not collected)", "content_sha256": content_sha256(df),
                "rows": len(df)}
