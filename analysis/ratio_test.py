"""The verdict's test: every signal's top/bottom rate ratio at every lag against circular shifts of the failures,
adjusted over all of them at once by the maximum statistic, with intervals that invert the same test.

For one signal at one lag the statistic is T = log((top + 0.5) / top exposure) - log((bottom + 0.5) / bottom
exposure): the log rate ratio of its highest against its lowest load bucket (finite with zero counts). Each
replicate of the null moves every host's failures by one random circular offset (analysis.shifts: a storm stays
a storm, only its alignment with load is broken), the same offsets for every signal and lag, so the replicates
keep how the tests depend on each other. Per test, with m and s the mean and deviation of its replicates,
z = (T - m) / s, and:

- `p_value`: the test's own permutation p-value, (1 + #{replicates with |z_b| >= |z|}) / (B + 1);
- `p_adjusted`: the single-step maximum-statistic p-value (Westfall and Young 1993, algorithm 2.8),
  (1 + #{replicates whose largest |z_b| over every test >= |z|}) / (B + 1): however many signals and lags are
  looked at, with no effect at all the chance that any test falls below alpha is at most alpha;
- `estimate`: exp(T), the ratio measured;
- `lower`, `upper`: exp(T -+ c s), where s is the replicates' spread (storms widen it, as they widen the test's
  null) and c the critical |z| of the test's own permutation p-value at 1 - confidence: the permutation-calibrated
  interval of the ratio;
- `null_ratio`: exp(m), where the shifted failures' ratios centre. Shifts keep each host's failures on their
  host, so hosts that are loaded all the time and also fail more often (at any time) move the centre above 1:
  the test asks whether failures line up with load beyond that.

When the centre is 1 the interval excludes 1 exactly when `p_value` <= 1 - confidence (it inverts the test).
The verdict (analysis.correlation) calls an effect only when the adjusted test rejects AND the interval excludes 1
on the same side, so an effect always comes with an interval that excludes 1; analysis.verdict.disagreement says
in words why an interval and a verdict differ when they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: shifted failures gathered per chunk (bounds memory: 4M cells)
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class RatioTest:
    """One signal's top/bottom comparison at one lag: what it is tested with, in log space."""

    #: hosts x steps bucket of each step's own load (analysis.buckets.cell_codes), -1 without a value
    codes: np.ndarray
    top: int
    top_days: float
    bottom_days: float
    lag_steps: int


@dataclass(frozen=True)
class RatioOutcome:
    """The permutation test of one RatioTest (see the module docstring)."""

    estimate: float
    lower: float
    upper: float
    p_value: float
    p_adjusted: float
    z: float
    null_ratio: float


NO_OUTCOME = RatioOutcome(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)


def _log_ratio(top, bottom, top_days: float, bottom_days: float):
    return np.log((top + 0.5) / top_days) - np.log((bottom + 0.5) / bottom_days)


def _cells(host_index: np.ndarray, steps_moved: np.ndarray, steps: int, hosts: int, lag_steps: int) -> np.ndarray:
    """Return the flat cells whose load failures at steps_moved (any shape) are compared with at the lag; a
    failure whose lagged step falls before the range gets the cell past the end (the -1 sentinel of _flat)."""
    at = steps_moved - lag_steps
    return np.where(at >= 0, host_index * steps + at, hosts * steps)


def _flat(test: RatioTest) -> np.ndarray:
    """Return a test's codes flattened, with a -1 sentinel cell at the end."""
    return np.append(test.codes.ravel(), np.array([-1], dtype=test.codes.dtype))


def _counts(codes: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (failures in the top bucket, in the bottom bucket) along the last axis."""
    return (codes == top).sum(axis=-1), (codes == 0).sum(axis=-1)


def run_ratio_tests(tests: list[RatioTest], host_index: np.ndarray, step_index: np.ndarray, offsets: np.ndarray,
                    steps: int, confidence: float = 0.95) -> list[RatioOutcome]:
    """Return each test's outcome against the failures shifted by each row of `offsets` (shared by all tests)."""
    if not tests:
        return []
    host_index = np.asarray(host_index, dtype="int64")
    step_index = np.asarray(step_index, dtype="int64")
    hosts = tests[0].codes.shape[0]
    flats = [_flat(t) for t in tests]
    lags = sorted({t.lag_steps for t in tests})
    here = {lag: _cells(host_index, step_index, steps, hosts, lag) for lag in lags}
    observed = np.array([_log_ratio(*_counts(flat[here[t.lag_steps]], t.top), t.top_days, t.bottom_days)
                         for t, flat in zip(tests, flats)], dtype="float64")
    null = np.empty((len(tests), len(offsets)))
    rows = max(1, _CHUNK_CELLS // max(len(step_index), 1))
    for first in range(0, len(offsets), rows):
        chunk = offsets[first:first + rows]
        moved = (step_index[None, :] + chunk[:, host_index]) % max(steps, 1)  # once for every signal and lag
        cells = {lag: _cells(host_index[None, :], moved, steps, hosts, lag) for lag in lags}
        for i, (test, flat) in enumerate(zip(tests, flats)):
            top, bottom = _counts(flat[cells[test.lag_steps]], test.top)
            null[i, first:first + len(chunk)] = _log_ratio(top, bottom, test.top_days, test.bottom_days)
    center = null.mean(axis=1)
    spread = null.std(axis=1, ddof=1) if null.shape[1] > 1 else np.zeros(len(tests))
    usable = spread > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(usable, (observed - center) / spread, np.nan)
        z_null = np.where(usable[:, None], np.abs(null - center[:, None]) / spread[:, None], np.nan)
    replicates = null.shape[1]
    largest = np.nanmax(z_null, axis=0) if usable.any() else np.full(replicates, np.nan)
    k = int(math.floor((1 - confidence) * (replicates + 1))) - 1  # p <= 1 - confidence  <=>  |z| > c
    outcomes = []
    for i in range(len(tests)):
        if not usable[i]:
            outcomes.append(NO_OUTCOME)
            continue
        size = abs(z[i])
        p_value = (1 + int((z_null[i] >= size).sum())) / (replicates + 1)
        p_adjusted = (1 + int((largest >= size).sum())) / (replicates + 1)
        critical = math.inf if k < 0 else float(np.sort(z_null[i])[::-1][k])
        middle = observed[i]
        with np.errstate(over="ignore", invalid="ignore"):
            lower, upper = np.exp([middle - critical * spread[i], middle + critical * spread[i]])
        outcomes.append(RatioOutcome(float(np.exp(middle)), float(lower), float(upper), min(1.0, p_value),
                                     min(1.0, p_adjusted), float(z[i]), float(np.exp(center[i]))))
    return outcomes
