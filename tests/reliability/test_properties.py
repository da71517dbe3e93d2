"""Property-based tests (hypothesis) of the parsers and the drift statistics.

Parsers: a magic line round-trips quoted values through the registry's shlex/argparse path; window
strings parse to the right number of seconds and anything else is refused naming the value; split
fractions are refused unless they sum to 1 and valid ones give disjoint splits covering every row;
any unknown key of omg.yaml is refused with a message naming it. Drift statistics (PSI,
Jensen-Shannon, KS, Wasserstein, binning): zero on identical data, symmetric where the statistic is,
non-negative and within their bounds.
"""

from __future__ import annotations

import re
import shlex
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from omgmagics.errors import ConfigError, UsageError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

# --- magic lines ---------------------------------------------------------------------------------
# Any printable text but NUL (argv cannot carry it) and values argparse would read as a flag.
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                 max_size=40).filter(lambda s: not s.startswith("-"))


@FAST
@given(reason=values, by=values)
def test_magic_line_round_trips_quoted_values(reason, by):
    """What a user quotes in ``%omgops retrain --reason '...'`` reaches the command unchanged."""
    from omgmagics.commands._registry import get_command

    line = f"retrain --trigger drift --decline --reason {shlex.quote(reason)} --by {shlex.quote(by)}"
    argv = shlex.split(line)  # what OmgMagics.dispatch does with the line
    cmd = get_command("ops", argv[0], "magic")
    ns = cmd.parse(argv[1:], "magic")
    assert (ns.reason, ns.by, ns.trigger, ns.decline) == (reason, by, "drift", True)
    cli = cmd.parse(argv[1:], "cli")  # the terminal parses the same words the same way
    assert vars(cli) == vars(ns)


@FAST
@given(n=st.integers(min_value=-10**6, max_value=10**6))
def test_integer_flags_round_trip_or_fail_as_usage_errors(n):
    from omgmagics.commands._registry import get_command

    cmd = get_command("ml", "status")
    ns = cmd.parse(["--runs", str(n)])
    assert ns.runs == n
    with pytest.raises(UsageError, match=re.escape("argument --runs: invalid int value: 'x")):
        cmd.parse(["--runs", f"x{n}"])


# --- durations -----------------------------------------------------------------------------------
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@FAST
@given(count=st.integers(min_value=1, max_value=10**6), unit=st.sampled_from(sorted(UNITS)),
       pad=st.sampled_from(["", " "]))
def test_valid_durations_parse_to_their_seconds(count, unit, pad):
    from omgmagics.ops.windows import parse_duration

    d = parse_duration(f"{pad}{count}{pad}{unit}{pad}")
    assert (d.count, d.unit, d.seconds) == (count, unit, count * UNITS[unit])
    assert str(d) == f"{count}{unit}" and parse_duration(str(d)) == d
    assert d.timedelta.total_seconds() == d.seconds


@FAST
@given(text=st.text(alphabet=string.printable, max_size=12))
def test_invalid_durations_are_refused_naming_the_value(text):
    from omgmagics.ops.windows import parse_duration

    assume(not re.fullmatch(r"\s*0*[1-9]\d*\s*[smhdw]\s*", text))
    with pytest.raises((UsageError, ConfigError)) as info:
        parse_duration(text, "window")
    assert f"The window '{text}' is not a duration." in str(info.value)


# --- split fractions -----------------------------------------------------------------------------
fraction = st.floats(min_value=0.01, max_value=0.98, allow_nan=False)


@FAST
@given(train=fraction, val=fraction, test=fraction)
def test_fractions_not_summing_to_one_are_refused(train, val, test):
    from omgmagics.dataprep.split import check_fractions

    assume(abs(train + val + test - 1) > 1e-3)
    with pytest.raises(UsageError, match=re.escape("Split fractions must sum to 1, got ")):
        check_fractions(train, val, test)


@settings(max_examples=25, deadline=None)
@given(val=st.integers(min_value=5, max_value=40), test=st.integers(min_value=5, max_value=40),
       n=st.integers(min_value=60, max_value=300), seed=st.integers(0, 10**6),
       mode=st.sampled_from(["stratified", "random", "group", "time"]))
def test_valid_fractions_give_disjoint_splits_covering_every_row(val, test, n, seed, mode):
    import pandas as pd

    from omgmagics.dataprep.split import split_frame

    fr = (round(1 - val / 100 - test / 100, 2), val / 100, test / 100)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, max(n // 4, 10), n),
                       "t": rng.integers(0, 10**6, n), "y": rng.choice(["a", "b"], n, p=[0.7, 0.3])})
    kw = {"group": "g"} if mode == "group" else {"time": "t"} if mode == "time" else \
        {"stratify": mode == "stratified"}
    from omgmagics.errors import DataError

    try:
        splits = split_frame(df, "y", fr, seed=seed, **kw)
    except DataError as exc:  # a few large groups may leave a split empty: refused, never silent
        assert "came out empty" in str(exc) or "too few" in str(exc)
        return
    ids = [set(s["row_id"]) for s in splits.values()]
    assert sum(map(len, ids)) == n
    assert set().union(*ids) == set(range(n))  # every row, once
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1:])
    if mode == "group":
        where = {g: k for k, s in splits.items() for g in s["g"]}
        assert sum(s["g"].nunique() for s in splits.values()) == len(where)  # groups kept whole
    if mode == "time":
        assert splits["train"]["t"].max() <= splits["val"]["t"].min()
        assert splits["val"]["t"].max() <= splits["test"]["t"].min()
    # deterministic: the same seed gives the same split
    again = split_frame(df, "y", fr, seed=seed, **kw)
    assert all(again[k]["row_id"].tolist() == splits[k]["row_id"].tolist() for k in splits)


