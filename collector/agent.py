"""The agent's tick: every interval, ask each source for a reading, wait a bounded moment, write what came.

Each source runs on its own thread (Telegraf's shape): the libvirt monitor (probe, state, domains:
collector.libvirt_monitor), the daemon's process, admin API, log and kernel log (collector.daemon_health on a
collector.source_thread) and the shipper (collector.shipper), which alone touches the store and the spool. The
tick reads the host's load itself (/proc, microseconds), asks the others for a round, waits for them at most
`gather_seconds` (half the interval, or the probe deadline when shorter) and builds the interval's
`libvirtd`, `host` and `collector` points from whatever has arrived: a hung daemon, a stuck admin call or a
store that never answers delays none of the others, and every interval has its host point. A source still
busy from the last interval is an overrun, counted in the `collector` point.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from collector.daemon_health import DaemonHealth, DaemonReading
from collector.daemon_process import ProcessEvidence, ProcessGone, observe_daemon_process
from collector.daemon_state import HUNG
from collector.daemon_threads import read_threads
from collector.diagnosis import Diagnosis, Evidence, diagnose
from collector.event_points import bounded_message, event_point, one_line
from collector.forensics import CapturePolicy, ForensicsCapture, ForensicsWorker
from collector.guest_processes import GuestProcesses
from collector.libvirt_monitor import LibvirtMonitor
from collector.libvirt_source import LibvirtSource
from collector.procfs import HostLoad
from collector.shipper import Shipper
from collector.source_thread import SourceThread
from collector.spool import Spool
from tsdb import Point, Store

log = logging.getLogger("virtwatch.agent")

#: how long `collect()` called on its own (a test, `--once`) waits for a whole libvirt round, in probe deadlines
ONCE_WAIT_DEADLINES = 4.0
#: a restart this soon after a segfault is that crash's restart
RESTART_AFTER_CRASH_SECONDS = 300.0


@dataclass
class Agent:
    """Collects one host's points every interval and hands them to the shipper."""

    store: Store
    source: LibvirtSource
    host_name: str
    interval_seconds: float = 10.0
    host_load: HostLoad = field(default_factory=HostLoad)
    clock: Callable[[], float] = time.time
    spool: Spool | None = None
    daemon_health: DaemonHealth | None = None
    guests: GuestProcesses | None = None
    #: probes in a row that must answer within the deadline to end a hang
    hang_end_probes: int = 2
    #: most spooled segments replayed per shipping round, so a long backlog never holds new points for long
    replay_segments_per_interval: int = 50
    metadata_tags: dict[str, str] = field(default_factory=dict)
    summary_every_seconds: float = 60.0
    #: called with each collection's points (the optional Prometheus endpoint's update)
    on_collection: Callable[[list[Point]], None] | None = None
    #: captures the evidence bundle at a hang that lasted `forensics_after_hang_seconds`, a segfault, a restart
    forensics: ForensicsCapture | None = None
    forensics_after_hang_seconds: float = 10.0
    forensics_min_gap_seconds: float = 300.0

    def __post_init__(self) -> None:
        pidfile = self.daemon_health.pidfile if self.daemon_health is not None else None
        self._pidfile = pidfile
        # the latest evidence each source saw, for a diagnosis at any moment: (value, monotonic time)
        self._pool: tuple[dict, float] | None = None
        self._clients: tuple[list, float] | None = None
        self._job_holders: list = []
        self._last_segfault: tuple[float, str] | None = None  # (monotonic time, message) of the last segfault
        self._diagnosis_lock = threading.Lock()
        self._guest_states = GuestProcesses(self.guests.pid_dir if self.guests is not None else None,
                                            self.guests.proc_root if self.guests is not None else Path("/proc"))
        self.monitor = LibvirtMonitor(self.source, self.host_name, pidfile, self.guests, self.metadata_tags,
                                      self.hang_end_probes, diagnose=self.diagnose)
        self._policy = CapturePolicy(self.forensics_after_hang_seconds, self.forensics_min_gap_seconds)
        self._forensics = ForensicsWorker(self.forensics) if self.forensics is not None else None
        self.shipper = Shipper(self.store, self.spool, self.interval_seconds, self.replay_segments_per_interval)
        health = self.daemon_health
        self._health = SourceThread("daemon process", health.read_local) if health is not None else None
        self._admin = SourceThread("admin API", health.read_admin) if health is not None and health.has_admin else None
        self.gather_seconds = min(self.source.call_timeout_seconds + 0.25, self.interval_seconds / 2)
        self.collections_total = 0
        self._last_calls: tuple[float, int] | None = None
        self._summary = {"since": time.monotonic(), "collections": 0, "probe_ms": []}

    @property
    def daemon_state(self) -> str:
        """The daemon's state: unknown, up, hung or down."""
        return self.monitor.state.state

    # --- one interval ----------------------------------------------------------------------------------------

    def collect(self, wait_seconds: float | None = None) -> list[Point]:
        """Return one interval's points: libvirtd health, domains, host load, events, the agent itself.
        Waits at most `wait_seconds` (default `gather_seconds`) for the sources."""
        started = time.perf_counter()
        now = self.clock()
        now_ns = int(now * 1e9)
        self.monitor.request(now_ns)
        for source in self._daemon_sources():
            source.request()
        host_fields = self.host_load.read()
        until = time.monotonic() + (self.gather_seconds if wait_seconds is None else wait_seconds)
        self.monitor.wait_round(until - time.monotonic())
        readings = [r for source in self._daemon_sources() for r in source.take(until - time.monotonic())]
        points = self._lost_points(now_ns)
        points += self._domain_events()
        points += self.monitor.take_points()
        snapshot = self.monitor.snapshot()
        daemon = dict(snapshot.fields)
        for reading in readings:
            daemon.update(reading.fields)
            self._remember(reading)
        for reading in readings:
            points += self._reading_events(reading, now_ns)
        if snapshot.state == HUNG and self.monitor.state.since <= now:  # a hang that began during this tick
            points += self._hang_interval(snapshot.fields, now_ns)     # has its hang_start's diagnosis
        if self._forensics is not None:
            points += self._forensics.take_points()
        counts = self.monitor.counts
        if counts is not None and counts[2] == now_ns:
            host_fields.update(domains_running=counts[0], domains_defined=counts[1])
        calls = self.source.calls_total
        if self._last_calls is not None and now > self._last_calls[0]:
            host_fields["libvirt_calls_per_second"] = (calls - self._last_calls[1]) / (now - self._last_calls[0])
        self._last_calls = (now, calls)
        host = {"host": self.host_name}
        points.append(Point("libvirtd", dict(host), daemon, now_ns))
        points.append(Point("host", dict(host), host_fields, now_ns))
        points.append(Point("collector", dict(host), self._agent_fields(started), now_ns))
        self.collections_total += 1
        return points

    # --- diagnosis and forensics ------------------------------------------------------------------------------

    def _remember(self, reading: DaemonReading) -> None:
        """Keep a reading's evidence for later diagnoses: the pool, the clients, the job-lock holders."""
        now = time.monotonic()
        if "workers_free" in reading.fields:
            self._pool = (dict(reading.fields), now)
        if reading.clients is not None:
            self._clients = (reading.clients, now)
        if reading.job_holders is not None:
            self._job_holders = reading.job_holders

    def evidence(self, headline: str = "") -> Evidence:
        """Return what the agent knows about the daemon now (/proc read now; pool, clients, log as last seen)."""
        process = observe_daemon_process(self._pidfile) if self._pidfile is not None else ProcessEvidence()
        threads = None
        if process.running and process.pid is not None:
            try:
                threads = read_threads(process.pid, with_stack=False, with_syscall=False)
            except (ProcessGone, OSError):
                threads = None  # it exited meanwhile
        now = time.monotonic()
        pool, pool_at = self._pool if self._pool is not None else (None, now)
        clients = self._clients[0] if self._clients is not None else None
        names = self.monitor.running_guests or self._guest_states.names_from_pidfiles()
        return Evidence(process=process, threads=threads, pool=pool, pool_age_seconds=now - pool_at,
                        clients=clients, job_holders=list(self._job_holders),
                        stuck_guests=self._guest_states.stuck(names), headline=headline)

    def diagnose(self, trigger: str, hang_seconds: float = 0.0, headline: str = "") -> Diagnosis:
        """Return the diagnosis of `trigger` from the evidence now (any thread may ask)."""
        with self._diagnosis_lock:
            return diagnose(self.host_name, trigger, self.evidence(headline), hang_seconds)

    def _restart_headline(self, restarted: str) -> str:
        """What ended the old process, as far as the agent saw: a segfault just before, or nothing."""
        if self._last_segfault is not None and time.monotonic() - self._last_segfault[0] <= RESTART_AFTER_CRASH_SECONDS:
            return (f"{restarted}; the old process crashed {time.monotonic() - self._last_segfault[0]:.0f} s before: "
                    f"{self._last_segfault[1]}")
        return (f"{restarted}; no segfault of the old process in the kernel log: it exited or was killed (kill, "
                f"systemctl restart, OOM killer)")

    def _hang_interval(self, fields: dict, now_ns: int) -> list[Point]:
        """An interval of an ongoing hang: its diagnosis point, and the forensics once it has lasted long enough."""
        hang_seconds = fields.get("hang_seconds", 0.0)
        waited = fields.get("probe_outstanding_seconds", 0.0)
        headline = f"the probe has had no answer for {waited:.0f} s" if waited else ""
        diagnosis = self.diagnose("hang", hang_seconds, headline)
        self._capture("hang", self.monitor.state.hang_began, now_ns, diagnosis, hang_seconds)
        return [diagnosis.point(self.host_name, now_ns)]

    def _capture(self, trigger: str, incident: object, time_ns: int, diagnosis: Diagnosis | None,
                 hang_seconds: float = 0.0, kernel_line: str | None = None) -> None:
        """Ask for a forensics bundle when the policy says so (once per incident, rate-limited)."""
        if self._forensics is None:
            return
        if self._policy.decide(trigger, incident, time.monotonic(), hang_seconds) is not None:
            return
        known = {"pool": self._pool[0] if self._pool is not None else None,
                 "clients": [vars(group) for group in self._clients[0]] if self._clients is not None else None,
                 "job_holders": [{**vars(h), "description": h.describe()} for h in self._job_holders],
                 "threads_seen": self.daemon_health.threads_seen if self.daemon_health is not None else {},
                 "kernel_line": kernel_line}
        self._forensics.request(trigger, time_ns, diagnosis, known)

    def _daemon_sources(self) -> list[SourceThread]:
        return [source for source in (self._health, self._admin) if source is not None]

    def _lost_points(self, now_ns: int) -> list[Point]:
        lost = self.shipper.take_lost()
        return [event_point(self.host_name, "points_dropped", "; ".join(lost), now_ns)] if lost else []

    def _domain_events(self) -> list[Point]:
        """Return event points for the domain failures libvirt reported since the last collection."""
        points = []
        for event in self.source.take_events():
            log.warning("%s", one_line(bounded_message(event.message)))
            points.append(event_point(self.host_name, event.kind, event.message, event.time_ns, domain=event.domain))
        return points

    def _reading_events(self, reading: DaemonReading, now_ns: int) -> list[Point]:
        """Return the restart and the log and kernel-log events of one daemon reading."""
        points = []
        for index, event in enumerate(reading.events):
            message = event.message
            if event.kind == "segfault":
                self._last_segfault = (time.monotonic(), event.message)
                diagnosis = self.diagnose("segfault", headline=event.message)
                message = diagnosis.cause
                points.append(diagnosis.point(self.host_name, event.time_ns))
                self._capture("segfault", event.time_ns, event.time_ns, diagnosis,
                              kernel_line=reading.kernel_lines.get(index))
            log.warning("%s", message)
            points.append(event_point(self.host_name, event.kind, message, event.time_ns, domain=event.domain,
                                      severity=event.severity))
        if reading.restarted:
            diagnosis = self.diagnose("restart", headline=self._restart_headline(reading.restarted))
            log.warning("%s", diagnosis.cause)
            points += [event_point(self.host_name, "restart", diagnosis.cause, now_ns),
                       diagnosis.point(self.host_name, now_ns)]
            self._capture("restart", reading.restarted, now_ns, diagnosis)
        return points

    def _agent_fields(self, started: float) -> dict:
        """Return the collector measurement's fields: the agent's own health."""
        shipper = self.shipper
        agent = {"scrape_duration_ms": (time.perf_counter() - started) * 1000.0,
                 "points_written_total": shipper.points_written_total,
                 "points_dropped_total": shipper.points_rejected_total + shipper.points_lost_total,
                 "points_queued": shipper.queued_points,
                 "store_reachable": int(shipper.store_reachable),
                 "libvirt_overruns_total": self.monitor.overruns_total,
                 "stats_overruns_total": self.monitor.stats_overruns_total,
                 "daemon_overruns_total": sum(source.overruns_total for source in self._daemon_sources())}
        if self.spool is not None:
            agent.update(points_spooled_total=self.spool.spooled_total,
                         points_replayed_total=self.spool.replayed_total,
                         points_dropped_total=agent["points_dropped_total"] + self.spool.dropped_total,
                         spool_bytes=self.spool.size_bytes)
        return agent

    # --- shipping --------------------------------------------------------------------------------------------

    def collect_and_write(self) -> bool:
        """Collect once, waiting for a whole libvirt round, and ship in this thread (spooled backlog first);
        False when points were left in the spool."""
        points = self.collect(wait_seconds=self.source.call_timeout_seconds * ONCE_WAIT_DEADLINES)
        points += self.monitor.take_points()  # what the round produced after the snapshot
        if self.on_collection is not None:
            self.on_collection(points)
        _, ok = self.shipper.ship_now(points)
        self._summarize(points)
        return ok

    def ship(self, points: list[Point]) -> tuple[int, bool]:
        """Write points after any spooled backlog, in this thread; spool them when the store is unavailable."""
        return self.shipper.ship_now(points)

    def _summarize(self, points: list[Point]) -> None:
        """Log one line a minute: collections, points written and spooled, daemon state, probe latency."""
        summary = self._summary
        summary["collections"] += 1
        summary["probe_ms"] += [p.fields["probe_latency_ms"] for p in points
                                if p.measurement == "libvirtd" and p.fields.get("probe_ok") == 1]
        elapsed = time.monotonic() - summary["since"]
        if elapsed < self.summary_every_seconds:
            return
        probes = sorted(summary["probe_ms"])
        probe = f"probe median {probes[len(probes) // 2]:.1f} ms" if probes else "no probe answered in time"
        shipper = self.shipper
        store = "store reachable" if shipper.store_reachable else "STORE UNAVAILABLE"
        spooled = f", {self.spool.pending_points} points spooled" if self.spool is not None else ""
        log.info("last %.0f s: %d collections; %s, %d points written in all%s; libvirtd %s, %s; overruns: libvirt "
                 "%d, daemon %d", elapsed, summary["collections"], store, shipper.points_written_total, spooled,
                 self.daemon_state, probe, self.monitor.overruns_total,
                 sum(source.overruns_total for source in self._daemon_sources()))
        summary.update(since=time.monotonic(), collections=0, probe_ms=[])

    # --- running ---------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> bool:
        """Collect every interval until `stop` is set, then stop the sources and spool what is unwritten;
        return False when a write was still stuck in the store (do not wait for the store's close then)."""
        log.info("agent for host %r: %s every %g s into %s (SIGTERM or Ctrl-C stops)", self.host_name,
                 self.source.uri, self.interval_seconds, self.store.display_url)
        self.shipper.start()
        next_tick = time.monotonic()
        while not stop.is_set():
            points = self.collect()
            if self.on_collection is not None:
                self.on_collection(points)
            self.shipper.put(points)
            self._summarize(points)
            next_tick += self.interval_seconds
            late = time.monotonic() - next_tick
            if late > 0:  # this tick took longer than an interval: keep the grid, skip what passed
                next_tick += (late // self.interval_seconds + 1) * self.interval_seconds
            while not stop.is_set() and time.monotonic() < next_tick:
                stop.wait(min(0.05, max(0.0, next_tick - time.monotonic())))
                if self.monitor.has_points:  # a transition (hang, down) is shipped at once
                    self.shipper.put(self.monitor.take_points())
        log.info("agent stopping")
        return self.shutdown()

    def shutdown(self) -> bool:
        """Stop the sources without waiting for calls stuck in libvirt; spool what was not written; return False
        when a write is still stuck in the store."""
        self.monitor.stop()
        for source in self._daemon_sources():
            source.stop()
        if self._forensics is not None:
            self._forensics.stop()
            self.shipper.put(self._forensics.take_points())
        self.shipper.put(self.monitor.take_points())
        return self.shipper.stop(timeout=1.0)
