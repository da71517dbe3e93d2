"""Monitoring and drift on a project's prediction log: windows, thresholds, alerts, reports, damaged
logs, configuration."""

from __future__ import annotations

import json
import re

import pytest

from omgmagics.errors import ConfigError, DataError, UsageError
from omgmagics.io.journal import read
from omgmagics.ops.drift_report import run_drift
from omgmagics.ops.monitor import run_monitor
from omgmagics.ops.predlog import read_log
from omgmagics.project import Project
from tests.helpers.ops import small_project, write_log, write_reference


@pytest.fixture
def project(tmp_path):
    return Project.at(small_project(tmp_path))


def test_monitor_series_thresholds_alerts_and_dashboard(project):
    write_log(project.root, days=6, per_day=80, latency=5.0)
    # day 4 is slow and fails often; day 5 loses a feature
    day4 = project.root / "monitoring/predictions/2026-01-04.jsonl"
    recs = [json.loads(x) for x in day4.read_text().splitlines()]
    for i, r in enumerate(recs):
        r["latency_ms"] = 120.0
        if i % 10 == 0:
            r.update(status="error", prediction=None, score=None, error="timeout")
    day4.write_text("".join(json.dumps(r) + "\n" for r in recs))
    day5 = project.root / "monitoring/predictions/2026-01-05.jsonl"
    recs = [json.loads(x) for x in day5.read_text().splitlines()]
    for r in recs[:40]:
        r["inputs"]["z"] = None
    day5.write_text("".join(json.dumps(r) + "\n" for r in recs))
    report = run_monitor(project)
    series = report.value
    assert list(series["requests"]) == [80] * 6 and int(series["errors"].sum()) == 8
    assert series["error rate"].iloc[3] == pytest.approx(0.1)
    assert series["latency p99 ms"].iloc[3] == pytest.approx(120.0)
    assert series["max missing share"].iloc[4] == pytest.approx(40 / 80)
    assert series["most missing feature"].iloc[4] == "z"
    assert series["labels"].sum() == 480 - 8 and (series["live roc_auc"] > 0.7).all()
    kinds = sorted(a["kind"] for a in report.data["alerts"])
    assert kinds == ["error_rate", "latency", "missingness"]
    latency = next(a for a in report.data["alerts"] if a["kind"] == "latency")
    assert latency["message"] == "2026-01-04 .. 2026-01-05: latency p99 120.0 ms > 50 ms."
    assert (project.reports_dir / "monitoring_dashboard.html").read_text().count("<img") == 1
    assert len(read(project.monitoring_dir / "alerts.jsonl")) == 3
    again = run_monitor(project)
    assert again.data["alerts"] == [] and len(read(project.monitoring_dir / "alerts.jsonl")) == 3


def test_monitor_live_metric_alert_and_config_file(project, tmp_path):
    write_log(project.root, days=3, per_day=100, good_model=False)
    cfg = tmp_path / "monitoring.yaml"
    cfg.write_text("window: 12h\nthresholds: {latency_p99_ms: null, min_labels: 20}\n")
    report = run_monitor(project, str(cfg))
    assert len(report.value) == 6  # 12-hour buckets
    perf = [a for a in report.data["alerts"] if a["kind"] == "performance"]
    assert perf and all(a["threshold"] == 0.7 for a in perf)  # brief.objective.threshold
    assert not [a for a in report.data["alerts"] if a["kind"] == "latency"]
    cfg.write_text("thresholds: {latency_p99: 10}\n")
    with pytest.raises(ConfigError, match=re.escape("monitoring.yaml: unknown key 'thresholds.latency_p99'. "
                                                    "Did you mean: latency_p99_ms, latency_p50_ms?")):
        run_monitor(project, str(cfg))


