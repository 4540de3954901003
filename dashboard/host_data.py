"""The host page's own reads: the daemon's newest state, the hangs' diagnoses, the leak figures (computed only by
alerts.leaks) and each guest's newest failure. Names are only `where` values, as in dashboard.data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alerts.leaks import FdForecast, LeakPolicy, LeakSign, Line, fd_forecast, leak_signs, rss_trend, since_start
from dashboard.host_bands import Interval, intervals, with_causes
from dashboard.timerange import TimeRange
from tsdb.schema import GUEST_FAILURE_KINDS

if TYPE_CHECKING:
    import pandas as pd

    from tsdb.store import Store

#: the diagnosis triggers that explain a hang (tsdb.schema, measurement `diagnosis`)
HANG_TRIGGERS = ("hang_start", "hang")
#: the libvirtd fields the leak figures read, raw, since the daemon last started
LEAK_FIELDS = ("open_fds", "max_fds", "rss_bytes", "start_time_seconds")


@dataclass(frozen=True)
class LeakView:
    """The leak figures of the daemon at the range's end: the descriptors' forecast, the RSS line, the signs."""

    forecast: FdForecast | None
    rss: Line | None
    signs: tuple[LeakSign, ...]

    def sign(self, resource: str) -> LeakSign | None:
        """Return the sign of a resource ("fds" or "rss"), or None."""
        return next((s for s in self.signs if s.resource == resource), None)


def latest_state(store: Store, host: str, rng: TimeRange) -> dict[str, float | None]:
    """Return the newest libvirtd point's up and hung in the range ({} without one)."""
    frame = store.latest("libvirtd", ["up", "hung"], rng.start_ns, rng.end_ns - 1, where={"host": host})
    if frame.empty:
        return {}
    row = frame.iloc[-1]
    return {name: (None if row.get(name) is None or row[name] != row[name] else float(row[name]))
            for name in ("up", "hung") if name in frame}


def hang_diagnoses(store: Store, host: str, rng: TimeRange) -> pd.DataFrame:
    """Return the newest cause of a hang per window of the range (columns time, cause): one row per window, not
    one per agent interval of a long hang."""
    frame = store.query("diagnosis", ["cause"], rng.start_ns, rng.end_ns,
                        where={"host": host, "trigger": list(HANG_TRIGGERS)}, window_seconds=rng.window_seconds,
                        aggregate="last")
    return frame.dropna(subset=["cause"]).reset_index(drop=True) if "cause" in frame else frame


@dataclass(frozen=True)
class HostHealth:
    """What the host page's health section shows: its frames, the hang and down intervals, the leak figures."""

    health: pd.DataFrame
    load: pd.DataFrame
    events: pd.DataFrame
    intervals: list[Interval]
    leak: LeakView


def read_health(store: Store, host: str, rng: TimeRange, policy: LeakPolicy = LeakPolicy()) -> HostHealth:
    """Return the health section's figures, its seven reads side by side (each on a pooled reader of the store)."""
    from dashboard import data

    found = data.concurrently({
        "health": lambda: data.host_health(store, host, rng), "load": lambda: data.host_load(store, host, rng),
        "events": lambda: data.events(store, rng, hosts=[host]), "latest": lambda: latest_state(store, host, rng),
        "diagnoses": lambda: hang_diagnoses(store, host, rng), "leak": lambda: leak_view(store, host, rng, policy)})
    bands = intervals(found["events"], found["health"], found["latest"], rng.start_ns, rng.end_ns)
    bands = with_causes(bands, found["diagnoses"], rng.window_seconds)
    return HostHealth(found["health"], found["load"], found["events"], bands, found["leak"])


def leak_view(store: Store, host: str, rng: TimeRange, policy: LeakPolicy = LeakPolicy()) -> LeakView:
    """Return the leak figures at the range's end from the raw libvirtd points of the daemon running then."""
    start = max(rng.start_ns, rng.end_ns - int(policy.lookback_seconds * 10**9))
    frame = store.query("libvirtd", list(LEAK_FIELDS), start, rng.end_ns, where={"host": host})
    if frame.empty:
        return LeakView(None, None, ())
    frame = frame.sort_values("time", kind="mergesort")
    times = frame["time"].astype("int64").tolist()
    started = frame["start_time_seconds"].tolist() if "start_time_seconds" in frame else [None] * len(times)
    first = since_start(times, started)

    def column(name: str) -> list:
        """Return a field's values of the newest process (None where the store has no such field)."""
        return frame[name].tolist()[first:] if name in frame else [None] * (len(times) - first)

    forecast = fd_forecast(times[first:], column("open_fds"), column("max_fds"), policy)
    rss = rss_trend(times[first:], column("rss_bytes"), policy)
    return LeakView(forecast, rss, tuple(leak_signs(forecast, rss, policy)))


def guest_failures(store: Store, host: str, rng: TimeRange) -> dict[str, tuple[int, str]]:
    """Return each guest's newest failure in the range: {domain: (time in ns, kind)}."""
    frame = store.latest("event", ["message"], rng.start_ns, rng.end_ns - 1,
                         where={"host": host, "kind": list(GUEST_FAILURE_KINDS)}, group_by=["domain", "kind"])
    newest: dict[str, tuple[int, str]] = {}
    for when, domain, kind in zip(frame.get("time", []), frame.get("domain", []), frame.get("kind", [])):
        if isinstance(domain, str) and domain and int(when.value) > newest.get(domain, (-1, ""))[0]:
            newest[domain] = (int(when.value), kind)
    return newest
