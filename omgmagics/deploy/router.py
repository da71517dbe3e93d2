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

Requests, before anything is read or forwarded (a refused request never reaches a backend and never
counts in a window):

- every route: the Host and Origin checks of :mod:`omgmagics.deploy.httpguard` (421, 403); bound to
  loopback, the router answers only to the loopback names and ``serving.allowed_hosts``;
- ``POST /predict``: ``Content-Type: application/json`` (415), the ``serving.auth_token_env`` bearer
  token when one is configured (401, also on ``/metrics``; ``/health`` and ``/ready`` stay open for
  probes), and a body of at most ``serving.max_body_mb`` (413: Content-Length first, then counted
  while it streams in), as the server does;
- ``/router/status`` and ``/router/rollback``: ``Authorization: Bearer <admin token>``, a random token
  of this rollout (401 otherwise). The rollout (:func:`omgmagics.deploy.rollout.start_router`) makes
  it, hands it over in the environment (``OMG_ROUTER_ADMIN_TOKEN``, never on the command line, which
  ``ps`` shows) and keeps it in ``.omg/rollouts/ENV.json`` (mode 0600).

When neither backend answers (connection refused, no free connection, no answer within
``timeout_s``) the client gets a 503 with ``Retry-After: 1`` and a JSON ``detail`` saying which; an
answer a backend gave is passed through with the backend's status. The router refuses to start when
``auth_token_env`` names a variable that is not set (the server does the same), or without its admin
token.

Run ``python -m omgmagics.deploy.router --config-json JSON --fd N`` with ``OMG_ROUTER_ADMIN_TOKEN``
in the environment (see :mod:`omgmagics.deploy.rollout`).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request)
# from the enclosing function's scope at definition time.
import argparse
import errno
import json
import math
import os
import sys
import time
from typing import Any

from .. import clock
from . import httpguard

CANARY, PROMOTED, ROLLED_BACK = "canary", "promoted", "rolled_back"
# The body is JSON (checked); the client below sends its own Content-Type.
FORWARD_HEADERS = ("authorization", "x-request-id")
ADMIN_ENV = "OMG_ROUTER_ADMIN_TOKEN"  # the environment variable the admin token comes in
DEFAULT_MAX_BODY_BYTES = 8 * 2**20  # serving.max_body_mb's default
MAX_CONNECTIONS = 256  # open connections to one backend at a time


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


class Busy(OSError):
    """No connection to the backend could be had within the timeout: nothing was sent to it."""


class Upstream:
    """Keep-alive HTTP/1.1 connections to one backend (the load generator's lean client: the
    router's own overhead counts in the challenger's latency, so it has to be small).

    At most `max_connections` requests are in flight to the backend at a time; a request that finds
    them all busy waits for one, within the same `timeout` as the answer. A request that gets no
    connection in time (or finds the router out of file descriptors) raises :class:`Busy`: the
    backend never saw it, so it is neither "unreachable" nor "slow"."""

    def __init__(self, url: str, timeout: float = 10.0, keep: int = 64,
                 max_connections: int = MAX_CONNECTIONS):
        import asyncio
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.timeout, self.max_connections = timeout, max(1, int(max_connections))
        self.keep = min(keep, self.max_connections)
        self.idle: list[tuple[Any, float]] = []  # with the time each was last used
        self.slots = asyncio.Semaphore(self.max_connections)

    def _pooled(self) -> Any:
        from .loadgen import IDLE_S

        while self.idle:
            conn, used = self.idle.pop()
            if time.perf_counter() - used <= IDLE_S:
                return conn
            conn.close()  # the backend may be closing it now
        return None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """The backend's answer; a reused connection the backend closed meanwhile is retried once
        on a fresh one. Raises :class:`Busy` (nothing sent), TimeoutError (sent, no answer in time:
        the backend may still serve it) or ConnectionError / OSError (refused, reset)."""
        import asyncio

        from .loadgen import Connection

        start = time.perf_counter()
        try:
            await asyncio.wait_for(self.slots.acquire(), self.timeout)
        except TimeoutError:
            raise Busy(f"all {self.max_connections} connections to it stayed busy for "
                       f"{self.timeout:g} s") from None
        try:
            for attempt in (0, 1):
                # The retry takes a fresh connection: another pooled one may be just as stale.
                conn = self._pooled() if attempt == 0 else None
                reused = conn is not None
                conn = conn or Connection(self.host, self.port)
                left = self.timeout - (time.perf_counter() - start)
                if left <= 0:
                    conn.close()
                    raise Busy(f"no connection to it was free within {self.timeout:g} s")
                try:
                    out = await asyncio.wait_for(conn.request(method, path, body, headers), left)
                except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError,
                        IndexError) as exc:
                    conn.close()
                    if isinstance(exc, TimeoutError):  # it got the request and may still serve it
                        raise
                    if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
                        raise Busy("the router is out of file descriptors") from None
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
        finally:
            self.slots.release()

    def close(self) -> None:
        for conn, _ in self.idle:
            conn.close()
        self.idle = []


