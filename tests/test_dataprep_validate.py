"""validate --schema / --infer: the YAML format, pandera checks, every violation reported, strict mode,
the data dictionary."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from omgmagics.dataprep.schema import check_schema, find_violations, infer_schema, validate_frame
from omgmagics.errors import ConfigError, DataError


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["C000001", "C000002", "C000003", "C000004", "C000005"],
        "age": [25, 40, np.nan, 61, 33],
        "plan": ["basic", "pro", "pro", "basic", None],
        "spend": [10.0, 250.5, 99.9, 0.0, 12.0],
        "signup": pd.to_datetime(["2024-01-03", "2024-02-10", "2024-03-01", "2024-03-05", "2024-04-01"]),
    })


def test_inferred_schema_passes_on_its_own_data(df):
    schema = infer_schema(df)
    cols = schema["columns"]
    assert cols["age"] == {"dtype": "int", "nullable": True, "min": 25, "max": 61, "description": ""}
    assert cols["plan"]["allowed"] == ["basic", "pro"] and cols["plan"]["nullable"] is True
    assert cols["customer_id"]["unique"] is True and "allowed" not in cols["customer_id"]
    assert cols["spend"]["dtype"] == "float" and cols["signup"]["dtype"] == "datetime"
    report = validate_frame(df, check_schema(schema))
    assert report.summary["status"] == "pass" and report.summary["violations"] == 0


def test_every_violation_is_listed_with_column_rule_count_examples(df):
    schema = check_schema({
        "table": {"min_rows": 10, "allow_extra_columns": False},
        "columns": {
            "customer_id": {"dtype": "str", "unique": True, "regex": r"C\d{6}"},
            "age": {"dtype": "int", "nullable": False, "min": 30, "max": 60},
            "plan": {"dtype": "str", "nullable": True, "allowed": ["basic"]},
            "spend": {"dtype": "int"},
            "country": {"dtype": "str"},
        },
    })
    bad = df.copy()
    bad.loc[1, "customer_id"] = "C000001"
    bad.loc[2, "customer_id"] = "X12"
    before = bad.copy()
    got = find_violations(bad, schema)
    pd.testing.assert_frame_equal(bad, before)  # validation never changes the data
    rows = {(r.column, r.rule): (r.count, r.examples) for r in got.itertuples()}
    assert rows[("(table)", "min_rows")] == (1, ["5 rows"])
    assert rows[("signup", "allow_extra_columns")] == (1, ["signup"])
    assert rows[("customer_id", "unique")] == (2, ["C000001"])
    assert rows[("customer_id", "regex")] == (1, ["X12"])
    assert rows[("age", "nullable")][0] == 1
    assert rows[("age", "min")] == (1, [25.0]) and rows[("age", "max")] == (1, [61.0])
    assert rows[("plan", "allowed")] == (2, ["pro"])  # the missing plan is allowed (nullable)
    assert rows[("spend", "dtype")] == (2, [250.5, 99.9])  # whole floats are valid ints
    assert rows[("country", "required")] == (1, ["country"])
    assert got.loc[got["rule"] == "dtype", "expected"].iloc[0] == "int (column dtype float64)"


def test_strict_mode_fails_naming_the_violations(df):
    schema = check_schema({"columns": {"age": {"dtype": "int", "nullable": True, "max": 50}}})
    assert validate_frame(df, schema).summary["status"] == "fail"  # not strict: a report
    with pytest.raises(DataError, match=re.escape(
            "Strict validation of data failed: 1 violation(s): age: max (1, e.g. [61.0]). Fix the data, "
            "or correct the schema if a rule is wrong.")):
        validate_frame(df, schema, strict=True)


@pytest.mark.parametrize("columns, message", [
    ({"age": {"dtype": "int", "maximum": 5}},
     "schema.yaml: unknown key 'columns.age.maximum'. Did you mean: max? Valid keys under columns.age: "
     "allowed, description, dtype, max, min, nullable, regex, required, unique."),
    ({"age": {"dtype": "integer"}},
     "schema.yaml: columns.age: Unknown dtype 'integer'. Available: bool, category, datetime, float, int, str."),
    ({"age": {"dtype": "int", "min": 9, "max": 1}}, "schema.yaml: columns.age: min 9 is above max 1. Swap them."),
    ({"age": {"dtype": "str", "min": 1}}, "schema.yaml: columns.age.min applies to int, float or datetime columns, not str."),
    ({"age": {"dtype": "str", "regex": "(["}}, "schema.yaml: columns.age.regex '([' is not a valid regular expression"),
    ({"age": {"nullable": True}}, "schema.yaml: columns.age has no 'dtype'."),
])
def test_bad_schemas_are_configuration_errors(columns, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_schema({"columns": columns})


def test_int_dtype_accepts_whole_floats_and_dates_bound_from_yaml(df):
    import yaml

    schema = check_schema(yaml.safe_load("""
columns:
  age: {dtype: int, nullable: true}
  signup: {dtype: datetime, min: 2024-01-01, max: 2024-03-31}
"""))
    got = find_violations(df, schema)
    assert list(got["rule"]) == ["max"] and got["count"].iloc[0] == 1


def test_validate_verb_infer_then_strict_writes_record_and_dictionary(demo_project, run_cli):
    code, out, err = run_cli(["data", "validate", "--infer"], cwd=demo_project)
    assert code == 0, err
    assert (demo_project / "schema.yaml").is_file()
    code, out, err = run_cli(["data", "validate", "--infer"], cwd=demo_project)
    assert "Kept the existing schema schema.yaml" in out  # an edited schema is never replaced
    schema = demo_project / "schema.yaml"
    schema.write_text(schema.read_text().replace("max: 90", "max: 60"))
    code, out, err = run_cli(["data", "validate", "--schema", "schema.yaml", "--strict"], cwd=demo_project)
    assert code == 1
    assert "Strict validation of project data.source (not collected) failed: 1 violation(s): age: max (" in err
    record = json.loads((demo_project / "reports" / "validation.json").read_text())
    assert record["status"] == "fail" and record["strict"] is True
    assert record["violations"][0]["column"] == "age"
    text = (demo_project / "docs" / "data_dictionary.md").read_text()
    assert "| age |  |  | int | no | min 17; max 60 |" in text
    assert "| income |  | target | str | no | allowed: <=50K, >50K |" in text
    assert "| sex |  | sensitive | str |" in text
