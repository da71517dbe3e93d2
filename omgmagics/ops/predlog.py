"""The prediction log and the feedback (core layer): the contract with serving (phase 4).

Serving appends one JSON object per prediction to ``<project>/monitoring/predictions/YYYY-MM-DD.jsonl``::

    {"request_id": "...", "time": "2026-01-31T12:00:00.123Z", "env": "production",
     "model_version": "3", "latency_ms": 4.2, "status": "ok" | "error",
     "inputs": {"feature_a": 39, "feature b": "north", ...}, "prediction": "yes", "score": 0.71,
     "error": null}

``prediction`` is the predicted class (classification) or value (regression); ``score`` is
P(positive class) for a binary model and null otherwise. A multiclass record may add
``"probabilities": {"class_a": 0.1, "class_b": 0.7, ...}``: the live metric then also works for the
metrics that need probabilities (roc_auc one-vs-rest, average_precision, log_loss).

Ground truth arrives later in ``<project>/monitoring/feedback.jsonl`` (or ``.parquet`` / ``.csv``) as
``{"request_id", "label", "time"}`` and is joined by ``request_id``.

Readers here never fail on a damaged log: a line that is not a JSON object or has no valid time is
skipped, a file that cannot be read is skipped, and each is reported (file, count, line numbers), so
nothing else is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

META = ["request_id", "time", "env", "model_version", "latency_ms", "status", "prediction", "score",
        "error", "probabilities"]
DAY_FILE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\.jsonl$")


BATCH_RECORDS = 50_000  # log records parsed into one DataFrame at a time by the streaming readers


def log_dir(project: Any, settings: dict[str, Any] | None = None) -> Path:
    """The prediction-log folder: `settings` ``predictions`` when given, else the project's
    (``monitoring.predictions`` of omg.yaml)."""
    rel = (settings or {}).get("predictions")
    return project.resolve(rel) if rel else project.predictions_dir


def feedback_path(project: Any, settings: dict[str, Any] | None = None) -> Path | None:
    """The configured feedback file, else the first of feedback.jsonl / .parquet / .csv that exists."""
    rel = (settings or {}).get("feedback")
    if rel:
        return project.resolve(rel)
    for name in ("feedback.jsonl", "feedback.parquet", "feedback.csv"):
        path = Path(project.monitoring_dir) / name
        if path.is_file():
            return path
    return None


@dataclass
class Problems:
    """Damaged parts skipped while reading, reported to the user."""

    items: list[str] = field(default_factory=list)
    skipped_lines: int = 0
    skipped_files: int = 0

    def add_lines(self, path: Path, reasons: dict[str, list[int]], total: int) -> None:
        n = sum(len(v) for v in reasons.values())
        self.skipped_lines += n
        detail = "; ".join(f"{why}: line{'s' if len(lines) > 1 else ''} "
                           f"{', '.join(map(str, lines[:5]))}{' ...' if len(lines) > 5 else ''}"
                           for why, lines in reasons.items())
        if n == total:
            self.skipped_files += 1
            self.items.append(f"{path.name}: skipped, none of its {total} line(s) is a valid record "
                              f"({detail}).")
        else:
            self.items.append(f"{path.name}: {n} of {total} line(s) skipped ({detail}).")

    def add_file(self, path: Path, why: str) -> None:
        self.skipped_files += 1
        self.items.append(f"{path.name}: skipped, {why}.")


def day_files(folder: Path, start: dt.datetime | None = None, end: dt.datetime | None = None,
              problems: Problems | None = None) -> list[tuple[dt.date, Path]]:
    """Log files by day, oldest first, limited to days that can hold records of ``[start, end)``."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        m = DAY_FILE.match(path.name)
        if not m:
            if path.is_file() and not path.name.startswith(".") and problems is not None:
                problems.add_file(path, "its name is not YYYY-MM-DD.jsonl")
            continue
        try:
            day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            if problems is not None:
                problems.add_file(path, "its name is not a valid date")
            continue
        # a record may sit in the file of the day before or after its time (clock skew, UTC rollover)
        if start is not None and day < start.date() - dt.timedelta(days=1):
            continue
        if end is not None and day > end.date() + dt.timedelta(days=1):
            continue
        out.append((day, path))
    return sorted(out)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def envs(settings: dict[str, Any] | None) -> set[str] | None:
    """The monitored environments (``monitoring.env``), or None for all."""
    env = (settings or {}).get("env")
    if env is None:
        return None
    return {env} if isinstance(env, str) else set(env)


