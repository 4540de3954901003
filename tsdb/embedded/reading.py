"""Reads as SQL: read, latest and tag_values as statements, and their results as the standard frames.

Identifiers come from the catalog only; every value (tag values, times, window widths) is a parameter.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from tsdb.embedded.catalog import INFLUX_TYPE_NAMES, Table
from tsdb.errors import QueryError
from tsdb.frames import empty_frame, make_frame
from tsdb.point import INT64_MAX, INT64_MIN, clean_name
from tsdb.query import Query, TimeLike, Where, now_ns, to_ns

#: run a statement with its parameters, `what` naming the read in errors
Fetch = Callable[[str, list, str], pa.Table]

#: aggregates InfluxDB 1.x refuses for some field types ("unsupported mean iterator type")
_REFUSED = {"mean": ("bool", "str"), "sum": ("bool", "str"), "min": ("str",), "max": ("str",)}
#: InfluxDB 1.x refuses them only when a shard group overlapping the range holds the field: 7 days (infinite
#: retention), aligned by Go's time.Truncate, i.e. to multiples of 7 days since 0001-01-01, not the Unix epoch
_SHARD_GROUP_NS = 7 * 86400 * 10**9
_SHARD_OFFSET_NS = (62135596800 * 10**9) % _SHARD_GROUP_NS
_BUCKET = "time_ns - CASE WHEN time_ns % ? < 0 THEN time_ns % ? + ? ELSE time_ns % ? END"


class _Value(NamedTuple):
    """One aggregate of one field a windowed read computes: its column in the frame, and the field's SQL column."""

    column: str
    aggregate: str
    field: str
    sql_column: str
    kind: str


def _prepare(table: Table | None, query: Query):
    """Return (known fields, where, its clauses, parameters, group columns), or None when nothing can match."""
    if table is None:
        return None
    known = _known_fields(table, query.fields)
    where = _where_sql(table, query.where)
    if not known or where is None:
        return None
    clauses, params = where
    matched, matched_params = _matching_sql(table, query.matching)
    clauses, params = clauses + matched, [_clamp(query.start_ns), _clamp(query.end_ns), *params, *matched_params]
    groups = [(t, table.tags[t]) for t in query.group_by if t in table.tags]
    return known, where, clauses, params, groups


def read(table: Table | None, query: Query, fetch: Fetch) -> pd.DataFrame:
    """Return the frame answering a Query; every aggregate of a windowed read comes from one statement, so from
    one snapshot of the table."""
    prepared = _prepare(table, query)
    if prepared is None:
        return empty_frame(query.group_by, query.columns)
    known, where, clauses, params, groups = prepared
    group_sql = [col for _t, col in groups]
    if query.window_seconds is None:
        selects = ["time_ns", *group_sql, *[col for _f, col, _k in known]]
        sql = f"SELECT {', '.join(selects)} FROM {table.name} WHERE {_conditions(clauses, known)}"
        result = fetch(sql, params, f"reading {query.measurement!r}")
        return _frame(result, query.group_by, [t for t, _c in groups], query.columns, known)
    width = query.window_seconds * 10**9
    if width > INT64_MAX:
        raise QueryError(f"window_seconds = {query.window_seconds}: too long")
    columns = {f: (col, kind) for f, col, kind in known}
    values = [_Value(o.column, o.aggregate, o.field, *columns[o.field]) for o in query.outputs if o.field in columns]
    refused = [v for v in values if v.kind in _REFUSED.get(v.aggregate, ())]
    if refused:
        _refuse(query, table, refused, where, fetch)
        values = [v for v in values if v not in refused]  # no matching data in a shard holding them: null
        if not values:
            return empty_frame(query.group_by, query.columns)
        known = [k for k in known if any(v.field == k[0] for v in values)]
    aggregates = [_aggregate_sql(v.aggregate, v.sql_column, v.kind) for v in values]
    groups_by = ", ".join(str(i + 1) for i in range(1 + len(group_sql)))
    sql = (f"SELECT {', '.join([_BUCKET, *group_sql, *aggregates])} FROM {table.name} "
           f"WHERE {_conditions(clauses, known)} GROUP BY {groups_by}")
    result = fetch(sql, [width, width, width, width, *params], f"reading {query.measurement!r}")
    answered = [(v.column, v.sql_column, "float" if v.aggregate in ("mean", "count", "sum") else v.kind)
                for v in values]
    return _frame(result, query.group_by, [t for t, _c in groups], query.columns, answered)


