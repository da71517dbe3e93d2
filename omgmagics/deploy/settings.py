"""Serving settings (core layer): defaults <- ``omg.yaml`` ``serving`` <- ``serving.ENV`` <- a
``--config`` file (e.g. ``staging.yaml``) <- command-line options.

The keys are checked against :data:`omgmagics.config.SERVING_ENV_SPEC` (unknown keys rejected with a
did-you-mean) and their values against their ranges here.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SERVING_ENV_SPEC, deep_merge, read_yaml, validate
from ..errors import ConfigError

ENV_DEFAULTS: dict[str, Any] = {
    "bundle": None,
    "host": "127.0.0.1",
    "port": None,
    "max_batch": 1024,
    "max_body_mb": 8,
    "auth_token_env": None,
    "allowed_hosts": [],
    "log": {"flush_records": 200, "flush_seconds": 1.0, "max_buffer": 20000},
    "validation": {"rows": 2000, "load_requests": 1000, "load_rps": None, "concurrency": 8},
}
ENV_PORTS = {"production": 8080, "staging": 8081}
OTHER_PORT = 8082
CANARY_DEFAULTS: dict[str, Any] = {"steps": [10, 25, 50, 100], "window_requests": 100,
                                   "max_error_rate": 0.01, "max_latency_p99_ms": None,
                                   "traffic_requests": None}
K8S_DEFAULTS: dict[str, Any] = {"namespace": "default", "image": None, "storage_uri": None,
                                "replicas": 2, "cpu": "1", "memory": "1Gi", "service_port": 80}
DEFAULT_LATENCY_P99_MS = 50.0
DEFAULT_RPS = 200.0
STAGING_TEMPLATE = """\
# Staging server settings: `omg deploy serve --env staging --config staging.yaml`.
# Every key is optional; omitted keys come from omg.yaml `serving.staging`, then `serving`.
host: 127.0.0.1          # bind address (loopback unless you mean to expose it)
port: 8081               # 0: any free port
max_batch: 1024          # records per POST /predict
max_body_mb: 8
auth_token_env: null     # name of an environment variable holding a bearer token; null: no auth
allowed_hosts: []        # Host names answered besides 127.0.0.1/localhost/::1 (e.g. a proxy's name)
log:                     # prediction log: monitoring/predictions/YYYY-MM-DD.jsonl
  flush_records: 200
  flush_seconds: 1.0
  max_buffer: 20000      # records kept in memory at most; beyond, records are dropped and counted
validation:              # `--validate`: replay the validation split, then a bounded load
  rows: 2000
  load_requests: 1000
  load_rps: null         # null: brief.constraints.throughput_rps
  concurrency: 8
