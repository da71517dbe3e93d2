"""``omg ops pipeline`` (core layer): the state of lifecycle runs, retrain jobs and deployments.

- ``status``: the latest lifecycle run, the retrain queue (running, queued in run order), the last
  retrain decision, the registry aliases and the deployments (bundles, rollouts) phase 4 recorded;
- ``run``: work through the queued retrain jobs now, one at a time under the queue's lock;
- ``history``: recent lifecycle runs, every retrain job, the retrain decisions and the drift checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import journal

ACTIONS = ("status", "run", "history")


def _runs_table(project: Any, limit: int, kind: str | None = None) -> Any:
    import pandas as pd

    from ..runs import list_runs

    runs = list_runs(project, kind)[:limit]
    return pd.DataFrame([{
        "run": r.get("run_id"), "started": r.get("started"), "status": r.get("status"),
        "phases": ",".join(str(p) for p in r.get("phases_requested", [])),
        "failed phase": r.get("failed_phase") or "",
        "kind": r.get("kind", "lifecycle")} for r in runs])


def _aliases(project: Any) -> dict[str, str]:
    """Registry aliases, without creating a store that does not exist yet."""
    from ..modeling.tracking import is_embedded

    if is_embedded(project) and not (Path(project.root) / "mlflow.db").is_file():
        return {}
    try:
        from ..ops.registry import Registry

        reg = Registry(project)
        return {a: (f"v{reg.alias(a)}" if reg.alias(a) else "none") for a in ("champion", "challenger")}
    except Exception as exc:  # noqa: BLE001 - status must show even when the registry is unreachable
        return {"registry": f"unreadable ({str(exc).splitlines()[0][:80]})"}


def _deployments(project: Any, limit: int = 10) -> Any:
    """Bundles, what each environment serves (``monitoring/deployments/ENV.json``) and the outcome
    of the recent rollouts (``monitoring/deployments/history.jsonl``), as phase 4 records them."""
    import pandas as pd

    rows = []
    try:
        from ..deploy.bundle import list_bundles
        from ..deploy.state import deployments_dir, read_history
    except ImportError:  # the deploy extra is not installed
        return pd.DataFrame(rows)
    for b in list_bundles(project):
        rows.append({"kind": "bundle", "name": f"{b['name']}/{b['version']}", "time": b["created"],
                     "detail": b.get("model") or ""})
    folder = deployments_dir(project)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            rows.append({"kind": f"serving ({data.get('env') or path.stem})",
                         "name": data.get("model_version") or "", "time": data.get("since") or "",
                         "detail": f"{data.get('strategy', '')} rollout {data.get('rollout_id', '')}: "
                                   f"{data.get('last_rollout', '')}"})
    outcomes: dict[str, dict[str, Any]] = {}
    for e in read_history(project):
        if e.get("event") in ("promoted", "rollback", "halted") and e.get("rollout_id"):
            outcomes[e["rollout_id"]] = e
    for rid, e in list(outcomes.items())[-limit:]:
        rows.append({"kind": f"rollout ({e.get('strategy', '')})", "name": rid, "time": e.get("time", ""),
                     "detail": f"{e.get('challenger')} vs {e.get('champion')}: "
                               f"{ {'rollback': 'rolled back'}.get(e['event'], e['event'])}"
                               + (f" ({e['reason']})" if e.get("reason") else "")})
    return pd.DataFrame(rows)


def pipeline_status(project: Any) -> Any:
    from ..ops.retrain import history, queue_of
    from ..results import Report

    q = queue_of(project)
    running = q.running()
    pending = q.pending()
    decisions = [r for r in history(project) if r.get("event") == "decision"]
    runs = _runs_table(project, 1, "lifecycle")
    retrains = _runs_table(project, 1, "retrain")
    summary = {"latest lifecycle run": (f"{runs.iloc[0]['run']} {runs.iloc[0]['status']}" if len(runs)
                                        else "none yet"),
               **({"latest retrain run": f"{retrains.iloc[0]['run']} {retrains.iloc[0]['status']}"}
                  if len(retrains) else {}),
               "retrain running": f"job {running.id} ({running.trigger})" if running else "none",
               "retrain queued": len(pending)}
    if decisions:
        d = decisions[-1]
        rollout = (d.get("rollout") or {}).get("status")
        summary["last retrain decision"] = (f"job {d.get('job')}: {d.get('decision')} ({d.get('reason')})"
                                            + (f"; rollout {rollout}" if d.get("decision") == "promote"
                                               and rollout else ""))
    summary.update(_aliases(project))
    report = Report(title=f"Pipeline of {project.name}", summary=summary)
    if pending:
        report.tables["retrain queue (run order)"] = q.table(pending)
    dep = _deployments(project)
    if len(dep):
        report.tables["deployments"] = dep
    return report


def pipeline_history(project: Any, limit: int = 20) -> Any:
    import pandas as pd

    from ..ops.retrain import history, queue_of
    from ..results import Report

    q = queue_of(project)
    report = Report(title=f"Pipeline history of {project.name}")
    runs = _runs_table(project, limit)
    if len(runs):
        report.tables["lifecycle runs"] = runs
    jobs = q.jobs(limit=limit)
    if jobs:
        report.tables["retrain jobs"] = q.table(jobs)
    decisions = [r for r in history(project) if r.get("event") in ("decision", "declined")][-limit:]
    if decisions:
        report.tables["retrain decisions"] = pd.DataFrame([{
            "time": r.get("time"), "job": r.get("job", ""), "trigger": r.get("trigger"),
            "decision": r.get("decision", "decline"), "reason": r.get("reason"),
            "champion": (r.get("champion") or {}).get("value"),
            "challenger": (r.get("challenger") or {}).get("value"),
            "rollout": (r.get("rollout") or {}).get("status", ""),
            "trigger to decision s": (r.get("durations") or {}).get("trigger to decision s"),
            "retrain wall s": (r.get("durations") or {}).get("retrain wall s")} for r in decisions])
    drift = journal.read(Path(project.monitoring_dir) / journal.DRIFT_HISTORY)[-limit:]
    if drift:
        report.tables["drift checks"] = pd.DataFrame([{
            "checked": r.get("time"), "window": f"{str((r.get('window') or {}).get('start', ''))[:16]} .. "
                                                 f"{str((r.get('window') or {}).get('end', ''))[:16]}",
            "rows": r.get("rows"), "drifted": ", ".join(r.get("drifted") or []),
            "dataset drift": "fail" if r.get("dataset_drift") else "pass"} for r in drift])
    dep = _deployments(project)
    if len(dep):
        report.tables["deployments"] = dep
    if not report.tables:
        report.messages.append("Nothing yet: no lifecycle run, retrain job or drift check.")
    report.summary = {"lifecycle runs": len(runs), "retrain jobs": len(jobs),
                      "decisions": len(decisions), "drift checks": len(drift)}
    return report
