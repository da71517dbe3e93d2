"""The review bundle (core layer): ``reports/index.html`` linking every report and governance document.

Reviewers read the state of a project here without opening code: each phase with its run id, date, git
commit and gate status, the audit / evaluation / drift / monitoring reports the phases wrote, and the
governance documents (``docs/*.md``, ``decisions/*.md``) rendered from Markdown to HTML. Everything is
self-contained: no script, no CDN, no network fetch.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .atomic import write_text
from .html import page, render_markdown
from .project import PHASE_TITLES, PHASES, Project
from .results import Report


def _status(value: str) -> str:
    cls = re.sub(r"[^a-z-]", "-", str(value).lower())
    return f'<span class="{cls}">{html.escape(str(value))}</span>'


def build_index(project: Project) -> Report:
    """Write ``reports/index.html`` (and ``reports/docs/*.html``) and return what was linked."""
    from .runs import list_runs

    reports = project.reports_dir
    reports.mkdir(parents=True, exist_ok=True)
    runs = list_runs(project, "lifecycle")
    latest = runs[0] if runs else None
    esc = html.escape

    # Latest state of each phase across runs: a resumed or partial run does not hide earlier passes.
    phase_rows = []
    for phase, folder in PHASES.items():
        state, run = None, None
        for r in runs:
            if str(phase) in r.get("phases", {}):
                state, run = r["phases"][str(phase)], r
                break
        report_name = f"phase{phase}_{folder.split('_', 1)[1]}.html"
        link = (f'<a href="{esc(report_name)}">{esc(report_name)}</a>'
                if (reports / report_name).is_file() else "")
        approvals = [a for r in runs for a in r.get("approvals", []) if int(a["phase"]) == phase]
        approved = "; ".join(f"{a['by']} ({a['time'][:10]})" for a in approvals)
        phase_rows.append(
            f"<tr><td>{phase}</td><td>{esc(PHASE_TITLES[phase])}</td>"
            f"<td>{_status(state['status']) if state else _status('not run')}</td>"
            f"<td>{esc(state.get('gate_summary', '')) if state else ''}</td>"
            f"<td>{esc(run['run_id']) if run else ''}<br><small>{esc((state or {}).get('ended') or '')}"
            f"</small></td><td>{esc((run or {}).get('git_commit') or '')[:10]}</td>"
            f"<td>{link}</td><td>{esc(approved)}</td></tr>")

    phase_reports = {f"phase{p}_{f.split('_', 1)[1]}.html" for p, f in PHASES.items()}
    other = sorted(p for p in reports.glob("*.html") if p.name not in phase_reports | {"index.html"})
    other_rows = "".join(f'<li><a href="{esc(p.name)}">{esc(p.stem.replace("_", " "))}</a></li>'
                         for p in other) or "<li>none yet</li>"

    doc_links = []
    docs_out = reports / "docs"
    for folder in (project.docs_dir, project.decisions_dir):
        for md in sorted(folder.glob("*.md")) if folder.is_dir() else []:
            if md.name in ("README.md", "adr-template.md"):
                continue
            out = docs_out / f"{folder.name}-{md.stem}.html"
            body = f'<p><a href="../index.html">&larr; review index</a></p>{render_markdown(md.read_text())}'
            write_text(out, page(md.stem, body))
            doc_links.append(f'<li><a href="docs/{esc(out.name)}">{esc(folder.name)}/{esc(md.name)}</a></li>')
    for png in sorted(project.docs_dir.glob("*.png")) if project.docs_dir.is_dir() else []:
        doc_links.append(f'<li><a href="../docs/{esc(png.name)}">docs/{esc(png.name)}</a></li>')

    brief = project.config.get("brief", {}) or {}
    objective = brief.get("objective", {}) or {}
    header = (f"<h1>{esc(project.name)} — review</h1>"
              f"<p class=\"sub\">{esc(brief.get('business_problem') or '')}</p>")
    if latest:
        header += (f"<p>Latest run <code>{esc(latest['run_id'])}</code>: {_status(latest['status'])}, "
                   f"started {esc(latest.get('started') or '')}, git commit "
                   f"<code>{esc((latest.get('git_commit') or '')[:12] or 'none (not a git checkout)')}</code>.</p>")
    else:
        header += "<p>No lifecycle run yet: <code>omg ml run</code>.</p>"
    brief_rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in [
            ("objective", objective.get("type")), ("target", objective.get("target")),
            ("primary metric", objective.get("primary_metric")),
            ("threshold", objective.get("threshold")),
            ("sensitive features", ", ".join(brief.get("sensitive_features") or []) or "none"),
            ("latency p99 (ms)", (brief.get("constraints") or {}).get("latency_p99_ms"))])
    body = (header + "<h2>Brief</h2><table>" + brief_rows + "</table>"
            "<h2>Phases</h2><table><tr><th>#</th><th>phase</th><th>status</th><th>gate</th>"
            "<th>run / ended</th><th>commit</th><th>report</th><th>approved by</th></tr>"
            + "".join(phase_rows) + "</table>"
            f"<h2>Reports</h2><ul>{other_rows}</ul>"
            f"<h2>Governance documents</h2><ul>{''.join(doc_links) or '<li>none yet</li>'}</ul>")
    index = write_text(reports / "index.html", page(f"{project.name} — review", body))
    return Report(title=f"Review bundle written: {index}",
                  summary={"phase reports": sum(1 for r in phase_rows if "href" in r),
                           "other reports": len(other), "documents": len(doc_links)},
                  artifacts={"index": str(index)}, value=str(index))


def print_pdf(index: Path, pdf: Path, chromium: str = "/usr/bin/chromium") -> Path:
    """Print the bundle's index to PDF through headless Chromium (``--pdf``)."""
    import shutil
    import subprocess
    import tempfile

    from .errors import OmgError

    exe = shutil.which("chromium") or (chromium if Path(chromium).exists() else None)
    if exe is None:
        raise OmgError("--pdf needs Chromium (Debian package 'chromium'); install it or drop --pdf.")
    with tempfile.TemporaryDirectory() as profile:
        tmp_pdf = pdf.with_name(f".{pdf.name}.tmp")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={profile}", f"--print-to-pdf={tmp_pdf}", "--no-pdf-header-footer",
               index.resolve().as_uri()]
        subprocess.run(cmd, capture_output=True, timeout=120)
        if not tmp_pdf.is_file() or tmp_pdf.stat().st_size == 0:
            raise OmgError(f"Chromium did not print {index} to PDF. Run `{' '.join(cmd[:2])} ...` by hand "
                           "to see why.")
        tmp_pdf.replace(pdf)
    return pdf

