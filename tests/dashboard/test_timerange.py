"""The URL's time range, refresh and page parameters: parsed and checked in one place."""

from __future__ import annotations

import pytest

from dashboard.timerange import (ParamError, RangeError, RangeSpec, TimeRange, build_search, list_param,
                                 parse_search, parse_spec, pick_window_seconds, picked_spec, picker_values,
                                 range_from_data, resolve, with_page_params)

NOW_NS = 1_714_564_800 * 10**9  # 2024-05-01T12:00:00Z


@pytest.mark.parametrize("params, expected", [
    ({}, RangeSpec("6h")),
    ({"range": "7d"}, RangeSpec("7d")),
    ({"range": "14d"}, RangeSpec("14d")),
    ({"range": "1h", "refresh": "30s"}, RangeSpec("1h", refresh="30s")),
    ({"range": "custom", "start": "2024-05-01T10:00", "end": "2024-05-01T11:30"},
     RangeSpec("custom", "2024-05-01T10:00", "2024-05-01T11:30")),
    ({"start": "2024-05-01T10:00:30Z", "end": "2024-05-01T13:00+02:00"},
     RangeSpec("custom", "2024-05-01T10:00:30", "2024-05-01T11:00")),
])
def test_a_good_url_gives_its_range(params, expected):
    assert parse_spec(params) == expected


@pytest.mark.parametrize("params, reason", [
    ({"range": "garbage"}, "range = 'garbage': expected one of 1h, 6h, 24h, 7d, 14d, 30d, custom"),
    ({"start": "9999-99-99"}, "start = '9999-99-99': not a valid time"),
    ({"range": "custom", "start": "2024-05-01T10:00"}, "end: required with range=custom"),
    ({"range": "custom", "start": "2024-05-01T10:00", "end": "2024-05-01T09:00"}, "must come after start"),
    ({"range": "custom", "start": "1969-12-31T00:00", "end": "2024-05-01T09:00"}, "outside the times"),
    ({"range": "custom", "start": "2020-01-01", "end": "2024-01-01"}, "longer than 400 days"),
    ({"range": "6h", "start": "2024-05-01T10:00"}, "only allowed with range=custom"),
    ({"range": ["1h", "6h"]}, "range: given more than once"),
    ({"range": "x" * 100}, "too long"),
    ({"refresh": "1s"}, "refresh = '1s': expected one of off, 30s, 1m, 5m"),
    ({"start": "'; DROP MEASUREMENT event; --", "end": "2024-05-01"}, "not a time; expected ISO 8601"),
])
def test_a_bad_url_parameter_is_refused_with_its_name_and_reason(params, reason):
    with pytest.raises(RangeError) as error:
        parse_spec(params)
    assert reason in str(error.value)


def test_a_relative_range_ends_now_and_a_custom_one_where_it_says():
    assert resolve(RangeSpec("1h"), NOW_NS) == TimeRange(NOW_NS - 3600 * 10**9, NOW_NS, "last 1 hour")
    custom = resolve(RangeSpec("custom", "2024-05-01T10:00", "2024-05-01T11:00"), NOW_NS)
    assert (custom.start_ns, custom.end_ns) == (NOW_NS - 7200 * 10**9, NOW_NS - 3600 * 10**9)


@pytest.mark.parametrize("span_seconds, window_seconds", [
    (3600, 30), (6 * 3600, 120), (86400, 300), (7 * 86400, 3600), (30 * 86400, 10800), (400 * 86400, 86400)])
def test_long_ranges_read_coarser_windows_of_at_most_300_points(span_seconds, window_seconds):
    assert pick_window_seconds(span_seconds) == window_seconds
    assert span_seconds / window_seconds <= 300 or window_seconds == 86400


def test_ranges_over_a_day_read_hourly_sli_rollups():
    assert resolve(RangeSpec("24h"), NOW_NS).rollup_resolution == "1m"
    assert resolve(RangeSpec("7d"), NOW_NS).rollup_resolution == "1h"


