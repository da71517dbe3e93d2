"""The lifecycle runner (core layer): ``omg ml run``, ``status``, ``gate approve``.

Executes the project's phase notebooks in order with papermill into ``runs/RUN_ID/``, checks each
phase's quality gate, renders each executed notebook to an HTML report without code in ``reports/``,
and keeps ``runs/RUN_ID/manifest.json`` up to date after every phase (status, times, parameters,
artifacts with sha256, gate, error). A failing cell stops the run with an error naming the phase, the
cell, the exception and the saved notebook; ``resume=True`` continues the latest run from its failed
phase without redoing finished ones.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import clock
from .atomic import sha256_file, write_json, write_text
from .criteria import GATE_NAMES
from .errors import GateFailedError, OmgError, PhaseFailedError, ProjectError, UsageError
from .gates import check_gate
from .log import get_logger
from .project import PHASE_TITLES, PHASES, Project
from .results import Report
from .runs import list_runs, new_run_id

log = get_logger(__name__)
ARTIFACT_DIRS = ["reports", "docs", "decisions", "data", "features", "models", "monitoring", "projectlib"]
RESUME_HINT = "resume with `omg ml run --resume` (or `%omgml run --resume`)"


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _notebook_parameters(path: Path) -> dict[str, Any]:
    import papermill as pm

    return {name: info for name, info in pm.inspect_notebook(str(path)).items()}


def export_project_code(project: Project) -> list[str]:
    """Run nbdev's export in the project so ``projectlib/`` matches the notebooks' export cells."""
    if not (project.root / "pyproject.toml").is_file():
        return []
    from nbdev.config import get_config
    from nbdev.doclinks import _build_modidx
    from nbdev.export import nb_export
    from nbdev.maker import add_init

    cwd = os.getcwd()
    try:
        os.chdir(project.root)
        cfg = get_config()
        written = []
        for nb in sorted(Path(cfg.nbs_path).rglob("*.ipynb")):
            if ".ipynb_checkpoints" in nb.parts:
                continue
            nb_export(str(nb), lib_path=str(cfg.lib_path))
            written.append(str(nb.relative_to(project.root)))
        add_init(cfg.lib_path)
        _build_modidx(cfg.lib_path)
        return written
    finally:
        os.chdir(cwd)


def _collect_artifacts(project: Project, since: float) -> list[dict[str, Any]]:
    """Files under the project's artifact folders written since `since` (epoch seconds)."""
    found = []
    for top in ARTIFACT_DIRS:
        base = project.root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file() or any(p.startswith(".") for p in path.relative_to(project.root).parts):
                continue
            if "__pycache__" in path.parts or path.stat().st_mtime < since:
                continue
            found.append({"path": str(path.relative_to(project.root)), "bytes": path.stat().st_size,
                          "sha256": sha256_file(path)})
    return found


