"""Figures of phase 3 (core layer): built on ``matplotlib.figure.Figure`` directly (no pyplot state,
no backend needed), returned to be added to a :class:`~omgmagics.results.Report` and logged to MLflow.
"""

from __future__ import annotations

from typing import Any


def _fig(width: float = 5.5, height: float = 3.6, ncols: int = 1) -> tuple[Any, Any]:
    from ..plotstyle import new_figure

    return new_figure(width * ncols, height, 1, ncols)


def to_png(fig: Any) -> bytes:
    from ..plotstyle import to_png as png

    return png(fig)


def learning_curve(history: list[float], metric: str, best: int | None = None,
                   xlabel: str = "boosting round") -> Any:
    from ..plotstyle import BAD, PRIMARY, label_axes, style_legend

    fig, ax = _fig()
    ax.plot(range(1, len(history) + 1), history, color=PRIMARY, label=f"validation {metric}")
    if best:
        ax.axvline(best, color=BAD, linestyle="--", label=f"best: {best}")
    label_axes(ax, "Learning curve (validation split)", xlabel, f"validation {metric}")
    style_legend(ax)
    return fig


def ensemble_selection(trace: list[float], best_alone: float, metric: str, best_name: str) -> Any:
    """The blend's validation metric after each greedy step, against the best member alone."""
    from ..plotstyle import BAD, PRIMARY, label_axes, style_legend

    fig, ax = _fig()
    ax.plot(range(1, len(trace) + 1), trace, color=PRIMARY, marker="o", markersize=3,
            label="ensemble")
    ax.axhline(best_alone, color=BAD, linestyle="--", label=f"{best_name} alone")
    label_axes(ax, "Greedy ensemble selection (validation split)", "selection step",
               f"validation {metric}")
    style_legend(ax)
    return fig


def barh(names: list[str], values: list[float], title: str, xlabel: str, top: int = 20,
         ylabel: str | None = None) -> Any:
    """Horizontal bars of the `top` largest absolute values (importances, scores)."""
    from ..plotstyle import PRIMARY, label_axes

    if ylabel is None:
        ylabel = "hyper-parameter" if "parameter" in title.lower() else "feature"
    pairs = sorted(zip(names, values, strict=True), key=lambda p: abs(p[1]), reverse=True)[:top]
    longest = max((len(str(p[0])) for p in pairs), default=10)
    # wide enough for the longest name beside a readable bar area
    fig, ax = _fig(max(6.0, 3.6 + 0.075 * longest), 1.0 + 0.26 * max(len(pairs), 1))
    ax.barh([str(p[0]) for p in pairs][::-1], [p[1] for p in pairs][::-1], color=PRIMARY)
    shown = f" (top {len(pairs)} of {len(names)})" if len(names) > len(pairs) else ""
    label_axes(ax, title + shown, xlabel, ylabel)
    ax.grid(axis="y", visible=False)
    return fig


def leaderboard(board: Any, metric: str, cv: int) -> Any:
    """Cross-validated mean +- std of the primary metric per baseline, best on top."""
    from ..plotstyle import MUTED, PRIMARY, label_axes

    names = [str(m) for m in board["model"]]
    means = board[f"{metric} mean"].astype(float).to_numpy()
    stds = board[f"{metric} std"].astype(float).fillna(0).to_numpy()
    fig, ax = _fig(6, 1.2 + 0.45 * len(names))
    colours = [PRIMARY if i == 0 else MUTED for i in range(len(names))]
    ax.barh(names[::-1], means[::-1], xerr=stds[::-1], color=colours[::-1], capsize=4, height=0.6)
    for y, (m, sd) in enumerate(zip(means[::-1], stds[::-1], strict=True)):
        ax.text(m + sd, y, f"  {m:.3f}", va="center", fontsize=8)
    ax.grid(axis="y", visible=False)
    if (means >= 0).all():  # room for the value labels
        ax.set_xlim(0, float((means + stds).max()) * 1.15)
    label_axes(ax, f"Baselines: {metric} ({cv}-fold cross-validation, mean ± std)",
               f"cross-validated {metric}", "baseline")
    return fig