"""


@dataclass
class ServeSettings:
    """The resolved settings of one environment's server."""

    env: str
    host: str
    port: int
    bundle: str | None
    max_batch: int
    max_body_bytes: int
    auth_token_env: str | None
    allowed_hosts: list[str]
    log: dict[str, Any]
    validation: dict[str, Any]
    latency_p99_ms: float
    throughput_rps: float
    sources: list[str] = field(default_factory=list)

    def token(self) -> str | None:
        """The bearer token from the environment, or None when auth is off.

        Raises
        ------
        ConfigError
            When ``auth_token_env`` names a variable that is not set: starting without auth
            would silently open the server; or when the server would listen on an address other
            machines reach (not loopback) without a token.
        """
        if not self.auth_token_env:
            if self.host not in LOOPBACK:
                raise ConfigError(f"Serving on {self.host} would let other machines call the model "
                                  "without auth. Set serving.auth_token_env to the name of an "
                                  "environment variable holding a bearer token, or bind 127.0.0.1 "
                                  "(the default).")
            return None
        value = os.environ.get(self.auth_token_env, "")
        if not value:
            raise ConfigError(f"serving.auth_token_env names {self.auth_token_env}, which is not set "
                              f"(or empty). Export it (export {self.auth_token_env}=...) or set "
                              "auth_token_env: null to serve without auth.")
        return value

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "sources"}


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_env_name(env: Any) -> str:
    """`env` if it is a safe name (it becomes a file name under .omg/ and monitoring/); else an error."""

    if not isinstance(env, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", env):
        raise ConfigError(f"--env must be a name of letters, digits, '-' or '_', got {env!r}.")
    return env


def read_config_file(path: str | os.PathLike, project: Any = None) -> dict[str, Any]:
    """Read and check a serving config file (``staging.yaml``).

    Raises
    ------
    ConfigError
        A missing file, invalid YAML, unknown keys or wrong types, naming the file and the key.
    """
    p = Path(path)
    if not p.is_absolute() and not p.exists() and project is not None:
        p = Path(project.root) / p
    if not p.is_file():
        raise ConfigError(f"The serving config {path} does not exist. Write one with "
                          f"`omg deploy serve --init --config {path}` (a documented example) or "
                          "drop --config to use omg.yaml's serving settings.")
    data = read_yaml(p, "serving config")
    if data is None:
        return {}
    validate(data, SERVING_ENV_SPEC, source=p.name)
    return data


def write_config_template(path: str | os.PathLike) -> Path:
    from ..atomic import write_text

    p = Path(path)
    if p.exists():
        raise ConfigError(f"{p} already exists; --init never overwrites it. Edit it or pass another "
                          "--config path.")
    return write_text(p, STAGING_TEMPLATE)


def _check(settings: dict[str, Any], where: str) -> None:
    def positive(value: Any, name: str, integer: bool = True) -> None:
        if value is None or (integer and not isinstance(value, int)) or value <= 0:
            raise ConfigError(f"{where}: '{name}' must be a positive {'integer' if integer else 'number'}"
                              f", got {value!r}.")

    port = settings.get("port")
    if port is not None and not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: 'port' must be in 0..65535, got {port}.")
    positive(settings["max_batch"], "max_batch")
    positive(settings["max_body_mb"], "max_body_mb", integer=False)
    log = settings["log"]
    positive(log["flush_records"], "log.flush_records")
    positive(log["flush_seconds"], "log.flush_seconds", integer=False)
    positive(log["max_buffer"], "log.max_buffer")
    val = settings["validation"]
    positive(val["rows"], "validation.rows")
    positive(val["load_requests"], "validation.load_requests")
    positive(val["concurrency"], "validation.concurrency")
    if val.get("load_rps") is not None:
        positive(val["load_rps"], "validation.load_rps", integer=False)
    hosts = settings.get("allowed_hosts")
    if not isinstance(hosts, list) or not all(
            isinstance(h, str) and re.fullmatch(r"[A-Za-z0-9.:\[\]_-]{1,253}", h) for h in hosts):
        raise ConfigError(f"{where}: 'allowed_hosts' must be a list of host names, e.g. "
                          f"[model.internal], got {hosts!r}.")
    name = settings.get("auth_token_env")
    if name is not None and not str(name).replace("_", "").isalnum():
        raise ConfigError(f"{where}: 'auth_token_env' must name an environment variable (letters, "
                          f"digits, '_'), got {name!r}.")


def resolve_settings(project: Any, env: str = "staging", config: str | None = None, *,
                     host: str | None = None, port: int | None = None,
                     bundle: str | None = None) -> ServeSettings:
    """Merge the layers for `env` and check the values.

    Raises
    ------
    ConfigError
        For a malformed config file or an out-of-range value.
    """
    check_env_name(env)
    serving = (project.config.get("serving") or {}) if project is not None else {}
    merged = copy.deepcopy(ENV_DEFAULTS)
    sources = ["defaults"]
    top = {k: v for k, v in serving.items() if k in SERVING_ENV_SPEC and v is not None}
    merged = deep_merge(merged, _drop_none(top))
    if top:
        sources.append("omg.yaml serving")
    if isinstance(serving.get(env), dict):
        merged = deep_merge(merged, _drop_none(serving[env]))
        sources.append(f"omg.yaml serving.{env}")
    if config:
        merged = deep_merge(merged, _drop_none(read_config_file(config, project)))
        sources.append(str(config))
    if host is not None:
        merged["host"] = host
    if port is not None:
        if not 0 <= int(port) <= 65535:  # the flag's value, not a config file's: name the flag
            from ..errors import UsageError

            raise UsageError(f"--port must be in 0..65535 (0: any free port), got {port}.")
        merged["port"] = port
    if bundle is not None:
        merged["bundle"] = bundle
    _check(merged, str(config) if config else "omg.yaml serving")
    if merged.get("port") is None:
        merged["port"] = ENV_PORTS.get(env, OTHER_PORT)
    cfg = project.config if project is not None else {}
    latency = _get(cfg, "brief.constraints.latency_p99_ms") or DEFAULT_LATENCY_P99_MS
    rps = _get(cfg, "brief.constraints.throughput_rps") or DEFAULT_RPS
    return ServeSettings(env=env, host=str(merged["host"] or "127.0.0.1"), port=int(merged["port"]),
                         bundle=merged.get("bundle"), max_batch=int(merged["max_batch"]),
                         max_body_bytes=int(float(merged["max_body_mb"]) * 2**20),
                         auth_token_env=merged.get("auth_token_env"),
                         allowed_hosts=[str(h) for h in merged["allowed_hosts"]], log=merged["log"],
                         validation=merged["validation"], latency_p99_ms=float(latency),
                         throughput_rps=float(rps), sources=sources)


def canary_settings(project: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``serving.canary`` over the defaults; the latency bound defaults to the brief's."""
    serving = (project.config.get("serving") or {}) if project is not None else {}
    out = deep_merge(CANARY_DEFAULTS, _drop_none(serving.get("canary") or {}))
    out = deep_merge(out, _drop_none(overrides or {}))
    cfg = project.config if project is not None else {}
    if out["max_latency_p99_ms"] is None:
        out["max_latency_p99_ms"] = float(_get(cfg, "brief.constraints.latency_p99_ms")
                                          or DEFAULT_LATENCY_P99_MS)
    steps = out["steps"]
    if not isinstance(steps, list) or not steps or not all(
            isinstance(s, (int, float)) and 0 < s <= 100 for s in steps) or \
            list(steps) != sorted(steps) or steps[-1] != 100:
        raise ConfigError(f"serving.canary.steps must be increasing percentages in (0, 100] ending at "
                          f"100, e.g. [10, 25, 50, 100]; got {steps!r}.")
    if not isinstance(out["window_requests"], int) or out["window_requests"] < 1:
        raise ConfigError(f"serving.canary.window_requests must be a positive integer, got "
                          f"{out['window_requests']!r}.")
    if not 0 <= float(out["max_error_rate"]) < 1:
        raise ConfigError(f"serving.canary.max_error_rate must be in [0, 1), got "
                          f"{out['max_error_rate']!r}.")
    if float(out["max_latency_p99_ms"]) <= 0:
        raise ConfigError("serving.canary.max_latency_p99_ms must be positive.")
    return out


def kubernetes_settings(project: Any) -> dict[str, Any]:
    serving = (project.config.get("serving") or {}) if project is not None else {}
    return deep_merge(K8S_DEFAULTS, _drop_none(serving.get("kubernetes") or {}))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node
