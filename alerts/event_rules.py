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

Every hang, segfault and restart says why. The agent writes a `diagnosis` point (a `cause` sentence) with each
hang_start, each interval of a hang, each segfault and restart, and a `forensics` point (the evidence bundle)
once per incident. The rules of those incidents put the newest cause of the incident at the start of the
`description` annotation, and name the newest bundle in a `forensics` annotation: the dashboard's link
`{external_url}/forensics?host=...&time=<ns>` when `external_url` is set, else `on <host>: <file>`. Both
measurements are read once per round for all hosts (the newest point per host and trigger), never per host.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import pandas as pd

from alerts.sli import FRESHNESS_MEMORY_SECONDS
from tsdb.query import TimeLike, to_ns
from tsdb.schema import GUEST_FAILURE_KINDS, ended_by
from tsdb.store import Store
from tsdb.times import format_duration

DEFAULT_LOOKBACK_SECONDS = 7 * 86400
DIAGNOSIS, FORENSICS = "diagnosis", "forensics"  # the measurements that explain an incident (tsdb.schema)
#: a diagnosis is stamped when the agent wrote it, which may be a moment before the event it comes with
CAUSE_SLACK_SECONDS = 5.0
#: a segfault or restart this long before libvirtd was seen down may be why it went down (the kernel log is
#: read on its own schedule, and a daemon that restarts and dies again is a crash loop)
DOWN_CAUSE_BEFORE_SECONDS = 60.0


