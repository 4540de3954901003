"""Checking a batch: every point valid or PointError, series identified, fields as typed Arrow columns."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.embedded.catalog import ARROW_TYPES
from tsdb.errors import PointError
from tsdb.point import INT64_MAX, INT64_MIN, RESERVED_KEYS, Point, check_point, clean_name

_EXACT_KINDS = {float: "float", int: "int", bool: "bool", str: "str"}
#: the writer forgets its known series past this many (a batch's series are always kept)
_SERIES_CACHE_MAX = 200_000


class _Missing:
    """Marks a field a point does not have (None is a value, and an invalid one)."""


_MISSING = _Missing()


@dataclass
class Series:
    """A series seen by the writer: cleaned measurement, key and tags, and every raw tag key of its points.

    The raw keys find a point with a key that is both a tag and a field quickly.
    """

    measurement: str
    key: str
    tags: dict[str, str]
    raw_tag_keys: set


class SeriesRegistry:
    """The series the writer knows, by id (points differing only in tag order, empty tags or cleaning are one)."""

    def __init__(self):
        self.ids: dict = {}         # (measurement, *tag items) as written -> series id
        self.by_key: dict = {}      # (clean measurement, series key) -> series id
        self.series: list[Series] = []

    def trim(self) -> None:
        """Forget every series once there are too many (call between batches only: ids change)."""
        if len(self.ids) > _SERIES_CACHE_MAX:
            self.ids.clear()
            self.by_key.clear()
            self.series.clear()

    def add(self, point: Point, cache_key) -> int:
        """Check a series' measurement and tags (first sight only) and remember it; return its id."""
        measurement = point.measurement
        if not isinstance(measurement, str) or not measurement or measurement.startswith("#"):
            reject(point)
        tags = {}
        for key, value in point.tags.items():
            if not isinstance(key, str) or not key or key in RESERVED_KEYS or not isinstance(value, str):
                reject(point)
            if value:
                tags[clean_name(key)] = clean_name(value)
        series = Series(clean_name(measurement), series_key(tags), tags, set(point.tags))
        try:
            series.measurement.encode()
            series.key.encode()
        except UnicodeEncodeError:
            reject(point, f"{measurement!r}: names and tag values must be valid unicode (no lone surrogates)")
        sid = self.by_key.get((series.measurement, series.key))
        if sid is None:
            sid = self.by_key[(series.measurement, series.key)] = len(self.series)
            self.series.append(series)
        else:
            self.series[sid].raw_tag_keys |= series.raw_tag_keys
        self.ids[cache_key] = sid
        return sid


@dataclass
class Group:
    """One measurement's part of a batch."""

    measurement: str
    rows: np.ndarray | None                  # indices into the batch, None for all of it
    times: np.ndarray                        # int64
    sids: np.ndarray                         # int64 series ids
    fields: dict[str, tuple[str, pa.Array]]  # fields of one type in the batch: kind, values (null: none)
    mixed: dict[str, tuple[list, list]]      # fields given several types in the batch: values, kinds
    keep: np.ndarray | None = None           # bool, the rows to store (set by conflicts.settle_types)

    def position(self, i: int) -> int:
        """Return the index in the batch of the group's row i."""
        return i if self.rows is None else int(self.rows[i])


def reject(point, why: str | None = None) -> NoReturn:
    """Raise the PointError check_point gives for a point, or `why` when check_point finds nothing."""
    try:
        check_point(point)
    except PointError:
        raise
    except Exception:
        raise PointError(f"{point!r}: not a valid Point (measurement, tags and fields dicts, time_ns)") from None
    raise PointError(why or f"{point!r}: cannot be stored")


def series_key(tags: dict[str, str]) -> str:
    """Return the key of a series: the JSON of its sorted tag pairs."""
    return json.dumps(sorted(tags.items()), ensure_ascii=False, separators=(",", ":"))


def present(sids: np.ndarray, size: int) -> np.ndarray:
    """Return the distinct series ids of an array, sorted (linear time)."""
    return np.nonzero(np.bincount(sids, minlength=size))[0]


