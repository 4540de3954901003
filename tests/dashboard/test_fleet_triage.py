"""The fleet page worst first, on a planted fleet in every kind of trouble, on InfluxDB 1.6 and DuckDB: the order
with no sort chosen, the summary strip, leak signs, the failures heatmap, the columns that decide triage at 1400 px
and the burn chart's window."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from counting_store import CountingStore
from dashboard_servers import planted_now, start_server, write_config
from planted import SLO_TOML, to_ns
from planted_fleet import (HOSTILE_TRIAGE_HOST, LEAK_MAX_FDS, LEAK_OPEN_FDS, OVERSPENT_PERCENT, TRIAGE_HOSTS,
                           TRIAGE_ORDER, plant_triage, triage_failures)

from dashboard import data, fleet_summary, fleet_table, heatmap
from dashboard.timerange import TimeRange

pytestmark = pytest.mark.influxdb

SLO_NAMES = ["libvirtd-availability", "libvirtd-latency"]


def last_hours(now: dt.datetime, hours: int = 4) -> TimeRange:
    """Return the range of the last `hours` before now."""
    return TimeRange(to_ns(now) - hours * 3600 * 10**9, to_ns(now), f"last {hours} hours")


@pytest.fixture
def triage_store(store, slos, fixed_now, tmp_path):
    """The store fixture (InfluxDB 1.6 and DuckDB) holding the triage fleet, and the engine's state dir."""
    data.clear_caches()
    plant_triage(store, tmp_path / "alerts", fixed_now, SLO_NAMES)
    yield store, tmp_path / "alerts"
    data.clear_caches()


def frame_of(triage_store, slos, fixed_now):
    """Return the fleet frame of the triage fleet over the last 4 hours."""
    store, state_dir = triage_store
    return data.fleet_frame(store, last_hours(fixed_now), slos, state_dir, lambda: fixed_now)


def test_the_fleet_frame_holds_every_trouble_planted(triage_store, slos, fixed_now):
    frame = frame_of(triage_store, slos, fixed_now).set_index("host")
    assert frame["status"].to_dict() == {host: {"down": "down", "hung": "hung"}.get(what, "up")
                                         for host, what in TRIAGE_HOSTS.items()}
    assert frame["pages_firing"][frame["pages_firing"] > 0].to_dict() == {"tri-paging": 1}
    assert frame["alerts_firing"][frame["alerts_firing"] > 0].to_dict() == {"tri-paging": 1, "tri-overspent": 1}
    assert frame.loc["tri-overspent", ["worst_budget_percent", "worst_budget_slo"]].tolist() == \
        [OVERSPENT_PERCENT, "libvirtd-latency"]
    assert frame["failures"][frame["failures"] > 0].to_dict() == triage_failures()  # warnings count, info does not


def test_the_leak_sign_is_on_the_leaking_host_only(triage_store, slos, fixed_now):
    frame = frame_of(triage_store, slos, fixed_now).set_index("host")
    assert frame.index[frame["leak_sign"] != ""].tolist() == ["tri-leaking"]
    assert frame.index[frame["fd_leak"]].tolist() == ["tri-leaking"] and not frame["rss_leak"].any()
    leaking = frame.loc["tri-leaking"]
    assert leaking["max_fds"] == LEAK_MAX_FDS and LEAK_OPEN_FDS - 20 <= leaking["open_fds"] <= LEAK_OPEN_FDS
    assert leaking["leak_sign"] == f"fds 99% of {LEAK_MAX_FDS:,}"
    assert leaking["leak_detail"].startswith("libvirtd holds 7,9") and "of 8,000 file descriptors" in \
        leaking["leak_detail"]


def test_without_the_engines_records_the_leak_signs_of_the_whole_fleet_are_two_reads_and_then_one_a_minute(
        triage_store, fixed_now):
    counting = CountingStore(triage_store[0])
    end_ns = to_ns(fixed_now)
    leaks = data.read_leaks(counting, end_ns)
    assert sorted(leaks["host"]) == sorted(TRIAGE_HOSTS)
    assert [(name, args[0]) for name, args, _kwargs in counting.calls] == [("latest", "libvirtd_leak")] + [
        ("query", "libvirtd")] * 2
    assert data.read_leaks(counting, end_ns) is leaks and len(counting.calls) == 3  # kept a minute
    later = end_ns + 60 * 10**9  # the windows before the descriptors' hour are kept for 5 minutes
    bucket = data.LEAK_OLDER_CACHE_SECONDS * 10**9
    same_older = (end_ns - 3600 * 10**9) // bucket == (later - 3600 * 10**9) // bucket
    assert data.read_leaks(counting, later)["leak_sign"].tolist() == leaks["leak_sign"].tolist()
    assert len(counting.calls) == (5 if same_older else 6)


