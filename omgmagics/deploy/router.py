"""The traffic-splitting router (core layer, run as its own process) for canary and blue-green.

Champion and challenger are separate server processes; the router forwards ``POST /predict`` to one
of them. The challenger's share follows ``steps`` (e.g. 10 -> 25 -> 50 -> 100 %): deterministically,
request *n* of a step goes to the challenger when ``floor(n * share / 100)`` moves, so a 10 % step
sends exactly every tenth request. After each window of ``window`` challenger requests within the
thresholds the share steps up; after the window at 100 % the challenger is promoted. A breach rolls
back to 0 % at once, as soon as the window can no longer pass: more errors (5xx or no answer) than
``max_error_rate`` allows, or more requests slower than ``max_latency_p99_ms`` than a p99 allows
(1 % of the window). A challenger request that fails is retried on the champion, so the client gets an
answer: no request is lost. ``--strategy blue-green`` is the same machinery with ``steps: [100]``.

Every change is appended to the deployment history (JSON lines). ``GET /router/status`` shows the
state; ``POST /router/rollback`` rolls back by hand.

Run ``python -m omgmagics.deploy.router --config-json JSON [--fd N]`` (see
:mod:`omgmagics.deploy.rollout`).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request)
# from the enclosing function's scope at definition time.
import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

CANARY, PROMOTED, ROLLED_BACK = "canary", "promoted", "rolled_back"
FORWARD_HEADERS = ("content-type", "authorization", "x-request-id")


def append_event(path: str | os.PathLike, event: dict[str, Any]) -> None:
    """Append one JSON line with a single write (whole lines, several writers)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(event, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class Rollout:
    """The stepping policy: which backend gets the next request, and what a window decides.

    Parameters
    ----------
    steps : list of float
        Challenger shares in percent, increasing, ending at 100.
    window : int
        Challenger requests per step.
    max_error_rate : float
        Largest share of challenger errors in a window.
    max_latency_p99_ms : float
        Largest p99 of challenger latency in a window.
    on_event : callable
        ``on_event(dict)`` for every step, promotion and rollback.
    """

    def __init__(self, steps: list[float], window: int, max_error_rate: float,
                 max_latency_p99_ms: float, on_event: Any = None):
        self.steps = [float(s) for s in steps]
        self.window = int(window)
        self.max_error_rate = float(max_error_rate)
        self.max_p99 = float(max_latency_p99_ms)
        self.allowed_errors = math.floor(self.max_error_rate * self.window + 1e-9)
        self.allowed_slow = math.floor(0.01 * self.window + 1e-9)
        self.on_event = on_event or (lambda e: None)
        self.state = CANARY
        self.step = 0
        self.n = 0
        self._reset()
        self.totals = {"champion": 0, "challenger": 0, "challenger_errors": 0, "retried": 0,
                       "failed": 0}
        self.reason = ""

    def _reset(self) -> None:
        self.count = 0
        self.errors = 0
        self.slow = 0
        self.latencies: list[float] = []

    @property
    def share(self) -> float:
        if self.state == PROMOTED:
            return 100.0
        if self.state == ROLLED_BACK:
            return 0.0
        return self.steps[self.step]

    def pick(self) -> str:
        """``challenger`` or ``champion`` for the next request."""
        if self.state != CANARY:
            return "challenger" if self.state == PROMOTED else "champion"
        self.n += 1
        s = self.share / 100
        return "challenger" if math.floor(self.n * s + 1e-9) > math.floor((self.n - 1) * s + 1e-9) \
            else "champion"

    def window_stats(self) -> dict[str, Any]:
        import numpy as np

        lat = np.asarray(self.latencies) if self.latencies else None
        return {"requests": self.count, "errors": self.errors,
                "error_rate": self.errors / self.count if self.count else 0.0,
                "p99_ms": float(np.percentile(lat, 99)) if lat is not None else None,
                "slow": self.slow}

    def record(self, latency_ms: float, error: bool) -> None:
        """Account one challenger request; may step up, promote or roll back."""
        if self.state != CANARY:
            return
        self.count += 1
        self.errors += int(error)
        if not error:
            self.latencies.append(latency_ms)
            self.slow += int(latency_ms > self.max_p99)
        if self.errors > self.allowed_errors:
            self.rollback(f"challenger error rate over {self.max_error_rate:.2%}: {self.errors} "
                          f"error(s) in {self.count} request(s) of a {self.window}-request window")
        elif self.slow > self.allowed_slow:
            self.rollback(f"challenger p99 latency over {self.max_p99:g} ms: {self.slow} request(s) "
                          f"slower in {self.count} of a {self.window}-request window")
        elif self.count >= self.window:
            stats = self.window_stats()
            previous = self.share
            if self.step == len(self.steps) - 1:
                self.state = PROMOTED
                self.on_event({"event": "promoted", "share": 100.0, "previous_share": previous,
                               "window": stats})
            else:
                self.step += 1
                self.n = 0
                self.on_event({"event": "step", "share": self.share, "previous_share": previous,
                               "window": stats})
            self._reset()

    def rollback(self, reason: str) -> None:
        if self.state == ROLLED_BACK:
            return
        previous = self.share
        stats = self.window_stats()
        self.state, self.reason = ROLLED_BACK, reason
        self.on_event({"event": "rollback", "share": 0.0, "previous_share": previous,
                       "window": stats, "reason": reason})

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "share": self.share, "step": self.step, "steps": self.steps,
                "window_requests": self.window, "window": self.window_stats(),
                "thresholds": {"max_error_rate": self.max_error_rate,
                               "max_latency_p99_ms": self.max_p99},
                "totals": dict(self.totals), "reason": self.reason}


