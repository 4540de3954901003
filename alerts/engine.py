"""The alert engine: rounds that roll up SLIs, evaluate SLOs and event rules, track alerts and notify on-call.

`Engine.run` keeps its cadences on threads of their own, so none waits on another: the SLO rounds, the rule
rounds, the leak rounds (with a `leak_rule`) and the delivery of notifications. Each round (`Engine.run_round`):

1. SLO rounds, every `slo_interval_seconds`: write each SLO's minute and hour rollups (alerts.rollups: only
   the minutes that settled since the last round), evaluate every host and the fleet through them
   (alerts.burn.evaluate_hosts: one fleet-wide query per window piece, windows ending at the settled edge),
   and make one observation per SLO, scope and tier: the page tier is active while any page window pair burns
   past its factor, the ticket tier likewise; many hosts starting to burn in one round are one fleet page
   (alerts.storm);
2. rule rounds, every `rules_interval_seconds`: evaluate the event rules (alerts.event_rules), whose hang,
   segfault and restart alerts carry the agent's diagnosis and a link to its forensics bundle below
   `external_url`, from their memory of each host (alerts.rule_memory): a round reads what was written since
   the last one;
3. leak rounds, every `leak_interval_seconds`: the leak rule (alerts.leak_rule: LibvirtdFdLeak, LibvirtdMemoryLeak
   per host, from a few fleet-wide reads), its pages of many hosts at once one fleet page (alerts.storm);
4. any round then hands its observations to the AlertTracker (alerts.state, under a lock: the only step the
   cadences share) with the active silences (alerts.silences) as mutes; the transitions it returns are
   grouped by (host, slo), like Alertmanager's `group_by`, into one Notification per group and receiver, and
   put in the outbox before the new state is saved, and an `alert` point is written for each alert that
   started or stopped firing; SLO rounds also write their evaluations (`slo_budget`, `slo_burn`:
   alerts.records) for the dashboard;
5. the delivery thread drains the outbox (alerts.notify), each receiver on a thread of its own.

With `shard` (alerts.shard) an engine evaluates and notifies only for its share of the hosts.

If the store cannot be read, the round fails; after `BLIND_AFTER_SECONDS` of failed rounds the engine pages
on its own (alertname AlertEngineBlind), since nothing else can tell on-call that nobody is watching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from alerts.burn import Evaluation, evaluate_slos
from alerts.event_rules import EventRule
from alerts.leak_rule import LeakMemory, LeakRule, leak_gate
from alerts.notify import AlertmanagerNotifier, Backoff, Notification, Notifier, Outbox, drain
from alerts.notify.model import FIRING, RESOLVED, Alert, fingerprint
from alerts.paths import alert_state_path, outbox_path, silences_path
from alerts.records import evaluation_points
from alerts.rollups import Coverage, coverage, roll_up, roll_up_each
from alerts.rule_memory import RoundReads, RuleMemory
from alerts.silences import SilenceStore
from alerts.sli_memory import SLIMemory
from alerts.shard import ALL, Shard
from alerts.slo import SLO
from alerts.state import ENDED, FIRED, REPEAT, AlertState, AlertTracker, Transition, sent_firing
from alerts.storm import StormGate, silent_agents_gate
from tsdb.point import Point
from tsdb.store import Store
from tsdb.times import duration_label, utc_now

log = logging.getLogger(__name__)

SLO_ALERTNAME = "ErrorBudgetBurn"
BLIND_ALERTNAME = "AlertEngineBlind"
BLIND_AFTER_SECONDS = 60.0
RETRY_SECONDS = 5.0  # how often notifications kept in the outbox after failing are tried again
GROUP_BY = ("host", "slo")  # Alertmanager's group_by: one notification per host and SLO
TIERS = ("page", "ticket")
ALERT_MEASUREMENT = "alert"

Observation = tuple[dict[str, str], dict[str, str], bool, float]


def group_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Return the labels an alert is grouped by (those of GROUP_BY it has)."""
    return {name: labels[name] for name in GROUP_BY if name in labels}


