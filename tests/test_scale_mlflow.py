"""A shared MLflow tracking server (issue #9): a real ``mlflow server`` on the throwaway PostgreSQL
cluster (its own database) with a local artifact destination, on a free loopback port; the project
points ``tracking.uri`` at it, ``omg train train`` logs there unchanged, and the run, its metrics, its
model artifact and the registered model with its alias come back over MLflow's REST API.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.modeling import make_project

EXPERIMENT = """\
model: xgboost
params: {n_estimators: 40, max_depth: 3, learning_rate: 0.2}
early_stopping_rounds: 10
seed: 7
name: shared-v1
"""
MLFLOW = Path(sys.executable).with_name("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _create_database(url: str, name: str) -> str:
    """A database of its own in the cluster (the Optuna tests use the default one)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def mlflow_server(postgres_url, tmp_path_factory):
    """``mlflow server`` on PostgreSQL (psycopg 3) with a local artifact destination; its URL."""
    db = _create_database(postgres_url, "mlflow")
    artifacts = tmp_path_factory.mktemp("mlartifacts")
    port = _free_port()
    log = tmp_path_factory.mktemp("mlflow-log") / "server.log"
    cmd = [str(MLFLOW), "server",
           "--backend-store-uri", db.replace("postgresql://", "postgresql+psycopg://", 1),
           "--artifacts-destination", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a new database replays every schema migration
        while True:
            assert proc.poll() is None, f"mlflow server exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"mlflow server not up:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or busy migrating
                pass
            time.sleep(0.5)
        yield {"url": url, "artifacts": artifacts, "db": db}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker processes
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _get(url: str, endpoint: str, **params) -> dict:
    r = requests.get(f"{url}/api/2.0/mlflow/{endpoint}", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def trained(mlflow_server, tmp_path_factory):
    """``omg train train --format json`` in a project whose ``tracking.uri`` is the server."""
    import contextlib
    import io

    from omgmagics.cli import main

    url = mlflow_server["url"]
    root = make_project(tmp_path_factory.mktemp("shared") / "demo", n=400,
                        extra_yaml=f"tracking:\n  uri: {url}\n")
    (root / "experiment.yaml").write_text(EXPERIMENT)
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["train", "train", "--config", "experiment.yaml", "--format", "json"])
    finally:
        os.chdir(old)
    return {"root": root, "code": code, "out": out.getvalue(), "err": err.getvalue()}


def test_json_output_is_clean(trained):
    assert trained["out"].startswith("{"), trained["out"][:200]


def test_train_run_is_served_back_over_rest(mlflow_server, trained):
    url, root = mlflow_server["url"], trained["root"]
    assert trained["code"] == 0, trained["err"]
    out = trained["out"]
    report = json.loads(out)
    run_id = report["data"]["run_id"]
    assert report["summary"]["registered"] == "demo-model v1 (challenger)"
    # Nothing embedded: the project folder has no local store.
    assert not (root / "mlflow.db").exists() and not (root / "mlartifacts").exists()

    exp = _get(url, "experiments/get-by-name", experiment_name="demo")["experiment"]
    assert exp["artifact_location"].startswith("mlflow-artifacts:/")
    r = requests.post(f"{url}/api/2.0/mlflow/runs/search", timeout=30,
                      json={"experiment_ids": [exp["experiment_id"]],
                            "filter": "attributes.run_name = 'shared-v1'"})
    assert r.status_code == 200, r.text
    runs = r.json()["runs"]
    assert [run["info"]["run_id"] for run in runs] == [run_id]
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    for key in ("val_roc_auc", "test_roc_auc", "test_accuracy", "fit_time_s"):
        assert metrics[key] == pytest.approx(report["data"]["metrics"][key]), key
    assert report["summary"]["test roc_auc"] == pytest.approx(metrics["test_roc_auc"])
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["omg.kind"] == "train" and tags["omg.project"] == "demo"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["model_type"] == "xgboost" and params["params.n_estimators"] == "40"

    # The model went through the server's artifact proxy into its local destination.
    listed = _get(url, "artifacts/list", run_id=run_id, path="model")
    assert listed["files"], listed
    on_disk = [p for p in Path(mlflow_server["artifacts"]).rglob("*") if p.is_file()]
    assert any(run_id in str(p) for p in on_disk)

    model = _get(url, "registered-models/get", name="demo-model")["registered_model"]
    assert {a["alias"]: a["version"] for a in model.get("aliases", [])} == {"challenger": "1"}
    version = _get(url, "registered-models/alias", name="demo-model",
                   alias="challenger")["model_version"]
    assert version["run_id"] == run_id and version["version"] == "1"
    assert version["source"] == f"runs:/{run_id}/model"

    # The backend store really is the PostgreSQL database.
    import sqlalchemy as sa

    engine = sa.create_engine(mlflow_server["db"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from runs where run_uuid = :r"),
                            {"r": run_id}).scalar() == 1
    engine.dispose()
