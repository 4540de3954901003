"""The SLI rollups of a freshly written history, computed inside the embedded store: one GROUP BY per SLO.

`alerts.rollups.roll_up` rolls a backfill a day at a time through the query interface and writes a Point per
host and minute (1.9M for the demo's 24 hosts over 14 days: most of its 16-22 s). `roll_up_history` writes the
very same `sli` rollups (resolutions 1m and 1h, the same minutes and hours, the same values: tests prove it
against roll_up for every built-in SLI) from one SQL statement per SLO over the raw table (two for domain
stability: its domain points and its guests' failure events), counting as
alerts.sli.window_counts counts, and stores them as column batches. Collection freshness, whose misses depend
on the gaps between a host's points, and custom SLIs are counted by alerts.sli itself, over the whole range at
once (one query, not one a day).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from alerts.rollups import HOUR, HOUR_NS, LAG_SECONDS, MINUTE, MINUTE_NS, REROLL_SECONDS, Coverage, floor_to
from alerts.sli import (FLEET_ROLLUP_MEASUREMENT, PAUSED, PAUSED_STARTING_UP, ROLLUP_MEASUREMENT, ROLLUP_SECONDS,
                        window_counts)
from alerts.slo import SLO
from tsdb.embedded import EmbeddedStore
from tsdb.query import TimeLike, to_ns
from tsdb.schema import GUEST_FAILURE_KINDS

_MINUTE = f"(time_ns - time_ns % {MINUTE_NS})"


def roll_up_history(store: EmbeddedStore, slos: Sequence[SLO], now: TimeLike, backfill_seconds: int,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Coverage]:
    """Write every SLO's rollups as `roll_up(store, slo, now, NO_ROLLUPS, backfill_seconds=...)` does on a store
    without rollups; return each SLO's coverage by name. `progress(done, total)` counts SLOs."""
    now_ns = to_ns(now, "now")
    end = floor_to(now_ns - LAG_SECONDS * 10**9, MINUTE_NS)
    earliest = floor_to(end - backfill_seconds * 10**9, HOUR_NS)
    rerolled_until = max(end - REROLL_SECONDS * 10**9, earliest)  # alerts.rollups.due_ranges from no rollups
    hours_until = floor_to(rerolled_until, HOUR_NS)
    done: dict[str, Coverage] = {}
    if progress:
        progress(0, len(slos))
    for index, slo in enumerate(slos):
        minutes = minute_counts(store, slo, earliest, end) if earliest < end else _empty()
        _write(store, slo, MINUTE, minutes)
        hour_until = 0
        if hours_until > earliest:
            in_hours = minutes[minutes["time_ns"] < hours_until]
            hours = in_hours.assign(time_ns=in_hours["time_ns"] - in_hours["time_ns"] % HOUR_NS) \
                .groupby(["time_ns", "host"], as_index=False, sort=True)[["good", "total"]].sum()
            _write(store, slo, HOUR, hours)
            hour_until = hours_until
        done[slo.name] = Coverage(end if earliest < end else 0, hour_until, rerolled_until)
        if progress:
            progress(index + 1, len(slos))
    return done


def minute_counts(store: EmbeddedStore, slo: SLO, start_ns: int, end_ns: int) -> pd.DataFrame:
    """Return good and total per host per minute of [start, end) (time_ns, host, good, total), as
    alerts.sli.window_counts(store, slo, start, end, 60) does."""
    if slo.sli == "libvirtd_availability":
        found = _grouped(store, "libvirtd", ["probe_ok"], "{probe_ok} IS NOT NULL",
                         "avg({probe_ok})::DOUBLE AS mean, count({probe_ok})::DOUBLE AS total", start_ns, end_ns)
        if found is None:
            return _empty()
        total = found["total"].to_numpy(np.float64)
        return _standard(found.assign(good=(found["mean"].to_numpy(np.float64) * total).round(), total=total))
    if slo.sli == "libvirtd_latency":
        found = _grouped(store, "libvirtd", ["probe_ok", "probe_latency_ms"], "{probe_ok} IS NOT NULL",
                         "sum(CASE WHEN {probe_ok} = 1 AND {probe_latency_ms} < ? THEN 1 ELSE 0 END)::DOUBLE "
                         "AS good, count(*)::DOUBLE AS total", start_ns, end_ns, [float(slo.threshold_ms)])
        return _empty() if found is None else _standard(found)
    if slo.sli == "domain_stability":
        return _domain_stability(store, start_ns, end_ns)
    return _standard(window_counts(store, slo, start_ns, end_ns, ROLLUP_SECONDS))


