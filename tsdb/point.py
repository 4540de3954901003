"""The point model: one measurement at one instant, with tags (strings) and typed fields.

Names and tag values are data, never syntax. Two things cannot be carried by InfluxDB's line protocol
(checked against InfluxDB 1.6, whose parser unescapes tags with a plain replace of `\\,`, `\\ ` and `\\=`),
so every store applies the same rule to them, through `clean_name`, before they are stored:

1. A line break (CR or LF) in a measurement, tag key, tag value or field key becomes a space.
2. A backslash that ends a name, or stands right before a space, comma, equals sign or double quote,
   becomes U+29F5 REVERSE SOLIDUS OPERATOR (⧵), which looks the same to a reader.
3. A tab that starts a name becomes a space: line protocol skips white space before a measurement and
   before the field set, so a leading tab would vanish (a leading space is escaped and kept).
4. A NUL character becomes U+2400 SYMBOL FOR NULL (␀): InfluxQL's scanner reads NUL as the end of the
   query, so a name holding one could be written but never queried.

Everything else (any other unicode, quotes, commas, spaces, emoji, tabs, other backslashes) round-trips
exactly. Field string values carry every character exactly, line breaks included. Tags with an empty
value are dropped (InfluxDB drops them too; a missing tag reads back as ""). Non-finite floats (NaN, ±inf)
are dropped from a point's fields because InfluxDB refuses them; a point left with no field is skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from tsdb.errors import PointError

FieldValue = float | int | bool | str

#: a backslash the line protocol cannot carry: at the end, or before a character that the parser unescapes
_STRANDED_BACKSLASH = re.compile(r'\\(?=[ ,="]|$)')
BACKSLASH_STAND_IN = "\u29f5"
NUL_STAND_IN = "\u2400"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RESERVED_KEYS = frozenset({"time"})


@lru_cache(maxsize=131072)
def clean_name(name: str) -> str:
    """Return `name` as every store keeps it: line breaks become spaces, stranded backslashes ⧵, NUL ␀."""
    if "\x00" in name:
        name = name.replace("\x00", NUL_STAND_IN)
    if name.startswith("\t"):
        name = " " + name[1:]
    if "\n" in name or "\r" in name:
        name = name.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if "\\" in name:
        name = _STRANDED_BACKSLASH.sub(BACKSLASH_STAND_IN, name)
    return name


_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7f]} | {0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t"}


def printable(name: str) -> str:
    """Return a name as one line of text shows it: control characters as \\n, \\r, \\t or \\xNN (so a name
    can never start a line of its own), everything else (quotes, backslashes, unicode) as it is."""
    return name.translate(_CONTROL) if not name.isprintable() else name


@dataclass(slots=True)
class Point:
    """One measurement at one instant: `time_ns` is nanoseconds since the Unix epoch (UTC)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int


def check_point(point: Point) -> None:
    """Raise PointError when a point cannot be stored in any store (names the part and the reason)."""
    if not isinstance(point.measurement, str) or not point.measurement:
        raise PointError(f"measurement {point.measurement!r}: must be a non-empty string")
    if point.measurement.startswith("#"):
        raise PointError(f"measurement {point.measurement!r}: must not start with '#' (a comment in line protocol)")
    if not isinstance(point.time_ns, int) or isinstance(point.time_ns, bool):
        raise PointError(f"{point.measurement}: time_ns {point.time_ns!r} must be an int of nanoseconds")
    for key, value in point.tags.items():
        if not isinstance(key, str) or not key or key in RESERVED_KEYS:
            raise PointError(f"{point.measurement}: tag key {key!r} must be a non-empty string other than 'time'")
        if not isinstance(value, str):
            raise PointError(f"{point.measurement}: tag {key!r} = {value!r} must be a string")
    for key, value in point.fields.items():
        if not isinstance(key, str) or not key or key in RESERVED_KEYS:
            raise PointError(f"{point.measurement}: field key {key!r} must be a non-empty string other than 'time'")
        if key in point.tags:
            raise PointError(f"{point.measurement}: {key!r} is both a tag and a field")
        if isinstance(value, bool) or isinstance(value, (float, str)):
            continue
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise PointError(f"{point.measurement}: field {key!r} = {value} does not fit in a signed 64-bit int")
            continue
        raise PointError(f"{point.measurement}: field {key!r} = {value!r} must be a float, int, bool or str")


def storable_fields(fields: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """Return the fields a store keeps: non-finite floats (NaN, ±inf) are left out."""
    for value in fields.values():
        if type(value) is float and not math.isfinite(value):
            return {k: v for k, v in fields.items() if not (type(v) is float and not math.isfinite(v))}
    return fields
