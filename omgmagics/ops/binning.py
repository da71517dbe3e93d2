"""The drift engine's counting (core layer): reference profile, bins, streamed counts.

See :mod:`omgmagics.ops.drift` for the method; this module turns batches into counts per bin (and
per window), with bounded memory: two passes over the reference, one over the current data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from ..io.sources import CATEGORICAL, NAT, NUMERIC, Batch, Source
from . import stats

DEFAULTS: dict[str, Any] = {
    "bins": 1000, "psi_bins": 10, "sample_size": 200_000, "max_categories": 50,
    "alpha": 0.05, "correction": "holm", "effect": "psi", "min_effect": 0.1,
    "psi_moderate": 0.1, "psi_high": 0.25, "js_threshold": 0.1, "wasserstein_threshold": 0.1,
    "drift_share": 0.5, "min_rows": 30,
    "max_independent_rows": None,  # replayed traffic: the current side's test counts at most this many
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
        if len(self.psi_cuts) == 0:
            return ["(missing)", "all values"]
        c = [_num(x) for x in self.psi_cuts]
        return ["(missing)", f"< {c[0]}", *[f"{a} to {b}" for a, b in zip(c[:-1], c[1:], strict=True)],
                f">= {c[-1]}"]


def _num(x: float) -> str:
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


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
            if widx is None and b.kind == NUMERIC:
                counts, sums, sq = _count_sorted(b, batch.numeric(name))
                self._add(name, counts[None, :], sums[None, :], np.array([sq]))
                continue
            idx, v = b.bin(batch)
            nb = b.n_bins
            if keep is not None:
                idx = idx[keep]
                v = v[keep] if v is not None else None
            flat = idx if widx is None else widx * nb + idx
            counts = np.bincount(flat, minlength=W * nb).reshape(W, nb)
            if v is None:
                self._add(name, counts, None, None)
                continue
            sums = np.bincount(flat, weights=v, minlength=W * nb).reshape(W, nb)
            d = np.where(idx > 0, v - b.shift, 0.0)
            sq = np.bincount(widx, weights=d * d, minlength=W) if widx is not None else \
                np.array([float(np.dot(d, d))])
            self._add(name, counts, sums, sq)

    def _add(self, name: str, counts: np.ndarray, sums: np.ndarray | None, sq: np.ndarray | None) -> None:
        if name in self.bins:
            self.bins[name] += counts
        else:
            self.bins[name] = counts
        if sums is None:
            return
        if name in self.sums:
            self.sums[name] += sums
            self.sq[name] += sq
        else:
            self.sums[name] = sums
            self.sq[name] = sq


def _count_sorted(b: Binning, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Counts, sums and the shifted sum of squares of one batch by sorting it once.

    Sorting and locating the cut points in the sorted values is several times faster than
    locating every value among the cut points; the counts are identical.
    """
    miss = np.isnan(v)
    n_miss = int(np.count_nonzero(miss))
    sv = v[~miss] if n_miss else v.copy()
    sv.sort()
    n = len(sv)
    pos = np.empty(len(b.cuts) + 2, dtype=np.int64)
    pos[0], pos[-1] = 0, n
    pos[1:-1] = np.searchsorted(sv, b.cuts, side="left")
    counts = np.empty(len(b.cuts) + 2, dtype=np.int64)
    counts[0] = n_miss
    counts[1:] = np.diff(pos)
    csum = np.empty(n + 1, dtype=np.float64)  # no temporaries: large ones cost page faults
    csum[0] = 0.0
    np.cumsum(sv, out=csum[1:])
    sums = np.empty(len(b.cuts) + 2, dtype=np.float64)
    sums[0] = 0.0
    sums[1:] = np.diff(csum[pos])
    np.subtract(sv, b.shift, out=sv)
    return counts, sums, float(np.dot(sv, sv))


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
    if int(s["bins"]) < int(s["psi_bins"]) or int(s["psi_bins"]) < 2:
        raise ConfigError(f"monitoring.drift.psi_bins ({s['psi_bins']}) must be at least 2 and at most "
                          f"bins ({s['bins']}).")
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
    rows = getattr(source, "rows", None)
    # With a known row count, rows whose hash is below a threshold (10 % to spare) are kept and the k
    # smallest hashes chosen at the end: the same rows for any batching, at one comparison per row.
    threshold = None if rows is None or rows <= k else \
        np.uint64(min(2**64 - 1, int(2**64 * min(1.0, 1.1 * k / rows))))
    parts_h: list[np.ndarray] = []
    parts_v: dict[str, list[np.ndarray]] = {c: [] for c in numeric}
    vc: dict[str, dict[str, int]] = {c: {} for c in cats}
    for batch in source.batches(numeric + cats):
        n = len(batch)
        if numeric:
            if rows is not None and rows <= k:
                part = slice(None)
                parts_h.append(np.arange(offset, offset + n, dtype=np.uint64))
            else:
                h = _hash(np.arange(offset, offset + n, dtype=np.uint64))
                part = np.flatnonzero(h < threshold) if threshold is not None else \
                    (np.argpartition(h, k - 1)[:k] if n > k else np.arange(n))
                parts_h.append(h[part])
            for c in numeric:
                parts_v[c].append(batch.numeric(c)[part])
            if threshold is None and rows is None and sum(len(x) for x in parts_h) > 2 * k:
                parts_h, parts_v = _smallest(parts_h, parts_v, k)
        for c in cats:
            for value, count in batch.value_counts(c).items():
                vc[c][value] = vc[c].get(value, 0) + count
        offset += n
    if offset == 0:
        raise DataError(f"The reference {source.name} has no rows. Point at reference data with rows.")
    if numeric:
        parts_h, parts_v = _smallest(parts_h, parts_v, k)
    binnings: dict[str, Binning] = {}
    for c in columns:
        if kinds[c] == NUMERIC:
            binnings[c] = _numeric_binning(c, parts_v[c][0], int(s["bins"]), int(s["psi_bins"]))
        elif kinds[c] == CATEGORICAL:
            ranked = sorted(vc[c].items(), key=lambda kv: (-kv[1], kv[0]))
            binnings[c] = Binning(c, CATEGORICAL, vocab=[v for v, _ in ranked[: int(s["max_categories"])]])
        else:
            binnings[c] = Binning(c, kinds[c], skipped=f"its type ({kinds[c]}) is not compared")
    counts = Counts(1)
    for batch in source.batches(columns):
        counts.add(binnings, batch, None, None)
    return Reference(source.name, binnings, counts, offset, s, prediction)


