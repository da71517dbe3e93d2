"""The monitor reads the prediction log in batches: the streamed figures equal those of the whole log in
memory (exact counts, missing shares and live metric; quantiles exact while a window is small, within
the stated bin resolution above that), whatever the batch boundaries, window lengths and damaged lines."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from omgmagics.ops import monitor
from omgmagics.ops.live import join_feedback, metric_value
from omgmagics.ops.monitor import (
    LATENCY_BINS,
    SCORE_BINS,
    Sketch,
    WindowStats,
    bin_keys,
    bin_values,
    run_monitor,
    stream_windows,
)
from omgmagics.ops.predlog import META, feedback_path, read_feedback, read_log
from omgmagics.ops.windows import floor_ns, from_ns, parse_duration, to_utc
from omgmagics.project import Project
from tests.helpers.ops import small_project

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SCORE_TOL = 5e-5 * (1 + 1e-9) + 1e-12  # half a score bin
LATENCY_REL = 0.005 * (1 + 1e-9)  # half a log-spaced latency bin (ratio 1.01)


def exact_series(project, log, feedback, duration):
    """The monitor's figures computed on the whole log in memory (the implementation before streaming)."""
    joined = join_feedback(log, feedback)
    ns = pd.DatetimeIndex(joined["time"]).as_unit("ns").asi8
    first = floor_ns(int(ns.min()), duration)
    joined["_w"] = (ns - first) // duration.ns
    positive = project.config.get_path("brief.objective.positive_label")
    inputs = [c for c in log.columns if c not in META]
    rows = []
    for w, g in joined.groupby("_w", sort=True):
        ok = g["status"] == "ok"
        lat = g["latency_ms"].dropna()
        sc = g.loc[ok, "score"].dropna()
        pred = g.loc[ok, "prediction"].dropna()
        if len(pred) and positive is not None:
            pos_rate = float((pred.astype(str) == str(positive)).mean())
        elif len(sc):
            pos_rate = float((sc >= 0.5).mean())
        else:
            pos_rate = np.nan
        miss = g.loc[ok, inputs].isna().mean() if inputs and ok.any() else pd.Series(dtype=float)
        lab = g[ok & g["label"].notna()]
        rows.append({
            "window start": from_ns(first + int(w) * duration.ns),
            "window end": from_ns(first + (int(w) + 1) * duration.ns),
            "requests": int(len(g)), "errors": int((~ok).sum()), "error rate": float((~ok).mean()),
            "latency p50 ms": float(np.percentile(lat, 50)) if len(lat) else np.nan,
            "latency p99 ms": float(np.percentile(lat, 99)) if len(lat) else np.nan,
            "score p10": float(np.percentile(sc, 10)) if len(sc) else np.nan,
            "score p50": float(np.percentile(sc, 50)) if len(sc) else np.nan,
            "score p90": float(np.percentile(sc, 90)) if len(sc) else np.nan,
            "positive rate": pos_rate,
            "max missing share": float(miss.max()) if len(miss) else 0.0,
            "most missing feature": str(miss.idxmax()) if len(miss) and miss.max() > 0 else "",
            "labels": int(len(lab)),
            "live roc_auc": metric_value(project, lab["label"], lab["score"], lab["prediction"])
            if len(lab) else np.nan,
            "model versions": ", ".join(sorted({str(v) for v in g["model_version"].dropna()})),
        })
    return pd.DataFrame(rows)


EXACT = ["window start", "window end", "requests", "errors", "error rate", "positive rate",
         "max missing share", "most missing feature", "labels", "model versions"]


def assert_same(streamed, exact, binned=False):
    assert len(streamed) == len(exact)
    assert list(streamed.columns) == list(exact.columns)
    for c in EXACT:
        assert streamed[c].tolist() == exact[c].tolist(), c
    # the live metric: the same rows in the same order, so the same number
    np.testing.assert_array_equal(streamed["live roc_auc"].to_numpy(), exact["live roc_auc"].to_numpy())
    for c in ("score p10", "score p50", "score p90"):
        a, b = streamed[c].to_numpy(), exact[c].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), c
        if binned:
            assert np.nanmax(np.abs(a - b)) <= SCORE_TOL, c
        else:
            np.testing.assert_array_equal(a, b)
    for c in ("latency p50 ms", "latency p99 ms"):
        a, b = streamed[c].to_numpy(), exact[c].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), c
        if binned:
            assert np.nanmax(np.abs(a - b) / np.abs(b)) <= LATENCY_REL, c
        else:
            np.testing.assert_array_equal(a, b)


