"""The drift engine (core layer): reference profile, streamed counts, per-feature verdicts.

How it works (two passes over the reference, one over the current data, bounded memory):

1. Profile the reference. Numeric columns: a deterministic sample (the rows with the smallest hashes
   of their row number, at most ``sample_size``, so every batching picks the same rows) gives
   ``bins`` quantile cut points; PSI uses ``psi_bins`` groups of them of about equal reference mass
   (deciles, except that a value holding a large share, like the zeros of an amount, is a bin of its
   own and the remaining mass is still split finely).
   Categorical columns: the ``max_categories`` most frequent values, the rest pooled as "other".
2. Count the reference and the current rows per bin (``numpy.searchsorted`` + ``numpy.bincount``,
   per window of the time column for rolling drift), with per-bin sums for the Wasserstein distance.
3. Compute the statistics from the counts (:mod:`omgmagics.ops.stats`).

So a stream of batches and the whole table in memory give the same counts, hence bit-identical PSI,
KS, chi-square and Jensen-Shannon values and the same verdicts; the Wasserstein distance, which uses
float sums, agrees to rounding (relative 1e-12).

KS on the grid of 1,000 reference quantiles is exact for discrete features (every value is a cut
point) and, for continuous ones, below the exact statistic by at most the probability mass of one grid
cell (about 0.1 % of the reference plus the current mass in it).

Default thresholds (``monitoring.drift`` in ``omg.yaml``):

- a feature drifts when its test is significant after a Holm correction over the features of the
  window (KS for numeric, chi-square for categorical; p < 0.05) AND the shift is large enough to matter:
  PSI >= 0.1. The first condition keeps small windows from raising noise, the second keeps large ones
  from flagging negligible shifts that any test finds significant at a million rows;
- severity by PSI: moderate from 0.1, high from 0.25;
- Jensen-Shannon distance and normalized Wasserstein are reported with a 0.1 reference line
  (Evidently's defaults for large data) and can be chosen as the effect size instead of PSI;
- dataset drift when at least 50 % of the judged features drift;
- fewer than 30 rows on either side: the feature is not judged (stated);
- ``max_independent_rows`` (set by ``omg ops drift`` when the log is a replay that reused rows):
  the tests count at most that many current rows, since repeats of a row are no new evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.sources import NUMERIC
from . import stats
from .binning import DEFAULTS, EFFECTS, Binning, Counts, Reference, count_current, profile_reference

__all__ = ["DEFAULTS", "FeatureDrift", "WindowDrift", "compare", "count_current", "detect",
           "profile_reference"]


@dataclass
class FeatureDrift:
    """The statistics and verdict of one feature in one window."""

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float
    psi: float
    js_distance: float
    wasserstein_norm: float
    ref_rows: int
    cur_rows: int
    missing_ref: float
    missing_cur: float
    labels: list[str]
    ref_share: np.ndarray
    cur_share: np.ndarray
    p_adjusted: float = float("nan")
    drifted: bool | None = None
    severity: str = "none"
    note: str = ""


def _feature_stats(b: Binning, r: np.ndarray, c: np.ndarray, ref: Reference, cur: Counts,
                   w: int, cap: int | None = None) -> FeatureDrift:
    n_r, n_c = int(r.sum()), int(c.sum())
    miss_r = r[0] / n_r if n_r else float("nan")
    miss_c = c[0] / n_c if n_c else float("nan")
    # rows replayed with replacement from `cap` distinct rows carry no more evidence than `cap` rows:
    # the tests see the current counts scaled down to that size (the shares, PSI and JS are unchanged)
    n_test = min(n_c, cap) if cap else n_c
    if b.kind == NUMERIC:
        d = stats.ks_statistic(r, c)
        p = stats.ks_pvalue(d, n_r, n_test)
        rc = np.bincount(b.coarse, weights=r, minlength=b.n_coarse)
        cc = np.bincount(b.coarse, weights=c, minlength=b.n_coarse)
        wn = _wasserstein_norm(b, r, c, ref.counts.sums[b.name][0], cur.sums[b.name][w],
                               float(ref.counts.sq[b.name][0]))
        test = "KS"
    else:
        d, p, _ = stats.chi2_homogeneity(r, c * (n_test / n_c) if n_c and n_test < n_c else c)
        rc, cc, wn, test = r, c, float("nan"), "chi-square"
    return FeatureDrift(b.name, b.kind, test, d, p, stats.psi(rc, cc), stats.js_distance(rc, cc), wn,
                        n_r, n_c, miss_r, miss_c, b.labels(), stats.proportions(rc),
                        stats.proportions(cc))


def _wasserstein_norm(b: Binning, r: np.ndarray, c: np.ndarray, rs: np.ndarray, cs: np.ndarray,
                      rsq: float) -> float:
    rv, cv = r[1:], c[1:]
    if rv.sum() == 0 or cv.sum() == 0:
        return float("nan")
    # every non-empty bin is one atom at the mean of its values
    rm, cm = rv > 0, cv > 0
    dist = stats.wasserstein(rs[1:][rm] / rv[rm], rv[rm], cs[1:][cm] / cv[cm], cv[cm])
    n = rv.sum()
    mean_shifted = rs[1:].sum() / n - b.shift
    std = float(np.sqrt(max(rsq / n - mean_shifted ** 2, 0.0)))
    if std <= 1e-12 * max(1.0, abs(b.shift)):
        return 0.0 if dist <= 0 else 1.0  # a constant reference: any change is a full change
    return dist / std


@dataclass
class WindowDrift:
    """Every feature of one window, the dataset verdict and prediction drift."""

    window: Any
    rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    drifted: list[str]
    judged: int
    share: float
    dataset_drift: bool
    notes: list[str]

    def table(self) -> Any:
        import pandas as pd

        rows = []
        for f in self.features + ([self.prediction] if self.prediction else []):
            rows.append({
                "feature": f.feature + (" (prediction)" if f is self.prediction else ""),
                "kind": f.kind, "test": f.test, "statistic": f.statistic, "p_value": f.p_value,
                "p_adjusted": f.p_adjusted, "psi": f.psi, "js_distance": f.js_distance,
                "wasserstein_norm": f.wasserstein_norm, "missing_ref": f.missing_ref,
                "missing_cur": f.missing_cur,
                "drift": {True: "fail", False: "pass", None: "not judged"}[f.drifted],
                "severity": f.severity, "note": f.note})
        df = pd.DataFrame(rows)
        if not df.empty:
            df = df.assign(_o=df["drift"].map({"fail": 0, "not judged": 2}).fillna(1)) \
                .sort_values(["_o", "psi"], ascending=[True, False], kind="stable").drop(columns="_o")
        return df.reset_index(drop=True)


def compare(ref: Reference, cur: Counts, w: int = 0, window: Any = None) -> WindowDrift:
    """Statistics and verdicts of window `w` of the current counts against the reference."""
    s = ref.settings
    results, notes = [], []
    pred = None
    for name, b in ref.binnings.items():
        if b.skipped:
            notes.append(f"{name}: not compared, {b.skipped}.")
            continue
        fd = _feature_stats(b, ref.counts.bins[name][0], cur.bins[name][w], ref, cur, w,
                            int(s["max_independent_rows"]) if s.get("max_independent_rows") else None)
        if min(fd.ref_rows, fd.cur_rows) < int(s["min_rows"]):
            fd.note = f"too few rows to judge ({min(fd.ref_rows, fd.cur_rows)} < {s['min_rows']})"
            fd.p_value = float("nan")
        if name == ref.prediction:
            pred = fd
        else:
            results.append(fd)
    judged = [f for f in results + ([pred] if pred else []) if not np.isnan(f.p_value)]
    adj = stats.adjust_pvalues([f.p_value for f in judged], s["correction"])
    effect_attr = EFFECTS[s["effect"]]
    for f, pa in zip(judged, adj, strict=True):
        f.p_adjusted = float(pa)
        effect = getattr(f, effect_attr)
        f.drifted = bool(pa < float(s["alpha"]) and effect >= float(s["min_effect"]))
        if f.drifted:
            f.severity = "high" if f.psi >= float(s["psi_high"]) else (
                "moderate" if f.psi >= float(s["psi_moderate"]) else "low")
    n_judged = sum(1 for f in results if f.drifted is not None)
    drifted = [f.feature for f in results if f.drifted]
    share = len(drifted) / n_judged if n_judged else float("nan")
    rows = int(cur.rows[w]) if cur.rows is not None else 0
    return WindowDrift(window, rows, results, pred, drifted, n_judged, share,
                       bool(n_judged and share >= float(s["drift_share"])), notes)


def detect(reference: Any, current: Any, features: list[str] | None = None, *,
           prediction: str | None = None, time_column: str | None = None, windows: list[Any] | None = None,
           categorical: list[str] | None = None, settings: dict[str, Any] | None = None,
           batch_rows: int | None = None) -> list[WindowDrift]:
    """Drift of `current` against `reference`, whole or per window: the library entry point.

    Parameters
    ----------
    reference, current : DataFrame, path or :class:`~omgmagics.io.sources.Source`
        Tables; paths may be parquet files, partitioned parquet folders, csv or json lines.
    features : list of str, optional
        Columns to compare (default: the reference's columns other than `prediction` and
        `time_column`).
    prediction : str, optional
        A model output column compared as prediction drift (not counted in the dataset share).
    time_column, windows : optional
        Split `current` into these :class:`~omgmagics.ops.windows.Window` by its time column.
    settings : dict, optional
        Overrides of :data:`DEFAULTS`.

    Returns
    -------
    list of WindowDrift
        One per window (one without windows).
    """
    from ..io.sources import BATCH_ROWS, open_source

    ref_src = open_source(reference, "reference", batch_rows=batch_rows or BATCH_ROWS)
    cur_src = open_source(current, "current", batch_rows=batch_rows or BATCH_ROWS)
    if features is None:
        features = [c for c in ref_src.columns if c not in (prediction, time_column)]
    ref = profile_reference(ref_src, features, prediction=prediction, categorical=categorical,
                            settings=settings)
    counts = count_current(cur_src, ref, time_column=time_column, windows=windows)
    return [compare(ref, counts, w, windows[w] if windows else None)
            for w in range(len(windows) if windows else 1)]
