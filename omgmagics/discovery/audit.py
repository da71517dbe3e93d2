"""The data audit (core layer): checklist + fg-data-profiling HTML report + ``data_audit.json``.

The checklist (:mod:`.checks`) always runs on every row. The HTML profile is fg-data-profiling's
``ProfileReport``: its full mode up to :data:`PROFILE_MINIMAL_ROWS` rows, its minimal mode above,
and above :data:`PROFILE_MAX_ROWS` rows (or when a fraction is asked for) on a seeded sample that the
report states. Nothing is written until everything is computed, and both files are written
atomically, so bad input leaves no partial report.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .. import clock
from ..atomic import sha256_file, write_json, write_text
from ..errors import DataError, UsageError
from ..io import input_path
from ..results import Report, jsonable
from . import checklist, checks
from .brief import Brief
from .tables import string_columns

# The profile's full mode draws correlations and a plot per pair of numeric columns: about 30 s even
# on a thousand rows of the demo data on 2 cores. Minimal mode keeps the audit interactive.
PROFILE_MINIMAL_ROWS = 500
PROFILE_FULL_MAX_COLUMNS = 40  # full mode's correlations and interactions grow with columns squared
PROFILE_MAX_COLUMNS = 60  # minimal mode costs about 0.2 s a column; the checklist sees every column
PROFILE_MAX_ROWS = 100_000      # minimal profile of 1M x 30: ~60 s CPU; of 100k: ~20 s (plots dominate)
AUDIT_BATCH_ROWS = 1 << 16      # rows per batch when a parquet table is audited in batches
CATEGORY_MAX_DISTINCT = 50      # text columns with at most this many values are profiled as categories
STATUS_ORDER = {"fail": 0, "warn": 1, "pass": 2}


def source_info(declared: str | None, root: str | os.PathLike, *, ref: str | None = None,
                path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Describe where an audited table came from, for the checklist's "sources" item.

    Parameters
    ----------
    declared : str or None
        ``data.source`` of ``omg.yaml`` ("demo" or a path).
    root : path-like
        The project folder (relative paths are resolved from it).
    ref : str, optional
        The notebook DataFrame variable the user named, if any.
    path : path-like, optional
        The file the user named, if any.
    """
    from ..datasets import ADULT_ATTRIBUTION

    if path is not None:
        p = Path(path).resolve()
        return {"kind": "file", "location": str(p), "sha256": sha256_file(p) if p.is_file() else None,
                "bytes": p.stat().st_size if p.is_file() else None}
    if declared in (None, "demo"):
        demo = {"kind": "demo", "location": ADULT_ATTRIBUTION}
        return {"kind": "dataframe", "location": ref, "declared": "demo: " + ADULT_ATTRIBUTION} if ref \
            else demo
    p = Path(declared)
    p = p if p.is_absolute() else Path(root) / p
    if ref:
        return {"kind": "dataframe", "location": ref, "declared": str(p) if p.exists() else None}
    return source_info(None, root, path=p)


