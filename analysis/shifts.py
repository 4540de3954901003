"""Circular shifts of failure times: the null model that keeps load's and failures' own time structure.

Each replicate moves every host's failures by one random offset of steps (wrapping at the end of the range), the
same offset for all of that host's failures: a restart storm stays a storm and slow load stays slow, only their
alignment is broken. A statistic computed on many replicates gives its spread under "failures do not depend
on load" even when neither is independent from step to step, which is the case on real fleets.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def draw_offsets(hosts: int, steps: int, min_shift: int, shifts: int, seed: int) -> np.ndarray:
    """Return a (shifts, hosts) array of offsets in [min_shift, steps - min_shift] (any, if the range is short)."""
    rng = np.random.default_rng(seed)
    low, high = (min_shift, steps - min_shift) if steps > 4 * min_shift else (1, max(steps - 1, 1))
    return rng.integers(low, high + 1, size=(shifts, max(hosts, 1)))


def calibrated_p(observed: float, null: np.ndarray, minimum: int = 20) -> float:
    """Return the two-sided p-value of a statistic against its shifted replicates (normal approximation).

    z = (observed - mean of the replicates) / their standard deviation; NaN with fewer than `minimum` usable
    replicates or an unknown observation.
    """
    null = np.asarray(null, dtype="float64")
    null = null[np.isfinite(null)]
    if not math.isfinite(observed) or len(null) < minimum:
        return math.nan
    sd = float(np.std(null, ddof=1))
    center = float(np.mean(null))
    if sd == 0:
        return 1.0 if observed == center else 0.0
    return float(2 * stats.norm.sf(abs(observed - center) / sd))
