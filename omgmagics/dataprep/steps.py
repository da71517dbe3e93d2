"""Phase 2 data steps on a project's folders (core layer).

Each ``*_step`` reads its inputs from the project (or takes a DataFrame), calls the pure functions of
the other ``dataprep`` modules and writes its outputs atomically where the next step finds them::

    data/raw/NAME.parquet + lineage.json          collect
    reports/validation.json, docs/data_dictionary.md   validate --schema
    data/processed/labeled.parquet + labeled.json      label
    data/processed/{train,val,test}.parquet + split_manifest.json   split
    data/processed/train_augmented.parquet + augment.json           augment

A later step uses an earlier step's output only while it is current: the labelled table while the
raw data it came from is unchanged, the augmented training split while ``train.parquet`` is the one
it was made from (sha256 recorded in the sidecar JSON files).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import clock
from ..atomic import atomic_path, sha256_file, write_json, write_text
from ..errors import ConfigError, DataError, UsageError
from ..io import resolve
from ..results import Report
from ._util import read_json_or, rel
from .sources import raw_table
from .split import SPLITS

LABELED, LABELED_META = "labeled.parquet", "labeled.json"
SPLIT_MANIFEST = "split_manifest.json"
AUGMENTED, AUGMENT_META = "train_augmented.parquet", "augment.json"
VALIDATION = "validation.json"


def _target(project: Any) -> str:
    target = project.target
    if not target:
        raise ConfigError("omg.yaml has no brief.objective.target. Set the target column there.")
    return target


def _write_parquet(df: Any, path: Path) -> str:
    with atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return sha256_file(path)


# --- collect -------------------------------------------------------------------------------------
def project_source_spec(project: Any) -> dict[str, Any]:
    """The project's configured source (``data.source``: the demo data or a file) as a source entry."""
    source = project.config.get_path("data.source", "demo")
    if source in (None, "demo"):
        return {"name": "adult", "kind": "demo", "options": {}}
    return file_source_spec(project, source, "data.source")


def file_source_spec(project: Any, source: str, what: str) -> dict[str, Any]:
    """One csv/parquet/jsonl file as a source entry named after the file (`what` names the setting
    or option it came from, for the error message)."""
    path = resolve(project, source, source)
    if path.is_dir():
        raise DataError(f"{what} {source} is a folder. `data collect` copies one table file into "
                        "data/raw, in memory; check a (partitioned) parquet folder in place instead, "
                        f"read in batches: `omg data validate --data {source}` (add --audit for the "
                        "audit).")
    kinds = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}
    kind = kinds.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{what} {source} has an unknown file type '{path.suffix}'. Use csv, "
                          "parquet or jsonl, or list the source in sources.yaml.")
    if what.startswith("--") and not path.is_file():
        raise DataError(f"{what} {source}: no such file. Give the path of a csv, parquet or jsonl "
                        "file (relative paths are read from the project folder).")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem).lstrip("_-") or "source"
    return {"name": name, "kind": kind, "path": str(path),
            "options": {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}}


def collect_step(project: Any, sources: str | None = None, output: str | None = None,
                 sample_frac: float | None = None, progress: Any = None,
                 source: str | None = None) -> Report:
    """Collect the sources of `sources` (default ``sources.yaml``) into `output` (``data/raw``).

    Without a sources file (and none named), the project's own ``data.source`` is collected; with
    `source` (a file), only that file. `sample_frac` defaults to ``data.sample_frac``.
    """
    from .sources import collect, load_sources

    if source is not None and sources is not None:
        raise UsageError("--source and --sources exclude each other: collect one file with --source, "
                         "or the sources of a sources file with --sources.")
    path = resolve(project, sources, project.config.get_path("data.sources", "sources.yaml"))
    note = None
    if source is not None:
        specs = [file_source_spec(project, source, "--source")]
    elif sources is None and not path.is_file():
        specs = [project_source_spec(project)]
        note = (f"No {path.name} in the project: collected the project's data.source "
                f"({specs[0].get('path', 'the bundled demo data')}). List more sources in {path.name}.")
    else:
        specs = load_sources(path)
    if sample_frac is None:
        sample_frac = project.config.get_path("data.sample_frac")
    out = resolve(project, output, "data/raw")
    report = collect(specs, out, sample_frac=sample_frac, seed=project.seed, progress=progress)
    if note:
        report.messages.insert(0, note)
    return report


def table_info(project: Any, df: Any, ref: str) -> dict[str, Any]:
    """Lineage facts about a table given with ``--data``."""
    from .sources import content_sha256

    return {"path": ref, "content_sha256": content_sha256(df), "rows": len(df)}


