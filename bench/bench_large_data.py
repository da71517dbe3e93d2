"""Large data: peak memory and wall time of the data steps at two sizes, against pandas holding the table.

Data (seeded, built in a subprocess before anything is measured), at SMALL and LARGE rows (default
250,000 and 1,000,000; ``OMG_BENCH_LARGE_ROWS="20000,80000"`` for a quick check):

* a hive-partitioned parquet folder (``table/part=00``, ``part=01``, ...: files of 100,000 rows in row
  groups of 65,536, so both sizes are read in full batches) of 20 columns: 9 floats (1 % missing in
  two), 4 integers, 5 categories (3 to 1,000 values), a time column ``ts`` over 30 days and the binary
  target ``income``; two columns shifted in time (for drift);
* a reference folder of the same generator (another seed, no shift, no time column) for ``ops drift``;
* a project (``omg ml init`` on 1,000 rows of the table, then ``data.source`` pointed at the folder and
  a schema inferred from the table) whose prediction log ``monitoring/predictions/DAY.jsonl`` holds as
  many requests as the table has rows (7 inputs each, 1 % errors, two model versions), at a fixed
  rate per day (``OMG_BENCH_LARGE_PER_DAY``, default SMALL / 6), so the larger log spans more days,
  as a log does; ground truth for 20 % of the requests in ``monitoring/feedback.jsonl``.

Each step runs the ``omg`` command in its own process, started by a small wrapper process that reports
its child's wall time and peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, so no
measurement inherits another's peak): ``omg data validate --schema``, ``omg data validate --audit``,
``omg ops drift`` (the whole table as the current window, against the reference folder) and ``omg
ops monitor`` (1-day windows). Peers in the same run, same way: pandas reading the whole folder
(``pd.read_parquet``), and the monitor's previous approach (the whole log read into one DataFrame,
joined with the feedback, grouped by window).

Figures: per step and size rows, wall_s and peak_rss_mb; ``growth`` = peak at LARGE / peak at SMALL
(target <= 1.3: memory bounded, not proportional to the rows) and ``vs_peer`` = peak at LARGE / the
peer's peak at LARGE. Headline ratio: the largest growth of the four steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261128
COLS = 20
PART_ROWS = 100_000  # rows per partition file (row groups of 65,536): full batches at every size
DAYS = 30
LABELED = 0.2
TARGET = 1.3


def sizes() -> tuple[int, int]:
    text = os.environ.get("OMG_BENCH_LARGE_ROWS", "250000,1000000")
    small, large = (int(x) for x in text.split(","))
    return small, large


def per_day(small: int) -> int:
    return int(os.environ.get("OMG_BENCH_LARGE_PER_DAY", max(1000, small // 6)))


def table(rows: int, seed: int, shifted: bool, with_time: bool = True):
    """The generator of the parquet table: 20 columns, seeded."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = rows
    t = np.sort(rng.integers(0, DAYS * 86400, n))
    frac = t / (DAYS * 86400) if shifted else np.zeros(n)  # the shift grows over the period
    cols = {f"num_{i}": rng.normal(i, 1 + i / 4, n) for i in range(8)}
    cols["num_0"] = cols["num_0"] + 0.8 * frac
    cols["amount"] = np.round(rng.lognormal(3, 1, n), 2)
    for i, hi in enumerate([5, 120, 3650, 100_000]):
        cols[f"int_{i}"] = rng.integers(0, hi, n)
    for i, k in enumerate([3, 8, 20, 100, 1000]):
        labels = np.array([f"c{i}_{j}" for j in range(k)], dtype=object)
        p = 1.0 / np.arange(1, k + 1)
        codes = rng.choice(k, n, p=p / p.sum())
        if i == 1:
            codes = np.where(rng.random(n) < 0.3 * frac, 0, codes)
        cols[f"cat_{i}"] = labels[codes]
    for c in ("num_1", "amount"):
        v = cols[c].astype(np.float64)
        v[rng.random(n) < 0.01] = np.nan
        cols[c] = v
    logit = 0.8 * (cols["num_0"] - 0) - 0.3 * (cols["num_3"] - 3) + (cols["cat_0"] == "c0_1") * 0.9 - 1.2
    cols["income"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), ">50K", "<=50K").astype(object)
    df = pd.DataFrame(cols)
    if with_time:
        df.insert(0, "ts", pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(t, unit="s"))
    return df