def write_log(root, n=900, days=5, seed=3, skew=0.05, labels=0.6):
    """Seeded records over `days` days into day files; a share of them written into the file of the
    day before or after (clock skew), with errors, missing inputs, a rare input column, two model
    versions, two environments, and feedback for a share of the requests."""
    rng = np.random.default_rng(seed)
    folder = root / "monitoring" / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[str]] = {}
    feedback = []
    secs = np.sort(rng.integers(0, days * 86400, n))
    for i, s in enumerate(secs):
        t = START + dt.timedelta(seconds=int(s), milliseconds=int(rng.integers(0, 1000)))
        x = float(rng.normal())
        err = rng.random() < 0.04
        score = None if err else float(1 / (1 + np.exp(-1.3 * x)))
        inputs = {"x": x, "z": None if rng.random() < 0.1 else float(rng.poisson(2)),
                  "color": str(rng.choice(["red", "green"])) if rng.random() > 0.2 else None}
        if rng.random() < 0.03:
            inputs["rare"] = 1.0
        rec = {"request_id": f"q{i:05d}", "time": t.isoformat().replace("+00:00", "Z"),
               "env": "production" if rng.random() > 0.1 else "staging",
               "model_version": "2" if s > days * 86400 // 2 else 1,
               "latency_ms": float(rng.lognormal(1.5, 0.6)) if rng.random() > 0.02 else None,
               "status": "error" if err else "ok", "inputs": inputs,
               "prediction": None if err else (">50K" if score >= 0.5 else "<=50K"),
               "score": score, "error": "boom" if err else None}
        day = t.date() + dt.timedelta(days=int(rng.choice([-1, 1]))) if rng.random() < skew else t.date()
        by_file.setdefault(str(day), []).append(json.dumps(rec))
        if rng.random() < labels:
            y = ">50K" if rng.random() < 1 / (1 + np.exp(-1.3 * x)) else "<=50K"
            feedback.append({"request_id": rec["request_id"], "label": y,
                             "time": (t + dt.timedelta(hours=3)).isoformat()})
    for day, lines in by_file.items():
        (folder / f"{day}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "monitoring" / "feedback.jsonl").write_text("".join(json.dumps(f) + "\n" for f in feedback))
    return folder


@pytest.fixture
def project(tmp_path):
    return Project.at(small_project(tmp_path))


def both(project, window, batch_rows, settings=None, since=None, until=None):
    duration = parse_duration(window)
    start = to_utc(since) if since else None
    end = to_utc(until) if until else None
    fb = read_feedback(feedback_path(project))
    stats, problems = stream_windows(project, fb, duration, start, end, settings, batch_rows=batch_rows)
    log, problems_all = read_log(project, start, end, settings)
    assert problems.items == problems_all.items
    assert stats.rows == len(log)
    assert stats.latest == pd.DatetimeIndex(log["time"]).as_unit("ns").asi8.max()
    return stats.series(), exact_series(project, log, fb, duration)


@pytest.mark.parametrize("window", ["1d", "6h", "2d", "3d", "1w", "45m"])
def test_stream_equals_whole_log(project, window):
    write_log(project.root)
    # batches of 37 records: batch boundaries fall inside windows; windows of 2d, 3d and 1w span files
    streamed, exact = both(project, window, batch_rows=37)
    assert_same(streamed, exact)
    assert streamed["most missing feature"].isin(["z", "color", "rare"]).all()
    assert streamed["labels"].sum() > 0 and streamed["errors"].sum() > 0


def test_stream_env_and_time_range(project):
    write_log(project.root)
    streamed, exact = both(project, "12h", batch_rows=50, settings={"env": "production"},
                           since="2026-03-02T06:00:00Z", until="2026-03-04T18:30:00Z")
    assert_same(streamed, exact)
    assert streamed["window start"].iloc[0] >= dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC)
    assert streamed["window start"].iloc[-1] < dt.datetime(2026, 3, 4, 18, 30, tzinfo=dt.UTC)


def test_grid_shift_when_a_later_file_holds_an_earlier_time(project):
    """2d windows start on the earliest day; a record of Feb 28 in a later file moves every window."""
    folder = write_log(project.root, skew=0.0)
    with open(folder / "2026-03-04.jsonl", "a") as fh:
        fh.write(json.dumps({"request_id": "early", "time": "2026-02-28T10:00:00Z", "env": "production",
                             "model_version": "1", "latency_ms": 3.0, "status": "ok",
                             "inputs": {"x": 0.1}, "prediction": "<=50K", "score": 0.4}) + "\n")
    streamed, exact = both(project, "2d", batch_rows=100)
    assert_same(streamed, exact)
    assert exact["window start"].iloc[0] == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)
    streamed, exact = both(project, "1d", batch_rows=100)  # one-day windows: the grid never moves
    assert_same(streamed, exact)


def test_binned_quantiles_within_resolution(project, monkeypatch):
    write_log(project.root, n=1500, days=2)
    monkeypatch.setattr(monitor, "EXACT_CAP", 64)  # every window of this log is above the cap
    streamed, exact = both(project, "1d", batch_rows=101)
    assert_same(streamed, exact, binned=True)
    assert (streamed["requests"] > 64).all()


def test_large_window_switches_to_bins_at_the_default_cap(project):
    write_log(project.root, n=monitor.EXACT_CAP * 2 + 500, days=1, skew=0.0)
    streamed, exact = both(project, "1d", batch_rows=3000)
    assert_same(streamed, exact, binned=True)


