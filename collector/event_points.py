"""Event points: the one way the agent turns something that happened into a point of `event`."""

from __future__ import annotations

from tsdb import Point
from tsdb.schema import EVENT_KINDS


def event_point(host: str, kind: str, message: str, time_ns: int, domain: str | None = None,
                severity: str | None = None, **fields) -> Point:
    """Return an `event` point of `kind` (tsdb.schema.EVENT_KINDS gives its default severity)."""
    tags = {"host": host, "kind": kind, "severity": severity or EVENT_KINDS[kind].severity}
    if domain is not None:
        tags["domain"] = domain
    return Point("event", tags, {"message": message, "count": 1, **fields}, time_ns)
