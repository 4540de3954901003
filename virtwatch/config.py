"""Load virtwatch's one TOML config file into frozen dataclasses, reporting every problem at once.

The file has four optional sections, `[store]`, `[agent]`, `[alerts]` (with `[[alerts.receivers]]` and
`[alerts.leak]`) and `[dashboard]`; every key is optional except a receiver's `name` and `type`, so an empty file
is a valid config.
A key's name in the file is the field's name in its dataclass; `deploy/virtwatch.example.toml` shows them all.

Every number has a range (an interval or deadline 0.1 s to a day, an alert window up to 30 days, counts and sizes
bounded), no string holds a NUL, and the store URL is parsed by tsdb's own parser, so what a command would refuse
at start, or die of, is a problem here. `check_key` applies a key's checks to a command-line flag overriding it.

Secrets may come from the environment, which wins over the file (an empty variable counts as unset):
`VIRTWATCH_STORE_TOKEN`, `VIRTWATCH_STORE_USERNAME`, `VIRTWATCH_STORE_PASSWORD`,
`VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD`, and per receiver `VIRTWATCH_RECEIVER_<NAME>_URL`, `_SECRET`,
`_ROUTING_KEY`, NAME being the receiver's name upper-cased with every character outside A-Z and 0-9 made `_`.

Errors: `ConfigError`, whose `.problems` lists every problem as `key.path = value: reason`. Secret values are
printed as `<redacted>`, in problems and in the dataclasses' reprs alike.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import date, datetime, time
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from alerts.leaks import LeakPolicy

REDACTED = "<redacted>"
RECEIVER_TYPES = ("webhook", "alertmanager", "pagerduty", "slack")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"  # PagerDuty Events API v2
SECRET_KEYS = frozenset({"token", "password", "secret", "routing_key", "basic_auth_password"})
MIB = 1024 * 1024
TIB = 1024 * 1024 * MIB
DAY_SECONDS = 86400.0
MIN_SECONDS = 0.1  # the shortest interval or deadline a key takes: shorter ones only spin the CPU
WINDOW_MAX_SECONDS = 30 * DAY_SECONDS  # alert windows, holds and repeats
COUNT_MAX = 1_000_000
SHARDS_MAX = 1000  # alert engine shards: one engine reads the whole fleet's figures, so a few suffice
KEEPALIVE_COUNT_MAX = 1000  # a dead connection is closed after interval * (count + 1) s: within a C int
BATCH_MAX_POINTS = 100_000  # InfluxDB's default max-body-size (25 MB) holds about that many of our points


class ConfigError(Exception):
    """A config that cannot be used; `.problems` holds every reason, one string each."""

    def __init__(self, problems: list[str], path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problems = list(problems)
        prefix = f"{self.path}: " if self.path else ""
        super().__init__("\n".join(prefix + problem for problem in self.problems))


# ---- how values are shown: secrets never leave this module in clear ----


class _Redacted:
    """Stand-in for a secret value in messages and reprs."""

    def __repr__(self) -> str:
        return REDACTED


def _mask_url(url: str, keep_path: bool) -> Any:
    """Return url with its password and query (and, unless keep_path, its path) replaced by <redacted>."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return _Redacted()
    if not parts.scheme or not parts.netloc:
        return url if keep_path and "@" not in url and "?" not in url else _Redacted()
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    if parts.username is not None:
        password = f":{REDACTED}" if parts.password is not None else ""
        netloc = f"{parts.username}{password}@{netloc}"
    rest = parts.path if keep_path else (f"/{REDACTED}" if parts.path.strip("/") else parts.path)
    rest += f"?{REDACTED}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{rest}"


def _masked(key: str, value: Any, receiver_type: str | None = None) -> Any:
    """Return value with any secret in it redacted; receiver_type is None outside [[alerts.receivers]]."""
    if value is None:
        return None
    if key in SECRET_KEYS:
        return _Redacted()
    if key == "external_url" and isinstance(value, str):
        return _mask_url(value, keep_path=True)
    if key == "url" and isinstance(value, str):
        if receiver_type is None:  # [store] url: shown as tsdb shows it, user kept, password and query redacted
            from tsdb.urls import redact_store_url

            return redact_store_url(value)
        if receiver_type in ("alertmanager", "pagerduty"):
            return _mask_url(value, keep_path=True)
        if receiver_type == "webhook":
            return _mask_url(value, keep_path=False)
        return _Redacted()  # slack, or a type we cannot vouch for: the whole url is the credential
    return value


