"""Figures of phase 1 (core layer): the data audit overview, built through :mod:`omgmagics.plotstyle`
on ``matplotlib.figure.Figure`` directly (no pyplot, no backend)."""

from __future__ import annotations

from typing import Any

STATUS_COLOURS = {"pass": "#1a7f37", "warn": "#d4a72c", "fail": "#cf222e"}


def audit_overview(items: list[Any], columns: Any, target: str, target_facts: dict[str, Any],
                   single_feature: Any = None, top: int = 15) -> Any:
    """Four panels: checklist results per section, the target's class balance (or a note for a
    regression target), missing values per column and the single-feature predictive power.

    Parameters
    ----------
    items : list of checks.Item
        The audit checklist.
    columns : DataFrame
        Column facts (``column``, ``missing`` share ...).
    target_facts : dict
        From ``Brief.check_data`` (``class_counts`` for a classification target).
    single_feature : DataFrame, optional
        Columns ``feature``, ``score`` (share of the target's uncertainty one feature explains).
    """
    import numpy as np

    from ..plotstyle import (
        PALETTE,
        PRIMARY,
        REFERENCE,
        WARN,
        empty,
        label_axes,
        new_figure,
        style_legend,
        suptitle,
    )

    fig, axes = new_figure(12, 7.6, 2, 2)
    (a, b), (c, d) = axes

    # 1. checklist: pass / warn / fail per section
    sections = list(dict.fromkeys(i.section for i in items))
    left = np.zeros(len(sections))
    for status, colour in STATUS_COLOURS.items():
        n = np.array([sum(1 for i in items if i.section == s and i.status == status) for s in sections])
        if n.any():
            a.barh(sections, n, left=left, color=colour, label=status, height=0.6)
        left += n
    a.invert_yaxis()
    a.grid(axis="y", visible=False)
    a.xaxis.get_major_locator().set_params(integer=True)
    label_axes(a, f"Audit checklist ({len(items)} checks)", "checks", "section")
    style_legend(a, loc="lower right")

    # 2. target
    counts = target_facts.get("class_counts") or {}
    if counts:
        names = list(counts)[:12]
        values = [counts[k] for k in names]
        total = max(sum(counts.values()), 1)
        bars = b.bar(names, values, color=PALETTE[:len(names)] if len(names) <= len(PALETTE)
                     else PRIMARY)
        for bar, v in zip(bars, values, strict=True):
            b.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{v / total:.1%}",
                   ha="center", va="bottom", fontsize=8)
        b.grid(axis="x", visible=False)
        label_axes(b, f"Target '{target}': class balance", "class", "rows")
    else:
        empty(b, f"'{target}' is a numeric target: see its distribution in the profile report.")
        label_axes(b, f"Target '{target}'", "", "")

    # 3. missing values per column
    miss = columns[["column", "missing"]].sort_values("missing", ascending=False)
    shown = miss[miss["missing"] > 0].head(top)
    if len(shown):
        c.barh(shown["column"].astype(str)[::-1], shown["missing"][::-1] * 100, color=WARN)
        c.axvline(5, color=REFERENCE, linestyle=":", label="5% (worth a look)")
        style_legend(c, loc="lower right")
        c.grid(axis="y", visible=False)
    else:
        empty(c, f"No missing values in any of the {len(columns)} columns.")
    label_axes(c, "Missing values per column" + (f" (top {len(shown)})" if len(miss) > top else ""),
               "missing", "column", x_unit="% of rows")

    # 4. single-feature predictive power
    if single_feature is not None and len(single_feature):
        sf = single_feature.sort_values("score", ascending=False).head(top)
        d.barh(sf["feature"].astype(str)[::-1], sf["score"][::-1], color=PRIMARY)
        d.grid(axis="y", visible=False)
    else:
        empty(d, "No single-feature scores.")
    label_axes(d, f"Predictive power of single features (top {top})",
               "out-of-sample skill score", "feature", x_unit="0 = useless, 1 = perfect")
    suptitle(fig, "Data audit overview")
    return fig


def feasibility_scores(models: list[dict[str, Any]], metric: str, threshold: float | None,
                       cv: Any = None) -> Any:
    """The prototype against the dummy baseline: per-fold cross-validated scores (points), their
    mean (bar) and the brief's threshold (line).

    Parameters
    ----------
    models : list of dict
        ``name``, ``scores`` (one per fold) and ``mean`` of each model; the first is the baseline.
    cv : str, optional
        How the scores were cross-validated (shown under the title).
    """
    import numpy as np

    from ..plotstyle import BAD, MUTED, PRIMARY, REFERENCE, label_axes, new_figure, style_legend

    fig, ax = new_figure(6.5, 1.4 + 0.55 * len(models))
    names = [str(m["name"]) for m in models]
    y = np.arange(len(models))
    ax.barh(y, [m["mean"] for m in models], height=0.55, color=[MUTED] + [PRIMARY] * (len(models) - 1),
            alpha=0.85, label="mean over folds")
    for i, m in enumerate(models):
        scores = np.asarray(m.get("scores") or [], dtype=float)
        ax.scatter(scores, np.full(len(scores), i), color=REFERENCE, s=14, zorder=3,
                   label="one fold" if i == 0 else None)
        ax.text(0.01, i, f" mean {m['mean']:.3f}", va="center", fontsize=8,
                transform=ax.get_yaxis_transform(), color="black" if i == 0 else "white")
    if threshold is not None:
        ax.axvline(threshold, color=BAD, linestyle="--", label=f"brief threshold {threshold:g}")
    ax.set_yticks(y, labels=names)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    label_axes(ax, "Feasibility prototype vs dummy baseline" + (f"\n{cv}" if cv else ""),
               f"cross-validated {metric}", "model")
    style_legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
