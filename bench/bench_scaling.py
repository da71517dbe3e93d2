"""Scale-out tuning: one study of 200 trials with 1, 2 and 4 workers on PostgreSQL against the embedded
single-process SQLite study, in one run.

Data: the demo tuning of ``bench_tune`` (Adult census data one-hot encoded into a feature set, split
70/15/15) on a smaller row sample, and the kit's default XGBoost search space with the boosting rounds
capped lower (``tuning.search_space.xgboost.n_estimators``), so that 4 x 200 trials fit in a few
minutes; pruning on (median pruner, a report every 50 rounds), early stopping 50 rounds.

- peer: ``tune_model(project, "xgboost", trials=200)`` on the project's SQLite ``optuna.db``, one
  process (XGBoost may use both cores);
- kit: the same call with ``storage=postgresql://...`` (a throwaway cluster, ``tests/postgres.py``) and
  ``workers=1, 2, 4`` (the command's process plus spawned workers; one XGBoost thread per worker
  when several share the cores), each on a study of its own.

Each side is timed end to end (worker start-up, the refit of the best trial and MLflow logging
included) and over the study itself (first trial start to last trial end). Target: about linear
scaling up to the 2 cores, i.e. 2 workers on PostgreSQL reach >= 1.6x the trials per minute of the
single-process SQLite study.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRIALS = int(os.environ.get("BENCH_SCALING_TRIALS", "200"))
SAMPLE = float(os.environ.get("BENCH_SCALING_SAMPLE", "0.1"))
ROUNDS = int(os.environ.get("BENCH_SCALING_ROUNDS", "200"))
WORKERS = (1, 2, 4)
TARGET = 1.6


def _span_minutes(study) -> float:
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return (end - start).total_seconds() / 60


def _one(project, storage: str | None, workers: int, study: str) -> dict:
    import optuna

    from omgmagics.modeling.tune import default_storage, tune_model

    t0 = time.perf_counter()
    report = tune_model(project, "xgboost", trials=TRIALS, workers=workers, storage=storage,
                        study_name=study, register=False, name=study)
    wall = time.perf_counter() - t0
    url = storage or default_storage(project)
    loaded = optuna.load_study(study_name=study, storage=url)
    s = report.summary
    return {"wall_s": round(wall, 1),
            "trials_per_min": round(s["trials"] / (wall / 60), 1),
            "trials_per_min_study": round(s["trials"] / _span_minutes(loaded), 1),
            "best_val_auc": round(float(report.data["best_value"]), 4),
            "completed": s["completed"], "pruned": s["pruned"], "trials": s["trials"]}


def run() -> dict:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from bench_tune import make_adult_project  # the demo tuning data, built the same way

    from omgmagics.modeling.data import load_model_data
    from omgmagics.project import Project
    from tests.postgres import find_bin, postgres_cluster

    if find_bin() is None:
        raise SystemExit("PostgreSQL server binaries missing: apt-get install postgresql")
    tmp = Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    try:
        root = make_adult_project(tmp / "bench", sample=SAMPLE)
        with open(root / "omg.yaml", "a") as f:
            f.write(f"tuning:\n  search_space:\n    xgboost:\n      n_estimators: {ROUNDS}\n")
        project = Project.at(root)
        data = load_model_data(project)
        loads = [os.getloadavg()[0]]
        peer = _one(project, None, 1, "sqlite-1")
        loads.append(os.getloadavg()[0])
        kit: dict[int, dict] = {}
        with postgres_cluster("optuna") as url:
            for n in WORKERS:
                kit[n] = _one(project, url, n, f"pg-{n}")
                loads.append(os.getloadavg()[0])
        base = peer["trials_per_min"]
        ratio = kit[2]["trials_per_min"] / base
        figures = {}
        for n in WORKERS:
            figures[f"pg_{n}w_trials_per_min"] = kit[n]["trials_per_min"]
            figures[f"pg_{n}w_best_auc"] = kit[n]["best_val_auc"]
        for n in WORKERS:
            figures[f"pg_{n}w_study_trials_per_min"] = kit[n]["trials_per_min_study"]
            figures[f"pg_{n}w_wall_s"] = kit[n]["wall_s"]
        figures["train_rows"] = int(len(data.X["train"]))
        return {
            "title": f"tune {TRIALS} trials: 1/2/4 workers on PostgreSQL vs single-process SQLite",
            "figures": figures,
            "peer": {"name": "embedded SQLite study, 1 process",
                     "trials_per_min": base, "study_trials_per_min": peer["trials_per_min_study"],
                     "best_auc": peer["best_val_auc"], "wall_s": peer["wall_s"]},
            "ratio": ratio,
            "target": f">= {TARGET}x the SQLite trials/min with 2 workers on PostgreSQL (2 cores)",
            "met": bool(ratio >= TARGET),
            "details": {"sqlite-1": peer, **{f"pg-{n}": kit[n] for n in WORKERS}},
            "notes": (f"{TRIALS} trials per study, pruning on (median), Adult {SAMPLE:.0%} sample "
                      f"({len(data.X['train'])} training rows x {len(data.feature_names)} "
                      f"columns), XGBoost capped at {ROUNDS} rounds to keep the per-trial cost "
                      "small; trials/min over the whole command (worker start-up, refit and MLflow "
                      "logging included) and, *_study_*, from the first trial start to the last "
                      "trial end; load average (1 min) at each step "
                      f"{', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} cores shared "
                      "with other users"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
