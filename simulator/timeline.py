"""Consequences of failures: each host's daemon processes, outages, guest outages and the events, in time order.

The few failures (drawn ones and scripted ones) are walked per host in time order; everything else (the
points) is vectorised from the histories built here. What caused a hang and how a crash looked (the thread,
the address) are recorded too: simulator.diagnoses turns them into the agent's cause sentences, which are
the messages of the hang_start, segfault and restart events (left empty here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.fleet import MAX_WORKERS, PROBE_TIMEOUT_MS, Fleet
from simulator.spec import FAILURE_KINDS, FleetSpec
from tsdb.schema import EVENT_KINDS, GUEST_FAILURE_KINDS, GUEST_KINDS

STATE_UP, STATE_HUNG, STATE_DOWN = 0, 1, 2
#: virDomainState and reasons (libvirt include/libvirt/libvirt-domain.h)
RUNNING, SHUTOFF = 1, 5
RUNNING_BOOTED, SHUTOFF_CRASHED, SHUTOFF_FAILED = 1, 3, 6
PID_MAX = 4194304  # /proc/sys/kernel/pid_max on 64-bit
SECOND_NS = 10**9
THREADS = ("rpc-libvirtd", "rpc-libvirtd", "prio-rpc-libvir", "gmain", "qemu-event")
KEEPALIVE_SECONDS = 30  # the agent's keepalive: interval 5 s * (count 5 + 1), libvirt src/rpc/virkeepalive.c
#: a hang begins with the probe that goes unanswered; the agent says hung (hang_start) a deadline later
PROBE_DEADLINE_NS = int(PROBE_TIMEOUT_MS) * 10**6
#: VIR_JOB_WAIT_TIME (libvirt src/conf/virdomainjob.c): a call waiting for a guest's job lock gives up and logs
#: the holder after 30 s, then every 30 s
JOB_WAIT_NS = 30 * SECOND_NS
#: why a drawn hang hangs, and how often: the workers wait on a guest whose QEMU is stopped (T) or stuck on
#: its storage (D); the daemon's own threads are stuck on storage (D); someone stopped the daemon (SIGSTOP)
HANG_CAUSES = {"guest_stopped": 0.4, "guest_disk": 0.25, "daemon_disk": 0.2, "daemon_stopped": 0.15}
GUEST_HANG_CAUSES = ("guest_stopped", "guest_disk")


@dataclass
class Candidate:
    """A failure to apply: drawn by the hazard (absorbable) or scripted by an incident (forced)."""

    time_ns: int
    kind: str
    cause: str = "hazard"
    duration_ns: int | None = None   # a scripted hang, outage or guest outage length
    domain: int | None = None        # a scripted guest

    @property
    def forced(self) -> bool:
        """Whether the failure is scripted (never absorbed)."""
        return self.cause != "hazard"


@dataclass(frozen=True)
class Leak:
    """A daemon leak: every process alive in [start_ns, end_ns) gains fds and memory at these rates."""

    start_ns: int
    end_ns: int
    fds_per_second: float
    rss_bytes_per_second: float


@dataclass(frozen=True)
class Hang:
    """A hang: when the agent said hung (start_ns, a probe deadline after the unanswered probe), when the daemon
    answered again, why (a HANG_CAUSES key) and the stuck guest's index (-1 when no guest is stuck)."""

    start_ns: int
    end_ns: int
    cause: str
    guest: int = -1

    @property
    def began_ns(self) -> int:
        """Return when the unanswered probe was sent: the hang's age counts from there."""
        return self.start_ns - PROBE_DEADLINE_NS


@dataclass(frozen=True)
class Crash:
    """A segfault of the daemon: the process, the faulting thread and where (drawn by the timeline)."""

    time_ns: int
    pid: int
    thread: str
    tid: int
    ip: int
    offset: int


