"""Store URLs: where the points go, as one string.

    influxdb://[user@]HOST[:PORT]/DATABASE[?rp=POLICY]   InfluxDB 1.x: /write and InfluxQL on /query
    influxdbs://...                                      the same over TLS
    influxdb2://HOST[:PORT]/BUCKET[?org=ORG]             influxdb-client's WriteApi to /api/v2/write,
    influxdb2s://...                                     InfluxQL on /query with the bucket as database
    duckdb:///ABSOLUTE/PATH                              the embedded store (one machine, one process)

Passwords and tokens never go in the URL (it shows up in process lists and logs): they come from the
config file or the environment (VIRTWATCH_STORE_TOKEN, VIRTWATCH_STORE_PASSWORD).

This module is the one place that knows the schemes (SCHEMES): `open_store` parses with it, and `[store] url` in
the config file (tsdb.config, so `virtwatch check-config`) is checked by the same parser, so the two can never
disagree on a URL.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from tsdb.errors import StoreURLError

DEFAULT_PORT = 8086
#: every scheme a store URL may have -> (the store's kind, whether over TLS), in the order messages list them
SCHEMES = {"influxdb": ("influxdb1", False), "influxdbs": ("influxdb1", True),
           "influxdb2": ("influxdb2", False), "influxdb2s": ("influxdb2", True), "duckdb": ("duckdb", False)}
_PARAMS = {"influxdb1": {"rp"}, "influxdb2": {"org"}}
_SHOWN_PARAMS = frozenset().union(*_PARAMS.values())  # query values shown in messages; any other may be a secret
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REDACTED = "<redacted>"


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL."""

    kind: str  # influxdb1, influxdb2 or duckdb
    tls: bool = False
    host: str = ""
    port: int = DEFAULT_PORT
    database: str = ""
    username: str | None = None
    retention_policy: str | None = None
    org: str | None = None
    path: str = ""

    @property
    def base_url(self) -> str:
        """Return the HTTP(S) base address of an InfluxDB store."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def display(self) -> str:
        """Return the URL as it may be shown in logs (it never holds a secret)."""
        if self.kind == "duckdb":
            return f"duckdb://{self.path}"
        scheme = {"influxdb1": "influxdb", "influxdb2": "influxdb2"}[self.kind] + ("s" if self.tls else "")
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.database}"


def redact_store_url(url: str) -> str:
    """Return url as it may be shown in a message: a password in it and every query value but rp and org redacted.

    Works on text that urlsplit refuses too (an unclosed `[`, a bad port). Everything before the last `@` is
    taken as user and password, so a password holding `/`, `?` or `#` is redacted whole too.
    """
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, rest = rest.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        userinfo = f"{user}:{REDACTED}@" if colon else f"{user}@"
    rest, hash_sign, _fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    if question:
        pairs = []
        for pair in query.split("&"):
            key, equals, _value = pair.partition("=")
            pairs.append(pair if key in _SHOWN_PARAMS or not equals else f"{key}={REDACTED}")
        query = "&".join(pairs)
    return f"{scheme}{sep}{userinfo}{rest}{question}{query}" + (f"#{REDACTED}" if hash_sign else "")


def store_url_problem(url: str) -> str | None:
    """Return why the store would refuse this URL (never quoting it), or None when it parses."""
    try:
        _parse(url)
    except _Refused as refused:
        return str(refused)
    return None


def is_embedded_url(url: str | None) -> bool:
    """Say whether a store URL (None: the default) names the embedded store, which one process may open."""
    if url is None:
        return True
    try:
        return _parse(url).kind == "duckdb"
    except _Refused:
        return False


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; raise StoreURLError naming the part that is wrong and why (secrets redacted)."""
    try:
        return _parse(url)
    except _Refused as refused:
        shown = redact_store_url(url) if isinstance(url, str) else url
        raise StoreURLError(f"store url {shown!r}: {refused}") from None


class _Refused(ValueError):
    """Why a store URL cannot be used, without the URL."""


def _parse(url: str) -> StoreURL:
    """Parse a store URL; raise _Refused with the reason."""
    if not isinstance(url, str) or "://" not in url:
        raise _Refused("expected SCHEME://..., for example influxdb://HOST:8086/DATABASE or duckdb:///ABSOLUTE/PATH")
    if _CONTROL.search(url):
        raise _Refused("contains a control character (a NUL, a tab or a line break, say)")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise _Refused(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    kind, tls = SCHEMES[scheme]
    if kind == "duckdb":
        path = unquote(url.split("://", 1)[1])
        if not path.startswith("/") or path.endswith("/"):
            raise _Refused("duckdb needs an absolute file path, as in duckdb:///var/lib/virtwatch/store.duckdb")
        if _CONTROL.search(path):
            raise _Refused("the path contains a control character")
        return StoreURL(kind="duckdb", path=os.path.normpath(path))
    try:
        parts = urlsplit(url)
        host, password = parts.hostname, parts.password
    except ValueError as error:  # an unclosed [ or an IPv6 literal that is none
        raise _Refused(f"the host is not a name or an address ({error})") from None
    if password is not None:
        raise _Refused("a password does not belong in the URL; set [store] password or VIRTWATCH_STORE_PASSWORD")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _Refused("the port is not a number from 1 to 65535")
    if not host or not host.strip() or " " in host:
        raise _Refused("no host" if not host or not host.strip() else f"the host {host!r} contains a blank")
    if parts.fragment:
        raise _Refused("a fragment (#...) has no meaning in a store URL")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        noun = "database" if kind == "influxdb1" else "bucket"
        raise _Refused(f"expected exactly one {noun} name after the host, as in {scheme}://HOST:8086/NAME")
    if _CONTROL.search(database):
        raise _Refused("the database name contains a control character")
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(params) - _PARAMS[kind]
    if unknown:
        raise _Refused(f"unknown parameter {sorted(unknown)[0]!r}; {scheme} accepts {', '.join(sorted(_PARAMS[kind]))}")
    one = {key: values[-1] for key, values in params.items()}
    return StoreURL(kind=kind, tls=tls, host=host, port=port or DEFAULT_PORT, database=database,
                    username=unquote(parts.username) if parts.username else None,
                    retention_policy=one.get("rp") or None, org=one.get("org") or None)
