"""Scoring raw rows with a registered model version (core layer).

The model registry (MLflow, phase 3) holds the model; its feature set (phase 2) holds the fitted
feature pipeline that turns raw input columns into the model's features, as serving does. Used to
replay traffic (:mod:`omgmagics.ops.simulate`) and to score the latest labeled window with the
champion and the challenger (:mod:`omgmagics.ops.retrain`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


@dataclass
class Scorer:
    """A model version that scores raw rows.

    Attributes
    ----------
    version : str
        The registry version (``"3"``) or another label of the model.
    """

    version: str
    model: Any
    pipeline: Any = None
    inputs: list[str] | None = None

    def features(self, frame: Any) -> Any:
        import pandas as pd

        if self.pipeline is None:
            return frame
        cols = self.inputs or list(frame.columns)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataError(f"The rows lack input column(s) {', '.join(missing)} of the feature "
                            "pipeline.")
        out = self.pipeline.transform(frame[cols])
        if not isinstance(out, pd.DataFrame):
            names = [str(n) for n in self.pipeline.get_feature_names_out()]
            out = pd.DataFrame(np.asarray(out, dtype=np.float64), columns=names, index=frame.index)
        return out

    def scores(self, frame: Any) -> np.ndarray:
        """Positive-class probability (binary), class probabilities (multi-class) or values."""
        return np.asarray(self.model.predict_scores(self.features(frame)))

    def predict(self, frame: Any) -> tuple[np.ndarray, list[Any]]:
        """(scores as logged: P(positive) for binary, else NaN per row; predicted labels)."""
        return self.predict_full(frame)[:2]

    def predict_full(self, frame: Any) -> tuple[np.ndarray, list[Any], np.ndarray | None, list[Any] | None]:
        """:meth:`predict` plus, for a multiclass model, the (n, k) per-class probabilities and
        their classes (None otherwise)."""
        s = self.scores(frame)
        task = getattr(self.model, "task", "classification")
        if task == "regression":
            return np.full(len(s), np.nan), [float(v) for v in s], None, None
        classes = [_plain_class(c) for c in (getattr(self.model, "classes", None) or [0, 1])]
        if s.ndim == 2:
            return (np.full(len(s), np.nan), [classes[i] for i in s.argmax(axis=1)], s,
                    classes[:s.shape[1]])
        return s, [classes[int(v >= 0.5)] for v in s], None, None


def _plain_class(c: Any) -> Any:
    """A class as a plain Python value (a numpy integer becomes an int: no np.int64 in logs)."""
    return c.item() if hasattr(c, "item") else c


def _pipeline_for(project: Any, model: Any) -> tuple[Any, list[str] | None]:
    ref = (getattr(model, "meta", None) or {}).get("feature_set")
    if not ref:
        return None, None
    from ..features.store import parse_ref

    name, version = parse_ref(ref)
    folder = Path(project.features_dir) / name / version
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"The model was trained on feature set {ref}, which is not in "
                        f"{project.features_dir}. Restore it to score raw rows.")
    manifest = json.loads(manifest_path.read_text())
    rel = manifest.get("pipeline")
    if not rel:
        return None, None
    from ..features.extract import load_pipeline

    pipeline = load_pipeline(folder / rel)
    raw = manifest.get("raw_columns")
    inputs = list(raw) if isinstance(raw, (dict, list)) and raw else None
    if inputs is None and hasattr(pipeline, "feature_names_in_"):
        inputs = [str(c) for c in pipeline.feature_names_in_]
    return pipeline, inputs


def load_scorer(project: Any, version: str | None = None, alias: str | None = None) -> Scorer:
    """The registered model version `version` (or the one holding `alias`) as a :class:`Scorer`."""
    from ..modeling.models import load_model
    from ..modeling.tracking import registered_model_name

    name = registered_model_name(project)
    ref = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
    model = load_model(project, ref)
    pipeline, inputs = _pipeline_for(project, model)
    if version is None:
        from ..modeling.tracking import connect

        mv = connect(project).alias_version(alias)
        version = str(mv.version) if mv is not None else alias
    return Scorer(str(version), model, pipeline, inputs)


class BundleScorer:
    """A phase 4 serving bundle (the code the HTTP server runs: handler, compiled feature pipeline,
    model) used in-process; ``version`` is the bundle's ``NAME/VERSION``, as the server logs it."""

    def __init__(self, bundle: Any):
        self.bundle = bundle
        self.version = bundle.version
        self.inputs = list(bundle.input_names)

    def predict(self, frame: Any) -> tuple[np.ndarray, list[Any]]:
        return self.predict_full(frame)[:2]

    def predict_full(self, frame: Any) -> tuple[np.ndarray, list[Any], Any, list[Any] | None]:
        """(scores, predictions, per-class probabilities as ``{class: p}`` per row when the
        bundle's output has them, else None; None)."""
        items = self.bundle.predict_frame(frame)
        scores = np.array([np.nan if it.get("score") is None else float(it["score"]) for it in items])
        probs = [it.get("probabilities") for it in items]
        has = any(isinstance(p, dict) and p for p in probs)
        return scores, [it.get("prediction") for it in items], probs if has else None, None

    def scores(self, frame: Any) -> np.ndarray:
        return self.predict(frame)[0]


def production_scorer(project: Any, champion: str | None) -> BundleScorer | None:
    """The bundle phase 4 serves in production, when it packages registry version `champion`."""
    try:
        from ..deploy.bundle import ServingBundle
        from ..deploy.state import current_production
    except ImportError:
        return None
    prod = current_production(project) or {}
    folder = Path(prod.get("bundle") or "")
    meta_path = folder / "metadata.json"
    if not prod or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if str(((meta.get("model") or {}).get("registry") or {}).get("version")) != str(champion):
        return None
    return BundleScorer(ServingBundle.load(folder))
