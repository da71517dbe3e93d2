"""``%omgops`` / ``omg ops``: monitor, pipeline, drift, retrain, simulate, review (command layer)."""

from __future__ import annotations

import argparse
from typing import Any

from ._registry import Context, arg, command

WINDOW_HELP = "a duration: a whole number and a unit s, m, h, d or w (e.g. 12h, 7d)"


def _table_or_path(ctx: Context, ref: str | None) -> Any:
    """A DataFrame variable of the notebook, else the path itself (read in batches by the core)."""
    if ref is None:
        return None
    if ctx.namespace is not None and ref.isidentifier() and ref in ctx.namespace:
        return ctx.table(ref)
    from pathlib import Path

    path = Path(ref)
    if not path.exists() and not path.is_absolute():
        candidate = ctx.project().root / path
        if candidate.exists():
            return candidate
    if not path.exists() and ctx.namespace is not None and ref.isidentifier():
        return ctx.table(ref)  # raises the "neither a file nor a DataFrame" message
    return path


@command(
    "ops", "monitor",
    arg("--config", metavar="YAML", default=None,
        help="thresholds and windows (default: monitoring.yaml in the project if it exists, else the "
             "monitoring section of omg.yaml)"),
    arg("--window", default=None, help=f"bucket of the time series, {WINDOW_HELP} (default 1d)"),
    arg("--since", metavar="DATE", default=None, help="only requests from this date or time on (ISO-8601)"),
    arg("--until", metavar="DATE", default=None, help="only requests before this date or time (ISO-8601)"),
    arg("--env", default=None,
        help="only requests of this environment, e.g. production (default: monitoring.env, else all)"),
    help="volume, latency, error rate, score and feature distributions, live metric, alerts",
    description=(
        "Reads the prediction log (monitoring/predictions/YYYY-MM-DD.jsonl) window by window and, once\n"
        "ground truth arrives (monitoring/feedback.jsonl, joined by request_id), the live primary\n"
        "metric. Thresholds raise alerts into monitoring/alerts.jsonl; the dashboard is written to\n"
        "reports/monitoring_dashboard.html. Damaged log lines or files are skipped and reported."
    ),
    examples=["monitor", "monitor --config monitoring.yaml --window 12h", "monitor --since 2026-01-01"],
)
def monitor(ns: argparse.Namespace, ctx: Context):
    from ..ops.monitor import run_monitor

    project = ctx.project()
    return run_monitor(project, ns.config, window=ns.window, since=ns.since, until=ns.until,
                       env=ns.env)


@command(
    "ops", "pipeline",
    arg("--action", choices=["status", "run", "history"], default="status",
        help="status: runs, queue, deployments; run: work through the queued retrain jobs now; "
             "history: past runs, jobs, decisions and drift checks"),
    arg("--limit", type=int, default=20, help="how many entries per history table"),
    arg("--max-jobs", type=int, default=None, help="with --action run: stop after this many jobs"),
    help="the lifecycle runner's, retrain queue's and deployments' state",
    examples=["pipeline", "pipeline --action run", "pipeline --action history"],
    writes=lambda ns: ns.action == "run",
)
def pipeline(ns: argparse.Namespace, ctx: Context):
    from ..errors import UsageError

    if ns.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {ns.limit}.")
    project = ctx.project()
    if ns.action == "run":
        from ..lifecycle.retrain_job import run_queue

        return run_queue(project, max_jobs=ns.max_jobs, progress=ctx.progress)
    if ns.action == "history":
        from ..lifecycle.pipeline import pipeline_history

        return pipeline_history(project, ns.limit)
    from ..lifecycle.pipeline import pipeline_status

    return pipeline_status(project)


