"""The one small query interface every reader uses: what to read, never how (no InfluxQL or SQL above tsdb).

A `Query` is a time range [start, end) of one measurement: some fields, tag filters, optionally an
aggregate over fixed windows aligned to the Unix epoch (as InfluxDB's GROUP BY time() aligns them), and
group-by tags. Tag filters are equality; a sequence means any of its values; "" matches series without
the tag. Filter values pass through the same name rule as stored values (tsdb.point.clean_name), so a
hostile name filters exactly the series it names.

`matching` keeps only the rows whose fields pass a test: any one of several groups of (field, comparison,
number) tests that must all hold (`((("state_code", "=", 6),), (("stats_partial", "=", 1),))` is "crashed or
partial"); a row without a value for a tested field fails that test, as in InfluxDB. So a store counts the rows
that pass (`aggregate="count"`) instead of sending every row to be counted here.

Several aggregates of the same windows are read by one statement (`aggregate=("sum", "count")`, columns
`<aggregate>_<field>`, see `Query.outputs`), so that they describe the same data: two statements read two
states of a store that is being written (a point landing between them counts in one and not the other).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence


from tsdb.errors import QueryError
from tsdb.point import clean_name

AGGREGATES = ("mean", "min", "max", "sum", "count", "first", "last")
#: InfluxDB's own bounds (models/time.go): one step inside int64 at each end
MIN_TIME_NS, MAX_TIME_NS = -(2**63) + 2, 2**63 - 2
TimeLike = int | float | str | dt.datetime  # pandas Timestamps are datetimes
Where = Mapping[str, str | Sequence[str]]
COMPARISONS = ("=", "<", "<=", ">", ">=")
Test = tuple[str, str, float]  # (field, one of COMPARISONS, a number)
Matching = Sequence[Sequence[Test]]  # rows where every test of any one group holds


def to_ns(value: TimeLike, name: str = "time") -> int:
    """Return nanoseconds since the epoch for an int (ns), a datetime, a pandas Timestamp or an ISO string."""
    if isinstance(value, bool):
        raise QueryError(f"{name} = {value!r}: expected a time")
    if isinstance(value, int):
        if not MIN_TIME_NS <= value <= MAX_TIME_NS:
            raise QueryError(f"{name} = {value!r}: outside the times a store can hold (years 1677 to 2262)")
        return value
    import pandas as pd  # here, not at the top: the agent's write path never loads pandas (~86 MB)

    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as error:
        raise QueryError(f"{name} = {value!r}: not a time ({error})") from None
    if stamp is pd.NaT:
        raise QueryError(f"{name} = {value!r}: not a time")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def now_ns() -> int:
    """Return the current time in nanoseconds since the epoch."""
    return int(dt.datetime.now(dt.timezone.utc).timestamp() * 1e9)


def normalize_where(where: Where | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Return tag filters as sorted (tag, values) pairs with names cleaned; reject non-string values."""
    if not where:
        return ()
    pairs = []
    for tag, values in where.items():
        if not isinstance(tag, str) or not tag:
            raise QueryError(f"tag filter key {tag!r}: must be a non-empty string")
        if isinstance(values, str):
            values = (values,)
        values = tuple(values) if isinstance(values, (list, tuple, set, frozenset)) else (values,)
        if not values or not all(isinstance(v, str) for v in values):
            raise QueryError(f"tag filter {tag} = {values!r}: expected a string or a non-empty list of strings")
        pairs.append((clean_name(tag), tuple(dict.fromkeys(clean_name(v) for v in values))))
    return tuple(sorted(pairs))


