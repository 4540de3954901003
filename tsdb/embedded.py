"""The embedded store: DuckDB in one file, for one machine and ONE process (`virtwatch demo`).

Another process cannot open the same file (DuckDB holds a lock on it); a user who needs several processes, or
several machines, uses InfluxDB. Within the process the store is thread-safe: one writer at a time (a lock),
readers in parallel on their own cursors (DuckDB gives each a consistent snapshot).

It keeps and answers exactly what InfluxDB 1.x keeps and answers (measured against InfluxDB 1.6):

- names and tag values pass through `tsdb.point.clean_name`; empty tag values are dropped (absent tag);
  non-finite floats are dropped; a point left with no field is skipped and not counted.
- one point per (series, time): writing the same series and time again merges the fields, new values win,
  fields the new point lacks keep their old values (also within one batch, in order).
- field types are fixed by the first value stored (ints are not floats). A point with a field of another type
  is dropped, the rest of the batch is stored, and StoreRejected is raised afterwards with InfluxDB's message
  ("partial write: field type conflict: ... dropped=N"). InfluxDB rejects ALL the batch's points of a shard
  (a 7-day shard group aligned as Go's time.Truncate) when two points of the batch give a new field different
  types and no earlier batch wrote to that shard; that is mirrored: those points are not stored either, and
  the fields of the points before the conflict keep the type they were given, as in InfluxDB.
  Differences, all after type conflicts: InfluxDB keeps field types per shard (another week may hold another
  type), here a field has one type in a measurement for all time; InfluxDB's series index keeps the series of
  points it dropped or rejected (SHOW TAG VALUES lists them, and a filter only they match still makes mean() of
  a string field fail), here only series with stored points exist.
- reads: raw rows where at least one asked field has a value; windows aligned to the epoch labelled by their
  start; fill(none) (only windows where an asked field has a value); count of a field with no value in such a
  window is null; first/last take the earliest/latest value and, between equal times, the largest value
  (for booleans, first prefers false), as InfluxDB does; mean and sum refuse string and boolean fields,
  min and max refuse string fields. Unknown fields read as null; unknown tags read as "".

Layout in the DuckDB file: `vw_meta` (format version), `vw_catalog` mapping each measurement to a table
`m_<n>` and each of its tags and fields to a column `c_<n>` (fields with their type). Names are arbitrary
unicode and DuckDB identifiers are case-insensitive, so identifiers come only from this catalog, and every
value (names, tag values, times) is passed to SQL as a parameter. A table holds `time_ns BIGINT`,
`series VARCHAR` (the JSON of the sorted, cleaned, non-empty tag pairs), one VARCHAR per tag and one
DOUBLE/BIGINT/BOOLEAN/VARCHAR per field. There is no primary key: (series, time) stays unique because the
single writer merges duplicates itself (an index made writes 3-5x slower and the file twice as large).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Iterator, NamedTuple, NoReturn, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.errors import PointError, QueryError, StoreRejected, StoreUnavailable
from tsdb.frames import empty_frame, make_frame
from tsdb.point import INT64_MAX, INT64_MIN, RESERVED_KEYS, Point, check_point, clean_name
from tsdb.query import Query, TimeLike, Where, normalize_where, now_ns, to_ns
from tsdb.store import Store

FORMAT_VERSION = 1

_SQL_TYPES = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN", "str": "VARCHAR"}
_ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}
_INFLUX_TYPE_NAMES = {"float": "float", "int": "integer", "bool": "boolean", "str": "string"}
_EXACT_KINDS = {float: "float", int: "int", bool: "bool", str: "str"}
#: aggregates InfluxDB 1.x refuses for some field types ("unsupported mean iterator type")
_REFUSED = {"mean": ("bool", "str"), "sum": ("bool", "str"), "min": ("str",), "max": ("str",)}

#: InfluxDB 1.x's default shard group (infinite retention): 7 days, aligned by Go's time.Truncate, i.e. to
#: multiples of 7 days since 0001-01-01 (a Monday), not since the Unix epoch.
_SHARD_GROUP_NS = 7 * 86400 * 10**9
_SHARD_OFFSET_NS = (62135596800 * 10**9) % _SHARD_GROUP_NS

#: the writer forgets its cache of known series past this many (a batch's series are always kept)
_SERIES_CACHE_MAX = 200_000
#: idle reader cursors kept for reuse
_IDLE_CURSORS_MAX = 8

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*)$", re.S)


class _Missing:
    """Marks a field a point does not have (None is a value, and an invalid one)."""


_MISSING = _Missing()


@dataclass
class _Table:
    """What the catalog knows of one measurement: its table, tag columns and typed field columns."""

    measurement: str
    name: str
    tags: dict[str, str]
    fields: dict[str, tuple[str, str]]
    next_column: int

    def copy(self) -> "_Table":
        return _Table(self.measurement, self.name, dict(self.tags), dict(self.fields), self.next_column)


@dataclass
class _Series:
    """A series seen by the writer: its cleaned measurement, key, cleaned tags, and every raw tag key its
    points had (to look for a key that is both a tag and a field quickly)."""

    measurement: str
    key: str
    tags: dict[str, str]
    raw_tag_keys: set


class _Conflict(NamedTuple):
    """A point dropped for a field type conflict."""

    measurement: str
    field: str
    kind: str
    existing: str
    in_batch: bool      # the existing type came from an earlier point of the same batch
    time_ns: int
    position: int       # the point's index in the batch


@dataclass
class _Group:
    """One measurement's part of a batch while it is being checked."""

    measurement: str
    rows: np.ndarray | None          # indices into the batch, None for all of it
    times: np.ndarray                # int64
    sids: np.ndarray                 # int64 series ids
    fields: dict[str, tuple[str, pa.Array]]
    keep: np.ndarray                 # bool, rows to store
    sent: np.ndarray                 # bool, rows InfluxDB would have received (a finite field), stored or not
    conflicts: list[_Conflict]
    typed: dict[str, str] | None = None  # fields InfluxDB typed without storing a value (a rejected new shard)


