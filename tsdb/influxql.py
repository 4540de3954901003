"""InfluxQL for the query interface: every identifier and string literal quoted and escaped.

Identifiers are double-quoted with `\\` and `"` escaped; string literals single-quoted with `\\` and `'`
escaped (InfluxQL's scanner, influxql/scanner.go). Names reaching here went through clean_name, so they
hold no line breaks, which InfluxQL strings cannot carry. Nothing a caller passes becomes syntax.
"""

from __future__ import annotations

from tsdb.query import Query

_IDENT = str.maketrans({"\\": "\\\\", '"': '\\"'})
_LITERAL = str.maketrans({"\\": "\\\\", "'": "\\'"})


def ident(name: str) -> str:
    """Return a double-quoted InfluxQL identifier."""
    return '"' + name.translate(_IDENT) + '"'


def literal(value: str) -> str:
    """Return a single-quoted InfluxQL string literal."""
    return "'" + value.translate(_LITERAL) + "'"


def tag_condition(where: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """Return `("a" = 'x' OR "a" = 'y') AND ...` for tag filters, or "" when there are none."""
    clauses = []
    for tag, values in where:
        column = ident(tag) + "::tag"
        clauses.append("(" + " OR ".join(f"{column} = {literal(v)}" for v in values) + ")")
    return " AND ".join(clauses)


def field_condition(matching) -> str:
    """Return `("a"::field = 6 OR ("b"::field >= 1 AND "c"::field < 2.5))` for normalized field tests, or ""."""
    groups = [" AND ".join(f"{ident(field)}::field {comparison} {number(value)}" for field, comparison, value in group)
              for group in matching]
    return "(" + " OR ".join(f"({group})" for group in groups) + ")" if groups else ""


def number(value: int | float) -> str:
    """Return an InfluxQL number literal (integers without a point, so that integer fields compare exactly)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _where_clause(start_ns: int, end_ns: int | None, where, end_inclusive: bool = False, matching=()) -> str:
    parts = [f"time >= {start_ns}"]
    if end_ns is not None:
        parts.append(f"time {'<=' if end_inclusive else '<'} {end_ns}")
    for condition in (tag_condition(where), field_condition(matching)):
        if condition:
            parts.append(condition)
    return " WHERE " + " AND ".join(parts)


def _group_by(tags: tuple[str, ...], window_seconds: int | None = None) -> str:
    parts = [f"time({window_seconds}s)"] if window_seconds else []
    parts += [ident(t) for t in tags]
    return " GROUP BY " + ", ".join(parts) if parts else ""


def select(query: Query) -> str:
    """Return the SELECT statement answering a Query."""
    if query.window_seconds:  # every aggregate in one statement (InfluxDB reads each on its own, see tsdb.influx)
        columns = ", ".join(f"{o.aggregate}({ident(o.field)}::field) AS {ident(o.column)}" for o in query.outputs)
    else:
        columns = ", ".join(f"{ident(f)}::field AS {ident(f)}" for f in query.fields)
    statement = f"SELECT {columns} FROM {ident(query.measurement)}"
    statement += _where_clause(query.start_ns, query.end_ns, query.where, matching=query.matching)
    statement += _group_by(query.group_by, query.window_seconds)
    if query.window_seconds:
        statement += " fill(none)"
    return statement


def select_latest(measurement: str, fields: tuple[str, ...], since_ns: int, until_ns: int,
                  where, group_by: tuple[str, ...]) -> str:
    """Return a SELECT of the newest point of each group in [since, until]."""
    columns = ", ".join(f"{ident(f)}::field AS {ident(f)}" for f in fields)
    statement = f"SELECT {columns} FROM {ident(measurement)}"
    statement += _where_clause(since_ns, until_ns, where, end_inclusive=True)
    statement += _group_by(group_by)
    return statement + " ORDER BY time DESC LIMIT 1"


def show_tag_values(measurement: str, tag: str, where) -> str:
    """Return SHOW TAG VALUES of one tag key, filtered by other tags."""
    statement = f"SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = {ident(tag)}"
    condition = tag_condition(where)
    return statement + (f" WHERE {condition}" if condition else "")
