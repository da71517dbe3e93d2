"""Building a bundle (core layer): ``omg deploy package``.

The model, the feature pipeline (and its compiled program), the handler and the project module are
written into a temporary folder with the MLflow pyfunc files, the signature and the metadata; the
manifest is written, the bundle is loaded back and smoke-tested (its predictions on raw validation
rows must match the model on the stored validation features), and only then renamed into place:
a failure leaves nothing. The layout is described in :mod:`omgmagics.deploy.bundle`.
"""

from __future__ import annotations

import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError, UsageError
from ..results import Report
from .bundle import (
    DATA_DIR,
    FORMAT_VERSION,
    SKEW_TOLERANCE,
    ServingBundle,
    default_handler_path,
    load_handler,
    next_version,
    output_spec,
)
from .integrity import BUNDLE_FORMAT, verify_bundle, write_manifest

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED = {"optimized", "trained", "deployments"}
LOADER_MODULE = "omgmagics.deploy.pyfunc"


def _requirements(model: Any) -> list[str]:
    """Pinned requirements: the kit, the feature pipeline's stack, the model's runtime, serving."""
    import importlib.metadata as md

    from ..modeling.families import FAMILIES

    family = FAMILIES.get(model.family)  # an ONNX variant has no training family: onnxruntime runs it
    runtime = ["onnxruntime"] if getattr(model, "variant", None) == "onnx" else \
        list(family.runtime_libraries(model) if family else ())
    names = ["omgmagics", "numpy", "pandas", "scikit-learn", "skops", "pyyaml", *runtime, "fastapi",
             "uvicorn", "mlflow"]
    out = []
    for name in dict.fromkeys(names):
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            continue
    return out


def _feature_set_for(project: Any, model: Any, features: str | None) -> Any:
    from ..features.store import load_feature_set

    ref = features or model.meta.get("feature_set")
    if not ref:
        return None
    try:
        return load_feature_set(project.features_dir, ref)
    except (DataError, UsageError):
        if features:
            raise
        return None


def _raw_splits(project: Any, fs: Any) -> dict[str, Any]:
    import pandas as pd

    out = {}
    for split in ("train", "val"):
        path = Path(project.processed_dir) / f"{split}.parquet"
        if path.is_file():
            out[split] = pd.read_parquet(path)
    return out


@dataclass
class _Package:
    """What one `deploy package` call builds, gathered before anything is written."""

    name: str
    version: str
    dest: Path
    ref: str
    model: Any
    handler_src: Path
    handler_given: bool
    hooks: list[str]
    fs: Any
    raw: dict[str, Any]
    info: dict[str, Any]
    registry: dict[str, Any] | None
    requirements: list[str]
    signature: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def package_model(project: Any, model_ref: str | None = None, handler: str | None = None,
                  name: str | None = None, version: str | None = None,
                  features: str | None = None) -> Report:
    """Build ``models/NAME/VERSION/`` for a model (default: the champion).

    Parameters
    ----------
    model_ref : str, optional
        A model folder (phase 3 or optimized), ``models:/NAME@alias``, an alias or a run name.
    handler : str, optional
        A ``.py`` file with ``preprocess``/``postprocess``; default the project's
        ``projectlib/handler.py`` (exported by nbdev), else the kit's copy of it.
    name, version : str, optional
        Default: the registered model name and the next free integer.
    features : str, optional
        The feature set ``NAME@vN`` whose pipeline and raw columns to bundle (default: the one the
        model was trained on).

    Raises
    ------
    DataError
        A model that cannot be loaded, a handler that fails, a bundle whose predictions differ from
        the model on the stored features (train/serve skew). Nothing is written then.
    UsageError
        A bad name, or a version that already exists.
    """
    from ..atomic import atomic_dir, write_json
    from ..modeling.tracking import _quiet_mlflow

    # The name and version are checked before the model is resolved (no store is opened).
    name, version, dest = _destination(project, name, version)
    pkg = _gather(project, name, version, dest, model_ref, handler, features)
    pkg.signature, pkg.messages = _bundle_signature(pkg)
    _quiet_mlflow()
    with atomic_dir(dest) as tmp:
        program = _write_pyfunc(project, pkg, tmp)
        write_json(tmp / "signature.json", pkg.signature)
        metadata = _metadata(pkg, tmp, program)
        write_json(tmp / "metadata.json", metadata)
        write_manifest(tmp)
        check = _smoke_test(tmp, pkg.model, pkg.fs, pkg.raw)
        if check.get("fast_path"):
            pkg.messages.append(f"Feature pipeline compiled for serving: {check['fast_path']}.")
    return _report(pkg, metadata, check)