class _Router:
    """The routes of one rollout: its policy, its two upstream pools, its tokens and its history."""

    def __init__(self, cfg: dict[str, Any], admin_token: str | None, token: str | None):
        from fastapi.responses import JSONResponse, PlainTextResponse, Response

        # bound once: the response classes are looked up on every request
        self.JSON, self.Plain, self.Response = JSONResponse, PlainTextResponse, Response
        self.cfg, self.admin_token, self.token = cfg, admin_token, token
        self.base = {"env": cfg["env"], "strategy": cfg["strategy"],
                     "rollout_id": cfg["rollout_id"], "champion": cfg["champion"]["version"],
                     "challenger": cfg["challenger"]["version"]}
        self.events: list[dict[str, Any]] = []
        self.policy = Rollout(cfg["steps"], cfg["window_requests"], cfg["max_error_rate"],
                              cfg["max_latency_p99_ms"], self.on_event)
        self.timeout = float(cfg.get("timeout_s", 10.0))
        self.max_body = int(cfg.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES)
        self.upstream = {role: Upstream(cfg[role]["url"], self.timeout, max_connections=int(
            cfg.get("max_connections") or MAX_CONNECTIONS)) for role in ("champion", "challenger")}
        self.hosts = httpguard.allowed_hosts(str(cfg.get("host") or "127.0.0.1"),
                                             cfg.get("allowed_hosts") or [])
        self.token_file = cfg.get("admin_token_file") or ".omg/rollouts/ENV.json"

    def on_event(self, event: dict[str, Any]) -> None:
        from ..io.journal import append_line

        full = {"time": clock.stamp(ms=True), **self.base, **event}
        self.events.append(full)
        append_line(self.cfg["history"], full)

    # --- the checks of every route ----------------------------------------------------------------
    def refused(self, request: Any, body: bool = False) -> Any:
        """The drive-by checks of every route (Host, Origin; Content-Type for a body)."""
        why = httpguard.refusal(request.headers, self.hosts, body=body)
        return None if why is None else self.JSON({"detail": why[1]}, status_code=why[0])

    def unauthorized(self, request: Any) -> Any:
        denied = httpguard.bearer_refusal(request.headers, self.token or None)
        if denied is None:
            return None
        return self.JSON({"detail": denied[1]}, status_code=denied[0],
                         headers=httpguard.BEARER_HEADERS)

    def not_admin(self, request: Any) -> Any:
        detail = ("missing or wrong admin token: /router/status and /router/rollback need "
                  "Authorization: Bearer <admin token>, the 'admin_token' of this rollout's state "
                  f"file {self.token_file}")
        # without an admin token the admin routes are closed to everyone
        if self.admin_token and httpguard.bearer_refusal(request.headers, self.admin_token) is None:
            return None
        return self.JSON({"detail": detail}, status_code=401, headers=httpguard.BEARER_HEADERS)

    # --- forwarding -------------------------------------------------------------------------------
    async def forward(self, target: str, body: bytes, headers: dict[str, str]) -> tuple[Any, str]:
        """(the answer, "") or (None, why there is none, as the end of a sentence)."""
        try:
            return await self.upstream[target].request("POST", "/predict", body, headers), ""
        except Busy as exc:
            return None, f"the router had no connection to the {target}: {exc}"
        except TimeoutError:  # it may still answer (and log) it
            return None, (f"the {target} did not answer within {self.timeout:g} s (it may still "
                          "serve the request)")
        except OSError as exc:  # refused, reset, no route to the host
            return None, f"the {target} is unreachable ({exc})"

    def passthrough(self, resp: Any, served_by: str, retried: bool) -> Any:
        status, hdrs, content = resp
        headers = {k: v for k, v in hdrs.items()
                   if k in ("content-type", "x-request-id", "x-model-version")}
        headers["x-served-by"] = served_by
        if retried:
            headers["x-retried"] = "challenger"
        return self.Response(content, status_code=status, headers=headers)

    async def predict(self, request: Any) -> Any:
        denied = self.refused(request, body=True) or self.unauthorized(request)
        if denied is not None:
            return denied
        rid = httpguard.request_id(request.headers)
        body, why = await httpguard.read_body(request, self.max_body)
        if body is None:
            return self.JSON({"detail": why}, status_code=413, headers={"x-request-id": rid})
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_HEADERS}
        headers["x-request-id"] = rid
        policy = self.policy
        retried, first = False, None
        if policy.pick() == "challenger":
            t0 = time.perf_counter()
            first, _ = await self.forward("challenger", body, headers)
            ms = (time.perf_counter() - t0) * 1000
            error = first is None or first[0] >= 500
            policy.totals["challenger"] += 1
            policy.totals["challenger_errors"] += int(error)
            policy.record(ms, error)
            if not error:
                return self.passthrough(first, "challenger", False)
            retried = True
            policy.totals["retried"] += 1
        resp, why = await self.forward("champion", body, headers)
        policy.totals["champion"] += 1
        if resp is not None:
            return self.passthrough(resp, "champion", retried)
        if first is not None:  # the challenger answered (a 5xx): that answer, not none
            return self.passthrough(first, "challenger", False)
        policy.totals["failed"] += 1
        return self.JSON({"detail": f"no backend answered: {why}; retry in a moment"},
                         status_code=503, headers={"x-request-id": rid, "Retry-After": "1"})

    # --- the other routes -------------------------------------------------------------------------
    async def health(self, request: Any) -> Any:
        return self.refused(request) or self.JSON({"status": "ok"})

    async def ready(self, request: Any) -> Any:
        denied = self.refused(request)
        if denied is not None:
            return denied
        try:
            ok = (await self.upstream["champion"].request("GET", "/ready"))[0] == 200
        except OSError:
            ok = False
        return self.JSON({"status": "ready" if ok else "champion not ready"},
                         status_code=200 if ok else 503)

    async def status(self, request: Any) -> Any:
        denied = self.refused(request) or self.not_admin(request)
        if denied is not None:
            return denied
        return self.JSON({**self.policy.status(), "champion": self.cfg["champion"],
                          "challenger": self.cfg["challenger"], "events": self.events})

    async def rollback(self, request: Any) -> Any:
        denied = self.refused(request) or self.not_admin(request)
        if denied is not None:
            return denied
        self.policy.rollback("manual rollback (POST /router/rollback)")
        return self.JSON(self.policy.status())

    async def metrics(self, request: Any) -> Any:
        denied = self.refused(request) or self.unauthorized(request)
        if denied is not None:
            return denied
        return self.Plain(metrics_text(self.policy), media_type="text/plain; version=0.0.4")


