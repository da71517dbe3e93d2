"""The review bundle: reports/index.html links every phase report and governance document, offline."""

from __future__ import annotations

import re

from omgmagics.html import strip_network
from omgmagics.project import Project
from omgmagics.review import build_index
from omgmagics.runner import run_lifecycle

from .test_runner import write_notebook


def test_index_links_reports_and_renders_docs(demo_project, run_cli):
    project = Project.at(demo_project)
    write_notebook(project.notebook(1), "print('framing')")
    run_lifecycle(project, phases=[1], enforce_gates=False)  # its real gate wants the audit
    (demo_project / "docs" / "problem_statement.md").write_text("# Problem\n\n| col |\n|---|\n| <script>x</script> |\n")
    (demo_project / "reports" / "data_audit.html").write_text("<html><body>audit</body></html>")
    code, out, _ = run_cli(["ml", "report"], cwd=demo_project)
    assert code == 0 and out.startswith("Review bundle written:")
    index = (demo_project / "reports" / "index.html").read_text()
    assert 'href="phase1_discovery.html"' in index
    assert 'href="data_audit.html"' in index
    assert 'href="docs/docs-problem_statement.html"' in index
    assert "<script" not in index
    doc = (demo_project / "reports" / "docs" / "docs-problem_statement.html").read_text()
    assert "&lt;script&gt;x&lt;/script&gt;" in doc and "<script" not in doc
    # Every local link resolves.
    for href in re.findall(r'href="([^"#]+)"', index):
        assert (demo_project / "reports" / href).resolve().exists(), href
    phase_html = (demo_project / "reports" / "phase1_discovery.html").read_text()
    assert not re.search(r"<script[^>]*src=\"https?://", phase_html)
    assert "mermaid.esm" not in phase_html


def test_index_before_any_run(demo_project):
    report = build_index(Project.at(demo_project))
    index = (demo_project / "reports" / "index.html").read_text()
    assert "No lifecycle run yet" in index
    assert report.summary["phase reports"] == 0


def test_strip_network_keeps_content():
    page = ('<script src="https://cdn.x/require.js"></script><p>keep</p>'
            '<script type="module">import("https://cdn/mermaid.esm.min.mjs")</script>')
    assert strip_network(page) == "<p>keep</p>"