def _destination(project: Any, name: str | None, version: str | None) -> tuple[str, str, Path]:
    from ..modeling.tracking import registered_model_name

    name = name or registered_model_name(project)
    if not NAME_RE.match(name) or name in RESERVED:
        raise UsageError(f"Bundle name '{name}' must be letters, digits, '.', '-' or '_' (at most 64) "
                         f"and not one of {', '.join(sorted(RESERVED))}.")
    folder = Path(project.models_dir) / name
    version = str(version or next_version(folder))
    if not NAME_RE.match(version):
        raise UsageError(f"Bundle version '{version}' must be letters, digits, '.', '-' or '_'.")
    dest = folder / version
    if dest.exists():
        raise UsageError(f"Bundle {name}/{version} already exists and bundles are immutable. Omit "
                         f"--version to write the next one ({next_version(folder)}).")
    return name, version, dest


def _gather(project: Any, name: str, version: str, dest: Path, model_ref: str | None,
            handler: str | None, features: str | None) -> _Package:
    """The model, the handler (loaded: a broken one fails here), the feature set and raw splits."""
    from ..optim.models import describe, load_any_model, resolve_ref

    ref = resolve_ref(project, model_ref)
    model = load_any_model(project, ref)
    handler_src = Path(handler) if handler else Path(project.root) / "projectlib" / "handler.py"
    if handler and not handler_src.is_absolute() and not handler_src.exists():
        handler_src = Path(project.root) / handler
    if not handler and not handler_src.is_file():
        handler_src = default_handler_path()
    hmod = load_handler(handler_src)
    fs = _feature_set_for(project, model, features)
    return _Package(
        name=name, version=version, dest=dest, ref=ref, model=model, handler_src=handler_src,
        handler_given=bool(handler),
        hooks=[h for h in ("preprocess", "postprocess") if hasattr(hmod, h)], fs=fs,
        raw=_raw_splits(project, fs) if fs is not None else {}, info=describe(model),
        registry=model.meta.get("registry") or (model.meta.get("base") or {}).get("registry"),
        requirements=_requirements(model))


def _bundle_signature(pkg: _Package) -> tuple[dict[str, Any], list[str]]:
    """The input signature (raw columns through the pipeline, or the model's numeric features),
    its outputs and sample rows (raw validation rows that check the compiled pipeline on load)."""
    from .signature import build_signature, numeric_signature

    model, fs = pkg.model, pkg.fs
    if fs is not None and fs.pipeline_path is not None:
        raw_cols = fs.manifest.get("raw_columns") or {}
        if isinstance(raw_cols, list):
            raw_cols = {c["name"]: c.get("dtype", "object") for c in raw_cols}
        if not raw_cols:
            raise DataError(f"Feature set {fs.ref} stores a pipeline but no raw_columns: the bundle's "
                            "signature cannot be built. Store the set again with `omg feature store`.")
        signature = build_signature(raw_cols, pkg.raw.get("train"), target=fs.target,
                                    task=model.task, classes=model.classes)
    else:
        signature = numeric_signature(model.feature_names, target=model.meta.get("target"),
                                      task=model.task, classes=model.classes)
    signature["outputs"] = output_spec(model.task, model.classes)
    signature["sample"] = _sample_rows(pkg.raw, signature)
    return signature, list(signature.get("notes", []))


