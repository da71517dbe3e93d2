"""``omg.yaml``: the project brief and settings (core layer).

The file is found by walking up from the working directory (like Kedro's project root). A git-ignored
``omg.local.yaml`` beside it overrides any key (secrets, a tracking server for one machine). Every key
is checked against :data:`SPEC`; an unknown key is rejected with a "did you mean".
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, ProjectError, did_you_mean

CONFIG_NAME = "omg.yaml"
LOCAL_NAME = "omg.local.yaml"

ANY = object()  # a free-form value or mapping
OPT_STR = (str, type(None))
OPT_NUM = (int, float, type(None))

# Serving settings (phase 4): the keys of one environment, which `serving.staging`,
# `serving.production` and a `--config staging.yaml` file share; see omgmagics.deploy.settings.
SERVING_ENV_SPEC: dict[str, Any] = {
    "bundle": OPT_STR,               # models/NAME/VERSION; null: the newest bundle
    "host": OPT_STR,                 # bind address; 127.0.0.1 unless you mean it
    "port": (int, type(None)),       # 0: any free port
    "max_batch": (int, type(None)),  # records per request
    "max_body_mb": OPT_NUM,          # request body limit
    "auth_token_env": OPT_STR,       # environment variable holding a bearer token; null: no auth
    "allowed_hosts": (list, type(None)),  # Host names answered besides loopback's (DNS-rebinding guard)
    "log": {"flush_records": (int, type(None)), "flush_seconds": OPT_NUM,
            "max_buffer": (int, type(None))},
    "validation": {"rows": (int, type(None)), "load_requests": (int, type(None)),
                   "load_rps": OPT_NUM, "concurrency": (int, type(None))},
}
SERVING_SPEC: dict[str, Any] = {
    **SERVING_ENV_SPEC,
    "staging": SERVING_ENV_SPEC,
    "production": SERVING_ENV_SPEC,
    "canary": {"steps": (list, type(None)), "window_requests": (int, type(None)),
               "max_error_rate": OPT_NUM, "max_latency_p99_ms": OPT_NUM,
               "traffic_requests": (int, type(None))},
    "kubernetes": {"namespace": OPT_STR, "image": OPT_STR, "storage_uri": OPT_STR,
                   "replicas": (int, type(None)), "cpu": OPT_STR, "memory": OPT_STR,
                   "service_port": (int, type(None))},
}

# The schema: a nested dict of key -> type, tuple of types, nested spec, or ANY.
# Operations settings (phase 5): `monitoring:` of omg.yaml, which a `--config monitoring.yaml` file
# overrides with the same keys; defaults and meaning in omgmagics.ops.settings.
OPT_INT = (int, type(None))
MONITORING_SPEC: dict[str, Any] = {
    "predictions": OPT_STR,          # folder of the prediction log (monitoring/predictions)
    "feedback": OPT_STR,             # ground truth joined by request_id (monitoring/feedback.jsonl)
    "reference": OPT_STR,            # default drift reference (monitoring/reference.parquet)
    "env": (str, list, type(None)),  # which traffic is monitored (the log's env); null: all
    "window": OPT_STR,               # time bucket of the monitor's series, e.g. 1d
    "thresholds": {
        "latency_p50_ms": OPT_NUM, "latency_p99_ms": OPT_NUM, "error_rate": OPT_NUM,
        "min_volume": OPT_NUM, "max_volume": OPT_NUM, "missing_share": OPT_NUM,
        "metric_min": OPT_NUM, "min_labels": OPT_INT,
    },
    "drift": {
        "window": OPT_STR, "bins": OPT_INT, "psi_bins": OPT_INT, "sample_size": OPT_INT,
        "max_categories": OPT_INT, "alpha": OPT_NUM, "correction": OPT_STR, "effect": OPT_STR,
        "min_effect": OPT_NUM, "psi_moderate": OPT_NUM, "psi_high": OPT_NUM,
        "js_threshold": OPT_NUM, "wasserstein_threshold": OPT_NUM, "drift_share": OPT_NUM,
        "min_rows": OPT_INT, "features": (list, type(None)), "categorical": (list, type(None)),
        "prediction": OPT_STR, "alert_on": (list, type(None)),
    },
}
RETRAINING_SPEC: dict[str, Any] = {
    "phases": (list, type(None)),      # lifecycle phases a retrain re-runs ([2, 3])
    "min_improvement": OPT_NUM,        # challenger must beat the champion by this much
    "eval_window": OPT_STR,            # the latest labeled window the two are compared on
    "eval_min_labels": OPT_INT,        # fewer labels there: no comparison, no promotion
    "rollout": OPT_STR,                # canary | direct | none
    "schedule": OPT_STR,               # the schedule trigger holds when the last retrain is older
    "params": (dict, type(None)),      # extra notebook parameters for the retrain run
}

SPEC: dict[str, Any] = {
    "project": {"name": str, "description": OPT_STR, "created": OPT_STR, "kit_version": OPT_STR},
    "brief": {
        "business_problem": OPT_STR,
        "stakeholders": (list, type(None)),
        "objective": {
            "type": str,
            "target": OPT_STR,
            "positive_label": (str, int, float, bool, type(None)),
            "primary_metric": str,
            "threshold": OPT_NUM,
            "secondary_metrics": (list, type(None)),
        },
        "constraints": {
            "latency_p99_ms": OPT_NUM,
            "throughput_rps": OPT_NUM,
            "model_size_mb": OPT_NUM,
            "retrain_within_hours": OPT_NUM,
            "detect_drift_within_hours": OPT_NUM,
        },
        "sensitive_features": (list, type(None)),
        "time_column": OPT_STR,
        "timeline": (dict, type(None)),
        "checkpoints": (dict, type(None)),
    },
    "data": {
        "source": OPT_STR,
        "format": OPT_STR,
        "sample_frac": OPT_NUM,
        "id_column": OPT_STR,
        "unlabeled_share": OPT_NUM,
        "exclude_columns": (list, type(None)),  # kept in the data, never used as model inputs
        "sources": OPT_STR,  # sources file of `omg data collect` (default sources.yaml)
        "schema": OPT_STR,  # schema file of `omg data validate` (default schema.yaml)
    },
    "fairness": {
        "demographic_parity_difference": OPT_NUM,
        "equalized_odds_difference": OPT_NUM,
        "metric_difference": OPT_NUM,  # largest spread of the primary metric between groups
    },
    "tracking": {"uri": OPT_STR, "experiment": OPT_STR, "registered_model": OPT_STR},
    "defaults": ANY,  # size-dependent defaults `omg ml init` derived from the table (a record)
    "tuning": {"storage": OPT_STR, "study": OPT_STR, "n_trials": (int, type(None)),
               "timeout_s": OPT_NUM, "search_space": (dict, type(None)),
               "heartbeat_s": (int, type(None))},  # worker heartbeat; stale after 4x
    "features": {"name": OPT_STR, "config": OPT_STR},
    "serving": SERVING_SPEC,
    "monitoring": MONITORING_SPEC,
    "retraining": RETRAINING_SPEC,
    "gates": ANY,
    "seed": int,
}


def find_config(start: str | os.PathLike | None = None) -> Path:
    """Walk up from `start` (default: the working directory) to the folder holding ``omg.yaml``.

    Raises
    ------
    ProjectError
        When no parent folder has one.
    """
    start = Path(start or os.getcwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    raise ProjectError(
        f"No {CONFIG_NAME} found in {start} or any parent folder. "
        "Create a project with `omg ml init NAME` (or `%omgml init NAME`) and run commands inside it."
    )


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """Read a YAML file, turning syntax errors into a :class:`ConfigError` naming the line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The {what} {path} does not exist. Check the path.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"The {what} {path} is not valid YAML{where}: {problem}. Fix the syntax.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The {what} {path} is not UTF-8 text. Save it as UTF-8.") from None


