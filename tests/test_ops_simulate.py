"""The replayed traffic of the closed-loop demo: the serving contract, label delays, the injected
shift, the environment filter and the shift-to-detection measurement."""

from __future__ import annotations

import re

import numpy as np
import pytest

from omgmagics.errors import UsageError
from omgmagics.io.journal import read
from omgmagics.ops.drift_report import run_drift
from omgmagics.ops.monitor import run_monitor
from omgmagics.ops.predlog import read_log
from omgmagics.ops.scoring import Scorer
from omgmagics.ops.simulate import loop_summary, parse_shift, simulate_traffic
from omgmagics.project import Project
from tests.helpers.ops import frame, small_project


def _scorer():
    from sklearn.linear_model import LogisticRegression

    from omgmagics.modeling.models import OmgModel

    df = frame(2000, 11)
    est = LogisticRegression().fit(df[["x", "z"]].to_numpy(), (df["income"] == ">50K").astype(int))
    model = OmgModel("sklearn", "logistic_regression", est, task="classification",
                     feature_names=["x", "z"], classes=["<=50K", ">50K"], positive_label=">50K")
    return Scorer("7", model)


def test_simulated_days_follow_the_serving_contract(tmp_path):
    project = Project.at(small_project(tmp_path))
    rows = frame(900, 12)
    report = simulate_traffic(project, rows, days=6, per_day=100, shift="x+1.5", shift_from=4,
                              reference=frame(1500, 13), scorer=_scorer(), label_delay="1d")
    assert report.summary["requests"] == 600 and report.messages[0].startswith("SIMULATION:")
    log, problems = read_log(project)
    assert len(log) == 600 and not problems.items
    assert set(log["env"]) == {"simulation"} and set(log["model_version"]) == {"7"}
    assert log["time"].min().isoformat().startswith("2026-01-01")
    assert log["time"].max().isoformat().startswith("2026-01-06")
    day = log["time"].dt.day
    assert log.loc[day >= 4, "x"].mean() - log.loc[day < 4, "x"].mean() > 1.0  # the injected shift
    assert set(log.columns) >= {"request_id", "latency_ms", "status", "prediction", "score", "x", "z",
                                "color"} and "income" not in log.columns
    fb = read(project.monitoring_dir / "feedback.jsonl")
    assert len(fb) == 500  # the last day's labels are not due before the simulated period ends
    ref = project.monitoring_dir / "reference.parquet"
    import pandas as pd

    assert {"score", "x", "z", "color"} <= set(pd.read_parquet(ref).columns)
    again = simulate_traffic(project, rows, days=2, per_day=50, scorer=_scorer())
    assert again.data["start"].startswith("2026-01-07")  # continues where the last run ended


def test_the_loop_measures_shift_to_detection_and_env_filters(tmp_path):
    root = small_project(tmp_path, "monitoring: {env: simulation}\n")
    project = Project.at(root)
    simulate_traffic(project, frame(1200, 14), days=6, per_day=150, shift="x+1.5", shift_from=4,
                     reference=frame(2000, 15), scorer=_scorer())
    # traffic of another environment on the same days is not monitored
    from omgmagics.ops.predlog import append_records

    append_records(project.monitoring_dir / "predictions", [
        {"request_id": "s1", "time": "2026-01-02T10:00:00Z", "env": "staging", "model_version": "7",
         "latency_ms": 900.0, "status": "error", "inputs": {"x": 50.0, "z": 1, "color": "red"},
         "prediction": None, "score": None, "error": "boom"}])
    series = run_monitor(project).value
    assert int(series["requests"].sum()) == 900 and int(series["errors"].sum()) == 0
    assert int(run_monitor(project, env="staging").value["requests"].sum()) == 1
    run_drift(project, window="1d", since="2026-01-01")
    summary = loop_summary(project)
    assert summary["shifted columns"] == "x"
    assert summary["shift to detection h (simulated)"] == 24.0  # found when the first shifted day closes
    assert summary["drift checks flagging before the shift"] == 0
    assert summary["detect within h (brief)"] == 24


def test_whole_number_fields_stay_whole_numbers():
    import pandas as pd

    from omgmagics.ops.simulate import apply_shift

    df = pd.DataFrame({"gain": [0, 7688, 15024], "x": [0.5, 1.0, 2.0]})
    out = apply_shift(df, parse_shift("gain*0.001,x+1"))
    assert out["gain"].tolist() == [0, 8, 15] and out["gain"].dtype == df["gain"].dtype
    assert out["x"].tolist() == [1.5, 2.0, 3.0]