def iter_json_lines(path: Path, problems: Problems, check: Any,
                    batch_size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """The valid records of a JSON-lines file, in lists of at most `batch_size` (all in one list when
    None), read line by line so memory holds one batch, never the file.

    ``check(record)`` returns why a JSON object is not a valid record (a reason such as ``"no valid
    time"``), ``None`` to keep it (it may fill in parsed fields) or ``False`` to pass over it silently.
    Damaged lines (not JSON, not an object, rejected by `check`) are counted by reason with their line
    numbers and reported in `problems` once the file is read; a file that cannot be read is reported
    as skipped. Serves both the prediction log and the feedback file.
    """
    reasons: dict[str, list[int]] = {}
    total = 0
    batch: list[dict[str, Any]] = []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        problems.add_file(path, f"it cannot be read ({exc.strerror or exc})")
        return
    with fh:
        try:
            for no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                total += 1
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    reasons.setdefault("not JSON", []).append(no)
                    continue
                if not isinstance(rec, dict):
                    reasons.setdefault("not a JSON object", []).append(no)
                    continue
                why = check(rec)
                if why is False:
                    continue
                if why:
                    reasons.setdefault(why, []).append(no)
                    continue
                batch.append(rec)
                if batch_size is not None and len(batch) >= batch_size:
                    yield batch
                    batch = []
        except OSError as exc:
            problems.add_file(path, f"it cannot be read past line {total} ({exc.strerror or exc})")
    if batch:
        yield batch
    if reasons:
        problems.add_lines(path, reasons, total)


def _log_check(only: set[str] | None) -> Any:
    def check(rec: dict[str, Any]) -> str | bool | None:
        t = _parse_time(rec.get("time"))
        if t is None:
            return "no valid time"
        if not isinstance(rec.get("inputs", {}), dict):
            return "inputs is not an object"
        if only is not None and rec.get("env") not in only:
            return False
        rec["time"] = t
        return None

    return check


def read_day(path: Path, problems: Problems, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Valid records of one log file (of the environments `only`, if given); damaged lines are
    reported in `problems`."""
    return [rec for batch in iter_json_lines(path, problems, _log_check(only)) for rec in batch]


def iter_records(project: Any, start: dt.datetime | None = None, end: dt.datetime | None = None,
                 settings: dict[str, Any] | None = None, problems: Problems | None = None,
                 batch_rows: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Valid log records in ``[start, end)``, file by file (in lists of at most `batch_rows`)."""
    problems = problems if problems is not None else Problems()
    check = _log_check(envs(settings))
    for _, path in day_files(log_dir(project, settings), start, end, problems):
        for batch in iter_json_lines(path, problems, check, batch_rows):
            if start is not None or end is not None:
                batch = [r for r in batch if (start is None or r["time"] >= start)
                         and (end is None or r["time"] < end)]
            if batch:
                yield batch


def records_frame(records: list[dict[str, Any]]) -> Any:
    """Log records as a DataFrame: the log fields, then one column per input feature."""
    import pandas as pd

    if not records:
        return pd.DataFrame(columns=META)
    meta = pd.DataFrame({k: [r.get(k) for r in records] for k in META})
    meta["time"] = pd.to_datetime(meta["time"], utc=True)
    meta["latency_ms"] = pd.to_numeric(meta["latency_ms"], errors="coerce")
    meta["score"] = pd.to_numeric(meta["score"], errors="coerce")
    meta["status"] = meta["status"].fillna("ok").astype(str)
    inputs = pd.DataFrame.from_records([r.get("inputs") or {} for r in records])
    clash = [c for c in inputs.columns if c in META]
    inputs = inputs.rename(columns={c: f"inputs.{c}" for c in clash})
    for c in inputs.columns:
        if inputs[c].dtype == object:
            converted = pd.to_numeric(inputs[c], errors="coerce")
            # keep a column numeric only when every present value is a number
            if converted.notna().sum() == inputs[c].notna().sum():
                inputs[c] = converted
    return pd.concat([meta, inputs], axis=1)


def iter_log(project: Any, start: dt.datetime | None = None, end: dt.datetime | None = None,
             settings: dict[str, Any] | None = None, problems: Problems | None = None,
             batch_rows: int | None = None) -> Iterator[Any]:
    """One DataFrame per day file overlapping ``[start, end)`` (or per `batch_rows` records of it),
    rows filtered to that range."""
    for records in iter_records(project, start, end, settings, problems, batch_rows):
        yield records_frame(records)


def read_log(project: Any, start: dt.datetime | None = None, end: dt.datetime | None = None,
             settings: dict[str, Any] | None = None) -> tuple[Any, Problems]:
    """The whole log in ``[start, end)`` as one DataFrame, and the damaged parts skipped."""
    import pandas as pd

    problems = Problems()
    frames = list(iter_log(project, start, end, settings, problems))
    if not frames:
        return records_frame([]), problems
    return pd.concat(frames, ignore_index=True), problems


def read_feedback(path: Path | None, problems: Problems | None = None) -> Any:
    """Ground truth as a DataFrame (request_id, label, label_time, then one column per attribute);
    the latest label of a request wins.

    A record may carry ``attributes``: facts about the case that arrive with the ground truth but
    are no model input (say, the sensitive attributes a fairness review needs); a feedback table's
    columns beyond request_id, label and time are attributes. A retrain trains on them with the
    inputs, so its data has every column of the schema."""
    import pandas as pd

    empty = pd.DataFrame({"request_id": pd.Series(dtype=object), "label": pd.Series(dtype=object),
                          "label_time": pd.Series(dtype="datetime64[ns, UTC]")})
    if path is None or not Path(path).is_file():
        return empty
    problems = problems if problems is not None else Problems()
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        def check(rec: dict[str, Any]) -> str | None:
            return None if "request_id" in rec and "label" in rec else "no request_id or label"

        rows = [rec for batch in iter_json_lines(path, problems, check) for rec in batch]
        df = None
        if rows:
            df = pd.DataFrame(rows, columns=["request_id", "label", "time"])
            attrs = pd.DataFrame.from_records([r.get("attributes") if isinstance(r.get("attributes"), dict)
                                               else {} for r in rows])
            attrs = attrs[[c for c in attrs.columns if c not in df.columns]]
            df = pd.concat([df, attrs], axis=1)
    else:
        from ..io import read_table

        try:
            df = read_table(path)
        except DataError as exc:
            problems.add_file(path, str(exc))
            return empty
        missing = [c for c in ("request_id", "label") if c not in df.columns]
        if missing:
            raise DataError(f"The feedback file {path} lacks the column(s) {', '.join(missing)}. "
                            "It needs request_id, label and (optionally) time.")
        if "time" not in df.columns:
            df["time"] = None
    if df is None or df.empty:
        return empty
    df = df.rename(columns={"time": "label_time"})
    df["label_time"] = pd.to_datetime(df["label_time"], utc=True, errors="coerce", format="ISO8601")
    df["request_id"] = df["request_id"].astype(str)
    df = df.sort_values("label_time", kind="stable", na_position="first")
    return df.drop_duplicates("request_id", keep="last").reset_index(drop=True)


def encode_labels(labels: Any, positive_label: Any) -> Any:
    """1 for the positive class, 0 otherwise (text compared, so 1, "1" and 1.0 agree)."""
    import numpy as np
    import pandas as pd

    def text(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return str(int(v))
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    s = pd.Series(labels)
    pos = text(positive_label if positive_label is not None else 1)
    return s.map(lambda v: int(text(v) == pos) if pd.notna(v) else np.nan)


def append_records(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write records into their day files (merged with what is there, each file replaced atomically).

    Used by the traffic simulation; a server appends lines itself.
    """
    from ..atomic import write_text

    by_day: dict[str, list[str]] = {}
    for rec in records:
        t = rec["time"]
        day = t[:10] if isinstance(t, str) else t.strftime("%Y-%m-%d")
        by_day.setdefault(day, []).append(json.dumps(rec, default=_json_default))
    written = []
    for day, lines in sorted(by_day.items()):
        path = folder / f"{day}.jsonl"
        old = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        write_text(path, old + "\n".join(lines) + "\n")
        written.append(path)
    return written


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = ["read_log", "iter_log", "iter_records", "iter_json_lines", "read_feedback", "encode_labels", "append_records", "Problems",
           "log_dir", "feedback_path", "iso"]


class LogSource:
    """The prediction log as a drift :class:`~omgmagics.io.sources.Source` (batches of at most
    `batch_rows` records of one day file).

    :meth:`scan` reads the log once for its columns, kinds, time range and damaged parts; batches then
    read only the day files of the requested time range.
    """

    def __init__(self, project: Any, settings: dict[str, Any] | None = None,
                 batch_rows: int = BATCH_RECORDS):
        self.project = project
        self.settings = settings
        self.batch_rows = batch_rows
        self.folder = log_dir(project, settings)
        self.name = f"prediction log ({self.folder.relative_to(project.root) if self.folder.is_relative_to(project.root) else self.folder})"
        self.problems = Problems()
        self.kinds: dict[str, str] = {}
        self.rows = 0
        self.first: dt.datetime | None = None
        self.last: dt.datetime | None = None
        self._scan()

    @property
    def columns(self) -> list[str]:
        return list(self.kinds)

    def _scan(self) -> None:
        from ..io.sources import _pandas_kind

        kinds: dict[str, str] = {}
        for df in iter_log(self.project, settings=self.settings, problems=self.problems,
                           batch_rows=self.batch_rows):
            self.rows += len(df)
            lo, hi = df["time"].min().to_pydatetime(), df["time"].max().to_pydatetime()
            self.first = lo if self.first is None else min(self.first, lo)
            self.last = hi if self.last is None else max(self.last, hi)
            for c in df.columns:
                if c == "time":
                    kinds[c] = "time"
                    continue
                k = _pandas_kind(df[c]) if df[c].notna().any() else None
                if k is None:
                    kinds.setdefault(c, "categorical")
                elif kinds.get(c) in (None, k) or df[c].isna().all():
                    kinds[c] = k
                else:
                    kinds[c] = "categorical"  # numbers in one file, text in another
        self.kinds = kinds
        if self.rows == 0:
            where = self.folder.relative_to(self.project.root) if self.folder.is_relative_to(
                self.project.root) else self.folder
            extra = (" Skipped: " + " ".join(self.problems.items)) if self.problems.items else ""
            env = envs(self.settings)
            extra = (f" of env {', '.join(sorted(env))} (monitoring.env)" if env else "") + extra
            raise DataError(f"The prediction log {where}/ has no records{extra}. Serve the model "
                            "(`omg deploy serve`) or replay traffic (`omg ops simulate`) first.")

    def batches(self, columns: list[str], time_column: str | None = None,
                start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Any]:
        from ..io.sources import PandasBatch
        from .windows import from_ns

        cols = list(dict.fromkeys(columns + ([time_column] if time_column else [])))
        start = from_ns(start_ns) if start_ns is not None else None
        end = from_ns(end_ns) if end_ns is not None else None
        quiet = Problems()  # damaged parts were reported by the scan already
        for df in iter_log(self.project, start, end, self.settings, quiet, self.batch_rows):
            yield PandasBatch(df.reindex(columns=cols))
