"""SLO specs: a TOML file of `[[slo]]` tables read into frozen SLO models, every problem reported at once.

    [[slo]]
    name = "libvirtd-latency"
    description = "Stats probes answer within a second."
    objective = 99.0            # percent, 0 < objective < 100
    period = "30d"              # "30d" (the default) or "28d": the periods alerts.windows covers
    sli = "libvirtd_latency"    # a built-in SLI, or "custom"
    threshold_ms = 1000         # required by libvirtd_latency only

The built-in SLIs (their good and total events; alerts.sli computes them):

- `libvirtd_availability`: good = libvirtd points with probe_ok = 1; total = libvirtd points with probe_ok.
- `libvirtd_latency`: good = those probes that succeeded with probe_latency_ms < `threshold_ms` (required);
  total = libvirtd points with probe_ok. A failed probe is never good, however fast it failed.
- `domain_stability`: bad = the guests' failure events (`domain_failed`, `domain_crashed`:
  tsdb.schema.GUEST_FAILURE_KINDS; a killed QEMU leaves its domain shut off, not crashed, so only the event
  tells) + domain points with a state_code and stats_partial = 1 (a wedged guest), except a guest paused
  starting up (reason 11: libvirt holds its job while QEMU starts); total = domain points with a state_code +
  those failure events; good = total - bad.
- `collection_freshness`: good = intervals of `interval_seconds` (default 10; must divide 60 so intervals nest
  in the per-minute rollups) holding a collector point; total = the intervals in which each host was expected:
  those within a day after any collector point of that host (a new host counts from its first point; a host
  silent for more than a day is taken as decommissioned and no longer counts).
- `custom`: `good` and `total` are each a table {measurement, field, aggregate = "count" | "sum" (default
  "count"), where = {tag = "value", ...}} read through the store's query interface, grouped by host.

Errors: `SLOError` (a `tsdb.config_keys.ConfigError`): `.problems` lists each as `slo[INDEX] "NAME".key = value:
reason`, and the message starts with the file's path.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any

from alerts.windows import PERIODS
from tsdb.config_keys import ConfigError
from tsdb.times import parse_duration

BUILTIN_SLIS = ("libvirtd_availability", "libvirtd_latency", "domain_stability", "collection_freshness")
SLIS = (*BUILTIN_SLIS, "custom")
COMMON_KEYS = ("name", "description", "objective", "period", "sli")
#: keys each SLI adds to COMMON_KEYS; the first tuple is required, the second optional
SLI_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "libvirtd_availability": ((), ()),
    "libvirtd_latency": (("threshold_ms",), ()),
    "domain_stability": ((), ()),
    "collection_freshness": ((), ("interval_seconds",)),
    "custom": (("good", "total"), ()),
}
SOURCE_KEYS = ("measurement", "field", "aggregate", "where")
SOURCE_AGGREGATES = ("count", "sum")
DEFAULT_INTERVAL_SECONDS = 10


class SLOError(ConfigError):
    """An SLO file that cannot be used; `.problems` holds every reason, one string each."""


@dataclass(frozen=True)
class Source:
    """Where a custom SLI counts events: `aggregate` of `field` in `measurement`, filtered by tags."""

    measurement: str
    field: str
    aggregate: str = "count"
    where: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SLO:
    """One service level objective: an SLI, the percent of good events promised, over a period."""

    name: str
    objective: float
    sli: str
    period: str = "30d"
    description: str = ""
    threshold_ms: float | None = None
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    good: Source | None = field(default=None)
    total: Source | None = field(default=None)

    @property
    def period_seconds(self) -> int:
        """The period's length in seconds."""
        return parse_duration(self.period)

    @property
    def error_budget(self) -> Fraction:
        """The share of events allowed to be bad, exactly: 1 - objective/100 (99.9 gives 1/1000)."""
        return error_budget(self.objective)


@functools.lru_cache(maxsize=64)
def error_budget(objective: float) -> Fraction:
    """Return the share of events an objective in percent allows to be bad, exactly: 1 - objective/100 (99.9 gives
    1/1000, never 0.0010000000000000009)."""
    return 1 - Fraction(str(objective)) / 100


