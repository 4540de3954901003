"""libvirtd's worker pool and clients from its admin API, read by a helper process through ctypes.

libvirt-python has no bindings for the admin API (virAdm*), so `libvirt-admin.so.0` is called through
ctypes (with `libvirt.so.0` for typed parameters and errors). That happens in a HELPER PROCESS, this file run
as a script, for two reasons measured on libvirt 9.0:

- libvirt-admin.so.0 carries its own copy of libvirt's object types (src/datatypes.c). Once one library has
  registered them with GLib, the other's registration fails ("cannot register existing type 'virConnect'")
  and its next connection dies in g_object_new with SIGSEGV: an admin connection and a libvirt-python
  connection cannot live in one process, whichever opens first.
- Admin calls on a stopped (SIGSTOP) or wedged daemon hang until it runs again (the admin client has no
  keepalive). The caller never waits past the deadline, and a request past it stays the ONE outstanding
  request, whichever kind it is: the next call waits for its answer instead of asking again (and drops that
  answer when it was for the other kind of request), so a drowning daemon is not sent a new request or a new
  admin connection every interval. `close()` kills a helper that is stuck.

The helper keeps its admin connection open between requests and replaces it after an error. It speaks one
line each way on stdin/stdout; every request may also be answered `{"unavailable": "libvirt's message"}`:

    read     → {"fields": {"workers_min": 2, ...}}
    clients  → {"clients": [{"id": 7, "transport": "unix", "connected_at": 1796433754.0, "pid": 4242,
                             "uid": 0, "user": "root", "readonly": false}, ...], "clients_left_out": 0}

(connected_at is seconds since the epoch, whole, None when the daemon does not know; a tcp or tls client
carries "address" and no pid/uid/user, and libvirt says readonly false for it; a client that disconnects while
the list is read is left out; beyond MAX_CLIENTS_LISTED clients the rest are only counted in
clients_left_out). The helper exits at the end of stdin, so it goes when the agent does (after any call it is
stuck in). Measured: a read on the kept connection takes about 0.3 ms; a client list 1 ms with 15 clients,
31 ms with 200, 0.38 s with 1000 (see MAX_CLIENTS_LISTED); starting a helper and connecting about 90 ms (first
request, and the one after an error or timeout). A helper killed while its call is stuck leaves one `Cannot
recv data: Connection reset by peer` error line in the daemon's log once the daemon runs again.

`group_clients` and `describe_clients` turn a client list into the processes holding the daemon's
connections, named from /proc, and into words for a log line.

Exceptions:

    AdminError
    ├── AdminUnavailable   the admin socket cannot be reached or read, a call failed, or the helper died
    └── AdminTimeout       the daemon did not answer within the deadline (stopped or hung)
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

# Typed parameter names: include/libvirt/libvirt-admin.h (VIR_THREADPOOL_WORKERS_*, VIR_SERVER_CLIENTS_*).
THREAD_POOL_FIELDS = {
    "minWorkers": "workers_min",
    "maxWorkers": "workers_max",
    "nWorkers": "workers_current",
    "freeWorkers": "workers_free",
    "prioWorkers": "workers_priority",
    "jobQueueDepth": "job_queue_depth",
}
CLIENT_LIMIT_FIELDS = {
    "nclients": "clients",
    "nclients_max": "clients_max",
}
CLIENT_TRANSPORTS = {0: "unix", 1: "tcp", 2: "tls"}  # virClientTransport: include/libvirt/libvirt-admin.h
VIR_ERR_NO_CLIENT = 96  # virErrorNumber (include/libvirt/virterror.h): the client id is gone from the server
# Describing a client is one virAdmClientGetInfo round trip, and every admin round trip slows as the daemon
# holds more clients (measured: 0.15 ms with 15, 0.7 ms with 1000, 2.4 ms with 3000), so listing is quadratic:
# 1 ms for 15 clients, 31 ms for 200, 0.38 s for 1000, 1.4 s for 1000 of 3000. libvirtd allows 5000 (max_clients).
MAX_CLIENTS_LISTED = 1000

CLOSE_GRACE_SECONDS = 1.0  # close(): how long the helper may take to close its connection before it is killed


class AdminError(Exception):
    """The admin API could not be read."""


class AdminUnavailable(AdminError):
    """The admin socket cannot be reached or read (missing, refused, permission denied), or a call failed."""


class AdminTimeout(AdminError):
    """The admin API did not answer within the deadline: the daemon is stopped or hung."""


# --- the helper process: libvirt-admin.so.0 through ctypes ------------------------------------------------

class _TypedParameterValue(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("ui", ctypes.c_uint), ("l", ctypes.c_longlong),
                ("ul", ctypes.c_ulonglong), ("d", ctypes.c_double), ("b", ctypes.c_char), ("s", ctypes.c_char_p)]


class _TypedParameter(ctypes.Structure):
    """virTypedParameter (include/libvirt/libvirt-common.h): field[VIR_TYPED_PARAM_FIELD_LENGTH], type, value."""

    _fields_ = [("field", ctypes.c_char * 80), ("type", ctypes.c_int), ("value", _TypedParameterValue)]


_TYPED_PARAM_MEMBERS = {1: "i", 2: "ui", 3: "l", 4: "ul", 5: "d", 6: "b", 7: "s"}  # virTypedParameterType
_TYPED_PARAM_BOOLEAN, _TYPED_PARAM_STRING = 6, 7
_ParamArray = ctypes.POINTER(_TypedParameter)
_ClientArray = ctypes.POINTER(ctypes.c_void_p)  # virAdmClientPtr *: NULL-terminated, from g_new
_ERROR_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)  # virErrorFunc(void *userData, virErrorPtr)
_SILENT_ERROR_FUNC = _ERROR_FUNC(lambda _user_data, _error: None)


def _typed_value(param: _TypedParameter) -> int | float | bool | str:
    """Return one typed parameter's value: a number, a bool, or text (libvirt's strings are UTF-8)."""
    value = getattr(param.value, _TYPED_PARAM_MEMBERS[param.type])
    if param.type == _TYPED_PARAM_BOOLEAN:
        return value != b"\0"
    if param.type == _TYPED_PARAM_STRING:
        return value.decode("utf-8", "replace") if value is not None else ""
    return value


class _ClientGone(AdminUnavailable):
    """The client disconnected between the list and the call about it (VIR_ERR_NO_CLIENT)."""


class _Library:
    """The admin and main libvirt shared libraries with the signatures the helper uses."""

    def __init__(self) -> None:
        if "libvirtmod" in sys.modules:
            raise RuntimeError("libvirt-admin.so.0 cannot share a process with libvirt-python (both register "
                               "libvirt's object types; the second to connect crashes): use AdminClient")
        self.admin = ctypes.CDLL("libvirt-admin.so.0")
        self.libvirt = ctypes.CDLL("libvirt.so.0")
        a, v, p = self.admin, self.libvirt, ctypes.c_void_p
        a.virAdmConnectOpen.argtypes, a.virAdmConnectOpen.restype = [ctypes.c_char_p, ctypes.c_uint], p
        a.virAdmConnectLookupServer.argtypes = [p, ctypes.c_char_p, ctypes.c_uint]
        a.virAdmConnectLookupServer.restype = p
        for getter in (a.virAdmServerGetThreadPoolParameters, a.virAdmServerGetClientLimits):
            getter.argtypes = [p, ctypes.POINTER(_ParamArray), ctypes.POINTER(ctypes.c_int), ctypes.c_uint]
            getter.restype = ctypes.c_int
        a.virAdmServerFree.argtypes, a.virAdmServerFree.restype = [p], ctypes.c_int
        a.virAdmServerListClients.argtypes = [p, ctypes.POINTER(_ClientArray), ctypes.c_uint]
        a.virAdmServerListClients.restype = ctypes.c_int
        a.virAdmClientGetID.argtypes, a.virAdmClientGetID.restype = [p], ctypes.c_ulonglong
        a.virAdmClientGetTimestamp.argtypes, a.virAdmClientGetTimestamp.restype = [p], ctypes.c_longlong
        a.virAdmClientGetTransport.argtypes, a.virAdmClientGetTransport.restype = [p], ctypes.c_int
        a.virAdmClientGetInfo.argtypes = [p, ctypes.POINTER(_ParamArray), ctypes.POINTER(ctypes.c_int), ctypes.c_uint]
        a.virAdmClientGetInfo.restype = ctypes.c_int
        a.virAdmClientFree.argtypes, a.virAdmClientFree.restype = [p], ctypes.c_int
        a.virAdmConnectClose.argtypes, a.virAdmConnectClose.restype = [p], ctypes.c_int
        v.virTypedParamsFree.argtypes, v.virTypedParamsFree.restype = [_ParamArray, ctypes.c_int], None
        v.virGetLastErrorMessage.argtypes, v.virGetLastErrorMessage.restype = [], ctypes.c_char_p
        v.virGetLastErrorCode.argtypes, v.virGetLastErrorCode.restype = [], ctypes.c_int
        # virAdmServerListClients' array comes from g_new (GLib's allocator is malloc); its docs: free() it.
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self.libc.free.argtypes, self.libc.free.restype = [p], None
        v.virSetErrorFunc.argtypes, v.virSetErrorFunc.restype = [p, _ERROR_FUNC], None
        # libvirt prints every error to stderr ("libvirt: XML-RPC error : ...") unless a handler is set;
        # libvirt-admin.so.0 has no handler function of its own, its errors go through libvirt.so.0's
        # process-wide one. Silence it (this is the helper's own process); errors come from
        # virGetLastErrorMessage instead.
        v.virSetErrorFunc(None, _SILENT_ERROR_FUNC)

    def last_error(self) -> str:
        """Return this thread's last libvirt error message (libvirt keeps it per thread)."""
        message = self.libvirt.virGetLastErrorMessage()
        return message.decode("utf-8", "replace") if message else "unknown error"


