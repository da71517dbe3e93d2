"""Model factories and the safe model bundle (core layer).

A registry maps model type names to factories: ``xgboost``, ``lightgbm`` (when installed), ``mlp``
(torch), short names of common scikit-learn estimators (``random_forest``, ``logistic_regression`` ...)
and any scikit-learn estimator class name (``ExtraTreesClassifier``). Hyper-parameters are checked
against the estimator's own parameter list before anything is trained or logged.

A trained model is an :class:`OmgModel`, saved as a folder (the bundle) holding ``omg_model.json``
(type, task, feature names, classes, parameters, metrics) and the model in its family's safe format:
xgboost UBJ, LightGBM text, skops for scikit-learn (an exact allow-list of types), a torch state dict
for the MLP. Never a raw pickle. What differs between families (fitting, early stopping, the file,
prediction) lives in :mod:`omgmagics.modeling.families`; nothing here switches on a family's name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import ConfigError, DataError, did_you_mean, unknown_choice
from .families import RESERVED, Family, get_family, not_loaded

META_FILE = "omg_model.json"
FORMAT_VERSION = 1
SMALL_DATA_CELLS = 2_000_000  # training cells under which boosted trees run single-threaded


@dataclass(frozen=True)
class ModelType:
    """One entry of the factory registry.

    Parameters
    ----------
    name : str
        What users type (``--model NAME``, ``model:`` in an experiment file).
    family : str
        A registered :class:`~omgmagics.modeling.families.Family` name ("xgboost", "lightgbm",
        "sklearn", "mlp"): it decides how the model is fitted, early-stopped, saved and optimized.
    classes : dict
        Task to ``module.Class`` path (``{"classification": "sklearn.ensemble.RandomForestClassifier"}``).
    defaults : dict
        Hyper-parameters the kit sets unless the user does.
    """

    name: str
    family: str
    classes: dict[str, str]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def estimator_class(self, task: str) -> type:
        import importlib

        path = self.classes.get("regression" if task == "regression" else "classification")
        if path is None:
            tasks = ", ".join(sorted(self.classes))
            raise ConfigError(f"Model '{self.name}' is for {tasks} only, but the objective is {task}.")
        module, _, cls = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), cls)
        except ImportError as exc:
            raise ConfigError(f"Model '{self.name}' needs the package '{module.split('.')[0]}', which "
                              f"is not installed ({exc}). Install it: pip install 'omgmagics[ml]'.") \
                from None

    @property
    def family_impl(self) -> Family:
        return get_family(self.family)

    def valid_params(self, task: str) -> list[str]:
        """Every hyper-parameter name this model accepts."""
        return self.family_impl.valid_params(self, task)

    def check_params(self, params: dict[str, Any], task: str, where: str = "") -> None:
        """Raise :class:`ConfigError` for an unknown hyper-parameter, listing the valid ones."""
        if not isinstance(params, dict):
            raise ConfigError(f"{where}params must be a mapping of hyper-parameter names to values, "
                              f"got {params!r}.")
        valid = self.valid_params(task)
        for key in params:
            if key not in valid:
                reserved = f" '{key}' is set by the kit." if key in RESERVED else ""
                raise ConfigError(f"{where}unknown hyper-parameter '{key}' for model '{self.name}'."
                                  f"{reserved}{did_you_mean(key, valid)} Valid: {', '.join(valid)}.")
        self.family_impl.check_params(params)


MODEL_TYPES: dict[str, ModelType] = {}


def register_model_type(model_type: ModelType) -> ModelType:
    """Add a model type to the registry (a project module may add its own)."""
    MODEL_TYPES[model_type.name] = model_type
    return model_type


_SK = "sklearn."
for _mt in [
    ModelType("xgboost", "xgboost", {"classification": "xgboost.XGBClassifier",
                                     "regression": "xgboost.XGBRegressor"},
              {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 6, "tree_method": "hist"},
              "gradient-boosted trees (XGBoost)"),
    ModelType("lightgbm", "lightgbm", {"classification": "lightgbm.LGBMClassifier",
                                       "regression": "lightgbm.LGBMRegressor"},
              {"n_estimators": 300, "learning_rate": 0.1, "num_leaves": 31, "verbose": -1},
              "gradient-boosted trees (LightGBM)"),
    ModelType("mlp", "mlp", {"classification": "omgmagics.modeling.mlp.MLPModel",
                             "regression": "omgmagics.modeling.mlp.MLPModel"}, {},
              "torch multi-layer perceptron"),
    ModelType("random_forest", "sklearn", {
        "classification": _SK + "ensemble.RandomForestClassifier",
        "regression": _SK + "ensemble.RandomForestRegressor"}, {"n_estimators": 200, "n_jobs": -1}),
    ModelType("extra_trees", "sklearn", {
        "classification": _SK + "ensemble.ExtraTreesClassifier",
        "regression": _SK + "ensemble.ExtraTreesRegressor"}, {"n_estimators": 200, "n_jobs": -1}),
    ModelType("hist_gradient_boosting", "sklearn", {
        "classification": _SK + "ensemble.HistGradientBoostingClassifier",
        "regression": _SK + "ensemble.HistGradientBoostingRegressor"}),
    ModelType("decision_tree", "sklearn", {
        "classification": _SK + "tree.DecisionTreeClassifier",
        "regression": _SK + "tree.DecisionTreeRegressor"}, {"max_depth": 8, "min_samples_leaf": 20}),
    ModelType("logistic_regression", "sklearn", {
        "classification": _SK + "linear_model.LogisticRegression"}, {"max_iter": 2000}),
    ModelType("ridge", "sklearn", {"regression": _SK + "linear_model.Ridge"}),
    ModelType("linear_regression", "sklearn", {"regression": _SK + "linear_model.LinearRegression"}),
    ModelType("knn", "sklearn", {"classification": _SK + "neighbors.KNeighborsClassifier",
                                 "regression": _SK + "neighbors.KNeighborsRegressor"}),
    ModelType("dummy", "sklearn", {"classification": _SK + "dummy.DummyClassifier",
                                   "regression": _SK + "dummy.DummyRegressor"}),
]:
    register_model_type(_mt)
del _mt


def _sklearn_estimators(task: str) -> dict[str, str]:
    from sklearn.utils import all_estimators

    kind = "regressor" if task == "regression" else "classifier"
    return {name: f"{cls.__module__}.{name}" for name, cls in all_estimators(type_filter=kind)}


def get_model_type(name: str, task: str) -> ModelType:
    """Look up `name` in the registry, then among scikit-learn estimator class names.

    Raises
    ------
    ConfigError
        For an unknown name: the registered names and a did-you-mean.
    """
    if name in MODEL_TYPES:
        mt = MODEL_TYPES[name]
        mt.estimator_class(task)  # fails early for a wrong task or a missing package
        return mt
    if name and name[0].isupper():
        found = _sklearn_estimators(task)
        if name in found:
            return ModelType(name, "sklearn", {task: found[name]})
        hint = did_you_mean(name, found)
        raise ConfigError(f"Unknown scikit-learn {'regressor' if task == 'regression' else 'classifier'}"
                          f" '{name}'.{hint} Or use one of: {', '.join(sorted(MODEL_TYPES))}.")
    raise ConfigError(unknown_choice("model", name, MODEL_TYPES) +
                      " Any scikit-learn estimator class name (e.g. RandomForestClassifier) works too.")


# --- the fitted model ---------------------------------------------------------------------------
class OmgModel:
    """A trained model with its metadata; predicts from DataFrames or arrays.

    Attributes
    ----------
    family, model_type, task : str
    estimator : object
        The fitted library object (XGBModel, lightgbm.Booster, scikit-learn estimator, MLPModel).
    feature_names : list of str
    classes : list or None
        Original labels; index = encoded class.
    meta : dict
        Parameters, metrics, feature set, run id ... (``omg_model.json``).
    """

    def __init__(self, family: str, model_type: str, estimator: Any, *, task: str,
                 feature_names: list[str], classes: list[Any] | None, positive_label: Any = None,
                 params: dict[str, Any] | None = None, meta: dict[str, Any] | None = None):
        self.family = family
        self.model_type = model_type
        self.estimator = estimator
        self.task = task
        self.feature_names = list(feature_names)
        self.classes = classes
        self.positive_label = positive_label
        self.params = dict(params or {})
        self.meta = dict(meta or {})
        self.source: str | None = None

    def __repr__(self) -> str:
        return (f"OmgModel({self.model_type}, task={self.task}, features={len(self.feature_names)}"
                f"{', source=' + self.source if self.source else ''})")

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    @property
    def family_impl(self) -> Family:
        return get_family(self.family)

    def matrix(self, X: Any) -> Any:
        """`X` as a float array in training column order (DataFrame columns are matched by name)."""
        import numpy as np
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in X.columns]
            if missing:
                raise DataError(f"The input lacks {len(missing)} feature column(s) the model was "
                                f"trained on: {', '.join(missing[:10])}.")
            return X[self.feature_names].to_numpy(dtype=np.float64)
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.shape[1] != len(self.feature_names):
            raise DataError(f"The input has {arr.shape[1]} columns; the model takes "
                            f"{len(self.feature_names)}.")
        return arr

    def predict_scores(self, X: Any) -> Any:
        """P(positive class) (binary), an (n, k) probability matrix (multi-class) or values."""
        return self.family_impl.predict_scores(self, self.matrix(X))

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        scores = self.predict_scores(X)
        if self.task == "regression":
            raise DataError("predict_proba is for classifiers; this model is a regressor.")
        return np.column_stack([1 - scores, scores]) if scores.ndim == 1 else scores

    def predict_encoded(self, X: Any) -> Any:
        import numpy as np

        scores = self.predict_scores(X)
        if self.task == "regression":
            return scores
        return scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(np.int64)

    def predict(self, X: Any) -> Any:
        """Predicted labels (original values) or regression values."""
        import numpy as np

        enc = self.predict_encoded(X)
        if self.task == "regression":
            return enc
        return np.asarray(self.classes, dtype=object)[enc]

    # --- bundle --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the bundle folder atomically (replacing an existing one) and return it."""
        from ..atomic import atomic_dir, write_json
        from ..results import jsonable

        path = Path(path)
        family = self.family_impl
        with atomic_dir(path, overwrite=True) as tmp:
            file = family.save(self, tmp)
            meta = {**self.meta, "format": "omg-model", "format_version": FORMAT_VERSION,
                    "family": self.family, "model_type": self.model_type, "file": file,
                    "task": self.task, "feature_names": self.feature_names, "classes": self.classes,
                    "positive_label": self.positive_label, "params": self.params,
                    "libraries": family.versions(), **family.model_meta(self)}
            meta.setdefault("created", clock.stamp())
            write_json(tmp / META_FILE, jsonable(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> OmgModel:
        """Read a bundle folder written by :meth:`save`."""
        path = Path(path)
        if path.is_file():
            path = path.parent
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{path} is not a model saved by omg (no {META_FILE}). Point at the "
                            "folder written by `omg train train` or a models:/NAME@alias URI.")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != "omg-model" or int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(f"{meta_path} is not a supported omg model (format "
                            f"{meta.get('format')} v{meta.get('format_version')}). Upgrade omgmagics.")
        from ..io import inside

        file = inside(path, meta.get("file"), f"The model file named by {META_FILE}")
        try:
            estimator = _load_estimator(meta, file)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: refused, not a traceback
            raise DataError(not_loaded(file, meta.get("family"), exc)) from None
        model = cls(meta["family"], meta["model_type"], estimator, task=meta["task"],
                    feature_names=meta["feature_names"], classes=meta.get("classes"),
                    positive_label=meta.get("positive_label"), params=meta.get("params"), meta=meta)
        model.source = str(path)
        return model

    def size_bytes(self) -> int:
        """Size of the saved model file (written to a temporary folder)."""
        with tempfile.TemporaryDirectory() as tmp:
            file = self.family_impl.save(self, Path(tmp))
            return (Path(tmp) / file).stat().st_size


def _load_estimator(meta: dict[str, Any], file: Path) -> Any:
    family = get_family(meta.get("family"))  # an unknown family is refused before any file is read
    if not file.is_file():
        raise DataError(f"Model file {file} is missing from its bundle. Re-save or re-train the model.")
    return family.read(meta, file, OmgModel.load)


def load_model(project: Any, ref: str | os.PathLike) -> OmgModel:
    """Load a model: a bundle folder (or a file in it), ``models:/NAME@alias``, ``models:/NAME/3``,
    ``runs:/RUN_ID/model``, or the name or id of an MLflow run.

    Raises
    ------
    DataError
        When nothing matches `ref`.
    """
    ref = str(ref)
    if not ref.startswith(("models:/", "runs:/")):
        path = Path(ref)
        for candidate in (path, Path(project.root) / path if project is not None else None):
            if candidate is not None and candidate.exists():
                return OmgModel.load(candidate)
        if project is None or "/" in ref or os.sep in ref:
            raise DataError(f"Model {ref} does not exist. Pass a bundle folder, models:/NAME@alias "
                            "or the name of an MLflow run.")
    from .tracking import MODEL_ARTIFACT, connect

    tracking = connect(project)
    uri = ref
    if not ref.startswith(("models:/", "runs:/")):
        uri = f"runs:/{tracking.find_run(ref).info.run_id}/{MODEL_ARTIFACT}"
    elif ref.startswith("models:/") and "@" in ref:
        name, _, alias = ref.removeprefix("models:/").partition("@")
        try:
            tracking.client.get_model_version_by_alias(name, alias)
        except Exception:  # noqa: BLE001 - MlflowException
            raise DataError(f"No model version of '{name}' has the alias '{alias}'. Register one "
                            "with `omg train compare` (champion) or `omg train train` (challenger)."
                            ) from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = tracking.download(uri, tmp)
        except Exception as exc:  # noqa: BLE001 - MlflowException and OSError alike
            from ..redact import redact_uri

            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"Could not fetch model {ref} from MLflow ({redact_uri(tracking.uri)}): "
                            f"{detail.replace(tracking.uri, redact_uri(tracking.uri))}") from None
        model = OmgModel.load(local)
    model.source = ref
    return model


