"""Known hosts for the host page's triage: a host that hung (twice, with diagnoses) and went down, a host leaking
descriptors (a restart that ended one leak, and a new leak near the limit now), and a calm host whose guests
failed (one runs again, one stays shut off). Everything is relative to `now_ns` (a whole minute), three hours back.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsdb import Point

MINUTE_NS = 60 * 10**9
HISTORY_MINUTES = 180
HANG_HOST, LEAK_HOST, CALM_HOST = "kvm-hang-11", "kvm-leak-12", "kvm-calm-14"
HOSTS = (HANG_HOST, LEAK_HOST, CALM_HOST)
#: markup, quotes, a comma, a backslash and a non-ASCII letter in a guest's name: all of it must show as text
HOSTILE_GUEST = 'web "α", <script>window.pwned=1</script> \\ ✓'
FIRST_HANG_CAUSE = ("libvirtd on kvm-hang-11 hung {minutes} min: 20 of 20 workers busy, 7 calls queued; they wait on "
                    f"guest '{HOSTILE_GUEST}' whose QEMU is stopped (state T); 14 connections from memstat-poller "
                    "(pid 4242)")
SECOND_HANG_CAUSE = ("libvirtd on kvm-hang-11 hung {minutes} min: process in D state (threads_disk_wait 12) on "
                     "nfs_wait_bit_killable; storage pool 'images' on an NFS mount does not answer")


@dataclass(frozen=True)
class Stretch:
    """A planted interval: minutes ago it started and ended (0 and ongoing: still lasting at now)."""

    kind: str
    start_minutes_ago: int
    end_minutes_ago: int
    ongoing: bool


#: kvm-hang-11's story: a hang, an outage, and a hang still lasting
STRETCHES = (Stretch("hang", 100, 70, False), Stretch("down", 40, 30, False), Stretch("hang", 10, 0, True))
#: kvm-leak-12: descriptors climb until a restart frees them, then climb again to near the limit
MAX_FDS = 8000
LEAK_RESTART_MINUTES_AGO = 95
FDS_AT_RESTART, FDS_AFTER_RESTART, FDS_NOW = 6100, 60, 7310
#: kvm-calm-14's guests: (name, failed minutes ago, state code now): 1 running, 5 shut off
GUESTS = ((HOSTILE_GUEST, 60, 1), ("db-2", 30, 5), ("quiet-3", None, 1))


def diagnosis_minutes(stretch: Stretch) -> range:
    """Return the minutes ago of a hang's diagnoses, oldest first: its start, then each minute while it lasts."""
    last = 0 if stretch.ongoing else stretch.end_minutes_ago + 1
    return range(stretch.start_minutes_ago, last - 1, -1)


def cause(stretch: Stretch, minutes_ago: int) -> str:
    """Return the cause sentence of a hang's diagnosis written `minutes_ago`."""
    template = FIRST_HANG_CAUSE if stretch is STRETCHES[0] else SECOND_HANG_CAUSE
    return template.format(minutes=stretch.start_minutes_ago - minutes_ago)


def newest_cause(stretch: Stretch) -> str:
    """Return the cause of a hang's newest diagnosis (the agent writes one each minute of a hang)."""
    return cause(stretch, diagnosis_minutes(stretch)[-1])


def _within(minute: int, kind: str) -> bool:
    """Return whether kvm-hang-11 is in a stretch of `kind` at `minute` minutes ago."""
    return any(s.kind == kind and s.end_minutes_ago < minute <= s.start_minutes_ago
               or s.kind == kind and s.ongoing and minute <= s.start_minutes_ago for s in STRETCHES)


def _leak_fds(minute: int) -> int:
    """Return kvm-leak-12's open fds `minute` minutes ago: two straight climbs, a restart between them."""
    if minute >= LEAK_RESTART_MINUTES_AGO:
        span = HISTORY_MINUTES - LEAK_RESTART_MINUTES_AGO
        return 200 + (FDS_AT_RESTART - 200) * (HISTORY_MINUTES - minute) // span
    climb = LEAK_RESTART_MINUTES_AGO - 1
    return FDS_AFTER_RESTART + (FDS_NOW - FDS_AFTER_RESTART) * (climb - minute) // climb


