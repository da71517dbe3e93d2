"""Baselines (core layer): dummy, linear and tree models cross-validated on the training split.

The leaderboard gives mean and standard deviation over the folds of the brief's primary and secondary
metrics, with fit and predict times. Each baseline is then refitted on the whole training split and
logged to MLflow as a child run ``baseline-NAME``; the parent run ``baseline`` carries the leaderboard
and the best baseline's model and test predictions, so ``compare --experiments baseline,...`` and the
phase 3 gate can test a model against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DataError, UsageError, unknown_choice

BASELINES = ("dummy", "linear", "tree")


def baseline_estimator(name: str, task: str, seed: int) -> tuple[str, Any]:
    """(model type label, unfitted estimator) for a built-in baseline name."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    reg = task == "regression"
    if name == "dummy":
        return "dummy", DummyRegressor(strategy="mean") if reg else DummyClassifier(strategy="prior")
    if name == "linear":
        model = Ridge() if reg else LogisticRegression(max_iter=2000)
        return ("ridge" if reg else "logistic_regression"), Pipeline(
            [("scale", StandardScaler()), ("model", model)])
    kwargs = {"max_depth": 8, "min_samples_leaf": 20, "random_state": seed}
    return "decision_tree", DecisionTreeRegressor(**kwargs) if reg else DecisionTreeClassifier(**kwargs)