def test_sketch_resolution_on_wide_values():
    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.lognormal(2, 2, 20000), rng.uniform(0, 0.02, 500), [0.0, 1e5]])
    scores = np.concatenate([rng.beta(0.5, 0.5, 20000), [0.0, 1.0, 1.0 - 1e-12]])
    qs = [0.0, 1, 10, 50, 90, 99, 99.9, 100]
    for values, bins in ((lat, LATENCY_BINS), (scores, SCORE_BINS)):
        sk = Sketch(bins)
        for part in np.array_split(values, 7):
            sk.add(part)
        assert not sk.exact and sk.n == len(values)
        assert len(sk.keys) < len(values)  # counts over bins, not the values
        got, want = np.array(sk.percentiles(qs)), np.percentile(values, qs)
        if bins is SCORE_BINS:
            assert np.abs(got - want).max() <= SCORE_TOL
        else:
            small = want < 0.01
            assert (np.abs(got - want)[small] <= 5e-5 + 1e-12).all()
            assert (np.abs(got - want)[~small] / want[~small]).max() <= LATENCY_REL


def test_bin_keys_keep_order_and_midpoints_are_close():
    v = np.array([-np.inf, -1e6, -3.5, -1.0, -0.5, -1e-9, 0.0, 1e-9, 0.00995, 0.01, 0.0100999,
                  0.5, 0.99999, 1.0, 1.5, 1e6, np.inf])
    for bins in (LATENCY_BINS, SCORE_BINS):
        keys = bin_keys(v, bins)
        assert (np.diff(keys) >= 0).all()
        mids = bin_values(keys, bins)
        assert mids[0] == -np.inf and mids[-1] == np.inf
        finite = np.isfinite(v)
        linear, step = bins
        tol = np.maximum(step / 2, np.abs(v[finite]) * step / linear / 2) * (1 + 1e-9) + 1e-15
        assert (np.abs(mids[finite] - v[finite]) <= tol).all()


def test_damaged_lines_reported_with_their_numbers_across_batches(project):
    folder = write_log(project.root, skew=0.0)
    path = folder / "2026-03-02.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = "{broken"
    lines[9] = "[1, 2]"
    lines[40] = json.dumps({"request_id": "x", "time": "yesterday"})
    lines[41] = json.dumps({"request_id": "y", "time": "2026-03-02T01:00:00Z", "inputs": [1]})
    path.write_text("\n".join(lines) + "\n\n")
    (folder / "2026-03-03.jsonl").write_bytes(b"\x00\xff\xfe garbage\n\x89PNG\n")
    fb = project.root / "monitoring" / "feedback.jsonl"
    fb.write_text(fb.read_text() + "{nope\n" + json.dumps({"request_id": "q1"}) + "\n")
    streamed, exact = both(project, "1d", batch_rows=7)  # the problems equal the whole-file reader's
    assert_same(streamed, exact)
    report = run_monitor(project, write=False)
    n = len(lines)
    assert report.messages[:2] == [
        f"2026-03-02.jsonl: 4 of {n} line(s) skipped (not JSON: line 5; not a JSON object: line 10; "
        "no valid time: line 41; inputs is not an object: line 42).",
        "2026-03-03.jsonl: skipped, none of its 2 line(s) is a valid record (not JSON: lines 1, 2).",
    ]
    n_fb = len(fb.read_text().splitlines())
    assert report.messages[2] == (f"feedback.jsonl: 2 of {n_fb} line(s) skipped (not JSON: line "
                                  f"{n_fb - 1}; no request_id or label: line {n_fb}).")
    assert report.summary["requests"] == int(streamed["requests"].sum())


def test_run_monitor_summary_matches_the_whole_log(project):
    write_log(project.root)
    report = run_monitor(project, window="1d", write=False)
    log, _ = read_log(project)
    exact = exact_series(project, log, read_feedback(feedback_path(project)), parse_duration("1d"))
    assert report.summary["requests"] == len(log) == int(exact["requests"].sum())
    assert report.summary["labels joined"] == int(exact["labels"].sum())
    assert report.summary["latest window"] == "2026-03-05 .. 2026-03-06"
    assert_same(report.value, exact)


def test_memory_holds_counts_not_rows(project):
    """What a window keeps: counts, bins that occur, and three floats per labeled request."""
    write_log(project.root, n=monitor.EXACT_CAP + 3000, days=1, skew=0.0)
    fb = read_feedback(feedback_path(project))
    stats, _ = stream_windows(project, fb, parse_duration("1d"), batch_rows=500)
    (win,) = stats.windows.values()
    assert win.requests == stats.rows and not win.latency.exact and not win.score.exact
    assert win.latency.keys.nbytes + win.latency.counts.nbytes < 16 * 1200
    assert sum(a.nbytes for t in win.labels for a in t) == 24 * sum(len(t[0]) for t in win.labels)
    assert isinstance(stats, WindowStats)
    assert not any(isinstance(v, pd.DataFrame) for v in vars(stats).values())