def render_report(executed: Path, dest: Path) -> Path:
    """Render an executed notebook to self-contained HTML without code cells."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    # Without saved widget state nbconvert emits no widget loader (it would fetch from a CDN);
    # widget outputs (progress bars) render their text fallback.
    nb.metadata.pop("widgets", None)
    # Parameters and set-up are plumbing, not part of the review.
    nb.cells = [c for c in nb.cells
                if "parameters" not in c.get("metadata", {}).get("tags", [])
                and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    from .html import strip_network

    return write_text(dest, strip_network(body))


def _logged_kernel_manager(log_file: Any) -> type:
    """A kernel manager whose kernel writes its stderr to `log_file` (kept with the run), not ours."""
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["stderr"] = log_file
            return await AsyncKernelManager._async_launch_kernel(self, kernel_cmd, **kw)

    return LoggedKernelManager


def _phase_error(phase: int, exc: BaseException, saved: Path, root: Path) -> tuple[str, dict]:
    title = f"Phase {phase} ({PHASE_TITLES[phase]})"
    rel = saved.relative_to(root) if saved.is_relative_to(root) else saved
    cell = getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None) or str(exc)
    evalue = evalue.strip().splitlines()[0] if evalue.strip() else ""
    if type(exc).__name__ == "DeadKernelError" or "Kernel died" in str(exc):
        where, ename, evalue = "a dead kernel", "DeadKernelError", (
            "the kernel process ended (out of memory or os._exit?)")
    else:
        count = getattr(exc, "exec_count", None)
        # 1-based position in the saved notebook, and the prompt number the user sees there.
        where = (f"cell {cell + 1}" + (f" (In [{count}])" if count else "")) if cell is not None \
            else "set-up"
    msg = (f"{title} failed at {where}: {ename}: {evalue}. The executed notebook is saved at {rel}"
           + (f" (kernel log: {rel.with_name('kernel-' + rel.stem + '.log')})" if where == "a dead kernel" else "")
           + f". Fix the cause, then {RESUME_HINT}.")
    return msg, {"cell": cell + 1 if isinstance(cell, int) else None, "exception": ename, "message": evalue, "notebook": str(rel)}


def run_lifecycle(project: Project, phases: list[int] | None = None, resume: bool = False,
                  params: dict[str, Any] | None = None, enforce_gates: bool = True,
                  progress: Callable[..., Any] | None = None, kernel_name: str | None = None,
                  kind: str = "lifecycle") -> Report:
    """Execute phase notebooks of `project` with papermill, gate by gate.

    Parameters
    ----------
    project : Project
    phases : list of int
        Phases to run, in order (default 1-5). Ignored with `resume`, which reuses the latest run's list.
    resume : bool
        Continue the latest run from its first unfinished phase, in the same run folder.
    params : dict
        Notebook parameters for every phase that declares them (``-p KEY=VALUE``).
    enforce_gates : bool
        Stop at a failed gate (default) or only record it.
    progress : callable
        A tqdm-like factory ``progress(total=..., desc=...)``.
    kind : str
        ``lifecycle`` (default) or ``retrain``: a retrain run (phase 5 re-running phases 2 and 3 on
        new data) renders its reports into its run folder, not ``reports/``, leaves the review
        index alone, and is neither the run ``--resume``/``status``/``gate approve`` act on.

    Raises
    ------
    PhaseFailedError
        A cell raised or the kernel died; names the phase, cell, exception and saved notebook.
    GateFailedError
        A phase ran but its gate failed; names the criterion and value.
    """
    import papermill as pm

    params = dict(params or {})
    if resume:
        runs = list_runs(project, "lifecycle")
        if not runs:
            raise UsageError("Nothing to resume: this project has no runs yet. Start one with "
                             "`omg ml run`.")
        manifest = runs[0]
        if manifest.get("status") == "passed":
            raise UsageError(f"The latest run {manifest['run_id']} finished with every phase passed; "
                             "nothing to resume. Start a new run with `omg ml run`.")
        run_id = manifest["run_id"]
        phases = [int(p) for p in manifest["phases_requested"]]
        params = {**manifest.get("parameters", {}), **params}
        manifest["resumed"] = manifest.get("resumed", []) + [clock.stamp()]
    else:
        phases = phases or [1, 2, 3, 4, 5]
        run_id = new_run_id()
        manifest = {"run_id": run_id, "kind": kind, "project": project.name, "started": clock.stamp(),
                    "finished": None,
                    "status": "running", "phases_requested": phases, "parameters": params,
                    "git_commit": _git_commit(project.root), "phases": {}, "approvals": []}
    # Every -p key must be a parameter of some phase notebook: a typo is not silently ignored.
    declared = {p: _notebook_parameters(project.notebook(p)) for p in phases if project.notebook(p).is_file()}
    missing_nb = [p for p in phases if p not in declared]
    if missing_nb:
        raise ProjectError(f"Phase notebook(s) missing: {', '.join(str(project.notebook(p)) for p in missing_nb)}. "
                           "Restore them from the kit (`omg ml init` a fresh project and copy them).")
    known = set().union(*(d.keys() for d in declared.values()))
    unknown = sorted(set(params) - known)
    if unknown:
        from .errors import did_you_mean

        raise UsageError(f"Parameter '{unknown[0]}' is not declared by any phase notebook."
                         f"{did_you_mean(unknown[0], known)} Known: {', '.join(sorted(known))}.")

    run_dir = project.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest["status"] = "running"
    manifest["exported"] = export_project_code(project)
    write_json(run_dir / "manifest.json", manifest)
    bar = progress(total=len(phases), desc=f"run {run_id}") if progress else None
    results = []
    try:
        for phase in phases:
            state = manifest["phases"].get(str(phase), {})
            if state.get("status") == "passed":
                results.append(state)
                if bar:
                    bar.update(1)
                continue
            if bar:
                bar.set_postfix_str(f"phase {phase}: {PHASE_TITLES[phase]}")
            reports = run_dir / "reports" if manifest.get("kind") == "retrain" else project.reports_dir
            state = _run_phase(pm, project, run_dir, phase, params, declared[phase], kernel_name,
                               reports)
            manifest["phases"][str(phase)] = state
            if state["status"] == "passed" or not enforce_gates and state["status"] == "gate-failed":
                write_json(run_dir / "manifest.json", manifest)
                results.append(state)
                if bar:
                    bar.update(1)
                continue
            manifest["status"] = "failed"
            manifest["failed_phase"] = phase
            write_json(run_dir / "manifest.json", manifest)
            if state["status"] == "gate-failed":
                raise GateFailedError(f"Phase {phase} ({PHASE_TITLES[phase]}) ran but its gate failed: "
                                      f"{state['gate_summary']}. Reports: {state.get('report')}. "
                                      f"Fix the cause, then {RESUME_HINT}.")
            raise PhaseFailedError(state["error"]["text"])
    finally:
        if bar:
            bar.close()
        if manifest.get("kind") != "retrain":
            _write_index(project)
    done = all(manifest["phases"].get(str(p), {}).get("status") in ("passed", "gate-failed")
               for p in phases)
    manifest["status"] = "passed" if done and all(
        manifest["phases"][str(p)]["status"] == "passed" for p in phases) else (
        "gate-failed" if done else manifest["status"])
    manifest["failed_phase"] = None
    manifest["finished"] = clock.stamp()
    write_json(run_dir / "manifest.json", manifest)
    if manifest.get("kind") != "retrain":
        _write_index(project)
    return _run_report(project, manifest)


def _write_index(project: Project) -> None:
    """Refresh reports/index.html; a failure here is logged, never hides the run's own result."""
    from .review import build_index

    try:
        build_index(project)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not write the review index: %s", exc)


