"""Phase 2 feature steps on a project's folders (core layer).

``extract`` fits the pipeline and stages its output in ``data/processed/features/`` (pipeline.skops,
one parquet per split, extract.json); ``select`` adds selection.json there; ``store`` turns the stage
into an immutable feature-store version: the selected columns of each split, the pipeline with the
selection appended (so serving outputs exactly the model's inputs), and a manifest with definitions,
raw columns and lineage.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from .. import clock
from ..atomic import atomic_dir, sha256_file, write_json, write_text
from ..dataprep._util import read_json_or
from ..dataprep.steps import (
    AUGMENT_META,
    LABELED_META,
    SPLIT_MANIFEST,
    VALIDATION,
    load_split,
    read_split_manifest,
    rel,
    resolve,
    training_split,
)
from ..errors import ConfigError, DataError
from ..results import Report
from .store import (
    feature_set_table,
    list_feature_sets,
    next_version,
    parse_ref,
    write_duckdb_catalog,
    write_feature_set,
)

DEFAULT_NAME = "project_features"
BOOKKEEPING = ("row_id", "label_source", "label_confidence")


def stage_dir(project: Any) -> Path:
    return project.processed_dir / "features"


def feature_set_name(project: Any) -> str:
    """``features.name`` of omg.yaml, or ``project_features``."""
    return project.config.get_path("features.name") or DEFAULT_NAME


def _config_path(project: Any, config: str | None) -> Path:
    return resolve(project, config, project.config.get_path("features.config", "features.yaml"))


def _target(project: Any, spec: dict[str, Any] | None = None) -> str:
    target = (spec or {}).get("target") or project.target
    if not target:
        raise ConfigError("No target: set brief.objective.target in omg.yaml (or target: in "
                          "features.yaml).")
    return target


def infer_features_step(project: Any, config: str | None = None, force: bool = False,
                        use_augmented: bool = True) -> Report:
    """Write a starting features config from the training split (kept if it exists, unless `force`)."""
    from .functions import discover_feature_functions
    from .spec import infer_spec, spec_to_yaml

    path = _config_path(project, config)
    if path.exists() and not force:
        report = Report(f"Kept the existing features config {rel(project, path)}",
                        summary={"config": rel(project, path), "written": "no"},
                        artifacts={"features config": str(path)})
        report.messages.append("It may hold your edits, so it was not replaced. Pass --force to infer "
                               "a new one over it.")
        return report
    # the original training rows decide the column kinds (synthetic rows copy ids and free text)
    train, _ = training_split(project, use_augmented=False)
    exclude: dict[str, str] = {c: "" for c in BOOKKEEPING}  # the kit's own columns: no note
    for col in project.config.get_path("data.exclude_columns", []) or []:
        exclude.setdefault(col, "listed in data.exclude_columns of omg.yaml")
    for col in project.sensitive_features:
        exclude.setdefault(col, "a sensitive feature (brief.sensitive_features)")
    id_col = project.config.get_path("data.id_column")
    if id_col:
        exclude.setdefault(id_col, "the id column (data.id_column)")
    exclude = {c: why for c, why in exclude.items() if c in train.columns}
    spec, notes = infer_spec(train, _target(project), exclude=exclude,
                             time_column=project.time_column, task=project.objective_type)
    custom = discover_feature_functions("projectlib.features", project.root)
    for func in custom:
        if all(c in train.columns for c in func["columns"]):
            spec["features"].append(func)
            notes.append(f"Custom feature {func['name']} from {func['function']}.")
    write_text(path, spec_to_yaml(spec, notes))
    import pandas as pd

    table = pd.DataFrame([{"feature": f["name"], "transform": f["transform"],
                           "columns": ", ".join(f["columns"])} for f in spec["features"]])
    report = Report(f"Wrote a starting features config with {len(spec['features'])} definitions",
                    summary={"config": rel(project, path), "definitions": len(spec["features"])},
                    tables={"definitions": table}, messages=list(notes),
                    artifacts={"features config": str(path)})
    report.messages.append("Review it, then run `omg feature extract`.")
    return report


def extract_step(project: Any, config: str | None = None, use_augmented: bool = True,
                 check: bool = True) -> Report:
    """Fit the features config on the training split and stage the result.

    With `check` (the default), when augmentation or weak labels added training rows, a quick model
    is fitted on the extracted features with and without them and scored on the validation split;
    rows that do not improve the brief's metric are left out (tried, not used) and the pipeline is
    fitted again on the rows kept.
    """
    from .extract import check_custom_functions, extract_features, save_pipeline
    from .spec import load_spec

    path = _config_path(project, config)
    spec = load_spec(path)
    check_custom_functions(spec, project.root)
    target = _target(project, spec)
    train, train_info = training_split(project, use_augmented)
    splits = {"train": train, "val": load_split(project, "val"), "test": load_split(project, "test")}
    report = extract_features(spec, splits, target, seed=project.seed, source=path.name)
    variants = _row_variants(train, train_info)
    rows_check = _judge_rows(project, report.value, target, variants, check)
    if isinstance(rows_check, dict) and rows_check["chosen"] != len(variants) - 1:
        label, kept = variants[rows_check["chosen"]][0], variants[rows_check["chosen"]][2]
        splits["train"] = train[kept].reset_index(drop=True)
        report = extract_features(spec, splits, target, seed=project.seed, source=path.name)
        train_info = {**train_info, "rows_used": label, "rows": int(kept.sum())}
        if train_info.get("augmented") and "synthetic" not in variants[rows_check["chosen"]][1]:
            # the rows kept are those of train.parquet (all, or its human-labelled ones)
            train_info.update(augmented=False, augmentation="tried, not used",
                              file=rel(project, project.processed_dir / "train.parquet"),
                              sha256=read_split_manifest(project)["splits"]["train"]["sha256"])
    if variants:
        train_info["rows_check"] = rows_check
        _explain_rows(report, rows_check, variants)
    value = report.value
    stage = stage_dir(project)
    run_id = uuid.uuid4().hex[:12]
    with atomic_dir(stage, overwrite=True) as tmp:
        trusted = save_pipeline(value["pipeline"], tmp / "pipeline.skops")
        files = {}
        for name, df in value["splits"].items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
            files[name] = {"file": f"{name}.parquet", "rows": len(df),
                           "sha256": sha256_file(tmp / f"{name}.parquet")}
        write_json(tmp / "extract.json", {
            "run_id": run_id, "config": rel(project, path), "config_sha256": sha256_file(path),
            "target": target, "features": value["features"], "raw_columns": value["raw_columns"],
            "train": train_info, "split_manifest_sha256": sha256_file(project.processed_dir /
                                                                      SPLIT_MANIFEST),
            "splits": files, "pipeline": "pipeline.skops", "trusted_types": trusted,
            "seed": project.seed, "created": clock.stamp()})
    report.value = value["splits"]["train"]
    report.artifacts.update({"pipeline": str(stage / "pipeline.skops"),
                             "staged features": str(stage)})
    if train_info.get("augmented"):
        report.messages.append(f"Fitted on the augmented training split ({train_info['strategy']}).")
    report.messages.append("Next: `omg feature select` (optional), then `omg feature store`.")
    return report


def _row_variants(train: Any, info: dict[str, Any]) -> list[tuple[str, tuple[str, ...], Any]]:
    """The variants of the training rows a quick model judges, the plainest first: ``(label,
    what the rows include, boolean mask)``; none when nothing added rows."""
    import numpy as np

    n = len(train)
    synthetic = np.zeros(n, dtype=bool)
    if info.get("augmented"):
        synthetic[int(info.get("original_rows", n)):] = True
    source = train["label_source"].astype(str).to_numpy() if "label_source" in train.columns \
        else np.full(n, "gold")
    weak = (source == "weak") & ~synthetic
    variants: list[tuple[str, tuple[str, ...], Any]] = []
    if weak.any():
        variants += [("human labels only", ("gold",), ~weak & ~synthetic),
                     ("with weak labels", ("gold", "weak"), ~synthetic)]
    else:
        variants.append(("original rows", ("gold",), ~synthetic))
    if synthetic.any():
        kinds = ("gold", "weak", "synthetic") if weak.any() else ("gold", "synthetic")
        label = f"with synthetic rows ({info.get('strategy', 'augmentation')})"
        variants.append((("with weak labels and " + label.removeprefix("with "))
                         if weak.any() else label, kinds, np.ones(n, dtype=bool)))
    if len(variants) < 2 or not all(m.any() for _l, _k, m in variants):
        return []
    return variants


def _judge_rows(project: Any, value: dict[str, Any], target: str,
                variants: list[tuple[str, tuple[str, ...], Any]], check: bool) -> Any:
    """The quick model's comparison of the row variants (a dict), or why there was none (a str)."""
    from .quick import compare_rows

    if not variants:
        return None
    if not check:
        return "not compared (--no-check)"
    if "val" not in value["splits"]:
        return "not compared (no validation split)"
    train = value["splits"]["train"]
    features = [c for c in train.columns if c not in (target, "row_id")]
    return _quick_check(project, compare_rows, train, value["splits"]["val"], target, features,
                        [(label, mask) for label, _kinds, mask in variants])


