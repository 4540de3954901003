"""The SLO page's own reads: which alerts of each SLO fire now, how much data each budget's period holds, and
the hosts ranked by how fast they burn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alerts.burn import Evaluation, WindowBurn
    from alerts.slo import SLO
    from tsdb.store import Store

#: the scope word of an alert without a host (the engine labels a fleet-wide SLO alert scope="fleet")
FLEET = "the fleet"
#: the alert severities in the order the page names them
SEVERITY_ORDER = ("page", "ticket")
#: at most this many hosts are named in a firing line; the rest are counted
NAMED_HOSTS_MAX = 8


@dataclass(frozen=True)
class Firing:
    """The alerts of one SLO and severity that fire now: the hosts (FLEET for a fleet-wide alert), sorted."""

    severity: str
    hosts: tuple[str, ...]

    def sentence(self) -> str:
        """Return the line the page shows: "2 tickets firing: hv-03, hv-07"."""
        count = len(self.hosts)
        named = ", ".join(self.hosts[:NAMED_HOSTS_MAX])
        more = f" and {count - NAMED_HOSTS_MAX} more" if count > NAMED_HOSTS_MAX else ""
        return f"{count} {self.severity}{'' if count == 1 else 's'} firing: {named}{more}"


def firing_by_slo(active_rows: list[dict]) -> dict[str, list[Firing]]:
    """Return {slo name: [Firing per severity, pages first]} of the alert engine's firing alerts (the rows of
    data.active_alerts, which the alerts page shows): every alert labelled with an SLO, per host or fleet-wide."""
    found: dict[str, dict[str, set[str]]] = {}
    for row in active_rows:
        labels = row.get("label_map") or {}
        slo = labels.get("slo")
        if row.get("state") != "firing" or not slo:
            continue
        host = labels.get("host") or FLEET
        found.setdefault(slo, {}).setdefault(labels.get("severity", ""), set()).add(host)
    order = {severity: index for index, severity in enumerate(SEVERITY_ORDER)}
    return {slo: [Firing(severity, tuple(sorted(hosts, key=lambda h: (h != FLEET, h))))
                  for severity, hosts in sorted(by_severity.items(),
                                                key=lambda item: (order.get(item[0], 99), item[0]))]
            for slo, by_severity in found.items()}


def data_since(store: Store, slos: list[SLO], at_ns: int) -> dict[str, int | None]:
    """Return {slo name: when its rollups begin within its period before at_ns (ns, the first hour or minute
    with a rollup), None without any}: from the fleet's rollups (alerts.sli.FLEET_ROLLUP_MEASUREMENT), one
    windowed count of the hour rollups for every SLO, and of the minute rollups of the last hours only for an
    SLO without hour rollups yet; never a per-host read."""
    from alerts.rollups import HOUR, HOUR_ROLLUPS_LAG_SECONDS, MINUTE
    from alerts.sli import FLEET_ROLLUP_MEASUREMENT

    if not slos:
        return {}
    longest = max(slo.period_seconds for slo in slos)
    hours = store.query(FLEET_ROLLUP_MEASUREMENT, ["valid_total"], at_ns - longest * 10**9, at_ns,
                        where={"slo": [slo.name for slo in slos], "resolution": HOUR}, window_seconds=3600,
                        aggregate="count", group_by=["slo"])
    found = _firsts(hours, slos, at_ns)
    young = [slo for slo in slos if found[slo.name] is None]
    if young:
        since = at_ns - (HOUR_ROLLUPS_LAG_SECONDS + 3600) * 10**9
        minutes = store.query(FLEET_ROLLUP_MEASUREMENT, ["valid_total"], since, at_ns,
                              where={"slo": [slo.name for slo in young], "resolution": MINUTE}, window_seconds=60,
                              aggregate="count", group_by=["slo"])
        found.update(_firsts(minutes, young, at_ns))
    return found


def _firsts(counts, slos: list[SLO], at_ns: int) -> dict[str, int | None]:
    """Return {slo name: the first window (ns) of counts with a rollup inside the SLO's period, None if none}."""
    found: dict[str, int | None] = {slo.name: None for slo in slos}
    if not len(counts):
        return found
    counts = counts[counts["valid_total"].fillna(0) > 0]
    for slo in slos:
        times = counts.loc[counts["slo"] == slo.name, "time"].astype("int64")
        times = times[times >= at_ns - slo.period_seconds * 10**9]
        found[slo.name] = int(times.min()) if len(times) else None
    return found


def coverage_words(slo: SLO, since_ns: int | None, at_ns: int) -> str:
    """Return how much of an SLO's period its budget covers: "30d SLO, 14 days of data (since 2024-05-01)"."""
    import datetime as dt

    if since_ns is None:
        return f"{slo.period} SLO, no data in its period"
    seconds = max(0, (at_ns - since_ns) // 10**9)
    if seconds >= slo.period_seconds - 3600:
        return f"{slo.period} SLO, data over the whole period"
    span = (f"{seconds // 86400} day{'' if seconds // 86400 == 1 else 's'}" if seconds >= 2 * 86400 else
            f"{seconds // 3600} hour{'' if seconds // 3600 == 1 else 's'}" if seconds >= 3600 else
            f"{seconds // 60} minutes")
    first = dt.datetime.fromtimestamp(since_ns / 1e9, tz=dt.timezone.utc)
    return f"{slo.period} SLO, {span} of data (since {first:%Y-%m-%d %H:%M} UTC)"


def fastest_window(evaluation: Evaluation) -> WindowBurn | None:
    """Return the evaluation's alert window with the shortest long window (1h in the SRE workbook's catalog)."""
    return min(evaluation.windows, key=lambda w: w.window.long_seconds, default=None)


def burning_most(evaluations: Mapping[str | None, Evaluation], limit: int) -> list[tuple[str, Evaluation]]:
    """Return up to `limit` (host, Evaluation) with events in their period, the fastest burn first: by the burn
    over the fastest window's long window, then over the longer windows in turn, then the least budget left."""
    def key(item: tuple[str, Evaluation]):
        """Return a host's place: its burns over the long windows, shortest first (negated), budget, name."""
        host, evaluation = item
        burns = sorted(evaluation.windows, key=lambda w: w.window.long_seconds)
        remaining = evaluation.budget_remaining
        return (*(-(w.long_burn or 0.0) for w in burns), remaining if remaining is not None else 2.0, host)

    hosts = [(host, ev) for host, ev in evaluations.items() if host is not None and ev.period.total > 0]
    return sorted(hosts, key=key)[:limit]
