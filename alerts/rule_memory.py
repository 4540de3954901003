"""The event rules' memory: each host's rule inputs kept between rounds and advanced from what was written since.

`evaluate_event_rules` (alerts.event_rules) reads a week of events and every host's newest points on every call:
right for one evaluation, too much every 5 s for 2000 hosts. `RuleMemory.evaluate` gives the same results
while reading only what is new:

- **events** of the rules' kinds written after a cursor, re-read `OVERLAP_SECONDS` behind it (points an agent
  writes within its interval, or spools through a short store hiccup, land a little late); kept per host only
  as long as a rule needs them (a count rule its window, a down/hang rule the current run and the end before
  it). Every `RESYNC_SECONDS` the whole lookback of events is read again (events are sparse: a few per host per
  day), so an event spooled for longer than the overlap still counts within minutes;
- **agents' last collector points** read every `AGENT_READ_SECONDS` (10 s) over the seconds since the last
  read: a host that wrote nothing since keeps its last known time. At the first round the newest point of
  every host that ever wrote (`tag_values`) within the lookback, in chunks of hosts;
- **libvirtd's newest point** (up, hung) only for the hosts with a down or hang run open, since the run began;
- **diagnoses and forensics bundles** written after the cursor (less the overlap), newest per host and trigger.

Only hosts whose results may have changed are evaluated: those whose events, findings or libvirtd point changed,
those with a run open (their "for N s" grows), those whose agent is silent past a rule's threshold, and those
passed in `hosts` (the tracker's: an alert firing keeps being observed until it resolves). A quiet host is
inactive on every rule and needs no observation. `reads` counts the rows each round read, for the tests and the
benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from alerts.event_rules import (DEFAULT_LOOKBACK_SECONDS, DIAGNOSIS, FORENSICS, AgentSilentRule, CountRule,
                                EventRule, Finding, HostState, RuleResult, StateRule, _number, _text)
from tsdb.query import TimeLike, to_ns
from tsdb.side_by_side import side_by_side
from tsdb.store import EVENT_FIELDS, EVENT_TAGS, Store

log = logging.getLogger(__name__)

S = 10**9
OVERLAP_SECONDS = 120      # events and findings are re-read this far behind the cursor
RESYNC_SECONDS = 600       # the whole lookback of events is read again this often
#: the memory forgets the events no rule needs any more when events came or went, and at least this often (what
#: it forgets is older than every window: a minute late changes nothing but the memory's size)
TRIM_SECONDS = 60
AGENT_OVERLAP_SECONDS = 30  # collector points are re-read this far behind the previous read
#: agents' newest points are read at most this often (an agent writes every 10 s; AgentSilent waits 60 s): at
#: 2000 hosts it is a round's one read that touches every host's series
AGENT_READ_SECONDS = 10
HOST_CHUNK = 200           # hosts per `where host in (...)` read at the first round
EVENT_COLUMNS = ["time", *EVENT_TAGS, *EVENT_FIELDS]
#: the findings a round reads (newest per host and trigger): measurement and fields
FINDING_READS = ((DIAGNOSIS, ["cause"]), (FORENSICS, ["cause", "file"]))


@dataclass
class RoundReads:
    """What one round read: queries made and rows returned, per source."""

    queries: int = 0
    rows: int = 0
    resynced: bool = False
    evaluated_hosts: int = 0
    #: whether the round went over every host's events to forget what no rule needs (see TRIM_SECONDS)
    trimmed: bool = False

    def add(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Count one query that returned `frame`; return it."""
        self.queries += 1
        self.rows += len(frame)
        return frame


