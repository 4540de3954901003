"""The soak's clients: threads with their own libvirt connection, each running the workload mix until stopped.

Operations: `stats` (one bulk getAllDomainStats), `list` (listAllDomains), `define` (define a fresh test domain,
then undefine it) and `lifecycle` (one step of create, suspend, resume, destroy on a test domain from a shared
pool of at most `max_guests`, so a QEMU host never runs more than that many soak guests). A client whose
connection is lost waits a moment before it connects again; one whose abandoned calls are still stuck in a
hung daemon waits until they come back rather than pile up more of them.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from collector.soak import driver
from collector.soak.driver import CANNOT_CONNECT, LOST, CallError, Connection, RunMark
from collector.soak.plan import SoakPlan
from collector.soak.recorder import Recorder

log = logging.getLogger("virtwatch.soak")

RECONNECT_PAUSE_SECONDS = 0.5
#: abandoned calls a client may leave stuck in a hung daemon before it waits for them
MAX_STUCK_CALLS = 2
POLL_SECONDS = 0.05


@dataclass
class Guest:
    """A pool domain for lifecycle calls: its name and what the soak believes its state is (None: unknown)."""

    name: str
    state: str | None = "absent"  # absent, shutoff, running, paused, other, or None
    suspended: bool = False  # suspended and resumed since it started: destroy comes next


class GuestPool:
    """At most `size` lifecycle domains, each used by one client at a time; made on first use."""

    def __init__(self, size: int, new_name: Callable[[], str]):
        self.size = size
        self._new_name = new_name
        self._free: list[Guest] = []
        self._made = 0
        self._ready = threading.Condition()

    def acquire(self, stopping: Callable[[], bool]) -> Guest | None:
        """Return a free guest (a new one while fewer than `size` exist); None once `stopping()` says so."""
        with self._ready:
            while True:
                if self._free:
                    return self._free.pop()
                if self._made < self.size:
                    self._made += 1
                    return Guest(self._new_name())
                if stopping():
                    return None
                self._ready.wait(POLL_SECONDS * 2)

    def release(self, guest: Guest) -> None:
        """Give a guest back to the pool."""
        with self._ready:
            self._free.append(guest)
            self._ready.notify()


class Shared:
    """What every client of a run shares: the plan, the recorder, the stop signal, names, guests, the budget."""

    def __init__(self, plan: SoakPlan, recorder: Recorder, mark: RunMark, domain_type: str | None):
        self.plan = plan
        self.recorder = recorder
        self.mark = mark
        self.domain_type = domain_type
        self.stop = threading.Event()
        self.step_index = 0
        self._numbers = itertools.count(1)
        self._started = itertools.count(1)
        self.budget_spent = threading.Event()
        self.guests = GuestPool(plan.max_guests, self.new_name)

    def new_name(self) -> str:
        """Return a fresh test domain name of this run."""
        return driver.domain_name(self.mark.run_id, next(self._numbers))

    def take_call(self) -> bool:
        """Count a call about to start; False once --max-calls calls have started."""
        if self.plan.max_calls is None:
            return True
        if next(self._started) > self.plan.max_calls:
            self.budget_spent.set()
            return False
        return True


class Client(threading.Thread):
    """One soak client: its own connection, picking operations from the mix until told to stop."""

    def __init__(self, index: int, shared: Shared, seed: int):
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.shared = shared
        self.halt = threading.Event()
        self.connection = Connection(shared.plan.uri, shared.plan.call_timeout_seconds,
                                     (shared.plan.keepalive_interval_seconds, shared.plan.keepalive_count),
                                     name=f"soak-{index}")
        self.rng = random.Random(seed)

    def stopping(self) -> bool:
        """Whether this client, or the whole run, is told to stop."""
        return self.halt.is_set() or self.shared.stop.is_set() or self.shared.budget_spent.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when told to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping() and time.monotonic() < deadline:
            self.halt.wait(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def run(self) -> None:
        """Run operations until stopped; close the connection at the end."""
        try:
            while not self.stopping():
                if self.connection.stuck_workers() >= MAX_STUCK_CALLS:
                    self.pause(POLL_SECONDS * 2)
                    continue
                if not self.connection.is_open and not self.call("connect", None):
                    continue
                OPERATIONS[self.shared.plan.mix.choose(self.rng)](self)
        except Exception:  # a bug, not the daemon: say so, and let the other clients go on
            log.exception("%s stopped", self.name)
        finally:
            self.connection.close()

    def call(self, kind: str, function: Callable[[Any], Any] | None) -> bool:
        """Make one call under its deadline (connect when function is None), record it; return whether it worked."""
        if self.stopping() or not self.shared.take_call():
            return False
        step = self.shared.step_index
        started = time.perf_counter()
        try:
            if function is None:
                self.connection.open()
            else:
                self.connection.call(function)
        except CallError as error:
            self.shared.recorder.record(kind, step, time.perf_counter() - started, error.kind, str(error))
            if error.kind in (LOST, CANNOT_CONNECT):
                self.pause(RECONNECT_PAUSE_SECONDS)
            return False
        self.shared.recorder.record(kind, step, time.perf_counter() - started, None)
        return True

    def domain_xml(self, name: str) -> str:
        """Return the XML of one of this run's test domains."""
        return driver.domain_xml(name, self.shared.mark, self.shared.domain_type)


def do_stats(client: Client) -> None:
    """One bulk stats call."""
    client.call("stats", driver.all_domain_stats)


def do_list(client: Client) -> None:
    """One domain listing."""
    client.call("list", driver.list_domains)


def do_define(client: Client) -> None:
    """Define a fresh test domain and undefine it (cleanup at the end catches one whose undefine failed)."""
    name = client.shared.new_name()
    if client.call("define", partial(driver.define_domain, xml=client.domain_xml(name))):
        client.call("undefine", partial(driver.undefine_domain, name=name))


#: the lifecycle cycle: from a state, the call to make and the state it leads to
_NEXT = {"shutoff": ("create", driver.start_domain, "running"),
         "paused": ("resume", driver.resume_domain, "running"),
         "other": ("destroy", driver.destroy_domain, "shutoff")}


def do_lifecycle(client: Client) -> None:
    """Move one pool guest a step along define, create, suspend, resume, destroy (learning its state if unsure)."""
    guest = client.shared.guests.acquire(client.stopping)
    if guest is None:
        return
    try:
        step_guest(client, guest)
    finally:
        client.shared.guests.release(guest)


def step_guest(client: Client, guest: Guest) -> None:
    """Make one lifecycle call on a guest and update what the soak believes its state is."""
    if guest.state is None:
        state: list[str] = []
        if client.call("state", lambda conn: state.append(driver.domain_state(conn, guest.name))):
            guest.state = state[0]
        return
    if guest.state == "absent":
        call, function, after = "define", partial(driver.define_domain, xml=client.domain_xml(guest.name)), "shutoff"
    elif guest.state == "running":
        if guest.suspended:
            call, function, after = "destroy", partial(driver.destroy_domain, name=guest.name), "shutoff"
        else:
            call, function, after = "suspend", partial(driver.suspend_domain, name=guest.name), "paused"
    else:
        call, function, after = _NEXT[guest.state]
        function = partial(function, name=guest.name)
    if client.call(call, function):
        guest.suspended = call in ("suspend", "resume")
        guest.state = after
    else:
        guest.state = None


OPERATIONS: dict[str, Callable[[Client], None]] = {
    "stats": do_stats, "list": do_list, "define": do_define, "lifecycle": do_lifecycle}