@dataclass
class HostHistory:
    """What happened to one host's daemon and guests over the span."""

    process_start_ns: list[int]                 # the first process started before the span; then each restart
    pids: list[int]
    restart_causes: list[str] = field(default_factory=list)                 # of each restart (pids[1:])
    segfault_ns: list[int] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    hangs: list[Hang] = field(default_factory=list)
    outages: list[tuple[int, int, int]] = field(default_factory=list)         # start, end, STATE_HUNG/DOWN
    log_error_ns: list[int] = field(default_factory=list)
    domain_outages: list[list[tuple[int, int, int]]] = field(default_factory=list)  # per guest: start, end, reason
    io_error_ns: list[list[int]] = field(default_factory=list)                # per guest
    leaks: list[Leak] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)             # incidents: hazard absorbed


class TimelineBuilder:
    """Walks each host's failures in time order and records their consequences and events."""

    def __init__(self, spec: FleetSpec, fleet: Fleet, start_ns: int, end_ns: int, rng: np.random.Generator,
                 cause_rng: np.random.Generator):
        self.spec, self.fleet, self.rng = spec, fleet, rng
        self.cause_rng = cause_rng  # a stream of its own: the causes leave the failures' draws as they were
        self.start_ns, self.end_ns = start_ns, end_ns
        self.step_ns = spec.step_seconds * SECOND_NS
        self.events: list[tuple] = []     # time_ns, host, kind, domain, message, duration_seconds
        self.failures: list[tuple] = []   # time_ns, host, kind, cause, domain, step

    def run_host(self, h: int, candidates: list[Candidate], history: HostHistory) -> HostHistory:
        """Apply a host's candidates in time order and return its history."""
        domains = self.fleet.domains
        history.domain_outages = [[] for _ in range(domains)]
        history.io_error_ns = [[] for _ in range(domains)]
        self._up_at = 0          # the daemon is down or hung before this instant
        self._guest_up_at = [0] * domains
        for candidate in sorted(candidates, key=lambda c: (c.time_ns, FAILURE_KINDS.index(c.kind))):
            if not candidate.forced and self._absorbed(candidate.time_ns, history):
                continue
            if candidate.kind in GUEST_KINDS:
                self._guest_failure(h, candidate, history)
            else:
                getattr(self, "_" + candidate.kind)(h, candidate, history)
        return history

    def _absorbed(self, u: int, history: HostHistory) -> bool:
        """Whether a drawn failure at instant u is absorbed: the daemon is down or hung at u or at its step's
        point, or the step lies in an incident's window."""
        if u < self._up_at:
            return True
        point = u - (u - self.start_ns) % self.step_ns
        if history.outages:
            start, end, _state = history.outages[-1]
            if start < point < end:
                return True
        return any(a <= point < b for a, b in history.windows)

    # ---- recording ----

    def _event(self, h: int, time_ns: int, kind: str, message: str, domain: int = -1,
               duration_seconds: float = float("nan")) -> None:
        self.events.append((time_ns, h, kind, domain, message, duration_seconds))

    def _failure(self, h: int, time_ns: int, kind: str, cause: str, message: str, domain: int = -1) -> None:
        self._event(h, time_ns, kind, message, domain)
        self.failures.append((time_ns, h, kind, cause, domain, (time_ns - self.start_ns) // self.step_ns))

    def _new_process(self, h: int, time_ns: int, cause: str, history: HostHistory) -> None:
        """Start a new daemon process at `time_ns`: a restart event, a new pid and start time."""
        if time_ns >= self.end_ns:
            return
        old = history.pids[-1]
        new = old + int(self.rng.integers(40, 3000))
        if new >= PID_MAX:
            new = 1000 + new % PID_MAX
        history.pids.append(new)
        history.process_start_ns.append(time_ns)
        history.restart_causes.append(cause)
        self._failure(h, time_ns, "restart", cause, "")

    # ---- daemon failures ----

    def _restart(self, h: int, c: Candidate, history: HostHistory) -> None:
        self._new_process(h, c.time_ns, c.cause, history)

    def _segfault(self, h: int, c: Candidate, history: HostHistory) -> None:
        pid = history.pids[-1]
        thread = THREADS[int(self.rng.integers(len(THREADS)))]
        tid = pid + int(self.rng.integers(1, 40))
        ip = 0x7F0000000000 + int(self.rng.integers(0, 2**36))
        offset = int(self.rng.integers(0x10000, 0x300000))
        self._failure(h, c.time_ns, "segfault", c.cause, "")
        history.segfault_ns.append(c.time_ns)
        history.crashes.append(Crash(c.time_ns, pid, thread, tid, ip, offset))
        back = c.time_ns + int(self.step_ns * (0.02 + 0.06 * self.rng.random()))  # systemd Restart=on-failure
        self._up_at = max(self._up_at, back)
        self._new_process(h, back, "segfault", history)

    def _hang_start(self, h: int, c: Candidate, history: HostHistory) -> None:
        length = c.duration_ns or self.step_ns + int(min(self.rng.exponential(180.0), 1800.0) * SECOND_NS)
        self._failure(h, c.time_ns, "hang_start", c.cause, "")
        self._outage(h, c.time_ns, length, STATE_HUNG, history)
        end = c.time_ns + length
        hang = self._hang_cause(c, end)
        history.hangs.append(hang)
        history.log_error_ns += lock_timeouts(hang, end)
        if end < self.end_ns:
            lasted = (end - hang.began_ns) / SECOND_NS  # as the agent counts it: from the unanswered probe
            self._event(h, end, "hang_end", f"libvirtd answers again after {lasted:.1f} s hung",
                        duration_seconds=lasted)

    def _hang_cause(self, c: Candidate, end: int) -> Hang:
        """Return why a hang hangs: the scripted one is a guest whose QEMU was stopped; a drawn one is drawn
        from HANG_CAUSES (a guest cause needs a running guest)."""
        running = [d for d, up_at in enumerate(self._guest_up_at) if up_at <= c.time_ns]
        if c.cause == "hang":
            cause = "guest_stopped"
        else:
            causes = list(HANG_CAUSES)
            cause = causes[int(self.cause_rng.choice(len(causes), p=list(HANG_CAUSES.values())))]
        if cause not in GUEST_HANG_CAUSES:
            return Hang(c.time_ns, end, cause)
        if not running:
            return Hang(c.time_ns, end, "daemon_disk")
        return Hang(c.time_ns, end, cause, running[int(self.cause_rng.integers(len(running)))])

    def _daemon_down(self, h: int, c: Candidate, history: HostHistory) -> None:
        length = c.duration_ns or self.step_ns + int(min(self.rng.exponential(60.0), 900.0) * SECOND_NS)
        self._failure(h, c.time_ns, "daemon_down", c.cause, "libvirtd down: Failed to connect socket to "
                      "'/var/run/libvirt/libvirt-sock': Connection refused (connection closed: eof)")
        self._outage(h, c.time_ns, length, STATE_DOWN, history)
        end = c.time_ns + length
        if end < self.end_ns:
            self._event(h, end, "daemon_up", f"libvirtd reachable again after {length / SECOND_NS:.1f} s down",
                        duration_seconds=length / SECOND_NS)
            self._new_process(h, end, "daemon_down", history)

    def _keepalive_timeout(self, h: int, c: Candidate, history: HostHistory) -> None:
        self._failure(h, c.time_ns, "keepalive_timeout", c.cause, f"libvirt closed the connection to "
                      f"qemu:///system: no keepalive answer for {KEEPALIVE_SECONDS} s")
        history.log_error_ns.append(c.time_ns)

    def _outage(self, h: int, start: int, length: int, state: int, history: HostHistory) -> None:
        history.outages.append((start, start + length, state))
        self._up_at = max(self._up_at, start + length)

    # ---- guest failures ----

    def _guest_failure(self, h: int, c: Candidate, history: HostHistory) -> None:
        u = c.time_ns
        if c.domain is not None:
            d = c.domain
        else:
            running = [d for d, up_at in enumerate(self._guest_up_at) if up_at <= u]
            if not running:
                return  # absorbed: no guest runs
            d = running[int(self.rng.integers(len(running)))]
        name = self.fleet.domain_names[h][d]
        if c.kind in GUEST_FAILURE_KINDS:
            length = c.duration_ns or self.step_ns + int((600 + min(self.rng.exponential(1200.0), 3000.0))
                                                         * SECOND_NS)
            reason = SHUTOFF_FAILED if c.kind == "domain_failed" else SHUTOFF_CRASHED
            history.domain_outages[d].append((u, u + length, reason))
            self._guest_up_at[d] = u + length
            history.log_error_ns.append(u)
            message = (f"domain {name!r} stopped with reason failed (its QEMU process exited unexpectedly)"
                       if c.kind == "domain_failed" else f"domain {name!r} stopped: the guest crashed")
        elif c.kind == "domain_io_error":
            history.io_error_ns[d].append(u)
            message = f"domain {name!r} disk 'vda': I/O error (enospc); action report"
        else:
            message = f"domain {name!r}: watchdog fired; action reset"
        self._failure(h, u, c.kind, c.cause, message, domain=d)

    # ---- results ----

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return (events, failures) as frames sorted by time (host order breaks ties)."""
        names = np.array(self.fleet.names + [""], dtype=object)

        def domain_names(hosts: np.ndarray, domains: np.ndarray) -> list[str]:
            return [self.fleet.domain_names[h][d] if d >= 0 else "" for h, d in zip(hosts, domains)]

        ev = list(zip(*self.events)) if self.events else [[] for _ in range(6)]
        hosts, domains = np.array(ev[1], dtype=np.int64), np.array(ev[3], dtype=np.int64)
        events = pd.DataFrame({
            "time_ns": np.array(ev[0], dtype=np.int64), "host": names[hosts] if len(hosts) else [],
            "kind": list(ev[2]), "severity": [EVENT_KINDS[k].severity for k in ev[2]],
            "domain": domain_names(hosts, domains), "message": list(ev[4]),
            "duration_seconds": np.array(ev[5], dtype=np.float64),
        })
        fa = list(zip(*self.failures)) if self.failures else [[] for _ in range(6)]
        hosts, domains = np.array(fa[1], dtype=np.int64), np.array(fa[4], dtype=np.int64)
        failures = pd.DataFrame({
            "time_ns": np.array(fa[0], dtype=np.int64), "host": names[hosts] if len(hosts) else [],
            "kind": list(fa[2]), "cause": list(fa[3]), "domain": domain_names(hosts, domains),
            "step": np.array(fa[5], dtype=np.int64),
        })
        order = ["time_ns", "host", "kind"]
        return (events.sort_values(order, kind="mergesort", ignore_index=True),
                failures.sort_values(order, kind="mergesort", ignore_index=True))


def lock_timeouts(hang: Hang, until: int) -> list[int]:
    """Return the instants of the job-lock timeouts a hang's daemon logs before `until`: when a guest is stuck,
    every 30 s each worker waiting for its job (all but the holder) gives up and logs an error (measured:
    collector.job_locks)."""
    if hang.cause not in GUEST_HANG_CAUSES:
        return []
    rounds = range(hang.began_ns + JOB_WAIT_NS, min(until, hang.end_ns), JOB_WAIT_NS)
    return [u for u in rounds for _worker in range(MAX_WORKERS - 1)]


def steps_within(start: int, end: int, start_ns: int, step_ns: int) -> tuple[int, int]:
    """Return the range of steps whose point falls in (start, end): a change at an instant shows from the next
    point on, and is over at a point taken at its end."""
    return (start - start_ns) // step_ns + 1, -(-(end - start_ns) // step_ns)


def state_grid(histories: list[HostHistory], start_ns: int, step_ns: int, steps: int) -> np.ndarray:
    """Return the daemon's state at each host's step (H, N): STATE_UP, STATE_HUNG or STATE_DOWN."""
    grid = np.zeros((len(histories), steps), dtype=np.int8)
    for h, history in enumerate(histories):
        for start, end, state in history.outages:
            first, stop = steps_within(start, end, start_ns, step_ns)
            first, stop = max(first, 0), min(stop, steps)
            grid[h, first:stop] = np.maximum(grid[h, first:stop], state)
    return grid
