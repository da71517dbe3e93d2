"""bandit over the package: every finding is fixed or justified in tests/data/bandit_justified.json.

A finding is matched by file, test id and the text of its line (not the line number), so moving
code keeps its justification and a new finding, or a changed flagged line, fails until it is fixed
or justified.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUSTIFIED = ROOT / "tests" / "data" / "bandit_justified.json"


def _findings() -> list[dict[str, str]]:
    proc = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "omgmagics", "-f", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    out = []
    for r in json.loads(proc.stdout)["results"]:
        lines = [ln for ln in r["code"].splitlines() if ln.startswith(f"{r['line_number']} ")]
        text = lines[0].split(" ", 1)[1].strip() if lines else ""
        out.append({"file": r["filename"], "test": r["test_id"], "code": text})
    return out


def test_every_bandit_finding_is_fixed_or_justified():
    justified = json.loads(JUSTIFIED.read_text())
    assert all(len(e["why"]) > 20 for e in justified)
    known = {(e["file"], e["test"], e["code"]) for e in justified}
    found = {(f["file"], f["test"], f["code"]) for f in _findings()}
    assert sorted(found - known) == [], "new bandit findings: fix them or justify them"
    assert sorted(known - found) == [], "stale justifications: remove them"
