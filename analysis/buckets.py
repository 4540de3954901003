"""Failure rate per load bucket: quantile buckets of exposure, Garwood intervals, top against bottom bucket.

Each host-step is one unit of exposure, with the load of the step `lag_steps` before it: a failure in step s
is attributed to the signal's mean over step s - lag_steps (lag 1, the default of the analysis, uses only load
measured before the failure's step, so load the failure itself caused cannot count; lag 0 uses the failure's
own step). Buckets split that exposure at quantiles of the load, so each holds about the same host-time; a
signal with many equal values (a queue depth that is mostly 0) gets fewer, unequal buckets, never an empty one.

The exact test of top against bottom (kept for reference as `ratio`) assumes failures independent given the
load (Poisson). Restart storms are not, so the verdict tests the same comparison against circular shifts of
each host's failure times instead (analysis.ratio_test), with `cell_codes`: each host-step's bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.stats import Ordering, RateRatio, distinct_counts, poisson_intervals, rate_ratio_test

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
    return cuts_of(*distinct_counts(np.asarray(values, dtype="float64")), n_buckets)


def cuts_of(distinct: np.ndarray, counts: np.ndarray, n_buckets: int) -> np.ndarray:
    """Return quantile_cuts from the sorted distinct values and their counts."""
    if len(distinct) < 2:
        return np.zeros(0)
    below = (np.cumsum(counts) - counts) / counts.sum()  # share of values smaller than each distinct value
    cuts: list[float] = []
    for k in range(1, n_buckets):
        j = int(np.argmin(np.abs(below[1:] - k / n_buckets))) + 1
        if not cuts or distinct[j] > cuts[-1]:
            cuts.append(float(distinct[j]))
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
    #: the cut points between the buckets (a value >= a cut is above it)
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))

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
                 n_buckets: int = 4, confidence: float = 0.95, ordering: Ordering | None = None,
                 codes: dict | None = None) -> BucketRates:
    """Return failure rates per quantile bucket of a hosts x steps signal, and the top/bottom rate ratio.

    `ordering` (of `values`) saves sorting them again; `codes` (a dict shared between calls) keeps each signal's
    cell_codes per set of cuts, so another lag with the same cuts (and the shift test) reuses them.
    """
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 2:
        raise ValueError(f"n_buckets = {n_buckets!r}: expected a whole number, 2 or more")
    if isinstance(lag_steps, bool) or not isinstance(lag_steps, int) or lag_steps < 0:
        raise ValueError(f"lag_steps = {lag_steps!r}: expected a whole number of steps, 0 or more")
    ordering = ordering if ordering is not None else Ordering(values)
    steps = values.shape[1]
    exposed = np.zeros(values.shape, dtype=bool)  # the cells whose load some step is attributed
    exposed[:, :max(0, steps - lag_steps)] = True
    distinct, distinct_count = ordering.distinct_counts(exposed)
    cuts = cuts_of(distinct, distinct_count, n_buckets)
    cell = codes_of(signal, values, cuts, codes)
    # the failure in step s (s >= lag) is attributed the load of step s - lag
    load_codes = cell[:, :max(0, steps - lag_steps)]
    attributed = failures[:, lag_steps:]
    observed = load_codes >= 0
    which = load_codes[observed].astype("int64")
    counts = attributed[observed]
    n = len(cuts) + 1 if len(which) else 0
    exposure_steps = np.bincount(which, minlength=n)[:n]
    bucket_failures = np.bincount(which, weights=counts, minlength=n)[:n].astype("int64")
    host_days = exposure_steps * step_seconds / 86400
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(host_days > 0, bucket_failures / host_days, np.nan)
    lower_rate, upper_rate = poisson_intervals(bucket_failures, host_days, confidence)
    if n:
        lows = np.concatenate([[distinct[0]], cuts])
        highs = np.concatenate([cuts, [distinct[-1]]])
    else:
        lows = highs = np.zeros(0)
    frame = pd.DataFrame({
        "bucket": np.arange(n), "lower": lows, "upper": highs, "exposure_steps": exposure_steps,
        "exposure_host_days": host_days, "failures": bucket_failures, "rate_per_host_day": rates,
        "rate_lower": lower_rate, "rate_upper": upper_rate,
    })
    ratio = None
    if n >= 2:
        ratio = rate_ratio_test(int(bucket_failures[-1]), float(host_days[-1]), int(bucket_failures[0]),
                                float(host_days[0]), confidence)
    placed = int(counts.sum())
    return BucketRates(signal, lag_steps, frame, ratio, placed, int(failures.sum()) - placed, cuts)


def codes_of(signal: str, values: np.ndarray, cuts: np.ndarray, codes: dict | None) -> np.ndarray:
    """Return cell_codes(values, cuts), kept in `codes` (when given) per signal and cuts."""
    if codes is None:
        return cell_codes(values, cuts)
    key = (signal, cuts.tobytes())
    if key not in codes:
        codes[key] = cell_codes(values, cuts)
    return codes[key]


def cell_codes(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Return each host-step's bucket (0 the lowest) as small integers, -1 where the signal has no value.

    The codes are of the step's own load; a failure at step s and lag L is looked up at s - L.
    """
    dtype = "int8" if len(cuts) < 127 else "int16"
    codes = np.searchsorted(cuts, values, side="right").astype(dtype)
    codes[np.isnan(values)] = -1
    return codes


def ratio_or_nan(rates: BucketRates) -> tuple[float, float, float, float]:
    """Return (ratio, lower, upper, p-value) of a signal's top/bottom comparison, NaN when there is none."""
    if rates.ratio is None:
        return math.nan, math.nan, math.nan, math.nan
    r = rates.ratio
    return r.ratio, r.lower, r.upper, r.p_value