def load_slos(path: str | PathLike) -> list[SLO]:
    """Read an SLO file; raise SLOError naming the file and every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SLOError([f"cannot read the file: {error}"], path) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SLOError([f"not valid TOML: {error}"], path) from None
    return parse_slos(table, path)


def parse_slos(table: dict[str, Any], path: str | PathLike | None = None) -> list[SLO]:
    """Build SLOs from a parsed TOML table; raise SLOError listing every problem."""
    problems: list[str] = []
    for key in table:
        if key != "slo":
            problems.append(f"{key}: unknown key (an SLO file holds only [[slo]] tables)")
    raw = table.get("slo", [])
    if not isinstance(raw, list):
        problems.append(f"slo = {_shown(raw)}: expected an array of tables ([[slo]]), got {_type_name(raw)}")
        raw = []
    slos: list[SLO] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"slo[{index}] = {_shown(item)}: expected a table, got {_type_name(item)}")
            continue
        name = item.get("name")
        where = f"slo[{index}]" + (f" {json.dumps(name, ensure_ascii=False)}" if isinstance(name, str) else "")
        before = len(problems)
        slo = _read_slo(item, where, problems)
        if isinstance(name, str) and name in seen:
            problems.append(f"{where}.name = {_shown(name)}: duplicate of {seen[name]}")
        elif isinstance(name, str):
            seen[name] = f"slo[{index}]"
        if slo is not None and len(problems) == before:
            slos.append(slo)
    if problems:
        raise SLOError(problems, path)
    return slos


def _read_slo(item: dict[str, Any], where: str, problems: list[str]) -> SLO | None:
    """Check one [[slo]] table; append its problems; return the SLO when it has none."""
    before = len(problems)
    sli = item.get("sli")
    required, optional = SLI_KEYS.get(sli, ((), ())) if isinstance(sli, str) else ((), ())
    for key in ("name", "objective", "sli", *required):
        if key not in item:
            problems.append(f"{where}.{key}: missing required key")
    allowed = {*COMMON_KEYS, *required, *optional}
    for key in item:
        if key in allowed:
            continue
        users = [s for s, (req, opt) in SLI_KEYS.items() if key in req or key in opt]
        if users and sli in SLI_KEYS:
            problems.append(f"{where}.{key}: not used by sli {sli} (only by {', '.join(users)})")
        elif not users:
            problems.append(f"{where}.{key}: unknown key")
    values: dict[str, Any] = {}
    checks = {
        "name": (str, lambda v: None if v.strip() else "must not be empty"),
        "description": (str, None),
        "objective": (float, lambda v: None if 0 < v < 100 else "must be a percent between 0 and 100, "
                      "both excluded (e.g. 99.9)"),
        "period": (str, lambda v: None if v in PERIODS else f"must be one of {', '.join(PERIODS)}"),
        "sli": (str, lambda v: None if v in SLIS else f"must be one of {', '.join(SLIS)}"),
        "threshold_ms": (float, lambda v: None if v > 0 else "must be greater than 0"),
        "interval_seconds": (int, lambda v: None if v > 0 and 60 % v == 0 else
                             "must be a whole number of seconds that divides 60 (1, 2, 5, 10, 15, 30, 60...)"),
    }
    for key, (kind, check) in checks.items():
        if key in item and key in allowed:
            values[key] = _checked(item[key], kind, check, f"{where}.{key}", problems)
    for key in ("good", "total"):
        if key in item and key in allowed:
            values[key] = _read_source(item[key], f"{where}.{key}", problems)
    if len(problems) > before:
        return None
    return SLO(**values)


def _read_source(raw: Any, where: str, problems: list[str]) -> Source | None:
    """Check a custom SLI's good or total table."""
    if not isinstance(raw, dict):
        problems.append(f"{where} = {_shown(raw)}: expected a table {{measurement, field, aggregate, where}}, "
                        f"got {_type_name(raw)}")
        return None
    before = len(problems)
    for key in raw:
        if key not in SOURCE_KEYS:
            problems.append(f"{where}.{key}: unknown key (expected {', '.join(SOURCE_KEYS)})")
    for key in ("measurement", "field"):
        if key not in raw:
            problems.append(f"{where}.{key}: missing required key")
    not_empty = lambda v: None if v else "must not be empty"  # noqa: E731
    measurement = _checked(raw.get("measurement", "-"), str, not_empty, f"{where}.measurement", problems)
    field_name = _checked(raw.get("field", "-"), str, not_empty, f"{where}.field", problems)
    aggregate = _checked(raw.get("aggregate", "count"), str,
                         lambda v: None if v in SOURCE_AGGREGATES else f"must be one of {', '.join(SOURCE_AGGREGATES)}",
                         f"{where}.aggregate", problems)
    tags = raw.get("where", {})
    if not isinstance(tags, dict):
        problems.append(f"{where}.where = {_shown(tags)}: expected a table of tag = \"value\", got {_type_name(tags)}")
        tags = {}
    for tag, value in tags.items():
        if not isinstance(value, str):
            problems.append(f"{where}.where.{tag} = {_shown(value)}: expected a string, got {_type_name(value)}")
    if len(problems) > before:
        return None
    return Source(measurement, field_name, aggregate, tuple(sorted(tags.items())))


def _checked(value: Any, kind: type, check, label: str, problems: list[str]) -> Any:
    """Return value as `kind` when it has that type and passes `check`; else append the problem."""
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        expected = {str: "a string", float: "a number", int: "an integer"}[kind]
        problems.append(f"{label} = {_shown(value)}: expected {expected}, got {_type_name(value)}")
        return None
    if kind is float and not math.isfinite(value):
        problems.append(f"{label} = {_shown(value)}: must be a finite number")
        return None
    reason = check(value) if check else None
    if reason:
        problems.append(f"{label} = {_shown(value)}: {reason}")
        return None
    return value


def _shown(value: Any) -> str:
    """Render a value the way TOML would spell it, never expanding tables or arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list):
        return "[...]"
    return repr(value)


def _type_name(value: Any) -> str:
    """Name a TOML value's type for a message."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (dict, "a table"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__