def current_table(project: Any) -> tuple[Any, dict[str, Any]]:
    """The table the split starts from: the labelled table while it is current, else the raw one."""
    import pandas as pd

    raw, info = raw_table(project)
    meta = read_json_or(project.processed_dir / LABELED_META, None)
    labeled = project.processed_dir / LABELED
    if meta and meta.get("status") != "skipped" and labeled.is_file() and \
            meta.get("input", {}).get("content_sha256") == info.get("content_sha256"):
        return pd.read_parquet(labeled), {"path": rel(project, labeled),
                                          "sha256": sha256_file(labeled), "labeled_from": info}
    return raw, info


# --- validate ------------------------------------------------------------------------------------
def _roles(project: Any) -> dict[str, str]:
    """Column roles for the data dictionary: brief roles, plus personal data found by the audit."""
    roles: dict[str, str] = {}
    audit = read_json_or(project.reports_dir / "data_audit.json", {})
    for finding in audit.get("personal_data") or []:
        if isinstance(finding, dict) and finding.get("column"):
            direct = ", direct identifier" if finding.get("direct identifier") == "yes" else ""
            roles[str(finding["column"])] = f"personal data ({finding.get('kind', '?')}{direct})"
    for col in project.config.get_path("data.exclude_columns", []) or []:
        roles[col] = "excluded from features"
    roles.update({c: "sensitive" for c in project.sensitive_features})
    if project.time_column:
        roles[project.time_column] = "time"
    id_col = project.config.get_path("data.id_column")
    if id_col:
        roles[id_col] = "id"
    if project.target:
        roles[project.target] = "target"
    return roles


def write_dictionary(project: Any, df: Any, schema: dict[str, Any], source: str) -> Path:
    from .dictionary import data_dictionary

    audit = project.reports_dir / "data_audit.html"
    text = data_dictionary(df, schema, title=f"Data dictionary: {project.name}", source=source,
                           roles=_roles(project), audit=rel(project, audit) if audit.is_file() else None,
                           generated=clock.stamp()[:10])
    return write_text(project.docs_dir / "data_dictionary.md", text)


def infer_step(project: Any, df: Any, source: str, schema: str | None = None,
               force: bool = False) -> Report:
    """Write a starting schema inferred from `df` (an existing schema is kept unless `force`)."""
    from .schema import check_schema, infer_schema, load_schema, schema_to_yaml

    path = resolve(project, schema, project.config.get_path("data.schema", "schema.yaml"))
    if path.exists() and not force:
        report = Report(f"Kept the existing schema {rel(project, path)}",
                        summary={"schema": rel(project, path), "written": "no"},
                        artifacts={"schema": str(path)})
        report.messages.append("A schema already exists and may hold your edits, so it was not "
                               "replaced. Pass --force to infer a new one over it.")
        write_dictionary(project, df, load_schema(path), source)
        return report
    id_cols = tuple(c for c in [project.config.get_path("data.id_column")] if c)
    inferred = infer_schema(df, id_columns=id_cols)
    write_text(path, schema_to_yaml(inferred, source))
    checked = check_schema(inferred, path.name)
    dictionary = write_dictionary(project, df, checked, source)
    cols = inferred["columns"]
    import pandas as pd

    table = pd.DataFrame([{"column": c, "dtype": r["dtype"], "nullable": r["nullable"],
                           "rules": ", ".join(k for k in r if k not in ("dtype", "nullable",
                                                                        "description"))}
                          for c, r in cols.items()])
    report = Report(f"Inferred a schema for {len(cols)} columns from {source}",
                    summary={"schema": rel(project, path), "columns": len(cols), "rows": len(df)},
                    tables={"inferred rules": table},
                    artifacts={"schema": str(path), "data dictionary": str(dictionary)})
    report.messages.append("Review the ranges and allowed values (they are what this data shows), "
                           "add descriptions, then validate with --schema --strict.")
    return report


