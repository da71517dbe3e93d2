"""One retrain job (core layer): data, training run, challenger, comparison, decision, rollout.

0. Labels: when all the labeled traffic holds fewer than ``retraining.eval_min_labels`` requests (a
   small table's replay, a quiet service), no challenger could be judged, so none is trained: the job
   records the decision ``keep`` with that reason (``trained: false``), which answers its alerts.
1. Data: the reference data (phase 2's raw train and validation splits, else the source data) plus
   the labeled traffic from before the evaluation window, written to ``data/retrain/job-N-TIME.parquet``.
   The evaluation window (``retraining.eval_window``, the latest labeled requests) is held out, so
   the challenger is not scored on rows it was trained on.
2. Training: the lifecycle runner re-runs ``retraining.phases`` (2 and 3) with ``data_source`` set to
   that file (and the latest notebook parameters of the lifecycle runs, then ``retraining.params``).
   The job owns promotion: if the phase 3 notebook moved ``champion`` during the run (to a version
   the run registered), the job moves it back; the new model gets the alias ``challenger``.
3. Comparison: champion and challenger score the held-out window; the primary metric of each, for
   the task (a multiclass model's per-class probabilities when the metric needs them; a regression's
   values, lower-is-better metrics compared as such).
4. Decision: promote only if the challenger passed the run's gates and beats the champion by more
   than ``retraining.min_improvement``; otherwise keep the champion. The reason is recorded.
   Compare-and-set: the version that held ``champion`` when the job started is recorded; just before
   the promotion the alias is read again, and if somebody moved it meanwhile (to a version this run
   did not register, say in MLflow's UI) the job leaves it where it is, promotes nothing and records
   ``keep`` with "champion moved from vA to vB while this retrain ran ..." (``champion_moved`` in the
   decision). The whole job runs under the project lock (:mod:`omgmagics.lock`), so no omg command
   moves the alias meanwhile; the check catches writers outside omg.
5. Rollout (``retraining.rollout``): ``canary`` packages the challenger into a bundle and runs phase
   4's canary (``omgmagics.deploy.rollout.cloud_local``: champion and challenger behind the
   traffic-splitting router; a healthy challenger is promoted and gets the ``champion`` alias, an
   unhealthy one is rolled back); ``direct`` moves the ``champion`` alias; ``none`` records the
   decision only.
6. After a promotion the drift reference (``monitoring/reference.parquet``) becomes the retrain data
   scored by the new champion; while the champion stays, its documents, data and reference stay.

Times (trigger, queued, started, trained, decided, promoted) and durations go to the decision record.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import clock
from ..errors import DataError, OmgError
from ..ops.live import latest_labeled_window, scorer_metric
from ..ops.retrain import decline, history_path, queue_of, record, request_retrain
from ..ops.settings import monitoring_settings, retraining_settings
from ..ops.windows import parse_duration


def decide(metric: str, champion: float | None, challenger: float, margin: float,
           gates_ok: bool = True, gate_note: str = "") -> tuple[str, str]:
    """("promote" or "keep", reason): promote only a challenger better by more than `margin`."""
    from ..metrics import get_metric

    m = get_metric(metric)
    if not gates_ok:
        return "keep", f"the challenger failed a gate of the retrain run ({gate_note})"
    if challenger is None or not np.isfinite(challenger):
        return "keep", f"the challenger's {metric} is undefined on the evaluation window"
    if champion is None or not np.isfinite(champion):
        return "promote", f"no champion {metric} to beat; challenger {metric} {challenger:.4f}"
    gain = (challenger - champion) if m.greater_is_better else (champion - challenger)
    if gain > margin:
        return "promote", (f"challenger {metric} {challenger:.4f} vs champion {champion:.4f}: better by "
                           f"{gain:.4f} > margin {margin}")
    return "keep", (f"challenger {metric} {challenger:.4f} vs champion {champion:.4f}: "
                    + (f"better by only {gain:.4f} <= margin {margin}" if gain > 0 else
                       f"not better ({gain:+.4f})"))


def _reference_rows(project: Any) -> Any:
    """The rows the champion learned from: phase 2's raw train and validation splits when they exist
    (the test split stays out: held-out rows may be what traffic replays), else the source data."""
    import pandas as pd

    source = project.load_source_data()
    parts = [Path(project.processed_dir) / f"{s}.parquet" for s in ("train", "val")]
    if not all(p.is_file() for p in parts):
        return source
    frames = [pd.read_parquet(p) for p in parts]
    cols = [c for c in source.columns if all(c in f.columns for f in frames)]
    return pd.concat([f[cols] for f in frames], ignore_index=True)


def build_training_data(project: Any, labeled: Any, before: dt.datetime | None, job_id: int
                        ) -> tuple[Path, dict[str, Any]]:
    """Reference data plus labeled traffic before `before`, as ``data/retrain/job-N-TIME.parquet``.

    A traffic row brings its inputs, its label and the attributes that came with the label
    (feedback ``attributes``); a reference column it has none of is left missing (and named in the
    counts: the retrain's schema validation then says whether that is allowed)."""
    import pandas as pd

    from ..atomic import atomic_path

    ref = _reference_rows(project)
    target = project.target
    new = labeled if before is None else labeled[labeled["time"] < before]
    rows = pd.DataFrame({c: new[c] if c in new.columns else np.nan for c in ref.columns if c != target})
    rows[target] = new["label"].to_numpy()
    id_col = project.config.get_path("data.id_column")
    if id_col and id_col in ref.columns:
        rows[id_col] = new["request_id"].astype(str).to_numpy()
    for c in ref.columns:
        if pd.api.types.is_numeric_dtype(ref[c]) and not pd.api.types.is_numeric_dtype(rows[c]):
            rows[c] = pd.to_numeric(rows[c], errors="coerce")
    combined = pd.concat([ref, rows[ref.columns]], ignore_index=True)
    # the job number and the time: raw data is never overwritten, and a reset queue counts from 1 again
    path = Path(project.root) / "data" / "retrain" / f"job-{job_id}-{clock.file_stamp()}.parquet"
    with atomic_path(path, ".parquet") as tmp:
        combined.to_parquet(tmp, index=False)
    counts: dict[str, Any] = {"reference rows": len(ref), "new labeled rows": len(rows),
                              "total rows": len(combined)}
    lacking = [c for c in ref.columns if c != target and c != id_col and c not in new.columns]
    if lacking and len(rows):
        counts["columns the new rows lack (left missing)"] = ", ".join(lacking)
    return path, counts


def lifecycle_train(project: Any, data_path: Path, params: dict[str, Any], phases: list[int],
                    progress: Any = None) -> dict[str, Any]:
    """Re-run the data and model phases on `data_path` through the lifecycle runner."""
    from ..runner import _notebook_parameters, run_lifecycle

    declared: set[str] = set()
    for p in phases:
        declared |= set(_notebook_parameters(project.notebook(p)))
    if "data_source" not in declared:
        raise DataError("The phase notebooks declare no `data_source` parameter, so a retrain cannot "
                        f"hand them the new labeled data ({data_path.name}). Add `data_source = None` "
                        "to the parameters cell of the phase 2 notebook and read it instead of "
                        "data.source when it is set.")
    # the notebook parameters of the lifecycle runs (say, a smaller n_trials), then retraining.params
    from ..runs import list_runs

    inherited: dict[str, Any] = {}
    for run in list_runs(project, "lifecycle"):  # newest first: the latest value of each parameter
        for key, value in (run.get("parameters") or {}).items():
            inherited.setdefault(key, value)
    params = {k: v for k, v in {**inherited, **params}.items() if k in declared}
    params["data_source"] = str(data_path)
    if "sample_frac" in declared:
        params["sample_frac"] = 1.0  # the file is already the sample plus the new rows
    report = run_lifecycle(project, phases=phases, params=params, enforce_gates=False, progress=progress,
                           kind="retrain")
    manifest = report.value
    gates = {p: s.get("status") for p, s in manifest["phases"].items()}
    notes = [f"phase {p}: {s.get('gate_summary', s.get('status'))}" for p, s in manifest["phases"].items()
             if s.get("status") != "passed"]
    return {"run_id": manifest["run_id"], "gates_ok": all(v == "passed" for v in gates.values()),
            "gate_note": "; ".join(notes)}


def _resolve_challenger(registry: Any, before: dict[str, str | None], t0_ms: int) -> tuple[str, list[str]]:
    notes = []
    champ, chal = registry.alias("champion"), registry.alias("challenger")
    new = registry.versions_since(t0_ms)
    if champ != before["champion"] and champ is not None and champ in new:
        # the retrain run's own notebook promoted its model: the job owns promotion, so it goes back
        candidate = champ
        if before["champion"] is not None:
            registry.set_alias("champion", before["champion"])
        else:
            registry.delete_alias("champion")
        notes.append(f"The retrain run moved `champion` to v{champ}; the job moved it back to "
                     f"{'v' + before['champion'] if before['champion'] else 'no version'}: promotion is "
                     "decided by the comparison below.")
        return _challenger(registry, candidate), notes
    # a champion moved to a version this run did not register was moved by somebody else: it stays
    # (champion_moved, checked before the promotion, says so)
    if chal is not None and chal != before["challenger"] and chal in new:
        candidate = chal
    elif new:
        candidate = new[-1]
    else:
        raise DataError("The retrain run registered no new model version, so there is no challenger. "
                        "Check that the phase 3 notebook registers its model (it should with "
                        "`omg train train` / `tune`).")
    return _challenger(registry, candidate), notes


def _challenger(registry: Any, candidate: str) -> str:
    registry.set_alias("challenger", candidate)
    return candidate


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "no version"


def champion_moved(registry: Any, before: str | None, candidate: str) -> str | None:
    """Compare-and-set of the champion alias: None when `champion` still names `before` (the version
    that held it when the job started), else why the job must not move it."""
    now = registry.alias("champion")
    if now == before:
        return None
    return (f"champion moved from {_v(before)} to {_v(now)} while this retrain ran; its candidate "
            f"v{candidate} was not promoted (it was compared with {_v(before)}, not {_v(now)}). "
            f"Compare it by hand with `omg train evaluate --model models:/{registry.name}/{candidate}` "
            f"and `omg train evaluate --model models:/{registry.name}@champion`; it stays registered "
            "as challenger")


def _rollout(project: Any, registry: Any, mode: str, version: str, reason: str) -> dict[str, Any]:
    if mode == "none":
        return {"status": "not started", "detail": "retraining.rollout is none: decision recorded only"}
    if mode == "direct":  # the job's caller checked champion_moved just before: under the project lock
        registry.set_alias("champion", version)
        registry.delete_alias("challenger")
        return {"status": "promoted", "detail": f"champion alias moved to v{version}",
                "promoted": clock.stamp()}
    try:
        from ..deploy.packaging import package_model
        from ..deploy.rollout import cloud_local
    except ImportError:
        return {"status": "pending",
                "detail": "phase 4's canary rollout is not available in this installation; the model "
                          f"stays registered as challenger v{version}; start the canary with "
                          "`omg deploy cloud --env production --strategy canary`"}
    started = clock.stamp()
    try:
        bundle = package_model(project, model_ref=f"models:/{registry.name}/{version}").value
        # port 0: the router takes a free port (the production port may be serving right now)
        out = cloud_local(project, "production", "canary", challenger=str(bundle), port=0)
    except OmgError as exc:
        return {"status": "failed", "started": started,
                "detail": f"the canary could not run: {exc.message}"}
    state = (out.data.get("status") or {}).get("state", "unknown")
    result = {"status": {"promoted": "promoted", "rolled_back": "rolled back"}.get(state, state),
              "started": started, "bundle": str(bundle), "detail": out.title}
    if state == "promoted":
        result["promoted"] = clock.stamp()
        if registry.alias("champion") == str(version):
            registry.delete_alias("challenger")
    return result


# What phases 2 and 3 write about "the" model and its data: while the champion stays, these keep
# describing the champion (the feature store and the registry keep every version anyway).
MODEL_DOCS = ("docs/model_card.md", "decisions/adr-001-model-choice.md", "reports/evaluation.json",
              "reports/evaluation.html", "reports/comparison.json")


def _state_files(project: Any) -> list[str]:
    root = Path(project.root)
    processed = Path(project.processed_dir)
    data = sorted(str(p.relative_to(root)) for p in processed.glob("*") if p.is_file()) \
        if processed.is_dir() else []
    return [*MODEL_DOCS, *data]


def _current_raw(project: Any) -> str | None:
    from ..dataprep._util import read_json_or
    from ..dataprep.sources import LINEAGE_FILE

    return read_json_or(Path(project.raw_dir) / LINEAGE_FILE, {}).get("current")


def _snapshot(project: Any) -> dict[str, Any]:
    """The champion's documents and phase 2 data as they are before a retrain run (and which raw
    table is current, under the key ``None``)."""
    root = Path(project.root)
    files: dict[Any, Any] = {rel: (root / rel).read_bytes() if (root / rel).is_file() else None
                             for rel in _state_files(project)}
    files[None] = _current_raw(project)
    return files


def _settle_model_docs(project: Any, before: dict[Any, Any], run_id: str | None,
                       promoted: bool) -> str | None:
    """Keep what the retrain run wrote when its model became the champion; otherwise put the
    champion's back: its model card, ADR and evaluation (the challenger's go to
    ``runs/RUN_ID/model_docs/``), its processed splits and the current raw table (the challenger's
    data stays in ``data/retrain/`` and its feature-set version). Returns a note for the record."""
    from ..atomic import write_bytes

    root = Path(project.root)
    names = {n for n in before if n is not None} | set(_state_files(project))
    changed = [rel for rel in sorted(names)
               if ((root / rel).read_bytes() if (root / rel).is_file() else None) != before.get(rel)]
    current = before.get(None)
    if promoted or not changed and _current_raw(project) == current:
        return None
    if _current_raw(project) != current:  # the lineage keeps the record of what was collected
        from ..atomic import write_json
        from ..dataprep._util import read_json_or
        from ..dataprep.sources import LINEAGE_FILE

        path = Path(project.raw_dir) / LINEAGE_FILE
        lineage = read_json_or(path, {"sources": {}})
        if current is None:
            lineage.pop("current", None)
        else:
            lineage["current"] = current
        write_json(path, lineage)
    keep = root / "runs" / run_id / "model_docs" if run_id else None
    for rel in changed:
        path = root / rel
        if keep is not None and rel in MODEL_DOCS and path.is_file():
            write_bytes(keep / rel, path.read_bytes())
        if before.get(rel) is None:
            path.unlink(missing_ok=True)
        else:
            write_bytes(path, before[rel])
    docs = [r for r in changed if r in MODEL_DOCS]
    where = f" (the challenger's are in runs/{run_id}/model_docs/)" if keep is not None and docs else ""
    data = len(changed) - len(docs)
    return ("The champion stays, so its " + ", ".join(docs + [f"phase 2 data ({data} file(s) of "
            "data/processed/, and the current raw table)"]) + f" were put back{where}.")


def _new_reference(project: Any, data_path: Path, scorer: Any, version: str) -> str:
    """After a promotion, drift is judged against what the new champion learned from: the retrain
    data (the old reference rows plus the new labeled traffic), scored by the new champion."""
    import pandas as pd

    from ..ops.simulate import refresh_reference

    rows = pd.read_parquet(data_path)
    path = refresh_reference(project, rows, scorer)
    return (f"The drift reference ({Path(path).relative_to(project.root)}) is now the new champion's "
            f"training data: {len(rows):,} rows scored by v{version}.")


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds(), 1)


