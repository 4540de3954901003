"""Failure rate per load bucket: quantile buckets of exposure, Garwood intervals, top against bottom bucket.

Each host-step is one unit of exposure, with the load of the step `lag_steps` before it: a failure in step s
is attributed to the signal's mean over step s - lag_steps (lag 1, the default of the analysis, uses only load
measured before the failure's step, so load the failure itself caused cannot count; lag 0 uses the failure's
own step). Buckets split that exposure at quantiles of the load, so each holds about the same host-time; a
signal with many equal values (a queue depth that is mostly 0) gets fewer, unequal buckets, never an empty one.

The exact test of top against bottom assumes failures independent given the load (Poisson). Restart storms
are not, so the same comparison is also tested against circular shifts of each host's failure times
(analysis.shifts), which keep a storm together: `p_shift`. The verdict uses the larger of the two p-values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.shifts import calibrated_p, shifted
from analysis.stats import RateRatio, distinct_counts, poisson_intervals, rate_ratio_test

BUCKET_COLUMNS = ("bucket", "lower", "upper", "exposure_steps", "exposure_host_days", "failures",
                  "rate_per_host_day", "rate_lower", "rate_upper")


def lagged(values: np.ndarray, lag_steps: int) -> np.ndarray:
    """Return hosts x steps values moved `lag_steps` later in time (the first steps become NaN)."""
    if lag_steps == 0:
        return values
    out = np.full(values.shape, np.nan)
    out[:, lag_steps:] = values[:, :-lag_steps]
    return out


def quantile_cuts(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Return the cut points splitting `values` into up to n_buckets groups of nearly equal size.

    A cut c puts values < c below it and values >= c above. Each cut is the distinct value whose share of
    smaller values is nearest the quantile k / n_buckets; cuts that would leave a bucket empty are dropped, so
    tied values (mostly 0) give fewer buckets, and a constant signal gives none.
    """
    values = np.asarray(values, dtype="float64")
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.zeros(0)
    distinct, counts = distinct_counts(values)
    below = (np.cumsum(counts) - counts) / len(values)  # share of values smaller than each distinct value
    cuts = []
    for k in range(1, n_buckets):
        j = int(np.argmin(np.abs(below[1:] - k / n_buckets))) + 1 if len(distinct) > 1 else None
        if j is not None and (not cuts or distinct[j] > cuts[-1]):
            cuts.append(distinct[j])
    return np.asarray(cuts, dtype="float64")


@dataclass(frozen=True)
class BucketRates:
    """One signal's failure rate per load bucket, and the rate ratio of its top against its bottom bucket."""

    signal: str
    lag_steps: int
    #: columns BUCKET_COLUMNS; bucket i holds loads in [lower, upper), the top one [lower, upper]
    buckets: pd.DataFrame
    #: top bucket against bottom bucket; None with fewer than two buckets
    ratio: RateRatio | None
    #: failures in host-steps that have the signal (the ones the buckets count)
    failures: int
    #: failures in host-steps without the signal (nothing to attribute them to)
    failures_without_signal: int
    #: p-value of the top/bottom log rate ratio against circular shifts of the failures (NaN when not run)
    p_shift: float = math.nan

    @property
    def exposure_host_days(self) -> float:
        """All exposure with the signal, in host-days."""
        return float(self.buckets["exposure_host_days"].sum())

    def edge_exposure_host_days(self) -> float:
        """The smaller exposure of the bottom and top buckets, in host-days (0 with fewer than two buckets)."""
        if len(self.buckets) < 2:
            return 0.0
        return float(min(self.buckets["exposure_host_days"].iloc[0], self.buckets["exposure_host_days"].iloc[-1]))


