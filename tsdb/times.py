"""Time and durations, the one place for each: the current UTC time, a duration's text read as seconds, and
seconds written for a person or as a label.

    parse_duration("1h30m") == 5400     parse_duration("0.5s") == 0.5     parse_duration("1.5h", whole=True): ValueError
    format_duration(12000) == "3 h 20 min"     duration_label(300) == "5m"

Durations are written as Alertmanager and Prometheus write them: one or more parts of a number and a unit,
w (week), d, h, m (minute) or s, e.g. 30m, 2h, 1d, 1h30m, 1.5h. A person reads them in the units s, min, h, d:
the largest unit that fits, days with their hours and hours with their minutes, rounded down to the unit shown.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

#: the units a duration may be written in, and their length in seconds
UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
#: the accepted forms, by example: every parse error quotes them
DURATION_FORMS = "30m, 2h, 1d or 1h30m"
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[wdhms])+")
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([wdhms])")
#: (unit shown, its seconds, the next unit shown with it or None): "2 d 3 h", "3 h 20 min", "12 min", "40 s"
_SPOKEN = (("d", 86400, ("h", 3600)), ("h", 3600, ("min", 60)), ("min", 60, None), ("s", 1, None))


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def parse_duration(text: str, *, whole: bool = False) -> int | float:
    """Return the seconds of a duration such as 30m, 2h, 1d, 1w, 1h30m or 1.5h (longer than 0): an int when
    they are whole.

    whole=True refuses fractions written in the text ("1.5h"). ValueError names the text and the accepted forms;
    a caller reading a config key puts the key in front.
    """
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise ValueError(f"{text!r}: expected a duration like {DURATION_FORMS}")
    parts = _PART.findall(text.strip())
    if whole and any("." in number for number, _unit in parts):
        raise ValueError(f"{text!r}: expected whole numbers, a duration like {DURATION_FORMS}")
    seconds = math.fsum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r}: too long")
    if seconds <= 0:
        raise ValueError(f"{text!r}: must be longer than 0")
    if not seconds.is_integer():
        return seconds
    if all("." not in number for number, _unit in parts):
        return sum(int(number) * UNIT_SECONDS[unit] for number, unit in parts)  # exact, however long
    return int(seconds)


def format_duration(seconds: float) -> str:
    """Return seconds as a person reads them: "2 d 3 h", "3 h 20 min", "12 min", "40 s" (rounded down to the
    smaller unit shown); "never" for an infinite or undefined one."""
    if not math.isfinite(seconds):
        return "never"
    whole = max(0, int(seconds))
    for unit, size, smaller in _SPOKEN:
        if whole >= size or size == 1:
            count, rest = divmod(whole, size)
            if smaller is None or rest < smaller[1]:
                return f"{count} {unit}"
            return f"{count} {unit} {rest // smaller[1]} {smaller[0]}"
    raise AssertionError(seconds)


def duration_label(seconds: int) -> str:
    """Return whole seconds in the largest unit that divides them, as a duration is written: "5m", "1h", "30d"."""
    for unit in ("d", "h", "m", "s"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    raise ValueError(f"{seconds!r}: not a whole number of seconds")
