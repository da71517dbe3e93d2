"""extract: features.yaml compiled into one scikit-learn pipeline fitted on train only, saved with skops."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from omgmagics.errors import ConfigError, DataError
from omgmagics.features.extract import extract_features, load_pipeline, save_pipeline
from omgmagics.features.spec import check_spec, infer_spec


@pytest.fixture
def splits() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)

    def part(n, offset):
        return pd.DataFrame({
            "row_id": np.arange(offset, offset + n),
            "age": rng.integers(18, 80, n),
            "income": rng.lognormal(10, 1, n).round(2),
            "debt": np.where(rng.random(n) < 0.1, np.nan, rng.normal(5000, 2000, n).round(2)),
            "city": rng.choice(["Oslo", "Rome", "Lima", None], n),
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
            "y": rng.choice(["a", "b"], n),
        })
    return {"train": part(300, 0), "val": part(80, 300), "test": part(80, 380)}


SPEC = {"features": [
    {"name": "num", "transform": "standard", "columns": ["age", "debt"]},
    {"name": "money", "transform": "log", "columns": ["income"]},
    {"name": "band", "transform": "bin", "columns": ["age"], "bins": 4},
    {"name": "city", "transform": "one_hot", "columns": ["city"]},
    {"name": "city_te", "transform": "target_encode", "columns": ["city"]},
    {"name": "city_code", "transform": "ordinal", "columns": "city", "order": ["Lima", "Oslo", "Rome"]},
    {"name": "when", "transform": "date_parts", "columns": ["signup"], "parts": ["month", "is_weekend"]},
    {"name": "ratio", "transform": "ratio", "columns": ["debt", "income"]},
    {"name": "gap", "transform": "difference", "columns": ["income", "debt"]},
    {"name": "flags", "transform": "missing_indicator", "columns": ["debt", "city"]},
    {"name": "scaled", "transform": "minmax", "columns": ["income"]},
]}


def test_pipeline_is_fitted_on_train_only_and_reused_for_every_split(splits, tmp_path):
    report = extract_features(check_spec(SPEC), splits, "y")
    value = report.value
    pipe, out = value["pipeline"], value["splits"]
    train_mean = splits["train"]["age"].mean()
    scaler = pipe.named_steps["features"].named_transformers_["num"].named_steps["scale"]
    assert scaler.mean_[0] == pytest.approx(train_mean)  # statistics from training rows only
    for name in ("val", "test"):
        expected = pipe.transform(splits[name][list(value["raw_columns"])])
        assert np.allclose(out[name].drop(columns=["row_id", "y"]).to_numpy(), expected.to_numpy(),
                           equal_nan=True)
        assert out[name]["y"].tolist() == splits[name]["y"].tolist()
        assert out[name]["row_id"].tolist() == splits[name]["row_id"].tolist()
    feats = out["train"].drop(columns=["row_id", "y"])
    assert (feats.dtypes == "float64").all() and not feats.isna().any().any()
    assert {"num__age", "money__income", "city__city_Oslo", "city__city___missing__", "when__signup_month",
            "flags__debt_missing", "ratio__ratio", "gap__gap"} <= set(feats.columns)
    assert value["raw_columns"] == {"age": "int64", "debt": "float64", "income": "float64",
                                    "city": "object", "signup": "datetime64[ns]"}
    assert [f["name"] for f in value["features"]][:2] == ["num", "money"]
    assert value["features"][0]["outputs"] == ["num__age", "num__debt"]
    # saved with skops and loaded with the kit's trusted types only
    path = tmp_path / "pipeline.skops"
    save_pipeline(pipe, path)
    loaded = load_pipeline(path)
    raw = pd.DataFrame([{"age": "41", "debt": None, "income": 52000, "city": "Paris",
                         "signup": "2024-06-01"}])  # a serving request: text numbers, unseen city
    row = loaded.transform(raw).iloc[0]
    assert row["num__age"] == pytest.approx((41 - train_mean) / scaler.scale_[0])
    assert row["city_code__city"] == -1 and row["flags__debt_missing"] == 1.0
    assert row[[c for c in row.index if c.startswith("city__")]].sum() == 0  # unknown: all zeros


def test_loading_refuses_untrusted_types(tmp_path):
    import skops.io as sio

    from omgmagics.features.transformers import CustomFunction

    path = tmp_path / "evil.skops"
    sio.dump({"x": CustomFunction("os.system"), "y": pd.Timedelta}, path)
    with pytest.raises(DataError, match=re.escape(f"Refusing to load {path}: it holds types outside "
                                                  "the trusted list")):
        load_pipeline(path)
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not a skops pipeline file"):
        load_pipeline(tmp_path / "junk.skops")


@pytest.mark.parametrize("path", ["os.system", "builtins.eval", "projectlib_evil.run",
                                  "projectlib.features._private"])
def test_a_custom_function_outside_the_project_module_is_never_called(tmp_path, path):
    """L4: a pipeline file of trusted types only may still name any dotted path."""
    from omgmagics.features.transformers import CustomFunction

    step = CustomFunction(path, prefix="x")
    with pytest.raises(ImportError, match="not a function of the project module|does not name a "
                                          "public function of the project module"):
        step.fit(pd.DataFrame({"a": [1.0, 2.0]}))


def test_a_custom_feature_spec_names_a_project_function():
    from omgmagics.errors import ConfigError
    from omgmagics.features.spec import check_spec

    with pytest.raises(ConfigError, match=re.escape(
            "a custom feature needs 'function: projectlib.MODULE.FUNCTION' (e.g. "
            "projectlib.features.age_squared), a function of the project module; got 'os.system'.")):
        check_spec({"features": [{"name": "c", "transform": "custom", "columns": ["a"],
                                  "function": "os.system"}]})


@pytest.mark.parametrize("spec, error, message", [
    ({"features": [{"name": "n", "transform": "standard", "columns": ["agee"]}]}, DataError,
     "features.yaml: feature 'n' uses column 'agee', which is not in the training data. Did you mean: "
     "age? Fix the column name; columns: row_id, age, income, debt, city, signup, y."),
    ({"features": [{"name": "n", "transform": "standard", "columns": ["city"]}]}, DataError,
     "features.yaml: feature 'n' applies standard to 'city', which holds str values (e.g. 'Rome'). "
     "Use one_hot, ordinal or target_encode for text columns."),
    ({"features": [{"name": "n", "transform": "onehot", "columns": ["city"]}]}, ConfigError,
     "features.yaml: feature 'n': Unknown transform 'onehot'. Available: bin, custom, date_parts, "
     "difference, log, minmax, missing_indicator, one_hot, ordinal, passthrough, ratio, robust, standard, "
     "target_encode, text_hash. Did you mean: one_hot?"),
    ({"features": [{"name": "n", "transform": "one_hot", "columns": ["city"], "bins": 3}]}, ConfigError,
     "features.yaml: feature 'n': unknown key 'bins' for transform one_hot. It applies to transform bin."),
    ({"features": [{"name": "n", "transform": "ratio", "columns": ["age"]}]}, ConfigError,
     "features.yaml: feature 'n': ratio takes exactly two columns (a, b), got 1."),
    ({"features": [{"name": "n", "transform": "standard", "columns": ["age"]},
                   {"name": "n", "transform": "log", "columns": ["income"]}]}, ConfigError,
     "features.yaml: two features are named 'n'."),
])
def test_bad_feature_configs(splits, spec, error, message):
    with pytest.raises(error, match=re.escape(message)):
        extract_features(check_spec(spec), splits, "y")


def test_inferred_config_leaves_out_excluded_columns(splits):
    spec, notes = infer_spec(splits["train"], "y", exclude=("row_id", "city"))
    used = {c for f in spec["features"] for c in f["columns"]}
    assert used == {"age", "income", "debt", "signup"}
    assert {f["transform"] for f in spec["features"]} >= {"standard", "log", "date_parts", "missing_indicator"}
    assert "Left out on purpose: row_id, city" in notes[-1]
    report = extract_features(check_spec(spec), splits, "y")
    assert report.summary["output features"] >= 5
