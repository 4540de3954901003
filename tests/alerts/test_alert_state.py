"""The alert lifecycle with an injected clock: pending, firing once, repeats, one resolve, restarts, inhibition."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from alerts.notify.model import FIRING, RESOLVED, fingerprint
from alerts.paths import alert_state_path
from alerts.state import ENDED, FIRED, KEEPALIVE, REPEAT, AlertTracker, StateError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
DOWN = {"alertname": "LibvirtdDown", "severity": "page", "host": "hv1"}
NOTE = {"summary": "libvirtd on hv1 is down"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "alerts.json"


def run(tracker, clock, seconds, active, labels=DOWN, for_seconds=60, step=10):
    """Observe every `step` seconds for `seconds`; return every transition."""
    found = []
    for _ in range(int(seconds // step)):
        clock.advance(step)
        found += tracker.observe(labels, NOTE, active, for_seconds)
    return found


def test_an_alert_stays_pending_until_for_seconds_passes_then_fires_exactly_once(path, clock):
    tracker = AlertTracker(path, clock)
    assert tracker.observe(DOWN, NOTE, True, 60) == []
    assert tracker.states()[fingerprint(DOWN)].state == "pending"
    assert run(tracker, clock, 50, True) == []
    clock.advance(10)
    [fired] = tracker.observe(DOWN, NOTE, True, 60)
    assert (fired.status, fired.reason, fired.fingerprint) == (FIRING, FIRED, fingerprint(DOWN))
    assert fired.alert.starts_at == T0 + timedelta(seconds=60) and fired.alert.annotations == NOTE
    assert run(tracker, clock, 600, True) == []


def test_a_condition_that_stops_while_pending_never_notifies(path, clock):
    tracker = AlertTracker(path, clock)
    assert run(tracker, clock, 30, True) + run(tracker, clock, 30, False) == []
    assert tracker.states() == {}


def test_a_firing_alert_is_not_renotified_until_the_repeat_interval(path, clock):
    tracker = AlertTracker(path, clock, repeat_interval_seconds=3600)
    assert len(tracker.observe(DOWN, NOTE, True, 0)) == 1
    assert run(tracker, clock, 3590, True) == []
    [repeat] = run(tracker, clock, 10, True)
    assert (repeat.status, repeat.reason, repeat.fingerprint) == (FIRING, REPEAT, fingerprint(DOWN))
    assert repeat.alert.starts_at == T0
    assert run(tracker, clock, 3590, True) == []


def test_keepalives_for_alertmanager_come_every_resend_seconds_between_repeats(path, clock):
    tracker = AlertTracker(path, clock, repeat_interval_seconds=3600, resend_seconds=240)
    tracker.observe(DOWN, NOTE, True, 0)
    found = run(tracker, clock, 3600, True)
    assert [t.reason for t in found] == [KEEPALIVE] * 14 + [REPEAT]
    assert {t.fingerprint for t in found} == {fingerprint(DOWN)}


def test_a_firing_alert_resolves_exactly_once(path, clock):
    tracker = AlertTracker(path, clock)
    tracker.observe(DOWN, NOTE, True, 0)
    clock.advance(30)
    [resolved] = tracker.observe(DOWN, NOTE, False, 0)
    assert (resolved.status, resolved.reason) == (RESOLVED, ENDED)
    assert resolved.alert.starts_at == T0 and resolved.alert.ends_at == T0 + timedelta(seconds=30)
    assert run(tracker, clock, 600, False) == []


def test_a_restart_in_the_middle_of_an_incident_neither_fires_again_nor_forgets_to_resolve(path, clock):
    first = AlertTracker(path, clock)
    assert [t.status for t in run(first, clock, 120, True)] == [FIRING]
    second = AlertTracker(path, clock)  # the engine restarted
    assert run(second, clock, 120, True) == []
    third = AlertTracker(path, clock)
    found = run(third, clock, 120, False)
    assert [t.status for t in found] == [RESOLVED]
    assert found[0].alert.starts_at == T0 + timedelta(seconds=70)  # first seen at +10 s, for 60 s
    assert run(AlertTracker(path, clock), clock, 60, False) == []


def test_a_restart_while_pending_keeps_counting_from_when_the_condition_began(path, clock):
    run(AlertTracker(path, clock), clock, 40, True)  # first seen at +10 s
    second = AlertTracker(path, clock)
    [fired] = run(second, clock, 30, True)
    assert fired.alert.starts_at == T0 + timedelta(seconds=70)


def test_a_transition_the_sink_could_not_take_is_not_saved_so_it_is_sent_again(path, clock):
    def failing(transitions, states):
        raise OSError("outbox disk full")

    with pytest.raises(OSError):
        AlertTracker(path, clock, sink=failing).observe(DOWN, NOTE, True, 0)
    taken = []
    tracker = AlertTracker(path, clock, sink=lambda transitions, states: taken.extend(transitions))
    returned = tracker.observe(DOWN, NOTE, True, 0)
    assert taken == returned and [t.reason for t in taken] == [FIRED]


def test_the_ticket_tier_is_inhibited_while_the_page_tier_of_the_same_slo_and_host_fires(path, clock):
    page = {"alertname": "SLOBurn", "slo": "probe", "host": "hv1", "severity": "page"}
    ticket = {**page, "severity": "ticket"}
    other_host_ticket = {**ticket, "host": "hv2"}
    tracker = AlertTracker(path, clock)
    found = tracker.observe_all([(ticket, NOTE, True, 0), (page, NOTE, True, 0), (other_host_ticket, NOTE, True, 0)])
    assert sorted(t.alert.labels["host"] + t.alert.labels["severity"] for t in found) == ["hv1page", "hv2ticket"]
    assert tracker.inhibited(ticket) and not tracker.inhibited(other_host_ticket)
    assert fingerprint(ticket) in {a.fingerprint for a in tracker.firing()}  # tracked, only muted
    clock.advance(60)
    assert tracker.observe(ticket, NOTE, True, 0) == []
    clock.advance(60)
    assert [t.status for t in tracker.observe(page, NOTE, False, 0)] == [RESOLVED]
    assert not tracker.inhibited(ticket)
    clock.advance(60)
    [ticket_fired] = tracker.observe(ticket, NOTE, True, 0)  # still burning once the page is over: now it tells
    assert (ticket_fired.alert.labels, ticket_fired.reason) == (ticket, FIRED)


def test_an_inhibited_ticket_that_never_notified_resolves_silently(path, clock):
    page = {"alertname": "SLOBurn", "slo": "probe", "host": "hv1", "severity": "page"}
    ticket = {**page, "severity": "ticket"}
    tracker = AlertTracker(path, clock)
    tracker.observe_all([(page, NOTE, True, 0), (ticket, NOTE, True, 0)])
    clock.advance(60)
    assert tracker.observe(ticket, NOTE, False, 0) == []


def test_fingerprints_are_stable_across_restarts_and_independent_of_label_order(path, clock):
    reordered = dict(reversed(list(DOWN.items())))
    tracker = AlertTracker(path, clock)
    [fired] = tracker.observe(DOWN, NOTE, True, 0)
    clock.advance(10)
    assert AlertTracker(path, clock).observe(reordered, NOTE, True, 0) == []
    stored = json.loads(path.read_text())["alerts"]
    assert list(stored) == [fired.fingerprint] == [fingerprint(reordered)]
    clock.advance(10)
    [resolved] = AlertTracker(path, clock).observe(reordered, NOTE, False, 0)
    assert resolved.fingerprint == fired.fingerprint


def test_the_state_file_is_replaced_whole_and_leaves_no_temp_file(path, clock):
    tracker = AlertTracker(path, clock)
    tracker.observe(DOWN, NOTE, True, 0)
    assert sorted(p.name for p in path.parent.iterdir()) == ["alerts.json"]
    assert json.loads(path.read_text())["version"] == 1


def test_an_unreadable_state_file_is_a_clear_error_naming_the_file(path, clock):
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StateError, match="alerts.json.*unreadable"):
        AlertTracker(path, clock)


def test_a_naive_clock_is_refused(path):
    with pytest.raises(ValueError, match="timezone-aware"):
        AlertTracker(path, lambda: datetime(2024, 5, 1)).observe(DOWN, NOTE, True, 0)


def test_a_muted_alert_is_tracked_but_not_sent_and_its_sent_firing_still_resolves_once(path, clock):
    tracker = AlertTracker(path, clock)
    assert tracker.observe_all([(DOWN, NOTE, True, 0)], muted=lambda labels: True) == []
    assert [a.fingerprint for a in tracker.firing()] == [fingerprint(DOWN)] and tracker.sent_firing() == []
    [fired] = tracker.observe_all([(DOWN, NOTE, True, 0)])  # the silence expired: it notifies now
    assert fired.reason == FIRED and [a.fingerprint for a in tracker.sent_firing()] == [fingerprint(DOWN)]
    [resolved] = tracker.observe_all([(DOWN, NOTE, False, 0)], muted=lambda labels: True)
    assert resolved.reason == ENDED


def test_a_resolve_says_what_the_inactive_observation_found_and_keeps_the_firing_evidence_as_was(path, clock):
    tracker = AlertTracker(path, clock)
    firing = {"summary": "libvirtd down for 12 s", "description": "daemon_down: eof", "forensics": "on hv1: b.tar"}
    tracker.observe(DOWN, firing, True, 0)
    clock.advance(30)
    now = {"summary": "libvirtd is no longer down: daemon_up at 12:00:30Z", "description": "daemon_up: probe 12 ms"}
    [resolved] = tracker.observe(DOWN, now, False, 0)
    assert resolved.alert.annotations == {
        "summary": "libvirtd is no longer down: daemon_up at 12:00:30Z", "description": "daemon_up: probe 12 ms",
        "was_summary": "libvirtd down for 12 s", "was_description": "daemon_down: eof", "forensics": "on hv1: b.tar"}


def test_a_resolve_with_nothing_new_to_say_keeps_the_firing_annotations_as_they_are(path, clock):
    tracker = AlertTracker(path, clock)
    tracker.observe(DOWN, NOTE, True, 0)
    clock.advance(30)
    [resolved] = tracker.observe(DOWN, NOTE, False, 0)  # e.g. the engine's stale observation of a quiet alert
    assert resolved.alert.annotations == NOTE


def test_a_resolve_names_only_what_changed_as_was(path, clock):
    tracker = AlertTracker(path, clock)
    tracker.observe(DOWN, {"summary": "burns 20x over 1h", "description": "objective 99.9%"}, True, 0)
    [resolved] = tracker.observe(DOWN, {"summary": "burns 0.4x over 1h", "description": "objective 99.9%"}, False, 0)
    assert resolved.alert.annotations == {"summary": "burns 0.4x over 1h", "description": "objective 99.9%",
                                          "was_summary": "burns 20x over 1h"}


def test_the_firing_count_of_a_state_file_counts_firing_alerts_not_pending_ones(path, clock):
    from alerts.state import count_firing

    assert count_firing(path) == 0  # no file yet
    tracker = AlertTracker(path, clock)
    tracker.observe(DOWN, NOTE, True, 0)
    tracker.observe({**DOWN, "host": "hv2"}, NOTE, True, 60)
    assert count_firing(path) == 1 == len(tracker.firing())
    path.write_text('{"version": 1, "alerts": []}')
    with pytest.raises(StateError, match="alerts.json.*unreadable"):
        count_firing(path)


def test_the_state_file_is_private_under_a_permissive_umask(tmp_path):
    previous = os.umask(0)  # the process's umask is global: restored below
    try:
        tracker = AlertTracker(alert_state_path(tmp_path), clock=Clock())
        tracker.observe(DOWN, NOTE, True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(alert_state_path(tmp_path)).st_mode) == 0o600  # tsdb.durable writes it