def _too_few_labels(project: Any, queue: Any, job: Any, registry: Any, base: dict[str, Any], labeled: Any,
                    win: Any, notes: list[str], rs: dict[str, Any], times: dict[str, Any],
                    t_start: float) -> dict[str, Any]:
    """A decision not to retrain, recorded with its reason, when the labeled traffic is too small to
    compare a challenger with the champion (a small table's replay, a quiet service): training one
    could not change the decision, so none is trained. It answers the job's alerts."""
    metric = project.primary_metric
    n, need = len(labeled), int(rs["eval_min_labels"])
    where = f" ({win.label()})" if win is not None else " (monitoring/feedback.jsonl joined with the log)"
    reason = (f"only {n} labeled request{'s' if n != 1 else ''} in all the traffic{where}, "
              f"fewer than retraining.eval_min_labels ({need}): a challenger could not be compared "
              "with the champion, so no retrain was run and the champion stays. Collect more labels "
              "(or lower retraining.eval_min_labels) and retrain then")
    times["decided"] = clock.stamp()
    champion = registry.alias("champion")
    result = {**base, "decision": "keep", "reason": reason, "metric": metric, "trained": False,
              "champion": {"version": champion, "value": None},
              "challenger": {"version": None, "value": None},
              "margin": float(rs["min_improvement"]),
              "eval_window": win.to_dict() if win is not None else None, "eval_labels": n,
              "rollout": {"status": "not started", "detail": "the champion stays"}, "times": times,
              "durations": {"retrain wall s": round(time.time() - t_start, 1),
                            "trigger to decision s": _seconds(times["triggered"], times["decided"])},
              "notes": notes}
    record(project, "decision", **result)
    queue.finish(job.id, result=result)
    result["comparison"] = None
    return result


