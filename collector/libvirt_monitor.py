"""The libvirt side of the agent on a thread of its own: probe, state, every domain, never part of a hang.

Each interval the agent's tick asks for a ROUND; a round that is still running when the next tick comes is an
overrun (counted, logged once a minute), never a second round. A round:

1. connects when there is no connection (one connect at a time; after failures, backoff, and a skipped
   attempt keeps the state);
2. begins the stats probe and waits for it up to the deadline. Past the deadline the daemon is hung (or down
   when its process is gone) and the round keeps waiting on the SAME call: no new connection, no second
   probe, and the hang's duration is measured from the moment the call was made;
3. only when the probe answered within the deadline: the bulk stats call with NOWAIT, leaving out the guests
   that cannot answer (QEMU stopped or in D state, monitor busy, job held last time: `collector.guest_processes`,
   virDomainGetControlInfo), then the domain counts. A bulk call past its deadline is left to finish on
   its own; the next round asks the control info of every guest to find the one whose monitor is stuck.

Transitions come from `collector.daemon_state`; what the round produces (domain points, events) waits in an
outbox the agent takes, and `snapshot()` gives the tick the daemon's figures at any moment without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from collector.daemon_process import ProcessEvidence, observe_daemon_process
from collector.daemon_state import DOWN, HUNG, UP, DaemonState, Transition
from collector.diagnosis import Diagnosis
from collector.domain_metadata import MetadataTags
from collector.domain_stats import domain_fields
from collector.event_points import event_point
from collector.guest_processes import GuestProcesses, StuckGuest
from collector.libvirt_source import (Call, CallFailed, ConnectionLost, DomainStats, LibvirtProblem, LibvirtSource,
                                      NobodyListening)
from tsdb import Point
from tsdb.wedged import DOMAIN_ROUND, round_fields

log = logging.getLogger("virtwatch.agent")

MAX_CONNECT_BACKOFF_SECONDS = 60.0
WAIT_SLICE_SECONDS = 0.1
STILL_HUNG_LOG_EVERY_SECONDS = 30.0
OVERRUN_LOG_EVERY_SECONDS = 60.0
RUNNING, PAUSED = 1, 3  # virDomainState


@dataclass(frozen=True)
class DaemonSnapshot:
    """The daemon's figures for one tick: the libvirtd point's fields, the state and why."""

    fields: dict
    state: str
    reason: str


class LibvirtMonitor:
    """Watches libvirtd through one LibvirtSource on its own thread."""

    def __init__(self, source: LibvirtSource, host_name: str, daemon_pidfile: Path | None = None,
                 guests: GuestProcesses | None = None, metadata_tags: dict[str, str] | None = None,
                 hang_end_probes: int = 2, proc_root: Path = Path("/proc"),
                 clock: Callable[[], float] = time.time,
                 diagnose: Callable[[str, float, str], Diagnosis | None] | None = None):
        self.source = source
        self.host_name = host_name
        self.deadline_seconds = source.call_timeout_seconds
        self.daemon_pidfile = daemon_pidfile
        self.proc_root = proc_root
        self.guests = guests or GuestProcesses(None)
        self.state = DaemonState(hang_end_probes)
        self.overruns_total = 0
        self.stats_overruns_total = 0
        self._clock = clock
        self._diagnose = diagnose  # (trigger, hang seconds, headline) -> the hang's diagnosis (collector.diagnosis)
        self._metadata = MetadataTags(metadata_tags or {}, source.domain_metadata)
        self._lock = threading.Lock()
        self._outbox: list[Point] = []
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._round_time_ns = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connect_failures = 0
        self._next_connect = 0.0
        self._tick_probe: tuple[str, float] | None = None  # ("ok" | "late" | "error" | "none", ms) this round
        self.counts: tuple[int, int, int] | None = None  # (running, defined, round time ns) of the last read
        self._wedged: dict[str, str] = {}  # guest -> why it is wedged (reported once)
        self._held: set[str] = set()  # guests left out until their control info says their monitor is free
        self._suspects: dict[str, float] = {}  # guest -> since when (monotonic) its job was seen held
        self._running: set[str] = set()  # running or paused guests of the last bulk call
        self._last_overrun_log = 0.0
        self._last_still_hung_log = 0.0

    # --- the thread ------------------------------------------------------------------------------------------

    def start(self) -> "LibvirtMonitor":
        """Start the monitor's thread (rounds run only when asked)."""
        self._thread = threading.Thread(target=self._loop, name="virtwatch-libvirt-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread without waiting for a call it may be stuck in."""
        self._stop.set()
        self._wake.set()

    def request(self, time_ns: int) -> bool:
        """Ask for a round stamped `time_ns`; return False (an overrun, counted) when one is still running."""
        if self._thread is None:
            self.start()
        with self._lock:
            if not self._idle.is_set():
                self.overruns_total += 1
                now = time.monotonic()
                if now - self._last_overrun_log >= OVERRUN_LOG_EVERY_SECONDS:
                    self._last_overrun_log = now
                    log.warning("libvirt source did not complete within its interval (%d overruns so far): %s",
                                self.overruns_total, self._waiting_on())
                return False
            self._idle.clear()
            self._round_time_ns = time_ns
            self._tick_probe = None
        self._wake.set()
        return True

    def wait_round(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the current round to end; return whether it has."""
        return self._idle.wait(max(0.0, timeout))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(WAIT_SLICE_SECONDS)
            if self._stop.is_set():
                return
            if self._wake.is_set():
                self._wake.clear()
                if not self._idle.is_set():
                    try:
                        self._round()
                    except Exception:  # noqa: BLE001 - a bug in one round must not end the monitoring
                        log.exception("libvirt round failed")
                    finally:
                        self._idle.set()
                    continue
            if self.source.closed.is_set() and self._idle.is_set():
                self._on_closed_between_rounds()

    # --- rounds ----------------------------------------------------------------------------------------------

    def _round(self, reconnect: bool = True) -> None:
        if not self.source.connected and not self._connect():
            return
        probe = self.source.probe()
        settled = self._settle(probe, "the stats probe")
        if settled is None or not probe.done:
            return
        try:
            latency_ms = probe.result()
        except LibvirtProblem as problem:
            if not self._problem(problem, probe) and reconnect:
                self._round(reconnect=False)  # the connection closed under a live daemon: ask again at once
            return
        on_time = latency_ms / 1000.0 <= self.deadline_seconds
        self._tick_probe = ("ok" if on_time else "late", latency_ms)
        self._emit_transitions(self.state.answered(self._clock(), latency_ms / 1000.0, self.deadline_seconds))
        if on_time and not self._stop.is_set():
            self._read_domains()

    def _settle(self, call: Call, what: str) -> bool | None:
        """Wait for `call` up to the deadline, then (past it) report the daemon not answering and keep waiting
        on the same call until it ends or the agent stops; return None when stopped, else whether it ended
        within the deadline."""
        if call.wait(self.deadline_seconds - call.seconds()):
            return True
        process = self._process()
        self._tick_probe = ("none", call.seconds() * 1000.0)
        self._not_answering(self._wall(call.started), f"{what} has had no answer for {call.seconds():.1f} s "
                                                      f"(deadline {self.deadline_seconds:g} s)", process)
        last_process_check = self._last_still_hung_log = time.monotonic()
        while not call.wait(WAIT_SLICE_SECONDS):
            if self._stop.is_set():
                return None
            now = time.monotonic()
            if now - last_process_check >= 1.0:
                last_process_check = now
                process = self._process()
                self._check_stuck_guests()
                if process.running is False:
                    self._emit_transitions(self.state.absent(self._clock(), f"{what} had no answer for "
                                                             f"{call.seconds():.1f} s; {process.describe()}"))
                if self.state.state == HUNG and now - self._last_still_hung_log >= STILL_HUNG_LOG_EVERY_SECONDS:
                    self._last_still_hung_log = now
                    log.error("libvirtd still hung after %.0f s: %s has waited %.0f s; %s",
                              self.state.hang_seconds(self._clock()), what, call.seconds(),
                              process.describe() or "no process figures")
        return False

    def _connect(self) -> bool:
        """Open the connection; return whether the round can go on to the probe."""
        wait = self._next_connect - self.source.clock()
        if wait > 0:
            log.debug("next connection attempt to %s in %.0f s", self.source.uri, wait)
            return False  # a skipped attempt observes nothing: the state stays
        call = self.source.connect()
        if self._settle(call, f"connecting to {self.source.uri}") is None:
            return False
        try:
            call.result()
        except LibvirtProblem as problem:
            self._connect_failures += 1
            delay = 0.0 if self._connect_failures == 1 else min(MAX_CONNECT_BACKOFF_SECONDS,
                                                                 2.0 ** (self._connect_failures - 2))
            self._next_connect = self.source.clock() + delay
            self._problem(problem, call)
            return False
        self._connect_failures, self._next_connect = 0, 0.0
        return call.seconds() <= self.deadline_seconds  # a connect that took long: probe at the next round

    def _problem(self, problem: LibvirtProblem, call: Call) -> bool:
        """Turn a call's problem into evidence about the daemon; False when it says nothing yet (the connection
        closed under a daemon whose process lives: connect again to know)."""
        now = self._clock()
        if isinstance(problem, NobodyListening):
            self._emit_transitions(self.state.absent(now, f"{problem} (nobody listens)"))
            return True
        if isinstance(problem, CallFailed):
            self._tick_probe = ("error", call.seconds() * 1000.0)
            log.error("%s", problem)
            if call.kind != "connect":
                self._emit_transitions(self.state.answered_with_error(now, str(problem)))
            return True
        assert isinstance(problem, ConnectionLost)
        self.source.take_close_reason()
        return self._connection_lost(problem.reason, str(problem), call)

    def _connection_lost(self, reason: str | None, message: str, call: Call | None) -> bool:
        """The connection closed: a keepalive timeout means a live peer that does not answer; EOF with the
        process gone means down; EOF with a live process says nothing yet: return False (connect again)."""
        now = self._clock()
        process = self._process()
        if reason == "keepalive":
            interval, count = self.source.keepalive
            self._emit_points([event_point(self.host_name, "keepalive_timeout",
                                           f"libvirt closed the connection to {self.source.uri}: no keepalive "
                                           f"answer for {interval * (count + 1)} s", int(now * 1e9))])
            waiting_since = self._wall(call.started) if call is not None else now
            self._not_answering(waiting_since, f"no keepalive answer for {interval * (count + 1)} s", process)
            return True
        if process.running is False:
            self._emit_transitions(self.state.absent(now, f"the connection closed ({reason or message}) and "
                                                          f"{process.describe()}"))
            return True
        log.warning("the connection to %s closed (%s) while the daemon process lives: connecting again",
                    self.source.uri, reason or message)
        self._next_connect = 0.0
        return False

    def _on_closed_between_rounds(self) -> None:
        """libvirt closed the connection while no round ran: tell at once (a killed daemon is down now)."""
        reason = self.source.take_close_reason()
        with self._lock:
            if not self._idle.is_set():
                return
            self._idle.clear()
        try:
            if not self._connection_lost(reason, f"closed: {reason}", None):
                self._round(reconnect=False)
        except Exception:  # noqa: BLE001 - a bug here must not end the monitoring
            log.exception("handling the closed connection failed")
        finally:
            self._idle.set()

    # --- domains ---------------------------------------------------------------------------------------------

    def _read_domains(self) -> None:
        """Read every domain (leaving out those that cannot answer) and the domain counts."""
        busy = self.source.outstanding("stats")
        if busy is not None:
            self.stats_overruns_total += 1
            self._find_busy_monitors(busy)
            return
        stuck = self._check_stuck_guests()
        leave_out = {name: guest.describe() for name, guest in stuck.items()}
        for name in self._held:
            leave_out.setdefault(name, self._wedged.get(name, "its job was held by another call"))
        call = self.source.domain_stats(frozenset(leave_out), self._metadata.tags if self._metadata.enabled else None)
        if not call.wait(self.deadline_seconds - call.seconds()):
            self.stats_overruns_total += 1
            log.warning("bulk stats call has waited %.1f s (deadline %g s) while the probe answered: a guest's "
                        "monitor does not answer; no domain points until it returns", call.seconds(),
                        self.deadline_seconds)
            return
        try:
            stats: DomainStats = call.result()
        except LibvirtProblem as problem:
            log.warning("no domain points this interval: %s", problem)
            if isinstance(problem, ConnectionLost):
                self._problem(problem, call)
            return
        self._domain_points(stats, stuck, leave_out)
        counts = self.source.domain_counts()
        if counts.wait(self.deadline_seconds - counts.seconds()):
            try:
                self.counts = (*counts.result(), self._round_time_ns)
            except LibvirtProblem as problem:
                log.debug("domain counts: %s", problem)

    def _domain_points(self, stats: DomainStats, stuck: dict[str, StuckGuest], leave_out: dict[str, str]) -> None:
        """Turn a bulk call's records into domain points; tell which guests are wedged and which answer again.

        A guest whose QEMU process cannot run is wedged at once (/proc says so). A guest whose job another call
        holds (NOWAIT came back partial) is only SUSPECT: its job may be held for a moment (libvirtd takes every
        guest's job when it reconnects after a restart). It is left out of the bulk call and its control info,
        which needs no job, decides: free again (`ok`), or wedged once its monitor has been busy with one command
        for the probe deadline (or, without control info, once it has stayed suspect that long)."""
        time_ns = self._round_time_ns
        now = time.monotonic()
        points: list[Point] = []
        running: set[str] = set()
        wedged: dict[str, str] = {}
        suspects: dict[str, float] = {}
        for name, record in stats.records:
            fields = domain_fields(record)
            if record.get("state.state") in (RUNNING, PAUSED):
                running.add(name)
            if fields.get("stats_partial") == 1:
                suspects[name] = self._suspects.get(name, now)
            tags = {**stats.tags.get(name, {}), "host": self.host_name, "domain": name}
            points.append(Point("domain", tags, fields, time_ns))
        for name, record in stats.left_out:
            if record.get("state.state") not in (RUNNING, PAUSED):
                continue  # stopped meanwhile: nothing is stuck any more
            running.add(name)
            control = stats.control.get(name)
            busy_for = control[1] if control is not None and control[0] in ("occupied", "job") else None
            if name in stuck:
                wedged[name] = stuck[name].describe()
            elif control is not None and control[0] == "ok":
                continue  # its monitor is free again: asked in full at the next round
            elif busy_for is not None and busy_for >= self.deadline_seconds:
                wedged[name] = f"its monitor has been busy with one command for {busy_for:.1f} s"
            elif busy_for is None and name in self._wedged:
                wedged[name] = self._wedged[name]
            else:
                since = self._suspects.get(name, now)
                if busy_for is None and now - since >= self.deadline_seconds:
                    wedged[name] = (f"its job has been held by another call for at least {now - since:.0f} s (bulk "
                                    f"stats with NOWAIT came back partial)")
                else:
                    suspects[name] = since
            fields = {**domain_fields(record), "stats_partial": 1}
            tags = {**self._metadata.cached(name), "host": self.host_name, "domain": name}
            points.append(Point("domain", tags, fields, time_ns))
        # the round's own count, stamped like its points: domain stability reads one series per host (tsdb.wedged)
        points.append(Point(DOMAIN_ROUND, {"host": self.host_name}, round_fields([p.fields for p in points]),
                            time_ns))
        self._emit_points(points)
        for name, why in wedged.items():
            self._mark_wedged(name, why)
        for name in set(self._wedged) - set(wedged):
            log.info("domain %r answers again: full stats", name)
            del self._wedged[name]
        self._suspects = suspects
        self._held = {name for name in wedged if name not in stuck} | set(suspects)
        self._running = running
        self._metadata.forget_except({name for name, _ in stats.records} | {name for name, _ in stats.left_out})

    def _check_stuck_guests(self) -> dict[str, StuckGuest]:
        """Read which running guests' QEMU processes are stopped or in D state (/proc only); mark them wedged."""
        stuck = self.guests.stuck(self._running)
        for name, guest in stuck.items():
            self._mark_wedged(name, guest.describe())
        return stuck

    def _mark_wedged(self, name: str, why: str) -> None:
        """Remember a wedged guest; the first time, log it and report a domain_wedged event."""
        if name in self._wedged:
            return
        self._wedged[name] = why
        log.warning("domain %r is wedged: %s", name, why)
        self._emit_points([event_point(self.host_name, "domain_wedged", f"domain {name!r} is wedged: {why}",
                                       self._round_time_ns, domain=name)])

    def _find_busy_monitors(self, busy: Call) -> None:
        """The last bulk call is still waiting: ask every guest's control info (no job needed) and leave out
        those whose monitor has been busy past the deadline."""
        names = sorted(self._running - set(self._wedged))
        if not names:
            return
        call = self.source.control_info(names)
        if not call.wait(self.deadline_seconds - call.seconds()):
            return
        try:
            control = call.result()
        except LibvirtProblem:
            return
        for name, info in control.items():
            if info is not None and info[0] in ("occupied", "job") and info[1] >= self.deadline_seconds:
                self._held.add(name)
                self._mark_wedged(name, f"its monitor has been busy with one command for {info[1]:.1f} s (the "
                                        f"agent's bulk stats call has waited {busy.seconds():.0f} s)")

    def _stuck_words(self) -> str:
        """'; ' and the guests whose QEMU cannot run, in words ('' when none)."""
        stuck = self._check_stuck_guests()
        if not stuck:
            return ""
        return "; guests whose QEMU cannot run: " + ", ".join(f"{name!r} ({guest.describe()[4:]})"
                                                                for name, guest in sorted(stuck.items()))

    # --- what the tick reads ---------------------------------------------------------------------------------

    def snapshot(self) -> DaemonSnapshot:
        """Return the libvirtd point's libvirt fields now, without waiting for anything."""
        state = self.state.state
        now = self._clock()
        fields: dict = {"up": int(state in (UP, HUNG)), "hung": int(state == HUNG)}
        probe = self._tick_probe
        waiting = self.source.outstanding("probe") or self.source.outstanding("connect")
        fields["probe_outstanding_seconds"] = round(waiting.seconds(), 3) if waiting is not None else 0.0
        fields["hang_seconds"] = round(self.state.hang_seconds(now), 3)
        if probe is not None and probe[0] == "ok":
            fields.update(probe_ok=1, probe_latency_ms=probe[1])
        elif probe is not None or state in (DOWN, HUNG):
            fields["probe_ok"] = 0  # no answer in time this interval; a probe within its deadline counts as neither
            if probe is not None and probe[0] == "late":
                fields["probe_latency_ms"] = probe[1]
        return DaemonSnapshot(fields, state, self.state.reason)

    def take_points(self) -> list[Point]:
        """Return and forget the domain points and events produced since the last call."""
        with self._lock:
            points, self._outbox = self._outbox, []
        return points

    @property
    def running_guests(self) -> frozenset[str]:
        """The running or paused guests of the last bulk call."""
        return frozenset(self._running)

    @property
    def has_points(self) -> bool:
        """Whether points wait in the outbox (an event to ship at once)."""
        return bool(self._outbox)

    # --- helpers ---------------------------------------------------------------------------------------------

    def _process(self) -> ProcessEvidence:
        return observe_daemon_process(self.daemon_pidfile, self.proc_root)

    def _not_answering(self, waiting_since: float, headline: str, process: ProcessEvidence) -> None:
        """A call has waited past its deadline: the hang's transitions; a hang that starts carries its diagnosis
        (the event's message is its cause sentence, and a `diagnosis` point goes with it)."""
        now = self._clock()
        diagnosis = None
        if self.state.state != HUNG and process.running is not False and self._diagnose is not None:
            diagnosis = self._diagnose("hang_start", now - waiting_since, headline)
        reason = diagnosis.reasons if diagnosis is not None else headline + self._stuck_words()
        self._emit_transitions(self.state.not_answering(now, waiting_since, reason, process), diagnosis)

    def _wall(self, monotonic_time: float) -> float:
        """Convert a monotonic time of a Call into the clock's time."""
        return self._clock() - (time.monotonic() - monotonic_time)

    def _waiting_on(self) -> str:
        calls = self.source.outstanding_calls()
        if not calls:
            return "no call outstanding"
        return ", ".join(f"{c.what} waiting {c.seconds():.1f} s" for c in calls)

    def _emit_transitions(self, transitions: list[Transition], diagnosis: Diagnosis | None = None) -> None:
        now_ns = int(self._clock() * 1e9)
        points = []
        for t in transitions:
            if t.kind == "hang_start" and diagnosis is not None:
                points += [event_point(self.host_name, t.kind, diagnosis.cause, now_ns, **t.fields),
                           diagnosis.point(self.host_name, now_ns)]
            else:
                points.append(event_point(self.host_name, t.kind, t.message, now_ns, **t.fields))
        self._emit_points(points)

    def _emit_points(self, points: list[Point]) -> None:
        if points:
            with self._lock:
                self._outbox.extend(points)