def validate(data: Any, spec: dict[str, Any] = SPEC, where: str = "", source: str = CONFIG_NAME) -> None:
    """Check `data` against `spec`: unknown keys (with a did-you-mean) and wrong types.

    Raises
    ------
    ConfigError
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where or 'the top level'}' must be a mapping of keys to values, "
                          f"got {type(data).__name__}.")
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in spec:
            raise ConfigError(
                f"{source}: unknown key '{path}'.{did_you_mean(str(key), spec)} "
                f"Valid keys{' under ' + where if where else ''}: {', '.join(sorted(spec))}."
            )
        rule = spec[key]
        if rule is ANY:
            continue
        if isinstance(rule, dict):
            if value is None:
                continue
            validate(value, rule, path, source)
            continue
        types = rule if isinstance(rule, tuple) else (rule,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            continue
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"{source}: '{path}' must be {names}, got {value!r}.")


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of `base` with `override` merged in, key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Config(dict):
    """The merged, validated ``omg.yaml`` (+ ``omg.local.yaml``) with a dotted getter."""

    def get_path(self, dotted: str, default: Any = None) -> Any:
        """``cfg.get_path("brief.objective.target")``; `default` when any part is missing."""
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, dict) or node.get(part) is None:
                return default
            node = node[part]
        return node


def load_config(path: str | os.PathLike) -> Config:
    """Load and validate ``omg.yaml`` and its optional ``omg.local.yaml`` override."""
    path = Path(path)
    data = read_yaml(path, CONFIG_NAME) or {}
    validate(data, source=str(path.name))
    local = path.with_name(LOCAL_NAME)
    if local.is_file():
        override = read_yaml(local, LOCAL_NAME) or {}
        validate(override, source=LOCAL_NAME)
        data = deep_merge(data, override)
    for required in ("project",):
        if required not in data:
            raise ConfigError(f"{path.name}: the '{required}' section is missing. "
                              "Add it (see `omg ml init --help` for a complete example).")
    return Config(data)