class _Connection:
    """One admin connection and its server handle, opened on first use."""

    def __init__(self, lib: _Library, uri: str | None, server: str) -> None:
        self.lib, self.uri, self.server_name = lib, uri, server
        self.where = uri or "the default admin URI"
        self.conn: int | None = None
        self.server: int | None = None

    def _open(self) -> None:
        conn = self.lib.admin.virAdmConnectOpen(self.uri.encode() if self.uri else None, 0)
        if not conn:
            raise AdminUnavailable(f"cannot open {self.where}: {self.lib.last_error()}")
        self.conn = conn
        server = self.lib.admin.virAdmConnectLookupServer(conn, self.server_name.encode(), 0)
        if not server:
            raise AdminUnavailable(f"server {self.server_name!r} on {self.where}: {self.lib.last_error()}")
        self.server = server

    def _params(self, getter: Any, what: str, handle: int | None = None) -> dict[str, int | float | bool | str]:
        """Call a typed-parameter getter on `handle` (default: the server); _ClientGone if its client left."""
        params, count = _ParamArray(), ctypes.c_int(0)
        if getter(self.server if handle is None else handle, ctypes.byref(params), ctypes.byref(count), 0) < 0:
            gone = self.lib.libvirt.virGetLastErrorCode() == VIR_ERR_NO_CLIENT
            raise (_ClientGone if gone else AdminUnavailable)(f"{what} on {self.where}: {self.lib.last_error()}")
        try:
            return {params[i].field.decode(): _typed_value(params[i])
                    for i in range(count.value) if params[i].type in _TYPED_PARAM_MEMBERS}
        finally:
            self.lib.libvirt.virTypedParamsFree(params, count.value)

    def _read_once(self) -> dict[str, int]:
        admin = self.lib.admin
        pool = self._params(admin.virAdmServerGetThreadPoolParameters, "virAdmServerGetThreadPoolParameters")
        limits = self._params(admin.virAdmServerGetClientLimits, "virAdmServerGetClientLimits")
        fields = {field: int(pool[name]) for name, field in THREAD_POOL_FIELDS.items() if name in pool}
        fields.update({field: int(limits[name]) for name, field in CLIENT_LIMIT_FIELDS.items() if name in limits})
        return fields

    def _clients_once(self) -> dict[str, Any]:
        admin = self.lib.admin
        array = _ClientArray()
        count = admin.virAdmServerListClients(self.server, ctypes.byref(array), 0)
        if count < 0:
            raise AdminUnavailable(f"virAdmServerListClients on {self.where}: {self.lib.last_error()}")
        handles = array[:count]
        try:
            clients = []
            for handle in handles[:MAX_CLIENTS_LISTED]:
                try:
                    clients.append(self._client(handle))
                except _ClientGone:
                    continue  # it disconnected after the list was taken: no longer a holder
            return {"clients": clients, "clients_left_out": max(0, count - MAX_CLIENTS_LISTED)}
        finally:
            for handle in handles:
                admin.virAdmClientFree(handle)  # only drops a reference (no call to the daemon)
            self.lib.libc.free(array)

    def _client(self, handle: int) -> dict[str, Any]:
        """Describe one client: its id, transport and timestamp come with the list, the rest from a call."""
        admin = self.lib.admin
        info = self._params(admin.virAdmClientGetInfo, "virAdmClientGetInfo", handle)
        connected_at = admin.virAdmClientGetTimestamp(handle)  # 0: the daemon does not know
        client = {"id": admin.virAdmClientGetID(handle),
                  "transport": CLIENT_TRANSPORTS.get(admin.virAdmClientGetTransport(handle), "unknown"),
                  "connected_at": float(connected_at) if connected_at > 0 else None,
                  "pid": info.get("unix_process_id"), "uid": info.get("unix_user_id"),
                  "user": info.get("unix_user_name"), "readonly": info.get("readonly")}
        if "sock_addr" in info:
            client["address"] = info["sock_addr"]
        return client

    def _call(self, once: Any) -> Any:
        """Run `once` on the connection (opened if needed); a kept connection that fails is replaced once
        (the daemon restarted), and a failed one is closed."""
        while True:
            kept = self.server is not None
            try:
                if not kept:
                    self._open()
                return once()
            except AdminUnavailable:
                self.close()
                if not kept:
                    raise

    def read(self) -> dict[str, int]:
        """Read the worker pool and client limit parameters."""
        return self._call(self._read_once)

    def clients(self) -> dict[str, Any]:
        """List the server's clients: `{"clients": [...], "clients_left_out": n}`."""
        return self._call(self._clients_once)

    def close(self) -> None:
        """Free the server handle and close the connection (a close call to the daemon)."""
        server, conn, self.server, self.conn = self.server, self.conn, None, None
        if server is not None:
            self.lib.admin.virAdmServerFree(server)  # only drops a reference: cannot fail on a valid handle
        if conn is not None and self.lib.admin.virAdmConnectClose(conn) < 0:
            print(f"virAdmConnectClose on {self.where}: {self.lib.last_error()}", file=sys.stderr)


