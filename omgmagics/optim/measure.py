"""Measurements shared by profile, quantize and prune (core layer): size, latency, memory, metric.

Latency is the wall time of ``predict_scores`` on a batch, repeated after a warm-up; p50/p99 are over
the repeats. Peak memory is the largest growth of the process's resident set while predicting,
sampled every millisecond (it sees native allocations of torch, xgboost and onnxruntime, which
``tracemalloc`` does not).
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError


@dataclass
class EvalData:
    """The validation split a model is judged on (feature matrix and encoded target)."""

    ref: str
    split: str
    X: Any  # DataFrame of feature columns
    y: Any
    metric: str
    task: str
    train_X: Any = None
    train_y: Any = None


def eval_data(project: Any, model: Any, features: str | None = None, need_train: bool = False) -> EvalData:
    """The feature set the model was trained on (or `features`), its validation split.

    Raises
    ------
    DataError
        When the feature set has no validation split or lacks the model's columns.
    """
    from ..modeling.data import load_model_data

    ref = features or model.meta.get("feature_set") or None
    data = load_model_data(project, ref)
    split = "val" if data.has("val") else None
    if split is None:
        raise DataError(f"Feature set {data.ref} has no validation split to measure the model on. "
                        "Store train/val/test splits in phase 2 (`omg data split`).")
    missing = [c for c in model.feature_names if c not in data.frames[split].columns]
    if missing:
        raise DataError(f"Feature set {data.ref} lacks {len(missing)} column(s) the model was trained "
                        f"on ({', '.join(missing[:5])}). Pass --features with the set it was trained on.")
    metric = project.primary_metric
    out = EvalData(data.ref, split, data.frames[split][model.feature_names], data.y[split], metric,
                   data.task)
    if need_train:
        out.train_X = data.frames["train"][model.feature_names]
        out.train_y = data.y["train"]
    return out


def metric_value(model: Any, data: EvalData) -> float:
    from ..metrics import score

    return float(score(data.metric, data.y, model.predict_scores(data.X), data.task))


def metric_drop(metric: str, before: float, after: float) -> float:
    """How much worse `after` is than `before` (positive = worse), whatever the metric's direction."""
    from ..metrics import get_metric

    return (before - after) if get_metric(metric).greater_is_better else (after - before)


# Metrics in the target's units (a house price's RMSE is in the millions): --max-drop is a share of
# the value before for these, an absolute difference for scale-free metrics (AUC, F1, R2 ...).
UNIT_METRICS = ("rmse", "mae")


def checked_drop(metric: str, before: float, drop: float) -> float:
    """The drop --max-drop is compared with: `drop` itself, or its share of `before` for a metric
    in the target's units."""
    if metric not in UNIT_METRICS:
        return drop
    if before:
        return drop / abs(before)
    return 0.0 if drop <= 0 else float("inf")


def model_size(model: Any) -> int:
    """Bytes of the model's saved weights file (the format the kit stores it in)."""
    return int(model.size_bytes())


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def saved_size(model: Any) -> int:
    """Bytes of the whole saved model folder (weights and metadata)."""
    with tempfile.TemporaryDirectory() as tmp:
        return folder_size(model.save(Path(tmp) / "m"))


def batch_of(X: Any, n: int) -> Any:
    """`n` rows of `X`, repeating rows when it has fewer."""
    import numpy as np

    arr = np.asarray(X, dtype=np.float64)
    if len(arr) == 0:
        raise DataError("No rows to time the model on.")
    reps = -(-n // len(arr))
    return np.tile(arr, (reps, 1))[:n] if reps > 1 else arr[:n]


def time_batches(model: Any, X: Any, batch_sizes: list[int], repeats: int = 50,
                 budget_s: float = 5.0, samples: dict[int, list[float]] | None = None
                 ) -> list[dict[str, Any]]:
    """Latency p50/p99 (ms) and throughput (rows/s) per batch size.

    Each batch size gets a warm-up call and then up to `repeats` timed calls, fewer when the
    `budget_s` seconds run out (at least 5). `samples`, when given, receives every timed call's
    latency (ms) by batch size (for the distribution plot).
    """
    import numpy as np

    rows = []
    for n in batch_sizes:
        batch = batch_of(X, n)
        model.predict_scores(batch)  # warm-up: lazy initialisation, caches
        times = []
        deadline = time.perf_counter() + budget_s / max(len(batch_sizes), 1)
        for i in range(repeats):
            t0 = time.perf_counter()
            model.predict_scores(batch)
            times.append((time.perf_counter() - t0) * 1000)
            if i >= 4 and time.perf_counter() > deadline:
                break
        arr = np.asarray(times)
        if samples is not None:
            samples[n] = times
        rows.append({"batch": n, "repeats": len(times),
                     "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
                     "rows_per_s": float(n / (np.median(arr) / 1000)) if np.median(arr) > 0 else None})
    return rows


def peak_memory_mb(model: Any, X: Any, n: int = 1024, repeats: int = 5) -> float | None:
    """Largest resident-set growth (MB) while predicting batches of `n` rows."""
    try:
        import psutil
    except ImportError:
        return None
    proc = psutil.Process()
    batch = batch_of(X, n)
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        for _ in range(repeats):
            model.predict_scores(batch)
    finally:
        stop.set()
        thread.join()
    return max(peak[0] - base, 0) / 2**20


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,1024"`` -> [1, 1024]."""
    from ..errors import UsageError

    try:
        sizes = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--batch-sizes must be comma-separated positive integers such as 1,1024, "
                         f"got '{text}'.") from None
    if not sizes or any(s < 1 or s > 1_000_000 for s in sizes):
        raise UsageError(f"--batch-sizes must be comma-separated integers in 1..1000000, got '{text}'.")
    return sizes
