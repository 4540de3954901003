"""The dashboard's readers against real stores (InfluxDB 1.6 and DuckDB) holding the planted fleet."""

from __future__ import annotations

import datetime as dt

import pytest
from planted import to_ns
from planted import EVENTS, HOST_STATES, HOSTILE_HOST

from dashboard import data
from dashboard.timerange import TimeRange

pytestmark = pytest.mark.influxdb


def planted_range(now: dt.datetime, hours: int = 3) -> TimeRange:
    """Return the range of the last `hours` before the planted data's end."""
    return TimeRange(to_ns(now) - hours * 3600 * 10**9, to_ns(now), f"last {hours} hours")


def test_the_fleet_rows_give_each_planted_host_its_state_and_failures(planted_store, fixed_now):
    rows = {row["host"]: row for row in data.fleet_rows(planted_store, planted_range(fixed_now))}
    assert {host: row["status"] for host, row in rows.items()} == HOST_STATES
    assert rows["kvm-hung-02"]["job_queue_depth"] == 7
    assert rows["kvm-hung-02"]["saturation_percent"] == 100.0
    assert rows["kvm-up-01"]["saturation_percent"] == 10.0
    assert {host: row["failures"] for host, row in rows.items()} == {
        host: sum(1 for e in EVENTS if e.host == host and e.severity != "info") for host in HOST_STATES}
    assert rows["kvm-down-03"]["last_failure_kind"] == "daemon_down"


def test_a_host_silent_at_the_end_of_the_range_shows_no_data(planted_store, fixed_now):
    later = fixed_now + dt.timedelta(minutes=10)
    rows = data.fleet_rows(planted_store, planted_range(later))
    assert {row["status"] for row in rows} == {"no data"}


def test_a_hostile_host_name_filters_exactly_its_own_events(planted_store, fixed_now):
    rng = planted_range(fixed_now)
    frame = data.events(planted_store, rng, hosts=[HOSTILE_HOST])
    assert frame["message"].tolist() == ["keepalive timeout, client 12 closed"]
    injected = data.events(planted_store, rng, hosts=['"; DROP MEASUREMENT event; --', "' OR 1=1 --"])
    assert injected.empty
    assert len(data.events(planted_store, rng)) == len(EVENTS)  # nothing was dropped


def test_the_event_filters_combine(planted_store, fixed_now):
    rng = planted_range(fixed_now)
    found = data.events(planted_store, rng, kinds=["domain_crashed", "domain_io_error"], severities=["warning"])
    assert found["kind"].tolist() == ["domain_io_error"]
    assert data.events(planted_store, rng, domain='db "primary"')["kind"].tolist() == ["domain_crashed"]
    newest_first = data.events(planted_store, rng)["time"].tolist()
    assert newest_first == sorted(newest_first, reverse=True)


def test_the_domains_table_flags_the_guests_that_failed(planted_store, fixed_now):
    rows = {row.domain: row for row in data.host_domains(planted_store, "kvm-up-01", planted_range(fixed_now))}
    assert set(rows) == {"web-1", 'db "primary"'}
    assert rows['db "primary"'].state == "crashed" and rows['db "primary"'].failures == 1
    assert rows["web-1"].state == "running" and rows["web-1"].errors_total == 3
    assert rows["web-1"].cpu_percent == pytest.approx(50.0)  # 60 s of CPU a minute on 2 vCPUs
    assert rows["web-1"].read_bytes_per_second == pytest.approx(1024.0)


def test_the_health_series_are_windowed_so_long_ranges_stay_small(planted_store, fixed_now):
    rng = planted_range(fixed_now, hours=24 * 7)
    health = data.host_health(planted_store, "kvm-hung-02", rng)
    assert 1 <= len(health) <= 300
    assert health["job_queue_depth"].max() == 7
    assert health["hung"].max() == 1
    assert len(data.host_load(planted_store, "kvm-hung-02", rng)) <= 300


def test_the_fleet_burn_comes_from_the_sli_rollups(planted_store, slos, fixed_now):
    series = data.sli_series(planted_store, slos, planted_range(fixed_now))
    availability = series[series["slo"] == "libvirtd-availability"]
    # two hosts of five fail every probe at the end: 60% good, burning (1 - 0.6) / 0.001 = 400 times the budget
    assert availability["sli_percent"].iloc[-1] == pytest.approx(60.0)
    assert availability["burn_rate"].iloc[-1] == pytest.approx(400.0)
    assert availability["burn_rate"].iloc[0] == 0.0