def _literal(value: Any) -> str:
    """Render a (masked) value the way TOML would spell it, never expanding tables or arrays."""
    if isinstance(value, _Redacted):
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


def _type_name(value: Any) -> str:
    """Name a TOML value's type for a message."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (dict, "a table"), (list, "an array"), (datetime, "a date-time"), (date, "a date"),
                       (time, "a time")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _redacted_repr(self: Any) -> str:
    """Build a dataclass repr that prints secrets as <redacted>."""
    receiver_type = getattr(self, "type", None) if isinstance(self, ReceiverConfig) else None
    shown = (f"{f.name}={_masked(f.name, getattr(self, f.name), receiver_type)!r}" for f in fields(self) if f.repr)
    return f"{type(self).__name__}({', '.join(shown)})"


# ---- checks: each returns the reason a value is bad, or None ----


def split_host_port(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (or "[IPv6]:PORT") into host and port; raise ValueError with the reason."""
    match = re.fullmatch(r"\[([^\[\]]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value)
    if not match:
        raise ValueError("expected HOST:PORT")
    host, port = (match[1], match[2]) if match[1] else (match[3], match[4])
    if int(port) > 65535:
        raise ValueError("expected HOST:PORT with PORT from 0 to 65535")
    return host, int(port)


def _listen(value: str) -> str | None:
    """Refuse anything but HOST:PORT."""
    try:
        split_host_port(value)
    except ValueError as error:
        return str(error)
    return None


def _number(value: float) -> str:
    """Show a bound as a person writes it: 86400, 0.1, 1099511627776."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _within(low: float, high: float, unit: str = "") -> Callable[[Any], str | None]:
    """Return a check refusing numbers outside [low, high] (an int of any size compares exactly)."""
    reason = f"must be from {_number(low)} to {_number(high)}{unit}"

    def check(value: float) -> str | None:
        return None if low <= value <= high else reason

    return check


#: an interval or a deadline: at least MIN_SECONDS, at most a day
_seconds = _within(MIN_SECONDS, DAY_SECONDS, " seconds (at most a day)")
#: an alert window, hold or repeat: at most 30 days
_window_seconds = _within(MIN_SECONDS, WINDOW_MAX_SECONDS, " seconds (at most 30 days)")
_count = _within(1, COUNT_MAX)


def _share(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be a share of the fleet: more than 0, at most 1"


def _fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be more than 0 and at most 1"


def _severity(value: str) -> str | None:
    return None if value in ("page", "ticket") else 'must be "page" or "ticket"'


def _shard(value: str) -> str | None:
    """Refuse anything but "I/N", shard I (from 0) of N, as alerts.shard reads it."""
    from alerts.shard import Shard

    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", value)
    if match and not 1 <= int(match[2]) <= SHARDS_MAX:
        return f"the number of shards must be from 1 to {SHARDS_MAX}"
    try:
        Shard.parse(value)
    except ValueError as error:
        return str(error).removeprefix(f"shard {value!r}: ")
    return None


def _not_empty(value: str) -> str | None:
    """Refuse an empty or blank string."""
    return None if value.strip() else "must not be empty"


def _store_url(value: str) -> str | None:
    """Refuse a store URL the store would refuse at start: tsdb's own parser says why."""
    from tsdb.urls import store_url_problem

    return store_url_problem(value)


def _http_url(value: str) -> str | None:
    """Refuse anything but an http(s) URL with a host."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    return None if ok else "must be an http:// or https:// URL"


def _receiver_type(value: str) -> str | None:
    """Refuse a receiver type no notifier implements."""
    return None if value in RECEIVER_TYPES else f"must be one of {', '.join(RECEIVER_TYPES)}"


def _metadata_tags(value: dict) -> str | None:
    """Check [agent.metadata_tags]: tag name -> "NAMESPACE-URI PATH/TO/ELEMENT"."""
    for tag, spec in value.items():
        if "\x00" in tag or (isinstance(spec, str) and "\x00" in spec):
            return f"tag {tag!r}: must not contain a NUL character"
        if tag in ("host", "domain", "time") or not tag:
            return f"tag {tag!r}: host, domain and time are taken"
        if not isinstance(spec, str) or len(spec.split()) != 2 or "://" not in spec.split()[0]:
            return (f"tag {tag!r}: expected \"NAMESPACE-URI PATH\", e.g. "
                    "\"http://openstack.org/xmlns/libvirt/nova/1.1 owner/project\"")
    return None


def _allowed_hosts(value: list) -> str | None:
    """Check [dashboard] allowed_hosts: NAME or NAME:PORT ([V6]:PORT) each, as the dashboard reads them."""
    from dashboard.origins import allowed_host_problem

    for entry in value:
        reason = (allowed_host_problem(entry) if isinstance(entry, str)
                  else f"expected a string, got {_type_name(entry)}")
        if reason:
            return f"{_literal(entry)}: {reason}"
    return None


def is_loopback(host: str) -> bool:
    """Whether a listen host can be reached from this machine only: a loopback address or localhost."""
    import ipaddress

    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another name, whatever it resolves to today


def public_listen_problem(listen: str, dashboard: DashboardConfig) -> str | None:
    """Return why the dashboard must not listen on this HOST:PORT without basic auth, or None."""
    host, _port = split_host_port(listen)
    if is_loopback(host) or dashboard.allow_unauthenticated_public or (
            dashboard.basic_auth_username and dashboard.basic_auth_password):
        return None
    return ("not a loopback address, and [dashboard] sets no basic auth: anyone who reaches it could read the "
            "fleet and silence its pages; set basic_auth_username and basic_auth_password (or, to serve everyone "
            "anyway, allow_unauthenticated_public = true)")


def _key(default: Any = MISSING, *, kind: type, check: Callable[[Any], str | None] | None = None,
         factory: Callable[[], Any] | Any = MISSING) -> Any:
    """Declare a config key: a dataclass field whose metadata says its TOML type and check."""
    return field(default=default, default_factory=factory, metadata={"kind": kind, "check": check})


def _data_dir() -> Path:
    """Return the user's data dir for virtwatch (e.g. ~/.local/share/virtwatch)."""
    return Path(platformdirs.user_data_dir("virtwatch"))


# ---- the config model ----


@dataclass(frozen=True, repr=False)
class StoreConfig:
    """[store]: where points go; url None means the embedded store."""

    url: str | None = _key(None, kind=str, check=_store_url)
    token: str | None = _key(None, kind=str, check=_not_empty)
    username: str | None = _key(None, kind=str, check=_not_empty)
    password: str | None = _key(None, kind=str, check=_not_empty)
    batch_size: int = _key(5000, kind=int, check=_within(1, BATCH_MAX_POINTS))
    timeout_seconds: float = _key(10.0, kind=float, check=_seconds)
    max_retries: int = _key(5, kind=int, check=_within(0, 100))
    gzip: bool = _key(True, kind=bool)
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class AgentConfig:
    """[agent]: the per-host collector."""

    libvirt_uri: str = _key("qemu:///system", kind=str, check=_not_empty)
    libvirt_read_only: bool = _key(False, kind=bool)
    host_name: str = _key(kind=str, check=_not_empty, factory=socket.gethostname)
    interval_seconds: float = _key(10.0, kind=float, check=_seconds)
    probe_timeout_seconds: float = _key(5.0, kind=float, check=_seconds)
    keepalive_interval_seconds: int = _key(5, kind=int,
                                           check=_within(1, int(DAY_SECONDS), " seconds (at most a day)"))
    keepalive_count: int = _key(5, kind=int, check=_within(0, KEEPALIVE_COUNT_MAX))
    admin_uri: str | None = _key(None, kind=str, check=_not_empty)
    daemon_pidfile: Path = _key(kind=Path, factory=lambda: Path("/run/libvirtd.pid"))
    daemon_log_file: Path | None = _key(None, kind=Path)
    qemu_pid_dir: Path = _key(kind=Path, factory=lambda: Path("/run/libvirt/qemu"))
    hang_end_probes: int = _key(2, kind=int, check=_within(1, 1000))
    forensics_dir: Path = _key(kind=Path, factory=lambda: _data_dir() / "forensics")
    forensics_after_hang_seconds: float = _key(10.0, kind=float, check=_seconds)
    forensics_min_gap_seconds: float = _key(300.0, kind=float,
                                            check=_within(0, DAY_SECONDS, " seconds (at most a day)"))
    forensics_step_deadline_seconds: float = _key(2.0, kind=float, check=_seconds)
    forensics_keep_files: int = _key(200, kind=int, check=_count)
    forensics_gdb: bool = _key(False, kind=bool)
    spool_dir: Path = _key(kind=Path, factory=lambda: _data_dir() / "spool")
    spool_max_bytes: int = _key(256 * MIB, kind=int, check=_within(1, TIB, " bytes (at most 1 TiB)"))
    metrics_listen: str | None = _key(None, kind=str, check=_listen)
    metadata_tags: dict = _key(kind=dict, check=_metadata_tags, factory=dict)
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class ReceiverConfig:
    """[[alerts.receivers]]: one place notifications go."""

    name: str = _key(kind=str, check=_not_empty)
    type: str = _key(kind=str, check=_receiver_type)
    url: str = _key(kind=str, check=_http_url)
    secret: str | None = _key(None, kind=str, check=_not_empty)
    routing_key: str | None = _key(None, kind=str, check=_not_empty)
    timeout_seconds: float = _key(10.0, kind=float, check=_seconds)
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class LeakConfig:
    """[alerts.leak]: the leak rule on libvirtd's file descriptors and resident memory (alerts.leak_rule); the
    thresholds are alerts.leaks.LeakPolicy's fields."""

    enabled: bool = _key(True, kind=bool)
    interval_seconds: float = _key(60.0, kind=float, check=_seconds)
    fd_share: float = _key(float(LeakPolicy.fd_share), kind=float, check=_fraction)
    fd_horizon_seconds: float = _key(float(LeakPolicy.fd_horizon_seconds), kind=float, check=_window_seconds)
    fd_fit_seconds: float = _key(float(LeakPolicy.fd_fit_seconds), kind=float, check=_seconds)
    fd_min_rise: float = _key(float(LeakPolicy.fd_min_rise), kind=float, check=_within(1, COUNT_MAX))
    fd_min_r2: float = _key(float(LeakPolicy.fd_min_r2), kind=float, check=_fraction)
    rss_min_hours: float = _key(float(LeakPolicy.rss_min_hours), kind=float,
                                check=_within(0.001, 24, " hours (at most a day)"))
    rss_min_growth_bytes_per_hour: int = _key(LeakPolicy.rss_min_growth_bytes_per_hour, kind=int,
                                              check=_within(1, TIB, " bytes (at most 1 TiB)"))
    rss_min_r2: float = _key(float(LeakPolicy.rss_min_r2), kind=float, check=_fraction)
    fd_severity: str = _key("page", kind=str, check=_severity)
    rss_severity: str = _key("ticket", kind=str, check=_severity)
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class AlertsConfig:
    """[alerts]: the alert engine."""

    interval_seconds: float = _key(30.0, kind=float, check=_seconds)
    rules_interval_seconds: float = _key(2.0, kind=float, check=_seconds)
    state_dir: Path = _key(kind=Path, factory=lambda: _data_dir() / "alerts")
    slo_file: Path | None = _key(None, kind=Path)
    external_url: str | None = _key(None, kind=str, check=_http_url)
    repeat_interval_seconds: float = _key(4 * 3600.0, kind=float, check=_window_seconds)
    alertmanager_resend_seconds: float = _key(60.0, kind=float, check=_seconds)
    daemon_down_after_seconds: float = _key(5.0, kind=float, check=_seconds)
    daemon_hung_after_seconds: float = _key(10.0, kind=float, check=_seconds)
    restarts_count: int = _key(3, kind=int, check=_count)
    restarts_window_seconds: float = _key(3600.0, kind=float, check=_window_seconds)
    segfault_window_seconds: float = _key(3600.0, kind=float, check=_window_seconds)
    domain_failures_count: int = _key(5, kind=int, check=_count)
    domain_failures_window_seconds: float = _key(600.0, kind=float, check=_window_seconds)
    agent_silent_after_seconds: float = _key(60.0, kind=float, check=_seconds)
    storm_share: float = _key(0.1, kind=float, check=_share)
    storm_min_hosts: int = _key(10, kind=int, check=_count)
    storm_hold_seconds: float = _key(900.0, kind=float, check=_window_seconds)
    storm_wait_seconds: float = _key(30.0, kind=float, check=_window_seconds)
    shard: str = _key("0/1", kind=str, check=_shard)
    receivers: tuple[ReceiverConfig, ...] = ()
    leak: LeakConfig = field(default_factory=LeakConfig)
    __repr__ = _redacted_repr


@dataclass(frozen=True, repr=False)
class DashboardConfig:
    """[dashboard]: the web app."""

    listen: str = _key("127.0.0.1:8050", kind=str, check=_listen)
    allowed_hosts: tuple[str, ...] | None = _key(None, kind=list, check=_allowed_hosts)
    allow_unauthenticated_public: bool = _key(False, kind=bool)
    basic_auth_username: str | None = _key(None, kind=str, check=_not_empty)
    basic_auth_password: str | None = _key(None, kind=str, check=_not_empty)
    __repr__ = _redacted_repr


@dataclass(frozen=True)
class Config:
    """The whole config file: one dataclass per section."""

    store: StoreConfig = field(default_factory=StoreConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)


SECTIONS: dict[str, type] = {"store": StoreConfig, "agent": AgentConfig, "alerts": AlertsConfig,
                             "dashboard": DashboardConfig}
SECTION_ENV = {
    "store": {"token": "VIRTWATCH_STORE_TOKEN", "username": "VIRTWATCH_STORE_USERNAME",
              "password": "VIRTWATCH_STORE_PASSWORD"},
    "dashboard": {"basic_auth_password": "VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD"},
}
RECEIVER_KEYS_BY_TYPE = {"secret": ("webhook",), "routing_key": ("pagerduty",)}
_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", Path: "a path string",
             dict: "a table", list: "an array of strings"}
