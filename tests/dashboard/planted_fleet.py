"""A large planted fleet for the fleet table's paging, sorting and filtering: hundreds of hosts with known figures.

Host i of `fleet_hosts(n)` reports every minute for the last RECENT_MINUTES; every 50th host from index 7 is down,
from 13 hung, from 29 silent since SILENT_MINUTES ago (no data at the end, but seen in the range); the others are
up. Probe latency is 10 + i % 17 ms, but WORST_HOST's is WORST_LATENCY_MS. Each down host has one critical
daemon_down event. A few hostile names (spaces, commas, quotes, backslashes, unicode, markup) are hosts like any
other.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsdb import Point

MINUTE_NS = 60 * 10**9
RECENT_MINUTES = 15
SILENT_MINUTES = 20
WORST_HOST = "hv-0123"
WORST_LATENCY_MS = 4321.0
HOSTILE_HOSTS = ('kvm 7, "rack" \\row', "<script>alert('x')</script>", "hôte-ünïcødé ✓ 東京",
                 "a\\b,c=d e", "it's; DROP MEASUREMENT libvirtd; --")


@dataclass(frozen=True)
class PlantedHost:
    """What fleet_points planted for one host: its name, status at the end and probe latency."""

    name: str
    status: str
    probe_latency_ms: float | None


def fleet_hosts(count: int, hostile: bool = True) -> list[PlantedHost]:
    """Return `count` numbered hosts (and the hostile ones) with their planted status and probe latency."""
    hosts = []
    names = [f"hv-{i:04d}" for i in range(count)] + (list(HOSTILE_HOSTS) if hostile else [])
    for index, name in enumerate(names):
        status = {7: "down", 13: "hung", 29: "no data"}.get(index % 50, "up")
        latency = WORST_LATENCY_MS if name == WORST_HOST else 10.0 + index % 17
        hosts.append(PlantedHost(name, status, None if status == "down" else latency))
    return hosts


def fleet_points(hosts: list[PlantedHost], now_ns: int) -> list[Point]:
    """Return the libvirtd points and failure events of the planted hosts, ending at now_ns."""
    points = []
    for host in hosts:
        minutes = range(SILENT_MINUTES + RECENT_MINUTES, SILENT_MINUTES, -1) if host.status == "no data" \
            else range(RECENT_MINUTES, -1, -1)
        for minute in minutes:
            fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": host.probe_latency_ms,
                      "workers_max": 20, "workers_current": 5, "workers_free": 3, "job_queue_depth": 0}
            if host.status == "down":
                fields = {"up": 0, "hung": 0, "probe_ok": 0}
            elif host.status == "hung":
                fields.update(hung=1, probe_ok=0, workers_current=20, workers_free=0, job_queue_depth=7)
            points.append(Point("libvirtd", {"host": host.name}, fields, now_ns - minute * MINUTE_NS - 5 * 10**9))
        if host.status == "down":
            points.append(Point("event", {"host": host.name, "kind": "daemon_down", "severity": "critical"},
                                {"message": f"libvirtd on {host.name} is down", "count": 1},
                                now_ns - 10 * MINUTE_NS))
    return points


def plant_fleet(store, now_ns: int, count: int = 300, hostile: bool = True) -> list[PlantedHost]:
    """Write a planted fleet of `count` numbered hosts (and the hostile ones) into store; return its hosts."""
    hosts = fleet_hosts(count, hostile)
    store.write(fleet_points(hosts, now_ns))
    return hosts


# ---- a fleet in every kind of trouble, for worst first, the summary strip, leak signs and the heatmap ----

TRIAGE_HOURS = 5
HOSTILE_TRIAGE_HOST = 'tri "ok", <b>03</b> & ✓'
#: host -> what was planted on it; the healthy ones (and a hostile name) have nothing
TRIAGE_HOSTS = {
    "tri-down": "down", "tri-hung": "hung", "tri-paging": "a page firing", "tri-overspent": "budget overspent",
    "tri-restarts": "restarts (warning events)", "tri-leaking": "descriptors near their limit",
    "tri-ok-01": "", "tri-ok-02": "", HOSTILE_TRIAGE_HOST: "one keepalive timeout",
}
#: the triage order the page must show with no sort chosen: down, hung, a page, an overspent budget, failures of
#: any severity, then the rest by name
TRIAGE_ORDER = ["tri-down", "tri-hung", "tri-paging", "tri-overspent", "tri-restarts", HOSTILE_TRIAGE_HOST,
                "tri-leaking", "tri-ok-01", "tri-ok-02"]
LEAK_OPEN_FDS, LEAK_MAX_FDS = 7910, 8000
OVERSPENT_PERCENT = -33.9
#: warning and critical events per host (minutes before now, kind, severity); info events are recoveries
TRIAGE_EVENTS = {
    "tri-down": [(12, "daemon_down", "critical")],
    "tri-hung": [(25, "hang_start", "critical")],
    "tri-restarts": [(200, "restart", "warning"), (130, "restart", "warning"), (40, "restart", "warning"),
                     (35, "daemon_up", "info")],
    HOSTILE_TRIAGE_HOST: [(70, "keepalive_timeout", "warning")],
}


def triage_points(now_ns: int, slo_names: list[str]) -> list[Point]:
    """Return TRIAGE_HOURS of libvirtd points (every minute, with descriptors, RSS and start time), the events,
    and the alert engine's budget records (every host and the fleet, every SLO) of the triage fleet."""
    from alerts.records import BUDGET

    points = []
    started = now_ns // 10**9 - 86400
    minutes = TRIAGE_HOURS * 60
    for host in TRIAGE_HOSTS:
        for minute in range(minutes, -1, -1):
            fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": 14.0, "workers_max": 20,
                      "workers_current": 5, "workers_free": 4, "job_queue_depth": 0 if minute % 2 else 1,
                      "open_fds": 60, "max_fds": 1024, "rss_bytes": 50 * 2**20, "start_time_seconds": started}
            if host == "tri-leaking":  # rising steadily to 7,910 of 8,000 now
                fields.update(max_fds=LEAK_MAX_FDS, open_fds=round(LEAK_OPEN_FDS - minute * 4))
            if host == "tri-down" and minute <= 12:
                fields = {"up": 0, "hung": 0, "probe_ok": 0}
            if host == "tri-hung" and minute <= 25:
                fields.update(hung=1, probe_ok=0, probe_latency_ms=5000.0, workers_current=20, workers_free=0,
                              job_queue_depth=20)
            points.append(Point("libvirtd", {"host": host}, fields, now_ns - minute * MINUTE_NS - 5 * 10**9))
        for minutes_ago, kind, severity in TRIAGE_EVENTS.get(host, []):
            points.append(Point("event", {"host": host, "kind": kind, "severity": severity},
                                {"message": f"{kind} on {host}", "count": 1}, now_ns - minutes_ago * MINUTE_NS))
    for host in [*TRIAGE_HOSTS, ""]:
        for name in slo_names:
            left = OVERSPENT_PERCENT if host == "tri-overspent" and name == slo_names[-1] else 80.0
            points.append(Point(BUDGET, {"slo": name, **({"host": host} if host else {})},
                                {"good_total": 1000.0, "valid_total": 1000.0, "budget_remaining_percent": left},
                                now_ns - 30 * 10**9))
    return points


def triage_failures() -> dict[str, int]:
    """Return the failures (warning and critical events) planted per host."""
    return {host: sum(1 for _m, _k, severity in events if severity != "info")
            for host, events in TRIAGE_EVENTS.items()}


def plant_triage_alerts(state_dir, now) -> None:
    """Leave the engine's state with a page firing on tri-paging and a ticket firing on tri-overspent."""
    from alerts.paths import alert_state_path
    from alerts.state import AlertTracker

    tracker = AlertTracker(alert_state_path(state_dir), lambda: now)
    tracker.observe({"alertname": "LibvirtdProbesFailing", "host": "tri-paging", "severity": "page"},
                    {"summary": "probes fail on tri-paging"}, True)
    tracker.observe({"alertname": "SloBudgetBurn", "host": "tri-overspent", "severity": "ticket",
                     "slo": "libvirtd-latency"}, {"summary": "tri-overspent burns its budget"}, True)


def plant_triage(store, state_dir, now, slo_names: list[str]) -> None:
    """Write the triage fleet into store and its firing alerts into the engine's state in state_dir."""
    store.write(triage_points(int(now.timestamp()) * 10**9, slo_names))
    plant_triage_alerts(state_dir, now)
