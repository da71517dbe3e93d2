"""The replayed traffic of the closed-loop demo: the serving contract, label delays, the injected
shift, the environment filter and the shift-to-detection measurement."""

from __future__ import annotations

import re

import numpy as np
import pytest

from omgmagics.errors import UsageError
from omgmagics.ops.drift_report import run_drift
from omgmagics.ops.journal import read
from omgmagics.ops.monitor import run_monitor
from omgmagics.ops.predlog import read_log
from omgmagics.ops.scoring import Scorer
from omgmagics.ops.simulate import loop_summary, parse_shift, simulate_traffic
from omgmagics.project import Project

try:  # tests/ is a package here; the helpers sit beside this file either way
    from .test_ops_support import frame, small_project
except ImportError:
    from test_ops_support import frame, small_project


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
    assert parse_shift("age+10, capital_gain*0.001,workclass=Private") == [
        ("age", "+", 10.0), ("capital_gain", "*", 0.001), ("workclass", "=", "Private")]
    with pytest.raises(UsageError, match=re.escape("Shift 'age^2' is not COLUMN*FACTOR, COLUMN+DELTA, "
                                                   "COLUMN-DELTA or COLUMN=VALUE.")):
        parse_shift("age^2")
    with pytest.raises(UsageError, match=re.escape("Shift 'age+ten': 'ten' is not a number.")):
        parse_shift("age+ten")


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

    from omgmagics.ops.live import labeled
    from omgmagics.ops.retrain_job import build_training_data
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
