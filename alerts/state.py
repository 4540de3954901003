"""The alert lifecycle, kept on disk so a restart of the engine neither pages twice nor forgets to resolve.

Each alert, identified by `fingerprint(labels)`, moves

    inactive --(condition true)--> pending --(still true after for_seconds)--> firing --(false)--> inactive
        ^                             |                                    notify firing      notify resolved once
        +------(condition false)------+

`AlertTracker.observe` is told each round whether an alert's condition holds and returns the `Transition`s to
send: the first firing, a repeat of it every `repeat_interval_seconds` while it stays firing (Alertmanager's
`repeat_interval`, 4 h by default), optionally a keep-alive every `resend_seconds` (for an Alertmanager receiver,
which resolves an alert on its own when nothing re-sends it within its `resolve_timeout`, 5 min by default), and
exactly one resolve. An alert that never fired (it stopped while pending) resolves silently; only an alert whose
firing was sent gets a resolve.

A resolve says what is true now: its annotations are those of the observation that found the condition false
(the rule's or the SLO's current figures, e.g. "libvirtd is no longer down: daemon_up at ..." or a burn of 0.4x),
and the firing evidence they replace is kept as `was_summary` and `was_description` (`resolved_annotations`).
An inactive observation that brings no figures of its own (the same annotations as the firing) resolves with
the firing's annotations as they are.

Inhibition: the ticket tier of an SLO (labels severity="ticket" and slo) is muted while the page tier
(severity="page") of the same slo and host fires; its state is still tracked, so it notifies if it still fires
once the page resolves, and a resolve is always sent for a firing that was sent. `observe_all(muted=...)` mutes
more alerts the same way (the engine passes its silences).

Durability: the state is written to one JSON file (temp file, fsync, rename, directory fsync) after every
change and read back at start. Pass `sink` (for example an outbox's put) to have each transition handed over
before the new state is saved: a crash in between then repeats a notification (under the same fingerprint,
which receivers deduplicate) rather than losing it. The sink gets a round's transitions at once, with the
states they lead to, so it can group them. Without a sink, the caller enqueues the returned
transitions after the state is saved. One engine process owns a state file.
"""

from __future__ import annotations

import copy
import types
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.notify.model import FIRING, RESOLVED, Alert, fingerprint, format_time, parse_time
from tsdb.durable import write_durably

PENDING = "pending"
VERSION = 1
DEFAULT_REPEAT_INTERVAL_SECONDS = 4 * 3600.0  # Alertmanager's default repeat_interval
INHIBIT_EQUAL = ("slo", "host")

# Why a transition is sent.
FIRED = "fired"          # the alert started firing (or was inhibited and no longer is)
REPEAT = "repeat"        # still firing after repeat_interval_seconds: remind every receiver
KEEPALIVE = "keepalive"  # still firing after resend_seconds: for Alertmanager receivers only
ENDED = "resolved"       # the condition stopped: sent once


class StateError(Exception):
    """The state file cannot be read or written; the message names the file and the reason."""


@dataclass(frozen=True)
class Transition:
    """A notification to send: the alert (status firing or resolved) and why (fired, repeat, keepalive, resolved)."""

    alert: Alert
    reason: str

    @property
    def status(self) -> str:
        """Return firing or resolved."""
        return self.alert.status

    @property
    def fingerprint(self) -> str:
        """Return the alert's stable identity."""
        return self.alert.fingerprint


