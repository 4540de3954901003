"""SLIs: good and total events of an SLO over a time range, per host and fleet-wide, read through tsdb only.

`window_counts` is the one place that knows how each SLI (alerts.slo) counts: it returns good and total per
host per epoch-aligned window. `compute_sli` sums them over a range; `rollup_points` turns per-minute
windows into `sli` points (tsdb.schema) that `read_rollups` sums back, so a 3-day window reads one row per
host per minute instead of every raw point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.slo import SLO, Source
from tsdb.point import Point
from tsdb.query import Matching, TimeLike, to_ns
from tsdb.schema import GUEST_FAILURE_KINDS
from tsdb.store import Store
from tsdb.wedged import COUNTED_FIELD, DOMAIN_ROUND, ROUND_POINTS, ROUND_WEDGED, WEDGED_DOMAIN
from tsdb.wedged import PAUSED, PAUSED_STARTING_UP  # noqa: F401 - the states' names, where the SLIs' readers look

if TYPE_CHECKING:
    import pandas as pd

ROLLUP_MEASUREMENT = "sli"
FLEET_ROLLUP_MEASUREMENT = "sli_fleet"  # the same rollups summed over every host: what fleet-wide charts read
ROLLUP_SECONDS = 60
#: window used when only the sum over a range matters: any width gives the same sum, this keeps frames small
SUM_WINDOW_SECONDS = 3600
COLUMNS = ("time_ns", "host", "good", "total")
FRESHNESS_MEMORY_SECONDS = 86400  # a host silent longer than this is no longer expected (decommissioned)
FRESHNESS_LOOKBACK_STEPS = 3  # intervals before a range read with it: every reporting host's last point is there
FRESHNESS_BLOCK_CELLS = 2_000_000  # hosts x intervals the freshness SLI holds at once (16 MB an array)


@dataclass(frozen=True)
class Counts:
    """Good and total events."""

    good: float = 0.0
    total: float = 0.0

    @property
    def bad(self) -> float:
        """Events that were not good."""
        return self.total - self.good

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.good + other.good, self.total + other.total)


@dataclass(frozen=True)
class SLIResult:
    """Counts per host and for the whole fleet."""

    hosts: dict[str, Counts] = field(default_factory=dict)

    @property
    def fleet(self) -> Counts:
        """The sum over every host."""
        return sum(self.hosts.values(), Counts())

    def counts(self, host: str | None = None) -> Counts:
        """Return one host's counts (zero when it has none), or the fleet's when host is None."""
        return self.fleet if host is None else self.hosts.get(host, Counts())


def window_counts(store: Store, slo: SLO, start: TimeLike, end: TimeLike, window_seconds: int) -> pd.DataFrame:
    """Return good and total per host per window of `window_seconds` (aligned to the epoch) in [start, end)."""
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    width = window_seconds * 10**9
    if slo.sli == "libvirtd_availability":
        return _availability(store, start_ns, end_ns, window_seconds)
    if slo.sli == "libvirtd_latency":
        raw = _probes(store, start_ns, end_ns)
        fast = (raw["probe_ok"] == 1) & (raw["probe_latency_ms"] < slo.threshold_ms)
        return _bucketed(raw, fast, width)
    if slo.sli == "domain_stability":
        return _domain_stability(store, start_ns, end_ns, window_seconds)
    if slo.sli == "collection_freshness":
        return _freshness(store, slo, start_ns, end_ns, width)
    if slo.sli == "custom":
        return _custom(store, slo.good, slo.total, start_ns, end_ns, window_seconds)
    raise ValueError(f"SLO {slo.name!r}: unknown sli {slo.sli!r}")


def compute_sli(store: Store, slo: SLO, start: TimeLike, end: TimeLike) -> SLIResult:
    """Return good and total per host over [start, end), from the raw measurements."""
    return per_host(window_counts(store, slo, start, end, SUM_WINDOW_SECONDS), "good", "total")


def rollup_points(store: Store, slo: SLO, start: TimeLike, end: TimeLike) -> list[Point]:
    """Return one `sli` point (resolution 1m) per host per minute of [start, end), which must be whole minutes."""
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    minute = ROLLUP_SECONDS * 10**9
    if start_ns % minute or end_ns % minute:
        raise ValueError(f"rollup of {slo.name!r}: start and end must fall on whole minutes, so that rollups of "
                         "consecutive ranges neither overlap nor leave gaps")
    frame = window_counts(store, slo, start_ns, end_ns, ROLLUP_SECONDS)
    return [Point(ROLLUP_MEASUREMENT, {"host": host, "slo": slo.name, "resolution": "1m"},
                  {"good_total": float(good), "valid_total": float(total)}, int(time_ns))
            for time_ns, host, good, total in frame.itertuples(index=False)]


def fleet_rollup_points(points: list[Point]) -> list[Point]:
    """Return the fleet's rollups of a batch of `sli` points that holds every host of its minutes or hours (what
    one roll-up chunk writes): their sums per time, SLO and resolution, under FLEET_ROLLUP_MEASUREMENT."""
    sums: dict[tuple[int, str, str], list[float]] = {}
    for point in points:
        found = sums.setdefault((point.time_ns, point.tags["slo"], point.tags["resolution"]), [0.0, 0.0])
        found[0] += point.fields["good_total"]
        found[1] += point.fields["valid_total"]
    return [Point(FLEET_ROLLUP_MEASUREMENT, {"slo": slo, "resolution": resolution},
                  {"good_total": good, "valid_total": total}, time_ns)
            for (time_ns, slo, resolution), (good, total) in sorted(sums.items())]


def read_rollups(store: Store, slo: SLO, start: TimeLike, end: TimeLike, resolution: str = "1m") -> SLIResult:
    """Return good and total per host over [start, end), summed by the store from this SLO's rollups of one
    resolution ("1m" or "1h"): one window as long as the range, so at most two rows per host come back."""
    start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    window_seconds = max(60, -(-(end_ns - start_ns) // 10**9))
    frame = store.query(ROLLUP_MEASUREMENT, ["good_total", "valid_total"], start_ns, end_ns,
                        where={"slo": slo.name, "resolution": resolution}, window_seconds=window_seconds,
                        aggregate="sum", group_by=["host"])
    return per_host(frame, "good_total", "valid_total")


def per_host(frame: pd.DataFrame, good: str, total: str) -> SLIResult:
    """Return the per-host sums of a frame's good and total columns."""
    sums = frame.groupby("host", sort=True)[[good, total]].sum()
    return SLIResult({host: Counts(float(g), float(t))
                      for host, g, t in zip(sums.index, sums[good].to_numpy(), sums[total].to_numpy())})


