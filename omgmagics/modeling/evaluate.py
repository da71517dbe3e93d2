"""Evaluation of one model on the test split (core layer).

Always: the brief's metrics with bootstrap confidence intervals, the confusion matrix (classifiers) and a
paired test against the best baseline when one was logged. ``comprehensive`` adds ROC, precision-recall
and calibration curves (or residual plots), per-slice metrics and SHAP explanations; ``fairness`` the
fairlearn group metrics on the brief's sensitive features; ``robustness`` the degradation curves.

Everything is validated (model, feature set, sensitive and slice columns) before anything is logged.
Results go to the notebook (the report), to the model's MLflow run (metrics ``test_*``, plots, the JSON)
and to ``reports/evaluation.json``, which the model card and the phase 3 gate read, and
``reports/evaluation.html`` (a self-contained page for reviewers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import clock
from ..errors import DataError

EVALUATION_FILE = "evaluation.json"
EVALUATION_PAGE = "evaluation.html"


def resolve_model(project: Any, tracking: Any, ref: str | None) -> tuple[Any, str | None, str]:
    """(model, its MLflow run id or None, a label). Default: the champion, else the newest
    tuned or trained run."""
    from .models import load_model
    from .tracking import MODEL_ARTIFACT

    if ref is None:
        mv = tracking.alias_version("champion")
        if mv is not None:
            ref = f"models:/{tracking.model_name}@champion"
        else:
            runs = [r for kind in ("ensemble", "tune", "train")
                    for r in tracking.runs(kind=kind, max_results=1)]
            if not runs:
                raise DataError("No model to evaluate: no champion and no tuned or trained run. Train "
                                "one (`omg train train` / `omg train tune`) or pass --model.")
            newest = max(runs, key=lambda r: r.info.start_time)
            ref = f"runs:/{newest.info.run_id}/{MODEL_ARTIFACT}"
    model = load_model(project, ref)
    run_id = model.meta.get("run_id")
    if run_id:
        try:
            run = tracking.client.get_run(run_id)
            if run.info.experiment_id != tracking.experiment_id or run.info.lifecycle_stage != "active":
                run_id = None
        except Exception:  # noqa: BLE001 - a bundle from another store
            run_id = None
    label = model.meta.get("run_name") or model.model_type
    return model, run_id, f"{label} ({ref})"


def scores_from_predictions(df: Any, task: str) -> Any:
    """Model scores from a logged predictions table (see ``record.predictions_frame``)."""

    if task == "regression":
        return df["y_pred"].to_numpy(dtype=float)
    cols = sorted((c for c in df.columns if c.startswith("score_")), key=lambda c: int(c[6:]))
    return df[cols].to_numpy(dtype=float) if cols else df["score"].to_numpy(dtype=float)


def versus_baseline(tracking: Any, data: Any, scores: Any, metric: str, run_id: str | None,
                    n_boot: int, seed: int) -> dict[str, Any] | None:
    """Paired test of the model against the newest ``baseline`` run on the same test rows."""
    import numpy as np

    from .stats import significance

    runs = tracking.runs(kind="baseline", max_results=1)
    if not runs:
        return None
    base = runs[0]
    if base.info.run_id == run_id:
        # no trained model beat the best baseline in the comparison: it is the champion
        return {"baseline_run": run_id, "champion_is_baseline": True,
                "baseline": base.data.tags.get("omg.best_baseline", "baseline")}
    if base.data.tags.get("omg.feature_set") != data.ref:
        return {"baseline_run": base.info.run_id, "skipped": f"the baseline was run on "
                f"{base.data.tags.get('omg.feature_set')}, the model on {data.ref}"}
    preds = tracking.predictions(base.info.run_id).set_index("row_id")
    missing = set(data.ids["test"]) - set(preds.index)
    if missing:
        return {"baseline_run": base.info.run_id, "skipped": f"{len(missing)} test rows have no "
                "baseline prediction"}
    other = scores_from_predictions(preds.loc[data.ids["test"]].reset_index(), data.task)
    sig = significance(metric, data.task, data.y["test"], np.asarray(scores), other, n_boot, seed)
    sig.update(baseline_run=base.info.run_id,
               baseline=base.data.tags.get("omg.best_baseline", "baseline"))
    return sig


@dataclass
class _Evaluation:
    """What one evaluation has gathered so far: the JSON payload, figures, tables and messages."""

    project: Any
    model: Any
    data: Any
    run_id: str | None
    label: str
    primary: str
    secondary: list[str]
    y: Any = None
    scores: Any = None
    out: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.data.task


def evaluate_model(project: Any, model_ref: str | None = None, *, features: str | None = None,
                   comprehensive: bool = False, fairness: bool = False, robustness: bool = False,
                   slices: list[str] | None = None, n_bootstrap: int = 1000, shap_rows: int = 200,
                   progress: Callable[..., Any] | None = None) -> Any:
    """Evaluate a model on the test split; see the module docstring.

    Parameters
    ----------
    model_ref : str, optional
        A bundle folder, ``models:/NAME@alias``, a run name or id (default: champion, else newest).
    slices : list of str, optional
        Columns for per-slice metrics (feature columns or raw columns of the test split); default
        with `comprehensive`: the sensitive features.

    Returns
    -------
    Report
    """
    from ..metrics import get_metric
    from .data import test_attributes
    from .fairness import require_sensitive
    from .tracking import connect

    if n_bootstrap < 0:
        raise DataError(f"--bootstrap must be >= 0, got {n_bootstrap}.")
    if fairness and not project.sensitive_features:
        fairness = False
        fairness_skipped = ("fairness not assessed: the brief names no sensitive feature "
                            "(brief.sensitive_features in omg.yaml)")
    else:
        fairness_skipped = None
    sensitive = require_sensitive(project) if fairness else []
    tracking = connect(project)
    ev = _prepare(project, tracking, model_ref, features)
    data = ev.data
    attrs = test_attributes(project, data, sensitive, "sensitive feature") if sensitive else None
    slice_frame = _slice_frame(project, data, slices, comprehensive)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("metrics", lambda: _metrics(ev, tracking, n_bootstrap))]
    if comprehensive:
        steps += [("curves", lambda: _curves(ev)), ("slices", lambda: _slice_metrics(ev, slice_frame)),
                  ("shap", lambda: _shap(ev, shap_rows))]
    if fairness:
        steps.append(("fairness", lambda: _fairness(ev, attrs)))
    if robustness:
        steps.append(("robustness", lambda: _robustness(ev)))
    bar = progress(total=len(steps), desc="evaluate") if progress is not None else None
    ev.y = data.y["test"]
    ev.scores = ev.model.predict_scores(data.X["test"])
    ev.out = {"model": {"ref": ev.label, "run_id": ev.run_id, "type": ev.model.model_type,
                        "family": ev.model.family},
              "feature_set": data.ref, "task": ev.task, "test_rows": int(len(ev.y)),
              "primary_metric": ev.primary,
              "threshold": project.config.get_path("brief.objective.threshold"),
              "greater_is_better": get_metric(ev.primary).greater_is_better}
    try:
        for name, run in steps:
            run()
            if bar is not None:
                bar.set_description(f"evaluate: {name}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if fairness_skipped:
        ev.out["fairness_skipped"] = fairness_skipped
        ev.messages.append(fairness_skipped[0].upper() + fairness_skipped[1:] + ".")
    return _record(ev, tracking)


def _prepare(project: Any, tracking: Any, model_ref: str | None, features: str | None) -> _Evaluation:
    """The model and its test split, checked against each other; the brief's metrics."""
    import numpy as np

    from .data import load_model_data
    from .record import metric_names

    model, run_id, label = resolve_model(project, tracking, model_ref)
    data = load_model_data(project, features or model.meta.get("feature_set"))
    if not data.has("test"):
        raise DataError(f"Feature set {data.ref} has no test split to evaluate on.")
    missing = [c for c in model.feature_names if c not in data.feature_names]
    if missing:
        raise DataError(f"The model takes features that {data.ref} lacks: {', '.join(missing[:10])}. "
                        "Evaluate on the feature set it was trained on.")
    data.feature_names = list(model.feature_names)
    for split, frame in data.frames.items():
        data.X[split] = frame[model.feature_names].to_numpy(dtype=np.float64)
    primary, secondary = metric_names(project, data.task)
    return _Evaluation(project, model, data, run_id, label, primary, secondary)


