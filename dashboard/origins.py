"""Which sites may send the dashboard requests: the Host and Origin checks, and no framing by other sites.

A page on another site can make a dashboard user's browser send the dashboard requests: a form or a fetch
POSTed to Dash's /_dash-update-component creates a silence (cross-site request forgery), and a name of the
attacker's that resolves to 127.0.0.1 reaches a dashboard on loopback (DNS rebinding). Such requests carry a
foreign `Host` or `Origin`, so `install_origin_checks` makes the Flask server answer 403 to

- every request whose `Host` is not an allowed host (DNS rebinding), and
- every request but GET, HEAD and OPTIONS whose `Origin` (or, without one, `Referer`) is missing or not an
  allowed host (a browser sends Origin with every cross-site POST and with every fetch that is not a GET),

and sends `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'` with every response, so
no other site can frame the pages and trick a click.

An allowed host is NAME (any port) or NAME:PORT ([V6]:PORT for an IPv6 address). Names compare without case
and without a trailing dot, addresses in their canonical form; an Origin without a port has its scheme's default
port (80 for http, 443 for https), as the browser left it out, and a Host without one may mean either (a proxy
that ends TLS in front of the dashboard leaves no sign of the browser's scheme).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

#: the names of this machine's loopback interface: allowed unless [dashboard] allowed_hosts says otherwise
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: methods a browser lets any site send, and that change nothing here (Dash's callbacks are POSTs)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
FRAME_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
_ENTRY = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<v6port>\d{1,5}))?"
                    r"|(?P<name>[^:\[\]/\s@]+)(?::(?P<port>\d{1,5}))?")


def _canonical(name: str) -> str:
    """Return a host name or address as compared: lower case, no trailing dot, addresses canonical."""
    name = name.strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def parse_allowed_host(entry: str) -> tuple[str, int | None]:
    """Parse NAME, NAME:PORT, V6, [V6] or [V6]:PORT into (canonical name, port or None); ValueError if bad."""
    text = entry.strip()
    try:  # a bare IPv6 address, as in the default ::1
        return ipaddress.IPv6Address(text).compressed, None
    except ValueError:
        pass
    match = _ENTRY.fullmatch(text)
    if not match:
        raise ValueError("expected NAME, NAME:PORT or [IPv6]:PORT (no scheme, no path), e.g. "
                         "\"virtwatch.example.com\" or \"10.0.0.5:8050\"")
    if match["v6"]:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            raise ValueError(f"[{match['v6']}] is not an IPv6 address") from None
    port = match["v6port"] or match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError("the port must be from 1 to 65535")
    return _canonical(match["v6"] or match["name"]), None if port is None else int(port)


def allowed_host_problem(entry: str) -> str | None:
    """Return why entry cannot be an allowed host, or None."""
    try:
        parse_allowed_host(entry)
    except ValueError as error:
        return str(error)
    return None


def default_allowed_hosts(listen_host: str | None = None) -> tuple[str, ...]:
    """Return the loopback names plus the host the dashboard listens on (the default of allowed_hosts)."""
    extra = (listen_host,) if listen_host and _canonical(listen_host) not in map(_canonical, LOOPBACK_NAMES) else ()
    return (*LOOPBACK_NAMES, *extra)


class AllowedHosts:
    """The hosts a request may name in Host, Origin and Referer."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self._parsed = [parse_allowed_host(entry) for entry in self.entries]

    def allows(self, name: str, ports: Iterable[int]) -> bool:
        """Whether a host name (any form) at one of these ports is allowed."""
        name = _canonical(name)
        return any(name == allowed and (allowed_port is None or allowed_port in ports)
                   for allowed, allowed_port in self._parsed)

    def allows_host_header(self, host: str | None) -> bool:
        """Whether a Host header names an allowed host. Without a port it may mean 80 or 443: a proxy in front
        that ends TLS leaves no sign of the scheme the browser used."""
        if not host:
            return False
        try:
            parts = urlsplit(f"http://{host}")
            name, port = parts.hostname, parts.port
        except ValueError:
            return False
        if not name or parts.netloc != host or parts.username is not None:
            return False  # a path, a userinfo or other junk in the header
        return self.allows(name, (port,) if port else DEFAULT_PORTS.values())

    def allows_origin(self, origin: str | None) -> bool:
        """Whether an Origin (or a Referer: only its scheme, host and port count) is an allowed host over http(s)."""
        if not origin:
            return False
        try:
            parts = urlsplit(origin)
            name, port = parts.hostname, parts.port
        except ValueError:
            return False
        if parts.scheme not in DEFAULT_PORTS or not name:
            return False  # "null" (a sandboxed frame, a file:// page) and other schemes
        return self.allows(name, (port or DEFAULT_PORTS[parts.scheme],))


def refusal(method: str, headers, allowed: AllowedHosts) -> str | None:
    """Return why a request with these headers must be refused, or None when it may go on."""
    host = headers.get("Host")
    if not allowed.allows_host_header(host):
        return f"Host {host!r} is not an allowed host"
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("Origin")
    if origin is not None:
        return None if allowed.allows_origin(origin) else f"Origin {origin!r} is not an allowed host"
    referer = headers.get("Referer")
    if referer is None:
        return f"a {method.upper()} request needs an Origin or Referer header naming an allowed host"
    return None if allowed.allows_origin(referer) else f"Referer {referer!r} is not an allowed host"


def install_origin_checks(server, allowed_hosts: Iterable[str]) -> AllowedHosts:
    """Refuse foreign requests to the Flask `server` (403) and forbid framing on every response."""
    import flask

    allowed = AllowedHosts(allowed_hosts)

    @server.before_request
    def _refuse_foreign_requests():
        request = flask.request
        reason = refusal(request.method, request.headers, allowed)
        if reason is None:
            return None
        shown = reason.encode("ascii", "backslashreplace").decode("ascii")
        return flask.Response(f"virtwatch dashboard: refused: {shown} (see [dashboard] allowed_hosts)\n",
                              status=403, mimetype="text/plain")

    @server.after_request
    def _forbid_framing(response):
        for name, value in FRAME_HEADERS.items():
            response.headers[name] = value
        return response

    return allowed
