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


def test_builders_make_a_loadable_feature_set(tmp_path):
    from omgmagics.modeling.data import load_model_data
    from omgmagics.project import Project

    root = make_project(tmp_path / "p")
    data = load_model_data(Project.at(root))
    assert data.ref == "project_features@v1"
    assert data.classes == ["<=50K", ">50K"] and data.positive_label == ">50K"
    assert data.feature_names == ["x0", "x1", "x2", "x3", "x4", "x5", "is_flag"]
    assert data.X["train"].shape == (360, 7) and data.ids["test"][0] == 1000 + 480


def _first_connect(root: str, barrier, out) -> None:  # noqa: ANN001
    from omgmagics.modeling.tracking import connect
    from omgmagics.project import Project

    project = Project.at(root)
    barrier.wait()
    t = connect(project)
    try:
        t.client.create_registered_model(t.model_name)
    except Exception as exc:  # noqa: BLE001 - only "already exists" is allowed below
        out.put(("model", getattr(exc, "error_code", repr(exc))))
    else:
        out.put(("model", "created"))
    out.put(("experiment", t.experiment_id))


def test_first_connect_from_several_processes_at_once(tmp_path):
    """Tune workers start together on a fresh project: each finds or creates the one experiment."""
    import multiprocessing as mp

    root = make_project(tmp_path / "demo", store=False)
    ctx = mp.get_context("spawn")
    n = 4
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_first_connect, args=(str(root), barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n
    got = [out.get(timeout=5) for _ in range(2 * n)]
    assert len({v for k, v in got if k == "experiment"}) == 1
    models = sorted(v for k, v in got if k == "model")
    assert models == ["RESOURCE_ALREADY_EXISTS"] * (n - 1) + ["created"]


def test_feature_matrix_takes_nullable_and_boolean_columns():
    from omgmagics.modeling.data import from_frames

    df = pd.DataFrame({"a": pd.array([1, None, 3, 4], dtype="Int64"), "b": [True, False, True, False],
                       "c": [0.5, 1.5, np.nan, 2.0], "y": ["n", "y", "n", "y"]})
    data = from_frames({"train": df}, target="y", task="classification", positive_label="y", ref="t")
    X = data.X["train"]
    assert X.dtype == np.float64 and X.flags.f_contiguous
    np.testing.assert_array_equal(X, [[1, 1, 0.5], [np.nan, 0, 1.5], [3, 1, np.nan], [4, 0, 2.0]])
    assert data.frames["train"]["a"].isna().tolist() == [False, True, False, False]
    assert data.y["train"].tolist() == [0, 1, 0, 1]
