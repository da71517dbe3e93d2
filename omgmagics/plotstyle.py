"""One look for every figure of the kit (core layer).

Figures are ``matplotlib.figure.Figure`` objects built directly (no pyplot state, no backend: safe in a
notebook kernel, a terminal and a papermill run alike). :func:`new_figure` applies the kit's style
locally to the figure it creates, so a user's own ``rcParams`` are never touched. matplotlib is imported
inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

# One palette, used in this order for series; named colours for meaning.
PALETTE = ["#0969da", "#e16f24", "#1a7f37", "#8250df", "#bf3989", "#57606a", "#b08800", "#1b7c83"]
PRIMARY = PALETTE[0]
SECONDARY = PALETTE[1]
REFERENCE = "#57606a"   # reference data, chance lines, baselines
MUTED = "#afb8c1"       # things not chosen
GOOD = "#1a7f37"
WARN = "#9a6700"
BAD = "#cf222e"         # thresholds, limits, drift, best-so-far markers
CMAP = "Blues"

TITLE_SIZE = 10
LABEL_SIZE = 9
TICK_SIZE = 8
LEGEND_SIZE = 7
SUPTITLE_SIZE = 11

STYLE = {
    "font.size": LABEL_SIZE,
    "axes.titlesize": TITLE_SIZE,
    "axes.titleweight": "bold",
    "axes.labelsize": LABEL_SIZE,
    "xtick.labelsize": TICK_SIZE,
    "ytick.labelsize": TICK_SIZE,
    "legend.fontsize": LEGEND_SIZE,
    "legend.frameon": False,
    "figure.titlesize": SUPTITLE_SIZE,
    "figure.titleweight": "bold",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.edgecolor": "#8c959f",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    # names come from user data: "$" in a column or class name is text, not mathtext
    "text.parse_math": False,
}


def _cycler() -> Any:
    from cycler import cycler

    return cycler(color=PALETTE)


def new_figure(width: float = 6.0, height: float = 3.6, nrows: int = 1, ncols: int = 1, *,
               layout: str | None = "constrained", squeeze: bool = True,
               **subplot_kw: Any) -> tuple[Any, Any]:
    """A styled figure and its axes.

    Parameters
    ----------
    width, height : float
        Size of the whole figure in inches.
    nrows, ncols : int
        Grid of axes (``Figure.subplots``).
    layout : str or None
        ``"constrained"`` (default) or None for manual spacing (``fig.subplots_adjust``).

    Returns
    -------
    (matplotlib.figure.Figure, axes)
        One ``Axes`` for a 1x1 grid, else an array of them (or always an array with ``squeeze=False``).
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

    # The style is applied while the figure and its axes are created: they keep it afterwards.
    with mpl.rc_context({**STYLE, "axes.prop_cycle": _cycler()}):
        fig = Figure(figsize=(width, height), layout=layout)
        axes = fig.subplots(nrows, ncols, squeeze=squeeze, **subplot_kw)
    for ax in fig.axes:
        _finish(ax)
    return fig, axes


def _finish(ax: Any) -> Any:
    # Ticks are created lazily (at draw time, outside the rc context): pin their look now.
    ax.tick_params(labelsize=TICK_SIZE, grid_alpha=STYLE["grid.alpha"],
                   grid_linewidth=STYLE["grid.linewidth"], color="#8c959f")
    return ax


def add_axes(fig: Any, *args: Any, **kwargs: Any) -> Any:
    """``fig.add_subplot(*args)`` with the kit's style (for irregular grids)."""
    import matplotlib as mpl

    with mpl.rc_context({**STYLE, "axes.prop_cycle": _cycler()}):
        return _finish(fig.add_subplot(*args, **kwargs))


def suptitle(fig: Any, text: str) -> Any:
    """The figure's overall title in the kit's size."""
    return fig.suptitle(text, fontsize=SUPTITLE_SIZE, fontweight="bold")


def _with_unit(label: str, unit: str | None) -> str:
    return f"{label} ({unit})" if unit else label


def label_axes(ax: Any, title: str | None = None, x: str | None = None, y: str | None = None, *,
               x_unit: str | None = None, y_unit: str | None = None) -> Any:
    """Set the title and the axis labels, each label with its unit in brackets: ``latency (ms)``."""
    if title is not None:
        ax.set_title(title, fontsize=TITLE_SIZE, fontweight="bold")
    if x is not None:
        ax.set_xlabel(_with_unit(x, x_unit), fontsize=LABEL_SIZE)
    if y is not None:
        ax.set_ylabel(_with_unit(y, y_unit), fontsize=LABEL_SIZE)
    return ax


def style_legend(ax: Any, **kwargs: Any) -> Any:
    """A legend in the kit's size, only when something is labelled."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        return ax.legend(fontsize=LEGEND_SIZE, frameon=False, **kwargs)
    return None


def plain_log_ticks(ax: Any, axis: str = "y") -> None:
    """Plain numbers (0.5, 2, 1,000) instead of powers of ten on a log-scaled axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    fmt = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(fmt)
    target.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))


def rotate_xticks(ax: Any, degrees: int = 30) -> None:
    for label in ax.get_xticklabels():
        label.set_rotation(degrees)
        label.set_ha("right")


def empty(ax: Any, text: str) -> None:
    """An axes that says why it has nothing to show."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=REFERENCE,
            fontsize=LABEL_SIZE, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def to_png(fig: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (no pyplot involved; same resolution as ``Report.add_figure``)."""
    import io

    buf = io.BytesIO()
    # "tight": long tick labels or an outside legend are kept, never clipped
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


def describe(fig: Any) -> list[dict[str, str]]:
    """Title and axis labels of each visible axes of `fig` (for tests and checks)."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison or ax.get_label() == "<colorbar>":
            continue
        out.append({"title": ax.get_title() or (fig._suptitle.get_text() if fig._suptitle else ""),
                    "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()})
    return out
