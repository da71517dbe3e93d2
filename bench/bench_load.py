"""Bounded load on loopback: the staging server and the canary router, 5 % malformed requests.

The demo project's brief (``brief.constraints`` of omg.yaml: ``throughput_rps``, ``latency_p99_ms``)
sets the rate and the latency limit. One bundle (xgboost, 100 trees, the Adult feature pipeline) is
packaged twice (champion ``1`` and challenger ``2``). In the same run, each gets 20,000 single-record
requests at the brief's rate, open loop (latency counts from each request's scheduled time), with
every 20th request malformed (not JSON, a missing field, a wrong type, an unknown field, an empty
batch, in turn):

- **kit (router)**: the canary router in front of two server processes (champion and challenger,
  steps 10/25/50/100 %, window 500 challenger requests): what production traffic goes through;
- **peer (server alone)**: one staging server with no router: what the router costs is the ratio of
  the two p99 latencies. ``mlflow models serve`` is bench_serve's peer; the question here is the
  router's overhead and the kit's behaviour under bad input, so the peer is the kit's own server.

Checks for both: zero 5xx and zero transport errors, every malformed request answered 422, p99
within the brief's limit, and every accepted prediction in the prediction log (records counted per
environment after a graceful stop flushed the log). Bounded: 20,000 requests and 150 s per target.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

N = int(os.environ.get("OMG_BENCH_LOAD_N", "20000"))  # smaller only for a smoke test
MALFORMED_EVERY = 20  # 5 %
MAX_SECONDS = 150.0


def _malformed(good: dict, k: int) -> bytes:
    """The k-th kind of malformed request (all must get 422)."""
    kind = k % 5
    if kind == 0:
        return b'{"age": 39, "workclass": '  # not JSON (truncated)
    rec = dict(good)
    if kind == 1:
        rec.pop(next(iter(rec)))  # a missing field
    elif kind == 2:
        key = next(k for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        rec[key] = "not a number"  # a wrong type
    elif kind == 3:
        rec["unexpected_field"] = 1  # an unknown field
    else:
        return b"[]"  # an empty batch
    return json.dumps(rec).encode()


def _bodies(valid: list[dict]) -> tuple[list[bytes], list[bool]]:
    bodies, bad = [], []
    for i in range(N):
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            bodies.append(_malformed(valid[i % len(valid)], i // MALFORMED_EVERY))
            bad.append(True)
        else:
            bodies.append(json.dumps(valid[i % len(valid)]).encode())
            bad.append(False)
    return bodies, bad


def _score(res, bad: list[bool], latency_limit: float) -> dict:
    summary = res.summary()
    statuses = res.statuses
    n = len(statuses)
    malformed = [s for s, b in zip(statuses, bad[:n], strict=True) if b]
    good = [s for s, b in zip(statuses, bad[:n], strict=True) if not b]
    return {"requests": n, "rate_rps": round(n / res.elapsed_s, 1),
            "p50_ms": round(summary["p50_ms"], 2), "p99_ms": round(summary["p99_ms"], 2),
            "max_ms": round(summary["max_ms"], 1),
            "5xx": sum(1 for s in statuses if s >= 500), "transport_errors": res.errors,
            "malformed": len(malformed), "malformed_422": sum(1 for s in malformed if s == 422),
            "accepted_200": sum(1 for s in good if s == 200),
            "p99_within_limit": summary["p99_ms"] <= latency_limit}


def _log_count(project, env: str) -> int:
    from omgmagics.deploy.predlog import read_log
    from omgmagics.deploy.serving import prediction_log_dir

    return sum(1 for r in read_log(prediction_log_dir(project))
               if r.get("env") == env and r.get("status", "ok") == "ok")


def run() -> dict:
    import pandas as pd
    from _phase4_project import build, fit

    from omgmagics.deploy import loadgen, process
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.packaging import package_model
    from omgmagics.deploy.rollout import start_router
    from omgmagics.deploy.serving import start_server
    from omgmagics.deploy.settings import resolve_settings
    from omgmagics.deploy.staging import split_valid

    tmp = Path(tempfile.mkdtemp(prefix="omg-bench-load-"))
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    procs: list[int] = []
    try:
        project = build(tmp)
        rate = float(project.config.get_path("brief.constraints.throughput_rps"))
        limit = float(project.config.get_path("brief.constraints.latency_p99_ms"))
        model = fit(project, "xgboost", {"n_estimators": 100, "max_depth": 6}, "xgb100")
        champ_path = Path(package_model(project, str(model), version="1").value)
        chal_path = Path(package_model(project, str(model), version="2").value)
        served = ServingBundle.load(champ_path)
        _, valid, _ = split_valid(served, pd.read_parquet(project.processed_dir / "val.parquet"))
        bodies, bad = _bodies(valid)
        warm = [json.dumps(r).encode() for r in valid[:200]]

        # peer: the staging server alone
        settings = resolve_settings(project, "staging", port=0)
        server = start_server(project, settings, champ_path, role="server", port=0, env="staging")
        procs.append(server.pid)
        loadgen.replay(server.url + "/predict", warm, concurrency=2, keep_bodies=False)
        t0 = time.perf_counter()
        direct = loadgen.fixed_rate(server.url + "/predict", bodies, rate=rate, n=N,
                                    max_seconds=MAX_SECONDS)
        direct_wall = time.perf_counter() - t0
        process.stop_process(server.pid)  # SIGTERM: the server flushes its log
        peer = _score(direct, bad, limit)
        peer["logged"] = _log_count(project, "staging") - len(warm)

        # kit: the canary router in front of champion and challenger
        prod = resolve_settings(project, "production", port=0)
        champ = start_server(project, prod, champ_path, role="champion", port=0, env="production")
        procs.append(champ.pid)
        chal = start_server(project, prod, chal_path, role="challenger", port=0, env="production")
        procs.append(chal.pid)
        cfg = {"env": "production", "strategy": "canary", "rollout_id": "bench-load",
               "champion": {"url": champ.url, "version": "bench/1", "bundle": str(champ_path)},
               "challenger": {"url": chal.url, "version": "bench/2", "bundle": str(chal_path)},
               "history": str(tmp / "history.jsonl"), "steps": [10, 25, 50, 100],
               "window_requests": 500, "max_error_rate": 0.01, "max_latency_p99_ms": limit,
               "auth_token_env": None}
        router, admin = start_router(project, "production", cfg, host="127.0.0.1", port=0,
                                     log_file=tmp / "router.log")
        procs.append(router.pid)
        loadgen.replay(router.url + "/predict", warm, concurrency=2, keep_bodies=False)
        t0 = time.perf_counter()
        routed = loadgen.fixed_rate(router.url + "/predict", bodies, rate=rate, n=N,
                                    max_seconds=MAX_SECONDS)
        routed_wall = time.perf_counter() - t0
        import urllib.request

        status = urllib.request.Request(router.url + "/router/status",
                                        headers={"Authorization": f"Bearer {admin}"})
        with urllib.request.urlopen(status, timeout=5) as r:  # noqa: S310
            rollout = json.loads(r.read())
        for pid in (router.pid, chal.pid, champ.pid):
            process.stop_process(pid)
        kit = _score(routed, bad, limit)
        kit["logged"] = _log_count(project, "production") - len(warm)
        kit["rollout_state"] = rollout.get("state")
    finally:
        for pid in procs:
            process.stop_process(pid)
        shutil.rmtree(tmp, ignore_errors=True)

    def ok(f: dict) -> bool:
        return (f["5xx"] == 0 and f["transport_errors"] == 0 and f["malformed"] == f["malformed_422"]
                and f["p99_within_limit"] and f["logged"] == f["accepted_200"]
                and f["accepted_200"] + f["malformed"] == f["requests"] == N)

    ratio = kit["p99_ms"] / peer["p99_ms"]
    return {
        "title": f"load: {N} requests at the brief's {rate:g} req/s, 5 % malformed (router vs server)",
        "figures": {k: v for k, v in kit.items() if k != "p99_within_limit"},
        "peer": {"name": "the kit's staging server alone (no router)",
                 **{k: v for k, v in peer.items() if k != "p99_within_limit"}},
        "ratio": round(ratio, 2),
        "target": (f"both: 0 5xx, every malformed one 422, p99 <= {limit:g} ms (brief), every "
                   "accepted prediction logged"),
        "met": ok(kit) and ok(peer),
        "notes": (f"{os.cpu_count()} cores (1-min load average {load_before:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after: other jobs share them), loopback, one process "
                  "per server, xgboost 100 trees; "
                  f"open loop at {rate:g}/s (wall {routed_wall:.0f} s router, {direct_wall:.0f} s "
                  "server); malformed kinds: truncated JSON, missing field, wrong type, unknown "
                  "field, empty batch; ratio = router p99 / server p99; 'logged' counts the "
                  "prediction-log records of the environment minus the 200 warm-up requests."),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
