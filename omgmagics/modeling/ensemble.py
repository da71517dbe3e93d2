"""Greedy ensemble selection over trained runs (core layer).

Caruana et al. (2004), "Ensemble selection from libraries of models", as AutoGluon's weighted
ensemble does it: start from nothing and, `size` times, add the model (with replacement) whose
addition makes the average of the chosen models' validation scores best on the brief's primary
metric. A model's weight is the share of the steps that chose it. The result is one
:class:`~omgmagics.modeling.models.OmgModel` of the ``ensemble`` family, recorded and registered like
any model, so compare, evaluate (confidence intervals, fairness, SHAP on the blend), packaging and
serving take it as they take a single one.

The validation split chose the members' early stopping and hyper-parameters, so its scores flatter
them all a little; the test split, which no step has seen, is what compare and evaluate judge.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, UsageError

DEFAULT_SIZE = 25
MEMBER_KINDS = ("train", "tune")


def greedy_weights(scores: list[Any], y: Any, metric: str, task: str,
                   size: int = DEFAULT_SIZE) -> tuple[list[float], list[float]]:
    """Weights of Caruana's greedy selection (with replacement) and the metric after each step.

    `scores` are each model's validation scores (P(positive), an (n, k) matrix, or values). The
    weights are those of the best blend among the steps, so the blend never scores worse on the
    validation split than the best model alone (the first step).
    """
    import numpy as np

    from ..metrics import best_index, better, score

    if size < 1:
        raise UsageError(f"--size must be at least 1, got {size}.")
    total = None
    picks: list[int] = []
    trace: list[float] = []
    for step in range(size):
        best_j, best_value, best_blend = -1, None, None
        for j, s in enumerate(scores):
            blend = s if total is None else (total * step + s) / (step + 1)
            value = score(metric, y, blend, task)
            if best_value is None or better(metric, value, best_value):
                best_j, best_value, best_blend = j, value, blend
        picks.append(best_j)
        total = best_blend
        trace.append(float(best_value))
    # the steps up to the best blend seen (a later step may only make it worse), as AutoGluon does
    stop = best_index(metric, trace)
    counts = np.bincount(picks[:stop + 1], minlength=len(scores))
    return [float(c) / (stop + 1) for c in counts], trace[:stop + 1]


def _member_runs(tracking: Any, experiments: list[str] | None) -> list[Any]:
    from .compare import newest_runs, one_feature_set

    if experiments:
        if len(set(experiments)) != len(experiments):
            raise UsageError(f"--experiments names a run twice: {','.join(experiments)}.")
        runs = [tracking.find_run(name) for name in experiments]
    else:
        runs = newest_runs(tracking, MEMBER_KINDS)
    for run in runs:
        kind = run.data.tags.get("omg.kind")
        if kind not in MEMBER_KINDS:
            raise UsageError(f"Run '{run.info.run_name}' is a {kind} run; an ensemble blends train "
                             "and tune runs.")
    if len(runs) < 2:
        raise UsageError(f"An ensemble needs at least two trained or tuned runs of one feature set; "
                         f"found {len(runs)}. Train or tune more models first, or name them with "
                         "--experiments v1,tuned-xgboost.")
    one_feature_set(runs, "an ensemble's members must take the same features. Blend runs of one "
                          "feature set.")
    return runs


def build_ensemble(project: Any, experiments: list[str] | None = None, *, size: int = DEFAULT_SIZE,
                   name: str | None = None, register: bool = True) -> Any:
    """Blend trained runs by greedy selection on the validation split; log and register the blend.

    Returns
    -------
    Report
        The members with their weights and scores; value: the ensemble
        :class:`~omgmagics.modeling.models.OmgModel` (None when one member alone was chosen, which
        is then reported as tried, not used, and nothing is logged).
    """
    import time

    import pandas as pd

    from ..metrics import best_index, score
    from ..results import Report
    from .data import load_model_data
    from .families.ensemble import Blend
    from .models import FitResult, OmgModel, load_model
    from .record import metric_names, record_model
    from .tracking import connect

    if size < 1:
        raise UsageError(f"--size must be at least 1, got {size}.")
    tracking = connect(project)
    runs = _member_runs(tracking, experiments)
    task = project.objective_type
    primary, secondary = metric_names(project, task)
    data = load_model_data(project, runs[0].data.tags.get("omg.feature_set"))
    if not data.has("val"):
        raise DataError(f"Feature set {data.ref} has no validation split; ensemble selection "
                        "weighs the members on it. Store train/val/test splits in phase 2.")
    t0 = time.perf_counter()
    members = [load_model(project, r.info.run_id) for r in runs]
    for run, member in zip(runs, members, strict=True):
        if member.feature_names != data.feature_names or member.classes != data.classes:
            raise DataError(f"Run '{run.info.run_name}' takes other features or classes than "
                            f"{data.ref}; retrain it on that feature set.")
        if isinstance(member.estimator, Blend):
            raise UsageError(f"Run '{run.info.run_name}' is an ensemble; blend single models.")
    val_scores = [m.predict_scores(data.X["val"]) for m in members]
    alone = [score(primary, data.y["val"], s, task) for s in val_scores]
    weights, trace = greedy_weights(val_scores, data.y["val"], primary, task, size)
    names = [r.info.run_name for r in runs]
    table = pd.DataFrame({"run": names, "model": [m.model_type for m in members],
                          f"val {primary} alone": alone, "weight": weights})
    table = table.sort_values("weight", ascending=False, ignore_index=True)
    best_alone = best_index(primary, alone)
    summary: dict[str, Any] = {"members": f"{sum(w > 0 for w in weights)} of {len(runs)}",
                               f"val {primary} (ensemble)": trace[-1],
                               f"val {primary} (best alone, {names[best_alone]})": alone[best_alone],
                               "selection steps": f"{len(trace)} of {size} (the best blend)"}
    from . import plots

    figures = plots.LazyFigures({"ensemble_selection": lambda: plots.ensemble_selection(
        trace, alone[best_alone], primary, names[best_alone])})
    chosen = [i for i, w in enumerate(weights) if w > 0]
    if len(chosen) < 2:
        report = Report(f"Ensemble of {len(runs)} runs: tried, not used", summary=summary,
                        tables={"members": table}, figures=figures, data={"run_id": None, "weights":
                                                         dict(zip(names, weights, strict=True))})
        report.messages.append(
            f"Tried, not used: greedy selection kept {names[chosen[0]]} alone (no blend scored "
            f"{primary} better on the validation split), so no ensemble run was logged.")
        return report
    blend = Blend([members[i] for i in chosen], [weights[i] for i in chosen],
                  [names[i] for i in chosen])
    model = OmgModel("ensemble", "ensemble", blend, task=task, feature_names=data.feature_names,
                     classes=data.classes, positive_label=data.positive_label,
                     params={"members": [names[i] for i in chosen],
                             "weights": [weights[i] for i in chosen], "size": size},
                     meta={"feature_set": data.ref, "target": data.target,
                           "id_column": data.id_column, "best_iteration": None})
    fit = FitResult(model, None, [], None, time.perf_counter() - t0)
    run_name = name or "ensemble"
    logged = {"model_type": "ensemble", "feature_set": data.ref, "size": size,
              **{f"weight.{names[i]}": weights[i] for i in chosen}}
    rec = record_model(tracking, project, data, fit, name=run_name, kind="ensemble", params=logged,
                       metrics=[primary, *secondary], register=register,
                       extra_metrics={f"val_{primary}_best_member": alone[best_alone]},
                       extra_tags={"omg.members": ",".join(names[i] for i in chosen)})
    if "test" in rec["scores"]:
        summary[f"test {primary} (ensemble)"] = rec["scores"]["test"][primary]
    summary["mlflow run"] = run_name
    if rec["version"]:
        summary["registered"] = f"{tracking.model_name} v{rec['version']} (challenger)"
    report = Report(f"Ensemble of {len(chosen)} runs on {data.ref}", summary=summary,
                    tables={"members": table}, figures=figures.merge(rec["figures"]),
                    artifacts={"mlflow run": f"runs:/{rec['run_id']}/model"},
                    data={"run_id": rec["run_id"], "weights": dict(zip(names, weights, strict=True)),
                          "metrics": rec["metrics"]}, value=model)
    report.messages.append(f"The blend scores {primary} {trace[-1]:.4f} on the validation split "
                           f"against {alone[best_alone]:.4f} for {names[best_alone]} alone; compare "
                           "judges them on the test split, which no step has seen.")
    return report

