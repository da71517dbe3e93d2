"""``omg ml init``: the layout, the brief pre-filled from data, refusals, nothing half-written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omgmagics.config import load_config
from omgmagics.errors import DataError, ProjectError, UsageError
from omgmagics.scaffold import init_project


def test_demo_project_layout(tmp_path):
    report = init_project("adult", parent=tmp_path)
    root = tmp_path / "adult"
    for folder in ("data/raw", "data/processed", "features", "models", "runs", "reports", "docs",
                   "decisions", "monitoring", "projectlib"):
        assert (root / folder).is_dir(), folder
    for phase in ("01_discovery", "02_data", "03_model", "04_deploy", "05_ops"):
        assert (root / "notebooks" / phase / f"{phase}.ipynb").is_file()
    assert (root / "projectlib" / "features.py").is_file()
    assert "[tool.nbdev]" in (root / "pyproject.toml").read_text()
    assert (root / "decisions" / "adr-template.md").is_file()
    cfg = load_config(root / "omg.yaml")
    assert cfg.get_path("brief.objective.target") == "income"
    assert cfg.get_path("brief.objective.primary_metric") == "roc_auc"
    assert cfg.get_path("brief.sensitive_features") == ["sex", "race"]
    assert cfg.get_path("brief.constraints.latency_p99_ms") == 50
    assert report.summary["rows"] == 48842


def test_refuses_to_overwrite(tmp_path):
    init_project("p", parent=tmp_path)
    with pytest.raises(ProjectError, match=re.escape(
            f"{tmp_path / 'p'} already exists; init never overwrites a project.")):
        init_project("p", parent=tmp_path)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", ".hidden", "a b"])
def test_rejects_unsafe_names(tmp_path, name):
    with pytest.raises(UsageError, match=re.escape(f"Project name '{name}' is not allowed")):
        init_project(name, parent=tmp_path)
    assert list(tmp_path.iterdir()) == []


def _own_data(tmp_path, n=120):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "signup_date": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "Gender": rng.choice(["f", "m"], n),
        "customer_age": rng.integers(18, 80, n),
        "spend": rng.gamma(2.0, 50.0, n).round(2),
        "churned": rng.choice([0, 1], n, p=[0.8, 0.2]).astype(float),
    })
    df.loc[:4, "churned"] = np.nan
    path = tmp_path / "customers.csv"
    df.to_csv(path, index=False)
    return path


def test_own_data_prefills_the_brief(tmp_path):
    path = _own_data(tmp_path)
    report = init_project("churn", parent=tmp_path, data=str(path), target="churned")
    cfg = load_config(tmp_path / "churn" / "omg.yaml")
    assert cfg.get_path("brief.objective.type") == "classification"
    assert cfg.get_path("brief.objective.threshold") is None
    assert cfg.get_path("brief.sensitive_features") == ["Gender", "customer_age"]
    assert cfg.get_path("brief.time_column") == "signup_date"
    assert cfg.get_path("data.source") == str(path)
    assert ("5 of 120 rows have no 'churned' value: they are unlabeled, kept out of validation and "
            "test, and labeled by weak supervision in phase 2 where labeling functions vote on them "
            "(see notebooks/02_data).") in report.messages


def test_regression_is_inferred(tmp_path):
    path = _own_data(tmp_path)
    init_project("spend", parent=tmp_path, data=str(path), target="spend")
    cfg = load_config(tmp_path / "spend" / "omg.yaml")
    assert cfg.get_path("brief.objective.type") == "regression"
    assert cfg.get_path("brief.objective.primary_metric") == "rmse"


def test_missing_target_gets_did_you_mean_and_nothing_is_written(tmp_path):
    path = _own_data(tmp_path)
    with pytest.raises(DataError, match=re.escape(
            "Unknown target column in customers.csv 'churn'. Available: Gender, churned, customer_age, "
            "signup_date, spend. Did you mean: churned?")):
        init_project("c", parent=tmp_path, data=str(path), target="churn")
    assert not (tmp_path / "c").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]


def test_single_class_target_is_refused(tmp_path):
    path = tmp_path / "one.csv"
    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "a", "a"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=re.escape("Target column 'y' has a single class ('a')")):
        init_project("one", parent=tmp_path, data=str(path), target="y")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=re.escape(f"Data file {path} is empty (0 bytes).")):
        init_project("e", parent=tmp_path, data=str(path), target="y")


def test_init_through_the_cli(run_cli, tmp_path):
    code, out, _ = run_cli(["ml", "init", "cli-proj", "--dir", str(tmp_path)])
    assert code == 0
    assert out.startswith(f"Created project cli-proj in {tmp_path / 'cli-proj'}")
    code, _, err = run_cli(["ml", "init", "../evil", "--dir", str(tmp_path)])
    assert code == 2 and "Project name '../evil' is not allowed" in err


MATRIX = Path(__file__).resolve().parent / "data" / "matrix"


def _cells(root, phase: str) -> dict[str, str]:
    import nbformat

    nb = nbformat.read(root / "notebooks" / phase / f"{phase}.ipynb", as_version=4)
    out = {}
    for cell in nb.cells:
        for tag in cell.metadata.get("tags", []):
            out[tag] = cell.source
    return out


def test_generated_project_code_from_a_messy_table(tmp_path):
    """Ids, a constant and a leak are excluded with their reasons; the notebooks get code over the
    table's own columns and size-derived parameters; projectlib is exported from them."""
    report = init_project("shop", parent=tmp_path, data=str(MATRIX / "shop_orders.csv"),
                          target="outcome")
    root = tmp_path / "shop"
    cfg = load_config(root / "omg.yaml")
    assert cfg.get_path("data.exclude_columns") == ["order id", "warehouse", "outcome_code"]
    assert cfg.get_path("brief.time_column") == "placed.at"
    assert ("Excluded from the model inputs: 'outcome_code' (a one-to-one recoding of the target: "
            "a leak of it, excluded); see data.exclude_columns.") in report.messages
    defaults = cfg.get_path("defaults")
    assert defaults["rows"] == 2200 and defaults["smallest_class_rows"] == 31
    assert cfg.get_path("tuning.n_trials") == defaults["n_trials"]
    assert cfg.get_path("retraining.eval_min_labels") == defaults["eval_min_labels"]
    # a multi-class f1 is the macro average, the primary metric itself: not proposed again
    assert cfg.get_path("brief.objective.primary_metric") == "f1_macro"
    assert cfg.get_path("brief.objective.secondary_metrics") == ["accuracy", "balanced_accuracy"]
    data = _cells(root, "02_data")
    assert 'k_features = "auto"' in data["parameters"] and "unlabeled_share = 0.0" in data["parameters"]
    assert data["omg-generated-labeling"].count("@labeling_function()") >= 2
    assert "# No feature function was generated" in data["omg-generated-features"]
    assert f"cv_folds = {defaults['cv_folds']}" in _cells(root, "03_model")["parameters"]
    ops = _cells(root, "05_ops")
    assert f"per_day = {defaults['per_day']}" in ops["parameters"]
    assert f"min_labels: {defaults['min_labels']}" in ops["omg-generated-monitoring"]
    assert "probabilities" in _cells(root, "04_deploy")["omg-generated-handler"]
    lib = (root / "projectlib" / "features.py").read_text()
    assert "def lf_" in lib


def test_regression_project_has_no_labeling_functions(tmp_path):
    init_project("house", parent=tmp_path, data=str(MATRIX / "house_prices.csv"), target="price")
    cells = _cells(tmp_path / "house", "02_data")
    assert ("# No labeling function was generated: weak supervision labels classes; this is a "
            "regression.") in cells["omg-generated-labeling"]
    handler = (tmp_path / "house" / "projectlib" / "handler.py").read_text()
    assert "THRESHOLD" not in handler and '"prediction": float(s)' in handler


def test_demo_project_gets_the_demo_code(tmp_path):
    from omgmagics.datasets import adult_project

    init_project("adult", parent=tmp_path)
    root = tmp_path / "adult"
    cells = _cells(root, "02_data")
    assert "def capital_net" in cells["omg-generated-features"]
    assert "unlabeled_share = 0.1" in cells["parameters"] and "k_features = 40" in cells["parameters"]
    assert f'shift = "{adult_project.SHIFT}"' in _cells(root, "05_ops")["parameters"]
    assert "def lf_young" in (root / "projectlib" / "features.py").read_text()
