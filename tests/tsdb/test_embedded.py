"""The embedded DuckDB store keeps and answers what InfluxDB 1.x would (expected values measured on 1.6)."""

import itertools
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tsdb.embedded import EmbeddedStore
from tsdb.errors import PointError, QueryError, StoreRejected, StoreUnavailable
from tsdb.point import Point, clean_name

S = 10**9
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    with EmbeddedStore(str(tmp_path / "store" / "virtwatch.duckdb")) as opened:
        yield opened


def rows(frame: pd.DataFrame) -> list[tuple]:
    """Frame rows as plain tuples: time in seconds, NaN/None as None."""
    out = []
    for record in frame.itertuples(index=False):
        values = []
        for name, value in zip(frame.columns, record):
            if name == "time":
                value = value.value // S
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                value = None
            values.append(value)
        out.append(tuple(values))
    return out


def test_the_file_and_its_directories_are_created_and_data_survives_close_and_reopen(tmp_path):
    path = tmp_path / "a" / "b" / "store.duckdb"
    with EmbeddedStore(str(path)) as store:
        assert store.display_url == "duckdb://" + str(path)
        assert store.write([Point("host", {"host": "h1"}, {"load1": 0.5, "domains": 3}, 10 * S),
                            Point("event", {"host": "h1", "kind": "restart"}, {"message": "up again"}, 20 * S)]) == 2
    assert path.exists()
    with EmbeddedStore(str(path)) as store:
        assert rows(store.query("host", ["load1", "domains"], 0, 100 * S, group_by=["host"])) == [(10, "h1", 0.5, 3.0)]
        # the catalog survived too: the field keeps its type, a new field gets a new column
        with pytest.raises(StoreRejected):
            store.write([Point("host", {"host": "h1"}, {"domains": 3.5}, 30 * S)])
        assert store.write([Point("host", {"host": "h2"}, {"load5": 1.0}, 40 * S)]) == 1
        assert rows(store.query("host", ["load1", "load5"], 0, 100 * S, group_by=["host"])) == [
            (10, "h1", 0.5, None), (40, "h2", None, 1.0)]
        assert store.tag_values("event", "kind") == ["restart"]


