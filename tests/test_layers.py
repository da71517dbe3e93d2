"""The package's import graph has no circle (read with ast, imports inside functions included), so
every module can be understood, and imported, from the ones below it. tools/codemap.py prints the
figures this guards (and more)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "codemap.py"


def _codemap():
    spec = importlib.util.spec_from_file_location("codemap", TOOLS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circle():
    codemap = _codemap()
    mods = codemap.modules()
    edges = codemap.imports(mods)
    assert len(edges) > 500  # the graph was read (top-level and function-level imports)
    circles = codemap.cycles(sorted(mods), edges)
    detail = {tuple(c): sorted({f"{e['src']} -> {e['dst']} (line {e['line']})" for e in edges
                               if e["src"] in c and e["dst"] in c}) for c in circles}
    assert circles == [], detail


def test_the_circle_finder_finds_a_circle():
    codemap = _codemap()
    edges = [{"src": "a", "dst": "b"}, {"src": "b", "dst": "c"}, {"src": "c", "dst": "a"},
             {"src": "c", "dst": "d"}]
    assert codemap.cycles(["a", "b", "c", "d"], edges) == [["a", "b", "c"]]