def _reject(point, why: str | None = None) -> NoReturn:
    """Raise the PointError check_point gives for a point, or `why` when check_point finds nothing."""
    try:
        check_point(point)
    except PointError:
        raise
    except Exception:
        raise PointError(f"{point!r}: not a valid Point (measurement, tags and fields dicts, time_ns)") from None
    raise PointError(why or f"{point!r}: cannot be stored")


def _series_key(tags: dict[str, str]) -> str:
    return json.dumps(sorted(tags.items()), ensure_ascii=False, separators=(",", ":"))


def _shard_start(time_ns: int) -> int:
    return time_ns - (time_ns + _SHARD_OFFSET_NS) % _SHARD_GROUP_NS


def _shard_starts(times: np.ndarray) -> set[int]:
    """The InfluxDB shard groups (by start) that times fall in."""
    if not len(times):
        return set()
    low, high = _shard_start(int(times.min())), _shard_start(int(times.max()))
    if low == high:
        return {low}
    return set(np.unique(times - (times % _SHARD_GROUP_NS + _SHARD_OFFSET_NS) % _SHARD_GROUP_NS).tolist())


class EmbeddedStore(Store):
    """The DuckDB store in one file: for one machine and one process (see the module's docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.display_url = "duckdb://" + self.path
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._tables: dict[str, _Table] = {}
        self._next_table = 1
        self._max_time: dict[str, int | None] = {}
        self._shards: set[int] = set()      # InfluxDB shard groups a batch has written to (_reject_fresh_shards)
        self._series_ids: dict = {}          # (measurement, *tag items) as written -> series id
        self._series_by_key: dict = {}       # (clean measurement, series key) -> series id
        self._series: list[_Series] = []
        self._conn = self._connect()
        try:
            self._writer = self._conn.cursor()
            self._init_schema()
        except duckdb.Error as error:
            self._conn.close()
            self._conn = None
            raise StoreUnavailable(f"embedded store {self.path}: cannot read its catalog: {error}") from None

    # ---- opening -------------------------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
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

    def _init_schema(self) -> None:
        cur = self._writer
        cur.execute("CREATE TABLE IF NOT EXISTS vw_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        cur.execute("CREATE TABLE IF NOT EXISTS vw_catalog (measurement VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
                    "key VARCHAR NOT NULL, name VARCHAR NOT NULL, type VARCHAR)")
        cur.execute("CREATE TABLE IF NOT EXISTS vw_shards (start_ns BIGINT NOT NULL)")
        rows = cur.execute("SELECT value FROM vw_meta WHERE key = ?", ["format"]).fetchall()
        if not rows:
            cur.execute("INSERT INTO vw_meta VALUES (?, ?)", ["format", str(FORMAT_VERSION)])
        elif rows[0][0] != str(FORMAT_VERSION):
            raise StoreUnavailable(f"embedded store {self.path}: format {rows[0][0]} is not the format this "
                                   f"version of virtwatch reads ({FORMAT_VERSION})")
        tables: dict[str, _Table] = {}
        catalog = cur.execute("SELECT measurement, kind, key, name, type FROM vw_catalog").fetchall()
        for measurement, kind, _key, name, _type in catalog:
            if kind == "table":
                tables[measurement] = _Table(measurement, name, {}, {}, 1)
                self._next_table = max(self._next_table, int(name[2:]) + 1)
        for measurement, kind, key, name, type_ in catalog:
            if kind == "table":
                continue
            table = tables[measurement]
            if kind == "tag":
                table.tags[key] = name
            else:
                table.fields[key] = (name, type_)
            table.next_column = max(table.next_column, int(name[2:]) + 1)
        self._tables = tables
        self._shards = {start for (start,) in cur.execute("SELECT start_ns FROM vw_shards").fetchall()}

    # ---- cursors -------------------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Lend a cursor (its own DuckDB connection) to one read; readers run in parallel."""
        with self._pool_lock:
            if self._conn is None:
                raise StoreUnavailable(f"embedded store {self.path} is closed")
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
        with self._reader() as cursor:
            try:
                return cursor.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as error:
                if self._conn is None:
                    raise StoreUnavailable(f"embedded store {self.path} is closed") from None
                raise QueryError(f"embedded store {self.path}: {what} failed: {error}") from None

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

    # ---- writing -------------------------------------------------------------------------------------

    def write(self, points: Iterable[Point]) -> int:
        """Store points; return how many were stored (points left without a field are not counted).

        Raise PointError (nothing stored) for a point no store can take, StoreRejected after storing the rest
        when points had a field type conflict, StoreUnavailable when the file cannot be written.
        """
        points = points if isinstance(points, list) else list(points)
        if not points:
            return 0
        with self._write_lock:
            if self._conn is None:
                raise StoreUnavailable(f"embedded store {self.path} is closed")
            if len(self._series_ids) > _SERIES_CACHE_MAX:
                self._series_ids.clear()
                self._series_by_key.clear()
                self._series.clear()
            groups = self._check(points)
            shards = set().union(*(_shard_starts(g.times[g.sent]) for g in groups))
            new_shards = shards - self._shards
            fresh_rejected = self._reject_fresh_shards(groups, new_shards)
            stored = 0
            cursor = self._writer
            tables = dict(self._tables)
            next_table = self._next_table
            max_times = {}
            try:
                cursor.execute("BEGIN TRANSACTION")
                if new_shards:
                    cursor.execute("INSERT INTO vw_shards SELECT unnest(?::BIGINT[])", [sorted(new_shards)])
                for group in groups:
                    if not group.keep.any():
                        if group.typed:
                            _, next_table = self._ensure_table(cursor, tables, group, next_table)
                        continue
                    table, next_table = self._ensure_table(cursor, tables, group, next_table)
                    staged = self._staged(group, table)
                    stored += int(group.keep.sum())
                    max_times[table.name] = self._insert(cursor, table, staged)
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
            self._shards |= new_shards
        message = self._conflict_message(groups, fresh_rejected)
        if message:
            raise StoreRejected(f"embedded store {self.path}: {message} ({stored} points stored)",
                                status=400, server_message=message)
        return stored

    def _new_series(self, point: Point, cache_key) -> int:
        """Check a series' measurement and tags (first sight only) and remember it; return its id."""
        measurement = point.measurement
        if not isinstance(measurement, str) or not measurement or measurement.startswith("#"):
            _reject(point)
        tags = {}
        for key, value in point.tags.items():
            if not isinstance(key, str) or not key or key in RESERVED_KEYS or not isinstance(value, str):
                _reject(point)
            if value:
                tags[clean_name(key)] = clean_name(value)
        series = _Series(clean_name(measurement), _series_key(tags), tags, set(point.tags))
        try:
            series.measurement.encode()
            series.key.encode()
        except UnicodeEncodeError:
            _reject(point, f"{measurement!r}: names and tag values must be valid unicode (no lone surrogates)")
        # points that differ only in tag order, empty tags or names cleaned alike are one series
        sid = self._series_by_key.get((series.measurement, series.key))
        if sid is None:
            sid = self._series_by_key[(series.measurement, series.key)] = len(self._series)
            self._series.append(series)
        else:
            self._series[sid].raw_tag_keys |= series.raw_tag_keys
        self._series_ids[cache_key] = sid
        return sid

    def _check(self, points: list[Point]) -> list[_Group]:
        """Check every point (PointError before anything is stored) and split the batch by measurement."""
        cache_get = self._series_ids.get
        sids: list[int] = []
        times: list = []
        fields: list = []
        add_sid, add_time, add_fields = sids.append, times.append, fields.append
        for point in points:
            try:
                tags = point.tags
                cache_key = (point.measurement, *tags.items()) if tags else (point.measurement,)
                sid = cache_get(cache_key)
                if sid is None:
                    sid = self._new_series(point, cache_key)
                add_sid(sid)
                add_time(point.time_ns)
                add_fields(point.fields)
            except PointError:
                raise
            except Exception:
                _reject(point)
        if set(map(type, times)) != {int}:
            for i, time_ns in enumerate(times):
                if type(time_ns) is not int:
                    if isinstance(time_ns, int) and not isinstance(time_ns, bool):
                        times[i] = int(time_ns)
                    else:
                        _reject(points[i])
        try:
            times_np = np.array(times, dtype=np.int64)
        except OverflowError:
            i = next(i for i, t in enumerate(times) if not INT64_MIN <= t <= INT64_MAX)
            _reject(points[i], f"{points[i].measurement}: time_ns {times[i]} is outside the signed 64-bit range")
        sids_np = np.array(sids, dtype=np.int64)
        if set(map(type, fields)) != {dict} and not all(isinstance(f, dict) for f in fields):
            _reject(points[next(i for i, f in enumerate(fields) if not isinstance(f, dict))])

        counts = np.bincount(sids_np, minlength=len(self._series))
        present = np.nonzero(counts)[0]
        names = sorted({self._series[s].measurement for s in present})
        groups = []
        if len(names) == 1:
            groups.append(self._check_group(names[0], None, times_np, sids_np, fields, points))
        else:
            index = {name: i for i, name in enumerate(names)}
            of_series = np.zeros(len(self._series), dtype=np.int64)
            for s in present:
                of_series[s] = index[self._series[s].measurement]
            row_group = of_series[sids_np]
            for i, name in enumerate(names):
                rows = np.nonzero(row_group == i)[0]
                group_fields = [fields[r] for r in rows]
                groups.append(self._check_group(name, rows, times_np[rows], sids_np[rows], group_fields, points))
        return groups

    def _check_group(self, measurement: str, rows, times: np.ndarray, sids: np.ndarray, fields: list,
                     points: list[Point]) -> _Group:
        """Build one measurement's field columns; find type conflicts and the rows left with a field."""
        n = len(fields)

        def point_at(i: int) -> Point:
            return points[i if rows is None else int(rows[i])]

        raw_keys: set = set()
        for key_tuple in set(map(tuple, fields)):
            raw_keys.update(key_tuple)
        by_clean: dict[str, list] = {}
        for key in raw_keys:
            if not isinstance(key, str) or not key or key in RESERVED_KEYS:
                _reject(point_at(next(i for i, f in enumerate(fields) if key in f)))
            try:
                key.encode()
            except UnicodeEncodeError:
                _reject(point_at(next(i for i, f in enumerate(fields) if key in f)),
                        f"{measurement!r}: field key {key!r} is not valid unicode (no lone surrogates)")
            by_clean.setdefault(clean_name(key), []).append(key)

        tag_keys = set().union(*(self._series[s].raw_tag_keys for s in _present(sids, len(self._series))))
        if not raw_keys.isdisjoint(tag_keys):
            for i, f in enumerate(fields):
                if not point_at(i).tags.keys().isdisjoint(f):
                    _reject(point_at(i))

        table = self._tables.get(measurement)
        existing = {key: kind for key, (_column, kind) in table.fields.items()} if table else {}
        columns: dict[str, tuple[str, pa.Array]] = {}
        mixed: dict[str, tuple[list, list]] = {}
        for key, raws in sorted(by_clean.items()):
            column = _field_column(measurement, key, _values(fields, raws), point_at)
            if column[0] is None:
                mixed[key] = column[1]
            else:
                columns[key] = column

        sent = np.zeros(n, dtype=bool)
        for _kind, values in columns.values():
            sent |= values.is_valid().to_numpy(zero_copy_only=False)
        for _normalized, kinds in mixed.values():
            sent |= np.array([k is not None for k in kinds], dtype=bool)
        drop = np.zeros(n, dtype=bool)
        conflicts: list = []
        for key, (kind, values) in columns.items():
            known = existing.get(key)
            if known is not None and known != kind:
                bad = values.is_valid().to_numpy(zero_copy_only=False) & ~drop
                for i in np.nonzero(bad)[0]:
                    conflicts.append(_Conflict(measurement, key, kind, known, False, int(times[i]),
                                               int(i if rows is None else rows[i])))
                drop |= bad
        if mixed:
            self._resolve_mixed(measurement, mixed, columns, existing, drop, conflicts, times, rows)

        if drop.any():
            mask = pa.array(~drop)
            columns = {key: (kind, pc.if_else(mask, values, pa.scalar(None, values.type)))
                       for key, (kind, values) in columns.items()}
        has_field = np.zeros(n, dtype=bool)
        for _kind, values in columns.values():
            has_field |= values.is_valid().to_numpy(zero_copy_only=False)
        return _Group(measurement, rows, times, sids, columns, has_field, sent, conflicts)

    @staticmethod
    def _resolve_mixed(measurement, mixed, columns, existing, drop, conflicts, times, rows) -> None:
        """Fields given several types in one batch: in order, the first stored type wins, later points that
        disagree are dropped whole (as InfluxDB does); fills `columns` with the surviving values."""
        established = dict(existing)
        keys = list(mixed)
        for i in range(len(drop)):
            if drop[i]:
                continue
            new = {}
            for key in keys:
                kind = mixed[key][1][i]
                if kind is None:
                    continue
                known = established.get(key)
                if known is None:
                    new[key] = kind
                elif known != kind:
                    drop[i] = True
                    conflicts.append(_Conflict(measurement, key, kind, known, key not in existing, int(times[i]),
                                               int(i if rows is None else rows[i])))
                    break
            if not drop[i]:
                established.update(new)
        for key in keys:
            values, kinds = mixed[key]
            kind = established.get(key)
            if kind is None:
                continue
            kept = [v if (k == kind and not drop[i]) else None for i, (v, k) in enumerate(zip(values, kinds))]
            columns[key] = (kind, pa.array(kept, _ARROW_TYPES[kind]))

    @staticmethod
    def _reject_fresh_shards(groups: list[_Group], new_shards: set[int]) -> list[tuple[int, int]]:
        """InfluxDB rejects all of a batch's points in a shard that no earlier batch wrote to (a new shard)
        when two points of the batch give a new field different types; drop those points too. Return the
        shard ranges dropped."""
        starts = sorted({_shard_start(c.time_ns) for g in groups for c in g.conflicts if c.in_batch})
        fresh = [(max(start, INT64_MIN), min(start + _SHARD_GROUP_NS, INT64_MAX))
                 for start in starts if start in new_shards]
        for low, high in fresh:
            # InfluxDB created the fields of the points before the first conflict, then refused the shard's points
            first = min(c.position for g in groups for c in g.conflicts if c.in_batch and low <= c.time_ns < high)
            for group in groups:
                in_shard = (group.times >= low) & (group.times < high)
                positions = np.arange(len(group.times)) if group.rows is None else group.rows
                before = in_shard & (positions < first)
                for key, (kind, values) in group.fields.items():
                    if (values.is_valid().to_numpy(zero_copy_only=False) & before).any():
                        group.typed = {**(group.typed or {}), key: kind}
                group.keep &= ~in_shard
        return fresh

    @staticmethod
    def _conflict_message(groups: list[_Group], fresh: list[tuple[int, int]]) -> str:
        conflicts = sorted((c for g in groups for c in g.conflicts), key=lambda c: c.position)
        if not conflicts:
            return ""
        first = conflicts[0]
        detail = (f'input field "{first.field}" on measurement "{first.measurement}" is type '
                  f'{_INFLUX_TYPE_NAMES[first.kind]}, already exists as type {_INFLUX_TYPE_NAMES[first.existing]}')
        if fresh:
            spans = ", ".join(f"[{pd.Timestamp(low, tz='UTC')}, {pd.Timestamp(high, tz='UTC')})"
                              for low, high in fresh)
            return (f"field type conflict: {detail} in this batch; none of the batch's points in the new "
                    f"shard {spans} were stored, as InfluxDB 1.x does")
        return f"partial write: field type conflict: {detail} dropped={len(conflicts)}"

    def _ensure_table(self, cursor, tables: dict[str, _Table], group: _Group, next_table: int):
        """Create the measurement's table and any new column (in the write's transaction); return the
        (copied, updated) catalog entry and the next table number."""
        table = tables.get(group.measurement)
        if table is None:
            table = _Table(group.measurement, f"m_{next_table}", {}, {}, 1)
            next_table += 1
            cursor.execute(f"CREATE TABLE {table.name} (time_ns BIGINT NOT NULL, series VARCHAR NOT NULL)")
            cursor.execute("INSERT INTO vw_catalog VALUES (?, 'table', '', ?, NULL)",
                           [group.measurement, table.name])
            self._max_time[table.name] = None
        else:
            table = table.copy()
        tables[group.measurement] = table
        kept = group.sids[group.keep]
        tag_keys = set()
        for sid in _present(kept, len(self._series)):
            tag_keys.update(self._series[sid].tags)
        for key in sorted(tag_keys - table.tags.keys()):
            column = f"c_{table.next_column}"
            table.next_column += 1
            cursor.execute(f"ALTER TABLE {table.name} ADD COLUMN {column} VARCHAR")
            cursor.execute("INSERT INTO vw_catalog VALUES (?, 'tag', ?, ?, NULL)", [group.measurement, key, column])
            table.tags[key] = column
        for key, (kind, values) in group.fields.items():
            if key in table.fields or not (key in (group.typed or {}) or
                                           (values.is_valid().to_numpy(zero_copy_only=False) & group.keep).any()):
                continue
            column = f"c_{table.next_column}"
            table.next_column += 1
            cursor.execute(f"ALTER TABLE {table.name} ADD COLUMN {column} {_SQL_TYPES[kind]}")
            cursor.execute("INSERT INTO vw_catalog VALUES (?, 'field', ?, ?, ?)",
                           [group.measurement, key, column, kind])
            table.fields[key] = (column, kind)
        return table, next_table

    def _staged(self, group: _Group, table: _Table) -> pa.Table:
        """The kept rows of a group as an Arrow table with the catalog's column names."""
        keep = group.keep
        all_kept = bool(keep.all())
        sids = group.sids if all_kept else group.sids[keep]
        times = group.times if all_kept else group.times[keep]
        present = _present(sids, len(self._series))
        lookup = np.zeros(len(self._series), dtype=np.int64)
        lookup[present] = np.arange(len(present))
        local = pa.array(lookup[sids])
        series = [self._series[s] for s in present]
        data = {"time_ns": pa.array(times, pa.int64()),
                "series": pa.array([s.key for s in series], pa.string()).take(local)}
        tag_keys = sorted(set().union(*(s.tags for s in series)))
        for key in tag_keys:
            data[table.tags[key]] = pa.array([s.tags.get(key) for s in series], pa.string()).take(local)
        mask = None if all_kept else pa.array(keep)
        for key, (kind, values) in group.fields.items():
            column, stored_kind = table.fields.get(key, (None, None))
            if kind == stored_kind:  # (a field of another type only had values in points dropped for it)
                data[column] = values if mask is None else values.filter(mask)
        staged = pa.table(data)
        if _has_duplicates(times, lookup[sids], len(present)):
            # the same series and time twice in one batch: merge in order, the last value of each field wins
            others = [name for name in staged.column_names if name not in ("series", "time_ns")]
            merged = staged.group_by(["series", "time_ns"], use_threads=False).aggregate(
                [(name, "last") for name in others])
            staged = merged.rename_columns([name.removesuffix("_last") for name in merged.column_names])
        return staged

    def _insert(self, cursor, table: _Table, staged: pa.Table) -> int:
        """Insert staged rows; a (series, time) already stored is merged field by field. Return the new
        greatest time of the table."""
        times = staged.column("time_ns")
        low, high = pc.min(times).as_py(), pc.max(times).as_py()
        if table.name not in self._max_time:
            self._max_time[table.name] = cursor.execute(f"SELECT max(time_ns) FROM {table.name}").fetchall()[0][0]
        stored_max = self._max_time[table.name]
        cursor.register("vw_staged", staged)
        try:
            overlap = stored_max is not None and low <= stored_max and cursor.execute(
                f"SELECT count(*) FROM {table.name} t JOIN vw_staged s USING (series, time_ns) "
                f"WHERE t.time_ns BETWEEN ? AND ?", [low, high]).fetchall()[0][0] > 0
            if overlap:
                field_columns = {column for column, _kind in table.fields.values()}
                fields = [c for c in staged.column_names if c in field_columns]
                if fields:
                    assignments = ", ".join(f"{c} = COALESCE(s.{c}, {table.name}.{c})" for c in fields)
                    cursor.execute(f"UPDATE {table.name} SET {assignments} FROM vw_staged s "
                                   f"WHERE {table.name}.series = s.series AND {table.name}.time_ns = s.time_ns "
                                   f"AND {table.name}.time_ns BETWEEN ? AND ?", [low, high])
                cursor.execute(f"INSERT INTO {table.name} BY NAME SELECT s.* FROM vw_staged s ANTI JOIN "
                               f"(SELECT series, time_ns FROM {table.name} WHERE time_ns BETWEEN ? AND ?) e "
                               f"USING (series, time_ns)", [low, high])
            else:
                cursor.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM vw_staged")
        finally:
            try:
                cursor.unregister("vw_staged")
            except duckdb.Error:
                pass  # the transaction failed: the error that matters is already on its way
        return high if stored_max is None else max(high, stored_max)

    # ---- reading -------------------------------------------------------------------------------------

    def read(self, query: Query) -> pd.DataFrame:
        """Return the frame answering a Query (see tsdb.query and tsdb.frames)."""
        table = self._tables.get(query.measurement)
        if table is None or self._conn is None:
            return self._empty(query.group_by, query.fields)
        asked = [(f, table.fields.get(f)) for f in query.fields]
        known = [(f, col, kind) for f, info in asked if info for col, kind in [info]]
        if not known:
            return empty_frame(query.group_by, query.fields)
        where = _where_sql(table, query.where)
        if where is None:
            return empty_frame(query.group_by, query.fields)
        clauses, params = where
        clauses = ["time_ns >= ?", "time_ns < ?", *clauses,
                   "(" + " OR ".join(f"{col} IS NOT NULL" for _f, col, _k in known) + ")"]
        params = [_clamp(query.start_ns), _clamp(query.end_ns), *params]
        groups = [(t, table.tags[t]) for t in query.group_by if t in table.tags]
        group_sql = [col for _t, col in groups]
        if query.window_seconds is None:
            selects = ["time_ns", *group_sql, *[col for _f, col, _k in known]]
            sql = f"SELECT {', '.join(selects)} FROM {table.name} WHERE {' AND '.join(clauses)}"
            result = self._fetch(sql, params, f"reading {query.measurement!r}")
        else:
            width = query.window_seconds * 10**9
            if width > INT64_MAX:
                raise QueryError(f"window_seconds = {query.window_seconds}: too long")
            refused = [k for k in known if k[2] in _REFUSED.get(query.aggregate, ())]
            if refused:
                self._refuse(query, table, refused, where)
                known = [k for k in known if k not in refused]  # no matching data in a shard holding them: null
                if not known:
                    return empty_frame(query.group_by, query.fields)
                clauses = [*clauses[:-1], "(" + " OR ".join(f"{col} IS NOT NULL" for _f, col, _k in known) + ")"]
            bucket = "time_ns - CASE WHEN time_ns % ? < 0 THEN time_ns % ? + ? ELSE time_ns % ? END"
            aggregates = [_aggregate_sql(query.aggregate, col, kind) for _f, col, kind in known]
            selects = [bucket, *group_sql, *aggregates]
            groups_by = ", ".join(str(i + 1) for i in range(1 + len(group_sql)))
            sql = (f"SELECT {', '.join(selects)} FROM {table.name} WHERE {' AND '.join(clauses)} "
                   f"GROUP BY {groups_by}")
            params = [width, width, width, width, *params]
            result = self._fetch(sql, params, f"reading {query.measurement!r}")
            if query.aggregate in ("mean", "count", "sum"):
                known = [(f, col, "float") for f, col, _kind in known]
        return _frame(result, query.group_by, [t for t, _c in groups], query.fields, known)

    def _refuse(self, query: Query, table: _Table, refused: list, where: tuple[list[str], list]) -> None:
        """Raise QueryError as InfluxDB does for an aggregate its type does not have (mean of strings...): when
        a shard (week) overlapping the range holds the field and a series matching the filters."""
        low = _clamp(_shard_start(query.start_ns))
        high = _clamp(_shard_start(query.end_ns - 1) + _SHARD_GROUP_NS)
        clauses, params = where
        matched = " AND ".join(clauses) or "TRUE"
        shard = "(time_ns::HUGEINT + ?) - (((time_ns::HUGEINT + ?) % ?) + ?) % ?"
        probes = ", ".join(f"bool_or({col} IS NOT NULL)" for _f, col, _k in refused)
        sql = (f"SELECT {probes} FROM {table.name} WHERE time_ns >= ? AND time_ns < ? GROUP BY {shard} "
               f"HAVING bool_or({matched})")
        shard_params = [_SHARD_OFFSET_NS, _SHARD_OFFSET_NS, _SHARD_GROUP_NS, _SHARD_GROUP_NS, _SHARD_GROUP_NS]
        result = self._fetch(sql, [low, high, *shard_params, *params], f"reading {query.measurement!r}")
        for i, (field, _col, kind) in enumerate(refused):
            if any(result.column(i).to_pylist()):
                raise QueryError(f"{query.aggregate}() of field {field!r} of {query.measurement!r}: not defined "
                                 f"for {_INFLUX_TYPE_NAMES[kind]} fields (InfluxDB refuses it too: unsupported "
                                 f"{query.aggregate} iterator type)")

    def latest(self, measurement: str, fields: Sequence[str], since: TimeLike, until: TimeLike | None = None,
               where: Where | None = None, group_by: Sequence[str] = ()) -> pd.DataFrame:
        """Return, per group, the newest row in [since, until] with a value for any of `fields`."""
        until_ns = now_ns() if until is None else to_ns(until, "until")
        if until_ns < to_ns(since, "since"):
            raise QueryError(f"until {until!r} must not come before since {since!r}")
        query = Query.build(measurement, fields, since, min(until_ns, INT64_MAX - 1) + 1, where, None, "mean",
                            group_by)
        table = self._tables.get(query.measurement)
        if table is None or self._conn is None:
            return self._empty(query.group_by, query.fields)
        known = [(f, col, kind) for f in query.fields if f in table.fields for col, kind in [table.fields[f]]]
        where_sql = _where_sql(table, query.where)
        if not known or where_sql is None:
            return empty_frame(query.group_by, query.fields)
        clauses, params = where_sql
        clauses = ["time_ns >= ?", "time_ns < ?", *clauses,
                   "(" + " OR ".join(f"{col} IS NOT NULL" for _f, col, _k in known) + ")"]
        params = [_clamp(query.start_ns), _clamp(query.end_ns), *params]
        groups = [(t, table.tags[t]) for t in query.group_by if t in table.tags]
        selects = ["time_ns", *[col for _t, col in groups], *[col for _f, col, _k in known]]
        sql = f"SELECT {', '.join(selects)} FROM {table.name} WHERE {' AND '.join(clauses)} "
        if groups:
            sql += (f"QUALIFY row_number() OVER (PARTITION BY {', '.join(col for _t, col in groups)} "
                    f"ORDER BY time_ns DESC, series DESC) = 1")
        else:
            sql += "ORDER BY time_ns DESC, series DESC LIMIT 1"
        result = self._fetch(sql, params, f"reading the latest {query.measurement!r}")
        return _frame(result, query.group_by, [t for t, _c in groups], query.fields, known)

    def tag_values(self, measurement: str, tag: str, where: Where | None = None) -> list[str]:
        """Return the sorted distinct values of a tag of a measurement (over all time), filtered by `where`."""
        if not isinstance(measurement, str) or not measurement or not isinstance(tag, str) or not tag:
            raise QueryError(f"tag_values({measurement!r}, {tag!r}): measurement and tag must be non-empty strings")
        where_pairs = normalize_where(where)
        table = self._tables.get(clean_name(measurement))
        if table is None or self._conn is None:
            if self._conn is None:
                raise StoreUnavailable(f"embedded store {self.path} is closed")
            return []
        column = table.tags.get(clean_name(tag))
        where_sql = _where_sql(table, where_pairs)
        if column is None or where_sql is None:
            return []
        clauses, params = where_sql
        sql = f"SELECT DISTINCT {column} FROM {table.name} WHERE {' AND '.join([f'{column} IS NOT NULL', *clauses])}"
        result = self._fetch(sql, params, f"reading the values of tag {tag!r} of {measurement!r}")
        return sorted(result.column(0).to_pylist())

    def _empty(self, group_by, fields) -> pd.DataFrame:
        if self._conn is None:
            raise StoreUnavailable(f"embedded store {self.path} is closed")
        return empty_frame(group_by, fields)


