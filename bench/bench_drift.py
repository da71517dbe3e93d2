"""Drift detection: the kit's streaming engine vs Evidently's DataDriftPreset, same data, same run.

Data: 1,000,000 reference rows and 1,000,000 current rows x 20 numeric columns (seeded), written as
parquet (the reference one file, the current data a hive-partitioned folder of 10 files). Five columns
are shifted in the current data (mean, scale, log-normal location, Poisson rate, exponential scale);
the fifteen others are drawn from the same distributions on both sides (normal, log-normal, Poisson,
uniform, exponential, bimodal, few-valued integers, heavy-tailed t, zero-inflated amounts; some with 2 %
missing values).

Each side runs in its own subprocess, from the parquet files to per-column verdicts (Evidently needs
DataFrames, so its time includes pandas reading the same files), and reports its wall time and peak
resident memory (``VmHWM``, which starts afresh in a new process; also above its footprint after
imports; the kit also on a quarter of the rows, to show its memory does not grow with the data).
Agreement: which columns each flags as drifted, against the truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROWS = 1_000_000
COLS = 20
SHIFTED = ["c00", "c01", "c02", "c03", "c04"]
SEED = 20261127
HERE = Path(__file__).resolve().parent
TARGET = 0.1


def make_data(folder: Path, rows: int = ROWS) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    def draw(rng, shifted: bool) -> dict:
        s = shifted
        n = rows
        cols = {
            "c00": rng.normal(0.5 if s else 0.0, 1.0, n),
            "c01": rng.normal(0.0, 1.5 if s else 1.0, n),
            "c02": rng.lognormal(0.3 if s else 0.0, 0.5, n),
            "c03": rng.poisson(4.0 if s else 3.0, n).astype(np.int64),
            "c04": rng.exponential(1.5 if s else 1.0, n),
            "c05": rng.normal(10.0, 2.0, n),
            "c06": rng.lognormal(1.0, 0.8, n),
            "c07": rng.poisson(7.0, n).astype(np.int64),
            "c08": rng.uniform(-1.0, 1.0, n),
            "c09": rng.exponential(3.0, n),
            "c10": np.where(rng.random(n) < 0.4, rng.normal(-2, 0.5, n), rng.normal(2, 0.7, n)),
            "c11": rng.integers(0, 5, n).astype(np.int64),
            "c12": rng.standard_t(3, n),
            "c13": np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(7, 1, n)),
            "c14": rng.normal(100.0, 15.0, n),
            "c15": rng.beta(2.0, 5.0, n),
            "c16": rng.gamma(2.0, 2.0, n),
            "c17": rng.normal(0.0, 1.0, n),
            "c18": rng.binomial(20, 0.3, n).astype(np.int64),
            "c19": rng.lognormal(0.0, 1.2, n),
        }
        for c in ("c05", "c09", "c16"):  # 2 % missing on both sides
            v = cols[c].astype(np.float64)
            v[rng.random(n) < 0.02] = np.nan
            cols[c] = v
        return cols

    ref = pd.DataFrame(draw(np.random.default_rng(SEED), False))
    cur = pd.DataFrame(draw(np.random.default_rng(SEED + 1), True))
    ref_path = folder / "reference.parquet"
    pq.write_table(pa.Table.from_pandas(ref, preserve_index=False), ref_path, row_group_size=131072)
    cur_dir = folder / "current"
    per = rows // 10
    for i in range(10):
        part = cur_dir / f"day=2026-01-{i + 1:02d}"
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(cur.iloc[i * per:(i + 1) * per], preserve_index=False),
                       part / "part-0.parquet", row_group_size=65536)
    return ref_path, cur_dir


HWM = r"""
def hwm_mb():
    # VmHWM: this process's peak resident memory, reset at exec (ru_maxrss is inherited from the parent)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

KIT = HWM + r"""
import json, sys, time
t0 = time.perf_counter()
import numpy, pyarrow, scipy.stats
from omgmagics.ops.drift import detect
base = hwm_mb()
t1 = time.perf_counter()
ref, cur = sys.argv[1], sys.argv[2]
res = detect(ref, cur, features=[f"c{i:02d}" for i in range(20)])[0]
t2 = time.perf_counter()
peak = hwm_mb()
print(json.dumps({"seconds": t2 - t1, "import_seconds": t1 - t0, "peak_mb": peak,
                  "above_imports_mb": peak - base,
                  "drifted": sorted(res.drifted),
                  "psi": {f.feature: round(f.psi, 4) for f in res.features},
                  "wasserstein_norm": {f.feature: round(f.wasserstein_norm, 4) for f in res.features}}))
"""