def _slice_frame(project: Any, data: Any, slices: list[str] | None, comprehensive: bool) -> Any:
    """The slice columns of the test rows: those asked for (checked), else with `comprehensive`
    the sensitive features, best effort."""
    from .data import test_attributes

    cols = slices if slices is not None else (project.sensitive_features if comprehensive else [])
    if not cols:
        return None
    try:
        return test_attributes(project, data, cols, "slice column")
    except DataError:
        if slices is not None:
            raise
        return None


def _metrics(ev: _Evaluation, tracking: Any, n_bootstrap: int) -> None:
    """The brief's metrics with bootstrap CIs, the confusion matrix, the paired test against the
    best baseline."""
    import pandas as pd

    from ..metrics import score
    from . import plots
    from .stats import bootstrap_ci

    y, scores, task, primary = ev.y, ev.scores, ev.task, ev.primary
    seed = ev.project.seed
    for m in [primary, *ev.secondary]:
        lo, hi = bootstrap_ci(m, y, scores, task, n_bootstrap, seed)
        ev.rows.append({"metric": m, "value": score(m, y, scores, task), "ci_low": lo, "ci_high": hi})
    ev.out["metrics"] = {r["metric"]: {k: r[k] for k in ("value", "ci_low", "ci_high")}
                         for r in ev.rows}
    ev.out["bootstrap"] = n_bootstrap
    ev.tables["test metrics (95% bootstrap CI)"] = pd.DataFrame(ev.rows)
    if task != "regression":
        from sklearn.metrics import confusion_matrix

        pred = scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)
        cm = confusion_matrix(y, pred, labels=list(range(ev.data.n_classes)))
        labels = [str(c) for c in ev.data.classes]
        ev.out["confusion_matrix"] = {"labels": labels, "matrix": cm.tolist()}
        ev.figures["confusion_matrix"] = plots.to_png(plots.confusion(cm, labels))
    vs = versus_baseline(tracking, ev.data, scores, primary, ev.run_id, max(n_bootstrap, 200), seed)
    if vs is None:
        return
    ev.out["vs_baseline"] = vs
    if vs.get("champion_is_baseline"):
        vs["a"] = vs["b"] = ev.out["metrics"][primary]["value"]  # one model on both sides
        ev.messages.append(f"The best baseline ({vs['baseline']}) is the champion: no trained model "
                           "beat it in the comparison.")
    elif "skipped" in vs:
        ev.messages.append(f"No paired test against the baseline: {vs['skipped']}.")
    else:
        verdict = "significantly better than" if vs["significant"] else "not significantly better than"
        ev.messages.append(f"{vs['test']} vs the best baseline ({vs['baseline']}): {primary} "
                           f"{vs['a']:.4f} vs {vs['b']:.4f}, p = {vs['p_value']:.3g}: {verdict} the "
                           "baseline.")


