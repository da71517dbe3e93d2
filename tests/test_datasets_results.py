"""The bundled demo data and the result objects."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd

from omgmagics.datasets import load_demo
from omgmagics.results import Report


def test_demo_data_is_the_real_adult_census():
    df = load_demo()
    assert df.shape == (48842, 15)
    assert set(df["income"]) == {"<=50K", ">50K"}
    assert df["income"].value_counts().to_dict() == {"<=50K": 37155, ">50K": 11687}
    assert len(load_demo("train")) == 32561 and len(load_demo("test")) == 16281
    assert df["workclass"].isna().sum() == 2799  # '?' read as missing
    assert {"sex", "race"} <= set(df.columns)


def test_demo_data_ships_with_attribution():
    files = resources.files("omgmagics.datasets").joinpath("data")
    text = files.joinpath("ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in text and "10.24432/C5XW20" in text
    assert files.joinpath("adult.names").is_file()


def test_report_renderings():
    report = Report(title="T", summary={"auc": np.float64(0.91234), "n": np.int64(3)},
                    tables={"<script>x</script>": pd.DataFrame({"<b>col</b>": ["<script>alert(1)</script>"],
                                                                "status": ["fail"]})},
                    messages=["m"], artifacts={"report": "a.html"})
    html = report._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = report.to_text()
    assert "auc  0.9123" in text and "Written:" in text
    assert json.loads(report.to_json())["summary"] == {"auc": 0.91234, "n": 3}