def _smallest(parts_h: list[np.ndarray], parts_v: dict[str, list[np.ndarray]],
              k: int) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """The sample rows with the k smallest hashes, as one part."""
    h = np.concatenate(parts_h) if parts_h else np.empty(0, dtype=np.uint64)
    top = np.argpartition(h, k - 1)[:k] if len(h) > k else slice(None)
    return [h[top]], {c: [np.concatenate(v)[top] if v else np.empty(0)] for c, v in parts_v.items()}


def _numeric_binning(name: str, sample: np.ndarray, bins: int, psi_bins: int) -> Binning:
    values = sample[~np.isnan(sample)]
    if len(values) == 0:
        return Binning(name, NUMERIC, skipped="every reference value is missing")
    q = np.quantile(values, np.linspace(0, 1, bins + 1), method="inverted_cdf")
    cuts = np.unique(q[1:])
    # PSI bins: fine bins merged greedily into about equal reference mass. A value holding a large
    # share (the zeros of a zero-inflated amount) becomes its own bin and the rest of the mass is still
    # split in psi_bins - 1 parts, where plain deciles would lump it all into one bin.
    mass = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
    of_fine = np.zeros(len(cuts) + 1, dtype=np.int64)
    group, acc, remaining, left = 0, 0, len(values), psi_bins
    for j in range(len(cuts) + 1):
        of_fine[j] = group
        acc += int(mass[j])
        if left > 1 and j < len(cuts) and acc > 0 and acc >= remaining / left:
            group, remaining, left, acc = group + 1, remaining - acc, left - 1, 0
    psi_cuts = cuts[np.flatnonzero(np.diff(of_fine))]
    return Binning(name, NUMERIC, cuts=cuts, psi_cuts=psi_cuts,
                   coarse=np.concatenate([[0], of_fine + 1]), shift=float(np.median(values)))


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
    for name, b in ref.binnings.items():  # windows without rows still get (empty) counts
        if not b.skipped and name not in counts.bins:
            counts.bins[name] = np.zeros((W, b.n_bins), dtype=np.int64)
            if b.kind == NUMERIC:
                counts.sums[name] = np.zeros((W, b.n_bins))
                counts.sq[name] = np.zeros(W)
    return counts