def comparison(table: Any, metric: str, best: str) -> Any:
    """The compared runs side by side: test metric, latency and size (the trade-offs of the choice)."""
    import numpy as np

    from ..plotstyle import MUTED, PRIMARY, label_axes, suptitle

    runs = [str(r) for r in table["run"]]
    panels = [(metric, f"test {metric}", None, "Test metric"),
              ("latency p50 (ms)", "latency p50", "ms", "Latency"),
              ("size (KB)", "model size", "KB", "Size")]
    panels = [p for p in panels if p[0] in table]
    fig, axes = _fig(3.6, 0.9 + 0.42 * len(runs), ncols=len(panels))
    axes = np.atleast_1d(axes)
    colours = [PRIMARY if r == best else MUTED for r in runs]
    for ax, (col, label, unit, title) in zip(axes, panels, strict=True):
        vals = table[col].astype(float).to_numpy()
        ax.barh(runs[::-1], np.nan_to_num(vals[::-1]), color=colours[::-1], height=0.6)
        for y, v in enumerate(vals[::-1]):
            if np.isfinite(v):
                ax.text(v, y, f" {v:.4g}", va="center", fontsize=7)
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.2)
        label_axes(ax, title, label, "run", x_unit=unit)
    suptitle(fig, f"Compared runs (test split); best: {best}")
    return fig


def shap_beeswarm(values: Any, X: Any, names: list[str], top: int = 15,
                  xlabel: str = "SHAP value (impact on the model output)") -> Any:
    """The SHAP summary: per feature (largest mean |SHAP| first) each explained row's SHAP value,
    coloured by the feature's value (its rank within the rows, low blue to high red)."""
    import numpy as np

    from ..plotstyle import REFERENCE, label_axes

    values, X = np.asarray(values, dtype=float), np.asarray(X, dtype=float)
    order = np.argsort(-np.abs(values).mean(axis=0))[:top]
    fig, ax = _fig(7, 1.2 + 0.32 * len(order))
    rng = np.random.default_rng(0)
    points = None
    for row, j in enumerate(order[::-1]):
        v, x = values[:, j], X[:, j]
        finite = np.isfinite(x)
        rank = np.full(len(x), 0.5)
        if finite.sum() > 1:
            rank[finite] = (np.argsort(np.argsort(x[finite])) / (finite.sum() - 1))
        # vertical spread grows with the local density of points, like shap's beeswarm
        hist, edges = np.histogram(v, bins=30)
        dens = hist[np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(hist) - 1)]
        jitter = rng.uniform(-1, 1, len(v)) * 0.38 * dens / max(hist.max(), 1)
        points = ax.scatter(v, row + jitter, c=rank, cmap="coolwarm", vmin=0, vmax=1, s=7,
                            alpha=0.8, linewidths=0)
    ax.axvline(0, color=REFERENCE, linewidth=0.8)
    ax.set_yticks(range(len(order)), labels=[str(names[j]) for j in order[::-1]])
    ax.grid(axis="y", visible=False)
    if points is not None:
        bar = fig.colorbar(points, ax=ax, ticks=[0, 1], aspect=30, pad=0.01)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value (rank)")
    shown = f" (top {len(order)} of {len(names)})" if len(names) > len(order) else ""
    label_axes(ax, f"SHAP summary: {len(values)} test rows{shown}",
               xlabel, "feature")
    return fig


