"""Replayed traffic for the closed-loop demo (core layer): ``omg ops simulate``.

Held-out rows are replayed as requests over SIMULATED days: each day's rows get simulated timestamps,
are scored in-process by the champion (through the production bundle phase 4 serves, when it packages
the champion: the server's own handler, feature pipeline and model; else the registered model and its
feature pipeline) and are written to the prediction log in the serving contract, with
their true labels in ``monitoring/feedback.jsonl`` arriving ``label_delay`` after each request (labels
not yet due at the end of the simulated period are held back), with the row's other columns that
are no model input (the sensitive attributes) as the feedback's ``attributes``. A shift can be injected from a given
day on. ``latency_ms`` is the measured in-process scoring time per row (no network). Everything the
simulation writes is marked ``env: "simulation"`` and described in ``monitoring/simulation.json``;
a later run continues where the previous one ended.

The reference for drift (``monitoring/reference.parquet``) is written from the training rows with the
same model's scores, so prediction drift has a baseline.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, UsageError
from . import journal
from .predlog import append_records, iso, log_dir

SHIFT_RE = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*([*+=-])\s*(.+?)\s*$")
SIMULATION = "simulation.json"


def parse_shift(text: str | None) -> list[tuple[str, str, Any]]:
    """``"age+10, capital_gain*0.001, workclass=Private"`` -> [(column, op, value), ...]."""
    out = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        m = SHIFT_RE.match(part)
        if not m:
            raise UsageError(f"Shift '{part.strip()}' is not COLUMN*FACTOR, COLUMN+DELTA, COLUMN-DELTA or "
                             "COLUMN=VALUE. Example: --shift 'age+10,capital_gain*0.001'.")
        col, op, value = m.groups()
        if op != "=":
            try:
                value = float(value)
            except ValueError:
                raise UsageError(f"Shift '{part.strip()}': {value!r} is not a number.") from None
        out.append((col, op, value))
    return out


def apply_shift(df: Any, shift: list[tuple[str, str, Any]]) -> Any:
    import pandas as pd

    df = df.copy()
    for col, op, value in shift:
        if col not in df.columns:
            from ..errors import did_you_mean

            raise UsageError(f"Shift column '{col}' is not in the data.{did_you_mean(col, df.columns)}")
        if op == "=":
            df[col] = value
            continue
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise UsageError(f"Shift '{col}{op}{value:g}' needs a numeric column; '{col}' is {df[col].dtype}.")
        out = df[col] * value if op == "*" else df[col] + (value if op == "+" else -value)
        if pd.api.types.is_integer_dtype(df[col]):  # a whole-number field stays one (rounded)
            out = out.round().astype(df[col].dtype)
        df[col] = out
    return df


def _default_rows(project: Any, names: tuple[str, ...]) -> tuple[Any, str]:
    import pandas as pd

    for name in names:
        path = Path(project.processed_dir) / f"{name}.parquet"
        if path.is_file():
            return pd.read_parquet(path), str(path.relative_to(project.root))
    return project.load_source_data(), "the project's source data"


def _inputs(df: Any, project: Any, scorer: Any) -> list[str]:
    """The request fields: the raw columns the model's feature pipeline reads (as a client sends
    them), else every column but the target and ids (phase 2's labeling columns are not inputs)."""
    if scorer is not None and scorer.inputs:
        missing = [c for c in scorer.inputs if c not in df.columns]
        if missing:
            raise DataError(f"The replayed rows lack the model's input column(s) {', '.join(missing)}.")
        return list(scorer.inputs)
    skip = {project.target, project.config.get_path("data.id_column"), "row_id", "label_source",
            "label_confidence"}
    return [c for c in df.columns if c not in skip]


def _score(scorer: Any, frame: Any) -> tuple[Any, list[Any], list[str | None]]:
    """Scores and predictions of a day; rows the model cannot score become error records (with the
    message), as the server answers them, instead of stopping the replay."""
    try:
        scores, preds = scorer.predict(frame)
        return scores, list(preds), [None] * len(frame)
    except Exception:  # noqa: BLE001 - find the failing rows one by one
        scores, preds, failed = np.full(len(frame), np.nan), [None] * len(frame), [None] * len(frame)
        for i in range(len(frame)):
            try:
                s, p = scorer.predict(frame.iloc[[i]])
                scores[i], preds[i] = s[0], p[0]
            except Exception as exc:  # noqa: BLE001 - logged as the request's error
                failed[i] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return scores, preds, failed


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
        return None if isinstance(v, float) and np.isnan(v) else v
    return v


def simulate_traffic(project: Any, rows: Any = None, *, days: int = 14, per_day: int | None = None,
                     start: str | None = None, shift: str | None = None, shift_from: int | None = None,
                     model: str = "champion", label_delay: str = "1d", label_share: float = 1.0,
                     error_rate: float = 0.0, seed: int | None = None, reference: Any = None,
                     scorer: Any = None, env: str = "simulation") -> Any:
    """Replay `rows` as `days` of simulated traffic; write the log, feedback and the drift reference.

    Parameters
    ----------
    rows : DataFrame, optional
        Held-out raw rows with the target (default: the test split phase 2 wrote, else the source data).
    shift, shift_from : optional
        A shift (see :func:`parse_shift`) applied from simulated day `shift_from` (1-based) on.
    model : str
        ``champion``, ``challenger`` or a registry version number.
    reference : DataFrame, optional
        Training rows for ``monitoring/reference.parquet`` (default: the train split, else the source).
    scorer : Scorer, optional
        Score with this instead of the registry (library use).
    env : str
        The ``env`` of the records (default ``simulation``; monitor it with ``monitoring.env``).
    """
    import pandas as pd

    from ..results import Report
    from .windows import parse_duration, to_utc

    if days < 1:
        raise UsageError(f"--days must be at least 1, got {days}.")
    if not 0 <= error_rate < 1 or not 0 < label_share <= 1:
        raise UsageError("--error-rate must be in [0, 1) and --label-share in (0, 1].")
    steps = parse_shift(shift)
    if steps and not shift_from:
        raise UsageError("--shift needs --shift-from DAY (the first simulated day with the shift).")
    if shift_from is not None and not 1 <= shift_from <= days:
        raise UsageError(f"--shift-from must be a day between 1 and --days ({days}), got {shift_from}.")
    delay = parse_duration(label_delay, "--label-delay")
    seed = project.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    source = "the given rows"
    if rows is None:
        rows, source = _default_rows(project, ("test", "val"))
    target = project.target
    if target not in rows.columns:
        raise DataError(f"The replayed rows have no target column '{target}' (needed for the feedback).")
    served_by = "the registered model (its feature pipeline and model, in-process)"
    if scorer is None:
        from .scoring import load_scorer, production_scorer

        scorer = load_scorer(project, alias=model) if not str(model).isdigit() else \
            load_scorer(project, version=str(model))
        bundle = production_scorer(project, scorer.version) if model == "champion" else None
        if bundle is not None:
            scorer = bundle
            served_by = (f"the production bundle {bundle.version} (phase 4's serving code, "
                         "in-process)")
    inputs = _inputs(rows, project, scorer)
    skip = {target, project.config.get_path("data.id_column"), "row_id", "label_source", "label_confidence"}
    attributes = [c for c in rows.columns if c not in inputs and c not in skip]
    per_day = per_day or max(1, len(rows) // days)
    need = per_day * days
    replace = need > len(rows)
    order = rng.choice(len(rows), size=need, replace=replace)
    folder = log_dir(project)
    previous = _read_simulations(project)
    t0 = to_utc(start, "--start") if start else (
        dt.datetime.fromisoformat(previous[-1]["end"].replace("Z", "+00:00")) if previous
        else dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    t0 = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    end = t0 + dt.timedelta(days=days)
    records, feedback, per = [], [], []
    for d in range(days):
        day = rows.iloc[order[d * per_day:(d + 1) * per_day]].reset_index(drop=True)
        shifted = bool(steps) and d + 1 >= shift_from
        if shifted:
            day = apply_shift(day, steps)
        tic = time.perf_counter()
        scores, preds, failed = _score(scorer, day[inputs])
        ms = (time.perf_counter() - tic) * 1000 / max(len(day), 1)
        offsets = np.sort(rng.uniform(0, 86400, len(day)))
        errors = (rng.random(len(day)) < error_rate) | np.array([f is not None for f in failed])
        labeled = rng.random(len(day)) < label_share
        for i in range(len(day)):
            t = t0 + dt.timedelta(days=d, seconds=float(offsets[i]))
            rid = f"sim-{rng.integers(0, 2**63):016x}"
            ok = not errors[i]
            records.append({
                "request_id": rid, "time": iso(t), "env": env,
                "model_version": scorer.version, "latency_ms": round(ms * float(rng.uniform(0.8, 1.25)), 4),
                "status": "ok" if ok else "error",
                "inputs": {c: _plain(day.at[i, c]) for c in inputs},
                "prediction": _plain(preds[i]) if ok else None,
                "score": _plain(scores[i]) if ok else None,
                "error": None if ok else (failed[i] or "simulated error")})
            due = t + delay.timedelta
            if ok and labeled[i] and due <= end:
                fb = {"request_id": rid, "label": _plain(day.at[i, target]), "time": iso(due)}
                if attributes:
                    fb["attributes"] = {c: _plain(day.at[i, c]) for c in attributes}
                feedback.append(fb)
        per.append({"day": d + 1, "date": (t0 + dt.timedelta(days=d)).date().isoformat(),
                    "requests": len(day), "shifted": shifted,
                    "mean score": float(np.nanmean(scores)) if len(scores) else np.nan})
    append_records(folder, records)
    fb_path = Path(project.monitoring_dir) / "feedback.jsonl"
    if feedback:
        journal.append(fb_path, feedback)
    ref_rows = reference
    ref_source = "the given reference rows"
    if ref_rows is None:
        ref_rows, ref_source = _default_rows(project, ("train",))
    ref_path = _write_reference(project, ref_rows, inputs, scorer)
    shift_start = t0 + dt.timedelta(days=shift_from - 1) if steps else None
    info = {"simulated": True, "written": journal.stamp(), "start": iso(t0), "end": iso(end), "days": days,
            "requests per day": per_day, "rows": source, "sampled with replacement": replace,
            "model version": scorer.version, "served by": served_by, "shift": shift or None, "shift from day": shift_from,
            "shift start": iso(shift_start) if shift_start else None, "label delay": str(delay),
            "label share": label_share, "error rate": error_rate, "seed": seed, "env": env,
            "reference": str(ref_path.relative_to(project.root)), "reference rows": ref_source}
    sims = _read_simulations(project) + [info]
    from ..atomic import write_json

    write_json(Path(project.monitoring_dir) / SIMULATION, {"runs": sims})
    report = Report(
        title=f"Simulated {len(records):,} requests over {days} day(s) ({iso(t0)[:10]} .. "
              f"{iso(end - dt.timedelta(seconds=1))[:10]}), model {scorer.version}",
        summary={"requests": len(records), "labels written": len(feedback),
                 "shift": f"{shift} from day {shift_from} ({iso(shift_start)[:10]})" if steps else "none",
                 "replayed rows": source, "reference": ref_source},
        tables={"days": pd.DataFrame(per)},
        messages=["SIMULATION: the traffic, its timestamps and the label delays are simulated; the "
                  f"predictions are real, made by {served_by}; latency is measured without a network.",
                  *(["Fewer held-out rows than requests: rows were sampled with replacement."] if replace
                    else [])],
        artifacts={"log": str(folder), "feedback": str(fb_path), "reference": str(ref_path),
                   "simulation": str(Path(project.monitoring_dir) / SIMULATION)},
        data=info, value=info)
    return report


def _read_simulations(project: Any) -> list[dict[str, Any]]:
    path = Path(project.monitoring_dir) / SIMULATION
    try:
        return list(json.loads(path.read_text()).get("runs", []))
    except (OSError, json.JSONDecodeError, AttributeError):
        return []


def refresh_reference(project: Any, rows: Any, scorer: Any) -> Path:
    """Make `rows` (the data a new champion learned from), scored by `scorer`, the drift reference."""
    return _write_reference(project, rows, _inputs(rows, project, scorer), scorer)


def _write_reference(project: Any, rows: Any, inputs: list[str], scorer: Any) -> Path:
    from ..atomic import atomic_path

    ref = rows[[c for c in inputs if c in rows.columns]].copy()
    scores, preds = scorer.predict(ref)
    ref["score"] = scores
    ref["prediction"] = [str(p) for p in preds]
    path = Path(project.monitoring_dir) / "reference.parquet"
    with atomic_path(path, ".parquet") as tmp:
        ref.to_parquet(tmp, index=False)
    return path


def loop_summary(project: Any) -> dict[str, Any]:
    """Simulated time from the shift to its detection, and the retrain's wall time.

    Detection is the end of the first drift window after the shift started in which a shifted column
    drifted (a drift check runs when its window closes); drift flagged before the shift is counted
    as false alarms.
    """
    from .retrain import history

    sims = [s for s in _read_simulations(project) if s.get("shift start")]
    out: dict[str, Any] = {}
    brief = project.config
    out["detect within h (brief)"] = brief.get_path("brief.constraints.detect_drift_within_hours")
    out["retrain within h (brief)"] = brief.get_path("brief.constraints.retrain_within_hours")
    if sims:
        sim = sims[-1]
        shift_start = dt.datetime.fromisoformat(sim["shift start"].replace("Z", "+00:00"))
        shifted = {col for col, _, _ in parse_shift(sim.get("shift"))}
        out["shift start (simulated)"] = sim["shift start"]
        out["shifted columns"] = ", ".join(sorted(shifted))
        hits, early = [], 0
        for rec in journal.read(Path(project.monitoring_dir) / journal.DRIFT_HISTORY):
            w = rec.get("window") or {}
            if not w or not rec.get("drifted"):
                continue
            end = dt.datetime.fromisoformat(w["end"])
            if end <= shift_start:
                early += 1  # drift flagged before the shift: a false alarm of the simulation
            elif shifted & set(rec["drifted"]):
                hits.append((end, rec))
        out["drift checks flagging before the shift"] = early
        if hits:
            end, rec = min(hits, key=lambda h: h[0])
            out["detected at (simulated)"] = end.isoformat()
            out["shift to detection h (simulated)"] = round((end - shift_start).total_seconds() / 3600, 1)
            out["shifted columns found"] = ", ".join(sorted(shifted & set(rec["drifted"])))
        else:
            out["shift to detection h (simulated)"] = "not detected"
    decisions = [r for r in history(project) if r.get("event") == "decision" and r.get("decision") != "failed"]
    if decisions:
        d = decisions[-1]
        out["retrain wall s"] = (d.get("durations") or {}).get("retrain wall s")
        out["retrain decision"] = f"{d.get('decision')}: {d.get('reason')}"
        out["rollout"] = (d.get("rollout") or {}).get("status")
    return out
