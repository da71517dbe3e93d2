"""Benchmark runner: ``python bench/run.py [NAME ...]`` (``make bench``, or ``make bench NAME=audit``).

Each benchmark is ``bench/bench_NAME.py`` with a ``run() -> dict`` returning::

    {"title": str,
     "figures": {...},          # the kit's measurements
     "peer": {"name": str, ...},# the peer measured in the same run
     "ratio": float,            # kit / peer on the headline figure (what the target is about)
     "target": str,             # the target in words, e.g. "<= 1.0x bare IPython start-up + 1 s"
     "met": bool | None,        # whether the target was met
     "notes": str}

The runner adds the machine and the date, writes ``bench/results/NAME.json`` and regenerates the table in
``bench/README.md``. Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def machine() -> dict:
    import multiprocessing

    mem = None
    try:
        import psutil

        mem = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.machine(), "cores": multiprocessing.cpu_count(), "memory_gib": mem}


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run_one(name: str) -> dict:
    path = HERE / f"bench_{name}.py"
    if not path.exists():
        raise SystemExit(f"No benchmark '{name}'. Available: {', '.join(discover())}.")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print(f"== {name} ...", flush=True)
    result = mod.run()
    result = {"name": name, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "machine": machine(), **result}
    RESULTS.mkdir(exist_ok=True)
    tmp = RESULTS / f".{name}.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, RESULTS / f"{name}.json")
    print(json.dumps({k: result.get(k) for k in ("figures", "peer", "ratio", "met")}, indent=2,
                     default=str))
    return result


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def regenerate_table() -> None:
    rows = ["| benchmark | kit | peer (same run) | ratio | target | met | date |",
            "|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        kit = ", ".join(f"{k} {_fmt(v)}" for k, v in r.get("figures", {}).items())
        peer = r.get("peer", {})
        peer_txt = peer.get("name", "") + ": " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in peer.items() if k != "name")
        met = {True: "yes", False: "**no**", None: "n/a"}[r.get("met")]
        rows.append(f"| {r.get('title', r['name'])} | {kit} | {peer_txt} | {_fmt(r.get('ratio'))} | "
                    f"{r.get('target', '')} | {met} | {r['date'][:10]} |")
    text = README.read_text() if README.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in text:
        text += "\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + BEGIN + "\n" + "\n".join(rows) + "\n" + END + tail)


def main(argv: list[str]) -> int:
    names = argv or discover()
    for name in names:
        run_one(name)
    regenerate_table()
    print(f"table updated in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
