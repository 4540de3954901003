"""The URL's parameters, parsed and checked in one place: the shell's time range and refresh, and pages' filters.

    ?range=6h                                   the last 6 hours (1h, 6h, 24h, 7d, 14d, 30d; 6h when absent)
    ?range=custom&start=2024-05-01T12:00&end=2024-05-02T12:00    a fixed range, UTC, ISO 8601
    &refresh=1m                                 auto-refresh: off, 30s, 1m, 5m (off when absent)

Anything else (an unknown range, a malformed or impossible time, a list where one value belongs, an overlong
value) raises `RangeError`, whose message names the parameter and the reason: the page shows it as an empty
state and reads nothing. A relative range is resolved against the clock at every read, so auto-refresh moves it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "14d": 14 * 86400, "30d": 30 * 86400}
RANGE_LABELS = {"1h": "last 1 hour", "6h": "last 6 hours", "24h": "last 24 hours", "7d": "last 7 days",
                "14d": "last 14 days", "30d": "last 30 days", "custom": "custom range"}
DEFAULT_RANGE = "6h"
REFRESHES = {"off": 0, "30s": 30, "1m": 60, "5m": 300}
DEFAULT_REFRESH = "off"
#: the parameters the shell owns; every other parameter belongs to the page
SHELL_PARAMS = ("range", "start", "end", "refresh")
#: a series holds at most about this many points: the window grows with the range
MAX_POINTS = 300
#: window widths a chart may use, seconds (whole divisions of a day, so windows line up across charts)
WINDOW_STEPS_SECONDS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
#: ranges of more than a day read the hourly SLI rollups, shorter ones the per-minute rollups
HOURLY_ROLLUPS_FROM_SECONDS = 86400
MAX_VALUE_CHARS = 64
MAX_CUSTOM_SECONDS = 400 * 86400
_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?")
_EARLIEST, _LATEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2262, 1, 1, tzinfo=dt.timezone.utc)


class ParamError(ValueError):
    """A URL parameter that cannot be used; the message names it and says why."""


class RangeError(ParamError):
    """A time range or refresh parameter that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class RangeSpec:
    """What the URL asks for: a named relative range, or a custom one with fixed ends (ISO text, UTC)."""

    range: str = DEFAULT_RANGE
    start: str = ""
    end: str = ""
    refresh: str = DEFAULT_REFRESH

    def params(self) -> dict[str, str]:
        """Return the URL parameters that spell this spec (defaults left out)."""
        out: dict[str, str] = {}
        if self.range != DEFAULT_RANGE:
            out["range"] = self.range
        if self.range == "custom":
            out["start"], out["end"] = self.start, self.end
        if self.refresh != DEFAULT_REFRESH:
            out["refresh"] = self.refresh
        return out

    @property
    def refresh_seconds(self) -> int:
        """Seconds between auto-refreshes (0: off)."""
        return REFRESHES[self.refresh]