def metrics_text(policy: Rollout) -> str:
    """The router's Prometheus metrics: requests per backend, errors, retries, share, state."""
    t = policy.totals
    lines = ["# HELP omg_router_requests_total Requests forwarded, by backend.",
             "# TYPE omg_router_requests_total counter"]
    lines += [f'omg_router_requests_total{{backend="{b}"}} {t[b]}' for b in ("champion", "challenger")]
    lines += ["# HELP omg_router_challenger_errors_total Challenger errors (5xx, no answer).",
              "# TYPE omg_router_challenger_errors_total counter",
              f"omg_router_challenger_errors_total {t['challenger_errors']}",
              "# HELP omg_router_retries_total Challenger failures retried on the champion.",
              "# TYPE omg_router_retries_total counter", f"omg_router_retries_total {t['retried']}",
              "# HELP omg_router_unanswered_total Requests no backend answered (503).",
              "# TYPE omg_router_unanswered_total counter",
              f"omg_router_unanswered_total {t['failed']}",
              "# HELP omg_router_challenger_share Current challenger share (percent).",
              "# TYPE omg_router_challenger_share gauge",
              f"omg_router_challenger_share {policy.share}",
              "# HELP omg_router_state 1 for the current rollout state.",
              "# TYPE omg_router_state gauge"]
    lines += [f'omg_router_state{{state="{s}"}} {int(policy.state == s)}'
              for s in (CANARY, PROMOTED, ROLLED_BACK)]
    return "\n".join(lines) + "\n"


