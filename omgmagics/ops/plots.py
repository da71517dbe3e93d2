"""Figures of the operations reports (core layer). Figures are built with ``matplotlib.figure.Figure``
directly, which needs no backend (safe in a notebook kernel and a terminal alike)."""

from __future__ import annotations

from typing import Any

import numpy as np

REF, CUR, BAD = "#57606a", "#0969da", "#cf222e"


def drift_histograms(features: list[Any], max_plots: int = 16) -> Any:
    """Overlaid reference / current distributions per feature, drifted features first."""
    from matplotlib.figure import Figure

    shown = sorted(features, key=lambda f: (not f.drifted, -(f.psi if np.isfinite(f.psi) else 0)))
    shown = shown[:max_plots]
    ncols = min(4, len(shown)) or 1
    nrows = int(np.ceil(len(shown) / ncols)) or 1
    fig = Figure(figsize=(3.6 * ncols, 2.6 * nrows))
    for i, f in enumerate(shown):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        keep = (f.ref_share > 0) | (f.cur_share > 0)
        if f.kind == "categorical" and keep.sum() > 12:  # the largest categories only
            top = np.argsort(-(f.ref_share + f.cur_share))[:12]
            keep = np.zeros_like(keep)
            keep[top] = True
        idx = np.flatnonzero(keep)
        x = np.arange(len(idx))
        ax.bar(x, f.ref_share[idx], width=0.9, color=REF, alpha=0.45, label="reference")
        ax.bar(x, f.cur_share[idx], width=0.9, color=CUR, alpha=0.45, label="current")
        labels = [f.labels[j] if j < len(f.labels) else str(j) for j in idx]
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
        verdict = {True: "DRIFT", False: "ok", None: "not judged"}[f.drifted]
        ax.set_title(f"{f.feature}: PSI {f.psi:.3f} ({verdict})", fontsize=8,
                     color=BAD if f.drifted else "black")
        ax.tick_params(axis="y", labelsize=6)
        if i == 0:
            ax.legend(fontsize=6)
    # fixed spacing: tight_layout would lay the figure out once more before saving (slow)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.93, bottom=0.22, wspace=0.25, hspace=0.9)
    return fig


def drift_over_time(table: Any) -> Any:
    """Share of drifted features per window, with the dataset-drift line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 2.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(table["window start"], table["drifted share"], marker="o", color=CUR)
    ax.set_ylabel("share of features drifted", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    return fig


def monitor_series(series: Any, thresholds: dict[str, Any], metric: str) -> Any:
    """The monitor dashboard: volume, latency, errors, scores, missingness, live metric over time."""
    from matplotlib.figure import Figure

    t = series["window start"]
    panels = [("requests", ["requests"], {"min_volume": "requests", "max_volume": "requests"}),
              ("latency (ms)", ["latency p50 ms", "latency p99 ms"],
               {"latency_p99_ms": "latency p99 ms", "latency_p50_ms": "latency p50 ms"}),
              ("error rate", ["error rate"], {"error_rate": "error rate"}),
              ("score", ["score p10", "score p50", "score p90", "positive rate"], {}),
              ("max missing share", ["max missing share"], {"missing_share": "max missing share"}),
              (f"live {metric}", [f"live {metric}"], {"metric_min": f"live {metric}"})]
    fig = Figure(figsize=(10, 7.5))
    for i, (title, cols, lines) in enumerate(panels):
        ax = fig.add_subplot(3, 2, i + 1)
        for c in cols:
            if c in series:
                ax.plot(t, series[c], marker=".", label=c)
        for key in lines:
            value = thresholds.get(key)
            if value is not None:
                ax.axhline(value, color=BAD, linestyle="--", linewidth=1, label=f"{key} {value:g}")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if len(cols) > 1 or any(thresholds.get(k) is not None for k in lines):
            ax.legend(fontsize=6)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_ha("right")
    fig.subplots_adjust(left=0.07, right=0.98, top=0.95, bottom=0.08, wspace=0.2, hspace=0.6)
    return fig