@dataclass(frozen=True)
class TimeRange:
    """A resolved range [start_ns, end_ns) with the window its charts use."""

    start_ns: int
    end_ns: int
    label: str

    @property
    def span_seconds(self) -> int:
        """The range's length in seconds."""
        return max(1, (self.end_ns - self.start_ns) // 10**9)

    @property
    def window_seconds(self) -> int:
        """The narrowest window step that keeps a series under MAX_POINTS points."""
        return pick_window_seconds(self.span_seconds)

    @property
    def rollup_resolution(self) -> str:
        """The SLI rollup resolution to read: "1h" for ranges over a day, else "1m"."""
        return "1h" if self.span_seconds > HOURLY_ROLLUPS_FROM_SECONDS else "1m"


def pick_window_seconds(span_seconds: int, max_points: int = MAX_POINTS) -> int:
    """Return the smallest window step giving at most max_points windows over span_seconds."""
    for step in WINDOW_STEPS_SECONDS:
        if span_seconds / step <= max_points:
            return step
    return WINDOW_STEPS_SECONDS[-1]


def parse_search(search: str | None) -> dict[str, str | list[str]]:
    """Return a URL query string's parameters: one value as a string, repeated ones as a list."""
    if not search:
        return {}
    parsed = parse_qs(search.lstrip("?"), keep_blank_values=True)
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


def build_search(params: Mapping[str, str | list[str]]) -> str:
    """Return the query string ("?a=b&c=d", or "" when empty); a list repeats its key; empty values left out."""
    kept = {key: value for key, value in params.items() if value not in (None, "", [])}
    return "?" + urlencode(kept, doseq=True) if kept else ""


def _one(params: Mapping, key: str) -> str | None:
    """Return the single string value of key, or None; RangeError for a list or an overlong value."""
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RangeError(f"{key}: given more than once; expected one value")
    if len(value) > MAX_VALUE_CHARS:
        raise RangeError(f"{key} = {value[:MAX_VALUE_CHARS]!r}...: too long ({len(value)} characters)")
    return value


def parse_time(value: str, key: str) -> dt.datetime:
    """Return an ISO 8601 time (UTC when no zone is given) as an aware datetime; RangeError if malformed."""
    if not _ISO.fullmatch(value):
        raise RangeError(f"{key} = {value!r}: not a time; expected ISO 8601 such as 2024-05-01T12:00 (UTC)")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError as error:
        raise RangeError(f"{key} = {value!r}: not a valid time ({error})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    moment = moment.astimezone(dt.timezone.utc)
    if not _EARLIEST <= moment < _LATEST:
        raise RangeError(f"{key} = {value!r}: outside the times a store holds (1970 to 2261)")
    return moment


def parse_spec(params: Mapping) -> RangeSpec:
    """Return the RangeSpec the URL parameters ask for; raise RangeError naming the bad parameter."""
    name = _one(params, "range")
    start, end = _one(params, "start"), _one(params, "end")
    refresh = _one(params, "refresh") or DEFAULT_REFRESH
    if refresh not in REFRESHES:
        raise RangeError(f"refresh = {refresh!r}: expected one of {', '.join(REFRESHES)}")
    if name is None:
        name = "custom" if start is not None or end is not None else DEFAULT_RANGE
    if name == "custom":
        first = parse_time(start, "start") if start else None
        last = parse_time(end, "end") if end else None
        if first is None or last is None:
            missing = "start" if first is None else "end"
            raise RangeError(f"{missing}: required with range=custom (ISO 8601 such as 2024-05-01T12:00, UTC)")
        if last <= first:
            raise RangeError(f"end = {end!r}: must come after start = {start!r}")
        if (last - first).total_seconds() > MAX_CUSTOM_SECONDS:
            raise RangeError(f"start = {start!r}, end = {end!r}: longer than {MAX_CUSTOM_SECONDS // 86400} days")
        return RangeSpec("custom", format_time(first), format_time(last), refresh)
    if name not in RANGES:
        raise RangeError(f"range = {name!r}: expected one of {', '.join([*RANGES, 'custom'])}")
    if start is not None or end is not None:
        raise RangeError(f"start/end: only allowed with range=custom, not with range={name}")
    return RangeSpec(name, "", "", refresh)


def picked_spec(start_date: str | None, start_time: str | None, end_date: str | None, end_time: str | None,
                refresh: str = DEFAULT_REFRESH) -> RangeSpec:
    """Return the custom RangeSpec of the shell's date picker (dates YYYY-MM-DD, times HH:MM[:SS], UTC; a missing
    time is 00:00); RangeError naming the field and the reason when a part is missing or malformed, or the range
    ends before it starts."""
    ends = {}
    for key, date, clock in (("start", start_date, start_time), ("end", end_date, end_time)):
        date = (date or "")[:10]  # the picker may give 2024-05-01T00:00:00
        if not _DATE.fullmatch(date):
            raise RangeError(f"{key} date: pick one in the calendar (YYYY-MM-DD)" if not date else
                             f"{key} date = {date!r}: expected YYYY-MM-DD")
        clock = (clock or "").strip() or "00:00"
        if len(clock) > MAX_VALUE_CHARS or not _CLOCK.fullmatch(clock):
            raise RangeError(f"{key} time = {clock[:MAX_VALUE_CHARS]!r}: expected HH:MM (24-hour, UTC)")
        ends[key] = f"{date}T{clock}"
    return parse_spec({"range": "custom", **ends, "refresh": refresh})


def picker_values(spec: RangeSpec, shown: TimeRange) -> tuple[str, str, str, str]:
    """Return (start date, start time, end date, end time) for the date picker: the custom range's ends, or those
    of the range shown (a relative range resolved now), to the minute, UTC."""
    if spec.range == "custom":
        first, last = parse_time(spec.start, "start"), parse_time(spec.end, "end")
    else:
        first, last = (dt.datetime.fromtimestamp(shown.start_ns // 10**9, tz=dt.timezone.utc).replace(second=0),
                       dt.datetime.fromtimestamp(shown.end_ns // 10**9, tz=dt.timezone.utc).replace(second=0))
    return (f"{first:%Y-%m-%d}", format_time(first)[11:], f"{last:%Y-%m-%d}", format_time(last)[11:])


def format_time(moment: dt.datetime) -> str:
    """Return a UTC time as the URL spells it: 2024-05-01T12:00 (seconds only when not zero)."""
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S" if moment.second or moment.microsecond else "%Y-%m-%dT%H:%M")


def resolve(spec: RangeSpec, now_ns: int) -> TimeRange:
    """Return the range a spec names at `now_ns`: relative ranges end now."""
    if spec.range == "custom":
        first, last = parse_time(spec.start, "start"), parse_time(spec.end, "end")
        return TimeRange(_ns(first), _ns(last), f"{spec.start} to {spec.end} UTC")
    return TimeRange(now_ns - RANGES[spec.range] * 10**9, now_ns, RANGE_LABELS[spec.range])


def _ns(moment: dt.datetime) -> int:
    """Return an aware datetime as nanoseconds since the epoch, exactly."""
    delta = moment - _EARLIEST
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def range_from_data(data: Mapping | None, now_ns: int) -> TimeRange:
    """Return the range kept by the shell's range store ({"range": ...} or {"error": ...}); RangeError if bad."""
    if not data:
        return resolve(RangeSpec(), now_ns)
    if data.get("error"):
        raise RangeError(str(data["error"]))
    return resolve(parse_spec({key: value for key, value in data.items() if key in SHELL_PARAMS and value}), now_ns)


# ---- pages' own parameters ----

MAX_LIST_ITEMS = 50
MAX_NAME_CHARS = 512


def list_param(params: Mapping, key: str, allowed: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """Return a page parameter given once or repeated as a list; ParamError when a value is not allowed."""
    value = params.get(key)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    if len(values) > MAX_LIST_ITEMS:
        raise ParamError(f"{key}: given {len(values)} times; at most {MAX_LIST_ITEMS}")
    for item in values:
        if not isinstance(item, str) or len(item) > MAX_NAME_CHARS:
            raise ParamError(f"{key} = {str(item)[:60]!r}...: too long")
        if allowed is not None and item not in allowed:
            raise ParamError(f"{key} = {item!r}: expected one of {', '.join(allowed)}")
    return list(dict.fromkeys(v for v in values if v != ""))


def text_param(params: Mapping, key: str) -> str:
    """Return a page parameter given at most once ("" when absent); ParamError for a list or an overlong one."""
    value = params.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParamError(f"{key}: given more than once; expected one value")
    if len(value) > MAX_NAME_CHARS:
        raise ParamError(f"{key} = {value[:60]!r}...: too long ({len(value)} characters)")
    return value


def with_page_params(search: str | None, values: Mapping[str, str | list[str] | None]) -> str:
    """Return the query string with the page parameters in `values` replaced (None or empty removes one)."""
    params = parse_search(search)
    for key, value in values.items():
        params.pop(key, None)
        if value not in (None, "", []):
            params[key] = value
    return build_search(params)


#: a link to a moment (an event, an alert's start) opens this long before it to this long after it
AROUND_SECONDS = 3600


def search_around(moment_ns: int, now_ns: int | None = None, around_seconds: int = AROUND_SECONDS) -> str:
    """Return the query string of a custom range centred on a moment (around_seconds either side), its end held
    at now_ns (to the next whole minute) when given: a moment of the last hour opens up to now, not the future."""
    start_ns = moment_ns - around_seconds * 10**9
    end_ns = moment_ns + around_seconds * 10**9
    if now_ns is not None and start_ns < now_ns < end_ns:
        end_ns = min(end_ns, -(-now_ns // (60 * 10**9)) * 60 * 10**9)
    moment = _EARLIEST + dt.timedelta(microseconds=start_ns // 1000)
    until = _EARLIEST + dt.timedelta(microseconds=-(-end_ns // 10**9) * 10**6)
    return build_search({"range": "custom", "start": format_time(moment.replace(microsecond=0)),
                         "end": format_time(until)})
