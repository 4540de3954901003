"""The Store interface every backend implements, and the readers built on it.

A Store writes points and answers four kinds of reads, all as pandas frames (tsdb.frames):
`read` (a Query: range, fields, filters, windows, groups), `latest` (the newest point per group),
`tag_values` and `events`. Backends: tsdb.influx (InfluxDB 1.x/2.x/3.x) and tsdb.embedded (DuckDB).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Iterable, Sequence


from tsdb.point import Point
from tsdb.query import Matching, Query, TimeLike, Where, now_ns, to_ns

if TYPE_CHECKING:  # frames are built by the readers; writing never loads pandas
    import pandas as pd

EVENT_TAGS = ("host", "kind", "severity", "domain")
EVENT_FIELDS = ("message",)


class Store(abc.ABC):
    """A time-series store: write points, read frames."""

    #: the store URL with any secret removed, for logs
    display_url: str = ""
    #: whether the aggregates of one read (`aggregate=("sum", "count")`) all describe one state of the data, so
    #: that a point written meanwhile counts in every one of them or in none
    reads_one_snapshot: bool = False

    @abc.abstractmethod
    def write(self, points: Iterable[Point], *, retry: bool = True) -> int:
        """Write points; return how many were stored. Raise StoreUnavailable, StoreRejected or PointError.
        `retry=False` makes one attempt (the agent's shipper retries through its spool instead)."""

    @abc.abstractmethod
    def read(self, query: Query) -> pd.DataFrame:
        """Return the frame answering a Query."""

    @abc.abstractmethod
    def latest(self, measurement: str, fields: Sequence[str], since: TimeLike, until: TimeLike | None = None,
               where: Where | None = None, group_by: Sequence[str] = ()) -> pd.DataFrame:
        """Return the newest point (within [since, until]) of each group, with its time."""

    @abc.abstractmethod
    def tag_values(self, measurement: str, tag: str, where: Where | None = None) -> list[str]:
        """Return the sorted distinct values of a tag in a measurement (filtered by other tags)."""

    def query(self, measurement: str, fields: Sequence[str], start: TimeLike, end: TimeLike,
              where: Where | None = None, window_seconds: int | None = None,
              aggregate: str | Sequence[str] = "mean", group_by: Sequence[str] = (),
              matching: Matching | None = None) -> pd.DataFrame:
        """Build a Query from arguments and read it; several aggregates (a tuple) are read in one statement,
        into columns `<aggregate>_<field>`; `matching` keeps the rows whose fields pass its tests (tsdb.query)."""
        return self.read(Query.build(measurement, fields, start, end, where, window_seconds, aggregate, group_by,
                                     matching))

    def events(self, start: TimeLike, end: TimeLike | None = None, where: Where | None = None) -> pd.DataFrame:
        """Return the events in [start, end) with columns time, host, kind, severity, domain, message, by time."""
        end = now_ns() + 1 if end is None else to_ns(end, "end")
        frame = self.query("event", EVENT_FIELDS, start, end, where=where, group_by=EVENT_TAGS)
        frame = frame[["time", *EVENT_TAGS, *EVENT_FIELDS]]
        return frame.sort_values(["time", *EVENT_TAGS], kind="mergesort", ignore_index=True)

    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
