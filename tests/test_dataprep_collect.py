"""collect: csv / parquet / jsonl / SQLite / DuckDB sources into data/raw with lineage; bad sources."""

from __future__ import annotations

import json
import re
import sqlite3

import pandas as pd
import pytest

from omgmagics.dataprep.sources import collect, content_sha256, load_sources
from omgmagics.errors import ConfigError, DataError
from omgmagics.project import Project


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3, 4], "city": ["Oslo", "Rome", None, "Lima"],
                         "amount": [10.5, 3.0, 7.25, 1.0]})


@pytest.fixture
def sources(tmp_path, frame):
    ext = tmp_path / "external"
    ext.mkdir()
    frame.to_csv(ext / "a.csv", index=False)
    frame.to_parquet(ext / "b.parquet", index=False)
    frame.to_json(ext / "c.jsonl", orient="records", lines=True)
    with sqlite3.connect(ext / "shop.db") as con:
        frame.to_sql("orders", con, index=False)
    import duckdb

    con = duckdb.connect(str(ext / "wh.duckdb"))
    con.execute("CREATE TABLE events AS SELECT * FROM frame")
    con.close()
    path = tmp_path / "sources.yaml"
    path.write_text("""sources:
  - {name: a, kind: csv, path: external/a.csv}
  - {name: b, kind: parquet, path: external/b.parquet}
  - {name: c, kind: jsonl, path: external/c.jsonl}
  - {name: d, kind: sqlite, path: external/shop.db, query: "SELECT * FROM orders WHERE amount > 2"}
  - {name: e, kind: duckdb, path: external/wh.duckdb, table: events}
""")
    return path


def test_every_kind_lands_as_parquet_with_lineage(tmp_path, sources, frame):
    out = tmp_path / "data" / "raw"
    report = collect(load_sources(sources), out)
    assert report.summary["written"] == 5
    for name in "abce":
        got = pd.read_parquet(out / f"{name}.parquet")
        assert got.shape == frame.shape and list(got.columns) == list(frame.columns)
    assert len(pd.read_parquet(out / "d.parquet")) == 3  # the query's filter ran
    lineage = json.loads((out / "lineage.json").read_text())["sources"]
    rec = lineage["d"]
    assert rec["query"] == "SELECT * FROM orders WHERE amount > 2" and rec["rows"] == 3
    assert rec["columns"] == {"id": "int64", "city": "object", "amount": "float64"}
    assert rec["location"] == str(tmp_path / "external" / "shop.db")
    assert len(rec["sha256"]) == 64 and len(rec["source_sha256"]) == 64 and rec["collected_at"]
    assert lineage["e"]["query"] == "table events"


def test_raw_files_are_never_overwritten(tmp_path, sources, frame):
    out = tmp_path / "raw"
    specs = load_sources(sources)
    collect(specs, out)
    before = (out / "a.parquet").stat().st_mtime_ns
    again = collect(specs, out)  # same content: a no-op
    assert again.summary["unchanged"] == 5 and (out / "a.parquet").stat().st_mtime_ns == before
    frame.assign(amount=frame["amount"] * 2).to_csv(tmp_path / "external" / "a.csv", index=False)
    with pytest.raises(DataError, match=re.escape(
            f"{out / 'a.parquet'} already exists with different content, and raw data is never "
            "overwritten. Give source 'a' a new name")):
        collect(specs, out)
    assert pd.read_parquet(out / "a.parquet")["amount"].tolist() == frame["amount"].tolist()


