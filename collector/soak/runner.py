"""The soak run: steps of concurrency, bounds, the soak points every interval, progress, and the cleanup."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from collector.soak import driver
from collector.soak.driver import CallError, Connection, RunMark
from collector.soak.plan import SoakPlan
from collector.soak.recorder import Recorder, StepTally
from collector.soak.workload import Client, Shared
from collector.soak.writer import PointWriter
from tsdb import Store

log = logging.getLogger("virtwatch.soak")

TICK_SECONDS = 0.1
CLEANUP_PARALLEL = 8
CLEANUP_PASSES = 3
CLEANUP_TIMEOUT_SECONDS = 10.0
#: the first QEMU connection of a fresh daemon probes every QEMU binary (~8 s measured, shared/notes/libvirt.md)
PREFLIGHT_TIMEOUT_SECONDS = 30.0


class SoakError(Exception):
    """The soak cannot start: `argument` names what is wrong (--libvirt-uri, --mix) and the message why."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


@dataclass
class SoakResult:
    """What a run did: its steps, why it ended, and what became of its points."""

    run_id: str
    steps: list[StepTally]
    ended_by: str  # steps, duration, max-calls or stop
    points_written: int = 0
    points_lost: int = 0

    def last_step_unanswered(self) -> bool:
        """Whether the daemon answered no call at all in the last step that made calls."""
        made = [step for step in self.steps if step.tally.calls]
        return bool(made) and made[-1].tally.answered == 0


@dataclass
class CleanupReport:
    """What a cleanup did: domains removed, domains it could not remove, domains it left to a live run."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    spared: list[str] = field(default_factory=list)
    error: str | None = None


class Soak:
    """One soak run against a libvirt URI, recording its load into a store under a host name."""

    def __init__(self, plan: SoakPlan, store: Store, host: str, *, run_id: str | None = None,
                 on_step: Callable[[int, int], None] | None = None,
                 on_tick: Callable[["Soak", float], None] | None = None, seed: int | None = None,
                 store_timeout_seconds: float = 15.0):
        self.plan = plan
        self.store = store
        self.host = host
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.mark = RunMark(self.run_id, os.getpid(), socket.gethostname())
        self.on_step = on_step  # called (step index, clients) before each step starts: a seam for fault tests
        self.on_tick = on_tick  # called (soak, elapsed seconds) every tick: the progress line
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
        #: how long the end of a run waits for the store to take the last points
        self.store_timeout_seconds = store_timeout_seconds
        self.recorder = Recorder()
        self.domain_type: str | None = None
        self.clients: list[Client] = []
        self.shared: Shared | None = None
        self._writer: PointWriter | None = None

    # --- before -------------------------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Connect once: learn the driver's domain type; raise SoakError when the soak cannot run there."""
        connection = Connection(self.plan.uri, max(self.plan.call_timeout_seconds, PREFLIGHT_TIMEOUT_SECONDS),
                                (self.plan.keepalive_interval_seconds, self.plan.keepalive_count),
                                name="soak-preflight")
        try:
            self.domain_type = connection.call(driver.domain_type_of)
        except CallError as error:
            raise SoakError("--libvirt-uri", str(error)) from None
        finally:
            connection.close()
        if self.domain_type is None and self.plan.mix.needs_domains():
            raise SoakError("--mix", f"define and lifecycle need the test or QEMU driver, and {self.plan.uri} is "
                                     f"neither: give them weight 0")
        self.recorder = Recorder(self.plan.mix.calls())
        self.shared = Shared(self.plan, self.recorder, self.mark, self.domain_type)

    # --- during -------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> SoakResult:
        """Run the steps until the last ends, --duration or --max-calls is reached, or `stop` is set."""
        if self.shared is None:
            self.preflight()
        shared, plan = self.shared, self.plan
        self._writer = PointWriter(self.store)
        began = time.monotonic()
        ended_by = "steps"
        last_flush = began
        try:
            for index, clients in enumerate(plan.steps):
                ended_by = _ended_by(stop, shared, plan, time.monotonic() - began)
                if ended_by != "steps":
                    break
                if self.on_step is not None:
                    self.on_step(index, clients)
                step_began = time.monotonic()
                shared.step_index = self.recorder.open_step(clients, time.time_ns())
                self._set_clients(clients)
                step_end = step_began + plan.step_seconds
                if plan.duration_seconds is not None:
                    step_end = min(step_end, began + plan.duration_seconds)
                while True:
                    now = time.monotonic()
                    if stop.is_set():
                        ended_by = "stop"
                        break
                    if shared.budget_spent.is_set():
                        ended_by = "max-calls"
                        break
                    if now >= step_end:
                        if plan.duration_seconds is not None and now - began >= plan.duration_seconds:
                            ended_by = "duration"
                        break
                    if now - last_flush >= plan.record_interval_seconds:
                        self._flush(clients, now - last_flush)
                        last_flush = now
                    if self.on_tick is not None:
                        self.on_tick(self, now - began)
                    stop.wait(min(TICK_SECONDS, max(0.0, step_end - now)))
                now = time.monotonic()
                self.recorder.close_step(shared.step_index, time.time_ns(), now - step_began)
                self._flush(clients, now - last_flush)
                last_flush = now
                if ended_by != "steps":
                    break
        finally:
            shared.stop.set()
            self._stop_clients(len(self.clients))
            if self.recorder.steps and self.recorder.interval_calls():
                # calls that finished while clients stopped: a last point set, still under the last step's load
                self._flush(self.recorder.steps[-1].clients, max(time.monotonic() - last_flush, 1e-3))
            lost = self._writer.close(self.store_timeout_seconds)
        return SoakResult(self.run_id, self.recorder.steps, ended_by, self._writer.written, lost)

    def _set_clients(self, count: int) -> None:
        """Start or stop clients so that `count` run."""
        if count < len(self.clients):
            self._stop_clients(len(self.clients) - count)
        while len(self.clients) < count:
            client = Client(len(self.clients), self.shared, self.seed + len(self.clients))
            self.clients.append(client)
            client.start()

    def _stop_clients(self, count: int) -> None:
        """Stop the newest `count` clients and wait for them (a call in flight ends by its deadline)."""
        leaving, self.clients = self.clients[len(self.clients) - count:], self.clients[:len(self.clients) - count]
        for client in leaving:
            client.halt.set()
        for client in leaving:
            client.join(self.plan.call_timeout_seconds + 1.0)

    def _flush(self, clients: int, seconds: float) -> None:
        """Take the interval's soak points and hand them to the writer."""
        self._writer.put(self.recorder.take_points(self.host, self.run_id, clients, seconds, time.time_ns()))

    # --- after --------------------------------------------------------------------------------------------------

    def cleanup(self) -> CleanupReport:
        """Remove every test domain of this run (and only those)."""
        return remove_test_domains(self.plan, lambda mark: mark.run_id == self.run_id)


