"""Drift statistics from binned counts (core layer): vectorized numpy, no per-row Python.

Every function takes the counts of the reference and the current data over the SAME bins, so the
statistics of a stream are those of the whole data: a stream only adds up counts. Conventions:

- numeric features: bin 0 holds missing values (treated as a value below every number, so a change of
  the missing share moves the distribution like any other change), then the value bins in order;
- categorical features: bin 0 missing, then the categories, then "other".

References: PSI (Siddiqi 2006, credit scoring practice: < 0.1 stable, 0.1-0.25 moderate, > 0.25
significant); two-sample Kolmogorov-Smirnov with Smirnov's asymptotic distribution as in
``scipy.stats.ks_2samp(method="asymp")``; Pearson's chi-square test of homogeneity as
``scipy.stats.chi2_contingency(correction=False)``; Jensen-Shannon distance in base 2 (bounded by 1) as
``scipy.spatial.distance.jensenshannon(p, q, base=2)``; Wasserstein-1 distance divided by the reference
standard deviation (Evidently's "normed" variant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PSI_EPS = 1e-4  # proportion used for an empty bin (a 0 would make the log infinite)


def proportions(counts: Any) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1), 0.0)


def psi(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPS) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref) over the bins."""
    p = np.maximum(proportions(ref_counts), eps)
    q = np.maximum(proportions(cur_counts), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(ref_counts: Any, cur_counts: Any) -> float:
    """Jensen-Shannon distance in base 2: 0 for identical distributions, 1 for disjoint ones."""
    p = proportions(ref_counts)
    q = proportions(cur_counts)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max((kp + kq) / 2, 0.0)))


def ks_statistic(ref_counts: Any, cur_counts: Any) -> float:
    """Largest gap between the two empirical CDFs over ordered bins."""
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    return float(np.max(np.abs(np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())))


def ks_pvalue(d: float, n_ref: int, n_cur: int) -> float:
    """Two-sided p-value of a KS statistic: ``kstwo.sf(d, round(n*m/(n+m)))`` as scipy's 'asymp'."""
    from scipy.stats import kstwo

    if not np.isfinite(d) or n_ref == 0 or n_cur == 0:
        return float("nan")
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))


def chi2_homogeneity(ref_counts: Any, cur_counts: Any) -> tuple[float, float, int]:
    """Pearson chi-square test that both samples come from one categorical distribution.

    Bins empty in both samples are dropped. Returns (statistic, p-value, degrees of freedom); one
    non-empty bin gives (0, 1, 0).
    """
    from scipy.special import chdtrc

    table = np.vstack([np.asarray(ref_counts, dtype=np.float64),
                       np.asarray(cur_counts, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    k = table.shape[1]
    if k < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, float(chdtrc(k - 1, stat)), k - 1


def wasserstein(ref_pos: Any, ref_w: Any, cur_pos: Any, cur_w: Any) -> float:
    """Wasserstein-1 distance between two weighted point sets (weights normalized per side)."""
    ref_w = np.asarray(ref_w, dtype=np.float64)
    cur_w = np.asarray(cur_w, dtype=np.float64)
    if ref_w.sum() == 0 or cur_w.sum() == 0:
        return float("nan")
    pos = np.concatenate([np.asarray(ref_pos, dtype=np.float64), np.asarray(cur_pos, dtype=np.float64)])
    w = np.concatenate([ref_w / ref_w.sum(), -cur_w / cur_w.sum()])
    order = np.argsort(pos, kind="stable")
    pos, w = pos[order], w[order]
    gaps = np.diff(pos)
    return float(np.sum(np.abs(np.cumsum(w)[:-1]) * gaps))


def adjust_pvalues(pvalues: Any, method: str = "holm") -> np.ndarray:
    """Multiple-testing adjusted p-values: holm, bonferroni, bh (Benjamini-Hochberg) or none.

    NaN entries (tests not run) stay NaN and do not count as tests.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    if method == "none":
        adj = q
    elif method == "bonferroni":
        adj = np.minimum(q * m, 1.0)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * q[order])
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    elif method == "bh":
        order = np.argsort(q, kind="stable")
        ranked = q[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    else:
        from ..errors import ConfigError, unknown_choice

        raise ConfigError(unknown_choice("multiple-testing correction", method, CORRECTIONS))
    out[ok] = adj
    return out


CORRECTIONS = ("holm", "bonferroni", "bh", "none")
