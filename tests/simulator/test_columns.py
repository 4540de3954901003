"""The simulation written as column batches is the simulation written as Points, value for value."""

import pytest
from simulated_fleets import busy_spec

from simulator import simulate, write_simulation
from simulator.columns import ColumnBuilder
from tsdb.embedded import EmbeddedStore


def stored(store: EmbeddedStore) -> dict:
    """Every stored value by measurement and tag or field key, as Python objects, in (series, time) order."""
    found = {}
    for measurement, table in sorted(store._tables.items()):
        keys = {**{("tag", k): c for k, c in table.tags.items()},
                **{("field", k, kind): c for k, (c, kind) in table.fields.items()}}
        rows = store._fetch(f"SELECT series, time_ns, {', '.join(keys.values())} FROM {table.name} "
                            f"ORDER BY series, time_ns", [], "test").to_pylist()
        found[measurement] = {key: [row[column] for row in rows]
                              for key, column in {("series",): "series", ("time",): "time_ns", **keys}.items()}
    return found


@pytest.mark.parametrize("prefix", ["hv-", "rack 7, \"a\\b\" ü-"], ids=["plain", "hostile host names"])
def test_the_column_batches_store_exactly_what_the_points_store(tmp_path, prefix):
    sim = simulate(busy_spec(hosts=3, days=2.5, incidents=True, host_prefix=prefix))
    with EmbeddedStore(str(tmp_path / "points.duckdb")) as by_points, \
            EmbeddedStore(str(tmp_path / "columns.duckdb")) as by_columns:
        written_points = sum(by_points.write(batch) for batch in sim.points(60))
        written_columns = write_simulation(by_columns, sim)
        assert written_columns == written_points == sim.point_count()
        expected, got = stored(by_points), stored(by_columns)
    assert set(got) == set(expected) >= {"host", "libvirtd", "collector", "domain", "event", "diagnosis"}
    for measurement in expected:
        assert got[measurement] == expected[measurement], measurement


def test_the_steps_before_a_cut_as_columns_and_the_rest_as_points_store_the_whole_simulation(tmp_path):
    sim = simulate(busy_spec(hosts=2, days=2.0))
    cut = sim.step_at(sim.start_ns + (sim.end_ns - sim.start_ns) // 3 + 1)
    with EmbeddedStore(str(tmp_path / "whole.duckdb")) as whole, \
            EmbeddedStore(str(tmp_path / "split.duckdb")) as split:
        write_simulation(whole, sim)
        before = write_simulation(split, sim, stop_step=cut)
        after = sum(split.write(batch) for batch in sim.points(60, from_step=cut))
        assert before + after == sim.point_count() and 0 < before < sim.point_count()
        assert stored(split) == stored(whole)


def test_chunks_joined_into_batches_of_any_size_store_the_same(tmp_path):
    sim = simulate(busy_spec(hosts=3, days=2.5))
    stores = []
    for rows in (1, 700, 10**9):
        store = EmbeddedStore(str(tmp_path / f"{rows}.duckdb"))
        stores.append(store)
        for batch in ColumnBuilder(sim).batches(rows=rows):
            if batch.points is not None:
                store.write(batch.points)
            else:
                store.write_columns(batch.measurement, batch.columns, batch.tags)
    try:
        assert stored(stores[0]) == stored(stores[1]) == stored(stores[2])
    finally:
        for store in stores:
            store.close()


def test_the_newest_steps_first_then_the_older_ones_store_the_same_as_all_at_once(tmp_path):
    sim = simulate(busy_spec(hosts=3, days=2.5))
    cut = sim.step_at(sim.end_ns - 5 * 3600 * 10**9)
    last = sim.step_at(sim.end_ns - 3600 * 10**9 + 1)
    with EmbeddedStore(str(tmp_path / "whole.duckdb")) as whole, \
            EmbeddedStore(str(tmp_path / "parts.duckdb")) as parts:
        write_simulation(whole, sim, stop_step=last)
        newest = write_simulation(parts, sim, start_step=cut, stop_step=last)
        oldest = write_simulation(parts, sim, stop_step=cut)
        assert 0 < newest < oldest
        assert stored(parts) == stored(whole)
