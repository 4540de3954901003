"""How one HTTP request is bounded: a deadline for the whole request and a cap on what it reads.

The store client (tsdb.influx) and the alert receivers (alerts.notify.transport) send every request through
`BoundedHTTP`, so a peer that drips, hangs or floods costs at most the deadline and the cap:

- the deadline covers connect, TLS, sending the request and every read of the answer. A socket timeout alone
  would not do: it limits each read, so a peer answering one byte every 0.5 s restarts it at every byte. A
  watchdog timer shuts the socket down when the deadline passes, which wakes whatever send or read is blocked.
  Only name resolution (getaddrinfo) is outside it;
- at most `max_body_bytes` of an answer's body are read; the rest is never read, the connection is closed
  instead (an answer of exactly that size sent in chunks counts as cut: its end was not read). The status line
  and headers are bounded by http.client (64 KiB a line, 100 headers).

Failures raise `RequestFailed(kind, message)`; the message never holds the URL (it may be a secret, as a Slack
webhook's is), so callers add what they know to be safe to show.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from typing import Mapping, NamedTuple
from urllib.parse import urlsplit

READ_CHUNK_BYTES = 64 * 1024  # one read of an answer's body

# RequestFailed.kind
REFUSED = "refused"          # nothing listens
UNREACHABLE = "unreachable"  # name resolution, routing or another connect failure
DEADLINE = "deadline"        # the whole request did not complete within the deadline
TLS = "tls"                  # the TLS handshake or a TLS record failed
BROKEN = "broken"            # the connection broke, or the answer was not HTTP
MALFORMED_URL = "malformed-url"


class RequestFailed(Exception):
    """A request that got no complete answer; `kind` says why (REFUSED, DEADLINE, ...), `message` is safe to show."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        """Say whether the same request may get an answer later (everything but a malformed URL)."""
        return self.kind != MALFORMED_URL


class Answer(NamedTuple):
    """An answer: its status, at most `max_body_bytes` of its body, and whether some may be left unread."""

    status: int
    body: bytes
    truncated: bool


_Key = tuple[str, str, int]  # scheme, host, port


class BoundedHTTP:
    """Send HTTP requests, each within `deadline_seconds` in all and reading at most a given number of bytes.

    Connections are kept alive for the next request (at most `max_idle` idle ones) when an answer was read to its
    end; a kept connection the peer has closed meanwhile is dropped before use. `body_bytes_read` counts every
    byte of answer bodies read (a seam for tests: what a flood cost). Safe to use from several threads.
    """

    def __init__(self, deadline_seconds: float, max_idle: int = 4) -> None:
        if not deadline_seconds > 0:
            raise ValueError(f"deadline_seconds must be positive, got {deadline_seconds!r}")
        self.deadline_seconds = deadline_seconds
        self.max_idle = max_idle
        self.body_bytes_read = 0
        self._idle: list[tuple[_Key, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"BoundedHTTP(deadline_seconds={self.deadline_seconds:g})"

    def request(self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                *, max_body_bytes: int, max_success_body_bytes: int | None = None) -> Answer:
        """Send one request and return its answer, or raise RequestFailed; never longer than the deadline.

        Read at most max_body_bytes of the answer's body, or max_success_body_bytes of a 2xx answer's when given
        (0: the status says all the caller needs, and the body is not waited for).
        """
        key, path = _split(url)
        conn = self._take_idle(key) or self._connection(key)
        watchdog = _Watchdog(conn, self.deadline_seconds)
        phase = "connect"
        try:
            if conn.sock is None:
                conn.connect()
            if watchdog.fired:  # the deadline passed while connecting, before the watchdog had a socket to cut
                raise TimeoutError
            conn.sock.settimeout(max(watchdog.remaining(), 0.001))
            phase = "send"
            conn.request(method, path, body=body, headers=dict(headers or {}))
            phase = "answer"
            response = conn.getresponse()
            success = 200 <= response.status <= 299 and max_success_body_bytes is not None
            data, truncated = self._read(response, max_success_body_bytes if success else max_body_bytes)
            if watchdog.fired:  # the cut can look like the end of an answer
                raise TimeoutError
        except http.client.InvalidURL:  # a control character in the path: refused before anything was sent
            watchdog.stop()
            conn.close()
            raise RequestFailed(MALFORMED_URL, "malformed URL") from None
        except (OSError, http.client.HTTPException) as error:
            fired = watchdog.stop()
            conn.close()
            raise self._failure(error, phase, fired) from None
        except BaseException:
            watchdog.stop()
            conn.close()
            raise
        fired = watchdog.stop()
        if fired or truncated or response.will_close:
            conn.close()  # cut, or more was sent than we read: this connection cannot carry another request
        else:
            self._keep_idle(key, conn)
        return Answer(response.status, data, truncated)

    def _read(self, response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool]:
        """Read the body, never more than `limit` bytes; say whether some may be left unread."""
        body = bytearray()
        while len(body) < limit:
            piece = response.read(min(READ_CHUNK_BYTES, limit - len(body)))
            if not piece:
                if response.length:  # http.client takes a close before the announced length for the end
                    raise http.client.IncompleteRead(bytes(body), response.length)
                break
            body += piece
            with self._lock:
                self.body_bytes_read += len(piece)
        if response.length == 0 and not response.isclosed():
            response.read()  # nothing is left: finish the answer, so that the connection can carry another
        return bytes(body), not response.isclosed()

    def _failure(self, error: BaseException, phase: str, fired: bool) -> RequestFailed:
        """Say what went wrong without repeating error's text, which may hold the URL."""
        if fired or isinstance(error, TimeoutError):
            return RequestFailed(DEADLINE, f"no complete answer within the {self.deadline_seconds:g} s timeout "
                                           "(a deadline for the whole request)")
        if isinstance(error, ssl.SSLError):
            return RequestFailed(TLS, "TLS handshake failed" if phase == "connect" else "TLS error")
        if phase == "connect":
            if isinstance(error, ConnectionRefusedError):
                return RequestFailed(REFUSED, "connection refused")
            reason = getattr(error, "strerror", None) or type(error).__name__
            return RequestFailed(UNREACHABLE, f"could not connect ({reason})")
        if phase == "send":
            return RequestFailed(BROKEN, "connection broken while sending the request")
        if isinstance(error, (OSError, http.client.IncompleteRead)):  # RemoteDisconnected is an OSError too
            return RequestFailed(BROKEN, "connection broken before a complete answer")
        return RequestFailed(BROKEN, f"the answer is not valid HTTP ({type(error).__name__})")

    def _connection(self, key: _Key) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return http.client.HTTPSConnection(host, port, timeout=self.deadline_seconds, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self.deadline_seconds)

    def _take_idle(self, key: _Key) -> http.client.HTTPConnection | None:
        """Return a kept connection to key the peer has not closed, or None."""
        while True:
            with self._lock:
                found = next((i for i, (k, _) in enumerate(self._idle) if k == key), None)
                if found is None:
                    return None
                _, conn = self._idle.pop(found)
            if conn.sock is not None and not _readable(conn.sock):
                return conn
            conn.close()  # readable while idle: the peer closed it (or sent what nobody asked for)

    def _keep_idle(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append((key, conn))
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()


class _Watchdog:
    """Shut a connection's socket down once `seconds` have passed, unless stopped first."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self._conn = conn
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._stopped = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        """Return the seconds left before the cut."""
        return self._ends - time.monotonic()

    def _cut(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired = True
        sock = self._conn.sock
        if sock is not None:
            try:  # the plain socket's shutdown, also under TLS: it wakes a blocked read or write at once
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> bool:
        """Stop the watchdog; return whether it had already cut the connection."""
        self._timer.cancel()
        with self._lock:
            self._stopped = True
            return self.fired


def _readable(sock: socket.socket) -> bool:
    """Say whether an idle socket has something to read: end of file, mostly."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _split(url: str) -> tuple[_Key, str]:
    """Return ((scheme, host, port), path with query) of an http(s) URL, or raise RequestFailed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RequestFailed(MALFORMED_URL, "malformed URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestFailed(MALFORMED_URL, "malformed URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)), path