def create_app(cfg: dict[str, Any], admin_token: str | None = None, token: str | None = None) -> Any:
    """The router application for the backends and policy in `cfg`.

    `admin_token` guards ``/router/status`` and ``/router/rollback`` (None: they always answer
    401); `token` is the ``serving.auth_token_env`` bearer token that ``/predict`` and ``/metrics``
    need (None: no auth, as the backends)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from starlette.routing import Route

    router = _Router(cfg, admin_token, token)

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        router.on_event({"event": "start", "share": router.policy.share, "previous_share": 0.0,
                         "window": router.policy.window_stats()})
        yield
        for up in router.upstream.values():
            up.close()

    app = FastAPI(title="omg router", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    # Plain Starlette routes: FastAPI's dependency solving would add about 0.1 ms per request,
    # and every route reads the request itself.
    app.router.routes[:0] = [
        Route("/predict", router.predict, methods=["POST"]),
        Route("/health", router.health, methods=["GET"]),
        Route("/ready", router.ready, methods=["GET"]),
        Route("/router/status", router.status, methods=["GET"]),
        Route("/router/rollback", router.rollback, methods=["POST"]),
        Route("/metrics", router.metrics, methods=["GET"]),
    ]
    app.state.policy = router.policy
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM; exits 3 without starting when a token it needs is missing."""
    parser = argparse.ArgumentParser(prog="python -m omgmagics.deploy.router")
    parser.add_argument("--config-json", required=True, help="backends, policy and history file")
    parser.add_argument("--fd", type=int, required=True, help="an already bound listening socket")
    args = parser.parse_args(argv)
    cfg = json.loads(args.config_json)
    token = None
    if cfg.get("auth_token_env"):  # fail closed, as the server: never serve without the token
        token = os.environ.get(cfg["auth_token_env"]) or None
        if token is None:
            print(f"omg router: auth_token_env names {cfg['auth_token_env']}, which is not set.",
                  file=sys.stderr, flush=True)
            return 3
    admin = os.environ.pop(ADMIN_ENV, "")
    if not admin:
        print(f"omg router: {ADMIN_ENV} is not set: the router takes its admin token from "
              "the rollout that starts it (omgmagics.deploy.rollout.start_router).",
              file=sys.stderr, flush=True)
        return 3
    import socket

    import uvicorn

    app = create_app(cfg, admin_token=admin, token=token)
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