_BAD = object()


def receiver_env_var(name: str, key: str) -> str:
    """Name the environment variable that supplies key ("url", "secret", "routing_key") for a receiver."""
    return f"VIRTWATCH_RECEIVER_{re.sub(r'[^A-Z0-9]', '_', name.upper())}_{key.upper()}"


# ---- reading ----


def load_config(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> Config:
    """Read, parse and check one TOML config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError([f"cannot read {path}: {error.strerror or error}"], path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError([f"cannot read {path}: not UTF-8 text at line {line}"], path) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(path, error)], path) from None
    return config_from_dict(table, environ, base_dir=path.absolute().parent, source=path)


def _syntax_problem(path: Path, error: tomllib.TOMLDecodeError) -> str:
    """Turn tomllib's message into a problem naming the file and line."""
    message = str(error)
    where = re.search(r"\s*\(at (line \d+, column \d+|end of document)\)$", message)
    if not where:
        return f"TOML syntax error in {path}: {message}"
    return f"TOML syntax error in {path} at {where[1]}: {message[:where.start()]}"


def config_from_dict(table: Mapping[str, Any], environ: Mapping[str, str] = os.environ,
                     base_dir: Path | None = None, source: str | os.PathLike | None = None) -> Config:
    """Check a parsed TOML document; relative paths are taken from base_dir. Raise ConfigError if bad."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name, value in table.items():
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section{_did_you_mean(name, SECTIONS)}")
        elif not isinstance(value, dict):
            problems.append(f"{name} = {_literal(value)}: expected a table, got {_type_name(value)}")
    for name, cls in SECTIONS.items():
        raw = table.get(name, {})
        raw = raw if isinstance(raw, dict) else {}
        env = {key: (var, environ[var]) for key, var in SECTION_ENV.get(name, {}).items() if environ.get(var)}
        values = _read_table(cls, raw, name, problems, env, base_dir)
        if name == "alerts" and "receivers" in raw:
            values["receivers"] = _read_receivers(raw["receivers"], problems, environ, base_dir)
        if name == "alerts" and "leak" in raw:
            values["leak"] = _read_leak(raw["leak"], problems, base_dir)
        sections[name] = values
    _check_basic_auth(sections["dashboard"], table.get("dashboard"), problems)
    _check_public_listen(sections["dashboard"], problems)
    if problems:
        raise ConfigError(problems, source)
    return Config(**{name: SECTIONS[name](**values) for name, values in sections.items()})


def _did_you_mean(name: str, known: Mapping[str, Any] | list[str]) -> str:
    """Suggest the closest known name, if one is close."""
    close = get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _read_table(cls: type, table: Mapping[str, Any], where: str, problems: list[str],
                env: Mapping[str, tuple[str, str]], base_dir: Path | None,
                receiver_type: str | None = None) -> dict[str, Any]:
    """Check one table against cls's keys; return the good values, append a problem for each bad one."""
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            problems.append(f"{where}.{key}: unknown key{_did_you_mean(key, known)}")
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
        checked = _check_value(spec, value, label, problems, base_dir, receiver_type)
        if checked is not _BAD:
            values[name] = checked
    return values


def _check_value(spec: Field, value: Any, label: str, problems: list[str], base_dir: Path | None,
                 receiver_type: str | None) -> Any:
    """Return value converted to spec's type, or _BAD after appending the problem."""
    try:
        return _converted(spec, value, base_dir)
    except _KeyProblem as problem:
        problems.append(f"{label} = {_literal(_masked(spec.name, value, receiver_type))}: {problem}")
        return _BAD


class _KeyProblem(ValueError):
    """Why a value cannot be a key's, without the key or the value."""


def _converted(spec: Field, value: Any, base_dir: Path | None) -> Any:
    """Return value converted to spec's type; raise _KeyProblem with the reason it cannot be."""
    kind, check = spec.metadata["kind"], spec.metadata["check"]
    toml_kind = (int, float) if kind is float else str if kind is Path else kind
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, toml_kind):
        raise _KeyProblem(f"expected {_EXPECTED[kind]}, got {_type_name(value)}")
    if kind is float:
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise _KeyProblem("must be a finite number")
    if isinstance(value, str) and "\x00" in value:
        raise _KeyProblem("must not contain a NUL character")
    reason = check(value) if check else (_not_empty(value) if kind is Path else None)
    if reason:
        raise _KeyProblem(reason)
    if kind is Path:
        path = Path(value).expanduser()
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    if kind is list:
        return tuple(value)
    return float(value) if kind is float else value


