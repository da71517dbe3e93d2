"""``deploy cloud`` on this machine (core layer): a canary or blue-green rollout with real processes.

1. The champion (the bundle in production, else the newest other bundle) and the challenger (the
   newest bundle, or ``--challenger``) are verified and started as two server processes on free
   loopback ports; the router (:mod:`omgmagics.deploy.router`) listens on the environment's port.
2. Traffic: the raw validation rows are replayed through the router, bounded in requests and time,
   until the router promotes or rolls back (here the kit plays the clients; on a cluster, users do).
   For blue-green, the challenger first gets a direct smoke test (same predictions as its bundle
   offline); then the router switches all traffic at once and keeps the champion ready for a bake
   window.
3. Promotion moves the MLflow ``champion`` alias to the challenger's registered version and records
   the challenger as production (``monitoring/deployments/production.json``); every step is in
   ``monitoring/deployments/history.jsonl``. The runbook and ADR-002 are written from this setup.

Unless ``keep_running``, every process is stopped at the end; on any error all of them are.

The router's ``/router/status`` and ``/router/rollback`` need the rollout's admin token
(:func:`start_router`): a random token made for each router, given to it in its environment (never on
its command line) and kept in ``.omg/rollouts/ENV.json``, mode 0600 (:func:`admin_token` reads it).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError, UsageError
from ..results import Report
from . import process
from .state import (
    _write_private_json,
    forget_router,
    history_path,
    production_bundle,
    read_history,
    record_production,
    router_state_path,
)

TERMINAL = ("promoted", "rolled_back")


def start_router(project: Any, env: str, cfg: dict[str, Any], *, host: str, port: int,
                 log_file: Path | None = None) -> tuple[process.ServerProcess, str]:
    """Start the router for `cfg` on host:port with a fresh admin token and wait until it is ready.

    The token (``secrets.token_urlsafe(32)``) goes to the router in its environment
    (``OMG_ROUTER_ADMIN_TOKEN``; the command line, which ``ps`` shows, holds only `cfg`) and into
    :func:`router_state_path` (mode 0600). Returns (the router process, the admin token).

    Raises
    ------
    ServerError
        When the router exits while starting (say, ``auth_token_env`` names a variable that is not
        set) or is not ready in time; no router is left running and no state file is left.
    UsageError
        When the port is in use.
    """
    from .router import ADMIN_ENV

    token = secrets.token_urlsafe(32)
    state = router_state_path(project, env)
    cfg = {**cfg, "host": host, "admin_token_file": str(state)}
    logs = Path(project.root) / ".omg" / "logs"
    router = process.spawn("omgmagics.deploy.router", ["--config-json", json.dumps(cfg)],
                           role="router", host=host, port=port,
                           log_file=log_file or logs / f"{env}-router.log", cwd=Path(project.root),
                           env={ADMIN_ENV: token})
    try:
        _write_private_json(state, {"env": env, "rollout_id": cfg.get("rollout_id"),
                                    "router": router.url, "pid": router.pid,
                                    "started": router.started, "admin_token": token})
        process.wait_ready(router)
    except BaseException:
        process.stop_process(router.pid)
        state.unlink(missing_ok=True)
        raise
    return router, token


def pick_bundles(project: Any, env: str, champion: str | None, challenger: str | None
                 ) -> tuple[Path, Path]:
    """(champion, challenger) bundle folders, verified.

    Raises
    ------
    UsageError
        When there is no champion to compare with, or both are the same bundle.
    """
    from .bundle import list_bundles, resolve_bundle
    from .integrity import require_verified

    chal = resolve_bundle(project, challenger)
    if champion:
        champ = resolve_bundle(project, champion)
    else:
        current = production_bundle(project, env)
        if current is not None and current != chal:
            champ = current
        else:
            others = [b for b in list_bundles(project) if Path(b["path"]).resolve() != chal]
            if not others:
                raise UsageError(f"No champion to roll out against: nothing is in {env} yet and "
                                 "there is only one bundle. Package the current champion too "
                                 "(`omg deploy package --model champion`) or pass --champion BUNDLE.")
            champ = Path(others[-1]["path"]).resolve()
    if champ.resolve() == chal.resolve():
        raise UsageError(f"Champion and challenger are the same bundle ({chal}). Package the new model "
                         "first (`omg deploy package`) or pass --challenger BUNDLE.")
    require_verified(champ)
    require_verified(chal)
    return champ.resolve(), chal.resolve()


def _bodies(project: Any, bundle_path: Path) -> list[bytes]:
    from .bundle import ServingBundle
    from .staging import replay_rows, split_valid

    bundle = ServingBundle.load(bundle_path, verify=False)
    rows, _ = replay_rows(project, bundle, 5000)
    _, valid, _ = split_valid(bundle, rows)  # rows the signature rejects would only measure 422s
    return [json.dumps(r).encode() for r in valid]


def default_budget(steps: list[float], window: int) -> int:
    """Requests enough for every step's window at its share, with a margin."""
    need = sum(math.ceil(window * 100 / s) for s in steps)
    return int(need * 1.2) + 2 * window


