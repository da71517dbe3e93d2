"""The ops verbs from the terminal and as notebook magics: options, exit codes, messages."""

from __future__ import annotations

import pandas as pd
import pytest

from omgmagics.errors import DataError
from tests.helpers.ops import frame, small_project, write_log, write_reference


@pytest.fixture
def root(tmp_path):
    root = small_project(tmp_path)
    write_reference(root)
    write_log(root, days=4, per_day=60, shift_from=3, shift=2.0)
    return root


def test_cli_verbs_and_bad_input(root, run_cli):
    code, out, err = run_cli(["ops", "drift", "--window", "7x"], cwd=root)
    assert code == 2 and err.strip() == ("error: The window '7x' is not a duration. Use a positive whole "
                                         "number and a unit: 45s, 30m, 12h, 7d or 2w.")
    code, _, err = run_cli(["ops", "drift", "--windw", "7d"], cwd=root)
    assert code == 2 and "unrecognized arguments: --windw 7d" in err
    code, out, _ = run_cli(["ops", "drift", "--window", "1d", "-q"], cwd=root)
    assert code == 0 and "Drift of the current window vs the reference" in out and "report:" in out
    code, out, _ = run_cli(["ops", "monitor", "-q"], cwd=root)
    assert code == 0 and out.startswith("Monitoring 4 window(s)")
    code, out, _ = run_cli(["ops", "retrain", "--trigger", "drift", "--queue-only"], cwd=root)
    assert code == 0 and "request    queued" in out
    code, out, _ = run_cli(["ops", "pipeline"], cwd=root)
    assert code == 0 and "retrain queued        1" in out
    code, out, _ = run_cli(["ops", "pipeline", "--action", "history", "--format", "json"], cwd=root)
    assert code == 0 and '"retrain jobs"' in out
    code, _, err = run_cli(["ops", "retrain", "--eval-window", "2x"], cwd=root)
    assert code == 2 and "The --eval-window '2x' is not a duration" in err
    code, _, err = run_cli(["ops", "simulate", "--shift", "age^2", "--shift-from", "2"], cwd=root)
    assert code == 2 and "Shift 'age^2' is not COLUMN*FACTOR" in err
    code, out, _ = run_cli(["ops", "review"], cwd=root)
    assert code == 0 and (root / "docs" / "iteration_review.md").is_file()


def test_magics_take_dataframes_from_the_notebook(root, ipython, monkeypatch):
    monkeypatch.chdir(root)
    ipython.user_ns["ref_df"] = frame(1500, 3)
    cur = frame(800, 4, shift=1.0)
    cur["ts"] = pd.date_range("2026-02-01", periods=800, freq="15min", tz="UTC")
    ipython.user_ns["cur_df"] = cur
    ipython.run_line_magic("omgops", "drift --reference ref_df --current cur_df --time-column ts "
                                     "--window 3d --out res")
    res = ipython.user_ns["res"]
    assert res[0].drifted == ["x"] and res[0].rows > 0
    with pytest.raises(DataError, match="'nope' is neither a file nor a DataFrame in the notebook"):
        ipython.run_line_magic("omgops", "drift --reference nope")


def test_review_lists_weak_slices_and_opportunities(root):
    from omgmagics.ops.drift_report import run_drift
    from omgmagics.ops.review import write_review
    from omgmagics.project import Project

    project = Project.at(root)
    run_drift(project, window="1d")
    report = write_review(project, min_rows=20)
    text = (root / "docs" / "iteration_review.md").read_text()
    assert text.startswith("# Iteration review: proj")
    for heading in ("## Where the live model errs most", "## Alerts since the last iteration",
                    "## Drift since the last iteration", "## Retraining decisions",
                    "## Improvement opportunities"):
        assert heading in text
    assert "Drift was found in `x` (1 window(s))" in text
    assert len(report.tables["slices where the model errs most"]) > 0
    second = write_review(project, min_rows=20)
    assert second.summary["alerts"] == 0 and second.summary["since"] != "the start"
