"""SLI rollups: minute and hour rollups written round by round, and windows read through them equal raw counts."""

import random

import pytest

from alerts.burn import evaluate_hosts
from alerts.rollups import (REROLL_SECONDS, HOUR_NS, MINUTE_NS, NO_ROLLUPS, Coverage, coverage, pieces, roll_up,
                            rollup_pieces)
from alerts.slo import SLO
from tsdb import Point

S = 10**9
NOW = 1_709_294_400 * S + 37 * S + 250_000_000  # 2024-03-01T12:00:37.25Z: off the minute on purpose
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'
SLOS = [SLO("availability", 99.9, "libvirtd_availability"),
        SLO("latency", 99.0, "libvirtd_latency", threshold_ms=500.0),
        SLO("stability", 99.5, "domain_stability"),
        SLO("freshness", 99.0, "collection_freshness", interval_seconds=10)]

PIECES = {
    "a range inside the rolled minutes reads minute rollups only": (
        (0, 30 * MINUTE_NS), Coverage(HOUR_NS, 0), [("1m", 0, 30 * MINUTE_NS)]),
    "a range past the rolled minutes reads raw points after them": (
        (0, 90 * MINUTE_NS + 5 * S), Coverage(60 * MINUTE_NS, 0),
        [("1m", 0, 60 * MINUTE_NS), ("raw", 60 * MINUTE_NS, 90 * MINUTE_NS + 5 * S)]),
    "whole hours come from hour rollups and the edges from minutes": (
        (30 * MINUTE_NS, 5 * HOUR_NS + 10 * MINUTE_NS), Coverage(5 * HOUR_NS, 4 * HOUR_NS),
        [("1m", 30 * MINUTE_NS, HOUR_NS), ("1h", HOUR_NS, 4 * HOUR_NS), ("1m", 4 * HOUR_NS, 5 * HOUR_NS),
         ("raw", 5 * HOUR_NS, 5 * HOUR_NS + 10 * MINUTE_NS)]),
    "without rollups everything is raw": (
        (0, 2 * HOUR_NS), NO_ROLLUPS, [("raw", 0, 2 * HOUR_NS)]),
}


@pytest.mark.parametrize("bounds, done, expected", PIECES.values(), ids=PIECES.keys())
def test_a_range_splits_into_the_pieces_each_resolution_answers(bounds, done, expected):
    assert pieces(*bounds, done) == expected


def test_a_range_read_through_rollups_must_start_on_a_whole_minute():
    with pytest.raises(ValueError, match="whole minute"):
        pieces(5 * S, HOUR_NS, Coverage(HOUR_NS, 0))


ROLLUP_PIECES = {
    "a day read from rollups alone takes whole hours to two hours before its end from the hour rollups": (
        (30 * MINUTE_NS + 5 * S, 24 * HOUR_NS + 17 * MINUTE_NS + 3 * S, 1),
        [("1m", 30 * MINUTE_NS + 5 * S, HOUR_NS), ("1h", HOUR_NS, 22 * HOUR_NS),
         ("1m", 22 * HOUR_NS, 24 * HOUR_NS + 17 * MINUTE_NS + 3 * S)]),
    "a range starting on the hour has no minute head": (
        (HOUR_NS, 6 * HOUR_NS, 1), [("1h", HOUR_NS, 4 * HOUR_NS), ("1m", 4 * HOUR_NS, 6 * HOUR_NS)]),
    "fewer whole hours than asked for are read from the minute rollups": (
        (HOUR_NS, 4 * HOUR_NS + 59 * MINUTE_NS, 2), [("1m", HOUR_NS, 4 * HOUR_NS + 59 * MINUTE_NS)]),
    "a range within one minute is one minute piece": ((5 * S, 50 * S, 1), [("1m", 5 * S, 50 * S)]),
    "an empty range has no pieces": ((50 * S, 50 * S, 1), []),
}


@pytest.mark.parametrize("bounds, expected", ROLLUP_PIECES.values(), ids=ROLLUP_PIECES.keys())
def test_a_range_read_from_rollups_alone_splits_into_minute_and_hour_pieces(bounds, expected):
    start_ns, end_ns, min_hours = bounds
    assert rollup_pieces(start_ns, end_ns, min_hours) == expected