# ---- how the SLIs count ----


def _windowed(store: Store, source: Source, start_ns: int, end_ns: int, window_seconds: int) -> pd.DataFrame:
    """Return (time_ns, host, value) of a windowed count or sum of one field."""
    frame = store.query(source.measurement, [source.field], start_ns, end_ns, where=dict(source.where),
                        window_seconds=window_seconds, aggregate=source.aggregate, group_by=["host"])
    frame = frame.assign(time_ns=frame["time"].astype("int64"), value=frame[source.field].fillna(0.0))
    return frame[["time_ns", "host", "value"]]


def _probes(store: Store, start_ns: int, end_ns: int) -> pd.DataFrame:
    """Return libvirtd's probes in [start, end): every point with a probe_ok, with its probe_latency_ms. One point
    per host per interval: reading them costs less than two counts, and availability and latency read the very
    same points (one read for both when rolled up together: alerts.rollups.roll_up_each)."""
    raw = store.query("libvirtd", ["probe_ok", "probe_latency_ms"], start_ns, end_ns, group_by=["host"])
    return raw[raw["probe_ok"].notna()]


def _availability(store: Store, start_ns: int, end_ns: int, window_seconds: int) -> pd.DataFrame:
    """Good (probe_ok = 1) and total probes per host per window, from the probes' points (_probes)."""
    raw = _probes(store, start_ns, end_ns)
    return _bucketed(raw, raw["probe_ok"] == 1, window_seconds * 10**9)


