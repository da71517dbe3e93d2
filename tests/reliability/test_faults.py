"""Faults: processes killed (SIGKILL) in the middle of writing, a kernel that dies, a server killed
under load. After each, the previous state is intact and loadable and the work can be redone.

The feature store's own crash test is tests/test_features_store.py::test_a_write_killed_halfway_leaves_no_version
(SIGKILL while a version is half written: no version appears, the next write succeeds).
Every child here runs in its own session and is killed as a process group by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from omgmagics.project import PHASES, Project
from tests.helpers.deploy import copy_project, kill_tree, rel, shared, stop_all

OMG = [sys.executable, "-m", "omgmagics.cli"]


def _omg(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*OMG, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0, what: str = "") -> None:
    """SIGKILL the process group of `proc` as soon as ready() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended ({proc.returncode}) before {what}: {err[-2000:]}")
        time.sleep(0.005)
    kill_tree(proc.pid)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def p4(tmp_path, tmp_path_factory):
    data = shared(tmp_path_factory)
    root = copy_project(data["root"], tmp_path)
    yield Project.at(root), data["refs"]
    stop_all(root)


def test_package_killed_mid_write_leaves_the_previous_bundle_intact(p4, run_cli):
    from omgmagics.deploy.bundle import ServingBundle, list_bundles
    from omgmagics.deploy.integrity import verify_bundle
    from omgmagics.deploy.packaging import package_model

    project, refs = p4
    model = rel(refs, project.root, "xgb")
    first = Path(package_model(project, model).value)
    folder = first.parent
    digest = verify_bundle(first)["digest"]
    proc = _omg(["deploy", "package", "--model", model, "-q"], project.root)

    def writing() -> bool:  # a file is inside the temporary bundle folder
        return any(p.is_file() for t in folder.glob(".*.tmp") for p in t.rglob("*"))

    _kill_when(proc, writing, what="the bundle write started")
    assert proc.returncode == -signal.SIGKILL
    assert [b["version"] for b in list_bundles(project)] == [first.name]  # no half bundle listed
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [first.name]
    check = verify_bundle(first)
    assert check["ok"] and check["digest"] == digest
    assert ServingBundle.load(first).predict_records(
        ServingBundle.load(first).signature["sample"][:2])
    code, out, _ = run_cli(["deploy", "package", "--verify", str(first)], cwd=project.root)
    assert code == 0 and "verified" in out
    # the leftover temporary folder blocks nothing: the next package succeeds
    second = Path(package_model(project, model).value)
    assert second.name != first.name and verify_bundle(second)["ok"]
    assert [b["version"] for b in list_bundles(project)] == [first.name, second.name]


def test_training_killed_mid_run_leaves_the_mlflow_store_readable(p4, run_cli):
    from mlflow.tracking import MlflowClient

    project, _ = p4
    db = project.root / "mlflow.db"
    uri = f"sqlite:///{db}"

    def finished_runs() -> dict[str, dict]:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(project.config.get_path("tracking.experiment"))
        runs = client.search_runs([exp.experiment_id])
        return {r.info.run_name: r for r in runs if r.info.status == "FINISHED"}

    before = finished_runs()
    assert {"xgb", "xgb-v2"} <= set(before)

    def run_open() -> bool:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
                return con.execute("SELECT count(*) FROM runs WHERE name = 'killed'").fetchone()[0] > 0
        except sqlite3.Error:
            return False

    proc = _omg(["train", "train", "--model", "xgboost", "--name", "killed", "-q"], project.root)
    _kill_when(proc, run_open, what="the MLflow run opened")
    assert proc.returncode == -signal.SIGKILL
    after = finished_runs()  # the store opens; every earlier run reads back whole
    for name, run in before.items():
        assert after[name].data.metrics == run.data.metrics
        assert after[name].data.params == run.data.params
    assert "killed" not in after  # the killed run never shows as finished
    # the registry and the champion's artifacts still load and predict
    from omgmagics.modeling import load_model
    from omgmagics.modeling.data import load_model_data

    model = load_model(project, "models:/p4-model@champion")
    val = load_model_data(project).frames["val"]
    assert len(model.predict_scores(val[model.feature_names].head(5))) == 5
    # the next training run works on the same store
    code, out, err = run_cli(["train", "train", "--model", "xgboost", "--name", "after", "-q",
                              "--no-register"], cwd=project.root)
    assert code == 0, err
    assert "after" in finished_runs()


def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("project_dir = '.'\nseed = 42\nsample_frac = 1.0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A phase"), params,
                *[nbformat.v4.new_code_cell(c) for c in cells]]
    nbformat.write(nb, path)


@pytest.fixture
def tiny(demo_project):
    """The demo project with one-cell phase notebooks (the runner, not the phases, is tested)."""
    for phase, folder in PHASES.items():
        _notebook(demo_project / "notebooks" / folder / f"{folder}.ipynb",
                  f"import pathlib\npathlib.Path('reports/p{phase}.txt').write_text(str(seed))")
    return demo_project


def _latest_manifest(root: Path) -> dict:
    runs = sorted((root / "runs").iterdir())
    return json.loads((runs[-1] / "manifest.json").read_text())


