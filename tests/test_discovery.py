"""Phase 1 core: the brief, the audit checklist (planted problems), bad input, personal data."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from omgmagics.discovery import checklist, checks, privacy
from omgmagics.discovery.audit import audit_data
from omgmagics.discovery.brief import Brief, frame_problem
from omgmagics.discovery.tables import single_feature_scores
from omgmagics.errors import ConfigError, DataError, OmgError, UsageError

SOURCE = {"kind": "file", "location": "/data/customers.csv", "sha256": "ab" * 32}


def make_frame(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """A clean table: numbers, categories, a sensitive attribute, a binary target with real signal."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n, p=[0.5, 0.3, 0.2])
    logit = 1.2 * x1 - 0.8 * x2 + (plan == "pro") * 0.7
    return pd.DataFrame({
        "tenure": rng.integers(1, 60, n),
        "spend": np.round(rng.gamma(3.0, 20.0, n), 2),
        "x1": x1, "x2": x2, "plan": plan,
        "region": rng.choice(["north", "south", "east", "west"], size=n),
        "group": rng.choice(["a", "b", "c"], size=n),
        "churned": np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no"),
    })


def make_brief(**kw) -> Brief:
    base = dict(name="t", task="classification", target="churned", positive_label="yes",
                metric="roc_auc", threshold=0.7, sensitive=["group"], seed=0)
    base.update(kw)
    return Brief(**base)


def run(df: pd.DataFrame, brief: Brief | None = None) -> dict[str, checks.Item]:
    brief = brief or make_brief()
    facts = brief.check_data(df)
    return {i.id: i for i in checklist.run_checklist(df, brief, facts, source=SOURCE)["items"]}


def test_clean_table_passes_every_check():
    items = run(make_frame())
    assert {k: v.status for k, v in items.items() if v.status != "pass"} == {}
    assert [i.section for i in items.values()][0] == "sources"
    assert set(checks.SECTIONS) == {i.section for i in items.values()}
    for item in items.values():
        assert item.evidence and item.rule


def test_planted_duplicated_block_is_flagged_with_its_rows():
    df = make_frame()
    df = pd.concat([df, df.iloc[100:250]], ignore_index=True)  # the same extract loaded twice
    item = run(df)["quality.duplicates"]
    assert item.status == "fail"  # 150 / 1350 = 11% > 10%, and numeric columns make them copies
    assert "150 rows (11.1%) repeat an earlier row" in item.evidence
    assert "row positions 1,200-1,349, repeats rows 100-249" in item.evidence


def test_a_few_duplicates_warn():
    df = make_frame()
    df = pd.concat([df, df.iloc[:20]], ignore_index=True)
    assert run(df)["quality.duplicates"].status == "warn"


def test_planted_email_column_fails_privacy_and_is_masked():
    df = make_frame()
    df["contact"] = [f"person{i}@mail{i % 7}.example.org" for i in range(len(df))]
    item = run(df)["privacy.personal_data"]
    assert item.status == "fail"
    assert "contact: e-mail address by content (100.0% of values, e.g. p***@m***.org)" in item.evidence
    assert "person1@" not in item.evidence


def test_email_column_listed_in_exclude_columns_only_warns():
    df = make_frame()
    df["email"] = [f"person{i}@example.org" for i in range(len(df))]
    item = run(df, make_brief(exclude_columns=["email"]))["privacy.personal_data"]
    assert item.status == "warn"
    assert "[excluded from modelling, still stored]" in item.evidence


def test_planted_leaked_target_copy_fails_leakage():
    df = make_frame()
    df["outcome_flag"] = (df["churned"] == "yes").astype(int)  # recorded after the fact
    item = run(df)["labels.leakage"]
    assert item.status == "fail"
    assert item.evidence.startswith("leakage suspects: outcome_flag (score 1.000). A feature known only")


def test_planted_constant_column_is_flagged():
    df = make_frame()
    df["country"] = "FR"
    item = run(df)["quality.constant"]
    assert item.status == "warn"
    assert "1 constant column(s): country" in item.evidence


