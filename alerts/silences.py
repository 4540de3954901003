"""Alert silences in the manner of Alertmanager: label matchers and a time window that mute notifications.

A `Silence` holds `Matcher`s (`name op value`, op one of `=`, `!=`, `=~`, `!~`), a window
`starts_at <= now < ends_at`, who made it and why. While it is active, a firing alert whose labels satisfy every
matcher is not notified; the engine still tracks the alert. Regular expressions are Python `re` syntax, fully
anchored as Alertmanager anchors them (`^(?:re)$`), and a label an alert lacks counts as the empty string.
They are matched in time linear in the label value (`LinearRegex`), never by backtracking, so `(a|a)*b` costs
what `a*b` costs; what only backtracking can match (backreferences, lookarounds) is refused, as Alertmanager's
RE2 refuses it, and a value longer than `REGEX_MAX_VALUE_CHARS` satisfies no regex matcher (it is never muted by
one). A regex refused so but found in an older file is kept and mutes nothing.

Rules (Alertmanager's): a silence needs at least one matcher that does not match the empty string, so it cannot
mute everything by accident; it needs a comment and an author; its end lies after its start and after now; a
start in the past becomes now. Expired silences are kept for the record for `RETENTION` (120 h, Alertmanager's
`--data.retention` default) and pruned on the next write after that.

`SilenceStore` keeps them in one JSON file shared by the engine, `virtwatch silence` and the dashboard, in
several processes: writers hold an exclusive `fcntl.flock` on the sibling `<file>.lock` while they read, change
and replace the file (temp file, fsync, rename, directory fsync); readers read the file without a lock (a rename
is atomic) and a missing file holds no silences.

Errors: `SilenceError` for anything bad (a matcher, an argument, an unknown id, a corrupt or unwritable file);
its message names the matcher, argument, id or path and the reason, on one line.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from alerts.linear_regex import LinearRegex, REGEX_MAX_VALUE_CHARS, UnsupportedRegex, linear_regex
from tsdb.durable import write_durably
from tsdb.times import utc_now

OPERATORS = ("=", "!=", "=~", "!~")
RETENTION = timedelta(hours=120)  # Alertmanager's default --data.retention: expired silences kept 5 days
VERSION = 1
ACTIVE = "active"
PENDING = "pending"
EXPIRED = "expired"
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# NAME OP VALUE: the first operator after the name splits; `=~` and `!~` are tried before `=`.
_MATCHER_SYNTAX = re.compile(r"(?s)(?P<name>.*?)(?P<op>=~|!~|!=|=)(?P<value>.*)")


class SilenceError(Exception):
    """A silence, matcher or silences file that cannot be used; the message names which one and why."""


def format_time(moment: datetime) -> str:
    """Return a timezone-aware datetime as RFC 3339 in UTC with a Z suffix, e.g. 2026-11-24T08:00:00Z."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time with a zone (as format_time writes) into a UTC datetime; ValueError if bad."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(timezone.utc)