def latest_query(measurement: str, fields: Sequence[str], since: TimeLike, until: TimeLike | None,
                 where: Where | None, group_by: Sequence[str]) -> Query:
    """Return the Query of the range [since, until] (until defaults to now) that `latest` reads."""
    until_ns = now_ns() if until is None else to_ns(until, "until")
    if until_ns < to_ns(since, "since"):
        raise QueryError(f"until {until!r} must not come before since {since!r}")
    return Query.build(measurement, fields, since, min(until_ns, INT64_MAX - 1) + 1, where, None, "mean",
                       group_by)


def latest(table: Table | None, query: Query, fetch: Fetch) -> pd.DataFrame:
    """Return, per group, the newest row of the query's range with a value for any of its fields."""
    prepared = _prepare(table, query)
    if prepared is None:
        return empty_frame(query.group_by, query.fields)
    known, where, clauses, params, groups = prepared
    selects = ["time_ns", *[col for _t, col in groups], *[col for _f, col, _k in known]]
    sql = f"SELECT {', '.join(selects)} FROM {table.name} WHERE {_conditions(clauses, known)} "
    if groups:
        sql += (f"QUALIFY row_number() OVER (PARTITION BY {', '.join(col for _t, col in groups)} "
                f"ORDER BY time_ns DESC, series DESC) = 1")
    else:
        sql += "ORDER BY time_ns DESC, series DESC LIMIT 1"
    result = fetch(sql, params, f"reading the latest {query.measurement!r}")
    return _frame(result, query.group_by, [t for t, _c in groups], query.fields, known)


def tag_values(table: Table | None, measurement: str, tag: str, where: list, fetch: Fetch) -> list[str]:
    """Return the sorted distinct values of a tag over all time, filtered by normalized `where`."""
    if table is None:
        return []
    column = table.tags.get(clean_name(tag))
    where_sql = _where_sql(table, where)
    if column is None or where_sql is None:
        return []
    clauses, params = where_sql
    sql = f"SELECT DISTINCT {column} FROM {table.name} WHERE {' AND '.join([f'{column} IS NOT NULL', *clauses])}"
    result = fetch(sql, params, f"reading the values of tag {tag!r} of {measurement!r}")
    return sorted(result.column(0).to_pylist())


def _known_fields(table: Table, fields: Sequence[str]) -> list[tuple[str, str, str]]:
    """Return (field, column, kind) of the asked fields the measurement has."""
    return [(f, col, kind) for f in fields if f in table.fields for col, kind in [table.fields[f]]]


def _conditions(clauses: list[str], known: list[tuple[str, str, str]]) -> str:
    """Return the WHERE conditions: the time range, the tag filters, a value for at least one known field."""
    has_value = "(" + " OR ".join(f"{col} IS NOT NULL" for _f, col, _k in known) + ")"
    return " AND ".join(["time_ns >= ?", "time_ns < ?", *clauses, has_value])


def _refuse(query: Query, table: Table, refused: list[_Value], where: tuple[list[str], list], fetch: Fetch) -> None:
    """Raise QueryError where InfluxDB refuses an aggregate for a field's type (mean of strings...).

    InfluxDB refuses when a shard group (week) overlapping the range holds the field and a series matching the
    filters; with several aggregates, the whole statement is refused.
    """
    low = _clamp(_shard_start(query.start_ns))
    high = _clamp(_shard_start(query.end_ns - 1) + _SHARD_GROUP_NS)
    clauses, params = where
    matched = " AND ".join(clauses) or "TRUE"
    shard = "(time_ns::HUGEINT + ?) - (((time_ns::HUGEINT + ?) % ?) + ?) % ?"
    probed = list(dict.fromkeys(v.sql_column for v in refused))
    probes = ", ".join(f"bool_or({col} IS NOT NULL)" for col in probed)
    sql = (f"SELECT {probes} FROM {table.name} WHERE time_ns >= ? AND time_ns < ? GROUP BY {shard} "
           f"HAVING bool_or({matched})")
    shard_params = [_SHARD_OFFSET_NS, _SHARD_OFFSET_NS, _SHARD_GROUP_NS, _SHARD_GROUP_NS, _SHARD_GROUP_NS]
    result = fetch(sql, [low, high, *shard_params, *params], f"reading {query.measurement!r}")
    held = {col for i, col in enumerate(probed) if any(result.column(i).to_pylist())}
    for value in refused:
        if value.sql_column in held:
            raise QueryError(f"{value.aggregate}() of field {value.field!r} of {query.measurement!r}: not defined "
                             f"for {INFLUX_TYPE_NAMES[value.kind]} fields (InfluxDB refuses it too: unsupported "
                             f"{value.aggregate} iterator type)")


