"""Leak signs of libvirtd: descriptors near their limit or on course to reach it, and resident memory that grows
steadily. The one place the math lives: the engine's leak rule pages from it, the dashboard shows the same figures.

Both read a host's `libvirtd` points (open_fds, max_fds, rss_bytes, start_time_seconds) since the daemon last
started (`since_start`): a restart frees what leaked, so older points say nothing about the process that runs now.

- Descriptors: `fd_forecast` fits a least-squares line to open_fds over the last `fd_fit_seconds` and projects when
  it reaches max_fds. A sign when open_fds is at least `fd_share` of the limit now, or when the projection reaches
  the limit within `fd_horizon_seconds`. The fit projects only when it rose by at least `fd_min_rise` descriptors
  (a flat line with noise projects nothing) and the line explains the points (r^2 >= `fd_min_r2`: a step, such as
  a burst of clients that stays connected, has r^2 of about 3p(1-p) for a step at the share p of the span, 0.75
  at most).
- Memory: `rss_trend` fits rss_bytes over at least `rss_min_hours` of points; a sign when it grows by at least
  `rss_min_growth_bytes_per_hour` and the line explains it (r^2 >= `rss_min_r2`): steady growth, not a step or a
  sawtooth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from tsdb.times import format_duration

HOUR_NS = 3600 * 10**9
#: start times of one process differ by less than this: /proc/stat's btime is whole seconds and moves when the
#: clock is slewed (the agent's RestartTracker, collector/daemon_process.py, uses the same tolerance)
START_TOLERANCE_SECONDS = 2.0


@dataclass(frozen=True)
class LeakPolicy:
    """When descriptors and memory are leak signs (the `[alerts.leak]` settings)."""

    fd_share: float = 0.9                  # open fds at or above this share of the limit
    fd_horizon_seconds: float = 6 * 3600   # ... or projected to reach the limit within this
    fd_fit_seconds: float = 3600           # the projection fits this much of the newest points
    fd_min_rise: float = 20                # the fit must rise at least this many fds over its span to project
    fd_min_r2: float = 0.8                 # ... and explain them (a step is not a leak)
    rss_min_hours: float = 3               # memory growth counts over at least this many hours of points
    rss_min_growth_bytes_per_hour: float = 8 * 2**20
    rss_min_r2: float = 0.9

    def __post_init__(self) -> None:
        for name in ("fd_share", "fd_horizon_seconds", "fd_fit_seconds", "fd_min_rise", "fd_min_r2", "rss_min_hours",
                     "rss_min_growth_bytes_per_hour", "rss_min_r2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("fd_share", "fd_min_r2", "rss_min_r2"):
            if not getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")

    @property
    def lookback_seconds(self) -> float:
        """How far back a reader must look for every figure."""
        return max(self.fd_fit_seconds, self.rss_min_hours * 3600) * 1.5


@dataclass(frozen=True)
class Line:
    """A least-squares line through (time, value) points: the slope per hour, r^2, and the span it covers."""

    slope_per_hour: float
    intercept: float  # the value at `origin_ns`
    origin_ns: int
    r2: float
    span_seconds: float
    points: int

    def at(self, time_ns: int) -> float:
        """The line's value at a time."""
        return self.intercept + self.slope_per_hour * (time_ns - self.origin_ns) / HOUR_NS


@dataclass(frozen=True)
class FdForecast:
    """Descriptors now against their limit, and when the current trend reaches it."""

    open_fds: float
    max_fds: float
    at_ns: int
    line: Line | None
    seconds_to_limit: float | None  # None: not rising (or too little to fit)

    @property
    def share(self) -> float:
        """open_fds / max_fds."""
        return self.open_fds / self.max_fds if self.max_fds > 0 else 0.0

    def limit_at_ns(self) -> int | None:
        """When the trend reaches the limit, or None."""
        return None if self.seconds_to_limit is None else self.at_ns + int(self.seconds_to_limit * 10**9)


@dataclass(frozen=True)
class LeakSign:
    """One leak sign: which resource, a sentence with the figures, and the figures."""

    resource: str  # "fds" or "rss"
    summary: str
    figures: dict[str, float]

    @property
    def cell(self) -> str:
        """The sign in a few words, for a table cell: "fds 99% of 8,000" or "RSS +12.0 MiB/h"."""
        if self.resource == "fds":
            return f"fds {self.figures['share']:.0%} of {self.figures['max_fds']:,.0f}"
        return f"RSS +{self.figures['rss_growth_bytes_per_hour'] / 2**20:,.1f} MiB/h"


