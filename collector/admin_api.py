"""libvirtd's worker pool and client counts from its admin API, read by a helper process through ctypes.

libvirt-python has no bindings for the admin API (virAdm*), so `libvirt-admin.so.0` is called through
ctypes (with `libvirt.so.0` for typed parameters and errors). That happens in a HELPER PROCESS, this file run
as a script, for two reasons measured on libvirt 9.0:

- libvirt-admin.so.0 carries its own copy of libvirt's object types (src/datatypes.c). Once one library has
  registered them with GLib, the other's registration fails ("cannot register existing type 'virConnect'")
  and its next connection dies in g_object_new with SIGSEGV: an admin connection and a libvirt-python
  connection cannot live in one process, whichever opens first.
- Admin calls on a stopped (SIGSTOP) or wedged daemon hang until it runs again (the admin client has no
  keepalive). The caller never waits past the deadline, and a request past it stays the ONE outstanding
  request: the next read waits for its answer instead of asking again, so a drowning daemon is not sent a
  new admin connection every interval. `close()` kills a helper that is stuck.

The helper keeps its admin connection open between reads and replaces it after an error. It speaks one line
each way on stdin/stdout: `read` → `{"fields": {...}}` or `{"unavailable": "libvirt's message"}`; it exits
at the end of stdin, so it goes when the agent does (after any call it is stuck in). Measured: a read on the
kept connection takes about 0.3 ms; starting a helper and connecting about 90 ms (first read, and the read
after an error or timeout). A helper killed while its call is stuck leaves one `Cannot recv data: Connection
reset by peer` error line in the daemon's log once the daemon runs again.

Exceptions:

    AdminError
    ├── AdminUnavailable   the admin socket cannot be reached or read, a call failed, or the helper died
    └── AdminTimeout       the daemon did not answer within the deadline (stopped or hung)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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

def describe_pool(fields: dict) -> str:
    """Return the worker pool and clients in words, e.g. 'worker pool: 0 of 10 workers free, 6 calls queued,
    15 clients' ('' without the figures)."""
    if "workers_free" not in fields:
        return ""
    text = (f"worker pool: {fields['workers_free']} of {fields.get('workers_current', '?')} workers free "
            f"(max {fields.get('workers_max', '?')}), {fields.get('job_queue_depth', 0)} calls queued")
    return text + (f", {fields['clients']} clients" if "clients" in fields else "")


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
_ParamArray = ctypes.POINTER(_TypedParameter)
_ERROR_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)  # virErrorFunc(void *userData, virErrorPtr)
_SILENT_ERROR_FUNC = _ERROR_FUNC(lambda _user_data, _error: None)


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
        a.virAdmConnectClose.argtypes, a.virAdmConnectClose.restype = [p], ctypes.c_int
        v.virTypedParamsFree.argtypes, v.virTypedParamsFree.restype = [_ParamArray, ctypes.c_int], None
        v.virGetLastErrorMessage.argtypes, v.virGetLastErrorMessage.restype = [], ctypes.c_char_p
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

    def _params(self, getter: Any, what: str) -> dict[str, int | float | bytes]:
        params, count = _ParamArray(), ctypes.c_int(0)
        if getter(self.server, ctypes.byref(params), ctypes.byref(count), 0) < 0:
            raise AdminUnavailable(f"{what} on {self.where}: {self.lib.last_error()}")
        try:
            return {params[i].field.decode(): getattr(params[i].value, _TYPED_PARAM_MEMBERS[params[i].type])
                    for i in range(count.value) if params[i].type in _TYPED_PARAM_MEMBERS}
        finally:
            self.lib.libvirt.virTypedParamsFree(params, count.value)

    def _read_once(self) -> dict[str, int]:
        if self.server is None:
            self._open()
        admin = self.lib.admin
        pool = self._params(admin.virAdmServerGetThreadPoolParameters, "virAdmServerGetThreadPoolParameters")
        limits = self._params(admin.virAdmServerGetClientLimits, "virAdmServerGetClientLimits")
        fields = {field: int(pool[name]) for name, field in THREAD_POOL_FIELDS.items() if name in pool}
        fields.update({field: int(limits[name]) for name, field in CLIENT_LIMIT_FIELDS.items() if name in limits})
        return fields

    def read(self) -> dict[str, int]:
        """Read both parameter sets; a kept connection that fails is replaced once (the daemon restarted)."""
        kept = self.server is not None
        try:
            return self._read_once()
        except AdminUnavailable:
            self.close()
            if not kept:
                raise
            return self._read_once()

    def close(self) -> None:
        """Free the server handle and close the connection (a close call to the daemon)."""
        server, conn, self.server, self.conn = self.server, self.conn, None, None
        if server is not None:
            self.lib.admin.virAdmServerFree(server)  # only drops a reference: cannot fail on a valid handle
        if conn is not None and self.lib.admin.virAdmConnectClose(conn) < 0:
            print(f"virAdmConnectClose on {self.where}: {self.lib.last_error()}", file=sys.stderr)