def test_run_killed_during_a_phase_resumes_and_finishes(tiny, run_cli):
    nb1 = tiny / "notebooks" / PHASES[1] / f"{PHASES[1]}.ipynb"
    _notebook(nb1, "import pathlib, time\npathlib.Path('reports/p1-started').write_text('')\n"
                   "while not pathlib.Path('reports/go').exists():\n    time.sleep(0.05)",
              "pathlib.Path('reports/p1.txt').write_text(str(seed))")
    proc = _omg(["ml", "run", "--phases", "1-2", "--no-gates", "-q"], tiny)
    _kill_when(proc, lambda: (tiny / "reports" / "p1-started").exists(), what="phase 1 started")
    assert proc.returncode == -signal.SIGKILL
    assert not (tiny / "reports" / "p1.txt").exists()
    (tiny / "reports" / "go").write_text("")
    code, out, err = run_cli(["ml", "run", "--resume", "--no-gates", "-q"], cwd=tiny)
    assert code == 0, err
    manifest = _latest_manifest(tiny)
    assert len(list((tiny / "runs").iterdir())) == 1 and len(manifest["resumed"]) == 1  # same run
    # --no-gates: the tiny notebooks fail the real gates, which are recorded, not enforced
    assert manifest["status"] in ("passed", "gate-failed"), manifest
    assert set(manifest["phases"]) == {"1", "2"}
    assert all(p["status"] in ("passed", "gate-failed") and not p.get("error")
               for p in manifest["phases"].values()), manifest["phases"]
    assert (tiny / "reports" / "p1.txt").read_text() == (tiny / "reports" / "p2.txt").read_text() == "42"


def test_a_dying_kernel_is_reported_with_the_saved_notebook(tiny, run_cli):
    nb1 = tiny / "notebooks" / PHASES[1] / f"{PHASES[1]}.ipynb"
    _notebook(nb1, "x = 1", "import os\nos._exit(1)  # what the OOM killer does to a kernel")
    code, _, err = run_cli(["ml", "run", "--phases", "1-2", "--no-gates", "-q"], cwd=tiny)
    assert code == 1
    run_id = sorted((tiny / "runs").iterdir())[-1].name
    message = err.strip().removeprefix("error: ")
    assert message.startswith("Phase 1 (Discovery & planning) failed at a dead kernel: "
                              "DeadKernelError: "), message
    saved = f"runs/{run_id}/{PHASES[1]}.ipynb"
    assert f"The executed notebook is saved at {saved}" in message
    assert message.endswith("Fix the cause, then resume with `omg ml run --resume` (or "
                            "`%omgml run --resume`).")
    assert (tiny / saved).is_file()
    nbformat.read(tiny / saved, as_version=4)  # a whole notebook, readable
    manifest = _latest_manifest(tiny)
    assert manifest["status"] == "failed" and manifest["failed_phase"] == 1
    assert "2" not in manifest["phases"]


def test_server_killed_under_load_comes_back_with_an_intact_log(p4):
    from omgmagics.deploy import loadgen, process
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.packaging import package_model
    from omgmagics.deploy.serving import serve, stop
    from omgmagics.deploy.staging import split_valid

    project, refs = p4
    bundle = Path(package_model(project, rel(refs, project.root, "xgb")).value)
    _, valid, _ = split_valid(ServingBundle.load(bundle),
                              pd.read_parquet(project.processed_dir / "val.parquet"))
    bodies = [json.dumps(r).encode() for r in valid]
    cfg = project.root / "crash.yaml"
    cfg.write_text("log: {flush_records: 1, flush_seconds: 0.01}\n")  # a write per record
    report = serve(project, "crash", str(cfg), port=0, bundle=str(bundle), background=True)
    pid, url = report.summary["pid"], report.summary["url"]
    outcome: dict = {}

    def load() -> None:
        outcome["res"] = loadgen.fixed_rate(url + "/predict", bodies, rate=150, n=900,
                                            max_seconds=20)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        log_dir = project.predictions_dir
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                p.stat().st_size > 20_000 for p in log_dir.glob("*.jsonl")):
            time.sleep(0.01)
        os.killpg(pid, signal.SIGKILL)  # mid-load, while records are being written
        thread.join(timeout=60)
    finally:
        kill_tree(pid)
    res = outcome["res"]
    assert res.statuses.count(200) > 0 and (res.errors > 0 or res.statuses.count(0) > 0)
    # `omg deploy serve` comes back on the same environment (the dead server's record is stale)
    again = serve(project, "crash", str(cfg), port=0, bundle=str(bundle), background=True)
    try:
        after = loadgen.replay(again.summary["url"] + "/predict", bodies[:100], concurrency=4)
        assert after.statuses == [200] * 100
    finally:
        stop(project, "crash")
        deadline = time.monotonic() + 10
        while process.alive(again.summary["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_tree(again.summary["pid"])
    records = []
    for path in sorted(log_dir.glob("*.jsonl")):
        raw = path.read_bytes()
        assert raw.endswith(b"\n")
        for line in raw.decode("utf-8").split("\n")[:-1]:
            records.append(json.loads(line))  # no torn or merged record
    assert len(records) >= res.statuses.count(200) // 2 + 100
    assert len({r["request_id"] for r in records}) == len(records)
