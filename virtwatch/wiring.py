"""Build components from the configuration: the one place that turns Config into running objects."""

from __future__ import annotations

import logging

from tsdb import Store, open_store
from virtwatch.config import StoreConfig

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr with timestamps, the way an operator reads it at 3 a.m."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def store_from_config(config: StoreConfig, url_override: str | None = None) -> Store:
    """Open the configured store (the embedded one when no URL is configured)."""
    return open_store(url_override or config.url, token=config.token, username=config.username,
                      password=config.password, batch_size=config.batch_size,
                      timeout_seconds=config.timeout_seconds, max_retries=config.max_retries, gzip=config.gzip)
