"""The figure builders: pure functions of frames read from a real store."""

from __future__ import annotations

import pytest
from planted import to_ns
from planted import EVENTS

from alerts.burn import WindowBurn
from alerts.windows import alert_windows
from dashboard import data, figures
from dashboard.timerange import TimeRange


@pytest.fixture
def store(duckdb_store):
    """The planted fleet in DuckDB is enough here: the figures only see frames."""
    return duckdb_store


def test_the_host_figure_draws_every_event_of_the_host_on_its_time_axis(planted_store, fixed_now):
    rng = TimeRange(to_ns(fixed_now) - 3 * 3600 * 10**9, to_ns(fixed_now), "last 3 hours")
    host = "kvm-up-01"
    figure = figures.host_health_figure(data.host_health(planted_store, host, rng),
                                        data.host_load(planted_store, host, rng),
                                        data.events(planted_store, rng, hosts=[host]), rng.start_ns, rng.end_ns)
    marked = [text for trace in figure["data"] if trace.get("meta") == "events" for text in trace["text"]]
    assert sorted(marked) == sorted(f"{e.kind} ({e.domain}): {e.message}" for e in EVENTS if e.host == host)
    axes = {trace["xaxis"] for trace in figure["data"]}
    assert len(axes) == 7  # events, latency, workers, RSS, fds, restarts, load: one row each
    assert len({figure["layout"][axis.replace("x", "xaxis")].get("matches") or axis for axis in axes}) == 1
    lines = [(shape["x0"], shape["yref"]) for shape in figure["layout"]["shapes"]
             if shape["name"] == "line-domain_crashed"]
    crashes = [e for e in EVENTS if e.host == host and e.kind == "domain_crashed"]
    assert len(lines) == 7 * len(crashes)  # through every panel, not only the event strip
    assert {yref for _x, yref in lines} == {"y domain", *(f"y{row} domain" for row in range(2, 8))}


def test_the_burn_windows_figure_marks_each_threshold_with_its_factor():
    windows = tuple(WindowBurn(w, 20.0, 15.0) for w in alert_windows("30d"))
    figure = figures.burn_windows_figure(windows)
    thresholds = next(trace for trace in figure["data"] if trace["name"] == "alert threshold")
    assert list(thresholds["y"]) == pytest.approx([14.4, 6.0, 3.0, 1.0])
    assert list(thresholds["text"]) == ["14.4x", "6x", "3x", "1x"]
    assert [trace["y"][0] for trace in figure["data"][:2]] == [20.0, 15.0]


def test_the_sli_figure_draws_the_objective(planted_store, slos, fixed_now):
    rng = TimeRange(to_ns(fixed_now) - 3 * 3600 * 10**9, to_ns(fixed_now), "last 3 hours")
    series = data.sli_series(planted_store, slos, rng)
    figure = figures.sli_figure(series[series["slo"] == "libvirtd-latency"], 99.0, rng.start_ns, rng.end_ns)
    assert figure["layout"]["shapes"][0]["y0"] == 99.0
    assert "objective 99%" in figure["layout"]["annotations"][0]["text"]
    assert min(figure["data"][0]["y"]) == pytest.approx(60.0)  # two of five hosts fail at the end


def test_the_fleet_burn_figure_has_one_line_per_slo_and_the_1x_line(planted_store, slos, fixed_now):
    rng = TimeRange(to_ns(fixed_now) - 3 * 3600 * 10**9, to_ns(fixed_now), "last 3 hours")
    figure = figures.fleet_burn_figure(data.sli_series(planted_store, slos, rng), rng.start_ns, rng.end_ns)
    assert [trace["name"] for trace in figure["data"]] == ["libvirtd-availability", "libvirtd-latency"]
    assert figure["layout"]["shapes"][0]["y0"] == 1.0
