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
    from .record import metric_names, record_model
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