def _run_phase(pm: Any, project: Project, run_dir: Path, phase: int, params: dict[str, Any],
               declared: dict[str, Any], kernel_name: str | None, reports_dir: Path) -> dict[str, Any]:
    folder = PHASES[phase]
    src = project.notebook(phase)
    out = run_dir / f"{folder}.ipynb"
    nb_params = {"project_dir": str(project.root)} if "project_dir" in declared else {}
    nb_params.update({k: v for k, v in params.items() if k in declared})
    state: dict[str, Any] = {"phase": phase, "name": PHASE_TITLES[phase], "status": "running",
                             "started": clock.stamp(), "parameters": nb_params,
                             "notebook": str(out.relative_to(project.root))}
    t0 = time.time()
    log.info("phase %s: executing %s", phase, src)
    kernel_log = run_dir / f"kernel-{folder}.log"
    state["kernel_log"] = str(kernel_log.relative_to(project.root))
    with open(kernel_log, "ab") as log_file:
        try:
            pm.execute_notebook(str(src), str(out), parameters=nb_params, cwd=str(project.root),
                                kernel_name=kernel_name, progress_bar=False, log_output=False,
                                request_save_on_cell_execute=True,
                                kernel_manager_class=_logged_kernel_manager(log_file))
            error = None
        except Exception as exc:  # noqa: BLE001 - papermill/nbclient raise many kinds; all reported
            error = exc
    state["ended"] = clock.stamp()
    state["duration_s"] = round(time.time() - t0, 2)
    report = reports_dir / f"phase{phase}_{folder.split('_', 1)[1]}.html"
    if out.exists():
        try:
            render_report(out, report)
            state["report"] = str(report.relative_to(project.root))
        except Exception as exc:  # noqa: BLE001 - a report failure must not hide the phase result
            log.warning("could not render %s: %s", out, exc)
    state["artifacts"] = _collect_artifacts(project, t0 - 1)
    if error is not None:
        text, info = _phase_error(phase, error, out, project.root)
        state["status"] = "failed"
        state["error"] = {**info, "text": text}
        return state
    gate = check_gate(project.reload(), phase)
    state["gate"] = gate.to_dict()
    state["gate_summary"] = gate.summary()
    state["status"] = "gate-failed" if gate.status == "failed" else "passed"
    return state