def test_the_range_store_holds_an_error_that_reading_it_raises():
    with pytest.raises(RangeError, match="garbage"):
        range_from_data({"error": "range = 'garbage': expected one of ..."}, NOW_NS)
    assert range_from_data({"range": "24h", "start": "", "end": "", "refresh": "off"}, NOW_NS).label == \
        "last 24 hours"


def test_page_parameters_round_trip_hostile_values_through_the_query_string():
    hostile = ['kvm "a", b&c=d', "ünï cødé ✓", "back\\slash"]
    search = with_page_params("?range=7d&q=x", {"host": hostile, "q": None})
    assert parse_search(search) == {"range": "7d", "host": hostile}
    assert list_param(parse_search(search), "host") == hostile
    assert build_search({}) == ""


def test_a_page_parameter_outside_its_choices_is_refused():
    with pytest.raises(ParamError, match="severity = 'loud': expected one of critical, warning, info"):
        list_param({"severity": ["critical", "loud"]}, "severity", ("critical", "warning", "info"))


def test_the_14_day_preset_spans_14_days_and_reads_hourly_rollups():
    fortnight = resolve(parse_spec({"range": "14d"}), NOW_NS)
    assert (fortnight.end_ns - fortnight.start_ns, fortnight.label) == (14 * 86400 * 10**9, "last 14 days")
    assert fortnight.rollup_resolution == "1h" and fortnight.span_seconds / fortnight.window_seconds <= 300


def test_the_date_picker_gives_the_custom_range_the_url_spells():
    spec = picked_spec("2024-05-01", "08:00", "2024-05-02T00:00:00", "20:30:15", "1m")
    assert spec == RangeSpec("custom", "2024-05-01T08:00", "2024-05-02T20:30:15", "1m")
    assert build_search(spec.params()) == ("?range=custom&start=2024-05-01T08%3A00&end=2024-05-02T20%3A30%3A15"
                                           "&refresh=1m")
    assert picked_spec("2024-05-01", "", "2024-05-01", " 12:00 ", "off").params() == {
        "range": "custom", "start": "2024-05-01T00:00", "end": "2024-05-01T12:00"}  # no time: midnight


@pytest.mark.parametrize("picked, reason", [
    (("2024-05-01", "10:00", "2024-05-01", "09:00"), "end = '2024-05-01T09:00': must come after start = "
                                                      "'2024-05-01T10:00'"),
    (("2024-05-02", "00:00", "2024-05-01", "23:00"), "must come after start"),
    ((None, "10:00", "2024-05-01", "09:00"), "start date: pick one in the calendar"),
    (("2024-05-01", "25:00", "2024-05-02", "09:00"), "start time = '25:00': expected HH:MM (24-hour, UTC)"),
    (("2024-05-01", "10:00", "2024-05-02", "9h<script>"), "end time = '9h<script>': expected HH:MM"),
    (("2024-05-01", "10:00", "2024/05/02", "09:00"), "end date = '2024/05/02': expected YYYY-MM-DD"),
    (("2024-02-30", "10:00", "2024-05-02", "09:00"), "start = '2024-02-30T10:00': not a valid time"),
])
def test_a_bad_or_reversed_pick_is_refused_naming_the_field_and_the_reason(picked, reason):
    with pytest.raises(RangeError) as error:
        picked_spec(*picked)
    assert reason in str(error.value)


def test_the_date_picker_starts_from_the_range_shown():
    assert picker_values(RangeSpec("custom", "2024-05-01T10:00", "2024-05-02T11:30:15"), None) == (
        "2024-05-01", "10:00", "2024-05-02", "11:30:15")
    assert picker_values(RangeSpec("6h"), resolve(RangeSpec("6h"), NOW_NS + 59 * 10**9)) == (
        "2024-05-01", "06:00", "2024-05-01", "12:00")