def serve(uri: str | None, server: str, requests: Any = sys.stdin, replies: Any = sys.stdout) -> None:
    """Answer each `read` line with one JSON line until the requests end; then close the connection."""
    try:
        connection: _Connection | None = _Connection(_Library(), uri, server)
        missing = ""
    except OSError as error:  # libvirt-admin.so.0 not installed: say so on every request
        connection, missing = None, f"cannot load the libvirt admin library: {error}"
    try:
        for line in requests:
            if line.strip() != "read":
                reply: dict[str, Any] = {"unavailable": f"admin helper: unknown request {line.strip()!r}"}
            elif connection is None:
                reply = {"unavailable": missing}
            else:
                try:
                    reply = {"fields": connection.read()}
                except AdminUnavailable as error:
                    reply = {"unavailable": str(error)}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    finally:
        if connection is not None:
            connection.close()


# --- the agent's side -------------------------------------------------------------------------------------

class AdminClient:
    """Reads libvirtd's worker pool and client counts through the admin API, never blocking past the deadline.

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
        self._asked_at: float | None = None  # when the request still unanswered was sent

    def read(self) -> dict[str, int]:
        """Return workers_min/max/current/free/priority, job_queue_depth, clients and clients_max.

        A request the daemon has not answered stays outstanding: the next read waits for ITS answer instead
        of asking again, so a hung daemon sees one admin call from the agent, not one per interval.
        Raises AdminUnavailable or AdminTimeout (see the module docstring).
        """
        now = time.monotonic()
        deadline = now + self.timeout_seconds
        self._reap()
        helper = self._helper or self._start()
        try:
            if self._asked_at is None:
                os.write(helper.stdin.fileno(), b"read\n")
                self._asked_at = now
            line = self._read_line(helper, deadline)
        except TimeoutError:
            raise AdminTimeout(f"{self._where}: no answer within {self.timeout_seconds:g} s (daemon stopped or "
                               f"hung; its one request has waited {time.monotonic() - self._asked_at:.0f} s)") from None
        except (BrokenPipeError, EOFError):
            self._kill()
            raise AdminUnavailable(f"{self._where}: the admin helper died; see its stderr") from None
        self._asked_at = None
        reply = json.loads(line)
        if "fields" in reply:
            return reply["fields"]
        raise AdminUnavailable(reply["unavailable"])

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
        helper, self._helper, self._asked_at = self._helper, None, None
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


def main() -> None:
    """Run the helper: `read` lines on stdin, JSON lines on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="admin URI (default: libvirt's default admin URI)")
    parser.add_argument("--server", default="libvirtd", help="server name in the daemon")
    args = parser.parse_args()
    serve(args.uri, args.server)


if __name__ == "__main__":
    main()