def test_all_planted_problems_at_once_and_json_record(tmp_path):
    df = make_frame()
    df["email"] = [f"u{i}@example.com" for i in range(len(df))]
    df["leak"] = df["churned"]
    df["const"] = 1
    df = pd.concat([df, df.iloc[:200]], ignore_index=True)
    report = audit_data(df, make_brief(), html_path=None, json_path=tmp_path / "a.json", source=SOURCE)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["status"] == "fail"
    assert set(doc["failed"]) == {"quality.duplicates", "labels.leakage", "privacy.personal_data"}
    assert "quality.constant" in doc["warnings"]
    assert report.summary["fail"] == 3
    assert list(report.tables["checklist"].columns) == ["section", "check", "status", "evidence"]
    assert doc["rules"]["leak_score"] == checks.RULES["leak_score"]
    assert {c["column"] for c in doc["columns"]} >= {"email", "leak", "const"}
    assert "u1@example.com" not in (tmp_path / "a.json").read_text()  # evidence is masked


def test_missing_outliers_mixed_types_and_labels():
    df = make_frame()
    df.loc[df.index[:200], "spend"] = np.nan
    df.loc[df.index[:40], "x2"] = 1e6
    df["code"] = [str(i) if i % 10 else i for i in range(len(df))]  # ints and strings mixed
    df.loc[df.index[-30:], "churned"] = None
    items = run(df)
    assert items["quality.missing"].status == "warn"
    assert "spend (16.7%)" in items["quality.missing"].evidence
    assert items["quality.outliers"].status == "warn" and "x2 (3.3%)" in items["quality.outliers"].evidence
    assert items["quality.mixed_types"].status == "warn" and "code" in items["quality.mixed_types"].evidence
    assert items["labels.missing"].status == "warn"
    assert "30 rows (2.5%) have no 'churned' value" in items["labels.missing"].evidence


def test_numbers_stored_as_text_warn():
    df = make_frame()
    df["amount"] = df["spend"].astype(str)
    item = run(df)["quality.mixed_types"]
    assert item.status == "warn" and "amount (100.0% numbers as text)" in item.evidence


def test_small_data_and_rare_class():
    df = make_frame(n=80)
    df.loc[df.index[:75], "churned"] = "no"
    df.loc[df.index[75:], "churned"] = "yes"
    items = run(df)
    assert items["volume.rows"].status == "fail"  # < 100 labeled rows
    assert items["volume.per_class"].status == "fail"  # 5 rows of 'yes'
    assert items["labels.balance"].status == "warn"  # 15:1


def test_sensitive_attributes_small_groups_proxies_and_none_declared():
    df = make_frame()
    df["group"] = np.where(np.arange(len(df)) < 6, "rare", df["group"])
    df["grp_code"] = df["group"].map({"a": 1, "b": 2, "c": 3, "rare": 4})
    item = run(df)["privacy.sensitive"]
    assert item.status == "warn"
    assert "smallest rare 0.5%" in item.evidence and "proxy: 'grp_code'" in item.evidence
    assert run(make_frame(), make_brief(sensitive=[]))["privacy.sensitive"].status == "warn"


def test_regression_target_checks():
    df = make_frame()
    df["revenue"] = df["x1"] + 2 * np.random.default_rng(1).normal(size=len(df))
    df = df.drop(columns="churned")
    items = run(df, make_brief(task="regression", target="revenue", metric="rmse", threshold=None,
                               positive_label=None))
    assert "labels.distribution" in items and "volume.per_class" not in items
    assert items["labels.leakage"].status == "pass"


def test_single_feature_scores_copy_noise_and_identifier():
    df = make_frame()
    df["copy"] = df["churned"]
    df["row_id"] = [f"r{i}" for i in range(len(df))]
    df["noise"] = np.random.default_rng(3).normal(size=len(df))
    s = single_feature_scores(df, ["copy", "row_id", "noise", "x1"], "churned", "classification")
    scores = dict(zip(s["feature"], s["score"], strict=True))
    assert scores["copy"] > 0.97
    assert scores["row_id"] == 0.0 and scores["noise"] < 0.03
    assert 0.05 < scores["x1"] < 0.6
    df["y"] = df["x1"] * 3
    r = single_feature_scores(df, ["x1", "noise"], "y", "regression")
    assert dict(zip(r["feature"], r["score"], strict=True))["x1"] > 0.95


