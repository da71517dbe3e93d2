"""Structural counts of the package, for the redesign (issue 18): import circles, imports that climb
from a lower floor to a higher one (``FLOORS``), imports inside functions, the longest functions, files
over 400 lines, string switches on the model family.

    python tools/codemap.py            # a summary
    python tools/codemap.py --json     # every figure, for a closing note or a diff between commits

Reads the source with ``ast`` only (nothing is imported), so it runs on any commit.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "omgmagics"
LONG_FILE = 400


# The floors of the package, lowest first (docs/architecture.md draws them): a module imports only its
# own floor and the ones below. The most specific prefix decides a module's floor.
FLOORS: dict[str, int] = {
    # 0: the floor: errors, atomic writes, tables and batch readers (io/), results, HTML, plot style,
    # config, Project, gate criteria, metrics, column roles, the lock, time stamps and ids,
    # the bundled demo data
    **dict.fromkeys(["omgmagics", "errors", "atomic", "io", "results", "html", "plotstyle", "config",
                     "project", "criteria", "log", "redact", "metrics", "columns", "lock", "clock",
                     "templates", "datasets"], 0),
    # 1..5: the phases in order, each with its gate
    "discovery": 1, "dataprep": 2, "features": 2, "modeling": 3, "optim": 4, "deploy": 4, "ops": 5,
    # 6: the lifecycle: runner, runs and manifests, gate dispatch, review index, the retrain job and
    # pipeline status, project creation (and the demo's project code it writes), the tracking UIs
    **dict.fromkeys(["lifecycle", "runner", "runs", "gates", "review", "scaffold", "projectcode",
                     "datasets.adult_project", "uis"], 6),
    # 7: the command layer and its two shells
    **dict.fromkeys(["commands", "magics", "cli", "completion"], 7),
}
# IPython finds the extension's hook in the package root, which imports the magics when called.
HOOK = ("omgmagics", "omgmagics.magics")


def floor(module: str) -> int | None:
    """The floor of `module` (``omgmagics.x.y``): its longest prefix in ``FLOORS``."""
    parts = module.split(".")[1:]
    for n in range(len(parts), -1, -1):
        key = ".".join(parts[:n]) if n else PACKAGE
        if key in FLOORS:
            return FLOORS[key]
    return None


def upward(edges: list[dict]) -> list[dict]:
    """The imports from a lower floor to a higher one (the extension hook aside)."""
    return [e for e in edges if (e["src"], e["dst"]) != HOOK
            and (floor(e["dst"]) or 0) > (floor(e["src"]) or 0)]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    skip = ROOT / PACKAGE / "templates"
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py")) if skip not in p.parents}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, Path]) -> list[dict]:
    """Every internal import: {src, dst, line, top (module level or not)}."""
    out = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target.startswith(PACKAGE) and target != name:
                    out.append({"src": name, "dst": target, "line": node.lineno,
                                "top": id(node) in top_level})
    return out


def cycles(nodes: list[str], edges: list[dict]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {n: set() for n in nodes}
    for e in edges:
        graph[e["src"]].add(e["dst"])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found, key=len, reverse=True)


def functions(mods: dict[str, Path]) -> list[dict]:
    out = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append({"module": name, "function": node.name, "line": node.lineno,
                            "lines": node.end_lineno - node.lineno + 1})
    return sorted(out, key=lambda f: f["lines"], reverse=True)


def family_switches(mods: dict[str, Path]) -> list[str]:
    """Comparisons of a `family` name or attribute with a string constant."""
    hits = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    isinstance(x, ast.Constant) and isinstance(x.value, str) for x in node.comparators):
                left = node.left
                label = left.attr if isinstance(left, ast.Attribute) else getattr(left, "id", "")
                if label == "family":
                    hits.append(f"{name}:{node.lineno}")
    return hits


def measure() -> dict:
    mods = modules()
    edges = imports(mods)
    circles = cycles(sorted(mods), edges)
    funcs = functions(mods)
    lines = {n: len(p.read_text().splitlines()) for n, p in mods.items()}
    return {
        "modules": len(mods),
        "lines": sum(lines.values()),
        "internal_imports": len(edges),
        "imports_inside_functions": sum(not e["top"] for e in edges),
        "circles": len(circles),
        "upward_imports": [f"{e['src']} -> {e['dst']} (line {e['line']})" for e in upward(edges)],
        "unplaced_modules": sorted(m for m in mods if floor(m) is None),
        "largest_circle": circles[0] if circles else [],
        "modules_in_circles": sum(len(c) for c in circles),
        "longest_functions": funcs[:10],
        "functions_over_80_lines": sum(f["lines"] > 80 for f in funcs),
        "files_over_400_lines": sorted((n for n, k in lines.items() if k > LONG_FILE),
                                       key=lambda n: -lines[n]),
        "family_switches": family_switches(mods),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args(argv)
    m = measure()
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    print(f"{m['modules']} modules, {m['lines']} lines")
    print(f"internal imports: {m['internal_imports']} ({m['imports_inside_functions']} inside "
          "functions)")
    print(f"import circles: {m['circles']} ({m['modules_in_circles']} modules); the largest ties "
          f"{len(m['largest_circle'])}: {', '.join(m['largest_circle'])}")
    print(f"imports from a lower floor to a higher one: {len(m['upward_imports'])}")
    longest = m["longest_functions"][0]
    print(f"functions over 80 lines: {m['functions_over_80_lines']}; longest: "
          f"{longest['module']}.{longest['function']} ({longest['lines']} lines)")
    print(f"files over {LONG_FILE} lines: {len(m['files_over_400_lines'])}")
    print(f"string switches on the model family: {len(m['family_switches'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
