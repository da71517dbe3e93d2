"""Metric names the brief may use, with their ranges and direction (core layer).

One table shared by the brief's validation (phase 1), the gates and model evaluation (phase 3):
``METRICS[name]`` gives the problem type, the value range, whether greater is better and the
scikit-learn scorer name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError, unknown_choice

INF = float("inf")


@dataclass(frozen=True)
class Metric:
    name: str
    task: str  # "classification" or "regression"
    low: float
    high: float
    greater_is_better: bool
    scorer: str  # scikit-learn scorer name

    def check_threshold(self, value: float) -> None:
        """Raise :class:`ConfigError` when `value` is outside the metric's range."""
        if not self.low <= value <= self.high:
            raise ConfigError(f"Threshold {value} for metric '{self.name}' is outside its range "
                              f"[{self.low}, {self.high}]. Set brief.objective.threshold inside it.")


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("roc_auc", "classification", 0.0, 1.0, True, "roc_auc"),
    Metric("average_precision", "classification", 0.0, 1.0, True, "average_precision"),
    Metric("accuracy", "classification", 0.0, 1.0, True, "accuracy"),
    Metric("balanced_accuracy", "classification", 0.0, 1.0, True, "balanced_accuracy"),
    Metric("f1", "classification", 0.0, 1.0, True, "f1"),
    Metric("f1_macro", "classification", 0.0, 1.0, True, "f1_macro"),
    Metric("precision", "classification", 0.0, 1.0, True, "precision"),
    Metric("recall", "classification", 0.0, 1.0, True, "recall"),
    Metric("log_loss", "classification", 0.0, INF, False, "neg_log_loss"),
    Metric("rmse", "regression", 0.0, INF, False, "neg_root_mean_squared_error"),
    Metric("mae", "regression", 0.0, INF, False, "neg_mean_absolute_error"),
    Metric("r2", "regression", -INF, 1.0, True, "r2"),
    Metric("mape", "regression", 0.0, INF, False, "neg_mean_absolute_percentage_error"),
]}


def get_metric(name: str, task: str | None = None) -> Metric:
    """Look up a metric by name, optionally checking it fits the problem type."""
    if name not in METRICS:
        raise ConfigError(unknown_choice("metric", name, METRICS) +
                          " Set brief.objective.primary_metric to one of them.")
    metric = METRICS[name]
    if task is not None and metric.task != task:
        same = sorted(m for m, v in METRICS.items() if v.task == task)
        raise ConfigError(f"Metric '{name}' is for {metric.task}, but the objective is {task}. "
                          f"Use one of: {', '.join(same)}.")
    return metric


def default_metric(task: str, n_classes: int = 2) -> str:
    """The primary metric the kit proposes for a new project."""
    if task == "regression":
        return "rmse"
    return "roc_auc" if n_classes <= 2 else "f1_macro"
