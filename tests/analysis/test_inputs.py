"""analysis.inputs and analysis.exposure: step means and failures read through real stores onto the grid."""

import numpy as np
import pandas as pd
import pytest

from analysis import build_grid, load_inputs, parse_signal
from analysis.inputs import parse_scope, whole_steps
from tsdb import Point

S = 10**9
START_NS = 1_700_000_000 * S // (300 * S) * (300 * S)  # a step boundary
HOSTILE = ['hv 1,"a"', "hv\\2=x", "hv-ü🙂"]


def _plant(store):
    """Write 3 steps of load for the hostile hosts and a few events; return nothing (the test reads it back)."""
    points = []
    for i, host in enumerate(HOSTILE):
        for step in range(3):
            for offset, load in ((10, 1.0 + i), (70, 3.0 + i)):  # two points a step: the step mean is 2 + i
                t = START_NS + step * 300 * S + offset * S
                points.append(Point("host", {"host": host}, {"load1": load + step}, t))
                points.append(Point("libvirtd", {"host": host},
                                    {"workers_current": 8, "workers_free": 8 - step - i, "job_queue_depth": step}, t))
    events = [("restart", HOSTILE[0], 1), ("restart", HOSTILE[2], 2), ("segfault", HOSTILE[0], 1),
              ("restart", "hv-silent", 1)]
    for kind, host, step in events:
        points.append(Point("event", {"host": host, "kind": kind, "severity": "warning"},
                            {"message": f"{kind} seen", "count": 1}, START_NS + step * 300 * S + 5 * S))
    store.write(points)


def test_step_means_and_failures_round_trip_hostile_host_names_onto_the_grid(store):
    _plant(store)
    inputs = load_inputs(store, None, START_NS, START_NS + 900 * S,
                         signals=["host.load1", "libvirtd.workers_busy", "libvirtd.job_queue_depth"],
                         kinds="restart", step_seconds=300)
    grid = build_grid(inputs)
    assert set(grid.hosts) == set(HOSTILE)
    order = [grid.hosts.index(h) for h in HOSTILE]
    assert grid.values["host.load1"][order].tolist() == [[2.0, 3.0, 4.0], [3.0, 4.0, 5.0], [4.0, 5.0, 6.0]]
    assert grid.values["libvirtd.workers_busy"][order].tolist() == [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0],
                                                                     [2.0, 3.0, 4.0]]
    assert grid.failures[order].tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert grid.unplaced_failures == 1  # hv-silent sent no load at all: nothing to attribute its restart to
    assert sorted(inputs.events["kind"]) == ["restart"] * 3  # not the segfault


def test_a_scope_of_hosts_reads_only_those_hosts(store):
    _plant(store)
    inputs = load_inputs(store, [HOSTILE[1], HOSTILE[2]], START_NS, START_NS + 900 * S, signals=["host.load1"],
                         kinds=["restart", "segfault"], step_seconds=300)
    grid = build_grid(inputs)
    assert set(grid.hosts) == {HOSTILE[1], HOSTILE[2]}
    assert int(grid.failures.sum()) == 1
    one = load_inputs(store, HOSTILE[0], START_NS, START_NS + 900 * S, signals=["host.load1"],
                      kinds=["restart", "segfault"], step_seconds=300)
    assert build_grid(one).hosts == (HOSTILE[0],) and int(build_grid(one).failures.sum()) == 2


def test_a_range_shrinks_to_whole_steps():
    assert whole_steps(START_NS + 1, START_NS + 1000 * S, 300) == (START_NS + 300 * S, START_NS + 900 * S)
    with pytest.raises(ValueError, match="shorter than one whole step"):
        whole_steps(START_NS + 1, START_NS + 400 * S, 300)


def test_busy_workers_are_current_minus_free_and_defaults_cover_the_load_signals():
    busy = parse_signal("libvirtd.workers_busy")
    assert busy.sources == ("workers_current", "workers_free") and busy.label == "the number of busy libvirtd workers"
    assert parse_signal(("host", "load1")).name == "host.load1"
    assert parse_signal("my_measurement.my.field").field == "my.field"  # a user's own measurement is read as is


@pytest.mark.parametrize("call, message", [
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, step_seconds=5), "step_seconds"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, step_seconds=True), "step_seconds"),
    (lambda s: load_inputs(s, [], START_NS, START_NS + 900 * S), "scope"),
    (lambda s: load_inputs(s, [3], START_NS, START_NS + 900 * S), "scope"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, signals=["host.nope"]), "has no field 'nope'"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, signals=["event.message"]), "not a number"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, signals=["load1"]), "measurement.field"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, signals=[]), "signals"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, kinds=[]), "kinds"),
    (lambda s: load_inputs(s, None, START_NS, START_NS + 900 * S, kinds=[""]), "kinds"),
    (lambda s: load_inputs(s, None, "yesterday-ish", START_NS), "start"),
    (lambda s: load_inputs(s, None, START_NS + 900 * S, START_NS), "end"),
])
def test_bad_arguments_are_refused_with_the_argument_named(duckdb_store, call, message):
    with pytest.raises(ValueError, match=message):
        call(duckdb_store)


def test_scopes_are_none_one_host_or_a_list_of_hosts():
    assert parse_scope(None) is None
    assert parse_scope("hv 1") == ("hv 1",)
    assert parse_scope(["a", "b", "a"]) == ("a", "b")


def test_an_empty_store_gives_an_empty_grid_and_no_failures(duckdb_store):
    inputs = load_inputs(duckdb_store, None, START_NS, START_NS + 3600 * S, kinds="restart", step_seconds=300)
    grid = build_grid(inputs)
    assert grid.hosts == () and grid.failures.shape == (0, 12)
    assert isinstance(inputs.events, pd.DataFrame) and len(inputs.events) == 0
    assert all(np.shape(v) == (0, 12) for v in grid.values.values())
