"""Figures of the operations reports (core layer). Figures are built with ``matplotlib.figure.Figure``
directly (through :mod:`omgmagics.plotstyle`), which needs no backend (safe in a notebook kernel and a
terminal alike)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..plotstyle import BAD, PRIMARY, REFERENCE

REF, CUR = REFERENCE, PRIMARY


def drift_histograms(features: list[Any], max_plots: int = 16) -> Any:
    """Overlaid reference / current distributions per feature, drifted features first."""
    from ..plotstyle import TICK_SIZE, label_axes, new_figure, style_legend, suptitle

    shown = sorted(features, key=lambda f: (not f.drifted, -(f.psi if np.isfinite(f.psi) else 0)))
    shown = shown[:max_plots]
    ncols = min(4, len(shown)) or 1
    nrows = int(np.ceil(len(shown) / ncols)) or 1
    # inches: each panel, the rotated bin labels and axis label under it, the figure's title
    panel, gap, bottom, top = 2.2, 1.35, 1.3, 0.75
    height = nrows * panel + (nrows - 1) * gap + bottom + top
    fig, axes = new_figure(3.6 * ncols, height, nrows, ncols, layout=None, squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    for i, f in enumerate(shown):
        ax = axes[i]
        keep = (f.ref_share > 0) | (f.cur_share > 0)
        if f.kind == "categorical" and keep.sum() > 12:  # the largest categories only
            largest = np.argsort(-(f.ref_share + f.cur_share))[:12]
            keep = np.zeros_like(keep)
            keep[largest] = True
        idx = np.flatnonzero(keep)
        x = np.arange(len(idx))
        ax.bar(x, f.ref_share[idx], width=0.9, color=REF, alpha=0.45, label="reference")
        ax.bar(x, f.cur_share[idx], width=0.9, color=CUR, alpha=0.45, label="current")
        labels = [f.labels[j] if j < len(f.labels) else str(j) for j in idx]
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=TICK_SIZE - 2)
        ax.grid(axis="x", visible=False)
        verdict = {True: "DRIFT", False: "ok", None: "not judged"}[f.drifted]
        label_axes(ax, f"{f.feature}: PSI {f.psi:.3f} ({verdict})",
                   "category" if f.kind == "categorical" else "bin (value range)",
                   "share of rows")
        ax.title.set_fontsize(8)
        ax.title.set_color(BAD if f.drifted else "black")
        if i == 0:
            style_legend(ax)
    suptitle(fig, "Reference vs current distributions (drifted features first)").set(
        y=1 - 0.12 / height, va="top")
    # fixed spacing: constrained layout would lay the figure out once more before saving (slow)
    fig.subplots_adjust(left=0.06, right=0.98, top=1 - top / height, bottom=bottom / height,
                        wspace=0.3, hspace=gap / panel)
    return fig


def drift_over_time(table: Any) -> Any:
    """Share of drifted features per window, with the dataset-drift line."""
    from ..plotstyle import label_axes, new_figure, rotate_xticks, style_legend

    fig, ax = new_figure(8, 3.0)
    ax.plot(table["window start"], table["drifted share"], marker="o", color=CUR,
            label="drifted share")
    bad = table["dataset drift"].eq("fail") if "dataset drift" in table else None
    if bad is not None and bad.any():
        ax.scatter(table.loc[bad, "window start"], table.loc[bad, "drifted share"], s=50,
                   color=BAD, zorder=3, label="dataset drift")
    ax.set_ylim(-0.02, 1.02)
    label_axes(ax, "Share of features drifted per window", "window start (UTC)",
               "share of features drifted")
    rotate_xticks(ax)
    style_legend(ax, loc="upper left")
    return fig


# (panel title, series columns, {threshold key: column it bounds}, y-axis label)
_PANELS = [
    ("Requests per window", ["requests"], {"min_volume": "requests", "max_volume": "requests"},
     "requests"),
    ("Latency", ["latency p50 ms", "latency p99 ms"],
     {"latency_p99_ms": "latency p99 ms", "latency_p50_ms": "latency p50 ms"}, "latency (ms)"),
    ("Error rate", ["error rate"], {"error_rate": "error rate"}, "share of requests"),
    ("Scores", ["score p10", "score p50", "score p90", "positive rate"], {}, "score / share"),
    ("Max missing share", ["max missing share"], {"missing_share": "max missing share"},
     "share of values"),
]


def monitor_series(series: Any, thresholds: dict[str, Any], metric: str) -> Any:
    """The monitor dashboard: volume, latency, errors, scores, missingness, live metric over time."""
    from ..plotstyle import label_axes, new_figure, rotate_xticks, style_legend, suptitle

    t = series["window start"]
    panels = _PANELS + [(f"Live {metric} (labelled requests)", [f"live {metric}"],
                         {"metric_min": f"live {metric}"}, metric)]
    fig, axes = new_figure(10, 8.2, 3, 2, layout=None)
    for ax, (title, cols, lines, ylabel) in zip(axes.ravel(), panels, strict=True):
        for c in cols:
            if c in series:
                ax.plot(t, series[c], marker=".", label=c)
        for key in lines:
            value = thresholds.get(key)
            if value is not None:
                ax.axhline(value, color=BAD, linestyle="--", linewidth=1, label=f"{key} {value:g}")
        label_axes(ax, title, "window start (UTC)", ylabel)
        if ylabel.startswith("share") or ylabel == "requests":  # counts and shares start at 0
            ax.set_ylim(bottom=0)
        if len(cols) > 1 or any(thresholds.get(k) is not None for k in lines):
            style_legend(ax)
        rotate_xticks(ax)
    suptitle(fig, f"Monitoring: {len(series)} window(s)")
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.09, wspace=0.22, hspace=0.85)
    return fig