def normalize_matching(matching: Matching | None) -> tuple[tuple[Test, ...], ...]:
    """Return field tests as tuples with names cleaned; raise QueryError naming what is wrong."""
    if matching is None:
        return ()
    shape = "expected groups of (field, comparison, number) tests, e.g. (((\"state_code\", \"=\", 6),),)"
    if isinstance(matching, (str, bytes)) or not isinstance(matching, (list, tuple)) or not matching:
        raise QueryError(f"matching = {matching!r}: {shape}")
    groups = []
    for group in matching:
        if not isinstance(group, (list, tuple)) or not group or not all(isinstance(t, (list, tuple)) for t in group):
            raise QueryError(f"matching group {group!r}: {shape}")
        tests = []
        for test in group:
            if not isinstance(test, (list, tuple)) or len(test) != 3:
                raise QueryError(f"matching test {test!r}: {shape}")
            field, comparison, value = test
            if not isinstance(field, str) or not field or field == "time":
                raise QueryError(f"matching test {test!r}: the field must be a non-empty name other than 'time'")
            if comparison not in COMPARISONS:
                raise QueryError(f"matching test {test!r}: the comparison must be one of {', '.join(COMPARISONS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or abs(value) >= 2**53:
                raise QueryError(f"matching test {test!r}: the value must be a finite number below 2**53")
            tests.append((clean_name(field), comparison, value))
        groups.append(tuple(tests))
    return tuple(groups)


class Output(NamedTuple):
    """One value column of a read: its name, the field it reads and the aggregate (None for raw reads)."""

    column: str
    field: str
    aggregate: str | None


@dataclass(frozen=True)
class Query:
    """A read of `fields` of `measurement` in [start_ns, end_ns), filtered, optionally windowed and grouped.

    `aggregates` is empty for one aggregate (`aggregate`, value columns named by their fields); otherwise it
    holds every aggregate the read computes, `aggregate` is its first, and each field's value columns are
    named `<aggregate>_<field>` (see `outputs`).
    """

    measurement: str
    fields: tuple[str, ...]
    start_ns: int
    end_ns: int
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    window_seconds: int | None = None
    aggregate: str = "mean"
    group_by: tuple[str, ...] = ()
    aggregates: tuple[str, ...] = ()
    matching: tuple[tuple[Test, ...], ...] = ()

    @property
    def outputs(self) -> tuple[Output, ...]:
        """Return the value columns a read answers with, in order: one per field, or with several aggregates
        one per field and aggregate (field by field, the aggregates in the order asked)."""
        if not self.window_seconds:
            return tuple(Output(f, f, None) for f in self.fields)
        if not self.aggregates:
            return tuple(Output(f, f, self.aggregate) for f in self.fields)
        return tuple(Output(f"{a}_{f}", f, a) for f in self.fields for a in self.aggregates)

    @property
    def columns(self) -> tuple[str, ...]:
        """Return the names of the value columns (after `time` and the group-by tags)."""
        return tuple(output.column for output in self.outputs)

    @classmethod
    def build(
        cls,
        measurement: str,
        fields: Sequence[str],
        start: TimeLike,
        end: TimeLike,
        where: Where | None = None,
        window_seconds: int | None = None,
        aggregate: str | Sequence[str] = "mean",
        group_by: Sequence[str] = (),
        matching: Matching | None = None,
    ) -> "Query":
        """Return a checked Query; raise QueryError naming the bad argument and why.

        `aggregate` is one name from AGGREGATES, or a tuple or list of them (distinct, windowed reads only)
        to compute all of them over one reading of the data (columns `<aggregate>_<field>`).
        """
        if not isinstance(measurement, str) or not measurement:
            raise QueryError(f"measurement {measurement!r}: must be a non-empty string")
        if isinstance(fields, str):
            fields = (fields,)
        fields = tuple(fields)
        if not fields or not all(isinstance(f, str) and f for f in fields):
            raise QueryError(f"fields {fields!r}: expected a non-empty list of field names")
        if isinstance(group_by, str):
            group_by = (group_by,)
        group_by = tuple(group_by)
        if not all(isinstance(t, str) and t for t in group_by):
            raise QueryError(f"group_by {group_by!r}: expected a list of tag names")
        clash = set(fields) & set(group_by)
        if clash or "time" in fields or "time" in group_by:
            raise QueryError(f"fields {fields!r} and group_by {group_by!r}: names must differ and not be 'time'")
        start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
        if end_ns <= start_ns:
            raise QueryError(f"end {end!r} must come after start {start!r}")
        if window_seconds is not None:
            if isinstance(window_seconds, bool) or not isinstance(window_seconds, int) or window_seconds <= 0:
                raise QueryError(f"window_seconds = {window_seconds!r}: expected a positive whole number of seconds")
        aggregates = _check_aggregates(aggregate, window_seconds)
        query = cls(
            measurement=clean_name(measurement),
            fields=tuple(dict.fromkeys(clean_name(f) for f in fields)),
            start_ns=start_ns,
            end_ns=end_ns,
            where=normalize_where(where),
            window_seconds=window_seconds,
            aggregate=aggregates[0] if aggregates else aggregate,
            group_by=tuple(dict.fromkeys(clean_name(t) for t in group_by)),
            aggregates=aggregates,
            matching=normalize_matching(matching),
        )
        if aggregates:
            clash = set(query.columns) & {"time", *query.group_by}
            if clash:
                raise QueryError(f"aggregate = {aggregate!r}: column {sorted(clash)[0]!r} would also name a "
                                 f"group_by tag or the time")
        return query


def _check_aggregates(aggregate, window_seconds: int | None) -> tuple[str, ...]:
    """Return () for one aggregate name, the names of a tuple or list of them; raise QueryError otherwise."""
    choices = ", ".join(AGGREGATES)
    if isinstance(aggregate, str):
        if aggregate not in AGGREGATES:
            raise QueryError(f"aggregate = {aggregate!r}: must be one of {choices}")
        return ()
    if not isinstance(aggregate, (tuple, list)):
        raise QueryError(f"aggregate = {aggregate!r}: expected one of {choices}, or a tuple or list of them")
    names = tuple(aggregate)
    if not names:
        raise QueryError(f"aggregate = {aggregate!r}: expected at least one aggregate")
    for name in names:
        if not isinstance(name, str) or name not in AGGREGATES:
            raise QueryError(f"aggregate = {aggregate!r}: {name!r} must be one of {choices}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise QueryError(f"aggregate = {aggregate!r}: {twice[0]!r} named more than once")
    if window_seconds is None:
        raise QueryError(f"aggregate = {aggregate!r}: a tuple or list of aggregates needs window_seconds")
    return names


def matches(fields: Mapping[str, object], matching: Matching) -> bool:
    """Return whether a point's fields pass `matching` (every test of any one group holds) as the stores filter:
    a missing or non-numeric field fails its test."""
    import operator

    compare = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    for group in matching:
        if all(isinstance(fields.get(name), (int, float)) and not isinstance(fields.get(name), bool)
               and compare[comparison](fields[name], value) for name, comparison, value in group):
            return True
    return False