def _positive(rule, *names: str) -> None:
    for name in names:
        value = getattr(rule, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{type(rule).__name__}.{name} must be a positive number, got {value!r}")


def _quote(rows: pd.DataFrame, limit: int = 3) -> str:
    """Return the last `limit` events as 'time kind: message' lines."""
    lines = [f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')} {kind}: {message}" for t, kind, message
             in rows[["time", "kind", "message"]].tail(limit).itertuples(index=False)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Finding:
    """A host's newest `diagnosis` or `forensics` point of one trigger: its time, cause and (forensics) file."""

    trigger: str
    time: pd.Timestamp
    cause: str
    file: str = ""


@dataclass(frozen=True)
class HostState:
    """A host's newest libvirtd point (time, up, hung), newest collector point time (None when not seen), and
    its newest diagnosis and forensics bundle of each trigger."""

    libvirtd_time: pd.Timestamp | None = None
    up: float | None = None
    hung: float | None = None
    collector_time: pd.Timestamp | None = None
    diagnoses: tuple[Finding, ...] = ()
    bundles: tuple[Finding, ...] = ()


NOT_SEEN = HostState()


def newest_finding(findings: Iterable[Finding], triggers: Iterable[str], after: pd.Timestamp) -> Finding | None:
    """Return the newest finding of `triggers` later than `after`, None when there is none."""
    wanted = set(triggers)
    found = [f for f in findings if f.trigger in wanted and f.time > after]
    return max(found, key=lambda f: f.time) if found else None


def forensics_link(host: str, bundle: Finding, external_url: str | None) -> str:
    """Return where on-call opens a bundle: the dashboard's URL, or the file on the host without one."""
    if external_url:
        query = urlencode({"host": host, "time": str(int(bundle.time.value))})
        return f"{external_url.rstrip('/')}/forensics?{query}"
    return f"on {host}: {bundle.file}" if bundle.file else ""


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
    #: the `diagnosis` and `forensics` triggers that explain this rule's incidents (none: nothing explains them)
    explained_by: tuple[str, ...] = field(default=(), repr=False)

    @property
    def window_seconds_needed(self) -> float:
        """Return how far back this rule needs to read."""
        return getattr(self, "window_seconds", 0)

    def check(self, events: pd.DataFrame, now: pd.Timestamp, state: HostState) -> tuple[bool, str, str]:
        """Return (active, summary, description) from one host's events of `kinds`, oldest first."""
        raise NotImplementedError

    def explained_after(self, events: pd.DataFrame, now: pd.Timestamp) -> pd.Timestamp | None:
        """Return the time after which a diagnosis or bundle belongs to the current incident, None without one."""
        return None

    def result(self, host: str, events: pd.DataFrame, now: pd.Timestamp, state: HostState = NOT_SEEN,
               external_url: str | None = None) -> RuleResult:
        """Evaluate the rule for one host; a link to a forensics bundle goes below `external_url` when set."""
        mine = events if events.empty else events[events["kind"].isin(self.kinds)]
        active, summary, description = self.check(mine, now, state)
        annotations = {"summary": summary, "description": description}
        after = self.explained_after(mine, now) if self.explained_by else None
        if after is not None:
            diagnosis = newest_finding(state.diagnoses, self.explained_by, after)
            if diagnosis is not None and diagnosis.cause:
                annotations["description"] = f"{diagnosis.cause}\n\n{description}"
            bundle = newest_finding(state.bundles, self.explained_by, after)
            link = "" if bundle is None else forensics_link(host, bundle, external_url)
            if link:
                annotations["forensics"] = link
        return RuleResult(self, host, {"alertname": self.alertname, "severity": self.severity, "host": host},
                          annotations, active)


@dataclass(frozen=True)
class StateRule(EventRule):
    """Active while the newest of the start/end kinds is a start older than `after_seconds`."""

    after_seconds: float = 30.0
    start_kind: str = ""
    what: str = ""
    recovered_field: str = field(default="", repr=False)  # the libvirtd field that says it is over ...
    recovered_value: float = field(default=0.0, repr=False)  # ... when it has this value

    #: how long before the first start a diagnosis or bundle may be stamped and still explain the incident
    explained_before_seconds: float = field(default=CAUSE_SLACK_SECONDS, repr=False)

    def __post_init__(self) -> None:
        _positive(self, "after_seconds")

    def _run(self, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp | None] | None:
        """Return the current run of starts (no end kind between them) and the end before it, None when the
        newest event is not a start."""
        if events.empty or events["kind"].iloc[-1] != self.start_kind:
            return None
        started = events[events["kind"] == self.start_kind]
        ends = events[events["kind"] != self.start_kind]
        ended = None if ends.empty else ends["time"].iloc[-1]
        if ended is not None:
            started = started[started["time"] > ended]
        return started, ended

    def _over(self, events: pd.DataFrame) -> tuple[str, str]:
        """Return (summary, description) of an inactive result whose newest event ended the incident: what it was
        and when, then the event quoted (three cell reads: this runs for every quiet host every round)."""
        if events.empty:
            return f"libvirtd is not {self.what}", "no event of it in the lookback"
        kind, at, message = (events.iat[-1, events.columns.get_loc(name)] for name in ("kind", "time", "message"))
        when = at.strftime('%Y-%m-%dT%H:%M:%SZ')
        return f"libvirtd is no longer {self.what}: {kind} at {when}", f"{when} {kind}: {message}"

    def explained_after(self, events, now):
        run = self._run(events)
        if run is None:
            return None
        started, ended = run
        after = started["time"].iloc[0] - pd.Timedelta(seconds=self.explained_before_seconds)
        return after if ended is None else max(after, ended)  # never the previous incident's

    def check(self, events, now, state):
        run = self._run(events)
        if run is None:
            return (False, *self._over(events))
        started, _ended = run
        since = started["time"].iloc[0]
        newest = getattr(state, self.recovered_field)
        if state.libvirtd_time is not None and state.libvirtd_time > since and newest == self.recovered_value:
            answered = state.libvirtd_time.strftime('%Y-%m-%dT%H:%M:%SZ')
            return (False, f"libvirtd is no longer {self.what}: the agent saw it answer at {answered}",
                    f"the agent saw it answer at {answered} ({self.recovered_field} = {newest:g} in its newest "
                    f"libvirtd point); {self.what} since {since.strftime('%Y-%m-%dT%H:%M:%SZ')}, no end event seen")
        lasted = (now - since).total_seconds()
        summary = f"libvirtd {self.what} for {format_duration(lasted)} (since {since.strftime('%Y-%m-%dT%H:%M:%SZ')})"
        return lasted > self.after_seconds, summary, _quote(started)


@dataclass(frozen=True)
class DaemonDownRule(StateRule):
    """libvirtd down for more than `after_seconds`: a daemon_down with no daemon_up (or restart) after it."""

    alertname: str = "LibvirtdDown"
    after_seconds: float = 5.0
    kinds: tuple[str, ...] = field(default=("daemon_down", *ended_by("daemon_down")), repr=False)
    start_kind: str = field(default="daemon_down", repr=False)
    what: str = field(default="down", repr=False)
    recovered_field: str = field(default="up", repr=False)
    recovered_value: float = field(default=1.0, repr=False)
    explained_by: tuple[str, ...] = field(default=("segfault", "restart"), repr=False)
    explained_before_seconds: float = field(default=DOWN_CAUSE_BEFORE_SECONDS, repr=False)


@dataclass(frozen=True)
class DaemonHungRule(StateRule):
    """libvirtd hung for more than `after_seconds`: a hang_start with no hang_end (nor up, down, restart) after."""

    alertname: str = "LibvirtdHung"
    after_seconds: float = 10.0
    kinds: tuple[str, ...] = field(default=("hang_start", *ended_by("hang_start")), repr=False)
    start_kind: str = field(default="hang_start", repr=False)
    what: str = field(default="hung", repr=False)
    recovered_field: str = field(default="hung", repr=False)
    recovered_value: float = field(default=0.0, repr=False)
    explained_by: tuple[str, ...] = field(default=("hang_start", "hang"), repr=False)


@dataclass(frozen=True)
class CountRule(EventRule):
    """Active while at least `count` events of `kinds` fell in the last `window_seconds`."""

    count: int = 1
    window_seconds: float = 3600.0
    what: str = ""

    def __post_init__(self) -> None:
        _positive(self, "count", "window_seconds")

    def explained_after(self, events, now):
        if events.empty:
            return None
        after = now - pd.Timedelta(seconds=self.window_seconds)
        return after if (events["time"] > after).any() else None

    def check(self, events, now, state):
        recent = events if events.empty else events[events["time"] > now - pd.Timedelta(seconds=self.window_seconds)]
        summary = f"{len(recent)} {self.what} in the last {format_duration(self.window_seconds)} (alert at {self.count})"
        if recent.empty:
            return False, summary, "none"
        first = recent["time"].iloc[0].strftime('%Y-%m-%dT%H:%M:%SZ')
        return len(recent) >= self.count, summary, f"first at {first}; latest:\n{_quote(recent)}"


@dataclass(frozen=True)
class RestartRule(CountRule):
    """libvirtd restarted at least `count` times in `window_seconds` (a ticket: each restart is already over)."""

    alertname: str = "LibvirtdRestarting"
    severity: str = "ticket"
    kinds: tuple[str, ...] = field(default=("restart",), repr=False)
    explained_by: tuple[str, ...] = field(default=("restart",), repr=False)
    count: int = 3
    window_seconds: float = 3600.0
    what: str = field(default="libvirtd restarts", repr=False)


@dataclass(frozen=True)
class SegfaultRule(CountRule):
    """libvirtd segfaulted: active for `window_seconds` after each segfault."""

    alertname: str = "LibvirtdSegfault"
    kinds: tuple[str, ...] = field(default=("segfault",), repr=False)
    explained_by: tuple[str, ...] = field(default=("segfault",), repr=False)
    count: int = 1
    window_seconds: float = 3600.0
    what: str = field(default="libvirtd segfaults", repr=False)


@dataclass(frozen=True)
class DomainFailureStormRule(CountRule):
    """At least `count` guests failed or crashed on one host in `window_seconds`."""

    alertname: str = "DomainFailureStorm"
    kinds: tuple[str, ...] = field(default=GUEST_FAILURE_KINDS, repr=False)
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
            return False, f"the agent has been silent for {format_duration(quiet)}", "taken as decommissioned"
        last = state.collector_time.strftime('%Y-%m-%dT%H:%M:%SZ')
        return (quiet > self.after_seconds, f"the virtwatch agent has written nothing for {format_duration(quiet)}",
                f"last collector point at {last}: the agent, its host or its network is down, so nothing "
                "about this host's libvirtd is known")


def default_rules() -> list[EventRule]:
    """Return every rule with its default threshold."""
    return [DaemonDownRule(), DaemonHungRule(), RestartRule(), SegfaultRule(), DomainFailureStormRule(),
            AgentSilentRule()]


def evaluate_event_rules(store: Store, rules: Sequence[EventRule], now: TimeLike, *, hosts: Iterable[str] = (),
                         lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS,
                         external_url: str | None = None) -> list[RuleResult]:
    """Evaluate every rule for every host with events in the lookback (and every host in `hosts`) at `now`;
    links to forensics bundles go below `external_url` (the dashboard) when it is set."""
    now_ns = to_ns(now, "now")
    lookback = max([lookback_seconds, *(rule.window_seconds_needed for rule in rules)])
    since = now_ns - int(lookback * 10**9)
    kinds = sorted({kind for rule in rules for kind in rule.kinds})
    if not rules:
        return []
    events = (store.events(since, now_ns + 1, where={"kind": kinds}) if kinds
              else pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), "host": [], "kind": []}))
    states = _host_states(store, since, now_ns)
    watched = set(events["host"]) | set(hosts) | set(states)
    triggers = sorted({trigger for rule in rules for trigger in rule.explained_by})
    if triggers:
        states = _with_findings(store, states, triggers, since, now_ns)
    moment = pd.Timestamp(now_ns, tz="UTC")
    results = []
    for host in sorted(watched):
        mine = events[events["host"] == host]
        results += [rule.result(host, mine, moment, states.get(host, NOT_SEEN), external_url) for rule in rules]
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


