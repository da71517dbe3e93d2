"""Checks of a folder of parquet files read as one table (core layer): every ``.parquet`` file
readable, the same columns in every file, types that widen to one type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError


def check_files(root: Path, fragments: list[Any]) -> None:
    """A ``.parquet`` file of the folder that arrow could not open is an error, not skipped."""
    read = {str(Path(f.path).resolve()) for f in fragments}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if path.is_file() and path.suffix.lower() in (".parquet", ".pq") \
                and not any(p.startswith((".", "_")) for p in rel) \
                and str(path.resolve()) not in read:
            raise DataError(f"{path} is not a readable parquet file (truncated or corrupt?). "
                            f"Write it again, or move it out of {root}.")

def unified_schema(root: Path, fragments: list[Any], schema: Any) -> Any:
    """One schema for every file of the folder: the same columns, types that widen to one type
    (int32 and int64, int and float); otherwise a :class:`DataError` naming the files."""
    import pyarrow as pa

    first = fragments[0]
    try:
        base = first.physical_schema
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{first.path} could not be read as parquet: {str(exc).splitlines()[0]}. "
                        f"Write it again, or move it out of {root}.") from None
    fields = {f.name: (f, first.path) for f in base}
    for frag in fragments[1:]:
        try:
            phys = frag.physical_schema
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{frag.path} could not be read as parquet: "
                            f"{str(exc).splitlines()[0]}. Write it again, or move it out of "
                            f"{root}.") from None
        if set(phys.names) != set(fields):
            missing = sorted(set(fields) - set(phys.names))
            extra = sorted(set(phys.names) - set(fields))
            diff = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"extra {', '.join(extra)}" if extra else "") if part)
            raise DataError(f"{frag.path} has other columns than {first.path} ({diff}). Every "
                            "parquet file of a folder must hold the same columns: rewrite the odd "
                            "file(s) with them, or point at a folder of one table.")
        for field in phys:
            known, where = fields[field.name]
            if known.type.equals(field.type):
                continue
            try:
                merged = pa.unify_schemas([pa.schema([known]), pa.schema([field])],
                                          promote_options="permissive").field(field.name)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise DataError(f"Column '{field.name}' is {field.type} in {frag.path} but "
                                f"{known.type} in {where}: the files cannot be read as one table. "
                                "Rewrite them with one type for the column.") from None
            fields[field.name] = (merged, where)
    names = [f.name for f in base]
    extra = [f for f in schema if f.name not in fields]  # partition columns
    return pa.schema([fields[n][0] for n in names] + extra, metadata=schema.metadata)
