"""What the notifiers send: one `Alert` per labelled incident, grouped into one `Notification` per receiver.

An alert is identified by its labels alone: `fingerprint(labels)` is the first 16 hex digits of the SHA-256 of
the labels sorted by name, so the same incident has the same fingerprint in every process and every replica.
Times are timezone-aware and kept in UTC; a firing alert has no `ends_at` (None), a resolved one must have it.
Both classes turn into plain JSON-able dicts and back (`to_dict`, `from_dict`) for the on-disk outbox.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FIRING = "firing"
RESOLVED = "resolved"
STATUSES = (FIRING, RESOLVED)


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the stable identity of a label set: sha256 of its sorted (name, value) pairs, 16 hex digits."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def format_time(moment: datetime) -> str:
    """Return a UTC datetime as RFC 3339 with a Z suffix, e.g. 2024-05-01T12:00:00.123456Z."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time as written by format_time back into a UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _utc(moment: datetime | None, what: str) -> datetime | None:
    """Return moment in UTC; refuse a naive datetime, whose zone nobody can know."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Alert:
    """One incident as a receiver sees it: labels say which, annotations say what, status says firing or not."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    status: str = FIRING
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"alert status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        for name, table in (("labels", self.labels), ("annotations", self.annotations)):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
                raise ValueError(f"alert {name} must map strings to strings")
            object.__setattr__(self, name, dict(table))  # a private copy: nobody changes it under us
        if "alertname" not in self.labels:
            raise ValueError("alert labels must include alertname")
        object.__setattr__(self, "starts_at", _utc(self.starts_at, "starts_at"))
        object.__setattr__(self, "ends_at", _utc(self.ends_at, "ends_at"))
        if self.status == RESOLVED and self.ends_at is None:
            raise ValueError("a resolved alert needs ends_at (when it resolved)")

    @property
    def fingerprint(self) -> str:
        """Return the alert's stable identity, a function of its labels only."""
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        """Return the alertname label."""
        return self.labels["alertname"]

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as JSON-able data."""
        return {
            "labels": dict(self.labels), "annotations": dict(self.annotations), "status": self.status,
            "starts_at": format_time(self.starts_at) if self.starts_at else None,
            "ends_at": format_time(self.ends_at) if self.ends_at else None,
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from to_dict's output."""
        return cls(labels=data["labels"], annotations=data.get("annotations", {}), status=data["status"],
                   starts_at=parse_time(data["starts_at"]) if data.get("starts_at") else None,
                   ends_at=parse_time(data["ends_at"]) if data.get("ends_at") else None,
                   generator_url=data.get("generator_url"))


@dataclass(frozen=True)
class Notification:
    """What one receiver is told at once: a group of alerts sharing group_labels, under a stable group_key.

    The group key names the group across engine restarts and replicas (PagerDuty's dedup key is derived from it),
    so the engine must build it from the route and the group labels only, never from time or process state.
    """

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: Sequence[Alert]

    def __post_init__(self) -> None:
        if not self.alerts:
            raise ValueError("a notification needs at least one alert")
        object.__setattr__(self, "group_labels", dict(self.group_labels))
        object.__setattr__(self, "alerts", tuple(self.alerts))

    @property
    def status(self) -> str:
        """Return firing if any alert is firing, else resolved."""
        return FIRING if any(alert.status == FIRING for alert in self.alerts) else RESOLVED

    @property
    def firing(self) -> list[Alert]:
        """Return the firing alerts."""
        return [alert for alert in self.alerts if alert.status == FIRING]

    @property
    def resolved(self) -> list[Alert]:
        """Return the resolved alerts."""
        return [alert for alert in self.alerts if alert.status == RESOLVED]

    def common_labels(self) -> dict[str, str]:
        """Return the labels every alert has with the same value."""
        return _common(alert.labels for alert in self.alerts)

    def common_annotations(self) -> dict[str, str]:
        """Return the annotations every alert has with the same value."""
        return _common(alert.annotations for alert in self.alerts)

    def to_dict(self) -> dict[str, Any]:
        """Return the notification as JSON-able data."""
        return {"receiver": self.receiver, "group_key": self.group_key, "group_labels": dict(self.group_labels),
                "alerts": [alert.to_dict() for alert in self.alerts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Rebuild a notification from to_dict's output."""
        return cls(receiver=data["receiver"], group_key=data["group_key"], group_labels=data["group_labels"],
                   alerts=[Alert.from_dict(item) for item in data["alerts"]])


def _common(tables) -> dict[str, str]:
    """Return the (name, value) pairs present in every table."""
    tables = list(tables)
    common = dict(tables[0])
    for table in tables[1:]:
        common = {k: v for k, v in common.items() if table.get(k) == v}
    return common
