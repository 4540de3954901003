"""An optional Prometheus `/metrics` endpoint serving the agent's last collection as gauges.

Names are `virtwatch_<measurement>_<field>`; tags become labels, escaped per the text exposition format
(backslash, double quote and line feed). String fields and events are not exported.

The server runs in a root process that any local user (or, on a non-loopback address, anyone) can connect to,
so what a client can hold is bounded:
- one thread for every connection, with a selector: a client that connects and sends nothing costs a socket,
  never a thread;
- at most MAX_CONNECTIONS open at once; another one closes the connection that has waited longest for its
  request, so idle or dripping clients cannot keep a scrape out (a scraper sends its request at once);
- CONNECTION_DEADLINE_SECONDS for the whole exchange, request and response, not per read: a client that
  sends a byte now and then, or never reads the answer, is closed at the deadline;
- a request (line and headers) of at most MAX_REQUEST_BYTES, else 431; one request per connection.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from tsdb import Point

log = logging.getLogger("virtwatch.agent")

EXPORTED = ("libvirtd", "host", "collector", "domain")
#: connections open at once; Prometheus scrapes one at a time, a few more leave room for curl and a second server
MAX_CONNECTIONS = 16
#: the whole exchange of one connection; Prometheus' default scrape_timeout is 10 s, and the answer is ready
CONNECTION_DEADLINE_SECONDS = 5.0
#: request line and headers; Prometheus sends about 300 bytes
MAX_REQUEST_BYTES = 8192
_NAME_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large"}


def render(points: list[Point]) -> str:
    """Return the text exposition of the numeric fields of the exported measurements."""
    samples: dict[str, list[str]] = {}
    for point in points:
        if point.measurement not in EXPORTED:
            continue
        labels = ",".join(f'{_NAME_INVALID.sub("_", key)}="{value.translate(_LABEL_ESCAPES)}"'
                          for key, value in sorted(point.tags.items()))
        for field_name, value in point.fields.items():
            if isinstance(value, str):
                continue
            name = "virtwatch_" + _NAME_INVALID.sub("_", f"{point.measurement}_{field_name}")
            samples.setdefault(name, []).append(f"{name}{{{labels}}} {float(value)!r}")
    lines = []
    for name in sorted(samples):
        lines.append(f"# TYPE {name} gauge")
        lines += samples[name]
    return "\n".join(lines) + "\n"


def respond(request: bytes, body: bytes) -> bytes:
    """Return the whole HTTP response to one request (its line and headers, ending in an empty line)."""
    parts = request.split(b"\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _response(400, b"not an HTTP request\n")
    method, target = parts[0], parts[1]
    if method not in (b"GET", b"HEAD"):
        return _response(405, b"only GET and HEAD are served here\n", extra=b"Allow: GET, HEAD\r\n")
    if target.split(b"?")[0] != b"/metrics":
        return _response(404, b"only /metrics is served here\n")
    response = _response(200, body, content_type=b"text/plain; version=0.0.4; charset=utf-8")
    return response[: len(response) - len(body)] if method == b"HEAD" else response


def _response(status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8",
              extra: bytes = b"") -> bytes:
    head = (f"HTTP/1.0 {status} {_REASONS[status]}\r\n".encode() + b"Content-Type: " + content_type + b"\r\n"
            + f"Content-Length: {len(body)}\r\n".encode() + b"Connection: close\r\n" + extra + b"\r\n")
    return head + body


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    deadline: float
    request: bytearray = field(default_factory=bytearray)
    response: memoryview | None = None  # what is left to send, once the request is complete


class MetricsEndpoint:
    """Serves GET /metrics from one background thread; `update()` replaces what it serves."""

    def __init__(self, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS,
                 deadline_seconds: float = CONNECTION_DEADLINE_SECONDS):
        self._body = b""
        self.max_connections = max_connections
        self.deadline_seconds = deadline_seconds
        self.evicted_total = 0  # connections closed to make room for a newer one
        self.timed_out_total = 0  # connections closed at their deadline
        family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        self._listener = socket.create_server(address, family=family, backlog=128)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        self._connections: dict[socket.socket, _Connection] = {}  # oldest first
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="virtwatch-metrics", daemon=True)
        self._thread.start()

    @property
    def connections_open(self) -> int:
        """How many client connections are open now."""
        return len(self._connections)

    def update(self, points: list[Point]) -> None:
        """Serve the given collection from now on."""
        self._body = render(points).encode("utf-8")

    def close(self) -> None:
        """Stop serving and close every connection."""
        self._closing = True
        try:
            self._wake_writer.send(b"x")
        except OSError:
            pass  # the loop has stopped already: nothing to wake
        self._thread.join(timeout=5.0)
        for conn in list(self._connections.values()):
            self._drop(conn)
        self._selector.close()
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            sock.close()

    def _serve(self) -> None:
        while not self._closing:
            now = time.monotonic()
            wait = min((conn.deadline for conn in self._connections.values()), default=now + 60.0) - now
            for key, events in self._selector.select(max(0.0, wait)):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._wake_reader.recv(64)
                elif key.data.sock in self._connections:  # not dropped by an earlier event of this round
                    self._service(key.data, events)
            now = time.monotonic()
            for conn in [conn for conn in self._connections.values() if conn.deadline <= now]:
                self.timed_out_total += 1
                self._drop(conn)

    def _accept(self) -> None:
        """Accept what waits (at most max_connections at a time, so reads get their turn), each read at once."""
        for _ in range(self.max_connections):
            try:
                sock, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors, for example: the next round tries again
                log.debug("/metrics: accept failed: %s", error)
                return
            if len(self._connections) >= self.max_connections:
                self.evicted_total += 1
                waiting = [conn for conn in self._connections.values() if conn.response is None]
                self._drop(waiting[0] if waiting else next(iter(self._connections.values())))
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self.deadline_seconds)
            self._connections[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._service(conn, selectors.EVENT_READ)

    def _service(self, conn: _Connection, events: int) -> None:
        """Read the request (answering when it is complete) or send more of the answer."""
        try:
            if conn.response is None and events & selectors.EVENT_READ:
                self._read(conn)
            if conn.response is not None:
                sent = conn.sock.send(conn.response)
                conn.response = conn.response[sent:]
                if not conn.response:
                    self._drop(conn)
        except (BlockingIOError, InterruptedError):
            return  # nothing to read yet, or the client's window is full: wait for the selector
        except OSError:
            self._drop(conn)  # reset by the client, for example

    def _read(self, conn: _Connection) -> None:
        data = conn.sock.recv(MAX_REQUEST_BYTES + 1 - len(conn.request))
        if not data:
            self._drop(conn)  # the client closed before its request was complete
            return
        conn.request += data
        end = conn.request.find(b"\r\n\r\n")
        if end < 0:
            end = conn.request.find(b"\n\n")
        if end >= 0:
            conn.response = memoryview(respond(bytes(conn.request[:end]), self._body))
        elif len(conn.request) > MAX_REQUEST_BYTES:
            conn.response = memoryview(_response(431, b"request too large\n"))
        else:
            return
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def _drop(self, conn: _Connection) -> None:
        self._connections.pop(conn.sock, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass  # not registered (any more)
        conn.sock.close()
