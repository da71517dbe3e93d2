"""``%omgml`` / ``omg ml``: init, run, status, gate (command layer)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ._registry import Context, arg, command, optional_fraction


@command(
    "ml", "init",
    arg("name", help="project name: a folder created in --dir (letters, digits, - and _)"),
    arg("--template", choices=["classification", "regression"], default=None,
        help="problem type (default: inferred from the target, classification for the demo)"),
    arg("--data", metavar="PATH", default=None,
        help="your own csv or parquet table (default: the bundled Adult census income data)"),
    arg("--target", metavar="COL", default=None, help="target column of --data"),
    arg("--dir", metavar="PARENT", default=".", help="folder in which to create the project"),
    help="scaffold a project: omg.yaml brief, five phase notebooks, docs, ADRs, nbdev config",
    description=(
        "Create a project folder with omg.yaml (the brief: objective, target, primary metric and\n"
        "threshold, latency/throughput/size constraints, sensitive features, time column), the five\n"
        "phase notebooks, docs and ADR templates, .gitignore and nbdev config. Without --data the\n"
        "project uses the bundled Adult census income demo data."
    ),
    examples=["init churn", "init churn --data customers.csv --target churned"],
    writes=False,  # a new folder, renamed into place: no project to lock yet
)
def init(ns: argparse.Namespace, ctx: Context):
    from ..scaffold import init_project

    return init_project(ns.name, parent=ns.dir, template=ns.template, data=ns.data, target=ns.target)


def parse_phases(text: str) -> list[int]:
    """``"1-3"`` -> [1, 2, 3]; ``"1,3"`` -> [1, 3]; each in 1..5."""
    phases: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                phases.extend(range(lo, hi + 1))
            else:
                phases.append(int(part))
    except ValueError:
        raise UsageError(f"--phases '{text}' is not a phase list. Use a range like 1-5 or a list "
                         "like 1,2,3.") from None
    if not phases or any(p < 1 or p > 5 for p in phases) or phases != sorted(set(phases)):
        raise UsageError(f"--phases '{text}' must name phases 1 to 5 in increasing order, e.g. 1-5.")
    return phases


def parse_params(items: list[str]) -> dict[str, object]:
    """``["n_trials=5", "sample_frac=0.1"]`` -> a dict with YAML-typed values."""
    import yaml

    params: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"-p '{item}' is not KEY=VALUE with KEY a Python name. "
                             "Example: -p n_trials=20")
        params[key] = yaml.safe_load(value) if value else ""
    return params


@command(
    "ml", "run",
    arg("--phases", default="1-5", help="phases to run: a range (1-5) or a list (1,2)"),
    arg("--resume", action="store_true",
        help="continue the latest run from its failed phase without redoing finished ones"),
    arg("-p", "--param", dest="params", action="append", metavar="KEY=VALUE", default=[],
        help="notebook parameter passed to every phase (repeatable), e.g. -p sample_frac=0.1"),
    arg("--no-gates", action="store_true", help="record gate results but do not stop on a failure"),
    help="execute the phase notebooks with papermill, check gates, render reports, write a manifest",
    examples=["run", "run --phases 1-3 -p sample_frac=0.1", "run --resume"],
)
def run(ns: argparse.Namespace, ctx: Context):
    from ..runner import run_lifecycle

    return run_lifecycle(ctx.project(), phases=parse_phases(ns.phases), resume=ns.resume,
                         params=parse_params(ns.params), enforce_gates=not ns.no_gates,
                         progress=ctx.progress)


@command(
    "ml", "status",
    arg("--runs", type=int, default=5, help="how many recent runs to list"),
    help="lifecycle status: recent runs, phase states, gates and approvals",
    examples=["status"],
    writes=False,
)
def status(ns: argparse.Namespace, ctx: Context):
    from ..runner import lifecycle_status

    if ns.runs < 1:
        raise UsageError(f"--runs must be at least 1, got {ns.runs}.")
    return lifecycle_status(ctx.project(), limit=ns.runs)


@command(
    "ml", "gate",
    arg("action", choices=["approve", "list"], help="approve a checkpoint, or list approvals"),
    arg("--phase", type=int, default=None, help="phase 1-5 whose checkpoint is approved"),
    arg("--by", metavar="NAME", default=None, help="who approves (recorded)"),
    arg("--note", default="", help="a comment kept with the approval"),
    arg("--run", metavar="RUN_ID", default=None, help="the run to approve (default: the latest)"),
    help="record governance checkpoint approvals (phase 1-5 table of the brief)",
    examples=["gate approve --phase 1 --by alice --note 'scope agreed'", "gate list"],
    writes=lambda ns: ns.action == "approve",
)
def gate(ns: argparse.Namespace, ctx: Context):
    from ..runner import approve_gate, list_approvals

    if ns.action == "list":
        return list_approvals(ctx.project())
    if ns.phase is None or ns.by is None:
        raise UsageError("gate approve needs --phase N and --by NAME, e.g. "
                         "`gate approve --phase 1 --by alice`.")
    if not 1 <= ns.phase <= 5:
        raise UsageError(f"--phase must be 1 to 5, got {ns.phase}.")
    return approve_gate(ctx.project(), phase=ns.phase, by=ns.by, note=ns.note, run_id=ns.run)


PHASE1_DATA = arg("--data", metavar="PATH|DATAFRAME", default=None,
                  help="input table: a csv/parquet/jsonl path or a DataFrame variable of the notebook "
                       "(default: the project's data.source)")


def _phase1_steps(ctx: Context, total: int, desc: str):
    """A progress bar and the ``step(name)`` callback the phase 1 core functions report to."""
    bar = ctx.progress(total=total, desc=desc)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    return bar, step


@command(
    "ml", "feasibility",
    PHASE1_DATA,
    arg("--sample-frac", type=optional_fraction, default=None,
        help="prototype on a seeded sample of this share of labeled rows (default: all, up to "
             "--max-rows)"),
    arg("--cv", type=int, default=5, help="cross-validation folds (at least 2)"),
    arg("--max-rows", type=int, default=20_000,
        help="without --sample-frac, sample this many labeled rows when there are more (0: never)"),
    help="quick honest prototype: dummy vs fast model, readiness scores, risks, recommendation",
    description=(
        "Cross-validate a dummy baseline against HistGradientBoosting on a seeded sample, scored\n"
        "with the brief's primary metric. Reports technical_feasibility and data_readiness (0..1,\n"
        "formulas shown), the estimated metric range, whether similar solutions exist, risks\n"
        "derived from the data (imbalance, leakage, small data, drift, missing labels, constraints)\n"
        "and a recommendation. Writes reports/feasibility.json (the phase 1 gate reads it)."
    ),
    examples=["feasibility", "feasibility --cv 3 --sample-frac 0.5"],
)
def feasibility(ns: argparse.Namespace, ctx: Context):
    from ..discovery import FEASIBILITY_JSON
    from ..discovery.audit import load_input
    from ..discovery.brief import Brief
    from ..discovery.feasibility import assess_feasibility

    if ns.max_rows < 0:
        raise UsageError(f"--max-rows must be 0 (never sample) or more, got {ns.max_rows}.")
    project = ctx.project()
    df, source, what = load_input(project, ns.data, ctx.table, ctx.namespace)
    bar, step = _phase1_steps(ctx, 9, "feasibility")
    try:
        return assess_feasibility(df, Brief.from_config(project.config),
                                  json_path=project.reports_dir / FEASIBILITY_JSON, cv=ns.cv,
                                  sample_frac=ns.sample_frac, max_rows=ns.max_rows, source=source,
                                  what=what, step=step)
    finally:
        bar.close()


@command(
    "ml", "report",
    arg("--pdf", action="store_true", help="also print the bundle to PDF through headless Chromium"),
    help="write reports/index.html linking every phase report and governance document",
    description="The runner refreshes the bundle after every run; this verb rebuilds it on demand.",
    examples=["report", "report --pdf"],
)
def report(ns: argparse.Namespace, ctx: Context):
    from ..review import build_index, print_pdf

    project = ctx.project()
    result = build_index(project)
    if ns.pdf:
        pdf = print_pdf(project.reports_dir / "index.html", project.reports_dir / "review.pdf")
        result.artifacts["pdf"] = str(pdf)
    return result


@command(
    "ml", "ui",
    arg("--port", type=int, default=5000, help="port for the MLflow UI on 127.0.0.1"),
    arg("--dashboard-port", type=int, default=8080, help="port for optuna-dashboard on 127.0.0.1"),
    arg("--stop", action="store_true", help="stop the UIs started for this project"),
    help="start MLflow's UI (and optuna-dashboard) on the project's stores",
    examples=["ui", "ui --port 5001", "ui --stop"],
    writes=False,  # starts viewers on the stores; their pid file is no shared state
)
def ui(ns: argparse.Namespace, ctx: Context):
    from ..uis import start_uis, stop_uis

    if ns.stop:
        return stop_uis(ctx.project())
    return start_uis(ctx.project(), port=ns.port, dashboard_port=ns.dashboard_port)


@command(
    "ml", "brief",
    PHASE1_DATA,
    help="problem framing: check the brief of omg.yaml against the data, write the problem statement",
    description=(
        "Check the brief (objective type, target, primary metric and threshold range, positive\n"
        "label, constraints, sensitive features, time column) against the data, and write\n"
        "docs/problem_statement.md from it. Each inconsistency is an error naming the key of\n"
        "omg.yaml to fix; nothing is written then."
    ),
    examples=["brief", "brief --data df"],
)
def brief(ns: argparse.Namespace, ctx: Context):
    from ..discovery import PROBLEM_STATEMENT
    from ..discovery.audit import load_input
    from ..discovery.brief import Brief, frame_problem

    project = ctx.project()
    df, source, what = load_input(project, ns.data, ctx.table, ctx.namespace)
    where = source.get("location") if source.get("kind") != "dataframe" else \
        f"{source.get('location')} (from {source.get('declared') or 'an unrecorded source'})"
    return frame_problem(df, Brief.from_config(project.config), project.docs_dir / PROBLEM_STATEMENT,
                         source=str(where), what=what)


@command(
    "ml", "plan",
    arg("--start", metavar="YYYY-MM-DD", default=None,
        help="first day of the timeline (default: project.created of omg.yaml, else today)"),
    help="project plan and scope ADR from the brief and the feasibility study",
    description=(
        "Write docs/project_plan.md (scope, architecture sketch, resource requirements, timeline and\n"
        "milestones from brief.timeline, a mitigation for every risk) and\n"
        "decisions/adr-000-project-scope.md from omg.yaml, reports/feasibility.json and\n"
        "reports/data_audit.json. Run the feasibility study (and the audit) first."
    ),
    examples=["plan", "plan --start 2026-01-05"],
)
def plan(ns: argparse.Namespace, ctx: Context):
    from ..discovery import AUDIT_JSON, FEASIBILITY_JSON, PROJECT_PLAN, SCOPE_ADR
    from ..discovery.brief import Brief
    from ..discovery.plan import load_result, write_plan

    project = ctx.project()
    feas = load_result(project.reports_dir / FEASIBILITY_JSON, "feasibility study",
                       f"run `{ctx.name('ml', 'feasibility')}` first.")
    audit_path = project.reports_dir / AUDIT_JSON
    audit = load_result(audit_path, "data audit", "") if audit_path.is_file() else None
    return write_plan(Brief.from_config(project.config), feas, audit,
                      plan_path=project.docs_dir / PROJECT_PLAN,
                      adr_path=project.decisions_dir / SCOPE_ADR, start=ns.start)