def serve(uri: str | None, server: str, requests: Any = sys.stdin, replies: Any = sys.stdout) -> None:
    """Answer each `read` or `clients` line with one JSON line until the requests end; then close the
    connection."""
    try:
        connection: _Connection | None = _Connection(_Library(), uri, server)
        missing = ""
    except OSError as error:  # libvirt-admin.so.0 not installed: say so on every request
        connection, missing = None, f"cannot load the libvirt admin library: {error}"
    answers = {"read": lambda: {"fields": connection.read()}, "clients": lambda: connection.clients()}
    try:
        for line in requests:
            request = line.strip()
            if request not in answers:
                reply: dict[str, Any] = {"unavailable": f"admin helper: unknown request {request!r}"}
            elif connection is None:
                reply = {"unavailable": missing}
            else:
                try:
                    reply = answers[request]()
                except AdminUnavailable as error:
                    reply = {"unavailable": str(error)}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    finally:
        if connection is not None:
            connection.close()


# --- the agent's side -------------------------------------------------------------------------------------

class ClientList(list):
    """The clients `read_clients` described (dicts, see the module docstring), and `left_out`: how many more
    the daemon has that were only counted (beyond MAX_CLIENTS_LISTED)."""

    def __init__(self, clients: Iterable[dict] = (), left_out: int = 0):
        super().__init__(clients)
        self.left_out = left_out