def group_key(labels: Mapping[str, str]) -> str:
    """Return the stable key of a group, in Alertmanager's notation: {}:{host="hv1", slo="availability"}."""
    inner = ", ".join(f'{name}={_quoted(value)}' for name, value in sorted(group_labels(labels).items()))
    return "{}:{" + inner + "}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _budget_left(value: float | None) -> str:
    if value is None:
        return "no data for the budget"
    if value < 0:
        return f"the budget is overspent {1 - value:.3g}x"
    return f"{value * 100:.1f}% of the budget left"


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def slo_observations(evaluations: Mapping[str | None, Evaluation]) -> list[Observation]:
    """Return one observation per scope (each host, and the fleet) and tier of one evaluated SLO."""
    found = []
    for host, evaluation in evaluations.items():
        slo = evaluation.slo
        base = {"alertname": SLO_ALERTNAME, "slo": slo.name}
        if host is None:
            base["scope"] = "fleet"
        else:
            base["host"] = host
        where = "the fleet" if host is None else host
        for tier in TIERS:
            windows = [w for w in evaluation.windows if w.window.severity == tier]
            firing = [w for w in windows if w.firing]
            shown = firing[0] if firing else max(windows, key=lambda w: w.long_burn or 0.0)
            summary = (f"{slo.name} on {where} burns its {slo.period} error budget at {_burn(shown.long_burn)} over "
                       f"{duration_label(shown.window.long_seconds)} and {_burn(shown.short_burn)} over "
                       f"{duration_label(shown.window.short_seconds)} ({tier} at {shown.window.factor:.3g}x); "
                       f"{_budget_left(evaluation.budget_remaining)}")
            lines = [f"objective {slo.objective:g}% over {slo.period}: {evaluation.period.good:g} good of "
                     f"{evaluation.period.total:g}"]
            lines += [f"{w.window.name}: {_burn(w.long_burn)} / {_burn(w.short_burn)} against {w.window.factor:.3g}x"
                      + (" FIRING" if w.firing else "") for w in windows]
            found.append(({**base, "severity": tier}, {"summary": summary, "description": "\n".join(lines)},
                          bool(firing), 0.0))
    return found


@dataclass
class RoundReport:
    """What one round did: how much it evaluated, what it sent, what failed, and how long it took."""

    slos_evaluated: int = 0
    rules_evaluated: int = 0
    rules_reads: RoundReads | None = None
    leaks_evaluated: int = 0  # hosts whose leak signs were evaluated
    leak_reads: RoundReads | None = None
    observations: int = 0
    transitions: list[Transition] = field(default_factory=list)
    notifications: int = 0
    delivery_failures: int = 0
    error: str | None = None
    seconds: float = 0.0


