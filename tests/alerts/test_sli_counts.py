"""SLIs count good and total events per host and fleet-wide from planted points, and rollups add up the same."""

import pytest

from alerts.sli import Counts, compute_sli, read_rollups, rollup_points
from alerts.slo import SLO, Source
from tsdb import Point

NOW = 1_709_294_400 * 10**9  # 2024-03-01T12:00:00Z, on a whole minute
S = 10**9
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'


def libvirtd(host, seconds_ago, ok, latency=None):
    fields = {"probe_ok": ok, "up": ok}
    if latency is not None:
        fields["probe_latency_ms"] = float(latency)
    return Point("libvirtd", {"host": host}, fields, NOW - seconds_ago * S)


def domain(host, name, seconds_ago, state, partial=0):
    return Point("domain", {"host": host, "domain": name}, {"state_code": state, "stats_partial": partial},
                 NOW - seconds_ago * S)


def failure(host, kind, name, seconds_ago):
    return Point("event", {"host": host, "kind": kind, "severity": "critical", "domain": name},
                 {"message": f"domain {name!r}: {kind}", "count": 1}, NOW - seconds_ago * S)


def collector(host, seconds_ago):
    return Point("collector", {"host": host}, {"scrape_duration_ms": 12.5}, NOW - seconds_ago * S)


PLANTED = [
    libvirtd("hv1", 30, 1, 100), libvirtd("hv1", 90, 1, 999.9), libvirtd("hv1", 150, 1, 1000),
    libvirtd("hv1", 210, 1, 1500), libvirtd("hv1", 270, 0),
    libvirtd(HOSTILE, 40, 1, 20), libvirtd(HOSTILE, 100, 0), libvirtd(HOSTILE, 4000, 0),
    domain("hv1", "guest-a", 30, 1), domain("hv1", "guest-a", 90, 6), domain("hv1", 'guest 2,"b"', 30, 1, 1),
    domain(HOSTILE, 'guest 2,"b"', 30, 5), domain(HOSTILE, "x", 7200, 6),
    failure("hv1", "domain_failed", "guest-a", 100), failure(HOSTILE, "domain_crashed", 'guest 2,"b"', 45),
    failure(HOSTILE, "domain_io_error", 'guest 2,"b"', 40), failure(HOSTILE, "domain_failed", "x", 7200),
    collector("hv1", 60), collector("hv1", 55), collector("hv1", 30), collector(HOSTILE, 86400),
    collector("gone", 31 * 86400),
]
LAST_5M = (NOW - 300 * S, NOW)
CASES = {
    "availability counts probes that succeeded among all probes": (
        SLO("a", 99.9, "libvirtd_availability"), {"hv1": Counts(4, 5), HOSTILE: Counts(1, 2)}),
    "latency counts successful probes under the threshold, and a failed probe is never fast": (
        SLO("l", 99, "libvirtd_latency", threshold_ms=1000), {"hv1": Counts(2, 5), HOSTILE: Counts(1, 2)}),
    "domain stability counts guest failure events and partial points as bad, every other state as good": (
        SLO("d", 99.9, "domain_stability"), {"hv1": Counts(2, 4), HOSTILE: Counts(1, 2)}),
    # hv1 is new (first point 60 s ago): expected from then on. HOSTILE last wrote a day ago: still expected,
    # all missed. "gone" last wrote 31 days ago: decommissioned, not counted at all.
    "freshness counts intervals with a point from a host's first point until a day after its last": (
        SLO("f", 99, "collection_freshness", interval_seconds=10), {"hv1": Counts(2, 6), HOSTILE: Counts(0, 30)}),
    "a custom sli sums and counts the fields it names, filtered by tag": (
        SLO("c", 99, "custom", good=Source("libvirtd", "up", "sum", (("host", HOSTILE),)),
            total=Source("libvirtd", "up", "count")), {"hv1": Counts(0, 5), HOSTILE: Counts(1, 2)}),
}


@pytest.mark.influxdb
@pytest.mark.parametrize("slo, expected", CASES.values(), ids=CASES.keys())
def test_counts_per_host_and_fleet(store, slo, expected):
    store.write(PLANTED)
    result = compute_sli(store, slo, *LAST_5M)
    assert result.hosts == expected
    assert result.counts() == sum(expected.values(), Counts())
    assert result.counts("nobody") == Counts()


@pytest.mark.influxdb
@pytest.mark.parametrize("slo, expected", CASES.values(), ids=CASES.keys())
def test_rollups_read_back_equal_the_direct_computation(store, slo, expected):
    store.write(PLANTED)
    start, end = NOW - 7200 * S, NOW
    points = rollup_points(store, slo, start, end)
    assert all(p.time_ns % (60 * S) == 0 and p.tags["slo"] == slo.name for p in points)
    store.write(points)
    assert read_rollups(store, slo, start, end) == compute_sli(store, slo, start, end)
    assert read_rollups(store, slo, *LAST_5M).hosts == expected


@pytest.mark.influxdb
def test_rollups_of_one_slo_never_mix_with_another_slo_of_the_same_host(store):
    store.write(PLANTED)
    first, second = SLO('avail, "one" ✓', 99.9, "libvirtd_availability"), SLO("two", 99, "domain_stability")
    for slo in (first, second):
        store.write(rollup_points(store, slo, *LAST_5M))
    assert read_rollups(store, first, *LAST_5M).counts() == Counts(5, 7)
    assert read_rollups(store, second, *LAST_5M).counts() == Counts(3, 6)


def test_a_rollup_range_off_the_minute_is_refused(duckdb_store):
    with pytest.raises(ValueError, match="whole minutes"):
        rollup_points(duckdb_store, SLO("a", 99.9, "libvirtd_availability"), NOW - 90 * S, NOW)


def test_a_store_with_no_points_counts_nothing(duckdb_store):
    for slo, _expected in CASES.values():
        assert compute_sli(duckdb_store, slo, *LAST_5M).counts() == Counts()
        assert rollup_points(duckdb_store, slo, *LAST_5M) == []