@dataclass
class AlertState:
    """One tracked alert: pending or firing, since when, and what was last sent about it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str                         # pending or firing; inactive alerts are not kept
    active_since: datetime             # when the condition was first seen true
    fired_at: datetime | None = None   # when it went from pending to firing: the alert's starts_at
    notified: bool = False             # whether its firing was sent (False while inhibited)
    last_sent: datetime | None = None  # the last firing sent to every receiver (first or repeat)
    last_keepalive: datetime | None = None  # the last firing sent at all, keep-alives included

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-able data."""
        def time(moment: datetime | None) -> str | None:
            return format_time(moment) if moment else None
        return {"labels": self.labels, "annotations": self.annotations, "state": self.state,
                "active_since": time(self.active_since), "fired_at": time(self.fired_at),
                "notified": self.notified, "last_sent": time(self.last_sent),
                "last_keepalive": time(self.last_keepalive)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """Rebuild a state from to_dict's output."""
        def time(key: str) -> datetime | None:
            return parse_time(data[key]) if data.get(key) else None
        if data["state"] not in (PENDING, FIRING):
            raise ValueError(f"state must be pending or firing, got {data['state']!r}")
        return cls(labels=dict(data["labels"]), annotations=dict(data.get("annotations", {})),
                   state=data["state"], active_since=time("active_since"), fired_at=time("fired_at"),
                   notified=bool(data.get("notified")), last_sent=time("last_sent"),
                   last_keepalive=time("last_keepalive"))

    def alert(self, status: str = FIRING, ends_at: datetime | None = None) -> Alert:
        """Return the Alert receivers are told about."""
        return Alert(labels=self.labels, annotations=self.annotations, status=status,
                     starts_at=self.fired_at, ends_at=ends_at)


class AlertTracker:
    """Every alert's lifecycle, persisted in a JSON file at `path`; `clock` returns the time (timezone-aware)."""

    def __init__(self, path: str | os.PathLike, clock: Callable[[], datetime], *,
                 repeat_interval_seconds: float = DEFAULT_REPEAT_INTERVAL_SECONDS,
                 resend_seconds: float | None = None,
                 sink: Callable[[list[Transition], dict[str, AlertState]], None] | None = None) -> None:
        if repeat_interval_seconds <= 0:
            raise ValueError(f"repeat_interval_seconds must be positive, got {repeat_interval_seconds!r}")
        if resend_seconds is not None and resend_seconds <= 0:
            raise ValueError(f"resend_seconds must be positive or None, got {resend_seconds!r}")
        self.path = Path(path)
        self.clock = clock
        self.repeat_interval = timedelta(seconds=repeat_interval_seconds)
        self.resend = timedelta(seconds=resend_seconds) if resend_seconds is not None else None
        self.sink = sink
        self._alerts: dict[str, AlertState] = self._load()

    def __repr__(self) -> str:
        return f"AlertTracker({str(self.path)!r}, {len(self._alerts)} tracked)"

    # --- reading -------------------------------------------------------------------------------------------

    def states(self) -> dict[str, AlertState]:
        """Return a copy of every tracked (pending or firing) alert's state by fingerprint."""
        return copy.deepcopy(self._alerts)

    def snapshot(self) -> Mapping[str, AlertState]:
        """Return the tracked alerts as of now, read-only and without a copy: a round replaces the whole mapping
        (copy on write), so the states in a snapshot never change under the caller; do not modify them."""
        return types.MappingProxyType(self._alerts)

    def firing(self) -> list[Alert]:
        """Return the firing alerts, inhibited ones included."""
        return [state.alert() for state in self._alerts.values() if state.state == FIRING]

    def inhibited(self, labels: Mapping[str, str]) -> bool:
        """True when labels are an SLO's ticket tier and the page tier of the same slo and host fires."""
        return _inhibited(labels, self._alerts)

    def sent_firing(self, muted: Callable[[Mapping[str, str]], bool] | None = None) -> list[Alert]:
        """Return the firing alerts whose firing was sent and that are neither inhibited nor `muted` now."""
        return sent_firing(self._alerts, muted)

    # --- changing ------------------------------------------------------------------------------------------

    def observe(self, labels: Mapping[str, str], annotations: Mapping[str, str], active: bool,
                for_seconds: float = 0.0) -> list[Transition]:
        """Record whether an alert's condition holds now; return what to notify (saved before returning)."""
        return self.observe_all([(labels, annotations, active, for_seconds)])

    def observe_all(self, observations: Iterable[tuple[Mapping[str, str], Mapping[str, str], bool, float]],
                    muted: Callable[[Mapping[str, str]], bool] | None = None) -> list[Transition]:
        """Observe a whole round at once, page tier first, so a ticket is inhibited by a page firing this round.

        Alerts for which `muted(labels)` is true (silenced) are tracked but send no firing, repeat or keep-alive;
        their resolve is still sent if their firing was.
        """
        now = self._now()
        ordered = sorted(observations, key=lambda o: o[0].get("severity") != "page")
        alerts = copy.deepcopy(self._alerts)
        transitions: list[Transition] = []
        changed = False
        for labels, annotations, active, for_seconds in ordered:
            if for_seconds < 0:
                raise ValueError(f"for_seconds must not be negative, got {for_seconds!r}")
            found, more = _step(alerts, dict(labels), dict(annotations), active, for_seconds, now,
                                self.repeat_interval, self.resend, muted)
            transitions += found
            changed = changed or more
        if changed:
            if self.sink is not None and transitions:
                self.sink(transitions, copy.deepcopy(alerts))
            self._save(alerts)
            self._alerts = alerts
        return transitions

    # --- the file ------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"the clock must return timezone-aware times, got naive {now.isoformat()}")
        return now

    def _load(self) -> dict[str, AlertState]:
        items = _read_items(self.path)
        try:
            alerts = {fp: AlertState.from_dict(item) for fp, item in items.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise _unreadable(self.path, err) from None
        # key by the fingerprint of the labels, whatever the file says: it is the identity
        return {fingerprint(state.labels): state for state in alerts.values()}

    def _save(self, alerts: Mapping[str, AlertState]) -> None:
        body = json.dumps({"version": VERSION, "alerts": {fp: s.to_dict() for fp, s in sorted(alerts.items())}},
                          ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_durably(self.path, body)
        except OSError as err:
            raise StateError(f"alert state {self.path}: cannot write ({err.strerror})") from None


def count_firing(path: str | os.PathLike) -> int:
    """Return how many alerts of a state file fire now, inhibited and silenced ones included (0 without a file),
    without building their states: a cheap read for a count (the dashboard's navigation); StateError if bad."""
    items = _read_items(Path(path))
    try:
        return sum(1 for item in items.values() if item["state"] == FIRING)
    except (KeyError, TypeError) as err:
        raise _unreadable(Path(path), err) from None


def _read_items(path: Path) -> dict[str, Any]:
    """Return a state file's alerts as stored (fingerprint -> to_dict data), {} when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise StateError(f"alert state {path}: cannot read ({err.strerror})") from None
    try:
        data = json.loads(raw)
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        if not isinstance(data["alerts"], dict):
            raise TypeError(f"alerts is a {type(data['alerts']).__name__}, expected an object")
        return data["alerts"]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise _unreadable(path, err) from None


def _unreadable(path: Path, err: Exception) -> StateError:
    """Return the error of a state file that cannot be understood, saying what to do about it."""
    return StateError(f"alert state {path}: unreadable ({type(err).__name__}: {err}); move it aside to start afresh "
                      "(firing alerts will page again and never-resolved ones be forgotten)")


def sent_firing(alerts: Mapping[str, AlertState], muted: Callable[[Mapping[str, str]], bool] | None = None
                ) -> list[Alert]:
    """Return the alerts of `alerts` that fire, whose firing was sent, and that are neither inhibited nor muted."""
    return [state.alert() for state in alerts.values()
            if state.state == FIRING and state.notified and not _inhibited(state.labels, alerts)
            and not (muted and muted(state.labels))]


#: the annotations whose firing values a resolve keeps beside the current ones, as was_<name>
WAS_ANNOTATIONS = ("summary", "description")
WAS_PREFIX = "was_"


def resolved_annotations(firing: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """Return a resolve's annotations: the `current` figures (what the inactive observation says now), the firing
    summary and description they replace as was_summary and was_description, and the firing's other annotations
    (a forensics link) where the current ones have none; the firing's own when `current` says nothing new."""
    if not current or dict(current) == dict(firing):
        return dict(firing)
    found = dict(current)
    for name, value in firing.items():
        if name in WAS_ANNOTATIONS:
            if value and value != current.get(name):
                found[WAS_PREFIX + name] = value
        elif name not in found and not name.startswith(WAS_PREFIX):
            found[name] = value
    return found


def _inhibited(labels: Mapping[str, str], alerts: Mapping[str, AlertState]) -> bool:
    if labels.get("severity") != "ticket" or "slo" not in labels:
        return False
    return any(state.state == FIRING and state.labels.get("severity") == "page"
               and all(state.labels.get(name) == labels.get(name) for name in INHIBIT_EQUAL)
               for state in alerts.values())


def _step(alerts: dict[str, AlertState], labels: dict[str, str], annotations: dict[str, str], active: bool,
          for_seconds: float, now: datetime, repeat: timedelta, resend: timedelta | None,
          muted: Callable[[Mapping[str, str]], bool] | None = None) -> tuple[list[Transition], bool]:
    """Move one alert in `alerts` (changed in place); return its transitions and whether anything changed."""
    key = fingerprint(labels)
    state = alerts.get(key)
    if not active:
        if state is None:
            return [], False
        del alerts[key]
        if state.state == FIRING and state.notified:
            resolved = Alert(labels=state.labels, annotations=resolved_annotations(state.annotations, annotations),
                             status=RESOLVED, starts_at=state.fired_at, ends_at=now)
            return [Transition(resolved, ENDED)], True
        return [], True

    changed = False
    if state is None:
        state = alerts[key] = AlertState(labels, annotations, PENDING, active_since=now)
        changed = True
    elif state.annotations != annotations:
        state.annotations = annotations
        changed = True
    if state.state == PENDING and now - state.active_since >= timedelta(seconds=for_seconds):
        state.state, state.fired_at = FIRING, now
        changed = True
    if state.state != FIRING or _inhibited(labels, alerts) or (muted is not None and muted(labels)):
        return [], changed
    if not state.notified:
        reason = FIRED
    elif now - state.last_sent >= repeat:
        reason = REPEAT
    elif resend is not None and now - (state.last_keepalive or state.last_sent) >= resend:
        state.last_keepalive = now
        return [Transition(state.alert(), KEEPALIVE)], True
    else:
        return [], changed
    state.notified, state.last_sent, state.last_keepalive = True, now, now
    return [Transition(state.alert(), reason)], True
