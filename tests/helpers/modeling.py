"""Shared builders of the phase 3 tests: a tiny seeded project with a stored feature set.

Until phase 2 writes real feature sets these build one the way phase 2 does: transformed numeric
columns, the target with its original labels and a ``row_id`` joining to ``data/processed/test.parquet``
(which holds the sensitive features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OMG_YAML = """\
project:
  name: {name}
brief:
  objective:
    type: {task}
    target: {target}
    positive_label: {positive}
    primary_metric: {metric}
    threshold: {threshold}
    secondary_metrics: {secondary}
  sensitive_features: [sex, race]
fairness:
  demographic_parity_difference: {dpd}
  equalized_odds_difference: {eod}
features:
  name: project_features
seed: 42
"""


def synthetic(n: int = 600, seed: int = 0, task: str = "classification",
              classes: int = 2) -> pd.DataFrame:
    """Numeric features x0..x5, a dummy column, sensitive sex/race, a target and a row id
    (`classes` 3: the income is low / mid / high)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    sex = rng.choice(["Female", "Male"], size=n, p=[0.4, 0.6])
    race = rng.choice(["Black", "White", "Other"], size=n, p=[0.2, 0.7, 0.1])
    dummy = (rng.random(n) < 0.3).astype(float)
    logit = 1.6 * X[:, 0] - 1.2 * X[:, 1] + 0.8 * X[:, 2] * X[:, 3] + 0.3 * (sex == "Male") + 0.5 * dummy
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["is_flag"] = dummy
    if task == "regression":
        df["price"] = 3.0 * logit + rng.normal(scale=0.5, size=n)
    elif classes == 3:
        noisy = logit + rng.logistic(size=n) * 0.6
        df["income"] = np.select([noisy < -0.8, noisy < 0.9], ["low", "mid"], "high")
    else:
        df["income"] = np.where(logit + rng.logistic(size=n) * 0.6 > 0.3, ">50K", "<=50K")
    df["row_id"] = np.arange(n) + 1000
    df["sex"], df["race"] = sex, race
    return df


def make_project(root: Path, *, name: str = "demo", task: str = "classification",
                 threshold: float | None = 0.7, dpd: float | None = 0.9, eod: float | None = 0.9,
                 n: int = 600, seed: int = 0, store: bool = True, extra_yaml: str = "",
                 classes: int = 2) -> Path:
    """A project folder with omg.yaml, data/processed/test.parquet and features project_features@v1
    (`classes` 3: a multi-class income, scored on f1_macro)."""
    from omgmagics.features.store import write_feature_set

    root.mkdir(parents=True, exist_ok=True)
    reg = task == "regression"
    text = OMG_YAML.format(
        name=name, task=task, target="price" if reg else "income",
        positive="null" if reg or classes > 2 else '">50K"',
        metric="rmse" if reg else "f1_macro" if classes > 2 else "roc_auc",
        threshold="null" if threshold is None else threshold,
        secondary="[mae, r2]" if reg else "[accuracy]" if classes > 2 else "[accuracy, f1]",
        dpd="null" if dpd is None else dpd, eod="null" if eod is None else eod)
    (root / "omg.yaml").write_text(text + extra_yaml)
    if not store:
        return root
    df = synthetic(n, seed, task, classes)
    target = "price" if reg else "income"
    n_tr, n_va = int(n * 0.6), int(n * 0.2)
    parts = {"train": df.iloc[:n_tr], "val": df.iloc[n_tr:n_tr + n_va], "test": df.iloc[n_tr + n_va:]}
    processed = root / "data" / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    for split, part in parts.items():
        part.to_parquet(processed / f"{split}.parquet", index=False)
    feats = {s: p.drop(columns=["sex", "race"]).reset_index(drop=True) for s, p in parts.items()}
    write_feature_set(root / "features", "project_features", "v1", feats, target,
                      extra={"id_column": "row_id", "raw_columns": list(df.columns),
                             "pipeline": None})
    return root


def write_experiment(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
