"""Self-contained HTML pages (the floor): the page shell and its CSS, Markdown rendering, and the removal
of the CDN scripts nbconvert adds, so every report the kit writes opens offline. Used by the review index,
the evaluation page and the rendered phase reports."""

from __future__ import annotations

import html
import re

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
     color:#1f2328;padding:0 1em;line-height:1.45}
h1{margin-bottom:.1em} .sub{color:#57606a;margin-top:0}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.passed,.pass{color:#1a7f37;font-weight:600}.failed,.fail,.gate-failed{color:#cf222e;font-weight:600}
.none,.not-run,.running{color:#9a6700;font-weight:600}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
a{color:#0969da}
"""

_CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.I)
_MATHJAX_CFG = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
# nbconvert's lab template imports mermaid from a CDN when a page has diagrams; ours have none.
_MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>", re.S)


def strip_network(page: str) -> str:
    """Remove the CDN scripts nbconvert's template adds (require.js, MathJax): reports stay offline."""
    return _MERMAID.sub("", _MATHJAX_CFG.sub("", _CDN_SCRIPT.sub("", page)))


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML page."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def render_markdown(text: str) -> str:
    import mistune

    md = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])
    return md(text)