def _folds(data: Any, cv: int, seed: int) -> tuple[list[tuple[Any, Any]], str | None]:
    """The cross-validation folds and, when the table forced fewer than `cv`, a message saying so."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    y = data.y["train"]
    n = len(y)
    if n < 4:
        raise DataError(f"The training split has {n} rows: too small for cross-validation (at least "
                        "4 rows, 2 per fold). Add rows or lower the validation and test shares.")
    note = None
    if data.task == "regression":
        folds = min(cv, n // 2)
        splitter = KFold(folds, shuffle=True, random_state=seed)
    else:
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        folds = min(cv, smallest)
        if folds < 2:
            raise DataError(f"The rarest class has {smallest} row in the training split: too small "
                            "for cross-validation (every fold needs one row of each class). Add "
                            "rows of that class or merge it with another.")
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    if folds < cv:
        why = "the rarest class has" if data.task != "regression" else "the training split has"
        note = (f"--cv {cv} lowered to {folds} folds: {why} "
                f"{folds if data.task != 'regression' else n} rows.")
    return list(splitter.split(data.X["train"], y)), note


def run_baselines(project: Any, *, features: str | None = None, table: Any = None,
                  table_name: str = "table", target: str | None = None, cv: int = 5,
                  models: list[str] | None = None,
                  progress: Callable[..., Any] | None = None) -> Any:
    """Cross-validate the baselines, log them to MLflow and return the leaderboard.

    Parameters
    ----------
    features : str, optional
        ``NAME@VERSION`` (default: the project's latest feature set).
    table : DataFrame, optional
        A user table instead of a feature set (cross-validation only; no test split).
    models : list of str
        Built-in baselines (``dummy``, ``linear``, ``tree``) or registered model types.

    Returns
    -------
    Report
        Value: the leaderboard DataFrame.
    """
    from ..results import Report
    from .data import load_model_data
    from .record import metric_names, record_model
    from .tracking import connect

    if cv < 2:
        raise UsageError(f"--cv must be at least 2 folds, got {cv}.")
    models = models or list(BASELINES)
    task = project.objective_type
    candidates = _candidates(models, task, project.seed)  # names checked before any data is read
    data = load_model_data(project, features, target, table=table, table_name=table_name)
    primary, secondary = metric_names(project, task)
    metrics = [primary, *secondary]
    folds, fold_note = _folds(data, cv, project.seed)
    tracking = connect(project)
    board, rows = _cross_validate(candidates, data, folds, metrics, primary, progress)
    best = board.iloc[0]["model"]
    fitted = _refit(candidates, data)
    cv_metrics = {row["model"]: {**{f"cv_{m}_mean": row[f"{m} mean"] for m in metrics},
                                 **{f"cv_{m}_std": row[f"{m} std"] for m in metrics}}
                  for row in rows}

    def log_children(log, run_id):  # noqa: ANN001
        log.table(board, "leaderboard.parquet")
        log.text(board.to_csv(index=False), "leaderboard.csv")
        for name, *_ in candidates:
            record_model(tracking, project, data, fitted[name], name=f"baseline-{name}",
                         kind="baseline-model", params={"baseline": name, "cv": cv,
                                                        **fitted[name].model.params},
                         metrics=metrics, register=False, extra_metrics=cv_metrics[name],
                         parent_run_id=run_id)

    rec = record_model(tracking, project, data, fitted[best], name="baseline", kind="baseline",
                       params={"best_baseline": best, "cv": cv, "baselines": models,
                               **fitted[best].model.params},
                       metrics=metrics, register=False, extra_metrics=cv_metrics[best],
                       extra_tags={"omg.best_baseline": best}, extra=log_children)
    summary = {"best baseline": best, f"cv {primary}": f"{board.iloc[0][f'{primary} mean']:.4f} ± "
               f"{board.iloc[0][f'{primary} std']:.4f}", "folds": len(folds), "feature set": data.ref,
               "mlflow run": "baseline"}
    if "test" in rec["scores"]:
        summary[f"test {primary} (best)"] = rec["scores"]["test"][primary]
    messages = [fold_note] if fold_note else []
    if not data.has("test"):
        messages.append("No test split: the baselines were cross-validated only; store a feature set "
                        "with a test split to compare models against them.")
    from .plots import LazyFigures, leaderboard

    # drawn only when the report is shown in a notebook
    figures = LazyFigures({"leaderboard": lambda: leaderboard(board, primary, cv)})
    return Report(f"Baselines on {data.ref} ({cv}-fold cross-validation, training split)",
                  summary=summary, tables={"leaderboard": board}, figures=figures, messages=messages,
                  data={"run_id": rec["run_id"], "best": best}, value=board)


def _candidates(models: list[str], task: str, seed: int) -> list[tuple[str, str, Any, str]]:
    """(name, label, unfitted estimator, family) of each baseline, checked before any data is read."""
    from .models import MODEL_TYPES, get_model_type

    for name in models:
        if name not in BASELINES and name not in MODEL_TYPES:
            raise UsageError(unknown_choice("baseline", name, {*BASELINES, *MODEL_TYPES}))
    out = []
    for name in models:
        if name in BASELINES:
            label, est = baseline_estimator(name, task, seed)
        else:
            mt = get_model_type(name, task)
            if not mt.family_impl.baseline:
                raise UsageError(f"Baseline '{name}' must be a scikit-learn model; train {name} with "
                                 "`omg train train` or tune it with `omg train tune`.")
            cls = mt.estimator_class(task)
            kwargs = dict(mt.defaults)
            if "random_state" in cls().get_params():
                kwargs["random_state"] = seed
            label, est = mt.name, cls(**kwargs)
        out.append((name, label, est, "sklearn"))
    return out


def _cross_validate(candidates: list, data: Any, folds: list, metrics: list[str], primary: str,
                    progress: Callable[..., Any] | None) -> tuple[Any, list[dict[str, Any]]]:
    """The leaderboard (best first): each metric's mean and std over the folds, fit/predict times."""
    import time

    import numpy as np
    import pandas as pd
    from sklearn.base import clone

    from ..metrics import get_metric, score

    task = data.task
    X, y = data.X["train"], data.y["train"]
    rows = []
    bar = progress(total=len(candidates) * len(folds), desc="baselines") if progress else None
    try:
        for name, label, est, _family in candidates:
            per: dict[str, list[float]] = {m: [] for m in metrics}
            fit_t, pred_t = [], []
            for tr, va in folds:
                m = clone(est)
                t0 = time.perf_counter()
                m.fit(X[tr], y[tr])
                fit_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                s = _scores(m, X[va], task)
                pred_t.append(time.perf_counter() - t0)
                for metric in metrics:
                    per[metric].append(score(metric, y[va], s, task))
                if bar is not None:
                    bar.update(1)
            row = {"model": name, "estimator": label}
            for metric in metrics:
                row[f"{metric} mean"] = float(np.nanmean(per[metric]))
                row[f"{metric} std"] = float(np.nanstd(per[metric]))
            row["fit time (s)"] = float(np.mean(fit_t))
            row["predict time (s)"] = float(np.mean(pred_t))
            rows.append(row)
    finally:
        if bar is not None:
            bar.close()
    higher = get_metric(primary).greater_is_better
    board = pd.DataFrame(rows).sort_values(f"{primary} mean", ascending=not higher)
    return board.reset_index(drop=True), rows


def _refit(candidates: list, data: Any) -> dict[str, Any]:
    """Each baseline fitted on the whole training split, as a model the kit records and serves."""
    import time

    from sklearn.base import clone

    from .models import FitResult, OmgModel

    fitted = {}
    for name, label, est, family in candidates:
        m = clone(est)
        t0 = time.perf_counter()
        m.fit(data.X["train"], data.y["train"])
        model = OmgModel(family, label, m, task=data.task, feature_names=data.feature_names,
                         classes=data.classes, positive_label=data.positive_label,
                         params={k: v for k, v in m.get_params().items()
                                 if isinstance(v, (int, float, str, bool, type(None)))},
                         meta={"feature_set": data.ref, "target": data.target,
                               "id_column": data.id_column, "baseline": name})
        fitted[name] = FitResult(model, None, [], None, time.perf_counter() - t0)
    return fitted


def _scores(model: Any, X: Any, task: str) -> Any:
    import numpy as np

    if task == "regression":
        return np.asarray(model.predict(X), dtype=float)
    proba = model.predict_proba(X)
    return proba[:, 1] if proba.shape[1] == 2 else proba
