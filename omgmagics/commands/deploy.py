"""``%omgdeploy`` / ``omg deploy``: package, serve, stop, cloud (command layer)."""

from __future__ import annotations

from ._registry import arg, planned

P4 = "issue #6 (Phase 4: optimization & deployment)"

planned(
    "deploy", "package",
    arg("--model", default=None, help="model path or models:/NAME@alias"),
    arg("--handler", default=None, help="serving handler (default: projectlib.handler)"),
    arg("--verify", metavar="PATH", default=None, help="check the sha256 manifest of a bundle"),
    help="self-contained bundle: safe model, handler, signature, requirements, sha256 manifest",
    examples=["package --model optimized.pt --handler handler.py", "package --verify models/x/1"],
    issue=P4,
)
planned(
    "deploy", "serve",
    arg("--env", default="staging", help="environment name"),
    arg("--config", metavar="YAML", default=None, help="serving config (e.g. staging.yaml)"),
    arg("--host", default="127.0.0.1", help="bind address"),
    arg("--port", type=int, default=None, help="port (default from the config)"),
    arg("--background", action="store_true", help="start detached with a pid file"),
    help="a real HTTP server (FastAPI + uvicorn): /predict, /health, /metrics",
    examples=["serve --env staging --config staging.yaml"],
    issue=P4,
)
planned(
    "deploy", "stop",
    arg("--env", default="staging", help="environment to stop"),
    help="stop a server started with --background",
    issue=P4,
)
planned(
    "deploy", "cloud",
    arg("--env", default="production", help="environment name"),
    arg("--strategy", choices=["canary", "blue-green"], default="canary", help="rollout strategy"),
    arg("--target", choices=["local", "kserve", "k8s"], default="local",
        help="run locally, or write cluster manifests"),
    help="champion/challenger rollout behind a traffic-splitting router; cluster manifests",
    examples=["cloud --env production --strategy canary"],
    issue=P4,
)