def _domain_stability(store: EmbeddedStore, start_ns: int, end_ns: int) -> pd.DataFrame:
    """Domain stability per host and minute as alerts.sli counts it: the domain points with a state_code, good
    unless wedged (alerts.sli.WEDGED_DOMAIN: stats_partial = 1 and not paused starting up; a missing field fails
    its test), plus the guests' failure events (tsdb.schema.GUEST_FAILURE_KINDS), all bad."""
    points = _grouped(store, "domain", ["state_code", "state_reason_code", "stats_partial"],
                      "{state_code} IS NOT NULL",
                      "sum(CASE WHEN {stats_partial} = 1 AND ({state_code} <> ? OR {state_reason_code} <> ?) "
                      "THEN 0 ELSE 1 END)::DOUBLE AS good, count(*)::DOUBLE AS total", start_ns, end_ns,
                      [PAUSED, PAUSED_STARTING_UP])
    kinds = ", ".join("?" for _ in GUEST_FAILURE_KINDS)
    failures = _grouped(store, "event", ["count"], f"{{count}} IS NOT NULL AND {{tag_kind}} IN ({kinds})",
                        "count(*)::DOUBLE AS failed", start_ns, end_ns, tags=["kind"],
                        where_params=list(GUEST_FAILURE_KINDS))
    found = [frame for frame in (points, failures) if frame is not None and len(frame)]
    if not found:
        return _empty()
    frame = found[0] if len(found) == 1 else points.merge(failures, on=["time_ns", "host"], how="outer")
    frame = frame.reindex(columns=["time_ns", "host", "good", "total", "failed"]).fillna(
        {"good": 0.0, "total": 0.0, "failed": 0.0})
    return _standard(frame.assign(total=frame["total"] + frame["failed"]))


def _grouped(store: EmbeddedStore, measurement: str, fields: list[str], where: str, selects: str, start_ns: int,
             end_ns: int, params: list | None = None, tags: Sequence[str] = (),
             where_params: list | None = None) -> pd.DataFrame | None:
    """Run one GROUP BY minute, host over a measurement's table; None when it holds none of the fields.

    `where` and `selects` name fields as {field} and the `tags` as {tag_<tag>}: a field without a column reads as
    NULL, as the query interface reads unknown fields, and a tag without one as "". `params` are the values of
    the ? in `selects`, `where_params` those in `where`."""
    table = store.table_of(measurement)
    if table is None or not any(f in table.fields for f in fields):
        return None
    columns = {f: (table.fields[f][0] if f in table.fields else "NULL") for f in fields}
    columns.update({f"tag_{t}": (f"coalesce({table.tags[t]}, '')" if t in table.tags else "''") for t in tags})
    host = f"coalesce({table.tags['host']}, '')" if "host" in table.tags else "''"
    sql = (f"SELECT {_MINUTE} AS time_ns, {host} AS host, {selects.format(**columns)} FROM {table.name} "
           f"WHERE time_ns >= ? AND time_ns < ? AND {where.format(**columns)} GROUP BY 1, 2")
    return store.sql(sql, [*(params or []), start_ns, end_ns, *(where_params or [])]).to_pandas()


def _standard(frame: pd.DataFrame) -> pd.DataFrame:
    """Return time_ns, host, good, total as float counts, sorted by host then time."""
    frame = frame[["time_ns", "host", "good", "total"]].astype({"time_ns": "int64", "good": "float64",
                                                                 "total": "float64"})
    return frame.sort_values(["host", "time_ns"], kind="mergesort", ignore_index=True)


def _empty() -> pd.DataFrame:
    return _standard(pd.DataFrame({"time_ns": [], "host": [], "good": [], "total": []}))


def _write(store: EmbeddedStore, slo: SLO, resolution: str, counts: pd.DataFrame) -> None:
    """Store counts as `sli` rollups of one resolution (tsdb.schema: host, slo, resolution; good and valid totals),
    and their sums over the hosts as `sli_fleet` rollups, as alerts.rollups.roll_up does."""
    if len(counts) == 0:
        return
    store.write_columns(ROLLUP_MEASUREMENT, {
        "time_ns": counts["time_ns"].to_numpy(np.int64), "host": counts["host"].astype(object).to_numpy(),
        "slo": np.full(len(counts), slo.name, dtype=object),
        "resolution": np.full(len(counts), resolution, dtype=object),
        "good_total": counts["good"].to_numpy(np.float64), "valid_total": counts["total"].to_numpy(np.float64),
    }, ("host", "slo", "resolution"))
    fleet = counts.groupby("time_ns", as_index=False, sort=True)[["good", "total"]].sum()
    store.write_columns(FLEET_ROLLUP_MEASUREMENT, {
        "time_ns": fleet["time_ns"].to_numpy(np.int64), "slo": np.full(len(fleet), slo.name, dtype=object),
        "resolution": np.full(len(fleet), resolution, dtype=object),
        "good_total": fleet["good"].to_numpy(np.float64), "valid_total": fleet["total"].to_numpy(np.float64),
    }, ("slo", "resolution"))
