"""The dashboard's reads: every figure and table gets its data here, through tsdb's query interface only.

Names from the URL or the store (hosts, domains, kinds) are passed only as `where` values, never as syntax.
Each reader takes the store and a resolved TimeRange (dashboard.timerange) and returns plain frames or rows;
series are read in windows of `TimeRange.window_seconds`, so a long range reads as few points as a short one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashboard.live_frames import LiveFrames
from dashboard.timerange import TimeRange
from tsdb.schema import SEVERITIES

if TYPE_CHECKING:
    import pandas as pd

    from alerts.burn import Evaluation
    from alerts.slo import SLO
    from tsdb.store import Store

#: a host whose last libvirtd point is older than this at the range's end shows "no data" (the agent's
#: default interval is 10 s: six missed collections)
STALE_SECONDS = 60
#: the newest points are looked for in this last part of the range first
RECENT_SECONDS = 600
#: a domain not reported in this last part of the range is left out of the domains table (unless it failed)
DOMAINS_RECENT_SECONDS = 3600
#: a host whose daemon restarted this recently shows "restarting"
RESTARTING_SECONDS = 300
#: how far back "last failure" looks
LAST_FAILURE_LOOKBACK_SECONDS = 30 * 86400
#: the event severity that counts as a failure
FAILURE_SEVERITY = "critical"
#: the event severities the fleet counts as failures: every kind but the recoveries (tsdb.schema.EVENT_KINDS:
#: daemon_up and hang_end are "info"), so restarts, segfaults, guests failing and log signatures all count
FAILURE_SEVERITIES = tuple(severity for severity in SEVERITIES if severity != "info")
#: the domain fields of the domains table; counters become rates over RATE_SECONDS
DOMAIN_GAUGES = ("state_code", "stats_partial", "vcpus", "memory_current_bytes", "memory_rss_bytes",
                 "block_errors_total", "net_rx_errors_total", "net_tx_errors_total")
DOMAIN_COUNTERS = ("cpu_time_seconds_total", "block_read_bytes_total", "block_write_bytes_total",
                   "net_rx_bytes_total", "net_tx_bytes_total")
RATE_SECONDS = 300
#: the most events a table shows (the newest); the CSV export holds them all
EVENTS_SHOWN_MAX = 2000
#: SLO evaluations are kept this long per process: a 30-day budget barely moves in a minute
EVALUATION_CACHE_SECONDS = 60
_EVALUATION_CACHE_MAX = 64
HEALTH_MAX_FIELDS = ("probe_latency_ms", "job_queue_depth", "rss_bytes", "open_fds", "max_fds", "restarts_total",
                     "workers_current", "workers_max")
HEALTH_MIN_FIELDS = ("up", "probe_ok", "workers_free")
HEALTH_HUNG_FIELDS = ("hung",)
LOAD_FIELDS = ("load1", "load5", "load15", "cpu_busy_percent", "cpus")
ALERT_FIELDS = ("status", "fingerprint", "summary", "description", "silenced")
ALERT_TAGS = ("alertname", "severity", "host", "slo")


def _ns_frame_times(frame: pd.DataFrame) -> Any:
    """Return a frame's time column as int64 nanoseconds."""
    return frame["time"].astype("int64")


def _window_sum(store: Store, measurement: str, field: str, rng: TimeRange, where: dict, group_by: list[str],
                aggregate: str = "sum") -> pd.DataFrame:
    """Return the sum (or count) of `field` over the whole range per group (one or two epoch-aligned windows)."""
    frame = store.query(measurement, [field], rng.start_ns, rng.end_ns, where=where or None,
                        window_seconds=rng.span_seconds + 1, aggregate=aggregate, group_by=group_by)
    return frame.groupby(group_by, as_index=False)[field].sum() if len(frame) else frame.drop(columns="time")


# ---- fleet ----

def known_hosts(store: Store) -> list[str]:
    """Return every host that ever wrote a libvirtd, host or event point."""
    hosts: set[str] = set()
    for measurement in ("libvirtd", "host", "event"):
        hosts.update(store.tag_values(measurement, "host"))
    hosts.discard("")
    return sorted(hosts)


def host_status(row: Any, end_ns: int, restarted: bool) -> str:
    """Return a host's libvirtd status at the range's end: down, hung, restarting, up, or no data."""
    import pandas as pd

    if row is None or int(row["time"].value) < end_ns - STALE_SECONDS * 10**9:
        return "no data"
    if row["up"] == 0:
        return "down"
    if row["hung"] == 1:
        return "hung"
    if restarted:
        return "restarting"
    return "up" if not pd.isna(row["up"]) else "no data"


#: the libvirtd fields the fleet table reads
FLEET_FIELDS = ("up", "hung", "probe_latency_ms", "workers_max", "workers_current", "workers_free", "job_queue_depth")
#: the columns of the fleet frame (read_fleet), one row per host
FLEET_COLUMNS = ("host", "status", "probe_latency_ms", "workers_busy", "workers_max", "saturation_percent",
                 "job_queue_depth", "failures", "last_failure", "last_failure_kind", "last_seen")
#: a fleet frame is kept this long per process (paging, sorting and filtering re-read nothing meanwhile); shorter
#: than the shortest auto-refresh (30 s), so every refresh reads the store again
FLEET_CACHE_SECONDS = 10
_FLEET_CACHE_MAX = 16
#: the last failures older than the last hour are read once per this many seconds (the lookback's start is
#: exact to within it)
LAST_FAILURE_CACHE_SECONDS = 300
_fleet_cache_lock = threading.Lock()
_fleet_cache: OrderedDict[tuple, tuple[float, pd.DataFrame]] = OrderedDict()
#: a lock per fleet frame being read, so that callbacks asking for the same frame at once read the store once
_fleet_reading: dict[tuple, threading.Lock] = {}
_last_failure_cache: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
#: the newest fleet frame of each live (relative) range the pages watch, re-read in the background every
#: FLEET_CACHE_SECONDS (dashboard.live_frames; its thread starts on first use)
live_fleet_frames = LiveFrames(FLEET_CACHE_SECONDS, max_keys=_FLEET_CACHE_MAX)