def _quick_check(project: Any, compare: Any, *args: Any) -> Any:
    """A quick-model comparison (quick.py) with the brief's metric and seed: its result, or why
    there is none (a str) when the quick model fails on odd data."""
    from ..metrics import get_metric

    metric = project.primary_metric
    try:
        return compare(*args, task=project.objective_type, metric=metric,
                       greater_is_better=get_metric(metric).greater_is_better,
                       positive_label=project.config.get_path("brief.objective.positive_label"),
                       seed=project.seed)
    except (ValueError, TypeError, MemoryError) as exc:  # xgboost's errors on odd data
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"not compared (the quick model failed: {type(exc).__name__}: {detail})"


def _explain_rows(report: Report, rows_check: Any, variants: list[Any]) -> None:
    import pandas as pd

    if not isinstance(rows_check, dict):
        report.messages.append(f"Training rows {rows_check}: every row kept.")
        return
    m, chosen = rows_check["metric"], rows_check["chosen"]
    table = pd.DataFrame(rows_check["variants"]).rename(columns={"score": f"validation {m}"})
    table["used"] = [i == chosen for i in range(len(table))]
    report.tables["training rows check"] = table
    best = rows_check["variants"][chosen]
    report.summary["training rows"] = f"{best['training rows']} ({best['rows']} rows)"
    if chosen == len(variants) - 1:
        report.messages.append(
            f"Used: a quick model ({rows_check['model']}) scored {m} {best['score']:.4f} "
            f"{best['training rows']}, better than on the plainer rows (table 'training rows check').")
        return
    left_out = ", ".join(v["training rows"].removeprefix("with ") for v in
                         rows_check["variants"][chosen + 1:])
    last = rows_check["variants"][-1]
    report.messages.append(
        f"Tried, not used: {left_out}. A quick model ({rows_check['model']}) scored {m} "
        f"{best['score']:.4f} on the {best['training rows'].removeprefix('with ')} and "
        f"{last['score']:.4f} {last['training rows']}, so the features were fitted again on "
        f"{best['rows']} rows. Pass --no-check to keep every row.")