def check_key(section: str, key: str, value: Any) -> str | None:
    """Return why value cannot be `[section] key` (what a command-line flag overriding it is told), or None."""
    spec = {f.name: f for f in fields(SECTIONS[section])}[key]
    try:
        _converted(spec, value, None)
    except _KeyProblem as problem:
        return str(problem)
    return None


def _read_receivers(raw: Any, problems: list[str], environ: Mapping[str, str],
                    base_dir: Path | None) -> tuple[ReceiverConfig, ...]:
    """Check [[alerts.receivers]]: each table, then the names across them."""
    if not isinstance(raw, list):
        problems.append(f"alerts.receivers = {_literal(raw)}: expected an array of tables "
                        f"([[alerts.receivers]]), got {_type_name(raw)}")
        return ()
    receivers: list[ReceiverConfig] = []
    by_name: dict[str, str] = {}
    by_env: dict[str, tuple[str, str]] = {}
    for index, item in enumerate(raw):
        where = f"alerts.receivers[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} = {_literal(item)}: expected a table, got {_type_name(item)}")
            continue
        before = len(problems)
        receiver = _read_receiver(item, where, problems, environ, base_dir)
        name = item.get("name")
        if isinstance(name, str) and name.strip():
            env_stem = receiver_env_var(name, "*")
            if name in by_name:
                problems.append(f"{where}.name = {_literal(name)}: duplicate of {by_name[name]}.name")
            elif env_stem in by_env:
                other_where, other_name = by_env[env_stem]
                problems.append(f"{where}.name = {_literal(name)}: shares the environment variables "
                                f"{env_stem} with {other_where} ({_literal(other_name)})")
            by_name.setdefault(name, where)
            by_env.setdefault(env_stem, (where, name))
        if receiver is not None and len(problems) == before:
            receivers.append(receiver)
    return tuple(receivers)


