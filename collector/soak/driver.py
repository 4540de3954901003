"""The soak's libvirt side: connections with deadlines, test domains, cleanup. It imports `libvirt`.

collector/libvirt_source.py is the agent's one libvirt module; this is the only other one, because the soak
needs what the agent never does (its own connection per client, define/undefine, lifecycle calls). It reuses
libvirt_source's event loop (client keepalive needs one) and its rule for telling a lost connection from an
error inside a live daemon, without changing that module.

Deadlines: each Connection runs its calls on its own worker thread (a daemon thread, so a call stuck in a
hung daemon never holds up the soak or the interpreter's exit); a call past its deadline raises
CallError("timeout") and the worker is abandoned: it closes its connection and exits when the call returns,
which client keepalive makes happen after keepalive_interval*(keepalive_count+1) seconds
(libvirt src/rpc/virkeepalive.c).

Test domains are named `virtwatch-soak-<run>-<n>` and carry a metadata element naming their run, pid and
host; cleanup removes a domain only when both its name and that element say the soak made it.
"""

from __future__ import annotations

import queue
import re
import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import libvirt

from collector.libvirt_source import CONNECTION_ERROR_DOMAINS, connection_alive, start_event_loop
from collector.signatures import by_name

NAME_PREFIX = "virtwatch-soak-"
NAME_PATTERN = re.compile(r"virtwatch-soak-([0-9a-f]{8})-([0-9]+)")
METADATA_NS = "https://virtwatch.dev/xmlns/soak/1"
METADATA_PREFIX = "virtwatchsoak"
STATS_NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
#: the kinds of error that are not a libvirt error code: the daemon did not answer
TIMEOUT, LOST, CANNOT_CONNECT = "timeout", "connection lost", "cannot connect"
UNANSWERED = (TIMEOUT, LOST, CANNOT_CONNECT)
_KEEPALIVE_TIMEOUT = by_name("keepalive_timeout").pattern
#: virErrorLevel shares the VIR_ERR_ prefix with virErrorNumber (include/libvirt/virterror.h)
_ERROR_LEVELS = ("VIR_ERR_NONE", "VIR_ERR_WARNING", "VIR_ERR_ERROR")
ERROR_CODE_NAMES: dict[int, str] = {}
for _name in sorted(name for name in dir(libvirt) if name.startswith("VIR_ERR_") and name not in _ERROR_LEVELS):
    ERROR_CODE_NAMES.setdefault(getattr(libvirt, _name), _name)


class CallError(Exception):
    """A call failed; `kind` is timeout, connection lost, cannot connect or a libvirt error code's name."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def error_code_name(code: int) -> str:
    """Return libvirt's name for an error code (VIR_ERR_NO_DOMAIN), or VIR_ERR_<number> for an unknown one."""
    return ERROR_CODE_NAMES.get(code, f"VIR_ERR_{code}")


# --- a connection with a deadline on every call ------------------------------------------------------------------

class _Worker:
    """A daemon thread that owns one libvirt connection and runs calls on it, one at a time."""

    def __init__(self, name: str):
        self.conn: Any = None
        self.abandoned = False
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def submit(self, function: Callable[[Any], Any]) -> Future:
        """Queue function(worker) and return its future."""
        future: Future = Future()
        self._jobs.put((function, future))
        return future

    def abandon(self) -> None:
        """Let the worker close its connection and exit once its current call (if any) returns."""
        self.abandoned = True
        self._jobs.put(None)

    def _loop(self) -> None:
        """Run queued calls until abandoned, then close the connection."""
        while not self.abandoned:
            job = self._jobs.get()
            if job is None:
                break
            function, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(self))
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass


class Connection:
    """One libvirt connection on its own worker thread; every call under a deadline, raising CallError."""

    def __init__(self, uri: str, timeout_seconds: float, keepalive: tuple[int, int] = (5, 5), name: str = "soak"):
        self.uri = uri
        self.timeout_seconds = timeout_seconds
        self.keepalive = keepalive
        self.name = name
        self._worker: _Worker | None = None
        self._abandoned: list[_Worker] = []
        start_event_loop()

    @property
    def is_open(self) -> bool:
        """Whether a connection is open (calls can be made without connecting first)."""
        return self._worker is not None and self._worker.conn is not None

    def stuck_workers(self) -> int:
        """Return how many abandoned workers are still inside a call (a hung daemon holds them)."""
        self._abandoned = [worker for worker in self._abandoned if worker.thread.is_alive()]
        return len(self._abandoned)

    def open(self) -> None:
        """Connect under the deadline; raise CallError(cannot connect or timeout)."""
        if self._worker is None:
            self._worker = _Worker(f"{self.name}-libvirt")
        if self._worker.conn is None:
            self._run(self._connect, opening=True)

    def _connect(self, worker: _Worker) -> None:
        """Open the connection on the worker, with client keepalive where the driver has RPC."""
        conn = libvirt.open(self.uri)
        try:
            conn.setKeepAlive(*self.keepalive)
        except libvirt.libvirtError:
            pass  # in-process drivers (test:///) have no RPC to keep alive
        worker.conn = conn

    def call(self, function: Callable[[Any], Any]) -> Any:
        """Run function(connection) under the deadline (connecting first if needed) and return its result."""
        self.open()
        return self._run(lambda worker: function(worker.conn), opening=False)

    def _run(self, function: Callable[[_Worker], Any], opening: bool) -> Any:
        """Run function(worker) under the deadline; turn timeouts and libvirt errors into CallError."""
        future = self._worker.submit(function)
        try:
            return future.result(self.timeout_seconds)
        except FutureTimeout:
            self.abandon()
            what = "connecting" if opening else "the call"
            raise CallError(TIMEOUT, f"{what} took longer than {self.timeout_seconds:g} s on {self.uri}") from None
        except libvirt.libvirtError as error:
            message = error.get_error_message()
            if opening:
                self.abandon()
                raise CallError(CANNOT_CONNECT, f"cannot connect to {self.uri}: {message}") from None
            if _KEEPALIVE_TIMEOUT.search(message):
                self.abandon()  # the peer stopped answering keepalives: a hung daemon, as a deadline would say
                raise CallError(TIMEOUT, message) from None
            if error.get_error_domain() in CONNECTION_ERROR_DOMAINS or not connection_alive(self._worker.conn):
                self.abandon()
                raise CallError(LOST, message) from None
            raise CallError(error_code_name(error.get_error_code()), message) from None

    def abandon(self) -> None:
        """Drop the connection without waiting for its worker; the next call connects again."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.abandon()
            self._abandoned.append(worker)

    def close(self) -> None:
        """Close the connection (in its worker, after the current call: never blocks)."""
        self.abandon()


# --- test domains ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunMark:
    """Who made a test domain: the soak run's id, its process id and its host (from the domain's metadata)."""

    run_id: str
    pid: int
    host: str


def domain_name(run_id: str, number: int) -> str:
    """Return the name of a run's test domain number `number`."""
    return f"{NAME_PREFIX}{run_id}-{number}"


