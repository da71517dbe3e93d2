"""Percentiles of one quantity in one monitoring window, in bounded memory (core layer).

:class:`Sketch` keeps the values exactly (``numpy.percentile``, linear interpolation) up to
``EXACT_CAP`` values, then counts over fixed bins (only those that occur): linear bins of a given
width up to a limit, log-spaced bins above it (ratio ``1 + width / limit``), mirrored for negative
values, one bin for each infinity. A binned quantile is interpolated between the bin midpoints of the
two order statistics, as numpy does between the values; ``SCORE_BINS`` and ``LATENCY_BINS`` give the
resolution stated in :mod:`omgmagics.ops.monitor`.
"""

from __future__ import annotations

import numpy as np

EXACT_CAP = 4096  # values per window and quantity kept exactly before switching to binned counts
SCORE_BINS = (1.0, 1e-4)  # (linear up to, bin width): 10,000 bins on [0, 1), then ratio 1.0001
LATENCY_BINS = (0.01, 1e-4)  # 100 bins on [0, 0.01) ms, then log-spaced with ratio 1 + 1e-4/0.01 = 1.01
_INF_BIN = 2**52  # the bin of +-inf


def bin_keys(values: np.ndarray, bins: tuple[float, float]) -> np.ndarray:
    """Integer bin of each value: width `step` on ``[0, linear)``, then log-spaced with ratio
    ``1 + step / linear`` (so the bin width grows smoothly), mirrored for negative values; order kept."""
    linear, step = bins
    n_lin = int(round(linear / step))
    a = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = np.where(a < linear, np.floor(a / step),
                     n_lin + np.floor(np.log(np.maximum(a, linear) / linear) / np.log1p(step / linear)))
    k = np.minimum(k, _INF_BIN).astype(np.int64)
    k[np.isinf(a)] = _INF_BIN
    return np.where(np.signbit(values) & (a > 0), -1 - k, k)


def bin_values(keys: np.ndarray, bins: tuple[float, float]) -> np.ndarray:
    """The midpoint of each bin of :func:`bin_keys` (+-inf for the bin of infinities)."""
    linear, step = bins
    n_lin = int(round(linear / step))
    keys = np.asarray(keys, dtype=np.int64)
    neg = keys < 0
    k = np.where(neg, -1 - keys, keys)
    ratio = 1 + step / linear
    with np.errstate(over="ignore"):
        lo = linear * np.exp((k - n_lin).astype(np.float64) * np.log(ratio))
        rep = np.where(k < n_lin, (k + 0.5) * step, lo * (1 + ratio) / 2)
    rep = np.where(k >= _INF_BIN, np.inf, rep)
    return np.where(neg, -rep, rep)


class Sketch:
    """The values of one quantity in one window, for percentiles: exact up to ``EXACT_CAP`` values,
    then counts over the fixed bins of :func:`bin_keys` (only the bins that occur are stored)."""

    __slots__ = ("bins", "n", "parts", "keys", "counts")

    def __init__(self, bins: tuple[float, float]):
        self.bins = bins
        self.n = 0
        self.parts: list[np.ndarray] | None = []  # exact values while n <= EXACT_CAP
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    @property
    def exact(self) -> bool:
        return self.parts is not None

    def add(self, values: np.ndarray) -> None:
        """Add values (NaN already removed)."""
        if not len(values):
            return
        self.n += len(values)
        if self.parts is not None:
            self.parts.append(np.array(values, dtype=np.float64))
            if self.n <= EXACT_CAP:
                return
            values, self.parts = np.concatenate(self.parts), None
        keys, counts = np.unique(bin_keys(values, self.bins), return_counts=True)
        if len(self.keys):
            keys, inv = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
            counts = np.bincount(inv, weights=np.concatenate([self.counts, counts]),
                                 minlength=len(keys)).astype(np.int64)
        self.keys, self.counts = keys, counts

    def percentiles(self, qs: list[float]) -> list[float]:
        """``numpy.percentile(values, q)`` for each q: exact, or within the bins' resolution."""
        if self.n == 0:
            return [float("nan")] * len(qs)
        if self.parts is not None:
            return [float(v) for v in np.percentile(np.concatenate(self.parts), qs)]
        cum = np.cumsum(self.counts)
        mids = bin_values(self.keys, self.bins)
        out = []
        for q in qs:
            pos = q / 100 * (self.n - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, self.n - 1)
            v_lo = mids[np.searchsorted(cum, lo, side="right")]
            v_hi = mids[np.searchsorted(cum, hi, side="right")]
            out.append(float(v_lo if v_lo == v_hi else v_lo + (pos - lo) * (v_hi - v_lo)))
        return out
