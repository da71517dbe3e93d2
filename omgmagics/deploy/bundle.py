"""Self-contained model bundles (core layer): ``models/NAME/VERSION/``.

::

    MLmodel, conda.yaml, python_env.yaml, requirements.txt   MLflow pyfunc model (pinned requirements)
    code/projectlib/                the project module (custom feature functions, the handler's home)
    data/omg/model/                 the model in a safe format (omg_model.json + ubj / pt / onnx / skops)
    data/omg/pipeline.skops         the fitted feature pipeline of the feature set (phase 2)
    data/omg/handler.py             pre/post-processing (projectlib.handler, exported by nbdev)
    signature.json                  input columns, types, categories (from the raw training split)
    metadata.json                   model, metrics, feature set, MLflow run and version, creation time
    manifest.json                   sha256 of every other file
    manifest.sig                    HMAC-SHA256 of manifest.json, when $OMG_BUNDLE_KEY is set

A bundle is built in a temporary folder, smoke-tested (its predictions on raw validation rows must
match the model on the stored validation features) and renamed into place: a failure leaves nothing.
:func:`verify_bundle` re-hashes every file; :meth:`ServingBundle.load` refuses a bundle that fails it
(a changed, missing or added file) before reading any of its files.

A bundle is executable code (its handler and project module run in the server), and the manifest
only proves the files match each other: whoever can write the folder can rewrite the manifest too.
**Signing** closes that: with a secret key in ``$OMG_BUNDLE_KEY`` (``openssl rand -hex 32``), packaging
writes ``manifest.sig`` (HMAC-SHA256 of the manifest), and every verification under the key refuses
an unsigned bundle or one whose signature does not match, so a bundle edited and re-manifested
without the key never loads. Without the key, bundles are checked by their digest only.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shutil
import sys
import types
import warnings
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from ..results import Report

BUNDLE_FORMAT = "omg-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
SIGNING_KEY_ENV = "OMG_BUNDLE_KEY"
DATA_DIR = "data/omg"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED = {"optimized", "trained", "deployments"}
SKEW_TOLERANCE = 1e-6
LOADER_MODULE = "omgmagics.deploy.pyfunc"


# --- integrity -----------------------------------------------------------------------------------
def _files(root: Path) -> list[str]:
    return sorted(rel for rel in (str(p.relative_to(root)).replace(os.sep, "/")
                                  for p in root.rglob("*") if p.is_file())
                  if rel not in (MANIFEST, SIGNATURE_FILE))


def signing_key() -> bytes | None:
    """The bundle signing key from ``$OMG_BUNDLE_KEY``, or None when signing is off."""
    value = os.environ.get(SIGNING_KEY_ENV, "")
    if not value:
        return None
    if len(value) < 16:
        raise UsageError(f"${SIGNING_KEY_ENV} is {len(value)} characters long; a signing key needs "
                         "at least 16 (make one with `openssl rand -hex 32`).")
    return value.encode()


def _hmac(key: bytes, manifest: Path) -> str:
    import hashlib
    import hmac

    return hmac.new(key, manifest.read_bytes(), hashlib.sha256).hexdigest()


def write_manifest(root: Path) -> dict[str, Any]:
    """Write ``manifest.json`` (and ``manifest.sig`` when a signing key is set)."""
    from ..atomic import sha256_file, write_json, write_text

    files = {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
             for rel in _files(root)}
    manifest = {"format": BUNDLE_FORMAT, "algorithm": "sha256", "files": files}
    write_json(root / MANIFEST, manifest)
    key = signing_key()
    if key is not None:
        write_text(root / SIGNATURE_FILE, _hmac(key, root / MANIFEST) + "\n")
    return manifest


def verify_bundle(path: str | os.PathLike) -> dict[str, Any]:
    """Re-hash every file of a bundle against its manifest.

    Returns
    -------
    dict
        ``ok``, ``checked``, ``changed``, ``missing``, ``unexpected`` (files not in the manifest,
        ``__pycache__`` included: a bundle is immutable), ``digest`` (sha256 of the manifest) and
        ``signature``: ``"valid"``, ``"unchecked"`` (signed, but no key is set here), ``"none"``, or
        under a key ``"missing"`` / ``"invalid"`` (then ``ok`` is False).

    Raises
    ------
    DataError
        When `path` is not a bundle folder or its manifest cannot be read.
    """
    from ..atomic import sha256_file

    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir() or not mpath.is_file():
        raise DataError(f"{path} is not a bundle: no {MANIFEST}. Bundles are folders "
                        "models/NAME/VERSION written by `omg deploy package`.")
    try:
        manifest = json.loads(mpath.read_text())
        listed = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{mpath} is not a valid bundle manifest: the bundle was modified or "
                        "damaged. Re-package the model with `omg deploy package`.") from None
    changed, missing = [], []
    for rel, info in listed.items():
        file = root / rel
        if not file.is_file():
            missing.append(rel)
        elif sha256_file(file) != info.get("sha256"):
            changed.append(rel)
    unexpected = [rel for rel in _files(root) if rel not in listed]
    key = signing_key()
    sig_path = root / SIGNATURE_FILE
    if key is None:
        signature = "unchecked" if sig_path.is_file() else "none"
    elif not sig_path.is_file():
        signature = "missing"
    else:
        import hmac

        given = sig_path.read_text(errors="replace").strip()
        signature = "valid" if hmac.compare_digest(given.encode(), _hmac(key, mpath).encode()) \
            else "invalid"
    ok = not (changed or missing or unexpected) and signature not in ("missing", "invalid")
    return {"ok": ok, "checked": len(listed), "changed": changed, "missing": missing,
            "unexpected": unexpected, "digest": sha256_file(mpath), "signature": signature,
            "path": str(root)}


def require_verified(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`verify_bundle`, raising :class:`DataError` (the bundle is not loaded) on a mismatch."""
    result = verify_bundle(path)
    if result["signature"] in ("missing", "invalid"):
        what = ("is not signed" if result["signature"] == "missing" else
                "has a signature that does not match its manifest (it was changed without the key, "
                "or signed with another key)")
        raise DataError(f"Bundle {path} {what}, and ${SIGNING_KEY_ENV} is set, so it was not "
                        "loaded. Re-package the model with `omg deploy package` under the same key.")
    if not result["ok"]:
        parts = []
        for key, what in (("changed", "changed"), ("missing", "missing"), ("unexpected", "added")):
            if result[key]:
                parts.append(f"{what}: {', '.join(result[key][:5])}")
        raise DataError(f"Bundle {path} failed verification ({'; '.join(parts)}): its files do not "
                        "match manifest.json, so it was not loaded. Restore it or re-package the "
                        "model with `omg deploy package`.")
    return result


