"""The daemon's state from evidence (collector.daemon_state): whole sequences of observations and the events
they give, with the clock passed in."""

from __future__ import annotations

import pytest

from collector.daemon_process import ProcessEvidence
from collector.daemon_state import DaemonState

DEADLINE = 5.0
STOPPED = ProcessEvidence(True, 42, "T")
SLEEPING = ProcessEvidence(True, 42, "S")
GONE = ProcessEvidence(False)
UNKNOWN = ProcessEvidence()


def kinds(transitions) -> list[str]:
    return [t.kind for t in transitions]


def up_at(now: float = 0.0, hang_end_probes: int = 2) -> DaemonState:
    state = DaemonState(hang_end_probes)
    assert state.answered(now, 0.001, DEADLINE) == []
    return state


def test_the_first_answer_makes_the_daemon_up_without_an_event():
    state = DaemonState()
    assert state.answered(0.0, 0.002, DEADLINE) == [] and state.state == "up"


def test_a_call_waiting_past_the_deadline_on_a_live_process_is_a_hang_that_says_what_was_seen():
    state = up_at()
    events = state.not_answering(15.0, 10.0, "the stats probe has had no answer for 5.0 s", STOPPED)
    assert kinds(events) == ["hang_start"] and state.state == "hung"
    assert "no answer for 5.0 s" in events[0].message and "(pid 42) is stopped (state T)" in events[0].message
    assert state.hang_seconds(20.0) == 10.0  # from the moment the unanswered call was made


def test_a_hang_held_for_minutes_is_one_incident_whatever_the_daemon_does_meanwhile():
    state = up_at()
    observed = state.not_answering(15.0, 10.0, "probe", SLEEPING)
    for second in range(20, 200, 10):  # every interval: still no answer, a late answer now and then
        observed += state.not_answering(second, second - 5, "probe", SLEEPING)
        observed += state.answered(second + 1, 25.0, DEADLINE)  # a queued probe gets through, late
    assert kinds(observed) == ["hang_start"] and state.state == "hung"


def test_one_answer_in_time_does_not_end_a_hang_two_in_a_row_do():
    state = up_at()
    state.not_answering(15.0, 10.0, "probe", SLEEPING)
    assert state.answered(20.0, 0.002, DEADLINE) == []
    assert state.not_answering(25.0, 22.0, "probe", SLEEPING) == []  # the run of answers is broken
    assert state.answered(30.0, 0.002, DEADLINE) == []
    events = state.answered(32.0, 0.003, DEADLINE)
    assert kinds(events) == ["hang_end"] and state.state == "up"
    assert events[0].fields["duration_seconds"] == 22.0 and "2 probes in a row" in events[0].message


@pytest.mark.parametrize("probes", [1, 3])
def test_the_answers_that_end_a_hang_are_configurable(probes):
    state = up_at(hang_end_probes=probes)
    state.not_answering(15.0, 10.0, "probe", SLEEPING)
    answers = [kinds(state.answered(20.0 + n, 0.002, DEADLINE)) for n in range(probes)]
    assert answers == [[]] * (probes - 1) + [["hang_end"]]


def test_a_hung_daemon_whose_process_disappears_is_down_and_its_hang_ends_saying_so():
    state = up_at()
    state.not_answering(15.0, 10.0, "probe", STOPPED)
    events = state.not_answering(30.0, 10.0, "probe", GONE)
    assert kinds(events) == ["hang_end", "daemon_down"] and state.state == "down"
    assert "gone" in events[0].message and "no libvirtd process is running" in events[1].message


def test_only_evidence_of_absence_makes_a_daemon_down():
    state = up_at()
    events = state.absent(5.0, "cannot connect: Connection refused (nobody listens)")
    assert kinds(events) == ["daemon_down"] and state.state == "down"
    assert state.absent(10.0, "again") == []  # one incident


def test_a_daemon_back_but_not_answering_is_up_then_hung():
    state = up_at()
    state.absent(5.0, "refused")
    events = state.not_answering(20.0, 15.0, "connecting has had no answer for 5.0 s", SLEEPING)
    assert kinds(events) == ["daemon_up", "hang_start"] and state.state == "hung"
    assert "does not answer" in events[0].message


def test_a_down_daemon_that_answers_again_is_up_at_once():
    state = up_at()
    state.absent(5.0, "refused")
    events = state.answered(12.0, 0.002, DEADLINE)
    assert kinds(events) == ["daemon_up"] and events[0].fields["duration_seconds"] == 7.0


def test_an_error_from_the_daemon_proves_it_is_there_but_ends_no_hang():
    state = up_at()
    state.not_answering(15.0, 10.0, "probe", SLEEPING)
    assert state.answered_with_error(20.0, "domain not found") == [] and state.state == "hung"
    state = up_at()
    state.absent(5.0, "refused")
    assert kinds(state.answered_with_error(8.0, "domain not found")) == ["daemon_up"]


def test_without_process_figures_a_daemon_that_does_not_answer_is_hung():
    state = up_at()
    assert kinds(state.not_answering(15.0, 10.0, "probe", UNKNOWN)) == ["hang_start"]
