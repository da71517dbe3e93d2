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
:func:`~omgmagics.deploy.integrity.verify_bundle` re-hashes every file; :meth:`ServingBundle.load`
refuses a bundle that fails it (a changed, missing or added file) before reading any of its files.

A bundle is executable code (its handler and project module run in the server): the manifest and
its optional signature are checked by :mod:`omgmagics.deploy.integrity` before anything is read.
This module is the bundle's runtime (the handler, :class:`ServingBundle`, listing);
:mod:`omgmagics.deploy.packaging` builds bundles.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import DataError
from .integrity import BUNDLE_FORMAT, require_verified

FORMAT_VERSION = 1
DATA_DIR = "data/omg"
# The largest |score| difference allowed between a bundle (raw rows through its pipeline and
# handler) and its model on the stored features: packaging and staging refuse more.
SKEW_TOLERANCE = 1e-6


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


