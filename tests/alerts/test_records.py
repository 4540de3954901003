"""The engine's SLO evaluations written as slo_budget and slo_burn points read back equal, on both stores."""

import dataclasses

import pytest

from alerts.burn import evaluate_slos
from alerts.records import evaluation_points, read_budgets, read_evaluations
from alerts.slo import SLO
from tsdb import Point

S = 10**9
NOW = 1_709_294_400 * S
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'
SLOS = [SLO("availability", 99.9, "libvirtd_availability"), SLO("latency 2", 99.0, "libvirtd_latency", threshold_ms=100)]


def planted():
    return [Point("libvirtd", {"host": host}, {"probe_ok": int(k % 7 != 0 or host == "hv1"),
                                               "probe_latency_ms": 50.0 + k}, NOW - k * 30 * S)
            for host in ("hv1", HOSTILE) for k in range(1, 200)]


def without_time(evaluations):
    return {name: {host: dataclasses.replace(e, now_ns=0) for host, e in by.items()}
            for name, by in evaluations.items()}


@pytest.mark.influxdb
def test_recorded_evaluations_read_back_equal_for_every_slo_host_and_the_fleet(store):
    store.write(planted())
    evaluated = evaluate_slos(store, SLOS, NOW)
    store.write(evaluation_points(evaluated, NOW))
    recorded = read_evaluations(store, SLOS, NOW + 10 * S)
    assert set(recorded["availability"]) == {None, "hv1", HOSTILE}
    assert without_time(recorded) == without_time(evaluated)
    assert any(w.firing for w in recorded["availability"][HOSTILE].windows)


def test_without_a_fresh_fleet_record_of_every_slo_there_is_nothing_to_read(duckdb_store):
    duckdb_store.write(planted())
    evaluated = evaluate_slos(duckdb_store, SLOS[:1], NOW)
    duckdb_store.write(evaluation_points(evaluated, NOW))
    assert read_evaluations(duckdb_store, SLOS, NOW) is None  # the second SLO was never recorded
    assert read_evaluations(duckdb_store, SLOS[:1], NOW + 600 * S) is None  # ten minutes on: stale
    assert read_evaluations(duckdb_store, [], NOW) == {}


@pytest.mark.influxdb
def test_the_recorded_budgets_alone_read_back_as_the_evaluations_budgets_in_one_read(store):
    store.write(planted())
    evaluated = evaluate_slos(store, SLOS, NOW)
    store.write(evaluation_points(evaluated, NOW))
    budgets = read_budgets(store, SLOS, NOW + 10 * S)
    assert budgets == {name: {host: e.budget_remaining for host, e in by.items() if host is not None}
                       for name, by in read_evaluations(store, SLOS, NOW + 10 * S).items()}
    assert budgets["availability"][HOSTILE] < 0
    assert read_budgets(store, SLOS, NOW + 600 * S) is None  # ten minutes on: stale
    assert read_budgets(store, [], NOW) == {}