def _run_report(project: Project, manifest: dict[str, Any]) -> Report:
    import pandas as pd

    rows = []
    for p in manifest["phases_requested"]:
        s = manifest["phases"].get(str(p), {})
        rows.append({"phase": p, "name": PHASE_TITLES[int(p)], "status": s.get("status", "not run"),
                     "seconds": s.get("duration_s"), "gate": s.get("gate_summary", ""),
                     "report": s.get("report", "")})
    run_dir = project.runs_dir / manifest["run_id"]
    return Report(
        title=f"Run {manifest['run_id']}: {manifest['status']}",
        summary={"project": project.name, "status": manifest["status"],
                 "phases": ", ".join(str(p) for p in manifest["phases_requested"]),
                 "started": manifest["started"], "finished": manifest.get("finished") or ""},
        tables={"phases": pd.DataFrame(rows)},
        artifacts={"manifest": str(run_dir / "manifest.json"), "reports": str(project.reports_dir)},
        data={"manifest": manifest},
        value=manifest,
    )


def lifecycle_status(project: Project, limit: int = 5) -> Report:
    """Recent runs, the latest run's phases, and the governance approvals."""
    import pandas as pd

    runs = list_runs(project, "lifecycle")
    if not runs:
        return Report(title=f"Project {project.name}: no lifecycle runs yet",
                      messages=["Start one with `omg ml run` (or `%omgml run`)."])
    latest = runs[0]
    report = _run_report(project, latest)
    report.title = f"Project {project.name}: latest run {latest['run_id']} {latest['status']}"
    report.tables["recent runs"] = pd.DataFrame([
        {"run": r["run_id"], "started": r.get("started"), "status": r.get("status"),
         "phases": ",".join(str(p) for p in r.get("phases_requested", [])),
         "failed phase": r.get("failed_phase") or ""} for r in runs[:limit]])
    approvals = [a for r in runs for a in r.get("approvals", [])]
    if approvals:
        report.tables["approvals"] = pd.DataFrame(approvals)
    if latest["status"] == "failed":
        report.messages.append(f"Phase {latest.get('failed_phase')} failed; {RESUME_HINT}.")
    return report


def approve_gate(project: Project, phase: int, by: str, note: str = "",
                 run_id: str | None = None) -> Report:
    """Record a governance approval of `phase` in a run's manifest (default: the latest run)."""
    runs = list_runs(project, "lifecycle")
    if run_id:
        runs = [r for r in runs if r["run_id"] == run_id]
        if not runs:
            raise UsageError(f"No run '{run_id}' in {project.runs_dir}. See `omg ml status`.")
    if not runs:
        raise UsageError("No run to approve: run the phase first with `omg ml run --phases "
                         f"{phase}`.")
    manifest = runs[0]
    state = manifest["phases"].get(str(phase))
    if not state or state.get("status") != "passed":
        status = state.get("status") if state else "not run"
        raise GateFailedError(f"Phase {phase} of run {manifest['run_id']} has not passed its gate "
                              f"(status: {status}); it cannot be approved. Run it with "
                              f"`omg ml run --phases {phase}` first.")
    checkpoints = project.config.get_path("brief.checkpoints", {}) or {}
    checkpoint = checkpoints.get(phase) or checkpoints.get(str(phase)) or {}
    entry = {"phase": phase, "checkpoint": checkpoint.get("name", GATE_NAMES[phase]),
             "owner": checkpoint.get("owner"), "by": by, "note": note, "time": clock.stamp(),
             "run_id": manifest["run_id"], "gate": state.get("gate_summary", "")}
    manifest.setdefault("approvals", []).append(entry)
    write_json(project.runs_dir / manifest["run_id"] / "manifest.json", manifest)
    return Report(title=f"Approved phase {phase} ({entry['checkpoint']}) of run {manifest['run_id']} "
                        f"by {by}", summary=entry,
                  artifacts={"manifest": str(project.runs_dir / manifest["run_id"] / "manifest.json")})


def list_approvals(project: Project) -> Report:
    import pandas as pd

    approvals = [a for r in list_runs(project) for a in r.get("approvals", [])]
    return Report(title=f"{len(approvals)} governance approval(s) in {project.name}",
                  tables={"approvals": pd.DataFrame(approvals)} if approvals else {})


__all__ = ["run_lifecycle", "lifecycle_status", "approve_gate", "list_approvals", "render_report",
           "export_project_code", "OmgError"]