# --- the handler ---------------------------------------------------------------------------------
def default_handler_path() -> Path:
    """The kit's copy of the nbdev-exported handler (the template project's projectlib/handler.py)."""
    from ..templates import PROJECT_TEMPLATE

    return PROJECT_TEMPLATE / "projectlib" / "handler.py"


def load_handler(path: str | os.PathLike) -> types.ModuleType:
    """Execute a handler file in a fresh module (from source: no cached bytecode is read).

    Raises
    ------
    DataError
        When the file does not exist, fails to import, or its hooks are not callables.
    """
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise DataError(f"Handler {path} is not a Python file. Pass the .py file with preprocess() "
                        "and postprocess() (default: projectlib/handler.py, exported by nbdev).")
    module = types.ModuleType("omg_bundle_handler")
    module.__file__ = str(path)
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)  # noqa: S102
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        raise DataError(f"Handler {path} fails to import: {type(exc).__name__}: {exc}. Fix it in "
                        "the notebook's export cell and re-export.") from None
    for hook in ("preprocess", "postprocess"):
        if hasattr(module, hook) and not callable(getattr(module, hook)):
            raise DataError(f"Handler {path}: '{hook}' must be a function.")
    if not (hasattr(module, "preprocess") or hasattr(module, "postprocess")):
        raise DataError(f"Handler {path} defines neither preprocess() nor postprocess(). Define at "
                        "least one (see projectlib/handler.py).")
    return module


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def json_safe(value: Any) -> Any:
    """`value` with numpy scalars made Python values and non-finite numbers made None (JSON null):
    a response or a log line is always valid JSON (``NaN`` and ``Infinity`` are not)."""
    if isinstance(value, dict):
        return {str(_plain(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def class_names(classes: list | None) -> list[str]:
    """The classes as the keys of a response's ``probabilities`` (plain text, no numpy reprs)."""
    return [str(_plain(c)) for c in classes or []]


def default_postprocess(scores: Any, classes: list | None, task: str) -> list[dict[str, Any]]:
    """The decision rule of each task: none (regression: the value), argmax with every class's
    probability (multi-class), a 0.5 threshold on P(positive class) (binary)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    if task == "regression":
        return [{"prediction": float(s), "score": None} for s in scores]
    if scores.ndim == 2:
        names = class_names(classes)
        return [{"prediction": _plain(classes[int(np.nanargmax(row))]) if np.isfinite(row).any()
                 else None, "score": None, "probabilities": dict(zip(names, map(float, row),
                                                                     strict=True))}
                for row in scores]
    return [{"prediction": _plain(classes[1] if s >= 0.5 else classes[0]) if np.isfinite(s)
             else None, "score": float(s)} for s in scores]


def output_spec(task: str, classes: list | None) -> dict[str, Any]:
    """What a response item carries, per task (written to ``signature.json`` as ``outputs``)."""
    if task == "regression":
        return {"prediction": "number (the predicted value; null if not finite)", "score": None}
    if classes is not None and len(classes) > 2:
        return {"prediction": "one of the classes (argmax of the probabilities)", "score": None,
                "probabilities": {"classes": class_names(classes),
                                  "type": "object: class -> probability"}}
    return {"prediction": "one of the classes (threshold on the score)",
            "score": f"number: P({_plain(classes[1]) if classes else 'positive class'})"}


# --- loading -------------------------------------------------------------------------------------
class ServingBundle:
    """A verified bundle, loaded for prediction.

    Attributes
    ----------
    root : Path
    metadata, signature : dict
    model : OmgModel or OptimizedModel
    version : str
        ``NAME/VERSION``, reported by the server and written to the prediction log.
    """

    def __init__(self, root: Path, metadata: dict[str, Any], signature: dict[str, Any], model: Any,
                 pipeline: Any, compiled: Any, handler: types.ModuleType, digest: str | None):
        import numpy as np

        self.root = root
        self.metadata = metadata
        self.signature = signature
        self.model = model
        self.pipeline = pipeline
        self.compiled = compiled
        self.handler = handler
        self.digest = digest
        self.input_names = [c["name"] for c in signature["columns"]]
        self.version = f"{metadata['name']}/{metadata['version']}"
        self.feature_index = None
        if compiled is not None or pipeline is not None:
            names = compiled.names if compiled is not None and compiled.enabled else \
                [str(n) for n in pipeline.get_feature_names_out()]
            index = {n: i for i, n in enumerate(names)}
            missing = [f for f in model.feature_names if f not in index]
            if missing:
                raise DataError(f"Bundle {root}: the feature pipeline does not output the model's "
                                f"columns {missing[:5]}. Re-package with the feature set the model "
                                "was trained on (--features).")
            self.feature_index = np.asarray([index[f] for f in model.feature_names])
        self._pre = getattr(handler, "preprocess", None)
        self._post = getattr(handler, "postprocess", None)

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = True, isolate: bool = False,
             use_program: bool = True) -> ServingBundle:
        """Verify and load a bundle.

        Parameters
        ----------
        isolate : bool
            A server process: put the bundle's ``code/`` first on ``sys.path`` (dropping a project
            module imported earlier), so the project module comes from the bundle, and write no
            bytecode into it. Otherwise ``sys.path`` is left alone (the project's own module serves).
        use_program : bool
            Use the compiled feature program stored in the bundle (no scikit-learn import) when it
            reproduces its check rows; otherwise load the pipeline and compile it here.

        Raises
        ------
        DataError
            A path that is not a bundle, a bundle that fails verification, unreadable parts.
        """
        from ..optim.models import OptimizedModel
        from .fastpath import CompiledPipeline, frame_from_columns

        root = Path(path).resolve()
        digest = require_verified(root)["digest"] if verify else None
        metadata = json.loads((root / "metadata.json").read_text())
        if metadata.get("format") != BUNDLE_FORMAT or int(metadata.get("format_version", 0)) > \
                FORMAT_VERSION:
            raise DataError(f"{root} is not a bundle this kit can load (format "
                            f"{metadata.get('format')} v{metadata.get('format_version')}).")
        signature = json.loads((root / "signature.json").read_text())
        code = root / "code"
        if isolate and code.is_dir():
            # A server process: the project module comes from the bundle, and importing it must not
            # write bytecode into the bundle (it would no longer verify).
            sys.dont_write_bytecode = True
            for name in [m for m in sys.modules if m == "projectlib" or m.startswith("projectlib.")]:
                del sys.modules[name]
            sys.path.insert(0, str(code))
        from ..io import inside

        mdir = inside(root, metadata["model"].get("path"), "The model path of metadata.json")
        meta = json.loads((mdir / "omg_model.json").read_text())
        if meta.get("format") == "omg-optimized-model":
            model = OptimizedModel.load(mdir)
        else:
            from ..modeling.models import OmgModel

            model = OmgModel.load(mdir)
        fset = metadata.get("feature_set") or {}
        pipeline = compiled = None
        if use_program and fset.get("program"):
            try:
                program = json.loads(inside(root, fset["program"], "The feature program path of "
                                            "metadata.json").read_text())
                compiled = CompiledPipeline.from_program(program, signature)
            except (ValueError, KeyError, TypeError):
                compiled = None
        if compiled is None and fset.get("pipeline"):
            from ..features.extract import load_pipeline

            pipeline = load_pipeline(inside(root, fset["pipeline"],
                                            "The feature pipeline path of metadata.json"))
            compiled = CompiledPipeline(pipeline, signature)
            sample = signature.get("sample")
            if compiled.enabled and sample:
                compiled.verify(frame_from_columns(
                    {c["name"]: [r.get(c["name"]) for r in sample] for c in signature["columns"]},
                    {c["name"]: c["dtype"] for c in signature["columns"]}))
        handler = load_handler(inside(root, metadata["handler"].get("path"),
                                      "The handler path of metadata.json"))
        return cls(root, metadata, signature, model, pipeline, compiled, handler, digest)

    # --- prediction ------------------------------------------------------------------------------
    def features(self, records: list[dict[str, Any]]) -> Any:
        """The model's feature matrix for validated records."""
        import numpy as np

        cols = {c: [r.get(c) for r in records] for c in self.input_names}
        if self.pipeline is None and self.compiled is None:
            from .fastpath import _floats

            return np.column_stack([_floats(cols[c]) for c in self.model.feature_names])
        if self.compiled is not None and self.compiled.enabled:
            X = self.compiled.transform(cols)
        elif self.pipeline is None:
            raise RuntimeError("the bundle has no usable feature pipeline")
        else:
            from .fastpath import frame_from_columns

            frame = frame_from_columns(cols, {c["name"]: c["dtype"] for c in self.signature["columns"]})
            X = np.asarray(self.pipeline.transform(frame), dtype=np.float64)
        return X[:, self.feature_index]

    def predict_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``[{"prediction": ..., "score": ...}]`` for validated records (handler applied)."""
        if self._pre is not None:
            records = self._pre([dict(r) for r in records])  # the caller's records stay as received
        scores = self.model.predict_scores(self.features(records))
        post = self._post or default_postprocess
        items = post(scores, self.model.classes, self.model.task)
        if len(items) != len(records):
            raise RuntimeError(f"handler.postprocess returned {len(items)} items for {len(records)} "
                               "records")
        return self._complete(items, scores)

    def _complete(self, items: list[dict[str, Any]], scores: Any) -> list[dict[str, Any]]:
        """Every multi-class item carries the per-class probabilities (a handler that leaves them
        out gets them from the model's scores); values are JSON-safe (non-finite -> None)."""
        import numpy as np

        if self.model.task != "regression" and np.ndim(scores) == 2:
            names = class_names(self.model.classes)
            arr = np.asarray(scores, dtype=np.float64)
            for item, row in zip(items, arr, strict=True):
                if "probabilities" not in item:
                    item["probabilities"] = dict(zip(names, map(float, row), strict=True))
        return [json_safe(dict(item)) for item in items]

    def scores(self, records: list[dict[str, Any]]) -> Any:
        """Raw model scores (no postprocess), for skew checks."""
        if self._pre is not None:
            records = self._pre(records)
        return self.model.predict_scores(self.features(records))

    def predict_frame(self, frame: Any) -> list[dict[str, Any]]:
        from .signature import jsonable_record

        return self.predict_records([jsonable_record(r) for r in frame[self.input_names]
                                     .to_dict("records")])

    def info(self) -> dict[str, Any]:
        return {"model_version": self.version, "bundle": self.root.name, "digest": self.digest,
                "model": self.metadata["model"], "feature_set": self.metadata.get("feature_set", {})
                .get("ref"), "created": self.metadata.get("created"),
                "fast_path": self.compiled.status() if self.compiled is not None else None}


# --- listing -------------------------------------------------------------------------------------
def list_bundles(project: Any) -> list[dict[str, Any]]:
    """Bundles under ``models/``, oldest first (by creation time)."""
    found = []
    base = Path(project.models_dir)
    if not base.is_dir():
        return []
    for meta in base.glob("*/*/metadata.json"):
        if any(part.startswith(".") for part in meta.relative_to(base).parts):
            continue
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if data.get("format") == BUNDLE_FORMAT:
            found.append({"path": str(meta.parent), "name": data.get("name"),
                          "version": data.get("version"), "created": data.get("created", ""),
                          "model": data.get("model", {}).get("type"),
                          "variant": data.get("model", {}).get("variant")})
    return sorted(found, key=lambda b: (b["created"], b["path"]))


def resolve_bundle(project: Any, ref: str | None) -> Path:
    """A bundle folder from `ref` (a path, or NAME/VERSION under models/), default the newest."""
    if ref:
        for candidate in (Path(ref), Path(project.root) / ref, Path(project.models_dir) / ref):
            if candidate.is_dir():
                return candidate.resolve()
        raise DataError(f"Bundle {ref} does not exist (looked in {Path.cwd()}, {project.root} and "
                        f"{project.models_dir}). Package one with `omg deploy package`.")
    bundles = list_bundles(project)
    if not bundles:
        raise DataError(f"No bundle in {project.models_dir}. Package the model first: "
                        "`omg deploy package` (or %omgdeploy package).")
    return Path(bundles[-1]["path"]).resolve()


def next_version(folder: Path) -> str:
    versions = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] \
        if folder.is_dir() else []
    return str(max(versions, default=0) + 1)


# --- packaging -----------------------------------------------------------------------------------
def _requirements(model: Any) -> list[str]:
    """Pinned requirements: the kit, the feature pipeline's stack, the model's runtime, serving."""
    import importlib.metadata as md

    from ..modeling.families import FAMILIES

    family = FAMILIES.get(model.family)  # an ONNX variant has no training family: onnxruntime runs it
    runtime = ["onnxruntime"] if getattr(model, "variant", None) == "onnx" else \
        list(family.libraries if family else ())
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
    import mlflow.pyfunc

    from .. import __version__
    from ..atomic import atomic_dir, sha256_file, write_json
    from ..modeling.tracking import _quiet_mlflow, registered_model_name
    from ..optim.models import describe, load_any_model, resolve_ref
    from .signature import build_signature, jsonable_record, numeric_signature, to_mlflow_signature

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
    # The name and version are checked above before the model is resolved (no store is opened).
    ref = resolve_ref(project, model_ref)
    model = load_any_model(project, ref)
    handler_src = Path(handler) if handler else Path(project.root) / "projectlib" / "handler.py"
    if handler and not handler_src.is_absolute() and not handler_src.exists():
        handler_src = Path(project.root) / handler
    if not handler and not handler_src.is_file():
        handler_src = default_handler_path()
    hmod = load_handler(handler_src)  # fails early on a broken handler
    fs = _feature_set_for(project, model, features)
    raw = _raw_splits(project, fs) if fs is not None else {}
    info = describe(model)
    registry = model.meta.get("registry") or (model.meta.get("base") or {}).get("registry")
    if fs is not None and fs.pipeline_path is not None:
        raw_cols = fs.manifest.get("raw_columns") or {}
        if isinstance(raw_cols, list):
            raw_cols = {c["name"]: c.get("dtype", "object") for c in raw_cols}
        if not raw_cols:
            raise DataError(f"Feature set {fs.ref} stores a pipeline but no raw_columns: the bundle's "
                            "signature cannot be built. Store the set again with `omg feature store`.")
        train_raw = raw.get("train")
        signature = build_signature(raw_cols, train_raw, target=fs.target, task=model.task,
                                    classes=model.classes)
    else:
        signature = numeric_signature(model.feature_names, target=model.meta.get("target"),
                                      task=model.task, classes=model.classes)
    signature["outputs"] = output_spec(model.task, model.classes)
    messages: list[str] = list(signature.get("notes", []))
    # Sample rows (raw validation rows) verify the compiled pipeline wherever the bundle is loaded.
    sample_rows = _sample_rows(raw, fs, signature)
    signature["sample"] = sample_rows
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    _quiet_mlflow()
    with atomic_dir(dest) as tmp:
        staging = tmp.parent / f".{tmp.name}.data" / "omg"
        staging.mkdir(parents=True)
        try:
            model.save(staging / "model")
            program = None
            if fs is not None and fs.pipeline_path is not None:
                shutil.copyfile(fs.pipeline_path, staging / "pipeline.skops")
                program = _feature_program(fs, raw, signature)
                if program is not None:
                    write_json(staging / "features.json", program)
            shutil.copyfile(handler_src, staging / "handler.py")
            code = Path(project.root) / "projectlib"
            code_paths = [str(code)] if code.is_dir() else None
            with warnings.catch_warnings():
                # MLflow asks for an input example; signature.json has sample rows instead.
                warnings.simplefilter("ignore", UserWarning)
                mlflow.pyfunc.save_model(path=str(tmp), loader_module=LOADER_MODULE,
                                         data_path=str(staging), code_paths=code_paths,
                                         pip_requirements=_requirements(model),
                                         signature=to_mlflow_signature(signature))
        finally:
            shutil.rmtree(staging.parent, ignore_errors=True)
        _clean_pycache(tmp)
        write_json(tmp / "signature.json", signature)
        metadata = {
            "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "version": version, "created": created,
            "model": {"type": info["model"], **{k: v for k, v in info.items() if k != "model"},
                      "path": f"{DATA_DIR}/model", "source": ref,
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
            "handler": {"path": f"{DATA_DIR}/handler.py", "source": str(handler_src),
                        "hooks": [h for h in ("preprocess", "postprocess") if hasattr(hmod, h)]},
            "code": "code/projectlib" if (tmp / "code" / "projectlib").is_dir() else None,
            "mlflow": {"loader_module": LOADER_MODULE, "registered_model": (registry or {}).get("name"),
                       "version": (registry or {}).get("version"), "run_id": model.meta.get("run_id")},
            "kit_version": __version__, "python": sys.version.split()[0],
            "requirements": _requirements(model),
        }
        write_json(tmp / "metadata.json", metadata)
        write_manifest(tmp)
        check = _smoke_test(tmp, model, fs, raw, jsonable_record)
        metadata_check = {"skew": check}
        if check.get("fast_path"):
            messages.append(f"Feature pipeline compiled for serving: {check['fast_path']}.")
    result = verify_bundle(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    summary = {"bundle": f"{name}/{version}", "model": ref, "type": info["model"],
               "variant": info["variant"], "inputs": len(signature["columns"]),
               "feature set": metadata["feature_set"]["ref"],
               "handler": Path(handler_src).name + ("" if handler else
                                                    " (projectlib)" if "templates" not in
                                                    str(handler_src) else " (kit default)"),
               "files": result["checked"], "size (KB)": round(size / 1024, 1),
               "skew check": check.get("status"), "verified": "ok" if result["ok"] else "FAILED"}
    if registry:
        summary["registered model"] = f"{registry.get('name')} v{registry.get('version')}"
    import pandas as pd

    table = pd.DataFrame([{"column": c["name"], "type": c["type"], "nullable": c.get("nullable"),
                           "categories": len(c.get("categories", [])) or ""}
                          for c in signature["columns"]])
    messages.append("The bundle is also an MLflow pyfunc model: mlflow.pyfunc.load_model(path) or "
                    f"`mlflow models serve -m {dest} --env-manager local`.")
    return Report(f"Packaged {info['model']} as bundle {name}/{version}", summary=summary,
                  tables={"signature": table}, messages=messages,
                  artifacts={"bundle": str(dest)},
                  data={"path": str(dest), "digest": result["digest"], **metadata_check},
                  value=str(dest))


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


def _sample_rows(raw: dict[str, Any], fs: Any, signature: dict[str, Any], n: int = 64) -> list:
    from .signature import jsonable_record

    names = [c["name"] for c in signature["columns"]]
    frame = raw.get("val") if raw.get("val") is not None else raw.get("train")
    if frame is None or any(c not in frame.columns for c in names):
        return []
    rows = frame[names].head(n).to_dict("records")
    return [jsonable_record(r) for r in rows]


def _smoke_test(tmp: Path, model: Any, fs: Any, raw: dict[str, Any], to_json: Any) -> dict[str, Any]:
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
