"""Any model the kit can serve (core layer): phase 3 models and their optimized variants.

Phase 3 saves an :class:`~omgmagics.modeling.models.OmgModel` as a folder with ``omg_model.json``.
An optimized variant is a folder of the same shape whose ``omg_model.json`` says
``format: omg-optimized-model`` and ``variant``:

- ``torch-int8`` / ``torch-fp16`` / ``torch-bf16``: the MLP's state dict after dynamic int8
  quantization of its Linear layers or a cast of its weights (``model.pt``, read with
  ``torch.load(weights_only=True)``);
- ``onnx``: a tree or scikit-learn model exported to ONNX (``model.onnx``), run by onnxruntime.

Both are safe formats: loading them never runs code from the file. :func:`load_any_model` reads
either kind, by path, ``models:/NAME@alias``, a bare alias (``champion``) or an MLflow run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError

META_FILE = "omg_model.json"
OPTIMIZED_FORMAT = "omg-optimized-model"
FORMAT_VERSION = 1
TORCH_VARIANTS = {"int8": "torch-int8", "fp16": "torch-fp16", "bf16": "torch-bf16"}
ALIASES = ("champion", "challenger")


@contextlib.contextmanager
def torch_quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation notices: dynamic quantization is what runs on CPU here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*(quantiz|TypedStorage).*")
        yield


class OptimizedModel:
    """An optimized model with the prediction surface of ``OmgModel``.

    Parameters
    ----------
    variant : str
        ``torch-int8``, ``torch-fp16``, ``torch-bf16`` or ``onnx``.
    runtime : object
        The torch module, or the onnxruntime ``InferenceSession``.
    meta : dict
        The base model's metadata (task, feature names, classes ...) plus ``base`` and
        ``optimization`` entries.
    """

    family_of = {"onnx": "onnx"}

    def __init__(self, variant: str, runtime: Any, meta: dict[str, Any], payload: bytes | None = None):
        self.variant = variant
        self.runtime = runtime
        self.meta = dict(meta)
        self.task = meta["task"]
        self.feature_names = list(meta["feature_names"])
        self.classes = meta.get("classes")
        self.positive_label = meta.get("positive_label")
        self.model_type = f"{meta.get('model_type', 'model')}-{variant}"
        self.family = "onnx" if variant == "onnx" else "mlp"
        self.source: str | None = None
        self._payload = payload  # the serialized ONNX graph (kept to save without re-export)

    def __repr__(self) -> str:
        return f"OptimizedModel({self.model_type}, task={self.task}, features={len(self.feature_names)})"

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def matrix(self, X: Any) -> Any:
        """`X` in training column order: the same rules as the phase 3 model's."""
        from ..modeling.models import OmgModel

        return OmgModel.matrix(self, X)

    def predict_scores(self, X: Any) -> Any:
        """P(positive class) (binary), an (n, k) probability matrix (multi-class) or values."""
        import numpy as np

        arr = self.matrix(X)
        if self.variant == "onnx":
            return _onnx_scores(self, arr)
        import torch

        net = self.runtime
        dtype = {"torch-fp16": torch.float16, "torch-bf16": torch.bfloat16}.get(self.variant,
                                                                               torch.float32)
        with torch.no_grad():
            out = net(torch.as_tensor(arr, dtype=torch.float32).to(dtype)).float()
            if self.task == "regression":
                out = out * net.y_std.float() + net.y_mean.float()
                return out.squeeze(1).numpy().astype(np.float64)
            if out.shape[1] == 1:
                return torch.sigmoid(out).squeeze(1).numpy().astype(np.float64)
            return torch.softmax(out, dim=1).numpy().astype(np.float64)

    def predict_encoded(self, X: Any) -> Any:
        """Class indices or values: the same decision rule as the phase 3 model's."""
        from ..modeling.models import OmgModel

        return OmgModel.predict_encoded(self, X)

    def predict(self, X: Any) -> Any:
        """Predicted labels (original values) or regression values, as the phase 3 model's."""
        from ..modeling.models import OmgModel

        return OmgModel.predict(self, X)

    # --- files ---------------------------------------------------------------------------------
    @property
    def file_name(self) -> str:
        return "model.onnx" if self.variant == "onnx" else "model.pt"

    def _write_model(self, folder: Path) -> str:
        if self.variant == "onnx":
            (folder / self.file_name).write_bytes(self._payload)
        else:
            import torch

            with torch_quiet():
                torch.save(self.runtime.state_dict(), folder / self.file_name)
        return self.file_name

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model folder atomically (replacing an existing one) and return it."""
        from ..atomic import atomic_dir, write_json
        from ..results import jsonable

        path = Path(path)
        with atomic_dir(path, overwrite=True) as tmp:
            file = self._write_model(tmp)
            meta = {**self.meta, "format": OPTIMIZED_FORMAT, "format_version": FORMAT_VERSION,
                    "variant": self.variant, "file": file, "libraries": _libraries(self.variant)}
            meta.setdefault("created", clock.stamp())
            write_json(tmp / META_FILE, jsonable(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> OptimizedModel:
        path = Path(path)
        meta = json.loads((path / META_FILE).read_text())
        variant = meta.get("variant")
        file = path / str(meta.get("file", ""))
        if not file.is_file():
            raise DataError(f"Model file {file} is missing from its folder. Re-run the optimization.")
        if variant not in ("onnx", *TORCH_VARIANTS.values()):
            raise DataError(f"{path / META_FILE} names an unknown optimized variant {variant!r}. "
                            "Upgrade omgmagics or re-run the optimization.")
        try:
            if variant == "onnx":
                payload = file.read_bytes()
                model = cls(variant, _onnx_session(payload), meta, payload)
            else:
                model = cls(variant, _load_torch(meta, file), meta)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: refused, not a traceback
            from ..modeling.models import _not_loaded

            raise DataError(_not_loaded(file, variant, exc)) from None
        model.source = str(path)
        return model

    def size_bytes(self) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            return (Path(tmp) / self._write_model(Path(tmp))).stat().st_size


def _libraries(variant: str) -> dict[str, str]:
    import importlib.metadata as md

    names = ["onnxruntime", "onnx"] if variant == "onnx" else ["torch"]
    out = {}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def build_torch_variant(architecture: dict[str, Any], variant: str) -> Any:
    """An empty network of `architecture` in the structure of `variant` (to load weights into)."""
    import torch
    from torch import nn

    from ..modeling.mlp import build_network

    net = build_network(architecture).eval()
    if variant == "torch-int8":
        with torch_quiet():
            return torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
    if variant == "torch-fp16":
        return net.to(torch.float16)
    if variant == "torch-bf16":
        return net.to(torch.bfloat16)
    return net


def _load_torch(meta: dict[str, Any], file: Path) -> Any:
    import torch

    net = build_torch_variant(meta["architecture"], meta["variant"])
    with torch_quiet():
        state = torch.load(file, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net.eval()


def _onnx_session(payload: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One thread: single-record latency is what serving needs, and servers share the cores.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: converters' outputs trigger shape notices
    return ort.InferenceSession(payload, sess_options=opts, providers=["CPUExecutionProvider"])


def _onnx_scores(model: OptimizedModel, arr: Any) -> Any:
    import numpy as np

    sess = model.runtime
    name = sess.get_inputs()[0].name
    outputs = sess.run(None, {name: arr.astype(np.float32)})
    if model.task == "regression":
        return np.asarray(outputs[0], dtype=np.float64).reshape(len(arr))
    proba = outputs[1] if len(outputs) > 1 else outputs[0]
    if isinstance(proba, list):  # a ZipMap output: one dict per row
        proba = np.asarray([[row[k] for k in sorted(row)] for row in proba])
    proba = np.asarray(proba, dtype=np.float64)
    return proba[:, 1] if proba.shape[1] == 2 else proba


# --- loading any model --------------------------------------------------------------------------
def _registered_name(project: Any) -> str:
    from ..modeling.tracking import registered_model_name

    return registered_model_name(project)


def resolve_ref(project: Any, ref: str | os.PathLike | None) -> str:
    """`ref` with the defaults applied: None and a bare alias mean ``models:/NAME@alias``."""
    if ref is None or str(ref) == "":
        return f"models:/{_registered_name(project)}@champion"
    ref = str(ref)
    if ref in ALIASES and not Path(ref).exists() and not (Path(project.root) / ref).exists():
        return f"models:/{_registered_name(project)}@{ref}"
    return ref


def local_model_dir(project: Any, ref: str) -> Path | None:
    """The model folder `ref` names on disk (a folder or a file in it), or None."""
    if ref.startswith(("models:/", "runs:/")):
        return None
    for candidate in (Path(ref), Path(project.root) / ref if project is not None else None):
        if candidate is not None and candidate.exists():
            return candidate if candidate.is_dir() else candidate.parent
    return None


def load_any_model(project: Any, ref: str | os.PathLike | None = None) -> Any:
    """A phase 3 model or an optimized variant, by path, alias or MLflow URI.

    Returns
    -------
    OmgModel or OptimizedModel
        With ``.meta["registry"]`` = ``{"name", "version", "run_id"}`` when the model comes from
        (or derives from) a registered MLflow model version.

    Raises
    ------
    DataError
        For a path that does not exist or holds no model, an unknown alias or run.
    """
    ref = resolve_ref(project, ref)
    folder = local_model_dir(project, ref)
    if folder is not None:
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{ref} is not a model: {folder} has no {META_FILE}. Pass a model folder "
                            "written by `omg train train` or `omg optim quantize|prune`, or "
                            "models:/NAME@champion.")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{meta_path} cannot be read as JSON ({exc}); the model folder is "
                            "damaged. Re-save the model.") from None
        if meta.get("format") == OPTIMIZED_FORMAT:
            model = OptimizedModel.load(folder)
        else:
            from ..modeling.models import OmgModel

            model = OmgModel.load(folder)
        model.source = str(ref)
        return model
    if not ref.startswith(("models:/", "runs:/")) and ("/" in ref or os.sep in ref or
                                                       ref.endswith((".pt", ".json", ".onnx"))):
        raise DataError(f"Model {ref} does not exist (looked in {Path.cwd()} and {project.root}). "
                        "Pass a model folder, models:/NAME@alias or the name of an MLflow run.")
    from ..modeling.models import load_model

    model = load_model(project, ref)
    registry = _registry_info(project, ref, model.meta.get("run_id"))
    if registry:
        model.meta["registry"] = registry
    return model


def _registry_info(project: Any, ref: str, run_id: str | None) -> dict[str, Any] | None:
    """Name and version of the registered model `ref` resolves to (aliases looked up)."""
    try:
        from ..modeling.tracking import connect

        tracking = connect(project)
        if ref.startswith("models:/"):
            body = ref.removeprefix("models:/")
            if "@" in body:
                name, _, alias = body.partition("@")
                mv = tracking.client.get_model_version_by_alias(name, alias)
            else:
                name, _, version = body.partition("/")
                mv = tracking.client.get_model_version(name, version)
            return {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id,
                    "aliases": list(getattr(mv, "aliases", []) or [])}
        if run_id:
            found = tracking.versions_of_run(run_id)
            if found:
                mv = max(found, key=lambda v: int(v.version))
                return {"name": mv.name, "version": str(mv.version), "run_id": run_id,
                        "aliases": list(getattr(mv, "aliases", []) or [])}
    except Exception:  # noqa: BLE001 - registry details are informative only
        return None
    return None


def describe(model: Any) -> dict[str, Any]:
    """Kind, family and variant of a loaded model, for reports."""
    variant = getattr(model, "variant", None) or model.family_impl.variant
    return {"model": model.model_type, "family": model.family, "variant": variant,
            "task": model.task, "features": len(model.feature_names)}


def model_label(model: Any, ref: str) -> str:
    """A short folder-safe name for outputs: ``champion-v3``, ``mlp-train`` ..."""
    import re

    registry = model.meta.get("registry") or {}
    if ref.startswith("models:/") and "@" in ref:
        label = f"{ref.rpartition('@')[2]}-v{registry.get('version', 'x')}"
    elif registry.get("version"):
        label = f"{model.model_type}-v{registry['version']}"
    else:
        label = Path(ref).name or model.model_type
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "model"
