"""The agent loop: every interval, probe libvirtd, read the domains and the host, and write the points."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from collector.daemon_health import DaemonHealth
from collector.domain_metadata import MetadataTags
from collector.domain_stats import domain_fields
from collector.libvirt_source import CallFailed, CallTimedOut, DaemonUnreachable, LibvirtSource
from collector.procfs import HostLoad
from collector.spool import Spool
from tsdb import Point, PointError, Store, StoreRejected, StoreUnavailable
from tsdb.schema import EVENT_KINDS

log = logging.getLogger("virtwatch.agent")


@dataclass
class Agent:
    """Collects one host's points every interval and writes them to a store."""

    store: Store
    source: LibvirtSource
    host_name: str
    interval_seconds: float = 10.0
    host_load: HostLoad = field(default_factory=HostLoad)
    clock: Callable[[], float] = time.time
    daemon_state: str = "unknown"  # up, hung or down
    state_since: float = 0.0
    points_written_total: int = 0
    points_rejected_total: int = 0
    spool: Spool | None = None
    daemon_health: DaemonHealth | None = None
    #: most spooled segments replayed per interval, so a long backlog never delays a collection for long
    replay_segments_per_interval: int = 50
    metadata_tags: dict[str, str] = field(default_factory=dict)
    summary_every_seconds: float = 60.0
    #: called with each collection's points (the optional Prometheus endpoint's update)
    on_collection: Callable[[list[Point]], None] | None = None
    _last_calls: tuple[float, int] | None = None
    _summary: dict = field(default_factory=lambda: {"since": time.monotonic(), "collections": 0, "points": 0,
                                                     "failed": 0, "probe_ms": []})

    def __post_init__(self) -> None:
        self._restarted: str | None = None
        self._daemon_events: list = []
        self._lost: list[str] = []  # why points were lost since the last collection, reported as an event
        self._wedged: set[str] = set()
        self._metadata = MetadataTags(self.metadata_tags, self.source.domain_metadata)

    def _event(self, kind: str, message: str, now_ns: int, **fields) -> Point:
        tags = {"host": self.host_name, "kind": kind, "severity": EVENT_KINDS[kind].severity}
        return Point("event", tags, {"message": message, "count": 1, **fields}, now_ns)

    def _transition(self, state: str, reason: str, now: float, now_ns: int) -> list[Point]:
        """Return the events of moving the daemon to `state` (none when it stays where it is)."""
        previous, self.daemon_state = self.daemon_state, state
        if state == previous:
            return []
        lasted = now - self.state_since
        self.state_since = now
        level = logging.INFO if state == "up" else logging.ERROR
        if previous == "unknown":
            log.log(level, "libvirtd is %s: %s", state, reason)
        else:
            log.log(level, "libvirtd %s -> %s after %.1f s: %s", previous, state, lasted, reason)
        events = []
        if previous == "hung":
            events.append(self._event("hang_end", f"libvirtd answers again after {lasted:.1f} s hung", now_ns,
                                      duration_seconds=lasted))
        if previous == "down" and state == "up":
            events.append(self._event("daemon_up", f"libvirtd reachable again after {lasted:.1f} s down", now_ns,
                                      duration_seconds=lasted))
        if state == "hung":
            events.append(self._event("hang_start", f"libvirtd hung: {reason}", now_ns))
        if state == "down":
            events.append(self._event("daemon_down", f"libvirtd down: {reason}", now_ns))
        return events

    def _domain_stats(self) -> list[tuple[str, dict]]:
        """Return every domain's stats, asking twice at most. The probe has just answered, so a failure here
        is about guests, not the daemon: a timeout means a wedged guest (the call took its job, then blocked
        on its monitor; a new connection's NOWAIT call skips the domain whose job our stuck call holds), an
        error a guest that went away mid-call. Without an answer the interval has no domain points, and the
        next interval's probe says whether the daemon itself is in trouble."""
        for attempt in (1, 2):
            try:
                return self.source.domain_stats()
            except CallTimedOut as error:
                log.warning("bulk stats timed out while the probe answered, so a guest is wedged (%s)%s", error,
                            "; asking again on a new connection" if attempt == 1 else "")
            except CallFailed as error:
                log.warning("%s%s", error, "; asking again" if attempt == 1 else "")
        log.error("no domain stats this interval: the bulk call failed twice although the daemon answered")
        return []

    def _wedged_transition(self, domain: str, partial: int | None, now_ns: int) -> list[Point]:
        """Return a domain_wedged event when a domain's stats turn partial (its job lock is held)."""
        if partial == 1 and domain not in self._wedged:
            self._wedged.add(domain)
            log.warning("domain %r is wedged: its job lock is held, stats come back partial", domain)
            event = self._event("domain_wedged", f"domain {domain!r}: its job lock is held (a monitor call is "
                                "stuck); bulk stats skip its job-bound groups", now_ns)
            event.tags["domain"] = domain
            return [event]
        if partial == 0 and domain in self._wedged:
            self._wedged.discard(domain)
            log.info("domain %r answers again: full stats", domain)
        return []

    def _daemon_reading(self, daemon: dict):
        """Add the daemon's process and worker-pool figures to `daemon`; remember a restart."""
        if self.daemon_health is None:
            return None
        reading = self.daemon_health.read()
        daemon.update(reading.fields)
        if reading.restarted:
            self._restarted = reading.restarted
        self._daemon_events += reading.events
        return reading

    def _domain_events(self) -> list[Point]:
        """Return event points for the domain failures libvirt reported since the last collection."""
        points = []
        for event in self.source.take_events():
            log.warning("%s", event.message)
            tags = {"host": self.host_name, "kind": event.kind, "severity": EVENT_KINDS[event.kind].severity,
                    "domain": event.domain}
            points.append(Point("event", tags, {"message": event.message, "count": 1}, event.time_ns))
        return points

    def _closed_by_keepalive(self, close_reason: str | None, now_ns: int) -> list[Point]:
        """Return a keepalive_timeout event when libvirt closed the connection for missed keepalives."""
        if close_reason != "keepalive":
            return []
        interval, count = self.source.keepalive
        return [self._event("keepalive_timeout", f"libvirt closed the connection to {self.source.uri}: no "
                            f"keepalive answer for {interval * (count + 1)} s", now_ns)]

    def _read_libvirt(self, daemon: dict, host_fields: dict, close_reason: str | None, now: float,
                      now_ns: int) -> list[Point]:
        """Probe the daemon, read every domain and the counts; fill `daemon` and `host_fields`; return points."""
        points: list[Point] = []
        try:
            daemon["probe_latency_ms"] = self.source.probe_ms()
            daemon.update(up=1, probe_ok=1)
            points += self._transition("up", "probe answered", now, now_ns)
            domains = self._domain_stats()
            for name, record in domains:
                tags = {**self._metadata.tags(name), "host": self.host_name, "domain": name}
                fields = domain_fields(record)
                points.append(Point("domain", tags, fields, now_ns))
                points += self._wedged_transition(name, fields.get("stats_partial"), now_ns)
            self._metadata.forget_except({name for name, _ in domains})
            self._wedged &= {name for name, _ in domains}
            running, defined = self.source.domain_counts()
            host_fields.update(domains_running=running, domains_defined=defined)
        except CallFailed as error:  # the daemon answered, with an error: up, but the probe failed
            daemon.update(up=1)
            log.error("%s", error)
            points += self._transition("up", "the daemon answers, with errors", now, now_ns)
        except CallTimedOut as error:
            daemon.update(up=1, hung=1)
            hung = str(error)
            reading = self._daemon_reading(daemon)
            if reading is not None and reading.state == "T":
                hung += f"; the libvirtd process (pid {reading.fields.get('pid')}) is stopped (state T)"
            points += self._transition("hung", hung, now, now_ns)
        except DaemonUnreachable as error:
            points += self._transition("down", str(error) + (f" (connection closed: {close_reason})"
                                                             if close_reason else ""), now, now_ns)
        return points

    def _daemon_event_points(self) -> list[Point]:
        """Return event points for what the daemon's log and the kernel log showed this interval."""
        points = []
        for event in self._daemon_events:
            log.warning("%s", event.message)
            tags = {"host": self.host_name, "kind": event.kind, "severity": event.severity}
            if event.domain:
                tags["domain"] = event.domain
            points.append(Point("event", tags, {"message": event.message, "count": 1}, event.time_ns))
        self._daemon_events = []
        return points

    def _agent_fields(self, started: float) -> dict:
        """Return the collector measurement's fields: the agent's own health."""
        agent = {"scrape_duration_ms": (time.perf_counter() - started) * 1000.0,
                 "points_written_total": self.points_written_total,
                 "points_dropped_total": self.points_rejected_total}
        if self.spool is not None:
            agent.update(points_spooled_total=self.spool.spooled_total,
                         points_replayed_total=self.spool.replayed_total,
                         points_dropped_total=self.points_rejected_total + self.spool.dropped_total,
                         spool_bytes=self.spool.size_bytes)
        return agent

    def collect(self) -> list[Point]:
        """Return one interval's points: libvirtd health, domains, host load, daemon events, the agent itself."""
        started = time.perf_counter()
        now = self.clock()
        now_ns = int(now * 1e9)
        host = {"host": self.host_name}
        points: list[Point] = []
        daemon = {"up": 0, "hung": 0, "probe_ok": 0}
        host_fields = self.host_load.read()
        close_reason = self.source.take_close_reason()  # taken every time, so a close wakes the loop once
        points += self._closed_by_keepalive(close_reason, now_ns)
        if self._lost:
            points.append(self._event("points_dropped", "; ".join(self._lost), now_ns))
            self._lost = []
        points += self._domain_events()
        points += self._read_libvirt(daemon, host_fields, close_reason, now, now_ns)
        points += self._domain_events()  # events that arrived during this collection's calls
        if daemon["hung"] == 0:
            self._daemon_reading(daemon)
        if self._restarted:
            points.append(self._event("restart", f"libvirtd restarted: {self._restarted}", now_ns))
            self._restarted = None
        points += self._daemon_event_points()
        calls = self.source.calls_total
        if self._last_calls is not None and now > self._last_calls[0]:
            host_fields["libvirt_calls_per_second"] = (calls - self._last_calls[1]) / (now - self._last_calls[0])
        self._last_calls = (now, calls)
        points.append(Point("libvirtd", dict(host), daemon, now_ns))
        points.append(Point("host", dict(host), host_fields, now_ns))
        points.append(Point("collector", dict(host), self._agent_fields(started), now_ns))
        return points

    def collect_and_write(self) -> bool:
        """Collect once and ship: spooled points first, in order; False when this collection was spooled."""
        points = self.collect()
        if self.on_collection is not None:
            self.on_collection(points)
        written, ok = self.ship(points)
        self._summarize(points, written, ok)
        return ok

    def ship(self, points: list[Point]) -> tuple[int, bool]:
        """Write points after any spooled backlog; spool them when the store is unavailable."""
        try:
            if self.spool is not None and self.spool.pending_segments:
                replayed = self.spool.replay(self._write_or_reject, self.replay_segments_per_interval)
                if replayed:
                    log.info("replayed %d spooled points into %s (%d still spooled)", replayed,
                             self.store.display_url, self.spool.pending_points)
                if self.spool.pending_segments:  # keep the order: new points queue behind the backlog
                    raise StoreUnavailable("spooled points are still being replayed")
            return self._write_or_reject(points), True
        except StoreUnavailable as error:
            if self.spool is None:
                log.error("writing %d points to %s failed, and there is no spool: they are lost: %s",
                          len(points), self.store.display_url, error)
                self.points_rejected_total += len(points)
                self._lost.append(f"{len(points)} points lost: {self.store.display_url} unavailable, no spool")
                return 0, False
            dropped = self.spool.put(points)
            if dropped:
                self._lost.append(f"the spool was full ({self.spool.size_bytes} bytes held, limit reached): "
                                  f"{dropped} oldest points dropped while {self.store.display_url} was unavailable")
            log.warning("store unavailable, %d points spooled (%d spooled in all, %d bytes)%s: %s", len(points),
                        self.spool.pending_points, self.spool.size_bytes,
                        f"; spool full, {dropped} oldest points dropped" if dropped else "", error)
            return 0, False

    def _write_or_reject(self, points: list[Point]) -> int:
        """Write points; points the store refuses (4xx) or that cannot be stored are counted and logged, not kept."""
        try:
            written = self.store.write(points)
        except (StoreRejected, PointError) as error:
            self.points_rejected_total += len(points)
            log.error("the store refused %d points (not retried): %s", len(points), error)
            self._lost.append(f"the store refused {len(points)} points: {error}")
            return 0
        self.points_written_total += written
        return written

    def _summarize(self, points: list[Point], written: int, ok: bool) -> None:
        """Log one line a minute: collections, points written, failures, daemon state and probe latency."""
        summary = self._summary
        summary["collections"] += 1
        summary["points"] += written
        summary["failed"] += not ok
        summary["probe_ms"] += [p.fields["probe_latency_ms"] for p in points
                                if p.measurement == "libvirtd" and "probe_latency_ms" in p.fields]
        if time.monotonic() - summary["since"] < self.summary_every_seconds:
            return
        probes = sorted(summary["probe_ms"])
        probe = f"probe median {probes[len(probes) // 2]:.1f} ms" if probes else "no probe answered"
        log.info("last %.0f s: %d collections, %d points written, %d failed writes; libvirtd %s, %s",
                 time.monotonic() - summary["since"], summary["collections"], summary["points"], summary["failed"],
                 self.daemon_state, probe)
        summary.update(since=time.monotonic(), collections=0, points=0, failed=0, probe_ms=[])

    def run(self, stop: threading.Event) -> None:
        """Collect and write every interval until `stop` is set."""
        log.info("agent for host %r: %s every %g s into %s (SIGTERM or Ctrl-C stops)", self.host_name,
                 self.source.uri, self.interval_seconds, self.store.display_url)
        while not stop.is_set():
            began = time.monotonic()
            self.collect_and_write()
            deadline = began + self.interval_seconds
            while not stop.is_set() and time.monotonic() < deadline:
                if self.source.closed.is_set():  # libvirt closed the connection: report it now
                    break
                stop.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        log.info("agent stopping")