def _custom(store: Store, good: Source, total: Source, start_ns: int, end_ns: int, window_seconds: int
            ) -> pd.DataFrame:
    """A custom SLI's good and total: one query when both count in the same measurement with the same filter
    (one snapshot where the store has them), else two (then only the settled edge keeps them consistent)."""
    if (good.measurement, good.where) != (total.measurement, total.where):
        return _joined(_windowed(store, good, start_ns, end_ns, window_seconds),
                       _windowed(store, total, start_ns, end_ns, window_seconds))
    fields = list(dict.fromkeys([good.field, total.field]))
    aggregates = tuple(dict.fromkeys([good.aggregate, total.aggregate]))
    frame = store.query(good.measurement, fields, start_ns, end_ns, where=dict(good.where),
                        window_seconds=window_seconds, aggregate=aggregates, group_by=["host"])
    return _standard(frame.assign(time_ns=frame["time"].astype("int64"),
                                  good=frame[f"{good.aggregate}_{good.field}"].fillna(0.0).astype("float64"),
                                  total=frame[f"{total.aggregate}_{total.field}"].fillna(0.0).astype("float64")))


def _joined(good: pd.DataFrame, total: pd.DataFrame) -> pd.DataFrame:
    """Return the standard counts frame from windowed good and total values."""
    merged = good.merge(total, on=["time_ns", "host"], how="outer", suffixes=("_good", "_total"))
    merged = merged.fillna({"value_good": 0.0, "value_total": 0.0})
    merged = merged.rename(columns={"value_good": "good", "value_total": "total"})
    return _standard(merged)


def _bucketed(raw: pd.DataFrame, good: pd.Series, width: int) -> pd.DataFrame:
    """Return the standard counts frame from raw rows and a good flag per row, counted per window."""
    times = raw["time"].astype("int64")
    frame = raw.assign(time_ns=times - times % width, good=good.astype("float64"), total=1.0)
    return _standard(frame.groupby(["time_ns", "host"], as_index=False)[["good", "total"]].sum())


def _count_reads(store: Store, measurement: str, field: str, start_ns: int, end_ns: int, window_seconds: int,
                 matching: Matching, where: dict | None = None
                 ) -> tuple[Callable[[], pd.DataFrame], Callable[[], pd.DataFrame]]:
    """Return the two reads that count, per host and window, the points of `measurement` (of the hosts `where`
    names, all when None) whose fields pass `matching` and all those with a value of `field`: counts the store
    makes (tsdb.query `matching`), so a minute of 2,000 hosts returns 2 x 2,000 rows however many guests they run,
    instead of every point."""
    def passing() -> pd.DataFrame:
        return store.query(measurement, [field], start_ns, end_ns, where=where, window_seconds=window_seconds,
                           aggregate="count", group_by=["host"], matching=matching)

    def total() -> pd.DataFrame:
        return store.query(measurement, [field], start_ns, end_ns, where=where, window_seconds=window_seconds,
                           aggregate="count", group_by=["host"])

    return passing, total


def _counted(wedged: pd.DataFrame, total: pd.DataFrame, field: str) -> pd.DataFrame:
    """Return the standard counts frame from the answers of _count_reads: good is the points that did not pass
    (the passing ones are the bad events).

    The two counts are two reads, so a point landing between them (only a spool replay lands behind the settled
    edge, and the re-roll counts it) may be in one only: the passing count is clipped to the total, so good stays
    within [0, total].
    """
    frame = total.assign(time_ns=total["time"].astype("int64"), total=total[field].astype("float64"))
    bad = wedged.assign(time_ns=wedged["time"].astype("int64"), bad=wedged[field].astype("float64"))
    frame = frame.merge(bad[["time_ns", "host", "bad"]], on=["time_ns", "host"], how="left")
    return _standard(frame.assign(good=frame["total"] - frame["bad"].fillna(0.0).clip(upper=frame["total"])))