def run_job(project: Any, queue: Any, job: Any, *, train: Callable[..., dict[str, Any]] | None = None,
            registry: Any = None, progress: Any = None,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one claimed job to its decision; the queue and the history record the outcome.

    Parameters
    ----------
    train : callable, optional
        ``train(project, data_path, params, phases, progress) -> {"run_id", "gates_ok", "gate_note"}``
        (default :func:`lifecycle_train`: the phase notebooks through the lifecycle runner).
    registry : Registry, optional
        Default: the project's MLflow registry.
    overrides : dict, optional
        Values replacing ``retraining:`` settings for this job (``eval_window``, ``min_improvement``).
    """
    from ..errors import BusyError
    from ..lock import project_lock

    try:  # reentrant: the `ops retrain` / `ops pipeline --action run` verb holds it already
        with project_lock(project.root, "ops retrain"):
            return _run_job(project, queue, job, train=train, registry=registry, progress=progress,
                            overrides=overrides)
    except BusyError as exc:  # only taking the lock raises it (_run_job records its own failures)
        result = {"job": job.id, "trigger": job.trigger, "alerts": job.alerts,
                  "request_reason": job.reason, "decision": "failed", "reason": exc.message,
                  "times": {"triggered": job.triggered, "queued": job.created,
                            "failed": clock.stamp()}}
        record(project, "decision", **result)
        queue.finish(job.id, result=result, error=exc.message)
        result["comparison"] = None
        return result


def _run_job(project: Any, queue: Any, job: Any, *, train: Callable[..., dict[str, Any]] | None,
             registry: Any, progress: Any, overrides: dict[str, Any] | None) -> dict[str, Any]:
    import pandas as pd

    rs = {**retraining_settings(project), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    ms = monitoring_settings(project)
    times = {"triggered": job.triggered, "queued": job.created, "started": clock.stamp()}
    t_start = time.time()
    docs_before: dict[Any, Any] | None = None
    base = {"job": job.id, "trigger": job.trigger, "alerts": job.alerts, "request_reason": job.reason}
    try:
        if registry is None:
            from ..ops.registry import Registry

            registry = Registry(project)
        # the aliases when the job started: the champion moves only if it still names this version
        before = {"champion": registry.alias("champion"), "challenger": registry.alias("challenger")}
        window = parse_duration(rs["eval_window"], "retraining.eval_window")
        labeled, win, notes = latest_labeled_window(project, ms, window, int(rs["eval_min_labels"]))
        if len(labeled) < int(rs["eval_min_labels"]):
            return _too_few_labels(project, queue, job, registry, base, labeled, win, notes, rs, times,
                                   t_start)
        from ..ops.live import labeled as all_labeled

        every, _ = all_labeled(project, ms)
        data_path, data_counts = build_training_data(project, every, win.start, job.id)
        times["data ready"] = clock.stamp()
        t0_ms = int(time.time() * 1000) - 1
        docs_before = _snapshot(project)
        t_train = time.time()
        outcome = (train or lifecycle_train)(project, data_path, dict(rs["params"] or {}),
                                             list(rs["phases"]), progress)
        train_s = time.time() - t_train
        times["trained"] = clock.stamp()
        candidate, more = _resolve_challenger(registry, before, t0_ms)
        notes += more
        metric = project.primary_metric
        values, rows = {}, []
        for role, version in (("champion", before["champion"]), ("challenger", candidate)):
            if version is None:
                values[role] = None
                continue
            values[role] = scorer_metric(project, registry.scorer(version), labeled)
            rows.append({"model": role, "version": version, metric: values[role], "labels": len(labeled),
                         "window": win.label()})
        enough = len(labeled) >= int(rs["eval_min_labels"])
        if not enough:
            decision, reason = "keep", (f"only {len(labeled)} labeled requests to compare on (< "
                                        f"{rs['eval_min_labels']}); the champion stays")
        else:
            decision, reason = decide(metric, values["champion"], values["challenger"],
                                      float(rs["min_improvement"]), outcome.get("gates_ok", True),
                                      outcome.get("gate_note", ""))
        times["decided"] = clock.stamp()
        moved = champion_moved(registry, before["champion"], candidate)
        if moved is not None:
            notes.append(moved[0].upper() + moved[1:] + ".")
        if decision == "promote" and moved is not None:
            decision, reason = "keep", f"{moved} (the comparison said: {reason})"
            rollout = {"status": "not started", "detail": moved}
        elif decision == "promote":
            rollout = _rollout(project, registry, rs["rollout"], candidate, reason)
        else:
            rollout = {"status": "not started", "detail": "the champion stays"}
        if rollout.get("started"):
            times["rollout started"] = rollout["started"]
        if rollout.get("promoted"):
            times["promoted"] = rollout["promoted"]
        promoted = registry.alias("champion") == str(candidate)
        note = _settle_model_docs(project, docs_before, outcome.get("run_id"), promoted=promoted)
        if note:
            notes.append(note)
        if promoted:
            notes.append(_new_reference(project, data_path, registry.scorer(candidate), candidate))
        durations = {
            "queue wait s": _seconds(times["queued"], times["started"]),
            "retrain wall s": round(time.time() - t_start, 1),
            "training run s": round(train_s, 1),
            "trigger to decision s": _seconds(times["triggered"], times["decided"]),
            "trigger to promotion s": _seconds(times["triggered"], times.get("promoted")),
        }
        result = {**base, "decision": decision, "reason": reason, "metric": metric,
                  "champion": {"version": before["champion"], "value": values["champion"]},
                  "challenger": {"version": candidate, "value": values["challenger"]},
                  "margin": float(rs["min_improvement"]), "eval_window": win.to_dict(),
                  "eval_labels": len(labeled), "data": {**data_counts, "file": str(data_path)},
                  "run_id": outcome.get("run_id"), "gates_ok": outcome.get("gates_ok", True),
                  "rollout": rollout, "times": times, "durations": durations, "notes": notes}
        if moved is not None:
            result["champion_moved"] = {"from": before["champion"], "to": registry.alias("champion")}
        record(project, "decision", **result)
        queue.finish(job.id, result=result)
        result["comparison"] = pd.DataFrame(rows)
        return result
    except Exception as exc:  # noqa: BLE001 - any failure ends the job as failed, with its message
        msg = exc.message if isinstance(exc, OmgError) else f"{type(exc).__name__}: {exc}"
        times["failed"] = clock.stamp()
        if docs_before is not None:  # a run that failed half-way: the champion's documents return
            _settle_model_docs(project, docs_before, None, promoted=False)
        result = {**base, "decision": "failed", "reason": msg, "times": times,
                  "durations": {"retrain wall s": round(time.time() - t_start, 1)}}
        record(project, "decision", **result)
        queue.finish(job.id, result=result, error=msg)
        result["comparison"] = None
        return result


# --- the verb: request a retrain, then work through the queue ------------------------------------
def retrain(project: Any, trigger: str = "manual", priority: str = "normal", reason: str = "", *,
            force: bool = False, run: bool = True, decline_it: bool = False, by: str | None = None,
            progress: Any = None, **job_kwargs: Any) -> Any:
    """The verb: request (or decline) a retrain, then work through the queue.

    Returns
    -------
    Report
    """
    from ..results import Report

    retraining_settings(project)  # a broken retraining: section fails here, before anything is queued
    if decline_it:
        out = decline(project, trigger, reason, by)
        n = len(out["alerts"])
        return Report(title=f"Recorded a decision not to retrain ({trigger}): {n} alert(s) answered",
                      summary={"trigger": trigger, "reason": reason, "alerts answered": n},
                      artifacts={"history": str(history_path(project))}, data=out)
    req = request_retrain(project, trigger, priority, reason, force)
    report = run_queue(project, progress=progress, **job_kwargs) if run and req["queued"] else None
    job = req["job"]
    summary = {"trigger": trigger, "priority": priority, "request": req["outcome"]}
    if job is not None:
        job = queue_of(project).get(job.id)
        summary.update({"job": job.id, "job state": job.state})
        if job.result:
            summary["decision"] = job.result.get("decision")
            summary["reason"] = job.result.get("reason")
    title = (f"Retrain ({trigger}): " + (summary.get("decision") or req["outcome"]))
    out = Report(title=title, summary=summary, artifacts={"history": str(history_path(project))},
                 value=job)
    if report is not None:
        out.tables.update(report.tables)
        out.messages += report.messages
        out.figures.update(report.figures)
        out.data.update(report.data)
        out.artifacts.update(report.artifacts)
    if not run and req["queued"]:
        out.messages.append("Queued only: work through the queue with `omg ops pipeline --action run`.")
    return out


def run_queue(project: Any, max_jobs: int | None = None, progress: Any = None, **job_kwargs: Any) -> Any:
    """Work through the queued jobs one at a time, unless another worker holds the lock."""
    import os
    import socket

    from ..results import Report

    q = queue_of(project)
    done, messages = [], []
    worker = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        with q.worker() as got:
            if not got:
                running = q.running()
                messages.append(
                    "Another retrain worker is running" + (f" (job {running.id})" if running else "")
                    + f"; {len(q.pending())} job(s) stay queued and that worker runs them next.")
                break
            while max_jobs is None or len(done) < max_jobs:
                job = q.claim(worker)
                if job is None:
                    break
                done.append(run_job(project, q, job, progress=progress, **job_kwargs))
        # a request that found the lock taken just before it was released is picked up here
        if not q.pending() or (max_jobs is not None and len(done) >= max_jobs):
            break
    table = q.table([q.get(r["job"]) for r in done]) if done else None
    report = Report(title=f"Retrain queue: {len(done)} job(s) run", messages=messages,
                    data={"decisions": done})
    if table is not None:
        report.tables["jobs run"] = table
    for r in done:
        if r.get("comparison") is not None:
            report.tables[f"job {r['job']}: champion vs challenger"] = r["comparison"]
        report.messages.append(f"Job {r['job']}: {r['decision']} - {r['reason']}")
    return report