class Engine:
    """The alert engine over one store, with its state (alerts, silences, outbox) under `state_dir`."""

    def __init__(self, store: Store, slos: Sequence[SLO], rules: Sequence[EventRule],
                 notifiers: Mapping[str, Notifier], state_dir, *, clock: Callable[[], datetime] = utc_now,
                 slo_interval_seconds: float = 30.0, rules_interval_seconds: float = 2.0,
                 repeat_interval_seconds: float = 4 * 3600.0, alertmanager_resend_seconds: float = 60.0,
                 backoff: Backoff | None = None, external_url: str = "",
                 backfill_seconds: int | None = None, storm: StormGate | None = None, shard: Shard = ALL,
                 leak_rule: LeakRule | None = None, leak_interval_seconds: float = 60.0) -> None:
        self.store, self.slos, self.rules = store, list(slos), list(rules)
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.slo_interval_seconds, self.rules_interval_seconds = slo_interval_seconds, rules_interval_seconds
        self.external_url = external_url
        self.backoff = backoff or Backoff(base_seconds=0.5, max_seconds=4.0, max_attempts=3)
        self.backfill_seconds = backfill_seconds
        self.resending = {name for name, n in self.notifiers.items() if isinstance(n, AlertmanagerNotifier)}
        self.tracker = AlertTracker(alert_state_path(state_dir), clock, repeat_interval_seconds=repeat_interval_seconds,
                                    resend_seconds=alertmanager_resend_seconds if self.resending else None,
                                    sink=self._enqueue)
        self.outbox = Outbox(outbox_path(state_dir))
        self.silences = SilenceStore(silences_path(state_dir), clock)
        self.coverage: dict[str, Coverage] = {}
        self.memories: dict[str, SLIMemory] = {}  # each SLO's rollups, loaded at its first round (alerts.sli_memory)
        self.storm = storm or StormGate()
        self.rule_memory = RuleMemory(store, self.rules)
        self.shard = shard
        self.leak_rule, self.leak_interval_seconds = leak_rule, leak_interval_seconds
        self.leak_memory = None if leak_rule is None else LeakMemory(leak_rule)  # window means between rounds
        self.leak_storm = leak_gate(self.storm)  # leak pages of many hosts at once: one fleet page
        self.silent_storm = silent_agents_gate(self.storm)  # agents silent together: one fleet page
        self._lock = threading.Lock()  # the tracker's transitions: one round of the SLOs or the rules at a time
        self._load_lock = threading.Lock()  # the SLOs' memories load one after the other
        self._pending = threading.Event()  # set when the outbox got notifications
        self._failing_since: dict[str, datetime] = {}  # "slos" or "rules": when their rounds started failing
        self._current_muted: Callable[[Mapping[str, str]], bool] | None = None  # this round's, for the sink

    def __repr__(self) -> str:
        shard = "" if self.shard.whole else f", shard {self.shard}"
        return (f"Engine({len(self.slos)} SLOs, {len(self.rules)} rules, receivers "
                f"{sorted(self.notifiers)}, {self.store!r}{shard})")

    # --- one round -----------------------------------------------------------------------------------------

    def run_round(self, slos: bool = True, rules: bool = True, deliver: bool = True,
                  leaks: bool = True) -> RoundReport:
        """Evaluate (the SLOs, the rules, the leak rule, or any of them), track, and (with `deliver`) drain the outbox
        once.

        Rounds of the SLOs and of the rules may run at once on two threads: each evaluates on its own, and only
        the tracking (a few ms) is serialized."""
        began = time.monotonic()
        report = RoundReport()
        now = self.clock()
        observations: list[Observation] = []
        parts = [part for part, wanted in (("slos", slos and self.slos), ("rules", rules and self.rules),
                                           ("leaks", leaks and self.leak_rule is not None)) if wanted]
        try:
            if "slos" in parts:
                observations += self._slo_part(now, report)
            if "rules" in parts:
                observations += self._rules_part(now, report)
            if "leaks" in parts:
                observations += self._leaks_part(now, report)
            failed = False
        except Exception as error:  # the store, mostly: say so, keep the engine alive, page if it lasts
            report.error = f"{type(error).__name__}: {error}"
            log.error("evaluation failed, nothing was evaluated this round: %s", report.error)
            failed = True
        with self._lock:
            for part in parts:
                if not failed:
                    self._failing_since.pop(part, None)
                else:
                    self._failing_since.setdefault(part, now)
            observations.append(self._blind_observation(now))
            report.observations = len(observations)
            before = self.tracker.snapshot()
            muted = self._current_muted = self._muted(now)
            report.transitions = self.tracker.observe_all(observations, muted=muted)
            points = self._record(before, self.tracker.snapshot(), muted, now, report.transitions)
        self._write_records(points)
        if report.transitions:
            self._pending.set()
        if deliver:
            report.delivery_failures = len(drain(self.outbox, self.notifiers, self.backoff))
        report.seconds = time.monotonic() - began
        return report

    def _slo_part(self, now: datetime, report: RoundReport) -> list[Observation]:
        """Roll up and evaluate every SLO; return their observations (stale SLO alerts resolve)."""
        observations = []
        self.coverage.update(roll_up_each(self.store, self.slos,
                                          lambda slo, shared: self._roll_up(slo, now, shared)))
        evaluated = evaluate_slos(self.store, self.slos, now, self.coverage, memories=self.memories)
        for name, evaluations in evaluated.items():
            mine = {host: e for host, e in evaluations.items() if host is None or self.shard.owns(host)}
            found = slo_observations(mine)
            if not self.shard.owns_fleet:
                found = [self._shard_scoped(observation) for observation in found]
            observations += self.storm.apply(name, found, self._paging_hosts(name), now.timestamp())
            report.slos_evaluated += 1
        try:
            self.store.write(evaluation_points(evaluated, int(now.timestamp() * 10**9)))
        except Exception as error:  # the records are for the dashboard: never a reason to stop paging
            log.error("could not record the SLO evaluations in the store: %s", error)
        return observations + self._stale(observations, {SLO_ALERTNAME})

    def _roll_up(self, slo: SLO, now: datetime, shared: Store) -> Coverage:
        """Write one SLO's rollups due now, reading through `shared` (the SLOs roll up on threads of their own and
        read what they share once: alerts.rollups.roll_up_each); load its memory first."""
        done = self.coverage.get(slo.name)
        memory = self.memories.get(slo.name)
        if done is None or memory is None:
            done = coverage(self.store, slo, now)
            memory = SLIMemory(slo)
            began = time.monotonic()
            with self._load_lock:  # one SLO's load at a time: its frames are the engine's largest (peak RSS)
                rows = memory.load(self.store, done.minute_until_ns, done.hour_until_ns)
            log.info("SLO %s: %d rollups of its period loaded into memory in %.1f s", slo.name, rows,
                     time.monotonic() - began)
            self.memories[slo.name] = memory
        kwargs = {} if self.backfill_seconds is None else {"backfill_seconds": self.backfill_seconds}
        return roll_up(shared, slo, now, done, written=memory.written, **kwargs)

    def _paging_hosts(self, slo: str) -> set[tuple[str, str]]:
        """The (host, severity) alerts of this SLO that fire now (the storm gate holds only those that START)."""
        return self._firing_hosts(SLO_ALERTNAME, slo)

    def _firing_hosts(self, alertname: str, slo: str | None = None) -> set[tuple[str, str]]:
        """The (host, severity) of the per-host alerts of one alertname (and SLO, if given) that fire now: what a
        storm gate lets keep firing."""
        return {(state.labels["host"], state.labels.get("severity", "page")) for state in self.tracker.snapshot().values()
                if state.labels.get("alertname") == alertname and (slo is None or state.labels.get("slo") == slo)
                and "host" in state.labels and state.state == FIRING}

    def _shard_scoped(self, observation: Observation) -> Observation:
        """On a shard that does not own the fleet: its fleet-scope observation becomes the shard's, active only
        when the storm gate makes it the page of a storm among the shard's hosts (shard 0 pages the fleet's own
        burn)."""
        labels, annotations, _active, for_seconds = observation
        if labels.get("scope") != "fleet":
            return observation
        return {**labels, "scope": "shard", "shard": str(self.shard)}, annotations, False, for_seconds

    def _rules_part(self, now: datetime, report: RoundReport) -> list[Observation]:
        """Evaluate the event rules for every host, those with firing alerts included."""
        names = {rule.alertname for rule in self.rules}
        hosts = {s.labels["host"] for s in self.tracker.snapshot().values()
                 if s.labels.get("alertname") in names and "host" in s.labels}
        results = self.rule_memory.evaluate(now, hosts=hosts, external_url=self.external_url)
        results = [r for r in results if self.shard.owns(r.host)]
        report.rules_evaluated = len(results)
        report.rules_reads = self.rule_memory.reads
        observations = self._gate_silent_agents([(r.labels, r.annotations, r.active, 0.0) for r in results], now)
        return observations + self._stale(observations, names)

    def _gate_silent_agents(self, observations: list[Observation], now: datetime) -> list[Observation]:
        """Return the rules' observations with agents that go silent together as one fleet page (alerts.storm:
        a partition between the hosts and the store is one page, not one per host), counted against the hosts
        whose agents the rules watch (this shard's)."""
        names = {rule.alertname for rule in self.rule_memory.silent_rules}
        if not names:
            return observations
        gated = [o for o in observations if o[0].get("alertname") not in names]
        fleet_hosts = sum(1 for host in self.rule_memory.watched_hosts(now) if self.shard.owns(host))
        for name in sorted(names):
            found = [o for o in observations if o[0].get("alertname") == name]
            fleet = ({"alertname": name, "scope": "fleet", "severity": "page"},
                     {"summary": "the agents write", "description": SILENT_STORM_CAUSES}, False, 0.0)
            found.append(fleet if self.shard.owns_fleet else self._shard_scoped(fleet))
            gated += self.silent_storm.apply(name, found, self._firing_hosts(name), now.timestamp(),
                                             fleet_hosts=fleet_hosts)
        return gated

    def _leaks_part(self, now: datetime, report: RoundReport) -> list[Observation]:
        """Evaluate the leak rule for every host (three reads for the whole fleet, alerts.leak_rule); many hosts
        starting to leak in one round are one fleet page (alerts.storm); tracked leak alerts of hosts not observed
        resolve."""
        rule = self.leak_rule
        reads = report.leak_reads = RoundReads()
        results = [r for r in self.leak_memory.evaluate(self.store, now, reads) if self.shard.owns(r.host)]
        report.leaks_evaluated = len({r.host for r in results})
        try:  # the figures for the dashboard (alerts.leak_rule.LEAK_RECORD): never a reason to stop paging
            self.store.write([p for p in self.leak_memory.records if self.shard.owns(p.tags["host"])])
        except Exception as error:
            log.error("could not record the leak signs in the store: %s", error)
        observations = []
        for alertname in sorted(rule.alertnames):
            found = [(r.labels, r.annotations, r.active, 0.0) for r in results if r.labels["alertname"] == alertname]
            fleet = rule.fleet_observation(alertname)
            found.append(fleet if self.shard.owns_fleet else self._shard_scoped(fleet))
            observations += self.leak_storm.apply(alertname, found, self._firing_hosts(alertname), now.timestamp())
        return observations + self._stale(observations, rule.alertnames)

    def _stale(self, observations: Sequence[Observation], alertnames: set[str]) -> list[Observation]:
        """Return inactive observations for tracked alerts of these names that nothing observed this round."""
        seen = {fingerprint(labels) for labels, *_ in observations}
        return [(state.labels, state.annotations, False, 0.0) for fp, state in self.tracker.snapshot().items()
                if state.labels.get("alertname") in alertnames and fp not in seen]

    def _blind_observation(self, now: datetime) -> Observation:
        """Return the engine's own alert: active once rounds (of the SLOs or the rules) have failed for
        BLIND_AFTER_SECONDS."""
        since = min(self._failing_since.values(), default=None)
        blind_for = 0.0 if since is None else max(0.0, (now - since).total_seconds())
        summary = (f"the alert engine could not read the store for {blind_for:.0f} s: no SLO or rule is "
                   "evaluated, nobody is watching libvirtd" if blind_for else "the alert engine reads the store")
        return ({"alertname": BLIND_ALERTNAME, "severity": "page"},
                {"summary": summary, "description": f"store: {getattr(self.store, 'display_url', '?')}"},
                blind_for >= BLIND_AFTER_SECONDS, 0.0)

    def _muted(self, now: datetime) -> Callable[[Mapping[str, str]], bool]:
        """Return a predicate: is an alert with these labels silenced now (the silences file read once)."""
        try:
            active = [s for s in self.silences.list() if s.active(now)]
        except Exception as error:  # a corrupt silences file must not stop paging
            log.error("silences unreadable, none applied this round: %s", error)
            active = []
        return lambda labels: any(s.matches(labels) for s in active)

    # --- notifications -------------------------------------------------------------------------------------

    def _enqueue(self, transitions: list[Transition], states: dict[str, AlertState]) -> None:
        """Group a round's transitions by host and SLO into notifications and put them in the outbox."""
        muted = self._current_muted
        firing = sent_firing(states, muted)
        groups: dict[str, list[Transition]] = {}
        for transition in transitions:
            groups.setdefault(group_key(transition.alert.labels), []).append(transition)
        for key, found in groups.items():
            labels = group_labels(found[0].alert.labels)
            members = [a for a in firing if group_key(a.labels) == key]
            members += [t.alert for t in found if t.status == RESOLVED]
            members = [self._linked(a) for a in members]
            everyone = any(t.reason in (FIRED, REPEAT, ENDED) for t in found)
            receivers = sorted(self.notifiers) if everyone else sorted(self.resending)
            for receiver in receivers:
                if members:
                    self.outbox.put(Notification(receiver, key, labels, members))
            for t in found:
                if t.reason != "keepalive":
                    log.warning("%s %s: %s -> %s", t.status.upper(), _describe(t.alert),
                                t.alert.annotations.get("summary", ""), ", ".join(receivers) or "no receiver")

    def _linked(self, alert: Alert) -> Alert:
        """Return the alert with a link to the dashboard when an external URL is configured."""
        if not self.external_url or alert.generator_url:
            return alert
        return Alert(alert.labels, alert.annotations, alert.status, alert.starts_at, alert.ends_at,
                     self.external_url.rstrip("/") + "/alerts")

    def _record(self, before: dict[str, AlertState], after: dict[str, AlertState],
                muted: Callable[[Mapping[str, str]], bool], now: datetime,
                transitions: Sequence[Transition] = ()) -> list[Point]:
        """Return an `alert` point for each alert that started or stopped firing this round (silenced ones too); a
        resolve records what its notice says is true now (the ENDED transition's annotations), not the firing
        evidence."""
        points = []
        for fp, state in after.items():
            if state.state == FIRING and (fp not in before or before[fp].state != FIRING):
                points.append(_alert_point(state, FIRING, muted(state.labels) or self.tracker.inhibited(state.labels),
                                           now))
        ended = {t.fingerprint: t.alert.annotations for t in transitions if t.reason == ENDED}
        for fp, state in before.items():
            if state.state == FIRING and (fp not in after or after[fp].state != FIRING):
                points.append(_alert_point(state, RESOLVED, False, now, ended.get(fp)))
        return points

    def _write_records(self, points: list[Point]) -> None:
        """Write the `alert` points of a round (outside the lock: a slow store never delays the other cadence)."""
        if points:
            try:
                self.store.write(points)
            except Exception as error:
                log.error("could not record %d alert points in the store: %s", len(points), error)

    # --- the loop ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set: the rules, the SLOs and the delivery each on its own thread and schedule, so a
        slow SLO round, a slow store write or a receiver that times out never delays a rules round or a page."""
        log.info("alert engine%s: %d SLOs every %g s, %d rules every %g s, %s, receivers: %s",
                 "" if self.shard.whole else f" (shard {self.shard})", len(self.slos), self.slo_interval_seconds,
                 len(self.rules), self.rules_interval_seconds,
                 "no leak rule" if self.leak_rule is None else f"the leak rule every {self.leak_interval_seconds:g} s",
                 ", ".join(sorted(self.notifiers)) or "none (alerts are only recorded)")
        rounds = {"slos": 0, "rules": 0, "leaks": 0}
        threads = [threading.Thread(target=self._cadence, args=(stop, part, interval, rounds),
                                    name=f"engine-{part}", daemon=True)
                   for part, interval, wanted in (("rules", self.rules_interval_seconds, self.rules),
                                                  ("slos", self.slo_interval_seconds, self.slos),
                                                  ("leaks", self.leak_interval_seconds, self.leak_rule is not None))
                   if wanted]
        threads.append(threading.Thread(target=self._deliver, args=(stop,), name="engine-delivery", daemon=True))
        for thread in threads:
            thread.start()
        last_summary = time.monotonic()
        while not stop.wait(5.0):
            if time.monotonic() - last_summary >= 300:
                firing = self.tracker.firing()
                log.info("last %.0f s: %d rule rounds, %d SLO rounds; %d alerts firing%s",
                         time.monotonic() - last_summary, rounds["rules"], rounds["slos"], len(firing),
                         (": " + ", ".join(_describe(a) for a in firing[:5])) if firing else "")
                last_summary, rounds["rules"], rounds["slos"] = time.monotonic(), 0, 0
        self._pending.set()
        for thread in threads:
            thread.join(timeout=30)
        log.info("alert engine stopping")

    def _cadence(self, stop: threading.Event, part: str, interval: float, rounds: dict[str, int]) -> None:
        """Run one part's rounds every `interval` seconds (from the start of one round to the next) until stop."""
        due = time.monotonic()
        while not stop.is_set():
            try:
                report = self.run_round(slos=part == "slos", rules=part == "rules", leaks=part == "leaks",
                                        deliver=False)
                log.debug("%s round: %s", part, report)
            except Exception:  # a bug must not end the cadence silently: the other one goes on, this one retries
                log.exception("%s round failed", part)
            rounds[part] += 1
            due = max(due + interval, time.monotonic())
            stop.wait(max(0.0, due - time.monotonic()))

    def _deliver(self, stop: threading.Event) -> None:
        """Start the outbox's deliveries whenever a round put notifications in it, and every RETRY_SECONDS for
        those kept after failing: each receiver delivers on its own thread (alerts.notify.drain), so one that
        times out delays nobody else's page."""
        while not stop.is_set():
            self._pending.wait(RETRY_SECONDS)
            self._pending.clear()
            try:
                drain(self.outbox, self.notifiers, self.backoff, wait_seconds=0.0)
            except Exception:
                log.exception("delivery failed")


