"""Store URLs: where the points go, as one string.

    influxdb://[user@]HOST[:PORT]/DATABASE[?rp=POLICY]   InfluxDB 1.x: /write and InfluxQL on /query
    influxdbs://...                                      the same over TLS
    influxdb2://HOST[:PORT]/BUCKET[?org=ORG]             influxdb-client's WriteApi to /api/v2/write,
    influxdb2s://...                                     InfluxQL on /query with the bucket as database
    duckdb:///ABSOLUTE/PATH                              the embedded store (one machine, one process)

Passwords and tokens never go in the URL (it shows up in process lists and logs): they come from the
config file or the environment (VIRTWATCH_STORE_TOKEN, VIRTWATCH_STORE_PASSWORD).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from tsdb.errors import StoreURLError

DEFAULT_PORT = 8086
_KINDS = {"influxdb": ("influxdb1", False), "influxdbs": ("influxdb1", True),
          "influxdb2": ("influxdb2", False), "influxdb2s": ("influxdb2", True)}
_PARAMS = {"influxdb1": {"rp"}, "influxdb2": {"org"}}


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


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; raise StoreURLError naming the part that is wrong and why."""
    if not isinstance(url, str) or "://" not in url:
        raise StoreURLError(f"store url {url!r}: expected SCHEME://..., for example influxdb://HOST:8086/DATABASE "
                            "or duckdb:///ABSOLUTE/PATH")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "duckdb":
        path = unquote(url.split("://", 1)[1])
        if not path.startswith("/") or path.endswith("/"):
            raise StoreURLError(f"store url {url!r}: duckdb needs an absolute file path, as in duckdb:///var/lib/"
                                "virtwatch/store.duckdb")
        return StoreURL(kind="duckdb", path=os.path.normpath(path))
    if scheme not in _KINDS:
        raise StoreURLError(f"store url {url!r}: unknown scheme {scheme!r}; expected one of influxdb, influxdbs, "
                            "influxdb2, influxdb2s, duckdb")
    kind, tls = _KINDS[scheme]
    parts = urlsplit(url)
    if parts.password is not None:
        raise StoreURLError(f"store url {scheme}://{parts.username}:<redacted>@...: a password does not belong in "
                            "the URL; set [store] password or VIRTWATCH_STORE_PASSWORD")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise StoreURLError(f"store url {url!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise StoreURLError(f"store url {url!r}: no host")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        noun = "database" if kind == "influxdb1" else "bucket"
        raise StoreURLError(f"store url {url!r}: expected exactly one {noun} name after the host, as in "
                            f"{scheme}://HOST:8086/NAME")
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(params) - _PARAMS[kind]
    if unknown:
        raise StoreURLError(f"store url {url!r}: unknown parameter {sorted(unknown)[0]!r}; {scheme} accepts "
                            f"{', '.join(sorted(_PARAMS[kind]))}")
    one = {key: values[-1] for key, values in params.items()}
    return StoreURL(kind=kind, tls=tls, host=parts.hostname, port=port, database=database,
                    username=unquote(parts.username) if parts.username else None,
                    retention_policy=one.get("rp") or None, org=one.get("org") or None)
