"""Figures of phase 3 (core layer): built on ``matplotlib.figure.Figure`` directly (no pyplot state,
no backend needed), returned to be added to a :class:`~omgmagics.results.Report` and logged to MLflow.
"""

from __future__ import annotations

from typing import Any


def _fig(width: float = 5.5, height: float = 3.6, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def to_png(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def learning_curve(history: list[float], metric: str, best: int | None = None,
                   xlabel: str = "boosting round") -> Any:
    fig, ax = _fig()
    ax.plot(range(1, len(history) + 1), history, color="#0969da")
    if best:
        ax.axvline(best, color="#cf222e", linestyle="--", label=f"best: {best}")
        ax.legend()
    ax.set(xlabel=xlabel, ylabel=f"validation {metric}", title="Learning curve")
    ax.grid(alpha=0.3)
    return fig


def barh(names: list[str], values: list[float], title: str, xlabel: str, top: int = 20) -> Any:
    pairs = sorted(zip(names, values, strict=True), key=lambda p: abs(p[1]), reverse=True)[:top]
    fig, ax = _fig(6, 0.6 + 0.28 * max(len(pairs), 1))
    ax.barh([p[0] for p in pairs][::-1], [p[1] for p in pairs][::-1], color="#0969da")
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    return fig


def confusion(matrix: Any, labels: list[str]) -> Any:
    import numpy as np

    fig, ax = _fig(4.2, 3.6)
    m = np.asarray(matrix)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels=labels)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    return fig


def curves(y: Any, score: Any) -> Any:
    """ROC, precision-recall and calibration curves of a binary classifier, side by side."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (a, b, c) = _fig(4, 3.6, ncols=3)
    fpr, tpr, _ = roc_curve(y, score)
    a.plot(fpr, tpr, color="#0969da")
    a.plot([0, 1], [0, 1], color="grey", linestyle=":")
    a.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    prec, rec, _ = precision_recall_curve(y, score)
    b.plot(rec, prec, color="#0969da")
    b.axhline(float(y.mean()), color="grey", linestyle=":")
    b.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    frac, mean_pred = calibration_curve(y, score, n_bins=10, strategy="quantile")
    c.plot(mean_pred, frac, marker="o", color="#0969da")
    c.plot([0, 1], [0, 1], color="grey", linestyle=":")
    c.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Calibration")
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    return fig


def residuals(y: Any, pred: Any) -> Any:
    fig, (a, b) = _fig(4.5, 3.6, ncols=2)
    res = y - pred
    a.scatter(pred, res, s=6, alpha=0.5, color="#0969da")
    a.axhline(0, color="grey", linestyle=":")
    a.set(xlabel="predicted", ylabel="residual", title="Residuals vs predicted")
    b.hist(res, bins=40, color="#0969da")
    b.set(xlabel="residual", ylabel="rows", title="Residual distribution")
    return fig


def degradation(curves_: dict[str, list[tuple[float, float]]], metric: str) -> Any:
    """One panel per perturbation: the metric against its strength."""
    n = max(len(curves_), 1)
    fig, axes = _fig(3.2, 3.0, ncols=n)
    axes = [axes] if n == 1 else list(axes)
    for ax, (name, points) in zip(axes, curves_.items(), strict=False):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#cf222e")
        ax.set(title=name, xlabel="strength", ylabel=metric if ax is axes[0] else "")
        ax.grid(alpha=0.3)
    fig.suptitle("Robustness: metric under perturbation")
    return fig


def optimization_history(values: list[float | None], best: list[float | None], metric: str) -> Any:
    fig, ax = _fig()
    xs = [i for i, v in enumerate(values) if v is not None]
    ax.scatter(xs, [values[i] for i in xs], s=12, color="#0969da", label="trial")
    ax.plot([i for i, v in enumerate(best) if v is not None], [v for v in best if v is not None],
            color="#cf222e", label="best so far")
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="Optimization history")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def group_bars(table: Any, group_col: str, metrics: list[str], title: str) -> Any:
    import numpy as np

    fig, ax = _fig(6.5, 3.4)
    groups = [str(g) for g in table[group_col]]
    width = 0.8 / max(len(metrics), 1)
    x = np.arange(len(groups))
    for i, m in enumerate(metrics):
        ax.bar(x + i * width, table[m].astype(float), width, label=m)
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, labels=groups, rotation=20, ha="right")
    ax.set(title=title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


class LazyFigures(dict):
    """Named figures rendered to PNG on first access.

    A :class:`~omgmagics.results.Report` shows figures only in a notebook (the terminal lists their
    names), so a command run from a terminal or a pipeline never pays for drawing them. Values are
    PNG bytes or zero-argument callables returning a matplotlib figure.
    """

    def __getitem__(self, name: str) -> bytes:
        value = super().__getitem__(name)
        if callable(value):
            value = to_png(value())
            super().__setitem__(name, value)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def raw(self, name: str) -> Any:
        """The stored value (PNG bytes or a callable), without rendering."""
        return super().__getitem__(name)

    def items(self) -> list[tuple[str, bytes]]:  # type: ignore[override]
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[bytes]:  # type: ignore[override]
        return [self[k] for k in self.keys()]

    def merge(self, other: dict[str, Any]) -> LazyFigures:
        """Add `other`'s figures without rendering lazy ones."""
        for name in other:
            super().__setitem__(name, other.raw(name) if isinstance(other, LazyFigures)
                                else other[name])
        return self