def test_a_second_process_opening_the_same_file_gets_store_unavailable_naming_the_file(tmp_path):
    path = tmp_path / "locked.duckdb"
    child = ("import sys\n"
             "from tsdb.embedded import EmbeddedStore\n"
             "from tsdb.errors import StoreUnavailable\n"
             "try:\n"
             "    EmbeddedStore(sys.argv[1])\n"
             "except StoreUnavailable as error:\n"
             "    print(error)\n"
             "    sys.exit(3)\n")
    with EmbeddedStore(str(path)) as store:
        store.write([Point("host", {"host": "h1"}, {"load1": 0.5}, 10 * S)])
        result = subprocess.run([sys.executable, "-c", child, str(path)], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert str(path) in result.stdout
    assert "one process" in result.stdout
    # once the first process closed it, another one can open it
    result = subprocess.run([sys.executable, "-c", child, str(path)], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_closed_store_says_so(tmp_path):
    store = EmbeddedStore(str(tmp_path / "s.duckdb"))
    store.close()
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.write([Point("m", {}, {"x": 1.0}, 1)])
    with pytest.raises(StoreUnavailable, match="closed"):
        store.query("m", ["x"], 0, 10)


def test_the_same_series_and_time_written_twice_keeps_one_merged_point(store):
    store.write([Point("m", {"host": "a"}, {"x": 1.0, "y": 2.0, "s": "old"}, 10 * S)])
    # a later batch: new values win, fields the new point lacks keep their values
    assert store.write([Point("m", {"host": "a"}, {"x": 5.0, "z": 7}, 10 * S),
                        Point("m", {"host": "a"}, {"x": 6.0}, 20 * S)]) == 2
    # within one batch, in order: the last value of each field wins
    assert store.write([Point("m", {"host": "a"}, {"y": 8.0, "s": "first"}, 20 * S),
                        Point("m", {"host": "a"}, {"s": "second"}, 20 * S),
                        Point("m", {"host": "b"}, {"x": 9.0}, 20 * S)]) == 3
    # tag order and empty tags do not make another series
    store.write([Point("m", {"empty": "", "host": "a"}, {"y": 3.0}, 10 * S)])
    frame = store.query("m", ["x", "y", "z", "s"], 0, 100 * S, group_by=["host"])
    assert rows(frame) == [(10, "a", 5.0, 3.0, 7.0, "old"),
                           (20, "a", 6.0, 8.0, None, "second"),
                           (20, "b", 9.0, None, None, None)]


def test_a_field_type_conflict_with_a_stored_field_drops_that_point_and_stores_the_rest(store):
    store.write([Point("m", {"host": "a"}, {"x": 1.0, "n": 1}, 10 * S)])
    with pytest.raises(StoreRejected) as caught:
        store.write([Point("m", {"host": "a"}, {"x": 2}, 20 * S),              # int is not float
                     Point("m", {"host": "a"}, {"x": 3.0, "y": 1.0}, 30 * S),
                     Point("m", {"host": "b"}, {"n": 2.5, "y": 5.0}, 40 * S),  # float is not int: whole point
                     Point("other", {}, {"x": 4}, 50 * S)])
    assert caught.value.status == 400
    assert caught.value.server_message == ('partial write: field type conflict: input field "x" on measurement "m" '
                                           'is type integer, already exists as type float dropped=2')
    assert "(2 points stored)" in str(caught.value)
    assert rows(store.query("m", ["x", "y", "n"], 0, 100 * S, group_by=["host"])) == [
        (10, "a", 1.0, None, 1.0), (30, "a", 3.0, 1.0, None)]
    assert rows(store.query("other", ["x"], 0, 100 * S)) == [(50, 4.0)]


def test_inside_one_batch_the_first_type_written_wins_and_later_points_of_another_type_are_dropped(store):
    with pytest.raises(StoreRejected) as caught:
        store.write([Point("m", {}, {"x": 1.0}, 10 * S),
                     Point("m", {}, {"x": 2, "y": 5.0}, 20 * S),   # dropped whole: y is not stored nor typed
                     Point("n", {}, {"y": 1.0}, 30 * S),
                     Point("m", {}, {"x": 3.0}, 40 * S)])
    assert caught.value.server_message == ('partial write: field type conflict: input field "x" on measurement "m" '
                                           'is type integer, already exists as type float dropped=1')
    assert "(3 points stored)" in str(caught.value)
    assert rows(store.query("m", ["x", "y"], 0, 100 * S)) == [(10, 1.0, None), (40, 3.0, None)]
    assert rows(store.query("n", ["y"], 0, 100 * S)) == [(30, 1.0)]
    # the types stay: x is a float of m, y a float of n; y of m is still free
    with pytest.raises(StoreRejected, match="dropped=1"):
        store.write([Point("m", {}, {"x": 7}, 50 * S)])
    assert store.write([Point("m", {}, {"y": 7}, 60 * S), Point("n", {}, {"y": 2.0}, 60 * S)]) == 2
    assert rows(store.query("m", ["x", "y"], 0, 100 * S)) == [(10, 1.0, None), (40, 3.0, None), (60, None, 7.0)]


def test_a_point_dropped_for_a_conflict_inside_its_batch_loses_all_its_fields(store):
    store.write([Point("m", {}, {"a": 1.0}, 1 * S)])
    with pytest.raises(StoreRejected, match="partial write.*dropped=1"):
        store.write([Point("m", {}, {"x": 1}, 10 * S), Point("m", {}, {"x": 2.0, "a": 2.0}, 20 * S),
                     Point("m", {}, {"x": 3}, 30 * S)])
    assert rows(store.query("m", ["x", "a"], 0, 100 * S)) == [(1, None, 1.0), (10, 1.0, None), (30, 3.0, None)]


def test_a_field_keeps_its_type_for_all_time_not_per_week_as_influxdb_shards_do(store):
    store.write([Point("m", {}, {"x": 1.0}, 10 * S)])
    month_later = (10 + 30 * 86400) * S  # another InfluxDB shard, where InfluxDB would take an int
    with pytest.raises(StoreRejected, match='input field "x" on measurement "m" is type integer.*dropped=1'):
        store.write([Point("m", {}, {"x": 2}, month_later)])
    assert rows(store.query("m", ["x"], 0, month_later + S)) == [(10, 1.0)]


def test_the_conflict_message_names_the_first_dropped_point_of_the_batch_and_counts_all(store):
    store.write([Point("m", {}, {"x": 1.0}, 10 * S), Point("n", {}, {"y": 1}, 10 * S)])
    with pytest.raises(StoreRejected) as caught:
        store.write([Point("m", {}, {"x": 1.0}, 20 * S), Point("n", {}, {"y": "one"}, 20 * S),
                     Point("m", {}, {"x": True}, 30 * S)])
    assert caught.value.server_message == ('partial write: field type conflict: input field "y" on measurement "n" '
                                           'is type string, already exists as type integer dropped=2')
    assert rows(store.query("m", ["x"], 0, 100 * S)) == [(10, 1.0), (20, 1.0)]


def test_a_bad_point_is_refused_and_nothing_of_its_batch_is_stored(store):
    good = Point("m", {"host": "a"}, {"x": 1.0}, 10 * S)
    for bad in [Point("m", {"host": "a"}, {"x": None}, 20 * S),
                Point("", {}, {"x": 1.0}, 20 * S),
                Point("#m", {}, {"x": 1.0}, 20 * S),
                Point("m", {"time": "a"}, {"x": 1.0}, 20 * S),
                Point("m", {"host": 1}, {"x": 1.0}, 20 * S),
                Point("m", {"x": "a"}, {"x": 1.0}, 20 * S),
                Point("m", {}, {"x": 2**63}, 20 * S),
                Point("m", {}, {"x": np.int64(3)}, 20 * S),
                Point("m", {}, {"x": 1.0}, 20.0),
                Point("m", {}, {"x": 1.0}, True),
                "not a point"]:
        with pytest.raises(PointError):
            store.write([good, bad])
    assert store.query("m", ["x"], 0, 100 * S).empty


def test_non_finite_floats_are_dropped_and_points_left_without_fields_are_not_stored(store):
    assert store.write([Point("m", {}, {"x": math.nan, "y": 1.0}, 10 * S),
                        Point("m", {}, {"x": math.inf}, 20 * S),
                        Point("m", {}, {}, 30 * S),
                        Point("m", {}, {"x": -math.inf, "s": "kept"}, 40 * S)]) == 2
    assert rows(store.query("m", ["x", "y", "s"], 0, 100 * S)) == [(10, None, 1.0, None), (40, None, None, "kept")]
    # a float field whose only values were NaN has no type yet: an int may still come first
    assert store.write([Point("m", {}, {"x": 5}, 50 * S)]) == 1


hostile_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    with EmbeddedStore(str(tmp_path_factory.mktemp("hostile") / "s.duckdb")) as opened:
        yield opened


_times = itertools.count(1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurement=hostile_text, tag_key=hostile_text, tag_value=hostile_text, field_key=hostile_text,
       value=st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_hostile_names_and_values_round_trip_exactly(shared_store, measurement, tag_key, tag_value, field_key,
                                                     value):
    assume(not measurement.startswith("#") and "time" not in (tag_key, field_key))
    assume(clean_name(tag_key) != clean_name(field_key) and clean_name(tag_key) != "host")
    time_ns = next(_times) * S
    stored = shared_store.write([Point(measurement, {tag_key: tag_value, "host": "h"}, {field_key: value}, time_ns),
                                 Point(measurement, {tag_key: tag_value + "x", "host": "h"}, {field_key: "decoy"},
                                       time_ns)])
    assert stored == 2
    frame = shared_store.query(measurement, [field_key], time_ns, time_ns + 1, where={tag_key: tag_value},
                               group_by=[tag_key])
    assert list(frame.columns) == ["time", clean_name(tag_key), clean_name(field_key)]
    assert len(frame) == 1
    assert frame.iloc[0, 1] == clean_name(tag_value)
    assert frame.iloc[0, 2] == value
    assert clean_name(tag_value) in shared_store.tag_values(measurement, tag_key)
    assert shared_store.tag_values(measurement, tag_key, where={tag_key: tag_value}) == [clean_name(tag_value)]


def test_filter_values_that_look_like_sql_filter_exactly(store):
    hostile = ["' OR 1=1 --", "a'); DROP TABLE m_1; --", "\\", "'", '"', "%", "_", "a\\'b", "😀", "\x00", "NULL"]
    store.write([Point("m", {"host": value}, {"x": float(i)}, (i + 1) * S) for i, value in enumerate(hostile)])
    store.write([Point("m", {"host": "plain"}, {"x": 100.0}, 100 * S)])
    for i, value in enumerate(hostile):
        frame = store.query("m", ["x"], 0, 1000 * S, where={"host": value}, group_by=["host"])
        assert rows(frame) == [(i + 1, clean_name(value), float(i))]  # a lone backslash becomes ⧵
        assert store.tag_values("m", "host", where={"host": value}) == [clean_name(value)]
        assert rows(store.latest("m", ["x"], 0, 1000 * S, where={"host": value})) == [(i + 1, float(i))]
    assert store.query("m", ["x"], 0, 1000 * S, where={"host": "%"}).shape[0] == 1
    assert len(store.tag_values("m", "host")) == len(hostile) + 1


def test_tag_filters_match_absent_tags_with_empty_string(store):
    store.write([Point("m", {"host": "a", "role": "db"}, {"x": 1.0}, 10 * S),
                 Point("m", {"host": "b", "role": ""}, {"x": 2.0}, 20 * S),
                 Point("m", {"host": "c"}, {"x": 3.0}, 30 * S)])
    q = lambda where: [r[0] for r in rows(store.query("m", ["x"], 0, 100 * S, where=where))]  # noqa: E731
    assert q({"role": "db"}) == [10]
    assert q({"role": ""}) == [20, 30]
    assert q({"role": ["db", ""]}) == [10, 20, 30]
    assert q({"role": "web"}) == []
    # a tag the measurement never had: only "" matches
    assert q({"zone": ""}) == [10, 20, 30]
    assert q({"zone": "eu"}) == []
    assert q({"zone": ["eu", ""], "host": ["a", "c"]}) == [10, 30]
    # group by a missing or unknown tag gives ""
    frame = store.query("m", ["x"], 0, 100 * S, group_by=["role", "zone"])
    assert rows(frame) == [(20, "", "", 2.0), (30, "", "", 3.0), (10, "db", "", 1.0)]


def test_unknown_measurements_and_fields_read_as_empty_or_null(store):
    store.write([Point("m", {"host": "a"}, {"x": 1.0}, 10 * S)])
    for frame in [store.query("nope", ["x", "y"], 0, 100 * S, group_by=["host"]),
                  store.query("m", ["y"], 0, 100 * S, group_by=["host"]),
                  store.query("m", ["y"], 0, 100 * S, window_seconds=60, aggregate="count", group_by=["host"]),
                  store.latest("m", ["y"], 0, 100 * S, group_by=["host"])]:
        assert frame.empty
        assert list(frame.columns) == ["time", "host", *frame.columns[2:]]
    assert rows(store.query("m", ["y", "x"], 0, 100 * S)) == [(10, None, 1.0)]
    assert store.tag_values("nope", "host") == []
    assert store.tag_values("m", "nope") == []


def test_windowed_aggregates_give_influxdb_values_on_planted_data(store):
    store.write([
        Point("m", {"host": "a"}, {"x": 9.0, "s": "zz", "b": True, "i": 9}, 60 * S),
        Point("m", {"host": "b"}, {"x": 2.0, "s": "aa", "b": False, "i": 2}, 60 * S),
        Point("m", {"host": "c"}, {"x": 5.0, "s": "mm", "b": True, "i": 5}, 60 * S),
        Point("m", {"host": "a"}, {"x": 1.0, "s": "bb", "b": False, "i": 1}, 100 * S),
        Point("m", {"host": "b"}, {"x": 8.0, "s": "yy", "b": True, "i": 8}, 100 * S),
        Point("m", {"host": "c"}, {"x": 5.0, "s": "mm", "b": False, "i": 5}, 100 * S),
        Point("m", {"host": "a"}, {"i": 4}, 150 * S),
        Point("m", {"host": "a"}, {"x": 0.5}, 300 * S),
    ])

    def agg(aggregate, fields, **kw):
        return rows(store.query("m", fields, 0, 1000 * S, window_seconds=60, aggregate=aggregate, **kw))

    assert agg("mean", ["x", "i"]) == [(60, 30 / 6, 30 / 6), (120, None, 4.0), (300, 0.5, None)]
    assert agg("sum", ["x", "i"]) == [(60, 30.0, 30.0), (120, None, 4.0), (300, 0.5, None)]
    assert agg("count", ["x", "s", "i"]) == [(60, 6.0, 6.0, 6.0), (120, None, None, 1.0), (300, 1.0, None, None)]
    assert agg("min", ["x", "b", "i"]) == [(60, 1.0, False, 1.0), (120, None, None, 4.0), (300, 0.5, None, None)]
    assert agg("max", ["x", "b", "i"]) == [(60, 9.0, True, 9.0), (120, None, None, 4.0), (300, 0.5, None, None)]
    # between equal times InfluxDB takes the largest value (first of booleans: false)
    assert agg("first", ["x", "s", "b", "i"]) == [(60, 9.0, "zz", False, 9.0), (120, None, None, None, 4.0),
                                                  (300, 0.5, None, None, None)]
    assert agg("last", ["x", "s", "b", "i"]) == [(60, 8.0, "yy", True, 8.0), (120, None, None, None, 4.0),
                                                 (300, 0.5, None, None, None)]
    assert agg("mean", ["x"], group_by=["host"]) == [(60, "a", 5.0), (300, "a", 0.5), (60, "b", 5.0),
                                                     (60, "c", 5.0)]
    assert agg("last", ["x"], where={"host": ["a", "b"]}, group_by=["nope"]) == [(60, "", 8.0), (300, "", 0.5)]
    # windows are aligned to the epoch and labelled by their start, also when the range starts inside one
    frame = store.query("m", ["x"], 90 * S, 1000 * S, window_seconds=60, aggregate="count")
    assert rows(frame) == [(60, 3.0), (300, 1.0)]
    frame = store.query("m", ["x"], 0, 1000 * S, window_seconds=3600, aggregate="max")
    assert rows(frame) == [(0, 9.0)]


def test_aggregates_influxdb_refuses_are_refused(store):
    store.write([Point("m", {}, {"s": "a", "b": True, "x": 1.0}, 10 * S)])
    for aggregate, field in [("mean", "s"), ("mean", "b"), ("sum", "s"), ("sum", "b"), ("min", "s"), ("max", "s")]:
        with pytest.raises(QueryError, match=aggregate):
            store.query("m", ["x", field], 0, 100 * S, window_seconds=60, aggregate=aggregate)


def test_latest_gives_the_newest_row_with_a_value_per_group(store):
    store.write([
        Point("m", {"host": "a", "dom": "d1"}, {"x": 1.0, "y": 10.0}, 10 * S),
        Point("m", {"host": "a", "dom": "d2"}, {"x": 2.0}, 20 * S),
        Point("m", {"host": "a", "dom": "d1"}, {"y": 30.0}, 30 * S),
        Point("m", {"host": "b"}, {"x": 4.0}, 15 * S),
        Point("m", {"host": "b"}, {"z": 4.0}, 50 * S),
    ])
    assert rows(store.latest("m", ["x"], 0, 100 * S, group_by=["host"])) == [(20, "a", 2.0), (15, "b", 4.0)]
    assert rows(store.latest("m", ["x", "y"], 0, 100 * S, group_by=["host", "dom"])) == [
        (30, "a", "d1", None, 30.0), (20, "a", "d2", 2.0, None), (15, "b", "", 4.0, None)]
    assert rows(store.latest("m", ["x", "y"], 0, 100 * S)) == [(30, None, 30.0)]
    # since and until are inclusive
    assert rows(store.latest("m", ["x"], 15 * S, 20 * S, group_by=["host"])) == [(20, "a", 2.0), (15, "b", 4.0)]
    assert rows(store.latest("m", ["x"], 0, 19 * S, where={"host": "a"}, group_by=["dom"])) == [(10, "d1", 1.0)]
    assert rows(store.latest("m", ["x"], 0, None, where={"dom": ""})) == [(15, 4.0)]
    assert store.latest("m", ["x"], 60 * S).empty


def test_tag_values_are_sorted_distinct_and_filtered(store):
    store.write([
        Point("domain", {"host": "h2", "domain": "web"}, {"up": 1}, 10 * S),
        Point("domain", {"host": "h1", "domain": "db"}, {"up": 1}, 10 * S),
        Point("domain", {"host": "h1", "domain": "Web"}, {"up": 1}, 20 * S),
        Point("domain", {"host": "h3"}, {"up": 1}, 20 * S),
        Point("domain", {"host": "h1", "domain": "é"}, {"up": 1}, 30 * S),
    ])
    assert store.tag_values("domain", "host") == ["h1", "h2", "h3"]
    assert store.tag_values("domain", "domain") == ["Web", "db", "web", "é"]
    assert store.tag_values("domain", "domain", where={"host": "h1"}) == ["Web", "db", "é"]
    assert store.tag_values("domain", "host", where={"domain": ""}) == ["h3"]
    assert store.tag_values("domain", "host", where={"zone": "x"}) == []


def test_events_read_through_the_store_interface(store):
    store.write([Point("event", {"host": "h1", "kind": "restart", "severity": "warning"},
                       {"message": "libvirtd restarted\nafter a crash"}, 10 * S)])
    frame = store.events(0, 100 * S)
    assert list(frame.columns) == ["time", "host", "kind", "severity", "domain", "message"]
    assert rows(frame) == [(10, "h1", "restart", "warning", "", "libvirtd restarted\nafter a crash")]


def test_one_writer_and_several_readers_in_threads_do_not_disturb_each_other(store):
    errors = []
    done = threading.Event()

    def writer():
        try:
            for batch in range(40):
                store.write([Point("m", {"host": f"h{i}"}, {"x": float(batch), f"f{batch % 7}": 1.0},
                                   (batch * 10 + 1) * S) for i in range(50)])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            done.set()

    def reader():
        try:
            while not done.is_set():
                frame = store.query("m", ["x"], 0, 10**6 * S, window_seconds=60, group_by=["host"])
                assert frame.empty or set(frame["host"]) <= {f"h{i}" for i in range(50)}
                store.latest("m", ["x", "f3"], 0, 10**6 * S, group_by=["host"])
                store.tag_values("m", "host")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    frame = store.query("m", ["x"], 0, 10**6 * S)
    assert len(frame) == 40 * 50