def test_with_the_engines_leak_records_the_fleet_reads_them_in_one_read_and_shows_the_same_signs(
        triage_store, fixed_now, tmp_path):
    from alerts.engine import Engine
    from alerts.leak_rule import LeakRule

    store = triage_store[0]
    end_ns = to_ns(fixed_now)
    fitted = data.read_leaks(store, end_ns)  # the dashboard's own fit of the points
    data.clear_caches()
    moment = [fixed_now - dt.timedelta(seconds=31)]
    engine = Engine(store, [], [], {}, tmp_path / "engine", clock=lambda: moment[0], leak_rule=LeakRule())
    assert engine.run_round(slos=False, rules=False, leaks=True).error is None  # a new page waits (storm gate)
    moment[0] = fixed_now - dt.timedelta(microseconds=1)
    assert engine.run_round(slos=False, rules=False, leaks=True).error is None
    counting = CountingStore(store)
    recorded = data.read_leaks(counting, end_ns)
    assert [(name, args[0]) for name, args, _kwargs in counting.calls] == [("latest", "libvirtd_leak")]
    assert sorted(recorded["host"]) == sorted(TRIAGE_HOSTS)
    # the engine's fit and the dashboard's agree on every host's signs and limit (the engine quotes the newest
    # point's open fds, the dashboard's own fit the mean of its newest 5-minute window)
    both = recorded.merge(fitted, on="host", suffixes=("_engine", "_fitted"))
    assert len(both) == len(TRIAGE_HOSTS)
    for name in ("fd_leak", "rss_leak", "max_fds"):
        assert both[f"{name}_engine"].fillna(-1).tolist() == both[f"{name}_fitted"].fillna(-1).tolist(), name
    by_host = recorded.set_index("host")
    leaking = fitted[fitted["fd_leak"]]["host"].tolist()
    assert leaking and recorded[recorded["fd_leak"]]["host"].tolist() == leaking
    assert by_host.loc[leaking[0], "open_fds"] == LEAK_OPEN_FDS and by_host.loc[leaking[0], "max_fds"] == LEAK_MAX_FDS
    # ... and the leaking host's alert fires in the engine that wrote them, no other host's
    firing = {(state.labels["alertname"], state.labels.get("host")) for state in engine.tracker.snapshot().values()
              if state.state == "firing"}
    assert firing == {("LibvirtdFdLeak", host) for host in leaking}
    assert by_host.loc[leaking[0], "leak_sign"].startswith("fds ")


def test_the_table_and_the_strip_asking_at_once_read_the_store_once(triage_store, slos, fixed_now):
    from concurrent.futures import ThreadPoolExecutor

    store, state_dir = triage_store
    counting = CountingStore(store)
    rng = last_hours(fixed_now)
    frame_of((counting, state_dir), slos, fixed_now)
    alone = len(counting.calls)
    data.clear_caches()
    counting.calls.clear()
    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(lambda _: data.fleet_frame(counting, rng, slos, state_dir, lambda: fixed_now),
                               range(4)))
    assert all(frame is frames[0] for frame in frames) and len(counting.calls) == alone


def test_with_no_sort_the_worst_host_comes_first(triage_store, slos, fixed_now):
    frame = fleet_table.prepared(frame_of(triage_store, slos, fixed_now))
    assert fleet_table.order(frame, ())["host"].tolist() == TRIAGE_ORDER


def test_the_summary_counts_what_was_planted(triage_store, slos, fixed_now):
    parts = fleet_summary.summarize(frame_of(triage_store, slos, fixed_now))
    assert [part.text for part in parts] == ["1 down", "1 hung", "1 page firing", "1 other alert firing",
                                             "1 host over budget", "1 fd leak", "4 hosts with failures"]
    assert [part.status for part in parts if part.status] == ["down", "hung"]


def test_a_healthy_fleet_says_so(store, fixed_now):
    from tsdb import Point

    data.clear_caches()
    store.write([Point("libvirtd", {"host": f"calm-{i}"}, {"up": 1, "hung": 0, "probe_ok": 1},
                       to_ns(fixed_now) - 30 * 10**9) for i in range(3)])
    frame = data.fleet_frame(store, last_hours(fixed_now))
    assert fleet_summary.summarize(frame) == []
    assert "All 3 hosts healthy" in str(fleet_summary.strip(frame))


