"""``%omgops`` / ``omg ops``: monitor, pipeline, drift, retrain (command layer)."""

from __future__ import annotations

from ._registry import arg, planned

P5 = "issue #7 (Phase 5: operations)"

planned(
    "ops", "monitor",
    arg("--config", metavar="YAML", default="monitoring.yaml", help="thresholds and windows"),
    help="volume, latency, error rate, score and feature distributions, alerts",
    examples=["monitor --config monitoring.yaml"],
    issue=P5,
)
planned(
    "ops", "pipeline",
    arg("--action", choices=["status", "run", "history"], default="status", help="what to show or do"),
    help="the lifecycle runner's, retrain queue's and deployments' state",
    examples=["pipeline --action history"],
    issue=P5,
)
planned(
    "ops", "drift",
    arg("--reference", metavar="PATH", default=None, help="reference data (e.g. baseline.parquet)"),
    arg("--current", metavar="PATH", default=None, help="current data (default: the prediction log)"),
    arg("--window", default="7d", help="time window, e.g. 7d, 12h"),
    help="per-feature PSI / KS / chi-square / Jensen-Shannon drift, dataset drift, HTML report",
    examples=["drift --reference baseline.parquet --window 7d"],
    issue=P5,
)
planned(
    "ops", "retrain",
    arg("--trigger", choices=["drift", "schedule", "performance", "manual"], default="manual",
        help="why retraining is asked for"),
    arg("--priority", choices=["low", "normal", "high"], default="normal", help="queue priority"),
    help="re-run data and model phases, compare challenger with champion, promote via canary",
    examples=["retrain --trigger drift --priority high"],
    issue=P5,
)