EVIDENTLY = HWM + r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
base = hwm_mb()
t1 = time.perf_counter()
ref = pd.read_parquet(sys.argv[1])
cur = pd.read_parquet(sys.argv[2]).drop(columns=["day"], errors="ignore")
t_read = time.perf_counter()
snap = Report([DataDriftPreset()]).run(cur, ref)
t2 = time.perf_counter()
peak = hwm_mb()
drifted, values = [], {}
for m in snap.dict()["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        values[cfg["column"]] = round(float(m["value"]), 4)
        if float(m["value"]) >= float(cfg.get("threshold", 0.1)):
            drifted.append(cfg["column"])
print(json.dumps({"seconds": t2 - t1, "read_seconds": t_read - t1, "import_seconds": t1 - t0,
                  "peak_mb": peak, "above_imports_mb": peak - base,
                  "drifted": sorted(drifted), "values": values}))
"""


def _side(code: str, ref: Path, cur: Path, timeout: int = 3600) -> dict:
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}
    out = subprocess.run([sys.executable, "-c", code, str(ref), str(cur)], capture_output=True,
                         text=True, timeout=timeout, env=env, cwd=str(HERE.parent))
    if out.returncode != 0:
        raise RuntimeError(f"benchmark side failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_drift_") as tmp:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--make-data", tmp], check=True,
                       timeout=1800)
        ref, cur = Path(tmp) / "reference.parquet", Path(tmp) / "current"
        kit = _side(KIT, ref, cur)
        peer = _side(EVIDENTLY, ref, cur)
        # bounded memory: the kit on a quarter of the rows needs about the same
        small = Path(tmp) / "quarter"
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--make-data", str(small),
                        str(ROWS // 4)], check=True, timeout=1800)
        quarter = _side(KIT, small / "reference.parquet", small / "current")
    truth = set(SHIFTED)
    unshifted = {f"c{i:02d}" for i in range(COLS)} - truth

    def agreement(found: list[str]) -> dict:
        f = set(found)
        return {"shifted found": f"{len(f & truth)}/{len(truth)}",
                "unshifted flagged": sorted(f & unshifted)}

    ka, pa = agreement(kit["drifted"]), agreement(peer["drifted"])
    ratio = kit["seconds"] / peer["seconds"]
    import evidently

    met = ratio <= TARGET and ka["shifted found"] == "5/5" and not ka["unshifted flagged"]
    return {
        "title": "drift 1M x 20 (reference vs current, parquet)",
        "figures": {"wall_s": round(kit["seconds"], 2), "peak_mb": round(kit["peak_mb"], 1),
                    "above_imports_mb": round(kit["above_imports_mb"], 1),
                    "above_imports_mb_at_250k_rows": round(quarter["above_imports_mb"], 1),
                    "shifted_found": ka["shifted found"],
                    "unshifted_flagged": len(ka["unshifted flagged"])},
        "peer": {"name": f"Evidently {evidently.__version__} DataDriftPreset",
                 "wall_s": round(peer["seconds"], 2), "of_which_read_s": round(peer["read_seconds"], 2),
                 "peak_mb": round(peer["peak_mb"], 1),
                 "above_imports_mb": round(peer["above_imports_mb"], 1),
                 "shifted_found": pa["shifted found"], "unshifted_flagged": len(pa["unshifted flagged"])},
        "ratio": round(ratio, 4),
        "target": "wall time <= 0.1x Evidently; all 5 shifted columns found, none of the 15 others",
        "met": met,
        "notes": (f"kit drifted: {kit['drifted']}; Evidently drifted: {peer['drifted']}; same verdicts: "
                  f"{sorted(kit['drifted']) == sorted(peer['drifted'])}. Kit PSI: {kit['psi']}. "
                  f"Kit normalized Wasserstein: {kit['wasserstein_norm']}. Evidently normalized "
                  f"Wasserstein: {peer['values']}. Memory ratio (peak): "
                  f"{kit['peak_mb'] / peer['peak_mb']:.3f}. Each side runs in its own subprocess; times "
                  "exclude imports and include reading the parquet files."),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make-data"]:
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        make_data(folder, int(sys.argv[3]) if len(sys.argv) > 3 else ROWS)
    else:
        print(json.dumps(run(), indent=2))