def test_the_heatmap_holds_the_planted_failures_in_their_buckets(triage_store, fixed_now):
    rng = last_hours(fixed_now)
    heat = heatmap.read_failure_heatmap(triage_store[0], rng)
    planted = {host: count for host, count in triage_failures().items() if count}
    assert heat.hosts == ("tri-restarts", HOSTILE_TRIAGE_HOST, "tri-down", "tri-hung")  # most first, then by name
    assert {host: sum(row) for host, row in zip(heat.hosts, heat.counts)} == planted
    assert heat.hosts_failing == 4 and heat.total == sum(planted.values())
    restarts = heat.counts[0]
    bucket_ns = heat.bucket_seconds * 10**9
    for minutes_ago in (200, 130, 40):
        when = to_ns(fixed_now) - minutes_ago * 60 * 10**9
        assert restarts[(when - heat.bucket_starts_ns[0]) // bucket_ns] >= 1


def test_at_a_large_fleet_the_heatmap_shows_the_worst_hosts_and_says_how_many_failed(store, fixed_now):
    from tsdb import Point

    now_ns = to_ns(fixed_now)
    store.write([Point("event", {"host": f"hv-{host:03d}", "kind": "restart", "severity": "warning"},
                       {"message": "restarted", "count": 1}, now_ns - (event + 1) * 60 * 10**9)
                 for host in range(60) for event in range(1 + host % 7)])
    counting = CountingStore(store)
    heat = heatmap.read_failure_heatmap(counting, last_hours(fixed_now), max_hosts=40)
    assert len(counting.calls) == 1 and heat.hosts_failing == 60 and len(heat.hosts) == 40
    sevens = sorted(f"hv-{host:03d}" for host in range(60) if host % 7 == 6)
    assert list(heat.hosts[:len(sevens)]) == sevens
    assert heatmap.caption(heat).startswith(f"{heat.total} failures") and "the 40 hosts with the most failures " \
        "of 60 that failed" in heatmap.caption(heat)


def test_a_hostile_host_name_is_text_on_the_heatmap_axis():
    assert heatmap.plot_text("<b>x</b> & <a href='javascript:1'>") == \
        "&lt;b&gt;x&lt;/b&gt; &amp; &lt;a href='javascript:1'&gt;"


def test_the_fleet_burn_chart_says_which_window_each_point_covers(planted_store, slos, fixed_now):
    from dashboard import figures

    rng = last_hours(fixed_now, 3)
    figure = figures.fleet_burn_figure(data.sli_series(planted_store, slos, rng), rng.start_ns, rng.end_ns)
    assert figure["layout"]["legend"]["title"]["text"] == "burn rate per 1 min window:"
    assert figure["layout"]["yaxis"]["title"]["text"] == "burn rate per 1 min window (x budget)"
    import pandas as pd

    hours = pd.DataFrame({"time": pd.to_datetime([to_ns(fixed_now) - 7200 * 10**9, to_ns(fixed_now) - 3600 * 10**9],
                                                 utc=True), "slo": ["a", "a"], "burn_rate": [0.5, 2.0]})
    figure = figures.fleet_burn_figure(hours, rng.start_ns, rng.end_ns)
    assert figure["layout"]["legend"]["title"]["text"] == "burn rate per 1 h window:"
    one = hours.iloc[:1]
    assert figures.fleet_burn_figure(one, rng.start_ns, rng.end_ns, 3600)["layout"]["legend"]["title"]["text"] == \
        "burn rate per 1 h window:"
    assert figures.fleet_burn_figure(one, rng.start_ns, rng.end_ns)["layout"]["legend"]["title"]["text"] == \
        "burn rate per window:"  # one point says nothing of its window: no guess


# ---- in Chromium ----

SETTLED_MS = 30_000
#: the columns that decide triage: they must show at 1400 px without scrolling sideways
TRIAGE_COLUMNS = ("host_link", "status_label", "firing", "worst_budget_percent", "failures", "last_failure",
                  "leak_sign")


@pytest.fixture(scope="session", params=["duckdb", "influxdb"])
def triage_server(request, tmp_path_factory):
    """`virtwatch dashboard` over the triage fleet (DuckDB file, or a database of the session's InfluxDB 1.6), with
    the engine's state holding its firing alerts."""
    from tsdb import open_store

    work = tmp_path_factory.mktemp(f"dashboard-triage-{request.param}")
    if request.param == "duckdb":
        url, drop = f"duckdb://{work}/store.duckdb", None
    else:
        influxdb = request.getfixturevalue("influxdb_server")
        database = f"triage_{uuid.uuid4().hex[:10]}"
        influxdb.create_database(database)
        url, drop = f"influxdb://127.0.0.1:{influxdb.port}/{database}", (influxdb, database)
    now = planted_now()
    store = open_store(url)
    try:
        plant_triage(store, work / "alerts", now, SLO_NAMES)
    finally:
        store.close()
    slo_path = work / "slos.toml"
    slo_path.write_text(SLO_TOML)
    server = start_server(write_config(work / "virtwatch.toml", url, work / "alerts", slo_path), work,
                          work / "alerts", now)
    server.backend = request.param  # names its screenshots
    yield server
    server.stop()
    if drop:
        drop[0].drop_database(drop[1])


def open_triage(tab, server):
    """Open the fleet page over the last 4 hours and wait until its rows, strip and heatmap show."""
    from test_fleet_page import wait_for_note

    tab.page.goto(f"{server.url}/?{server.planted_range(4)}")
    wait_for_note(tab.page, "showing 1–")
    tab.page.wait_for_selector(".fleet-summary", timeout=SETTLED_MS)
    tab.page.wait_for_selector("#fleet-heatmap .js-plotly-plot", timeout=SETTLED_MS)
    return tab.page


def grid_cells(page, field: str) -> dict[str, str]:
    """Return {host: the cell's text} of one column of the rows the grid shows (scrolled into view first: the grid
    draws only the columns in view)."""
    page.evaluate("field => window.dash_ag_grid.getApi('fleet-grid').ensureColumnVisible(field)", field)
    page.wait_for_function("""field => document.querySelector(
        `#fleet-grid .ag-center-cols-container .ag-row [col-id="${field}"]`)""", arg=field, timeout=SETTLED_MS)
    return page.evaluate("""field => {
        const out = {};
        for (const row of document.querySelectorAll('#fleet-grid .ag-center-cols-container .ag-row')) {
            const index = row.getAttribute('row-index');
            const host = document.querySelector(
                `#fleet-grid .ag-pinned-left-cols-container .ag-row[row-index="${index}"] [col-id="host_link"]`);
            const cell = row.querySelector(`[col-id="${field}"]`);
            if (host && cell) { out[host.innerText.trim()] = cell.innerText.trim(); }
        }
        return out;
    }""", field)


@pytest.mark.slow
def test_the_worst_host_is_the_first_row(triage_server, tab):
    from test_fleet_page import shown_hosts

    page = open_triage(tab, triage_server)
    assert shown_hosts(page) == TRIAGE_ORDER
    assert "worst first" in page.inner_text("#fleet-count")
    firing = grid_cells(page, "firing")
    assert firing["tri-paging"] == "✖ 1 page: LibvirtdProbesFailing"
    assert firing["tri-overspent"] == "▲ 1 firing: SloBudgetBurn"
    assert grid_cells(page, "worst_budget_percent")["tri-overspent"] == f"✖ {OVERSPENT_PERCENT}% libvirtd-latency"
    assert grid_cells(page, "failures")["tri-restarts"] == "3"
    tab.shot(f"fleet-triage-worst-first-{triage_server.backend}")
    assert tab.errors == []


@pytest.mark.slow
def test_the_summary_strip_counts_what_was_planted_and_each_count_shows_its_hosts(triage_server, tab):
    from test_fleet_page import shown_hosts, wait_for_hosts

    page = open_triage(tab, triage_server)
    assert page.inner_text(".fleet-summary").replace("\n", " ") == (
        "✖ 1 down · ✖ 1 hung · ✖ 1 page firing · ▲ 1 other alert firing · ▲ 1 host over budget · "
        "▲ 1 fd leak · ▲ 4 hosts with failures")
    for part, hosts, param in (("1 hung", ["tri-hung"], "status=hung"), ("1 fd leak", ["tri-leaking"], "show=fd-leak"),
                               ("1 page firing", ["tri-paging"], "show=paging"),
                               ("1 host over budget", ["tri-overspent"], "show=over-budget"),
                               ("4 hosts with failures", TRIAGE_ORDER[:2] + TRIAGE_ORDER[4:6], "show=failures")):
        page.click(f".fleet-summary >> text={part}")
        page.wait_for_url(f"**{param}**", timeout=SETTLED_MS)
        wait_for_hosts(page, hosts)
        assert page.inner_text("#fleet-count").startswith(f"{len(hosts)} of {len(TRIAGE_HOSTS)} hosts"), part
        assert "range=custom" in page.url  # the range stays
    page.click(".fleet-summary >> text=show every host")
    wait_for_hosts(page, TRIAGE_ORDER)
    assert shown_hosts(page) == TRIAGE_ORDER and "show=" not in page.url
    tab.shot(f"fleet-triage-summary-{triage_server.backend}")
    assert tab.errors == []


def test_a_garbage_show_parameter_shows_what_is_wrong(triage_store, slos, fixed_now, tmp_path):
    import json

    from dash_requests import UPDATE_PATH, fleet_rows_body

    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    app = create_app(DashboardContext(triage_store[0], slos, triage_store[1], clock=lambda: fixed_now))
    body = fleet_rows_body({"range": "1h"}, {"startRow": 0, "endRow": 50}, search="?show=%3Cscript%3E")
    response = app.server.test_client().post(UPDATE_PATH, data=json.dumps(body), content_type="application/json",
                                             headers={"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"})
    answer = json.loads(response.get_data())["response"]
    assert "show = '<script>': expected one of paging" in json.dumps(answer["fleet-count"], ensure_ascii=False)
    assert answer["fleet-grid"]["getRowsResponse"] == {"rowData": [], "rowCount": 0}


@pytest.mark.slow
def test_the_leak_sign_shows_on_the_leaking_host_only(triage_server, tab):
    page = open_triage(tab, triage_server)
    signs = grid_cells(page, "leak_sign")
    assert {host: sign for host, sign in signs.items() if sign} == {"tri-leaking": "fds 99% of 8,000"}
    assert set(signs) == set(TRIAGE_HOSTS)
    shares = grid_cells(page, "fd_share_percent")
    red = page.evaluate("""() => Array.from(document.querySelectorAll(
        '#fleet-grid .ag-center-cols-container .cell-bad[col-id="fd_share_percent"]')).map(c => c.innerText.trim())""")
    assert red == [shares["tri-leaking"]] and red[0].startswith("98.")  # the only one past the leak rule's 90%
    assert tab.errors == []


@pytest.mark.slow
def test_only_figures_past_their_thresholds_are_alarm_red(triage_server, tab):
    page = open_triage(tab, triage_server)
    queues = grid_cells(page, "job_queue_depth")
    red_queues = page.evaluate("""() => Array.from(document.querySelectorAll(
        '#fleet-grid .ag-center-cols-container .cell-bad[col-id="job_queue_depth"]')).map(c => c.innerText.trim())""")
    assert {queues[host] for host in ("tri-ok-01", "tri-paging", "tri-leaking")} == {"1"}  # planted: 1 at the end
    assert red_queues == ["20"]  # a queue of 1 is no alarm; 20 calls waiting on a pool of 20 is
    assert tab.errors == []


@pytest.mark.slow
def test_the_columns_that_decide_triage_are_visible_at_1400_px(triage_server, tab):
    page = open_triage(tab, triage_server)
    assert page.viewport_size["width"] == 1400
    boxes = page.evaluate("""fields => {
        const grid = document.querySelector('#fleet-grid').getBoundingClientRect();
        return fields.map(field => {
            const header = document.querySelector(`#fleet-grid .ag-header-cell[col-id="${field}"]`);
            const box = header ? header.getBoundingClientRect() : null;
            return {field, left: box && box.left, right: box && box.right, width: box && box.width,
                    gridLeft: grid.left, gridRight: grid.right};
        });
    }""", list(TRIAGE_COLUMNS))
    for box in boxes:
        assert box["width"] and box["width"] >= 60, box
        assert box["gridLeft"] <= box["left"] and box["right"] <= box["gridRight"] <= 1400, box
    scrolled = page.evaluate("() => document.querySelector('#fleet-grid .ag-body-horizontal-scroll-viewport')"
                             ".scrollLeft")
    assert scrolled == 0
    tab.shot(f"fleet-triage-1400-{triage_server.backend}")


@pytest.mark.slow
def test_the_heatmap_holds_the_planted_failures(triage_server, tab):
    page = open_triage(tab, triage_server)
    trace = page.evaluate("""() => {
        const graph = document.querySelector('#fleet-heatmap .js-plotly-plot');
        return {y: graph.data[0].y, z: graph.data[0].z};
    }""")
    totals = {host: sum(row) for host, row in zip(trace["y"], trace["z"])}
    rows = ["tri-restarts", HOSTILE_TRIAGE_HOST, "tri-down", "tri-hung"]
    assert totals == {heatmap.plot_text(host): count for host, count in triage_failures().items()}
    assert list(totals) == [heatmap.plot_text(host) for host in rows]
    labels = page.evaluate("""() => Array.from(document.querySelectorAll('#fleet-heatmap .ytick text'))
        .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
        .map(text => text.textContent)""")
    assert labels == rows  # top to bottom; a name with markup in it is shown as text, exactly
    assert "failures (warning and critical events) per" in page.inner_text("#fleet-heatmap-note")
    assert tab.errors == []