def test_the_fleet_burn_reads_the_fleets_own_rollups_and_equals_the_sum_over_the_hosts(planted_store, slos,
                                                                                          fixed_now):
    rng = planted_range(fixed_now)
    fleet = data.sli_series(planted_store, slos, rng)
    summed = data._rollup_sums(planted_store, {"resolution": rng.rollup_resolution,
                                               "slo": [slo.name for slo in slos]},
                               rng.start_ns, rng.end_ns, max(rng.window_seconds, 60))
    assert planted_store.query("sli_fleet", ["valid_total"], rng.start_ns, rng.end_ns).shape[0] > 0
    summed = summed[summed["valid_total"] > 0].reset_index(drop=True)
    assert fleet[["time", "slo", "good_total", "valid_total"]].equals(summed[["time", "slo", "good_total",
                                                                             "valid_total"]])


def test_budgets_per_host_spend_only_where_probes_failed(planted_store, slos, fixed_now):
    budgets = data.budgets_by_host(planted_store, slos, to_ns(fixed_now))["libvirtd-availability"]
    assert budgets["kvm-up-01"] == 1.0 and budgets[HOSTILE_HOST] == 1.0
    assert budgets["kvm-hung-02"] < 0 and budgets["kvm-down-03"] < 0


def test_the_alert_history_lists_the_engines_alert_points(planted_store, fixed_now):
    rows = data.alert_history(planted_store, planted_range(fixed_now))
    assert [(r["alertname"], r["host"], r["status"], r["severity"]) for r in rows] == [
        ("LibvirtdHung", "kvm-hung-02", "firing", "page")]


def test_active_alerts_are_read_from_the_engines_state_file(tmp_path, fixed_now):
    from planted import plant_alert_state

    plant_alert_state(tmp_path, fixed_now)
    rows = data.active_alerts(tmp_path, lambda: fixed_now)
    assert [(r["state"], r["alertname"], r["host"]) for r in rows] == [("firing", "LibvirtdHung", "kvm-hung-02")]
    assert data.active_alerts(tmp_path / "nothing-here", lambda: fixed_now) == []


def test_known_hosts_are_every_host_that_wrote_anything(planted_store):
    assert data.known_hosts(planted_store) == sorted(HOST_STATES)


@pytest.mark.parametrize("rolled_up", [True, False], ids=["with-rollups", "raw-points-only"])
def test_without_engine_records_the_dashboard_evaluates_like_alerts_evaluate_hosts(store, slos, fixed_now, rolled_up):
    from alerts.burn import evaluate_hosts
    from alerts.rollups import coverage
    from planted import plant, roll_up_slis

    plant(store, to_ns(fixed_now))
    if rolled_up:
        roll_up_slis(store, slos, to_ns(fixed_now))
    at_ns = to_ns(fixed_now) + 30 * 10**9  # half a minute on: the raw tail after the rollups counts too
    evaluated = data.slo_evaluations(store, slos, at_ns)
    minute = at_ns - at_ns % (60 * 10**9)  # the dashboard evaluates at the minute
    for slo in slos:
        assert evaluated[slo.name] == evaluate_hosts(store, slo, minute, coverage(store, slo, minute))