@command(
    "ops", "drift",
    arg("--reference", metavar="PATH", default=None,
        help="reference data: parquet file or partitioned folder, csv, json lines, or a DataFrame "
             "variable (default: monitoring/reference.parquet)"),
    arg("--current", metavar="PATH", default=None,
        help="current data with a time column (default: the prediction log)"),
    arg("--window", default=None, help=f"length of the compared window, {WINDOW_HELP} (default 7d)"),
    arg("--since", metavar="DATE", default=None,
        help="compare every window from this date on (rolling), not only the current one"),
    arg("--until", metavar="DATE", default=None,
        help="end of the current window (default: just after the latest time in the data)"),
    arg("--features", metavar="A,B", default=None, help="compare only these columns"),
    arg("--time-column", metavar="COL", default=None,
        help="time column of --current (default: brief.time_column; the log's 'time')"),
    arg("--config", metavar="YAML", default=None,
        help="thresholds (default: monitoring.yaml in the project if it exists, else omg.yaml's "
             "monitoring.drift)"),
    arg("--env", default=None,
        help="with the prediction log: only requests of this environment (default: monitoring.env)"),
    help="per-feature PSI / KS / chi-square / Jensen-Shannon drift, dataset drift, HTML report",
    description=(
        "Per feature: PSI, KS (numeric) or chi-square (categorical), Jensen-Shannon distance and the\n"
        "normalized Wasserstein distance. A feature drifts when its test is significant after a Holm\n"
        "correction (p < 0.05) and PSI >= 0.1; dataset drift from 50 % of the features; the model's\n"
        "score is compared as prediction drift. Data is read in batches (memory stays bounded).\n"
        "Writes reports/drift_*.html, appends monitoring/drift_history.jsonl, raises drift alerts."
    ),
    examples=["drift --reference baseline.parquet --window 7d", "drift --since 2026-01-01 --window 1d",
              "drift --reference train.parquet --current events/ --time-column ts"],
)
def drift(ns: argparse.Namespace, ctx: Context):
    from ..ops.drift_report import run_drift

    project = ctx.project()
    features = [f.strip() for f in ns.features.split(",") if f.strip()] if ns.features else None
    return run_drift(project, _table_or_path(ctx, ns.reference), _table_or_path(ctx, ns.current),
                     window=ns.window, since=ns.since, until=ns.until, features=features,
                     time_column=ns.time_column, config=ns.config, env=ns.env)


@command(
    "ops", "retrain",
    arg("--trigger", choices=["drift", "schedule", "performance", "manual"], default="manual",
        help="why retraining is asked for; drift and performance need an unanswered alert, schedule "
             "an old last retrain (retraining.schedule)"),
    arg("--priority", choices=["low", "normal", "high"], default="normal", help="queue priority"),
    arg("--reason", default="", help="why, in words (kept in the retrain history)"),
    arg("--decline", action="store_true",
        help="record a decision NOT to retrain instead; it answers the trigger's open alerts "
             "(needs --reason)"),
    arg("--by", metavar="NAME", default=None, help="who decided (with --decline)"),
    arg("--force", action="store_true", help="queue even when the trigger does not hold"),
    arg("--queue-only", action="store_true",
        help="only queue the job; `pipeline --action run` (or another worker) runs it"),
    arg("--eval-window", default=None,
        help=f"the latest labeled window both models are compared on, {WINDOW_HELP} "
             "(default retraining.eval_window, 7d)"),
    arg("--min-improvement", type=float, default=None,
        help="how much better the challenger must be (default retraining.min_improvement)"),
    help="re-run data and model phases, compare challenger with champion, promote via canary",
    description=(
        "When the trigger holds, a job is queued (a durable queue: priority order, duplicate\n"
        "triggers folded, one job at a time under a lock) and run: phases 2 and 3 re-run through the\n"
        "lifecycle runner on the reference data plus the new labeled traffic, the new model becomes\n"
        "`challenger`, both models are scored on the latest labeled window, and only a challenger\n"
        "better by retraining.min_improvement goes to the canary rollout (retraining.rollout).\n"
        "Every decision and its reason goes to monitoring/retrain_history.jsonl."
    ),
    examples=["retrain --trigger drift --priority high",
              "retrain --trigger drift --decline --reason 'seasonal, expected to revert' --by alice",
              "retrain --trigger manual --queue-only"],
    # a request or a decision alone goes to the queue and the history (each has its own lock), so a
    # trigger is never lost to a busy project; running the job writes data, features and aliases
    writes=lambda ns: not (ns.queue_only or ns.decline),
)
def retrain(ns: argparse.Namespace, ctx: Context):
    from ..lifecycle.retrain_job import retrain as run
    from ..ops.windows import parse_duration

    if ns.eval_window is not None:
        parse_duration(ns.eval_window, "--eval-window")
    if ns.min_improvement is not None and not ns.min_improvement >= 0:
        from ..errors import UsageError

        raise UsageError(f"--min-improvement must be 0 or more (how much better the challenger must "
                         f"be), got {ns.min_improvement:g}.")
    overrides = {"eval_window": ns.eval_window, "min_improvement": ns.min_improvement}
    return run(ctx.project(), ns.trigger, ns.priority, ns.reason, force=ns.force,
               run=not ns.queue_only, decline_it=ns.decline, by=ns.by, progress=ctx.progress,
               overrides=overrides)


