"""Figures of the phase reports: each figure-producing verb returns its named figures, each figure has a
title and labelled axes (with units where there are any), one style, and the evaluation page is
self-contained. Real verbs on tiny seeded data; the drawing functions are then checked on the very
data those verbs produced, as matplotlib ``Figure`` objects before rendering."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from omgmagics import plotstyle
from omgmagics.project import Project
from tests.helpers.modeling import make_project, write_experiment

PNG = b"\x89PNG"


def check_figure(fig, *, units: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Every visible axes has a title; every axes that shows data has both axis labels.

    `units` maps a label's start to the unit it must carry (``{"latency": "ms"}``).
    """
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    described = []
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        title, x, y = ax.get_title(), ax.get_xlabel(), ax.get_ylabel()
        assert title.strip(), f"an axes without a title in {fig}"
        if ax.has_data():
            assert x.strip() and y.strip(), f"axes '{title}' lacks an axis label: x={x!r} y={y!r}"
        for start, unit in (units or {}).items():
            for label in (x, y):
                if label.startswith(start):
                    assert f"({unit}" in label, f"'{label}' should carry its unit {unit}"
        described.append({"title": title, "xlabel": x, "ylabel": y})
    assert described, "a figure without any axes"
    return described


def titles(fig) -> list[str]:
    return [d["title"] for d in plotstyle.describe(fig)]


# --- the style module ------------------------------------------------------------------------------

