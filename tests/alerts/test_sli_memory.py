"""The engine's memory of the rollups: the same figures as the store, from no query but the raw tail."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.burn import evaluate_hosts
from alerts.rollups import HOUR_NS, MINUTE_NS, NO_ROLLUPS, CountsReader, roll_up
from alerts.sli import Counts
from alerts.sli_memory import Grid, SLIMemory
from test_rollups import HOSTILE, NOW, SLOS, planted

S = 10**9


@pytest.fixture(params=["duckdb", "influxdb"])
def store(request):
    return request.getfixturevalue("duckdb_store" if request.param == "duckdb" else "influxdb_store")


def test_a_grid_sums_its_cells_and_slides_forward_dropping_the_oldest():
    grid = Grid(MINUTE_NS, 3)
    grid.put(np.array([0, MINUTE_NS, 2 * MINUTE_NS]), ["a", "a", HOSTILE], np.array([1.0, 2.0, 0.0]),
             np.array([1.0, 2.0, 0.0]))
    assert grid.sums(0, 3 * MINUTE_NS).hosts == {"a": Counts(3.0, 3.0), HOSTILE: Counts(0.0, 0.0)}
    grid.put(np.array([4 * MINUTE_NS]), ["b"], np.array([5.0]), np.array([6.0]))  # slides two minutes
    assert not grid.holds(0, 3 * MINUTE_NS) and grid.holds(2 * MINUTE_NS, 5 * MINUTE_NS)
    assert grid.sums(2 * MINUTE_NS, 5 * MINUTE_NS).hosts == {HOSTILE: Counts(0.0, 0.0), "b": Counts(5.0, 6.0)}


def test_round_after_round_the_memory_gives_the_stores_figures_and_reads_only_the_raw_tail(store):
    store.write(planted(hours=30))
    for slo in SLOS:
        memory = SLIMemory(slo)
        memory.load(store, 0, 0)  # a fresh engine: nothing rolled yet
        done = NO_ROLLUPS
        for round_ in range(6):
            now = NOW - 3 * 3600 * S + round_ * 30 * S
            done = roll_up(store, slo, now, done, written=memory.written, backfill_seconds=26 * 3600)
            from_store = evaluate_hosts(store, slo, now, done)
            reader = CountsReader(store, slo, done, memory)
            from_memory = evaluate_hosts(store, slo, now, done, memory)
            assert set(from_memory) == set(from_store) == {None, "hv1", HOSTILE}
            for host, evaluation in from_store.items():
                assert from_memory[host].period == evaluation.period, (slo.name, round_, host)
                assert from_memory[host].windows == evaluation.windows, (slo.name, round_, host)
        reader = CountsReader(store, slo, done, memory)
        end = done.minute_until_ns + 20 * S
        for seconds in (300, 3600, 6 * 3600, 86400):  # as the windows start: on a minute, from a day on an hour
            step = HOUR_NS if seconds >= 86400 else MINUTE_NS
            reader.between(-(-(end - seconds * S) // step) * step, end)
        assert reader.queries == 1  # only the raw points after the last rolled minute


def test_a_restarted_engine_loads_the_memory_from_the_store_and_gets_the_same_figures(store):
    store.write(planted(hours=30))
    slo = SLOS[0]
    now = NOW - 2 * 3600 * S
    done = roll_up(store, slo, now, NO_ROLLUPS, backfill_seconds=26 * 3600)
    assert done.hour_until_ns > done.hour_until_ns - HOUR_NS > 0
    memory = SLIMemory(slo)
    rows = memory.load(store, done.minute_until_ns, done.hour_until_ns)
    assert rows > 0
    from_store = evaluate_hosts(store, slo, now, done)
    from_memory = evaluate_hosts(store, slo, now, done, memory)
    for host, evaluation in from_store.items():
        assert (from_memory[host].period, from_memory[host].windows) == (evaluation.period, evaluation.windows)