def validate_step(project: Any, df: Any, source: str, schema: str | None = None,
                  strict: bool = False, info: dict[str, Any] | None = None,
                  progress: Any = None) -> Report:
    """Validate `df` against the schema, record the result and regenerate the data dictionary.

    `df` is a DataFrame, or a :class:`omgmagics.io.sources.Source` (a parquet file or
    hive-partitioned folder) read in batches: the same violations, in bounded memory; the data
    dictionary's statistics then come from a seeded sample of ``DICTIONARY_SAMPLE`` rows when
    the table is larger (stated in the dictionary), and a missing ``content_sha256`` in `info` is
    computed in the same pass.

    Raises
    ------
    DataError
        With `strict`, after recording the result, when any rule is broken.
    """
    from ..io.sources import Source
    from .batched import validate_source
    from .schema import load_schema, strict_error, validate_frame

    path = resolve(project, schema, project.config.get_path("data.schema", "schema.yaml"))
    checked = load_schema(path)
    info = dict(info or {"path": source})
    described = source
    if isinstance(df, Source):
        report, sample, digest = validate_source(df, checked, source, project.seed, progress,
                                                  hash_content=info.get("content_sha256") is None
                                                  and "content_sha256" in info)
        rows = report.summary["rows"]
        if digest is not None:
            info["content_sha256"] = digest
        info["rows"] = rows
        if len(sample) < rows:
            described = (f"{source}; statistics on a seeded sample of {len(sample):,} of "
                         f"{rows:,} rows")
            report.messages.append(f"Read in batches: every rule checked on all {rows:,} rows; the "
                                   f"data dictionary's statistics come from a seeded sample of "
                                   f"{len(sample):,} rows.")
        frame = sample
    else:
        report = validate_frame(df, checked, source=source)
        rows, frame = len(df), df
    record = {"status": report.summary["status"], "strict": strict, "schema": rel(project, path),
              "schema_sha256": sha256_file(path), "data": info,
              "rows": rows, "violations": report.data["violations"], "validated_at": clock.stamp()}
    record_path = write_json(project.reports_dir / VALIDATION, record)
    dictionary = write_dictionary(project, frame, checked, described)
    report.artifacts.update({"validation record": str(record_path),
                             "data dictionary": str(dictionary)})
    if strict and report.summary["status"] != "pass":
        raise strict_error(report, source)
    return report


# --- label ---------------------------------------------------------------------------------------
LF_MODULES = ("projectlib.labeling", "projectlib.features")


def default_functions_module(project: Any) -> str:
    """``projectlib.labeling`` when the project has it, else ``projectlib.features`` (nbdev exports
    a phase notebook's ``#| export`` cells into one module, the 02_data notebook's into features)."""
    for module in LF_MODULES:
        if (project.root / (module.replace(".", "/") + ".py")).is_file():
            return module
    return LF_MODULES[0]


def label_step(project: Any, df: Any, info: dict[str, Any], functions: str | None = None,
               strategy: str = "weak_supervision", gold: str | None = None,
               hide_share: float | None = None, min_confidence: float = 0.0,
               progress: Any = None) -> Report:
    """Label the unlabelled rows with the project's labeling functions; write ``labeled.parquet``.

    Skipped (a report saying why, not an error) when there is nothing to label (every row has a
    target and no labels are to be hidden), when the project has no labeling functions, or when
    none of them votes on any row. A skip is recorded in ``labeled.json`` and removes an earlier
    labelled table, so ``split`` reads the raw table (and keeps unlabeled rows out of the splits).
    """
    from .label import label_frame, load_labeling_functions, skipped_report

    if hide_share is None:
        hide_share = float(project.config.get_path("data.unlabeled_share", 0.0) or 0.0)
    if not 0 <= hide_share < 1:
        raise DataError(f"--hide-share must be in [0, 1), got {hide_share}.")
    if not 0 <= min_confidence <= 1:
        raise DataError(f"--min-confidence must be in [0, 1] (a label-model probability), got "
                        f"{min_confidence}.")
    target = _target(project)
    explicit = functions is not None
    functions = functions or default_functions_module(project)
    unlabeled = int(df[target].isna().sum()) if target in df.columns else len(df)
    lfs, reason = None, None
    if explicit or (project.root / (functions.replace(".", "/") + ".py")).is_file():
        try:  # a module named with --functions must import: a typo is an error, not a skip
            lfs = load_labeling_functions(functions, project.root)
        except DataError as exc:
            if not str(exc).startswith("No labeling functions"):
                raise
            reason = f"{functions} has no labeling functions"
    else:
        reason = f"the project has no labeling functions ({' or '.join(LF_MODULES)})"
    if unlabeled == 0 and not hide_share > 0:
        reason = f"every row has a '{target}' value, so there is nothing to label"
    if reason is not None:
        report = skipped_report(target, reason, len(df), unlabeled, len(lfs or []))
    else:
        report = label_frame(df, lfs, target, strategy=strategy, gold=gold, hide_share=hide_share,
                             seed=project.seed, min_confidence=min_confidence, progress=progress)
    path = project.processed_dir / LABELED
    if report.summary.get("status") == "skipped":
        meta = {"status": "skipped", "reason": report.summary["reason"], "input": info,
                "functions": functions, "strategy": strategy, "hide_share": hide_share,
                "summary": report.summary, "labeled_at": clock.stamp()}
        meta_path = write_json(project.processed_dir / LABELED_META, meta)
        path.unlink(missing_ok=True)  # the record says skipped: an older labelled table is stale
        report.artifacts["labelling record"] = str(meta_path)
        return report
    sha = _write_parquet(report.value, path)
    meta = {"status": "labeled", "input": info, "functions": functions, "strategy": strategy,
            "hide_share": hide_share, "summary": report.summary, "rows": len(report.value),
            "sha256": sha, "labeled_at": clock.stamp()}
    meta_path = write_json(project.processed_dir / LABELED_META, meta)
    report.artifacts.update({"labelled table": str(path), "labelling record": str(meta_path)})
    return report


