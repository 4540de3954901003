"""The fleet's failures as a host x time heatmap: events of every failure severity per host per time bucket over the
range, the hosts with the most failures on top (at most HEATMAP_MAX_HOSTS of them, and the figure says so)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dashboard.timerange import TimeRange
    from tsdb.store import Store

#: the most time buckets across the range
HEATMAP_BUCKETS = 48
#: the most hosts the heatmap shows (the worst of them)
HEATMAP_MAX_HOSTS = 40
#: the colour scale ends at least at this many failures in a bucket, so that one failure is amber, not alarm red
MIN_SCALE_FAILURES = 5
#: white for none, then amber to red (failures are red elsewhere too: dashboard.figures.SEVERITY_COLOURS)
COLOURS = [[0.0, "#ffffff"], [0.01, "#fff3e0"], [0.3, "#ef6c00"], [1.0, "#b71c1c"]]


@dataclass(frozen=True)
class FailureHeatmap:
    """Failures per host per bucket: hosts worst first, bucket start times (ns), counts[host][bucket], the bucket's
    length, and how many hosts failed at all (more than the hosts shown when the fleet is large)."""

    hosts: tuple[str, ...]
    bucket_starts_ns: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]
    bucket_seconds: int
    hosts_failing: int

    @property
    def total(self) -> int:
        """Every failure the heatmap shows."""
        return sum(sum(row) for row in self.counts)


def read_failure_heatmap(store: Store, rng: TimeRange, max_hosts: int = HEATMAP_MAX_HOSTS) -> FailureHeatmap:
    """Return the failures (events of dashboard.data.FAILURE_SEVERITIES) per host per bucket of the range in ONE
    read summed by host and epoch-aligned bucket, the `max_hosts` hosts with the most failures first (then by
    name)."""
    from dashboard.data import FAILURE_SEVERITIES
    from dashboard.timerange import pick_window_seconds

    bucket = pick_window_seconds(rng.span_seconds, HEATMAP_BUCKETS)
    bucket_ns = bucket * 10**9
    frame = store.query("event", ["count"], rng.start_ns, rng.end_ns, where={"severity": list(FAILURE_SEVERITIES)},
                        window_seconds=bucket, aggregate="sum", group_by=["host"])
    first = rng.start_ns // bucket_ns * bucket_ns
    starts = tuple(range(first, rng.end_ns, bucket_ns))
    if frame.empty:
        return FailureHeatmap((), starts, (), bucket, 0)
    frame = frame[frame["count"] > 0]
    totals = frame.groupby("host")["count"].sum()
    ranked = sorted(totals.index, key=lambda host: (-totals[host], host))
    shown = ranked[:max_hosts]
    index = {host: row for row, host in enumerate(shown)}
    counts = [[0] * len(starts) for _ in shown]
    times = frame["time"].astype("int64").tolist()
    for host, time_ns, count in zip(frame["host"].tolist(), times, frame["count"].tolist()):
        column = (time_ns - first) // bucket_ns
        if host in index and 0 <= column < len(starts):
            counts[index[host]][column] += int(count)
    return FailureHeatmap(tuple(shown), starts, tuple(tuple(row) for row in counts), bucket, len(ranked))


def plot_text(text: str) -> str:
    """Return text for a plotly label: &, < and > as entities, so a name is never read as plotly's markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def heatmap_figure(heat: FailureHeatmap, start_ns: int, end_ns: int) -> dict:
    """Return the heatmap as a plotly figure (a dict): one row per host, worst on top, a column per bucket."""
    from dashboard.figures import dict_layout, x_range

    import pandas as pd

    half = heat.bucket_seconds * 10**9 // 2
    x = [pd.Timestamp(start + half, unit="ns", tz="UTC").isoformat() for start in heat.bucket_starts_ns]
    names = [plot_text(host) for host in heat.hosts]
    trace = {"type": "heatmap", "x": x, "y": names, "z": [list(row) for row in heat.counts], "zmin": 0,
             "zmax": max([MIN_SCALE_FAILURES, *(max(row) for row in heat.counts)]),
             "colorscale": COLOURS, "xgap": 1, "ygap": 1,
             "colorbar": {"title": {"text": "failures"}, "thickness": 12},
             "hovertemplate": "%{y}<br>%{x}<br>%{z} failures<extra></extra>"}
    x0, x1 = x_range(start_ns, end_ns)
    height = 120 + 22 * max(len(heat.hosts), 3)
    return {"data": [trace], "layout": dict_layout(
        height, hovermode="closest", margin={"l": 180, "r": 20, "t": 10, "b": 40},
        xaxis={"range": [x0.isoformat(), x1.isoformat()], "type": "date"},
        yaxis={"autorange": "reversed", "type": "category", "automargin": True})}


def caption(heat: FailureHeatmap) -> str:
    """Return what the heatmap shows in words: the bucket, and the hosts left out at a large fleet."""
    from tsdb.times import format_duration as duration

    shown = len(heat.hosts)
    hosts = (f"the {shown} hosts with the most failures of {heat.hosts_failing} that failed"
             if heat.hosts_failing > shown else f"all {shown} hosts that failed")
    return f"{heat.total} failures (warning and critical events) per {duration(heat.bucket_seconds)}: {hosts}, " \
           "most failures on top."