def read_lineage(raw_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Lineage records written by data collection under ``data/raw`` (``lineage.json``: a mapping
    ``{"sources": {name: record}}``, or a list of records)."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        return []
    records: list[dict[str, Any]] = []
    for path in sorted(raw.glob("*lineage*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data = data.get("sources", data.get("records", []))
        if isinstance(data, dict):
            data = [{"name": k, **v} for k, v in data.items() if isinstance(v, dict)]
        records += [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    return records


def load_input(project: Any, ref: str | None = None, table: Callable[..., Any] | None = None,
               namespace: dict[str, Any] | None = None, batched: bool = False
               ) -> tuple[Any, dict[str, Any], str]:
    """The table a phase 1 step works on, where it came from, and how to name it in messages.

    Parameters
    ----------
    project : omgmagics.project.Project
    ref : str, optional
        A notebook DataFrame variable or a file path; default: the project's ``data.source``.
    table : callable, optional
        ``table(ref, base)`` that loads `ref` (the command layer's ``Context.table``).
    namespace : dict, optional
        The notebook namespace, to tell variables from paths.
    batched : bool
        Return a parquet file or folder (named, or the project's unsampled ``data.source``) as an
        :class:`omgmagics.io.sources.ParquetSource` to read in batches, not as a DataFrame.
    """
    declared = project.config.get_path("data.source")
    if batched:
        from ..io import declared_parquet, parquet_path
        from ..io.sources import ParquetSource
    if ref is None:
        path = declared_parquet(project) if batched else None
        if path is not None:
            return (ParquetSource(path, AUDIT_BATCH_ROWS), source_info(declared, project.root),
                    "the project data")
        return project.load_source_data(), source_info(declared, project.root), "the project data"
    if batched and not (namespace is not None and ref.isidentifier() and ref in namespace):
        path = parquet_path(project, ref)
        if path is not None:
            return (ParquetSource(path, AUDIT_BATCH_ROWS),
                    source_info(declared, project.root, path=path), str(ref))
    df = table(ref, project.root) if table is not None else None
    if namespace is not None and ref.isidentifier() and ref in namespace:
        return df, source_info(declared, project.root, ref=ref), f"notebook DataFrame '{ref}'"
    path = input_path(ref, project.root)
    if df is None:
        from ..io import read_table

        df = read_table(path)
    return df, source_info(declared, project.root, path=path), str(ref)


def _read_whole(src: Any) -> pd.DataFrame:
    """A table small enough for one batch, as the DataFrame ``pd.read_parquet`` would give."""
    frames = list(src.frames())
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    for col, dtype in src.dtypes().items():  # categories of batches put together: one again
        if isinstance(dtype, pd.CategoricalDtype) and not isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype("category")
    return df


def _profile_sample(df: pd.DataFrame, total: int, sample_frac: float | None, seed: int
                    ) -> tuple[pd.DataFrame, str]:
    """The profiled rows of a table read in batches: its seeded row sample `df` (or a share of it)."""
    if sample_frac is not None:
        if not 0 < sample_frac <= 1:
            raise UsageError(f"--sample-frac must be in (0, 1], got {sample_frac}.")
        k = min(max(2, round(total * sample_frac)), len(df))
        frame = df if k >= len(df) else df.sample(n=k, random_state=seed).sort_index()
        return frame, (f"a seeded random sample of {k:,} of {total:,} rows ({sample_frac:.0%} asked; "
                       f"at most {len(df):,} when the table is read in batches)")
    return df, (f"a seeded random sample of {len(df):,} of {total:,} rows (the table is read in "
                f"batches; the sample also gives outliers and single-feature scores, every other "
                "checklist count uses every row)")


def _profile_frame(df: pd.DataFrame, sample_frac: float | None, max_rows: int, seed: int
                   ) -> tuple[pd.DataFrame, str]:
    n = len(df)
    if sample_frac is not None:
        if not 0 < sample_frac <= 1:
            raise UsageError(f"--sample-frac must be in (0, 1], got {sample_frac}.")
        k = max(2, round(n * sample_frac))
        note = f"a seeded random sample of {k:,} of {n:,} rows ({sample_frac:.0%}, as asked)"
    elif max_rows and n > max_rows:
        k = max_rows
        note = (f"a seeded random sample of {k:,} of {n:,} rows (above {max_rows:,} rows the profile "
                "samples; the checklist uses every row)")
    else:
        return df, f"all {n:,} rows"
    return df.sample(n=min(k, n), random_state=seed).sort_index(), note


def profile_html(df: pd.DataFrame, *, title: str, description: str, minimal: bool) -> str:
    """fg-data-profiling's HTML report of `df` (its own progress bars silenced)."""
    try:
        from data_profiling import ProfileReport
    except ImportError:  # pragma: no cover - part of the kit's [data] extra
        raise DataError("The audit's profile needs fg-data-profiling: pip install 'omgmagics[data]' "
                        "(or run with --no-profile for the checklist alone).") from None
    frame = df.copy(deep=False)
    # The profiler's templates print column names and values without escaping them (a column
    # named <script> ran as a script): the profiled copy carries escaped text. Escaping is
    # one-to-one, so counts and distinct values are unchanged.
    for col in frame.columns:
        s = frame[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s) or \
                isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object).map(lambda v: html.escape(v) if isinstance(v, str) else v)
            frame[col] = s
        if s.dtype == object and s.nunique(dropna=True) <= CATEGORY_MAX_DISTINCT:
            frame[col] = s.astype("category")  # profiled as categories, not as free text
    frame.columns = [html.escape(str(c)) for c in frame.columns]
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = ProfileReport(frame, minimal=minimal, title=title, progress_bar=False,
                               dataset={"description": description, "creator": "omg data audit"})
        return report.to_html()


def checklist_frame(items: list[checks.Item]) -> pd.DataFrame:
    return pd.DataFrame([{"section": i.section, "check": i.check, "status": i.status,
                          "evidence": i.evidence} for i in items])


def _checklist_section(items: list[checks.Item], note: str, verdict: str) -> str:
    colours = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}
    rows = "".join(
        f"<tr><td>{html.escape(i.section)}</td><td>{html.escape(i.check)}</td>"
        f'<td style="color:{colours[i.status]};font-weight:bold">{i.status}</td>'
        f"<td>{html.escape(i.evidence)}<br><small style=\"color:#57606a\">rule: "
        f"{html.escape(i.rule)}</small></td></tr>" for i in items)
    return ('<div class="container-fluid" id="omg-audit-checklist" style="padding:1em 2em">'
            f"<h2>Audit checklist: {html.escape(verdict)}</h2>"
            f'<p style="color:#57606a">{html.escape(note)}</p>'
            '<table class="table table-sm table-striped"><thead><tr><th>section</th><th>check</th>'
            f"<th>status</th><th>evidence</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _inject(page: str, section: str) -> str:
    for marker in ("<div class=content>", '<div class="content">', "<body>"):
        if marker in page:
            return page.replace(marker, marker + section, 1)
    return section + page


def audit_data(df: pd.DataFrame, brief: Brief, *, html_path: str | os.PathLike | None,
               json_path: str | os.PathLike, source: dict[str, Any],
               lineage: list[dict[str, Any]] | None = None, sample_frac: float | None = None,
               profile_rows: int = PROFILE_MAX_ROWS, minimal_rows: int = PROFILE_MINIMAL_ROWS,
               what: str = "the data", step: Callable[[str], None] | None = None,
               progress: Callable[..., Any] | None = None) -> Report:
    """Audit `df` against `brief`: checklist, HTML profile, JSON record.

    Parameters
    ----------
    df : pandas.DataFrame or omgmagics.io.sources.Source
        A table larger than one batch of a Source (a parquet file or hive-partitioned folder) is
        read in batches (:mod:`.stream`): exact counts in one pass, distribution checks and the
        profile on a seeded sample of `profile_rows` rows.
    brief : Brief
    html_path : path-like or None
        Where to write the profile report with the checklist on top; None: no profile.
    json_path : path-like
        Where to write the checklist and column statistics (``reports/data_audit.json``).
    source : dict
        Where the table came from (:func:`source_info`).
    lineage : list of dict, optional
        Collection lineage records (:func:`read_lineage`).
    sample_frac : float, optional
        Profile a seeded sample of this share of rows (the checklist always uses every row).
    profile_rows : int
        Above this many rows the profile uses a seeded sample of this size (0: never sample).
    minimal_rows : int
        Above this many profiled rows the profile runs in minimal mode.
    step : callable, optional
        Called with the name of each step as it starts (progress reporting).
    progress : callable, optional
        ``progress(iterable, total=, desc=)`` (tqdm) for the pass over a table read in batches.

    Returns
    -------
    Report
        The checklist table (``value`` is that DataFrame), verdict, counts and files written.

    Raises
    ------
    DataError, ConfigError
        Before anything is written, when the data or the brief cannot be audited.
    """
    from ..io.sources import Source

    t0 = time.perf_counter()
    tick = step or (lambda name: None)
    sc = None
    if isinstance(df, Source):
        if df.rows <= getattr(df, "batch_rows", 0):
            df = _read_whole(df)  # one batch: the in-memory audit, unchanged
        else:
            from .stream import scan

            sc = scan(df, brief, sample_rows=profile_rows or PROFILE_MAX_ROWS, seed=brief.seed,
                      progress=progress)
            df = sc.sample
    df = string_columns(df)
    n_rows = len(df) if sc is None else sc.rows
    tick("brief and input checks")
    target_facts = brief.check_data(df, what, stats=sc.target_stats(brief) if sc is not None else None)
    result = checklist.run_checklist(df, brief, target_facts, source=source, lineage=lineage, step=tick,
                                     scan=sc)
    items: list[checks.Item] = result["items"]
    counts = {s: sum(i.status == s for i in items) for s in ("pass", "warn", "fail")}
    verdict = "fail" if counts["fail"] else "warn" if counts["warn"] else "pass"
    t_checks = time.perf_counter() - t0
    profile: dict[str, Any] | None = None
    page = None
    if html_path is not None:
        tick("profile report (fg-data-profiling)")
        if sc is not None and sc.notes["sampled"]:
            frame, rows_note = _profile_sample(df, n_rows, sample_frac, brief.seed)
        else:
            frame, rows_note = _profile_frame(df, sample_frac, profile_rows, brief.seed)
        if frame.shape[1] > PROFILE_MAX_COLUMNS:
            keep = [c for c in frame.columns if str(c) == str(brief.target)]
            keep += [c for c in frame.columns if c not in keep][:PROFILE_MAX_COLUMNS - len(keep)]
            rows_note += (f"; its first {len(keep)} of {frame.shape[1]:,} columns (the checklist "
                          "covers them all)")
            frame = frame[keep]
        wide = frame.shape[1] > PROFILE_FULL_MAX_COLUMNS
        minimal = len(frame) > minimal_rows or wide
        mode = ("full mode" if not minimal else f"minimal mode (above {minimal_rows:,} rows)"
                if len(frame) > minimal_rows else
                f"minimal mode (above {PROFILE_FULL_MAX_COLUMNS} columns)")
        note = (f"Profile: fg-data-profiling, {mode}, on {rows_note}. Checklist: every row "
                f"({n_rows:,}), {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail.")
        t1 = time.perf_counter()
        page = profile_html(frame, title=f"Data audit: {brief.name}", description=note, minimal=minimal)
        page = _inject(page, _checklist_section(items, note, verdict))
        profile = {"path": str(html_path), "mode": "minimal" if minimal else "full",
                   "rows_profiled": len(frame), "rows_total": n_rows, "sampled": len(frame) < n_rows,
                   "note": note, "seconds": round(time.perf_counter() - t1, 2)}
    doc = {
        "kind": "omg.data_audit", "version": 1,
        "created": clock.stamp(),
        "project": brief.name,
        "data": {"rows": n_rows, "columns": df.shape[1], "features": len(result["details"]["features"]),
                 "memory_mb": round(float(df.memory_usage(deep=False).sum()) / 2**20
                                    * (n_rows / max(len(df), 1)), 1),
                 "read": "in memory" if sc is None else
                 f"in batches; sampled checks on a seeded sample of {len(df):,} rows",
                 "source": source, "lineage": lineage or []},
        "brief": {"task": brief.task, "target": brief.target, "positive_label": brief.positive_label,
                  "primary_metric": brief.metric, "sensitive_features": brief.sensitive,
                  "time_column": brief.time_column, "id_column": brief.id_column,
                  "exclude_columns": brief.exclude_columns},
        "status": verdict, "counts": counts,
        "failed": [i.id for i in items if i.status == "fail"],
        "warnings": [i.id for i in items if i.status == "warn"],
        "items": [i.to_dict() for i in items],
        "rules": checks.RULES,
        "columns": result["columns"], "personal_data": result["personal_data"],
        "single_feature_scores": result["single_feature"],
        "details": result["details"], "target": target_facts, "profile": profile,
        "seconds": {"checklist": round(t_checks, 2), "total": round(time.perf_counter() - t0, 2)},
    }
    # Everything is computed: only now touch the disk, each file atomically.
    artifacts = {}
    if page is not None:
        write_text(html_path, page)
        artifacts["profile report"] = str(html_path)
    write_json(json_path, jsonable(doc))
    artifacts["audit record"] = str(json_path)
    table = checklist_frame(items)
    messages = [f"{i.check}: {i.evidence}" for i in sorted(items, key=lambda i: STATUS_ORDER[i.status])
                if i.status == "fail"]
    if sc is not None and sc.notes["sampled"]:
        messages.append(
            f"Read in batches: exact on all {n_rows:,} rows: rows, missing values, distinct values, "
            "constant columns, mixed types, duplicate rows (64-bit row hashes), labels, classes and "
            f"volume; on a seeded sample of {len(df):,} rows: outliers, single-feature (leakage, "
            "proxy) scores, the target's skewness and the profile.")
    if profile:
        messages.append(profile["note"])
    summary = {"verdict": verdict, "pass": counts["pass"], "warn": counts["warn"], "fail": counts["fail"],
               "rows": n_rows, "columns": df.shape[1], "target": brief.target,
               "seconds": round(time.perf_counter() - t0, 1)}
    tables = {"checklist": table}
    if len(result["personal_data"]):
        tables["personal data"] = result["personal_data"]
    tables["columns"] = result["columns"]
    report = Report(title=f"Data audit: {brief.name} ({counts['pass']} pass, {counts['warn']} warn, "
                          f"{counts['fail']} fail)",
                    summary=summary, tables=tables, messages=messages, artifacts=artifacts,
                    data={"status": verdict, "failed": doc["failed"], "warnings": doc["warnings"]},
                    value=table)
    from .plots import audit_overview

    report.add_figure("audit overview", audit_overview(items, result["columns"], brief.target,
                                                       target_facts, result["single_feature"]))
    return report