def shap_classes(by_class: Any, names: list[str], classes: list[str], title: str,
                 top: int = 15) -> Any:
    """Mean |SHAP| per feature, stacked by class (the `top` features by their sum, largest on top):
    how much each feature moves each class's score."""
    import numpy as np

    from ..plotstyle import PALETTE, label_axes, style_legend

    by_class = np.asarray(by_class, dtype=float)  # (p, k)
    order = np.argsort(-by_class.sum(axis=1))[:top][::-1]
    longest = max((len(str(names[j])) for j in order), default=10)
    fig, ax = _fig(max(6.5, 4.2 + 0.075 * longest), 1.2 + 0.3 * max(len(order), 1))
    left = np.zeros(len(order))
    if len(classes) <= len(PALETTE):
        colors = PALETTE[:len(classes)]
    else:
        import matplotlib

        colors = [matplotlib.colormaps["tab20"](i % 20) for i in range(len(classes))]
    for i, (c, color) in enumerate(zip(classes, colors, strict=True)):
        ax.barh([str(names[j]) for j in order], by_class[order, i], left=left, color=color,
                label=str(c), height=0.7)
        left += by_class[order, i]
    shown = f" (top {len(order)} of {len(names)})" if len(names) > len(order) else ""
    label_axes(ax, title + shown, "mean |SHAP value| on each class's score", "feature")
    ax.grid(axis="y", visible=False)
    style_legend(ax, title="class", loc="lower right", ncols=1 if len(classes) <= 8 else 2)
    return fig


def confusion(matrix: Any, labels: list[str]) -> Any:
    import numpy as np

    from ..plotstyle import CMAP, label_axes

    fig, ax = _fig(4.4, 3.8)
    m = np.asarray(matrix)
    ax.imshow(m, cmap=CMAP)
    ax.grid(False)
    ax.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels=labels)
    total = max(int(m.sum()), 1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]}\n{m[i, j] / total:.1%}", ha="center", va="center", fontsize=8,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    label_axes(ax, "Confusion matrix (test split, rows)", "predicted class", "actual class")
    return fig


def curves(y: Any, score: Any) -> Any:
    """ROC, precision-recall and calibration curves of a binary classifier, side by side."""
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    from ..plotstyle import PRIMARY, REFERENCE, label_axes, style_legend, suptitle

    fig, (a, b, c) = _fig(4, 3.8, ncols=3)
    y = np.asarray(y)
    fpr, tpr, _ = roc_curve(y, score)
    a.plot(fpr, tpr, color=PRIMARY, label=f"model (AUC {auc(fpr, tpr):.3f})")
    a.plot([0, 1], [0, 1], color=REFERENCE, linestyle=":", label="chance")
    label_axes(a, "ROC", "false positive rate", "true positive rate")
    prec, rec, _ = precision_recall_curve(y, score)
    b.plot(rec, prec, color=PRIMARY, label=f"model (AP {average_precision_score(y, score):.3f})")
    b.axhline(float(y.mean()), color=REFERENCE, linestyle=":", label=f"base rate {y.mean():.2f}")
    label_axes(b, "Precision-recall", "recall", "precision")
    frac, mean_pred = calibration_curve(y, score, n_bins=10, strategy="quantile")
    c.plot(mean_pred, frac, marker="o", color=PRIMARY, label="model (10 quantile bins)")
    c.plot([0, 1], [0, 1], color=REFERENCE, linestyle=":", label="perfectly calibrated")
    label_axes(c, "Calibration", "mean predicted probability", "observed positive share")
    for ax in (a, b, c):
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        style_legend(ax, loc="lower right" if ax is not b else "lower left")
    suptitle(fig, f"Test split: {len(y):,} rows, {int(y.sum()):,} positive")
    return fig


def residuals(y: Any, pred: Any) -> Any:
    from ..plotstyle import PRIMARY, REFERENCE, label_axes

    fig, (a, b) = _fig(4.5, 3.6, ncols=2)
    res = y - pred
    a.scatter(pred, res, s=6, alpha=0.5, color=PRIMARY)
    a.axhline(0, color=REFERENCE, linestyle=":")
    label_axes(a, "Residuals vs predicted (test)", "predicted value", "residual (actual - predicted)")
    b.hist(res, bins=40, color=PRIMARY)
    label_axes(b, "Residual distribution (test)", "residual (actual - predicted)", "rows")
    return fig