def fit_line(times_ns: Sequence[int], values: Sequence[float]) -> Line | None:
    """Return the least-squares line through the points, or None for fewer than 3 points or no time span."""
    pairs = [(int(t), float(v)) for t, v in zip(times_ns, values) if v is not None and v == v]
    if len(pairs) < 3:
        return None
    origin = pairs[0][0]
    xs = [(t - origin) / HOUR_NS for t, _v in pairs]
    ys = [v for _t, v in pairs]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx <= 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    r2 = 1.0 if syy == 0 else min(1.0, (sxy * sxy) / (sxx * syy))
    return Line(slope, mean_y - slope * mean_x, origin, r2, (pairs[-1][0] - origin) / 10**9, n)


def since_start(times_ns: Sequence[int], start_times: Sequence[float | None],
                tolerance_seconds: float = START_TOLERANCE_SECONDS) -> int:
    """Return the index of the first point of the newest daemon process (start_time_seconds changes at a restart;
    points without one belong to the process around them; start times within `tolerance_seconds` of the one
    before are the same process)."""
    newest = None
    first = 0
    for index, started in enumerate(start_times):
        if started is None or started != started:
            continue
        if newest is not None and abs(started - newest) >= tolerance_seconds:
            first = index
        newest = started
    return first


def fd_forecast(times_ns: Sequence[int], open_fds: Sequence[float], max_fds: Sequence[float],
                policy: LeakPolicy = LeakPolicy()) -> FdForecast | None:
    """Return the descriptors' forecast from a process's points (oldest first), or None without a limit."""
    known = [(int(t), float(o), float(m)) for t, o, m in zip(times_ns, open_fds, max_fds)
             if o is not None and o == o and m is not None and m == m and m > 0]
    if not known:
        return None
    at_ns, now_open, limit = known[-1]
    recent = [(t, o) for t, o, _m in known if t >= at_ns - policy.fd_fit_seconds * 10**9]
    line = fit_line([t for t, _o in recent], [o for _t, o in recent])
    seconds = None
    if line is not None and line.slope_per_hour > 0 and line.r2 >= policy.fd_min_r2 and \
            line.slope_per_hour * line.span_seconds / 3600 >= policy.fd_min_rise:
        seconds = max(0.0, (limit - now_open) / line.slope_per_hour * 3600)
    return FdForecast(now_open, limit, at_ns, line, seconds)


def rss_trend(times_ns: Sequence[int], rss_bytes: Sequence[float], policy: LeakPolicy = LeakPolicy()) -> Line | None:
    """Return the line through a process's resident memory when its points span at least rss_min_hours."""
    line = fit_line(times_ns, rss_bytes)
    return line if line is not None and line.span_seconds >= policy.rss_min_hours * 3600 else None


def leak_signs(forecast: FdForecast | None, rss: Line | None, policy: LeakPolicy = LeakPolicy()) -> list[LeakSign]:
    """Return the leak signs the figures show, each with a sentence an operator reads at 3 a.m."""
    signs = []
    if forecast is not None:
        near = forecast.share >= policy.fd_share
        soon = forecast.seconds_to_limit is not None and forecast.seconds_to_limit <= policy.fd_horizon_seconds
        if near or soon:
            parts = [f"libvirtd holds {forecast.open_fds:,.0f} of {forecast.max_fds:,.0f} file descriptors "
                     f"({forecast.share:.0%})"]
            if forecast.line is not None and forecast.seconds_to_limit is not None:
                when = ("at the limit now" if forecast.seconds_to_limit <= 0
                        else f"at the limit in {format_duration(forecast.seconds_to_limit)}")
                parts.append(f"rising {forecast.line.slope_per_hour:,.0f}/h, {when}")
            figures = {"open_fds": forecast.open_fds, "max_fds": forecast.max_fds, "share": forecast.share}
            if forecast.seconds_to_limit is not None:
                figures["seconds_to_limit"] = forecast.seconds_to_limit
            signs.append(LeakSign("fds", ", ".join(parts), figures))
    if rss is not None and rss.slope_per_hour >= policy.rss_min_growth_bytes_per_hour and rss.r2 >= policy.rss_min_r2:
        signs.append(LeakSign("rss", f"libvirtd's resident memory grew steadily by {rss.slope_per_hour / 2**20:.1f} "
                                     f"MiB/h over {rss.span_seconds / 3600:.1f} h (r² {rss.r2:.2f})",
                              {"rss_growth_bytes_per_hour": rss.slope_per_hour, "r2": rss.r2,
                               "hours": rss.span_seconds / 3600}))
    return signs
