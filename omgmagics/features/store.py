"""A file-based feature store (core layer).

Each version is an immutable folder ``features/NAME/VERSION/`` holding one parquet file per split and a
``manifest.json`` (schema, row counts, sha256 of every file, target, feature definitions, lineage,
creation time). A version is written into a temporary folder and renamed into place, so a crash leaves
either the whole version or nothing; writing an existing version is refused.

Load with ``load_feature_set(project.features_dir, "NAME@v1")`` or ``"NAME@latest"``. Besides the splits a
version may hold more files (the fitted feature pipeline ``pipeline.skops``), listed with their sha256
in the manifest. :func:`write_duckdb_catalog` builds an optional DuckDB file with one SQL view per
version (and ``NAME_latest``) over the parquet files, for exploration.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock
from ..atomic import atomic_dir, sha256_file, write_json
from ..errors import DataError, UsageError, unknown_choice

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
VERSION_RE = re.compile(r"^v(\d+)$")
SPLITS = ("train", "val", "test")


@dataclass
class FeatureSet:
    """A loaded feature-set version.

    Attributes
    ----------
    name, version : str
    path : Path
        The version folder.
    splits : dict of str to DataFrame
        ``train`` / ``val`` / ``test`` (whichever were stored); features plus the target column.
    manifest : dict
    """

    name: str
    version: str
    path: Path
    splits: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def target(self) -> str | None:
        return self.manifest.get("target")

    @property
    def train(self) -> Any:
        return self.splits.get("train")

    @property
    def val(self) -> Any:
        return self.splits.get("val")

    @property
    def test(self) -> Any:
        return self.splits.get("test")

    def xy(self, split: str) -> tuple[Any, Any]:
        """Features and target of one split."""
        df = self.splits[split]
        if self.target is None or self.target not in df.columns:
            raise DataError(f"Feature set {self.ref} has no target column '{self.target}' in its "
                            f"{split} split. Store the set with its target.")
        drop = [self.target] + [c for c in [self.id_column] if c and c in df.columns]
        return df.drop(columns=drop), df[self.target]

    @property
    def id_column(self) -> str | None:
        """A row id kept beside the features (not a feature) to join back to the raw splits."""
        return self.manifest.get("id_column")

    @property
    def feature_columns(self) -> list[str]:
        """The feature columns (every column but the target and the id)."""
        first = next(iter(self.splits.values()))
        return [c for c in first.columns if c not in (self.target, self.id_column)]

    @property
    def pipeline_path(self) -> Path | None:
        """The fitted feature pipeline stored with this version, if any."""
        rel = self.manifest.get("pipeline")
        return self.path / rel if rel else None

    def load_pipeline(self) -> Any:
        """The fitted feature pipeline (raw columns in, this set's feature columns out)."""
        from .extract import load_pipeline

        if self.pipeline_path is None:
            raise DataError(f"Feature set {self.ref} was stored without a pipeline.")
        return load_pipeline(self.pipeline_path)


def parse_ref(ref: str) -> tuple[str, str]:
    """``"name@v2"`` -> (name, "v2"); ``"name"`` -> (name, "latest")."""
    name, _, version = ref.partition("@")
    version = version or "latest"
    if not NAME_RE.match(name):
        raise UsageError(f"Feature set name '{name}' must be letters, digits, '-' or '_' "
                         "(no paths). Example: project_features@v1")
    if version != "latest" and not VERSION_RE.match(version):
        raise UsageError(f"Feature set version '{version}' must look like v1, v2 ... or 'latest'.")
    return name, version


def list_versions(root: Path, name: str) -> list[str]:
    """Stored versions of `name`, oldest first (``v2`` before ``v10``)."""
    folder = Path(root) / name
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir()
             if p.is_dir() and VERSION_RE.match(p.name) and (p / "manifest.json").is_file()]
    return sorted(found, key=lambda v: int(VERSION_RE.match(v).group(1)))


