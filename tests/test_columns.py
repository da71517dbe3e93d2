"""Column roles (``omgmagics.columns``): what the kit does with each column of any table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from omgmagics.columns import column_roles, excluded_columns

MATRIX = Path(__file__).resolve().parent / "data" / "matrix"


def test_roles_of_a_messy_table():
    df = pd.read_csv(MATRIX / "shop_orders.csv")
    roles = column_roles(df, "outcome")
    kinds = {name: role.kind for name, role in roles.items()}
    assert kinds == {"order id": "id", "placed.at": "datetime", "weight (kg)": "numeric",
                     "distance_km": "numeric", "région": "categorical", "express": "boolean",
                     "2nd_address": "boolean", "items": "numeric", "note": "text",
                     "warehouse": "constant", "customer_gender": "categorical",
                     "outcome": "target", "outcome_code": "leak"}
    assert roles["order id"].reason == "2,500 distinct values in 2,500 rows: an identifier, excluded"
    assert roles["warehouse"].reason == "one value (W1) in every row: excluded"
    assert roles["outcome_code"].reason == ("a one-to-one recoding of the target: a leak of it, "
                                            "excluded")
    assert excluded_columns(roles) == ["order id", "warehouse", "outcome_code"]
    assert [n for n, r in roles.items() if r.use] == ["weight (kg)", "distance_km", "région",
                                                      "express", "2nd_address", "items",
                                                      "customer_gender"]


def test_a_timestamp_or_measurement_is_never_an_identifier():
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({
        "ts": pd.date_range("2025-01-01", periods=n, freq="min").strftime("%Y-%m-%dT%H:%M:%S"),
        "day": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%d.%m.%Y"),
        "lat": rng.uniform(46, 48, n).round(5),
        "case": [f"{rng.integers(10, 99)}-{i:06d}" for i in range(n)],
        "y": rng.normal(size=n)})
    roles = column_roles(df, "y", task="regression")
    assert {k: r.kind for k, r in roles.items()} == {
        "ts": "datetime", "day": "datetime", "lat": "numeric", "case": "id", "y": "target"}


def test_numeric_leak_and_mixed_types():
    rng = np.random.default_rng(1)
    n = 300
    y = rng.gamma(2, 10, n)
    df = pd.DataFrame({"y": y, "y_cents": (y * 100).round(), "x": rng.normal(size=n),
                       "mixed": np.where(rng.random(n) < 0.5, "n/a", "3")})
    roles = column_roles(df, "y")
    assert roles["y_cents"].kind == "leak"
    assert roles["y_cents"].reason == "correlation 1.000 with the target: a leak of it, excluded"
    assert roles["mixed"].kind == "categorical" and roles["mixed"].reason.startswith("mixed types (")
    assert roles["x"].kind == "numeric"