def degradation(curves_: dict[str, list[tuple[float, float]]], metric: str) -> Any:
    """One panel per perturbation: the metric against its strength."""
    from ..plotstyle import BAD, label_axes, suptitle

    n = max(len(curves_), 1)
    fig, axes = _fig(3.2, 3.0, ncols=n)
    axes = [axes] if n == 1 else list(axes)
    for ax, (name, points) in zip(axes, curves_.items(), strict=False):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=BAD)
        label_axes(ax, _PERTURBATIONS.get(name, name), _strength_label(name), f"test {metric}")
    suptitle(fig, "Robustness: test metric under perturbation")
    return fig


_PERTURBATIONS = {"noise": "Gaussian noise", "missing": "Missing values",
                  "categories": "Categories redrawn", "shift": "Covariate shift"}


def _strength_label(name: str) -> str:
    low = name.lower()
    if "missing" in low:
        return "share of values set missing"
    if "categor" in low:
        return "share of categorical values redrawn"
    if "noise" in low:
        return "noise (x training std)"
    if "shift" in low:
        return "shift strength (weight exp(level x z))"
    return "perturbation strength"


def optimization_history(values: list[float | None], best: list[float | None], metric: str) -> Any:
    from ..plotstyle import BAD, MUTED, PRIMARY, label_axes, style_legend

    fig, ax = _fig()
    xs = [i for i, v in enumerate(values) if v is not None]
    ax.scatter(xs, [values[i] for i in xs], s=14, color=PRIMARY, label="completed trial")
    pruned = [i for i, v in enumerate(values) if v is None]
    if pruned and xs:
        lo = min(values[i] for i in xs)
        ax.scatter(pruned, [lo] * len(pruned), s=10, marker="x", color=MUTED,
                   label="pruned / failed trial")
    ax.step([i for i, v in enumerate(best) if v is not None], [v for v in best if v is not None],
            where="post", color=BAD, label="best so far")
    label_axes(ax, f"Optimization history ({len(values)} trials)", "trial number",
               f"validation {metric}")
    style_legend(ax)
    return fig


def group_bars(table: Any, group_col: str, metrics: list[str], title: str,
               ylabel: str = "rate (share of group)", share: bool = True) -> Any:
    """Bars of `metrics` per group (`share`: values are shares, drawn on 0..1)."""
    import numpy as np

    from ..plotstyle import label_axes, style_legend

    groups = [str(g) for g in table[group_col]]
    fig, ax = _fig(max(6.0, 0.9 * len(groups) + 2), 3.6)
    width = 0.8 / max(len(metrics), 1)
    x = np.arange(len(groups))
    for i, m in enumerate(metrics):
        ax.bar(x + i * width, table[m].astype(float), width, label=m.replace("_", " "))
    if "count" in table:
        groups = [f"{g}\n(n={int(n)})" for g, n in zip(groups, table["count"], strict=True)]
    if "in differences" in table and not table["in differences"].all():
        # groups too small to judge are drawn, but marked: the differences leave them out
        groups = [g if keep else f"{g}*" for g, keep in zip(groups, table["in differences"],
                                                            strict=True)]
        ax.text(1.03, 0.62, "* too few test rows:\nleft out of the\nfairness differences",
                transform=ax.transAxes, fontsize=7, color="#57606a", va="top")
    many = len(groups) > 5 or sum(len(g) for g in groups) > 45
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, labels=groups, rotation=20 if many else 0,
                  ha="right" if many else "center")
    if share:
        ax.set_ylim(0, 1.05)
    label_axes(ax, title, group_col, ylabel)
    ax.grid(axis="x", visible=False)
    style_legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
