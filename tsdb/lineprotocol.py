"""InfluxDB line protocol encoding, exact for any name or value (see tsdb.point for the one rule).

Escapes follow the InfluxDB 1.x parser (models/points.go): measurement `,` and space; tag keys, tag values
and field keys `,` `=` and space (field keys also `"`); string field values `\\` and `"`. Names are checked
and escaped once and cached, which is what makes encoding fast: hosts, domains and keys repeat.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Iterator

from tsdb.errors import PointError
from tsdb.point import INT64_MAX, INT64_MIN, RESERVED_KEYS, Point, clean_name

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_TAG = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_FIELD_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", '"': '\\"'})
_STRING_VALUE = str.maketrans({"\\": "\\\\", '"': '\\"'})


@lru_cache(maxsize=4096)
def _measurement(name) -> str:
    if not isinstance(name, str) or not name:
        raise PointError(f"measurement {name!r}: must be a non-empty string")
    if name.startswith("#"):
        raise PointError(f"measurement {name!r}: must not start with '#' (a comment in line protocol)")
    return clean_name(name).translate(_MEASUREMENT)


def _check_key(name) -> str:
    if not isinstance(name, str) or not name or name in RESERVED_KEYS:
        raise PointError(f"key {name!r}: must be a non-empty string other than 'time'")
    return clean_name(name)


@lru_cache(maxsize=8192)
def _tag_key(name) -> str:
    return _check_key(name).translate(_TAG)


@lru_cache(maxsize=8192)
def _field_key(name) -> str:
    return _check_key(name).translate(_FIELD_KEY)


@lru_cache(maxsize=131072)
def _tag_value(value) -> str:
    if not isinstance(value, str):
        raise PointError(f"tag value {value!r}: must be a string")
    return clean_name(value).translate(_TAG)


def _field_value(measurement: str, key: str, value) -> str | None:
    """Encode one field value; None for a non-finite float (InfluxDB refuses NaN and infinities)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise PointError(f"{measurement}: field {key!r} = {value} does not fit in a signed 64-bit int")
        return f"{int(value)}i"
    if isinstance(value, float):
        return repr(float(value)) if value - value == 0.0 else None
    if isinstance(value, str):
        return '"' + value.translate(_STRING_VALUE) + '"'
    raise PointError(f"{measurement}: field {key!r} = {value!r} must be a float, int, bool or str")


_HEAD_CACHE_MAX = 100_000
_heads: dict = {}
_field_prefixes: dict = {}


def _head(point: Point) -> str:
    """Return the escaped `measurement,tag=value,...` of a point's series, cached per series."""
    tags = point.tags
    cache_key = (point.measurement, *tags.items()) if tags else point.measurement
    head = _heads.get(cache_key)
    if head is None:
        head = _measurement(point.measurement)
        for key in sorted(tags):
            value = tags[key]
            if value:
                head += "," + _tag_key(key) + "=" + _tag_value(value)
        if len(_heads) >= _HEAD_CACHE_MAX:
            _heads.clear()
        _heads[cache_key] = head
    return head


def _field_prefix(key) -> str:
    prefix = _field_prefixes.get(key)
    if prefix is None:
        prefix = _field_prefixes[key] = _field_key(key) + "="
    return prefix


def encode_point(point: Point) -> str | None:
    """Return one line (no newline) for a point, or None when it has no storable field."""
    try:
        head = _head(point)
        if point.tags and not point.tags.keys().isdisjoint(point.fields):
            raise PointError(f"{point.measurement!r}: {sorted(point.tags.keys() & point.fields.keys())} are both tags and fields")
        parts = []
        for key, value in point.fields.items():
            kind = type(value)
            prefix = _field_prefixes.get(key) or _field_prefix(key)
            if kind is float:
                if value - value != 0.0:  # NaN or infinite: InfluxDB refuses them
                    continue
                parts.append(prefix + repr(value))
            elif kind is int and INT64_MIN <= value <= INT64_MAX:
                parts.append(prefix + str(value) + "i")
            elif kind is str:
                parts.append(prefix + '"' + value.translate(_STRING_VALUE) + '"')
            else:
                text = _field_value(point.measurement, key, value)
                if text is not None:
                    parts.append(prefix + text)
    except PointError as error:
        if str(error).startswith(("key ", "tag value ")):
            raise PointError(f"{point.measurement!r}: {error}") from None
        raise
    except (TypeError, AttributeError):  # an unhashable name, or tags/fields that are not dicts
        raise PointError(f"{point.measurement!r}: tags and fields must be dicts keyed by strings") from None
    if not parts:
        return None
    if type(point.time_ns) is not int:
        raise PointError(f"{point.measurement}: time_ns {point.time_ns!r} must be an int of nanoseconds")
    return head + " " + ",".join(parts) + " " + str(point.time_ns)


def encode_lines(points: Iterable[Point]) -> list[str]:
    """Return one line per point that has a storable field (a line may hold newlines inside string values)."""
    return [line for line in map(encode_point, points) if line is not None]


def encode_points(points: Iterable[Point]) -> str:
    """Return the line protocol for many points, each line ending in a newline (points with no field skipped)."""
    lines = encode_lines(points)
    return "\n".join(lines) + "\n" if lines else ""


def batches(points: Iterable[Point], size: int) -> Iterator[list[Point]]:
    """Yield lists of at most `size` points."""
    batch: list[Point] = []
    for point in points:
        batch.append(point)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
