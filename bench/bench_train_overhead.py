"""Per-call overhead of ``%omgtrain train`` against calling XGBoost directly.

Data: the whole bundled Adult census data one-hot encoded into a feature set (about 34k training rows x
105 columns), split 70/15/15. Model: the phase 3 notebook's experiment (XGBoost, 600 rounds at most,
learning rate 0.05, depth 5, early stopping after 30 rounds on the validation AUC).

- kit: ``train_model(project, "experiment.yaml")`` in a warm process (imports and the MLflow store
  already there, as in a notebook after the first cell): reading the feature set, fitting, scoring the
  validation and test splits, latency, plots, logging the run and the model to MLflow, registering it;
- peer: ``XGBClassifier(...).fit(X_train, y_train, eval_set=[(X_val, y_val)])`` on arrays in memory.

Median of REPEATS alternating calls. Target: overhead <= 5 % of the peer's time, or <= 50 ms.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPEATS = int(os.environ.get("BENCH_TRAIN_REPEATS", "3"))
SAMPLE = float(os.environ.get("BENCH_TRAIN_SAMPLE", "1.0"))
PARAMS = {"n_estimators": 600, "learning_rate": 0.05, "max_depth": 5, "subsample": 0.9,
          "colsample_bytree": 0.8}
EARLY_STOP = 30
EXPERIMENT = f"""\
model: xgboost
params: {PARAMS}
early_stopping_rounds: {EARLY_STOP}
seed: 42
name: v1
register: true
"""


def _peer(data) -> float:
    import xgboost as xgb

    from omgmagics.modeling.models import SMALL_DATA_CELLS

    # The same threads as the kit picks for this size.
    threads = 1 if data.X["train"].size < SMALL_DATA_CELLS else None
    t0 = time.perf_counter()
    model = xgb.XGBClassifier(**PARAMS, tree_method="hist", eval_metric="auc", random_state=42,
                              early_stopping_rounds=EARLY_STOP, n_jobs=threads)
    model.fit(data.X["train"], data.y["train"], eval_set=[(data.X["val"], data.y["val"])],
              verbose=False)
    return time.perf_counter() - t0


def run() -> dict:
    from bench_tune import make_adult_project

    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.train import train_model
    from omgmagics.project import Project

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        root = make_adult_project(tmp / "bench", sample=SAMPLE)
        (root / "experiment.yaml").write_text(EXPERIMENT)
        project = Project.at(root)
        data = load_model_data(project)
        train_model(project, root / "experiment.yaml")  # warm-up: imports, store, caches
        _peer(data)
        kit, peer = [], []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            train_model(project, root / "experiment.yaml")
            kit.append(time.perf_counter() - t0)
            peer.append(_peer(data))
        k, p = statistics.median(kit), statistics.median(peer)
        overhead = k - p
        return {
            "title": "%omgtrain train per-call overhead vs xgboost fit",
            "figures": {"train_call_s": k, "overhead_s": overhead, "overhead_pct": 100 * overhead / p,
                        "train_rows": int(len(data.X["train"])), "features": len(data.feature_names)},
            "peer": {"name": "XGBClassifier.fit on arrays", "fit_s": p},
            "ratio": k / p,
            "target": "overhead <= 5% of the fit or <= 50 ms",
            "met": bool(overhead <= 0.05 * p or overhead <= 0.05),
            "notes": (f"median of {REPEATS} alternating warm calls; the kit reads the feature set, "
                      "scores val/test, measures latency, draws 2 plots, logs the run and the model "
                      f"to MLflow (SQLite) and registers it; load average {os.getloadavg()[0]:.1f} "
                      "(2 cores)"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
