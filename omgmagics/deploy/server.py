"""The model server (core layer, run as its own process): FastAPI + uvicorn over one bundle.

Endpoints
---------
``POST /predict``  one record (a JSON object) or a batch (a list of objects, at most ``max_batch``).
                   Every record is checked against the bundle's signature first: a missing field, a
                   wrong type, an unknown category, an unknown field, a body that is not JSON, an empty
                   or oversized batch gets HTTP 422 naming the field (413 for a body over
                   ``max_body_mb``). Bad input never reaches the model, so it never gets a 500.
``GET /health``    the process is up (liveness).
``GET /ready``     the bundle is loaded and the server is not draining (readiness).
``GET /metrics``   Prometheus text format: requests by status, records, latency histogram, log state.
``GET /version``   model version, bundle name and digest, feature set, creation time.
``GET /openapi.json`` the API's OpenAPI 3.0 description, its request schema written from the
                   bundle's signature (:mod:`omgmagics.deploy.openapi`).

Drive-by requests from a browser are refused before the body is read
(:mod:`omgmagics.deploy.httpguard`): a loopback server answers only to loopback Host names (and
``serving.allowed_hosts``), a request with a foreign ``Origin`` gets 403, a body that is not
``application/json`` gets 415. A server bound beyond loopback needs a bearer token: it will not
start without one.

With ``auth_token_env`` set, ``/predict``, ``/metrics``, ``/version`` and ``/openapi.json`` need
``Authorization: Bearer <token>`` (compared in constant time); ``/health`` and ``/ready`` stay open
for probes. Every prediction goes to the prediction log (:mod:`omgmagics.deploy.predlog`).

Run ``python -m omgmagics.deploy.server --bundle DIR --config-json JSON [--fd N | --port P]``; the kit
starts it through :mod:`omgmagics.deploy.process`, which binds the socket first (so a port in use is
a clear error in the caller) and hands it over.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request)
# from the enclosing function's scope at definition time.
import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .httpguard import BEARER_HEADERS, bearer_refusal, read_body, refusal, request_id
from .signature import InvalidRequest, RequestValidator

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOPBACK_ONLY = frozenset({"127.0.0.1", "localhost", "::1"})


class Metrics:
    """Counters and a latency histogram, rendered in the Prometheus text format."""

    def __init__(self, env: str, version: str):
        self.env, self.version = env, version
        self.requests: dict[tuple[str, int], int] = {}
        self.records = {"ok": 0, "error": 0}
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.lat_sum = 0.0
        self.lat_count = 0
        self.started = time.time()

    def request(self, endpoint: str, status: int) -> None:
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def latency(self, seconds: float) -> None:
        self.lat_sum += seconds
        self.lat_count += 1
        for i, b in enumerate(LATENCY_BUCKETS):
            if seconds <= b:
                self.buckets[i] += 1
                break

    def render(self, log: Any) -> str:
        lab = f'env="{self.env}",model_version="{self.version}"'
        out = ["# HELP omg_requests_total HTTP requests by endpoint and status code.",
               "# TYPE omg_requests_total counter"]
        for (ep, st), n in sorted(self.requests.items()):
            out.append(f'omg_requests_total{{{lab},endpoint="{ep}",status="{st}"}} {n}')
        out += ["# HELP omg_predictions_total Records predicted, by outcome.",
                "# TYPE omg_predictions_total counter"]
        for st, n in self.records.items():
            out.append(f'omg_predictions_total{{{lab},status="{st}"}} {n}')
        out += ["# HELP omg_request_duration_seconds Time to answer POST /predict.",
                "# TYPE omg_request_duration_seconds histogram"]
        cum = 0
        for b, n in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            cum += n
            out.append(f'omg_request_duration_seconds_bucket{{{lab},le="{b}"}} {cum}')
        out.append(f'omg_request_duration_seconds_bucket{{{lab},le="+Inf"}} {self.lat_count}')
        out.append(f"omg_request_duration_seconds_sum{{{lab}}} {self.lat_sum:.6f}")
        out.append(f"omg_request_duration_seconds_count{{{lab}}} {self.lat_count}")
        out += ["# HELP omg_prediction_log_buffered Records waiting to be written to the log.",
                "# TYPE omg_prediction_log_buffered gauge",
                f"omg_prediction_log_buffered{{{lab}}} {log.buffered}",
                "# HELP omg_prediction_log_dropped_total Records not logged (buffer full, disk errors).",
                "# TYPE omg_prediction_log_dropped_total counter",
                f"omg_prediction_log_dropped_total{{{lab}}} {log.dropped}",
                "# HELP omg_prediction_log_write_errors_total Failed flushes of the prediction log.",
                "# TYPE omg_prediction_log_write_errors_total counter",
                f"omg_prediction_log_write_errors_total{{{lab}}} {getattr(log, 'write_errors', 0)}",
                "# HELP omg_model_info The served model.", "# TYPE omg_model_info gauge",
                f"omg_model_info{{{lab}}} 1",
                "# HELP process_start_time_seconds Start time of the server process.",
                "# TYPE process_start_time_seconds gauge",
                f"process_start_time_seconds {self.started:.3f}"]
        return "\n".join(out) + "\n"


class _Server:
    """The routes of one model server: its bundle, validator, prediction log, metrics and tokens."""

    def __init__(self, bundle: Any, *, env: str, log: Any, max_batch: int, max_body_bytes: int,
                 token: str | None, hosts: frozenset[str] | None):
        from fastapi.responses import JSONResponse, PlainTextResponse, Response

        self.bundle, self.env, self.log, self.token, self.hosts = bundle, env, log, token, hosts
        self.max_batch, self.max_body_bytes = max_batch, max_body_bytes
        self.validator = RequestValidator(bundle.signature, max_batch)
        self.metrics = Metrics(env, bundle.version)
        self.ready_now = True
        self.info = {**bundle.info(), "env": env}
        self.version = bundle.version
        self.schema: dict[str, Any] = {}
        # bound once: the response classes are looked up on every request
        self.JSON, self.Plain, self.Response = JSONResponse, PlainTextResponse, Response

    # --- checks and replies -----------------------------------------------------------------------
    def unauthorized(self, request: Any, body: bool = False) -> Any:
        refused = refusal(request.headers, self.hosts, body)
        if refused is not None:
            return self.JSON({"detail": refused[1]}, status_code=refused[0])
        denied = bearer_refusal(request.headers, self.token or None)
        if denied is None:
            return None
        return self.JSON({"detail": denied[1]}, status_code=denied[0], headers=BEARER_HEADERS)

    def refused(self, request: Any, path: str, token: bool = True) -> Any:
        """The refusal of a GET endpoint (Host/Origin; the bearer token where `token`), counted."""
        if token:
            denied = self.unauthorized(request)
        else:
            why = refusal(request.headers, self.hosts, False)
            denied = None if why is None else self.JSON({"detail": why[1]}, status_code=why[0])
        if denied is not None:
            self.metrics.request(path, denied.status_code)
        return denied

    def reply(self, status: int, body: dict[str, Any], rid: str) -> Any:
        self.metrics.request("/predict", status)
        try:  # items are JSON-safe already (ServingBundle.predict_records); NaN is not JSON
            text = json.dumps(body, separators=(",", ":"), default=str, allow_nan=False)
        except ValueError:
            from .bundle import json_safe

            text = json.dumps(json_safe(body), separators=(",", ":"), default=str, allow_nan=False)
        return self.Response(text, status_code=status, media_type="application/json",
                             headers={"x-request-id": rid, "x-model-version": self.version})

    # --- /predict, the hot path -------------------------------------------------------------------
    async def predict(self, request: Any) -> Any:
        t0 = time.perf_counter()
        denied = self.unauthorized(request, body=True)
        rid = request_id(request.headers)
        if denied is not None:
            self.metrics.request("/predict", denied.status_code)
            return denied
        body, too_large = await read_body(request, self.max_body_bytes)
        if body is None:
            return self.reply(413, {"detail": too_large}, rid)
        payload, bad = _parse_json(body)
        if bad is not None:
            return self.reply(422, {"detail": [bad], "message": bad["msg"]}, rid)
        try:
            records, single = self.validator.records(payload)
        except InvalidRequest as exc:
            return self.reply(exc.status, exc.body(), rid)
        try:
            items = self.bundle.predict_records(records)
        except Exception as exc:  # noqa: BLE001 - a model or handler failure on valid input
            return self._failed(records, single, rid, t0, exc)
        ms = (time.perf_counter() - t0) * 1000
        for i, (rec, item) in enumerate(zip(records, items, strict=True)):
            score = item.get("score")
            if isinstance(score, float) and not math.isfinite(score):
                score = None
            self.log.add(rid if single else f"{rid}:{i}", rec, item.get("prediction"), score, ms,
                         probabilities=item.get("probabilities"))
        self.metrics.records["ok"] += len(records)
        self.metrics.latency(ms / 1000)
        head = {"request_id": rid, "model_version": self.version}
        return self.reply(200, {**head, **items[0]} if single else {**head, "predictions": items},
                          rid)

    def _failed(self, records: list, single: bool, rid: str, t0: float, exc: Exception) -> Any:
        ms = (time.perf_counter() - t0) * 1000
        text = f"{type(exc).__name__}: {exc}"[:500]
        for i, rec in enumerate(records):
            self.log.add(rid if single else f"{rid}:{i}", rec, None, None, ms, "error", text)
        self.metrics.records["error"] += len(records)
        self.metrics.latency(ms / 1000)
        return self.reply(500, {"detail": f"prediction failed: {text}", "request_id": rid}, rid)

    # --- the GET endpoints ------------------------------------------------------------------------
    async def health(self, request: Any) -> Any:
        if (denied := self.refused(request, "/health", token=False)) is not None:
            return denied
        self.metrics.request("/health", 200)
        return self.JSON({"status": "ok"})

    async def ready(self, request: Any) -> Any:
        if (denied := self.refused(request, "/ready", token=False)) is not None:
            return denied
        status = 200 if self.ready_now else 503
        self.metrics.request("/ready", status)
        log = self.log
        return self.JSON({"status": "ready" if self.ready_now else "draining",
                          "model_version": self.version,
                          "log": {"write_errors": int(getattr(log, "write_errors", 0)),
                                  "dropped": int(getattr(log, "dropped", 0))}},
                         status_code=status)

    async def prometheus(self, request: Any) -> Any:
        if (denied := self.refused(request, "/metrics")) is not None:
            return denied
        self.metrics.request("/metrics", 200)
        return self.Plain(self.metrics.render(self.log), media_type="text/plain; version=0.0.4")

    async def version_info(self, request: Any) -> Any:
        if (denied := self.refused(request, "/version")) is not None:
            return denied
        self.metrics.request("/version", 200)
        return self.JSON(self.info)

    async def openapi(self, request: Any) -> Any:
        if (denied := self.refused(request, "/openapi.json")) is not None:
            return denied
        if not self.schema:
            from .openapi import openapi_schema

            self.schema.update(openapi_schema(
                self.bundle.signature, title=f"omg model server ({self.env})", version=self.version,
                max_batch=self.max_batch, auth=bool(self.token)))
        self.metrics.request("/openapi.json", 200)
        return self.JSON(self.schema)


def _parse_json(body: bytes) -> tuple[Any, dict[str, Any] | None]:
    """The decoded body, or the 422 error entry saying why it is not JSON the server reads."""
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, {"loc": ["body"], "field": None, "type": "value_error.json",
                      "msg": f"the body is not valid JSON ({(str(exc).splitlines() or [''])[0]})"}
    except RecursionError:
        return None, {"loc": ["body"], "field": None, "type": "value_error.json",
                      "msg": "the body is nested too deeply (a record is a flat JSON object)"}


def create_app(bundle: Any, *, env: str, log: Any, max_batch: int, max_body_bytes: int,
               token: str | None = None, hosts: frozenset[str] | None = LOOPBACK_ONLY) -> Any:
    """The FastAPI application serving `bundle` (see the module docstring for the endpoints).

    `hosts` are the Host names it answers to (:func:`omgmagics.deploy.httpguard.allowed_hosts`;
    None: any, for a token-protected server bound beyond loopback)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.routing import Route

    server = _Server(bundle, env=env, log=log, max_batch=max_batch, max_body_bytes=max_body_bytes,
                     token=token, hosts=hosts)

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        yield
        server.ready_now = False
        log.close()

    app = FastAPI(title=f"omg model server ({env})", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)

    async def unexpected(request: Any, exc: Exception) -> Any:  # noqa: ARG001
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    app.add_exception_handler(Exception, unexpected)
    # Plain Starlette routes: FastAPI's dependency solving would add about 0.1 ms per request,
    # and every route reads the request itself.
    app.router.routes[:0] = [
        Route("/predict", server.predict, methods=["POST"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/ready", server.ready, methods=["GET"]),
        Route("/metrics", server.prometheus, methods=["GET"]),
        Route("/version", server.version_info, methods=["GET"]),
        Route("/openapi.json", server.openapi, methods=["GET"]),
    ]
    app.state.metrics = server.metrics
    return app


def _socket(args: argparse.Namespace) -> Any:
    import socket

    if args.fd is not None:
        return socket.socket(fileno=args.fd)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    return sock


def main(argv: list[str] | None = None) -> int:
    """Load the bundle, then serve until SIGTERM / SIGINT (graceful: the log is flushed)."""
    parser = argparse.ArgumentParser(prog="python -m omgmagics.deploy.server")
    parser.add_argument("--bundle", required=True, help="the bundle folder")
    parser.add_argument("--config-json", required=True, help="the resolved settings, as JSON")
    parser.add_argument("--fd", type=int, default=None, help="an already bound listening socket")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (without --fd)")
    parser.add_argument("--port", type=int, default=0, help="port (without --fd)")
    args = parser.parse_args(argv)
    cfg = json.loads(args.config_json)
    from ..errors import OmgError
    from .bundle import ServingBundle
    from .httpguard import allowed_hosts, is_loopback
    from .predlog import PredictionLog

    try:
        bundle = ServingBundle.load(args.bundle, verify=True, isolate=True)
        token = None
        if cfg.get("auth_token_env"):
            import os

            token = os.environ.get(cfg["auth_token_env"]) or None
            if token is None:
                raise OmgError(f"auth_token_env names {cfg['auth_token_env']}, which is not set.")
        sock = _socket(args)
        bind = sock.getsockname()[0]
        if token is None and not is_loopback(bind):
            raise OmgError(f"serving on {bind} lets other machines call the model: set "
                           "serving.auth_token_env to the name of an environment variable holding "
                           "a bearer token, or bind 127.0.0.1.")
        hosts = allowed_hosts(bind, cfg.get("allowed_hosts") or [])
    except OmgError as exc:
        print(f"omg server: {exc.message}", file=sys.stderr, flush=True)
        return 3
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)  # one record at a time: threads only add overhead
    sample = bundle.signature.get("sample") or []
    for _ in range(3):  # warm-up: lazy imports and caches before the first real request
        if sample:
            bundle.predict_records(sample[:1])
    log = PredictionLog(cfg["log_folder"], cfg["env"], bundle.version,
                        flush_records=cfg["log"]["flush_records"],
                        flush_seconds=cfg["log"]["flush_seconds"],
                        max_buffer=cfg["log"]["max_buffer"]).start()
    app = create_app(bundle, env=cfg["env"], log=log, max_batch=cfg["max_batch"],
                     max_body_bytes=cfg["max_body_bytes"], token=token, hosts=hosts)
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5, server_header=False)
    server = uvicorn.Server(config)
    print(f"omg server ({cfg['env']}): model {bundle.version} on http://{host}:{port} "
          f"(bundle {Path(args.bundle).name}); SIGTERM or Ctrl-C stops it", file=sys.stderr,
          flush=True)
    server.run(sockets=[sock])
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
