"""Drift statistics against scipy, thresholds, windows, streaming equals in-memory, bad input."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.spatial.distance import jensenshannon

from omgmagics.errors import ConfigError, DataError, UsageError
from omgmagics.io.sources import FrameSource, ParquetSource
from omgmagics.ops import stats
from omgmagics.ops.drift import detect
from omgmagics.ops.windows import Window, current_window, parse_duration, rolling_windows, to_ns


def one(ref, cur, **kw):
    return detect(ref, cur, **kw)[0]


def feat(result, name):
    return next(f for f in result.features if f.feature == name)


# --- statistics against scipy -----------------------------------------------------------------------
def test_ks_matches_scipy_on_continuous_and_discrete_data():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"c": rng.normal(0, 1, 5000), "d": rng.poisson(3, 5000)})
    cur = pd.DataFrame({"c": rng.normal(0.2, 1, 3000), "d": rng.poisson(3.3, 3000)})
    r = one(ref, cur)
    c, d = feat(r, "c"), feat(r, "d")
    exact_c = ss.ks_2samp(ref.c, cur.c, method="asymp")
    exact_d = ss.ks_2samp(ref.d, cur.d, method="asymp")
    # discrete: every value is a cut point, so the grid statistic is exact
    assert d.statistic == pytest.approx(exact_d.statistic, abs=1e-12)
    assert d.p_value == pytest.approx(exact_d.pvalue, rel=1e-9)
    # continuous: below the exact statistic by at most one grid cell (0.1 % of the reference + current)
    assert exact_c.statistic - 0.004 <= c.statistic <= exact_c.statistic + 1e-12
    assert stats.ks_pvalue(exact_c.statistic, 5000, 3000) == pytest.approx(exact_c.pvalue, rel=1e-9)


def test_chi_square_matches_scipy_contingency():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"k": rng.choice(list("abcd"), 4000, p=[.4, .3, .2, .1])})
    cur = pd.DataFrame({"k": rng.choice(list("abcde"), 1500, p=[.35, .3, .2, .1, .05])})
    r = one(ref, cur)
    k = feat(r, "k")
    table = pd.crosstab(np.r_[np.zeros(4000), np.ones(1500)], np.r_[ref.k, cur.k])
    chi2, p, dof, _ = ss.chi2_contingency(table.to_numpy(), correction=False)
    # 'e' is not in the reference vocabulary: it is counted as "(other)", the same table
    assert k.test == "chi-square" and k.statistic == pytest.approx(chi2, rel=1e-9)
    assert k.p_value == pytest.approx(p, rel=1e-9)
    assert stats.chi2_homogeneity([10, 0, 5], [3, 0, 9])[2] == 1


def test_jensen_shannon_matches_scipy_and_is_bounded():
    rng = np.random.default_rng(2)
    for _ in range(20):
        p, q = rng.integers(0, 50, 8), rng.integers(0, 50, 8)
        p[0] += 1
        q[1] += 1
        assert stats.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert stats.js_distance([5, 0], [0, 5]) == pytest.approx(1.0)


def test_wasserstein_normalized_matches_scipy():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"c": rng.lognormal(0, 0.5, 8000), "d": rng.integers(0, 6, 8000).astype(float)})
    cur = pd.DataFrame({"c": rng.lognormal(0.3, 0.5, 5000), "d": rng.integers(1, 7, 5000).astype(float)})
    r = one(ref, cur)
    for col, tol in (("c", 2e-3), ("d", 1e-9)):
        expected = ss.wasserstein_distance(ref[col], cur[col]) / ref[col].std(ddof=0)
        assert feat(r, col).wasserstein_norm == pytest.approx(expected, rel=tol)


def test_psi_known_value_and_properties():
    assert stats.psi([50, 50], [50, 50]) == 0.0
    expected = (0.6 - 0.5) * np.log(0.6 / 0.5) + (0.4 - 0.5) * np.log(0.4 / 0.5)
    assert stats.psi([5, 5], [6, 4]) == pytest.approx(expected)
    assert stats.psi([1, 0], [0, 1]) > 5  # an empty bin counts as 0.0001, not as infinite


def test_multiple_testing_corrections():
    p = [0.01, 0.04, 0.03, 0.5, np.nan]
    holm = stats.adjust_pvalues(p, "holm")
    np.testing.assert_allclose(holm[:4], [0.04, 0.09, 0.09, 0.5])
    assert np.isnan(holm[4])
    np.testing.assert_allclose(stats.adjust_pvalues(p, "bonferroni")[:4], [0.04, 0.16, 0.12, 1.0])
    np.testing.assert_allclose(stats.adjust_pvalues(p, "bh")[:4], ss.false_discovery_control(p[:4]))
    with pytest.raises(ConfigError, match=re.escape("Unknown multiple-testing correction 'holms'. "
                                                     "Available: bh, bonferroni, holm, none. Did you "
                                                     "mean: holm?")):
        stats.adjust_pvalues(p, "holms")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=12), st.data())
def test_statistics_properties(counts, data):
    other = data.draw(st.lists(st.integers(0, 1000), min_size=len(counts), max_size=len(counts)))
    if sum(counts) == 0 or sum(other) == 0:
        return
    assert stats.psi(counts, counts) == 0.0 and stats.js_distance(counts, counts) == pytest.approx(0.0, abs=1e-7)
    assert stats.ks_statistic(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert stats.psi(counts, other) == pytest.approx(stats.psi(other, counts))  # symmetric
    assert stats.js_distance(counts, other) == pytest.approx(stats.js_distance(other, counts))
    assert stats.ks_statistic(counts, other) == pytest.approx(stats.ks_statistic(other, counts))
    assert stats.psi(counts, other) >= 0
    assert 0 <= stats.js_distance(counts, other) <= 1 + 1e-12
    assert 0 <= stats.ks_statistic(counts, other) <= 1 + 1e-12
    chi, p, _ = stats.chi2_homogeneity(counts, other)
    assert chi >= 0 and 0 <= p <= 1


# --- thresholds and verdicts -------------------------------------------------------------------------
def test_verdicts_need_significance_and_effect_size():
    rng = np.random.default_rng(4)
    n = 100_000
    ref = pd.DataFrame({"tiny": rng.normal(0, 1, n), "big": rng.normal(0, 1, n)})
    cur = pd.DataFrame({"tiny": rng.normal(0.03, 1, n), "big": rng.normal(0.6, 1, n)})
    r = one(ref, cur)
    tiny, big = feat(r, "tiny"), feat(r, "big")
    assert tiny.p_adjusted < 1e-6 and tiny.psi < 0.1 and tiny.drifted is False  # negligible shift
    assert big.drifted is True and big.severity == "high"
    assert r.drifted == ["big"] and r.share == 0.5 and r.dataset_drift is True
    assert one(ref, cur, settings={"min_effect": 0.0005}).drifted == ["tiny", "big"]
    assert one(ref, cur, settings={"drift_share": 0.75}).dataset_drift is False
    assert one(ref, cur, settings={"effect": "wasserstein", "min_effect": 0.1}).drifted == ["big"]


def test_small_windows_are_not_judged_and_no_drift_on_same_distribution():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.choice(list("xyz"), 3000)})
    few = one(ref, pd.DataFrame({"a": rng.normal(3, 1, 12), "b": ["x"] * 12}))
    assert [f.drifted for f in few.features] == [None, None] and few.judged == 0
    assert few.features[0].note == "too few rows to judge (12 < 30)"
    same = one(ref, pd.DataFrame({"a": rng.normal(size=3000), "b": rng.choice(list("xyz"), 3000)}))
    assert same.drifted == [] and not same.dataset_drift


def test_missing_values_shift_is_drift():
    rng = np.random.default_rng(6)
    a = rng.normal(size=4000)
    b = rng.normal(size=4000)
    b[:1200] = np.nan  # 30 % missing in the current data only
    r = one(pd.DataFrame({"a": a}), pd.DataFrame({"a": b}))
    f = feat(r, "a")
    assert f.missing_ref == 0 and f.missing_cur == pytest.approx(0.3) and f.drifted is True


def test_zero_inflated_feature_keeps_fine_psi_bins():
    rng = np.random.default_rng(7)
    n = 20000
    gain = np.where(rng.random(n) < 0.92, 0.0, rng.lognormal(8, 1, n))
    cur = np.where(rng.random(n) < 0.92, 0.0, rng.lognormal(8, 1, n) / 1000)  # a unit change
    r = one(pd.DataFrame({"g": gain}), pd.DataFrame({"g": cur}))
    f = feat(r, "g")
    assert len(f.labels) >= 8  # zero is one bin, the rest still split finely
    assert f.drifted is True and f.psi > 0.25


# --- streaming equals in-memory ----------------------------------------------------------------------
def _timed(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 9 * 86400, n)), "s")
    x = rng.normal(0, 1, n) + np.where(t >= pd.Timestamp("2026-01-06", tz="UTC"), shift, 0.0)
    k = rng.choice(["a", "b", "c", None], n, p=[0.5, 0.3, 0.15, 0.05])
    return pd.DataFrame({"ts": t, "x": x, "n": rng.poisson(4, n), "k": k, "score": rng.beta(2, 5, n)})


def test_streaming_over_partitioned_parquet_equals_in_memory(tmp_path):
    ref = _timed(6000, 10).drop(columns="ts")
    cur = _timed(9000, 11, shift=1.0)
    folder = tmp_path / "cur"
    for day, part in cur.groupby(cur["ts"].dt.strftime("%Y-%m-%d")):
        (folder / f"day={day}").mkdir(parents=True)
        part.to_parquet(folder / f"day={day}" / "part-0.parquet", index=False)
    ref.to_parquet(tmp_path / "ref.parquet", index=False, row_group_size=500)
    windows = rolling_windows(dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                              int(cur["ts"].max().value), parse_duration("2d"))
    kw = {"features": ["x", "n", "k"], "prediction": "score", "time_column": "ts", "windows": windows,
          "settings": {"sample_size": 2500}}  # fewer than the reference rows: the hashed sample is used
    mem = detect(FrameSource(ref, batch_rows=10**9), FrameSource(cur, batch_rows=10**9), **kw)
    stream = detect(ParquetSource(tmp_path / "ref.parquet", batch_rows=700),
                    ParquetSource(folder, batch_rows=333), **kw)
    assert [w.rows for w in mem] == [w.rows for w in stream]
    assert sum(w.rows for w in mem) == len(cur)
    for a, b in zip(mem, stream, strict=True):
        assert a.drifted == b.drifted and a.dataset_drift == b.dataset_drift
        for fa, fb in zip(a.features + [a.prediction], b.features + [b.prediction], strict=True):
            for attr in ("statistic", "p_value", "p_adjusted", "psi", "js_distance"):
                assert getattr(fa, attr) == getattr(fb, attr) or (np.isnan(getattr(fa, attr))
                                                                   and np.isnan(getattr(fb, attr)))
            np.testing.assert_allclose(fa.wasserstein_norm, fb.wasserstein_norm, rtol=1e-12)
            np.testing.assert_array_equal(fa.cur_share, fb.cur_share)
    # the shift starts on day 6: the first windows are clean, the later ones drift
    assert [bool(w.drifted) for w in mem] == [False, False, True, True, True]


# --- windows and bad input ---------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.integers(1, 10_000), st.sampled_from(list("smhdw")), st.sampled_from(["", " "]))
def test_duration_parsing_accepts_every_count_and_unit(count, unit, space):
    d = parse_duration(f"{count}{space}{unit}")
    assert (d.count, d.unit, str(d)) == (count, unit, f"{count}{unit}")
    assert d.seconds == count * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789smhdwx .-", max_size=6))
def test_duration_parsing_rejects_everything_else(text):
    if re.fullmatch(r"\s*[1-9]\d*\s*[smhdw]\s*|\s*0*[1-9]\d*\s*[smhdw]\s*", text):
        return
    with pytest.raises(UsageError, match="is not a duration"):
        parse_duration(text)


def test_window_messages_and_alignment():
    with pytest.raises(UsageError, match=re.escape("The window '7x' is not a duration. Use a positive "
                                                   "whole number and a unit: 45s, 30m, 12h, 7d or 2w.")):
        parse_duration("7x")
    latest = to_ns(dt.datetime(2026, 1, 10, 15, 30, tzinfo=dt.UTC))
    w = current_window(latest, parse_duration("7d"))
    assert (w.start, w.end) == (dt.datetime(2026, 1, 4, tzinfo=dt.UTC), dt.datetime(2026, 1, 11, tzinfo=dt.UTC))
    assert w.label() == "2026-01-04 .. 2026-01-11"
    h = current_window(latest, parse_duration("12h"))
    assert h.label() == "2026-01-10 04:00 .. 2026-01-10 16:00"  # ends at the hour after the latest


def test_bad_inputs_have_clear_messages():
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100), "c": ["x"] * 100})
    with pytest.raises(DataError, match=re.escape("The current data (current) lacks 2 column(s) of the "
                                                  "reference: b, c. Compare a subset with --features, or "
                                                  "fix the data.")):
        one(ref, pd.DataFrame({"a": rng.normal(size=50)}))
    cur = pd.DataFrame({"a": rng.normal(size=50), "t": np.arange(50)})
    w = [Window(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC))]
    with pytest.raises(DataError, match=re.escape("The time column 't' is not a time: it holds numbers "
                                                  "(int64).")):
        detect(ref[["a"]], cur, time_column="t", windows=w)
    cur["t"] = ["soon"] * 50
    with pytest.raises(DataError, match=re.escape("The time column 't' is not a time: no value parses as "
                                                  "a date or time (e.g. 'soon').")):
        detect(ref[["a"]], cur, time_column="t", windows=w)
    with pytest.raises(DataError, match="The table reference is empty"):
        one(ref.iloc[:0], ref)


def test_prediction_log_in_small_batches_equals_whole_day_files(tmp_path):
    """The log as current data: batches of a few records give what whole day files give."""
    from omgmagics.ops.predlog import LogSource
    from omgmagics.project import Project
    from tests.helpers.ops import small_project, write_log, write_reference

    root = small_project(tmp_path)
    ref = write_reference(root)
    write_log(root, days=6, per_day=150, shift_from=3, shift=1.5)
    project = Project.at(root)
    windows = rolling_windows(dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                              to_ns(dt.datetime(2026, 1, 7, tzinfo=dt.UTC)), parse_duration("2d"))
    from omgmagics.io.sources import open_source
    from omgmagics.ops.drift import compare, count_current, profile_reference

    profile = profile_reference(open_source(ref), ["x", "z"], prediction="score")

    def drift(batch_rows):
        counts = count_current(LogSource(project, batch_rows=batch_rows), profile, time_column="time",
                               windows=windows)
        return [compare(profile, counts, w, windows[w]) for w in range(len(windows))]

    small, whole = drift(37), drift(10**9)
    assert [w.rows for w in small] == [w.rows for w in whole] and sum(w.rows for w in whole) == 900
    for a, b in zip(small, whole, strict=True):
        for fa, fb in zip(a.features + [a.prediction], b.features + [b.prediction], strict=True):
            np.testing.assert_array_equal([fa.statistic, fa.psi], [fb.statistic, fb.psi])
            np.testing.assert_array_equal(fa.cur_share, fb.cur_share)
    # the shift starts on day 3; the fourth window (from Jan 7) is empty
    assert [(w.rows, bool(w.drifted)) for w in whole] == [(300, False), (300, True), (300, True), (0, False)]