def test_bad_shift_and_options():
    assert parse_shift("x+10, gain*0.001,color=red") == [
        ("x", "+", 10.0), ("gain", "*", 0.001), ("color", "=", "red")]
    syntax = ("is not COLUMN*FACTOR, COLUMN+DELTA, COLUMN-DELTA or COLUMN=VALUE, comma-separated; a "
              "column name with anything but letters, digits, '_' and '.' (a space, a dash, brackets) "
              "goes in quotes: 'unit price (EUR)'*1.2 (or \"...\" or `...`). Example: --shift "
              "\"amount*1.5,'unit price (EUR)'+10,region=north\".")
    with pytest.raises(UsageError, match=re.escape(f"Shift 'x^2' {syntax}")):
        parse_shift("x^2")
    with pytest.raises(UsageError, match=re.escape(f"Shift 'unit price*2' {syntax}")):
        parse_shift("unit price*2")  # a name with a space needs quotes
    with pytest.raises(UsageError, match=re.escape("Shift 'x+ten': 'ten' is not a number.")):
        parse_shift("x+ten")
    with pytest.raises(UsageError, match=re.escape("Shift 'x*' has no value after '*'.")):
        parse_shift("x*")


def test_shift_names_may_hold_any_sign_when_quoted():
    assert parse_shift("'unit price (EUR)'*1.2, \"a,b\"-2, `x-ray`=none, größe+1, 2nd.col*0.5, "
                       "'o\\'brien'+3, region='north, east'") == [
        ("unit price (EUR)", "*", 1.2), ("a,b", "-", 2.0), ("x-ray", "=", "none"), ("größe", "+", 1.0),
        ("2nd.col", "*", 0.5), ("o'brien", "+", 3.0), ("region", "=", "north, east")]
    assert parse_shift("x-1.5,y+-2") == [("x", "-", 1.5), ("y", "+", -2.0)]
    import pandas as pd

    from omgmagics.ops.simulate import apply_shift

    df = pd.DataFrame({"unit price (EUR)": [1.0, 2.0], "größe": [3, 4]})
    out = apply_shift(df, parse_shift("'unit price (EUR)'*10,größe+1"))
    assert out["unit price (EUR)"].tolist() == [10.0, 20.0] and out["größe"].tolist() == [4, 5]
    with pytest.raises(UsageError, match=re.escape("Shift column 'unit price' is not in the data. "
                                                   "Did you mean: unit price (EUR)? A name with spaces "
                                                   "or other signs goes in quotes: 'a name'*2.")):
        apply_shift(df, parse_shift("'unit price'*2"))


def test_a_shift_stays_inside_the_schema(tmp_path):
    import pandas as pd

    from omgmagics.ops.simulate import apply_shift, schema_bounds

    project = Project.at(small_project(tmp_path))
    (project.root / "schema.yaml").write_text(
        "columns:\n  x: {dtype: float, min: -3.0, max: 3.0}\n  z: {dtype: int, min: 0, max: 9}\n"
        "  color: {dtype: str, nullable: true, allowed: [red, green, blue]}\n")
    bounds = schema_bounds(project)
    assert bounds["x"] == {"min": -3.0, "max": 3.0} and bounds["color"] == {"allowed": ["red", "green", "blue"]}
    df = pd.DataFrame({"x": [0.5, 1.0, 2.0], "z": [1, 4, 8], "color": ["red", "blue", None]})
    clipped: dict = {}
    out = apply_shift(df, parse_shift("x*2,z+3,color=green"), bounds, clipped)
    assert out["x"].tolist() == [1.0, 2.0, 3.0] and out["z"].tolist() == [4, 7, 9]
    assert clipped == {"x": 1, "z": 1} and set(out["color"]) == {"green"}
    with pytest.raises(UsageError, match=re.escape("Shift 'color=purple': 'purple' is not an allowed "
                                                   "value of 'color' in the schema (red, green, blue). "
                                                   "Choose one of them.")):
        apply_shift(df, parse_shift("color=purple"), bounds)
    out = apply_shift(df, parse_shift("z=5"), bounds)  # a number into a whole-number column
    assert out["z"].tolist() == [5, 5, 5] and str(out["z"].dtype).startswith("int")
    # the simulation says what it clipped, and replays a small table with replacement, stated
    rows = frame(25, 3)
    report = simulate_traffic(project, rows, days=14, shift="x*5", shift_from=8,
                              reference=frame(300, 4), scorer=_scorer())
    assert report.data["requests per day"] == 30 and report.summary["requests"] == 420
    assert report.data["sampled with replacement"] and report.data["distinct rows"] == 25
    assert ("25 held-out row(s) for 14 day(s) x 30 requests (--per-day defaults to at least 30, so "
            "that a daily drift check has rows to judge): rows were sampled with replacement, each "
            "replayed about 16.8 times. Drift tests count at most 25 independent rows per window "
            "(repeats are no new evidence).") in report.messages
    assert any(m.startswith("The shift stays inside the schema: ") and "of 'x' were clipped to its "
               "min/max." in m for m in report.messages)
    log, _ = read_log(project)
    shifted = log["time"].dt.day >= 8
    assert log.loc[shifted, "x"].between(-3, 3).all() and log.loc[shifted, "x"].abs().max() == 3.0