def test_a_day_of_sli_reads_whole_hours_from_hour_rollups_and_equals_the_minute_rollups(duckdb_store):
    from tsdb import Point

    hour_ns, minute_ns = 3600 * 10**9, 60 * 10**9
    end_ns = 1_709_294_400 * 10**9 + 17 * minute_ns
    start_ns = end_ns - 24 * hour_ns
    points = []
    for t in range(start_ns - start_ns % minute_ns, end_ns, minute_ns):
        for host in ("hv1", 'hv 2,"x"'):
            good = 5.0 if (t // minute_ns) % 13 else 4.0
            points.append(Point("sli", {"host": host, "slo": "a", "resolution": "1m"},
                                {"good_total": good, "valid_total": 5.0}, t))
    for t in range(start_ns - start_ns % hour_ns, end_ns - 2 * hour_ns, hour_ns):
        minutes = [p for p in points if t <= p.time_ns < t + hour_ns and p.tags["host"] == "hv1"]
        for host in ("hv1", 'hv 2,"x"'):
            points.append(Point("sli", {"host": host, "slo": "a", "resolution": "1h"},
                                {"good_total": sum(p.fields["good_total"] for p in minutes),
                                 "valid_total": sum(p.fields["valid_total"] for p in minutes)}, t))
    duckdb_store.write(points)
    where = {"resolution": "1m", "slo": ["a"]}
    split = data._rollup_sums(duckdb_store, where, start_ns, end_ns, 3600)
    minutes_only = duckdb_store.query("sli", ["good_total", "valid_total"], start_ns, end_ns, where=where,
                                      window_seconds=3600, aggregate="sum", group_by=["slo"])
    assert len(split) == 25
    assert split[["good_total", "valid_total"]].values.tolist() == \
        minutes_only[["good_total", "valid_total"]].values.tolist()


@pytest.mark.parametrize("hosts", [30, 300])
def test_the_fleet_is_read_in_the_same_few_queries_whatever_its_size(store, fixed_now, hosts):
    from planted_fleet import plant_fleet
    from counting_store import CountingStore

    planted = plant_fleet(store, to_ns(fixed_now), hosts, hostile=False)
    counting = CountingStore(store)
    frame = data.read_fleet(counting, planted_range(fixed_now, hours=1))
    assert frame["host"].tolist() == sorted(host.name for host in planted)
    assert frame["status"].tolist() == [host.status for host in sorted(planted, key=lambda h: h.name)]
    # the newest points, the hosts, the silent hosts' newest points, restarts, failures, last failures (two parts)
    assert sorted(name for name, _args, _kwargs in counting.calls) == ["latest"] * 5 + ["query", "tag_values"]


def test_the_fleet_frame_is_read_once_for_every_page_sort_and_filter_within_seconds(store, fixed_now):
    from planted_fleet import plant_fleet
    from counting_store import CountingStore

    data.clear_caches()
    plant_fleet(store, to_ns(fixed_now), 60)
    counting = CountingStore(store)
    rng = planted_range(fixed_now, hours=1)
    first = data.fleet_frame(counting, rng)
    reads = len(counting.calls)
    later = TimeRange(rng.start_ns + 10**9, rng.end_ns + 10**9, rng.label)  # a second on, same bucket of 10 s
    assert data.fleet_frame(counting, later) is first and len(counting.calls) == reads
    data.clear_caches()
    assert data.fleet_frame(counting, later).equals(first) and len(counting.calls) == 2 * reads


def test_the_fleet_cache_is_kept_per_store_url_not_per_object(influxdb_server, fixed_now):
    import uuid

    from planted_fleet import plant_fleet
    from tsdb import open_store

    data.clear_caches()
    rng = planted_range(fixed_now, hours=1)
    names = [f"fleet_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    counts = []
    for index, name in enumerate(names):
        influxdb_server.create_database(name)
        store = open_store(f"influxdb://127.0.0.1:{influxdb_server.port}/{name}")
        try:
            plant_fleet(store, to_ns(fixed_now), 20 * (index + 1), hostile=False)
            counts.append(len(data.fleet_frame(store, rng)))
        finally:
            store.close()
            influxdb_server.drop_database(name)
    assert counts == [20, 40]  # a second store, perhaps at the same address in memory, is not served the first's


def test_budgets_come_from_the_engines_records_in_one_read_of_one_field_when_it_runs(planted_store, slos, fixed_now):
    from alerts.burn import evaluate_slos
    from alerts.records import evaluation_points, read_evaluations
    from alerts.rollups import coverage
    from counting_store import CountingStore

    at_ns = to_ns(fixed_now)
    evaluations = evaluate_slos(planted_store, slos, at_ns, {s.name: coverage(planted_store, s, at_ns) for s in slos})
    planted_store.write(evaluation_points(evaluations, at_ns - 30 * 10**9))
    data.clear_caches()
    counting = CountingStore(planted_store)
    budgets = data.budgets_by_host(counting, slos, at_ns)
    engine = read_evaluations(planted_store, slos, at_ns)
    assert budgets == {name: {host: ev.budget_remaining for host, ev in by_host.items() if host is not None}
                       for name, by_host in engine.items()}
    assert budgets["libvirtd-availability"]["kvm-down-03"] < 0
    assert [(name, args[0], args[1]) for name, args, _kwargs in counting.calls] == [
        ("latest", "slo_budget", ["budget_remaining_percent"])]
