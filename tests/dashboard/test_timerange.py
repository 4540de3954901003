"""The URL's time range, refresh and page parameters: parsed and checked in one place."""

from __future__ import annotations

import pytest

from dashboard.timerange import (ParamError, RangeError, RangeSpec, TimeRange, build_search, list_param,
                                 parse_search, parse_spec, pick_window_seconds, range_from_data, resolve,
                                 with_page_params)

NOW_NS = 1_714_564_800 * 10**9  # 2024-05-01T12:00:00Z


@pytest.mark.parametrize("params, expected", [
    ({}, RangeSpec("6h")),
    ({"range": "7d"}, RangeSpec("7d")),
    ({"range": "1h", "refresh": "30s"}, RangeSpec("1h", refresh="30s")),
    ({"range": "custom", "start": "2024-05-01T10:00", "end": "2024-05-01T11:30"},
     RangeSpec("custom", "2024-05-01T10:00", "2024-05-01T11:30")),
    ({"start": "2024-05-01T10:00:30Z", "end": "2024-05-01T13:00+02:00"},
     RangeSpec("custom", "2024-05-01T10:00:30", "2024-05-01T11:00")),
])
def test_a_good_url_gives_its_range(params, expected):
    assert parse_spec(params) == expected


@pytest.mark.parametrize("params, reason", [
    ({"range": "garbage"}, "range = 'garbage': expected one of 1h, 6h, 24h, 7d, 30d, custom"),
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
