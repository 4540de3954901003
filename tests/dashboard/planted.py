"""Known data for the dashboard tests: five hosts in five states, guests, events, SLI rollups, alerts.

Everything is relative to `now_ns` (a whole minute), so the same data serves unit tests with a fixed clock and
browser tests against a server whose clock is the wall clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from planted_forensics import hang_cause, plant_forensics
from tsdb import Point

MINUTE_NS = 60 * 10**9
HISTORY_MINUTES = 120
HOSTILE_HOST = 'kvm "quoted", 05 ✓'
HOST_STATES = {"kvm-up-01": "up", "kvm-hung-02": "hung", "kvm-down-03": "down", "kvm-restart-04": "restarting",
               HOSTILE_HOST: "up"}
SLO_TOML = """\
[[slo]]
name = "libvirtd-availability"
description = "The libvirt daemon answers the agent's timed stats probe."
objective = 99.9
sli = "libvirtd_availability"

[[slo]]
name = "libvirtd-latency"
description = "Stats probes succeed within one second."
objective = 99.0
sli = "libvirtd_latency"
threshold_ms = 1000
"""

#: the alert's description as the engine now writes it: the cause sentence, then the figures, on their own lines
ALERT_DESCRIPTION = (f"{hang_cause(60)}\n"
                     "probes failing for 30 min; 7 calls queued, 0 free workers\n"
                     "runbook: https://runbooks.example/virtwatch/libvirtd-hung#when-every-worker-waits-on-one-guest-"
                     "whose-qemu-is-stopped")


@dataclass(frozen=True)
class PlantedEvent:
    """An event written by plant(): minutes before now, host, kind, severity, domain, message."""

    minutes_ago: int
    host: str
    kind: str
    severity: str
    domain: str
    message: str


EVENTS = (
    PlantedEvent(90, "kvm-up-01", "domain_crashed", "critical", 'db "primary"',
                 'guest db "primary" crashed: QEMU exited with signal 11'),
    PlantedEvent(45, "kvm-up-01", "domain_io_error", "warning", "web-1", "guest web-1: I/O error on vda, paused"),
    PlantedEvent(30, "kvm-hung-02", "hang_start", "critical", "", hang_cause(5)),
    PlantedEvent(20, "kvm-down-03", "daemon_down", "critical", "", "connection to libvirtd closed: Connection "
                 "reset by peer"),
    PlantedEvent(2, "kvm-restart-04", "restart", "warning", "", "libvirtd pid 4711 replaced by 4790"),
    PlantedEvent(100, HOSTILE_HOST, "log_keepalive", "warning", "", "keepalive timeout, client 12 closed"),
)


def _libvirtd(host: str, minute: int, time_ns: int) -> Point:
    """Return host's libvirtd point `minute` minutes before now in its planted story."""
    state = HOST_STATES[host]
    fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": 12.0 + minute % 5, "workers_min": 5,
              "workers_max": 20, "workers_current": 5, "workers_free": 3, "job_queue_depth": 0,
              "rss_bytes": (40 + (HISTORY_MINUTES - minute) // 10) * 2**20, "open_fds": 40, "max_fds": 1024,
              "restarts_total": 0}
    if state == "hung" and minute <= 30:
        fields.update(hung=1, probe_ok=0, probe_latency_ms=5000.0, workers_free=0, workers_current=20,
                      job_queue_depth=7)
    if state == "down" and minute <= 20:
        fields.update(up=0, probe_ok=0)
        for key in ("probe_latency_ms", "workers_min", "workers_max", "workers_current", "workers_free",
                    "job_queue_depth"):
            fields.pop(key)
    if state == "restarting" and minute <= 2:
        fields.update(restarts_total=1, rss_bytes=30 * 2**20)
    return Point("libvirtd", {"host": host}, fields, time_ns)


def to_ns(moment) -> int:
    """Return an aware datetime as nanoseconds since the epoch."""
    return int(moment.timestamp()) * 10**9


def plant(store, now_ns: int) -> None:
    """Write the planted fleet ending at now_ns: a point per host per minute for two hours, guests, events."""
    points: list[Point] = []
    for minute in range(HISTORY_MINUTES, -1, -1):
        time_ns = now_ns - minute * MINUTE_NS - 5 * 10**9  # each point 5 s before its minute mark
        for index, host in enumerate(HOST_STATES):
            points.append(_libvirtd(host, minute, time_ns))
            points.append(Point("host", {"host": host}, {"load1": 1.0 + index + (minute % 7) / 10, "load5": 1.0,
                                                          "load15": 0.8, "cpus": 16, "cpu_busy_percent": 20.0},
                                time_ns))
            points.append(Point("collector", {"host": host}, {"scrape_duration_ms": 30.0}, time_ns))
        for name, state_code, cpu_per_minute in (("web-1", 1, 60.0), ('db "primary"', 6 if minute <= 90 else 1, 30.0)):
            points.append(Point("domain", {"host": "kvm-up-01", "domain": name}, {
                "state_code": state_code, "stats_partial": 0, "vcpus": 2,
                "cpu_time_seconds_total": cpu_per_minute * (HISTORY_MINUTES - minute),
                "memory_current_bytes": 2 * 2**30, "block_read_bytes_total": 1024 * 60 * (HISTORY_MINUTES - minute),
                "block_write_bytes_total": 0, "net_rx_bytes_total": 0, "net_tx_bytes_total": 0,
                "block_errors_total": 3 if name == "web-1" and minute <= 45 else 0, "net_rx_errors_total": 0,
                "net_tx_errors_total": 0}, time_ns))
    for event in EVENTS:
        tags = {"host": event.host, "kind": event.kind, "severity": event.severity}
        if event.domain:
            tags["domain"] = event.domain
        points.append(Point("event", tags, {"message": event.message, "count": 1},
                            now_ns - event.minutes_ago * MINUTE_NS))
    points.append(Point("alert", {"host": "kvm-hung-02", "alertname": "LibvirtdHung", "severity": "page"},
                        {"status": "firing", "fingerprint": "00000000000000aa", "summary": "libvirtd on kvm-hung-02 "
                         "is hung", "description": ALERT_DESCRIPTION, "silenced": 0},
                        now_ns - 29 * MINUTE_NS))
    store.write(points)
    plant_forensics(store, now_ns, HOSTILE_HOST)


def roll_up_slis(store, slos, now_ns: int) -> None:
    """Write the planted range's SLI rollups, as the alert engine would."""
    from alerts.rollups import NO_ROLLUPS, roll_up

    for slo in slos:
        roll_up(store, slo, now_ns, NO_ROLLUPS, backfill_seconds=3 * 3600)


def plant_alert_state(state_dir: Path, now: dt.datetime) -> None:
    """Leave a firing LibvirtdHung alert in the alert engine's state file, as the engine would."""
    from alerts.paths import alert_state_path
    from alerts.state import AlertTracker

    tracker = AlertTracker(alert_state_path(state_dir), lambda: now)
    tracker.observe({"alertname": "LibvirtdHung", "host": "kvm-hung-02", "severity": "page"},
                    {"summary": "libvirtd on kvm-hung-02 is hung", "description": ALERT_DESCRIPTION},
                    True)
