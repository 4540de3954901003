"""tsdb: the one place that knows how points are stored and read back.

    from tsdb import open_store, Point
    with open_store("influxdb://localhost:8086/virtwatch") as store:
        store.write([Point("host", {"host": "hv1"}, {"load1": 0.5}, time_ns)])
        frame = store.query("host", ["load1"], start, end, window_seconds=60, group_by=["host"])
"""

from __future__ import annotations

import os

from tsdb.errors import (PointError, QueryError, StoreError, StoreRejected, StoreUnavailable,  # noqa: F401
                         StoreURLError)
from tsdb.point import Point  # noqa: F401
from tsdb.query import Query  # noqa: F401
from tsdb.store import Store
from tsdb.urls import StoreURL, parse_store_url


def default_store_url() -> str:
    """Return the embedded store's URL under the user's data directory."""
    import platformdirs

    return "duckdb://" + os.path.join(platformdirs.user_data_dir("virtwatch"), "store.duckdb")


def open_store(url: str | None = None, *, token: str | None = None, username: str | None = None,
               password: str | None = None, batch_size: int = 5000, timeout_seconds: float = 10.0,
               max_retries: int = 5, gzip: bool = True) -> Store:
    """Open the store a URL names (the embedded store under the user's data directory when None)."""
    parsed: StoreURL = parse_store_url(url or default_store_url())
    if parsed.kind == "duckdb":
        return _embedded_store_class()(parsed.path)
    from tsdb.influx import InfluxStore

    return InfluxStore(parsed, token=token, username=username, password=password, batch_size=batch_size,
                       timeout_seconds=timeout_seconds, max_retries=max_retries, gzip_enabled=gzip)


def _embedded_store_class() -> type[Store]:
    """Import the embedded store; raise StoreError naming the extra to install when its packages are missing."""
    try:
        from tsdb.embedded import EmbeddedStore
    except ModuleNotFoundError as error:
        if (error.name or "tsdb").partition(".")[0] == "tsdb":
            raise
        raise StoreError(f"the embedded store (duckdb://) needs the 'embedded' extra of virtwatch, not installed here "
                         f"(missing: {error.name}): pip install 'virtwatch[embedded]'") from None
    return EmbeddedStore