# --- split ---------------------------------------------------------------------------------------
def split_step(project: Any, df: Any, info: dict[str, Any], fractions: tuple[float, float, float],
               group: str | None = None, time: str | None = None, stratify: bool = True) -> Report:
    """Split `df` and write the three splits and the split manifest to ``data/processed``.

    Without `group`, `time` and with `stratify`, a ``brief.time_column`` present in the data orders
    the split (said in the report); ``time="none"`` turns that off. When the brief's time column
    cannot order the split (missing or unreadable times), the split is stratified instead, with the
    reason.
    """
    from .split import check_fractions, split_frame, split_report

    check_fractions(*fractions)
    target = _target(project)
    facts: dict[str, Any] = {"notes": []}
    from_brief = False
    if time is not None and time.strip().lower() == "none":
        time = None
    elif time is None and group is None and stratify and project.time_column \
            and project.time_column in df.columns:
        time, from_brief = project.time_column, True
    try:
        splits = split_frame(df, target, fractions, seed=project.seed, group=group, time=time,
                             stratify=stratify, objective=project.objective_type, info=facts)
    except DataError as exc:
        if not from_brief:
            raise
        reason = str(exc)
        time, from_brief = None, False
        facts = {"notes": [f"brief.time_column '{project.time_column}' cannot order the split "
                           f"({reason.rstrip('.')}); split stratified instead."]}
        splits = split_frame(df, target, fractions, seed=project.seed, stratify=stratify,
                             objective=project.objective_type, info=facts)
    mode = "group" if group else "time" if time else "stratified" if stratify else "random"
    report = split_report(splits, target, fractions, mode, project.seed, group, time,
                          project.objective_type)
    labeled = read_json_or(project.processed_dir / LABELED_META, {}) if "labeled_from" in info else {}
    dropped = int((labeled.get("summary") or {}).get("left unlabelled (dropped)") or 0)
    if dropped:
        facts["notes"].insert(0, f"{dropped} unlabeled rows that no labeling function labeled were "
                                 "left out of the labelled table by `omg data label`, so of every "
                                 "split.")
        facts["unlabeled_excluded"] = facts.get("unlabeled_excluded", 0) + dropped
    first = [f"Time-ordered on brief.time_column '{time}' (no --time or --group given): validation "
             "and test are later than training. Pass --time none for a stratified split."] \
        if from_brief else []
    report.messages[:0] = first + facts["notes"]
    if facts.get("unlabeled_excluded"):
        report.summary["unlabeled rows left out"] = facts["unlabeled_excluded"]
    if facts.get("weak_excluded"):
        report.summary["weak rows left out"] = facts["weak_excluded"]
    files = {}
    for name, part in splits.items():
        path = project.processed_dir / f"{name}.parquet"
        files[name] = {"file": path.name, "rows": len(part), "sha256": _write_parquet(part, path)}
    manifest = {"mode": mode, "fractions": dict(zip(SPLITS, fractions, strict=True)),
                "seed": project.seed, "target": target, "group": group, "time": time,
                "time_from_brief": from_brief, "id_column": "row_id", "input": info, "splits": files,
                "max_row_id": int(max(int(p["row_id"].max()) for p in splits.values())),
                "unlabeled_excluded": facts.get("unlabeled_excluded", 0),
                "weak_excluded": facts.get("weak_excluded", 0), "notes": facts["notes"],
                "leakage": report.data["leakage"], "balance": report.data["balance"],
                "created": clock.stamp()}
    manifest_path = write_json(project.processed_dir / SPLIT_MANIFEST, manifest)
    report.artifacts.update({name: str(project.processed_dir / f["file"]) for name, f in files.items()})
    report.artifacts["split manifest"] = str(manifest_path)
    return report


