"""The agent's connection to libvirt: the only module of the agent that imports `libvirt`.

No call here blocks its caller. `LibvirtSource.begin(kind, function)` runs function(connection) on a thread
of its own and returns a `Call`, which the caller waits on for as long as it chooses. At most ONE call of each
kind (connect, probe, stats, counts, metadata) is outstanding: while one is, `begin` of that kind returns the
same Call again, so a stuck probe is never joined by a second one and the agent never adds more than one
waiting call of a kind to a drowning daemon.

A call past its deadline is not abandoned: the connection stays open and keeps its place in the daemon's
queue, and the caller reports the daemon hung for as long as the call waits. The connection is dropped only
when libvirt says it is dead: the close callback (EOF, keepalive, error) or a connection error from a call.
Remote connections run with libvirt's event loop and client keepalive, so a peer that stopped answering is
noticed after keepalive_interval*(keepalive_count+1) seconds (libvirt src/rpc/virkeepalive.c).

The one place for a libvirt call under a deadline and for what its failure means: `Call` (a call on a thread of
its own, which the caller waits on for as long as it chooses), `open_connection`, `connect_problem` and
`call_problem`. The soak (collector/soak/driver.py) builds its connections from them too.

How a call ends, as `Call.result()` raises it:

    LibvirtProblem         `detail`: libvirt's own message
    ├── CallFailed         the daemon answered with an error (it is alive); `code`: libvirt's error code
    ├── ConnectionLost     the connection closed under the call (`reason`: eof, keepalive, error, client)
    └── NobodyListening    connecting failed: connection refused or no socket (evidence of absence)
"""

from __future__ import annotations

import collections
import errno
import logging
import threading
import time
from typing import Any, Callable

import libvirt

from collector.domain_events import CLOSE_REASONS, DomainEvent, io_error_event, lifecycle_event, watchdog_event
from collector.signatures import by_name

log = logging.getLogger(__name__)

STATS_NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
STATS_STATE = libvirt.VIR_DOMAIN_STATS_STATE

#: virDomainControlState (include/libvirt/libvirt-domain.h): what a guest's monitor is doing
CONTROL_STATES = {0: "ok", 1: "job", 2: "occupied", 3: "error"}

_KEEPALIVE_TIMEOUT = by_name("keepalive_timeout").pattern
#: errno values of a connect that found nobody: the socket file is missing, or nobody accepts on it
_ABSENT_ERRNOS = (errno.ENOENT, errno.ECONNREFUSED)
_ABSENT_TEXT = ("No such file or directory", "Connection refused")
_event_loop_lock = threading.Lock()
_event_loop_started = False


class LibvirtProblem(Exception):
    """A libvirt call did not give an answer; `detail` is libvirt's own message (the message itself says where)."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = message if detail is None else detail


class CallFailed(LibvirtProblem):
    """The daemon answered with an error: it is alive (e.g. a guest went away during the call); `code` is
    libvirt's error code (virErrorNumber), None when the call failed in our own code."""

    def __init__(self, message: str, detail: str | None = None, code: int | None = None):
        super().__init__(message, detail)
        self.code = code


class ConnectionLost(LibvirtProblem):
    """The connection closed under the call; `reason` is libvirt's close reason when it gave one."""

    def __init__(self, message: str, reason: str | None = None, detail: str | None = None):
        super().__init__(message, detail)
        self.reason = reason


class NobodyListening(LibvirtProblem):
    """Connecting failed because nobody listens: connection refused, or no socket file."""


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


class Call:
    """One libvirt call running on its own daemon thread: wait for it, ask how long it has waited."""

    def __init__(self, kind: str, what: str, clock: Callable[[], float] = time.monotonic):
        self.kind = kind
        self.what = what
        self._clock = clock
        self.started = clock()
        self.finished: float | None = None
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error
        self.finished = self._clock()
        self._done.set()

    def run_on_thread(self, function: Callable[[], Any], problem: Callable[[Exception], BaseException],
                      thread_name: str) -> None:
        """Run function() on a daemon thread of its own (a call stuck in a hung daemon holds no one up): the call
        ends with its value, or with problem(error) for the exception it raised (which `result` raises)."""
        threading.Thread(target=self._run, args=(function, problem), name=thread_name, daemon=True).start()

    def _run(self, function: Callable[[], Any], problem: Callable[[Exception], BaseException]) -> None:
        """Run function() and end the call with its value or its problem."""
        try:
            value = function()
        except Exception as error:  # noqa: BLE001 - every failure must end the call, none leave it outstanding
            self._finish(error=problem(error))
            return
        self._finish(value)

    @property
    def done(self) -> bool:
        """Whether the call has ended, with an answer or a problem."""
        return self._done.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds (None: for ever); return whether the call has ended."""
        return self._done.wait(timeout if timeout is None else max(0.0, timeout))

    def seconds(self) -> float:
        """How long the call took, or has been waiting so far."""
        return (self.finished if self.finished is not None else self._clock()) - self.started

    def result(self) -> Any:
        """Return the call's value, or raise the problem it ended with (call after it is done)."""
        if self._error is not None:
            raise self._error
        return self._value