def _libvirtd(host: str, minute: int, time_ns: int, now_ns: int) -> Point:
    """Return a host's libvirtd point `minute` minutes before now."""
    started = (now_ns // 10**9) - 86400
    fields = {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": 14.0 + minute % 4, "workers_max": 20,
              "workers_current": 5, "workers_free": 4, "job_queue_depth": 0, "rss_bytes": 48 * 2**20,
              "open_fds": 52, "max_fds": MAX_FDS, "restarts_total": 0, "start_time_seconds": float(started)}
    if host == HANG_HOST and _within(minute, "hang"):
        fields.update(hung=1, probe_ok=0, probe_latency_ms=5000.0, workers_free=0, workers_current=20,
                      job_queue_depth=7)
    if host == HANG_HOST and _within(minute, "down"):
        fields = {"up": 0, "hung": 0, "probe_ok": 0, "restarts_total": 0}
    if host == LEAK_HOST:
        restarted = minute < LEAK_RESTART_MINUTES_AGO  # the point at 95 min 5 s ago is the old process's
        fields.update(open_fds=_leak_fds(minute), restarts_total=1 if restarted else 0,
                      start_time_seconds=float(now_ns // 10**9 - LEAK_RESTART_MINUTES_AGO * 60) if restarted
                      else float(started))
    return Point("libvirtd", {"host": host}, fields, time_ns)


def _event(host: str, kind: str, severity: str, minutes_ago: int, now_ns: int, message: str,
           domain: str = "") -> Point:
    """Return an event point."""
    tags = {"host": host, "kind": kind, "severity": severity, **({"domain": domain} if domain else {})}
    return Point("event", tags, {"message": message, "count": 1}, now_ns - minutes_ago * MINUTE_NS)


def plant_triage(store, now_ns: int) -> None:
    """Write the three hosts' three hours ending at now_ns: a point per host per minute, events, diagnoses."""
    points: list[Point] = []
    for minute in range(HISTORY_MINUTES, -1, -1):
        time_ns = now_ns - minute * MINUTE_NS - 5 * 10**9
        for index, host in enumerate(HOSTS):
            points.append(_libvirtd(host, minute, time_ns, now_ns))
            points.append(Point("host", {"host": host}, {"load1": 2.0 + index + (minute % 5) / 10, "load5": 2.0,
                                                          "load15": 1.8, "cpus": 16, "cpu_busy_percent": 25.0},
                                time_ns))
        for name, failed_ago, state_now in GUESTS:
            state = state_now if failed_ago is None or minute <= failed_ago - 10 or minute > failed_ago else 5
            if name == "db-2" and minute <= 30:
                state = 5
            points.append(Point("domain", {"host": CALM_HOST, "domain": name},
                                {"state_code": state, "stats_partial": 0, "vcpus": 2,
                                 "cpu_time_seconds_total": 30.0 * (HISTORY_MINUTES - minute),
                                 "memory_current_bytes": 2**30}, time_ns))
    for stretch in STRETCHES:
        start, end = (("hang_start", "hang_end") if stretch.kind == "hang" else ("daemon_down", "daemon_up"))
        points.append(_event(HANG_HOST, start, "critical", stretch.start_minutes_ago, now_ns,
                             cause(stretch, stretch.start_minutes_ago) if stretch.kind == "hang"
                             else "connection to libvirtd closed"))
        if not stretch.ongoing:
            points.append(_event(HANG_HOST, end, "info", stretch.end_minutes_ago, now_ns, f"{stretch.kind} ended"))
        if stretch.kind == "hang":
            for minute in diagnosis_minutes(stretch):
                trigger = "hang_start" if minute == stretch.start_minutes_ago else "hang"
                points.append(Point("diagnosis", {"host": HANG_HOST, "trigger": trigger},
                                    {"cause": cause(stretch, minute),
                                     "hang_seconds": 60.0 * (stretch.start_minutes_ago - minute)},
                                    now_ns - minute * MINUTE_NS - 2 * 10**9))
    points.append(_event(LEAK_HOST, "restart", "warning", LEAK_RESTART_MINUTES_AGO, now_ns,
                         "libvirtd pid 4711 replaced by 4790: it held 6,100 file descriptors"))
    points.append(_event(CALM_HOST, "segfault", "critical", 150, now_ns, "libvirtd[88]: segfault at 0 in "
                         "libvirt.so.0"))
    for name, failed_ago, _state in GUESTS:
        if failed_ago is not None:
            points.append(_event(CALM_HOST, "domain_failed", "critical", failed_ago, now_ns,
                                 f"guest {name} stopped: its QEMU process died", domain=name))
    store.write(points)