def _staged(project: Any) -> tuple[dict[str, Any], Path]:
    stage = stage_dir(project)
    meta = read_json_or(stage / "extract.json", None)
    if meta is None:
        raise DataError("No extracted features to use. Run `omg feature extract --config features.yaml` "
                        "first.")
    return meta, stage


def select_step(project: Any, method: str = "mutual_info", k: int | str | None = None,
                threshold: float = 0.95, max_rows: int = 20000, check: bool = True) -> Report:
    """Rank the staged training features and record the selection beside them.

    With `check` (the default) a selection that leaves features out is kept only when a quick model
    scores better with it than with every feature on the validation split; otherwise it is recorded
    as tried, not used, and `omg feature store` keeps every feature.
    """
    import pandas as pd

    from .select import select_features

    meta, stage = _staged(project)
    train = pd.read_parquet(stage / "train.parquet")
    target = meta["target"]
    X = train.drop(columns=[c for c in (target, "row_id") if c in train.columns])
    report = select_features(X, train[target], method=method, k=k, objective=project.objective_type,
                             seed=project.seed, threshold=threshold, max_rows=max_rows)
    selected = report.data["selected"]
    judged = _judge_selection(project, meta, stage, train, list(X.columns), selected, check)
    selection = {**report.data, "extract_run_id": meta["run_id"], "threshold": threshold,
                 "selected_at": clock.stamp(), **judged}
    path = write_json(stage / "selection.json", selection)
    report.artifacts["selection"] = str(path)
    _explain_judgement(report, judged, len(selected), X.shape[1])
    return report


