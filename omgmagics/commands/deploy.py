"""``%omgdeploy`` / ``omg deploy``: package, serve, stop, cloud (command layer)."""

from __future__ import annotations

import argparse

from ._registry import Context, arg, command


@command(
    "deploy", "package",
    arg("--model", default=None,
        help="model folder, models:/NAME@alias, an alias or a run name (default: the champion)"),
    arg("--handler", default=None,
        help="serving handler .py with preprocess/postprocess (default: projectlib/handler.py)"),
    arg("--verify", metavar="PATH", default=None,
        help="only check the sha256 manifest of an existing bundle"),
    arg("--name", default=None, help="bundle name (default: the registered model name)"),
    arg("--version", default=None, help="bundle version (default: the next integer)"),
    arg("--features", metavar="NAME@VERSION", default=None,
        help="feature set whose pipeline and raw columns to bundle (default: the model's own)"),
    help="self-contained bundle: safe model, handler, signature, requirements, sha256 manifest",
    description=("Writes models/NAME/VERSION/: the model in a safe format, the fitted feature "
                 "pipeline, the handler, signature.json, pinned requirements.txt, metadata.json and "
                 "manifest.json (sha256 of every file). The bundle is also an MLflow pyfunc model."),
    examples=["package --model optimized.pt --handler handler.py", "package --verify models/x/1",
              "package --model champion"],
    writes=lambda ns: not ns.verify,
)
def package(ns: argparse.Namespace, ctx: Context):
    if ns.verify:
        return _verify(ns.verify, ctx)
    from ..deploy.packaging import package_model

    return package_model(ctx.project(), ns.model, ns.handler, ns.name, ns.version, ns.features)


def _verify(path: str, ctx: Context):
    from pathlib import Path

    import pandas as pd

    from ..deploy.integrity import verify_bundle
    from ..errors import DataError
    from ..results import Report

    p = Path(path)
    if not p.exists() and ctx.project_dir is not None:
        p = Path(ctx.project_dir) / path
    if not p.exists():
        try:
            p = Path(ctx.project().root) / path
        except Exception:  # noqa: BLE001 - outside a project: keep the path as given
            pass
    result = verify_bundle(p)
    rows = [{"file": f, "problem": kind} for kind in ("changed", "missing", "unexpected")
            for f in result[kind]]
    if not result["ok"]:
        raise DataError(f"Bundle {path} failed verification: "
                        + "; ".join(f"{r['problem']}: {r['file']}" for r in rows[:8])
                        + ". It will not be loaded. Restore it or re-package the model.")
    return Report(f"Bundle {path} verified: {result['checked']} files match their sha256",
                  summary={"bundle": str(p), "files": result["checked"],
                           "manifest sha256": result["digest"]},
                  tables={"problems": pd.DataFrame(rows)} if rows else {}, data=result)


@command(
    "deploy", "serve",
    arg("--env", default="staging", help="environment name (staging, production, ...)"),
    arg("--config", metavar="YAML", default=None,
        help="serving config file (e.g. staging.yaml); default: omg.yaml's serving section"),
    arg("--host", default=None, help="bind address (default 127.0.0.1)"),
    arg("--port", type=int, default=None,
        help="port (default from the config: staging 8081, production 8080; 0: any free port)"),
    arg("--bundle", default=None, help="bundle folder or NAME/VERSION (default: the newest)"),
    arg("--background", action="store_true", help="start detached with a pid file"),
    arg("--validate", action="store_true",
        help="staging validation: replay the validation split over HTTP, check predictions and p99 "
             "under load (the phase 4 gate); the server stops afterwards unless --background"),
    arg("--init", action="store_true",
        help="write a documented --config file (default staging.yaml) and exit"),
    help="a real HTTP server (FastAPI + uvicorn): /predict, /health, /metrics",
    description=("POST /predict (one record or a batch), GET /health, /ready, /metrics, /version. "
                 "Requests are validated against the bundle's signature (422 names the field); "
                 "every prediction is logged to monitoring/predictions/."),
    examples=["serve --env staging --config staging.yaml", "serve --env staging --validate",
              "serve --env staging --background", "serve --init --config staging.yaml"],
    # a foreground server writes only its prediction log, and would hold the lock while it serves
    writes=lambda ns: (ns.validate or ns.background) and not ns.init,
)
def serve(ns: argparse.Namespace, ctx: Context):
    if ns.init:
        from ..deploy.settings import write_config_template
        from ..results import Report

        path = write_config_template(ns.config or "staging.yaml")
        return Report(f"Wrote {path}", artifacts={"config": str(path)},
                      messages=[f"Edit it, then `{ctx.name('deploy', 'serve')} --config {path}`."])
    from ..deploy.serving import serve as run

    return run(ctx.project(), ns.env, ns.config, host=ns.host, port=ns.port, bundle=ns.bundle,
               background=ns.background, validate=ns.validate)


@command(
    "deploy", "stop",
    arg("--env", default="staging", help="environment to stop"),
    help="stop a server started with --background (or a kept production rollout)",
    examples=["stop --env staging", "stop --env production"],
)
def stop(ns: argparse.Namespace, ctx: Context):
    from ..deploy.serving import stop as run
    from ..deploy.state import forget_router

    project = ctx.project()
    report = run(project, ns.env)
    forget_router(project, ns.env)  # a kept rollout's admin token: its router is stopped now
    return report


def _steps(text: str | None) -> list[float] | None:
    from ..errors import UsageError

    if text is None:
        return None
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--steps must be comma-separated percentages such as 10,25,50,100, got "
                         f"'{text}'.") from None


@command(
    "deploy", "cloud",
    arg("--env", default="production", help="environment name"),
    arg("--strategy", choices=["canary", "blue-green"], default="canary", help="rollout strategy"),
    arg("--target", choices=["local", "kserve", "k8s"], default="local",
        help="run locally, or write cluster manifests"),
    arg("--champion", default=None,
        help="bundle serving now (default: the one in production, else the newest other bundle)"),
    arg("--challenger", default=None, help="bundle to roll out (default: the newest bundle)"),
    arg("--port", type=int, default=None, help="router port (default 8080; 0: any free port)"),
    arg("--requests", type=int, default=None,
        help="most requests replayed to drive the rollout (default: enough for every step)"),
    arg("--window", type=int, default=None,
        help="challenger requests per step (default serving.canary.window_requests)"),
    arg("--steps", default=None, help="challenger shares in percent, e.g. 10,25,50,100"),
    arg("--keep-running", action="store_true",
        help="leave the router and the winner serving (stop with `deploy stop --env ENV`)"),
    help="champion/challenger rollout behind a traffic-splitting router; cluster manifests",
    description=("Local: champion and challenger as separate server processes behind a router that "
                 "steps the challenger's share up on healthy windows and rolls back on a breach; "
                 "promotion moves the MLflow champion alias. kserve / k8s: writes manifests."),
    examples=["cloud --env production --strategy canary",
              "cloud --strategy blue-green", "cloud --target kserve"],
)
def cloud(ns: argparse.Namespace, ctx: Context):
    from ..deploy.rollout import cloud as run

    return run(ctx.project(), ns.env, ns.strategy, ns.target, champion=ns.champion,
               challenger=ns.challenger, port=ns.port, requests=ns.requests, window=ns.window,
               steps=_steps(ns.steps), keep_running=ns.keep_running)