def _read_leak(raw: Any, problems: list[str], base_dir: Path | None) -> LeakConfig:
    """Check [alerts.leak]: a table of LeakConfig's keys."""
    if not isinstance(raw, dict):
        problems.append(f"alerts.leak = {_literal(raw)}: expected a table ([alerts.leak]), got {_type_name(raw)}")
        return LeakConfig()
    return LeakConfig(**_read_table(LeakConfig, raw, "alerts.leak", problems, {}, base_dir))


def _read_receiver(item: Mapping[str, Any], where: str, problems: list[str], environ: Mapping[str, str],
                   base_dir: Path | None) -> ReceiverConfig | None:
    """Check one receiver table; return it, or None if it has problems."""
    name, rtype = item.get("name"), item.get("type")
    known_type = rtype if rtype in RECEIVER_TYPES else ""
    has_name = isinstance(name, str) and bool(name.strip())
    env = {}
    for key in ("url", "secret", "routing_key"):
        var = receiver_env_var(name, key) if has_name else None
        if var and environ.get(var) and known_type in RECEIVER_KEYS_BY_TYPE.get(key, RECEIVER_TYPES):
            env[key] = (var, environ[var])
    before = len(problems)
    values = _read_table(ReceiverConfig, item, where, problems, env, base_dir, receiver_type=known_type)
    for key in ("name", "type"):
        if key not in item:
            problems.append(f"{where}.{key}: missing required key")
    for key, types in RECEIVER_KEYS_BY_TYPE.items():
        if key in item and known_type and known_type not in types:
            problems.append(f"{where}.{key}: not used by a receiver of type {known_type} "
                            f"(only by {', '.join(types)})")
    if known_type == "pagerduty" and "url" not in item and "url" not in env:
        values["url"] = PAGERDUTY_EVENTS_URL
    for key in ("url", "routing_key") if known_type == "pagerduty" else ("url",):
        if known_type and key not in item and key not in env and key not in values:
            var = receiver_env_var(name, key) if has_name else f"VIRTWATCH_RECEIVER_<NAME>_{key.upper()}"
            problems.append(f"{where}.{key}: missing required key for a receiver of type {known_type} "
                            f"(or set {var})")
    return ReceiverConfig(**values) if len(problems) == before else None


