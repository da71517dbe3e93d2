"""``%omgtrain`` / ``omg train``: baseline, train, tune, evaluate, compare (command layer)."""

from __future__ import annotations

from ._registry import arg, planned

P3 = "issue #5 (Phase 3: model development)"
FEATURES = arg("--features", metavar="NAME@VERSION", default=None,
               help="feature set from the store (default: the project's latest)")

planned(
    "train", "baseline",
    arg("--data", metavar="PATH|DATAFRAME", default=None, help="a feature table instead of --features"),
    FEATURES,
    arg("--target", default=None, help="target column (default: the brief's target)"),
    arg("--cv", type=int, default=5, help="cross-validation folds"),
    help="dummy, linear and tree baselines, cross-validated, one leaderboard",
    examples=["baseline --features project_features@v1"],
    issue=P3,
)

planned(
    "train", "train",
    arg("--config", metavar="YAML", default="experiment.yaml",
        help="experiment file: model type, hyper-parameters, feature set, early stopping, seed"),
    arg("--name", default=None, help="run name in MLflow"),
    help="train the configured model and log it to MLflow",
    examples=["train --config experiment.yaml"],
    issue=P3,
)

planned(
    "train", "tune",
    arg("--model", default="xgboost", help="model type to tune: xgboost, lightgbm, mlp, or a "
        "scikit-learn estimator name"),
    arg("--trials", type=int, default=50, help="number of Optuna trials"),
    arg("--timeout", type=float, default=None, help="stop after this many seconds"),
    arg("--n-jobs", type=int, default=1, help="parallel trials in this process"),
    arg("--storage", metavar="URL", default=None,
        help="Optuna storage URL (default: the project's SQLite)"),
    arg("--study", default=None, help="study name (default: PROJECT-MODEL)"),
    arg("--workers", type=int, default=1, help="local worker processes sharing the study"),
    FEATURES,
    help="Optuna study with pruning, resumable, best trial logged to MLflow",
    examples=["tune --model xgboost --trials 100"],
    issue=P3,
)

planned(
    "train", "evaluate",
    arg("--model", default=None, help="model to evaluate (default: the latest tuned/trained run)"),
    arg("--comprehensive", action="store_true",
        help="metrics with bootstrap CIs, curves, calibration, slices"),
    arg("--fairness", action="store_true", help="fairlearn group metrics on the sensitive features"),
    arg("--robustness", action="store_true", help="degradation under noise, missing values, shift"),
    arg("--slices", default=None, help="comma-separated columns for per-slice metrics"),
    FEATURES,
    help="test-split evaluation with CIs, fairness, robustness and SHAP; feeds the model card",
    examples=["evaluate --comprehensive --fairness --robustness"],
    issue=P3,
)

planned(
    "train", "compare",
    arg("--experiments", default=None, help="comma-separated run names, e.g. baseline,v1,v2"),
    help="side-by-side runs from MLflow with a significance test on the test set",
    examples=["compare --experiments baseline,v1,v2"],
    issue=P3,
)