def _judge_selection(project: Any, meta: dict[str, Any], stage: Path, train: Any,
                     all_features: list[str], selected: list[str], check: bool) -> dict[str, Any]:
    """``used`` and, when a quick model compared them, ``check`` (both scores and the model)."""
    import pandas as pd

    from .quick import compare_selection

    val_file = (meta["splits"].get("val") or {}).get("file")
    if len(selected) >= len(all_features):
        return {"used": True, "check": None}
    if not check:
        return {"used": True, "check": "not compared (--no-check)"}
    if not val_file or not (stage / val_file).is_file():
        return {"used": True, "check": "not compared (no validation split)"}
    result = _quick_check(project, compare_selection, train, pd.read_parquet(stage / val_file),
                          meta["target"], all_features, selected)
    if isinstance(result, str):
        return {"used": True, "check": result}
    return {"used": result["used"], "check": result}


def _explain_judgement(report: Report, judged: dict[str, Any], n_selected: int, n_all: int) -> None:
    import pandas as pd

    check = judged["check"]
    if isinstance(check, dict):
        m = check["metric"]
        report.tables["selection check"] = pd.DataFrame({
            "features": [f"all {n_all}", f"selected {n_selected}"],
            f"validation {m}": [check["score_all"], check["score_selected"]]})
        report.summary[f"validation {m} (all / selected)"] = (
            f"{check['score_all']:.4f} / {check['score_selected']:.4f}")
        if not check["used"]:
            report.title += "; not used"
            report.messages.append(
                f"Tried, not used: a quick model ({check['model']}) scored {m} "
                f"{check['score_selected']:.4f} with the {n_selected} selected features and "
                f"{check['score_all']:.4f} with all {n_all}, so `omg feature store` keeps all {n_all}. "
                "Pass --no-check to keep the selection anyway.")
            report.summary["used"] = "no (all features scored better)"
            return
        report.messages.append(
            f"Used: a quick model ({check['model']}) scored {m} {check['score_selected']:.4f} with "
            f"the {n_selected} selected features and {check['score_all']:.4f} with all {n_all}.")
    elif isinstance(check, str):
        report.messages.append(f"Selection {check}: kept as chosen.")
    report.summary["used"] = "yes"
    report.messages.append("`omg feature store` keeps these features and appends the selection to the "
                           "saved pipeline.")


def _selection_label(selection: dict[str, Any] | None) -> str:
    if not selection:
        return "all features"
    label = f"{selection['method']} (k={selection['k']})"
    return f"all features ({label} tried, not used)" if selection.get("tried") else label