def test_style_module_is_light_and_figures_need_no_pyplot():
    import subprocess

    code = ("import sys; import omgmagics.plotstyle as p; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported at module top'; "
            "fig, ax = p.new_figure(4, 3); ax.plot([0, 1], [1, 2]); "
            "p.label_axes(ax, 'T', 'batch size', 'latency', x_unit='rows', y_unit='ms'); "
            "assert 'matplotlib.pyplot' not in sys.modules; "
            "assert p.to_png(fig)[:4] == b'\\x89PNG'; print(p.describe(fig))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("[{'title': 'T', 'xlabel': 'batch size (rows)', "
                                  "'ylabel': 'latency (ms)'}]")


def test_new_figure_applies_the_style_locally():
    import matplotlib as mpl

    before = dict(mpl.rcParams)
    fig, axes = plotstyle.new_figure(6, 3, 1, 2)
    assert dict(mpl.rcParams) == before  # the user's settings are untouched
    assert fig.get_size_inches().tolist() == [6, 3]
    a = axes[0]
    assert not a.spines["top"].get_visible() and a.xaxis._major_tick_kw["gridOn"]
    line, = a.plot([0, 1], [0, 1])
    assert line.get_color() == plotstyle.PALETTE[0]
    plotstyle.label_axes(a, "Title", "x", "y", y_unit="ms")
    assert a.get_ylabel() == "y (ms)" and a.title.get_fontsize() == plotstyle.TITLE_SIZE
    plotstyle.empty(axes[1], "nothing")
    assert not axes[1].has_data()


# --- phase 1: audit overview ------------------------------------------------------------------------

def test_audit_overview(tmp_path):
    from omgmagics.discovery.audit import audit_data
    from omgmagics.discovery.checks import Item
    from omgmagics.discovery.plots import audit_overview
    from tests.test_discovery import SOURCE, make_brief, make_frame

    df = make_frame(600)
    df.loc[df.index[:90], "spend"] = np.nan  # 15% missing: shown against the 5% line
    report = audit_data(df, make_brief(), html_path=None, json_path=tmp_path / "a.json", source=SOURCE)
    assert list(report.figures) == ["audit overview"] and report.figures["audit overview"][:4] == PNG
    doc = json.loads((tmp_path / "a.json").read_text())
    fig = audit_overview([Item(**i) for i in doc["items"]], pd.DataFrame(doc["columns"]), "churned",
                         doc["target"], pd.DataFrame(doc["single_feature_scores"]))
    check_figure(fig, units={"missing": "% of rows"})
    assert titles(fig) == [f"Audit checklist ({len(doc['items'])} checks)",
                           "Target 'churned': class balance", "Missing values per column",
                           "Predictive power of single features (top 15)"]
    assert fig._suptitle.get_text() == "Data audit overview"
    # a regression target and a table without missing values still give four titled panels
    fig = audit_overview([Item(**i) for i in doc["items"]], pd.DataFrame(doc["columns"]).assign(missing=0.0),
                         "spend", {}, None)
    assert len(check_figure(fig)) == 4


def test_feasibility_prototype_vs_dummy(tmp_path):
    from omgmagics.discovery.feasibility import assess_feasibility
    from omgmagics.discovery.plots import feasibility_scores
    from tests.test_discovery import SOURCE, make_brief, make_frame

    report = assess_feasibility(make_frame(400), make_brief(), json_path=tmp_path / "f.json",
                                source=SOURCE, cv=3)
    assert list(report.figures) == ["prototype vs dummy"]
    proto = json.loads((tmp_path / "f.json").read_text())["prototype"]
    fig = feasibility_scores([proto["dummy"], proto["model"]], "roc_auc", 0.7, proto["cv"])
    assert check_figure(fig) == [{"title": f"Feasibility prototype vs dummy baseline\n{proto['cv']}",
                                  "xlabel": "cross-validated roc_auc", "ylabel": "model"}]
    assert sorted(fig.axes[0].get_legend_handles_labels()[1]) == ["brief threshold 0.7",
                                                                  "mean over folds", "one fold"]


# --- phase 2: class balance, rebalancing, feature scores ----------------------------------------------

@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    return pd.DataFrame({"x": rng.normal(size=n), "w": rng.normal(size=n),
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "y": np.where(rng.random(n) < 0.2, "yes", "no")})


def test_split_class_balance_and_augment(table):
    from omgmagics.dataprep import plots
    from omgmagics.dataprep.augment import augment_frame
    from omgmagics.dataprep.split import class_balance, split_frame, split_report

    splits = split_frame(table, "y", (0.7, 0.15, 0.15), seed=1)
    report = split_report(splits, "y", (0.7, 0.15, 0.15), "stratified", 1)
    assert list(report.figures) == ["class balance"] and report.figures["class balance"][:4] == PNG
    fig = plots.class_balance(report.tables["class balance"], "y")
    assert check_figure(fig) == [{"title": "Class balance of 'y' per split",
                                  "xlabel": "share of the split's rows", "ylabel": "split (rows)"}]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["train (420)", "val (90)",
                                                                      "test (90)"]
    reg = {k: v.assign(y=np.arange(len(v), dtype=float)) for k, v in splits.items()}
    fig = plots.class_balance(class_balance(reg, "y", "regression"), "y", "regression")
    assert check_figure(fig)[0]["title"] == "Target 'y' per split"

    aug = augment_frame(splits["train"], "y", "smote", next_id=5000)
    assert list(aug.figures) == ["class counts"]
    fig = plots.class_counts_change(aug.tables["class counts"], "SMOTENC")
    assert check_figure(fig) == [{"title": "Training split rebalanced with SMOTENC", "xlabel": "class",
                                  "ylabel": "rows"}]


def test_labeling_functions(table):
    from omgmagics.dataprep import plots
    from omgmagics.dataprep.label import LabelingFunction, label_frame
    from omgmagics.dataprep.labeling import ABSTAIN

    lfs = [LabelingFunction("high_x", lambda df: np.where(df["x"] > 1, "yes", ABSTAIN)),
           LabelingFunction("low_x", lambda df: np.where(df["x"] < 0, "no", ABSTAIN))]
    report = label_frame(table, lfs, "y", hide_share=0.2, seed=1)
    assert list(report.figures) == ["labeling functions"]
    fig = plots.labeling_functions(report.tables["labeling functions"])
    assert check_figure(fig, units={"share of rows": "0-1"}) == [
        {"title": "Coverage, overlap, conflict", "xlabel": "share of rows (0-1)",
         "ylabel": "labeling function"},
        {"title": "Accuracy", "xlabel": "accuracy on known labels (0-1)", "ylabel": "labeling function"}]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["high_x (→ yes)", "low_x (→ no)"]


def test_feature_selection_scores(table):
    from omgmagics.features.select import _plot, select_features

    X = pd.get_dummies(table.drop(columns="y"), dtype=float)
    report = select_features(X, table["y"], "mutual_info", k=3, seed=0)
    assert list(report.figures) == ["scores"]
    fig = _plot(report.tables["ranking"], "mutual_info")
    check_figure(fig, units={"mutual_info score": "nats"})
    assert titles(fig) == ["Feature scores (mutual_info; blue = selected)"]


# --- phase 3: train, tune, evaluate ------------------------------------------------------------------

EXPERIMENT = """\
model: xgboost
params: {n_estimators: 30, max_depth: 3, learning_rate: 0.3}
early_stopping_rounds: 5
seed: 7
name: v1
"""


@pytest.fixture(scope="module")
def phase3(tmp_path_factory):
    from omgmagics.modeling.baseline import run_baselines
    from omgmagics.modeling.compare import compare_runs
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.train import train_model
    from omgmagics.modeling.tune import tune_model

    root = make_project(tmp_path_factory.mktemp("plots") / "demo", n=400)
    project = Project.at(root)
    exp = write_experiment(root / "experiment.yaml", EXPERIMENT)
    out = {"root": root, "project": project, "baseline": run_baselines(project, cv=3),
           "train": train_model(project, exp)}
    out["tune"] = tune_model(project, "xgboost", trials=3)
    out["compare"] = compare_runs(project, ["baseline", "v1", "tuned-xgboost"], n_bootstrap=50)
    out["evaluate"] = evaluate_model(project, "v1", comprehensive=True, fairness=True,
                                     robustness=True, n_bootstrap=20, shap_rows=40)
    return out


def test_baseline_and_comparison_figures(phase3):
    board = phase3["baseline"].figures
    assert list(board) == ["leaderboard"]
    fig = board.raw("leaderboard")()
    assert check_figure(fig) == [{"title": "Baselines: roc_auc (3-fold cross-validation, mean ± std)",
                                  "xlabel": "cross-validated roc_auc", "ylabel": "baseline"}]
    comp = phase3["compare"]
    assert list(comp.figures) == ["comparison"]
    fig = comp.figures.raw("comparison")()
    panels = check_figure(fig, units={"latency": "ms", "model size": "KB"})
    assert [p["title"] for p in panels] == ["Test metric", "Latency", "Size"]
    assert fig._suptitle.get_text() == f"Compared runs (test split); best: {comp.data['best']['run']}"
    assert phase3["baseline"]._repr_html_().count("data:image/png;base64,") == 1


def test_train_figures_are_drawn_lazily_and_labelled(phase3):
    figures = phase3["train"].figures
    assert set(figures) == {"learning_curve", "feature_importance"}
    curve = figures.raw("learning_curve")()  # the Figure itself, before rendering
    assert check_figure(curve) == [{"title": "Learning curve (validation split)",
                                    "xlabel": "boosting round", "ylabel": "validation auc"}]
    imp = check_figure(figures.raw("feature_importance")())
    assert imp[0]["title"] == "Feature importance (xgboost)" and imp[0]["ylabel"] == "feature"


def test_tune_figures(phase3):
    from omgmagics.modeling import plots

    report = phase3["tune"]
    assert {"optimization_history", "param_importances", "learning_curve",
            "feature_importance"} <= set(report.figures)
    assert report.figures["optimization_history"][:4] == PNG
    fig = plots.optimization_history([0.8, None, 0.85], [0.8, 0.8, 0.85], "roc_auc")
    assert check_figure(fig) == [{"title": "Optimization history (3 trials)", "xlabel": "trial number",
                                  "ylabel": "validation roc_auc"}]
    fig = plots.barh(["max_depth", "learning_rate"], [0.7, 0.3], "Hyper-parameter importance (fANOVA)",
                     "importance")
    assert check_figure(fig)[0]["ylabel"] == "hyper-parameter"


def test_evaluate_figures(phase3):
    from omgmagics.modeling import plots
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.models import load_model

    report = phase3["evaluate"]
    assert {"confusion_matrix", "roc_pr_calibration", "shap_importance", "shap_summary",
            "fairness_sex", "fairness_race", "robustness"} <= set(report.figures)
    assert all(png[:4] == PNG for png in report.figures.values())
    project = phase3["project"]
    data = load_model_data(project)
    model = load_model(project, "v1")
    y = data.y["test"]
    scores = model.predict_scores(data.X["test"][:, [data.feature_names.index(f)
                                                     for f in model.feature_names]])
    fig = plots.curves(y, scores)
    assert [d["title"] for d in check_figure(fig)] == ["ROC", "Precision-recall", "Calibration"]
    assert fig._suptitle.get_text().startswith("Test split: 80 rows")
    check_figure(plots.confusion(np.array(report.data["confusion_matrix"]["matrix"]),
                                 report.data["confusion_matrix"]["labels"]))
    sex = report.tables["fairness by sex"]
    fig = plots.group_bars(sex, "sex", ["selection_rate", "true_positive_rate", "false_positive_rate"],
                           "Group rates by sex")
    assert check_figure(fig) == [{"title": "Group rates by sex", "xlabel": "sex",
                                  "ylabel": "rate (share of group)"}]
    glob = report.data["shap"]["global"]
    fig = plots.barh(list(glob), list(glob.values()), "Global importance: mean |SHAP|",
                     "mean |SHAP value|")
    check_figure(fig)
    from omgmagics.modeling.explain import shap_values

    data.X["test"] = data.X["test"][:, [data.feature_names.index(f) for f in model.feature_names]]
    sv = shap_values(model, data, rows=30, seed=0)
    fig = plots.shap_beeswarm(sv["values"], sv["X"], list(model.feature_names))
    assert check_figure(fig) == [{"title": "SHAP summary: 30 test rows",
                                  "xlabel": "SHAP value (impact on the model output)",
                                  "ylabel": "feature"}]
    assert [ax.get_label() for ax in fig.axes][1] == "<colorbar>"
    curves = {k: [tuple(p) for p in v] for k, v in report.data["robustness"]["curves"].items()}
    fig = plots.degradation(curves, "roc_auc")
    assert [d["title"] for d in check_figure(fig)] == ["Gaussian noise", "Missing values",
                                                       "Categories redrawn", "Covariate shift"]


def test_evaluation_page_is_self_contained(phase3):
    root = phase3["root"]
    report = phase3["evaluate"]
    page = root / "reports" / "evaluation.html"
    assert report.artifacts["report"] == str(page)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<title>Evaluation of xgboost" in text
    assert text.count('src="data:image/png;base64,') == len(report.figures)
    assert not re.search(r"https?://", text), "the evaluation page references the network"
    assert "<script" not in text and "test metrics (95% bootstrap CI)" in text
    assert (root / "reports" / "evaluation.json").is_file()


def test_review_index_links_the_evaluation_page(phase3):
    from omgmagics.review import build_index

    build_index(phase3["project"])
    index = (phase3["root"] / "reports" / "index.html").read_text()
    assert '<a href="evaluation.html">evaluation</a>' in index


# --- phase 4: latency distributions ------------------------------------------------------------------

def test_profile_latency_distribution(phase3):
    from omgmagics.optim import measure
    from omgmagics.optim.profile import latency_figure, profile_model

    report = profile_model(phase3["project"], "v1", "1,32", repeats=8)
    assert list(report.figures) == ["latency"] and report.figures["latency"][:4] == PNG
    rows = report.data["rows"]
    samples: dict[int, list[float]] = {}
    from omgmagics.modeling.models import load_model

    model = load_model(phase3["project"], "v1")
    X = np.zeros((4, len(model.feature_names)))
    timed = measure.time_batches(model, X, [1, 32], repeats=6, samples=samples)
    assert sorted(samples) == [1, 32] and len(samples[1]) == timed[0]["repeats"]
    fig = latency_figure(rows, samples, "xgboost (native)")
    assert check_figure(fig, units={"latency": "ms", "batch size": "rows", "throughput": "rows/s"}) == [
        {"title": "Latency per call (whiskers p1-p99)", "xlabel": "batch size (rows)",
         "ylabel": "latency (ms, log scale)"},
        {"title": "Throughput (median call)", "xlabel": "batch size (rows)",
         "ylabel": "throughput (rows/s, log scale)"}]


def test_staging_latency_distribution():
    from omgmagics.deploy.serving import latency_figure

    rng = np.random.default_rng(0)
    replay, load = rng.lognormal(1.0, 0.4, 200), rng.lognormal(0.8, 0.3, 300)
    result = {"replay": {"rows": 200, "p50_ms": float(np.median(replay)),
                         "p99_ms": float(np.percentile(replay, 99))},
              "load": {"rate": 50.0, "p50_ms": float(np.median(load)), "p99_ms": float(np.percentile(load, 99))},
              "thresholds": {"latency_p99_ms": 50},
              "latencies_ms": {"replay": replay.tolist(), "load": load.tolist()}}
    fig = latency_figure(result)
    assert check_figure(fig, units={"latency": "ms"}) == [
        {"title": "Staging latency per request (client side)", "xlabel": "latency (ms, log scale)",
         "ylabel": "requests"}]
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[-1] == "p99 limit 50 ms" and labels[0].startswith("replay (200 rows, concurrent)")
    del result["latencies_ms"]  # a result file written before the latencies were kept
    check_figure(latency_figure(result))


# --- phase 5: monitoring and drift -------------------------------------------------------------------

def test_monitoring_and_drift_figures(tmp_path):
    from omgmagics.ops import plots
    from omgmagics.ops.drift_report import run_drift
    from omgmagics.ops.monitor import run_monitor
    from tests.helpers.ops import small_project, write_log, write_reference

    project = Project.at(small_project(tmp_path))
    write_reference(project.root)
    write_log(project.root, days=5, per_day=120, shift_from=3, shift=1.5)
    mon = run_monitor(project)
    assert list(mon.figures) == ["dashboard"]
    fig = plots.monitor_series(mon.value, {"error_rate": 0.01, "latency_p99_ms": 50}, "roc_auc")
    panels = check_figure(fig, units={"latency": "ms"})
    assert [p["title"] for p in panels] == ["Requests per window", "Latency", "Error rate", "Scores",
                                            "Max missing share", "Live roc_auc (labelled requests)"]
    assert {p["xlabel"] for p in panels} == {"window start (UTC)"}

    drift = run_drift(project, window="1d", since="2026-01-01")
    assert list(drift.figures) == ["drifted share per window", "reference vs current distributions"]
    page = drift.artifacts["report"]
    assert open(page).read().count("<img") == 2
    results = drift.value
    windows = pd.DataFrame([{"window start": r.window.start, "drifted share": r.share,
                             "dataset drift": "fail" if r.dataset_drift else "pass"} for r in results])
    fig = plots.drift_over_time(windows)
    assert check_figure(fig) == [{"title": "Share of features drifted per window",
                                  "xlabel": "window start (UTC)", "ylabel": "share of features drifted"}]
    last = results[-1]
    fig = plots.drift_histograms(last.features + ([last.prediction] if last.prediction else []))
    panels = check_figure(fig)
    assert panels[0]["title"].startswith("x: PSI ") and panels[0]["title"].endswith("(DRIFT)")
    assert {p["ylabel"] for p in panels} == {"share of rows"}
