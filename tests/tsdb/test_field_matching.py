"""Field tests in a read (`matching`): InfluxDB 1.6 and DuckDB keep exactly the rows whose fields pass, so a store
counts them (what the SLIs' roll-ups ask) instead of sending every row; hostile names stay names."""

from __future__ import annotations

import pandas as pd
import pytest

from tsdb import Point, QueryError

pytestmark = pytest.mark.influxdb
S = 10**9
T0 = 1_699_999_980 * S  # on a minute boundary
HOSTS = ["hv1", 'hv 2,=\'x"\\y', "ünï😀"]
FIELDS = ["state", "reason", "partial", "latency_ms", "note"]


def planted_points() -> list[Point]:
    """Ten minutes of points every 10 s per host: integer state and reason, a 0/1 partial flag missing from some
    points, a float latency and a text note that holds digits."""
    points = []
    for h, host in enumerate(HOSTS):
        for n in range(60):
            fields = {"state": (n * 7 + h) % 8, "reason": (n + h) % 4, "latency_ms": round((n * 37 + h * 11) % 500 / 3, 3),
                      "note": str(n % 3)}
            if n % 5:
                fields["partial"] = int((n + h) % 4 == 0)
            points.append(Point("dom", {"host": host, "domain": f"d{n % 2}"}, fields, T0 + n * 10 * S))
    return points


def passes(rows: pd.DataFrame, matching) -> pd.Series:
    """Return which raw rows pass the tests, as the stores must decide (a missing value fails its test)."""
    import operator

    compare = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    result = pd.Series(False, index=rows.index)
    for group in matching:
        held = pd.Series(True, index=rows.index)
        for field, comparison, value in group:
            numeric = field in rows and field != "note"  # text never compares with a number
            values = pd.to_numeric(rows[field], errors="coerce") if numeric else pd.Series(float("nan"), index=rows.index)
            held &= values.notna() & compare[comparison](values, value)
        result |= held
    return result


MATCHINGS = [
    [[("state", "=", 6)]],
    [[("state", "=", 6)], [("partial", "=", 1)]],  # crashed or partial: either test passes
    [[("state", "=", 5), ("reason", ">=", 2)], [("state", "=", 6)]],
    [[("latency_ms", "<", 100.5), ("state", "<=", 3)]],
    [[("latency_ms", ">", 150)]],
    [[("note", "=", 1)]],  # a text field never compares with a number
    [[("nothing", "=", 0)], [("partial", "=", 0)]],  # a field no point has never passes
]


@pytest.fixture
def planted_in_both(influxdb_store, duckdb_store):
    points = planted_points()
    for store in (influxdb_store, duckdb_store):
        assert store.write(points) == len(points)
    return influxdb_store, duckdb_store


@pytest.mark.parametrize("matching", MATCHINGS)
def test_a_count_of_the_rows_that_pass_equals_the_raw_rows_that_pass_on_both_stores(planted_in_both, matching):
    influx, duck = planted_in_both
    for store in (influx, duck):
        raw = store.query("dom", FIELDS, T0, T0 + 600 * S, group_by=["host"])
        raw = raw[passes(raw, matching)]
        raw = raw[raw["state"].notna()]
        expected = raw.assign(minute=raw["time"].astype("int64") // (60 * S) * (60 * S)).groupby(
            ["minute", "host"]).size()
        counted = store.query("dom", ["state"], T0, T0 + 600 * S, window_seconds=60, aggregate="count",
                              group_by=["host"], matching=matching)
        got = counted.set_index([counted["time"].astype("int64").rename("minute"), "host"])["state"]
        assert got.sort_index().to_dict() == expected.astype("float64").sort_index().to_dict()
    pd.testing.assert_frame_equal(
        duck.query("dom", ["state", "latency_ms"], T0, T0 + 600 * S, window_seconds=120, aggregate=("count", "sum"),
                   group_by=["host"], matching=matching),
        influx.query("dom", ["state", "latency_ms"], T0, T0 + 600 * S, window_seconds=120,
                     aggregate=("count", "sum"), group_by=["host"], matching=matching), rtol=1e-12)


def test_a_raw_read_returns_exactly_the_rows_that_pass_and_tag_filters_still_apply(planted_in_both):
    matching = [[("state", "=", 6)], [("partial", "=", 1)]]
    for store in planted_in_both:
        everything = store.query("dom", FIELDS, T0, T0 + 600 * S, group_by=["host", "domain"])
        expected = everything[passes(everything, matching) & (everything["host"] == HOSTS[1])]
        got = store.query("dom", FIELDS, T0, T0 + 600 * S, where={"host": HOSTS[1]}, group_by=["host", "domain"],
                          matching=matching)
        assert len(got) > 0
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))


def test_a_count_of_a_field_no_row_passes_has_no_rows(store):
    store.write(planted_points())
    frame = store.query("dom", ["state"], T0, T0 + 600 * S, window_seconds=60, aggregate="count",
                        group_by=["host"], matching=[[("state", ">", 100)]])
    assert frame.empty and list(frame.columns) == ["time", "host", "state"]


@pytest.mark.parametrize("matching, words", [
    ([], "matching = []"),
    ("state = 6", "matching = 'state = 6'"),
    ([("state", "=", 6)], "matching group ('state', '=', 6)"),
    ([[("state", "!=", 6)]], "the comparison must be one of =, <, <=, >, >="),
    ([[("state", "=", "6")]], "the value must be a finite number"),
    ([[("state", "=", True)]], "the value must be a finite number"),
    ([[("state", "=", float("nan"))]], "the value must be a finite number"),
    ([[("", "=", 1)]], "the field must be a non-empty name"),
    ([[("time", ">", 1)]], "other than 'time'"),
    ([[("state", "=")]], "matching test ('state', '=')"),
])
def test_a_bad_matching_is_refused_naming_what_is_wrong(duckdb_store, matching, words):
    with pytest.raises(QueryError) as refused:
        duckdb_store.query("dom", ["state"], T0, T0 + 60 * S, matching=matching)
    assert words in str(refused.value)
