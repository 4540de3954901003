"""The host page's cause and effect on one axis: hang and down bands with their diagnoses, failure lines through
every panel, the leak warning and its forecast, guests labelled by their newest state. Reads on both stores, the
page in Chromium over a real `virtwatch dashboard`."""

from __future__ import annotations

import html
from urllib.parse import quote

import pytest
from planted import SLO_TOML, to_ns
from planted_host_triage import (CALM_HOST, FDS_AT_RESTART, FDS_NOW, GUESTS, HANG_HOST, HOSTILE_GUEST, LEAK_HOST,
                                 LEAK_RESTART_MINUTES_AGO, MAX_FDS, MINUTE_NS, STRETCHES, newest_cause, plant_triage)

from dashboard import figures, host_bands, host_data
from dashboard.host_guests import guest_label
from dashboard.timerange import TimeRange
from tsdb import Point
from tsdb.point import clean_name

HOUR_NS = 3600 * 10**9
PANELS = 7  # events, latency, workers, RSS, fds, restarts, load
PANEL_AXES = {"y domain", *(f"y{row} domain" for row in range(2, PANELS + 1))}


@pytest.fixture
def triage_store(store, fixed_now):
    """The `store` fixture (InfluxDB 1.6 and DuckDB) holding the triage hosts."""
    plant_triage(store, to_ns(fixed_now))
    return store


def last_hours(fixed_now, hours: float = 3, ago_minutes: int = 0) -> TimeRange:
    """Return the range of `hours` ending `ago_minutes` before the planted end."""
    end = to_ns(fixed_now) - ago_minutes * MINUTE_NS
    return TimeRange(end - int(hours * HOUR_NS), end, f"last {hours} hours")


def minutes_ago(fixed_now, time_ns: int) -> float:
    """Return how many minutes before the planted end a time is."""
    return (to_ns(fixed_now) - time_ns) / MINUTE_NS


# ---- the reads, on both stores ----

def test_a_hang_an_outage_and_a_hang_still_lasting_are_three_intervals_with_their_newest_causes(triage_store,
                                                                                               fixed_now):
    rng = last_hours(fixed_now)
    found = host_data.read_health(triage_store, HANG_HOST, rng).intervals
    assert [(i.kind, minutes_ago(fixed_now, i.start_ns), minutes_ago(fixed_now, i.end_ns), i.ongoing)
            for i in found] == [(s.kind, s.start_minutes_ago, s.end_minutes_ago, s.ongoing) for s in STRETCHES]
    assert [i.cause for i in found] == [newest_cause(s) if s.kind == "hang" else "" for s in STRETCHES]


def test_a_hang_longer_than_the_range_is_one_band_over_the_whole_range_and_ongoing(triage_store, fixed_now):
    first = STRETCHES[0]
    rng = last_hours(fixed_now, hours=0.25, ago_minutes=first.end_minutes_ago + 5)  # inside the first hang
    found = host_data.read_health(triage_store, HANG_HOST, rng).intervals
    assert [(i.kind, i.start_ns, i.end_ns, i.ongoing) for i in found] == [("hang", rng.start_ns, rng.end_ns, True)]
    assert found[0].cause.startswith(f"libvirtd on {HANG_HOST} hung ")


def test_a_hang_whose_end_event_was_missed_ends_where_the_daemon_answered_again(store, fixed_now):
    host, now = "kvm-lost-end", to_ns(fixed_now)
    points = [Point("libvirtd", {"host": host}, {"up": 1, "hung": 1 if 20 >= minute > 12 else 0},
                    now - minute * MINUTE_NS - 5 * 10**9) for minute in range(30, -1, -1)]
    points.append(Point("event", {"host": host, "kind": "hang_start", "severity": "critical"},
                        {"message": "hung", "count": 1}, now - 20 * MINUTE_NS))
    store.write(points)
    rng = last_hours(fixed_now, hours=0.5)
    [hang] = host_data.read_health(store, host, rng).intervals
    assert (minutes_ago(fixed_now, hang.start_ns), hang.ongoing) == (20, False)
    assert 0 <= minutes_ago(fixed_now, hang.end_ns) - 12 <= rng.window_seconds / 60  # the window it answered in
    assert hang.cause == ""


