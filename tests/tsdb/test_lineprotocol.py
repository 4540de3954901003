"""Line protocol: escaping, the name rule, and exact round trips of hostile names through a real InfluxDB."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tsdb import PointError, open_store
from tsdb.lineprotocol import encode_point, encode_points
from tsdb.point import BACKSLASH_STAND_IN as SI, Point, clean_name

T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize("tags, fields, line", [
    ({"host": "a b"}, {"v": 1.5}, "m,host=a\\ b v=1.5 7"),
    ({"host": "a,b=c"}, {"v": 1}, "m,host=a\\,b\\=c v=1i 7"),
    ({"k y": "v"}, {'f x,"=': "s"}, 'm,k\\ y=v f\\ x\\,\\"\\=="s" 7'),
    ({"host": "h"}, {"msg": 'say "hi"\\now\nnext'}, 'm,host=h msg="say \\"hi\\"\\\\now\nnext" 7'),
    ({"host": "h"}, {"ok": True, "bad": False}, "m,host=h ok=true,bad=false 7"),
    ({"b": "2", "a": "1"}, {"v": 1}, "m,a=1,b=2 v=1i 7"),
    ({"host": "", "x": "y"}, {"v": 1}, "m,x=y v=1i 7"),
    ({"host": "é😀"}, {"v": -2}, "m,host=é😀 v=-2i 7"),
])
def test_points_encode_to_the_line_influxdb_parses_back(tags, fields, line):
    assert encode_point(Point("m", tags, fields, 7)) == line


@pytest.mark.parametrize("name, kept", [
    ("plain", "plain"),
    ("a\\b", "a\\b"),
    ("ends\\", "ends" + SI),
    ("a\\,b", "a" + SI + ",b"),
    ("a\\ b", "a" + SI + " b"),
    ("a\\=b", "a" + SI + "=b"),
    ('a\\"b', "a" + SI + '"b'),
    ("two\nlines\r\nhere\r", "two lines here "),
    ("\\\\", "\\" + SI),
    ("nul\x00here", "nul\u2400here"),
    ("\tindented\tinside", " indented\tinside"),
])
def test_the_name_rule_changes_only_what_line_protocol_cannot_carry(name, kept):
    assert clean_name(name) == kept


def test_non_finite_floats_are_left_out_and_a_point_without_fields_is_skipped():
    assert encode_point(Point("m", {}, {"a": math.nan, "b": 1.0, "c": math.inf}, 1)) == "m b=1.0 1"
    assert encode_points([Point("m", {}, {"a": math.nan}, 1)]) == ""


@pytest.mark.parametrize("point, words", [
    (Point("", {}, {"v": 1}, 1), "measurement"),
    (Point("#comment", {}, {"v": 1}, 1), "'#'"),
    (Point("m", {"time": "x"}, {"v": 1}, 1), "'time'"),
    (Point("m", {}, {"time": 1}, 1), "'time'"),
    (Point("m", {"host": 3}, {"v": 1}, 1), "must be a string"),
    (Point("m", {}, {"v": [1]}, 1), "must be a float, int, bool or str"),
    (Point("m", {}, {"v": 2**63}, 1), "64-bit"),
    (Point("m", {"v": "x"}, {"v": 1}, 1), "both tags and fields"),
    (Point("m", {}, {"v": 1}, 1.5), "time_ns"),
])
def test_a_point_no_store_can_hold_is_refused_with_the_reason(point, words):
    with pytest.raises(PointError, match=None) as caught:
        encode_point(point)
    assert words in str(caught.value)


names = st.text(
    st.one_of(st.sampled_from(list(' ,="\'\\\n\r\t#😀é\u2028\x00')), st.characters(exclude_categories=("Cs",))),
    min_size=1, max_size=24,
)


@pytest.fixture(scope="module")
def roundtrip_store(influxdb_server):
    influxdb_server.create_database("roundtrip")
    store = open_store(f"influxdb://127.0.0.1:{influxdb_server.port}/roundtrip")
    yield store
    store.close()


@pytest.mark.influxdb
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurement=names, tag_key=names, tag_value=names, field_key=names, text=st.text(
    st.characters(exclude_categories=("Cs",))))
def test_hostile_names_round_trip_exactly_through_real_influxdb(roundtrip_store, measurement, tag_key, tag_value,
                                                                 field_key, text):
    clean = {name: clean_name(name) for name in (measurement, tag_key, tag_value, field_key)}
    if measurement.startswith("#") or "time" in (clean[tag_key], clean[field_key]) or \
            clean[tag_key] == clean[field_key]:
        return  # refused by design (see the point-refusal test)
    point = Point(measurement, {tag_key: tag_value}, {field_key: text}, T0)
    assert roundtrip_store.write([point]) == 1
    frame = roundtrip_store.query(measurement, [field_key], T0, T0 + 1, where={tag_key: tag_value},
                                  group_by=[tag_key])
    assert frame[clean[field_key]].tolist() == [text]
    assert frame[clean[tag_key]].tolist() == [clean[tag_value]]
    assert clean[tag_value] in roundtrip_store.tag_values(measurement, tag_key)