def bucket_rates(signal: str, values: np.ndarray, failures: np.ndarray, step_seconds: int, lag_steps: int = 1,
                 n_buckets: int = 4, confidence: float = 0.95, failure_cells: tuple | None = None,
                 offsets: np.ndarray | None = None) -> BucketRates:
    """Return failure rates per quantile bucket of a hosts x steps signal, and the top/bottom rate ratio.

    With `failure_cells` (host_index, step_index of each failure) and `offsets` (analysis.shifts.draw_offsets),
    the ratio is also tested against the failures shifted circularly (p_shift).
    """
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 2:
        raise ValueError(f"n_buckets = {n_buckets!r}: expected a whole number, 2 or more")
    if isinstance(lag_steps, bool) or not isinstance(lag_steps, int) or lag_steps < 0:
        raise ValueError(f"lag_steps = {lag_steps!r}: expected a whole number of steps, 0 or more")
    load = lagged(values, lag_steps)
    observed = ~np.isnan(load)
    loads = load[observed]
    counts = failures[observed]
    cuts = quantile_cuts(loads, n_buckets)
    which = np.searchsorted(cuts, loads, side="right")
    n = len(cuts) + 1 if len(loads) else 0
    exposure_steps = np.bincount(which, minlength=n)[:n]
    bucket_failures = np.bincount(which, weights=counts, minlength=n)[:n].astype("int64")
    host_days = exposure_steps * step_seconds / 86400
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(host_days > 0, bucket_failures / host_days, np.nan)
    lower_rate, upper_rate = poisson_intervals(bucket_failures, host_days, confidence)
    if n:
        lows = np.concatenate([[loads.min()], cuts])
        highs = np.concatenate([cuts, [loads.max()]])
    else:
        lows = highs = np.zeros(0)
    frame = pd.DataFrame({
        "bucket": np.arange(n), "lower": lows, "upper": highs, "exposure_steps": exposure_steps,
        "exposure_host_days": host_days, "failures": bucket_failures, "rate_per_host_day": rates,
        "rate_lower": lower_rate, "rate_upper": upper_rate,
    })
    ratio, p_shift = None, math.nan
    if n >= 2:
        ratio = rate_ratio_test(int(bucket_failures[-1]), float(host_days[-1]), int(bucket_failures[0]),
                                float(host_days[0]), confidence)
        if failure_cells is not None and offsets is not None:
            cell_bucket = np.full(load.shape, -1, dtype="int64")
            cell_bucket[observed] = which
            p_shift = _shift_p(cell_bucket, n - 1, host_days[-1], host_days[0], *failure_cells, offsets)
    return BucketRates(signal, lag_steps, frame, ratio, int(counts.sum()), int(failures[~observed].sum()), p_shift)


def _log_ratio(top: np.ndarray, bottom: np.ndarray, top_days: float, bottom_days: float) -> np.ndarray:
    """Return log((top + 0.5) / top exposure) - log((bottom + 0.5) / bottom exposure): finite with zero counts."""
    return np.log((top + 0.5) / top_days) - np.log((bottom + 0.5) / bottom_days)


def _shift_p(cell_bucket: np.ndarray, top: int, top_days: float, bottom_days: float, host_index: np.ndarray,
             step_index: np.ndarray, offsets: np.ndarray) -> float:
    """Return the p-value of the observed top/bottom log ratio against the failures shifted by each offsets row."""
    steps = cell_bucket.shape[1]

    def split(steps_of_failures: np.ndarray) -> tuple[int, int]:
        buckets = cell_bucket[host_index, steps_of_failures]
        return int((buckets == top).sum()), int((buckets == 0).sum())

    observed = _log_ratio(*split(step_index), top_days, bottom_days)
    null = np.array([_log_ratio(*split(shifted(host_index, step_index, row, steps)), top_days, bottom_days)
                     for row in offsets])
    return calibrated_p(float(observed), null)


def ratio_or_nan(rates: BucketRates) -> tuple[float, float, float, float]:
    """Return (ratio, lower, upper, p-value) of a signal's top/bottom comparison, NaN when there is none."""
    if rates.ratio is None:
        return math.nan, math.nan, math.nan, math.nan
    r = rates.ratio
    return r.ratio, r.lower, r.upper, r.p_value