def test_a_hang_that_starts_in_the_ranges_first_window_starts_at_its_event_not_at_the_range(triage_store,
                                                                                          fixed_now):
    first = STRETCHES[0]
    end = to_ns(fixed_now) - first.end_minutes_ago * MINUTE_NS - MINUTE_NS
    rng = TimeRange(to_ns(fixed_now) - first.start_minutes_ago * MINUTE_NS - 30 * 10**9, end, "a short range")
    [hang] = host_data.read_health(triage_store, HANG_HOST, rng).intervals
    assert minutes_ago(fixed_now, hang.start_ns) == first.start_minutes_ago and hang.end_ns == end and hang.ongoing


def test_the_leak_warning_holds_the_leaking_hosts_descriptors_and_nothing_for_the_others(triage_store, fixed_now):
    rng = last_hours(fixed_now)
    leak = host_data.leak_view(triage_store, LEAK_HOST, rng)
    sign = leak.sign("fds")
    assert sign is not None and sign.figures["open_fds"] == FDS_NOW and sign.figures["max_fds"] == MAX_FDS
    assert f"{FDS_NOW:,} of {MAX_FDS:,} file descriptors" in sign.summary
    assert leak.forecast.limit_at_ns() > rng.end_ns - MINUTE_NS  # still climbing: the limit lies ahead
    for host in (HANG_HOST, CALM_HOST):
        assert host_data.leak_view(triage_store, host, rng).signs == ()


def test_the_leak_figures_read_only_the_process_running_at_the_ranges_end(triage_store, fixed_now):
    rng = last_hours(fixed_now, hours=3, ago_minutes=LEAK_RESTART_MINUTES_AGO - 30)  # 30 min after the restart
    leak = host_data.leak_view(triage_store, LEAK_HOST, rng)
    assert leak.forecast.open_fds < FDS_AT_RESTART / 2
    assert leak.forecast.line.points == 30  # a point a minute since the restart, none of the old process's


def test_each_guest_has_its_newest_failure(triage_store, fixed_now):
    rng = last_hours(fixed_now)
    failures = host_data.guest_failures(triage_store, CALM_HOST, rng)
    expected = {clean_name(name): (to_ns(fixed_now) - ago * MINUTE_NS, "domain_failed")
                for name, ago, _state in GUESTS if ago is not None}
    assert failures == expected
    assert host_data.guest_failures(triage_store, LEAK_HOST, rng) == {}


# ---- labels and figure, pure ----

@pytest.mark.parametrize(("state", "failed_minutes_ago", "partial", "label", "look"), [
    ("running", 120, False, "↻ recovered · failed 2 h ago", "recovered"),
    ("shut off", 30, False, "✖ failed 30 min ago", "failed"),
    ("crashed", None, False, "✖ crashed", "failed"),
    ("running", None, False, "", ""),
    ("paused", None, True, "‖ wedged", "wedged"),
    ("running", 5, True, "↻ recovered · failed 5 min ago · ‖ wedged", "wedged"),
], ids=["recovered", "still-failed", "crashed", "healthy", "wedged", "recovered-then-wedged"])
def test_a_guest_is_labelled_by_its_newest_state_with_its_failure_as_history(state, failed_minutes_ago, partial,
                                                                               label, look):
    end = 10**18
    failed_at = None if failed_minutes_ago is None else end - failed_minutes_ago * MINUTE_NS
    assert guest_label(state, failed_at, end, partial) == (label, look)


