"""The soak's libvirt side: connections with deadlines, test domains, cleanup. It imports `libvirt`.

collector/libvirt_source.py is the agent's one libvirt module; this is the only other one, because the soak
needs what the agent never does (its own connection per client, define/undefine, lifecycle calls). Its calls
are libvirt_source's: a `Call` on a thread of its own, `open_connection` with client keepalive (on libvirt's
event loop), and `call_problem`'s rule for telling a lost connection from an error inside a live daemon.

Deadlines: each call of a Connection runs on a daemon thread of its own (so a call stuck in a hung daemon never
holds up the soak or the interpreter's exit), one at a time; a call past its deadline raises
CallError("timeout") and the connection is abandoned: a closer thread closes it when the call returns, which
client keepalive makes happen after keepalive_interval*(keepalive_count+1) seconds
(libvirt src/rpc/virkeepalive.c).

Test domains are named `virtwatch-soak-<run>-<n>` and carry a metadata element naming their run, pid and
host; cleanup removes a domain only when both its name and that element say the soak made it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import libvirt

from collector.libvirt_source import (Call, ConnectionLost, close_quietly, call_problem, connect_problem,
                                     open_connection, start_event_loop)

NAME_PREFIX = "virtwatch-soak-"
NAME_PATTERN = re.compile(r"virtwatch-soak-([0-9a-f]{8})-([0-9]+)")
METADATA_NS = "https://virtwatch.dev/xmlns/soak/1"
METADATA_PREFIX = "virtwatchsoak"
STATS_NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
#: the kinds of error that are not a libvirt error code: the daemon did not answer
TIMEOUT, LOST, CANNOT_CONNECT = "timeout", "connection lost", "cannot connect"
UNANSWERED = (TIMEOUT, LOST, CANNOT_CONNECT)
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

class Connection:
    """One libvirt connection whose calls run one at a time, each under a deadline, raising CallError."""

    def __init__(self, uri: str, timeout_seconds: float, keepalive: tuple[int, int] = (5, 5), name: str = "soak"):
        self.uri = uri
        self.timeout_seconds = timeout_seconds
        self.keepalive = keepalive
        self.name = name
        self._conn: Any = None
        self._closers: list[threading.Thread] = []
        start_event_loop()

    @property
    def is_open(self) -> bool:
        """Whether a connection is open (calls can be made without connecting first)."""
        return self._conn is not None

    def stuck_workers(self) -> int:
        """Return how many abandoned connections are still inside a call (a hung daemon holds them)."""
        self._closers = [closer for closer in self._closers if closer.is_alive()]
        return len(self._closers)

    def open(self) -> None:
        """Connect under the deadline; raise CallError(cannot connect or timeout)."""
        if self._conn is None:
            self._conn = self._run("connecting", lambda: open_connection(self.uri, self.keepalive), None)

    def call(self, function: Callable[[Any], Any]) -> Any:
        """Run function(connection) under the deadline (connecting first if needed) and return its result."""
        self.open()
        conn = self._conn
        return self._run("the call", lambda: function(conn), conn)

    def _run(self, what: str, function: Callable[[], Any], conn: Any) -> Any:
        """Run function() under the deadline (conn None: it connects); raise CallError, abandoning the connection
        when the daemon did not answer."""
        call = Call("soak", what)
        call.run_on_thread(function, lambda error: self._problem(error, conn), f"{self.name}-libvirt")
        if not call.wait(self.timeout_seconds):
            self._abandon(call)
            raise CallError(TIMEOUT, f"{what} took longer than {self.timeout_seconds:g} s on {self.uri}")
        try:
            return call.result()
        except CallError as error:
            if error.kind in UNANSWERED:
                self._abandon(call)
            raise

    def _problem(self, error: Exception, conn: Any) -> BaseException:
        """Return the CallError a libvirt error means (conn None: connecting); any other exception as it is."""
        if not isinstance(error, libvirt.libvirtError):
            return error  # a bug in the workload, not the daemon
        if conn is None:
            return CallError(CANNOT_CONNECT, str(connect_problem(self.uri, error)))
        problem = call_problem("the call", self.uri, conn, error)
        if isinstance(problem, ConnectionLost):
            # a keepalive timeout is a hung daemon, as a deadline would say; anything else, a lost connection
            return CallError(TIMEOUT if problem.reason == "keepalive" else LOST, problem.detail)
        return CallError(error_code_name(problem.code), problem.detail)

    def _abandon(self, call: Call | None) -> None:
        """Drop the connection without waiting: a closer thread closes it once `call` (if any) has returned."""
        conn, self._conn = self._conn, None
        if conn is None and call is None:
            return
        closer = threading.Thread(target=_close_when_done, args=(conn, call), name=f"{self.name}-libvirt-close",
                                  daemon=True)
        closer.start()
        self._closers.append(closer)

    def abandon(self) -> None:
        """Drop the connection without waiting for a call in it; the next call connects again."""
        self._abandon(None)

    def close(self) -> None:
        """Close the connection (on a thread of its own: never blocks)."""
        self.abandon()


def _close_when_done(conn: Any, call: Call | None) -> None:
    """Wait for a call to return, then close the connection (or the one an abandoned connect opened late)."""
    if call is not None:
        call.wait(None)
        if conn is None and call.done:
            try:
                conn = call.result()
            except Exception:  # noqa: BLE001 - the connect failed: nothing to close
                return
    if conn is not None:
        close_quietly(conn)


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