class AdminClient:
    """Reads libvirtd's worker pool, client counts and clients through the admin API, never blocking past the
    deadline.

    `uri` is an admin URI such as `libvirtd+unix:///system?socket=/run/libvirt/libvirt-admin-sock` (None:
    libvirt's default, LIBVIRT_ADMIN_DEFAULT_URI or libvirtd:///system). `server` is the daemon's server
    name: libvirtd for the monolithic daemon, virtqemud etc. for the modular ones. One caller at a time.
    """

    def __init__(self, uri: str | None = None, timeout_seconds: float = 5.0, server: str = "libvirtd"):
        self.uri = uri
        self.timeout_seconds = timeout_seconds
        self.server = server
        self._where = uri or "the default admin URI"
        self._helper: subprocess.Popen | None = None
        self._buffer = b""
        self._killed: list[subprocess.Popen] = []  # killed helpers not yet reaped
        self._asked_for: str | None = None  # the request still unanswered: "read" or "clients"
        self._asked_at: float | None = None  # when it was sent
        self.requests_sent = 0  # requests written to helpers, all kinds

    @property
    def helper_pid(self) -> int | None:
        """The pid of the running helper process, or None when there is none (yet, or after close)."""
        return self._helper.pid if self._helper is not None else None

    def read(self) -> dict[str, int]:
        """Return workers_min/max/current/free/priority, job_queue_depth, clients and clients_max.

        A request the daemon has not answered stays outstanding: the next read waits for ITS answer instead
        of asking again, so a hung daemon sees one admin call from the agent, not one per interval.
        Raises AdminUnavailable or AdminTimeout (see the module docstring).
        """
        return self._ask("read")["fields"]

    def read_clients(self) -> ClientList:
        """Return the daemon's clients (at most MAX_CLIENTS_LISTED; `.left_out` counts the rest), each
        `{"id", "transport", "connected_at", "pid", "uid", "user", "readonly"}` (+ "address" for tcp/tls).

        Shares read()'s one outstanding request: while a `read` waits past its deadline, this raises
        AdminTimeout without asking. Raises AdminUnavailable or AdminTimeout like read().
        """
        reply = self._ask("clients")
        return ClientList(reply["clients"], reply.get("clients_left_out", 0))

    def _ask(self, request: str) -> dict[str, Any]:
        """Send `request` (unless it is the one still outstanding) and return the helper's reply to it.

        An outstanding request of the other kind is waited for first, within the same deadline; its late
        answer is dropped, never taken for this request's.
        """
        deadline = time.monotonic() + self.timeout_seconds
        self._reap()
        helper = self._helper or self._start()
        try:
            if self._asked_for not in (None, request):
                self._read_line(helper, deadline)  # the earlier request's answer: stale, not ours
                self._asked_for = self._asked_at = None
            if self._asked_for is None:
                os.write(helper.stdin.fileno(), request.encode() + b"\n")
                self._asked_for, self._asked_at = request, time.monotonic()
                self.requests_sent += 1
            line = self._read_line(helper, deadline)
        except TimeoutError:
            waited = time.monotonic() - self._asked_at
            if self._asked_for != request:
                raise AdminTimeout(f"{self._where}: no answer within {self.timeout_seconds:g} s (daemon stopped or "
                                   f"hung; the earlier {self._asked_for!r} request still waits, for {waited:.0f} s, "
                                   f"so {request!r} was not sent)") from None
            raise AdminTimeout(f"{self._where}: no answer within {self.timeout_seconds:g} s (daemon stopped or "
                               f"hung; its one request has waited {waited:.0f} s)") from None
        except (BrokenPipeError, EOFError):
            self._kill()
            raise AdminUnavailable(f"{self._where}: the admin helper died; see its stderr") from None
        self._asked_for = self._asked_at = None
        reply = json.loads(line)
        if "unavailable" in reply:
            raise AdminUnavailable(reply["unavailable"])
        return reply

    def _start(self) -> subprocess.Popen:
        command = [sys.executable, "-I", str(Path(__file__).resolve()), "--server", self.server]
        if self.uri:
            command += ["--uri", self.uri]
        try:
            self._helper = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                            start_new_session=True)  # Ctrl-C on the agent: not for the helper
        except OSError as error:
            raise AdminUnavailable(f"cannot start the admin helper {command[0]}: {error}") from None
        self._buffer = b""
        return self._helper

    def _read_line(self, helper: subprocess.Popen, deadline: float) -> bytes:
        """Return the helper's next reply line; TimeoutError past the deadline, EOFError when it exits."""
        fd = helper.stdout.fileno()
        poller = select.poll()  # not select.select: it fails on descriptors above 1023
        poller.register(fd, select.POLLIN)
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _kill(self) -> None:
        """Kill the helper (and with it a connection stuck in a call); reaped later, never waited for."""
        helper, self._helper, self._asked_for, self._asked_at = self._helper, None, None, None
        if helper is not None:
            helper.kill()
            helper.stdin.close()
            helper.stdout.close()
            self._killed.append(helper)

    def _reap(self) -> None:
        self._killed = [helper for helper in self._killed if helper.poll() is None]

    def close(self) -> None:
        """Let the helper close its connection and exit; kill it after CLOSE_GRACE_SECONDS, or at once when
        its request is stuck in a daemon that does not answer."""
        if self._asked_at is not None:
            self._kill()
            self._reap()
            return
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.stdin.close()
            try:
                helper.wait(CLOSE_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._helper = helper
                self._kill()
            else:
                helper.stdout.close()
        self._reap()


# --- who holds the daemon's connections: pure functions of a client list -----------------------------------

AGENT_ITSELF = "the virtwatch agent itself"


@dataclass(frozen=True)
class ClientGroup:
    """The connections of one client process (unix socket) or one remote host (tcp, tls)."""

    process: str  # /proc comm as it is (data: any text), or a fallback name; "tcp 10.0.0.5" for a remote host
    pid: int | None
    uid: int | None
    connections: int
    readonly: int  # of the connections, how many are read-only
    own: bool  # its pid is in own_pids: the agent (its admin helper is a client of the daemon's "admin"
    #            server, not of the server listed, so it never shows here)


def group_clients(clients: Iterable[dict], proc_root: Path = Path("/proc"),
                  own_pids: frozenset[int] = frozenset()) -> list[ClientGroup]:
    """Group clients by process (unix) or remote host (tcp, tls), most connections first, then by name.

    A process is named by `<proc_root>/<pid>/comm`; when that is gone (it exited, or lives in another pid
    namespace), by its user. Remote clients are grouped by host, not host:port: every connection has a port
    of its own.
    """
    members: dict[tuple, list[dict]] = {}
    for client in clients:
        members.setdefault(_group_key(client), []).append(client)
    groups = [_group(key, found, proc_root, own_pids) for key, found in members.items()]
    return sorted(groups, key=lambda group: (-group.connections, group.process, group.pid or 0))


def _group_key(client: dict) -> tuple:
    if client.get("transport", "unix") != "unix":
        return ("remote", client["transport"], _host(client.get("address")))
    if client.get("pid") is not None:
        return ("pid", client["pid"])
    return ("user", client.get("uid"), client.get("user"))


def _host(address: str | None) -> str | None:
    """'10.0.0.5:49152' → '10.0.0.5', '[::1]:49152' → '[::1]' (libvirt's sock_addr is host:port)."""
    return address.rsplit(":", 1)[0] if address and ":" in address else address


def _group(key: tuple, clients: list[dict], proc_root: Path, own_pids: frozenset[int]) -> ClientGroup:
    first = clients[0]
    pid = first.get("pid") if key[0] == "pid" else None
    if key[0] == "remote":
        process = f"{key[1]} {key[2] or 'client'}"
    else:
        user = first.get("user")
        process = (_comm(proc_root, pid) if pid is not None else None) or (
            f"a process of {user}" if user else "unknown process")
    return ClientGroup(process=process, pid=pid, uid=first.get("uid") if key[0] != "remote" else None,
                       connections=len(clients), readonly=sum(1 for c in clients if c.get("readonly")),
                       own=pid is not None and pid in own_pids)


def _comm(proc_root: Path, pid: int) -> str | None:
    """A process's name from /proc (kernel-truncated to 15 bytes, so maybe cut inside a UTF-8 character),
    or None when the process is gone."""
    try:
        raw = (proc_root / str(pid) / "comm").read_bytes()
    except OSError:  # gone (or never visible here): the caller falls back to the user name
        return None
    return raw.removesuffix(b"\n").decode("utf-8", "replace") or None


def describe_clients(groups: list[ClientGroup], limit: int = 3) -> str:
    """Say who holds the connections, e.g. '14 connections from python3 (pid 4242), 2 from the virtwatch agent
    itself (pid 77), and 5 more from 3 other processes'."""
    from tsdb.point import printable  # here, not at the top: this file also runs as the helper, without tsdb

    if not groups:
        return "no connections"
    parts = []
    for group in groups[:limit]:
        count = f"{group.connections} connection{'s' if group.connections != 1 else ''}" if not parts \
            else str(group.connections)
        pid = f" (pid {group.pid})" if group.pid is not None else ""
        parts.append(f"{count} from {AGENT_ITSELF if group.own else printable(group.process)}{pid}")
    rest = groups[limit:]
    if rest:
        others = f"{len(rest)} other process{'es' if len(rest) != 1 else ''}"
        parts.append(f"and {sum(group.connections for group in rest)} more from {others}")
    return ", ".join(parts)


def main() -> None:
    """Run the helper: `read` and `clients` lines on stdin, JSON lines on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="admin URI (default: libvirt's default admin URI)")
    parser.add_argument("--server", default="libvirtd", help="server name in the daemon")
    args = parser.parse_args()
    serve(args.uri, args.server)


if __name__ == "__main__":
    main()
