"""Operations settings (core layer): ``monitoring:`` and ``retraining:`` of ``omg.yaml``, with defaults.

A ``monitoring.yaml`` in the project folder (or the file named by ``--config``) has the same keys as
``monitoring:``; its values override those of ``omg.yaml``, for the verbs and the phase 5 gate alike.
A threshold set to ``null`` is not checked.

Defaults::

    monitoring:
      predictions: monitoring/predictions    # the prediction log folder (written by serving)
      feedback: monitoring/feedback.jsonl     # ground truth; .parquet and .csv are read too
      reference: monitoring/reference.parquet # drift reference when --reference is not given
      env: null                               # only this traffic (the log's env), e.g. production
      window: 1d                              # bucket of the monitor's time series
      thresholds:
        latency_p99_ms: <brief.constraints.latency_p99_ms>
        latency_p50_ms: null
        error_rate: 0.01        # share of requests with status "error"
        min_volume: 1           # fewer requests in a window raises an alert
        max_volume: null
        missing_share: 0.2      # any input feature missing in more than this share of requests
        metric_min: <brief.objective.threshold>   # the primary metric on labeled traffic
        min_labels: 50          # fewer labels in a window: the metric is shown, not judged
      drift: {window: 7d, ...}  # see omgmagics.ops.drift.DEFAULTS; alert_on: [dataset, prediction, feature]
    retraining:
      phases: [2, 3]
      min_improvement: 0.0      # the challenger must be better by more than this (metric units)
      eval_window: 7d           # the latest labeled window both models are scored on
      eval_min_labels: 50
      rollout: canary           # canary (phase 4), direct (move the champion alias) or none
      schedule: 30d             # `retrain --trigger schedule` holds when the last retrain is older
      params: {}                # extra notebook parameters for the retrain run
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..config import MONITORING_SPEC, deep_merge, read_yaml, validate
from ..errors import ConfigError, unknown_choice
from ..io import input_path
from .drift import DEFAULTS as DRIFT_DEFAULTS

ALERT_ON = ("dataset", "prediction", "feature")
ROLLOUTS = ("canary", "direct", "none")
MONITORING_DEFAULTS: dict[str, Any] = {
    "predictions": "monitoring/predictions",
    "feedback": None,
    "reference": "monitoring/reference.parquet",
    "env": None,
    "window": "1d",
    "thresholds": {"latency_p50_ms": None, "latency_p99_ms": None, "error_rate": 0.01,
                   "min_volume": 1, "max_volume": None, "missing_share": 0.2, "metric_min": None,
                   "min_labels": 50},
    "drift": {**DRIFT_DEFAULTS, "window": "7d", "features": None, "categorical": None,
              "prediction": None, "alert_on": list(ALERT_ON)},
}
RETRAINING_DEFAULTS: dict[str, Any] = {
    "phases": [2, 3], "min_improvement": 0.0, "eval_window": "7d", "eval_min_labels": 50,
    "rollout": "canary", "schedule": "30d", "params": {},
}


def _drop_nulls(d: dict[str, Any]) -> dict[str, Any]:
    # a null in the file means "the default" for keys with one, except thresholds (null: unchecked)
    return {k: (_drop_nulls(v) if isinstance(v, dict) else v) for k, v in d.items()
            if v is not None}


def monitoring_settings(project: Any, config: str | Path | None = None) -> dict[str, Any]:
    """Defaults, then ``omg.yaml`` ``monitoring:``, then the `config` file; checked.

    Thresholds that are not set fall back to the brief (latency p99, the primary metric's threshold).
    """
    from .windows import parse_duration

    base = copy.deepcopy(MONITORING_DEFAULTS)
    brief = project.config
    base["thresholds"]["latency_p99_ms"] = brief.get_path("brief.constraints.latency_p99_ms")
    base["thresholds"]["metric_min"] = brief.get_path("brief.objective.threshold")
    explicit_thresholds: dict[str, Any] = {}
    for layer in (project.config.get("monitoring") or {}, _read_config(project, config)):
        if not layer:
            continue
        explicit_thresholds.update(layer.get("thresholds") or {})
        base = deep_merge(base, _drop_nulls(layer))
    # an explicit null threshold switches that check off
    for key, value in explicit_thresholds.items():
        if value is None:
            base["thresholds"][key] = None
    env = base.get("env")
    if env is not None and not (isinstance(env, str) or all(isinstance(e, str) for e in env)):
        raise ConfigError(f"monitoring.env must be an environment name or a list of them, got {env!r}.")
    parse_duration(base["window"], "monitoring.window")
    parse_duration(base["drift"]["window"], "monitoring.drift.window")
    bad = [a for a in base["drift"]["alert_on"] or [] if a not in ALERT_ON]
    if bad:
        raise ConfigError("monitoring.drift.alert_on: " + unknown_choice("alert rule", bad[0], ALERT_ON))
    return base


DEFAULT_FILE = "monitoring.yaml"


def _read_config(project: Any, config: str | Path | None) -> dict[str, Any]:
    if not config:
        default = Path(project.root) / DEFAULT_FILE
        if not default.is_file():
            return {}
        config = default
    path = input_path(config, project.root)
    data = read_yaml(path, "monitoring config")
    if data is None:
        return {}
    if isinstance(data, dict) and "monitoring" in data and len(data) == 1:
        data = data["monitoring"]  # a file that repeats the omg.yaml section name
    validate(data, MONITORING_SPEC, source=path.name)
    return data


def retraining_settings(project: Any) -> dict[str, Any]:
    from .windows import parse_duration

    s = deep_merge(RETRAINING_DEFAULTS, _drop_nulls(project.config.get("retraining") or {}))
    if s["rollout"] not in ROLLOUTS:
        raise ConfigError("retraining.rollout: " + unknown_choice("rollout", s["rollout"], ROLLOUTS))
    parse_duration(s["eval_window"], "retraining.eval_window")
    parse_duration(s["schedule"], "retraining.schedule")
    phases = s["phases"]
    if not phases or any(not isinstance(p, int) or not 1 <= p <= 5 for p in phases):
        raise ConfigError(f"retraining.phases must list lifecycle phases 1-5, got {phases}.")
    margin = s["min_improvement"]
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise ConfigError(f"retraining.min_improvement must be a number >= 0 (how much better the "
                          f"challenger must be, in metric units), got {margin!r}.")
    return s
