"""Per-call overhead of ``%omgtrain train`` against calling XGBoost directly.

Data: the whole bundled Adult census data one-hot encoded into a feature set (about 34k training rows x
105 columns), split 70/15/15. Model: the phase 3 notebook's experiment (XGBoost, 600 rounds at most,
learning rate 0.05, depth 5, early stopping after 30 rounds on the validation AUC).

- kit: ``train_model(project, "experiment.yaml")`` in a warm process (imports and the MLflow store
  already there, as in a notebook after the first cell): reading the feature set, fitting, scoring the
  validation and test splits, latency, logging the run, model, learning curve and importances to
  MLflow, registering it (plots are drawn only when the report is shown in a notebook);
- peer: what calling XGBoost directly takes: read the train and val parquet files of the same feature
  set, then ``XGBClassifier(...).fit(X_train, y_train, eval_set=[(X_val, y_val)])``.

Both fit with one thread (the experiment sets ``n_jobs: 1``). Median of REPEATS alternating calls
(``overhead_min_s``: the same difference on each side's fastest call).
Target: overhead <= 5 % of the peer's time, or <= 50 ms.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPEATS = int(os.environ.get("BENCH_TRAIN_REPEATS", "5"))
SAMPLE = float(os.environ.get("BENCH_TRAIN_SAMPLE", "1.0"))
# One thread on both sides: on a shared 2-core machine OpenMP's second thread makes fit times erratic.
PARAMS = {"n_estimators": 600, "learning_rate": 0.05, "max_depth": 5, "subsample": 0.9,
          "colsample_bytree": 0.8, "n_jobs": 1}
EARLY_STOP = 30
EXPERIMENT = f"""\
model: xgboost
params: {PARAMS}
early_stopping_rounds: {EARLY_STOP}
seed: 42
name: v1
register: true
"""


def _peer(folder: Path) -> tuple[float, float]:
    """What calling XGBoost directly takes: read the two splits, fit with early stopping.

    Returns (call seconds, of which fitting)."""
    import pandas as pd
    import xgboost as xgb

    t0 = time.perf_counter()
    frames = {s: pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "val")}
    X = {s: f.drop(columns=["income", "row_id"]).to_numpy(dtype="float64") for s, f in frames.items()}
    y = {s: (f["income"] == ">50K").to_numpy(dtype="int64") for s, f in frames.items()}
    model = xgb.XGBClassifier(**PARAMS, tree_method="hist", eval_metric="auc", random_state=42,
                              early_stopping_rounds=EARLY_STOP)
    t1 = time.perf_counter()
    model.fit(X["train"], y["train"], eval_set=[(X["val"], y["val"])], verbose=False)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1


def run() -> dict:
    from bench_tune import make_adult_project

    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.train import train_model
    from omgmagics.project import Project

    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        root = make_adult_project(tmp / "bench", sample=SAMPLE)
        (root / "experiment.yaml").write_text(EXPERIMENT)
        project = Project.at(root)
        data = load_model_data(project)
        folder = root / "features" / "adult" / "v1"
        train_model(project, root / "experiment.yaml")  # warm-up: imports, store, caches
        _peer(folder)
        kit, kit_rest, peer, peer_rest = [], [], [], []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            report = train_model(project, root / "experiment.yaml")
            call = time.perf_counter() - t0
            kit.append(call)
            kit_rest.append(call - report.data["metrics"]["fit_time_s"])
            call, fit = _peer(folder)
            peer.append(call)
            peer_rest.append(call - fit)
        k, p = statistics.median(kit), statistics.median(peer)
        # Both sides run the identical fit (same rounds); on a shared machine its time varies by
        # seconds between calls, so the overhead is measured on what surrounds the fit.
        overhead = statistics.median(kit_rest) - statistics.median(peer_rest)
        # The same difference on each side's fastest call: what is left when the shared machine's
        # other load does not get in the way (the median above stays the headline figure).
        overhead_min = min(kit_rest) - min(peer_rest)
        return {
            "title": "%omgtrain train per-call overhead vs xgboost fit",
            "figures": {"train_call_s": k, "overhead_s": overhead, "overhead_pct": 100 * overhead / p,
                        "kit_outside_fit_s": statistics.median(kit_rest),
                        "overhead_min_s": overhead_min,
                        "train_rows": int(len(data.X["train"])), "features": len(data.feature_names)},
            "peer": {"name": "read parquet + XGBClassifier.fit", "call_s": p,
                     "outside_fit_s": statistics.median(peer_rest)},
            "ratio": (p + overhead) / p,
            "target": "overhead <= 5% of the direct call or <= 50 ms",
            "met": bool(overhead <= 0.05 * p or overhead <= 0.05),
            "notes": (f"median of {REPEATS} alternating warm calls; overhead = kit's time outside the "
                      "fit minus the peer's (both fits are identical); the kit reads the feature set, "
                      "scores val/test, measures latency, logs the run and the model (plots are drawn "
                      "only when the report is shown) "
                      f"to MLflow (SQLite) and registers it; load average {load0:.1f} at the start, "
                      f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