class RuleMemory:
    """The event rules over one store, evaluated round after round from what changed since the last round."""

    def __init__(self, store: Store, rules: Sequence[EventRule], *,
                 lookback_seconds: float = DEFAULT_LOOKBACK_SECONDS, overlap_seconds: float = OVERLAP_SECONDS,
                 resync_seconds: float = RESYNC_SECONDS) -> None:
        self.store, self.rules = store, list(rules)
        self.lookback_ns = int(max([lookback_seconds, *(r.window_seconds_needed for r in self.rules)]) * S)
        self.overlap_ns, self.resync_ns = int(overlap_seconds * S), int(resync_seconds * S)
        self.kinds = sorted({kind for rule in self.rules for kind in rule.kinds})
        self.triggers = sorted({t for rule in self.rules for t in rule.explained_by})
        self.state_rules = [r for r in self.rules if isinstance(r, StateRule)]
        self.silent_rules = [r for r in self.rules if isinstance(r, AgentSilentRule)]
        self.reads = RoundReads()
        self._events = pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "time" else object)
                                     for c in EVENT_COLUMNS})
        self._agents: dict[str, pd.Timestamp] = {}        # host -> newest collector point
        self._daemons: dict[str, tuple[pd.Timestamp, float | None, float | None]] = {}  # open-run hosts only
        self._findings: dict[str, dict[tuple[str, str], Finding]] = {}  # host -> (measurement, trigger) -> newest
        self._cursor_ns: int | None = None                 # events and findings read up to here
        self._agents_ns: int | None = None                 # collector points read up to here
        self._synced_ns = 0
        self._trimmed_ns: int | None = None
        self._open: set[str] = set()
        self._dirty: set[str] = set()

    def evaluate(self, now: TimeLike, hosts: Iterable[str] = (), external_url: str | None = None
                 ) -> list[RuleResult]:
        """Advance the memory to `now` and return every rule's result for the hosts that need one."""
        now_ns = to_ns(now, "now")
        self.reads = RoundReads()
        if not self.rules:
            return []
        first = self._cursor_ns is None or now_ns < self._cursor_ns  # a clock set back: start over
        if first:
            self._agents, self._findings, self._daemons = {}, {}, {}
        before = self._events
        self._advance(now_ns, first)
        self._cursor_ns = now_ns
        moment = pd.Timestamp(now_ns, tz="UTC")
        if self._events is not before or self._trimmed_ns is None or now_ns - self._trimmed_ns >= TRIM_SECONDS * S:
            self._trim(moment)  # over every host's events: not in a round that changed nothing
            self._trimmed_ns, self.reads.trimmed = now_ns, True
        self._read_daemons(now_ns)
        wanted = (self._dirty & self._recent(moment)) | self._open | set(hosts) | self._silent(moment)
        self._dirty = set()
        self.reads.evaluated_hosts = len(wanted)
        theirs = self._events[self._events["host"].isin(wanted)] if wanted else self._events.iloc[:0]
        by_host = {host: frame for host, frame in theirs.groupby("host", sort=False)}
        empty = self._events.iloc[:0]
        results = []
        for host in sorted(wanted):
            mine, state = by_host.get(host, empty), self._state(host)
            results += [rule.result(host, mine, moment, state, external_url) for rule in self.rules]
        return results

    def _advance(self, now_ns: int, first: bool) -> None:
        """Read what was written since the last round (events, the agents' newest points when due, findings) side
        by side, since the reads are independent and a round then waits on the slowest, and merge it."""
        resync = first or now_ns - self._synced_ns >= self.resync_ns
        since_ns = now_ns - self.lookback_ns if first else self._cursor_ns - self.overlap_ns
        events_since_ns = now_ns - self.lookback_ns if resync else since_ns
        agents = self._agents_due(now_ns, first)
        reads = [lambda: self._read_events(events_since_ns, now_ns)]
        if agents and not first:
            since_agents = self._agents_ns - AGENT_OVERLAP_SECONDS * S
            reads.append(lambda: self.store.latest("collector", ["scrape_duration_ms"], since_agents, now_ns,
                                                   group_by=["host"]))
        if self.triggers:
            reads += [lambda m=measurement, f=fields: self.store.latest(m, f, since_ns, now_ns,
                                                                       where={"trigger": self.triggers},
                                                                       group_by=["host", "trigger"])
                      for measurement, fields in FINDING_READS]
        answers = side_by_side(*reads)
        events = answers.pop(0)
        if self.kinds:  # no rule counts events: nothing was read
            self.reads.add(events)
        if resync:
            self._resync_events(events, now_ns)
        else:
            self._advance_events(events, since_ns)
        if agents and not first:
            self._merge_agents(self.reads.add(answers.pop(0)), now_ns)
            self._agents_ns = now_ns
        elif agents:
            self._first_agents(now_ns)
        if self.triggers:
            self._merge_findings([self.reads.add(frame) for frame in answers], now_ns)

    # --- events ----------------------------------------------------------------------------------------------

    def _read_events(self, since_ns: int, now_ns: int) -> pd.DataFrame:
        """Read the events of the rules' kinds in [since, now] (nothing when no rule counts events)."""
        if not self.kinds:
            return self._events.iloc[:0]
        return self.store.events(since_ns, now_ns + 1, where={"kind": self.kinds})

    def _resync_events(self, fresh: pd.DataFrame, now_ns: int) -> None:
        """Take the whole lookback of events read again; mark the hosts whose events differ."""
        fresh = fresh[EVENT_COLUMNS]
        self.reads.resynced = True
        before = self._events
        self._events = fresh
        self._synced_ns = now_ns
        self._trim(pd.Timestamp(now_ns, tz="UTC"))
        changed = pd.concat([before, self._events]).drop_duplicates(keep=False)
        self._dirty |= set(changed["host"])

    def _advance_events(self, new: pd.DataFrame, since_ns: int) -> None:
        """Merge the events written after the cursor (less the overlap, `since_ns`) into the memory."""
        new = new[EVENT_COLUMNS]
        if new.empty:
            return
        known = set(_event_keys(self._events[self._events["time"] >= pd.Timestamp(since_ns, tz="UTC")]))
        added = new[[key not in known for key in _event_keys(new)]]
        if added.empty:
            return
        self._dirty |= set(added["host"])
        self._events = pd.concat([self._events, added], ignore_index=True).sort_values(
            ["time", *EVENT_TAGS], kind="mergesort", ignore_index=True)

    def _trim(self, now: pd.Timestamp) -> None:
        """Forget the events no rule needs any more (a host that lost some is re-evaluated); find the open runs."""
        self._open = set()
        if self._events.empty:
            return
        events = self._events
        hosts = pd.Index(events["host"].unique())
        floor = now - pd.Timedelta(seconds=self.lookback_ns / S)
        counted = [r.window_seconds for r in self.rules if isinstance(r, CountRule)]
        other = [r for r in self.rules if r.kinds and not isinstance(r, (CountRule, StateRule))]
        since = floor if other else max(floor, now - pd.Timedelta(seconds=max(counted, default=0)))
        need = np.full(len(hosts), since.value, dtype="int64")
        for rule in self.state_rules:
            mine = events[events["kind"].isin(rule.kinds)]
            if mine.empty:
                continue
            newest = mine.groupby("host", sort=False).tail(1).set_index("host")
            wanted = newest["time"].copy()  # an ended run: its newest event (the end) is all a rule needs
            running = newest.index[newest["kind"] == rule.start_kind]
            if len(running):
                starts = mine[mine["kind"] == rule.start_kind].groupby("host")["time"].min()
                ends = mine[mine["kind"] != rule.start_kind].groupby("host")["time"].max()
                wanted[running] = ends.reindex(running).fillna(starts.reindex(running)).to_numpy()
                self._open |= set(running)
            wanted_ns = wanted.reindex(hosts).fillna(now).astype("int64").to_numpy()
            need = np.minimum(need, wanted_ns)
        need = pd.Series(np.maximum(need, floor.value), index=hosts)
        kept = events["time"].astype("int64") >= events["host"].map(need).to_numpy()
        if not kept.all():
            self._dirty |= set(events.loc[~kept, "host"])
            self._events = events[kept].reset_index(drop=True)

    def _recent(self, now: pd.Timestamp) -> set[str]:
        """Return the hosts with an event inside a count rule's window: the only ones a count rule may fire for
        (a host whose only events are older, and whose runs are over, is inactive on every rule)."""
        windows = [r.window_seconds for r in self.rules if isinstance(r, CountRule)]
        others = any(r.kinds and not isinstance(r, (CountRule, StateRule)) for r in self.rules)
        if others:
            return set(self._events["host"])
        if not windows:
            return set()
        return set(self._events.loc[self._events["time"] > now - pd.Timedelta(seconds=max(windows)), "host"])

    # --- points ----------------------------------------------------------------------------------------------

    def _agents_due(self, now_ns: int, first: bool) -> bool:
        """Say whether this round reads the agents' newest collector points (at most every AGENT_READ_SECONDS)."""
        if not self.silent_rules:
            return False
        return first or now_ns - self._agents_ns >= AGENT_READ_SECONDS * S

    def _first_agents(self, now_ns: int) -> None:
        """Read the newest collector point of every host that ever wrote, within the lookback, in chunks of hosts."""
        hosts = self.store.tag_values("collector", "host")
        self.reads.queries += 1
        for start in range(0, len(hosts), HOST_CHUNK):
            chunk = hosts[start:start + HOST_CHUNK]
            self._merge_agents(self.reads.add(self.store.latest(
                "collector", ["scrape_duration_ms"], now_ns - self.lookback_ns, now_ns,
                where={"host": chunk}, group_by=["host"])), now_ns)
        self._agents_ns = now_ns

    def _merge_agents(self, frame: pd.DataFrame, now_ns: int) -> None:
        for host, time in zip(frame["host"], frame["time"]):
            if host not in self._agents or time > self._agents[host]:
                self._agents[host] = time
        horizon = pd.Timestamp(now_ns - self.lookback_ns, tz="UTC")
        if any(time < horizon for time in self._agents.values()):
            self._agents = {host: time for host, time in self._agents.items() if time >= horizon}

    def watched_hosts(self, now: TimeLike) -> list[str]:
        """Return the hosts whose agent wrote within the silent rules' forget_seconds (not decommissioned): the
        fleet that agents going silent together are counted against (alerts.storm.silent_agents_gate)."""
        if not self.silent_rules:
            return []
        at = pd.Timestamp(to_ns(now, "now"), tz="UTC")
        forgotten = pd.Timedelta(seconds=max(r.forget_seconds for r in self.silent_rules))
        return [host for host, time in self._agents.items() if at - time <= forgotten]

    def _silent(self, now: pd.Timestamp) -> set[str]:
        """Return the hosts whose agent has been silent past the shortest silence a rule alerts on."""
        if not self.silent_rules:
            return set()
        after = pd.Timedelta(seconds=min(r.after_seconds for r in self.silent_rules))
        forgotten = pd.Timedelta(seconds=max(r.forget_seconds for r in self.silent_rules) + 3600)
        # a host silent past every rule's forget_seconds is decommissioned: inactive (resolved while tracked)
        return {host for host, time in self._agents.items() if after < now - time <= forgotten}

    def _read_daemons(self, now_ns: int) -> None:
        """Read libvirtd's newest point for each host with a run open, since its run began; forget the others."""
        self._daemons = {h: v for h, v in self._daemons.items() if h in self._open}
        if not self._open:
            return
        first_start = self._events[self._events["host"].isin(self._open)]["time"].min()
        since = max(int(first_start.value), now_ns - self.lookback_ns)
        hosts = sorted(self._open)
        for start in range(0, len(hosts), HOST_CHUNK):
            frame = self.reads.add(self.store.latest("libvirtd", ["up", "hung"], since, now_ns,
                                                     where={"host": hosts[start:start + HOST_CHUNK]},
                                                     group_by=["host"]))
            for row in frame.itertuples(index=False):
                value = (row.time, _number(getattr(row, "up", None)), _number(getattr(row, "hung", None)))
                if self._daemons.get(row.host) != value:
                    self._daemons[row.host] = value
                    self._dirty.add(row.host)

    def _merge_findings(self, frames: list[pd.DataFrame], now_ns: int) -> None:
        """Merge the newest diagnosis and bundle of each host and trigger (the answers of FINDING_READS, in order)
        into the memory; forget those older than the lookback."""
        for (measurement, _), frame in zip(FINDING_READS, frames):
            for row in frame.itertuples(index=False):
                mine = self._findings.setdefault(row.host, {})
                known = mine.get((measurement, row.trigger))
                if known is None or row.time > known.time:
                    mine[measurement, row.trigger] = Finding(row.trigger, row.time, _text(row.cause),
                                                             _text(getattr(row, "file", "")))
                    self._dirty.add(row.host)
        horizon = pd.Timestamp(now_ns - self.lookback_ns, tz="UTC")
        for host in list(self._findings):
            kept = {key: f for key, f in self._findings[host].items() if f.time >= horizon}
            if kept:
                self._findings[host] = kept
            else:
                del self._findings[host]

    def _state(self, host: str) -> HostState:
        """Return what the rules know of a host besides its events."""
        libvirtd = self._daemons.get(host, (None, None, None))
        state = HostState(*libvirtd, self._agents.get(host))
        found = self._findings.get(host)
        if not found:
            return state
        return replace(state, diagnoses=tuple(f for (m, _), f in found.items() if m == DIAGNOSIS),
                       bundles=tuple(f for (m, _), f in found.items() if m == FORENSICS))


def _event_keys(frame: pd.DataFrame) -> pd.Series:
    """Return one hashable key per event row (time, tags and fields), to drop the ones read twice."""
    return pd.Series(list(zip(frame["time"].astype("int64"), *(frame[c].astype(str) for c in EVENT_COLUMNS[1:]))),
                     index=frame.index)
