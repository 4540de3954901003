"""The event-triggered average: a signal from -W to +W around each failure against the same at random times.

Offsets are whole steps; offset 0 is the step in which the failure happened (its mean may include load the
failure itself caused). The baseline draws host-steps uniformly from the cells where the signal has a value
(the same scope and range), `baseline_factor` times as many as there are failures and at least
`baseline_min`, with a fixed seed. Both curves carry Student's t 95% band of their mean at each offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.stats import mean_interval

TRIGGERED_COLUMNS = ("offset_seconds", "failure_mean", "failure_lower", "failure_upper", "failure_n",
                     "baseline_mean", "baseline_lower", "baseline_upper", "baseline_n")


@dataclass(frozen=True)
class TriggeredAverage:
    """A signal around failures and around random times: one row per offset (TRIGGERED_COLUMNS)."""

    signal: str
    frame: pd.DataFrame
    failures: int
    baseline_samples: int


def windows(values: np.ndarray, host_index: np.ndarray, step_index: np.ndarray, half_steps: int) -> np.ndarray:
    """Return a (cells, 2 * half_steps + 1) array of the signal around each cell (NaN beyond the range)."""
    offsets = np.arange(-half_steps, half_steps + 1)
    steps = step_index[:, None] + offsets[None, :]
    inside = (steps >= 0) & (steps < values.shape[1])
    picked = values[host_index[:, None], np.clip(steps, 0, values.shape[1] - 1)]
    return np.where(inside, picked, np.nan)


def triggered_average(signal: str, values: np.ndarray, host_index: np.ndarray, step_index: np.ndarray,
                      step_seconds: int, window_seconds: int = 3600, baseline_factor: int = 5,
                      baseline_min: int = 200, confidence: float = 0.95, seed: int = 0) -> TriggeredAverage:
    """Return the triggered average of hosts x steps `values` around the failures at (host_index, step_index)."""
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, int) or window_seconds < 0:
        raise ValueError(f"window_seconds = {window_seconds!r}: expected a whole number of seconds, 0 or more")
    half = window_seconds // step_seconds
    host_index = np.asarray(host_index, dtype="int64")
    step_index = np.asarray(step_index, dtype="int64")
    around = windows(values, host_index, step_index, half)
    f_mean, f_low, f_high, f_n = mean_interval(around, confidence)
    observed = np.flatnonzero(~np.isnan(values.ravel()))
    draws = max(baseline_factor * len(host_index), baseline_min) if len(observed) else 0
    rng = np.random.default_rng(seed)
    cells = rng.choice(observed, size=draws, replace=True) if draws else np.zeros(0, dtype="int64")
    b_host, b_step = np.divmod(cells, values.shape[1])
    base = windows(values, b_host, b_step, half)
    b_mean, b_low, b_high, b_n = mean_interval(base, confidence)
    frame = pd.DataFrame({
        "offset_seconds": np.arange(-half, half + 1) * step_seconds,
        "failure_mean": f_mean, "failure_lower": f_low, "failure_upper": f_high, "failure_n": f_n,
        "baseline_mean": b_mean, "baseline_lower": b_low, "baseline_upper": b_high, "baseline_n": b_n,
    })
    return TriggeredAverage(signal, frame, len(host_index), draws)