def planted(seed=7, hours=30):
    """Two hosts (one hostile) with probes, domains and collector points every 10 s, and random failures (guest
    failures as the agent's events)."""
    rng = random.Random(seed)
    points = []
    first = (NOW - hours * 3600 * S) // (10 * S) * (10 * S)
    for host in ("hv1", HOSTILE):
        for t in range(first, NOW, 10 * S):
            if rng.random() < 0.02:
                continue  # a missed interval: freshness counts it
            at = t + rng.randrange(0, 9) * S
            ok = int(rng.random() > 0.01)
            points.append(Point("libvirtd", {"host": host},
                                {"probe_ok": ok, "probe_latency_ms": rng.choice([20.0, 80.0, 900.0])}, at))
            points.append(Point("collector", {"host": host}, {"scrape_duration_ms": 3.0}, at))
            for domain in ("vm a", "vm,b"):
                state = 6 if rng.random() < 0.003 else 1
                points.append(Point("domain", {"host": host, "domain": domain},
                                    {"state_code": state, "stats_partial": int(rng.random() < 0.003)}, at))
                if rng.random() < 0.003:  # the guest failed: the agent's event, a bad domain-stability event
                    points.append(Point("event", {"host": host, "kind": "domain_failed", "severity": "critical",
                                                  "domain": domain}, {"message": "failed", "count": 1}, at + 1))
    return points


@pytest.mark.influxdb
def test_every_window_read_through_rollups_equals_the_raw_counts_for_every_slo_host_and_the_fleet(store):
    store.write(planted())
    for slo in SLOS:
        done = roll_up(store, slo, NOW, NO_ROLLUPS, backfill_seconds=2 * 86400, chunk_seconds=86400)
        assert done.minute_until_ns == (NOW - 60 * S) // MINUTE_NS * MINUTE_NS
        assert done.hour_until_ns > 0
        assert coverage(store, slo, NOW) == done
        raw, rolled = evaluate_hosts(store, slo, NOW), evaluate_hosts(store, slo, NOW, done)
        assert set(raw) == set(rolled) == {None, "hv1", HOSTILE}
        for host in raw:
            assert rolled[host].period == raw[host].period, (slo.name, host)
            assert rolled[host].windows == raw[host].windows, (slo.name, host)
        assert raw[None].period.total > 0 and raw[None].period.bad > 0