def _metadata(path: Path) -> dict[str, Any]:
    return json.loads((path / "metadata.json").read_text())


def _smoke(project: Any, bundle: Path, url: str, bodies: list[bytes], n: int, max_p99: float,
           token: str | None) -> dict[str, Any]:
    """Blue-green: the challenger answers `n` rows directly, as its bundle does offline."""
    from . import loadgen
    from .bundle import ServingBundle

    offline = ServingBundle.load(bundle, verify=False)
    sample = bodies[:n]
    headers = {"Authorization": f"Bearer {token}"} if token else None
    res = loadgen.replay(url + "/predict", sample, concurrency=4, headers=headers)
    mismatches = 0
    for body, answer, status in zip(sample, res.bodies, res.statuses, strict=True):
        if status != 200:
            mismatches += 1
            continue
        want = offline.predict_records([json.loads(body)])[0]
        got = json.loads(answer)
        if not same_prediction(got, want, offline.model.task):
            mismatches += 1
    summary = res.summary()
    ok = mismatches == 0 and summary["p99_ms"] is not None and summary["p99_ms"] <= max_p99
    return {"ok": ok, "requests": len(sample), "mismatches": mismatches, "p99_ms": summary["p99_ms"]}


def same_prediction(got: dict[str, Any], want: dict[str, Any], task: str) -> bool:
    """The served prediction is the offline one: the same label, or (regression) the same value
    within the staging tolerance, relative to its magnitude above 1."""
    a, b = got.get("prediction"), want.get("prediction")
    if task != "regression" or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    from .staging import SCORE_TOLERANCE

    return abs(a - b) <= SCORE_TOLERANCE * max(1.0, abs(b))


