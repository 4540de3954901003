"""The history's SLI rollups computed inside DuckDB are exactly the rollups alerts.rollups.roll_up writes."""

import tomllib

import pytest
from simulated_fleets import busy_spec
from test_columns import stored

from alerts.rollups import NO_ROLLUPS, roll_up
from alerts.slo import parse_slos
from simulator import simulate, write_simulation
from simulator.rollups import roll_up_history
from tsdb.embedded import EmbeddedStore
from tsdb.point import Point

MINUTE = 60 * 10**9
#: every built-in SLI; freshness at 1 minute (the simulated agents write every 2: each step misses one) and 30 s
SLOS = parse_slos(tomllib.loads("""
[[slo]]
name = "availability"
objective = 99.9
period = "30d"
sli = "libvirtd_availability"

[[slo]]
name = "latency"
objective = 99.0
period = "30d"
sli = "libvirtd_latency"
threshold_ms = 250

[[slo]]
name = "stability"
objective = 99.9
period = "30d"
sli = "domain_stability"

[[slo]]
name = "fresh, \\"30s\\""
objective = 99.0
period = "30d"
sli = "collection_freshness"
interval_seconds = 30

[[slo]]
name = "fresh 1m"
objective = 99.0
period = "30d"
sli = "collection_freshness"
interval_seconds = 60
"""))


def planted(sim) -> list[Point]:
    """Rows the simulator never writes: a probe without latency, a latency without probe, a latency exactly at the
    threshold, a guest with only stats_partial (no state: not a domain-stability event) or only a crashed state, a
    host that appears late and falls silent, guest failure events (one on a host without domain points) and an
    I/O error event (not a stability event), partial points of a guest starting up, of a paused one, and of a
    paused one without a reason."""
    t = sim.end_ns - 3 * 3600 * 10**9 + 7 * 10**9
    host = sim.hosts[0]
    return [Point("libvirtd", {"host": host}, {"probe_ok": 1}, t),
            Point("libvirtd", {"host": host}, {"probe_latency_ms": 5.0}, t + 1),
            Point("libvirtd", {"host": "late host, \"x\""}, {"probe_ok": 1, "probe_latency_ms": 250.0}, t + 2),
            Point("libvirtd", {"host": "late host, \"x\""}, {"probe_ok": 0, "probe_latency_ms": 1.0}, t + 3),
            Point("domain", {"host": host, "domain": "only partial"}, {"stats_partial": 1}, t + 4),
            Point("domain", {"host": host, "domain": "only crashed"}, {"state_code": 6}, t + 5),
            Point("domain", {"host": "late host, \"x\"", "domain": "d"}, {"state_code": 1, "stats_partial": 0}, t),
            Point("collector", {"host": "late host, \"x\""}, {"scrape_duration_ms": 3.0}, t),
            Point("collector", {"host": "late host, \"x\""}, {"scrape_duration_ms": 3.0}, t + 5 * MINUTE),
            failure(host, "domain_failed", "only crashed", t + 6),
            failure("late host, \"x\"", "domain_crashed", "d", t + 7),
            failure("no guest points 'ü'", "domain_crashed", "gone", t + 8),
            failure(host, "domain_io_error", "only crashed", t + 9),  # not a guest failure: no stability event
            Point("domain", {"host": host, "domain": "starting"},  # partial while starting up: good
                  {"state_code": 3, "state_reason_code": 11, "stats_partial": 1}, t + 10),
            Point("domain", {"host": host, "domain": "wedged, paused"},  # partial while paused: wedged, bad
                  {"state_code": 3, "state_reason_code": 1, "stats_partial": 1}, t + 11),
            Point("domain", {"host": host, "domain": "wedged, no reason"},  # paused, no reason: cannot tell, good
                  {"state_code": 3, "stats_partial": 1}, t + 12)]


def failure(host, kind, domain, time_ns) -> Point:
    """An event as the agent writes it (collector.event_points)."""
    return Point("event", {"host": host, "kind": kind, "severity": "critical", "domain": domain},
                 {"message": f"domain {domain!r}: {kind}", "count": 1}, time_ns)


@pytest.mark.parametrize("lag_minutes", [0, 37], ids=["now at the end", "now 37 minutes later"])
def test_the_rollups_of_every_built_in_sli_equal_roll_ups_minute_and_hour_by_minute_and_hour(tmp_path, lag_minutes):
    sim = simulate(busy_spec(hosts=3, days=2.5, host_prefix="hv ,\"q\"-"))
    now = sim.end_ns + lag_minutes * MINUTE + 13 * 10**9
    backfill = int(2.5 * 86400) + 3600
    with EmbeddedStore(str(tmp_path / "alerts.duckdb")) as by_alerts, \
            EmbeddedStore(str(tmp_path / "history.duckdb")) as by_history:
        for store in (by_alerts, by_history):
            write_simulation(store, sim)
            store.write(planted(sim))
        expected = {slo.name: roll_up(by_alerts, slo, now, NO_ROLLUPS, backfill_seconds=backfill,
                                      chunk_seconds=86400) for slo in SLOS}
        progress = []
        got = roll_up_history(by_history, SLOS, now, backfill, progress=lambda *a: progress.append(a))
        assert got == expected
        assert progress[0] == (0, len(SLOS)) and progress[-1] == (len(SLOS), len(SLOS))
        rollups_expected, rollups_got = stored(by_alerts)["sli"], stored(by_history)["sli"]
        fleet_expected, fleet_got = stored(by_alerts)["sli_fleet"], stored(by_history)["sli_fleet"]
    assert rollups_got == rollups_expected
    assert fleet_got == fleet_expected and len(fleet_got[("tag", "resolution")]) > 1000
    resolutions = rollups_got[("tag", "resolution")]
    assert resolutions.count("1m") > 5000 and resolutions.count("1h") > 100


def test_a_store_without_the_raw_measurements_gets_no_rollups(tmp_path):
    with EmbeddedStore(str(tmp_path / "empty.duckdb")) as store:
        done = roll_up_history(store, SLOS, 10**18, 86400)
        assert store.table_of("sli") is None
        assert all(coverage.hour_until_ns == floor_hour for coverage, floor_hour in
                   zip(done.values(), [roll_up(store, slo, 10**18, NO_ROLLUPS).hour_until_ns for slo in SLOS]))
