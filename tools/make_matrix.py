"""Write the data-set matrix of the tests (``tests/data/matrix/*.csv``).

The tables are small on purpose (the suite runs every one through the lifecycle) and different on
purpose: binary, multiclass and regression targets; a rare positive class; a class under 2 %; ids,
dates as text, free text, booleans, constant and leaking columns; missing values and missing labels;
odd column names (spaces, dots, unicode, leading digits); a wide table and a tiny one. Some come from
the tables that ship with scikit-learn, the others from its generators and a seeded random generator.
Nothing is downloaded. Run it again to re-create the same files (seeded):

    .venv/bin/python tools/make_matrix.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "matrix"


def _frame(bunch, target: str, labels=None) -> pd.DataFrame:
    df = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
    y = pd.Series(bunch.target)
    df[target] = y.map(dict(enumerate(labels))) if labels is not None else y
    return df


def iris() -> pd.DataFrame:
    """150 rows, 3 classes, names with spaces and brackets: the tiny table."""
    b = datasets.load_iris()
    return _frame(b, "species", list(b.target_names))


def wine() -> pd.DataFrame:
    """178 rows, 3 classes, 13 numeric columns (one with a slash in its name)."""
    b = datasets.load_wine()
    return _frame(b, "cultivar", [f"cultivar_{i}" for i in range(3)])


def breast_cancer() -> pd.DataFrame:
    """569 rows, binary, 30 numeric columns with spaces in their names."""
    b = datasets.load_breast_cancer()
    return _frame(b, "diagnosis", ["malignant", "benign"])


def diabetes() -> pd.DataFrame:
    """442 rows, regression on a disease-progression score (scaled inputs)."""
    b = datasets.load_diabetes()
    return _frame(b, "progression")


def digits() -> pd.DataFrame:
    """10 classes over 64 pixel columns; 900 of the 1,797 rows."""
    b = datasets.load_digits()
    df = _frame(b, "digit")
    return df.sample(900, random_state=0).reset_index(drop=True)


def rare_positive() -> pd.DataFrame:
    """4,000 rows, binary with about 1 % positives (labels 0/1), 12 numeric features."""
    X, y = datasets.make_classification(n_samples=4000, n_features=12, n_informative=6,
                                        n_redundant=2, weights=[0.99], flip_y=0, class_sep=1.5,
                                        random_state=7)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    df["fraud"] = y
    return df


def many_classes() -> pd.DataFrame:
    """1,500 rows, 12 classes of unequal size (the smallest under 2 %)."""
    X, y = datasets.make_classification(n_samples=1500, n_features=10, n_informative=8,
                                        n_redundant=0, n_classes=12, n_clusters_per_class=1,
                                        weights=[0.015] + [0.985 / 11] * 11, class_sep=2.0,
                                        random_state=3)
    df = pd.DataFrame(X, columns=[f"f_{i}" for i in range(10)])
    df["segment"] = [f"S{v:02d}" for v in y]
    return df


def wide() -> pd.DataFrame:
    """400 rows x 500 numeric columns, binary target named 'label'."""
    X, y = datasets.make_classification(n_samples=400, n_features=500, n_informative=15,
                                        n_redundant=10, random_state=11)
    df = pd.DataFrame(X.round(3), columns=[f"g{i:03d}" for i in range(500)])
    df["label"] = np.where(y == 1, "yes", "no")
    return df


def shop_orders() -> pd.DataFrame:
    """2,500 orders, multiclass (5 delivery outcomes, one under 2 %), messy: an order id, a date as
    text, free text, a boolean, a constant column, a leaking column, odd names, missing values,
    300 rows without a label and a sensitive attribute."""
    rng = np.random.default_rng(5)
    n = 2500
    placed = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), "D")
    weight = rng.gamma(2.0, 2.5, n)
    distance = rng.uniform(1, 900, n)
    region = rng.choice(["north", "south", "east", "west", "zürich"], n, p=[.3, .25, .2, .2, .05])
    express = rng.random(n) < 0.3
    items = rng.integers(1, 12, n)
    z = 0.004 * distance + 0.15 * weight - 1.5 * express + rng.normal(0, 0.8, n)
    outcome = np.select([z < 0.6, z < 1.8, z < 3.0, z < 4.6], ["early", "on_time", "late", "very_late"],
                        "lost")
    lost = rng.random(n) < 0.012
    outcome = np.where(lost, "lost", np.where(outcome == "lost", "very_late", outcome))
    words = ["fragile", "gift", "call first", "leave at door", "urgent", "", "back entrance"]
    df = pd.DataFrame({
        "order id": [f"ORD-{i:06d}" for i in rng.permutation(n)],
        "placed.at": placed.strftime("%Y-%m-%d %H:%M"),
        "weight (kg)": weight.round(2),
        "distance_km": distance.round(1),
        "région": region,
        "express": express,
        "2nd_address": rng.random(n) < 0.1,
        "items": items,
        "note": [" ".join(rng.choice(words, rng.integers(0, 4))) + f" #{rng.integers(1e6)}"
                 for _ in range(n)],
        "warehouse": "W1",
        "outcome": outcome,
    })
    df["outcome_code"] = df["outcome"].map({"early": 0, "on_time": 1, "late": 2, "very_late": 3,
                                             "lost": 4})  # the leak: the target encoded
    for col, share in (("weight (kg)", 0.05), ("région", 0.03), ("distance_km", 0.02)):
        df.loc[rng.random(n) < share, col] = np.nan
    unlabeled = rng.choice(n, 300, replace=False)
    df.loc[unlabeled, ["outcome", "outcome_code"]] = np.nan
    # a sensitive attribute (its own generator: the columns above stay as they were), with a group
    # too small to judge and missing values
    other = np.random.default_rng(55)
    gender = other.choice(["female", "male", "diverse"], n, p=[.48, .48, .04]).astype(object)
    gender[other.random(n) < 0.02] = np.nan
    df.insert(df.columns.get_loc("outcome"), "customer_gender", gender)
    return df


def house_prices() -> pd.DataFrame:
    """2,000 sales, regression on a right-skewed price, with a sale date, a parcel id, coordinates,
    categories, missing values and a sensitive attribute."""
    rng = np.random.default_rng(9)
    n = 2000
    area = rng.gamma(4.0, 30.0, n)
    rooms = np.clip((area / 30 + rng.normal(0, 1, n)).round(), 1, 12)
    year = rng.integers(1900, 2024, n)
    lat, lon = rng.uniform(47.3, 47.5, n), rng.uniform(8.4, 8.7, n)
    district = rng.choice(list("ABCDEFG"), n)
    garden = rng.random(n) < 0.35
    log_price = (11 + 0.9 * np.log(area) + 0.002 * (year - 1900) + 0.15 * garden
                 + (district == "A") * 0.4 - np.abs(lat - 47.4) * 3 + rng.normal(0, 0.25, n))
    sold = pd.Timestamp("2019-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 5 * 365, n)), "D")
    df = pd.DataFrame({
        "parcel": [f"{rng.integers(10, 99)}-{i:06d}" for i in range(n)],
        "sold_on": sold.strftime("%d.%m.%Y"),
        "living_area_m2": area.round(1),
        "rooms": rooms,
        "built": year,
        "lat": lat.round(5), "lon": lon.round(5),
        "district": district,
        "garden": np.where(garden, "yes", "no"),
        "price": np.exp(log_price).round(-2),
    })
    for col, share in (("living_area_m2", 0.04), ("built", 0.06), ("garden", 0.05)):
        df.loc[rng.random(n) < share, col] = np.nan
    # a sensitive attribute (its own generator: the columns above stay as they were)
    other = np.random.default_rng(99)
    df.insert(df.columns.get_loc("price"), "seller_age_group",
              other.choice(["under 35", "35-60", "over 60"], n, p=[.3, .45, .25]))
    return df


def sensor_faults() -> pd.DataFrame:
    """3,000 readings, binary fault flag with 20 % of the labels missing, a timestamp, a station id
    (repeats), coordinates and a categorical with a rare level."""
    rng = np.random.default_rng(21)
    n = 3000
    ts = pd.Timestamp("2025-03-01") + pd.to_timedelta(np.sort(rng.uniform(0, 60, n)), "D")
    temp = rng.normal(40, 8, n)
    vib = rng.gamma(2, 1.5, n)
    station = rng.integers(1, 60, n)
    kind = rng.choice(["pump", "fan", "valve", "compressor"], n, p=[.4, .3, .28, .02])
    z = 0.08 * (temp - 40) + 0.5 * (vib - 3) + (kind == "compressor") * 1.5 + rng.normal(0, 1, n)
    df = pd.DataFrame({
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S"),
        "station": station,
        "kind": kind,
        "temp_c": temp.round(2),
        "vibration": vib.round(3),
        "lat": rng.uniform(46, 48, n).round(4), "lon": rng.uniform(7, 10, n).round(4),
        "fault": np.where(z > 1.3, "fault", "ok"),
    })
    df.loc[rng.random(n) < 0.2, "fault"] = np.nan
    df.loc[rng.random(n) < 0.03, "temp_c"] = np.nan
    return df


TABLES = {
    # name: (builder, target)
    "iris": (iris, "species"),
    "wine": (wine, "cultivar"),
    "breast_cancer": (breast_cancer, "diagnosis"),
    "diabetes": (diabetes, "progression"),
    "digits": (digits, "digit"),
    "rare_positive": (rare_positive, "fraud"),
    "many_classes": (many_classes, "segment"),
    "wide": (wide, "label"),
    "shop_orders": (shop_orders, "outcome"),
    "house_prices": (house_prices, "price"),
    "sensor_faults": (sensor_faults, "fault"),
}


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    names = argv or list(TABLES)
    for name in names:
        build, target = TABLES[name]
        df = build()
        df.to_csv(OUT / f"{name}.csv", index=False)
        print(f"{name}: {len(df)} rows x {df.shape[1]} columns, target {target!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
