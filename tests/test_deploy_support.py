"""Support for the phase 4 tests (no tests here): a small project with a stored feature set (fitted
pipeline included), an xgboost champion registered in MLflow and a torch MLP, built through the kit's
public functions on a seeded sample of the Adult demo data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TARGET = "income"
N_ROWS = 1200


def build_project(parent: Path, name: str = "p4") -> Path:
    """A phase-4-ready project: raw splits, feature set v1 with pipeline, models, champion alias."""
    import pandas as pd

    from omgmagics.features.extract import extract_features, save_pipeline
    from omgmagics.features.spec import check_spec, infer_spec
    from omgmagics.features.store import write_feature_set
    from omgmagics.project import Project
    from omgmagics.scaffold import init_project

    init_project(name, parent=parent)
    root = parent / name
    project = Project.at(root)
    df = project.load_source_data(sample_frac=1.0).sample(N_ROWS, random_state=7)
    df = df.reset_index(drop=True)
    df.insert(0, "row_id", np.arange(len(df)))
    rng = np.random.default_rng(7)
    part = rng.choice(["train", "val", "test"], size=len(df), p=[0.6, 0.2, 0.2])
    raw = {s: df[part == s].reset_index(drop=True) for s in ("train", "val", "test")}
    project.processed_dir.mkdir(parents=True, exist_ok=True)
    for split, frame in raw.items():
        frame.to_parquet(project.processed_dir / f"{split}.parquet", index=False)
    spec, _ = infer_spec(raw["train"], TARGET, exclude=("row_id",))
    spec = check_spec(spec)
    rep = extract_features(spec, raw, TARGET)
    pipe_path = root / "pipeline.skops"
    save_pipeline(rep.value["pipeline"], pipe_path)
    write_feature_set(project.features_dir, "project_features", "v1", rep.value["splits"], TARGET,
                      extra={"pipeline": "pipeline.skops", "raw_columns": rep.value["raw_columns"],
                             "id_column": "row_id"},
                      files={"pipeline.skops": pipe_path})
    pipe_path.unlink()
    pd.DataFrame  # noqa: B018 - keep the import local and used
    return root


def train_models(root: Path) -> dict[str, str]:
    """xgboost (registered, alias champion) and an MLP saved as a folder; returns their refs."""
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.models import fit_model, get_model_type
    from omgmagics.modeling.tracking import connect
    from omgmagics.modeling.train import record_model
    from omgmagics.project import Project

    project = Project.at(root)
    data = load_model_data(project)
    metric = project.primary_metric
    xgb = fit_model(get_model_type("xgboost", "classification"),
                    {"n_estimators": 40, "max_depth": 3}, data, metric=metric, seed=1)
    tracking = connect(project)
    rec = record_model(tracking, project, data, xgb, name="xgb", kind="train", params={},
                       metrics=[metric], register=True)
    tracking.set_alias("champion", rec["version"])
    mlp = fit_model(get_model_type("mlp", "classification"),
                    {"hidden_sizes": [128, 64], "epochs": 8, "dropout": 0.0}, data, metric=metric,
                    seed=1)
    mlp.model.meta["run_id"] = None
    mlp_dir = root / "models" / "trained" / "mlp"
    mlp.model.save(mlp_dir)
    xgb_dir = root / "models" / "trained" / "xgb"
    xgb.model.save(xgb_dir)
    return {"xgb": str(xgb_dir), "mlp": str(mlp_dir), "version": rec["version"]}


def kill_tree(pid: int) -> None:
    """Stop a process group started by a test (finalizers), quietly."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def python() -> str:
    return sys.executable


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "omgmagics.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
