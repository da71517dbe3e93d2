"""The rollout router under attack, with real processes on 127.0.0.1: a real router
(:func:`omgmagics.deploy.rollout.start_router`, as ``omg deploy cloud`` starts it) in front of real
model servers.

A browser page's drive-by requests (text/plain, a foreign Origin, a rebound Host) are refused before
anything is read or forwarded; the admin endpoints need the rollout's own token, which stays out of
the command line and sits in a 0600 state file; a token variable that is not set stops the router
from starting; an oversized body is a 413; and when no backend answers the client gets a 503 with
Retry-After, never a 502, while every answer a backend gave is passed through with its status.
Every process is stopped by a finalizer, also when a test fails."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest

from omgmagics.deploy.packaging import package_model
from omgmagics.deploy.process import ServerError
from omgmagics.deploy.rollout import start_router
from omgmagics.deploy.serving import start_server
from omgmagics.deploy.settings import resolve_settings
from omgmagics.deploy.state import admin_token, forget_router, router_state_path
from omgmagics.project import Project
from tests.helpers.deploy import children, copy_project, kill_tree, shared, stop_all

ENV = "production"
LIMIT = 8 * 2**20  # serving.max_body_mb's default, in bytes


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """Champion and challenger model servers (the same bundle) in a copy of the phase 4 project."""
    root = copy_project(shared(tmp_path_factory)["root"], tmp_path_factory.mktemp("router-attacks"))
    project = Project.at(root)
    bundle = Path(package_model(project, "champion").value)
    settings = resolve_settings(project, ENV, port=0)
    servers = []
    try:
        for role in ("champion", "challenger"):
            servers.append(start_server(project, settings, bundle, role=role, port=0, env=ENV))
        record = json.loads((bundle / "signature.json").read_text())["sample"][0]
        yield {"project": project, "bundle": bundle, "settings": settings, "record": record,
               "champion": servers[0], "challenger": servers[1]}
    finally:
        for server in servers:
            kill_tree(server.pid)
        stop_all(root)


@pytest.fixture
def router(backends, tmp_path):
    """start(**cfg overrides) -> (router process, admin token); every router stopped at the end."""
    started = []

    def start(**over):
        b = backends
        cfg = {"env": ENV, "strategy": "canary", "rollout_id": f"attack-{len(started)}",
               "history": str(tmp_path / "history.jsonl"), "steps": [50, 100],
               "window_requests": 1000, "max_error_rate": 0.5, "max_latency_p99_ms": 60000,
               "champion": {"url": b["champion"].url, "version": "p4-model/1",
                            "bundle": str(b["bundle"])},
               "challenger": {"url": b["challenger"].url, "version": "p4-model/1-copy",
                              "bundle": str(b["bundle"])},
               "auth_token_env": None, "allowed_hosts": [],
               "max_body_bytes": b["settings"].max_body_bytes, **over}
        proc, token = start_router(b["project"], ENV, cfg, host="127.0.0.1", port=0,
                                   log_file=tmp_path / f"router-{len(started)}.log")
        started.append(proc)
        return proc, token

    yield start
    for proc in started:
        kill_tree(proc.pid)
    forget_router(backends["project"], ENV)


def _status(url: str, token: str) -> dict:
    r = httpx.get(url + "/router/status", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HOST_MESSAGE = ("Host 'evil.example' is not an allowed name for this server; allowed: 127.0.0.1, "
                "::1, localhost (add names with serving.allowed_hosts)")
ORIGIN_MESSAGE = ("requests from the web origin 'https://evil.example' are not allowed (a browser "
                  "page may not call this server; add its host to serving.allowed_hosts if it "
                  "should)")


def test_drive_by_browser_requests_are_refused_before_they_reach_a_backend(router, backends):
    """text/plain is a CORS simple request (no preflight); DNS rebinding sends Host: evil.example;
    a cross-site fetch carries its Origin. On every route, with or without the admin token."""
    proc, token = router()
    url, record = proc.url, json.dumps(backends["record"])
    admin = {"authorization": f"Bearer {token}"}
    cases = [
        ("POST", "/predict", {"content-type": "text/plain"}, 415,
         "the body must be sent as Content-Type: application/json, got 'text/plain'"),
        ("POST", "/predict", {"content-type": "application/x-www-form-urlencoded"}, 415,
         "the body must be sent as Content-Type: application/json, got "
         "'application/x-www-form-urlencoded'"),
        ("POST", "/predict", {}, 415,
         "the body must be sent as Content-Type: application/json, got no Content-Type"),
        ("POST", "/predict", {"content-type": "application/json", "origin": "https://evil.example"},
         403, ORIGIN_MESSAGE),
        ("POST", "/predict", {"content-type": "application/json", "host": "evil.example"}, 421,
         HOST_MESSAGE),
        ("POST", "/predict", {"content-type": "application/json", "host": "evil.example:8080"}, 421,
         HOST_MESSAGE),
        ("POST", "/router/rollback", {**admin, "origin": "https://evil.example"}, 403,
         ORIGIN_MESSAGE),
        ("POST", "/router/rollback", {**admin, "host": "evil.example"}, 421, HOST_MESSAGE),
        ("GET", "/router/status", {**admin, "host": "evil.example"}, 421, HOST_MESSAGE),
        ("GET", "/router/status", {**admin, "origin": "https://evil.example"}, 403, ORIGIN_MESSAGE),
        ("GET", "/health", {"host": "evil.example"}, 421, HOST_MESSAGE),
        ("GET", "/ready", {"origin": "https://evil.example"}, 403, ORIGIN_MESSAGE),
        ("GET", "/metrics", {"host": "evil.example"}, 421, HOST_MESSAGE),
    ]
    with httpx.Client(base_url=url) as c:
        for method, path, headers, status, message in cases:
            r = c.request(method, path, headers=headers,
                          content=record if method == "POST" else None)
            assert (r.status_code, r.json()) == (status, {"detail": message}), (method, path, headers)
        after = _status(url, token)
        assert after["state"] == "canary" and after["share"] == 50
        assert after["totals"] == {"champion": 0, "challenger": 0, "challenger_errors": 0,
                                   "retried": 0, "failed": 0}  # nothing was forwarded
        ok = c.post("/predict", content=record,
                    headers={"content-type": "application/json; charset=utf-8", "origin": url})
        assert ok.status_code == 200 and ok.headers["x-served-by"] == "champion"


def test_admin_endpoints_need_the_rollouts_admin_token(router, backends, monkeypatch):
    monkeypatch.setenv("OMG_TEST_ROUTER_TOKEN", "serving-secret")
    proc, token = router(auth_token_env="OMG_TEST_ROUTER_TOKEN")
    project = backends["project"]
    assert admin_token(project, ENV) == token  # what every caller of the kit reads
    state_file = router_state_path(project, ENV)
    message = ("missing or wrong admin token: /router/status and /router/rollback need "
               "Authorization: Bearer <admin token>, the 'admin_token' of this rollout's state file "
               f"{state_file}")
    url = proc.url
    for headers in ({}, {"authorization": "Bearer " + "x" * len(token)},
                    {"authorization": token}, {"authorization": "Bearer serving-secret"}):
        for method, path in (("GET", "/router/status"), ("POST", "/router/rollback")):
            r = httpx.request(method, url + path, headers=headers)
            assert (r.status_code, r.json()) == (401, {"detail": message}), (path, headers)
            assert r.headers["www-authenticate"] == "Bearer"
    before = _status(url, token)
    assert (before["state"], before["share"], before["reason"]) == ("canary", 50, "")
    # /predict and /metrics keep the serving token (auth_token_env); /health and /ready stay open
    serving = {"authorization": "Bearer serving-secret"}
    record = backends["record"]
    r = httpx.post(url + "/predict", json=record)
    assert (r.status_code, r.json()) == (401, {"detail": "missing or wrong bearer token "
                                                         "(Authorization: Bearer ...)"})
    assert httpx.post(url + "/predict", json=record,
                      headers={"authorization": f"Bearer {token}"}).status_code == 401
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/metrics", headers=serving).status_code == 200
    assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/ready").status_code == 200
    assert _status(url, token)["totals"]["champion"] == 0  # refused before any backend saw them
    r = httpx.post(url + "/router/rollback", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["reason"]) == ("rolled_back",
                                                       "manual rollback (POST /router/rollback)")
    for _ in range(2):  # share 0: every request goes to the champion
        r = httpx.post(url + "/predict", json=record, headers=serving)
        assert r.status_code == 200 and r.headers["x-served-by"] == "champion"
    events = [e["event"] for e in _status(url, token)["events"]]
    assert events == ["start", "rollback"]


def test_the_admin_token_is_off_the_command_line_and_its_file_is_private(router, backends):
    proc, token = router()
    path = router_state_path(backends["project"], ENV)
    assert path == Path(backends["project"].root) / ".omg" / "rollouts" / "production.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["production.json"]  # no temporary left
    state = json.loads(path.read_text())
    assert state == {"env": ENV, "rollout_id": "attack-0", "router": proc.url, "pid": proc.pid,
                     "started": proc.started, "admin_token": token}
    assert len(token) >= 43  # secrets.token_urlsafe(32)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    assert b"omgmagics.deploy.router" in cmdline and token.encode() not in cmdline
    assert _status(proc.url, token)["state"] == "canary"
    proc2, token2 = router()  # the next rollout gets a new token; the old one opens nothing
    assert token2 != token and admin_token(backends["project"], ENV) == token2
    assert httpx.get(proc2.url + "/router/status",
                     headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_router_refuses_to_start_when_its_token_variable_is_unset(router, backends, monkeypatch):
    monkeypatch.delenv("OMG_TEST_UNSET_TOKEN", raising=False)
    before = children()
    with pytest.raises(ServerError) as info:
        router(auth_token_env="OMG_TEST_UNSET_TOKEN")
    assert str(info.value) == ("The router server exited while starting (code 3): auth_token_env "
                               "names OMG_TEST_UNSET_TOKEN, which is not set.")
    assert children() <= before
    assert not router_state_path(backends["project"], ENV).exists()


def test_oversized_bodies_get_413_from_the_router(router, backends):
    proc, token = router()
    url = proc.url
    big = b"[" + b" " * (20 * 2**20 - 2) + b"]"  # 20 MiB
    r = httpx.post(url + "/predict", content=big, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (413, {"detail": f"the body ({len(big)} bytes) exceeds the "
                                                         f"limit of {LIMIT} bytes "
                                                         "(serving.max_body_mb)"})

    def chunks():  # no Content-Length: counted while it streams in
        for _ in range(20):
            yield b" " * 2**20

    r = httpx.post(url + "/predict", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (413, {"detail": f"the body exceeds the limit of {LIMIT} "
                                                         "bytes (serving.max_body_mb)"})
    assert _status(url, token)["totals"]["champion"] == 0  # neither reached a backend
    r = httpx.post(url + "/predict", json=backends["record"])
    assert r.status_code == 200
    proc_small, _ = router(max_body_bytes=1000)  # the limit follows the config
    r = httpx.post(proc_small.url + "/predict", json=[backends["record"]] * 20)
    assert r.status_code == 413 and r.json()["detail"].endswith(
        "exceeds the limit of 1000 bytes (serving.max_body_mb)")


def test_no_answer_is_503_with_retry_after_and_answers_pass_through(router, backends):
    """The champion's own process: answered requests keep the backend's status (200, 422); a stopped
    process (SIGSTOP: connections queue, nothing answers) and a killed one give a 503 with
    Retry-After, never a 502; the request the stopped champion got is served once it resumes."""
    b = backends
    champion = start_server(b["project"], b["settings"], b["bundle"], role="champion-own", port=0,
                            env=ENV)
    gone = _free_port()
    try:
        proc, token = router(timeout_s=0.5,
                             champion={"url": champion.url, "version": "p4-model/1",
                                       "bundle": str(b["bundle"])},
                             challenger={"url": f"http://127.0.0.1:{gone}", "version": "gone/1",
                                         "bundle": str(b["bundle"])})
        url, record = proc.url, b["record"]
        with httpx.Client(base_url=url, timeout=30) as c:
            r1 = c.post("/predict", json=record)  # request 1 of the 50 % step: the champion
            r2 = c.post("/predict", json=record)  # request 2: the challenger, retried
            assert (r1.status_code, r1.headers["x-served-by"]) == (200, "champion")
            assert (r2.status_code, r2.headers["x-served-by"], r2.headers["x-retried"]) == (
                200, "champion", "challenger")
            r = c.post("/predict", json={**record, "age": "forty"})
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "age"

            os.kill(champion.pid, signal.SIGSTOP)
            try:
                r = c.post("/predict", json=record, headers={"x-request-id": "stalled-1"})
                assert r.status_code == 503
                assert r.headers["retry-after"] == "1" and r.headers["x-request-id"] == "stalled-1"
                assert r.json() == {"detail": "no backend answered: the champion did not answer "
                                              "within 0.5 s (it may still serve the request); "
                                              "retry in a moment"}
            finally:
                os.kill(champion.pid, signal.SIGCONT)
            deadline = time.monotonic() + 20  # it does serve it, and logs it
            logged: set[str] = set()
            while "stalled-1" not in logged and time.monotonic() < deadline:
                logged = {json.loads(line)["request_id"]
                          for p in (b["project"].monitoring_dir / "predictions").glob("*.jsonl")
                          for line in p.read_text().splitlines() if line.strip()}
                time.sleep(0.1)
            assert "stalled-1" in logged

            kill_tree(champion.pid)
            for _ in range(2):  # whichever backend the request is picked for
                r = c.post("/predict", json=record)
                assert r.status_code == 503 and r.headers["retry-after"] == "1"
                assert r.json() == {"detail": "no backend answered: the champion is unreachable "
                                              f"([Errno 111] Connect call failed ('127.0.0.1', "
                                              f"{champion.port})); retry in a moment"}
            assert c.get("/ready").status_code == 503
            totals = _status(url, token)["totals"]
            assert totals["failed"] == 3 and totals["retried"] >= 1
    finally:
        kill_tree(champion.pid)


def test_the_upstream_client_tells_busy_from_unreachable_and_retries_on_a_fresh_connection(backends):
    """All connections in use is `Busy` (nothing was sent), not a failure of the backend; a pooled
    connection the backend closed is retried once on a *fresh* connection, not on another pooled
    one that may be just as stale."""
    from omgmagics.deploy.loadgen import Connection
    from omgmagics.deploy.router import Busy, Upstream

    url = backends["champion"].url
    closer = socket.create_server(("127.0.0.1", 0))  # accepts, then closes: stale keep-alives

    async def busy() -> str:
        up = Upstream(url, timeout=0.3, max_connections=1)
        await up.slots.acquire()  # the one connection is in use
        with pytest.raises(Busy) as info:
            await up.request("GET", "/health")
        up.slots.release()
        assert (await up.request("GET", "/health"))[0] == 200
        up.close()
        return str(info.value)

    async def stale() -> int:
        up = Upstream(url, timeout=5)
        conns = [Connection("127.0.0.1", closer.getsockname()[1]) for _ in range(2)]
        for conn in conns:
            await conn.open()
        accepted = threading.Thread(target=lambda: [closer.accept()[0].close() for _ in conns])
        accepted.start()
        await asyncio.get_running_loop().run_in_executor(None, accepted.join)
        up.idle = [(conn, time.perf_counter()) for conn in conns]
        status = (await up.request("GET", "/health"))[0]
        up.close()
        return status

    try:
        assert asyncio.run(busy()) == "all 1 connections to it stayed busy for 0.3 s"
        assert asyncio.run(stale()) == 200
    finally:
        closer.close()