def _domain_stability(store: Store, start_ns: int, end_ns: int, window_seconds: int) -> pd.DataFrame:
    """Count, per host and window, domain stability's events (alerts.slo): the domain points with a state_code
    and the guests' failure events (total), and as bad the failure events and the points of wedged guests
    (tsdb.wedged.WEDGED_DOMAIN).

    The points are counted from the agents' `domain_round` points: each bulk-stats round's count of its domain
    points and of the wedged ones, stamped like them (tsdb.wedged), so a minute of 2,000 hosts reads 2,000 series
    instead of one per guest (at 4 guests a host on InfluxDB 1.6: 120-244 ms a minute instead of 650-900, measured).
    Where a host has no round count in a window (an agent older than them, or domain points written by other
    means) its domain points there are counted by the store (_domain_point_counts). A killed QEMU leaves its domain
    shut off with reason failed or crashed, never in the CRASHED state, so no point tells a guest failed: the
    agent's `domain_failed` / `domain_crashed` event does, once per failure. Every term is a count or sum of what
    lies in the window, so windows add up exactly to the count of any longer range (a window in which an agent was
    upgraded mid-way counts that host's points of the window from its round counts only).
    """
    import pandas as pd

    # one after the other, not side by side: at 2,000 hosts on InfluxDB 1.6 a catch-up's counts read at once
    # beside the other SLOs' reads (7 queries on a 2-core server) passed the store's 10 s deadline (measured)
    rounds = store.query(DOMAIN_ROUND, [ROUND_POINTS, ROUND_WEDGED], start_ns, end_ns, window_seconds=window_seconds,
                         aggregate="sum", group_by=["host"])
    rounds = rounds[rounds[ROUND_POINTS].notna()]
    rounds = rounds.assign(time_ns=rounds["time"].astype("int64"), total=rounds[ROUND_POINTS].astype("float64"),
                           bad=rounds[ROUND_WEDGED].fillna(0.0).astype("float64"))
    counted = _standard(rounds.assign(good=rounds["total"] - rounds["bad"].clip(upper=rounds["total"])))
    points = _domain_point_counts(store, start_ns, end_ns, window_seconds, counted)
    events = store.query("event", ["count"], start_ns, end_ns, where={"kind": list(GUEST_FAILURE_KINDS)},
                         window_seconds=window_seconds, aggregate="count", group_by=["host"])
    failures = events.assign(time_ns=events["time"].astype("int64"), failed=events["count"].astype("float64"))
    frame = pd.concat([counted, points], ignore_index=True)
    frame = frame.merge(failures[["time_ns", "host", "failed"]], on=["time_ns", "host"], how="outer")
    frame = frame.fillna({"good": 0.0, "total": 0.0, "failed": 0.0})
    frame = frame.assign(total=frame["total"] + frame["failed"])
    return _standard(frame[frame["total"] > 0])


def _domain_point_counts(store: Store, start_ns: int, end_ns: int, window_seconds: int, counted: pd.DataFrame
                         ) -> pd.DataFrame:
    """Return the standard counts of the domain points of the windows that `counted` (the round counts) does not
    hold for their host: of the hosts that ever wrote a domain point without a round count in every window of the
    range (none in a fleet of current agents: no domain series is read), all of them when that is every host."""
    width = window_seconds * 10**9
    windows = len(range(start_ns - start_ns % width, end_ns, width))
    per_host = counted.groupby("host").size()
    complete = set(per_host[per_host >= windows].index)
    domain_hosts = set(store.tag_values("domain", "host")) - {""}
    missing = sorted(domain_hosts - complete)
    if not missing:
        return _standard(counted.iloc[:0])
    where = None if len(missing) == len(domain_hosts) else {"host": missing}
    wedged, states = (read() for read in _count_reads(store, "domain", COUNTED_FIELD, start_ns, end_ns,
                                                       window_seconds, WEDGED_DOMAIN, where))
    points = _counted(wedged, states, COUNTED_FIELD)
    have = set(zip(counted["host"], counted["time_ns"]))
    return points[[key not in have for key in zip(points["host"], points["time_ns"])]]