def _ended_by(stop: threading.Event, shared: Shared, plan: SoakPlan, elapsed_seconds: float) -> str:
    """Return why the run must end before its next step (stop, max-calls, duration), or "steps" to go on."""
    if stop.is_set():
        return "stop"
    if shared.budget_spent.is_set():
        return "max-calls"
    if plan.duration_seconds is not None and elapsed_seconds >= plan.duration_seconds:
        return "duration"
    return "steps"


def remove_test_domains(plan: SoakPlan, select: Callable[[RunMark], bool]) -> CleanupReport:
    """Remove the soak test domains whose mark `select` accepts, in a few passes, several connections at once."""
    report = CleanupReport()
    timeout = max(plan.call_timeout_seconds, CLEANUP_TIMEOUT_SECONDS)
    keepalive = (plan.keepalive_interval_seconds, plan.keepalive_count)
    lister = Connection(plan.uri, timeout, keepalive, name="soak-cleanup")
    try:
        for _ in range(CLEANUP_PASSES):
            try:
                marked = lister.call(driver.marked_domains)
            except CallError as error:
                report.error = f"cannot list domains on {plan.uri}: {error}"
                break
            report.error = None
            chosen = [name for name, mark in marked if select(mark)]
            report.spared = sorted(name for name, mark in marked if not select(mark))
            report.left = sorted(set(chosen) - set(report.removed))
            if not chosen:
                report.left = []
                break
            report.removed += [name for name in _remove_in_parallel(plan.uri, chosen, timeout, keepalive)
                               if name not in report.removed]
    finally:
        lister.close()
    report.removed.sort()
    return report


def _remove_in_parallel(uri: str, names: list[str], timeout: float, keepalive: tuple[int, int]) -> list[str]:
    """Remove domains over up to CLEANUP_PARALLEL connections; return the names removed."""
    removed: list[str] = []
    lock = threading.Lock()

    def remove(chunk: list[str], number: int) -> None:
        """Remove a chunk of domains over a connection of its own."""
        connection = Connection(uri, timeout, keepalive, name=f"soak-cleanup-{number}")
        try:
            for name in chunk:
                try:
                    connection.call(lambda conn: driver.remove_domain(conn, name))
                except CallError as error:
                    log.warning("cannot remove test domain %s: %s", name, error)
                    if error.kind in driver.UNANSWERED:
                        return  # this connection is gone: leave the rest to the next pass
                    continue
                with lock:
                    removed.append(name)
        finally:
            connection.close()

    workers = min(CLEANUP_PARALLEL, len(names))
    threads = [threading.Thread(target=remove, args=(names[i::workers], i), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread, i in zip(threads, range(workers)):
        thread.join(timeout * (len(names[i::workers]) + 1))
    with lock:
        return list(removed)
