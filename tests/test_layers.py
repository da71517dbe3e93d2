"""The package's import graph has no circle and no import from a lower floor to a higher one (read with
ast, imports inside functions included), so every module can be understood, and imported, from the
ones below it. The floors are ``FLOORS`` of tools/codemap.py (drawn in docs/architecture.md), which
prints the figures this guards (and more)."""

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


def test_every_module_has_a_floor_and_imports_only_downward():
    codemap = _codemap()
    mods = codemap.modules()
    assert [m for m in mods if codemap.floor(m) is None] == [], "add the new package to FLOORS"
    edges = codemap.imports(mods)
    climbs = sorted(f"{e['src']} (floor {codemap.floor(e['src'])}) -> {e['dst']} (floor "
                    f"{codemap.floor(e['dst'])}), line {e['line']}" for e in codemap.upward(edges))
    assert climbs == []


def test_the_floor_check_sees_a_climb():
    codemap = _codemap()
    assert codemap.floor("omgmagics.ops.drift") == 5 and codemap.floor("omgmagics.errors") == 0
    assert codemap.floor("omgmagics.datasets.adult_project") == 6
    assert codemap.floor("omgmagics.datasets") == 0
    edges = [{"src": "omgmagics.discovery.audit", "dst": "omgmagics.ops.drift", "line": 3},
             {"src": "omgmagics.ops.drift", "dst": "omgmagics.discovery.audit", "line": 4},
             {"src": "omgmagics", "dst": "omgmagics.magics", "line": 5}]
    assert codemap.upward(edges) == edges[:1]


def test_no_verb_switches_on_a_model_family_name():
    """What differs between model families lives in their objects (omgmagics/modeling/families/)."""
    codemap = _codemap()
    assert codemap.family_switches(codemap.modules()) == []


def test_the_switch_finder_sees_a_switch(tmp_path):
    codemap = _codemap()
    planted = tmp_path / "planted.py"
    planted.write_text('def f(model):\n    return 1 if model.family == "mlp" else 2\n')
    assert codemap.family_switches({"planted": planted}) == ["planted:2"]


def test_only_the_clock_reads_the_time_of_day():
    """Time stamps and ids have one rule (omgmagics/clock.py): UTC, ISO 8601, sortable ids."""
    import ast

    codemap = _codemap()
    hits = []
    for name, path in codemap.modules().items():
        if name == "omgmagics.clock":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today") and \
                    isinstance(node.value, ast.Attribute) and node.value.attr in ("datetime", "date"):
                hits.append(f"{name}:{node.lineno}")
    assert hits == []


def test_stamps_and_ids_follow_the_one_rule():
    import re

    from omgmagics import clock

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", clock.stamp())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", clock.stamp(ms=True))
    assert re.fullmatch(r"\d{8}-\d{6}", clock.file_stamp())
    ids = [clock.new_id("alert") for _ in range(200)]
    assert all(re.fullmatch(r"alert-\d{8}-\d{6}-[0-9a-f]{4}", i) for i in ids)
    assert len(set(ids)) > 190  # random within a second; sortable by time across seconds
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", clock.new_id())
