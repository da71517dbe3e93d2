"""Shared helpers of the phase 5 tests (no tests here): seeded prediction logs, feedback, references."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Seeded rows: two numeric features, a categorical one with missing values, a label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    z = rng.poisson(3, n).astype(float)
    color = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).astype(object)
    color[rng.random(n) < 0.05] = None
    logit = 1.5 * x - 0.3 * z
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), ">50K", "<=50K")
    return pd.DataFrame({"x": x, "z": z, "color": color, "income": y})


def write_log(root: Path, days: int = 10, per_day: int = 120, seed: int = 0, shift_from: int | None = None,
              shift: float = 2.0, latency: float = 5.0, error_share: float = 0.0,
              good_model: bool = True, labels: bool = True, model_version: str = "1") -> pd.DataFrame:
    """Write ``monitoring/predictions/*.jsonl`` and ``feedback.jsonl``; return the rows written."""
    rng = np.random.default_rng(seed)
    folder = root / "monitoring" / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    rows, feedback = [], []
    for d in range(days):
        df = frame(per_day, seed + 100 + d, shift if shift_from and d + 1 >= shift_from else 0.0)
        lines = []
        for i, r in df.iterrows():
            t = START + dt.timedelta(days=d, seconds=int(rng.integers(0, 86400)))
            rid = f"r{d:03d}-{i:04d}"
            score = 1 / (1 + np.exp(-(1.5 * r["x"] - 0.3 * r["z"]))) if good_model else rng.random()
            err = rng.random() < error_share
            rec = {"request_id": rid, "time": t.isoformat().replace("+00:00", "Z"), "env": "test",
                   "model_version": model_version, "latency_ms": float(rng.gamma(2.0, latency / 2)),
                   "status": "error" if err else "ok",
                   "inputs": {"x": r["x"], "z": r["z"], "color": r["color"]},
                   "prediction": None if err else (">50K" if score >= 0.5 else "<=50K"),
                   "score": None if err else float(score), "error": "boom" if err else None}
            lines.append(json.dumps(rec))
            rows.append({**rec, **rec["inputs"], "label": r["income"]})
            if labels:
                feedback.append({"request_id": rid, "label": r["income"],
                                 "time": (t + dt.timedelta(hours=6)).isoformat()})
        (folder / f"{(START + dt.timedelta(days=d)).date()}.jsonl").write_text("\n".join(lines) + "\n")
    if labels:
        (root / "monitoring" / "feedback.jsonl").write_text("".join(json.dumps(f) + "\n" for f in feedback))
    return pd.DataFrame(rows)


def write_reference(root: Path, n: int = 2000, seed: int = 1) -> Path:
    ref = frame(n, seed)
    ref["score"] = 1 / (1 + np.exp(-(1.5 * ref["x"] - 0.3 * ref["z"])))
    path = root / "monitoring" / "reference.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    ref.to_parquet(path, index=False)
    return path


def small_project(tmp_path: Path, extra_yaml: str = "") -> Path:
    """A minimal project: a brief for a binary target `income` on the seeded rows (no phase notebooks)."""
    root = tmp_path / "proj"
    for sub in ("monitoring", "reports", "docs", "data/raw", "data/processed"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    data = frame(600, 7)
    data.to_csv(root / "data" / "raw" / "source.csv", index=False)
    (root / "omg.yaml").write_text(
        "project: {name: proj}\n"
        "brief:\n"
        "  objective: {type: classification, target: income, positive_label: '>50K',\n"
        "              primary_metric: roc_auc, threshold: 0.7}\n"
        "  constraints: {latency_p99_ms: 50, detect_drift_within_hours: 24, retrain_within_hours: 4}\n"
        "data: {source: data/raw/source.csv}\n"
        "seed: 42\n" + extra_yaml)
    return root
