"""Standalone HTML reports (core layer): a :class:`~omgmagics.results.Report` as a page in ``reports/``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..atomic import write_text


def write_page(path: str | Path, report: Any, intro: str = "") -> Path:
    """Write `report` (tables, embedded PNG figures, messages) as a self-contained HTML page."""
    title = html.escape(report.title)
    body = report._repr_html_()
    lead = f"<p>{html.escape(intro)}</p>" if intro else ""
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            "</head><body style=\"margin:1.5em\">" + lead + body + "</body></html>\n")
    return write_text(path, page)