def _with_findings(store: Store, states: dict[str, HostState], triggers: Sequence[str], since_ns: int,
                   now_ns: int) -> dict[str, HostState]:
    """Return the states with each host's newest diagnosis and forensics bundle of each trigger in [since, now]:
    one read of each measurement for every host, the bundle itself never read."""
    where = {"trigger": list(triggers)}
    diagnoses = store.latest(DIAGNOSIS, ["cause"], since_ns, now_ns, where=where, group_by=["host", "trigger"])
    bundles = store.latest(FORENSICS, ["cause", "file"], since_ns, now_ns, where=where,
                           group_by=["host", "trigger"])
    found: dict[str, tuple[list[Finding], list[Finding]]] = {}
    for row in diagnoses.itertuples(index=False):
        found.setdefault(row.host, ([], []))[0].append(Finding(row.trigger, row.time, _text(row.cause)))
    for row in bundles.itertuples(index=False):
        found.setdefault(row.host, ([], []))[1].append(Finding(row.trigger, row.time, _text(row.cause),
                                                               _text(row.file)))
    merged = dict(states)
    for host, (mine, theirs) in found.items():
        merged[host] = replace(states.get(host, NOT_SEEN), diagnoses=tuple(mine), bundles=tuple(theirs))
    return merged


def _text(value) -> str:
    """Return a string field's value, "" when missing."""
    return value if isinstance(value, str) else ""


def _number(value) -> float | None:
    """Return a field value as a float, None when missing."""
    return None if value is None or pd.isna(value) else float(value)
