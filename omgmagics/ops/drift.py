"""The drift engine (core layer): reference profile, streamed counts, per-feature verdicts.

How it works (two passes over the reference, one over the current data, bounded memory):

1. Profile the reference. Numeric columns: a deterministic sample (the rows with the smallest hashes
   of their row number, at most ``sample_size``, so every batching picks the same rows) gives
   ``bins`` quantile cut points, and every 1/``psi_bins`` quantile among them is a PSI cut point.
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
- fewer than 30 rows on either side: the feature is not judged (stated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from . import stats
from .sources import CATEGORICAL, NAT, NUMERIC, Batch, Source

DEFAULTS: dict[str, Any] = {
    "bins": 1000, "psi_bins": 10, "sample_size": 200_000, "max_categories": 50,
    "alpha": 0.05, "correction": "holm", "effect": "psi", "min_effect": 0.1,
    "psi_moderate": 0.1, "psi_high": 0.25, "js_threshold": 0.1, "wasserstein_threshold": 0.1,
    "drift_share": 0.5, "min_rows": 30,
}
EFFECTS = {"psi": "psi", "js": "js_distance", "wasserstein": "wasserstein_norm"}
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _hash(idx: np.ndarray) -> np.ndarray:
    """splitmix64 of row numbers: a bijection, so the smallest hashes form a fixed pseudo-random sample."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.uint64) * _MIX + _MIX
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass
class Binning:
    """How one feature is binned: the same for the reference and every current window."""

    name: str
    kind: str
    cuts: np.ndarray | None = None        # numeric: bin 1 is (-inf, cuts[0]), bin j is [cuts[j-2], cuts[j-1])
    psi_cuts: np.ndarray | None = None    # numeric: a subset of cuts bounding the PSI bins
    coarse: np.ndarray | None = None      # fine bin -> PSI bin (both with 0 = missing)
    vocab: list[str] | None = None        # categorical: bins 1..K, then K+1 = other
    shift: float = 0.0                    # subtracted before squaring (stable variance)
    skipped: str = ""                     # why the feature is not compared

    @property
    def n_bins(self) -> int:
        if self.kind == NUMERIC:
            return len(self.cuts) + 2
        return len(self.vocab) + 2

    @property
    def n_coarse(self) -> int:
        return int(self.coarse.max()) + 1 if self.kind == NUMERIC else self.n_bins

    def bin(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        """Bin index of every row (0 = missing) and, numeric, the values (0 where missing)."""
        if self.kind == NUMERIC:
            v = batch.numeric(self.name)
            b = np.searchsorted(self.cuts, v, side="right") + 1
            miss = np.isnan(v)
            if miss.any():
                b[miss] = 0
                v = np.where(miss, 0.0, v)
            return b, v
        codes = batch.codes(self.name, self.vocab)
        b = codes + 1
        b[codes == -1] = len(self.vocab) + 1
        b[codes == -2] = 0
        return b, None

    def labels(self) -> list[str]:
        """Names of the PSI bins (numeric) or categories, for tables and plots."""
        if self.kind != NUMERIC:
            return ["(missing)", *self.vocab, "(other)"]
        c = [f"{x:.4g}" for x in self.psi_cuts]
        return ["(missing)", f"< {c[0]}", *[f"{a}-{b}" for a, b in zip(c[:-1], c[1:], strict=True)],
                f">= {c[-1]}"]


@dataclass
class Counts:
    """Counts per window and bin of every feature on one side (reference or current)."""

    n_windows: int
    bins: dict[str, np.ndarray] = field(default_factory=dict)   # (W, n_bins) int64
    sums: dict[str, np.ndarray] = field(default_factory=dict)   # (W, n_bins) float64, numeric
    sq: dict[str, np.ndarray] = field(default_factory=dict)     # (W,) sum of squared shifted values
    rows: np.ndarray | None = None                              # (W,) rows
    bad_times: int = 0

    def add(self, binnings: dict[str, Binning], batch: Batch, widx: np.ndarray | None,
            keep: np.ndarray | None) -> None:
        W = self.n_windows
        if self.rows is None:
            self.rows = np.zeros(W, dtype=np.int64)
        self.rows += np.bincount(widx, minlength=W) if widx is not None else len(batch)
        for name, b in binnings.items():
            if b.skipped:
                continue
            idx, v = b.bin(batch)
            nb = b.n_bins
            if keep is not None:
                idx = idx[keep]
                v = v[keep] if v is not None else None
            flat = idx if widx is None else widx * nb + idx
            counts = np.bincount(flat, minlength=W * nb).reshape(W, nb)
            if name in self.bins:
                self.bins[name] += counts
            else:
                self.bins[name] = counts
            if v is not None:
                sums = np.bincount(flat, weights=v, minlength=W * nb).reshape(W, nb)
                d = np.where(idx > 0, v - b.shift, 0.0)
                sq = np.bincount(widx, weights=d * d, minlength=W) if widx is not None else \
                    np.array([float(np.dot(d, d))])
                if name in self.sums:
                    self.sums[name] += sums
                    self.sq[name] += sq
                else:
                    self.sums[name] = sums
                    self.sq[name] = sq


@dataclass
class Reference:
    """A profiled reference: binnings and counts (one window)."""

    name: str
    binnings: dict[str, Binning]
    counts: Counts
    rows: int
    settings: dict[str, Any]
    prediction: str | None = None

    @property
    def features(self) -> list[str]:
        return [n for n in self.binnings if n != self.prediction]


def _check_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    from ..errors import ConfigError, unknown_choice

    s = {**DEFAULTS, **{k: v for k, v in (settings or {}).items() if v is not None}}
    if s["effect"] not in EFFECTS:
        raise ConfigError(unknown_choice("drift effect size", s["effect"], EFFECTS))
    if s["correction"] not in stats.CORRECTIONS:
        raise ConfigError(unknown_choice("multiple-testing correction", s["correction"],
                                         stats.CORRECTIONS))
    if int(s["bins"]) % int(s["psi_bins"]) != 0:
        raise ConfigError(f"monitoring.drift.bins ({s['bins']}) must be a multiple of psi_bins "
                          f"({s['psi_bins']}), so every PSI bin is a union of fine bins.")
    for key in ("alpha", "drift_share"):
        if not 0 < float(s[key]) <= 1:
            raise ConfigError(f"monitoring.drift.{key} must be in (0, 1], got {s[key]}.")
    return s


def profile_reference(source: Source, features: list[str], *, prediction: str | None = None,
                      categorical: list[str] | None = None,
                      settings: dict[str, Any] | None = None) -> Reference:
    """Profile `features` (and the `prediction` column) of the reference `source`.

    Raises
    ------
    DataError
        When the reference has no rows or lacks a requested column.
    """
    s = _check_settings(settings)
    columns = features + ([prediction] if prediction else [])
    missing = [c for c in columns if c not in source.kinds]
    if missing:
        raise DataError(f"The reference {source.name} lacks the column(s) {', '.join(missing)}. "
                        f"Its columns: {', '.join(source.columns)}.")
    categorical = set(categorical or [])
    kinds = {c: CATEGORICAL if c in categorical else source.kinds[c] for c in columns}
    numeric = [c for c in columns if kinds[c] == NUMERIC]
    cats = [c for c in columns if kinds[c] == CATEGORICAL]
    k, offset = int(s["sample_size"]), 0
    sample_h = np.empty(0, dtype=np.uint64)
    sample_v = {c: np.empty(0) for c in numeric}
    vc: dict[str, dict[str, int]] = {c: {} for c in cats}
    for batch in source.batches(numeric + cats):
        n = len(batch)
        if numeric:
            h = _hash(np.arange(offset, offset + n, dtype=np.uint64))
            if len(h) > k:  # keep this batch's k smallest before merging
                part = np.argpartition(h, k - 1)[:k]
            else:
                part = np.arange(n)
            sample_h = np.concatenate([sample_h, h[part]])
            for c in numeric:
                sample_v[c] = np.concatenate([sample_v[c], batch.numeric(c)[part]])
            if len(sample_h) > k:
                top = np.argpartition(sample_h, k - 1)[:k]
                sample_h = sample_h[top]
                sample_v = {c: v[top] for c, v in sample_v.items()}
        for c in cats:
            for value, count in batch.value_counts(c).items():
                vc[c][value] = vc[c].get(value, 0) + count
        offset += n
    if offset == 0:
        raise DataError(f"The reference {source.name} has no rows. Point at reference data with rows.")
    binnings: dict[str, Binning] = {}
    for c in columns:
        if kinds[c] == NUMERIC:
            binnings[c] = _numeric_binning(c, sample_v[c], int(s["bins"]), int(s["psi_bins"]))
        elif kinds[c] == CATEGORICAL:
            ranked = sorted(vc[c].items(), key=lambda kv: (-kv[1], kv[0]))
            binnings[c] = Binning(c, CATEGORICAL, vocab=[v for v, _ in ranked[: int(s["max_categories"])]])
        else:
            binnings[c] = Binning(c, kinds[c], skipped=f"its type ({kinds[c]}) is not compared")
    counts = Counts(1)
    for batch in source.batches(columns):
        counts.add(binnings, batch, None, None)
    return Reference(source.name, binnings, counts, offset, s, prediction)


def _numeric_binning(name: str, sample: np.ndarray, bins: int, psi_bins: int) -> Binning:
    values = sample[~np.isnan(sample)]
    if len(values) == 0:
        return Binning(name, NUMERIC, skipped="every reference value is missing")
    q = np.quantile(values, np.linspace(0, 1, bins + 1), method="inverted_cdf")
    cuts = np.unique(q[1:])
    coarse_cuts = np.unique(q[1:][bins // psi_bins - 1:: bins // psi_bins])
    # fine value bin j (1-based) starts at cuts[j-2]; its PSI bin is the number of PSI cuts <= start
    starts = np.concatenate([[-np.inf], cuts])
    coarse = np.concatenate([[0], np.searchsorted(coarse_cuts, starts, side="right") + 1])
    return Binning(name, NUMERIC, cuts=cuts, psi_cuts=coarse_cuts, coarse=coarse,
                   shift=float(np.median(values)))


def count_current(source: Source, ref: Reference, *, time_column: str | None = None,
                  windows: list[Any] | None = None) -> Counts:
    """Count the current data per window (``windows`` of :class:`~omgmagics.ops.windows.Window`)."""
    columns = [c for c, b in ref.binnings.items() if not b.skipped]
    missing = [c for c in columns if c not in source.kinds]
    if missing:
        raise DataError(f"The current data ({source.name}) lacks {len(missing)} column(s) of the "
                        f"reference: {', '.join(missing)}. Compare a subset with --features, or fix "
                        "the data.")
    W = len(windows) if windows else 1
    counts = Counts(W)
    if windows:
        starts = np.array([w.start_ns for w in windows], dtype=np.int64)
        ends = np.array([w.end_ns for w in windows], dtype=np.int64)
        lo, hi = int(starts.min()), int(ends.max())
    for batch in source.batches(columns, time_column, *((lo, hi) if windows else (None, None))):
        if windows:
            t, bad = batch.times(time_column)
            counts.bad_times += bad
            pos = np.searchsorted(starts, t, side="right") - 1
            keep = (t != NAT) & (pos >= 0) & (t < ends[np.clip(pos, 0, W - 1)])
            if not keep.any():
                continue
            counts.add(ref.binnings, batch, pos[keep], keep)
        else:
            counts.add(ref.binnings, batch, None, None)
    if counts.rows is None:
        counts.rows = np.zeros(W, dtype=np.int64)
    return counts