def _curves(ev: _Evaluation) -> None:
    """Residuals (regression); ROC, precision-recall and calibration with the Brier score and ECE
    (binary)."""
    from . import plots

    if ev.task == "regression":
        ev.figures["residuals"] = plots.to_png(plots.residuals(ev.y, ev.scores))
    elif ev.scores.ndim == 1:
        from sklearn.metrics import brier_score_loss

        ev.figures["roc_pr_calibration"] = plots.to_png(plots.curves(ev.y, ev.scores))
        ev.out["calibration"] = {"brier_score": float(brier_score_loss(ev.y, ev.scores)),
                                 "expected_calibration_error": _ece(ev.y, ev.scores)}


def _slice_metrics(ev: _Evaluation, slice_frame: Any) -> None:
    if slice_frame is not None:
        ev.out["slices"], ev.tables["slices"] = _slices(slice_frame, ev.y, ev.scores, ev.task,
                                                        [ev.primary, *ev.secondary])


def _shap(ev: _Evaluation, rows: int) -> None:
    """Global, per-class (multi-class) and local SHAP explanations; a failure is a message."""
    try:
        from .explain import shap_summary

        shap = shap_summary(ev.model, ev.data, rows=rows, seed=ev.project.seed)
    except Exception as exc:  # noqa: BLE001 - explanations must not sink an evaluation
        ev.messages.append(f"SHAP explanations failed: {type(exc).__name__}: {exc}")
        return
    ev.out["shap"] = {"explainer": shap["explainer"], "rows": shap["rows"], "global": shap["global"],
                      "local": shap["local"].to_dict(orient="records")}
    if "per_class" in shap:
        ev.out["shap"]["per_class"] = shap["per_class"]
    ev.figures["shap_importance"] = shap["figure"]
    ev.figures["shap_summary"] = shap["summary_figure"]
    ev.tables["SHAP local explanations"] = shap["local"]