class LibvirtSource:
    """One libvirt URI: one connection, calls that never block the caller, one outstanding call per kind."""

    def __init__(self, uri: str, call_timeout_seconds: float = 5.0, keepalive_interval_seconds: int = 5,
                 keepalive_count: int = 5, read_only: bool = False, clock: Callable[[], float] = time.monotonic):
        self.uri = uri
        self.read_only = read_only
        self.call_timeout_seconds = call_timeout_seconds
        self.keepalive = (keepalive_interval_seconds, keepalive_count)
        self.calls_total = 0
        self.connections_opened_total = 0
        self.clock = clock  # monotonic seconds: call durations and the monitor's connect backoff
        self._lock = threading.Lock()
        self._conn: Any = None
        self._outstanding: dict[str, Call] = {}
        self._probe_domain: Any = None  # a virDomain of the current connection, the probe's target
        self._events: collections.deque[DomainEvent] = collections.deque(maxlen=10_000)
        #: why libvirt closed the last connection (eof, keepalive, error, client), until taken
        self._close_reason: str | None = None
        #: set by libvirt's close callback (from the event loop thread); cleared when the reason is taken
        self.closed = threading.Event()
        start_event_loop()

    # --- calls -----------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection is open (it may still be waiting on a call)."""
        return self._conn is not None

    def outstanding(self, kind: str) -> Call | None:
        """Return the call of `kind` that has not ended yet, if any."""
        call = self._outstanding.get(kind)
        return call if call is not None and not call.done else None

    def outstanding_calls(self) -> list[Call]:
        """Every call that has not ended yet, oldest first."""
        return sorted((c for c in list(self._outstanding.values()) if not c.done), key=lambda c: c.started)

    def begin(self, kind: str, what: str, function: Callable[[Any], Any]) -> Call:
        """Start function(connection) on a thread of its own; return the outstanding call of `kind` instead
        when there is one. Without a connection (it closed under us), the Call has ended with ConnectionLost."""
        with self._lock:
            busy = self.outstanding(kind)
            if busy is not None:
                return busy
            conn = self._conn
            call = Call(kind, what, self.clock)
            if conn is None:
                call._finish(error=ConnectionLost(f"{what}: no connection to {self.uri}", self._close_reason))
                return call
            self._outstanding[kind] = call
            self.calls_total += 1
        call.run_on_thread(lambda: function(conn), lambda error: self._problem(call.what, conn, error),
                           f"virtwatch-libvirt-{kind}")
        return call

    def _problem(self, what: str, conn: Any, error: Exception) -> LibvirtProblem:
        """Turn what a call raised into the problem it shows; drop the connection when it is dead."""
        if not isinstance(error, libvirt.libvirtError):
            log.error("%s on %s raised", what, self.uri, exc_info=error)  # a bug, not the daemon
            return CallFailed(f"{what} on {self.uri}: {type(error).__name__}: {error}")
        problem = call_problem(what, self.uri, conn, error, self._close_reason if conn is self._conn else None)
        if isinstance(problem, ConnectionLost):
            self._drop(conn)
        return problem

    def _drop(self, conn: Any) -> None:
        """Forget a dead connection (if it is still the current one) and close it without waiting."""
        with self._lock:
            if conn is not self._conn:
                return
            self._conn, self._probe_domain = None, None
        threading.Thread(target=close_quietly, args=(conn,), daemon=True).start()

    # --- the connection --------------------------------------------------------------------------------------

    def connect(self) -> Call:
        """Open the connection (keepalive, event callbacks) on a thread of its own; return the Call, whose
        result raises NobodyListening when nobody listens. The outstanding connect is returned while there
        is one; a connected source returns an ended Call."""
        with self._lock:
            busy = self.outstanding("connect")
            if busy is not None:
                return busy
            call = Call("connect", f"connecting to {self.uri}", self.clock)
            if self._conn is not None:
                call._finish(self._conn)
                return call
            self._outstanding["connect"] = call
            self.connections_opened_total += 1
        call.run_on_thread(self._open, self._connect_problem, "virtwatch-libvirt-connect")
        return call

    def _open(self) -> Any:
        """Open the connection with keepalive, subscribe to its events, and make it the current one."""
        conn = open_connection(self.uri, self.keepalive, self.read_only)
        try:
            self._register_callbacks(conn)
        except libvirt.libvirtError as error:
            if not connection_alive(conn):
                close_quietly(conn)
                raise ConnectionLost(f"connecting to {self.uri}: {error.get_error_message()}") from None
            log.warning("no domain events from %s: %s", self.uri, error.get_error_message())
        with self._lock:
            self._conn, self._close_reason = conn, None
            self.closed.clear()
        return conn

    def _connect_problem(self, error: Exception) -> BaseException:
        """Turn what connecting raised into the problem it shows (a ConnectionLost from _open as it is)."""
        if isinstance(error, LibvirtProblem):
            return error
        if isinstance(error, libvirt.libvirtError):
            return connect_problem(self.uri, error)
        log.error("connecting to %s raised", self.uri, exc_info=error)  # a bug, not the daemon
        return CallFailed(f"connecting to {self.uri}: {type(error).__name__}: {error}")

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
                return  # a connection we dropped ourselves
            self._close_reason = CLOSE_REASONS.get(reason, str(reason))
            self._drop(closing)
            self.closed.set()

        try:
            conn.registerCloseCallback(closed, None)
        except libvirt.libvirtError:
            pass  # in-process drivers never close under us

    def _queue(self, conn: Any, event: DomainEvent | None) -> None:
        """Keep an event from the current connection (a dropped one may still deliver the same event)."""
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

    def close(self) -> None:
        """Close the connection without waiting for calls that may be stuck in it."""
        conn = self._conn
        if conn is not None:
            self._drop(conn)

    # --- the calls the agent makes ---------------------------------------------------------------------------

    def probe(self) -> Call:
        """Begin the stats probe: a real stats call whose value is its own latency in ms.

        It is the same RPC as the bulk call (CONNECT_GET_ALL_DOMAIN_STATS, served by a normal worker, unlike
        pings that priority workers answer), asked for the state group of ONE domain, so its cost does not
        grow with the host; the state group needs no job, so a wedged guest cannot block it. Before the
        first bulk call on a connection there is no domain to name, and it asks for every domain's state.
        """
        def timed(conn: Any) -> float:
            target = self._probe_domain
            started = time.perf_counter()
            if target is not None:
                try:
                    conn.domainListGetStats([target], STATS_STATE, STATS_NOWAIT)
                    return (time.perf_counter() - started) * 1000.0
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
                    self._probe_domain = None  # it went away since the bulk call: ask for every domain's state
                    started = time.perf_counter()
            conn.getAllDomainStats(STATS_STATE, STATS_NOWAIT)
            return (time.perf_counter() - started) * 1000.0
        return self.begin("probe", "stats probe", timed)

    def domain_stats(self, leave_out: frozenset[str] = frozenset(),
                     tags_for: Callable[[str], dict[str, str]] | None = None) -> Call:
        """Begin the bulk stats call, whose value is a DomainStats.

        Every domain's stats come from ONE call with NOWAIT (getAllDomainStats), except the guests in
        `leave_out` (a stopped QEMU, a busy monitor): taking their job would make the agent part of their hang,
        so the others are asked for by name (virDomainListGetStats) and those only for their state group and
        their monitor's control info, neither of which needs the job. `tags_for(name)` (metadata tags, which
        may call libvirt) runs on the same thread after the stats.
        """
        def bulk(conn: Any) -> DomainStats:
            if not leave_out:
                answer = conn.getAllDomainStats(0, STATS_NOWAIT)
                left_states, control = [], {}
            else:
                domains = conn.listAllDomains(0)
                kept = [d for d in domains if d.name() not in leave_out]
                left = [d for d in domains if d.name() in leave_out]
                answer = conn.domainListGetStats(kept, 0, STATS_NOWAIT) if kept else []
                left_states = conn.domainListGetStats(left, STATS_STATE, STATS_NOWAIT) if left else []
                control = {d.name(): control_info(d) for d in left}
            if answer and conn is self._conn:
                self._probe_domain = answer[0][0]
            records = [(d.name(), r) for d, r in answer]
            tags = {name: tags_for(name) for name, _ in records} if tags_for is not None else {}
            return DomainStats(records, [(d.name(), r) for d, r in left_states], control, tags)
        return self.begin("stats", "bulk stats (getAllDomainStats)", bulk)

    def control_info(self, names: list[str]) -> Call:
        """Begin reading the control info of guests by name: {name: (state, seconds in it) or None}.
        virDomainGetControlInfo is a priority call that needs no job: it tells whether a guest's monitor is
        busy with a command (occupied) and for how long, without waiting on it."""
        def read(conn: Any) -> dict[str, tuple[str, float] | None]:
            found = {}
            for name in names:
                try:
                    found[name] = control_info(conn.lookupByName(name))
                except libvirt.libvirtError:
                    found[name] = None
            return found
        return self.begin("control", "control info", read)

    def domain_metadata(self, name: str, namespace: str) -> str | None:
        """Return the XML of a domain's metadata element in `namespace`, or None (blocks; runs on the
        metadata call's own thread, see collector.domain_metadata)."""
        conn = self._conn
        if conn is None:
            raise ConnectionLost(f"domain metadata: no connection to {self.uri}")
        try:
            return conn.lookupByName(name).metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_NO_DOMAIN):
                return None
            raise

    def domain_counts(self) -> Call:
        """Begin counting domains: (running, defined)."""
        return self.begin("counts", "domain counts", lambda conn: (
            conn.numOfDomains(), conn.numOfDomains() + conn.numOfDefinedDomains()))