def _utc(moment: Any, what: str) -> datetime:
    """Return moment in UTC; refuse anything but a timezone-aware datetime."""
    if not isinstance(moment, datetime):
        raise SilenceError(f"{what}: expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SilenceError(f"{what} {moment.isoformat()}: must be timezone-aware")
    return moment.astimezone(timezone.utc)


def _text(value: Any, what: str, *, required: bool) -> str:
    """Check that value is a string that UTF-8 can hold (and, if required, not blank)."""
    if not isinstance(value, str):
        raise SilenceError(f"{what}: expected a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise SilenceError(f"{what} {value!r}: not valid unicode ({error.reason} at position {error.start})") \
            from None
    if required and not value.strip():
        raise SilenceError(f"{what}: required, must not be empty")
    return value


class _Invalid(ValueError):
    """Why a matcher's parts are bad, before we know how the caller wrote the matcher."""


class _RefusedRegex(_Invalid):
    """A regex valid for Python's re that silences refuse (it needs backtracking, or is too large)."""


def _check_matcher(name: Any, op: Any, value: Any) -> LinearRegex | None:
    """Check a matcher's name, operator and value; return its compiled regex (None for = and !=)."""
    if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
        raise _Invalid(f"label name {name!r} must match {LABEL_NAME.pattern}")
    if op not in OPERATORS:
        raise _Invalid(f"operator {op!r} must be one of {', '.join(OPERATORS)}")
    try:
        _text(value, "value", required=False)
    except SilenceError as error:
        raise _Invalid(str(error)) from None
    if op in ("=", "!="):
        return None
    try:
        re.compile(f"(?:{value})")  # re's own message for a syntax error
    except (re.error, OverflowError, RecursionError, ValueError) as error:
        raise _Invalid(f"bad regular expression: {error}") from None
    try:
        return linear_regex(f"(?:{value})")
    except UnsupportedRegex as error:
        raise _RefusedRegex(f"regular expression not supported: {error}") from None
    except (re.error, OverflowError, RecursionError, ValueError) as error:
        raise _Invalid(f"bad regular expression: {error}") from None


@dataclass(frozen=True)
class Matcher:
    """One label matcher: `name op value`, op one of OPERATORS; regexes are anchored at both ends."""

    name: str
    op: str
    value: str
    _pattern: LinearRegex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check the name, operator and value; compile a regex once (LinearRegex: linear in the value)."""
        try:
            object.__setattr__(self, "_pattern", _check_matcher(self.name, self.op, self.value))
        except _Invalid as error:
            raise SilenceError(f"matcher {self}: {error}") from None

    def __str__(self) -> str:
        """Return the matcher as `name op "value"`, the value quoted so that parse() gives it back exactly."""
        if not isinstance(self.value, str):
            return f"{self.name}{self.op}{self.value!r}"
        quoted = json.dumps(self.value, ensure_ascii=False)  # lone surrogates (never valid) shown as \udcff
        return f"{self.name}{self.op}{quoted.encode('utf-8', 'backslashreplace').decode('utf-8')}"

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse `NAME OP VALUE`, e.g. `host=web 1`, `alertname=~Libvirtd.*` or `host!="a,b"`.

        Blanks around the name and an unquoted value are ignored; a value in double quotes is taken exactly,
        with JSON escapes (`\\"`, `\\\\`, `\\n`, `\\u00e9`), so leading blanks and any character survive.
        """
        if not isinstance(text, str):
            raise SilenceError(f"matcher {text!r}: expected a string, got {type(text).__name__}")
        match = _MATCHER_SYNTAX.fullmatch(text)
        if not match:
            raise SilenceError(f"matcher {text!r}: expected NAME OP VALUE with OP one of {', '.join(OPERATORS)}")
        name, op, value = match["name"].strip(), match["op"], match["value"].strip()
        if not name:
            raise SilenceError(f"matcher {text!r}: label name missing before {op!r}")
        if value.startswith('"'):
            try:
                unquoted = json.loads(value, strict=False)
            except ValueError as error:
                raise SilenceError(f"matcher {text!r}: quoted value {value!r} is not one well-formed string "
                                   f"({error.msg} at column {error.colno})") from None
            value = unquoted  # json.loads of text starting with '"' gives a str or raises
        try:
            _check_matcher(name, op, value)
        except _Invalid as error:
            raise SilenceError(f"matcher {text!r}: {error}") from None
        return cls(name, op, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the label set satisfies this matcher; a missing label is the empty string."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        if self._pattern is None or len(value) > REGEX_MAX_VALUE_CHARS:
            return False  # a regex kept from an older file that is no longer supported, or a value too long
        found = self._pattern.fullmatch(value)
        return found if self.op == "=~" else not found

    def to_dict(self) -> dict[str, str]:
        """Return the matcher as JSON-able data."""
        return {"name": self.name, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Matcher:
        """Rebuild a matcher from to_dict's output; SilenceError if it is not one."""
        if not isinstance(data, Mapping):
            raise SilenceError(f"matcher: expected an object, got {type(data).__name__}")
        missing = [key for key in ("name", "op", "value") if key not in data]
        if missing:
            raise SilenceError(f"matcher {dict(data)!r}: missing {', '.join(missing)}")
        try:
            return cls(data["name"], data["op"], data["value"])
        except SilenceError:
            try:
                _check_matcher(data["name"], data["op"], data["value"])
            except _RefusedRegex:  # written before regexes were refused: kept, but it mutes nothing
                matcher = object.__new__(cls)
                for key in ("name", "op", "value"):
                    object.__setattr__(matcher, key, data[key])
                object.__setattr__(matcher, "_pattern", None)
                return matcher
            raise


@dataclass(frozen=True)
class Silence:
    """A set of matchers muting the alerts they all match while starts_at <= now < ends_at (UTC)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def __post_init__(self) -> None:
        """Check every field; keep matchers as a tuple and times in UTC."""
        _text(self.id, "silence id", required=True)
        what = f"silence {self.id}"
        if isinstance(self.matchers, (str, bytes)) or not isinstance(self.matchers, Sequence):
            raise SilenceError(f"{what}: matchers: expected a sequence of Matcher")
        matchers = tuple(self.matchers)
        object.__setattr__(self, "matchers", matchers)
        check_matchers(matchers)
        object.__setattr__(self, "starts_at", _utc(self.starts_at, f"{what}: starts_at"))
        object.__setattr__(self, "ends_at", _utc(self.ends_at, f"{what}: ends_at"))
        if self.ends_at < self.starts_at:
            raise SilenceError(f"{what}: ends_at {format_time(self.ends_at)}: must not be before starts_at "
                               f"{format_time(self.starts_at)}")
        _text(self.created_by, f"{what}: created_by", required=True)
        _text(self.comment, f"{what}: comment", required=True)

    def active(self, now: datetime) -> bool:
        """Return whether the silence mutes alerts at now: starts_at <= now < ends_at."""
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        """Return pending (not started), active or expired at now."""
        if now < self.starts_at:
            return PENDING
        return ACTIVE if now < self.ends_at else EXPIRED

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether every matcher matches the label set (whatever the time)."""
        return all(matcher.matches(labels) for matcher in self.matchers)

    def to_dict(self) -> dict[str, Any]:
        """Return the silence as JSON-able data (times as RFC 3339 UTC strings)."""
        return {"id": self.id, "matchers": [matcher.to_dict() for matcher in self.matchers],
                "starts_at": format_time(self.starts_at), "ends_at": format_time(self.ends_at),
                "created_by": self.created_by, "comment": self.comment}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        """Rebuild a silence from to_dict's output; SilenceError naming the key if it is not one."""
        if not isinstance(data, Mapping):
            raise SilenceError(f"silence: expected an object, got {type(data).__name__}")
        missing = [key for key in ("id", "matchers", "starts_at", "ends_at", "created_by", "comment")
                   if key not in data]
        if missing:
            raise SilenceError(f"silence {data.get('id')!r}: missing {', '.join(missing)}")
        if not isinstance(data["matchers"], list):
            raise SilenceError(f"silence {data['id']!r}: matchers: expected a list")
        times = {}
        for key in ("starts_at", "ends_at"):
            try:
                times[key] = parse_time(data[key])
            except (TypeError, ValueError) as error:
                raise SilenceError(f"silence {data['id']!r}: {key} {data[key]!r}: not an RFC 3339 time "
                                   f"({error})") from None
        return cls(id=data["id"], matchers=tuple(Matcher.from_dict(item) for item in data["matchers"]),
                   starts_at=times["starts_at"], ends_at=times["ends_at"], created_by=data["created_by"],
                   comment=data["comment"])


def check_matchers(matchers: Sequence[Matcher]) -> None:
    """Refuse no matchers, a non-Matcher, or matchers that all match the empty string (they mute everything)."""
    if not matchers:
        raise SilenceError("matchers: at least one matcher is required")
    for matcher in matchers:
        if not isinstance(matcher, Matcher):
            raise SilenceError(f"matchers: expected Matcher objects, got {type(matcher).__name__} {matcher!r}")
    if all(matcher.matches({}) for matcher in matchers):
        shown = " ".join(str(matcher) for matcher in matchers)
        raise SilenceError(f"matchers {shown}: at least one matcher must not match the empty string, "
                           "or the silence would mute every alert")


class SilenceStore:
    """Silences kept in one JSON file, shared safely by the engine, the CLI and the dashboard (several processes)."""

    def __init__(self, path: str | os.PathLike, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.clock = clock
        self._cache: tuple[bytes, list[Silence]] | None = None  # the last file read and what it held

    def __repr__(self) -> str:
        """Name the file."""
        return f"SilenceStore({str(self.path)!r})"

    # --- reading -------------------------------------------------------------------------------------------

    def list(self, include_expired: bool = False) -> list[Silence]:
        """Return the silences: active and pending first, newest (latest start) first; then expired, latest end
        first when include_expired. Silences past their retention are never listed."""
        now = self._now()
        return _ordered([s for s in self._kept(self._read(), now) if include_expired or s.state(now) != EXPIRED],
                        now)

    def get(self, silence_id: str) -> Silence:
        """Return the silence with this id (expired ones included); SilenceError if there is none."""
        for silence in self._kept(self._read(), self._now()):
            if silence.id == silence_id:
                return silence
        raise SilenceError(f"silence id {silence_id!r}: no such silence in {self.path}")

    def silencing(self, labels: Mapping[str, str]) -> Silence | None:
        """Return the active silence muting these labels (the newest if several), or None."""
        now = self._now()
        for silence in _ordered(self._read(), now):
            if silence.active(now) and silence.matches(labels):
                return silence
        return None

    # --- changing ------------------------------------------------------------------------------------------

    def add(self, matchers: Sequence[Matcher], ends_at: datetime, *, created_by: str, comment: str,
            starts_at: datetime | None = None) -> Silence:
        """Create a silence from starts_at (default now; a past start becomes now) until ends_at; return it."""
        now = self._now()
        if isinstance(matchers, (str, bytes, Matcher)) or not isinstance(matchers, Sequence):
            raise SilenceError("matchers: expected a sequence of Matcher")
        check_matchers(matchers)
        ends_at = _utc(ends_at, "ends_at")
        starts_at = now if starts_at is None else max(_utc(starts_at, "starts_at"), now)
        if ends_at <= now:
            raise SilenceError(f"ends_at {format_time(ends_at)}: must be after now ({format_time(now)})")
        if ends_at <= starts_at:
            raise SilenceError(f"ends_at {format_time(ends_at)}: must be after starts_at {format_time(starts_at)}")
        silence = Silence(id=str(uuid.uuid4()), matchers=tuple(matchers), starts_at=starts_at, ends_at=ends_at,
                          created_by=_text(created_by, "created_by", required=True),
                          comment=_text(comment, "comment", required=True))
        self._change(lambda silences: [*silences, silence])
        return silence

    def expire(self, silence_id: str) -> Silence:
        """End the silence now (a pending one never starts) and return it; SilenceError if unknown or expired."""
        expired: list[Silence] = []

        def end(silences: list[Silence]) -> list[Silence]:
            now = self._now()
            for index, silence in enumerate(silences):
                if silence.id != silence_id:
                    continue
                if silence.state(now) == EXPIRED:
                    raise SilenceError(f"silence id {silence_id!r}: already expired at "
                                       f"{format_time(silence.ends_at)}")
                ended = Silence(silence.id, silence.matchers, min(silence.starts_at, now), now,
                                silence.created_by, silence.comment)
                expired.append(ended)
                return [*silences[:index], ended, *silences[index + 1:]]
            raise SilenceError(f"silence id {silence_id!r}: no such silence in {self.path}")

        self._change(end)
        return expired[0]

    # --- the file ------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """Return the clock's time in UTC; refuse a naive one."""
        now = self.clock()
        if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
            raise SilenceError(f"clock: must return timezone-aware datetimes, got {now!r}")
        return now.astimezone(timezone.utc)

    @staticmethod
    def _kept(silences: list[Silence], now: datetime) -> list[Silence]:
        """Drop silences that expired more than RETENTION ago."""
        return [silence for silence in silences if silence.ends_at > now - RETENTION]  # no overflow near 9999

    def _read(self) -> list[Silence]:
        """Return every silence in the file (none if it is missing); SilenceError naming the path if corrupt."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise SilenceError(f"silences file {self.path}: cannot read ({error.strerror or error})") from None
        if self._cache is not None and self._cache[0] == raw:
            return list(self._cache[1])
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("version") != VERSION:
                version = data.get("version") if isinstance(data, dict) else None
                raise ValueError(f"version {version!r}, expected {VERSION}")
            if not isinstance(data.get("silences"), list):
                raise ValueError("silences: expected a list")
            silences = [Silence.from_dict(item) for item in data["silences"]]
        except (ValueError, SilenceError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise SilenceError(f"silences file {self.path}: corrupt ({error}); move it aside to start with no "
                               "silences") from None
        self._cache = (raw, silences)
        return list(silences)

    def _change(self, change: Callable[[list[Silence]], list[Silence]]) -> None:
        """Under the exclusive lock: read the file, apply change, prune, and replace the file durably."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise SilenceError(f"silences file {self.path}: cannot lock {self.lock_path} "
                               f"({error.strerror or error})") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            silences = self._kept(change(self._read()), self._now())
            self._write(silences)
        finally:
            os.close(lock_fd)  # closing releases the lock

    def _write(self, silences: list[Silence]) -> None:
        """Replace the file with these silences durably: temp file, fsync, rename, directory fsync."""
        body = json.dumps({"version": VERSION, "silences": [silence.to_dict() for silence in silences]},
                          ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
        try:
            write_durably(self.path, body)
        except OSError as error:
            raise SilenceError(f"silences file {self.path}: cannot write ({error.strerror or error})") from None
        self._cache = (body, list(silences))


def _ordered(silences: list[Silence], now: datetime) -> list[Silence]:
    """Sort active and pending silences first, newest start first, then expired ones, latest end first."""
    live = sorted((s for s in silences if s.state(now) != EXPIRED), key=lambda s: (s.starts_at, s.ends_at, s.id),
                  reverse=True)
    ended = sorted((s for s in silences if s.state(now) == EXPIRED), key=lambda s: (s.ends_at, s.starts_at, s.id),
                   reverse=True)
    return live + ended