def test_simulation_needs_consistent_options(tmp_path):
    project = Project.at(small_project(tmp_path))
    with pytest.raises(UsageError, match=re.escape("--shift needs --shift-from DAY")):
        simulate_traffic(project, frame(100, 1), days=3, shift="x+1", scorer=_scorer())
    with pytest.raises(UsageError, match=re.escape("--shift-from must be a day between 1 and --days (3), "
                                                   "got 5.")):
        simulate_traffic(project, frame(100, 1), days=3, shift="x+1", shift_from=5, scorer=_scorer())
    assert np.isfinite(_scorer().scores(frame(10, 2)[["x", "z"]])).all()


def test_columns_that_are_no_input_arrive_with_the_labels_and_reach_the_retrain_data(tmp_path):
    import datetime as dt

    import pandas as pd

    from omgmagics.lifecycle.retrain_job import build_training_data
    from omgmagics.ops.live import labeled
    from omgmagics.ops.settings import monitoring_settings

    project = Project.at(small_project(tmp_path))
    rows = frame(300, 14).assign(sex=lambda d: np.where(d["x"] > 0, "Female", "Male"))
    scorer = _scorer()
    scorer.inputs = ["x", "z", "color"]
    simulate_traffic(project, rows, days=3, per_day=100, scorer=scorer, label_delay="1h")
    log, _ = read_log(project)
    assert "sex" not in log.columns  # not a model input: never in a request
    fb = read(project.monitoring_dir / "feedback.jsonl")
    assert set(fb[0]["attributes"]) == {"sex"}
    rows_, _ = labeled(project, monitoring_settings(project))
    # labels due after the simulated period ends (the last hour) are held back
    assert 280 < len(rows_) < 300 and set(rows_["sex"]) == {"Female", "Male"}
    # the monitor judges the requests' own fields: an attribute whose labels are not due yet (the
    # last hour) is not a missing input
    windows = run_monitor(project, window="1d").tables["windows"]
    assert set(windows["most missing feature"]) <= {"", "color"}
    source = project.root / "data/raw/source.csv"  # the reference: the source data, with sex
    pd.read_csv(source).assign(sex="Male").to_csv(source, index=False)
    cut = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    path, counts = build_training_data(project, rows_, cut, 1)
    data = pd.read_parquet(path)
    new = data.tail(counts["new labeled rows"])
    assert counts["new labeled rows"] == (rows_["time"] < cut).sum() == 200  # before the window only
    assert new["sex"].notna().all() and new["income"].notna().all()
    assert "columns the new rows lack (left missing)" not in counts


def test_simulated_traffic_lands_where_the_project_logs_predictions(tmp_path):
    """`monitoring.predictions` moves the prediction log: the simulator writes there (it wrote to the
    default folder, so the monitor of such a project saw no traffic), servers log there, phase 5
    reads there."""
    root = small_project(tmp_path, "monitoring: {predictions: logs/served}\n")
    project = Project.at(root)
    assert project.predictions_dir == root / "logs" / "served"
    simulate_traffic(project, frame(600, 21), days=3, per_day=100, reference=frame(900, 22),
                     scorer=_scorer())
    assert sorted(p.name for p in (root / "logs" / "served").iterdir())[:1] == ["2026-01-01.jsonl"]
    assert not (project.monitoring_dir / "predictions").exists()
    assert int(run_monitor(project).value["requests"].sum()) == 300