class DomainStats:
    """What one bulk stats call returned: full records, state-only records of the guests left out, those
    guests' control info, and the metadata tags of each domain."""

    def __init__(self, records: list[tuple[str, dict]], left_out: list[tuple[str, dict]],
                 control: dict[str, tuple[str, float] | None], tags: dict[str, dict[str, str]] | None = None):
        self.records = records
        self.left_out = left_out
        self.control = control
        self.tags = tags or {}


def control_info(domain: Any) -> tuple[str, float] | None:
    """Return (state, seconds in that state) of a guest's control interface, None when the driver cannot."""
    try:
        state, _details, state_time_ms = domain.controlInfo()
    except libvirt.libvirtError:
        return None
    return CONTROL_STATES.get(state, str(state)), state_time_ms / 1000.0


#: errors of the connection itself (libvirt's virErrorDomain): anything else failed inside a live daemon
CONNECTION_ERROR_DOMAINS = (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE)


def connection_alive(conn: Any) -> bool:
    """Return whether the client side still considers the connection alive (no RPC is made)."""
    try:
        return conn is not None and conn.isAlive() == 1
    except libvirt.libvirtError:
        return False


def close_quietly(conn: Any) -> None:
    """Close a connection, ignoring libvirt's errors (a dead connection may refuse to close cleanly)."""
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