def read_fleet(store: Store, rng: TimeRange) -> pd.DataFrame:
    """Return one row per host seen in the range (FLEET_COLUMNS, by host name): status at the range's end, probe
    latency, worker pool, failures in the range (events of FAILURE_SEVERITIES), the last failure and when the host
    was last seen.

    At most seven fleet-wide reads grouped by host, whatever the number of hosts, run side by side, and none over
    the whole range of libvirtd points but for the hosts silent at its end: the newest point of every host in
    the last RECENT_SECONDS; the hosts ever seen (the store's tag index); restarts, failures and last failures
    (two reads, see _last_failures) from the (few) events; then the newest point of the silent hosts over the
    range.
    """
    import numpy as np
    import pandas as pd

    end = rng.end_ns - 1
    recent_since = max(rng.start_ns, rng.end_ns - RECENT_SECONDS * 10**9)
    reads = concurrently({
        "latest": lambda: store.latest("libvirtd", list(FLEET_FIELDS), recent_since, end, group_by=["host"]),
        "known": lambda: store.tag_values("libvirtd", "host") if recent_since > rng.start_ns else [],
        "restarts": lambda: store.latest("event", ["count"], max(rng.start_ns, rng.end_ns - RESTARTING_SECONDS * 10**9),
                                         end, where={"kind": "restart"}, group_by=["host"]),
        "failures": lambda: _window_sum(store, "event", "count", rng, {"severity": list(FAILURE_SEVERITIES)},
                                        ["host"]),
        "last": lambda: _last_failures(store, rng.end_ns),
    })
    latest, failures, last = reads["latest"], reads["failures"], reads["last"]
    silent = sorted(set(reads["known"]) - set(latest["host"]) - {""})
    if silent:
        older = store.latest("libvirtd", list(FLEET_FIELDS), rng.start_ns, end, where={"host": silent},
                             group_by=["host"])
        if len(older):
            latest = pd.concat([latest, older], ignore_index=True) if len(latest) else older

    latest = latest.sort_values("time", kind="mergesort").drop_duplicates("host", keep="last")
    failure_counts = dict(zip(failures["host"], failures["count"])) if len(failures) else {}
    hosts = sorted(set(latest["host"]) | set(failure_counts))
    frame = pd.DataFrame({"host": pd.Series(hosts, dtype=object)}).merge(latest, on="host", how="left")
    for name in FLEET_FIELDS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    when = pd.to_datetime(frame["time"], utc=True)
    up = frame["up"]
    missing = when.isna() | (when < pd.Timestamp(rng.end_ns - STALE_SECONDS * 10**9, unit="ns", tz="UTC"))
    restarted = frame["host"].isin(set(reads["restarts"]["host"]))
    frame["status"] = np.select([missing.to_numpy(), (up == 0).to_numpy(), (frame["hung"] == 1).to_numpy(),
                                 restarted.to_numpy(), up.notna().to_numpy()],
                                ["no data", "down", "hung", "restarting", "up"], "no data").astype(object)
    busy = frame["workers_current"] - frame["workers_free"]
    frame["workers_busy"] = busy
    frame["saturation_percent"] = (100.0 * busy / frame["workers_max"]).where(frame["workers_max"] > 0)
    frame["failures"] = frame["host"].map(failure_counts).fillna(0).astype("int64")
    newest = last.sort_values("time", kind="mergesort").drop_duplicates("host", keep="last")
    failed_at = frame["host"].map(dict(zip(newest["host"], newest["time"])))
    frame["last_failure"] = _times_text(pd.to_datetime(failed_at, utc=True))
    frame["last_failure_kind"] = frame["host"].map(dict(zip(newest["host"], newest["kind"]))).astype(object).fillna("")
    frame["last_seen"] = _times_text(when)
    return frame[list(FLEET_COLUMNS)].reset_index(drop=True)


def _last_failures(store: Store, end_ns: int) -> pd.DataFrame:
    """Return the newest failure of each host and kind (columns time, host, kind, message) in the
    LAST_FAILURE_LOOKBACK_SECONDS before end_ns: what is older than the hour before the current
    LAST_FAILURE_CACHE_SECONDS bucket from a read kept that long (30 days of events cost more than everything
    else the fleet reads), the rest read now."""
    bucket = LAST_FAILURE_CACHE_SECONDS * 10**9
    split = end_ns // bucket * bucket - 3600 * 10**9
    where, group_by = {"severity": list(FAILURE_SEVERITIES)}, ["host", "kind"]
    return _older_kept_newer_read(
        _last_failure_cache, (store.display_url, split),
        lambda: store.latest("event", ["message"], end_ns - LAST_FAILURE_LOOKBACK_SECONDS * 10**9, split - 1,
                             where=where, group_by=group_by),
        lambda: store.latest("event", ["message"], split, end_ns - 1, where=where, group_by=group_by))


