"""Tuning: ``tune --trials 100`` (TPE + median pruning) against plain Optuna without pruning.

Data: the bundled Adult census data, a seeded 30 % sample one-hot encoded into a feature set (about
10k training rows x 100 columns), split 70/15/15. Both sides tune XGBoost on the same space (the
kit's default: 1000 rounds at most, learning rate, depth, child weight, subsampling, L1/L2) with the
same early stopping (50 rounds on the validation AUC), the same seed and one thread per model.

- kit: ``tune_model(project, "xgboost", trials=100)``, the whole verb as a user runs it: SQLite study
  storage, pruning, the refit of the best trial, MLflow logging and plots included;
- peer: a plain Optuna study in memory, no pruner, the textbook objective.

Target: the kit takes <= 0.6x the peer's wall time at a best validation AUC within 0.002.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

TRIALS = int(os.environ.get("BENCH_TUNE_TRIALS", "100"))
SAMPLE = float(os.environ.get("BENCH_TUNE_SAMPLE", "0.3"))
SEED = 42
EARLY_STOP = 50

OMG_YAML = """\
project: {name: bench}
brief:
  objective: {type: classification, target: income, positive_label: ">50K", primary_metric: roc_auc,
              threshold: null, secondary_metrics: [accuracy]}
  sensitive_features: [sex, race]
features: {name: adult}
seed: 42
"""


def make_adult_project(root: Path, sample: float = SAMPLE) -> Path:
    """A project whose store holds ``adult@v1``: one-hot Adult features, a 70/15/15 split."""
    import numpy as np
    import pandas as pd

    from omgmagics.datasets import load_demo
    from omgmagics.features.store import write_feature_set

    root.mkdir(parents=True, exist_ok=True)
    (root / "omg.yaml").write_text(OMG_YAML)
    df = load_demo().sample(frac=sample, random_state=SEED).reset_index(drop=True)
    df["row_id"] = np.arange(len(df))
    y = df.pop("income")
    feats = pd.get_dummies(df.drop(columns=["row_id"]), dtype=float)
    feats.columns = [c.replace(" ", "_") for c in feats.columns]
    feats["row_id"], feats["income"] = df["row_id"], y
    rng = np.random.default_rng(SEED)
    part = rng.choice(3, size=len(feats), p=[0.7, 0.15, 0.15])
    splits = {name: feats[part == i].reset_index(drop=True)
              for i, name in enumerate(("train", "val", "test"))}
    processed = root / "data" / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    df[part == 2].to_parquet(processed / "test.parquet", index=False)
    write_feature_set(root / "features", "adult", "v1", splits, "income",
                      extra={"id_column": "row_id"})
    return root


def _plain_optuna(data, trials: int) -> tuple[float, float]:
    """The peer: what a data scientist writes with Optuna alone. Returns (seconds, best AUC)."""
    import optuna
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    Xtr, ytr, Xva, yva = data.X["train"], data.y["train"], data.X["val"], data.y["val"]

    def objective(trial):
        params = {
            "n_estimators": 1000,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
        }
        model = xgb.XGBClassifier(**params, tree_method="hist", eval_metric="auc", n_jobs=1,
                                  early_stopping_rounds=EARLY_STOP, random_state=SEED)
        model.fit(Xtr, ytr, eval_set=[(Xva, yva)], verbose=False)
        return roc_auc_score(yva, model.predict_proba(Xva)[:, 1])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED),
                                pruner=optuna.pruners.NopPruner())
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - t0, float(study.best_value)


def run() -> dict:
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.tune import tune_model
    from omgmagics.project import Project

    tmp = Path(tempfile.mkdtemp(prefix="bench_tune_"))
    try:
        project = Project.at(make_adult_project(tmp / "bench"))
        data = load_model_data(project)
        load_start = os.getloadavg()[0]
        peer_s, peer_best = _plain_optuna(data, TRIALS)
        t0 = time.perf_counter()
        report = tune_model(project, "xgboost", trials=TRIALS)
        kit_s = time.perf_counter() - t0
        kit_best = float(report.data["best_value"])
        ratio = kit_s / peer_s
        gap = peer_best - kit_best
        return {
            "title": f"tune --trials {TRIALS} (pruning) vs plain Optuna",
            "figures": {"wall_s": kit_s, "best_val_auc": kit_best,
                        "trials_pruned": report.summary["pruned"],
                        "trials_completed": report.summary["completed"],
                        "train_rows": int(len(data.X["train"])),
                        "features": len(data.feature_names)},
            "peer": {"name": "Optuna TPE, in-memory, no pruning", "wall_s": peer_s,
                     "best_val_auc": peer_best},
            "ratio": ratio,
            "target": "<= 0.6x the peer's time at a best AUC within 0.002",
            "met": bool(ratio <= 0.6 and gap <= 0.002),
            "notes": (f"same space, seed, early stopping ({EARLY_STOP} rounds), one thread per model; "
                      f"the kit's time includes SQLite storage, the refit of the best trial and MLflow "
                      f"logging; best AUC gap (peer - kit) {gap:+.4f}; load average at start "
                      f"{load_start:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores)"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
