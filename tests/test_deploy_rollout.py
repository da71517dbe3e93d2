"""Production rollouts on this machine with real processes: a canary that promotes and moves the MLflow
alias, a deliberately broken challenger that is rolled back with no request lost, and blue-green with
the winner kept running until `deploy stop`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from omgmagics.deploy import process
from omgmagics.deploy.packaging import package_model
from omgmagics.deploy.rollout import cloud_local
from omgmagics.deploy.state import admin_token, current_production, read_history, router_state_path
from omgmagics.modeling.tracking import connect
from omgmagics.project import Project
from tests.helpers.deploy import BROKEN_HANDLER, children, copy_project, shared, stop_all


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from omgmagics.optim.quantize import quantize_model

    data = shared(tmp_path_factory)
    root = copy_project(data["root"], tmp_path_factory.mktemp("rollout"))
    project = Project.at(root)
    opt = root / "models" / "optimized"
    quantize_model(project, "models:/p4-model/1", export="onnx", output=str(opt / "v1"))
    quantize_model(project, "challenger", export="onnx", output=str(opt / "v2"))
    b1 = package_model(project, str(opt / "v1")).value
    b2 = package_model(project, str(opt / "v2")).value
    handler = root / "broken_handler.py"
    handler.write_text(BROKEN_HANDLER)
    broken = package_model(project, str(opt / "v1"), handler=str(handler), name="broken").value
    yield project, {"v1": b1, "v2": b2, "broken": broken}
    stop_all(root)


def _alias(project: Project) -> str:
    return str(connect(project).alias_version("champion").version)


def test_canary_promotes_and_moves_the_champion_alias(setup):
    project, b = setup
    assert _alias(project) == "1"
    before = children()
    report = cloud_local(project, champion=b["v1"], challenger=b["v2"], port=0, window=20)
    assert children() <= before, "rollout processes left running"
    s = report.summary
    assert s["outcome"] == "promoted", report.to_text()
    assert s["lost requests"] == 0 and s["answered 200"] == s["requests sent"]
    assert s["MLflow alias"] == "moved: p4-model v2 is now 'champion' (was v1)"
    assert _alias(project) == "2"
    events = [e["event"] for e in report.data["events"]]
    assert events[:5] == ["start", "step", "step", "step", "promoted"] and "alias" in events
    shares = [e["share"] for e in report.data["events"] if e["event"] in ("step", "promoted")]
    assert shares == [25, 50, 100, 100]
    assert current_production(project)["model_version"] == "p4-model/2"
    assert (project.docs_dir / "runbook.md").is_file()
    assert (project.decisions_dir / "adr-002-deployment-strategy.md").is_file()
    assert "challenger share" in report.figures


def test_broken_challenger_rolls_back_with_no_request_lost(setup):
    project, b = setup
    before = children()
    report = cloud_local(project, challenger=b["broken"], port=0, window=50)
    assert children() <= before
    s = report.summary
    assert s["outcome"] == "rolled back", report.to_text()
    assert s["champion"] == "p4-model/2"  # the one in production
    assert s["lost requests"] == 0 and s["answered 200"] == s["requests sent"]
    assert s["challenger errors retried on champion"] >= 1
    assert s["rollback reason"].startswith("challenger error rate over 1.00%")
    rollback = [e for e in report.data["events"] if e["event"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["share"] == 0 and rollback[0]["previous_share"] == 10
    assert _alias(project) == "2"  # unchanged
    assert current_production(project)["model_version"] == "p4-model/2"
    history = read_history(project)
    assert {e["rollout_id"] for e in history} >= {report.data["events"][0]["rollout_id"]}
    assert all(json.dumps(e) for e in history)
    # The challenger's failures reached the prediction log as errors, the champion's answers as ok.
    logs = [json.loads(line) for p in (project.monitoring_dir / "predictions").glob("*.jsonl")
            for line in p.read_text().splitlines()]
    assert any(r["model_version"] == "broken/1" and r["status"] == "error" for r in logs)


def test_blue_green_keeps_the_winner_running_until_stop(setup, run_cli):
    project, b = setup
    report = cloud_local(project, "production", "blue-green", champion=b["v2"],
                         challenger=b["v1"], port=0, window=20, keep_running=True)
    try:
        s = report.summary
        assert s["outcome"] == "promoted" and s["blue-green smoke test"] == "ok", report.to_text()
        assert s["steps"] == "100%"
        state = process.read_state(project, "production")
        roles = [p["role"] for p in state["processes"]]
        assert roles == ["router", "challenger"]
        router = state["processes"][0]["url"]
        rec = json.loads((Path(b["v1"]) / "signature.json").read_text())["sample"][0]
        r = httpx.post(router + "/predict", json=rec)
        assert r.status_code == 200 and r.headers["x-served-by"] == "challenger"
        assert httpx.get(router + "/router/status").status_code == 401
        admin = {"authorization": f"Bearer {admin_token(project, 'production')}"}
        assert httpx.get(router + "/router/status", headers=admin).json()["state"] == "promoted"
        assert str(router_state_path(project, "production")) in " ".join(report.messages)
    finally:
        code, out, _ = run_cli(["deploy", "stop", "--env", "production"], cwd=project.root)
    assert code == 0 and "Stopped 2 server process(es)" in out
    assert not router_state_path(project, "production").exists()  # the token went with the router
    assert all(not process.alive(p["pid"]) for p in state["processes"])
    assert _alias(project) == "1"


def test_same_bundle_or_no_champion_is_refused(setup, tmp_path):
    from omgmagics.errors import UsageError

    project, b = setup
    with pytest.raises(UsageError, match="Champion and challenger are the same bundle"):
        cloud_local(project, champion=b["v1"], challenger=b["v1"], port=0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_router_answers_503_with_retry_after_when_the_champion_stalls_or_is_gone(tmp_path):
    """No backend answer is a 503 with Retry-After, never a 502: a champion that accepts the request
    but does not answer in time (it may still serve and log it) and one that refuses connections
    are told apart in the detail."""
    import socket
    import threading

    from starlette.testclient import TestClient

    from omgmagics.deploy.router import create_app

    stalled = socket.create_server(("127.0.0.1", 0))  # accepts, reads, never answers
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(stalled.accept()[0]) for _ in range(4)],
                     daemon=True).start()
    gone = f"http://127.0.0.1:{_free_port()}"
    cfg = {"history": str(tmp_path / "history.jsonl"), "env": "production", "strategy": "canary",
           "rollout_id": "r1", "steps": [50, 100], "window_requests": 100, "max_error_rate": 0.5,
           "max_latency_p99_ms": 5000, "timeout_s": 0.5,
           "champion": {"version": "1", "url": f"http://127.0.0.1:{stalled.getsockname()[1]}"},
           "challenger": {"version": "2", "url": gone}}
    try:
        with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
            r = client.post("/predict", json={"x": 1}, headers={"x-request-id": "stall-1"})
            assert (r.status_code, r.json()) == (503, {"detail": "no backend answered: the champion "
                                                                 "did not answer within 0.5 s (it may "
                                                                 "still serve the request); retry in "
                                                                 "a moment"})
            assert r.headers["x-request-id"] == "stall-1" and r.headers["retry-after"] == "1"
        cfg["champion"]["url"] = gone
        with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
            r = client.post("/predict", json={"x": 1})
            port = gone.rsplit(":", 1)[1]
            assert (r.status_code, r.json()) == (503, {
                "detail": "no backend answered: the champion is unreachable ([Errno 111] Connect "
                          f"call failed ('127.0.0.1', {port})); retry in a moment"})
            assert r.headers["retry-after"] == "1"
            assert client.get("/ready").status_code == 503
    finally:
        stalled.close()
        for conn in held:
            conn.close()
