"""``omg ml ui``: start MLflow's UI and optuna-dashboard on the project's own stores (core layer).

Both run as detached processes bound to 127.0.0.1; their pids and addresses are kept in
``.omg/ui.json`` so ``omg ml ui --stop`` ends them. Nothing is started twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .atomic import write_json
from .errors import OmgError, UsageError
from .results import Report


def _state_file(project: Any) -> Path:
    return Path(project.root) / ".omg" / "ui.json"


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise OmgError(f"{url} did not start (exit {proc.returncode}). Its log: {log}\n"
                           + log.read_text(errors="replace")[-1500:])
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise OmgError(f"{url} did not answer within {timeout:.0f} s. Its log: {log}")


def _spawn(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True)


def start_uis(project: Any, port: int = 5000, dashboard_port: int = 8080) -> Report:
    """Start the MLflow UI (and optuna-dashboard when the project has a study store)."""
    from .modeling.tracking import tracking_uri

    state_file = _state_file(project)
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        running = {k: v for k, v in state.items() if _alive(v["pid"])}
        if running:
            return Report(title="The project's UIs are already running",
                          summary={k: v["url"] for k, v in running.items()},
                          messages=["Stop them with `omg ml ui --stop`."])
    uri = tracking_uri(project)
    if not uri.startswith("sqlite:"):
        from .redact import redact_uri

        shown = redact_uri(uri)
        return Report(title=f"The project tracks to a server: open {shown}",
                      summary={"mlflow": shown})
    for p in (port, dashboard_port):
        if not port_free(p):
            raise UsageError(f"Port {p} on 127.0.0.1 is in use. Pass a free one with --port / "
                             "--dashboard-port.")
    root = Path(project.root)
    state: dict[str, Any] = {}
    artifacts = (root / "mlartifacts").as_uri()
    mlflow_cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                  "--default-artifact-root", artifacts, "--host", "127.0.0.1", "--port", str(port)]
    proc = _spawn(mlflow_cmd, root / ".omg" / "ui-mlflow.log", root)
    url = f"http://127.0.0.1:{port}"
    _wait_http(url, proc, root / ".omg" / "ui-mlflow.log")
    state["mlflow"] = {"pid": proc.pid, "url": url}
    optuna_db = root / "optuna.db"
    try:
        _start_dashboard(root, optuna_db, dashboard_port, state)
    except BaseException:
        _kill(proc.pid)  # never leave a half-started pair behind
        raise
    write_json(state_file, state)
    return Report(title="Tracking UIs started on 127.0.0.1",
                  summary={k: v["url"] for k, v in state.items()},
                  messages=["Stop them with `omg ml ui --stop`."] +
                  ([] if optuna_db.is_file() else ["No Optuna study yet: optuna-dashboard not started."]),
                  value={k: v["url"] for k, v in state.items()})


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def _start_dashboard(root: Path, optuna_db: Path, dashboard_port: int, state: dict[str, Any]) -> None:
    if optuna_db.is_file():
        # optuna-dashboard has no `python -m` entry point: use its console script beside python.
        dash = [str(Path(sys.executable).with_name("optuna-dashboard")), f"sqlite:///{optuna_db}",
                "--host", "127.0.0.1", "--port", str(dashboard_port)]
        proc2 = _spawn(dash, root / ".omg" / "ui-optuna.log", root)
        url2 = f"http://127.0.0.1:{dashboard_port}"
        _wait_http(url2, proc2, root / ".omg" / "ui-optuna.log")
        state["optuna-dashboard"] = {"pid": proc2.pid, "url": url2}


def stop_uis(project: Any) -> Report:
    """Stop the UIs started by :func:`start_uis`."""
    state_file = _state_file(project)
    if not state_file.is_file():
        return Report(title="No UI of this project is running")
    state = json.loads(state_file.read_text())
    stopped = []
    for name, info in state.items():
        if _alive(info["pid"]):
            _kill(info["pid"])
            stopped.append(name)
    state_file.unlink()
    return Report(title=f"Stopped: {', '.join(stopped) or 'nothing was running'}")
