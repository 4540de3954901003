"""Domain stability counts the agents' round counts (`domain_round`, tsdb.wedged) and reads no guest series for
hosts that write them; a host without them (an older agent) is counted from its domain points, minute by minute;
on the same guests both ways give the same counts. Both stores; host and domain names are hostile on purpose."""

from collections import defaultdict

import pytest
from test_domain_stability_counts import HOST, MINUTE, NOW, OTHER, STABILITY, START, planted_hour

from alerts.sli import Counts, compute_sli, read_rollups, rollup_points, window_counts
from tsdb import Point
from tsdb.wedged import DOMAIN_ROUND, round_fields

TWIN = 'hv 3 twin, "rounds"=ü'


class CountingStore:
    """A store that records each read's (method, measurement, where) and passes it on."""

    def __init__(self, store):
        self.store, self.reads = store, []

    def __getattr__(self, name):
        attribute = getattr(self.store, name)
        if name not in ("query", "latest", "tag_values", "events"):
            return attribute

        def read(*args, **kwargs):
            measurement = args[0] if args and isinstance(args[0], str) else name
            self.reads.append((name, measurement, kwargs.get("where")))
            return attribute(*args, **kwargs)
        return read

    def queried(self, measurement):
        """The `where` of every query and latest read of a measurement."""
        return [where for method, m, where in self.reads if m == measurement and method in ("query", "latest")]


def renamed(points, host):
    """The same points under another host's name."""
    return [Point(p.measurement, {**p.tags, "host": host}, p.fields, p.time_ns)
            for p in points if p.tags["host"] == HOST]


def rounds_of(points, since_ns=0):
    """The `domain_round` points an agent writes for these domain points: one per host and time (a round)."""
    rounds = defaultdict(list)
    for p in points:
        if p.measurement == "domain" and p.time_ns >= since_ns:
            rounds[(p.tags["host"], p.time_ns)].append(p.fields)
    return [Point(DOMAIN_ROUND, {"host": host}, round_fields(fields), at) for (host, at), fields in rounds.items()]


def minutes(store, host):
    """One host's (good, total) per minute of the range."""
    frame = window_counts(store, STABILITY, START, NOW, 60)
    mine = frame[frame["host"] == host]
    return dict(zip(mine["time_ns"], zip(mine["good"], mine["total"])))


@pytest.mark.influxdb
def test_a_host_with_round_counts_counts_the_same_as_its_twin_counted_from_points_and_reads_no_guest_series(store):
    points = planted_hour()
    twin = renamed(points, TWIN)
    store.write(points + twin + rounds_of(twin))
    counting = CountingStore(store)
    per_minute = window_counts(counting, STABILITY, START, NOW, 60)
    assert counting.queried("domain") == [{"host": [HOST, OTHER]}] * 2  # the wedged and total counts, not the twin
    assert counting.queried(DOMAIN_ROUND) == [None]
    assert minutes(store, TWIN) == minutes(store, HOST) and len(minutes(store, HOST)) == 30
    whole = compute_sli(store, STABILITY, START, NOW).hosts
    assert whole[TWIN] == whole[HOST] and whole[HOST].bad == 2 + 24 and len(per_minute) == 3 * 30
    store.write(rollup_points(store, STABILITY, START, NOW))
    assert read_rollups(store, STABILITY, START, NOW).hosts == whole


@pytest.mark.influxdb
def test_a_fleet_of_current_agents_reads_no_domain_series_at_all(store):
    points = planted_hour()
    store.write(points + rounds_of(points))
    counting = CountingStore(store)
    whole = compute_sli(counting, STABILITY, START, NOW).hosts
    assert counting.queried("domain") == []
    assert whole[HOST].bad == 26 and whole[OTHER].bad == 26 and whole[HOST].total == whole[OTHER].total


@pytest.mark.influxdb
def test_the_round_counts_are_what_is_counted_where_a_host_has_them(store):
    points = planted_hour()
    store.write(points + rounds_of(points))
    good, total = minutes(store, HOST)[NOW - MINUTE]
    # a round whose points never reached the store (a full spool dropped them): its count still holds
    store.write([Point(DOMAIN_ROUND, {"host": HOST}, {"domain_points": 5, "wedged_points": 4}, NOW - 25 * 10**9)])
    assert minutes(store, HOST)[NOW - MINUTE] == (good + 1, total + 5)


@pytest.mark.influxdb
def test_an_agent_upgraded_mid_range_is_counted_from_points_before_and_from_rounds_after(store):
    points = planted_hour()
    upgraded = START + 15 * MINUTE
    twin = renamed(points, TWIN)
    store.write(points + twin + rounds_of(twin, since_ns=upgraded))
    counting = CountingStore(store)
    window_counts(counting, STABILITY, START, NOW, 60)
    assert counting.queried("domain") == [None] * 2  # every host lacks rounds in some minute: no host filter
    assert minutes(store, TWIN) == minutes(store, HOST)
    rolled = rollup_points(store, STABILITY, START, NOW)
    store.write(rolled)
    rollups = read_rollups(store, STABILITY, START, NOW).hosts
    assert rollups[TWIN] == rollups[HOST]
    assert sum(Counts(p.fields["good_total"], p.fields["valid_total"]).bad for p in rolled
               if p.tags["host"] == TWIN) == 26