def list_feature_sets(root: Path) -> dict[str, list[str]]:
    """All feature sets under `root` with their versions."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.name: list_versions(root, p.name) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and list_versions(root, p.name)}


def next_version(root: Path, name: str) -> str:
    """The first free version of `name`: ``v1``, or one above the latest."""
    have = list_versions(root, name)
    return f"v{int(VERSION_RE.match(have[-1]).group(1)) + 1}" if have else "v1"


def write_feature_set(root: Path, name: str, version: str, splits: dict[str, Any],
                      target: str | None, extra: dict[str, Any] | None = None,
                      files: dict[str, Any] | None = None) -> Path:
    """Write a new immutable version atomically and return its folder.

    Parameters
    ----------
    root : Path
        The store folder (``project/features``).
    splits : dict of str to DataFrame
        Keys among ``train``, ``val``, ``test``.
    target : str or None
        The target column, present in every split.
    extra : dict, optional
        More manifest entries: ``id_column``, ``pipeline``, ``features``, ``raw_columns``, ``selection``,
        ``lineage`` ... A ``row_id`` column is recorded as ``id_column`` unless `extra` says otherwise.
    files : dict of str to bytes or path, optional
        More files to store in the version folder (e.g. ``{"pipeline.skops": path}``).

    Raises
    ------
    UsageError
        For a bad name or version, or a version that already exists.
    """
    parse_ref(f"{name}@{version}")
    if version == "latest":
        raise UsageError("Write a concrete version such as v1, not 'latest'.")
    bad = set(splits) - set(SPLITS)
    if bad:
        raise UsageError(unknown_choice("split", sorted(bad)[0], SPLITS))
    dest = Path(root) / name / version
    if dest.exists():
        raise UsageError(f"Feature set {name}@{version} already exists and versions are immutable. "
                         f"Write a new version (next free: {next_version(root, name)}).")
    if not splits:
        raise DataError("No splits to store: pass at least a train split.")
    for fname in files or {}:
        if "/" in fname or "\\" in fname or fname in ("manifest.json",) or fname.startswith("."):
            raise UsageError(f"Extra file name '{fname}' must be a plain file name (not manifest.json).")
    manifest: dict[str, Any] = {
        "name": name, "version": version, "target": target,
        "created": clock.stamp(),
        "splits": {},
    }
    with atomic_dir(dest) as tmp:
        for split, df in splits.items():
            if target is not None and target not in df.columns:
                raise DataError(f"Split '{split}' has no target column '{target}'.")
            path = tmp / f"{split}.parquet"
            df.to_parquet(path, index=False)
            manifest["splits"][split] = {"file": path.name, "rows": int(len(df)),
                                         "sha256": sha256_file(path)}
        first = next(iter(splits.values()))
        manifest["schema"] = {str(c): str(t) for c, t in first.dtypes.items()}
        manifest["rows"] = int(sum(len(df) for df in splits.values()))
        if "row_id" in first.columns:
            manifest["id_column"] = "row_id"
        manifest.update(extra or {})
        id_col = manifest.get("id_column")
        manifest["feature_columns"] = [str(c) for c in first.columns if c not in (target, id_col)]
        manifest["files"] = {}
        for fname, content in (files or {}).items():
            path = tmp / fname
            if isinstance(content, (bytes, bytearray)):
                path.write_bytes(content)
            else:
                shutil.copyfile(content, path)
            manifest["files"][fname] = {"sha256": sha256_file(path)}
        write_json(tmp / "manifest.json", manifest)
    return dest


def load_feature_set(root: Path, ref: str, verify: bool = True) -> FeatureSet:
    """Load ``NAME@vN`` or ``NAME@latest`` from the store folder `root`.

    With `verify`, each split's sha256 is checked against the manifest.
    """
    import json

    import pandas as pd

    name, version = parse_ref(ref)
    versions = list_versions(root, name)
    if not versions:
        sets = list_feature_sets(root)
        raise DataError(f"No feature set '{name}' in {root}. "
                        + (unknown_choice("feature set", name, sets) if sets else
                           "Store one first with `omg feature store --name NAME --version v1`."))
    if version == "latest":
        version = versions[-1]
    if version not in versions:
        raise DataError(f"Feature set {name} has no version {version}. Stored: {', '.join(versions)}.")
    folder = Path(root) / name / version
    manifest = json.loads((folder / "manifest.json").read_text())
    splits = {}
    for split, info in manifest["splits"].items():
        path = folder / info["file"]
        if verify and sha256_file(path) != info["sha256"]:
            raise DataError(f"{path} does not match the sha256 in its manifest: the stored feature set "
                            "was modified. Restore it or write a new version.")
        splits[split] = pd.read_parquet(path)
    for fname, info in manifest.get("files", {}).items():
        path = folder / fname
        if verify and (not path.is_file() or sha256_file(path) != info["sha256"]):
            raise DataError(f"{path} is missing or does not match the sha256 in its manifest: the stored "
                            "feature set was modified. Restore it or write a new version.")
    return FeatureSet(name, version, folder, splits, manifest)


def feature_set_table(root: Path) -> Any:
    """Every stored version as a table: name, version, created, rows per split, features, target."""
    import json

    import pandas as pd

    rows = []
    for name, versions in list_feature_sets(root).items():
        for version in versions:
            m = json.loads((Path(root) / name / version / "manifest.json").read_text())
            sel = m.get("selection") or {}
            rows.append({"name": name, "version": version, "created": m.get("created"),
                         **{s: m.get("splits", {}).get(s, {}).get("rows") for s in SPLITS},
                         "features": len(m.get("feature_columns") or m.get("schema", {})),
                         "target": m.get("target"),
                         "selection": f"{sel.get('method')} k={sel.get('k')}" if sel else "",
                         "pipeline": m.get("pipeline") or ""})
    return pd.DataFrame(rows, columns=["name", "version", "created", *SPLITS, "features", "target",
                                       "selection", "pipeline"])


def write_duckdb_catalog(root: Path, filename: str = "catalog.duckdb") -> Path:
    """A DuckDB file with a view per stored version (``NAME_vN``) and ``NAME_latest``.

    Each view is the union of the version's splits with a ``split`` column. The file is rebuilt
    atomically; views read the parquet files in place (absolute paths).
    """
    import duckdb

    from ..atomic import atomic_path

    root = Path(root)
    sets = list_feature_sets(root)
    target = root / filename
    with atomic_path(target, suffix=".duckdb") as tmp:
        tmp.unlink()  # duckdb creates the file itself
        con = duckdb.connect(str(tmp))
        try:
            for name, versions in sets.items():
                for version in versions:
                    folder = (root / name / version).resolve()
                    manifest = json_load(folder / "manifest.json")
                    parts = [f"SELECT *, {_sql_text(split)} AS split FROM "
                             f"read_parquet({_sql_text(folder / info['file'])})"
                             for split, info in manifest["splits"].items()]
                    sql = " UNION ALL BY NAME ".join(parts)
                    con.execute(f"CREATE VIEW {_sql_name(f'{name}_{version}')} AS {sql}")
                con.execute(f"CREATE VIEW {_sql_name(f'{name}_latest')} AS SELECT * FROM "
                            f"{_sql_name(f'{name}_{versions[-1]}')}")
        finally:
            con.close()
    return target


def json_load(path: Path) -> Any:
    import json

    return json.loads(Path(path).read_text())


def _sql_text(value: object) -> str:
    """`value` as a SQL string literal (quotes doubled: a folder name cannot end the literal)."""
    return "'" + str(value).replace("'", "''") + "'"


def _sql_name(value: object) -> str:
    """`value` as a quoted SQL identifier."""
    return '"' + str(value).replace('"', '""') + '"'