def _check_basic_auth(values: Mapping[str, Any], raw: Any, problems: list[str]) -> None:
    """Require the dashboard's basic-auth username and password together."""
    raw = raw if isinstance(raw, dict) else {}
    have_user = "basic_auth_username" in values or "basic_auth_username" in raw
    have_password = "basic_auth_password" in values or "basic_auth_password" in raw
    if have_user and not have_password:
        problems.append("dashboard.basic_auth_password: missing required key when basic_auth_username is set "
                        "(or set VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD)")
    if have_password and not have_user:
        problems.append("dashboard.basic_auth_username: missing required key when basic_auth_password is set")


def _check_public_listen(values: Mapping[str, Any], problems: list[str]) -> None:
    """Refuse a non-loopback dashboard.listen without basic auth, unless allow_unauthenticated_public says so."""
    if "listen" not in values:
        return  # the default (loopback) or a listen value already reported
    reason = public_listen_problem(values["listen"], DashboardConfig(**values))
    if reason:
        problems.append(f"dashboard.listen = {_literal(values['listen'])}: {reason}")


def load_config_or_defaults(path: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read the config file a command was given, or the defaults (secrets from the environment) without one."""
    return load_config(path, environ) if path else config_from_dict({}, environ)


def print_problems(path: str | os.PathLike | None, error: ConfigError, stream=None) -> int:
    """Print each problem of a config on its own line, prefixed by the file; return 2, the commands' status."""
    import sys

    for problem in error.problems:
        print(f"{path}: {problem}", file=stream or sys.stderr)
    return 2