def _fairness(ev: _Evaluation, attrs: Any) -> None:
    """fairlearn group metrics of the task on the sensitive features, with a figure per feature."""
    from . import plots
    from .fairness import THRESHOLD_KEYS, fairness_report

    project = ev.project
    thresholds = {k: project.config.get_path(f"fairness.{k}") for k in THRESHOLD_KEYS}
    fr = fairness_report(ev.y, ev.scores, attrs, task=ev.task, metric=ev.primary,
                         thresholds=thresholds, classes=ev.data.classes)
    ev.out["fairness"] = {k: fr[k] for k in ("features", "checks", "thresholds", "min_group_size",
                                             "passed")}
    ev.messages += fr["messages"]
    ev.tables["fairness"] = fr["summary"]
    for col, table in fr["tables"].items():
        ev.tables[f"fairness by {col}"] = table
        if "selection_rate" in table:
            fig = plots.group_bars(table, col, ["selection_rate", "true_positive_rate",
                                                "false_positive_rate"], f"Group rates by {col}")
        elif "balanced_accuracy" in table:
            fig = plots.group_bars(table, col, ["accuracy", "balanced_accuracy"], f"Accuracy by {col}")
        else:
            fig = plots.group_bars(table, col, ["mean_target", "mean_prediction"],
                                   f"Mean target and prediction by {col}",
                                   ylabel=project.target or "target", share=False)
        ev.figures[f"fairness_{col}"] = plots.to_png(fig)


def _robustness(ev: _Evaluation) -> None:
    """Degradation curves under noise, missing values, category changes and a shift of the most
    important feature."""
    import pandas as pd

    from . import plots
    from .robustness import robustness_curves

    primary = ev.primary
    top = next(iter(ev.out.get("shap", {}).get("global", {})), None)
    rb = robustness_curves(ev.model, ev.data, primary, seed=ev.project.seed, shift_feature=top)
    ev.out["robustness"] = dict(rb)
    ev.figures["robustness"] = plots.to_png(plots.degradation(rb["curves"], primary))
    ev.tables["robustness"] = pd.DataFrame([{"perturbation": n, "strength": lvl, primary: v}
                                            for n, pts in rb["curves"].items() for lvl, v in pts])
    ev.messages += [f"Limitation: {s}" for s in rb["limitations"]]
    if rb["imputed"]:
        ev.messages.append("The model cannot take missing values: the missing-value curve fills them "
                           "with training means.")


def _record(ev: _Evaluation, tracking: Any) -> Any:
    """Log to MLflow, write reports/evaluation.json and .html; the Report."""
    from ..atomic import write_json
    from ..results import Report, jsonable
    from .fairness import THRESHOLD_KEYS

    project = ev.project
    ev.out["created"] = clock.stamp()
    ev.out["messages"] = ev.messages
    out = jsonable(ev.out)
    flat = {f"test_{r['metric']}": r["value"] for r in ev.rows}
    flat.update({f"test_{r['metric']}_ci_low": r["ci_low"] for r in ev.rows})
    flat.update({f"test_{r['metric']}_ci_high": r["ci_high"] for r in ev.rows})
    for col, entry in out.get("fairness", {}).get("features", {}).items():
        flat.update({f"fairness_{col}_{key}": entry[key] for key in THRESHOLD_KEYS if key in entry})

    def log_all(log: Any) -> None:
        log.metrics(flat)
        for name, png in ev.figures.items():
            log.png(png, f"evaluation/{name}.png")
        log.json(out, f"evaluation/{EVALUATION_FILE}")

    if ev.run_id is not None:
        log_all(tracking.append(ev.run_id))
        out["mlflow_run"] = ev.run_id
    else:
        with tracking.run(f"evaluate-{ev.model.model_type}", "evaluate", feature_set=ev.data.ref,
                          model_type=ev.model.model_type, tags={"omg.model_ref": ev.label}) as log:
            log_all(log)
            out["mlflow_run"] = log.run_id
    path = write_json(project.reports_dir / EVALUATION_FILE, out)
    report = Report(f"Evaluation of {ev.model.model_type} on the test split of {ev.data.ref}",
                    summary=_summary(ev, out), tables=ev.tables, figures=ev.figures,
                    messages=ev.messages, artifacts={"evaluation": str(path)}, data=out, value=out)
    report.artifacts["report"] = str(write_html(project.reports_dir / EVALUATION_PAGE, report))
    report.artifacts["mlflow run"] = str(out["mlflow_run"])
    return report