def _write_pyfunc(project: Any, pkg: _Package, tmp: Path) -> dict | None:
    """The model, pipeline, compiled program and handler as an MLflow pyfunc model in `tmp`;
    returns the compiled feature program (or None)."""
    import mlflow.pyfunc

    from ..atomic import write_json
    from .signature import to_mlflow_signature

    staging = tmp.parent / f".{tmp.name}.data" / "omg"
    staging.mkdir(parents=True)
    program = None
    try:
        pkg.model.save(staging / "model")
        if pkg.fs is not None and pkg.fs.pipeline_path is not None:
            shutil.copyfile(pkg.fs.pipeline_path, staging / "pipeline.skops")
            program = _feature_program(pkg.fs, pkg.raw, pkg.signature)
            if program is not None:
                write_json(staging / "features.json", program)
        shutil.copyfile(pkg.handler_src, staging / "handler.py")
        code = Path(project.root) / "projectlib"
        with warnings.catch_warnings():
            # MLflow asks for an input example; signature.json has sample rows instead.
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(path=str(tmp), loader_module=LOADER_MODULE,
                                     data_path=str(staging),
                                     code_paths=[str(code)] if code.is_dir() else None,
                                     pip_requirements=pkg.requirements,
                                     signature=to_mlflow_signature(pkg.signature))
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    _clean_pycache(tmp)
    return program


def _metadata(pkg: _Package, tmp: Path, program: dict | None) -> dict[str, Any]:
    from .. import __version__
    from ..atomic import sha256_file

    model, fs, info, registry = pkg.model, pkg.fs, pkg.info, pkg.registry
    return {
        "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION, "name": pkg.name,
        "version": pkg.version, "created": clock.stamp(),
        "model": {"type": info["model"], **{k: v for k, v in info.items() if k != "model"},
                  "path": f"{DATA_DIR}/model", "source": pkg.ref,
                  "classes": model.classes, "positive_label": model.positive_label,
                  "registry": registry, "run_id": model.meta.get("run_id"),
                  "optimization": _opt_summary(model)},
        "metrics": model.meta.get("metrics") or {},
        "feature_set": {"ref": fs.ref if fs is not None else None,
                        "manifest_sha256": sha256_file(fs.path / "manifest.json")
                        if fs is not None else None,
                        "pipeline": f"{DATA_DIR}/pipeline.skops"
                        if fs is not None and fs.pipeline_path is not None else None,
                        "program": f"{DATA_DIR}/features.json" if program is not None else None},
        "handler": {"path": f"{DATA_DIR}/handler.py", "source": str(pkg.handler_src),
                    "hooks": pkg.hooks},
        "code": "code/projectlib" if (tmp / "code" / "projectlib").is_dir() else None,
        "mlflow": {"loader_module": LOADER_MODULE, "registered_model": (registry or {}).get("name"),
                   "version": (registry or {}).get("version"), "run_id": model.meta.get("run_id")},
        "kit_version": __version__, "python": sys.version.split()[0],
        "requirements": pkg.requirements,
    }


def _report(pkg: _Package, metadata: dict[str, Any], check: dict[str, Any]) -> Report:
    import pandas as pd

    result = verify_bundle(pkg.dest)
    size = sum(p.stat().st_size for p in pkg.dest.rglob("*") if p.is_file())
    origin = "" if pkg.handler_given else (" (projectlib)" if "templates" not in str(pkg.handler_src)
                                           else " (kit default)")
    summary = {"bundle": f"{pkg.name}/{pkg.version}", "model": pkg.ref, "type": pkg.info["model"],
               "variant": pkg.info["variant"], "inputs": len(pkg.signature["columns"]),
               "feature set": metadata["feature_set"]["ref"],
               "handler": pkg.handler_src.name + origin,
               "files": result["checked"], "size (KB)": round(size / 1024, 1),
               "skew check": check.get("status"), "verified": "ok" if result["ok"] else "FAILED"}
    if pkg.registry:
        summary["registered model"] = f"{pkg.registry.get('name')} v{pkg.registry.get('version')}"
    table = pd.DataFrame([{"column": c["name"], "type": c["type"], "nullable": c.get("nullable"),
                           "categories": len(c.get("categories", [])) or ""}
                          for c in pkg.signature["columns"]])
    messages = [*pkg.messages, "The bundle is also an MLflow pyfunc model: "
                f"mlflow.pyfunc.load_model(path) or `mlflow models serve -m {pkg.dest} "
                "--env-manager local`."]
    return Report(f"Packaged {pkg.info['model']} as bundle {pkg.name}/{pkg.version}", summary=summary,
                  tables={"signature": table}, messages=messages,
                  artifacts={"bundle": str(pkg.dest)},
                  data={"path": str(pkg.dest), "digest": result["digest"], "skew": check},
                  value=str(pkg.dest))


