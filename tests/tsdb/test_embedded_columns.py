"""The embedded store's column batches: whole columns mean exactly what the same rows written one by one mean."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tsdb.embedded import EmbeddedStore
from tsdb.errors import PointError, StoreRejected
from tsdb.point import Point

S = 10**9
HOSTILE = ["plain", "with space", "com,ma", "eq=ual", 'dq"uote', "sq'uote", "back\\slash", "trailing\\", "😀 ünï",
           "new\nline", "\ttab", "' OR 1=1 --", "NULL", "nul\x00byte"]


@pytest.fixture
def stores(tmp_path):
    with EmbeddedStore(str(tmp_path / "points.duckdb")) as points, \
            EmbeddedStore(str(tmp_path / "columns.duckdb")) as columns:
        yield points, columns


def rows_to_points(measurement: str, frame: pd.DataFrame, tags: list[str]) -> list[Point]:
    """The rows of a column batch as Points: null tags and fields left out, as the batch means them."""
    points = []
    for record in frame.to_dict("records"):
        point_tags = {t: record[t] for t in tags if isinstance(record[t], str)}
        fields = {k: v for k, v in record.items() if k not in tags and k != "time_ns" and v is not None
                  and not (isinstance(v, float) and math.isnan(v))}
        fields = {k: (v.item() if hasattr(v, "item") else v) for k, v in fields.items()}
        points.append(Point(measurement, point_tags, fields, int(record["time_ns"])))
    return points


def everything(store: EmbeddedStore, measurement: str, fields: list[str]) -> pd.DataFrame:
    """Every stored row of a measurement, grouped by all its tags, sorted."""
    tags = sorted(store._tables[measurement].tags)  # the catalog's cleaned tag keys
    frame = store.query(measurement, fields, 0, 10**6 * S, group_by=tags)
    return frame.sort_values(["time", *tags], kind="mergesort", ignore_index=True)


def stored(store: EmbeddedStore, measurement: str) -> dict:
    """The stored values themselves, as Python objects by tag and field key: series, time, then each column."""
    table = store._tables[measurement]
    keys = {**{("tag", k): c for k, c in table.tags.items()},
            **{("field", k, kind): c for k, (c, kind) in table.fields.items()}}
    result = store._fetch(f"SELECT series, time_ns, {', '.join(keys.values())} FROM {table.name} "
                          f"ORDER BY series, time_ns", [], "test").to_pylist()
    return {key: [row[column] for row in result] for key, column in
            {("series",): "series", ("time",): "time_ns", **keys}.items()}


def hostile_batch() -> pd.DataFrame:
    n = len(HOSTILE)
    return pd.DataFrame({
        "time_ns": np.arange(n, dtype=np.int64) * S + S,
        "host": HOSTILE,
        "dömain, \"x\"": [None if i % 3 == 0 else HOSTILE[-1 - i] for i in range(n)],
        "load one": np.linspace(0.0, 1.0, n),
        "count\\total": np.arange(n, dtype=np.int64) * 10**12 - 7,
        "ok": [i % 2 == 0 for i in range(n)],
        "mess'age": [f"{v} said {HOSTILE[i - 1]}" for i, v in enumerate(HOSTILE)],
    })


def test_a_column_batch_with_hostile_names_reads_back_exactly_as_the_same_points_written_one_by_one(stores):
    by_points, by_columns = stores
    batch = hostile_batch()
    tags = ["host", "dömain, \"x\""]
    points = rows_to_points("m ,\"x\"", batch, tags)
    for point in points:
        assert by_points.write([point]) == 1
    assert by_columns.write_columns("m ,\"x\"", batch, tags) == len(batch)
    fields = ["load one", "count\\total", "ok", "mess'age"]
    expected = everything(by_points, "m ,\"x\"", fields)
    got = everything(by_columns, "m ,\"x\"", fields)
    pd.testing.assert_frame_equal(got, expected)
    assert len(expected) == len(HOSTILE)
    assert stored(by_columns, "m ,\"x\"") == stored(by_points, "m ,\"x\"")  # types and bytes, not only frames
    for tag in ("host", "dömain, \"x\""):
        assert by_columns.tag_values("m ,\"x\"", tag) == by_points.tag_values("m ,\"x\"", tag)


def test_nulls_nan_and_infinities_are_absent_fields_and_rows_left_without_fields_are_not_stored(stores):
    by_points, by_columns = stores
    batch = pd.DataFrame({"time_ns": [1 * S, 2 * S, 3 * S, 4 * S], "host": ["a", "", None, "b"],
                          "x": [1.5, float("nan"), float("inf"), None],
                          "y": pd.array([None, 2, None, None], dtype="Int64")})
    assert by_columns.write_columns("m", batch, ["host"]) == 2
    assert by_points.write(rows_to_points("m", batch.assign(x=[1.5, None, None, None]), ["host"])) == 2
    pd.testing.assert_frame_equal(everything(by_columns, "m", ["x", "y"]), everything(by_points, "m", ["x", "y"]))


def test_a_column_batch_merges_with_stored_points_and_within_itself_as_points_do(stores):
    by_points, by_columns = stores
    first = [Point("m", {"host": "a"}, {"x": 1.0, "y": 1}, 5 * S), Point("m", {"host": "a"}, {"x": 2.0}, 6 * S)]
    batch = pd.DataFrame({"time_ns": [5 * S, 5 * S, 6 * S, 7 * S], "host": ["a", "a", "a", "a"],
                          "x": [10.0, None, None, 3.0], "y": pd.array([None, 7, None, 8], dtype="Int64")})
    for store in stores:
        store.write(first)
    by_points.write(rows_to_points("m", batch, ["host"]))
    by_columns.write_columns("m", batch, ["host"])
    got = everything(by_columns, "m", ["x", "y"])
    pd.testing.assert_frame_equal(got, everything(by_points, "m", ["x", "y"]))
    assert got["x"].tolist() == [10.0, 2.0, 3.0] and got["y"].fillna(-1).tolist() == [7, -1, 8]


def test_a_column_with_no_value_at_all_is_a_field_no_row_has(stores):
    _, store = stores
    store.write([Point("m", {"host": "a"}, {"x": 1}, S)])
    assert store.write_columns("m", {"time_ns": [2 * S], "host": ["a"], "x": [None], "y": [2.0]}, ["host"]) == 1
    assert store.table_of("m").fields["x"][1] == "int" and "x" in store.table_of("m").fields


def test_a_field_type_conflict_in_a_column_batch_drops_those_rows_with_influxdbs_message(stores):
    _, store = stores
    store.write([Point("m", {"host": "a"}, {"x": 1.0}, S)])
    batch = {"time_ns": np.array([2 * S, 3 * S]), "host": ["a", "b"], "x": np.array([2, 3]), "z": [1.0, None]}
    with pytest.raises(StoreRejected, match='input field "x" on measurement "m" is type integer, already exists '
                                            'as type float dropped=2'):
        store.write_columns("m", batch, ["host"])
    assert len(store.query("m", ["x", "z"], 0, 10 * S)) == 1


@pytest.mark.parametrize("batch, tags, message", [
    ({"host": ["a"], "x": [1.0]}, ["host"], "no 'time_ns' column"),
    ({"time_ns": [1.5], "x": [1.0]}, [], "'time_ns' must be integers"),
    ({"time_ns": [1, 2], "x": [1.0]}, [], "columns differ in length"),
    ({"time_ns": [1], "x": [1.0]}, ["host"], "tag column(s) ['host'] not in the batch"),
    ({"time_ns": [1], "host": [3], "x": [1.0]}, ["host"], "tag column 'host'"),
    ({"time_ns": [1], "when": pa.array([1], pa.timestamp("ns"))}, [], "field column 'when': type timestamp"),
    ({"time_ns": [1], "mixed": [1, "a"]}, [], "column 'mixed'"),
    ({"time_ns": [1], "big": pa.array([2**64 - 1], pa.uint64())}, [], "field column 'big'"),
    ({"time_ns": [1], "time": [1.0]}, [], "field column 'time'"),
    ({"time_ns": [1], "": [1.0]}, [], "field column ''"),
    ({"time_ns": [1], "a\nb": [1.0], "a b": [2.0]}, [], "are one field ('a b')"),
], ids=["no time", "float time", "lengths", "missing tag", "int tag", "timestamp field", "mixed field", "uint64",
        "reserved key", "empty key", "keys cleaning to one"])
def test_a_bad_column_is_refused_by_name_and_nothing_of_the_batch_is_stored(stores, batch, tags, message):
    _, store = stores
    with pytest.raises(PointError) as refused:
        store.write_columns("m", batch, tags)
    assert message in str(refused.value)
    assert store.tag_values("m", "host") == [] and "m" not in store._tables


def test_an_arrow_table_and_a_mapping_of_numpy_arrays_are_column_batches_too(stores):
    _, store = stores
    table = pa.table({"time_ns": pa.array([S, 2 * S], pa.int64()), "host": ["a", "b"], "x": [1.0, 2.0]})
    assert store.write_columns("m", table, ["host"]) == 2
    assert store.write_columns("m", {"time_ns": np.array([3 * S]), "host": np.array(["c"], dtype=object),
                                     "x": np.array([3.0])}, ["host"]) == 1
    assert store.tag_values("m", "host") == ["a", "b", "c"]