def _describe(alert: Alert) -> str:
    """Return 'AlertName{host=..., slo=..., severity=...}' for a log line."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    return f"{alert.name}{{{labels}}}"


#: what agents going silent together mean, in the fleet page of such a storm
SILENT_STORM_CAUSES = ("agents on many hosts stopped writing at once: look at what they share before at the hosts: "
                       "the network between the hosts and the store, the store's ingest (its write errors, a full "
                       "disk), a proxy or load balancer in front of it, or an agent rollout; their spools keep what "
                       "they collect meanwhile")


def _alert_point(state: AlertState, status: str, silenced: bool, now: datetime,
                 annotations: Mapping[str, str] | None = None) -> Point:
    """Return the `alert` point recording that an alert started or stopped firing (with `annotations`, those of its
    notice, when they differ from the state's)."""
    annotations = state.annotations if annotations is None else annotations
    tags = {"alertname": state.labels["alertname"], "severity": state.labels.get("severity", "page")}
    for name in ("host", "slo"):
        if state.labels.get(name):
            tags[name] = state.labels[name]
    fields = {"status": status, "fingerprint": fingerprint(state.labels),
              "summary": annotations.get("summary", ""),
              "description": annotations.get("description", ""), "silenced": int(silenced)}
    return Point(ALERT_MEASUREMENT, tags, fields, int(now.timestamp() * 10**9))
