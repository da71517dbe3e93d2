"""Result objects (core layer): one value, three renderings.

Commands return a :class:`Report`: ``_repr_html_`` for the notebook, :meth:`Report.to_text` for the
terminal and :meth:`Report.to_dict` for ``--format json``. Core functions build them; nothing here prints.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from typing import Any

STATUS_COLOURS = {"pass": "#1a7f37", "passed": "#1a7f37", "ok": "#1a7f37", "warn": "#9a6700",
                  "fail": "#cf222e", "failed": "#cf222e", "error": "#cf222e"}

_CSS = (
    "<style>.omg-report{font-family:system-ui,sans-serif;font-size:13px;max-width:1100px}"
    ".omg-report h3{margin:.2em 0 .4em}.omg-report h4{margin:.8em 0 .3em}"
    ".omg-report table{border-collapse:collapse;margin:.3em 0}"
    ".omg-report td,.omg-report th{border:1px solid #d0d7de;padding:2px 8px;text-align:left}"
    ".omg-report th{background:#f6f8fa}.omg-report .note{color:#57606a}"
    ".omg-report img{max-width:100%}</style>"
)


def figure_to_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def jsonable(value: Any) -> Any:
    """Convert numpy / pandas / path values into plain JSON-able Python values."""
    import math

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return jsonable(value.to_dict(orient="records"))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


@dataclass
class Report:
    """The result of a command.

    Parameters
    ----------
    title : str
        One line saying what was done.
    summary : dict
        Key figures, in display order.
    tables : dict of str to pandas.DataFrame
        Named tables.
    figures : dict of str to bytes
        Named PNG images (see :func:`figure_to_png`).
    messages : list of str
        Notes and warnings worth a sentence.
    artifacts : dict of str to str
        Files written, by role.
    data : dict
        Anything else for ``to_dict`` (the JSON form), not displayed.
    value : object
        The Python object bound by ``--out`` (a DataFrame, a model ...); defaults to the report.
    """

    title: str
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    value: Any = None

    def add_figure(self, name: str, fig: Any) -> None:
        """Add a matplotlib figure under `name` (rendered to PNG now)."""
        self.figures[name] = figure_to_png(fig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (``--format json``)."""
        return jsonable({
            "title": self.title,
            "summary": self.summary,
            "tables": {k: v for k, v in self.tables.items()},
            "messages": self.messages,
            "artifacts": self.artifacts,
            **({"data": self.data} if self.data else {}),
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """Terminal form: title, aligned summary, tables, messages, artifacts."""
        lines = [self.title]
        if self.summary:
            width = max(len(str(k)) for k in self.summary)
            lines += [f"  {str(k).ljust(width)}  {_fmt(v)}" for k, v in self.summary.items()]
        for name, table in self.tables.items():
            lines += ["", f"{name}:", _table_text(table)]
        if self.messages:
            lines += [""] + [f"  - {m}" for m in self.messages]
        if self.figures:
            lines += ["", f"  ({len(self.figures)} plot(s) shown in a notebook: {', '.join(self.figures)})"]
        if self.artifacts:
            lines += ["", "Written:"] + [f"  {k}: {v}" for k, v in self.artifacts.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [_CSS, '<div class="omg-report">', f"<h3>{esc(self.title)}</h3>"]
        if self.summary:
            rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{status_html(v)}</td></tr>"
                           for k, v in self.summary.items())
            parts.append(f"<table>{rows}</table>")
        for name, table in self.tables.items():
            parts.append(f"<h4>{esc(name)}</h4>{table_html(table)}")
        for name, png in self.figures.items():
            b64 = base64.b64encode(png).decode()
            # the figure carries its own title; the name is the image's alternative text
            parts.append(f'<div><img alt="{esc(name.replace("_", " "))}" '
                         f'src="data:image/png;base64,{b64}"/></div>')
        if self.messages:
            parts.append("<ul>" + "".join(f"<li>{esc(m)}</li>" for m in self.messages) + "</ul>")
        if self.artifacts:
            parts.append('<p class="note">Written: ' + ", ".join(
                f"{esc(k)}: <code>{esc(str(v))}</code>" for k, v in self.artifacts.items()) + "</p>")
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        return self.to_text()


def status_html(value: Any) -> str:
    text = html.escape(_fmt(value))
    colour = STATUS_COLOURS.get(str(value).lower()) if isinstance(value, str) else None
    return f'<b style="color:{colour}">{text}</b>' if colour else text


def table_html(table: Any, max_rows: int = 60) -> str:
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    shown = df.head(max_rows)
    # Escape user data: a column named <script> must render as text.
    out = shown.to_html(index=False, escape=True, border=0, float_format=lambda x: f"{x:.4g}",
                        na_rep="")
    for word, colour in (("pass", "#1a7f37"), ("warn", "#9a6700"), ("fail", "#cf222e")):
        out = out.replace(f"<td>{word}</td>", f'<td style="color:{colour};font-weight:bold">{word}</td>')
    if len(df) > max_rows:
        out += f'<p class="note">{len(df) - max_rows} more rows not shown.</p>'
    return out


def _table_text(table: Any, max_rows: int = 60) -> str:
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    shown = df.head(max_rows)
    # Text columns read better left-aligned (pandas right-aligns everything).
    formatters = {}
    for col in shown.columns:
        if shown[col].dtype == object:
            width = max([len(str(col))] + [len(str(v)) for v in shown[col]])
            formatters[col] = (lambda w: lambda v: str(v).ljust(w))(width)
    text = shown.to_string(index=False, float_format=lambda x: f"{x:.4g}", na_rep="",
                           formatters=formatters, justify="left")
    if len(df) > max_rows:
        text += f"\n  ... {len(df) - max_rows} more rows"
    return text
