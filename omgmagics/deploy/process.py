"""Server processes (core layer): start, wait until ready, record, stop.

The caller binds the listening socket itself and hands it to the child (``pass_fds``), so a port in
use is a clear :class:`UsageError` here, before any process starts, and ``port 0`` gets a free port
whose number is known at once. A background server's pid, port and log file are recorded in
``<project>/.omg/servers/ENV.json``; :func:`stop_env` stops what that file lists (after checking that
each pid still runs one of the kit's servers) and removes it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import OmgError, UsageError

MODULES = ("omgmagics.deploy.server", "omgmagics.deploy.router")
# A server answers one small request at a time: a thread pool per library (OpenMP, MKL, BLAS) only
# adds hand-offs, and on a busy machine oversubscription costs tens of milliseconds per request.
SERVER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "PYTHONDONTWRITEBYTECODE": "1"}
READY_TIMEOUT_S = 120.0


class ServerError(OmgError, RuntimeError):
    """A server process that failed to start or to answer."""


@dataclass
class ServerProcess:
    """One started server: enough to talk to it and to stop it."""

    role: str
    pid: int
    host: str
    port: int
    log: str
    bundle: str | None = None
    started: str = field(default_factory=clock.stamp)
    proc: Any = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "proc"} | \
            {"url": self.url}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port).

    Raises
    ------
    UsageError
        When the port is in use or the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"Port {port} on {host} is already in use. Stop what listens there (a "
                             "server of this kit: `omg deploy stop --env ENV`), or pass another "
                             "--port (0 picks a free one).") from None
        raise UsageError(f"Cannot listen on {host}:{port}: {exc.strerror}. Check --host / --port "
                         "(or serving.host / serving.port in omg.yaml).") from None
    sock.set_inheritable(True)
    return sock


def spawn(module: str, args: list[str], *, role: str, host: str, port: int, log_file: Path,
          cwd: Path, bundle: str | None = None, env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``python -m module`` on a freshly bound socket, detached in its own session."""
    sock = bind(host, port)
    fd = sock.fileno()
    bound_port = sock.getsockname()[1]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, "--fd", str(fd), *args],
                                cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, pass_fds=(fd,), start_new_session=True,
                                env={**os.environ, **SERVER_ENV, **(env or {})})
    sock.close()  # the child holds its own copy
    return ServerProcess(role, proc.pid, host, bound_port, str(log_file), bundle, proc=proc)


def _get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URL
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tail(path: str | os.PathLike, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_ready(server: ServerProcess, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll ``/ready`` until 200; on a dead process or a timeout stop it and raise ServerError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise ServerError(f"The {server.role} server exited while starting (code "
                              f"{server.proc.returncode}): {_reason(server.log)}")
        try:
            status, _ = _get(server.url + "/ready", timeout=2.0)
            if status == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    stop_process(server.pid)
    raise ServerError(f"The {server.role} server did not become ready within {timeout:.0f} s; it was "
                      f"stopped. Log ({server.log}):\n{tail(server.log)}")


def _reason(log: str) -> str:
    text = tail(log)
    lines = [line for line in text.splitlines() if line.startswith("omg server:") or
             line.startswith("omg router:")]
    return lines[-1].split(":", 1)[1].strip() if lines else f"see {log}:\n{text}"


def is_kit_server(pid: int) -> bool:
    """Whether `pid` runs one of the kit's server modules (guards against a reused pid)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        try:
            import psutil

            cmd = " ".join(psutil.Process(pid).cmdline())
        except Exception:  # noqa: BLE001 - gone or not ours
            return False
    return any(m in cmd for m in MODULES)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop_process(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM (graceful: logs are flushed), then SIGKILL after `timeout`. True if it was running."""
    if not alive(pid):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.05)
    return True


# --- state of background servers ----------------------------------------------------------------
def state_path(project: Any, env: str) -> Path:
    from .settings import check_env_name

    return Path(project.root) / ".omg" / "servers" / f"{check_env_name(env)}.json"


def write_state(project: Any, env: str, processes: list[ServerProcess], **extra: Any) -> Path:
    from ..atomic import write_json

    return write_json(state_path(project, env), {"env": env, "processes":
                                                  [p.to_json() for p in processes], **extra})


def read_state(project: Any, env: str) -> dict[str, Any] | None:
    path = state_path(project, env)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"env": env, "processes": [], "damaged": True}


def running_envs(project: Any) -> list[str]:
    folder = Path(project.root) / ".omg" / "servers"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def stop_env(project: Any, env: str) -> list[dict[str, Any]]:
    """Stop the background servers of `env`; returns what was done for each process.

    Raises
    ------
    UsageError
        When nothing was started in the background for `env`.
    """
    state = read_state(project, env)
    if state is None:
        envs = running_envs(project)
        raise UsageError(f"No background server recorded for env '{env}' in this project."
                         + (f" Running: {', '.join(envs)}." if envs else
                            " Start one with `omg deploy serve --env ENV --background`."))
    done = []
    for p in state.get("processes", []):
        pid = int(p.get("pid", 0))
        if pid and alive(pid) and is_kit_server(pid):
            stop_process(pid)
            done.append({**p, "action": "stopped"})
        else:
            done.append({**p, "action": "was not running"})
    state_path(project, env).unlink(missing_ok=True)
    return done
