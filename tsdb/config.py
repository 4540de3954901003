"""[store]: where points go, as the config file says it (virtwatch.config reads it; tsdb.open_store opens it).

The url is checked by the store's own parser (tsdb.urls), so a URL `virtwatch check-config` accepts is one the
store opens, and one it refuses the store would refuse too. Secrets may come from the environment (STORE_ENV),
which wins over the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tsdb.config_keys import key, not_empty, redacted_repr, seconds, within
from tsdb.urls import redact_store_url, store_url_problem

BATCH_MAX_POINTS = 100_000  # InfluxDB's default max-body-size (25 MB) holds about that many of our points
#: the environment variables that supply [store]'s secrets
STORE_ENV = {"token": "VIRTWATCH_STORE_TOKEN", "username": "VIRTWATCH_STORE_USERNAME",
             "password": "VIRTWATCH_STORE_PASSWORD"}


def _show_store_url(value: Any) -> Any:
    """Show a store URL as tsdb shows it: user kept, password and query values (but rp and org) redacted."""
    return redact_store_url(value) if isinstance(value, str) else value


@dataclass(frozen=True, repr=False)
class StoreConfig:
    """[store]: where points go; url None means the embedded store."""

    url: str | None = key(None, kind=str, check=store_url_problem, show=_show_store_url)
    token: str | None = key(None, kind=str, check=not_empty, secret=True)
    username: str | None = key(None, kind=str, check=not_empty)
    password: str | None = key(None, kind=str, check=not_empty, secret=True)
    batch_size: int = key(5000, kind=int, check=within(1, BATCH_MAX_POINTS))
    timeout_seconds: float = key(10.0, kind=float, check=seconds)
    max_retries: int = key(5, kind=int, check=within(0, 100))
    gzip: bool = key(True, kind=bool)
    __repr__ = redacted_repr
