"""How a component declares its config keys and how a TOML table is checked against them.

Every package keeps its own section's dataclass beside its code (tsdb.config, collector.config, alerts.config,
alerts.notify.config, dashboard.config); virtwatch.config composes them into the one file. Each field is
declared with `key(default, kind=..., check=...)`: its TOML type, and a check returning why a value is bad (or
None). `read_table` checks one table against such a dataclass and appends one problem per bad key, as
`where.key = value: reason`, with secrets shown as <redacted> (`secret=True`, or a `show` function that masks
part of a value). `ConfigError` is the one error of a config that cannot be used: its `.problems` lists every one.

This module sits at the bottom (tsdb) so that every package may declare keys and raise ConfigError.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from datetime import date, datetime, time
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REDACTED = "<redacted>"
DAY_SECONDS = 86400.0
MIN_SECONDS = 0.1  # the shortest interval or deadline a key takes: shorter ones only spin the CPU
WINDOW_MAX_SECONDS = 30 * DAY_SECONDS  # alert windows, holds and repeats
COUNT_MAX = 1_000_000
MIB = 1024 * 1024
TIB = 1024 * 1024 * MIB
_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", Path: "a path string",
             dict: "a table", list: "an array of strings"}
BAD = object()  # what check_value returns for a value it reported


class ConfigError(Exception):
    """A config that cannot be used; `.problems` holds every reason, one string each."""

    def __init__(self, problems: list[str], path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problems = list(problems)
        prefix = f"{self.path}: " if self.path else ""
        super().__init__("\n".join(prefix + problem for problem in self.problems))


def data_dir() -> Path:
    """Return the user's data dir for virtwatch (e.g. ~/.local/share/virtwatch): the default home of the
    agent's spool and forensics and of the engine's state."""
    import platformdirs

    return Path(platformdirs.user_data_dir("virtwatch"))


# ---- how values are shown: secrets never leave in clear ----


class Redacted:
    """Stand-in for a secret value in messages and reprs."""

    def __repr__(self) -> str:
        return REDACTED


def mask_url(url: str, keep_path: bool) -> Any:
    """Return url with its password and query (and, unless keep_path, its path) replaced by <redacted>."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return Redacted()
    if not parts.scheme or not parts.netloc:
        return url if keep_path and "@" not in url and "?" not in url else Redacted()
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    if parts.username is not None:
        password = f":{REDACTED}" if parts.password is not None else ""
        netloc = f"{parts.username}{password}@{netloc}"
    rest = parts.path if keep_path else (f"/{REDACTED}" if parts.path.strip("/") else parts.path)
    rest += f"?{REDACTED}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{rest}"


def url_with_path(value: Any) -> Any:
    """Show a URL whose path is public (an Alertmanager, the dashboard): only userinfo and query redacted."""
    return mask_url(value, keep_path=True) if isinstance(value, str) else value


def url_host_only(value: Any) -> Any:
    """Show a URL whose path may be a secret (a webhook's): scheme, host and port only."""
    return mask_url(value, keep_path=False) if isinstance(value, str) else value


def redacted(_value: Any) -> Redacted:
    """Show a secret: never."""
    return Redacted()


def shown(spec: Field, value: Any, show: Callable[[Any], Any] | None = None) -> Any:
    """Return value as it may be shown: through `show` (or the field's own), secrets <redacted>."""
    if value is None:
        return None
    show = show or spec.metadata.get("show")
    return show(value) if show else value


def literal(value: Any) -> str:
    """Render a (shown) value the way TOML would spell it, never expanding tables or arrays."""
    if isinstance(value, Redacted):
        return REDACTED
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{...}"  # contents may hold secrets
    if isinstance(value, list):
        return "[...]"
    return str(value)


def type_name(value: Any) -> str:
    """Name a TOML value's type for a message."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (dict, "a table"), (list, "an array"), (datetime, "a date-time"), (date, "a date"),
                       (time, "a time")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def repr_shown(self: Any, shows: Mapping[str, Callable[[Any], Any]] | None = None) -> str:
    """Build a dataclass repr that prints secrets as <redacted> (shows: per-key overrides of how to show)."""
    shows = shows or {}
    parts = (f"{f.name}={shown(f, getattr(self, f.name), shows.get(f.name))!r}" for f in fields(self) if f.repr)
    return f"{type(self).__name__}({', '.join(parts)})"


def redacted_repr(self: Any) -> str:
    """A dataclass `__repr__` that prints secrets as <redacted>."""
    return repr_shown(self)


# ---- checks: each returns the reason a value is bad, or None ----


def _number(value: float) -> str:
    """Show a bound as a person writes it: 86400, 0.1, 1099511627776."""
    return str(int(value)) if float(value).is_integer() else str(value)


def within(low: float, high: float, unit: str = "") -> Callable[[Any], str | None]:
    """Return a check refusing numbers outside [low, high] (an int of any size compares exactly)."""
    reason = f"must be from {_number(low)} to {_number(high)}{unit}"

    def check(value: float) -> str | None:
        return None if low <= value <= high else reason

    return check


#: an interval or a deadline: at least MIN_SECONDS, at most a day
seconds = within(MIN_SECONDS, DAY_SECONDS, " seconds (at most a day)")
#: an alert window, hold or repeat: at most 30 days
window_seconds = within(MIN_SECONDS, WINDOW_MAX_SECONDS, " seconds (at most 30 days)")
count = within(1, COUNT_MAX)


def fraction(value: float) -> str | None:
    """Refuse anything but a number in (0, 1]."""
    return None if 0 < value <= 1 else "must be more than 0 and at most 1"


def not_empty(value: str) -> str | None:
    """Refuse an empty or blank string."""
    return None if value.strip() else "must not be empty"


def http_url(value: str) -> str | None:
    """Refuse anything but an http(s) URL with a host."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    return None if ok else "must be an http:// or https:// URL"


