"""Support for the phase 4 tests (no tests here).

A small project built through the kit's public functions on a seeded sample of the Adult demo data:
raw splits in ``data/processed/``, feature set ``project_features@v1`` with its fitted pipeline, an
xgboost model registered in MLflow with the alias ``champion`` (v1), a second xgboost model (v2) and a
torch MLP saved as a folder. It is built once per test session and copied where a test changes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TARGET = "income"
N_ROWS = 1200
_CACHE: dict[str, Any] = {}

BROKEN_HANDLER = '''
"""A challenger with a bug that only shows in production: inside a server process it fails on a
share of the requests (records with an odd age); offline (packaging, tests) it works."""
import sys

IN_SERVER = sys.argv[0].endswith("server.py")


def preprocess(records):
    for r in records:
        if IN_SERVER and r["age"] % 2 == 1:
            raise RuntimeError("deliberately broken challenger")
    return records
'''
FAILING_HANDLER = '''
def preprocess(records):
    raise RuntimeError("always fails")
'''


def build_project(parent: Path, name: str = "p4") -> Path:
    """A phase-4-ready project: raw splits, feature set v1 with its pipeline."""
    from omgmagics.features.extract import extract_features, save_pipeline
    from omgmagics.features.spec import check_spec, infer_spec
    from omgmagics.features.store import write_feature_set
    from omgmagics.project import Project
    from omgmagics.scaffold import init_project

    init_project(name, parent=parent)
    root = parent / name
    # Generous latency bound: the suite shares two cores with everything else.
    text = (root / "omg.yaml").read_text().replace("latency_p99_ms: 50", "latency_p99_ms: 2000")
    (root / "omg.yaml").write_text(text)
    project = Project.at(root)
    df = project.load_source_data(sample_frac=1.0).sample(N_ROWS, random_state=7)
    df = df.reset_index(drop=True)
    df.insert(0, "row_id", np.arange(len(df)))
    part = np.random.default_rng(7).choice(["train", "val", "test"], size=len(df), p=[0.6, 0.2, 0.2])
    raw = {s: df[part == s].reset_index(drop=True) for s in ("train", "val", "test")}
    project.processed_dir.mkdir(parents=True, exist_ok=True)
    for split, frame in raw.items():
        frame.to_parquet(project.processed_dir / f"{split}.parquet", index=False)
    spec, _ = infer_spec(raw["train"], TARGET, exclude=("row_id",))
    rep = extract_features(check_spec(spec), raw, TARGET)
    pipe = root / "pipeline.skops"
    save_pipeline(rep.value["pipeline"], pipe)
    write_feature_set(project.features_dir, "project_features", "v1", rep.value["splits"], TARGET,
                      extra={"pipeline": "pipeline.skops", "raw_columns": rep.value["raw_columns"],
                             "id_column": "row_id"},
                      files={"pipeline.skops": pipe})
    pipe.unlink()
    return root


def train_models(root: Path) -> dict[str, Any]:
    """xgboost v1 (alias champion) and v2 in the registry, an MLP folder; returns their refs."""
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.models import fit_model, get_model_type
    from omgmagics.modeling.record import record_model
    from omgmagics.modeling.tracking import connect
    from omgmagics.project import Project

    project = Project.at(root)
    data = load_model_data(project)
    metric = project.primary_metric
    tracking = connect(project)
    xgb_type = get_model_type("xgboost", "classification")
    versions = []
    for name, params in (("xgb", {"n_estimators": 40, "max_depth": 3}),
                         ("xgb-v2", {"n_estimators": 60, "max_depth": 4})):
        fit = fit_model(xgb_type, params, data, metric=metric, seed=1)
        rec = record_model(tracking, project, data, fit, name=name, kind="train", params=params,
                           metrics=[metric], register=True)
        versions.append(rec["version"])
        fit.model.save(root / "models" / "trained" / name)
    tracking.set_alias("champion", versions[0])
    tracking.set_alias("challenger", versions[1])
    mlp = fit_model(get_model_type("mlp", "classification"),
                    {"hidden_sizes": [128, 64], "epochs": 8, "dropout": 0.0}, data, metric=metric,
                    seed=1)
    mlp.model.save(root / "models" / "trained" / "mlp")
    return {"xgb": str(root / "models/trained/xgb"), "xgb2": str(root / "models/trained/xgb-v2"),
            "mlp": str(root / "models/trained/mlp"), "versions": versions}


def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's project (built on first use): {"root", "refs"}."""
    if "root" not in _CACHE:
        parent = tmp_path_factory.mktemp("phase4")
        root = build_project(parent)
        _CACHE["refs"] = train_models(root)
        _CACHE["root"] = root
    return _CACHE


def copy_project(src: Path, parent: Path, name: str = "p4copy") -> Path:
    """An independent copy (own MLflow database, bundles, state); artifacts stay readable."""
    dst = parent / name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".omg"))
    return dst


def onnx_bundle_project(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Any, Path]:
    """A copy of the session's project with its champion exported to ONNX and packaged as a bundle:
    (project, bundle folder)."""
    from omgmagics.deploy.packaging import package_model
    from omgmagics.optim.quantize import quantize_model
    from omgmagics.project import Project

    root = copy_project(shared(tmp_path_factory)["root"], tmp_path_factory.mktemp(name))
    project = Project.at(root)
    onnx = root / "models" / "optimized" / "champion-onnx"
    quantize_model(project, "champion", export="onnx", output=str(onnx))
    return project, Path(package_model(project, str(onnx)).value)


def rel(refs: dict[str, Any], root: Path, key: str) -> str:
    """A model ref of the shared project, re-rooted into a copy."""
    return str(Path(root) / Path(refs[key]).relative_to(_CACHE["root"]))


def kill_tree(pid: int) -> None:
    """Stop a process group started by a test, quietly (finalizers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                pass
            except ProcessLookupError:
                return
            time.sleep(0.05)


def stop_all(project_root: Path) -> None:
    """Stop every background server a project recorded (test teardown)."""
    import json

    folder = Path(project_root) / ".omg" / "servers"
    for state in folder.glob("*.json") if folder.is_dir() else []:
        try:
            for p in json.loads(state.read_text()).get("processes", []):
                kill_tree(int(p["pid"]))
        except (OSError, ValueError, KeyError):
            pass
        state.unlink(missing_ok=True)


def children() -> set[int]:
    """Pids of this process's live children (servers a test may have left)."""
    import psutil

    return {c.pid for c in psutil.Process().children(recursive=True)
            if c.status() != psutil.STATUS_ZOMBIE}
