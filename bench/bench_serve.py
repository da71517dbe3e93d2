"""The kit's model server vs ``mlflow models serve --env-manager local`` on the same bundle.

One bundle (xgboost, 200 trees, the Adult feature pipeline; the bundle is also an MLflow pyfunc
model) is served by both, each as one process with one worker and one thread per math library, on
loopback. Measured in the same run, against each in turn:

- latency at a fixed single-record rate (200 requests/s, 2,000 requests, open loop: latency counts
  from each request's scheduled time);
- the highest sustained throughput: 8 clients sending single records back to back for 8 s.

Targets: p99 <= 20 ms at 200 requests/s on 2 cores; throughput >= 3x mlflow's. The load generator
only talks to 127.0.0.1 and is bounded in requests and time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RATE = 200.0
N_FIXED = 2000
CONCURRENCY = 8
SECONDS = 8.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout} s")


def _measure(url: str, bodies: list[bytes]) -> dict:
    from omgmagics.deploy import loadgen

    loadgen.replay(url, bodies[:200], concurrency=4, keep_bodies=False)  # warm-up
    fixed = loadgen.fixed_rate(url, bodies, rate=RATE, n=N_FIXED, max_seconds=60).summary()
    tp = loadgen.throughput(url, bodies, concurrency=CONCURRENCY, seconds=SECONDS).summary()
    return {"p50_ms_at_200rps": fixed["p50_ms"], "p99_ms_at_200rps": fixed["p99_ms"],
            "non_200_at_200rps": fixed["non_200"] + fixed["transport_errors"],
            "throughput_rps": tp["ok"] / tp["elapsed_s"], "throughput_p99_ms": tp["p99_ms"]}


def run() -> dict:
    import pandas as pd
    from _phase4_project import build, fit

    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.packaging import package_model
    from omgmagics.deploy.process import SERVER_ENV, stop_process
    from omgmagics.deploy.serving import start_server
    from omgmagics.deploy.settings import resolve_settings
    from omgmagics.deploy.staging import split_valid

    tmp = Path(tempfile.mkdtemp(prefix="omg-bench-serve-"))
    procs: list[int] = []
    mlflow_proc = None
    try:
        project = build(tmp)
        model = fit(project, "xgboost", {"n_estimators": 200, "max_depth": 6}, "xgb200")
        bundle = Path(package_model(project, str(model)).value)
        served = ServingBundle.load(bundle)
        _, valid, _ = split_valid(served, pd.read_parquet(project.processed_dir / "val.parquet"))
        kit_bodies = [json.dumps(r).encode() for r in valid]
        ml_bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in valid]

        settings = resolve_settings(project, "bench", port=0)
        kit = start_server(project, settings, bundle, role="server")
        procs.append(kit.pid)
        kit_fig = _measure(kit.url + "/predict", kit_bodies)
        stop_process(kit.pid)

        port = _free_port()
        bindir = str(Path(sys.executable).parent)  # mlflow execs `uvicorn` from the PATH
        env = {**os.environ, **SERVER_ENV, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
        mlflow_bin = str(Path(bindir) / "mlflow")
        mlflow_proc = subprocess.Popen(
            [mlflow_bin, "models", "serve", "-m", str(bundle), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        procs.append(mlflow_proc.pid)
        _wait(f"http://127.0.0.1:{port}/ping", mlflow_proc)
        check = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=ml_bodies[0],
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(check, timeout=10) as r:  # noqa: S310 - loopback
            answer = json.loads(r.read())
        peer_fig = _measure(f"http://127.0.0.1:{port}/invocations", ml_bodies)
    finally:
        for pid in procs:
            stop_process(pid)
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = kit_fig["throughput_rps"] / peer_fig["throughput_rps"]
    met = kit_fig["p99_ms_at_200rps"] <= 20 and kit_fig["non_200_at_200rps"] == 0 and ratio >= 3
    cores = os.cpu_count()
    return {
        "title": "model server: kit vs mlflow models serve (same bundle, xgboost 200 trees)",
        "figures": {k: round(v, 3) if isinstance(v, float) else v for k, v in kit_fig.items()},
        "peer": {"name": "mlflow models serve --env-manager local (1 worker)",
                 **{k: round(v, 3) if isinstance(v, float) else v for k, v in peer_fig.items()}},
        "ratio": round(ratio, 2),
        "target": "p99 <= 20 ms at 200 req/s on 2 cores; throughput >= 3x mlflow's",
        "met": met,
        "notes": (f"{cores} cores; one process and one worker each, OMP/MKL/BLAS threads 1; "
                  f"single-record requests from {len(valid)} validation rows; fixed rate "
                  f"{RATE:g}/s x {N_FIXED}, throughput {CONCURRENCY} clients x {SECONDS:g} s. "
                  f"mlflow answered {str(answer)[:80]}."),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
