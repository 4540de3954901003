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
