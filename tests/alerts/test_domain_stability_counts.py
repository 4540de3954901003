"""Domain stability counts the way guests fail, on planted points in both stores: each failure event is one bad
event however long its guest stays down, a wedged guest's partial points are bad, a guest starting up is not,
and minute windows add up to the count of the whole range. Host and domain names are hostile on purpose."""

import pytest

from alerts.sli import Counts, compute_sli, read_rollups, rollup_points, window_counts
from alerts.slo import SLO
from tsdb import Point
from tsdb.schema import EVENT_KINDS, GUEST_FAILURE_KINDS

S = 10**9
MINUTE = 60 * S
NOW = 1_709_294_400 * S  # 2024-03-01T12:00:00Z, on a whole minute
START = NOW - 30 * MINUTE
HOST = 'hv 1, "guests"=\\tail ü🙂'
OTHER = "hv-2 'q'"
GUEST = 'db "primary", ü'
STABILITY = SLO('stability, "guests"', 99.9, "domain_stability")
RUNNING, PAUSED, SHUT_OFF, CRASHED = 1, 3, 5, 6  # virDomainState
PAUSED_USER, PAUSED_STARTING_UP, SHUTOFF_CRASHED = 1, 11, 3  # virDomainPausedReason, virDomainShutoffReason


def domain(host, name, at_ns, state, reason, partial=None):
    """A domain point as the agent writes it (stats_partial only where the record tells)."""
    fields = {"state_code": state, "state_reason_code": reason}
    if partial is not None:
        fields["stats_partial"] = partial
    return Point("domain", {"host": host, "domain": name}, fields, at_ns)


def event(host, kind, name, at_ns):
    """An event as the agent writes it (collector.event_points)."""
    return Point("event", {"host": host, "kind": kind, "severity": EVENT_KINDS[kind].severity, "domain": name},
                 {"message": f"domain {name!r}: {kind}", "count": 1}, at_ns)


def every_10s(host, name, first_ns, last_ns, state, reason, partial=None):
    """A guest's points every 10 s in [first_ns, last_ns)."""
    return [domain(host, name, t, state, reason, partial) for t in range(first_ns, last_ns, 10 * S)]


def counts(store, start=START, end=NOW):
    """The SLI's counts per host over [start, end)."""
    return compute_sli(store, STABILITY, start, end).hosts


def test_the_guest_failure_kinds_are_critical_event_kinds():
    assert set(GUEST_FAILURE_KINDS) == {"domain_failed", "domain_crashed"}
    assert {EVENT_KINDS[kind].severity for kind in GUEST_FAILURE_KINDS} == {"critical"}


@pytest.mark.influxdb
def test_a_killed_guest_is_one_bad_event_however_long_it_stays_shut_off(store):
    killed = START + 5 * MINUTE + 3 * S
    store.write(every_10s(HOST, GUEST, START, killed, RUNNING, 1, 0)
                + [event(HOST, "domain_failed", GUEST, killed + 2 * S)]
                + every_10s(HOST, GUEST, killed + 7 * S, NOW, SHUT_OFF, SHUTOFF_CRASHED))
    assert counts(store) == {HOST: Counts(180, 181)}  # 180 points, one failure
    assert counts(store, START, killed).get(HOST, Counts()).bad == 0


@pytest.mark.influxdb
def test_a_guest_left_in_the_crashed_state_counts_once_by_its_event(store):
    crashed = START + 60 * S
    store.write(every_10s(OTHER, GUEST, START, crashed, RUNNING, 1, 0)
                + [event(OTHER, "domain_crashed", GUEST, crashed)]
                + every_10s(OTHER, GUEST, crashed, NOW, CRASHED, 1))
    assert counts(store) == {OTHER: Counts(180, 181)}