def store_step(project: Any, name: str | None = None, version: str | None = None,
               duckdb: bool = False) -> Report:
    """Store the staged features (with the selection, when current) as a new immutable version."""
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from .extract import load_pipeline, save_pipeline
    from .transformers import SelectColumns

    name = name or feature_set_name(project)
    parse_ref(f"{name}@{version}" if version else name)  # bad names fail before any work
    meta, stage = _staged(project)
    root = project.features_dir
    version = version or next_version(root, name)
    splits = {s: pd.read_parquet(stage / f["file"]) for s, f in meta["splits"].items()}
    target = meta["target"]
    all_features = [c for c in splits["train"].columns if c not in (target, "row_id")]
    selection = read_json_or(stage / "selection.json", None)
    if selection and selection.get("extract_run_id") != meta["run_id"]:
        selection = None
    if selection and not selection.get("used", True):
        selection = {**selection, "tried": True}
        selected = all_features  # the quick model scored better with every feature
    else:
        selected = selection["selected"] if selection else all_features
    keep = set(selected)
    staged = load_pipeline(stage / "pipeline.skops")
    selector = SelectColumns(tuple(selected)).fit(splits["train"][all_features].head(5))
    pipeline = Pipeline([("features", staged), ("select", selector)]).set_output(transform="pandas")
    splits = {s: df[["row_id", target, *selected]] if "row_id" in df else df[[target, *selected]]
              for s, df in splits.items()}
    # the saved pipeline must reproduce the stored validation features from the raw validation rows
    raw_val = load_split(project, "val").head(50)
    check = pipeline.transform(raw_val[list(meta["raw_columns"])])
    stored = splits["val"].head(50)[selected]
    if not np.allclose(check.to_numpy(dtype=float), stored.to_numpy(dtype=float), equal_nan=True):
        raise DataError("The staged pipeline does not reproduce the staged validation features: the "
                        "splits changed after extraction. Run `omg feature extract` again.")
    tmp_pipeline = stage / ".pipeline_selected.skops"
    trusted = save_pipeline(pipeline, tmp_pipeline)
    definitions = [{**f, "outputs": [o for o in f["outputs"] if o in keep]} for f in meta["features"]]
    definitions = [f for f in definitions if f["outputs"]]
    extra = {"id_column": "row_id", "pipeline": "pipeline.skops", "features": definitions,
             "raw_columns": meta["raw_columns"], "trusted_types": trusted,
             "requires_modules": sorted({f["function"].rpartition(".")[0] for f in definitions
                                         if f["transform"] == "custom"}),
             "selection": {k: v for k, v in (selection or {}).items() if k != "scores"} or None,
             "objective": project.objective_type, "seed": project.seed,
             "lineage": _lineage(project, meta)}
    try:
        dest = write_feature_set(root, name, version, splits, target, extra,
                                 files={"pipeline.skops": tmp_pipeline})
    finally:
        tmp_pipeline.unlink(missing_ok=True)
    report = Report(f"Stored feature set {name}@{version}",
                    summary={"feature set": f"{name}@{version}", "features": len(selected),
                             **{f"{s} rows": len(df) for s, df in splits.items()},
                             "selection": _selection_label(selection)},
                    artifacts={"version folder": str(dest), "manifest": str(dest / "manifest.json"),
                               "pipeline": str(dest / "pipeline.skops")})
    report.messages.append(f"Load it with load_feature_set(project.features_dir, \"{name}@{version}\") "
                           f"or \"{name}@latest\"; versions are immutable.")
    if duckdb:
        catalog = write_duckdb_catalog(root)
        report.artifacts["duckdb catalog"] = str(catalog)
        report.messages.append(f"DuckDB views: \"{name}_{version}\", \"{name}_latest\" in "
                               f"{rel(project, catalog)}.")
    return report


def _lineage(project: Any, meta: dict[str, Any]) -> dict[str, Any]:
    from ..dataprep.sources import LINEAGE_FILE

    split = read_split_manifest(project)
    labeled = read_json_or(project.processed_dir / LABELED_META, None)
    augment = read_json_or(project.processed_dir / AUGMENT_META, None)
    validation = read_json_or(project.reports_dir / VALIDATION, None)
    return {
        "raw_sources": read_json_or(project.raw_dir / LINEAGE_FILE, {"sources": {}})["sources"],
        "validation": {k: validation.get(k) for k in ("status", "strict", "schema", "schema_sha256",
                                                       "validated_at")} if validation else None,
        "labeling": {k: labeled.get(k) for k in ("functions", "strategy", "hide_share", "rows",
                                                 "labeled_at")} if labeled else None,
        "split": {"manifest": rel(project, project.processed_dir / SPLIT_MANIFEST),
                  "sha256": sha256_file(project.processed_dir / SPLIT_MANIFEST),
                  "files": {k: v.get("sha256") for k, v in split.get("splits", {}).items()},
                  **{k: split.get(k) for k in ("mode", "fractions", "seed", "group", "time", "input")}},
        "augmentation": {k: augment.get(k) for k in ("strategy", "method", "rows_before", "rows_after",
                                                     "train_sha256")}
        if augment and meta["train"].get("augmented") else None,
        "extract": {k: meta.get(k) for k in ("config", "config_sha256", "run_id", "created", "train")},
    }


def list_step(project: Any, duckdb: bool = False) -> Report:
    """Every stored feature set and version."""
    root = project.features_dir
    table = feature_set_table(root)
    sets = list_feature_sets(root)
    report = Report(f"{len(sets)} feature set(s), {len(table)} version(s) in {rel(project, root)}",
                    summary={"feature sets": len(sets), "versions": len(table)},
                    tables={"feature sets": table} if len(table) else {})
    if not len(table):
        report.messages.append("Nothing stored yet: `omg feature extract`, then "
                               "`omg feature store --name NAME`.")
    if duckdb and len(table):
        report.artifacts["duckdb catalog"] = str(write_duckdb_catalog(root))
    return report