# --- personal data -------------------------------------------------------------------------------

@pytest.mark.parametrize("column, kind", [
    ("customerEmail", "e-mail address"), ("mobile_phone", "phone number"), ("last_name", "person name"),
    ("name", "person name"), ("ip_address", "IP address"), ("zip_code", "postal address"),
    ("date_of_birth", "birth date"), ("user_id", "identifier"), ("latitude", "geolocation")])
def test_personal_data_by_name(column, kind):
    assert privacy.by_name(column)[0] == kind


@pytest.mark.parametrize("column", ["product_name", "filename", "paid", "tenure", "latency_ms"])
def test_ordinary_names_are_not_personal(column):
    assert privacy.by_name(column) is None


@pytest.mark.parametrize("values, kind", [
    (["+33 6 12 34 56 78", "(555) 123-4567", "+1-202-555-0188"], "phone number"),
    (["123-45-6789", "987-65-4321"], "US social security number"),
    (["4111 1111 1111 1111", "5500-0000-0000-0004"], "payment card number"),
    (["192.168.0.1", "10.0.0.254"], "IP address"),
    (["FR7630006000011234567890189", "DE89370400440532013000"], "IBAN")])
def test_personal_data_by_content(values, kind):
    counts = pd.Series([5] * len(values), index=values)
    found = privacy.scan_column("field", counts)
    assert [(f.kind, f.basis, f.direct) for f in found] == [(kind, "content", True)]
    assert values[0] not in found[0].example


def test_dates_and_plain_numbers_are_not_phones():
    counts = pd.Series([3, 3, 3], index=["2024-01-15", "1234567890", "2023/12/31"])
    assert privacy.scan_column("field", counts) == []


def test_free_text_mentioning_emails():
    notes = [f"Customer called about the invoice, please write back to client{i}@corp.example "
             "before Friday" if i % 5 == 0 else "Customer called about the invoice and was happy "
             f"with the answer number {i}" for i in range(200)]
    found = privacy.scan_column("notes", pd.Series(1, index=notes))
    assert (found[0].kind, found[0].direct) == ("free text containing e-mail addresses", True)
    assert found[0].example == "c***@c***.example"


# --- the brief -----------------------------------------------------------------------------------

def test_brief_from_config_and_problem_statement(tmp_path):
    cfg = {"project": {"name": "churn"},
           "brief": {"business_problem": "Keep customers.", "objective": {
               "type": "classification", "target": "churned", "positive_label": "yes",
               "primary_metric": "roc_auc", "threshold": 0.8},
               "constraints": {"latency_p99_ms": 40}, "sensitive_features": ["group"],
               "timeline": {"discovery": 1, "data": 2}},
           "data": {"source": "customers.csv", "exclude_columns": ["region"]}, "seed": 3}
    brief = Brief.from_config(cfg)
    assert (brief.name, brief.target, brief.seed, brief.exclude_columns) == ("churn", "churned", 3, ["region"])
    report = frame_problem(make_frame(), brief, tmp_path / "docs" / "problem_statement.md",
                           source="customers.csv")
    text = (tmp_path / "docs" / "problem_statement.md").read_text()
    assert "# Problem statement: churn" in text and "Keep customers." in text
    assert "| Success threshold | ≥ 0.8 on the held-out test set (the phase 3 gate) |" in text
    assert "| Latency p99 | at most 40 ms per single-record request (99th percentile) |" in text
    assert "| discovery | 1 week |" in text and "| data | 2 weeks |" in text
    assert "| Excluded columns | `region` |" in text
    assert report.summary["positive class"].startswith("yes (")


