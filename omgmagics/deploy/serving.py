"""``deploy serve`` and ``deploy stop`` (core layer): run a bundle's server for an environment.

``serve`` resolves the settings and the bundle (verified before any process starts), starts the
server process on a socket bound here, and then either validates staging against it, leaves it
running in the background (pid file in ``.omg/servers/ENV.json``), or serves in the foreground until
interrupted. Whatever fails, no server is left running unless ``background`` asked for it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..results import Report
from . import process
from .settings import ServeSettings, resolve_settings


def server_config(project: Any, settings: ServeSettings, env: str | None = None) -> dict[str, Any]:
    return {"env": env or settings.env, "log_folder": str(project.predictions_dir),
            "log": settings.log, "max_batch": settings.max_batch,
            "max_body_bytes": settings.max_body_bytes, "auth_token_env": settings.auth_token_env}


def start_server(project: Any, settings: ServeSettings, bundle: Path, *, role: str,
                 port: int | None = None, env: str | None = None) -> process.ServerProcess:
    """Start one server process for `bundle` and wait until it is ready (or raise, leaving none)."""
    logs = Path(project.root) / ".omg" / "logs"
    name = f"{env or settings.env}-{role}"
    server = process.spawn("omgmagics.deploy.server",
                           ["--bundle", str(bundle), "--config-json",
                            json.dumps(server_config(project, settings, env))],
                           role=role, host=settings.host, port=settings.port if port is None else port,
                           log_file=logs / f"{name}.log", cwd=Path(project.root), bundle=str(bundle))
    try:
        process.wait_ready(server)
    except BaseException:
        process.stop_process(server.pid)
        raise
    return server


def default_bundle(project: Any, env: str, settings: ServeSettings) -> Path:
    """The bundle to serve: the setting, the one in production for ``production``, or the newest."""
    from .bundle import resolve_bundle
    from .state import production_bundle

    if settings.bundle:
        return resolve_bundle(project, settings.bundle)
    if env == "production":
        current = production_bundle(project)
        if current is not None:
            return current
    return resolve_bundle(project, None)


def _check_not_running(project: Any, env: str) -> None:
    state = process.read_state(project, env)
    if state is None:
        return
    running = [p for p in state.get("processes", []) if process.alive(int(p.get("pid", 0)))
               and process.is_kit_server(int(p["pid"]))]
    if running:
        raise UsageError(f"A server for env '{env}' is already running at {running[0]['url']} (pid "
                         f"{running[0]['pid']}). Stop it first: `omg deploy stop --env {env}`.")
    process.state_path(project, env).unlink(missing_ok=True)  # stale: its processes are gone


def serve(project: Any, env: str = "staging", config: str | None = None, *, host: str | None = None,
          port: int | None = None, bundle: str | None = None, background: bool = False,
          validate: bool = False) -> Report:
    """Serve a bundle for `env`.

    Parameters
    ----------
    validate : bool
        Run the staging validation (:mod:`omgmagics.deploy.staging`) against the server, then stop
        it unless `background`.
    background : bool
        Leave the server running detached; ``stop(project, env)`` stops it.

    Raises
    ------
    ConfigError
        A malformed config file, a bad value, an auth variable that is not set.
    UsageError
        A port in use, a server already running for `env`.
    DataError
        No bundle, or a bundle that fails verification.
    """
    from .integrity import require_verified
    from .staging import validate_staging

    settings = resolve_settings(project, env, config, host=host, port=port, bundle=bundle)
    token = settings.token()
    path = default_bundle(project, env, settings)
    verified = require_verified(path)
    _check_not_running(project, env)
    server = start_server(project, settings, path, role="server")
    keep = False  # set only once the pid file is written: any failure before stops the server
    try:
        summary = {"env": env, "url": server.url, "bundle": str(path), "pid": server.pid,
                   "digest": verified["digest"][:16], "settings from": ", ".join(settings.sources),
                   "auth": f"bearer token from ${settings.auth_token_env}" if token else "none"}
        messages = []
        if settings.host not in ("127.0.0.1", "::1", "localhost"):
            messages.append(f"Bound to {settings.host}: reachable from other machines"
                            + ("" if token else " and without auth (set serving.auth_token_env)") + ".")
        if validate:
            result = validate_staging(project, path, server.url, settings, token)
            report = _validation_report(result, summary, messages, project)
        elif background:
            report = Report(f"Serving {Path(path).parent.name}/{Path(path).name} ({env}) at "
                            f"{server.url} in the background", summary=summary,
                            messages=messages + [f"Stop it with `omg deploy stop --env {env}`.",
                                                 f"Server log: {server.log}"])
        else:
            return _foreground(server, summary, messages)
        if background:
            process.write_state(project, env, [server], bundle=str(path))
            report.summary["status"] = "running (background)"
            report.artifacts["pid file"] = str(process.state_path(project, env))
            keep = True
        return report
    finally:
        if not keep:
            process.stop_process(server.pid)


def _foreground(server: process.ServerProcess, summary: dict, messages: list) -> Report:
    """Wait for the server until Ctrl-C (or SIGTERM / SIGHUP to this process), then stop it."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, interrupt)
    started = time.monotonic()
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary["served for (s)"] = round(time.monotonic() - started, 1)
    return Report(f"Server at {server.url} stopped", summary=summary, messages=messages)