def check_batch(points: list[Point], registry: SeriesRegistry) -> list[Group]:
    """Check every point (PointError before anything is stored) and split the batch by measurement."""
    cache_get = registry.ids.get
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
                sid = registry.add(point, cache_key)
            add_sid(sid)
            add_time(point.time_ns)
            add_fields(point.fields)
        except PointError:
            raise
        except Exception:
            reject(point)
    if set(map(type, times)) != {int}:
        for i, time_ns in enumerate(times):
            if type(time_ns) is not int:
                if isinstance(time_ns, int) and not isinstance(time_ns, bool):
                    times[i] = int(time_ns)
                else:
                    reject(points[i])
    try:
        times_np = np.array(times, dtype=np.int64)
    except OverflowError:
        i = next(i for i, t in enumerate(times) if not INT64_MIN <= t <= INT64_MAX)
        reject(points[i], f"{points[i].measurement}: time_ns {times[i]} is outside the signed 64-bit range")
    sids_np = np.array(sids, dtype=np.int64)
    if set(map(type, fields)) != {dict} and not all(isinstance(f, dict) for f in fields):
        reject(points[next(i for i, f in enumerate(fields) if not isinstance(f, dict))])

    series = registry.series
    in_batch = present(sids_np, len(series))
    names = sorted({series[s].measurement for s in in_batch})
    if len(names) == 1:
        return [_check_group(names[0], None, times_np, sids_np, fields, points, series)]
    index = {name: i for i, name in enumerate(names)}
    of_series = np.zeros(len(series), dtype=np.int64)
    for s in in_batch:
        of_series[s] = index[series[s].measurement]
    row_group = of_series[sids_np]
    groups = []
    for i, name in enumerate(names):
        rows = np.nonzero(row_group == i)[0]
        group_fields = [fields[r] for r in rows]
        groups.append(_check_group(name, rows, times_np[rows], sids_np[rows], group_fields, points, series))
    return groups


def _check_group(measurement: str, rows, times: np.ndarray, sids: np.ndarray, fields: list, points: list[Point],
                 series: list[Series]) -> Group:
    """Check one measurement's field keys and values and build its field columns."""

    def point_at(i: int) -> Point:
        return points[i if rows is None else int(rows[i])]

    raw_keys: set = set()
    for key_tuple in set(map(tuple, fields)):
        raw_keys.update(key_tuple)
    by_clean: dict[str, list] = {}
    for key in raw_keys:
        if not isinstance(key, str) or not key or key in RESERVED_KEYS:
            reject(point_at(next(i for i, f in enumerate(fields) if key in f)))
        try:
            key.encode()
        except UnicodeEncodeError:
            reject(point_at(next(i for i, f in enumerate(fields) if key in f)),
                   f"{measurement!r}: field key {key!r} is not valid unicode (no lone surrogates)")
        by_clean.setdefault(clean_name(key), []).append(key)

    tag_keys = set().union(*(series[s].raw_tag_keys for s in present(sids, len(series))))
    if not raw_keys.isdisjoint(tag_keys):
        for i, f in enumerate(fields):
            if not point_at(i).tags.keys().isdisjoint(f):
                reject(point_at(i))

    columns: dict[str, tuple[str, pa.Array]] = {}
    mixed: dict[str, tuple[list, list]] = {}
    for key, raws in sorted(by_clean.items()):
        kind, values = _field_column(measurement, key, _values(fields, raws), point_at)
        if kind is None:
            mixed[key] = values
        else:
            columns[key] = (kind, values)
    return Group(measurement, rows, times, sids, columns, mixed)


def _values(fields: list, raw_keys: list) -> list:
    """Return the values of one (cleaned) field key across a batch, _MISSING where a point lacks it."""
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


def _field_column(measurement: str, key: str, values: list, point_at: Callable[[int], Point]):
    """Return a field's (kind, Arrow array), or (None, (values, kinds)) when the batch gives it several types.

    Missing values and non-finite floats are nulls.
    """
    types = set(map(type, values))
    if type(None) in types:
        reject(point_at(values.index(None)))
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
                return kind, pa.array(values, ARROW_TYPES[kind])
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
                reject(point_at(i))
        if kind == "float" and not math.isfinite(value):
            value = kind = None
        elif kind == "int" and not INT64_MIN <= value <= INT64_MAX:
            reject(point_at(i))
        elif kind == "str":
            try:
                value.encode()
            except UnicodeEncodeError:
                reject(point_at(i), f"{measurement!r}: field {key!r}: string value is not valid unicode "
                                    f"(no lone surrogates)")
        normalized.append(value)
        kinds.append(kind)
    distinct = set(kinds) - {None}
    if len(distinct) > 1:
        return None, (normalized, kinds)
    kind = distinct.pop() if distinct else "float"
    return kind, pa.array(normalized, ARROW_TYPES[kind])