def write_folder(df, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Files of the same size at every table size, as a growing data set gains files (days, ...):
    # otherwise the smaller table's files would be smaller than one batch, and its batches smaller.
    for i in range(-(-len(df) // PART_ROWS)):
        part = folder / f"part={i:02d}"
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(df.iloc[i * PART_ROWS:(i + 1) * PART_ROWS],
                                            preserve_index=False),
                       part / "part-0.parquet", row_group_size=65536)


def write_log(project: Path, rows: int, rate: int, seed: int) -> None:
    """`rows` requests at `rate` per day into monitoring/predictions/DAY.jsonl, 20 % labeled."""
    import datetime as dt

    import numpy as np

    rng = np.random.default_rng(seed)
    df = table(rows, seed + 7, shifted=False, with_time=False)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    sec = np.sort(rng.integers(0, 86400, rows)) + (np.arange(rows) // rate) * 86400
    ms = rng.integers(0, 1000, rows)
    lat = rng.lognormal(1.3, 0.5, rows)
    err = rng.random(rows) < 0.01
    logit = 0.8 * df["num_0"].to_numpy() - 0.3 * (df["num_3"].to_numpy() - 3) - 1.2
    score = 1 / (1 + np.exp(-logit))
    labeled = rng.random(rows) < LABELED
    folder = project / "monitoring" / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = df[["num_0", "num_1", "num_2", "num_3", "int_0", "cat_0", "cat_1"]].astype(object)
    inputs = inputs.where(inputs.notna(), None).to_dict("records")
    income = df["income"].to_numpy()
    out, day_lines, day = None, [], None
    fb = open(project / "monitoring" / "feedback.jsonl", "w")  # noqa: SIM115
    try:
        for i in range(rows):
            t = start + dt.timedelta(seconds=int(sec[i]), milliseconds=int(ms[i]))
            d = t.date()
            if d != day:
                if day_lines:
                    out.write_text("".join(day_lines))
                day, day_lines, out = d, [], folder / f"{d}.jsonl"
            rid = f"r{i:08d}"
            stamp = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            rec = {"request_id": rid, "time": stamp, "env": "production",
                   "model_version": "1" if i < rows // 2 else "2", "latency_ms": round(float(lat[i]), 3),
                   "status": "error" if err[i] else "ok", "inputs": inputs[i],
                   "prediction": None if err[i] else (">50K" if score[i] >= 0.5 else "<=50K"),
                   "score": None if err[i] else round(float(score[i]), 6),
                   "error": "timeout" if err[i] else None}
            day_lines.append(json.dumps(rec) + "\n")
            if labeled[i]:
                fb.write(json.dumps({"request_id": rid, "label": income[i], "time": stamp}) + "\n")
        if day_lines:
            out.write_text("".join(day_lines))
    finally:
        fb.close()


def make_data(folder: Path, rows: int, rate: int) -> None:
    """Everything one size needs, under `folder`: table/, reference/, proj/."""
    import re

    folder.mkdir(parents=True, exist_ok=True)
    df = table(rows, SEED, shifted=True)
    write_folder(df, folder / "table")
    sample = folder / "sample.parquet"
    df.iloc[:: max(1, rows // 1000)].to_parquet(sample, index=False)
    del df
    write_folder(table(rows, SEED + 1, shifted=False, with_time=False), folder / "reference")
    omg = str(Path(sys.executable).parent / "omg")
    subprocess.run([omg, "ml", "init", "proj", "--data", str(sample), "--target", "income", "-q"],
                   cwd=folder, check=True, capture_output=True, timeout=600)
    proj = folder / "proj"
    cfg = proj / "omg.yaml"
    text = re.sub(r'^(\s*source:)\s*"[^"]*"', rf'\1 "{folder / "table"}"', cfg.read_text(), count=1,
                  flags=re.M)
    cfg.write_text(text)
    # the schema of the table (not measured: written once, as a user does before validating)
    subprocess.run([omg, "data", "validate", "--infer", "--schema", "schema.yaml", "-q"], cwd=proj,
                   check=True, capture_output=True, timeout=1800)
    write_log(proj, rows, rate, SEED + 2)


WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
out = subprocess.run(sys.argv[2:], cwd=sys.argv[1], capture_output=True, text=True)
wall = time.perf_counter() - t0
print(json.dumps({"rc": out.returncode, "wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr": out.stderr[-1500:], "stdout": out.stdout[-600:]}))
"""

PANDAS_PEER = r"""
import sys
import pandas as pd
df = pd.read_parquet(sys.argv[1])
print(len(df))
"""

OLD_MONITOR_PEER = r"""
# the monitor before streaming: the whole log in one DataFrame, joined, grouped by window
import sys
import numpy as np
import pandas as pd
from omgmagics.ops.live import join_feedback, metric_value
from omgmagics.ops.predlog import META, feedback_path, read_feedback, read_log
from omgmagics.ops.windows import floor_ns, parse_duration
from omgmagics.project import Project

project = Project.at(sys.argv[1])
duration = parse_duration("1d")
log, problems = read_log(project)
joined = join_feedback(log, read_feedback(feedback_path(project)))
ns = joined["time"].dt.tz_convert("UTC").dt.tz_localize(None).astype("int64").to_numpy()
first = floor_ns(int(ns.min()), duration)
joined["_w"] = (ns - first) // duration.ns
inputs = [c for c in log.columns if c not in META]
rows = []
for w, g in joined.groupby("_w", sort=True):
    ok = g["status"] == "ok"
    lat = g["latency_ms"].dropna()
    sc = g.loc[ok, "score"].dropna()
    miss = g.loc[ok, inputs].isna().mean()
    lab = g[ok & g["label"].notna()]
    rows.append({"requests": len(g), "p99": np.percentile(lat, 99), "s50": np.percentile(sc, 50),
                 "miss": miss.max(), "live": metric_value(project, lab["label"], lab["score"],
                                                          lab["prediction"]) if len(lab) else np.nan})
print(len(rows), sum(r["requests"] for r in rows))
"""


def measure(cwd: Path, cmd: list[str], timeout: int = 3600) -> dict:
    out = subprocess.run([sys.executable, "-c", WRAPPER, str(cwd), *cmd], capture_output=True, text=True,
                         timeout=timeout)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({res['rc']}): {res['stderr']}")
    return {"wall_s": round(res["wall_s"], 2), "peak_rss_mb": round(res["peak_rss_mb"], 1)}


def steps(folder: Path) -> dict[str, dict]:
    omg = str(Path(sys.executable).parent / "omg")
    proj = folder / "proj"
    return {
        "validate": measure(proj, [omg, "data", "validate", "--schema", "schema.yaml", "-q"]),
        "audit": measure(proj, [omg, "data", "validate", "--audit", "-q"]),
        "drift": measure(proj, [omg, "ops", "drift", "--reference", str(folder / "reference"), "--current",
                                str(folder / "table"), "--time-column", "ts", "--window", "5w", "-q"]),
        "monitor": measure(proj, [omg, "ops", "monitor", "--window", "1d", "-q"]),
        "pandas_read": measure(proj, [sys.executable, "-c", PANDAS_PEER, str(folder / "table")]),
        "monitor_whole_log": measure(proj, [sys.executable, "-c", OLD_MONITOR_PEER, str(proj)]),
    }


def run() -> dict:
    small, large = sizes()
    rate = per_day(small)
    res: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_large_data_") as tmp:
        for rows in (small, large):
            folder = Path(tmp) / f"rows{rows}"
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--make-data", str(folder),
                            str(rows), str(rate)], check=True, timeout=3600)
            res[rows] = steps(folder)
    peers = {"validate": "pandas_read", "audit": "pandas_read", "drift": "pandas_read",
             "monitor": "monitor_whole_log"}
    figures: dict[str, object] = {"small_rows": small, "large_rows": large, "log_days_small":
                                  -(-small // rate), "log_days_large": -(-large // rate)}
    growth = {}
    for step, peer in peers.items():
        a, b = res[small][step], res[large][step]
        growth[step] = b["peak_rss_mb"] / a["peak_rss_mb"]
        figures[f"{step}_wall_s"] = b["wall_s"]
        figures[f"{step}_peak_rss_mb"] = b["peak_rss_mb"]
        figures[f"{step}_peak_rss_mb_small"] = a["peak_rss_mb"]
        figures[f"{step}_growth"] = round(growth[step], 3)
        figures[f"{step}_vs_peer"] = round(b["peak_rss_mb"] / res[large][peer]["peak_rss_mb"], 3)
    peer_fig = {"name": "pandas.read_parquet of the whole folder; the monitor's previous approach "
                        "(whole log in one DataFrame)"}
    for peer in ("pandas_read", "monitor_whole_log"):
        peer_fig[f"{peer}_wall_s"] = res[large][peer]["wall_s"]
        peer_fig[f"{peer}_peak_rss_mb"] = res[large][peer]["peak_rss_mb"]
        peer_fig[f"{peer}_peak_rss_mb_small"] = res[small][peer]["peak_rss_mb"]
        peer_fig[f"{peer}_growth"] = round(res[large][peer]["peak_rss_mb"] / res[small][peer]["peak_rss_mb"],
                                           3)
    worst = max(growth, key=growth.get)
    return {
        "title": f"large data: peak memory at {large:,} vs {small:,} rows (validate, audit, drift, monitor)",
        "figures": figures,
        "peer": peer_fig,
        "ratio": round(growth[worst], 3),
        "target": f"each step's peak RSS at {large:,} rows <= {TARGET}x its peak at {small:,} rows",
        "met": all(g <= TARGET for g in growth.values()),
        "notes": (f"largest growth: {worst}. Per size: {json.dumps(res)}. Each command runs in its own "
                  "process (wall time includes start-up and imports); peak RSS of that process. The "
                  f"log: {rate:,} requests per day, {int(LABELED * 100)} % labeled; the table: {COLS} "
                  f"columns in hive partitions of {PART_ROWS:,} rows."),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make-data"]:
        make_data(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        print(json.dumps(run(), indent=2))