def open_connection(uri: str, keepalive: tuple[int, int], read_only: bool = False) -> Any:
    """Open a connection (blocks: run it in a Call) with client keepalive where the driver has RPC; raise
    libvirt's error (connect_problem says what it means)."""
    conn = (libvirt.openReadOnly if read_only else libvirt.open)(uri)
    try:
        conn.setKeepAlive(*keepalive)
    except libvirt.libvirtError:
        pass  # in-process drivers (test:///, qemu:///embed) have no RPC to keep alive
    return conn


def connect_problem(uri: str, error: Any) -> LibvirtProblem:
    """Return what a failed connect means: NobodyListening (refused, or no socket file), else CallFailed."""
    message = error.get_error_message() or str(error)
    absent = error.get_int1() in _ABSENT_ERRNOS or any(text in message for text in _ABSENT_TEXT)
    if absent:
        return NobodyListening(f"cannot connect to {uri}: {message}", message)
    return CallFailed(f"cannot connect to {uri}: {message}", message, error.get_error_code())


def call_problem(what: str, uri: str, conn: Any, error: Any, close_reason: str | None = None) -> LibvirtProblem:
    """Return what a call's libvirt error means: ConnectionLost when the connection is dead (libvirt closed it,
    `close_reason`; a keepalive timeout; an RPC error; or the client says it is not alive), else CallFailed (the
    daemon answered with an error). The caller drops a lost connection."""
    message = error.get_error_message() or str(error)
    reason = "keepalive" if _KEEPALIVE_TIMEOUT.search(message) else close_reason
    if reason is not None or error.get_error_domain() in CONNECTION_ERROR_DOMAINS or not connection_alive(conn):
        return ConnectionLost(f"{what} on {uri}: {message}", reason, message)
    return CallFailed(f"{what} on {uri} failed: {message}", message, error.get_error_code())