def domain_xml(name: str, mark: RunMark, domain_type: str) -> str:
    """Return the XML of a test domain: the test driver's minimal domain, or a tiny diskless QEMU guest."""
    metadata = (f"<metadata><{METADATA_PREFIX}:run xmlns:{METADATA_PREFIX}={quoteattr(METADATA_NS)} "
                f"id={quoteattr(mark.run_id)} pid='{mark.pid}' host={quoteattr(mark.host)}/></metadata>")
    if domain_type == "test":
        return (f"<domain type='test'><name>{name}</name><memory unit='KiB'>65536</memory>"
                f"<os><type>hvm</type></os>{metadata}</domain>")
    # QEMU: 32 MiB, 1 vCPU, no disk, no network, no balloon: SeaBIOS finds nothing to boot and idles
    return (f"<domain type='{domain_type}'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
            f"<os><type>hvm</type></os><on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>"
            f"<devices><memballoon model='none'/></devices>{metadata}</domain>")


def domain_type_of(conn: Any) -> str | None:
    """Return the domain type test domains get on this connection (test, kvm, qemu), None for other drivers."""
    driver = conn.getType().upper()
    if driver == "TEST":
        return "test"
    if driver == "QEMU":
        return "kvm" if "<domain type='kvm'" in conn.getCapabilities() else "qemu"
    return None


def parse_mark(xml: str) -> RunMark | None:
    """Return the RunMark of a metadata element, or None when it is not one."""
    try:
        element = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pid = element.get("pid", "")
    # libvirt hands back the element of the namespace it was asked for without the namespace declaration
    if element.tag not in ("run", f"{{{METADATA_NS}}}run") or not element.get("id") or not pid.isdigit():
        return None
    return RunMark(element.get("id"), int(pid), element.get("host", ""))


def marked_domains(conn: Any) -> list[tuple[str, RunMark]]:
    """Return (name, mark) of every domain named like a soak's test domain and carrying a soak's metadata."""
    found = []
    for dom in conn.listAllDomains(0):
        name = dom.name()
        match = NAME_PATTERN.fullmatch(name)
        if not match:
            continue
        try:
            mark = parse_mark(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0))
        except libvirt.libvirtError as error:
            if error.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_NO_DOMAIN):
                continue  # not ours, or gone meanwhile
            raise
        if mark is not None and mark.run_id == match.group(1):
            found.append((name, mark))
    return found


def remove_domain(conn: Any, name: str) -> None:
    """Destroy (if running) and undefine a domain; one that is already gone is fine."""
    try:
        dom = conn.lookupByName(name)
        if dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # stopped meanwhile
                    raise
        dom.undefine()
    except libvirt.libvirtError as error:
        if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise


# --- the workload's calls: each takes the connection -------------------------------------------------------------

def all_domain_stats(conn: Any) -> int:
    """Bulk stats of every domain (NOWAIT, as the agent asks); return how many domains answered."""
    return len(conn.getAllDomainStats(0, STATS_NOWAIT))


def list_domains(conn: Any) -> int:
    """List every domain; return how many there are."""
    return len(conn.listAllDomains(0))


def define_domain(conn: Any, xml: str) -> None:
    """Define a persistent domain from XML."""
    conn.defineXML(xml)


def undefine_domain(conn: Any, name: str) -> None:
    """Undefine an inactive domain by name."""
    conn.lookupByName(name).undefine()


def start_domain(conn: Any, name: str) -> None:
    """Start a defined domain."""
    conn.lookupByName(name).create()


def destroy_domain(conn: Any, name: str) -> None:
    """Stop a running or paused domain at once."""
    conn.lookupByName(name).destroy()


def suspend_domain(conn: Any, name: str) -> None:
    """Pause a running domain."""
    conn.lookupByName(name).suspend()


def resume_domain(conn: Any, name: str) -> None:
    """Resume a paused domain."""
    conn.lookupByName(name).resume()


def domain_state(conn: Any, name: str) -> str:
    """Return a domain's state for the lifecycle cycle: absent, shutoff, running, paused or other."""
    try:
        state = conn.lookupByName(name).state()[0]
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return "absent"
        raise
    return {libvirt.VIR_DOMAIN_SHUTOFF: "shutoff", libvirt.VIR_DOMAIN_RUNNING: "running",
            libvirt.VIR_DOMAIN_BLOCKED: "running", libvirt.VIR_DOMAIN_PAUSED: "paused"}.get(state, "other")
