"""The data steps on a parquet table read in batches (core layer): the project's raw table opened
as a :class:`omgmagics.io.sources.ParquetSource`, and the validation pass over it (violations, the
data dictionary's row sample and the content hash in one pass)."""

from __future__ import annotations

from typing import Any

from ..results import Report

FRAME_ROWS = 1 << 16        # rows per batch of the validation pass (pandas + pandera per batch)
DICTIONARY_SAMPLE = 100_000  # the data dictionary of a table read in batches: a seeded sample


def raw_source(project: Any, batch_rows: int = FRAME_ROWS) -> tuple[Any, dict[str, Any]]:
    """As :func:`raw_table`, but a parquet table (collected, or the project's ``data.source`` when
    it is a parquet file or folder and not sampled) is opened to be read in batches
    (:class:`omgmagics.io.sources.ParquetSource`) instead of loaded; its ``content_sha256`` is then
    None until a pass over it computes it."""
    from ..io import declared_parquet
    from ..io.sources import ParquetSource
    from ._util import read_json_or, rel
    from .sources import LINEAGE_FILE, raw_table

    lineage = read_json_or(project.raw_dir / LINEAGE_FILE, {"sources": {}})
    present = {n: r for n, r in lineage["sources"].items() if (project.raw_dir / r["file"]).is_file()}
    current = lineage.get("current")
    if current in present:
        present = {current: present[current]}
    if len(present) == 1:
        (name, record), = present.items()
        path = project.raw_dir / record["file"]
        return ParquetSource(path, batch_rows), {"path": rel(project, path), "content_sha256":
                                                  record.get("content_sha256"), "rows": record.get("rows")}
    path = declared_parquet(project) if not present else None
    if path is not None:
        src = ParquetSource(path, batch_rows)
        return src, {"path": "project data.source (not collected)", "content_sha256": None,
                     "rows": src.rows}
    return raw_table(project)


def parquet_source(project: Any, data: str,
                   batch_rows: int = FRAME_ROWS) -> tuple[Any, dict[str, Any]] | None:
    """`data` opened to be read in batches when it is a parquet file or folder (:func:`parquet_path`);
    None for anything else (which is loaded whole)."""
    from ..io import parquet_path
    from ..io.sources import open_source

    path = parquet_path(project, data)
    if path is None:
        return None
    src = open_source(path, batch_rows=batch_rows)
    return src, {"path": data, "content_sha256": None, "rows": src.rows}


def validate_source(src: Any, schema: dict[str, Any], source: str, seed: int, progress: Any,
                     hash_content: bool) -> tuple[Report, Any, str | None]:
    """One pass over `src`: the validation report, a seeded row sample (the data dictionary's) and,
    when asked, the table's content hash (the same as :func:`.sources.content_sha256` of the whole
    table)."""
    import hashlib

    import pandas as pd

    from ..io.rowsample import RowSample
    from .schema import validate_table

    sample = RowSample(DICTIONARY_SAMPLE, seed)
    each = [sample.add]
    digest = None
    if hash_content:
        digest = hashlib.sha256()
        digest.update(repr([(str(c), str(t)) for c, t in src.dtypes().items()]).encode())
        each.append(lambda df: digest.update(
            pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()))
    report = validate_table(src, schema, source=source, progress=progress, each=each)
    frame = sample.frame(src.dtypes())
    if frame is None:
        frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in src.dtypes().items()})
    return report, frame, digest.hexdigest() if digest is not None else None