def test_a_late_point_inside_the_reroll_window_is_counted_once_its_minute_reaches_the_reroll_age(duckdb_store):
    slo = SLOS[0]
    minute = (NOW // MINUTE_NS - 5) * MINUTE_NS
    duckdb_store.write([Point("libvirtd", {"host": "hv1"}, {"probe_ok": 1}, minute + S)])
    done = roll_up(duckdb_store, slo, NOW, NO_ROLLUPS)
    duckdb_store.write([Point("libvirtd", {"host": "hv1"}, {"probe_ok": 0}, minute + 2 * S)])  # arrives late
    counts = []
    for round_ in range(1, 40):  # a round every 30 s: the minute is re-rolled once, when it is 10 minutes old
        now = NOW + round_ * 30 * S
        done = roll_up(duckdb_store, slo, now, done)
        period = evaluate_hosts(duckdb_store, slo, now, done)["hv1"].period
        counts.append((period.good, period.total))
    assert counts[-1] == (1.0, 2.0)
    assert counts.count((1.0, 1.0)) and counts[counts.index((1.0, 2.0)):] == [(1.0, 2.0)] * len(
        counts[counts.index((1.0, 2.0)):])


def test_each_minute_is_rolled_twice_however_many_rounds_pass(duckdb_store):
    from alerts.rollups import due_ranges

    rolled: dict[int, int] = {}
    first_end = (NOW // MINUTE_NS) * MINUTE_NS
    until = earliest = first_end - 3600 * S  # a first round backfilling an hour
    rerolled = until - REROLL_SECONDS * S
    queries = 0
    for round_ in range(200):  # then a round every 30 s
        end = first_end + round_ * 30 * S // MINUTE_NS * MINUTE_NS
        ranges, rerolled = due_ranges(until, rerolled, end, earliest)
        queries += len(ranges)
        for a, b in ranges:
            for minute in range(a, b, MINUTE_NS):
                rolled[minute] = rolled.get(minute, 0) + 1
        until = max(until, end)
    assert queries <= 100 + 100 // 5 + 2  # a range of new minutes each minute, a second pass every 5 minutes
    old_at_first = [m for m in rolled if m < first_end - REROLL_SECONDS * S]
    settled_since = [m for m in rolled if first_end <= m < rerolled]  # the second pass reached them
    assert len(old_at_first) == 50 and all(rolled[m] == 1 for m in old_at_first)  # settled: once is enough
    assert len(settled_since) > 50 and all(rolled[m] == 2 for m in settled_since)
    assert max(rolled.values()) == 2


def test_the_first_round_backfills_whole_hours_so_hour_rollups_hold_all_their_minutes(duckdb_store):
    slo = SLOS[0]
    start = NOW - 3 * 3600 * S
    duckdb_store.write([Point("libvirtd", {"host": "hv1"}, {"probe_ok": 1}, t) for t in range(start, NOW, 60 * S)])
    done = roll_up(duckdb_store, slo, NOW, NO_ROLLUPS, backfill_seconds=2 * 3600)
    hours = duckdb_store.query("sli", ["valid_total"], 0, NOW, where={"resolution": "1h"})
    assert list(hours["valid_total"]) == [60.0, 60.0]  # the two whole hours before the re-roll window
    assert done.hour_until_ns == hours["time"].astype("int64").max() + HOUR_NS


@pytest.mark.influxdb
def test_windows_read_while_agents_write_equal_the_raw_counts_read_after_they_stopped(store):
    # the settled edge: points land every moment (stamped up to a second before the write, as agents stamp
    # them), yet every window, raw or through rollups, counts the same points as a read after the writers stop
    import threading
    import time

    now = time.time_ns()
    shift = now - NOW
    store.write([Point(p.measurement, p.tags, p.fields, p.time_ns + shift) for p in planted(hours=3)])
    stop, written = threading.Event(), [0]

    def agents(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            at = time.time_ns() - rng.randrange(0, 10**9)
            host = rng.choice(["hv1", HOSTILE, "hv-new"])
            store.write([Point("libvirtd", {"host": host}, {"probe_ok": rng.choice([0, 1]), "probe_latency_ms": 5.0},
                               at), Point("collector", {"host": host}, {"scrape_duration_ms": 3.0}, at),
                         Point("domain", {"host": host, "domain": "vm a"}, {"state_code": 1, "stats_partial": 0},
                               at)])
            written[0] += 3

    writers = [threading.Thread(target=agents, args=(seed,), daemon=True) for seed in range(2)]
    for writer in writers:
        writer.start()
    try:
        during = {}
        for slo in SLOS:
            done = roll_up(store, slo, now, NO_ROLLUPS, backfill_seconds=4 * 3600, chunk_seconds=3600)
            during[slo.name] = (evaluate_hosts(store, slo, now), evaluate_hosts(store, slo, now, done))
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    assert written[0] > 0
    for slo in SLOS:
        after = evaluate_hosts(store, slo, now)
        raw, rolled = during[slo.name]
        assert set(after) == set(raw) == set(rolled) == {None, "hv1", HOSTILE}, slo.name  # hv-new: not settled yet
        for host in after:
            assert raw[host].period == after[host].period == rolled[host].period, (slo.name, host)
            assert raw[host].windows == after[host].windows == rolled[host].windows, (slo.name, host)


class QueriesByMeasurement:
    """The real store, counting its `query` reads per measurement."""

    def __init__(self, store):
        self.store, self.counts = store, {}

    def query(self, measurement, *args, **kwargs):
        self.counts[measurement] = self.counts.get(measurement, 0) + 1
        return self.store.query(measurement, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.mark.influxdb
def test_slos_rolled_up_together_read_the_probes_they_share_once_and_roll_up_what_each_alone_would(store):
    from alerts.rollups import roll_up_each
    from alerts.sli import read_rollups

    store.write(planted(hours=3))
    counting = QueriesByMeasurement(store)
    done = roll_up_each(counting, SLOS, lambda slo, shared: roll_up(shared, slo, NOW, NO_ROLLUPS,
                                                                    backfill_seconds=2 * 3600))
    chunks = counting.counts["domain_round"]  # domain stability reads its rounds once per chunk
    assert chunks >= 2 and counting.counts["libvirtd"] == chunks  # availability and latency: one read for both
    together = {slo.name: read_rollups(store, slo, NOW - 2 * 3600 * S, NOW) for slo in SLOS}
    for slo in SLOS:
        alone = roll_up(store, slo, NOW, NO_ROLLUPS, backfill_seconds=2 * 3600)  # the same points again
        assert alone == done[slo.name] and read_rollups(store, slo, NOW - 2 * 3600 * S, NOW) == together[slo.name]
