"""Search spaces of hyper-parameter tuning (core layer).

A default space per model type, overridable per parameter in ``omg.yaml``
(``tuning.search_space.MODEL.PARAM``) or a ``--space`` YAML file. A parameter is a fixed value, a
range ``{low, high, log, step, type}`` or ``{choices: [...]}``; every name is checked against the
model's own hyper-parameters and every range for low <= high before a study starts.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import ConfigError

BOOST_CAP = {"n_estimators": 1000}
SPACES: dict[str, dict[str, Any]] = {
    "xgboost": {
        **BOOST_CAP,
        "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "max_depth": {"low": 2, "high": 10},
        "min_child_weight": {"low": 1.0, "high": 20.0, "log": True},
        "subsample": {"low": 0.5, "high": 1.0},
        "colsample_bytree": {"low": 0.4, "high": 1.0},
        "reg_lambda": {"low": 1e-3, "high": 10.0, "log": True},
        "reg_alpha": {"low": 1e-3, "high": 10.0, "log": True},
    },
    "lightgbm": {
        **BOOST_CAP,
        "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "num_leaves": {"low": 8, "high": 256, "log": True},
        "min_child_samples": {"low": 5, "high": 100, "log": True},
        "subsample": {"low": 0.5, "high": 1.0},
        "subsample_freq": 1,
        "colsample_bytree": {"low": 0.4, "high": 1.0},
        "reg_lambda": {"low": 1e-3, "high": 10.0, "log": True},
    },
    "mlp": {
        "hidden_sizes": {"choices": [[32], [64, 32], [128, 64], [256, 128, 64]]},
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "batch_size": {"choices": [128, 256, 512]},
        "epochs": 60,
    },
    "random_forest": {
        "n_estimators": {"low": 50, "high": 400, "log": True},
        "max_depth": {"low": 3, "high": 20},
        "min_samples_leaf": {"low": 1, "high": 20, "log": True},
        "max_features": {"low": 0.2, "high": 1.0},
    },
    "extra_trees": {
        "n_estimators": {"low": 50, "high": 400, "log": True},
        "max_depth": {"low": 3, "high": 20},
        "min_samples_leaf": {"low": 1, "high": 20, "log": True},
        "max_features": {"low": 0.2, "high": 1.0},
    },
    "hist_gradient_boosting": {
        "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "max_leaf_nodes": {"low": 8, "high": 128, "log": True},
        "min_samples_leaf": {"low": 5, "high": 100, "log": True},
        "l2_regularization": {"low": 1e-4, "high": 10.0, "log": True},
    },
    "decision_tree": {"max_depth": {"low": 2, "high": 16},
                      "min_samples_leaf": {"low": 1, "high": 50, "log": True}},
    "logistic_regression": {"C": {"low": 1e-3, "high": 100.0, "log": True}},
    "ridge": {"alpha": {"low": 1e-3, "high": 100.0, "log": True}},
    "knn": {"n_neighbors": {"low": 3, "high": 50, "log": True}},
}
RANGE_KEYS = {"low", "high", "log", "step", "type"}


def check_space(model: str, space: dict[str, Any], valid: list[str], where: str) -> dict[str, Any]:
    """Normalise a search space: each parameter becomes ``{"fixed": v}``, ``{"choices": [...]}`` or a
    range ``{"type", "low", "high", "log", "step"}``.

    Raises
    ------
    ConfigError
        Unknown parameter (listing the valid ones), low > high, log with low <= 0, bad keys.
    """
    from ..errors import did_you_mean

    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where}: the search space for '{model}' must be a non-empty mapping of "
                          "parameter names to ranges.")
    out: dict[str, Any] = {}
    for name, spec in space.items():
        label = f"{where}: {model}.{name}"
        if name not in valid:
            raise ConfigError(f"{label}: unknown hyper-parameter '{name}' for model '{model}'."
                              f"{did_you_mean(name, valid)} Valid: {', '.join(valid)}.")
        if not isinstance(spec, dict):
            out[name] = {"fixed": spec}
            continue
        if "choices" in spec:
            extra = set(spec) - {"choices"}
            if extra or not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{label}: a categorical parameter is {{choices: [a, b, ...]}} with "
                                  "a non-empty list and no other key.")
            out[name] = {"choices": spec["choices"]}
            continue
        bad = set(spec) - RANGE_KEYS
        if bad or "low" not in spec or "high" not in spec:
            raise ConfigError(f"{label}: a range needs low and high (optional log, step, type: int|float)"
                              f"{'; unknown key(s): ' + ', '.join(sorted(bad)) if bad else ''}.")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"{label}: low and high must be numbers, got {low!r} and {high!r}.")
        if low > high:
            raise ConfigError(f"{label}: low {low} > high {high}. Swap them.")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ConfigError(f"{label}: a log range needs low > 0, got {low}.")
        kind = spec.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
        if kind not in ("int", "float"):
            raise ConfigError(f"{label}: type must be int or float, got {kind!r}.")
        if log and spec.get("step") is not None:
            raise ConfigError(f"{label}: step and log cannot be combined.")
        out[name] = {"type": kind, "low": low, "high": high, "log": log, "step": spec.get("step")}
    return out


def resolve_space(project: Any, model: str, valid: list[str],
                  space_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """The default space of `model`, with ``omg.yaml`` and `space_file` overrides, normalised."""
    from ..config import read_yaml

    space = dict(SPACES.get(model, {}))
    override = project.config.get_path(f"tuning.search_space.{model}") or {}
    where = "omg.yaml tuning.search_space"
    if override and not isinstance(override, dict):
        raise ConfigError(f"{where}.{model} must be a mapping of parameter names to ranges.")
    space.update(override)
    if space_file is not None:
        data = read_yaml(space_file, "search space file") or {}
        if isinstance(data, dict) and isinstance(data.get(model), dict):
            data = data[model]
        if not isinstance(data, dict):
            raise ConfigError(f"{space_file}: a search space is a mapping PARAM: {{low, high}}.")
        space.update(data)
        where = str(space_file)
    if not space:
        raise ConfigError(f"No default search space for model '{model}'. Give one in omg.yaml "
                          f"(tuning.search_space.{model}) or with --space FILE. Models with a default: "
                          f"{', '.join(sorted(SPACES))}.")
    return check_space(model, space, valid, where)


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Draw one parameter set from a normalised space."""
    params = {}
    for name, spec in space.items():
        if "fixed" in spec:
            params[name] = spec["fixed"]
        elif "choices" in spec:
            # Optuna's categorical values must be scalars: lists (hidden_sizes) go by their JSON text.
            keys = [json.dumps(c) if isinstance(c, (list, dict)) else c for c in spec["choices"]]
            pick = trial.suggest_categorical(name, keys)
            params[name] = json.loads(pick) if isinstance(pick, str) and pick[:1] in "[{" else pick
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                             step=int(spec["step"] or 1), log=spec["log"])
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               step=spec["step"], log=spec["log"])
    return params


def decode_params(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored params (lists as JSON text) plus fixed values -> model parameters."""
    out = {k: spec["fixed"] for k, spec in space.items() if "fixed" in spec}
    for k, v in params.items():
        out[k] = json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v
    return out