def health_figure(store, host: str, rng: TimeRange):
    """Return the host figure as the page builds it."""
    found = host_data.read_health(store, host, rng)
    return figures.host_health_figure(found.health, found.load, found.events, rng.start_ns, rng.end_ns,
                                      bands=found.intervals,
                                      forecast=found.leak.forecast if found.leak.sign("fds") else None)


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_every_panel_carries_every_band_and_the_newest_hang_is_labelled_with_its_escaped_cause(triage_store,
                                                                                              fixed_now):
    figure = health_figure(triage_store, HANG_HOST, last_hours(fixed_now))
    for stretch in STRETCHES:
        start = fixed_now.timestamp() - stretch.start_minutes_ago * 60
        axes = [shape["yref"] for shape in figure["layout"]["shapes"] if shape["name"] == f"band-{stretch.kind}"
                and abs(_seconds(shape["x0"]) - start) < 1]
        assert sorted(axes) == sorted(PANEL_AXES)
    notes = [note["text"] for note in figure["layout"]["annotations"] if note.get("name") == "note-hang"]
    assert "ongoing" in notes[-1] and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in notes[0]
    assert "<script>" not in "".join(notes)
    causes = [html.unescape(line) for note in notes for line in note.split("<br>")[1:]]
    assert causes and all(len(line) <= host_bands.CAUSE_LINE_CHARS for line in causes)  # short lines, not a run-on


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_the_restart_that_ended_a_leak_is_marked_where_the_fds_dropped_and_the_forecast_reaches_the_limit(
        triage_store, fixed_now):
    figure = health_figure(triage_store, LEAK_HOST, last_hours(fixed_now))
    restart = fixed_now.timestamp() - LEAK_RESTART_MINUTES_AGO * 60
    lines = [s["yref"] for s in figure["layout"]["shapes"]
             if s["name"] == "line-restart" and abs(_seconds(s["x0"]) - restart) < 1]
    assert sorted(lines) == sorted(PANEL_AXES)
    hover = [trace for trace in figure["data"] if trace.get("meta") == "event-lines"]
    assert {trace["yaxis"] for trace in hover} == {f"y{row}" for row in range(2, PANELS + 1)}  # the strip has its own
    assert all(trace["text"][0].startswith("restart: libvirtd pid 4711 replaced by 4790") for trace in hover)
    [drop] = [note for note in figure["layout"]["annotations"] if note.get("name") == "fd-drop"]
    assert drop["yref"] == "y5" and drop["text"].startswith(f"↻ restart: fds {FDS_AT_RESTART:,} → ")
    [forecast] = [trace for trace in figure["data"] if trace.get("meta") == "fd-forecast"]
    assert forecast["y"] == [FDS_NOW, MAX_FDS] and forecast["yaxis"] == "y5"
    calm = health_figure(triage_store, CALM_HOST, last_hours(fixed_now))
    assert not [note for note in calm["layout"]["annotations"] if note.get("name") in ("fd-drop", "fd-forecast")]


def test_event_lines_escape_what_a_message_holds():
    import pandas as pd

    events = pd.DataFrame({"time": [pd.Timestamp("2026-01-01", tz="UTC")], "kind": ["domain_failed"],
                           "domain": [HOSTILE_GUEST], "message": ["<b>gone</b> & lost"], "severity": ["critical"],
                           "host": ["h"]})
    [line] = host_bands.event_lines(events)
    text = line.text.replace("<br>", " ")  # plotly's line breaks are the only markup left
    assert "&lt;script&gt;" in text and "&lt;b&gt;gone&lt;/b&gt; &amp; lost" in text and "<" not in text


def _seconds(iso: str) -> float:
    """Return an ISO time of a figure as Unix seconds."""
    import pandas as pd

    return pd.Timestamp(iso).timestamp()


# ---- the page in Chromium ----

@pytest.fixture(scope="module")
def triage_server(tmp_path_factory):
    """`virtwatch dashboard` over a DuckDB file holding the triage hosts."""
    from dashboard_servers import planted_now, start_server, write_config

    from tsdb import open_store

    work = tmp_path_factory.mktemp("host-triage")
    url = f"duckdb://{work}/store.duckdb"
    now = planted_now()
    store = open_store(url)
    try:
        plant_triage(store, to_ns(now))
    finally:
        store.close()
    (work / "slos.toml").write_text(SLO_TOML)
    server = start_server(write_config(work / "virtwatch.toml", url, work / "alerts", work / "slos.toml"), work,
                          work / "alerts", now)
    yield server
    server.stop()