# ---- helpers -------------------------------------------------------------------------------------------

def _values(fields: list, raw_keys: list) -> list:
    """The values of one (cleaned) field key across a batch, _MISSING where a point lacks it."""
    if len(raw_keys) == 1:
        key = raw_keys[0]
        try:
            return list(map(itemgetter(key), fields))
        except KeyError:
            return [f.get(key, _MISSING) for f in fields]
    merged: list = [_MISSING] * len(fields)
    for key in raw_keys:  # several raw keys clean to one name: they are one field, as in InfluxDB
        for i, f in enumerate(fields):
            if key in f:
                merged[i] = f[key]
    return merged


def _field_column(measurement: str, key: str, values: list, point_at):
    """Return (kind, Arrow array) for a field's values, non-finite floats and missing values as nulls, or
    (None, (values, kinds)) when the batch gives the field several types."""
    types = set(map(type, values))
    if type(None) in types:
        _reject(point_at(values.index(None)))
    missing = _Missing in types
    types.discard(_Missing)
    if len(types) == 1:
        kind = _EXACT_KINDS.get(next(iter(types)))
        if kind is not None:
            if missing:
                values = [None if v is _MISSING else v for v in values]
            try:
                if kind == "float":
                    array = pa.array(values, pa.float64(), from_pandas=True)  # NaN → null
                    if pc.any(pc.is_inf(array)).as_py():
                        array = pc.if_else(pc.is_inf(array), pa.scalar(None, pa.float64()), array)
                    return kind, array
                return kind, pa.array(values, _ARROW_TYPES[kind])
            except (OverflowError, UnicodeEncodeError, pa.ArrowException):
                pass  # find the bad value below
    normalized: list = []
    kinds: list = []
    for i, value in enumerate(values):
        kind = _EXACT_KINDS.get(type(value))
        if value is _MISSING:
            value = kind = None
        elif kind is None:
            if isinstance(value, bool):
                kind, value = "bool", bool(value)
            elif isinstance(value, float):
                kind, value = "float", float(value)
            elif isinstance(value, str):
                kind, value = "str", str(value)
            elif isinstance(value, int):
                kind, value = "int", int(value)
            else:
                _reject(point_at(i))
        if kind == "float" and not math.isfinite(value):
            value = kind = None
        elif kind == "int" and not INT64_MIN <= value <= INT64_MAX:
            _reject(point_at(i))
        elif kind == "str":
            try:
                value.encode()
            except UnicodeEncodeError:
                _reject(point_at(i), f"{measurement!r}: field {key!r}: string value is not valid unicode "
                                     f"(no lone surrogates)")
        normalized.append(value)
        kinds.append(kind)
    distinct = set(kinds) - {None}
    if len(distinct) > 1:
        return None, (normalized, kinds)
    kind = distinct.pop() if distinct else "float"
    return kind, pa.array(normalized, _ARROW_TYPES[kind])


def _has_duplicates(times: np.ndarray, local: np.ndarray, series_count: int) -> bool:
    """Whether some (series, time) pair occurs twice."""
    if len(times) < 2:
        return False
    low, high = int(times.min()), int(times.max())
    if (high - low + 1) * series_count < 2**62:
        keys = (times - low) * series_count + local
        return bool(pd.Index(keys).has_duplicates)
    order = np.lexsort((times, local))
    t, s = times[order], local[order]
    return bool(np.any((t[1:] == t[:-1]) & (s[1:] == s[:-1])))


def _present(sids: np.ndarray, size: int) -> np.ndarray:
    """The distinct series ids of an array, sorted (linear time)."""
    return np.nonzero(np.bincount(sids, minlength=size))[0]


def _clamp(value: int) -> int:
    return min(max(value, INT64_MIN), INT64_MAX)


def _where_sql(table: _Table, where) -> tuple[list[str], list] | None:
    """SQL conditions for tag filters (tag IN values, "" meaning absent), or None when nothing can match."""
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


def _aggregate_sql(aggregate: str, column: str, kind: str) -> str:
    """The SQL of one aggregate, as InfluxDB 1.x computes it."""
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
    """Turn a result (time, known group tags, known fields in that order) into the standard frame."""
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