@pytest.mark.parametrize("change, error, message", [
    (dict(metric="roc_acu"), ConfigError, "Unknown metric 'roc_acu'. Available: "),
    (dict(metric="roc_acu"), ConfigError, "Did you mean: roc_auc?"),
    (dict(threshold=1.5), ConfigError, "Threshold 1.5 for metric 'roc_auc' is outside its range [0.0, 1.0]"),
    (dict(metric="rmse"), ConfigError, "Metric 'rmse' is for regression, but the objective is classification"),
    (dict(task="clustering"), ConfigError, "brief.objective.type 'clustering' is not a problem type"),
    (dict(target=None), ConfigError, "brief.objective.target is not set"),
    (dict(sensitive=["gruop"]), ConfigError,
     "brief.sensitive_features names 'gruop', which is not a column of the data. Did you mean: group?"),
    (dict(positive_label="maybe"), ConfigError, "brief.objective.positive_label 'maybe' is not a value of 'churned'"),
    (dict(time_column="region"), ConfigError, "brief.time_column 'region' of the data does not hold dates"),
    (dict(constraints={"latency_p99_ms": -5}), ConfigError,
     "brief.constraints.latency_p99_ms must be a positive number, got -5."),
    (dict(target="churn"), DataError,
     "Unknown target column (brief.objective.target) in the data 'churn'. Available: "),
])
def test_brief_errors(change, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make_brief(**change).check_data(make_frame())


def test_target_missing_says_did_you_mean():
    with pytest.raises(DataError, match=re.escape("Did you mean: churned? Fix brief.objective.target")):
        make_brief(target="churnd").check_data(make_frame())


def test_multiclass_metric_rules():
    df = make_frame()
    df["churned"] = df["plan"]
    with pytest.raises(ConfigError, match=re.escape("Metric 'average_precision' needs a binary target")):
        make_brief(metric="average_precision", positive_label=None).check_data(df)
    facts = make_brief(metric="roc_auc", positive_label=None).check_data(df)
    assert facts["scorer"] == "roc_auc_ovr" and facts["n_classes"] == 3


# --- bad input: a clear error and no partial report ----------------------------------------------

def _single_class():
    df = make_frame()
    df["churned"] = "no"
    return df


def _all_null():
    df = make_frame()
    df["notes"] = None
    return df


@pytest.mark.parametrize("make, message", [
    (lambda: [1, 2, 3], "the data is a list, not a table."),
    (lambda: pd.DataFrame(), "the data is empty (0 rows x 0 columns)."),
    (lambda: make_frame().iloc[:0], "the data is empty (0 rows x 8 columns)."),
    (lambda: pd.DataFrame({"a;b;c": ["1;2;3"]}), "the data has a single column ('a;b;c')"),
    (lambda: pd.DataFrame({"a;b;c": ["1;2;3"]}), "read it with sep=';'"),
    (_all_null, "Column(s) 'notes' of the data have no values (all 1,200 missing)"),
    (_single_class, "Target column 'churned' of the data has a single class ('no' in all 1,200 labeled rows)"),
    (make_frame, "Did you mean: churned?"),
])
def test_bad_input_gives_clear_error_and_writes_nothing(tmp_path, make, message):
    html, js = tmp_path / "r" / "audit.html", tmp_path / "r" / "audit.json"
    with pytest.raises(OmgError, match=re.escape(message)):
        audit_data(make(), make_brief(target="churned" if "Did" not in message else "churnd"),
                   html_path=html, json_path=js, source=SOURCE)
    assert not html.exists() and not js.exists()
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_regression_target_must_be_numeric():
    with pytest.raises(DataError, match=re.escape("is object but the objective is regression")):
        make_brief(task="regression", metric="rmse", threshold=None, positive_label=None).check_data(
            make_frame())


def test_profile_sample_fraction_must_be_a_share(tmp_path):
    with pytest.raises(UsageError, match=re.escape("--sample-frac must be in (0, 1], got 1.5.")):
        audit_data(make_frame(), make_brief(), html_path=tmp_path / "a.html",
                   json_path=tmp_path / "a.json", source=SOURCE, sample_frac=1.5)
    assert not (tmp_path / "a.json").exists()


def test_unusual_dtypes_are_audited(tmp_path):
    df = make_frame(n=600)
    df["seen_at"] = pd.date_range("2024-01-01", periods=len(df), freq="h", tz="Europe/Paris")
    df.loc[df.index[:5], "seen_at"] = pd.NaT
    df["active"] = df["x1"] > 0
    df["tier"] = df["plan"].astype("category")
    df["score"] = pd.array(np.arange(len(df)) % 7, dtype="Int64")
    df.loc[df.index[:3], "score"] = pd.NA
    df[42] = 1.5  # a non-string column name
    report = audit_data(df, make_brief(), html_path=None, json_path=tmp_path / "a.json", source=SOURCE)
    items = {i["id"]: i for i in json.loads((tmp_path / "a.json").read_text())["items"]}
    assert items["quality.constant"]["evidence"].startswith("1 constant column(s): 42")
    assert report.summary["rows"] == 600


def test_identifier_columns_warn_and_lineage_is_cited(tmp_path):
    from omgmagics.discovery.audit import read_lineage

    df = make_frame()
    df["account"] = np.arange(len(df)) + 10_000
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "lineage.json").write_text(json.dumps({"sources": {"customers": {
        "file": "customers.parquet", "location": "crm.sqlite: SELECT * FROM customers", "rows": 1200,
        "sha256": "cd" * 32}}}))
    lineage = read_lineage(raw)
    assert lineage[0]["name"] == "customers"
    brief = make_brief()
    items = {i.id: i for i in checklist.run_checklist(df, brief, brief.check_data(df), source={},
                                                        lineage=lineage)["items"]}
    assert items["privacy.personal_data"].status == "warn"
    assert "account: identifier (every value distinct) by content" in items["privacy.personal_data"].evidence
    assert items["sources.identified"].status == "pass"
    assert items["sources.identified"].evidence.startswith(
        "crm.sqlite: SELECT * FROM customers (rows 1200, sha256 cdcdcdcdcdcd...)")
    nothing = checklist.run_checklist(make_frame(), brief, brief.check_data(make_frame()), source={})
    assert nothing["items"][0].status == "warn"


