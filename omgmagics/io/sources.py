"""Tables read in bounded batches (core layer): a DataFrame, a csv/json file, a parquet file or a
(hive-)partitioned parquet folder.

A :class:`Source` knows its columns and their kinds and yields :class:`Batch` objects of at most
``batch_rows`` rows in a deterministic order (parquet fragments sorted by path, row groups in file order),
so statistics gathered batch by batch are the same on every run. Only the requested columns are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from . import input_path

BATCH_ROWS = 1 << 18
NUMERIC, CATEGORICAL, TIME, OTHER = "numeric", "categorical", "time", "other"


def _arrow_kind(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return CATEGORICAL
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return NUMERIC
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return TIME
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t) \
            or pa.types.is_null(t):
        return CATEGORICAL
    return OTHER


def _pandas_kind(s: Any) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(s):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(s):
        return TIME
    return CATEGORICAL


class Batch:
    """Columns of one batch as numpy arrays (numeric), category codes or times."""

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def numeric(self, col: str) -> np.ndarray:
        """float64 values, NaN where missing."""
        raise NotImplementedError

    def codes(self, col: str, vocab: list[str]) -> np.ndarray:
        """Index into `vocab` as text; -1 for a value outside it, -2 for a missing value."""
        raise NotImplementedError

    def value_counts(self, col: str) -> dict[str, int]:
        """Counts of each non-missing value as text."""
        raise NotImplementedError

    def n_missing(self, col: str) -> int:
        raise NotImplementedError

    def times(self, col: str) -> tuple[np.ndarray, int]:
        """(int64 nanoseconds since the epoch in UTC, number of values that are not times)."""
        raise NotImplementedError


class ArrowBatch(Batch):
    def __init__(self, batch: Any):
        self.batch = batch

    def __len__(self) -> int:
        return self.batch.num_rows

    def _col(self, col: str) -> Any:
        return self.batch.column(self.batch.schema.get_field_index(col))

    def numeric(self, col: str) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self._col(col)
        if not pa.types.is_floating(arr.type):
            arr = pc.cast(arr, pa.float64())
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)

    def _text(self, col: str) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self._col(col)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = pc.cast(arr, pa.string())
        return arr

    def codes(self, col: str, vocab: list[str]) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self._text(col)
        idx = pc.index_in(arr, value_set=pa.array(vocab, type=arr.type))
        out = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        out[missing] = -2
        return out

    def value_counts(self, col: str) -> dict[str, int]:
        import pyarrow.compute as pc

        vc = pc.value_counts(self._text(col))
        values = vc.field("values").to_pylist()
        counts = vc.field("counts").to_pylist()
        return {v: c for v, c in zip(values, counts, strict=True) if v is not None}

    def n_missing(self, col: str) -> int:
        return int(self._col(col).null_count)

    def times(self, col: str) -> tuple[np.ndarray, int]:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self._col(col)
        if pa.types.is_date(arr.type):
            arr = pc.cast(pc.cast(arr, pa.date32()), pa.timestamp("s"))
        if pa.types.is_timestamp(arr.type):
            ns = pc.cast(pc.cast(arr, pa.timestamp("ns", tz=arr.type.tz)), pa.int64())
            values = np.asarray(pc.fill_null(ns, np.iinfo(np.int64).min).to_numpy(), dtype=np.int64)
            return values, 0
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return _parse_times(arr.to_pandas(), col)
        raise DataError(f"The time column '{col}' is not a time: its type is {arr.type}. Use a "
                        "timestamp, a date or ISO-8601 text (e.g. 2026-01-31T12:00:00Z).")


class PandasBatch(Batch):
    def __init__(self, df: Any):
        self.df = df

    def __len__(self) -> int:
        return len(self.df)

    def numeric(self, col: str) -> np.ndarray:
        import pandas as pd

        s = self.df[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            s = pd.to_numeric(s, errors="coerce")  # a value that is not a number counts as missing
        return s.to_numpy(dtype=np.float64, na_value=np.nan)

    def codes(self, col: str, vocab: list[str]) -> np.ndarray:
        import pandas as pd

        s = self.df[col]
        missing = s.isna().to_numpy()
        text = s.astype(object).where(~missing, None).map(lambda v: v if v is None else _as_text(v))
        out = pd.Categorical(text, categories=vocab).codes.astype(np.int64)
        out[missing] = -2
        return out

    def value_counts(self, col: str) -> dict[str, int]:
        s = self.df[col].dropna()
        return {str(k): int(v) for k, v in s.map(_as_text).value_counts().items()}

    def n_missing(self, col: str) -> int:
        return int(self.df[col].isna().sum())

    def times(self, col: str) -> tuple[np.ndarray, int]:
        import pandas as pd

        s = self.df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            values = s.astype("datetime64[ns]").to_numpy().view(np.int64).copy()
            return values, 0
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            raise DataError(f"The time column '{col}' is not a time: it holds numbers ({s.dtype}). "
                            "Use timestamps, dates or ISO-8601 text (e.g. 2026-01-31T12:00:00Z).")
        return _parse_times(s, col)


NAT = np.iinfo(np.int64).min


def _as_text(v: Any) -> str:
    # 1.0 and 1 are one category; a float that is a whole number is written without ".0".
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _parse_times(s: Any, col: str) -> tuple[np.ndarray, int]:
    import pandas as pd

    present = s.notna()
    parsed = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
    bad = int((present & parsed.isna()).sum())
    if bad and bad == int(present.sum()):
        sample = s[present].iloc[0]
        raise DataError(f"The time column '{col}' is not a time: no value parses as a date or time "
                        f"(e.g. {str(sample)[:40]!r}). Use ISO-8601 text such as "
                        "2026-01-31T12:00:00Z, or name the right column with --time-column.")
    values = parsed.dt.tz_localize(None).astype("datetime64[ns]").to_numpy().view(np.int64).copy()
    return values, bad


class Source:
    """A table read in batches. Subclasses set ``name`` and ``kinds`` (column -> kind)."""

    name: str = "table"
    kinds: dict[str, str]
    problems: list[str]

    def batches(self, columns: list[str], time_column: str | None = None,
                start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Batch]:
        raise NotImplementedError

    @property
    def columns(self) -> list[str]:
        return list(self.kinds)

    def frames(self, columns: list[str] | None = None) -> Iterator[Any]:
        """pandas DataFrames of at most ``batch_rows`` rows, in order, whose dtypes are those of the
        whole table read at once (``pd.read_parquet``), so a check per batch sees what it would see on
        the whole table."""
        raise NotImplementedError

    def dtypes(self) -> dict[str, Any]:
        """The pandas dtype of each column of the whole table."""
        raise NotImplementedError


class FrameSource(Source):
    """An in-memory DataFrame, sliced into batches."""

    def __init__(self, df: Any, name: str = "DataFrame", batch_rows: int = BATCH_ROWS):
        self.df = df
        self.name = name
        self.batch_rows = batch_rows
        self.kinds = {str(c): _pandas_kind(df[c]) for c in df.columns}
        self.problems = []
        self.rows = len(df)

    def batches(self, columns: list[str], time_column: str | None = None,
                start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Batch]:
        cols = list(dict.fromkeys(columns + ([time_column] if time_column else [])))
        for i in range(0, len(self.df), self.batch_rows):
            yield PandasBatch(self.df.iloc[i:i + self.batch_rows][cols])

    def frames(self, columns: list[str] | None = None) -> Iterator[Any]:
        df = self.df if columns is None else self.df[columns]
        for i in range(0, max(len(df), 1), self.batch_rows):
            yield df.iloc[i:i + self.batch_rows]

    def dtypes(self) -> dict[str, Any]:
        return {str(c): t for c, t in self.df.dtypes.items()}


class ParquetSource(Source):
    """A parquet file or a folder of parquet files (hive partitions such as ``date=2026-01-01/``)."""

    def __init__(self, path: str | os.PathLike, batch_rows: int = BATCH_ROWS):
        import pyarrow.dataset as ds

        self.path = Path(path)
        self.name = str(path)
        self.batch_rows = batch_rows
        try:
            self.dataset = ds.dataset(str(self.path), format="parquet", partitioning="hive",
                                      exclude_invalid_files=True)
            schema = self.dataset.schema
        except Exception as exc:  # noqa: BLE001 - arrow raises several kinds for a bad file
            raise DataError(f"{self.path} could not be read as parquet: {str(exc).splitlines()[0]}. "
                            "Point at a parquet file or a folder of parquet files.") from None
        self.fragments = sorted(self.dataset.get_fragments(), key=lambda f: f.path)
        if not self.fragments:
            if self.path.is_file():  # arrow skips a file that is not valid parquet
                raise DataError(f"{self.path} is not a readable parquet file (truncated or corrupt?). "
                                "Write it again, or point at another parquet file or folder.")
            raise DataError(f"{self.path} holds no parquet files. Point at a parquet file or a folder "
                            "of them.")
        if self.path.is_dir():
            from .partitions import check_files, unified_schema

            check_files(self.path, self.fragments)
            unified = unified_schema(self.path, self.fragments, schema)
            if not unified.equals(schema):
                self.dataset = ds.dataset(str(self.path), format="parquet", partitioning="hive",
                                          exclude_invalid_files=True, schema=unified)
                self.fragments = sorted(self.dataset.get_fragments(), key=lambda f: f.path)
                schema = unified
        self.schema = schema
        self.kinds = {f.name: _arrow_kind(f.type) for f in schema}
        self.types = {f.name: f.type for f in schema}
        self.partitions = [f.name for f in schema
                           if f.name not in self.fragments[0].physical_schema.names]
        self.problems = []
        self.rows = sum(f.count_rows() for f in self.fragments)
        self._dtypes: dict[str, Any] | None = None

    def _time_filter(self, col: str, start_ns: int | None, end_ns: int | None) -> Any:
        """A pushed-down filter that prunes partitions and row groups (rows are re-checked later)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        t = self.types.get(col)
        if t is None or not pa.types.is_timestamp(t) or (start_ns is None and end_ns is None):
            return None
        try:
            expr = None
            if start_ns is not None:
                lo = pa.scalar(start_ns, pa.int64()).cast(pa.timestamp("ns", tz=t.tz)).cast(t)
                expr = ds.field(col) >= lo
            if end_ns is not None:
                hi = pa.scalar(end_ns, pa.int64()).cast(pa.timestamp("ns", tz=t.tz)).cast(t)
                expr = (ds.field(col) < hi) if expr is None else expr & (ds.field(col) < hi)
            return expr
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    def batches(self, columns: list[str], time_column: str | None = None,
                start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Batch]:
        cols = list(dict.fromkeys(columns + ([time_column] if time_column else [])))
        import pyarrow.dataset as ds

        flt = self._time_filter(time_column, start_ns, end_ns) if time_column else None
        # No pre-buffering (it caches whole column chunks of the file) and little read-ahead
        # (arrow's default holds 16 batches): memory stays at about one batch.
        options = ds.ParquetFragmentScanOptions(pre_buffer=False)
        for fragment in self.fragments:
            for batch in fragment.to_batches(columns=cols, filter=flt, batch_size=self.batch_rows,
                                             schema=self.dataset.schema,
                                             batch_readahead=1, fragment_readahead=1,
                                             fragment_scan_options=options, use_threads=True):
                if batch.num_rows:
                    yield ArrowBatch(batch)


    def _null_columns(self, names: list[str]) -> set[str]:
        """The columns among `names` with a missing value somewhere (row-group statistics; a scan of
        the column where a file has none)."""
        out, unknown = set(), []
        for name in names:
            if name in self.partitions:
                continue
            nulls, known = 0, True
            for frag in self.fragments:
                meta = frag.metadata
                idx = meta.schema.to_arrow_schema().get_field_index(name)
                for rg in range(meta.num_row_groups):
                    stats = meta.row_group(rg).column(idx).statistics if idx >= 0 else None
                    if stats is None or not stats.has_null_count:
                        known = False
                        break
                    nulls += stats.null_count
                if not known:
                    break
            if not known:
                unknown.append(name)
            elif nulls:
                out.add(name)
        for batch in (self.batches(unknown) if unknown else ()):
            out |= {c for c in unknown if batch.n_missing(c)}
        return out

    def dtypes(self) -> dict[str, Any]:
        """The columns of the table as ``pd.read_parquet`` gives them (an index stored by pandas is
        not a column) and their dtypes: pandas' own dtypes where the file records them, integers with
        a missing value anywhere float64, booleans with one object, hive partition columns
        categories."""
        if self._dtypes is None:
            import pandas as pd
            import pyarrow as pa

            base = self.schema.empty_table().to_pandas().dtypes
            base.index = [str(c) for c in base.index]
            fixable = [c for c, t in base.items() if c in self.types and isinstance(t, np.dtype)
                       and (pa.types.is_integer(self.types[c]) or pa.types.is_boolean(self.types[c]))]
            nulls = self._null_columns(fixable)
            out = {}
            for name, dtype in base.items():
                if name in self.partitions:
                    dtype = pd.CategoricalDtype()
                elif name in nulls:
                    dtype = np.dtype("float64") if pa.types.is_integer(self.types[name]) \
                        else np.dtype("O")
                out[name] = dtype
            self._dtypes = out
        return dict(self._dtypes)

    def frames(self, columns: list[str] | None = None) -> Iterator[Any]:
        import pandas as pd
        import pyarrow as pa

        dtypes = self.dtypes()
        cols = list(columns) if columns is not None else list(dtypes)
        meta = self.schema.metadata
        for batch in self.batches(cols):
            df = pa.Table.from_batches([batch.batch]).replace_schema_metadata(meta).to_pandas()
            for col in cols:
                want = dtypes[col]
                if isinstance(want, pd.CategoricalDtype):
                    if not isinstance(df[col].dtype, pd.CategoricalDtype):
                        df[col] = df[col].astype("category")
                elif df[col].dtype != want:
                    df[col] = df[col].astype(want)
            yield df


def open_source(table: Any, name: str | None = None, base: str | os.PathLike | None = None,
                batch_rows: int = BATCH_ROWS) -> Source:
    """A :class:`Source` for a DataFrame, a parquet file or folder, or a csv/json file."""
    import pandas as pd

    if isinstance(table, Source):
        return table
    if isinstance(table, pd.DataFrame):
        if table.empty:
            raise DataError(f"The table {name or 'DataFrame'} is empty. Pass data with rows.")
        return FrameSource(table, name or "DataFrame", batch_rows)
    path = input_path(table, base)
    if not path.exists():
        raise DataError(f"Data {table} does not exist. Check the path (relative paths are resolved "
                        "from the working directory, then the project folder).")
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return ParquetSource(path, batch_rows)
    from . import read_table

    return FrameSource(read_table(path), str(path), batch_rows)


