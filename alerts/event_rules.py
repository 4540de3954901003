"""Event rules: alerts read from the agent's `event` points (daemon down, hung, restarts, segfaults, guest failures).

Each rule is a small dataclass with its threshold; `evaluate_event_rules(store, rules, now)` reads the events once
through `store.events` and returns one `RuleResult` per rule and host: labels, annotations quoting the evidence,
and whether the condition holds. The durations are in the rules themselves, so results go to
`AlertTracker.observe(result.labels, result.annotations, result.active, for_seconds=0)`.

Hosts are those with any event in the lookback (the longest rule window, at least `lookback_seconds`), those
whose agent wrote in the lookback, plus those passed in `hosts` (say, the ones the tracker has firing), so an
alert whose host went quiet still resolves. A daemon down or hung for longer than the lookback with no event
since drops out of view and reads as inactive.

Besides events, the rules read each host's newest `libvirtd` point (up, hung) and newest `collector` point:
a down or hung daemon whose newest point says it answers again is not down or hung, even with no end event (the
agent restarted meanwhile and never saw it come back); and an agent that stopped writing is an alert of its own
(AgentSilentRule), because a host that sends nothing is the failure other tools show as a gap in a graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from alerts.sli import FRESHNESS_MEMORY_SECONDS
from tsdb.query import TimeLike, to_ns
from tsdb.store import Store

DEFAULT_LOOKBACK_SECONDS = 7 * 86400


def _positive(rule, *names: str) -> None:
    for name in names:
        value = getattr(rule, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{type(rule).__name__}.{name} must be a positive number, got {value!r}")


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s"


def _quote(rows: pd.DataFrame, limit: int = 3) -> str:
    """Return the last `limit` events as 'time kind: message' lines."""
    lines = [f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')} {kind}: {message}" for t, kind, message
             in rows[["time", "kind", "message"]].tail(limit).itertuples(index=False)]
    return "\n".join(lines)


@dataclass(frozen=True)
class HostState:
    """A host's newest libvirtd point (time, up, hung) and newest collector point time, None when not seen."""

    libvirtd_time: pd.Timestamp | None = None
    up: float | None = None
    hung: float | None = None
    collector_time: pd.Timestamp | None = None


NOT_SEEN = HostState()


@dataclass(frozen=True)
class RuleResult:
    """One rule for one host: the alert's labels and annotations, and whether its condition holds now."""

    rule: EventRule
    host: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active: bool


@dataclass(frozen=True)
class EventRule:
    """A rule over one host's events; subclasses set the kinds they read and `check`."""

    alertname: str = ""
    severity: str = "page"
    kinds: tuple[str, ...] = field(default=(), repr=False)

    @property
    def window_seconds_needed(self) -> float:
        """Return how far back this rule needs to read."""
        return getattr(self, "window_seconds", 0)

    def check(self, events: pd.DataFrame, now: pd.Timestamp, state: HostState) -> tuple[bool, str, str]:
        """Return (active, summary, description) from one host's events of `kinds`, oldest first."""
        raise NotImplementedError

    def result(self, host: str, events: pd.DataFrame, now: pd.Timestamp, state: HostState = NOT_SEEN) -> RuleResult:
        """Evaluate the rule for one host."""
        active, summary, description = self.check(events[events["kind"].isin(self.kinds)], now, state)
        return RuleResult(self, host, {"alertname": self.alertname, "severity": self.severity, "host": host},
                          {"summary": summary, "description": description}, active)