@command(
    "ops", "simulate",
    arg("--data", metavar="PATH", default=None,
        help="held-out rows with the target to replay (default: data/processed/test.parquet, else the "
             "project's data)"),
    arg("--days", type=int, default=14, help="simulated days of traffic"),
    arg("--per-day", type=int, default=None,
        help="requests per day (default: rows / days, at least 30; rows are reused with replacement "
             "when there are fewer than days x per-day, and the report says so)"),
    arg("--start", metavar="DATE", default=None,
        help="first simulated day (default: the day after the log's last day, or 2026-01-01)"),
    arg("--shift", default=None,
        help="shift injected into the later days: COL*FACTOR, COL+DELTA, COL-DELTA or COL=VALUE, "
             "comma-separated; quote a column name that has anything but letters, digits, _ and . "
             "(a space, a dash, brackets) with '...', \"...\" or `...`, e.g. "
             "\"amount*1.5,'unit price (EUR)'+10\"; values stay inside the schema's min/max"),
    arg("--shift-from", type=int, default=None, help="first simulated day (1-based) with the shift"),
    arg("--model", default="champion", help="champion, challenger or a registry version number"),
    arg("--label-delay", default="1d", help=f"when the ground truth arrives after a request, {WINDOW_HELP}"),
    arg("--label-share", type=float, default=1.0, help="share of requests that get a label"),
    arg("--error-rate", type=float, default=0.0, help="share of requests logged as errors"),
    arg("--seed", type=int, default=None, help="random seed (default: the project's seed)"),
    arg("--env", default="simulation",
        help="the env written into each record; monitor it alone with monitoring.env"),
    help="replay held-out data as simulated days of traffic through the registered model",
    description=(
        "For demos and drills: writes the prediction log and feedback in the serving contract, with\n"
        "simulated timestamps (marked env: simulation; described in monitoring/simulation.json), and\n"
        "monitoring/reference.parquet (training rows with the model's outputs) as the drift reference.\n"
        "Shift syntax: COL*FACTOR, COL+DELTA, COL-DELTA, COL=VALUE, comma-separated. A column name\n"
        "made of letters (any script), digits, _ and . is written as is; any other goes in quotes:\n"
        "'unit price (EUR)'*1.2, \"a,b\"+1 or `x-ray`=none. A shifted number is clipped to the\n"
        "column's min/max in the project's schema; a COL=VALUE outside its allowed values is refused.\n"
        "A multiclass model's per-class probabilities are logged with each request."
    ),
    examples=["simulate --days 14 --shift \"amount*1.5,'unit price (EUR)'+10\" --shift-from 9",
              "simulate --days 14 --per-day 300 --shift 'region=north' --shift-from 8 --seed 1"],
)
def simulate(ns: argparse.Namespace, ctx: Context):
    from ..ops.simulate import simulate_traffic

    project = ctx.project()
    rows = _table_or_path(ctx, ns.data)
    if rows is not None and not hasattr(rows, "columns"):
        from ..io import read_table

        rows = read_table(rows)
    return simulate_traffic(project, rows, days=ns.days, per_day=ns.per_day, start=ns.start,
                            shift=ns.shift, shift_from=ns.shift_from, model=ns.model,
                            label_delay=ns.label_delay, label_share=ns.label_share,
                            error_rate=ns.error_rate, seed=ns.seed, env=ns.env)


@command(
    "ops", "review",
    arg("--min-rows", type=int, default=30, help="smallest slice (labeled requests) that is ranked"),
    help="iteration review: weakest slices, alerts and drift since the last one, opportunities",
    description="Writes docs/iteration_review.md from the labeled traffic, alerts, drift history and "
                "retrain decisions since the previous review.",
    examples=["review"],
)
def review(ns: argparse.Namespace, ctx: Context):
    from ..errors import UsageError
    from ..ops.review import write_review

    if ns.min_rows < 1:
        raise UsageError(f"--min-rows must be at least 1, got {ns.min_rows}.")
    return write_review(ctx.project(), min_rows=ns.min_rows)