def test_corrupt_log_parts_are_skipped_and_reported(project):
    write_log(project.root, days=3, per_day=50)
    folder = project.root / "monitoring/predictions"
    with open(folder / "2026-01-02.jsonl", "a") as fh:
        fh.write("{broken\n[1, 2]\n{\"request_id\": \"x\", \"time\": \"yesterday\"}\n")
    (folder / "2026-01-03.jsonl").write_bytes(b"\x00\xff\xfe garbage\n\x89PNG\n")
    (folder / "notes.txt").write_text("not a log")
    log, problems = read_log(project)
    assert len(log) == 100  # both good days, nothing else lost
    assert problems.items == [
        "notes.txt: skipped, its name is not YYYY-MM-DD.jsonl.",
        "2026-01-02.jsonl: 3 of 53 line(s) skipped (not JSON: line 51; not a JSON object: line 52; "
        "no valid time: line 53).",
        "2026-01-03.jsonl: skipped, none of its 2 line(s) is a valid record (not JSON: lines 1, 2).",
    ]
    report = run_monitor(project)
    assert report.summary["requests"] == 100
    assert any(m.startswith("2026-01-03.jsonl: skipped") for m in report.messages)


def test_empty_log_is_a_clear_message(project):
    with pytest.raises(DataError, match=re.escape("The prediction log has no records. Serve the model "
                                                  "(`omg deploy serve`) or replay traffic")):
        run_monitor(project)
    with pytest.raises(DataError, match=re.escape("The prediction log monitoring/predictions/ has no "
                                                  "records.")):
        write_reference(project.root)
        run_drift(project)


def test_drift_on_the_log_windows_history_alerts_and_report(project):
    write_reference(project.root)
    write_log(project.root, days=8, per_day=150, shift_from=6, shift=1.5)
    report = run_drift(project, window="1d")
    assert report.summary["window"] == "2026-01-08 .. 2026-01-09"
    assert report.summary["drifted"] == "x" and report.summary["dataset drift"] == "pass"
    assert report.summary["prediction drift"] == "fail"  # scores follow x
    table = report.tables["features"]
    assert list(table["feature"])[:2] == ["x", "score (prediction)"]
    assert set(table["feature"]) == {"x", "z", "color", "score (prediction)"}  # no target, no log fields
    kinds = sorted(a["kind"] for a in report.data["alerts"])
    assert kinds == ["feature_drift", "prediction_drift"]
    page = project.root / report.artifacts["report"].split(str(project.root) + "/")[-1]
    assert page.name.startswith("drift_") and page.read_text().count("<img") == 1
    rolling = run_drift(project, window="1d", since="2026-01-01")
    assert list(rolling.tables["windows"]["drifted"]) == [0, 0, 0, 0, 0, 1, 1, 1]
    hist = read(project.monitoring_dir / "drift_history.jsonl")
    assert len(hist) == 9 and hist[-1]["window"]["start"].startswith("2026-01-08")
    # the same windows again: history grows, alerts do not repeat
    n_alerts = len(read(project.monitoring_dir / "alerts.jsonl"))
    run_drift(project, window="1d", since="2026-01-01")
    assert len(read(project.monitoring_dir / "alerts.jsonl")) == n_alerts


def test_drift_bad_inputs(project, tmp_path):
    write_reference(project.root)
    write_log(project.root, days=2, per_day=60)
    with pytest.raises(UsageError, match=re.escape("The window '7x' is not a duration.")):
        run_drift(project, window="7x")
    with pytest.raises(DataError, match=re.escape("No rows of the current data (prediction log "
                                                  "(monitoring/predictions)) fall in the window "
                                                  "2025-06-01 .. 2025-06-08. The data spans")):
        run_drift(project, until="2025-06-08")
    ref = tmp_path / "wide.csv"
    import pandas as pd

    pd.read_parquet(project.monitoring_dir / "reference.parquet").assign(
        tenure=1.0, region="north").to_csv(ref, index=False)
    with pytest.raises(DataError, match=re.escape("lacks 2 column(s) of the reference")) as err:
        run_drift(project, reference=str(ref))
    assert "tenure, region" in str(err.value)
    with pytest.raises(UsageError, match=re.escape("Feature 'colour' is not a column of the reference. "
                                                   "Did you mean: color?")):
        run_drift(project, features=["colour"])
    cur = tmp_path / "cur.csv"
    pd.read_parquet(project.monitoring_dir / "reference.parquet").assign(when=3).to_csv(cur, index=False)
    with pytest.raises(DataError, match=re.escape("The time column 'when' is not a time: it holds "
                                                  "numeric values.")):
        run_drift(project, current=str(cur), time_column="when")