@dataclass(frozen=True)
class _StateRule(EventRule):
    """Active while the newest of the start/end kinds is a start older than `after_seconds`."""

    after_seconds: float = 30.0
    start_kind: str = ""
    what: str = ""
    recovered_field: str = field(default="", repr=False)  # the libvirtd field that says it is over ...
    recovered_value: float = field(default=0.0, repr=False)  # ... when it has this value

    def __post_init__(self) -> None:
        _positive(self, "after_seconds")

    def check(self, events, now, state):
        if events.empty or events["kind"].iloc[-1] != self.start_kind:
            return False, f"libvirtd is not {self.what}", "the last event ended it, or there was none"
        started = events[events["kind"] == self.start_kind]
        # since the first start of this run of starts (no end kind between them)
        ends = events[events["kind"] != self.start_kind]
        if not ends.empty:
            started = started[started["time"] > ends["time"].iloc[-1]]
        since = started["time"].iloc[0]
        newest = getattr(state, self.recovered_field)
        if state.libvirtd_time is not None and state.libvirtd_time > since and newest == self.recovered_value:
            answered = state.libvirtd_time.strftime('%Y-%m-%dT%H:%M:%SZ')
            return False, f"libvirtd is not {self.what}", f"the agent saw it answer at {answered}"
        lasted = (now - since).total_seconds()
        summary = f"libvirtd {self.what} for {_ago(lasted)} (since {since.strftime('%Y-%m-%dT%H:%M:%SZ')})"
        return lasted > self.after_seconds, summary, _quote(started)


@dataclass(frozen=True)
class DaemonDownRule(_StateRule):
    """libvirtd down for more than `after_seconds`: a daemon_down with no daemon_up (or restart) after it."""

    alertname: str = "LibvirtdDown"
    after_seconds: float = 5.0
    kinds: tuple[str, ...] = field(default=("daemon_down", "daemon_up", "restart"), repr=False)
    start_kind: str = field(default="daemon_down", repr=False)
    what: str = field(default="down", repr=False)
    recovered_field: str = field(default="up", repr=False)
    recovered_value: float = field(default=1.0, repr=False)


@dataclass(frozen=True)
class DaemonHungRule(_StateRule):
    """libvirtd hung for more than `after_seconds`: a hang_start with no hang_end (nor up, down, restart) after."""

    alertname: str = "LibvirtdHung"
    after_seconds: float = 10.0
    kinds: tuple[str, ...] = field(default=("hang_start", "hang_end", "daemon_down", "daemon_up", "restart"),
                                   repr=False)
    start_kind: str = field(default="hang_start", repr=False)
    what: str = field(default="hung", repr=False)
    recovered_field: str = field(default="hung", repr=False)
    recovered_value: float = field(default=0.0, repr=False)


@dataclass(frozen=True)
class _CountRule(EventRule):
    """Active while at least `count` events of `kinds` fell in the last `window_seconds`."""

    count: int = 1
    window_seconds: float = 3600.0
    what: str = ""

    def __post_init__(self) -> None:
        _positive(self, "count", "window_seconds")

    def check(self, events, now, state):
        recent = events[events["time"] > now - pd.Timedelta(seconds=self.window_seconds)]
        summary = f"{len(recent)} {self.what} in the last {_ago(self.window_seconds)} (alert at {self.count})"
        if recent.empty:
            return False, summary, "none"
        first = recent["time"].iloc[0].strftime('%Y-%m-%dT%H:%M:%SZ')
        return len(recent) >= self.count, summary, f"first at {first}; latest:\n{_quote(recent)}"


@dataclass(frozen=True)
class RestartRule(_CountRule):
    """libvirtd restarted at least `count` times in `window_seconds` (a ticket: each restart is already over)."""

    alertname: str = "LibvirtdRestarting"
    severity: str = "ticket"
    kinds: tuple[str, ...] = field(default=("restart",), repr=False)
    count: int = 3
    window_seconds: float = 3600.0
    what: str = field(default="libvirtd restarts", repr=False)


@dataclass(frozen=True)
class SegfaultRule(_CountRule):
    """libvirtd segfaulted: active for `window_seconds` after each segfault."""

    alertname: str = "LibvirtdSegfault"
    kinds: tuple[str, ...] = field(default=("segfault",), repr=False)
    count: int = 1
    window_seconds: float = 3600.0
    what: str = field(default="libvirtd segfaults", repr=False)