# --- fitting ------------------------------------------------------------------------------------
@dataclass
class FitResult:
    model: OmgModel
    best_iteration: int | None
    history: list[float]
    history_metric: str | None
    fit_time_s: float


def fit_model(mt: ModelType, params: dict[str, Any], data: Any, *, metric: str, seed: int,
              early_stopping_rounds: int | None = None,
              on_step: Callable[[int, float], None] | None = None, report_every: int = 10,
              n_jobs: int | None = None) -> FitResult:
    """Fit `mt` with `params` on ``data.X["train"]``; early-stop and report on the validation split.

    Parameters
    ----------
    on_step : callable, optional
        ``on_step(step, value)`` gets the family's step metric on the validation split (see
        :meth:`Family.eval_metric <omgmagics.modeling.families.Family.eval_metric>`) every
        `report_every` boosting rounds or epochs; it may raise to stop (pruning).
    """
    import time

    full = {**mt.defaults, **params}
    t0 = time.perf_counter()
    if n_jobs is None and data.X["train"].size < SMALL_DATA_CELLS:
        n_jobs = 1  # on small data, OpenMP thread start-up and contention cost more than they save
    fitted = mt.family_impl.fit(mt, full, data, metric=metric, seed=seed,
                                early_stopping_rounds=early_stopping_rounds, on_step=on_step,
                                report_every=report_every, n_jobs=n_jobs)
    fit_time = time.perf_counter() - t0
    model = OmgModel(mt.family, mt.name, fitted.estimator, task=data.task,
                     feature_names=data.feature_names, classes=data.classes,
                     positive_label=data.positive_label, params=full,
                     meta={"feature_set": data.ref, "target": data.target,
                           "id_column": data.id_column, "best_iteration": fitted.best_iteration})
    return FitResult(model, fitted.best_iteration, list(fitted.history), fitted.history_metric,
                     fit_time)


def latency_ms(model: OmgModel, X: Any, repeats: int = 20,
               batch: tuple[int, float] | None = None) -> dict[str, float]:
    """Single-row prediction latency p50/p99 (ms) and batch throughput (rows/s).

    `batch` = ``(rows, seconds)`` of a batch prediction the caller already timed (scoring a split);
    without it the first 1000 rows of `X` are scored for the throughput.
    """
    import time

    import numpy as np

    rows = [X[i % len(X):i % len(X) + 1] for i in range(repeats)]
    model.predict_scores(rows[0])  # warm-up
    times = []
    for row in rows:
        t0 = time.perf_counter()
        model.predict_scores(row)
        times.append((time.perf_counter() - t0) * 1000)
    if batch is None:
        part = X[: min(len(X), 1000)]
        t0 = time.perf_counter()
        model.predict_scores(part)
        batch = (len(part), time.perf_counter() - t0)
    return {"latency_p50_ms": float(np.percentile(times, 50)),
            "latency_p99_ms": float(np.percentile(times, 99)),
            "throughput_rows_s": float(batch[0] / max(batch[1], 1e-9))}