def split_host_port(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (or "[IPv6]:PORT") into host and port; raise ValueError with the reason."""
    match = re.fullmatch(r"\[([^\[\]]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value)
    if not match:
        raise ValueError("expected HOST:PORT")
    host, port = (match[1], match[2]) if match[1] else (match[3], match[4])
    if int(port) > 65535:
        raise ValueError("expected HOST:PORT with PORT from 0 to 65535")
    return host, int(port)


def listen(value: str) -> str | None:
    """Refuse anything but HOST:PORT."""
    try:
        split_host_port(value)
    except ValueError as error:
        return str(error)
    return None


def key(default: Any = MISSING, *, kind: type, check: Callable[[Any], str | None] | None = None,
        factory: Callable[[], Any] | Any = MISSING, secret: bool = False,
        show: Callable[[Any], Any] | None = None) -> Any:
    """Declare a config key: a dataclass field whose metadata says its TOML type, its check, and how it is
    shown (secret: never; show: a function masking part of it)."""
    return field(default=default, default_factory=factory,
                 metadata={"kind": kind, "check": check, "show": redacted if secret else show})


# ---- reading a table ----


def did_you_mean(name: str, known: Mapping[str, Any] | list[str]) -> str:
    """Suggest the closest known name, if one is close."""
    close = get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class KeyProblem(ValueError):
    """Why a value cannot be a key's, without the key or the value."""


def converted(spec: Field, value: Any, base_dir: Path | None) -> Any:
    """Return value converted to spec's type; raise KeyProblem with the reason it cannot be."""
    kind, check = spec.metadata["kind"], spec.metadata["check"]
    toml_kind = (int, float) if kind is float else str if kind is Path else kind
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, toml_kind):
        raise KeyProblem(f"expected {_EXPECTED[kind]}, got {type_name(value)}")
    if kind is float:
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise KeyProblem("must be a finite number")
    if isinstance(value, str) and "\x00" in value:
        raise KeyProblem("must not contain a NUL character")
    reason = check(value) if check else (not_empty(value) if kind is Path else None)
    if reason:
        raise KeyProblem(reason)
    if kind is Path:
        path = Path(value).expanduser()
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    if kind is list:
        return tuple(value)
    return float(value) if kind is float else value


def key_problem(cls: type, name: str, value: Any) -> str | None:
    """Return why value cannot be cls's key `name` (what a command-line flag overriding it is told), or None."""
    spec = {f.name: f for f in fields(cls)}[name]
    try:
        converted(spec, value, None)
    except KeyProblem as problem:
        return str(problem)
    return None


def check_value(spec: Field, value: Any, label: str, problems: list[str], base_dir: Path | None,
                show: Callable[[Any], Any] | None = None) -> Any:
    """Return value converted to spec's type, or BAD after appending the problem."""
    try:
        return converted(spec, value, base_dir)
    except KeyProblem as problem:
        problems.append(f"{label} = {literal(shown(spec, value, show))}: {problem}")
        return BAD


def read_table(cls: type, table: Mapping[str, Any], where: str, problems: list[str],
               env: Mapping[str, tuple[str, str]], base_dir: Path | None,
               shows: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """Check one table against cls's keys; return the good values, append a problem for each bad one.

    env maps a key to (variable, value) from the environment, which wins over the table; shows overrides how a
    key's bad value is shown (a receiver's url, whose secret part depends on its type).
    """
    known = {f.name: f for f in fields(cls)}
    for name in table:
        if name not in known:
            problems.append(f"{where}.{name}: unknown key{did_you_mean(name, known)}")
    values = {}
    for name, spec in known.items():
        if "kind" not in spec.metadata:
            continue  # a nested table, read by the caller
        if name in env:
            label, value = f"{where}.{name} (from {env[name][0]})", env[name][1]
        elif name in table:
            label, value = f"{where}.{name}", table[name]
        else:
            continue
        checked = check_value(spec, value, label, problems, base_dir, (shows or {}).get(name))
        if checked is not BAD:
            values[name] = checked
    return values


def read_subtable(cls: type, raw: Any, where: str, problems: list[str], base_dir: Path | None) -> Any:
    """Check a nested table ([alerts.leak]) against cls's keys; return cls built from its good values."""
    if not isinstance(raw, dict):
        problems.append(f"{where} = {literal(raw)}: expected a table ([{where}]), got {type_name(raw)}")
        return cls()
    return cls(**read_table(cls, raw, where, problems, {}, base_dir))


def env_secrets(names: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Return {key: (variable, value)} for each key whose environment variable is set and not empty."""
    return {name: (var, environ[var]) for name, var in names.items() if environ.get(var)}
