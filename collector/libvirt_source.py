"""The agent's connection to libvirt: the only module that imports `libvirt`.

Every call runs on the connection's own worker thread under a deadline, so a hung daemon never hangs the
agent: a call past its deadline raises CallTimedOut, the connection is abandoned (its stuck thread is left
to the client keepalive) and the next call opens a fresh one. Remote connections get an event loop and
client keepalive, so a dead peer is noticed in keepalive_interval*(keepalive_count+1) seconds
(libvirt src/rpc/virkeepalive.c).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Callable

import libvirt

from collector.domain_events import CLOSE_REASONS, DomainEvent, io_error_event, lifecycle_event, watchdog_event
from collector.signatures import by_name

log = logging.getLogger(__name__)

STATS_NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
STATS_STATE = libvirt.VIR_DOMAIN_STATS_STATE

MAX_CONNECT_BACKOFF_SECONDS = 60.0
_KEEPALIVE_TIMEOUT = by_name("keepalive_timeout").pattern
_event_loop_lock = threading.Lock()
_event_loop_started = False


class DaemonUnreachable(Exception):
    """libvirt could not be reached, or the connection closed under the call."""


class CallFailed(Exception):
    """A libvirt call failed inside a daemon that still answers (e.g. a guest's monitor went away)."""


class CallTimedOut(Exception):
    """A libvirt call did not return within its deadline: the daemon is hung or saturated."""


def start_event_loop() -> None:
    """Register libvirt's default event loop once per process and run it on a daemon thread."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.registerErrorHandler(lambda _ctx, _error: None, None)  # errors come back as exceptions
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-event-loop", daemon=True).start()
        _event_loop_started = True


class LibvirtSource:
    """One libvirt URI, every call under a deadline, reconnecting after any failure."""

    def __init__(self, uri: str, call_timeout_seconds: float = 5.0, keepalive_interval_seconds: int = 5,
                 keepalive_count: int = 5, read_only: bool = False, clock: Callable[[], float] = time.monotonic):
        self.uri = uri
        self.read_only = read_only
        self.connect_attempts = 0
        self._connect_failures = 0
        self._next_connect = 0.0
        self._clock = clock
        self.call_timeout_seconds = call_timeout_seconds
        self.keepalive = (keepalive_interval_seconds, keepalive_count)
        self.calls_total = 0
        self._conn: Any = None
        self._probe_domain: Any = None  # a virDomain of the current connection, the probe's target
        self._worker: ThreadPoolExecutor | None = None
        self._events: collections.deque[DomainEvent] = collections.deque(maxlen=10_000)
        #: why libvirt closed the last connection (eof, keepalive, error, client), until taken
        self._close_reason: str | None = None
        #: set by libvirt's close callback (from the event loop thread); cleared when the reason is taken
        self.closed = threading.Event()
        start_event_loop()

    def _open(self) -> None:
        """Connect, unless a recent failure asks to wait (backoff: at once, then 1, 2, 4 ... 60 s)."""
        wait = self._next_connect - self._clock()
        if wait > 0:
            raise DaemonUnreachable(f"{self.uri} unreachable ({self._connect_failures} failed connection attempts); "
                                    f"next attempt in {wait:.0f} s")
        self.connect_attempts += 1
        try:
            self._connect()
        except (CallTimedOut, DaemonUnreachable):
            self._connect_failures += 1
            delay = 0.0 if self._connect_failures == 1 else min(MAX_CONNECT_BACKOFF_SECONDS,
                                                                 2.0 ** (self._connect_failures - 2))
            self._next_connect = self._clock() + delay
            raise
        self._connect_failures, self._next_connect = 0, 0.0

    def _connect(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtwatch-libvirt")
        try:
            opener = libvirt.openReadOnly if self.read_only else libvirt.open
            self._conn = self._worker.submit(opener, self.uri).result(self.call_timeout_seconds)
        except FutureTimeout:
            self._abandon()
            raise CallTimedOut(f"opening {self.uri} took longer than {self.call_timeout_seconds:g} s") from None
        except libvirt.libvirtError as error:
            self._abandon()
            raise DaemonUnreachable(f"cannot connect to {self.uri}: {error.get_error_message()}") from None
        try:
            self._conn.setKeepAlive(*self.keepalive)
        except libvirt.libvirtError:
            pass  # in-process drivers (test:///, qemu:///embed) have no RPC to keep alive
        try:
            self._worker.submit(self._register_callbacks, self._conn).result(self.call_timeout_seconds)
        except FutureTimeout:
            self._abandon()
            raise CallTimedOut(f"registering event callbacks on {self.uri} took longer than "
                               f"{self.call_timeout_seconds:g} s") from None
        except libvirt.libvirtError as error:
            log.warning("no domain events from %s: %s", self.uri, error.get_error_message())

    def _register_callbacks(self, conn: Any) -> None:
        """Subscribe to lifecycle, I/O error and watchdog events and to the connection's close."""
        now = time.time_ns
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lambda c, dom, event, detail, _o: (
            self._queue(c, lifecycle_event(dom.name(), event, detail, now()))), None)
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON,
                                    lambda c, dom, _src, dev, action, reason, _o: self._queue(
                                        c, io_error_event(dom.name(), dev, action, reason, now())), None)
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG, lambda c, dom, action, _o: (
            self._queue(c, watchdog_event(dom.name(), action, now()))), None)

        def closed(closing: Any, reason: int, _opaque: Any) -> None:
            if closing is not self._conn:
                return  # a connection we abandoned ourselves
            self._close_reason = CLOSE_REASONS.get(reason, str(reason))
            self.closed.set()

        try:
            conn.registerCloseCallback(closed, None)
        except libvirt.libvirtError:
            pass  # in-process drivers never close under us

    def _queue(self, conn: Any, event: DomainEvent | None) -> None:
        """Keep an event from the current connection (an abandoned one may still deliver the same event)."""
        if event is not None and conn is self._conn:
            self._events.append(event)

    def take_events(self) -> list[DomainEvent]:
        """Return and forget the domain events received since the last call."""
        events = []
        while self._events:
            events.append(self._events.popleft())
        return events

    def take_close_reason(self) -> str | None:
        """Return and forget why libvirt closed the connection (eof, keepalive, error, client), if it did."""
        reason, self._close_reason = self._close_reason, None
        self.closed.clear()
        return reason

    def _abandon(self) -> None:
        """Drop the connection and its worker without waiting: the worker may be stuck in a call."""
        conn, worker = self._conn, self._worker
        self._conn, self._worker, self._probe_domain = None, None, None
        if worker is not None:
            worker.shutdown(wait=False, cancel_futures=True)
            if conn is not None:
                threading.Thread(target=_close_quietly, args=(conn,), daemon=True).start()

    def call(self, what: str, function: Callable[[Any], Any]) -> Any:
        """Run function(connection) on the worker under the deadline; raise CallTimedOut, DaemonUnreachable (the
        connection is dropped and the next call opens a new one) or CallFailed (the daemon answered an error)."""
        if self._conn is None:
            self._open()
        self.calls_total += 1
        future = self._worker.submit(function, self._conn)
        try:
            return future.result(self.call_timeout_seconds)
        except FutureTimeout:
            self._abandon()
            raise CallTimedOut(f"{what} on {self.uri} took longer than {self.call_timeout_seconds:g} s") from None
        except libvirt.libvirtError as error:
            message = error.get_error_message()
            if _KEEPALIVE_TIMEOUT.search(message) or self._close_reason == "keepalive":
                # the peer stopped answering keepalives: a live but unresponsive daemon, not a dead one
                self._abandon()
                raise CallTimedOut(f"{what} on {self.uri}: {message}") from None
            if error.get_error_domain() in CONNECTION_ERROR_DOMAINS or not connection_alive(self._conn):
                self._abandon()
                raise DaemonUnreachable(f"{what} on {self.uri} failed: {message}") from None
            raise CallFailed(f"{what} on {self.uri} failed: {message}") from None

    def probe_ms(self) -> float:
        """Time a real stats call and return its latency in ms.

        It is the same RPC as the bulk call (CONNECT_GET_ALL_DOMAIN_STATS, served by a normal worker, unlike
        pings that priority workers answer), asked for the state group of ONE domain, so its cost does not
        grow with the host; the state group needs no job, so a wedged guest cannot block it. Before the
        first bulk call on a connection there is no domain to name, and it asks for every domain's state.
        """
        target = self._probe_domain
        started = time.perf_counter()
        if target is not None:
            try:
                self.call("stats probe", lambda conn: conn.domainListGetStats([target], STATS_STATE, STATS_NOWAIT))
            except CallFailed:  # the domain went away since the bulk call: ask for every domain's state
                self._probe_domain = None
                started = time.perf_counter()
                self.call("stats probe", lambda conn: conn.getAllDomainStats(STATS_STATE, STATS_NOWAIT))
        else:
            self.call("stats probe", lambda conn: conn.getAllDomainStats(STATS_STATE, STATS_NOWAIT))
        return (time.perf_counter() - started) * 1000.0

    def domain_stats(self) -> list[tuple[str, dict]]:
        """Return (name, stats record) of every domain from ONE bulk call with NOWAIT."""
        def bulk(conn: Any) -> list[tuple[str, dict]]:
            answer = conn.getAllDomainStats(0, STATS_NOWAIT)
            if conn is self._conn:
                self._probe_domain = answer[0][0] if answer else None
            return [(domain.name(), record) for domain, record in answer]
        return self.call("getAllDomainStats", bulk)

    def domain_metadata(self, name: str, namespace: str) -> str | None:
        """Return the XML of a domain's metadata element in `namespace`, or None when it has none."""
        def read(conn: Any) -> str | None:
            try:
                return conn.lookupByName(name).metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, 0)
            except libvirt.libvirtError as error:
                if error.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_NO_DOMAIN):
                    return None
                raise
        return self.call("domain metadata", read)

    def domain_counts(self) -> tuple[int, int]:
        """Return (running, defined) domain counts."""
        return self.call("domain counts", lambda conn: (
            conn.numOfDomains(), conn.numOfDomains() + conn.numOfDefinedDomains()))

    def close(self) -> None:
        """Close the connection."""
        self._abandon()


#: errors of the connection itself (libvirt's virErrorDomain): anything else failed inside a live daemon
CONNECTION_ERROR_DOMAINS = (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE)


def connection_alive(conn: Any) -> bool:
    """Return whether the client side still considers the connection alive (no RPC is made)."""
    try:
        return conn is not None and conn.isAlive() == 1
    except libvirt.libvirtError:
        return False


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
