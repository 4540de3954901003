"""The leak rule: LibvirtdFdLeak and LibvirtdMemoryLeak per host, from the leak signs (alerts.leaks) of fleet-wide
reads that cost the same few queries at 2000 hosts as at 2.

The rule keeps, between rounds, each host's window means (`LeakMemory`): open_fds over `fd_fit_seconds` in
`FD_WINDOWS` windows, rss_bytes over 1.5 x `rss_min_hours` in `RSS_WINDOWS` windows (so a long memory span never
coarsens the descriptors' fit). A round makes three queries, each grouped by host: the mean of open_fds and the
mean of rss_bytes over the windows since the last round (the last window again, and the one before it for points
that came late; everything again every `RESYNC_SECONDS`), and every host's newest point (open_fds, max_fds,
rss_bytes, start_time_seconds, pid) over the rule's span. Each host's windows are cut at its daemon's newest start:
a window that began before the process started (give or take START_TOLERANCE_SECONDS) may hold points of the
process before a restart, which freed what leaked. The window means feed the fits (at each window's centre, the
newest point at its own time), the newest point gives the figures "now". At 2000 hosts: 2000 rows of newest points
and about 4000 of window means a round; 180,000 rows at the first round and at each resync.

An observation per host and alertname, active or not, so a restart resolves the alert with the figures of the new
process; a host whose daemon wrote no point over the rule's span is not observed (its tracked alerts resolve as
stale in the engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from alerts.leaks import (START_TOLERANCE_SECONDS, FdForecast, LeakPolicy, LeakSign, Line, fd_forecast,
                          leak_signs, rss_trend)
from alerts.rule_memory import RoundReads
from alerts.storm import StormGate, StormWords
from tsdb.point import Point
from tsdb.query import TimeLike, to_ns
from tsdb.store import Store
from tsdb.times import format_duration

FD_ALERTNAME = "LibvirtdFdLeak"
RSS_ALERTNAME = "LibvirtdMemoryLeak"
LEAK_RECORD = "libvirtd_leak"  # the engine's record of each host's leak signs, each round (tsdb.schema)
SEVERITIES = ("page", "ticket")
FD_WINDOWS = 30   # windows per host over fd_fit_seconds: 2 min each at the default hour
RSS_WINDOWS = 60  # windows per host over 1.5 x rss_min_hours: 4.5 min each at the default 3 h
RESYNC_SECONDS = 600  # every window is read again this often (points an agent's spool replayed late)
NEWEST_FIELDS = ("open_fds", "max_fds", "rss_bytes", "start_time_seconds", "pid")
MIB = 2**20
S = 10**9
LEAK_WORDS = StormWords("show the same leak sign of libvirtd together", "started showing it",
                        "still showing it", "what the sign means")


@dataclass(frozen=True)
class LeakResult:
    """One host's observation of one leak alert: its labels, annotations, and whether its sign shows."""

    host: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active: bool


@dataclass(frozen=True)
class Assessment:
    """What one host's figures show: the descriptors' forecast, the memory's line and the leak signs."""

    forecast: FdForecast | None
    line: Line | None
    signs: tuple[LeakSign, ...]

    def sign(self, resource: str) -> LeakSign | None:
        """The sign of one resource ("fds" or "rss"), or None."""
        return next((sign for sign in self.signs if sign.resource == resource), None)

    def record(self, host: str, time_ns: int) -> Point:
        """Return the `libvirtd_leak` record of this assessment (tsdb.schema), what the dashboard shows."""
        fields: dict[str, float | int | str] = {"fd_leak": int(self.sign("fds") is not None),
                                                "rss_leak": int(self.sign("rss") is not None),
                                                "leak_sign": " · ".join(sign.cell for sign in self.signs),
                                                "leak_detail": "\n".join(sign.summary for sign in self.signs)}
        if self.forecast is not None:
            fields.update(open_fds=self.forecast.open_fds, max_fds=self.forecast.max_fds,
                          fd_share_percent=100.0 * self.forecast.share)
            if self.forecast.seconds_to_limit is not None:
                fields["fd_limit_in_seconds"] = float(self.forecast.seconds_to_limit)
        if self.line is not None:
            fields["rss_growth_per_hour_bytes"] = float(self.line.slope_per_hour)
        return Point(LEAK_RECORD, {"host": host}, fields, time_ns)


