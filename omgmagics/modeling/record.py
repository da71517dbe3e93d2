"""Recording a fitted model (core layer): the brief's metric names, the scores of each split, the
MLflow run with its bundle, predictions, learning curve and importances, and the registry entry.

Shared by the three verbs that make models: `train train`, `train tune` (the refit of the best
trial) and `train baseline`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
