"""The prediction log (core layer): what phase 5 monitors.

One JSON object per prediction, one line each, in ``<project>/monitoring/predictions/YYYY-MM-DD.jsonl``
(the UTC date of the prediction)::

    {"request_id": "9f1c...", "time": "2026-11-27T13:05:26.123+00:00", "env": "staging",
     "model_version": "churn-model/2", "latency_ms": 1.84, "status": "ok",
     "inputs": {"tenure_months": 14, "plan": "basic", ...}, "prediction": "yes", "score": 0.73,
     "error": null}

``score`` is P(positive class) for a binary model and null otherwise; a multi-class model's records
also carry ``"probabilities": {"CLASS": p, ...}``; a regression's ``prediction`` is the value.
Non-finite numbers are written as null (NaN is not JSON).

A batch request gives one record per row, with request ids ``ID:0``, ``ID:1`` ... Records are buffered
in memory and appended by a background thread every ``flush_seconds`` or ``flush_records`` records,
whichever comes first, each flush one ``write`` of whole lines to a file opened in append mode, so
readers never see half a record (several servers can append to the same day's file). At most
``max_buffer`` records wait in memory; beyond that new records are dropped and counted
(``dropped``), so a stalled disk cannot exhaust the server's memory.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from .. import clock


class PredictionLog:
    """Bounded, batched, append-only JSON-lines writer (thread-safe).

    Parameters
    ----------
    folder : path-like
        ``monitoring/predictions`` of the project.
    env, model_version : str
        Written into every record.
    """

    def __init__(self, folder: str | os.PathLike, env: str, model_version: str, *,
                 flush_records: int = 200, flush_seconds: float = 1.0, max_buffer: int = 20000):
        self.folder = Path(folder)
        self.env = env
        self.model_version = model_version
        self.flush_records = int(flush_records)
        self.flush_seconds = float(flush_seconds)
        self.max_buffer = int(max_buffer)
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._buf: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PredictionLog:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="omg-prediction-log", daemon=True)
        self._thread.start()
        return self

    def add(self, request_id: str, inputs: dict[str, Any], prediction: Any, score: Any,
            latency_ms: float, status: str = "ok", error: str | None = None,
            when: _dt.datetime | None = None, probabilities: dict[str, Any] | None = None) -> None:
        """Queue one record (never blocks on disk). `probabilities` (a multi-class model's
        class -> probability) is written only when given."""
        rec = {"request_id": request_id,
               "time": clock.stamp(when, ms=True),
               "env": self.env, "model_version": self.model_version,
               "latency_ms": round(float(latency_ms), 3), "status": status, "inputs": inputs,
               "prediction": prediction, "score": score, "error": error}
        if probabilities is not None:
            rec["probabilities"] = probabilities
        with self._lock:
            if len(self._buf) >= self.max_buffer:
                self.dropped += 1
                return
            self._buf.append(rec)
            full = len(self._buf) >= self.flush_records
        if full:
            self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self._safe_flush()
        self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - the writer thread must outlive any bad batch
            self._failed(exc, 0)

    def _failed(self, exc: BaseException, lost: int) -> None:
        with self._lock:
            self.write_errors += 1
            self.dropped += lost
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def flush(self) -> int:
        """Write every buffered record now; returns how many were written.

        A record that cannot be serialised is dropped and counted (``dropped``, ``write_errors``,
        ``last_error``); the others are still written."""
        with self._lock:
            batch, self._buf = self._buf, []
        if not batch:
            return 0
        by_day: dict[str, list[str]] = {}
        for rec in batch:
            try:
                try:
                    line = json.dumps(rec, default=str, separators=(",", ":"), allow_nan=False)
                except ValueError:  # a non-finite number somewhere: null, as documented
                    line = json.dumps(_finite_only(rec), default=str, separators=(",", ":"),
                                      allow_nan=False)
                day = str(rec["time"])[:10]
            except Exception as exc:  # noqa: BLE001 - one bad record must not lose the batch
                self._failed(exc, 1)
                continue
            by_day.setdefault(day, []).append(line)
        for day, lines in by_day.items():
            data = ("\n".join(lines) + "\n").encode("utf-8")
            try:
                fd = os.open(self.folder / f"{day}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                             0o644)
                try:
                    view = memoryview(data)
                    while view:  # a short write continues where it stopped: lines stay whole
                        n = os.write(fd, view)
                        view = view[n:]
                finally:
                    os.close(fd)
                self.written += len(lines)
            except OSError as exc:
                self._failed(exc, len(lines))
        return len(batch)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def _finite_only(value: Any, depth: int = 0) -> Any:
    """`value` with every non-finite float (inf, -inf, nan, numpy ones too) made None."""
    if depth > 50:
        return None
    if isinstance(value, dict):
        return {k: _finite_only(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            item = value.item()
        except (ValueError, TypeError):
            return value
        return None if isinstance(item, float) and not math.isfinite(item) else item
    return value


def read_log(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of every day's file (skipping a line that does not parse)."""
    out = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