def test_missing_path_sql_error_and_unknown_kind_write_nothing(tmp_path, sources):
    out = tmp_path / "raw"
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: ok, kind: csv, path: external/a.csv}\n"
                   "  - {name: gone, kind: csv, path: external/nope.csv}\n")
    with pytest.raises(DataError, match=re.escape(
            f"Source 'gone': {tmp_path / 'external' / 'nope.csv'} does not exist. Fix 'path' in bad.yaml")):
        collect(load_sources(bad), out)
    bad.write_text("sources:\n  - {name: ok, kind: csv, path: external/a.csv}\n"
                   "  - {name: q, kind: sqlite, path: external/shop.db, query: SELECT * FROM ordrs}\n")
    with pytest.raises(DataError, match=re.escape(
            "Source 'q': the SQL query failed on shop.db (sqlite): Execution failed on sql "
            "'SELECT * FROM ordrs': no such table: ordrs. Query: SELECT * FROM ordrs. Fix the query")):
        collect(load_sources(bad), out)
    bad.write_text("sources:\n  - {name: q, kind: duckdb, path: external/wh.duckdb, query: SELEC 1}\n")
    with pytest.raises(DataError, match=r"Source 'q': the SQL query failed on wh\.duckdb \(duckdb\): "
                                        r"Parser Error: syntax error"):
        collect(load_sources(bad), out)
    assert not out.exists()  # nothing written by any failed collect
    bad.write_text("sources:\n  - {name: x, kind: sqlit, path: external/shop.db, query: SELECT 1}\n")
    with pytest.raises(ConfigError, match=re.escape(
            "bad.yaml: source 'x': Unknown source kind 'sqlit'. Available: csv, demo, duckdb, jsonl, "
            "parquet, sqlite. Did you mean: sqlite?")):
        load_sources(bad)
    bad.write_text("sources:\n  - {name: x, kind: csv, pth: a.csv}\n")
    with pytest.raises(ConfigError, match=re.escape("bad.yaml: unknown key 'sources[0].pth'. Did you mean: path?")):
        load_sources(bad)


def test_content_hash_ignores_file_format_but_not_values(frame):
    assert content_sha256(frame) == content_sha256(frame.copy())
    assert content_sha256(frame) != content_sha256(frame.assign(amount=frame["amount"] + 1))


def test_collect_verb_without_sources_file_takes_the_project_source(demo_project, run_cli):
    code, out, err = run_cli(["data", "collect"], cwd=demo_project)
    assert code == 0, err
    assert "No sources.yaml in the project: collected the project's data.source" in out
    raw = pd.read_parquet(demo_project / "data" / "raw" / "adult.parquet")
    assert 900 < len(raw) < 1100  # data.sample_frac 0.02 of 48,842
    lineage = json.loads((demo_project / "data" / "raw" / "lineage.json").read_text())
    assert lineage["sources"]["adult"]["sample_frac"] == 0.02
    code, out, err = run_cli(["data", "collect", "--sources", "missing.yaml"], cwd=demo_project)
    assert code == 1 and f"The sources file {demo_project / 'missing.yaml'} does not exist" in err


def test_collect_one_file_makes_it_the_current_raw_table(demo_project, run_cli):
    from omgmagics.dataprep.steps import raw_table

    code, out, err = run_cli(["data", "collect"], cwd=demo_project)
    assert code == 0, err
    project = Project.at(demo_project)
    base, _ = raw_table(project)
    new = base.head(50).assign(age=base["age"].head(50) + 1)
    (demo_project / "data" / "retrain").mkdir(parents=True)
    new.to_parquet(demo_project / "data" / "retrain" / "job-1.parquet", index=False)
    code, out, err = run_cli(["data", "collect", "--source", "data/retrain/job-1.parquet",
                              "--sample-frac", "1"], cwd=demo_project)
    assert code == 0, err
    lineage = json.loads((demo_project / "data" / "raw" / "lineage.json").read_text())
    assert lineage["current"] == "job-1" and set(lineage["sources"]) == {"adult", "job-1"}
    df, info = raw_table(project)
    assert info["path"] == "data/raw/job-1.parquet"
    pd.testing.assert_frame_equal(df, new)
    # collecting the project source again (unchanged) makes it current again
    code, out, err = run_cli(["data", "collect"], cwd=demo_project)
    assert code == 0, err
    assert raw_table(project)[1]["path"] == "data/raw/adult.parquet"
    # a notebook parameter left at None passes through as 'none': the project's source
    code, out, err = run_cli(["data", "collect", "--source", "None"], cwd=demo_project)
    assert code == 0 and "collected the project's data.source" in out


def test_collect_source_errors_write_nothing(demo_project, run_cli):
    code, out, err = run_cli(["data", "collect", "--source", "nope.parquet"], cwd=demo_project)
    assert code == 1
    assert "--source nope.parquet: no such file. Give the path of a csv, parquet or jsonl file" in err
    code, out, err = run_cli(["data", "collect", "--source", "x.xlsx"], cwd=demo_project)
    assert code == 1 and "--source x.xlsx has an unknown file type '.xlsx'. Use csv, parquet or jsonl" in err
    code, out, err = run_cli(["data", "collect", "--source", "a.csv", "--sources", "s.yaml"],
                             cwd=demo_project)
    assert code == 2 and "--source and --sources exclude each other" in err
    assert not list((demo_project / "data" / "raw").glob("*.*"))
