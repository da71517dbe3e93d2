"""``%omgtrain`` / ``omg train``: baseline, train, tune, ensemble, evaluate, compare, card (command
layer)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ._registry import Context, arg, command

FEATURES = arg("--features", metavar="NAME@VERSION", default=None,
               help="feature set from the store (default: the project's latest)")


def _names(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{option} '{text}' names nothing. Give comma-separated names, e.g. "
                         f"{option} a,b.")
    return names


@command(
    "train", "baseline",
    arg("--data", metavar="PATH|DATAFRAME", default=None, help="a feature table instead of --features"),
    FEATURES,
    arg("--target", default=None, help="target column (default: the brief's target)"),
    arg("--cv", type=int, default=5, help="cross-validation folds"),
    arg("--models", default="dummy,linear,tree",
        help="comma-separated baselines: dummy, linear, tree, or scikit-learn model types such as "
             "random_forest"),
    help="dummy, linear and tree baselines, cross-validated, one leaderboard",
    description=(
        "Cross-validate a dummy (prior / mean), a linear and a tree model on the training split: one\n"
        "leaderboard with mean and std of the brief's metrics, fit and predict time. Each baseline is\n"
        "logged to MLflow (run 'baseline' holds the best one and its test predictions)."
    ),
    examples=["baseline", "baseline --features project_features@v1 --cv 3",
              "baseline --data features.parquet --target label"],
)
def baseline(ns: argparse.Namespace, ctx: Context):
    from ..modeling.baseline import run_baselines

    project = ctx.project()
    if ns.data is not None and ns.features is not None:
        raise UsageError("Pass either --data or --features, not both.")
    table = ctx.table(ns.data, project.root) if ns.data is not None else None
    return run_baselines(project, features=ns.features, table=table, table_name=ns.data or "table",
                         target=ns.target, cv=ns.cv, models=_names(ns.models, "--models"),
                         progress=ctx.progress)


@command(
    "train", "train",
    arg("--config", metavar="YAML", default="experiment.yaml",
        help="experiment file: model type, hyper-parameters, feature set, early stopping, seed"),
    arg("--name", default=None, help="run name in MLflow"),
    arg("--model", default=None,
        help="model type, overriding the file's (xgboost, lightgbm, mlp, random_forest, ...)"),
    FEATURES,
    arg("--no-register", action="store_true",
        help="do not add the model to the registry (default: registered as challenger)"),
    arg("--init", action="store_true",
        help="write a documented example experiment file at --config (it must not exist) and stop"),
    help="train the configured model and log it to MLflow",
    description=(
        "Train the model an experiment file describes (model type, hyper-parameters, feature set,\n"
        "early stopping on the validation split, seed) and log params, metrics, learning curve,\n"
        "test predictions and the model in a safe format (xgboost UBJ, LightGBM text, skops, torch\n"
        "state dict) to MLflow. `--init` writes a documented example file."
    ),
    examples=["train --config experiment.yaml", "train --init", "train --model mlp --name mlp-v1"],
    writes=lambda ns: not ns.init,
)
def train(ns: argparse.Namespace, ctx: Context):
    from ..io import input_path
    from ..modeling.train import train_model, write_experiment_template
    from ..results import Report

    project = ctx.project()
    if ns.init:
        path = write_experiment_template(ns.config)
        return Report(f"Wrote the example experiment file {path}", artifacts={"experiment": str(path)},
                      messages=[f"Edit it, then run `{ctx.name('train', 'train')} --config "
                                f"{ns.config}`."])
    overrides = {"name": ns.name, "model": ns.model, "features": ns.features}
    if ns.no_register:
        overrides["register"] = False
    config = ns.config
    if ns.model and ns.config == "experiment.yaml" and not input_path(ns.config, project.root).is_file():
        config = None  # --model alone trains that model with its defaults
    return train_model(project, config, overrides=overrides)


@command(
    "train", "tune",
    arg("--model", default="xgboost", help="model type(s) to tune, comma-separated: xgboost, "
        "lightgbm, mlp, or a scikit-learn estimator name; each gets its own study and run "
        "(tuned-MODEL)"),
    arg("--trials", type=int, default=None,
        help="total finished trials of the study (default: omg.yaml tuning.n_trials or 50); a "
             "resumed study runs only the missing ones"),
    arg("--timeout", type=float, default=None,
        help="no new trial starts after this many seconds; with several models, the budget of the "
             "whole call, shared evenly (time one study leaves goes to the next)"),
    arg("--n-jobs", type=int, default=1, help="parallel trials in this process"),
    arg("--storage", metavar="URL", default=None,
        help="Optuna storage URL (default: the project's SQLite)"),
    arg("--study", default=None, help="study name (default: tuning.study of omg.yaml, else PROJECT-MODEL-FEATURESET-vN)"),
    arg("--workers", type=int, default=1, help="local worker processes sharing the study"),
    FEATURES,
    arg("--space", metavar="YAML", default=None,
        help="search space file overriding the defaults: PARAM: {low, high, log} | {choices: [...]}"),
    arg("--pruner", choices=["median", "hyperband", "none"], default="median",
        help="pruning of unpromising trials on intermediate validation scores"),
    arg("--name", default=None, help="MLflow run name of the refitted best trial "
        "(default: tuned-MODEL)"),
    arg("--no-register", action="store_true", help="do not register the best model as challenger"),
    help="Optuna study with pruning, resumable, best trial logged to MLflow",
    description=(
        "Tune hyper-parameters with Optuna: TPE sampling, a median pruner on intermediate validation\n"
        "scores (XGBoost/LightGBM rounds, MLP epochs), storage in the project's optuna.db or any\n"
        "Optuna storage URL; a study resumes where it stopped. The best trial is refitted, logged to\n"
        "MLflow with the optimization history and parameter importances, and registered.\n"
        "Several model types (--model xgboost,lightgbm) are tuned one after the other, each in its\n"
        "own study and run; the table compares them and --out binds the best on validation."
    ),
    examples=["tune --model xgboost --trials 100", "tune --model mlp --trials 30 --timeout 600",
              "tune --model xgboost,lightgbm --trials 200 --timeout 600",
              "tune --model xgboost --trials 200 --storage postgresql://user@db/optuna --workers 4"],
)
def tune(ns: argparse.Namespace, ctx: Context):
    from ..modeling.tune import tune_models

    models = [m.strip() for m in ns.model.split(",") if m.strip()]
    return tune_models(ctx.project(), models, trials=ns.trials, timeout=ns.timeout, n_jobs=ns.n_jobs,
                      workers=ns.workers, storage=ns.storage, study_name=ns.study,
                      features=ns.features, space_file=ns.space, pruner=ns.pruner, name=ns.name,
                      register=not ns.no_register, progress=ctx.progress)


@command(
    "train", "evaluate",
    arg("--model", default=None,
        help="model to evaluate: a run name, models:/NAME@alias or a bundle folder (default: the "
             "champion, else the latest tuned/trained run)"),
    arg("--comprehensive", action="store_true",
        help="metrics with bootstrap CIs, curves, calibration, slices"),
    arg("--fairness", action="store_true", help="fairlearn group metrics on the sensitive features"),
    arg("--robustness", action="store_true", help="degradation under noise, missing values, shift"),
    arg("--slices", default=None, help="comma-separated columns for per-slice metrics"),
    arg("--bootstrap", type=int, default=1000, help="bootstrap resamples for confidence intervals"),
    FEATURES,
    help="test-split evaluation with CIs, fairness, robustness and SHAP; feeds the model card",
    examples=["evaluate --comprehensive --fairness --robustness",
              "evaluate --model tuned-xgboost --slices sex,age"],
)
def evaluate(ns: argparse.Namespace, ctx: Context):
    from ..modeling.evaluate import evaluate_model

    return evaluate_model(ctx.project(), ns.model, features=ns.features,
                          comprehensive=ns.comprehensive, fairness=ns.fairness,
                          robustness=ns.robustness, slices=_names(ns.slices, "--slices"),
                          n_bootstrap=ns.bootstrap, progress=ctx.progress)


@command(
    "train", "compare",
    arg("--experiments", default=None,
        help="comma-separated run names, e.g. baseline,v1,v2 (default: the newest run of every "
             "baseline, train, tune and ensemble name on the newest run's feature set)"),
    arg("--alpha", type=float, default=0.05, help="significance level of the paired tests"),
    arg("--bootstrap", type=int, default=1000, help="resamples of the paired bootstrap"),
    arg("--no-promote", action="store_true",
        help="do not move the registry alias champion to the best run"),
    arg("--adr", metavar="PATH", default=None,
        help="where to write the decision (default: decisions/adr-001-model-choice.md)"),
    help="side-by-side runs from MLflow with a significance test on the test set",
    description=(
        "Put runs side by side (metrics, params, feature set, size, latency) and test the best one\n"
        "against each other on the same test rows: McNemar for classifiers, paired bootstrap\n"
        "otherwise. The best run becomes the registry's champion; the decision is written as an ADR."
    ),
    examples=["compare --experiments baseline,v1,v2", "compare"],
)
def compare(ns: argparse.Namespace, ctx: Context):
    from ..modeling.compare import compare_runs

    if ns.bootstrap < 1:
        raise UsageError(f"--bootstrap must be at least 1, got {ns.bootstrap}.")
    return compare_runs(ctx.project(), _names(ns.experiments, "--experiments"), alpha=ns.alpha,
                        n_bootstrap=ns.bootstrap, promote=not ns.no_promote, adr=ns.adr)


@command(
    "train", "ensemble",
    arg("--experiments", default=None,
        help="comma-separated train/tune run names to blend (default: the newest run of every "
             "trained or tuned name on the newest run's feature set)"),
    arg("--size", type=int, default=25,
        help="greedy selection steps; a member's weight is its share of them"),
    arg("--name", default=None, help="MLflow run name of the ensemble (default: ensemble)"),
    arg("--no-register", action="store_true",
        help="do not register the ensemble as challenger"),
    help="greedy ensemble selection over trained runs, one model that is served like any other",
    description=(
        "Blend trained and tuned runs of one feature set by greedy ensemble selection (Caruana et\n"
        "al. 2004, as AutoGluon does): --size times, add the run (with replacement) that makes the\n"
        "average of the chosen runs' validation scores best on the brief's primary metric. The\n"
        "weights are the shares of the steps. The blend is one model (its members in their own safe\n"
        "formats inside its bundle), logged, registered, compared, evaluated and packaged like any\n"
        "other. When one run alone is chosen, nothing is logged: tried, not used."
    ),
    examples=["ensemble --experiments v1,tuned-xgboost,tuned-lightgbm", "ensemble --size 50"],
)
def ensemble(ns: argparse.Namespace, ctx: Context):
    from ..modeling.ensemble import build_ensemble

    return build_ensemble(ctx.project(), _names(ns.experiments, "--experiments"), size=ns.size,
                          name=ns.name, register=not ns.no_register)


@command(
    "train", "card",
    arg("--output", metavar="PATH", default=None, help="where to write it (default: docs/model_card.md)"),
    help="write docs/model_card.md from the brief, the data and the evaluation",
    examples=["card"],
)
def card(ns: argparse.Namespace, ctx: Context):
    from ..io import project_output
    from ..modeling.model_card import write_model_card

    project = ctx.project()
    return write_model_card(project, project_output(project.root, ns.output, "--output"))