def _older_kept_newer_read(cache: OrderedDict, key: tuple, read_older: Callable[[], pd.DataFrame],
                           read_newer: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Return the rows of read_older (kept in `cache` under `key`, read only when missing) and of read_newer (read
    every time), read side by side when both are needed: a long range whose old part does not change between
    reads costs one read per key, not one per call."""
    import pandas as pd

    with _fleet_cache_lock:
        older = cache.get(key)
    reads = {"newer": read_newer} if older is not None else {"newer": read_newer, "older": read_older}
    found = concurrently(reads)
    newer = found["newer"]
    if older is None:
        older = found["older"]
        with _fleet_cache_lock:
            cache[key] = older
            while len(cache) > _FLEET_CACHE_MAX:
                cache.popitem(last=False)
    parts = [part for part in (older, newer) if len(part)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else newer)


def concurrently(reads: dict[str, Any]) -> dict[str, Any]:
    """Return {name: result} of the reads (functions of no argument) run side by side (tsdb.side_by_side); the
    first failure raises."""
    from tsdb.side_by_side import side_by_side

    return dict(zip(reads, side_by_side(*reads.values())))


def _times_text(times: pd.Series) -> pd.Series:
    """Return times as table text (UTC, to the second), "" where missing."""
    return times.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("").astype(object)


def fleet_rows(store: Store, rng: TimeRange) -> list[dict]:
    """Return read_fleet as one dict per host (None where a figure is missing)."""
    frame = read_fleet(store, rng)
    return [{key: (None if isinstance(value, float) and value != value else value) for key, value in row.items()}
            for row in frame.to_dict("records")]


def fleet_frame(store: Store, rng: TimeRange, slos: list[SLO] | tuple = (), state_dir: Any = None,
                clock: Any = None) -> pd.DataFrame:
    """Return read_fleet with what decides triage beside it: the error budget left of each SLO (columns budget_0,
    budget_1, ... in percent) and the lowest of them with its SLO's name (worst_budget_percent, worst_budget_slo),
    the leak signs at the range's end (read_leaks: LEAK_COLUMNS) and the alert engine's firing alerts naming each
    host in `state_dir` (firing_by_host: FIRING_COLUMNS). Kept FLEET_CACHE_SECONDS per process under the store's URL,
    the state dir and the range (to the same FLEET_CACHE_SECONDS), so that the pages, sort orders and filters of one
    fleet read the store once. Treat it as read-only.

    A live range (as timerange.resolve makes a relative one at `clock`'s now: see _live_range_name) is served by
    _live_fleet_frame instead, from a frame kept fresh in the background while the pages ask for it."""
    live = _live_range_name(rng, clock)
    if live is not None:
        return _live_fleet_frame(store, rng, live, slos, state_dir, clock)
    bucket = FLEET_CACHE_SECONDS * 10**9
    key = (store.display_url, rng.start_ns // bucket, rng.end_ns // bucket, tuple(slos), str(state_dir))

    def cached() -> pd.DataFrame | None:
        with _fleet_cache_lock:
            found = _fleet_cache.get(key)
            if found and time.monotonic() - found[0] < FLEET_CACHE_SECONDS:
                _fleet_cache.move_to_end(key)
                return found[1]
        return None

    frame = cached()
    if frame is not None:
        return frame
    with _fleet_cache_lock:
        reading = _fleet_reading.setdefault(key, threading.Lock())
    try:
        with reading:  # the page's table and summary strip ask at once: the second waits for the first one's read
            frame = cached()
            return frame if frame is not None else _read_fleet_frame(store, rng, slos, state_dir, clock, key)
    finally:
        with _fleet_cache_lock:
            _fleet_reading.pop(key, None)


def _live_range_name(rng: TimeRange, clock: Any) -> str | None:
    """Return the name of the relative range ("24h") that `rng` is, None for any other: a range is live when it is
    what timerange.resolve makes of that name (its label and length) and ends within FLEET_CACHE_SECONDS of the
    clock's now (so only a caller passing the page's clock gets one)."""
    from dashboard.timerange import RANGE_LABELS, RANGES

    if clock is None:
        return None
    name = next((name for name, label in RANGE_LABELS.items() if label == rng.label and name in RANGES), None)
    if name is None or rng.end_ns - rng.start_ns != RANGES[name] * 10**9:
        return None
    return name if abs(_clock_ns(clock) - rng.end_ns) <= FLEET_CACHE_SECONDS * 10**9 else None


def _clock_ns(clock: Any) -> int:
    """Return a dashboard clock's time (an aware datetime) in nanoseconds since the epoch (DashboardContext.now_ns)."""
    now = clock()
    return int(now.timestamp()) * 10**9 + now.microsecond * 1000


def _live_fleet_frame(store: Store, rng: TimeRange, name: str, slos: list[SLO] | tuple, state_dir: Any,
                      clock: Any) -> pd.DataFrame:
    """Return fleet_frame of a live range: the frame live_fleet_frames keeps under the range's name and length (not
    its ends), the store's URL, the SLOs and the state dir when it was read at most FLEET_CACHE_SECONDS + that
    read's own duration ago (monotonic seconds from the read's start, the moment its range ended: the frame is as
    of then), else read now over `rng` as fleet_frame reads (callbacks asking at once read once) and handed to
    the keeper. Every call marks the range watched, so the keeper re-reads it (resolved at `clock`'s now) every
    FLEET_CACHE_SECONDS for dashboard.live_frames.WATCHED_SECONDS after it."""
    from dashboard.timerange import RangeSpec, resolve

    keeper = live_fleet_frames
    key = ("live", store.display_url, name, rng.span_seconds, tuple(slos), str(state_dir))

    def read_now() -> pd.DataFrame:
        """Read the range's frame as of the clock's now (the keeper's background read)."""
        return _read_fleet_frame(store, resolve(RangeSpec(name), _clock_ns(clock)), slos, state_dir, clock, None)

    label = f"the fleet over the {rng.label} from {store.display_url}"
    frame = keeper.served(key, read_now, label)
    if frame is not None:
        return frame
    with _fleet_cache_lock:
        reading = _fleet_reading.setdefault(key, threading.Lock())
    try:
        with reading:  # the table and the summary strip ask at once: the second waits for the first one's read
            frame = keeper.served(key, read_now, label)
            if frame is not None:
                return frame
            started = keeper.now()
            frame = _read_fleet_frame(store, rng, slos, state_dir, clock, None)
            keeper.keep(key, frame, started, keeper.now())
            return frame
    finally:
        with _fleet_cache_lock:
            _fleet_reading.pop(key, None)


def _read_fleet_frame(store: Store, rng: TimeRange, slos: list[SLO] | tuple, state_dir: Any, clock: Any,
                      key: tuple | None) -> pd.DataFrame:
    """Read the fleet frame fleet_frame describes and keep it under `key` (not when None)."""
    reads = concurrently({"fleet": lambda: read_fleet(store, rng),
                           "budgets": lambda: budgets_by_host(store, list(slos), rng.end_ns) if slos else {},
                           "leaks": lambda: read_leaks(store, rng.end_ns)})
    frame, budgets = reads["fleet"], reads["budgets"]
    if slos and len(frame):
        for index, slo in enumerate(slos):
            remaining = frame["host"].map(budgets.get(slo.name, {}))
            frame[f"budget_{index}"] = (100.0 * remaining.astype("float64")).round(1)
    frame = _with_worst_budget(frame, slos)
    frame = frame.merge(reads["leaks"], on="host", how="left")
    frame["leak_sign"] = frame["leak_sign"].fillna("").astype(object)
    frame["leak_detail"] = frame["leak_detail"].fillna("").astype(object)
    for column in ("fd_leak", "rss_leak"):
        frame[column] = frame[column].fillna(False).astype(bool)
    firing = firing_by_host(state_dir, clock)
    for column in FIRING_COLUMNS[1:]:
        values = frame["host"].map({host: row[column] for host, row in firing.items()})
        frame[column] = (values.astype(object).fillna("") if column == "firing_names"
                         else values.fillna(0).astype("int64"))
    if key is not None:
        with _fleet_cache_lock:
            _fleet_cache[key] = (time.monotonic(), frame)
            while len(_fleet_cache) > _FLEET_CACHE_MAX:
                _fleet_cache.popitem(last=False)
    return frame


def _with_worst_budget(frame: pd.DataFrame, slos: list[SLO] | tuple) -> pd.DataFrame:
    """Return the fleet frame with the lowest budget left of any SLO (worst_budget_percent) and that SLO's name
    (worst_budget_slo, "" when no SLO has a budget for the host)."""
    import numpy as np

    columns = [f"budget_{index}" for index in range(len(slos)) if f"budget_{index}" in frame]
    if not columns or frame.empty:
        return frame.assign(worst_budget_percent=np.nan, worst_budget_slo="")
    values = frame[columns].to_numpy(dtype="float64")
    known = ~np.isnan(values)
    worst = np.where(known, values, np.inf).argmin(axis=1)
    rows = np.arange(len(frame))
    any_known = known.any(axis=1)
    names = np.array([slos[int(column.rsplit("_", 1)[1])].name for column in columns], dtype=object)
    return frame.assign(worst_budget_percent=np.where(any_known, values[rows, worst], np.nan),
                        worst_budget_slo=np.where(any_known, names[worst], ""))


#: the libvirtd fields the leak signs read over the last LeakPolicy.fd_fit_seconds (alerts.leaks: descriptors
#: against their limit, the daemon's newest start) and, before that, over the rest of the lookback (the RSS trend)
LEAK_RECENT_FIELDS = ("open_fds", "max_fds", "rss_bytes", "start_time_seconds")
LEAK_OLDER_FIELDS = ("rss_bytes",)
#: the leak signs fit means over windows this long (the descriptors' fit over LeakPolicy.fd_fit_seconds, an hour,
#: sees twelve of them; the RSS trend over hours dozens)
LEAK_WINDOW_SECONDS = 300
#: leak signs are kept this long per process: fits over hours barely move in a minute
LEAK_CACHE_SECONDS = 60
#: the windows of the RSS trend older than the descriptors' fit are read once per this many seconds (the
#: lookback's start is exact to within it): they are most of what the leak signs read
LEAK_OLDER_CACHE_SECONDS = 300
#: the columns of read_leaks, one row per host
LEAK_COLUMNS = ("host", "open_fds", "max_fds", "fd_share_percent", "fd_seconds_to_limit",
                "rss_growth_bytes_per_hour", "fd_leak", "rss_leak", "leak_sign", "leak_detail")
_leak_cache: OrderedDict[tuple, tuple[float, pd.DataFrame]] = OrderedDict()
_leak_older_cache: OrderedDict[tuple, pd.DataFrame] = OrderedDict()


def read_leaks(store: Store, end_ns: int, policy: Any = None) -> pd.DataFrame:
    """Return every host's descriptors against their limit and its leak signs at end_ns (LEAK_COLUMNS; leak_sign a
    short cell text such as "fds 99% of 8,000 · RSS +12 MiB/h", leak_detail alerts.leaks' sentences), from two
    fleet-wide reads of means per LEAK_WINDOW_SECONDS grouped by host (see _leak_windows), then alerts.leaks' math
    on each host's windows since its daemon's newest start (a window that began before it may hold the old
    process' points, as the engine's leak rule cuts them). Kept LEAK_CACHE_SECONDS per process."""
    import numpy as np
    import pandas as pd

    from alerts.leaks import START_TOLERANCE_SECONDS, LeakPolicy, fd_forecast, leak_signs, rss_trend

    policy = policy or LeakPolicy()
    key = (store.display_url, end_ns // (LEAK_CACHE_SECONDS * 10**9), policy)
    with _fleet_cache_lock:
        found = _leak_cache.get(key)
        if found and time.monotonic() - found[0] < LEAK_CACHE_SECONDS:
            return found[1]
    leaks = _engine_leaks(store, end_ns) if policy == LeakPolicy() else None
    if leaks is not None:
        with _fleet_cache_lock:
            _leak_cache[key] = (time.monotonic(), leaks)
        return leaks
    frame = _leak_windows(store, end_ns, policy)
    rows = []
    if len(frame):
        frame = frame.sort_values(["host", "time"], kind="mergesort", ignore_index=True)
        hosts = frame["host"].to_numpy()
        times = _ns_frame_times(frame).to_numpy()
        values = {name: pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")
                  for name in LEAK_RECENT_FIELDS}
        firsts = np.flatnonzero(np.r_[True, hosts[1:] != hosts[:-1]])
        for first, last in zip(firsts.tolist(), np.r_[firsts[1:], len(frame)].tolist()):
            starts = values["start_time_seconds"][first:last]
            started = starts[~np.isnan(starts)]
            begin = first
            if len(started):
                since_ns = int((started[-1] - START_TOLERANCE_SECONDS) * 10**9)
                begin = first + int(np.searchsorted(times[first:last], since_ns))
            when = times[begin:last].tolist()
            forecast = fd_forecast(when, values["open_fds"][begin:last].tolist(),
                                   values["max_fds"][begin:last].tolist(), policy)
            rss = rss_trend(when, values["rss_bytes"][begin:last].tolist(), policy)
            signs = leak_signs(forecast, rss, policy)
            rows.append((hosts[first],
                         forecast.open_fds if forecast else np.nan, forecast.max_fds if forecast else np.nan,
                         100.0 * forecast.share if forecast else np.nan,
                         forecast.seconds_to_limit if forecast and forecast.seconds_to_limit is not None else np.nan,
                         rss.slope_per_hour if rss else np.nan,
                         any(sign.resource == "fds" for sign in signs), any(sign.resource == "rss" for sign in signs),
                         " · ".join(sign.cell for sign in signs), "\n".join(sign.summary for sign in signs)))
    leaks = pd.DataFrame(rows, columns=list(LEAK_COLUMNS))
    with _fleet_cache_lock:
        _leak_cache[key] = (time.monotonic(), leaks)
        while len(_leak_cache) > _FLEET_CACHE_MAX:
            _leak_cache.popitem(last=False)
    return leaks


#: an engine leak record older than this before the asked time is stale: the engine's leak rule was not running
LEAK_RECORD_FRESH_SECONDS = 180


def _engine_leaks(store: Store, end_ns: int) -> pd.DataFrame | None:
    """Return the alert engine's newest leak records of every host at end_ns (LEAK_COLUMNS, one read of one row per
    host), or None when it wrote none in the LEAK_RECORD_FRESH_SECONDS before (its leak rule was not running: the
    dashboard fits the points itself). The engine's policy is its config's, so the figures are those it pages on."""
    import pandas as pd

    from alerts.leak_rule import LEAK_RECORD

    fields = [c for c in LEAK_COLUMNS if c != "host"]
    stored = {"fd_seconds_to_limit": "fd_limit_in_seconds", "rss_growth_bytes_per_hour": "rss_growth_per_hour_bytes"}
    found = store.latest(LEAK_RECORD, [stored.get(c, c) for c in fields],
                         end_ns - LEAK_RECORD_FRESH_SECONDS * 10**9, end_ns - 1, group_by=["host"])
    if not len(found):
        return None
    frame = found.rename(columns={v: k for k, v in stored.items()}).reindex(columns=["host", *fields])
    numbers = ["open_fds", "max_fds", "fd_share_percent", "fd_seconds_to_limit", "rss_growth_bytes_per_hour"]
    for name in numbers:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in ("fd_leak", "rss_leak"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0).astype(bool)
    for name in ("leak_sign", "leak_detail"):
        frame[name] = frame[name].fillna("").astype(object)
    return frame[list(LEAK_COLUMNS)].reset_index(drop=True)


def _leak_windows(store: Store, end_ns: int, policy: Any) -> pd.DataFrame:
    """Return the means per LEAK_WINDOW_SECONDS per host (columns time, host, LEAK_RECENT_FIELDS) over the policy's
    lookback before end_ns: LEAK_RECENT_FIELDS since a split about fd_fit_seconds back (read now), rss_bytes
    alone before it (the start of the newest process is in the recent windows but for a process older than the
    lookback), from a read kept LEAK_OLDER_CACHE_SECONDS per process; both side by side."""
    window_ns = LEAK_WINDOW_SECONDS * 10**9
    bucket = LEAK_OLDER_CACHE_SECONDS * 10**9
    split = (end_ns - int(policy.fd_fit_seconds * 10**9)) // bucket * bucket
    start = (end_ns - int(policy.lookback_seconds * 10**9)) // window_ns * window_ns
    return _older_kept_newer_read(
        _leak_older_cache, (store.display_url, split, policy),
        lambda: store.query("libvirtd", list(LEAK_OLDER_FIELDS), start, split, window_seconds=LEAK_WINDOW_SECONDS,
                            aggregate="mean", group_by=["host"]),
        lambda: store.query("libvirtd", list(LEAK_RECENT_FIELDS), split, end_ns, window_seconds=LEAK_WINDOW_SECONDS,
                            aggregate="mean", group_by=["host"]))


#: the columns firing_by_host gives per host
FIRING_COLUMNS = ("host", "alerts_firing", "pages_firing", "firing_names")
#: the severity label of a page: the engine's first tier (alerts.engine.TIERS; not imported, so that the dashboard
#: does not load the engine and its notifiers)
PAGE_SEVERITY = "page"


def firing_by_host(state_dir: Any, clock: Any = None) -> dict[str, dict]:
    """Return {host: {alerts_firing, pages_firing, firing_names}} of the alert engine's firing alerts
    (active_alerts) that name a host; pages are those of severity PAGE_SEVERITY."""
    from tsdb.times import utc_now

    found: dict[str, dict] = {}
    for alert in active_alerts(state_dir, clock or utc_now):
        if alert["state"] != "firing" or not alert["host"]:
            continue
        row = found.setdefault(alert["host"], {"alerts_firing": 0, "pages_firing": 0, "names": []})
        row["alerts_firing"] += 1
        row["pages_firing"] += alert["severity"] == PAGE_SEVERITY
        row["names"].append(alert["alertname"])
    return {host: {"alerts_firing": row["alerts_firing"], "pages_firing": row["pages_firing"],
                   "firing_names": ", ".join(sorted(set(row["names"])))} for host, row in found.items()}


def clear_caches(fleet_frames_only: bool = False) -> None:
    """Forget every cached fleet frame (the live ranges' kept ones too, and that they are watched), last failures
    and SLO evaluation of this process (only the fleet frames, as when FLEET_CACHE_SECONDS have passed, with
    fleet_frames_only)."""
    live_fleet_frames.clear()
    with _fleet_cache_lock:
        _fleet_cache.clear()
        if not fleet_frames_only:
            _last_failure_cache.clear()
            _leak_cache.clear()
            _leak_older_cache.clear()
    if not fleet_frames_only:
        with _cache_lock:
            _evaluation_cache.clear()


def _float(row: Any, key: str) -> float | None:
    """Return row[key] as a float, None when the row or value is missing."""
    import math

    if row is None:
        return None
    value = row[key]
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


# ---- SLOs ----

_cache_lock = threading.Lock()
_evaluation_cache: OrderedDict[tuple, tuple[float, dict]] = OrderedDict()


def slo_evaluations(store: Store, slos: list[SLO], at_ns: int, *, windows: bool = True
                    ) -> dict[str, dict[str | None, Evaluation]]:
    """Return {slo name: {host or None (the fleet): Evaluation}} at the minute `at_ns` falls in: the alert engine's
    records (alerts.records) when it was running then, else evaluated here through the `sli` rollups
    (alerts.burn.evaluate_slos); kept EVALUATION_CACHE_SECONDS per process."""
    from alerts.burn import evaluate_slos
    from alerts.records import read_evaluations
    from alerts.rollups import MINUTE_NS, coverage, floor_to

    at_ns = floor_to(at_ns, MINUTE_NS)
    key = (store.display_url, tuple(slos), at_ns, windows)
    with _cache_lock:
        found = _evaluation_cache.get(key)
        if found and time.monotonic() - found[0] < EVALUATION_CACHE_SECONDS:
            _evaluation_cache.move_to_end(key)
            return found[1]
    del windows  # records and live evaluations both hold every window
    evaluations = read_evaluations(store, slos, at_ns)
    if evaluations is None:
        evaluations = evaluate_slos(store, slos, at_ns, {slo.name: coverage(store, slo, at_ns) for slo in slos})
    with _cache_lock:
        _evaluation_cache[key] = (time.monotonic(), evaluations)
        while len(_evaluation_cache) > _EVALUATION_CACHE_MAX:
            _evaluation_cache.popitem(last=False)
    return evaluations


def budgets_by_host(store: Store, slos: list[SLO], at_ns: int) -> dict[str, dict[str, float | None]]:
    """Return {slo name: {host: budget remaining (1.0 = untouched, negative = overspent)}} at the minute `at_ns`
    falls in: from the alert engine's newest `slo_budget` records (alerts.records.read_budgets: one read for every
    SLO and host) when it was running then, else from the dashboard's own evaluation (slo_evaluations); kept
    EVALUATION_CACHE_SECONDS per process."""
    from alerts.records import read_budgets
    from alerts.rollups import MINUTE_NS, floor_to

    if not slos:
        return {}
    at_ns = floor_to(at_ns, MINUTE_NS)
    key = ("budgets", store.display_url, tuple(slos), at_ns)
    with _cache_lock:
        found = _evaluation_cache.get(key)
        if found and time.monotonic() - found[0] < EVALUATION_CACHE_SECONDS:
            _evaluation_cache.move_to_end(key)
            return found[1]
    budgets = read_budgets(store, slos, at_ns)
    if budgets is None:
        evaluations = slo_evaluations(store, slos, at_ns, windows=False)
        budgets = {name: {host: ev.budget_remaining for host, ev in by_host.items() if host is not None}
                   for name, by_host in evaluations.items()}
    with _cache_lock:
        _evaluation_cache[key] = (time.monotonic(), budgets)
        while len(_evaluation_cache) > _EVALUATION_CACHE_MAX:
            _evaluation_cache.popitem(last=False)
    return budgets


def sli_series(store: Store, slos: list[SLO], rng: TimeRange, host: str | None = None) -> pd.DataFrame:
    """Return good, valid, SLI and burn rate per window of the range per SLO (columns time, slo, good_total,
    valid_total, sli_percent, burn_rate) from the `sli` rollups, fleet-wide or for one host; the SLI and burn
    rate of each window are alerts.burn's figures of its counts (series_figures: sli_percent and burn_rate)."""
    import pandas as pd

    if not slos:
        return pd.DataFrame(columns=["time", "slo", "good_total", "valid_total", "sli_percent", "burn_rate"])
    resolution = rng.rollup_resolution
    # a range of half a day or more shows hourly SLI windows: whole hours then come from the hour rollups
    window = max(rng.window_seconds, 3600 if resolution == "1h" or rng.span_seconds >= 12 * 3600 else 60)
    where: dict[str, Any] = {"resolution": resolution, "slo": [slo.name for slo in slos]}
    from alerts.sli import FLEET_ROLLUP_MEASUREMENT

    frame = None
    if host is None:  # the fleet's own rollups: one series per SLO, not one per host (2000 at a large fleet)
        frame = _rollup_sums(store, where, rng.start_ns, rng.end_ns, window, FLEET_ROLLUP_MEASUREMENT)
    else:
        where["host"] = host
    if frame is None or frame.empty:  # no fleet rollups (written since the engine of issue 15): sum the hosts'
        frame = _rollup_sums(store, where, rng.start_ns, rng.end_ns, window)
    frame = frame[frame["valid_total"] > 0].copy()
    frame["sli_percent"], frame["burn_rate"] = _window_figures(frame, slos)
    return frame.reset_index(drop=True)


def _window_figures(frame: pd.DataFrame, slos: list[SLO]) -> tuple[Any, Any]:
    """Return the SLI (percent) and burn rate of each row's good and valid counts (columns slo, good_total,
    valid_total): alerts.burn.series_figures of each SLO's rows."""
    import numpy as np

    from alerts.burn import series_figures

    names = frame["slo"].to_numpy()
    goods, totals = frame["good_total"].to_numpy(dtype="float64"), frame["valid_total"].to_numpy(dtype="float64")
    slis, burns = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    for slo in slos:
        rows = names == slo.name
        if rows.any():
            slis[rows], burns[rows] = series_figures(goods[rows], totals[rows], slo.objective)
    return slis, burns


def _rollup_sums(store: Store, where: dict, start_ns: int, end_ns: int, window: int,
                 measurement: str = "sli") -> pd.DataFrame:
    """Return good and valid per SLO per window from the rollups of `where`'s resolution; a minute-resolution
    read in windows of whole hours takes the hours alerts.rollups.rollup_pieces gives from the hour rollups (a
    sixtieth of the rows, which InfluxDB scans many times faster) when they are at least two, the rest from the
    minute rollups."""
    import pandas as pd

    from alerts.rollups import MINUTE, rollup_pieces

    fields = ["good_total", "valid_total"]
    if where["resolution"] != MINUTE or window < 3600:
        return store.query(measurement, fields, start_ns, end_ns, where=where, window_seconds=window,
                           aggregate="sum", group_by=["slo"])
    parts = [store.query(measurement, fields, a, b, where={**where, "resolution": source}, window_seconds=window,
                         aggregate="sum", group_by=["slo"])
             for source, a, b in rollup_pieces(start_ns, end_ns, min_hours=2)]
    found = [part for part in parts if len(part)]
    if len(parts) == 1 or not found:
        return parts[-1]
    return pd.concat(found, ignore_index=True).groupby(["time", "slo"], as_index=False)[fields].sum()


# ---- one host ----

def host_health(store: Store, host: str, rng: TimeRange) -> pd.DataFrame:
    """Return the daemon's health per window: worst values (max latency, queue, RSS, fds; min free workers, up)."""
    where = {"host": host}
    window = rng.window_seconds
    worst = store.query("libvirtd", list(HEALTH_MAX_FIELDS), rng.start_ns, rng.end_ns, where=where,
                        window_seconds=window, aggregate="max")
    least = store.query("libvirtd", list(HEALTH_MIN_FIELDS), rng.start_ns, rng.end_ns, where=where,
                        window_seconds=window, aggregate="min")
    hung = store.query("libvirtd", list(HEALTH_HUNG_FIELDS), rng.start_ns, rng.end_ns, where=where,
                       window_seconds=window, aggregate="max")
    frame = worst.merge(least, on="time", how="outer").merge(hung, on="time", how="outer")
    frame = frame.sort_values("time", ignore_index=True)
    return frame.dropna(how="all", subset=[c for c in frame.columns if c != "time"]).reset_index(drop=True)


def host_load(store: Store, host: str, rng: TimeRange) -> pd.DataFrame:
    """Return the host's load averages and CPU use per window (means)."""
    frame = store.query("host", list(LOAD_FIELDS), rng.start_ns, rng.end_ns, where={"host": host},
                        window_seconds=rng.window_seconds, aggregate="mean")
    return frame.dropna(how="all", subset=list(LOAD_FIELDS)).reset_index(drop=True)


def events(store: Store, rng: TimeRange, *, hosts: list[str] | None = None, kinds: list[str] | None = None,
           severities: list[str] | None = None, domain: str | None = None) -> pd.DataFrame:
    """Return the events of the range matching every given filter (values are data), newest first."""
    where: dict[str, Any] = {}
    for tag, values in (("host", hosts), ("kind", kinds), ("severity", severities)):
        if values:
            where[tag] = list(values)
    if domain:
        where["domain"] = domain
    frame = store.events(rng.start_ns, rng.end_ns, where=where or None)
    return frame.iloc[::-1].reset_index(drop=True)


def event_rows(frame: pd.DataFrame, limit: int = EVENTS_SHOWN_MAX) -> list[dict]:
    """Return events as table rows (time as text, UTC), at most `limit` of them."""
    rows = []
    for row in frame.head(limit).itertuples(index=False):
        rows.append({"time": row.time.strftime("%Y-%m-%d %H:%M:%S"), "host": row.host, "kind": row.kind,
                     "severity": row.severity, "domain": row.domain,
                     "message": "" if not isinstance(row.message, str) else row.message})
    return rows


#: first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def defuse_cell(value: Any) -> Any:
    """Return a text cell a spreadsheet would run as a formula with a single quote before it; other values as is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) else value


def defused(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of frame for CSV export: every text cell of every column defused (see defuse_cell)."""
    import pandas as pd

    text = [name for name, column in frame.items()
            if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)]
    return frame.assign(**{name: frame[name].map(defuse_cell) for name in text})


def event_filter_options(store: Store) -> dict[str, list[str]]:
    """Return the values each event filter offers: kinds and hosts seen, and the severities."""
    return {"kind": store.tag_values("event", "kind"), "host": store.tag_values("event", "host"),
            "severity": list(SEVERITIES)}


@dataclass(frozen=True)
class DomainRow:
    """One guest in a host's domains table."""

    domain: str
    state: str
    cpu_percent: float | None
    vcpus: float | None
    memory_bytes: float | None
    read_bytes_per_second: float | None
    write_bytes_per_second: float | None
    net_bytes_per_second: float | None
    errors_total: float | None
    failures: int
    partial: bool


def host_domains(store: Store, host: str, rng: TimeRange) -> list[DomainRow]:
    """Return the host's guests at the range's end with rates over the last RATE_SECONDS and failures in range."""
    import pandas as pd

    from tsdb.schema import DOMAIN_STATES

    end = rng.end_ns - 1
    latest = store.latest("domain", list(DOMAIN_GAUGES), max(rng.start_ns, rng.end_ns - DOMAINS_RECENT_SECONDS * 10**9),
                          end, where={"host": host}, group_by=["domain"])
    since = max(rng.start_ns, rng.end_ns - RATE_SECONDS * 10**9)
    recent = store.query("domain", list(DOMAIN_COUNTERS), since, rng.end_ns, where={"host": host},
                         group_by=["domain"])
    rates: dict[str, dict[str, float | None]] = {}
    for name, rows in recent.groupby("domain"):
        rows = rows.dropna(subset=["cpu_time_seconds_total"]) if len(rows) > 1 else rows
        if len(rows) < 2:
            continue
        first, last = rows.iloc[0], rows.iloc[-1]
        seconds = (last["time"] - first["time"]).total_seconds()
        if seconds <= 0:
            continue
        rates[name] = {counter: (last[counter] - first[counter]) / seconds for counter in DOMAIN_COUNTERS}
    failed = events(store, rng, hosts=[host], severities=[FAILURE_SEVERITY, "warning"])
    failed = failed[failed["domain"] != ""]
    failure_counts = failed.groupby("domain").size().to_dict() if len(failed) else {}
    out = []
    names = sorted(set(latest["domain"]) | set(failure_counts))
    by_domain = {row["domain"]: row for _, row in latest.iterrows()}
    for name in names:
        row = by_domain.get(name)
        rate = rates.get(name, {})
        code = _float(row, "state_code")
        vcpus = _float(row, "vcpus")
        cpu = rate.get("cpu_time_seconds_total")
        errors = [v for v in (_float(row, f) for f in ("block_errors_total", "net_rx_errors_total",
                                                       "net_tx_errors_total")) if v is not None]
        net = [rate.get("net_rx_bytes_total"), rate.get("net_tx_bytes_total")]
        out.append(DomainRow(
            domain=name,
            state=DOMAIN_STATES.get(int(code), f"code {int(code)}") if code is not None else "unknown",
            cpu_percent=None if cpu is None or not vcpus else 100.0 * cpu / vcpus,
            vcpus=vcpus, memory_bytes=_float(row, "memory_current_bytes"),
            read_bytes_per_second=rate.get("block_read_bytes_total"),
            write_bytes_per_second=rate.get("block_write_bytes_total"),
            net_bytes_per_second=None if any(v is None or pd.isna(v) for v in net) else sum(net),
            errors_total=sum(errors) if errors else None,
            failures=int(failure_counts.get(name, 0)),
            partial=_float(row, "stats_partial") == 1.0,
        ))
    return out


# ---- alerts ----

def active_alerts(state_dir, clock) -> list[dict]:
    """Return the alert engine's pending and firing alerts (read only), firing first then newest."""
    from alerts.paths import alert_state_path
    from alerts.state import AlertTracker

    if state_dir is None:
        return []
    states = AlertTracker(alert_state_path(state_dir), clock).states()
    rows = []
    for fp, state in states.items():
        labels, notes = state.labels, state.annotations
        since = state.fired_at or state.active_since
        rows.append({"fingerprint": fp, "state": state.state, "alertname": labels.get("alertname", ""),
                     "severity": labels.get("severity", ""), "host": labels.get("host", ""),
                     "slo": labels.get("slo", ""), "since": since.strftime("%Y-%m-%d %H:%M:%S") if since else "",
                     "since_ns": int(since.timestamp()) * 10**9 + since.microsecond * 1000 if since else None,
                     "summary": notes.get("summary", ""), "description": notes.get("description", ""),
                     "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
                     "label_map": dict(labels)})
    firing = [r for r in rows if r["state"] == "firing"]
    pending = [r for r in rows if r["state"] != "firing"]
    firing.sort(key=lambda r: r["since"], reverse=True)
    pending.sort(key=lambda r: r["since"], reverse=True)
    return firing + pending


def alert_history(store: Store, rng: TimeRange) -> list[dict]:
    """Return the engine's firing and resolved notifications in the range (the `alert` points), newest first."""
    frame = store.query("alert", list(ALERT_FIELDS), rng.start_ns, rng.end_ns, group_by=list(ALERT_TAGS))
    frame = frame.sort_values("time", ascending=False, kind="mergesort")
    rows = []
    for row in frame.itertuples(index=False):
        rows.append({"time": row.time.strftime("%Y-%m-%d %H:%M:%S"), "time_ns": int(row.time.value),
                     "status": _text(row.status),
                     "alertname": row.alertname, "severity": row.severity, "host": row.host, "slo": row.slo,
                     "summary": _text(row.summary), "description": _text(row.description),
                     "silenced": "yes" if row.silenced == 1 else "", "fingerprint": _text(row.fingerprint)})
    return rows


def _text(value: Any) -> str:
    """Return a string field's value, "" when missing."""
    return value if isinstance(value, str) else ""
