"""Exact and rank statistics on arrays: Poisson rate intervals, the rate ratio test, AUC, multiple comparisons.

Pure functions of numbers and numpy arrays (scipy underneath), so each can be checked against a textbook
value or scipy's own implementation:

- `poisson_interval`: Garwood's exact interval for a Poisson count, from chi-square quantiles.
- `rate_ratio_test`: two rates compared conditionally on their total (given the failures, how they split
  between two exposures is binomial), with the exact (Clopper-Pearson) interval of the ratio.
- `auc_mann_whitney`: the AUC of a score for a binary label (Mann-Whitney U / (n1 n0)) and its p-value.
- `RankedScores`: the same for many labelings of one score, ranking it once (the analysis's fast path).
- `holm`, `benjamini_hochberg`: adjusted p-values.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence!r}: expected a number between 0 and 1 (0.95 for 95%)")
    return float(confidence)


def poisson_interval(count: int, exposure: float = 1.0, confidence: float = 0.95) -> tuple[float, float]:
    """Return Garwood's exact interval of a Poisson rate: `count` events over `exposure` (any unit).

    lower = chi2.ppf(a/2, 2k) / 2, upper = chi2.ppf(1 - a/2, 2k + 2) / 2 (Garwood 1936), divided by the
    exposure; the lower bound of a zero count is 0.
    """
    alpha = 1 - _check_confidence(confidence)
    if isinstance(count, bool) or not float(count).is_integer() or count < 0:
        raise ValueError(f"count = {count!r}: expected a whole number of events, 0 or more")
    if not exposure > 0:
        raise ValueError(f"exposure = {exposure!r}: must be positive")
    k = int(count)
    lower = 0.0 if k == 0 else stats.chi2.ppf(alpha / 2, 2 * k) / 2
    upper = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return float(lower / exposure), float(upper / exposure)


def poisson_intervals(counts: np.ndarray, exposures: np.ndarray,
                      confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Return Garwood's intervals of many rates at once (NaN where the exposure is 0)."""
    alpha = 1 - _check_confidence(confidence)
    counts = np.asarray(counts, dtype="float64")
    exposures = np.asarray(exposures, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(counts > 0, stats.chi2.ppf(alpha / 2, 2 * np.maximum(counts, 1)) / 2, 0.0)
        upper = stats.chi2.ppf(1 - alpha / 2, 2 * counts + 2) / 2
        lower = np.where(exposures > 0, lower / exposures, np.nan)
        upper = np.where(exposures > 0, upper / exposures, np.nan)
    return lower, upper


@dataclass(frozen=True)
class RateRatio:
    """The ratio of two Poisson rates (rate of a over rate of b), its exact interval and two-sided p-value."""

    count_a: int
    exposure_a: float
    count_b: int
    exposure_b: float
    ratio: float
    lower: float
    upper: float
    p_value: float
    confidence: float


def rate_ratio_test(count_a: int, exposure_a: float, count_b: int, exposure_b: float,
                    confidence: float = 0.95) -> RateRatio:
    """Compare two Poisson rates exactly, conditionally on the total count.

    Given n = count_a + count_b events, count_a is Binomial(n, p) with p = E_a R / (E_a R + E_b) where R is the
    rate ratio; under R = 1, p = E_a / (E_a + E_b). The p-value is scipy's exact two-sided binomial test; the
    interval maps Clopper-Pearson's interval (pl, pu) of p through R = p / (1 - p) * E_b / E_a. With no events at
    all nothing is known: ratio NaN, interval (0, inf), p-value 1.
    """
    confidence = _check_confidence(confidence)
    for name, count in (("count_a", count_a), ("count_b", count_b)):
        if isinstance(count, bool) or not float(count).is_integer() or count < 0:
            raise ValueError(f"{name} = {count!r}: expected a whole number of events, 0 or more")
    for name, exposure in (("exposure_a", exposure_a), ("exposure_b", exposure_b)):
        if not exposure > 0 or not math.isfinite(exposure):
            raise ValueError(f"{name} = {exposure!r}: must be positive and finite")
    a, b = int(count_a), int(count_b)
    n = a + b
    if n == 0:
        return RateRatio(a, exposure_a, b, exposure_b, math.nan, 0.0, math.inf, 1.0, confidence)
    scale = exposure_b / exposure_a
    result = stats.binomtest(a, n, exposure_a / (exposure_a + exposure_b))
    ci = result.proportion_ci(confidence_level=confidence, method="exact")

    def to_ratio(p: float) -> float:
        return math.inf if p >= 1 else p / (1 - p) * scale

    ratio = math.inf if b == 0 else (a / exposure_a) / (b / exposure_b)
    return RateRatio(a, exposure_a, b, exposure_b, ratio, to_ratio(ci.low), to_ratio(ci.high),
                     float(result.pvalue), confidence)


@dataclass(frozen=True)
class AUC:
    """The area under the ROC curve of a score for a label: P(score of a positive > score of a negative)."""

    auc: float
    u: float
    positives: int
    negatives: int
    p_value: float


def auc_mann_whitney(scores: np.ndarray, labels: np.ndarray) -> AUC:
    """Return the AUC of `scores` for boolean `labels` (ties count half) and the two-sided Mann-Whitney p-value.

    scipy.stats.mannwhitneyu (exact for small samples without ties, normal approximation with tie and
    continuity corrections otherwise). NaN scores are left out. It assumes independent samples.
    """
    scores = np.asarray(scores, dtype="float64")
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape}: must have the same shape")
    keep = ~np.isnan(scores)
    pos, neg = scores[keep & labels], scores[keep & ~labels]
    if len(pos) == 0 or len(neg) == 0:
        return AUC(math.nan, math.nan, len(pos), len(neg), math.nan)
    result = stats.mannwhitneyu(pos, neg, alternative="two-sided")
    return AUC(float(result.statistic) / (len(pos) * len(neg)), float(result.statistic), len(pos), len(neg),
               float(result.pvalue))