def _drive(router_url: str, bodies: list[bytes], budget: int, concurrency: int, max_seconds: float,
           token: str | None, admin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replay `bodies` through the router in chunks until it decides; returns (client, status)."""
    from . import loadgen
    from .process import _get

    headers = {"Authorization": f"Bearer {token}"} if token else None
    sent = ok = non200 = transport = 0
    lat: list[float] = []
    deadline = time.monotonic() + max_seconds
    status: dict[str, Any] = {}
    chunk = 200
    i = 0
    while sent < budget and time.monotonic() < deadline:
        n = min(chunk, budget - sent)
        batch = [bodies[(i + k) % len(bodies)] for k in range(n)]
        i += n
        res = loadgen.replay(router_url + "/predict", batch, concurrency=concurrency,
                             headers=headers, keep_bodies=False,
                             max_seconds=max(1.0, deadline - time.monotonic()))
        sent += len(batch)
        ok += sum(1 for s in res.statuses if s == 200)
        non200 += sum(1 for s in res.statuses if s not in (0, 200))
        transport += res.errors
        lat += [x for x in res.latencies_ms if x is not None]
        code, body = _get(router_url + "/router/status", timeout=5,
                          headers={"Authorization": f"Bearer {admin}"})
        status = json.loads(body) if code == 200 else {}
        if status.get("state") in TERMINAL:
            break
    import numpy as np

    arr = np.asarray(lat) if lat else np.asarray([np.nan])
    client = {"sent": sent, "ok": ok, "non_200": non200, "transport_errors": transport,
              "lost": sent - ok, "p50_ms": float(np.nanpercentile(arr, 50)),
              "p99_ms": float(np.nanpercentile(arr, 99))}
    return client, status


def move_alias(project: Any, challenger: dict[str, Any]) -> str:
    """Point the MLflow ``champion`` alias at the challenger's registered version."""
    reg = (challenger.get("model") or {}).get("registry") or {}
    name, version = reg.get("name"), reg.get("version")
    if not name or not version:
        return "not moved: the challenger's bundle names no registered model version"
    from ..modeling.tracking import connect

    tracking = connect(project)
    current = tracking.alias_version("champion")
    if current is not None and str(current.version) == str(version) and current.name == name:
        return f"unchanged: {name} v{version} already holds 'champion'"
    tracking.client.set_registered_model_alias(name, "champion", str(version))
    return f"moved: {name} v{version} is now 'champion'" + (
        f" (was v{current.version})" if current is not None else "")


def cloud_local(project: Any, env: str = "production", strategy: str = "canary", *,
                champion: str | None = None, challenger: str | None = None,
                port: int | None = None, requests: int | None = None,
                window: int | None = None, steps: list[float] | None = None,
                keep_running: bool = False, concurrency: int = 4,
                max_seconds: float = 240.0) -> Report:
    """Roll out the challenger against the champion with real processes on this machine."""
    from ..io.journal import append_line
    from .bundle import ServingBundle  # noqa: F401 - imported early: fail before any process starts
    from .serving import _check_not_running, start_server
    from .settings import canary_settings, resolve_settings

    if strategy not in ("canary", "blue-green"):
        raise UsageError(f"Unknown strategy '{strategy}'. Available: blue-green, canary.")
    settings = resolve_settings(project, env, port=port)
    token = settings.token()
    policy = canary_settings(project, {"window_requests": window, "steps": steps})
    if strategy == "blue-green":
        policy["steps"] = [100]
    champ_path, chal_path = pick_bundles(project, env, champion, challenger)
    champ_meta, chal_meta = _metadata(champ_path), _metadata(chal_path)
    champ_v = f"{champ_meta['name']}/{champ_meta['version']}"
    chal_v = f"{chal_meta['name']}/{chal_meta['version']}"
    _check_not_running(project, env)
    bodies = _bodies(project, chal_path)
    if not bodies:
        raise DataError("No validation rows to drive the rollout with.")
    budget = requests or policy.get("traffic_requests") or default_budget(policy["steps"],
                                                                          policy["window_requests"])
    if budget < 1:
        raise UsageError(f"--requests must be positive, got {budget}.")
    history = history_path(project)
    rollout_id = clock.new_id()
    base = {"env": env, "strategy": strategy, "rollout_id": rollout_id, "champion": champ_v,
            "challenger": chal_v}
    started: list[process.ServerProcess] = []
    keep: list[process.ServerProcess] = []
    smoke = None
    try:
        champ = start_server(project, settings, champ_path, role="champion", port=0, env=env)
        started.append(champ)
        chal = start_server(project, settings, chal_path, role="challenger", port=0, env=env)
        started.append(chal)
        if strategy == "blue-green":
            smoke = _smoke(project, chal_path, chal.url, bodies, min(len(bodies),
                           policy["window_requests"]), policy["max_latency_p99_ms"], token)
            append_line(history, {"time": clock.stamp(ms=True), **base, "event": "smoke_test", **smoke})
        cfg = {**base, "history": str(history), "steps": policy["steps"],
               "window_requests": policy["window_requests"],
               "max_error_rate": policy["max_error_rate"],
               "max_latency_p99_ms": policy["max_latency_p99_ms"],
               "champion": {"url": champ.url, "version": champ_v, "bundle": str(champ_path)},
               "challenger": {"url": chal.url, "version": chal_v, "bundle": str(chal_path)},
               "auth_token_env": settings.auth_token_env,
               "allowed_hosts": list(getattr(settings, "allowed_hosts", None) or []),
               "max_body_bytes": settings.max_body_bytes}
        router, admin = start_router(project, env, cfg, host=settings.host, port=settings.port)
        started.append(router)
        if smoke is not None and not smoke["ok"]:
            _post(router.url + "/router/rollback", admin)
            client, status = {"sent": 0, "ok": 0, "non_200": 0, "transport_errors": 0, "lost": 0,
                              "p50_ms": None, "p99_ms": None}, _status(router.url, admin)
        else:
            client, status = _drive(router.url, bodies, int(budget), concurrency, max_seconds,
                                    token, admin)
        state = status.get("state", "unknown")
        if state not in TERMINAL:
            _post(router.url + "/router/rollback", admin)
            status = _status(router.url, admin) or status
            state = "rolled_back"
            status["reason"] = (f"the rollout did not finish within {budget} requests / "
                                f"{max_seconds:.0f} s: rolled back to the champion")
            append_line(history, {"time": clock.stamp(ms=True), **base, "event": "halted",
                                   "reason": status["reason"]})
        alias = None
        winner_path, winner_v = (chal_path, chal_v) if state == "promoted" else (champ_path, champ_v)
        if state == "promoted":
            alias = move_alias(project, chal_meta)
            append_line(history, {"time": clock.stamp(ms=True), **base, "event": "alias", "detail": alias})
        record_production(project, env, winner_path, winner_v, strategy, rollout_id, state)
        if keep_running:
            loser = champ if state == "promoted" else chal
            process.stop_process(loser.pid)
            winners = [router, chal if state == "promoted" else champ]
            process.write_state(project, env, winners, bundle=str(winner_path),
                                rollout_id=rollout_id,
                                admin_token_file=str(router_state_path(project, env)))
            keep = winners  # only now: a failure before this line stops every process
    finally:
        for p in started:
            if p not in keep:
                process.stop_process(p.pid)
        if any(p.role == "router" and p not in keep for p in started):
            forget_router(project, env)  # its router is stopped: the token opens nothing any more
        if started:
            append_line(history, {"time": clock.stamp(ms=True), **base, "event": "stopped" if not keep else
                                   "running", "processes": [p.role for p in started
                                                            if p not in keep]})
    from .docs import write_docs

    docs = write_docs(project, strategy=strategy, target="local")
    return _report(project, env, strategy, base, status, client, alias, smoke, budget, keep,
                   docs, policy)


def _post(url: str, admin: str) -> None:
    """POST to the router's admin endpoint `url` with the rollout's admin token."""
    import urllib.request

    req = urllib.request.Request(url, data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {admin}"})
    try:
        urllib.request.urlopen(req, timeout=5).read()  # noqa: S310 - loopback
    except OSError:
        pass


def _status(url: str, admin: str) -> dict[str, Any]:
    """The router's ``/router/status`` ({} when it does not answer 200)."""
    from .process import _get

    try:
        code, body = _get(url + "/router/status", timeout=5,
                          headers={"Authorization": f"Bearer {admin}"})
        return json.loads(body) if code == 200 else {}
    except (OSError, ValueError):
        return {}


def _staging_status(project: Any, base: dict[str, Any]) -> str:
    from .staging import read_result

    result = read_result(project) or {}
    if result.get("model_version") != base["challenger"]:
        return "not run for this bundle"
    return "passed" if result.get("passed") else "failed"


def _report(project: Any, env: str, strategy: str, base: dict, status: dict, client: dict,
            alias: str | None, smoke: dict | None, budget: int, keep: list, docs: dict,
            policy: dict) -> Report:
    import pandas as pd

    state = status.get("state", "unknown")
    events = [e for e in read_history(project) if e.get("rollout_id") == base["rollout_id"]]
    rows = []
    for e in events:
        w = e.get("window") or {}
        rows.append({"time": e.get("time", "")[11:23], "event": e.get("event"),
                     "share %": e.get("share"), "window requests": w.get("requests"),
                     "errors": w.get("errors"), "p99 ms": w.get("p99_ms"),
                     "detail": e.get("reason") or e.get("detail") or ""})
    verdict = {"promoted": "promoted", "rolled_back": "rolled back"}.get(state, state)
    totals = status.get("totals", {})
    summary = {"outcome": verdict, "strategy": strategy, "champion": base["champion"],
               "challenger": base["challenger"], "steps": ", ".join(f"{s:g}%" for s in policy["steps"]),
               "window (challenger requests)": policy["window_requests"],
               "max error rate": policy["max_error_rate"],
               "max p99 (ms)": policy["max_latency_p99_ms"],
               "requests sent": client["sent"], "answered 200": client["ok"],
               "lost requests": client["lost"],
               "challenger requests": totals.get("challenger"),
               "challenger errors retried on champion": totals.get("retried"),
               "client p99 (ms)": client["p99_ms"]}
    if alias:
        summary["MLflow alias"] = alias
    if status.get("reason"):
        summary["rollback reason"] = status["reason"]
    if smoke is not None:
        summary["blue-green smoke test"] = "ok" if smoke["ok"] else \
            f"failed ({smoke['mismatches']} mismatches, p99 {smoke['p99_ms']})"
    msgs = []
    staged = _staging_status(project, base)
    summary["challenger staging validation"] = staged
    if staged != "passed":
        msgs.append(f"The challenger's staging validation: {staged}. Validate bundles before a "
                    "rollout: `omg deploy serve --env staging --validate --bundle BUNDLE`.")
    if keep:
        msgs.append(f"Running: router at {keep[0].url} -> {keep[1].role}. Stop with `omg deploy stop "
                    f"--env {env}`. /router/status and /router/rollback need the admin token in "
                    f"{router_state_path(project, env)} (Authorization: Bearer TOKEN).")
    else:
        msgs.append("All rollout processes were stopped (pass --keep-running to leave production "
                    "serving).")
    report = Report(f"{strategy.capitalize()} rollout {verdict}: {base['challenger']} vs "
                    f"{base['champion']}", summary=summary, tables={"history": pd.DataFrame(rows)},
                    messages=msgs,
                    artifacts={"history": str(history_path(project)), **docs},
                    data={"status": status, "client": client, "events": events, "budget": budget})
    steps = [(0, 0.0)]
    count = 0
    for e in events:
        w = e.get("window") or {}
        if e.get("event") in ("step", "promoted", "rollback"):
            count += w.get("requests") or 0
            steps.append((count, e.get("previous_share", 0.0)))
            steps.append((count, e.get("share", 0.0)))
    if len(steps) > 1:
        from ..plotstyle import BAD, PRIMARY, label_axes, new_figure

        fig, ax = new_figure(6.4, 2.8)
        ax.plot([s[0] for s in steps], [s[1] for s in steps], marker=".",
                color=BAD if state == "rolled_back" else PRIMARY)
        ax.set_ylim(-5, 105)
        label_axes(ax, f"Traffic to the challenger during the {strategy} rollout: {verdict}",
                   "requests through the router (cumulative)", "challenger share", y_unit="%")
        report.add_figure("challenger share", fig)
    return report


def cloud_manifests(project: Any, env: str, strategy: str, target: str,
                    challenger: str | None = None) -> Report:
    """``--target kserve|k8s``: write the cluster manifests for the challenger bundle (and the docs)."""
    import pandas as pd

    from .bundle import resolve_bundle
    from .docs import write_docs
    from .integrity import require_verified
    from .manifests import write_manifests
    from .settings import canary_settings, kubernetes_settings, resolve_settings

    settings = resolve_settings(project, env)
    policy = canary_settings(project)
    bundle = resolve_bundle(project, challenger)
    require_verified(bundle)
    first = 100.0 if strategy == "blue-green" else float(policy["steps"][0])
    k8s = kubernetes_settings(project)
    stable = production_bundle(project, env)
    files = write_manifests(project, bundle, target, env, first, settings, k8s, stable)
    docs = write_docs(project, strategy=strategy, target=target)
    meta = _metadata(bundle)
    table = pd.DataFrame([{"file": Path(p).name, "path": p} for p in files.values()])
    msgs = ["Nothing was applied: review the files, set serving.kubernetes (image, storage_uri, "
            "namespace) in omg.yaml, then `kubectl apply -f` them."]
    if target == "kserve":
        msgs.append(f"canaryTrafficPercent is {first:g}: step it up ({', '.join(f'{s:g}' for s in policy['steps'][1:])}) "
                    "while the metrics stay within serving.canary; KServe canaries need the "
                    "serverless deployment mode.")
    if not k8s.get("storage_uri") and target == "kserve":
        msgs.append("serving.kubernetes.storage_uri is not set: the manifest has a CHANGE-ME "
                    "placeholder for where the bundle is uploaded.")
    return Report(f"Wrote {target} manifests for {meta['name']}/{meta['version']} ({env})",
                  summary={"target": target, "env": env, "bundle": str(bundle),
                           "strategy": strategy, "first share %": first,
                           "namespace": k8s["namespace"]},
                  tables={"files": table}, messages=msgs, artifacts={**files, **docs},
                  data={"files": files})


def cloud(project: Any, env: str = "production", strategy: str = "canary", target: str = "local",
          **kw: Any) -> Report:
    """``deploy cloud``: a local rollout with real processes, or manifests for a cluster."""
    if target == "local":
        return cloud_local(project, env, strategy, **kw)
    if target in ("kserve", "k8s"):
        return cloud_manifests(project, env, strategy, target, kw.get("challenger"))
    raise UsageError(f"Unknown target '{target}'. Available: k8s, kserve, local.")
