"""Replayed traffic for the closed-loop demo (core layer): ``omg ops simulate``.

Held-out rows are replayed as requests over SIMULATED days (``per_day`` requests a day, by default
the rows spread over the days but at least ``MIN_PER_DAY``; when that needs more rows than there are,
rows are sampled with replacement and the report says how often each is replayed): each day's rows get simulated timestamps,
are scored in-process by the champion (through the production bundle phase 4 serves, when it packages
the champion: the server's own handler, feature pipeline and model; else the registered model and its
feature pipeline) and are written to the prediction log in the serving contract, with
their true labels in ``monitoring/feedback.jsonl`` arriving ``label_delay`` after each request (labels
not yet due at the end of the simulated period are held back), with the row's other columns that
are no model input (the sensitive attributes) as the feedback's ``attributes``; a multiclass model's
per-class probabilities go into each record's ``probabilities``. A shift (:func:`parse_shift`) can be
injected from a given day on; shifted values stay inside the project schema's min/max (clipped, and
counted in the report). ``latency_ms`` is the measured in-process scoring time per row (no network). Everything the
simulation writes is marked ``env: "simulation"`` and described in ``monitoring/simulation.json``;
a later run continues where the previous one ended.

The reference for drift (``monitoring/reference.parquet``) is written from the training rows with the
same model's outputs, so prediction drift has a baseline: ``score`` (P(positive), binary models) and
``prediction`` (the class as text, or a regression's value).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import clock
from ..errors import DataError, UsageError
from ..io import journal
from .predlog import append_records, iso, log_dir

_QUOTED = r'"((?:[^"\\]|\\.)*)"|' + r"'((?:[^'\\]|\\.)*)'|`([^`]*)`"
SHIFT_ITEM = re.compile(r"\s*(?:" + _QUOTED + r"|([\w.]+))\s*([*+=-])\s*(" + _QUOTED.replace("(", "(?:")
                        .replace("(?:?:", "(?:") + r"|[^,]*?)\s*(?:,|$)")
SHIFT_SYNTAX = ("COLUMN*FACTOR, COLUMN+DELTA, COLUMN-DELTA or COLUMN=VALUE, comma-separated; a column "
                "name with anything but letters, digits, '_' and '.' (a space, a dash, brackets) goes in "
                "quotes: 'unit price (EUR)'*1.2 (or \"...\" or `...`)")
SHIFT_EXAMPLE = "--shift \"amount*1.5,'unit price (EUR)'+10,region=north\""
SIMULATION = "simulation.json"
MIN_PER_DAY = 30  # requests per simulated day by default at least: what a daily drift check judges


def _unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'`":
        t = t[1:-1]
        if text.strip()[0] != "`":
            t = re.sub(r"\\(.)", r"\1", t)
    return t


def parse_shift(text: str | None) -> list[tuple[str, str, Any]]:
    """``"amount*1.5, 'unit price (EUR)'+10, region=north"`` -> [(column, op, value), ...].

    A column name made of letters (any script), digits, ``_`` and ``.`` is written as is; any other
    name goes in single, double or back quotes. A ``=`` value may be quoted too (to hold a comma).
    """
    out: list[tuple[str, str, Any]] = []
    text = text or ""
    pos = 0
    while pos < len(text):
        if not text[pos:].strip(" ,"):
            break
        m = SHIFT_ITEM.match(text, pos)
        if not m or m.end() == pos:
            part = text[pos:].split(",")[0].strip()
            raise UsageError(f"Shift '{part}' is not {SHIFT_SYNTAX}. Example: {SHIFT_EXAMPLE}.")
        dq, sq, bq, bare, op, value = m.groups()
        col = bare if bare is not None else (bq if bq is not None else
                                             re.sub(r"\\(.)", r"\1", dq if dq is not None else sq))
        part = m.group(0).strip().rstrip(",").strip()
        pos = m.end()
        if not value.strip():
            raise UsageError(f"Shift '{part}' has no value after '{op}'. Example: {SHIFT_EXAMPLE}.")
        if op == "=":
            value = _unquote(value)
        else:
            try:
                value = float(_unquote(value))
            except ValueError:
                raise UsageError(f"Shift '{part}': {value.strip()!r} is not a number.") from None
            if not np.isfinite(value):
                raise UsageError(f"Shift '{part}': {value} is not a finite number.")
        out.append((col, op, value))
    return out


def schema_bounds(project: Any) -> dict[str, dict[str, Any]]:
    """Per column the ``min`` / ``max`` / ``allowed`` of the project's schema (``data.schema``,
    default ``schema.yaml``), or {} when there is none or it cannot be read."""
    path = project.resolve(project.config.get_path("data.schema", "schema.yaml") or "schema.yaml")
    if not path.is_file():
        return {}
    try:
        from ..dataprep.schema import load_schema

        cols = load_schema(path)["columns"]
    except Exception:  # noqa: BLE001 - a broken schema is phase 2's to report; nothing is bounded
        return {}
    return {c: {k: r[k] for k in ("min", "max", "allowed") if k in r} for c, r in cols.items()}


def apply_shift(df: Any, shift: list[tuple[str, str, Any]], bounds: dict[str, dict[str, Any]] | None = None,
                clipped: dict[str, int] | None = None) -> Any:
    """`df` with the shift applied. `bounds` (see :func:`schema_bounds`) keep the values inside the
    schema: shifted numbers are clipped to a column's min/max (counted per column in `clipped`),
    and a ``=`` value outside its ``allowed`` list is refused."""
    import pandas as pd

    df = df.copy()
    bounds = bounds or {}
    for col, op, value in shift:
        if col not in df.columns:
            from ..errors import did_you_mean

            raise UsageError(f"Shift column '{col}' is not in the data.{did_you_mean(col, df.columns)}"
                             " A name with spaces or other signs goes in quotes: 'a name'*2.")
        rule = bounds.get(col, {})
        numeric = pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])
        if op == "=":
            allowed = rule.get("allowed")
            if numeric:
                try:
                    value = float(value)
                except ValueError:
                    raise UsageError(f"Shift '{col}={value}': '{col}' is numeric ({df[col].dtype}), "
                                     f"and {value!r} is not a number.") from None
                if pd.api.types.is_integer_dtype(df[col]) and float(value).is_integer():
                    value = int(value)
            if allowed is not None and str(value) not in {str(a) for a in allowed}:
                raise UsageError(f"Shift '{col}={value}': {value!r} is not an allowed value of '{col}' "
                                 f"in the schema ({', '.join(map(str, allowed[:10]))}"
                                 f"{' ...' if len(allowed) > 10 else ''}). Choose one of them.")
            out = pd.Series([value] * len(df), index=df.index)
        else:
            if not numeric:
                raise UsageError(f"Shift '{col}{op}{value:g}' needs a numeric column; '{col}' is "
                                 f"{df[col].dtype}.")
            out = df[col] * value if op == "*" else df[col] + (value if op == "+" else -value)
        if numeric and ("min" in rule or "max" in rule):
            lo, hi = rule.get("min"), rule.get("max")
            before = out.copy()
            out = out.clip(lower=lo, upper=hi)
            n = int((before.notna() & (before != out)).sum())
            if clipped is not None and n:
                clipped[col] = clipped.get(col, 0) + n
        if op != "=" and pd.api.types.is_integer_dtype(df[col]):  # a whole-number field stays one
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


def _predict(scorer: Any, frame: Any) -> tuple[Any, list[Any], list[Any] | None]:
    """(scores, predictions, per-class probabilities as ``{class: p}`` per row or None)."""
    full = getattr(scorer, "predict_full", None)
    if full is None:
        scores, preds = scorer.predict(frame)
        return scores, list(preds), None
    scores, preds, proba, classes = full(frame)
    if proba is None:
        return scores, list(preds), None
    if isinstance(proba, np.ndarray):
        names = [str(_plain(c)) for c in classes]
        proba = [{c: round(float(v), 6) for c, v in zip(names, row, strict=True)} for row in proba]
    return scores, list(preds), list(proba)


def _score(scorer: Any, frame: Any) -> tuple[Any, list[Any], list[str | None], list[Any] | None]:
    """Scores, predictions (and per-class probabilities) of a day; rows the model cannot score
    become error records (with the message), as the server answers them, instead of stopping the
    replay."""
    try:
        scores, preds, probs = _predict(scorer, frame)
        return np.asarray(scores, dtype=np.float64), preds, [None] * len(frame), probs
    except Exception:  # noqa: BLE001 - find the failing rows one by one
        n = len(frame)
        scores, preds, failed, probs = np.full(n, np.nan), [None] * n, [None] * n, [None] * n
        for i in range(n):
            try:
                s, p, pr = _predict(scorer, frame.iloc[[i]])
                scores[i], preds[i] = s[0], p[0]
                probs[i] = pr[0] if pr is not None else None
            except Exception as exc:  # noqa: BLE001 - logged as the request's error
                failed[i] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return scores, preds, failed, probs if any(p is not None for p in probs) else None


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
    if per_day is not None and per_day < 1:
        raise UsageError(f"--per-day must be at least 1, got {per_day}.")
    if len(rows) == 0:
        raise DataError(f"No rows to replay in {source}.")
    given = per_day is not None
    per_day = per_day or max(MIN_PER_DAY, len(rows) // days)
    need = per_day * days
    replace = need > len(rows)
    order = rng.choice(len(rows), size=need, replace=replace)
    bounds = schema_bounds(project)
    clipped: dict[str, int] = {}
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
            day = apply_shift(day, steps, bounds, clipped)
        tic = time.perf_counter()
        scores, preds, failed, probs = _score(scorer, day[inputs])
        ms = (time.perf_counter() - tic) * 1000 / max(len(day), 1)
        offsets = np.sort(rng.uniform(0, 86400, len(day)))
        errors = (rng.random(len(day)) < error_rate) | np.array([f is not None for f in failed])
        labeled = rng.random(len(day)) < label_share
        for i in range(len(day)):
            t = t0 + dt.timedelta(days=d, seconds=float(offsets[i]))
            rid = f"sim-{rng.integers(0, 2**63):016x}"
            ok = not errors[i]
            rec = {
                "request_id": rid, "time": iso(t), "env": env,
                "model_version": scorer.version, "latency_ms": round(ms * float(rng.uniform(0.8, 1.25)), 4),
                "status": "ok" if ok else "error",
                "inputs": {c: _plain(day.at[i, c]) for c in inputs},
                "prediction": _plain(preds[i]) if ok else None,
                "score": _plain(scores[i]) if ok else None,
                "error": None if ok else (failed[i] or "simulated error")}
            if ok and probs is not None and probs[i] is not None:
                rec["probabilities"] = probs[i]
            records.append(rec)
            due = t + delay.timedelta
            if ok and labeled[i] and due <= end:
                fb = {"request_id": rid, "label": _plain(day.at[i, target]), "time": iso(due)}
                if attributes:
                    fb["attributes"] = {c: _plain(day.at[i, c]) for c in attributes}
                feedback.append(fb)
        shown = scores if np.isfinite(scores).any() else pd.to_numeric(pd.Series(preds), errors="coerce")
        per.append({"day": d + 1, "date": (t0 + dt.timedelta(days=d)).date().isoformat(),
                    "requests": len(day), "shifted": shifted,
                    ("mean score" if np.isfinite(scores).any() else "mean prediction"):
                        float(np.nanmean(shown)) if np.isfinite(shown).any() else np.nan})
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
    info = {"simulated": True, "written": clock.stamp(), "start": iso(t0), "end": iso(end), "days": days,
            "requests per day": per_day, "rows": source, "distinct rows": len(rows),
            "sampled with replacement": replace,
            "model version": scorer.version, "served by": served_by, "shift": shift or None, "shift from day": shift_from,
            "shift start": iso(shift_start) if shift_start else None, "label delay": str(delay),
            "label share": label_share, "error rate": error_rate, "seed": seed, "env": env,
            "clipped to the schema": clipped or None,
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
                  *([_reuse_note(len(rows), days, per_day, given)] if replace else []),
                  *([f"The shift stays inside the schema: {', '.join(f'{n:,} value(s) of {c!r}' for c, n in clipped.items())} "
                     "were clipped to its min/max."] if clipped else [])],
        artifacts={"log": str(folder), "feedback": str(fb_path), "reference": str(ref_path),
                   "simulation": str(Path(project.monitoring_dir) / SIMULATION)},
        data=info, value=info)
    return report


def _reuse_note(rows: int, days: int, per_day: int, given: bool) -> str:
    need = per_day * days
    why = "" if given else (f" (--per-day defaults to at least {MIN_PER_DAY}, so that a daily drift "
                            "check has rows to judge)")
    return (f"{rows:,} held-out row(s) for {days} day(s) x {per_day:,} requests{why}: rows were "
            f"sampled with replacement, each replayed about {need / rows:.1f} times. Drift tests count "
            f"at most {rows:,} independent rows per window (repeats are no new evidence).")


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
    scores = np.asarray(scores, dtype=np.float64)
    if np.isfinite(scores).any():  # P(positive) of a binary model; none for multiclass or regression
        ref["score"] = scores
    from .live import class_mode

    regression = class_mode(project) == "regression"
    # the prediction drift's baseline: values of a regression, classes (as text) otherwise
    ref["prediction"] = [float(p) for p in preds] if regression else [str(_plain(p)) for p in preds]
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