def _small_integers(values: np.ndarray) -> bool:
    """Say whether values are whole numbers over a range short enough to count them (queue depths, clients)."""
    if len(values) == 0:
        return False
    low, high = values.min(), values.max()
    return bool(high - low <= 4 * len(values) + 1024 and np.array_equal(values, np.floor(values)))


class Ordering:
    """One array's values put in order once (sorted; counted when they are small whole numbers), so that the
    distinct values and the midranks of any subset of its cells come in one linear pass, without sorting again.

    Subsets are boolean masks over the flattened array; NaN cells never count.
    """

    def __init__(self, values: np.ndarray):
        self.flat = np.asarray(values, dtype="float64").ravel()
        self.present = ~np.isnan(self.flat)
        self.counted = _small_integers(self.flat[self.present])
        if self.counted:
            self.low = float(self.flat[self.present].min())
            self.codes = np.where(self.present, np.nan_to_num(self.flat - self.low), -1).astype("int64")
        else:
            self.order = np.argsort(self.flat)[: int(self.present.sum())]  # NaN sort last: drop them

    def _mask(self, mask: np.ndarray | None) -> np.ndarray:
        return self.present if mask is None else np.asarray(mask, dtype=bool).ravel() & self.present

    def _sorted(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (cells in value order, the first position of each distinct value, each one's count)."""
        cells = self.order[mask[self.order]]
        ordered = self.flat[cells]
        starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if len(cells) else \
            np.zeros(0, dtype="int64")
        sizes = np.diff(np.concatenate([starts, [len(cells)]]))
        return cells, starts, sizes

    def distinct_counts(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the sorted distinct values of the masked cells and how often each occurs."""
        mask = self._mask(mask)
        if self.counted:
            counts = np.bincount(self.codes[mask])
            present = np.flatnonzero(counts)
            return present + self.low, counts[present]
        cells, starts, sizes = self._sorted(mask)
        return self.flat[cells[starts]], sizes

    def midranks(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return each cell's midrank among the masked cells (from 1; 0 outside the mask) and the tie sizes."""
        mask = self._mask(mask)
        ranks = np.zeros(self.flat.shape, dtype="float64")
        if self.counted:
            codes = self.codes[mask]
            counts = np.bincount(codes)
            ranks[mask] = (np.cumsum(counts) - counts + (counts + 1) / 2)[codes]
            return ranks, counts[counts > 0]
        cells, starts, sizes = self._sorted(mask)
        ranks[cells] = np.repeat(starts + (sizes + 1) / 2, sizes)
        return ranks, sizes


def distinct_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted distinct values of values without NaN and how often each occurs (np.unique's answer)."""
    return Ordering(values).distinct_counts()


def midranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the midranks of values without NaN and the tie sizes: scipy.stats.rankdata(values), "average"."""
    values = np.asarray(values, dtype="float64")
    ranks, sizes = Ordering(values).midranks()
    return ranks.reshape(values.shape), sizes


class RankedScores:
    """One score ranked once (midranks over its non-NaN cells, or a mask of them), then the AUC of any labeling
    in O(positives).

    For a labeling given as the flat indices of its positive cells, U = (sum of their ranks) - n1 (n1 + 1) / 2
    and AUC = U / (n1 n0); the p-value is Mann-Whitney's normal approximation with scipy's tie and continuity
    corrections, so it equals scipy.stats.mannwhitneyu(method="asymptotic"). Cells outside the mask or NaN are
    neither positive nor negative.
    """

    def __init__(self, scores: np.ndarray, mask: np.ndarray | None = None, ordering: Ordering | None = None):
        ordering = ordering if ordering is not None else Ordering(scores)
        ranks, ties = ordering.midranks(mask)
        self.count = int(ties.sum())
        self.tie_sum = float(np.sum(ties.astype("float64") ** 3 - ties))
        #: twice each cell's rank, 0 where the cell does not count: midranks are halves, so this is exact, and
        #: 4-byte integers gather twice as fast as doubles on the many labelings of the shift null
        self.doubled = (2 * ranks).astype("int32" if 2 * self.count + 1 < 2**31 else "int64")

    def u_statistic(self, positive_index: np.ndarray) -> tuple[float, int]:
        """Return (U, n1) of positives given as distinct flat indices into the score (NaN cells are left out)."""
        picked = self.doubled[np.asarray(positive_index, dtype="int64")]
        n1 = int(np.count_nonzero(picked))
        return float(picked.sum(dtype="int64")) / 2 - n1 * (n1 + 1) / 2, n1

    def auc(self, positive_index: np.ndarray) -> AUC:
        """Return the AUC and asymptotic two-sided Mann-Whitney p-value of the positives (distinct flat indices)."""
        u, n1 = self.u_statistic(positive_index)
        n0 = self.count - n1
        if n1 == 0 or n0 == 0:
            return AUC(math.nan, math.nan, n1, n0, math.nan)
        n = n1 + n0
        sigma = math.sqrt(n1 * n0 / 12 * ((n + 1) - self.tie_sum / (n * (n - 1))))
        if sigma == 0:
            return AUC(0.5, u, n1, n0, 1.0)
        z = (abs(u - n1 * n0 / 2) - 0.5) / sigma
        return AUC(u / (n1 * n0), u, n1, n0, float(min(1.0, 2 * stats.norm.sf(max(z, 0.0)))))

    def aucs(self, positive_sets: "PositiveSets") -> np.ndarray:
        """Return the AUC of many labelings at once (NaN where a labeling has no valid positive or negative)."""
        lengths = np.diff(positive_sets.bounds)
        rank_sum = np.zeros(len(lengths))
        n1 = np.zeros(len(lengths))
        filled = np.flatnonzero(lengths > 0)
        if len(filled):
            picked = self.doubled[positive_sets.cells]
            starts = positive_sets.bounds[filled]  # reduceat sums up to the next start: empty sets are skipped
            rank_sum[filled] = np.add.reduceat(picked, starts, dtype="float64") / 2
            n1[filled] = np.add.reduceat((picked > 0).view("int8"), starts, dtype="int64")
        n0 = self.count - n1
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((n1 > 0) & (n0 > 0), (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), np.nan)


@dataclass(frozen=True)
class PositiveSets:
    """Many labelings as one flat array of positive cells; labeling i is cells[bounds[i]:bounds[i + 1]]."""

    cells: np.ndarray
    bounds: np.ndarray

    @classmethod
    def of(cls, sets) -> "PositiveSets":
        """Return the labelings given as a list of arrays of distinct flat cell indices."""
        sets = [np.asarray(s, dtype="int64") for s in sets]
        cells = np.concatenate(sets) if sets else np.zeros(0, dtype="int64")
        bounds = np.r_[0, np.cumsum([len(s) for s in sets])].astype("int64")
        return cls(cells, bounds)

    def __len__(self) -> int:
        return len(self.bounds) - 1


def _check_p_values(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype="float64")
    if p.ndim != 1:
        raise ValueError(f"p_values: expected a flat list, got shape {p.shape}")
    finite = p[~np.isnan(p)]
    if np.any((finite < 0) | (finite > 1)):
        raise ValueError("p_values: every p-value must lie between 0 and 1")
    return p


def holm(p_values) -> np.ndarray:
    """Return Holm's step-down adjusted p-values (family-wise error); NaN entries stay NaN and do not count."""
    p = _check_p_values(p_values)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="mergesort")]
    steps = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def benjamini_hochberg(p_values) -> np.ndarray:
    """Return Benjamini-Hochberg adjusted p-values (false discovery rate); NaN entries stay NaN and do not count."""
    p = _check_p_values(p_values)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="mergesort")]
    steps = p[order] * m / np.arange(1, m + 1)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(steps[::-1])[::-1])
    return adjusted


def mean_interval(samples: np.ndarray, confidence: float = 0.95, axis: int = 0):
    """Return (mean, lower, upper, n) along `axis`, NaN-skipping: Student's t interval of the mean."""
    alpha = 1 - _check_confidence(confidence)
    samples = np.asarray(samples, dtype="float64")
    n = np.sum(~np.isnan(samples), axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: their mean is NaN, as it should be
        mean = np.nanmean(samples, axis=axis)
        sd = np.nanstd(samples, axis=axis, ddof=1)
        half = stats.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean, mean - half, mean + half, n
