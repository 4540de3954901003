"""EmbeddedStore: one DuckDB file opened by one process, one writer at a time, readers in parallel.

Writes hold a lock and go through the connection's own cursor, all of a batch in one transaction; each read
borrows a pooled cursor (its own DuckDB connection, with a consistent snapshot), so readers run in parallel
with each other and with the writer. The catalog readers see is replaced only after a write commits.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from tsdb.embedded import reading
from tsdb.embedded.catalog import Table, ensure_table, load_catalog
from tsdb.embedded.columns import Columns, check_columns
from tsdb.embedded.conflicts import conflict_message, settle_types
from tsdb.embedded.ingest import Group, SeriesRegistry, check_batch
from tsdb.embedded.merging import insert, new_columns, stage
from tsdb.errors import QueryError, StoreRejected, StoreUnavailable
from tsdb.point import Point, clean_name
from tsdb.query import Query, TimeLike, Where, normalize_where
from tsdb.store import Store

#: idle reader cursors kept for reuse
_IDLE_CURSORS_MAX = 8

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*)$", re.S)


class EmbeddedStore(Store):
    """The DuckDB store in one file: for one machine and one process (see tsdb.embedded)."""

    #: a read is one SQL statement, and DuckDB runs each statement on one snapshot
    reads_one_snapshot = True

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.display_url = "duckdb://" + self.path
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._max_time: dict[str, int | None] = {}  # table name -> greatest stored time, filled when first needed
        self._series = SeriesRegistry()
        self._conn = self._connect()
        try:
            self._writer = self._conn.cursor()
            self._tables, self._next_table = load_catalog(self._writer, self.path)
        except duckdb.Error as error:
            self._conn.close()
            self._conn = None
            raise StoreUnavailable(f"embedded store {self.path}: cannot read its catalog: {error}") from None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file (creating its directory), naming the process that holds it when it is locked."""
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as error:
                raise StoreUnavailable(f"embedded store {self.path}: cannot create directory {parent}: "
                                       f"{error.strerror or error}") from None
        try:
            return duckdb.connect(self.path)
        except duckdb.IOException as error:
            text = str(error)
            if "Could not set lock" in text:
                holder = _LOCK_HOLDER.search(text)
                by = f" (held by {holder.group(1).strip()})" if holder else ""
                raise StoreUnavailable(
                    f"embedded store file {self.path} is locked by another process{by}: the embedded DuckDB "
                    f"store serves one process only; stop that process, use another file, or use InfluxDB "
                    f"for several processes") from None
            raise StoreUnavailable(f"embedded store {self.path}: cannot open: {text}") from None
        except duckdb.Error as error:
            raise StoreUnavailable(f"embedded store {self.path}: cannot open: {error}") from None

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Lend a cursor (its own DuckDB connection) to one read; readers run in parallel."""
        with self._pool_lock:
            self._check_open()
            cursor = self._idle.pop() if self._idle else self._conn.cursor()
        try:
            yield cursor
        finally:
            with self._pool_lock:
                if self._conn is not None and len(self._idle) < _IDLE_CURSORS_MAX:
                    self._idle.append(cursor)
                else:
                    cursor.close()

    def _fetch(self, sql: str, params: list, what: str) -> pa.Table:
        """Run one read statement on a borrowed cursor and return its result."""
        with self._reader() as cursor:
            try:
                return cursor.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as error:
                self._check_open()
                raise QueryError(f"embedded store {self.path}: {what} failed: {error}") from None

    def _check_open(self) -> None:
        """Raise StoreUnavailable once the store is closed."""
        if self._conn is None:
            raise StoreUnavailable(f"embedded store {self.path} is closed")

    def close(self) -> None:
        """Close the file; later calls raise StoreUnavailable."""
        with self._write_lock, self._pool_lock:
            if self._conn is None:
                return
            for cursor in self._idle:
                cursor.close()
            self._idle.clear()
            self._writer.close()
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"EmbeddedStore({self.path!r})"

    def write(self, points: Iterable[Point], *, retry: bool = True) -> int:
        """Store points; return how many were stored (points left without a field are not counted).

        Raise PointError (nothing stored) for a point no store can take, StoreRejected after storing the rest
        when points had a field type conflict, StoreUnavailable when the file cannot be written.
        """
        points = points if isinstance(points, list) else list(points)
        if not points:
            return 0
        with self._write_lock:
            self._check_open()
            self._series.trim()
            groups = check_batch(points, self._series)
            conflicts = []
            for group in groups:
                table = self._tables.get(group.measurement)
                existing = {key: kind for key, (_column, kind) in table.fields.items()} if table else {}
                conflicts += settle_types(group, existing)
            stored = self._store(groups)
        message = conflict_message(conflicts)
        if message:
            raise StoreRejected(f"embedded store {self.path}: {message} ({stored} points stored)",
                                status=400, server_message=message)
        return stored

    def write_columns(self, measurement: str, columns: Columns, tags: Sequence[str] = ()) -> int:
        """Store one measurement's points given as whole columns; return how many were stored.

        `columns` (a pandas DataFrame, an Arrow table or a mapping of name to values) holds `time_ns` (int ns),
        the tag columns named in `tags` (strings; null or "" is an absent tag) and one column per field (float,
        int, bool or str; null is an absent field). The batch means what the same rows written one by one with
        `write` mean, and raises the same errors; a bad column raises PointError naming it, before anything is
        stored (see tsdb.embedded.columns).
        """
        with self._write_lock:
            self._check_open()
            self._series.trim()
            group = check_columns(measurement, columns, tags, self._series)
            if not len(group.times):
                return 0
            table = self._tables.get(group.measurement)
            existing = {key: kind for key, (_column, kind) in table.fields.items()} if table else {}
            conflicts = settle_types(group, existing)
            stored = self._store([group])
        message = conflict_message(conflicts)
        if message:
            raise StoreRejected(f"embedded store {self.path}: {message} ({stored} points stored)",
                                status=400, server_message=message)
        return stored

    def _store(self, groups: list[Group]) -> int:
        """Store the kept rows of checked groups in one transaction; return how many points were stored."""
        cursor = self._writer
        series = self._series.series
        tables = dict(self._tables)
        next_table = self._next_table
        max_times = {}
        stored = 0
        try:
            cursor.execute("BEGIN TRANSACTION")
            for group in groups:
                if not group.keep.any():
                    continue
                tag_keys, fields = new_columns(group, series, tables.get(group.measurement))
                table, next_table = ensure_table(cursor, tables, group.measurement, tag_keys, fields, next_table)
                staged = stage(group, table, series)
                max_times[table.name] = insert(cursor, table, staged, self._stored_max(cursor, table))
                stored += int(group.keep.sum())
            cursor.execute("COMMIT")
        except BaseException as error:
            try:
                cursor.execute("ROLLBACK")
            except duckdb.Error:
                pass
            if isinstance(error, duckdb.Error):
                raise StoreUnavailable(f"embedded store {self.path}: write failed, nothing stored: "
                                       f"{error}") from None
            raise
        self._tables = tables
        self._next_table = next_table
        self._max_time.update(max_times)
        return stored

    def _stored_max(self, cursor: duckdb.DuckDBPyConnection, table: Table) -> int | None:
        """Return the greatest time stored in a table (None when empty), asking the file only once."""
        if table.name not in self._max_time:
            self._max_time[table.name] = cursor.execute(f"SELECT max(time_ns) FROM {table.name}").fetchall()[0][0]
        return self._max_time[table.name]

    def read(self, query: Query) -> pd.DataFrame:
        """Return the frame answering a Query (see tsdb.query and tsdb.frames)."""
        self._check_open()
        return reading.read(self._tables.get(query.measurement), query, self._fetch)

    def latest(self, measurement: str, fields: Sequence[str], since: TimeLike, until: TimeLike | None = None,
               where: Where | None = None, group_by: Sequence[str] = ()) -> pd.DataFrame:
        """Return, per group, the newest row in [since, until] with a value for any of `fields`."""
        query = reading.latest_query(measurement, fields, since, until, where, group_by)
        self._check_open()
        return reading.latest(self._tables.get(query.measurement), query, self._fetch)

    def table_of(self, measurement: str) -> Table | None:
        """Return where a measurement is stored (its table, tag and field columns), None when it has no table.

        For reads in SQL of this process's own (sql); the entry is never changed, a write replaces it.
        """
        return self._tables.get(clean_name(measurement)) if isinstance(measurement, str) else None

    def sql(self, statement: str, params: Sequence = ()) -> pa.Table:
        """Run one read statement on a snapshot and return its result: for aggregations the query interface has
        no words for (simulator.rollups). Identifiers come from table_of only, every value is a parameter."""
        return self._fetch(statement, list(params), "a read in SQL")

    def tag_values(self, measurement: str, tag: str, where: Where | None = None) -> list[str]:
        """Return the sorted distinct values of a tag of a measurement (over all time), filtered by `where`."""
        if not isinstance(measurement, str) or not measurement or not isinstance(tag, str) or not tag:
            raise QueryError(f"tag_values({measurement!r}, {tag!r}): measurement and tag must be non-empty strings")
        where_pairs = normalize_where(where)
        self._check_open()
        table = self._tables.get(clean_name(measurement))
        return reading.tag_values(table, measurement, tag, where_pairs, self._fetch)