# --- YAML configs --------------------------------------------------------------------------------
key_text = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)


@FAST
@given(key=key_text, section=st.sampled_from(["", "brief", "serving", "tracking", "monitoring"]))
def test_unknown_config_keys_are_refused_naming_the_key(key, section, tmp_path_factory):
    import yaml

    from omgmagics.config import SPEC, load_config

    spec = SPEC if not section else SPEC[section]
    assume(key not in spec and not key.isdigit() and key.lower() not in ("true", "false", "null",
                                                                          "yes", "no", "on", "off",
                                                                          "y", "n", "nan", "inf"))
    folder = tmp_path_factory.mktemp("cfg")
    data = {"project": {"name": "p"}}
    if section:
        data.setdefault(section, {})[key] = 1
    else:
        data[key] = 1
    (folder / "omg.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(folder / "omg.yaml")
    path = f"{section}.{key}" if section else key
    assert str(info.value).startswith(f"omg.yaml: unknown key '{path}'.")


# --- drift statistics ----------------------------------------------------------------------------
counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=30)


@FAST
@given(a=counts, data=st.data())
def test_drift_statistics_bounds_symmetry_and_zero(a, data):
    from omgmagics.ops import stats

    b = data.draw(st.lists(st.integers(min_value=0, max_value=10_000), min_size=len(a),
                           max_size=len(a)))
    assume(sum(a) > 0 and sum(b) > 0)
    # zero on identical data (also on a scaled copy: the same distribution)
    for same in (a, [3 * x for x in a]):
        assert stats.psi(a, same) == pytest.approx(0, abs=1e-12)
        assert stats.js_distance(a, same) == pytest.approx(0, abs=1e-6)
        assert stats.ks_statistic(a, same) == pytest.approx(0, abs=1e-12)
        assert stats.chi2_homogeneity(a, same)[0] == pytest.approx(0, abs=1e-6)
    psi, js, ks = stats.psi(a, b), stats.js_distance(a, b), stats.ks_statistic(a, b)
    assert psi >= 0 and 0 <= js <= 1 + 1e-12 and 0 <= ks <= 1 + 1e-12
    # symmetric: PSI (a symmetrised KL), Jensen-Shannon, KS and chi-square
    assert stats.psi(b, a) == pytest.approx(psi, rel=1e-9, abs=1e-12)
    assert stats.js_distance(b, a) == pytest.approx(js, abs=1e-9)
    assert stats.ks_statistic(b, a) == pytest.approx(ks, abs=1e-12)
    c_ab, p_ab, dof = stats.chi2_homogeneity(a, b)
    c_ba, p_ba, _ = stats.chi2_homogeneity(b, a)
    assert c_ab == pytest.approx(c_ba, rel=1e-9, abs=1e-9) and 0 <= p_ab <= 1 and dof >= 0
    # disjoint supports: JS is exactly 1, KS is 1
    zeros = [0] * len(a)
    assume(sum(a[:1]) > 0 and sum(a[1:]) > 0)
    left, right = [a[0], *zeros[1:]], [0, *a[1:]]
    assert stats.js_distance(left, right) == pytest.approx(1.0)
    assert stats.ks_statistic(left, right) == pytest.approx(1.0)


points = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40)


@FAST
@given(x=points, y=points)
def test_wasserstein_zero_symmetric_non_negative_and_exact(x, y):
    from scipy.stats import wasserstein_distance

    from omgmagics.ops.stats import wasserstein

    wx, wy = np.ones(len(x)), np.ones(len(y))
    assert wasserstein(x, wx, x, 2 * wx) == pytest.approx(0, abs=1e-6)
    d = wasserstein(x, wx, y, wy)
    assert d >= 0
    assert wasserstein(y, wy, x, wx) == pytest.approx(d, rel=1e-9, abs=1e-6)
    assert d == pytest.approx(wasserstein_distance(x, y), rel=1e-6, abs=1e-6)


@FAST
@given(sample=st.lists(st.one_of(st.floats(min_value=-1e9, max_value=1e9), st.just(float("nan"))),
                       min_size=1, max_size=200),
       bins=st.integers(2, 50), psi_bins=st.integers(2, 20))
def test_binning_covers_every_value_and_identical_data_has_no_drift(sample, bins, psi_bins):
    import pyarrow as pa

    from omgmagics.io.sources import ArrowBatch
    from omgmagics.ops.binning import _numeric_binning
    from omgmagics.ops.stats import js_distance, psi

    arr = np.asarray(sample, dtype=np.float64)
    b = _numeric_binning("x", arr, bins, psi_bins)
    if np.isnan(arr).all():
        assert b.skipped
        return
    assert np.all(np.diff(b.cuts) > 0)  # strictly increasing cuts
    idx, _ = b.bin(ArrowBatch(pa.record_batch({"x": pa.array(arr)})))
    assert idx.min() >= 0 and idx.max() < b.n_bins
    assert np.array_equal(idx == 0, np.isnan(arr))  # bin 0 is exactly the missing values
    fine = np.bincount(idx, minlength=b.n_bins)
    coarse = np.bincount(b.coarse[idx], minlength=b.n_coarse)
    assert fine.sum() == coarse.sum() == len(arr)
    assert np.all(np.diff(b.coarse[1:]) >= 0)  # PSI bins merge neighbouring fine bins
    assert psi(coarse, coarse) == 0 and js_distance(fine, fine) == 0