def read_split_manifest(project: Any) -> dict[str, Any]:
    """The split manifest; raises :class:`DataError` when the data was not split yet."""
    manifest = read_json_or(project.processed_dir / SPLIT_MANIFEST, None)
    if manifest is None:
        raise DataError(f"No splits in {rel(project, project.processed_dir)}. Split the data first with "
                        "`omg data split`.")
    return manifest


def load_split(project: Any, name: str) -> Any:
    """One split (``train``, ``val``, ``test``) as written by :func:`split_step`, checked by sha256."""
    import pandas as pd

    manifest = read_split_manifest(project)
    path = project.processed_dir / manifest["splits"][name]["file"]
    if not path.is_file() or sha256_file(path) != manifest["splits"][name]["sha256"]:
        raise DataError(f"{rel(project, path)} is missing or differs from the split manifest. Split the "
                        "data again with `omg data split`.")
    return pd.read_parquet(path)


# --- augment -------------------------------------------------------------------------------------
def augment_step(project: Any, split: str = "train", strategy: str = "smote",
                 k_neighbors: int | None = None, ratio: float | None = None) -> Report:
    """Rebalance the training split; write ``train_augmented.parquet`` (``train.parquet`` is kept).

    A skipped augmentation (regression target, balanced classes ...) writes only ``augment.json``
    with the reason and removes an earlier augmented split, so features fit on ``train.parquet``.
    """
    from .augment import augment_frame, check_split

    check_split(split)
    manifest = read_split_manifest(project)
    train = load_split(project, "train")
    report = augment_frame(train, _target(project), strategy=strategy, k_neighbors=k_neighbors,
                           seed=project.seed, ratio=ratio, next_id=manifest["max_row_id"] + 1,
                           objective=project.objective_type)
    path = project.processed_dir / AUGMENTED
    if report.summary.get("status") == "skipped":
        meta = {"status": "skipped", "reason": report.summary["reason"], "strategy": strategy,
                "train_sha256": manifest["splits"]["train"]["sha256"], "augmented_at": clock.stamp()}
        meta_path = write_json(project.processed_dir / AUGMENT_META, meta)
        path.unlink(missing_ok=True)
        report.artifacts["augmentation record"] = str(meta_path)
        return report
    sha = _write_parquet(report.value, path)
    meta = {"status": "augmented", "strategy": strategy, "method": report.summary["method"],
            "k_neighbors": report.summary.get("k_neighbors", k_neighbors),
            "ratio": ratio, "seed": project.seed, "train_sha256": manifest["splits"]["train"]["sha256"],
            "rows_before": len(train), "rows_after": len(report.value), "sha256": sha,
            "synthetic_row_ids_from": manifest["max_row_id"] + 1,
            "class_counts": report.tables["class counts"].to_dict(orient="records"),
            "augmented_at": clock.stamp()}
    meta_path = write_json(project.processed_dir / AUGMENT_META, meta)
    report.artifacts.update({"augmented training split": str(path), "augmentation record": str(meta_path)})
    report.messages.append("`omg feature extract` uses the augmented training split while it is "
                           "current, if a quick model scores better with the synthetic rows than "
                           "without them (--no-augmented: the original one).")
    return report


def training_split(project: Any, use_augmented: bool = True) -> tuple[Any, dict[str, Any]]:
    """The training split to fit features on: the augmented one while current, else ``train``."""
    import pandas as pd

    manifest = read_split_manifest(project)
    meta = read_json_or(project.processed_dir / AUGMENT_META, None)
    path = project.processed_dir / AUGMENTED
    if use_augmented and meta and meta.get("status") != "skipped" and path.is_file() and \
            meta.get("train_sha256") == manifest["splits"]["train"]["sha256"] and \
            sha256_file(path) == meta.get("sha256"):
        # the original rows come first, the synthetic ones after them (row ids from
        # synthetic_row_ids_from)
        return pd.read_parquet(path), {"file": rel(project, path), "augmented": True,
                                       "strategy": meta["strategy"], "sha256": meta["sha256"],
                                       "original_rows": int(meta["rows_before"])}
    return load_split(project, "train"), {"file": rel(project, project.processed_dir / "train.parquet"),
                                          "augmented": False,
                                          "sha256": manifest["splits"]["train"]["sha256"]}