@pytest.mark.influxdb
def test_a_wedged_guest_is_bad_at_every_partial_point_and_a_guest_starting_up_is_not(store):
    store.write([domain(HOST, GUEST, START + 1 * S, RUNNING, 1, 1),  # wedged while running: bad
                 domain(HOST, GUEST, START + 2 * S, PAUSED, PAUSED_USER, 1),  # wedged while paused: bad
                 domain(HOST, "vm,2", START + 3 * S, PAUSED, PAUSED_STARTING_UP, 1),  # starting: good
                 domain(HOST, "vm,2", START + 4 * S, PAUSED, PAUSED_STARTING_UP, 0),
                 domain(HOST, "vm,2", START + 5 * S, RUNNING, 1, 0),
                 domain(HOST, "vm 3", START + 6 * S, RUNNING, 1)])  # no stats_partial: the record cannot tell
    assert counts(store) == {HOST: Counts(4, 6)}


@pytest.mark.influxdb
def test_only_guest_failure_events_count_and_a_host_without_guest_points_counts_its_failures(store):
    store.write([event(HOST, kind, GUEST, START + i * S) for i, kind in enumerate(
                    ["domain_io_error", "domain_watchdog", "domain_wedged", "restart", "hang_start"])]
                + [domain(HOST, GUEST, START + 10 * S, RUNNING, 1, 0),
                   domain(HOST, "vm,2", START + 11 * S, RUNNING, 1, 0),
                   Point("domain", {"host": HOST, "domain": "only partial"}, {"stats_partial": 1}, START + 12 * S),
                   event(OTHER, "domain_failed", "x", START + 13 * S),
                   event(OTHER, "domain_crashed", "x", START + 14 * S),
                   event(OTHER, "domain_failed", "before the range", START - 1)])
    assert counts(store) == {HOST: Counts(2, 2), OTHER: Counts(0, 2)}


def planted_hour():
    """Two hosts over 30 minutes: guests running, failing on and next to minute edges, wedged, starting again."""
    points = []
    for host in (HOST, OTHER):
        points += every_10s(host, GUEST, START, NOW, RUNNING, 1, 0)
        points += every_10s(host, "vm,2", START, START + 10 * MINUTE, RUNNING, 1, 0)
        points += every_10s(host, "vm,2", START + 10 * MINUTE, START + 20 * MINUTE, SHUT_OFF, SHUTOFF_CRASHED)
        points += [domain(host, "vm,2", START + 20 * MINUTE, PAUSED, PAUSED_STARTING_UP, 1)]
        points += every_10s(host, "vm,2", START + 20 * MINUTE + 10 * S, NOW, RUNNING, 1, 0)
        points += every_10s(host, "wedged", START + 3 * MINUTE, START + 7 * MINUTE, RUNNING, 1, 1)
    points += [event(HOST, "domain_failed", "vm,2", START + 10 * MINUTE),  # on the minute edge
               event(HOST, "domain_failed", GUEST, START + 11 * MINUTE - 1),  # the last nanosecond of a minute
               event(OTHER, "domain_crashed", "vm,2", START + 10 * MINUTE - 1),
               event(OTHER, "domain_failed", "vm,2", NOW - 1)]
    return points


@pytest.mark.influxdb
def test_minute_windows_and_their_rollups_add_up_to_the_count_of_the_whole_range(store):
    store.write(planted_hour())
    whole = counts(store)
    wedged_points = 24  # 4 minutes every 10 s
    assert whole[HOST].bad == 2 + wedged_points and whole[OTHER].bad == 2 + wedged_points
    minutes = window_counts(store, STABILITY, START, NOW, 60)
    assert set(minutes["time_ns"] % MINUTE) == {0}
    for host in (HOST, OTHER):
        mine = minutes[minutes["host"] == host]
        assert Counts(mine["good"].sum(), mine["total"].sum()) == whole[host]
    by_minute = minutes.assign(bad=minutes["total"] - minutes["good"]).set_index(["host", "time_ns"])["bad"]
    assert by_minute[(HOST, START + 10 * MINUTE)] == 2 and by_minute[(OTHER, START + 9 * MINUTE)] == 1
    assert by_minute[(HOST, START + 20 * MINUTE)] == 0  # the guest starting again
    store.write(rollup_points(store, STABILITY, START, NOW))
    assert read_rollups(store, STABILITY, START, NOW).hosts == whole
