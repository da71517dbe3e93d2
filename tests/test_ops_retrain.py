"""Retraining end to end on a real MLflow registry: triggers, the queue, the job, the decision (a worse
challenger is never promoted), the rollout, the history, and the phase 5 gate."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from omgmagics.errors import DataError, UsageError
from omgmagics.gates import check_gate
from omgmagics.io.journal import read
from omgmagics.lifecycle.retrain_job import decide, lifecycle_train, retrain
from omgmagics.ops.drift_report import run_drift
from omgmagics.ops.retrain import answered, check_trigger, history, queue_of
from omgmagics.project import Project
from tests.helpers.ops import small_project, write_log, write_reference


# --- the decision rule ------------------------------------------------------------------------------
def test_decide_promotes_only_a_challenger_better_by_the_margin():
    assert decide("roc_auc", 0.80, 0.79, 0.0) == (
        "keep", "challenger roc_auc 0.7900 vs champion 0.8000: not better (-0.0100)")
    assert decide("roc_auc", 0.80, 0.805, 0.01)[0] == "keep"
    assert decide("roc_auc", 0.80, 0.805, 0.01)[1].endswith("better by only 0.0050 <= margin 0.01")
    assert decide("roc_auc", 0.80, 0.83, 0.01) == (
        "promote", "challenger roc_auc 0.8300 vs champion 0.8000: better by 0.0300 > margin 0.01")
    assert decide("rmse", 10.0, 9.0, 0.5)[0] == "promote"  # lower is better
    assert decide("rmse", 10.0, 11.0, 0.0)[0] == "keep"
    assert decide("roc_auc", 0.80, 0.95, 0.0, gates_ok=False, gate_note="phase 3: fairness")[0] == "keep"
    assert decide("roc_auc", None, 0.7, 0.0)[0] == "promote"
    assert decide("roc_auc", 0.8, float("nan"), 0.0)[0] == "keep"


# --- end to end on MLflow ---------------------------------------------------------------------------
def _register(project, model, alias):
    from omgmagics.modeling.tracking import connect

    tracking = connect(project)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        with tracking.run("retrain-test", "train") as log:
            log.artifacts(Path(tmp) / "model", "model")
            run_id = log.run_id
    return tracking.register(run_id, alias), run_id


def _model(df, features, invert=False):
    from sklearn.linear_model import LogisticRegression

    from omgmagics.modeling.models import OmgModel

    y = (df["income"] == ">50K").astype(int).to_numpy()
    if invert:  # learns the opposite of the truth: surely worse than any sensible champion
        y = 1 - y
    est = LogisticRegression().fit(df[features].fillna(0).to_numpy(), y)
    return OmgModel("sklearn", "logistic_regression", est, task="classification", feature_names=features,
                    classes=["<=50K", ">50K"], positive_label=">50K")


def make_train(kind, seen):
    """A real training step standing in for the phase 2 and 3 notebooks (which the runner executes)."""
    def train(project, data_path, params, phases, progress):
        df = pd.read_parquet(data_path)
        seen.append(df)
        card = project.root / "docs" / "model_card.md"  # phase 3 writes the card of its model
        card.parent.mkdir(exist_ok=True)
        card.write_text(f"# card of the {kind} model\n")
        project.processed_dir.mkdir(parents=True, exist_ok=True)  # and phase 2 its splits
        df.head(5).to_parquet(project.processed_dir / "train.parquet")
        (project.processed_dir / "train_augmented.parquet").write_bytes(b"new")
        lineage = project.raw_dir / "lineage.json"  # and collects the retrain data as current
        record = json.loads(lineage.read_text()) if lineage.is_file() else {"sources": {}}
        record["sources"][f"job-{kind}"] = {"file": f"job-{kind}.parquet"}
        lineage.write_text(json.dumps({**record, "current": f"job-{kind}"}))
        model = _model(df, ["x", "z"], invert=(kind == "worse"))
        version, run_id = _register(project, model, "challenger")
        if kind == "worse":  # phase 3's compare would promote its best model: the job must undo it
            from omgmagics.modeling.tracking import connect

            connect(project).set_alias("champion", version)
        return {"run_id": run_id, "gates_ok": True, "gate_note": ""}
    return train


@pytest.fixture(scope="module")
def loop_project(tmp_path_factory):
    root = small_project(tmp_path_factory.mktemp("loop"),
                         "retraining: {eval_window: 2d, eval_min_labels: 100, min_improvement: 0.01, "
                         "rollout: none}\n")
    project = Project.at(root)
    source = pd.read_csv(root / "data/raw/source.csv")
    version, _ = _register(project, _model(source, ["z"]), "champion")  # a weak champion: z only
    assert version == "1"
    write_reference(root)
    # the served scores are poor (as the weak champion's would be): its live metric is below 0.7
    write_log(root, days=8, per_day=150, shift_from=6, shift=1.5, model_version="1", good_model=False)
    return project


def test_closed_loop_keeps_a_worse_challenger_then_promotes_a_better_one(loop_project):
    project = loop_project
    from omgmagics.ops.registry import Registry

    reg = Registry(project)
    assert check_trigger(project, "drift")[0] is False
    out = retrain(project, "drift", "high", train=make_train("better", []))
    assert out.summary["request"].startswith("not queued: the drift trigger does not hold")
    run_drift(project, window="1d")
    holds, why, alerts, _ = check_trigger(project, "drift")
    assert holds and len(alerts) == 2 and why == "2 unanswered alert(s) (feature_drift, prediction_drift)"
    gate = check_gate(project, 5)
    assert gate.status == "failed" and gate.criteria[0].value == "0 of 2"

    # 1. a worse challenger: not promoted, the champion alias the "notebook" moved is restored
    card = project.root / "docs" / "model_card.md"
    card.write_text("# card of the champion\n")
    project.processed_dir.mkdir(parents=True, exist_ok=True)
    (project.processed_dir / "train.parquet").write_bytes(b"champion's split")
    (project.raw_dir / "lineage.json").write_text(json.dumps({"sources": {}, "current": "source"}))
    seen = []
    reference_before = (project.monitoring_dir / "reference.parquet").read_bytes()
    out = retrain(project, "drift", "high", reason="drift in x", train=make_train("worse", seen))
    job = out.value
    assert job.state == "done" and out.summary["decision"] == "keep"
    assert "not better" in out.summary["reason"]
    assert reg.alias("champion") == "1" and reg.alias("challenger") == "2"
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    assert dec["champion"]["version"] == "1" and dec["challenger"]["version"] == "2"
    assert (project.monitoring_dir / "reference.parquet").read_bytes() == reference_before
    assert any("moved it back to v1" in n for n in dec["notes"])
    # the champion stays: its model card is back, the challenger's is kept with the run
    assert card.read_text() == "# card of the champion\n"
    assert (project.root / "runs" / dec["run_id"] / "model_docs" / "docs" / "model_card.md").read_text() \
        == "# card of the worse model\n"
    assert (project.processed_dir / "train.parquet").read_bytes() == b"champion's split"
    assert not (project.processed_dir / "train_augmented.parquet").exists()
    lineage = json.loads((project.raw_dir / "lineage.json").read_text())
    assert lineage == {"sources": {"job-worse": {"file": "job-worse.parquet"}}, "current": "source"}
    assert any(n.startswith("The champion stays, so its docs/model_card.md, phase 2 data (2 file(s) of "
                            "data/processed/, and the current raw table) were put back") for n in dec["notes"])
    assert dec["durations"]["retrain wall s"] > 0 and dec["times"]["triggered"] <= dec["times"]["decided"]
    # the training data: the reference rows plus the labeled traffic before the evaluation window
    data = seen[0]
    assert len(data) == 600 + 6 * 150 and dec["data"]["new labeled rows"] == 900
    assert dec["eval_window"]["start"].startswith("2026-01-07") and dec["eval_labels"] == 300
    assert set(alerts) <= set(answered(project))
    gate = check_gate(project, 5)
    assert [c.status for c in gate.criteria] == ["pass", "fail"]  # the weak champion stays below 0.7
    assert gate.criteria[1].name == "champion live roc_auc" and gate.criteria[1].value < 0.7
    assert "logged scores of the requests it served" in gate.criteria[1].detail

    # 2. a better challenger with `rollout: none`: promotion decided and recorded, nothing moved
    write_log(project.root, days=9, per_day=150, shift_from=6, shift=1.5, model_version="1", seed=5,
              good_model=False)
    run_drift(project, window="1d")
    out = retrain(project, "drift", "high", train=make_train("better", []))
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    assert dec["decision"] == "promote" and dec["rollout"]["status"] == "not started"
    assert reg.alias("champion") == "1" and reg.alias("challenger") == "3"
    assert dec["durations"]["trigger to promotion s"] is None

    # 3. with `rollout: direct` the champion alias moves, and the times are recorded
    yaml = project.root / "omg.yaml"
    yaml.write_text(yaml.read_text().replace("rollout: none", "rollout: direct"))
    project = project.reload()
    out = retrain(project, "manual", reason="promote the better model", train=make_train("better", []))
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    assert dec["decision"] == "promote" and dec["rollout"]["status"] == "promoted"
    assert reg.alias("champion") == "4" and reg.alias("challenger") is None
    assert card.read_text() == "# card of the better model\n"  # the new champion's card stays
    # drift is now judged against what the new champion learned from, scored by it
    ref = pd.read_parquet(project.monitoring_dir / "reference.parquet")
    assert len(ref) == dec["data"]["reference rows"] + dec["data"]["new labeled rows"]
    assert {"x", "z", "score", "prediction"} <= set(ref.columns) and "income" not in ref.columns
    assert ref["score"].between(0, 1).all() and set(ref["prediction"]) <= {"<=50K", ">50K"}
    assert (f"The drift reference (monitoring/reference.parquet) is now the new champion's training "
            f"data: {len(ref):,} rows scored by v4.") in dec["notes"]
    assert dec["durations"]["trigger to promotion s"] >= 0 and "promoted" in dec["times"]
    gate = check_gate(project, 5)
    assert gate.status == "passed", gate.summary()
    assert "re-scored" in gate.criteria[1].detail and gate.criteria[1].value >= 0.7
    jobs = queue_of(project).jobs()
    assert [j.state for j in jobs] == ["done"] * 3


def test_decline_answers_alerts_and_needs_a_reason(tmp_path):
    project = Project.at(small_project(tmp_path))
    write_reference(project.root)
    write_log(project.root, days=4, per_day=100, shift_from=3, shift=2.0)
    run_drift(project, window="1d")
    with pytest.raises(UsageError, match=re.escape("A decision not to retrain needs its reason: pass "
                                                   "--reason TEXT")):
        retrain(project, "drift", decline_it=True)
    out = retrain(project, "drift", reason="known upstream test traffic", decline_it=True, by="alice")
    assert out.summary["alerts answered"] == 2
    rec = read(project.monitoring_dir / "retrain_history.jsonl")[-1]
    assert (rec["event"], rec["by"], rec["reason"]) == ("declined", "alice", "known upstream test traffic")
    assert check_trigger(project, "drift")[0] is False
    crit = check_gate(project, 5).criteria[0]
    assert (crit.name, crit.status, crit.value) == ("drift alerts answered", "pass", "2 of 2")


def test_a_trigger_during_a_running_retrain_waits_in_the_queue(tmp_path):
    project = Project.at(small_project(tmp_path))
    q = queue_of(project)
    with q.worker() as got:  # another worker is busy
        assert got
        out = retrain(project, "manual", reason="weekly")
        assert out.summary["job state"] == "queued"
        assert any("Another retrain worker is running" in m for m in out.messages)
        again = retrain(project, "manual")
        assert again.summary["request"] == f"folded into queued job {out.value.id}"
    assert [j.state for j in q.jobs()] == ["queued"]


def test_the_runner_path_needs_a_data_source_parameter(tmp_path):
    project = Project.at(small_project(tmp_path))
    for phase in (2, 3):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        cell = nbformat.v4.new_code_cell("project_dir = '.'\nseed = 42\nsample_frac = None")
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell("# Phase"), cell]
        path = project.notebook(phase)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    with pytest.raises(DataError, match=re.escape("The phase notebooks declare no `data_source` "
                                                  "parameter, so a retrain cannot hand them the new "
                                                  "labeled data (x.parquet).")):
        lifecycle_train(project, Path("x.parquet"), {}, [2, 3])
