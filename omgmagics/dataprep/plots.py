"""Figures of the data preparation reports (core layer): built through :mod:`omgmagics.plotstyle`
on ``matplotlib.figure.Figure`` directly (no pyplot, no backend)."""

from __future__ import annotations

from typing import Any


def class_balance(balance: Any, target: str, objective: str = "classification") -> Any:
    """Class shares per split (classification) or the target's mean +- std and range (regression).

    Parameters
    ----------
    balance : DataFrame
        :func:`omgmagics.dataprep.split.class_balance`.
    """
    import numpy as np

    from ..plotstyle import PALETTE, PRIMARY, REFERENCE, label_axes, new_figure, style_legend

    splits = list(dict.fromkeys(balance["split"]))
    if objective == "regression":
        fig, ax = new_figure(6, 3.2)
        x = np.arange(len(splits))
        t = balance.set_index("split").loc[splits]
        ax.errorbar(x, t["mean"], yerr=t["std"], fmt="o", color=PRIMARY, capsize=4, label="mean ± std")
        ax.scatter(x, t["min"], marker="_", s=200, color=REFERENCE, label="min / max")
        ax.scatter(x, t["max"], marker="_", s=200, color=REFERENCE)
        ax.set_xticks(x, labels=[f"{s}\n({int(n):,} rows)" for s, n in zip(splits, t["rows"],
                                                                          strict=True)])
        label_axes(ax, f"Target '{target}' per split", "split", target)
        style_legend(ax)
        return fig
    classes = list(dict.fromkeys(balance["class"]))
    fig, ax = new_figure(6.5, 1.2 + 0.5 * len(splits))
    left = np.zeros(len(splits))
    totals = balance.groupby("split")["rows"].sum()
    for cls, colour in zip(classes, PALETTE * (len(classes) // len(PALETTE) + 1), strict=False):
        sub = balance[balance["class"] == cls].set_index("split")
        share = np.array([float(sub["share"].get(s, 0.0)) for s in splits])
        rows = [int(sub["rows"].get(s, 0)) for s in splits]
        bars = ax.barh(splits, share, left=left, color=colour, label=str(cls), height=0.6)
        for bar, sh, n in zip(bars, share, rows, strict=True):
            if sh >= 0.08:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2,
                        f"{sh:.1%} ({n:,})", ha="center", va="center", fontsize=7, color="white")
        left += share
    ax.set_yticks(range(len(splits)), labels=[f"{s} ({int(totals[s]):,})" for s in splits])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.grid(axis="y", visible=False)
    label_axes(ax, f"Class balance of '{target}' per split", "share of the split's rows",
               "split (rows)")
    style_legend(ax, title=target, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def class_counts_change(counts: Any, method: str) -> Any:
    """Rows per class of the training split before and after rebalancing.

    Parameters
    ----------
    counts : DataFrame
        Columns ``class``, ``before``, ``after`` (the augment report's table).
    """
    import numpy as np

    from ..plotstyle import MUTED, PRIMARY, label_axes, new_figure, style_legend

    fig, ax = new_figure(6, 3.2)
    x = np.arange(len(counts))
    ax.bar(x - 0.2, counts["before"], 0.4, color=MUTED, label="before")
    ax.bar(x + 0.2, counts["after"], 0.4, color=PRIMARY, label="after")
    ax.set_xticks(x, labels=[str(c) for c in counts["class"]])
    ax.grid(axis="x", visible=False)
    label_axes(ax, f"Training split rebalanced with {method}", "class", "rows")
    style_legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def labeling_functions(table: Any) -> Any:
    """Per labeling function: coverage, overlap and conflict (share of rows) beside its accuracy on
    known labels (and the label model's learned accuracy), so weak and noisy functions stand out.

    Parameters
    ----------
    table : DataFrame
        :func:`omgmagics.dataprep.label.function_table`.
    """
    import numpy as np

    from ..plotstyle import PALETTE, TICK_SIZE, label_axes, new_figure, style_legend, suptitle

    names = [f"{f} (→ {v})" if v else str(f) for f, v in zip(table["function"],
                                                             table.get("votes for", [""] * len(table)),
                                                             strict=True)]
    fig, (a, b) = new_figure(12, 1.4 + 0.42 * len(names), 1, 2, sharey=True)
    y = np.arange(len(names))
    left = [("coverage", PALETTE[0]), ("overlap", PALETTE[5]), ("conflict", PALETTE[1])]
    right = [(c, col) for c, col in (("accuracy (gold)", PALETTE[2]), ("learned accuracy", PALETTE[3]))
             if c in table]
    for ax, series, title, xlabel in ((a, left, "Coverage, overlap, conflict", "share of rows"),
                                      (b, right, "Accuracy", "accuracy on known labels")):
        h = 0.8 / max(len(series), 1)
        for i, (col, colour) in enumerate(series):
            ax.barh(y - 0.4 + h * (i + 0.5), table[col].astype(float).fillna(0), h, color=colour,
                    label=col)
        ax.set_xlim(0, 1)
        ax.grid(axis="y", visible=False)
        label_axes(ax, title, xlabel, "labeling function", x_unit="0-1")
        style_legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    a.set_yticks(y, labels=names)
    a.tick_params(axis="y", labelsize=TICK_SIZE - 1)
    a.invert_yaxis()
    suptitle(fig, f"{len(names)} labeling functions")
    return fig