def _validation_report(result: dict[str, Any], summary: dict, messages: list, project: Any) -> Report:
    import pandas as pd

    from .staging import result_path

    table = pd.DataFrame([{k: c[k] for k in ("name", "status", "value", "threshold", "detail")}
                          for c in result["criteria"]])
    status = "passed" if result["passed"] else "failed"
    summary = {"staging validation": status, **summary,
               "replayed rows": result["replay"]["rows"],
               "rows outside the signature (422)": result["replay"]["outside_signature"],
               ("prediction mismatches" if result["replay"].get("compared") == "value"
                else "label mismatches"): result["replay"]["label_mismatches"],
               "load p50 (ms)": result["load"]["p50_ms"], "load p99 (ms)": result["load"]["p99_ms"],
               "p99 limit (ms)": result["thresholds"]["latency_p99_ms"]}
    report = Report(f"Staging validation {status}: {result['model_version']}", summary=summary,
                    tables={"checks": table}, messages=messages,
                    artifacts={"result": str(result_path(project))},
                    data={"result": result})
    fig = latency_figure(result)
    report.add_figure("latency", fig)
    report.messages.extend(result.get("notes") or [])
    if result["replay"]["outside_signature"]:
        report.messages.append(
            f"{result['replay']['outside_signature']} validation row(s) carry values never seen in "
            f"training and are rejected with 422 by design, e.g. "
            f"{result['replay']['outside_examples'][0]}")
    if not result["passed"]:
        failed = [c["name"] for c in result["criteria"] if c["status"] == "fail"]
        report.messages.append(f"Failed: {', '.join(failed)}. The phase 4 gate will not pass until "
                               "a validation passes.")
    return report


def stop(project: Any, env: str = "staging") -> Report:
    """Stop the background servers of `env` (router and backends for a production rollout)."""
    import pandas as pd

    done = process.stop_env(project, env)
    table = pd.DataFrame([{"role": d.get("role"), "pid": d.get("pid"), "url": d.get("url"),
                           "action": d["action"]} for d in done])
    stopped = sum(1 for d in done if d["action"] == "stopped")
    return Report(f"Stopped {stopped} server process(es) of env '{env}'",
                  summary={"env": env, "stopped": stopped}, tables={"processes": table})


def latency_figure(result: dict[str, Any]) -> Any:
    """Staging latency as the client saw it: the distribution of per-request latency of the replay
    and of the load test (histograms, log scale) against the p99 limit."""
    import numpy as np

    from ..plotstyle import BAD, PALETTE, label_axes, new_figure, plain_log_ticks, style_legend

    fig, ax = new_figure(7.5, 3.4)
    lats = result.get("latencies_ms") or {}
    limit = result["thresholds"]["latency_p99_ms"]
    series = [(f"replay ({result['replay'].get('rows', 0)} rows, concurrent)", lats.get("replay"),
               result["replay"]), (f"load test ({result['load'].get('rate', 0):g} requests/s)",
                                  lats.get("load"), result["load"])]
    values = [np.asarray(v, dtype=float) for _, v, _ in series if v]
    if values:
        lo = max(min(float(v.min()) for v in values), 1e-3)
        hi = max(max(float(v.max()) for v in values), float(limit or 0), lo * 10)
        bins = np.geomspace(lo, hi, 40)
        for (name, v, summ), colour in zip(series, PALETTE, strict=False):
            if v:
                ax.hist(v, bins=bins, alpha=0.55, color=colour,
                        label=f"{name}: p50 {summ['p50_ms'] or 0:.1f}, p99 "
                              + (f"{summ['p99_ms']:.1f} ms" if summ.get("p99_ms") is not None
                                 else "n/a (too few requests)"))
        ax.set_xscale("log")
        plain_log_ticks(ax, "x")
    else:  # an older result file without per-request latencies: the percentiles only
        for (name, _, summ), colour in zip(series, PALETTE, strict=False):
            for q, style in (("p50_ms", "-"), ("p99_ms", ":")):
                if summ.get(q) is not None:
                    ax.axvline(summ[q], color=colour, linestyle=style, label=f"{name} {q[:3]}")
    if limit is not None:
        ax.axvline(limit, color=BAD, linestyle="--", label=f"p99 limit {limit:g} ms")
    label_axes(ax, "Staging latency per request (client side)", "latency", "requests",
               x_unit="ms, log scale")
    style_legend(ax, loc="best")
    return fig