def test_case_numbers_and_timestamps_are_not_personal_data():
    """A parcel or case number (digits with one dash) is no phone number; a timestamp column, whose
    values are all distinct, is no identifier; real phone numbers are still found."""
    import numpy as np
    import pandas as pd

    from omgmagics.discovery.privacy import scan_column

    n = 300
    rng = np.random.default_rng(0)
    cases = pd.Series([f"{rng.integers(10, 99)}-{i:06d}" for i in range(n)]).value_counts()
    assert scan_column("parcel", cases) == []
    phones = pd.Series([f"+41 44 {rng.integers(100, 999)} {rng.integers(10, 99)} "
                        f"{rng.integers(10, 99)}" for _ in range(n)]).value_counts()
    assert scan_column("contact", phones)[0].kind == "phone number"
    dashed = pd.Series([f"555-{rng.integers(100, 999)}-{rng.integers(1000, 9999)}"
                        for _ in range(n)]).value_counts()
    assert scan_column("contact", dashed)[0].kind == "phone number"


def test_the_phase1_verdict_states_a_failed_audit_item_once(tmp_path):
    """A blocker of the study that is a failed audit item is left to the audit's own criterion; the
    study's other blockers stay in its criterion."""
    import json

    from omgmagics.discovery.gate import phase1_criteria
    from omgmagics.project import Project
    from tests.helpers.modeling import make_project

    project = Project.at(make_project(tmp_path / "p", store=False))
    evidence = "rarest class 'sp_G': 8 rows = 1.6 per feature"
    reports = project.reports_dir
    reports.mkdir(parents=True)
    (reports / "feasibility.json").write_text(json.dumps({
        "proceed": False, "recommendation": "Do not proceed yet", "objective": {"target": "income"},
        "blockers": [f"audit item 'Volume sufficient: rows per class' failed: {evidence}"]}))
    (reports / "data_audit.json").write_text(json.dumps({
        "items": [{"id": "volume_class", "check": "Volume sufficient: rows per class",
                   "evidence": evidence}],
        "failed": ["volume_class"], "warnings": [], "brief": {"target": "income"}}))
    crit = {c.name: c for c in phase1_criteria(project)[0]}
    assert crit["recommendation is to proceed"].detail == "the data audit's failed item (next criterion)"
    assert crit["data audit has no failed item"].detail == f"Volume sufficient: rows per class: {evidence}"
    feas = json.loads((reports / "feasibility.json").read_text())
    feas["blockers"].append("no sensitive feature reviewed")
    (reports / "feasibility.json").write_text(json.dumps(feas))
    crit = {c.name: c for c in phase1_criteria(project)[0]}
    assert crit["recommendation is to proceed"].detail == "no sensitive feature reviewed"