@dataclass(frozen=True)
class DomainFailureStormRule(_CountRule):
    """At least `count` guests failed or crashed on one host in `window_seconds`."""

    alertname: str = "DomainFailureStorm"
    kinds: tuple[str, ...] = field(default=("domain_failed", "domain_crashed"), repr=False)
    count: int = 5
    window_seconds: float = 600.0
    what: str = field(default="guest failures and crashes", repr=False)


@dataclass(frozen=True)
class AgentSilentRule(EventRule):
    """A host's agent wrote nothing for more than `after_seconds`, but wrote within `forget_seconds`.

    After `forget_seconds` of silence the host is taken as decommissioned and the alert resolves, as the
    collection freshness SLI stops expecting it (alerts.sli.FRESHNESS_MEMORY_SECONDS).
    """

    alertname: str = "AgentSilent"
    after_seconds: float = 60.0
    forget_seconds: float = FRESHNESS_MEMORY_SECONDS

    def __post_init__(self) -> None:
        _positive(self, "after_seconds", "forget_seconds")

    def check(self, events, now, state):
        if state.collector_time is None:
            return False, "the agent wrote nothing in the lookback", "the host is not watched (or decommissioned)"
        quiet = (now - state.collector_time).total_seconds()
        if quiet > self.forget_seconds:
            return False, f"the agent has been silent for {_ago(quiet)}", "taken as decommissioned"
        last = state.collector_time.strftime('%Y-%m-%dT%H:%M:%SZ')
        return (quiet > self.after_seconds, f"the virtwatch agent has written nothing for {_ago(quiet)}",
                f"last collector point at {last}: the agent, its host or its network is down, so nothing "
                "about this host's libvirtd is known")


def default_rules() -> list[EventRule]:
    """Return every rule with its default threshold."""
    return [DaemonDownRule(), DaemonHungRule(), RestartRule(), SegfaultRule(), DomainFailureStormRule(),
            AgentSilentRule()]


def evaluate_event_rules(store: Store, rules: Sequence[EventRule], now: TimeLike, *, hosts: Iterable[str] = (),
                         lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS) -> list[RuleResult]:
    """Evaluate every rule for every host with events in the lookback (and every host in `hosts`) at `now`."""
    now_ns = to_ns(now, "now")
    lookback = max([lookback_seconds, *(rule.window_seconds_needed for rule in rules)])
    since = now_ns - int(lookback * 10**9)
    kinds = sorted({kind for rule in rules for kind in rule.kinds})
    if not rules:
        return []
    events = (store.events(since, now_ns + 1, where={"kind": kinds}) if kinds
              else pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), "host": [], "kind": []}))
    states = _host_states(store, since, now_ns)
    moment = pd.Timestamp(now_ns, tz="UTC")
    results = []
    for host in sorted(set(events["host"]) | set(hosts) | set(states)):
        mine = events[events["host"] == host]
        results += [rule.result(host, mine, moment, states.get(host, NOT_SEEN)) for rule in rules]
    return results


def _host_states(store: Store, since_ns: int, now_ns: int) -> dict[str, HostState]:
    """Return each host's newest libvirtd and collector points in [since, now]."""
    daemon = store.latest("libvirtd", ["up", "hung"], since_ns, now_ns, group_by=["host"])
    agent = store.latest("collector", ["scrape_duration_ms"], since_ns, now_ns, group_by=["host"])
    states: dict[str, HostState] = {}
    for row in daemon.itertuples(index=False):
        states[row.host] = HostState(row.time, _number(getattr(row, "up", None)), _number(getattr(row, "hung", None)))
    for host, time in zip(agent["host"], agent["time"]):
        previous = states.get(host, NOT_SEEN)
        states[host] = HostState(previous.libvirtd_time, previous.up, previous.hung, time)
    return states


def _number(value) -> float | None:
    """Return a field value as a float, None when missing."""
    return None if value is None or pd.isna(value) else float(value)