class Upstream:
    """Keep-alive HTTP/1.1 connections to one backend (the load generator's lean client: the
    router's own overhead counts in the challenger's latency, so it has to be small)."""

    def __init__(self, url: str, timeout: float = 10.0, keep: int = 64):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.timeout, self.keep = timeout, keep
        self.idle: list[tuple[Any, float]] = []  # with the time each was last used

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """The backend's answer; a reused connection the backend closed meanwhile is retried once
        on a fresh one. Raises OSError / ConnectionError / TimeoutError when there is no answer."""
        import asyncio
        import time

        from .loadgen import IDLE_S, Connection

        for attempt in (0, 1):
            conn = None
            while self.idle and conn is None:
                conn, used = self.idle.pop()
                if time.perf_counter() - used > IDLE_S:  # the backend may be closing it now
                    conn.close()
                    conn = None
            reused = conn is not None
            conn = conn or Connection(self.host, self.port)
            try:
                out = await asyncio.wait_for(conn.request(method, path, body, headers),
                                             self.timeout)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError,
                    IndexError) as exc:
                conn.close()
                if isinstance(exc, TimeoutError):  # it got the request and may still serve it
                    raise
                if reused and attempt == 0:
                    continue  # the backend closed an idle connection: nothing was processed
                raise ConnectionError(str(exc) or type(exc).__name__) from None
            except BaseException:
                conn.close()
                raise
            if conn.writer is not None and len(self.idle) < self.keep:
                self.idle.append((conn, time.perf_counter()))
            else:
                conn.close()
            return out
        raise ConnectionError("no answer")

    def close(self) -> None:
        for conn, _ in self.idle:
            conn.close()
        self.idle = []