def _shard_start(time_ns: int) -> int:
    return time_ns - (time_ns + _SHARD_OFFSET_NS) % _SHARD_GROUP_NS


def _clamp(value: int) -> int:
    return min(max(value, INT64_MIN), INT64_MAX)


def _where_sql(table: Table, where) -> tuple[list[str], list] | None:
    """Return SQL conditions for tag filters (tag IN values, "" meaning absent), or None when nothing can match."""
    clauses, params = [], []
    for tag, values in where:
        column = table.tags.get(tag)
        absent_ok = "" in values
        present = [v for v in values if v != ""]
        if column is None:
            if absent_ok:
                continue
            return None
        parts = []
        if present:
            parts.append(f"{column} IN ({', '.join('?' * len(present))})")
            params.extend(present)
        if absent_ok:
            parts.append(f"{column} IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
    return clauses, params


def _matching_sql(table: Table, matching) -> tuple[list[str], list]:
    """Return the SQL condition of field tests and its parameters: a test of a field the table lacks, or holds as
    text or booleans, never holds (InfluxDB compares only numbers with numbers)."""
    if not matching:
        return [], []
    groups, params = [], []
    for group in matching:
        columns = [table.fields.get(field, (None, None)) for field, _comparison, _value in group]
        if any(kind not in ("float", "int") for _column, kind in columns):
            groups.append("FALSE")
            continue
        groups.append("(" + " AND ".join(f"{column} {comparison} ?"
                                         for (column, _kind), (_f, comparison, _v) in zip(columns, group)) + ")")
        params.extend(value for _f, _c, value in group)
    return ["(" + " OR ".join(groups) + ")"], params


def _aggregate_sql(aggregate: str, column: str, kind: str) -> str:
    """Return the SQL of one aggregate, as InfluxDB 1.x computes it."""
    if aggregate == "mean":
        return f"avg({column})::DOUBLE"
    if aggregate == "sum":
        return f"sum({column})::DOUBLE"
    if aggregate == "count":
        return f"nullif(count({column}), 0)::DOUBLE"
    if aggregate in ("min", "max"):
        return f"{aggregate}({column})"
    ties = "ASC" if (aggregate == "first" and kind == "bool") else "DESC"
    order = "ASC" if aggregate == "first" else "DESC"
    return f"first({column} ORDER BY time_ns {order}, {column} {ties}) FILTER (WHERE {column} IS NOT NULL)"


def _frame(result: pa.Table, group_by: Sequence[str], known_groups: list[str], fields: Sequence[str],
           known_fields: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Turn a result (time, known group tags, known value columns in that order) into the standard frame.

    `fields` names the frame's value columns; `known_fields` holds (name, SQL column, kind) of those answered.
    """
    n = result.num_rows
    if n == 0:
        return empty_frame(group_by, fields)
    times = result.column(0).to_numpy()
    tag_index = {tag: 1 + i for i, tag in enumerate(known_groups)}
    tags = {tag: (result.column(tag_index[tag]).to_numpy(zero_copy_only=False) if tag in tag_index else [""] * n)
            for tag in group_by}
    field_index = {f: (1 + len(known_groups) + i, kind) for i, (f, _col, kind) in enumerate(known_fields)}
    columns = {}
    for f in fields:
        if f not in field_index:
            columns[f] = np.full(n, np.nan)
            continue
        i, kind = field_index[f]
        column = result.column(i)
        if kind in ("float", "int"):
            columns[f] = column.cast(pa.float64()).to_numpy()
        else:
            columns[f] = column.to_pylist()
    return make_frame(times, tags, columns)
