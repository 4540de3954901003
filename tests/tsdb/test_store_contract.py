"""The store contract: the same tests against real InfluxDB 1.6 and the embedded DuckDB store, expecting
the same frames, computed here independently from the planted data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdb import Point, QueryError
from tsdb.point import clean_name

pytestmark = pytest.mark.influxdb
S = 10**9
T0 = 1_699_999_980 * S  # on a minute boundary
HOSTS = ["hv1", 'hv 2,=\'x"\\y', "ünï😀"]
HOSTILE = HOSTS[1]


def load(i: int, h: int) -> float:
    return round((i * 7 + h * 13) % 23 / 4.0, 2)


def planted_host_points() -> list[Point]:
    """30 minutes of host points every 10 s for three hosts; every 7th point lacks load1."""
    points = []
    for h, host in enumerate(HOSTS):
        for i in range(180):
            fields = {"cpus": 8 + h}
            if i % 7:
                fields["load1"] = load(i, h)
            points.append(Point("host", {"host": host}, fields, T0 + i * 10 * S))
    return points


def planted_frame() -> pd.DataFrame:
    """The planted host points as a plain frame, for computing expected answers."""
    rows = [{"time": p.time_ns, "host": p.tags["host"], "load1": p.fields.get("load1", np.nan),
             "cpus": float(p.fields["cpus"])} for p in planted_host_points()]
    return pd.DataFrame(rows)


@pytest.fixture
def planted(store):
    assert store.write(planted_host_points()) == 540
    return store


def test_a_raw_read_returns_every_point_of_the_filtered_series(planted):
    frame = planted.query("host", ["load1", "cpus"], T0, T0 + 3600 * S, where={"host": HOSTILE}, group_by=["host"])
    expected = planted_frame().query("host == @HOSTILE")
    assert list(frame.columns) == ["time", "host", "load1", "cpus"]
    assert len(frame) == 180
    assert frame["host"].unique().tolist() == [HOSTILE]
    assert frame["time"].astype("int64").tolist() == expected["time"].tolist()
    np.testing.assert_array_equal(frame["load1"].to_numpy(), expected["load1"].to_numpy())
    assert frame["time"].dt.tz is not None


@pytest.mark.parametrize("aggregate", ["mean", "min", "max", "sum", "count", "first", "last"])
def test_windowed_aggregates_grouped_by_host_equal_the_planted_truth(planted, aggregate):
    frame = planted.query("host", ["load1"], T0, T0 + 1800 * S, window_seconds=60, aggregate=aggregate,
                          group_by=["host"])
    data = planted_frame().dropna(subset=["load1"])
    data["bucket"] = data["time"] - data["time"] % (60 * S)
    grouped = data.sort_values("time").groupby(["host", "bucket"])["load1"]
    expected = getattr(grouped, aggregate)().reset_index().sort_values(["host", "bucket"], ignore_index=True)
    assert len(frame) == len(expected) == 90
    assert frame["host"].tolist() == expected["host"].tolist()
    assert frame["time"].astype("int64").tolist() == expected["bucket"].tolist()
    np.testing.assert_allclose(frame["load1"].to_numpy(), expected["load1"].astype(float).to_numpy(), rtol=1e-12)


def test_windows_are_aligned_to_the_epoch_and_the_range_end_is_exclusive(planted):
    frame = planted.query("host", ["cpus"], T0 + 45 * S, T0 + 120 * S, where={"host": "hv1"}, window_seconds=60,
                          aggregate="count")
    assert frame["time"].astype("int64").tolist() == [T0, T0 + 60 * S]
    assert frame["cpus"].tolist() == [1.0, 6.0]  # the 50 s point; then 60..110 s, 120 s being excluded


def test_a_filter_with_several_values_matches_any_of_them(planted):
    frame = planted.query("host", ["cpus"], T0, T0 + 3600 * S, where={"host": ["hv1", "ünï😀", "absent"]},
                          window_seconds=3600, aggregate="count", group_by=["host"])
    assert frame["host"].tolist() == ["hv1", "ünï😀"]
    assert frame["cpus"].tolist() == [180.0, 180.0]


@pytest.mark.parametrize("value", ["' OR 1=1 --", "hv1' OR host =~ /.*/ --", '" OR ""="', "hv1\\", "hv1; DROP"])
def test_an_injection_attempt_in_a_filter_matches_nothing_and_changes_nothing(planted, value):
    assert planted.query("host", ["cpus"], T0, T0 + 3600 * S, where={"host": value}).empty
    assert len(planted.query("host", ["cpus"], T0, T0 + 3600 * S)) == 540


def test_latest_returns_the_newest_point_of_each_group(planted):
    frame = planted.latest("host", ["load1", "cpus"], since=T0, until=T0 + 3600 * S, group_by=["host"])
    assert frame["host"].tolist() == sorted(HOSTS)
    assert frame["time"].astype("int64").tolist() == [T0 + 179 * 10 * S] * 3
    by_host = dict(zip(frame["host"], frame["cpus"]))
    assert by_host == {"hv1": 8.0, HOSTILE: 9.0, "ünï😀": 10.0}


def test_tag_values_lists_hostile_names_exactly(planted):
    assert planted.tag_values("host", "host") == sorted(HOSTS)
    assert planted.tag_values("host", "host", where={"host": HOSTILE}) == [HOSTILE]
    assert planted.tag_values("nothing_here", "host") == []


def test_events_come_back_in_time_order_with_missing_tags_as_empty_strings(store):
    message = 'guest "db 1" stopped\nreason: failed, \\ exit 1'
    store.write([
        Point("event", {"host": "hv1", "kind": "restart", "severity": "warning"}, {"message": "pid 1 → 2", "count": 1},
              T0 + 5 * S),
        Point("event", {"host": "hv1", "kind": "domain_failed", "severity": "critical", "domain": "db 1,\"x\""},
              {"message": message, "count": 1}, T0 + 2 * S),
    ])
    frame = store.events(T0, T0 + 60 * S)
    assert list(frame.columns) == ["time", "host", "kind", "severity", "domain", "message"]
    assert frame["kind"].tolist() == ["domain_failed", "restart"]
    assert frame["domain"].tolist() == ['db 1,"x"', ""]
    assert frame["message"].tolist() == [message, "pid 1 → 2"]
    assert store.events(T0, T0 + 60 * S, where={"domain": ""})["kind"].tolist() == ["restart"]
    assert store.events(T0, T0 + 60 * S, where={"severity": "critical"})["kind"].tolist() == ["domain_failed"]


def test_an_unknown_measurement_or_field_reads_as_an_empty_frame_with_the_asked_columns(planted):
    frame = planted.query("nothing_here", ["x"], T0, T0 + S, group_by=["host"])
    assert frame.empty and list(frame.columns) == ["time", "host", "x"]
    frame = planted.query("host", ["no_such_field"], T0, T0 + 3600 * S)
    assert frame.empty and list(frame.columns) == ["time", "no_such_field"]


def test_writing_the_same_series_and_time_twice_keeps_one_point_with_merged_fields(store):
    store.write([Point("host", {"host": "hv1"}, {"load1": 1.0, "cpus": 4}, T0)])
    store.write([Point("host", {"host": "hv1"}, {"load1": 2.0}, T0)])
    frame = store.query("host", ["load1", "cpus"], T0, T0 + S)
    assert frame[["load1", "cpus"]].values.tolist() == [[2.0, 4.0]]


def test_string_and_boolean_fields_keep_their_type(store):
    store.write([Point("event", {"host": "h", "kind": "k", "severity": "info"},
                       {"message": "x", "count": 1, "flag": True}, T0)])
    frame = store.query("event", ["message", "flag", "count"], T0, T0 + S)
    assert frame["message"].tolist() == ["x"] and frame["flag"].tolist() == [True]
    assert frame["count"].dtype == np.float64


def test_stored_names_follow_the_documented_rule(store):
    store.write([Point("host", {"host": "line\nbreak\\"}, {"load1": 1.0}, T0)])
    assert store.tag_values("host", "host") == [clean_name("line\nbreak\\")]
    assert len(store.query("host", ["load1"], T0, T0 + S, where={"host": "line\nbreak\\"})) == 1


@pytest.mark.parametrize("arguments, words", [
    (dict(fields=[]), "fields"),
    (dict(aggregate="median"), "aggregate"),
    (dict(window_seconds=0), "window_seconds"),
    (dict(start=T0 + S, end=T0), "must come after"),
    (dict(start="yesterday-ish"), "not a time"),
    (dict(where={"host": 3}), "tag filter"),
])
def test_a_bad_query_is_refused_naming_the_argument(store, arguments, words):
    call = dict(measurement="host", fields=["load1"], start=T0, end=T0 + S) | arguments
    with pytest.raises(QueryError) as caught:
        store.query(**call)
    assert words in str(caught.value)