def create_app(cfg: dict[str, Any]) -> Any:
    """The router application for the backends and policy in `cfg`."""

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, Response

    history = cfg["history"]
    base = {"env": cfg["env"], "strategy": cfg["strategy"], "rollout_id": cfg["rollout_id"],
            "champion": cfg["champion"]["version"], "challenger": cfg["challenger"]["version"]}
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        full = {"time": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"), **base, **event}
        events.append(full)
        append_event(history, full)

    policy = Rollout(cfg["steps"], cfg["window_requests"], cfg["max_error_rate"],
                     cfg["max_latency_p99_ms"], on_event)
    timeout = float(cfg.get("timeout_s", 10.0))
    upstream = {role: Upstream(cfg[role]["url"], timeout) for role in ("champion", "challenger")}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        on_event({"event": "start", "share": policy.share, "previous_share": 0.0,
                  "window": policy.window_stats()})
        yield
        for up in upstream.values():
            up.close()

    app = FastAPI(title="omg router", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)

    async def forward(target: str, body: bytes, headers: dict[str, str]) -> tuple[Any, str]:
        """(the answer, "") or (None, why there is none: "timeout" or "unreachable")."""
        try:
            return await upstream[target].request("POST", "/predict", body, headers), ""
        except TimeoutError:
            return None, "timeout"
        except OSError:  # refused, reset, no route to the host
            return None, "unreachable"

    def passthrough(resp: Any, served_by: str, retried: bool) -> Response:
        status, hdrs, content = resp
        headers = {k: v for k, v in hdrs.items()
                   if k in ("content-type", "x-request-id", "x-model-version")}
        headers["x-served-by"] = served_by
        if retried:
            headers["x-retried"] = "challenger"
        return Response(content, status_code=status, headers=headers)

    async def predict(request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_HEADERS}
        headers.setdefault("x-request-id", uuid.uuid4().hex)
        target = policy.pick()
        retried = False
        if target == "challenger":
            t0 = time.perf_counter()
            resp, _ = await forward("challenger", body, headers)
            ms = (time.perf_counter() - t0) * 1000
            error = resp is None or resp[0] >= 500
            policy.totals["challenger"] += 1
            policy.totals["challenger_errors"] += int(error)
            policy.record(ms, error)
            if not error:
                return passthrough(resp, "challenger", False)
            retried = True
            policy.totals["retried"] += 1
        resp, why = await forward("champion", body, headers)
        policy.totals["champion"] += 1
        if resp is None:
            policy.totals["failed"] += 1
            rid = {"x-request-id": headers["x-request-id"]}
            if why == "timeout":  # the champion may still answer (and log) it: a gateway timeout
                return JSONResponse({"detail": f"the champion did not answer within {timeout:g} s"},
                                    status_code=504, headers=rid)
            return JSONResponse({"detail": "no backend answered (champion unreachable)"},
                                status_code=502, headers=rid)
        return passthrough(resp, "champion", retried)

    @app.get("/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        try:
            ok = (await upstream["champion"].request("GET", "/ready"))[0] == 200
        except OSError:
            ok = False
        return JSONResponse({"status": "ready" if ok else "champion not ready"},
                            status_code=200 if ok else 503)

    @app.get("/router/status")
    async def status() -> Response:
        return JSONResponse({**policy.status(), "champion": cfg["champion"],
                             "challenger": cfg["challenger"], "events": events})

    @app.post("/router/rollback")
    async def rollback(request: Request) -> Response:
        token = cfg.get("auth_token_env") and os.environ.get(cfg["auth_token_env"])
        if token:
            import hmac

            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, f"Bearer {token}".encode()):
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        policy.rollback("manual rollback (POST /router/rollback)")
        return JSONResponse(policy.status())

    @app.get("/metrics")
    async def metrics() -> Response:
        t = policy.totals
        lines = ["# HELP omg_router_requests_total Requests forwarded, by backend.",
                 "# TYPE omg_router_requests_total counter"]
        lines += [f'omg_router_requests_total{{backend="{b}"}} {t[b]}'
                  for b in ("champion", "challenger")]
        lines += ["# HELP omg_router_challenger_errors_total Challenger errors (5xx, no answer).",
                  "# TYPE omg_router_challenger_errors_total counter",
                  f"omg_router_challenger_errors_total {t['challenger_errors']}",
                  "# HELP omg_router_retries_total Challenger failures retried on the champion.",
                  "# TYPE omg_router_retries_total counter", f"omg_router_retries_total {t['retried']}",
                  "# HELP omg_router_challenger_share Current challenger share (percent).",
                  "# TYPE omg_router_challenger_share gauge",
                  f"omg_router_challenger_share {policy.share}",
                  "# HELP omg_router_state 1 for the current rollout state.",
                  "# TYPE omg_router_state gauge"]
        lines += [f'omg_router_state{{state="{s}"}} {int(policy.state == s)}'
                  for s in (CANARY, PROMOTED, ROLLED_BACK)]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    # The hot path is a plain Starlette route: FastAPI's dependency solving would add about 0.1 ms
    # per request and this endpoint reads the raw body itself.
    from starlette.routing import Route

    app.router.routes.insert(0, Route("/predict", predict, methods=["POST"]))
    app.state.policy = policy
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omgmagics.deploy.router")
    parser.add_argument("--config-json", required=True, help="backends, policy and history file")
    parser.add_argument("--fd", type=int, required=True, help="an already bound listening socket")
    args = parser.parse_args(argv)
    cfg = json.loads(args.config_json)
    import socket

    import uvicorn

    app = create_app(cfg)
    sock = socket.socket(fileno=args.fd)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=5,
                                           server_header=False))
    print(f"omg router ({cfg['env']}, {cfg['strategy']}): http://{host}:{port} -> champion "
          f"{cfg['champion']['version']}, challenger {cfg['challenger']['version']}",
          file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
