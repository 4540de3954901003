"""Error budgets and burn rates: pure functions on counts, and `evaluate` which reads them from the store.

The math is exact: counts and the objective become fractions (99.9 is 999/10, never 99.900000000000006), so
one bad probe in a hundred against 99.9% burns at exactly 10.0. A range with no events has no rate (None),
and a window pair with no rate does not fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from alerts.sli import Counts, SLIResult, compute_sli, read_rollups
from alerts.slo import SLO
from alerts.windows import AlertWindow, alert_windows
from tsdb.query import TimeLike, to_ns
from tsdb.store import Store


def _budget(objective: float) -> Fraction:
    return 1 - Fraction(str(objective)) / 100


def error_rate(counts: Counts) -> float | None:
    """Return 1 - good/total, or None when there were no events."""
    if counts.total <= 0:
        return None
    return float(1 - Fraction(counts.good) / Fraction(counts.total))


def burn_rate(counts: Counts, objective: float) -> float | None:
    """Return the error rate divided by the error budget (1 - objective/100); None when there were no events."""
    if counts.total <= 0:
        return None
    return float((1 - Fraction(counts.good) / Fraction(counts.total)) / _budget(objective))


def budget_remaining(counts: Counts, objective: float) -> float | None:
    """Return the share of the period's budget left, 1 - (bad/total)/(1 - objective/100); negative when overspent."""
    if counts.total <= 0:
        return None
    return float(1 - (Fraction(counts.bad) / Fraction(counts.total)) / _budget(objective))


@dataclass(frozen=True)
class WindowBurn:
    """One window pair of the catalog evaluated: both burn rates and whether the alert condition holds."""

    window: AlertWindow
    long_burn: float | None
    short_burn: float | None

    @property
    def firing(self) -> bool:
        """True when both windows burn at least the window's factor."""
        factor = self.window.factor
        return (self.long_burn is not None and self.short_burn is not None
                and self.long_burn >= factor and self.short_burn >= factor)


@dataclass(frozen=True)
class Evaluation:
    """An SLO evaluated for one host (or the fleet, host None) at `now_ns`."""

    slo: SLO
    host: str | None
    now_ns: int
    period: Counts
    budget_remaining: float | None
    windows: tuple[WindowBurn, ...]

    @property
    def firing(self) -> tuple[WindowBurn, ...]:
        """The window pairs whose condition holds."""
        return tuple(w for w in self.windows if w.firing)


def burn_windows(slo: SLO, counts_over) -> tuple[WindowBurn, ...]:
    """Evaluate every catalog window of the SLO's period; `counts_over(seconds)` returns the trailing counts."""
    return tuple(WindowBurn(window, burn_rate(counts_over(window.long_seconds), slo.objective),
                            burn_rate(counts_over(window.short_seconds), slo.objective))
                 for window in alert_windows(slo.period))


def evaluate(store: Store, slo: SLO, now: TimeLike, host: str | None = None, *,
             rollups: bool = False) -> Evaluation:
    """Evaluate an SLO for a host or the fleet over the windows ending at `now` (exclusive).

    With `rollups`, windows of an hour or more and the period read the per-minute `sli` rollups
    (alerts.sli.read_rollups; exact when `now` falls on a whole minute); the others read raw points.
    """
    now_ns = to_ns(now, "now")
    cache: dict[int, SLIResult] = {}

    def counts_over(seconds: int) -> Counts:
        if seconds not in cache:
            read = read_rollups if rollups and seconds >= 3600 else compute_sli
            cache[seconds] = read(store, slo, now_ns - seconds * 10**9, now_ns)
        return cache[seconds].counts(host)

    period = counts_over(slo.period_seconds)
    return Evaluation(slo, host, now_ns, period, budget_remaining(period, slo.objective),
                      burn_windows(slo, counts_over))