def _opt_summary(model: Any) -> dict[str, Any] | None:
    opt = model.meta.get("optimization")
    if not opt:
        return None
    keep = ("kind", "precision", "export", "sparsity", "metric", "drop", "forced")
    out = {k: opt[k] for k in keep if k in opt}
    out["metric_after"] = (opt.get("after") or {}).get("metric")
    return out


def _feature_program(fs: Any, raw: dict[str, Any], signature: dict[str, Any]) -> dict | None:
    """The feature pipeline compiled and verified on raw validation rows, as JSON (or None)."""
    from .fastpath import CompiledPipeline

    compiled = CompiledPipeline(fs.load_pipeline(), signature)
    frame = raw.get("val") if raw.get("val") is not None else raw.get("train")
    names = [c["name"] for c in signature["columns"]]
    if not compiled.enabled or frame is None or any(c not in frame.columns for c in names):
        return None
    status = compiled.verify(frame[names].head(1000))
    if not status["enabled"]:
        return None
    return compiled.to_program(signature.get("sample"))


def _clean_pycache(root: Path) -> None:
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def _sample_rows(raw: dict[str, Any], signature: dict[str, Any], n: int = 64) -> list:
    from .signature import jsonable_record

    names = [c["name"] for c in signature["columns"]]
    frame = raw.get("val") if raw.get("val") is not None else raw.get("train")
    if frame is None or any(c not in frame.columns for c in names):
        return []
    rows = frame[names].head(n).to_dict("records")
    return [jsonable_record(r) for r in rows]


def _smoke_test(tmp: Path, model: Any, fs: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """Bundle predictions on raw validation rows vs the model on the stored validation features."""
    import numpy as np

    bundle = ServingBundle.load(tmp, verify=True, isolate=False)
    status = bundle.compiled.status() if bundle.compiled is not None else None
    if status is not None and bundle.pipeline is None:
        status["reason"] = "stored compiled program"
    fast = None
    if status is not None:
        fast = "yes (" + ", ".join(f"{n} {k}" for k, n in status["branches"].items()) + ")" \
            if status["enabled"] else f"no ({status['reason']})"
    if fs is None or fs.val is None or raw.get("val") is None or fs.id_column is None \
            or bundle.compiled is None:
        return {"status": "skipped (no raw validation split to compare)", "fast_path": fast}
    val_raw = raw["val"]
    if fs.id_column not in val_raw.columns:
        return {"status": f"skipped (raw val split has no {fs.id_column})", "fast_path": fast}
    stored = fs.val.set_index(fs.id_column)
    rows = val_raw[val_raw[fs.id_column].isin(stored.index)].head(500)
    from .signature import check_rows

    records, mask, _ = check_rows(bundle, rows)  # the rows the server would accept
    rows = rows[mask]
    records = [r for r, ok in zip(records, mask, strict=True) if ok]
    if rows.empty:
        return {"status": "skipped (no common rows)", "fast_path": fast}
    try:
        served = np.asarray(bundle.scores(records), dtype=np.float64)
        bundle.predict_records(records[:50])
    except Exception as exc:  # noqa: BLE001 - the handler is user code
        raise DataError(f"The bundle fails on validation rows: {type(exc).__name__}: {exc}. Fix the "
                        "handler (or the model); nothing was written.") from None
    offline = np.asarray(model.predict_scores(stored.loc[rows[fs.id_column], model.feature_names]),
                         dtype=np.float64)
    diff = float(np.max(np.abs(served - offline))) if len(served) else 0.0
    if diff > SKEW_TOLERANCE:
        raise DataError(f"Train/serve skew: on {len(rows)} validation rows the bundle's scores (raw "
                        f"rows through the pipeline and handler) differ from the model's scores on "
                        f"the stored features by up to {diff:.3g} (tolerance {SKEW_TOLERANCE}). "
                        "Check handler.preprocess and the feature set (--features); nothing was "
                        "written.")
    return {"status": f"ok ({len(rows)} rows, max |diff| {diff:.2g})", "rows": len(rows),
            "max_abs_diff": diff, "fast_path": fast}