def open_host(tab, server, host: str) -> None:
    """Open a host's page over the planted three hours and wait until its figure is drawn."""
    from test_dashboard_pages import SETTLED_MS, settle

    tab.page.goto(f"{server.url}/host/{quote(host, safe='')}?{server.planted_range()}")
    tab.page.wait_for_selector("#host-health-graph .js-plotly-plot", timeout=SETTLED_MS)
    settle(tab.page)


def drawn(tab) -> dict:
    """Return what plotly drew: the figure's shapes and annotations as data, and the annotations' visible text."""
    return tab.page.evaluate("""() => {
        const plot = document.querySelector('#host-health-graph .js-plotly-plot');
        return {shapes: plot.layout.shapes.map(s => ({name: s.name, yref: s.yref, x0: s.x0})),
                notes: [...plot.querySelectorAll('.annotation')].map(a => a.textContent),
                shapes_drawn: plot.querySelectorAll('.shapelayer path').length};
    }""")


@pytest.mark.slow
def test_the_band_of_the_planted_hang_runs_through_every_panel_with_its_cause(triage_server, tab):
    open_host(tab, triage_server, HANG_HOST)
    seen = drawn(tab)
    bands = [s for s in seen["shapes"] if s["name"] == "band-hang"]
    assert sorted(s["yref"] for s in bands) == sorted([*PANEL_AXES] * 2)  # two hangs, each through every panel
    assert seen["shapes_drawn"] >= len(seen["shapes"])
    first = " ".join(seen["notes"])
    assert "‖ hung 30 min" in first and "‖ hung 10 min · ongoing" in first and "✖ down 10 min" in first
    assert "<script>window.pwned=1</script>" in first  # markup shows as text
    assert tab.page.evaluate("() => window.pwned") is None
    listed = tab.page.inner_text("#host-intervals")
    assert newest_cause(STRETCHES[0]) in listed and newest_cause(STRETCHES[2]) in listed
    assert tab.errors == []
    tab.shot("host-triage-hang")


@pytest.mark.slow
def test_the_leak_warning_shows_on_the_leaking_host_and_not_on_a_calm_one(triage_server, tab):
    open_host(tab, triage_server, LEAK_HOST)
    warning = tab.page.inner_text("#host-leak")
    assert "Leak warning" in warning and f"{FDS_NOW:,} of {MAX_FDS:,} file descriptors" in warning
    assert "↻ restart: fds 6,100 → " in " ".join(drawn(tab)["notes"])
    tab.shot("host-triage-leak")
    open_host(tab, triage_server, CALM_HOST)
    assert tab.page.query_selector("#host-leak") is None
    assert tab.page.query_selector("#host-intervals") is None
    tab.shot("host-triage-calm")


@pytest.mark.slow
def test_a_guest_that_failed_and_runs_again_says_recovered(triage_server, tab):
    open_host(tab, triage_server, CALM_HOST)
    tab.page.wait_for_selector("#host-domains-grid .ag-row", timeout=30_000)
    rows = tab.page.evaluate("""() => {
        const rows = {};
        for (const cell of document.querySelectorAll('#host-domains-grid .ag-row .ag-cell')) {
            const index = cell.closest('.ag-row').getAttribute('row-index');
            rows[index] = rows[index] || {};
            rows[index][cell.getAttribute('col-id')] = cell.innerText.trim();
        }
        return Object.values(rows);
    }""")
    labels = {row["domain"]: row["flag"] for row in rows}
    assert labels == {clean_name(HOSTILE_GUEST): "↻ recovered · failed 1 h ago", "db-2": "✖ failed 30 min ago",
                      "quiet-3": ""}
    assert tab.errors == []
