"""[alerts] and [alerts.leak]: the alert engine, as the config file says it (virtwatch.config reads it;
virtwatch.wiring builds the engine from it). Its receivers are alerts.notify's (`[[alerts.receivers]]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from alerts.leaks import LeakPolicy
from alerts.notify.config import ReceiverConfig
from alerts.shard import Shard
from tsdb.config_keys import (COUNT_MAX, TIB, count, data_dir, fraction, http_url, key, redacted_repr, seconds,
                              url_with_path, window_seconds, within)

SHARDS_MAX = 1000  # alert engine shards: one engine reads the whole fleet's figures, so a few suffice


def _share(value: float) -> str | None:
    """Refuse anything but a share of the fleet."""
    return None if 0 < value <= 1 else "must be a share of the fleet: more than 0, at most 1"


def _severity(value: str) -> str | None:
    """Refuse a severity the SRE workbook's alerting does not name."""
    return None if value in ("page", "ticket") else 'must be "page" or "ticket"'


def _shard(value: str) -> str | None:
    """Refuse anything but "I/N", shard I (from 0) of N, as alerts.shard reads it."""
    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", value)
    if match and not 1 <= int(match[2]) <= SHARDS_MAX:
        return f"the number of shards must be from 1 to {SHARDS_MAX}"
    try:
        Shard.parse(value)
    except ValueError as error:
        return str(error).removeprefix(f"shard {value!r}: ")
    return None


@dataclass(frozen=True, repr=False)
class LeakConfig:
    """[alerts.leak]: the leak rule on libvirtd's file descriptors and resident memory (alerts.leak_rule); the
    thresholds are alerts.leaks.LeakPolicy's fields."""

    enabled: bool = key(True, kind=bool)
    interval_seconds: float = key(60.0, kind=float, check=seconds)
    fd_share: float = key(float(LeakPolicy.fd_share), kind=float, check=fraction)
    fd_horizon_seconds: float = key(float(LeakPolicy.fd_horizon_seconds), kind=float, check=window_seconds)
    fd_fit_seconds: float = key(float(LeakPolicy.fd_fit_seconds), kind=float, check=seconds)
    fd_min_rise: float = key(float(LeakPolicy.fd_min_rise), kind=float, check=within(1, COUNT_MAX))
    fd_min_r2: float = key(float(LeakPolicy.fd_min_r2), kind=float, check=fraction)
    rss_min_hours: float = key(float(LeakPolicy.rss_min_hours), kind=float,
                               check=within(0.001, 24, " hours (at most a day)"))
    rss_min_growth_bytes_per_hour: int = key(LeakPolicy.rss_min_growth_bytes_per_hour, kind=int,
                                             check=within(1, TIB, " bytes (at most 1 TiB)"))
    rss_min_r2: float = key(float(LeakPolicy.rss_min_r2), kind=float, check=fraction)
    fd_severity: str = key("page", kind=str, check=_severity)
    rss_severity: str = key("ticket", kind=str, check=_severity)
    __repr__ = redacted_repr


@dataclass(frozen=True, repr=False)
class AlertsConfig:
    """[alerts]: the alert engine."""

    interval_seconds: float = key(30.0, kind=float, check=seconds)
    rules_interval_seconds: float = key(2.0, kind=float, check=seconds)
    state_dir: Path = key(kind=Path, factory=lambda: data_dir() / "alerts")
    slo_file: Path | None = key(None, kind=Path)
    external_url: str | None = key(None, kind=str, check=http_url, show=url_with_path)
    repeat_interval_seconds: float = key(4 * 3600.0, kind=float, check=window_seconds)
    alertmanager_resend_seconds: float = key(60.0, kind=float, check=seconds)
    daemon_down_after_seconds: float = key(5.0, kind=float, check=seconds)
    daemon_hung_after_seconds: float = key(10.0, kind=float, check=seconds)
    restarts_count: int = key(3, kind=int, check=count)
    restarts_window_seconds: float = key(3600.0, kind=float, check=window_seconds)
    segfault_window_seconds: float = key(3600.0, kind=float, check=window_seconds)
    domain_failures_count: int = key(5, kind=int, check=count)
    domain_failures_window_seconds: float = key(600.0, kind=float, check=window_seconds)
    agent_silent_after_seconds: float = key(60.0, kind=float, check=seconds)
    storm_share: float = key(0.1, kind=float, check=_share)
    storm_min_hosts: int = key(10, kind=int, check=count)
    storm_hold_seconds: float = key(900.0, kind=float, check=window_seconds)
    storm_wait_seconds: float = key(30.0, kind=float, check=window_seconds)
    shard: str = key("0/1", kind=str, check=_shard)
    receivers: tuple[ReceiverConfig, ...] = ()
    leak: LeakConfig = field(default_factory=LeakConfig)
    __repr__ = redacted_repr
