"""Train one configured model and record it in MLflow (core layer).

The experiment file says what to train::

    model: xgboost                 # xgboost, lightgbm, mlp, random_forest ... or a scikit-learn class
    params: {max_depth: 6}         # hyper-parameters of that model; unknown names are rejected
    features: project_features@v1  # feature set NAME@VERSION (default: the project's latest)
    early_stopping_rounds: 30      # on the validation split (boosting rounds / MLP epochs); null: off
    seed: 42
    name: v1                       # the MLflow run name
    register: true                 # add a model version with the alias `challenger`

Everything is validated (model, parameters, feature set, target, metric) before a run is opened; the
model is fitted before logging starts, so a failure leaves no half-logged run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..io import input_path

EXPERIMENT_SPEC: dict[str, Any] = {
    "model": str, "params": (dict, type(None)), "features": (str, type(None)),
    "target": (str, type(None)), "early_stopping_rounds": (int, type(None)),
    "seed": (int, type(None)), "name": (str, type(None)), "register": (bool, type(None)),
    "description": (str, type(None)),
}

EXPERIMENT_TEMPLATE = """\
# One training run: `omg train train --config experiment.yaml` (or %omgtrain train ...).
# Unknown keys and unknown hyper-parameters are rejected with the list of valid ones.
model: xgboost                  # xgboost | lightgbm | mlp | random_forest | logistic_regression | ...
                                # or any scikit-learn estimator class, e.g. ExtraTreesClassifier
params:                         # hyper-parameters of that model (library names)
  n_estimators: 400
  learning_rate: 0.05
  max_depth: 6
  subsample: 0.9
  colsample_bytree: 0.8
features: null                  # feature set NAME@VERSION; null: the project's latest
early_stopping_rounds: 30       # stop when the validation metric stalls this long; null: off
seed: 42
name: v1                        # run name in MLflow (compare --experiments baseline,v1,...)
register: true                  # register the model with the alias `challenger`
"""


def read_experiment(path: Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and check an experiment file (or none), with command-line `overrides` on top."""
    from ..config import read_yaml, validate

    spec = {}
    if path is not None:
        spec = read_yaml(path, "experiment file") or {}
        validate(spec, EXPERIMENT_SPEC, source=str(path))
    spec.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if not spec.get("model"):
        raise ConfigError(f"{path or 'The experiment'} names no model. Add `model: xgboost` (or lightgbm, "
                          "mlp, random_forest ...).")
    return spec


def metric_names(project: Any, task: str) -> tuple[str, list[str]]:
    """The brief's primary metric and its secondary metrics, checked against the task."""
    from ..metrics import get_metric

    primary = project.primary_metric
    get_metric(primary, task)
    secondary = []
    for name in project.config.get_path("brief.objective.secondary_metrics", []) or []:
        get_metric(name, task)
        if name != primary:
            secondary.append(name)
    return primary, secondary


