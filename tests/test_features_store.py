"""The feature store: immutable versions, NAME@vN / @latest, tamper detection, --list, DuckDB views,
and atomicity: a writer killed halfway leaves no version."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from omgmagics.errors import DataError, UsageError
from omgmagics.features.store import (
    feature_set_table,
    list_feature_sets,
    list_versions,
    load_feature_set,
    parse_ref,
    write_duckdb_catalog,
    write_feature_set,
)


def _splits(n=50, shift=0.0):
    rng = np.random.default_rng(0)
    make = lambda k, off: pd.DataFrame({"row_id": np.arange(off, off + k),  # noqa: E731
                                        "f1": rng.normal(size=k) + shift, "f2": rng.normal(size=k),
                                        "y": rng.choice(["<=50K", ">50K"], k)})
    return {"train": make(n, 0), "val": make(n // 5, n), "test": make(n // 5, 2 * n)}


def test_versions_are_immutable_and_loadable_by_ref(tmp_path):
    root = tmp_path / "features"
    write_feature_set(root, "fs", "v1", _splits(), "y", {"pipeline": "pipeline.skops"},
                      files={"pipeline.skops": b"fake"})
    write_feature_set(root, "fs", "v2", _splits(shift=1.0), "y")
    with pytest.raises(UsageError, match=re.escape(
            "Feature set fs@v1 already exists and versions are immutable. Write a new version (next free: v3).")):
        write_feature_set(root, "fs", "v1", _splits(), "y")
    latest = load_feature_set(root, "fs@latest")
    assert latest.version == "v2" and latest.train["f1"].mean() > 0.5
    v1 = load_feature_set(root, "fs@v1")
    X, y = v1.xy("test")
    assert list(X.columns) == ["f1", "f2"] and v1.id_column == "row_id"  # the id is not a feature
    assert v1.manifest["feature_columns"] == ["f1", "f2"] and v1.manifest["rows"] == 70
    assert v1.manifest["files"]["pipeline.skops"]["sha256"] and v1.pipeline_path.read_bytes() == b"fake"
    assert list_feature_sets(root) == {"fs": ["v1", "v2"]}
    table = feature_set_table(root)
    assert table[["name", "version", "train", "val", "test", "features"]].values.tolist() == [
        ["fs", "v1", 50, 10, 10, 2], ["fs", "v2", 50, 10, 10, 2]]
    assert parse_ref("fs") == ("fs", "latest")


def test_a_modified_version_is_detected(tmp_path):
    root = tmp_path / "features"
    dest = write_feature_set(root, "fs", "v1", _splits(), "y", files={"pipeline.skops": b"x"})
    (dest / "pipeline.skops").write_bytes(b"changed")
    with pytest.raises(DataError, match="does not match the sha256 in its manifest"):
        load_feature_set(root, "fs@v1")
    with pytest.raises(DataError, match=re.escape("Feature set fs has no version v7. Stored: v1.")):
        load_feature_set(root, "fs@v7")
    with pytest.raises(UsageError, match="must be letters, digits"):
        write_feature_set(root, "../evil", "v1", _splits(), "y")


def test_duckdb_catalog_has_a_view_per_version(tmp_path):
    import duckdb

    root = tmp_path / "features"
    write_feature_set(root, "fs", "v1", _splits(), "y")
    write_feature_set(root, "fs", "v2", _splits(n=100), "y")
    path = write_duckdb_catalog(root)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute('SELECT count(*) FROM "fs_v1"').fetchone()[0] == 70
    assert con.execute('SELECT split, count(*) FROM "fs_latest" GROUP BY split ORDER BY split').fetchall() \
        == [("test", 20), ("train", 100), ("val", 20)]
    con.close()


WRITER = textwrap.dedent("""
    import sys
    import numpy as np, pandas as pd
    from omgmagics.features.store import write_feature_set
    rng = np.random.default_rng(0)
    big = lambda: pd.DataFrame(rng.normal(size=(800_000, 6)), columns=[f"f{i}" for i in range(6)]).assign(y="a")
    splits = {"train": big(), "val": big(), "test": big()}
    print("ready", flush=True)
    write_feature_set(sys.argv[1], "fs", "v1", splits, "y")
    print("done", flush=True)
""")


def test_a_write_killed_halfway_leaves_no_version(tmp_path):
    root = tmp_path / "features"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 60
    partial = []
    while time.time() < deadline and not partial:  # kill as soon as the first split file is on disk
        partial = [p for p in (root / "fs").glob(".v1.*.tmp/train.parquet")] if (root / "fs").exists() else []
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert partial, "the writer never started writing"
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "fs" / "v1").exists()
    assert list_versions(root, "fs") == [] and list_feature_sets(root) == {}
    with pytest.raises(DataError, match="No feature set 'fs'"):
        load_feature_set(root, "fs@latest")
    # the leftover temporary folder blocks nothing: v1 can be written afterwards
    write_feature_set(root, "fs", "v1", _splits(), "y")
    assert list_versions(root, "fs") == ["v1"]


def test_write_feature_set_checks_its_inputs(tmp_path):
    root = tmp_path / "features"
    with pytest.raises(UsageError, match=re.escape("Unknown split 'holdout'. Available: test, train, val.")):
        write_feature_set(root, "fs", "v1", {"holdout": _splits()["test"]}, "y")
    with pytest.raises(DataError, match=re.escape("Split 'train' has no target column 'label'.")):
        write_feature_set(root, "fs", "v1", _splits(), "label")
    assert not (root / "fs" / "v1").exists()
    assert json.loads(json.dumps(list_feature_sets(root))) == {}
