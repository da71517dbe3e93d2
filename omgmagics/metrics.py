"""Metric names the brief may use, with their ranges and direction (core layer).

One table shared by the brief's validation (phase 1), the gates and model evaluation (phase 3):
``METRICS[name]`` gives the problem type, the value range, whether greater is better and the
scikit-learn scorer name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def default_secondary(task: str, n_classes: int = 2) -> list[str]:
    """The secondary metrics the kit proposes beside :func:`default_metric` (none repeats it: a
    multi-class ``f1`` is the macro average, the primary metric itself)."""
    if task == "regression":
        return ["mae", "r2"]
    return ["accuracy", "f1", "average_precision"] if n_classes <= 2 else ["accuracy",
                                                                            "balanced_accuracy"]


def is_classification(task: str) -> bool:
    return task != "regression"


def score(name: str, y_true: Any, y_score: Any, task: str = "classification") -> float:
    """Compute metric `name` from encoded labels and model scores (phase 3).

    Parameters
    ----------
    name : str
        A key of :data:`METRICS`.
    y_true : array-like
        Encoded class indices (classification) or values (regression).
    y_score : array-like
        Probability of the positive class (binary), an (n, k) probability matrix (multi-class) or the
        predictions (regression).
    task : {"classification", "regression"}

    Returns
    -------
    float
        NaN when the metric is undefined on this sample (e.g. ROC AUC with one class present).
    """
    import numpy as np
    from sklearn import metrics as skm

    metric = get_metric(name)
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if metric.task == "regression":
        if name == "rmse":
            return float(np.sqrt(np.mean((y_true - y_score) ** 2)))
        fn = {"mae": skm.mean_absolute_error, "r2": skm.r2_score,
              "mape": skm.mean_absolute_percentage_error}[name]
        return float(fn(y_true, y_score))
    multi = y_score.ndim == 2
    n_classes = y_score.shape[1] if multi else 2
    y_pred = y_score.argmax(axis=1) if multi else (y_score >= 0.5).astype(int)
    if len(np.unique(y_true)) < 2 and name in ("roc_auc", "average_precision"):
        return float("nan")
    if name == "roc_auc":
        if multi:
            return float(skm.roc_auc_score(y_true, y_score, multi_class="ovr",
                                           labels=list(range(n_classes))))
        return float(skm.roc_auc_score(y_true, y_score))
    if name == "average_precision":
        if multi:
            onehot = np.eye(n_classes)[y_true.astype(int)]
            return float(skm.average_precision_score(onehot, y_score, average="macro"))
        return float(skm.average_precision_score(y_true, y_score))
    if name == "log_loss":
        proba = y_score if multi else np.column_stack([1 - y_score, y_score])
        return float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1 - 1e-15),
                                  labels=list(range(n_classes))))
    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if name == "balanced_accuracy":
        return float(skm.balanced_accuracy_score(y_true, y_pred))
    average = "macro" if multi or name == "f1_macro" else "binary"
    fn = {"f1": skm.f1_score, "f1_macro": skm.f1_score, "precision": skm.precision_score,
          "recall": skm.recall_score}[name]
    return float(fn(y_true, y_pred, average=average, zero_division=0))


def better(name: str, a: float, b: float) -> bool:
    """Whether value `a` of metric `name` is strictly better than `b`."""
    return a > b if get_metric(name).greater_is_better else a < b


def best_index(name: str, values: list[float]) -> int:
    """The position of the best of `values` of metric `name` (the first, on a tie)."""
    best = 0
    for i in range(1, len(values)):
        if better(name, values[i], values[best]):
            best = i
    return best