def split_scores(model: Any, data: Any, metrics: list[str],
                 cache: dict[str, Any] | None = None,
                 seconds: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """``{split: {metric: value}}`` on the val and test splits that exist (scores kept in `cache`,
    the time each batch prediction took in `seconds`).

    The splits are scored at the same time on two threads where the machine has two cores: the
    prediction libraries release the GIL (XGBoost's and LightGBM's predictors and scikit-learn's
    estimators are safe to call concurrently on a fitted model), so the second split costs no wall time.
    """
    import os
    import time
    from concurrent.futures import ThreadPoolExecutor

    from ..metrics import score

    def predict(split: str) -> tuple[Any, float, dict[str, float]]:
        t0 = time.perf_counter()
        s = model.predict_scores(data.X[split])
        took = time.perf_counter() - t0
        return s, took, {m: score(m, data.y[split], s, data.task) for m in metrics}

    splits = [s for s in ("val", "test") if data.has(s)]
    if len(splits) > 1 and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(len(splits), thread_name_prefix="omg-score") as pool:
            done = dict(zip(splits, pool.map(predict, splits), strict=True))
    else:
        done = {split: predict(split) for split in splits}
    out = {}
    for split, (s, took, values) in done.items():
        if seconds is not None:
            seconds[split] = took
        if cache is not None:
            cache[split] = s
        out[split] = values
    return out


def predictions_frame(model: Any, data: Any, split: str = "test", scores: Any = None) -> Any:
    """Row id, encoded truth, prediction and score(s) of one split (the input of paired tests)."""
    import pandas as pd

    scores = model.predict_scores(data.X[split]) if scores is None else scores
    df = pd.DataFrame({"row_id": data.ids[split], "y_true": data.y[split]})
    if data.task == "regression":
        df["y_pred"] = scores
    elif scores.ndim == 2:
        df["y_pred"] = scores.argmax(axis=1)
        for k in range(scores.shape[1]):
            df[f"score_{k}"] = scores[:, k]
    else:
        df["y_pred"] = (scores >= 0.5).astype(int)
        df["score"] = scores
    return df


def importance(model: Any) -> tuple[list[str], list[float]] | None:
    """Built-in feature importances (gain for boosted trees, |coef| for linear models), by feature."""
    values = model.family_impl.importance(model)
    return None if values is None else (model.feature_names, values)


def record_model(tracking: Any, project: Any, data: Any, fit: Any, *, name: str, kind: str,
                 params: dict[str, Any], metrics: list[str], register: bool,
                 extra_metrics: dict[str, float] | None = None,
                 extra_tags: dict[str, Any] | None = None,
                 extra: Any = None, parent_run_id: str | None = None) -> dict[str, Any]:
    """Log a fitted model as one MLflow run: params, val/test metrics, latency, size, the bundle,
    test predictions, learning curve and importances; optionally register it as `challenger`.

    `extra(logger, run_id)` may log more inside the same run. Returns what was recorded.
    """
    import tempfile

    from ..atomic import atomic_path, write_json
    from . import plots
    from .models import latency_ms
    from .tracking import MODEL_ARTIFACT, PREDICTIONS_ARTIFACT

    model = fit.model
    cache: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    scores = split_scores(model, data, metrics, cache, seconds)
    lat_split = "test" if data.has("test") else "train"
    # Throughput: the test split was just scored as one batch; no need to score another.
    lat = latency_ms(model, data.X[lat_split], batch=(len(data.X["test"]), seconds["test"])
                     if "test" in seconds else None)
    flat = {f"{split}_{m}": v for split, d in scores.items() for m, v in d.items()}
    flat.update({"fit_time_s": fit.fit_time_s, **lat, "n_features": len(data.feature_names),
                 "train_rows": len(data.X["train"])})
    if fit.best_iteration is not None:
        flat["best_iteration"] = fit.best_iteration
    flat.update(extra_metrics or {})
    # Drawn only if the report is shown in a notebook; MLflow gets the curve as a metric history
    # (its own chart) and the importances as a table, so a training call pays for no drawing.
    figures = plots.LazyFigures()
    if fit.history:
        figures["learning_curve"] = lambda: plots.learning_curve(
            fit.history, fit.history_metric or "", fit.best_iteration,
            model.family_impl.step)
    imp = importance(model)
    if imp is not None:
        figures["feature_importance"] = lambda: plots.barh(
            imp[0], imp[1], f"Feature importance ({model.model_type})", "importance")
    with tracking.run(name, kind, feature_set=data.ref, model_type=model.model_type,
                      tags={"omg.feature_set_sha256": data.sha256, "omg.target": data.target,
                            **(extra_tags or {})}, parent_run_id=parent_run_id) as log:
        model.meta.update({"run_id": log.run_id, "run_name": name, "metrics": flat,
                           "primary_metric": metrics[0], "sensitive_features":
                           project.sensitive_features})
        # The bundle, the test predictions and the importances are laid out as the run's artifact
        # tree in one folder and logged with one copy.
        with tempfile.TemporaryDirectory() as tmp:
            stage = Path(tmp)
            bundle = model.save(stage / MODEL_ARTIFACT)
            flat["model_size_bytes"] = sum(p.stat().st_size for p in bundle.iterdir())
            if data.has("test"):
                with atomic_path(stage / PREDICTIONS_ARTIFACT, suffix=".parquet") as part:
                    predictions_frame(model, data, scores=cache.get("test")).to_parquet(
                        part, index=False)
            if imp is not None:
                write_json(stage / "plots" / "feature_importance.json",
                           dict(zip(imp[0], imp[1], strict=True)))
            log.artifacts(stage)
        log.batch(params=params, metrics=flat, histories={f"val_{fit.history_metric}_curve":
                                                          fit.history} if fit.history else None)
        if extra is not None:
            extra(log, log.run_id)
        run_id = log.run_id
        version = tracking.register(run_id, "challenger", f"{kind} run {name}") if register else None
    return {"run_id": run_id, "metrics": flat, "scores": scores, "figures": figures,
            "version": version}


def train_model(project: Any, config: str | os.PathLike | None = "experiment.yaml", *,
                overrides: dict[str, Any] | None = None) -> Any:
    """Train the model of an experiment file and log it to MLflow.

    Parameters
    ----------
    project : Project
    config : path-like or None
        The experiment file (see the module docstring); None trains from `overrides` alone.
    overrides : dict, optional
        ``model``, ``name``, ``features``, ``register`` from the command line.

    Returns
    -------
    Report
        Value: the trained :class:`~omgmagics.modeling.models.OmgModel`.
    """
    import pandas as pd

    from ..results import Report
    from .data import load_model_data
    from .models import fit_model, get_model_type
    from .tracking import connect

    path = None
    if config is not None:
        path = input_path(config, project.root)
        if not path.is_file():
            raise ConfigError(f"Experiment file {config} not found (looked in the working folder and "
                              f"{project.root}). Write one (`omg train train --init` writes a "
                              "documented example) or pass --model TYPE.")
    spec = read_experiment(path, overrides)
    task = project.objective_type
    mt = get_model_type(spec["model"], task)
    params = spec.get("params") or {}
    mt.check_params(params, task, where=f"{path}: " if path else "")
    data = load_model_data(project, spec.get("features"), spec.get("target"))
    primary, secondary = metric_names(project, task)
    if not data.has("val") and spec.get("early_stopping_rounds"):
        raise DataError(f"Feature set {data.ref} has no validation split for early stopping. Store a "
                        "val split or set early_stopping_rounds: null.")
    seed = int(spec.get("seed") if spec.get("seed") is not None else project.seed)
    name = spec.get("name") or f"{mt.name}-train"
    es = spec.get("early_stopping_rounds")
    tracking = connect(project)
    fit = fit_model(mt, params, data, metric=primary, seed=seed, early_stopping_rounds=es)
    logged = {"model_type": mt.name, "seed": seed, "early_stopping_rounds": es,
              "feature_set": data.ref, **{f"params.{k}": v for k, v in fit.model.params.items()}}
    extra = None
    if path is not None:
        def extra(log, run_id):  # noqa: ANN001
            log.artifact(path, "config")
    rec = record_model(tracking, project, data, fit, name=name, kind="train", params=logged,
                       metrics=[primary, *secondary], register=spec.get("register", True) is not False,
                       extra=extra, extra_tags={"omg.experiment_file": path})
    table = pd.DataFrame([{"split": s, **d} for s, d in rec["scores"].items()])
    summary = {"run": name, "run id": rec["run_id"], "model": mt.name, "feature set": data.ref,
               **{f"{s} {primary}": d[primary] for s, d in rec["scores"].items()},
               "fit time (s)": round(fit.fit_time_s, 3)}
    if fit.best_iteration is not None:
        summary["best iteration"] = fit.best_iteration
    if rec["version"]:
        summary["registered"] = f"{tracking.model_name} v{rec['version']} (challenger)"
    report = Report(f"Trained {mt.name} on {data.ref}", summary=summary,
                    tables={"metrics": table}, figures=rec["figures"],
                    artifacts={"mlflow run": f"runs:/{rec['run_id']}/model"},
                    data={"run_id": rec["run_id"], "metrics": rec["metrics"]}, value=fit.model)
    return report


def write_experiment_template(path: str | os.PathLike) -> Path:
    """Write the documented example experiment file unless `path` exists."""
    from ..atomic import write_text

    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path} already exists; --init never overwrites it. Edit it or pass "
                          "another --config path.")
    return write_text(path, EXPERIMENT_TEMPLATE)