def _freshness(store: Store, slo: SLO, start_ns: int, end_ns: int, width: int) -> pd.DataFrame:
    """Count the intervals each host was expected (total) and those not missed (good).

    A host is expected in an interval when it wrote a collector point in that interval or in the
    FRESHNESS_MEMORY_SECONDS before it: a new host counts from its first point, a silent one counts as missing
    for a day and is then taken as decommissioned. A collection is MISSED when the gap between two of the
    host's consecutive points holds room for one: `round(gap / interval) - 1` misses, charged to the intervals
    where the missing collections were due (after the host's last point: each collection due at least half an
    interval before the range's end). So an agent whose period drifts by milliseconds, and which writes two
    points in one interval and none in the next when its phase crosses a boundary, misses nothing. The answer
    for an interval depends only on points in that day, never on where the range starts, so minute rollups add
    up to the raw count of any longer range. Every host at once, as arrays of hosts x intervals (no loop per host:
    at 2,000 hosts the loop took 1.6 s of a one-minute roll-up).
    """
    import numpy as np
    import pandas as pd

    step = slo.interval_seconds * 10**9
    memory = FRESHNESS_MEMORY_SECONDS * 10**9
    first = start_ns - start_ns % step
    # one interval past the end: whether a collection due just before the end was missed depends on the next point;
    # a few intervals before the start: there each reporting host's newest point before the range lies
    lookback = first - FRESHNESS_LOOKBACK_STEPS * step
    seen = store.query("collector", ["scrape_duration_ms"], lookback, end_ns + step, group_by=["host"])
    known = store.tag_values("collector", "host")
    seen_times = seen["time"].astype("int64").to_numpy()
    earlier = seen_times < first
    before = seen[earlier].assign(time=seen_times[earlier]).sort_values("time", kind="mergesort").drop_duplicates(
        "host", keep="last")
    # the others' newest point of the day before (hosts starting, returning or silent; none in a quiet fleet)
    silent = sorted(set(known) - set(before["host"]) - {""})
    if silent:
        older = store.latest("collector", ["scrape_duration_ms"], first - memory, lookback - 1,
                             where={"host": silent}, group_by=["host"])
        before = pd.concat([before[["time", "host"]], older.assign(time=older["time"].astype("int64"))[
            ["time", "host"]]], ignore_index=True)
    seen, seen_times = seen[~earlier], seen_times[~earlier]
    cells = np.arange(first, end_ns, step, dtype="int64")
    hosts = sorted(set(before["host"]) | set(seen["host"][seen_times < end_ns]))
    if not hosts or not len(cells):
        return _standard(pd.DataFrame(columns=list(COLUMNS)))
    index = {host: i for i, host in enumerate(hosts)}
    never = np.iinfo("int64").min
    prior = np.full(len(hosts), never, dtype="int64")  # each host's newest point before the range
    known = before["host"].map(index).to_numpy()
    prior[known.astype("int64")] = before["time"].astype("int64").to_numpy()
    kept = seen["host"].map(index).notna().to_numpy()  # hosts seen only after the end are not counted
    rows = seen["host"][kept].map(index).to_numpy().astype("int64")
    times = seen_times[kept]
    frames = []
    block = max(1, FRESHNESS_BLOCK_CELLS // len(cells))  # hosts x intervals stay bounded over long ranges
    for low in range(0, len(hosts), block):
        high = min(low + block, len(hosts))
        mine = (rows >= low) & (rows < high)
        frames.append(_fresh_windows(np.asarray(hosts[low:high], dtype=object), prior[low:high], rows[mine] - low,
                                     times[mine], cells, step, end_ns, width))
    return _standard(pd.concat(frames, ignore_index=True))


def _fresh_windows(hosts, prior, rows, times, cells, step: int, end_ns: int, width: int) -> pd.DataFrame:
    """Return good and total per host and window (see _freshness) of some hosts: their points before the range
    (`prior`, int64 minimum for none) and in it (`times` of host `rows`), every interval (`cells`) at once."""
    import numpy as np
    import pandas as pd

    never = np.iinfo("int64").min
    memory = FRESHNESS_MEMORY_SECONDS * 10**9
    first = int(cells[0])
    # expected: the newest cell at or before each cell in which the host was seen is at most a day old
    last = np.full((len(hosts), len(cells)), never, dtype="int64")
    inside = times < end_ns
    at = (times[inside] - first) // step
    last[rows[inside], at] = cells[at]
    prior_cell = np.where(prior == never, never, prior - prior % step)
    last = np.maximum.accumulate(np.maximum(last, prior_cell[:, None]), axis=1)
    expected = (last >= cells[None, :] - memory).astype("float64")
    missed = _missed_collections(rows, times, prior, step, first, end_ns + step, len(hosts), len(cells))
    good = np.clip(expected - missed, 0.0, None) * expected
    # sum the intervals of each window (cells are sorted, so each window's cells are contiguous)
    buckets = cells - cells % width
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    good_sums = np.add.reduceat(good, starts, axis=1)
    total_sums = np.add.reduceat(expected, starts, axis=1)
    host_at, window_at = np.nonzero(total_sums)
    return pd.DataFrame({"time_ns": buckets[starts][window_at], "host": hosts[host_at],
                         "good": good_sums[host_at, window_at], "total": total_sums[host_at, window_at]})


def _missed_collections(rows, times, prior, step: int, first: int, end_ns: int, hosts: int, cells: int):
    """Return, per host and interval of [first, end), how many collections were missed there (see _freshness):
    from the gaps between each host's consecutive points (`times` of host `rows`; `prior`, each host's point
    before the range or the int64 minimum) and after its last point."""
    import numpy as np

    never = np.iinfo("int64").min
    has_prior = prior != never
    host = np.concatenate([np.flatnonzero(has_prior), rows])
    when = np.concatenate([prior[has_prior], times])
    order = np.lexsort((when, host))
    host, when = host[order], when[order]
    missed = np.zeros((hosts, cells), dtype="float64")
    if not len(when):
        return missed
    same = host[1:] == host[:-1]
    # each gap between consecutive points of a host: the collections that fit in it, beyond the one that ended it
    gap_from, gap_host = when[:-1][same], host[:-1][same]
    gap_count = (np.diff(when)[same] + step // 2) // step - 1
    # after each host's last point: the collections due at least half a step before end_ns
    last = np.r_[~same, True]
    tail_from, tail_host = when[last], host[last]
    tail_count = (end_ns - step // 2 - tail_from) // step
    start = np.concatenate([gap_from, tail_from])
    owner = np.concatenate([gap_host, tail_host])
    count = np.concatenate([gap_count, tail_count])
    # collection k (1..count) after `start` is due at start + k*step; keep only those due in [first, first+cells*step)
    low = np.maximum(1, -((start - first) // step))  # smallest k with start + k*step >= first
    high = np.minimum(count, (first + cells * step - 1 - start) // step)
    span = np.maximum(high - low + 1, 0)
    if not span.sum():
        return missed
    which = np.repeat(np.arange(len(start)), span)
    k = low[which] + np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
    due = start[which] + k * step
    np.add.at(missed, (owner[which], (due - first) // step), 1.0)
    return missed


def _standard(frame: pd.DataFrame) -> pd.DataFrame:
    """Return time_ns, host, good, total sorted by host then time."""
    frame = frame[list(COLUMNS)].astype({"time_ns": "int64", "good": "float64", "total": "float64"})
    return frame.sort_values(["host", "time_ns"], kind="mergesort", ignore_index=True)
