"""The shared builders make a loadable feature set; the tracking store's first connect from several
processes at once; the feature matrix takes nullable and boolean columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.helpers.modeling import make_project


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