@dataclass(frozen=True)
class Newest:
    """A host's newest `libvirtd` point: its figures (NaN where missing) and its time."""

    figures: dict[str, float]
    time_ns: int

    def get(self, name: str) -> float | None:
        """Return a figure, or None when the point has none."""
        value = self.figures.get(name)
        return None if value is None or value != value else value


@dataclass(frozen=True)
class LeakRule:
    """The leak rule: its policy and the severity of each alert."""

    policy: LeakPolicy = LeakPolicy()
    fd_severity: str = "page"
    rss_severity: str = "ticket"

    def __post_init__(self) -> None:
        for name in ("fd_severity", "rss_severity"):
            if getattr(self, name) not in SEVERITIES:
                raise ValueError(f"{name} must be one of {', '.join(SEVERITIES)}, got {getattr(self, name)!r}")

    @property
    def alertnames(self) -> set[str]:
        """The alertnames this rule observes."""
        return {FD_ALERTNAME, RSS_ALERTNAME}

    @property
    def fd_read(self) -> tuple[float, int]:
        """The descriptors' windows: how far back (seconds) and their width (whole seconds, at least 1)."""
        return self.policy.fd_fit_seconds, max(1, int(self.policy.fd_fit_seconds // FD_WINDOWS))

    @property
    def rss_read(self) -> tuple[float, int]:
        """The memory's windows: how far back (seconds) and their width (whole seconds, at least 1)."""
        seconds = self.policy.rss_min_hours * 3600 * 1.5
        return seconds, max(1, int(seconds // RSS_WINDOWS))

    def fleet_observation(self, alertname: str) -> tuple[dict[str, str], dict[str, str], bool, float]:
        """Return the fleet-scope observation of an alertname: never active on its own, the storm gate's page when
        many hosts start showing the sign in one round (alerts.storm)."""
        fd = alertname == FD_ALERTNAME
        labels = {"alertname": alertname, "scope": "fleet", "severity": self.fd_severity if fd else self.rss_severity}
        meaning = ("libvirtd's open file descriptors near their limit or projected to reach it: at the limit, "
                   "libvirtd refuses new clients and guests' operations fail; a restart frees them" if fd else
                   "libvirtd's resident memory growing steadily over hours: at the end the OOM killer takes it")
        return labels, {"summary": f"{alertname}: no storm", "description": meaning}, False, 0.0

    def evaluate(self, store: Store, now: TimeLike, reads: RoundReads | None = None) -> list[LeakResult]:
        """Read every host's windows and newest point (three queries for the whole fleet) and return each host's two
        observations (a rule evaluated once; the engine keeps a LeakMemory between rounds)."""
        return LeakMemory(self).evaluate(store, now, reads)

    def observe(self, host: str, newest: Newest, fds: list[tuple[int, float]],
                rss: list[tuple[int, float]]) -> list[LeakResult]:
        """Return the host's fd and memory observations from its newest point and its window means (centre time,
        mean) since its daemon's start, oldest first."""
        return self.results(host, newest, self.assess(newest, fds, rss))

    def assess(self, newest: Newest, fds: list[tuple[int, float]], rss: list[tuple[int, float]]) -> "Assessment":
        """Return what a host's figures show: the descriptors' forecast, the memory's line, the leak signs."""
        forecast = line = None
        open_fds, max_fds = newest.get("open_fds"), newest.get("max_fds")
        if open_fds is not None and max_fds is not None:
            points = [*fds, (newest.time_ns, open_fds)]
            forecast = fd_forecast([t for t, _ in points], [v for _, v in points], [max_fds] * len(points),
                                   self.policy)
        if rss:
            line = rss_trend([t for t, _ in rss], [v for _, v in rss], self.policy)
        return Assessment(forecast, line, tuple(leak_signs(forecast, line, self.policy)))

    def results(self, host: str, newest: Newest, assessment: "Assessment") -> list[LeakResult]:
        """Return the host's fd and memory observations of an assessment."""
        return [self._fd_result(host, newest, assessment.forecast, assessment.sign("fds")),
                self._rss_result(host, newest, assessment.line, assessment.sign("rss"))]

    def _fd_result(self, host: str, newest: Newest, forecast: FdForecast | None,
                   sign: LeakSign | None) -> LeakResult:
        """Return the descriptors' observation: the summary with the figures, the evidence line by line."""
        labels = {"alertname": FD_ALERTNAME, "severity": self.fd_severity, "host": host}
        if forecast is None:
            summary = f"{host}: libvirtd's descriptor limit is unknown (unlimited, or not read): no fd leak sign"
            return LeakResult(host, labels, {"summary": summary, "description": _process(newest)}, False)
        if sign is not None:
            summary = f"{host}: {sign.summary}"
        else:
            summary = (f"{host}: libvirtd holds {forecast.open_fds:,.0f} of {forecast.max_fds:,.0f} file descriptors "
                       f"({forecast.share:.0%}), {_trend(forecast.line)}: no leak sign")
        lines = [_process(newest), _fit(forecast.line, "open fds", "{:,.0f}/h", 1.0)]
        lines.append(f"sign when open fds reach {self.policy.fd_share:.0%} of the limit, or the fit reaches it within "
                     f"{format_duration(self.policy.fd_horizon_seconds)} (rising at least {self.policy.fd_min_rise:g} fds "
                     f"with r² >= {self.policy.fd_min_r2:g})")
        limit_at = forecast.limit_at_ns()
        if limit_at is not None:
            lines.append(f"at this rate the limit is reached at {_utc(limit_at)}")
        if sign is not None:
            lines.append("a restart of libvirtd frees the leaked descriptors; its clients reconnect")
        return LeakResult(host, labels, {"summary": summary, "description": "\n".join(lines)}, sign is not None)

    def _rss_result(self, host: str, newest: Newest, rss: Line | None, sign: LeakSign | None) -> LeakResult:
        """Return the memory observation: the summary with the growth, the evidence line by line."""
        labels = {"alertname": RSS_ALERTNAME, "severity": self.rss_severity, "host": host}
        resident = newest.get("rss_bytes")
        now = "" if resident is None else f"; {resident / MIB:,.0f} MiB resident now"
        if sign is not None:
            summary = f"{host}: {sign.summary}{now}"
        elif rss is None:
            summary = (f"{host}: libvirtd's resident memory has less than {self.policy.rss_min_hours:g} h of points "
                       f"since its start, no memory leak sign{now}")
        else:
            summary = f"{host}: libvirtd's resident memory does not grow steadily, no memory leak sign{now}"
        lines = [_process(newest), _fit(rss, "resident memory", "{:,.1f} MiB/h", 1 / MIB)]
        lines.append(f"sign when it grows at least {self.policy.rss_min_growth_bytes_per_hour / MIB:g} MiB/h over "
                     f"at least {self.policy.rss_min_hours:g} h with r² >= {self.policy.rss_min_r2:g}")
        return LeakResult(host, labels, {"summary": summary, "description": "\n".join(lines)}, sign is not None)



class WindowMeans:
    """One field's window means per host, kept between rounds and brought up to date by one query a round."""

    def __init__(self, field: str, span_seconds: float, width_seconds: int) -> None:
        self.field, self.span_ns, self.width_ns = field, int(span_seconds * S), width_seconds * S
        self.means: dict[str, dict[int, float]] = {}  # host -> window start (ns) -> mean
        self.read_ns: int | None = None  # the round's time of the last read

    def update(self, store: Store, now_ns: int, reads: RoundReads, everything: bool) -> None:
        """Read the windows since the last read (the last one again, and the one before it), or all of them."""
        oldest = now_ns - self.span_ns
        start = oldest
        if not everything and self.read_ns is not None:
            start = max(oldest, (self.read_ns // self.width_ns - 1) * self.width_ns)
        frame = reads.add(store.query("libvirtd", [self.field], start, now_ns + 1,
                                      window_seconds=self.width_ns // S, aggregate="mean", group_by=["host"]))
        first = (start // self.width_ns) * self.width_ns
        for host, windows in list(self.means.items()):
            for window in [w for w in windows if w >= first or w < oldest - self.width_ns]:
                del windows[window]
        for host, window, mean in zip(frame["host"].to_numpy(), frame["time"].array.asi8,
                                      frame[self.field].to_numpy()):
            if mean == mean:
                self.means.setdefault(str(host), {})[int(window)] = float(mean)
        self.means = {host: windows for host, windows in self.means.items() if windows}
        self.read_ns = now_ns

    def since(self, host: str, start_ns: int | None, now_ns: int) -> list[tuple[int, float]]:
        """Return a host's (centre time, mean) of the windows that began within the span and at or after start_ns,
        oldest first (the window that straddles the span's start is left out: a first read saw only part of it)."""
        first = max(now_ns - self.span_ns, -1 if start_ns is None else start_ns)
        windows = self.means.get(host, {})
        return [(window + min(self.width_ns, max(0, now_ns - window)) // 2, mean)
                for window, mean in sorted(windows.items()) if window >= first]


class LeakMemory:
    """The leak rule evaluated round after round: its window means kept, three queries a round (module doc)."""

    def __init__(self, rule: LeakRule) -> None:
        self.rule = rule
        self.fds = WindowMeans("open_fds", *rule.fd_read)
        self.rss = WindowMeans("rss_bytes", *rule.rss_read)
        self.span_seconds = max(rule.fd_read[0], rule.rss_read[0])
        self.synced_ns: int | None = None
        self.records: list[Point] = []  # the last round's `libvirtd_leak` records, one per host

    def evaluate(self, store: Store, now: TimeLike, reads: RoundReads | None = None) -> list[LeakResult]:
        """Bring the window means up to date, read every host's newest point, and return each host's observations."""
        now_ns = to_ns(now, "now")
        reads = reads if reads is not None else RoundReads()
        everything = self.synced_ns is None or now_ns - self.synced_ns >= RESYNC_SECONDS * S
        if everything:
            self.synced_ns = now_ns
            reads.resynced = True
        self.fds.update(store, now_ns, reads, everything)
        self.rss.update(store, now_ns, reads, everything)
        frame = reads.add(store.latest("libvirtd", NEWEST_FIELDS, now_ns - int(self.span_seconds * S), now_ns,
                                       group_by=["host"]))
        columns = {name: frame[name].to_numpy() for name in NEWEST_FIELDS}
        results, records = [], []
        for row, (host, time_ns) in enumerate(zip(frame["host"].to_numpy(), frame["time"].array.asi8)):
            host = str(host)
            newest = Newest({name: float(columns[name][row]) for name in NEWEST_FIELDS}, int(time_ns))
            started = newest.get("start_time_seconds")
            # a window that began before the start (give or take btime's drift) may hold the old process's points
            start_ns = None if started is None else int((started + START_TOLERANCE_SECONDS) * S)
            assessment = self.rule.assess(newest, self.fds.since(host, start_ns, now_ns),
                                          self.rss.since(host, start_ns, now_ns))
            results += self.rule.results(host, newest, assessment)
            records.append(assessment.record(host, now_ns))
        reads.evaluated_hosts = len(frame)
        self.records = records
        return results


def leak_gate(gate: StormGate) -> StormGate:
    """Return the storm gate of the leak alerts: `gate`'s share, minimum, hold and wait, in the words of leaks."""
    return StormGate(share=gate.share, min_hosts=gate.min_hosts, hold_seconds=gate.hold_seconds,
                     wait_seconds=gate.wait_seconds, words=LEAK_WORDS)


def _process(newest: Newest) -> str:
    """Say which process the figures are of and since when it runs."""
    pid, started = newest.get("pid"), newest.get("start_time_seconds")
    who = "libvirtd" if pid is None else f"libvirtd (pid {pid:.0f})"
    if started is None:
        return f"{who}: start time unknown"
    started_ns = int(started * S)
    return f"{who} runs since {_utc(started_ns)} ({format_duration(max(0.0, (newest.time_ns - started_ns) / S))})"


def _fit(line: Line | None, what: str, rate: str, scale: float) -> str:
    """Describe a fit: its slope, r² and span, or that there is too little to fit."""
    if line is None:
        return f"{what}: too few points since the start to fit a line"
    return (f"{what}: least-squares fit over the last {format_duration(line.span_seconds)} ({line.points} windows): "
            f"{rate.format(line.slope_per_hour * scale)}, r² {line.r2:.2f}")


def _trend(line: Line | None) -> str:
    """Say how the descriptors move: 'rising 12/h', 'falling 3/h' or 'flat'."""
    if line is None:
        return "too few points since the start for a trend"
    if abs(line.slope_per_hour) < 0.5:
        return "flat"
    return f"{'rising' if line.slope_per_hour > 0 else 'falling'} {abs(line.slope_per_hour):,.0f}/h"


def _utc(time_ns: int) -> str:
    """Return a time as '2026-12-05 03:12 UTC'."""
    return datetime.fromtimestamp(time_ns / S, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

