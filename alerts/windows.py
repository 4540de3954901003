"""The multi-window, multi-burn-rate alert windows: a data table with its source, and the one factor function.

Source: Google, "The Site Reliability Workbook", chapter 5 "Alerting on SLOs", section "6: Multiwindow,
Multi-Burn-Rate Alerts", table 5-8 (https://sre.google/workbook/alerting-on-slos/), for a 30-day budget:
page when 2% of the budget burns in 1 hour (short window 5 minutes) or 5% in 6 hours (30 minutes); ticket
when 10% burns in 1 day (2 hours) or 10% in 3 days (6 hours). The 28-day rows keep the same budget shares
and windows, as Sloth does for its 28-day period (slok/sloth, internal/alert/windows/google-28d.yaml).

The table stores budget shares and windows, never factors: a factor is derived by `burn_factor`, so the
30-day rows give the workbook's 14.4, 6, 3 and 1 and the 28-day rows 13.44, 5.6, 2.8 and 0.9333.
The catalog is a Python table rather than a data file so it ships in the package with no package-data setup.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

from tsdb.times import duration_label, parse_duration

#: every window ends this long before now: the SETTLED EDGE. An agent stamps a point when it collects and writes
#: it within its interval (10 s), so every point older than the edge is in the store when the engine reads, and
#: a window's good and total count the same points however long a round takes (read up to now, points landing
#: between the reads of a large fleet counted as bad: 1,541 healthy hosts once paged at once). The rollups
#: (alerts.rollups.LAG_SECONDS) lie further behind.
SETTLED_LAG_SECONDS = 30

#: (severity, budget percent consumed, long window, short window); the SRE workbook, table 5-8
WINDOW_ROWS = (
    ("page", 2, "1h", "5m"),
    ("page", 5, "6h", "30m"),
    ("ticket", 10, "1d", "2h"),
    ("ticket", 10, "3d", "6h"),
)
#: the SLO periods with a catalog: each uses WINDOW_ROWS
PERIODS = ("30d", "28d")


def burn_factor(budget_fraction: Rational | float | str, period_seconds: int, long_window_seconds: int) -> float:
    """Return the burn rate that spends `budget_fraction` of a `period` budget in `long_window`."""
    return float(Fraction(str(budget_fraction)) * period_seconds / long_window_seconds)


@dataclass(frozen=True)
class AlertWindow:
    """One row of the catalog for one period: alert at `severity` when both windows burn at least `factor`."""

    severity: str
    budget_percent: int
    long_seconds: int
    short_seconds: int
    period_seconds: int

    @functools.cached_property
    def factor(self) -> float:
        """The burn rate both windows must reach."""
        return burn_factor(Fraction(self.budget_percent, 100), self.period_seconds, self.long_seconds)

    @functools.cached_property
    def name(self) -> str:
        """A stable label such as "page-1h-5m"."""
        return f"{self.severity}-{duration_label(self.long_seconds)}-{duration_label(self.short_seconds)}"


@functools.lru_cache(maxsize=None)
def alert_windows(period: str) -> tuple[AlertWindow, ...]:
    """Return the catalog's windows for an SLO period ("30d" or "28d"); ValueError for any other."""
    if period not in PERIODS:
        raise ValueError(f"period {period!r}: no alert windows for it; expected one of {', '.join(PERIODS)}")
    period_seconds = parse_duration(period, whole=True)
    return tuple(AlertWindow(severity, percent, parse_duration(long, whole=True), parse_duration(short, whole=True),
                             period_seconds)
                 for severity, percent, long, short in WINDOW_ROWS)
