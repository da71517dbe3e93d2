"""The phase 2 quality gate, "data ready" (core layer), judged from the files on disk.

Criteria: the data passed schema validation; the splits and their manifest are on disk and intact;
no identical rows across splits (a warning); the data dictionary exists (a warning); the project's
feature set has a version whose files match its manifest, with a fitted pipeline, built from the
current splits.
"""

from __future__ import annotations

from typing import Any

from ._util import read_json_or


def phase2_criteria(project: Any) -> tuple[list[Any], str]:
    """The criteria of the "data ready" gate and a one-line note."""
    from ..atomic import sha256_file
    from ..criteria import Criterion
    from .steps import SPLIT_MANIFEST, VALIDATION

    criteria: list[Criterion] = []
    record = read_json_or(project.reports_dir / VALIDATION, None)
    if record is None:
        criteria.append(Criterion("schema validation passed", "fail", None, None,
                                  "no reports/validation.json: run `omg data validate --schema "
                                  "schema.yaml --strict`"))
    else:
        n = len(record.get("violations") or [])
        status = "pass" if record.get("status") == "pass" and n == 0 else "fail"
        detail = f"{n} violation(s) against {record.get('schema')}" + \
            ("" if record.get("strict") else " (validated without --strict)")
        schema = project.root / str(record.get("schema", ""))
        if status == "pass" and (not schema.is_file() or sha256_file(schema) != record.get("schema_sha256")):
            status, detail = "warn", f"{record.get('schema')} changed since it was validated; validate again"
        criteria.append(Criterion("schema validation passed", status, n, 0, detail))

    manifest = read_json_or(project.processed_dir / SPLIT_MANIFEST, None)
    if manifest is None:
        criteria.append(Criterion("splits written", "fail", None, None,
                                  "no data/processed/split_manifest.json: run `omg data split`"))
    else:
        problems = []
        for name in ("train", "val", "test"):
            info = manifest.get("splits", {}).get(name)
            path = project.processed_dir / (info or {}).get("file", f"{name}.parquet")
            if info is None or not path.is_file():
                problems.append(f"{name} missing")
            elif info.get("rows", 0) < 1:
                problems.append(f"{name} empty")
            elif sha256_file(path) != info.get("sha256"):
                problems.append(f"{name} differs from the manifest")
        rows = {k: v.get("rows") for k, v in manifest.get("splits", {}).items()}
        criteria.append(Criterion("splits written", "fail" if problems else "pass", rows, None,
                                  "; ".join(problems) or f"{manifest.get('mode')} split, seed "
                                  f"{manifest.get('seed')}"))
        leaks = sum(c.get("count", 0) for c in manifest.get("leakage", [])
                    if str(c.get("check", "")).startswith("identical"))
        hard = [c["check"] for c in manifest.get("leakage", []) if c.get("status") == "fail"]
        criteria.append(Criterion("no leakage across splits", "fail" if hard else "warn" if leaks
                                  else "pass", leaks, 0,
                                  "; ".join(hard) or (f"{leaks} identical rows across splits"
                                                      if leaks else "none found")))

    dictionary = project.docs_dir / "data_dictionary.md"
    criteria.append(Criterion("data dictionary written", "pass" if dictionary.is_file() else "warn",
                              None, None, "docs/data_dictionary.md" if dictionary.is_file()
                              else "missing: it is written by `omg data validate --schema`"))
    criteria.append(_feature_set(project, manifest))
    return criteria, "read from reports/, data/processed/ and features/"


def _feature_set(project: Any, split_manifest: dict[str, Any] | None) -> Any:
    from ..criteria import Criterion
    from ..errors import OmgError
    from ..features.steps import feature_set_name
    from ..features.store import list_versions, load_feature_set

    name = feature_set_name(project)
    if not list_versions(project.features_dir, name):
        return Criterion("feature set stored", "fail", None, None,
                         f"no version of {name} in features/: run `omg feature extract` and "
                         "`omg feature store`")
    try:
        fs = load_feature_set(project.features_dir, f"{name}@latest")
    except OmgError as exc:
        return Criterion("feature set stored", "fail", None, None, str(exc))
    problems = []
    if fs.pipeline_path is None or not fs.pipeline_path.is_file():
        problems.append("no fitted pipeline")
    missing = [s for s in ("train", "val", "test") if s not in fs.splits]
    if missing:
        problems.append(f"missing splits {missing}")
    built_from = ((fs.manifest.get("lineage") or {}).get("split") or {}).get("files") or {}
    if split_manifest and built_from:
        stale = [s for s in ("val", "test") if built_from.get(s) !=
                 split_manifest.get("splits", {}).get(s, {}).get("sha256")]
        if stale:
            problems.append(f"built from older splits ({', '.join(stale)} changed since): extract and "
                            "store again")
    return Criterion("feature set stored", "fail" if problems else "pass", fs.ref, None,
                     "; ".join(problems) or f"{len(fs.feature_columns)} features, pipeline "
                     f"{fs.manifest.get('pipeline')}")
