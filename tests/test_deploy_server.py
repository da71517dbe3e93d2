"""The model server over real HTTP on loopback: good requests, every bad-input case, metrics, auth,
the prediction log, background start and stop, port in use, staging validation and the phase 4 gate.
Every server is stopped by a finalizer, also when a test fails."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pandas as pd
import pytest

from omgmagics.deploy import process
from omgmagics.deploy.serving import serve, stop
from omgmagics.errors import ConfigError, DataError, UsageError
from tests.helpers.deploy import (
    children,
    kill_tree,
    onnx_bundle_project,
    stop_all,
)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    project, bundle = onnx_bundle_project(tmp_path_factory, "server")
    yield project, bundle
    stop_all(project.root)


@pytest.fixture(scope="module")
def server(proj):
    """A background staging server on a free port (stopped at the end, whatever happens)."""
    project, bundle = proj
    report = serve(project, "qa", port=0, bundle=str(bundle), background=True)
    pid = report.summary["pid"]
    try:
        yield report.summary["url"], pid
    finally:
        kill_tree(pid)
        process.state_path(project, "qa").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def records(proj):
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.staging import split_valid

    project, bundle = proj
    _, valid, _ = split_valid(ServingBundle.load(bundle),
                              pd.read_parquet(project.processed_dir / "val.parquet"))
    return valid


def test_good_single_and_batch_requests(server, records):
    url, _ = server
    with httpx.Client(base_url=url) as c:
        r = c.post("/predict", json=records[0], headers={"x-request-id": "req-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-1"
        body = r.json()
        assert set(body) == {"request_id", "model_version", "prediction", "score"}
        assert body["prediction"] in (">50K", "<=50K") and 0 <= body["score"] <= 1
        assert body["model_version"] == "p4-model/1"
        r = c.post("/predict", json=records[:5])
        assert r.status_code == 200 and len(r.json()["predictions"]) == 5


@pytest.mark.parametrize(("mutate", "status", "field", "message"), [
    (lambda r: {k: v for k, v in r.items() if k != "age"}, 422, "age",
     "field 'age' is required (integer)"),
    (lambda r: {**r, "age": "forty"}, 422, "age", "field 'age' must be an integer, got string 'forty'"),
    (lambda r: {**r, "sex": "Robot"}, 422, "sex", "field 'sex' has the unknown category 'Robot'."),
    (lambda r: {**r, "favourite_colour": "red"}, 422, "favourite_colour",
     "field 'favourite_colour' is not an input of this model."),
    (lambda r: [r] * 1025, 422, None, "the batch has 1025 records, more than the limit of 1024"),
    (lambda r: [], 422, None, "the batch is empty"),
    (lambda r: 42, 422, None, "the body must be one record (a JSON object) or a list of records"),
])
def test_bad_input_gets_422_naming_the_field(server, records, mutate, status, field, message):
    url, _ = server
    r = httpx.post(url + "/predict", json=mutate(records[0]))
    assert r.status_code == status
    detail = r.json()["detail"]
    assert detail[0]["field"] == field and detail[0]["msg"].startswith(message)


def test_not_json_and_oversized_body(server):
    url, _ = server
    r = httpx.post(url + "/predict", content=b"{'age': 1", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"].startswith("the body is not valid JSON")
    r = httpx.post(url + "/predict", content=b"[" + b" " * (9 * 2**20) + b"]",
                   headers={"content-type": "application/json"})
    assert r.status_code == 413 and "exceeds the limit of 8388608 bytes" in r.json()["detail"]
    assert httpx.get(url + "/predict").status_code == 405


@pytest.mark.parametrize(("headers", "status", "message"), [
    ({"content-type": "text/plain"}, 415,
     "the body must be sent as Content-Type: application/json, got 'text/plain'"),
    ({"content-type": "application/x-www-form-urlencoded"}, 415,
     "the body must be sent as Content-Type: application/json, got "
     "'application/x-www-form-urlencoded'"),
    ({}, 415, "the body must be sent as Content-Type: application/json, got no Content-Type"),
    ({"content-type": "application/json", "origin": "https://evil.example"}, 403,
     "requests from the web origin 'https://evil.example' are not allowed (a browser page may not "
     "call this server; add its host to serving.allowed_hosts if it should)"),
    ({"content-type": "application/json", "origin": "null"}, 403,
     "requests from the web origin 'null' are not allowed (a browser page may not call this "
     "server; add its host to serving.allowed_hosts if it should)"),
    ({"content-type": "application/json", "host": "evil.example:8081"}, 421,
     "Host 'evil.example' is not an allowed name for this server; allowed: 127.0.0.1, ::1, "
     "localhost (add names with serving.allowed_hosts)"),
])
def test_drive_by_browser_requests_are_refused(server, records, proj, headers, status, message):
    """A page in the user's browser can POST text/plain or a form to loopback without a CORS
    preflight, and DNS rebinding makes its own name point at 127.0.0.1: none of it gets through,
    and nothing reaches the prediction log."""
    url, _ = server
    rid = f"driveby-{status}-{len(headers)}"
    r = httpx.post(url + "/predict", content=json.dumps(records[0]),
                   headers={**headers, "x-request-id": rid})
    assert r.status_code == status
    assert r.json() == {"detail": message}
    if "host" in headers or "origin" in headers:
        assert httpx.get(url + "/health", headers=headers).status_code == status
    ok = httpx.post(url + "/predict", content=json.dumps(records[0]),
                    headers={"content-type": "application/json; charset=utf-8",
                             "origin": url, "x-request-id": rid + "-ok"})
    assert ok.status_code == 200
    project, _ = proj
    deadline = time.time() + 10
    ids: set[str] = set()
    while rid + "-ok" not in ids and time.time() < deadline:
        ids = {json.loads(line)["request_id"]
               for path in (project.monitoring_dir / "predictions").glob("*.jsonl")
               for line in path.read_text().splitlines()}
        time.sleep(0.1)
    assert rid + "-ok" in ids and rid not in ids


def test_health_ready_version_metrics_and_log(server, records, proj):
    project, bundle = proj
    url, _ = server
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert httpx.get(url + "/ready").json()["status"] == "ready"
    version = httpx.get(url + "/version").json()
    from omgmagics.deploy.integrity import verify_bundle

    assert version["model_version"] == "p4-model/1" and version["env"] == "qa"
    assert version["digest"] == verify_bundle(bundle)["digest"]
    httpx.post(url + "/predict", json=records[1], headers={"x-request-id": "logged-1"})
    text = httpx.get(url + "/metrics").text
    assert "# TYPE omg_requests_total counter" in text
    assert re.search(r'omg_requests_total\{env="qa",model_version="p4-model/1",'
                     r'endpoint="/predict",status="200"\} [1-9]', text)
    assert re.search(r'omg_requests_total\{.*status="422"\} [1-9]', text)
    assert "omg_request_duration_seconds_bucket" in text and "omg_prediction_log_dropped_total" in text
    folder = project.monitoring_dir / "predictions"
    deadline = time.time() + 10
    found = None
    while time.time() < deadline and found is None:
        for path in folder.glob("*.jsonl"):
            for line in path.read_text().splitlines():
                rec = json.loads(line)
                if rec["request_id"] == "logged-1":
                    found = rec
        time.sleep(0.2)
    assert found is not None, "the prediction was not logged within 10 s"
    assert found["env"] == "qa" and found["status"] == "ok" and found["error"] is None
    assert found["inputs"] == records[1] and found["model_version"] == "p4-model/1"
    assert isinstance(found["latency_ms"], float) and 0 <= found["score"] <= 1


def test_port_in_use_is_a_clear_error_and_starts_nothing(proj):
    project, bundle = proj
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    before = children()
    try:
        with pytest.raises(UsageError, match=re.escape(f"Port {port} on 127.0.0.1 is already in use.")):
            serve(project, "dev", port=port, bundle=str(bundle), background=True)
    finally:
        sock.close()
    assert children() <= before and process.read_state(project, "dev") is None


def test_tampered_bundle_and_malformed_config_start_nothing(proj, tmp_path):
    import shutil

    project, bundle = proj
    bad = project.models_dir / "tampered" / "1"
    shutil.copytree(bundle, bad)
    (bad / "signature.json").write_text("{}")
    before = children()
    with pytest.raises(DataError, match="failed verification \\(changed: signature.json\\)"):
        serve(project, "dev", port=0, bundle=str(bad), background=True)
    cfg = tmp_path / "staging.yaml"
    cfg.write_text("max_batch: lots\n")
    with pytest.raises(ConfigError, match=re.escape("staging.yaml: 'max_batch' must be int or null, "
                                                    "got 'lots'.")):
        serve(project, "dev", cfg, port=0, bundle=str(bundle), background=True)
    assert children() <= before


def test_auth_background_and_stop(proj, records, monkeypatch, run_cli):
    project, bundle = proj
    monkeypatch.setenv("OMG_TEST_TOKEN", "s3cret")
    cfg = project.root / "auth.yaml"
    cfg.write_text("auth_token_env: OMG_TEST_TOKEN\n")
    report = serve(project, "authenv", str(cfg), port=0, bundle=str(bundle), background=True)
    pid, url = report.summary["pid"], report.summary["url"]
    try:
        assert report.summary["auth"] == "bearer token from $OMG_TEST_TOKEN"
        r = httpx.post(url + "/predict", json=records[0])
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        bad = httpx.post(url + "/predict", json=records[0], headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        ok = httpx.post(url + "/predict", json=records[0],
                        headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/health").status_code == 200  # probes stay open
        with pytest.raises(UsageError, match="A server for env 'authenv' is already running"):
            serve(project, "authenv", str(cfg), port=0, bundle=str(bundle), background=True)
        code, out, _ = run_cli(["deploy", "stop", "--env", "authenv"], cwd=project.root)
        assert code == 0 and "Stopped 1 server process(es) of env 'authenv'" in out
        deadline = time.time() + 5
        while process.alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not process.alive(pid)
        assert process.read_state(project, "authenv") is None
        with pytest.raises(UsageError, match="No background server recorded for env 'authenv'"):
            stop(project, "authenv")
    finally:
        kill_tree(pid)


def test_staging_validation_passes_and_feeds_the_gate(proj):
    from omgmagics.gates import check_gate

    project, bundle = proj
    cfg = project.root / "fast.yaml"
    cfg.write_text("validation: {rows: 200, load_requests: 200, load_rps: 100, concurrency: 4}\n")
    before = children()
    report = serve(project, "staging", str(cfg), port=0, bundle=str(bundle), validate=True)
    assert children() <= before  # the server stopped after validating
    result = report.data["result"]
    assert result["passed"], report.to_text()
    assert result["replay"]["label_mismatches"] == 0 and result["replay"]["max_score_diff"] == 0
    assert result["skew"]["ok"] and result["load"]["requests"] == 200
    gate = check_gate(project, 4)
    assert gate.status == "passed", gate.summary()
    # A bundle changed after validation fails the gate.
    (bundle / "data/omg/handler.py").write_text("# changed\n")
    try:
        gate = check_gate(project, 4)
        assert gate.status == "failed"
        assert "validated bundle unchanged" in gate.summary()
    finally:
        import shutil

        shutil.copyfile(project.root / "projectlib" / "handler.py", bundle / "data/omg/handler.py")