def _summary(ev: _Evaluation, out: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"model": ev.label, "feature set": ev.data.ref, "test rows": len(ev.y)}
    for r in ev.rows[:3]:
        summary[r["metric"]] = f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
    vs = out.get("vs_baseline") or {}
    if vs.get("champion_is_baseline"):
        summary["best baseline"] = f"{vs['baseline']} (the champion)"
    elif "b" in vs:
        summary["best baseline"] = f"{vs['baseline']} {ev.primary} {vs['b']:.4f}"
    if out.get("fairness"):
        summary["fairness"] = "pass" if out["fairness"]["passed"] else "fail"
    elif out.get("fairness_skipped"):
        summary["fairness"] = "not assessed (no sensitive feature)"
    if out.get("robustness"):
        summary["robustness limitations"] = len(out["robustness"]["limitations"])
    if out.get("calibration"):
        summary["Brier score"] = round(out["calibration"]["brier_score"], 4)
        summary["expected calibration error"] = round(out["calibration"]["expected_calibration_error"],
                                                      4)
    return summary


_FIGURE_NAMES = {"roc_pr_calibration": "ROC, precision-recall and calibration",
                 "shap_importance": "SHAP: global importance", "shap_summary": "SHAP: summary",
                 "robustness": "robustness under perturbation"}


def write_html(path: Any, report: Any) -> Any:
    """The evaluation as a self-contained page for reviewers: key figures first, then the plots, then
    the tables (figures embedded as PNG; no script, no network)."""
    import base64
    import html

    from ..atomic import write_text
    from ..html import page
    from ..results import status_html, table_html

    esc = html.escape
    stamp = report.data.get("created", "") if isinstance(report.data, dict) else ""
    parts = ['<p><a href="index.html">&larr; review index</a></p>', f"<h1>{esc(report.title)}</h1>",
             f'<p class="sub">Written {esc(stamp)} by <code>omg train evaluate</code>; the numbers are '
             f"also in <code>{EVALUATION_FILE}</code> and the model's MLflow run.</p>",
             "<table>" + "".join(f"<tr><th>{esc(str(k))}</th><td>{status_html(v)}</td></tr>"
                                 for k, v in report.summary.items()) + "</table>"]
    if report.messages:
        parts.append("<ul>" + "".join(f"<li>{esc(m)}</li>" for m in report.messages) + "</ul>")
    if report.figures:
        parts.append("<h2>Figures</h2>")
    for name, png in report.figures.items():
        label = _FIGURE_NAMES.get(name) or name.replace("fairness_", "fairness by ").replace("_", " ")
        parts.append(f'<h3>{esc(label)}</h3><img alt="{esc(label)}" style="max-width:100%" '
                     f'src="data:image/png;base64,{base64.b64encode(png).decode()}"/>')
    if report.tables:
        parts.append("<h2>Tables</h2>")
    for name, table in report.tables.items():
        parts.append(f"<h3>{esc(name)}</h3>{table_html(table)}")
    return write_text(path, page(report.title, "".join(parts)))


def _ece(y: Any, p: Any, bins: int = 10) -> float:
    import numpy as np

    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(float(y[m].mean()) - float(p[m].mean()))
    return float(total)


def _slices(frame: Any, y: Any, scores: Any, task: str, metrics: list[str]) -> tuple[list, Any]:
    import pandas as pd

    from ..metrics import score

    rows = []
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
            values = pd.qcut(values, 4, duplicates="drop").astype(str)
        values = values.astype(object).where(values.notna(), "missing").astype(str)
        for group in sorted(values.unique()):
            m = (values == group).to_numpy()
            row = {"column": col, "value": group, "rows": int(m.sum())}
            if task != "regression":
                row["positive rate"] = float(y[m].mean()) if scores.ndim == 1 else None
            for metric in metrics:
                row[metric] = score(metric, y[m], scores[m], task) if m.sum() > 1 else float("nan")
            rows.append(row)
    table = pd.DataFrame(rows)
    return table.to_dict(orient="records"), table
