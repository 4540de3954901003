"""The events and alerts pages in Chromium over a planted store and the alert engine's state: a host or domain
opens that host around the event's (or the alert's) time, "Silence this" fills the silence form with the alert's
labels exactly, evidence reads as lines, and the columns that matter fit 1400 px."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from grid_text import fits_its_width, grid_rows
from planted import ALERT_DESCRIPTION, EVENTS
from planted_triage import HOSTILE_ALERT_HOST, HOSTILE_ALERT_LABELS, start_triage_server
from test_dashboard_pages import SETTLED_MS, open_page, settle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def triage_server(tmp_path_factory):
    """`virtwatch dashboard` over the planted fleet and the engine's alert state of one round over it."""
    server = start_triage_server(tmp_path_factory.mktemp("dashboard-triage-events"))
    yield server
    server.stop()


def url_time(moment: dt.datetime) -> str:
    """Return a time as the dashboard's URLs spell it (UTC, minutes; the planted times are whole minutes)."""
    return f"{moment:%Y-%m-%dT%H:%M}"


def assert_around(params: dict[str, str], at: dt.datetime, now: dt.datetime) -> None:
    """Assert that URL parameters name the range from an hour before `at` to an hour after it, or to the
    dashboard's clock at the click (the next whole minute from the planted now on) when that comes first."""
    assert params["range"] == "custom" and params["start"] == url_time(at - dt.timedelta(hours=1))
    if at + dt.timedelta(hours=1) <= now:
        assert params["end"] == url_time(at + dt.timedelta(hours=1))
    else:
        end = dt.datetime.fromisoformat(params["end"]).replace(tzinfo=dt.timezone.utc)
        assert now < end <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1) and end.second == 0


def opened(page) -> tuple[str, dict[str, str]]:
    """Return the host name of the host page the browser shows and the URL's parameters."""
    parts = urlsplit(page.url)
    assert parts.path.startswith("/host/"), page.url
    return unquote(parts.path[len("/host/"):]), {k: v[0] for k, v in parse_qs(parts.query).items()}


def click_cell_link(tab, grid: str, column: str, row_text: str) -> None:
    """Click the link in `column` of the grid row holding row_text, and wait for the host page to settle."""
    row = tab.page.locator(f"{grid} .ag-center-cols-container .ag-row", has_text=row_text).first
    row.locator(f".ag-cell[col-id='{column}'] a").click()
    tab.page.wait_for_url("**/host/**", timeout=SETTLED_MS)
    tab.page.wait_for_selector("#host-title", timeout=SETTLED_MS)
    settle(tab.page)


@pytest.mark.parametrize("event_index, column", [(2, "host"), (5, "host"), (0, "domain")],
                         ids=["hung-host", "hostile-host", "domain"])
def test_a_click_on_an_events_host_opens_that_host_around_the_event(triage_server, tab, event_index, column):
    event = EVENTS[event_index]
    at = triage_server.now - dt.timedelta(minutes=event.minutes_ago)
    open_page(tab, f"{triage_server.url}/events?{triage_server.planted_range()}")
    click_cell_link(tab, "#events-grid", column, event.kind)
    host, params = opened(tab.page)
    assert host == event.host
    assert_around(params, at, triage_server.now)
    assert tab.page.inner_text("#host-title") == event.host
    assert event.message in tab.page.inner_text("#host-events")
    assert tab.errors == []


def test_the_events_columns_fit_1400_px_and_messages_keep_their_lines(triage_server, tab):
    open_page(tab, f"{triage_server.url}/events?{triage_server.planted_range()}")
    tab.shot("triage-events")
    assert fits_its_width(tab.page, "#events-grid")
    rows = grid_rows(tab.page, "#events-grid")
    assert {row["kind"]: row["host"] for row in rows} == {e.kind: e.host for e in EVENTS}
    hang = next(row for row in rows if row["kind"] == "hang_start")
    cause = next(e.message for e in EVENTS if e.kind == "hang_start")
    # the cause's three clauses, each on a line of its own
    first, second, third = cause.split("; ")
    assert hang["message"].split("\n") == [first, "  " + second, "  " + third]
    assert tab.errors == []


def test_silence_this_fills_the_form_with_the_alerts_labels_exactly(triage_server, tab):
    from alerts.paths import silences_path
    from alerts.silences import Matcher, SilenceStore

    open_page(tab, f"{triage_server.url}/alerts")
    row = tab.page.locator("#alerts-active-grid .ag-row", has_text="LibvirtdRestartStorm").first
    row.locator(".vw-silence-this").click()
    tab.page.wait_for_function("() => document.querySelector('#alerts-matchers').value.length > 0",
                               timeout=SETTLED_MS)
    text = tab.page.input_value("#alerts-matchers")
    matchers = [Matcher.parse(line) for line in text.splitlines()]
    assert [(m.name, m.op, m.value) for m in matchers] == [
        ("alertname", "=", "LibvirtdRestartStorm"), ("host", "=", HOSTILE_ALERT_HOST), ("severity", "=", "ticket")]
    tab.shot("triage-alerts-silence-this")
    tab.page.fill("#alerts-created-by", "night shift")
    tab.page.fill("#alerts-comment", "restart storm under investigation")
    tab.page.click("#alerts-create")
    tab.page.wait_for_selector(".flash-ok", timeout=SETTLED_MS)
    silences = SilenceStore(silences_path(triage_server.state_dir))
    assert silences.silencing(HOSTILE_ALERT_LABELS) is not None
    assert silences.silencing({**HOSTILE_ALERT_LABELS, "host": HOSTILE_ALERT_HOST + " "}) is None
    assert tab.errors == []


def test_alert_evidence_shows_as_separate_lines_and_the_columns_fit_1400_px(triage_server, tab):
    open_page(tab, f"{triage_server.url}/alerts?{triage_server.planted_range()}")
    tab.shot("triage-alerts")
    assert fits_its_width(tab.page, "#alerts-active-grid")
    assert fits_its_width(tab.page, "#alerts-history-grid")
    rows = {row["alert"]: row for row in grid_rows(tab.page, "#alerts-active-grid")}
    storm = rows["LibvirtdRestartStorm"]
    assert storm["host"] == HOSTILE_ALERT_HOST
    assert storm["evidence"].split("\n") == ["first at 2026-01-01T00:00:00Z", "  latest:",
                                             "2026-01-01T00:00:00Z restart: libvirtd pid 1 replaced by 2",
                                             "2026-01-01T00:01:00Z restart: libvirtd pid 2 replaced by 3"]
    cause, figures, runbook = ALERT_DESCRIPTION.split("\n")
    assert figures == "probes failing for 30 min; 7 calls queued, 0 free workers"
    assert rows["LibvirtdHung"]["evidence"].split("\n") == [
        *(clause if index == 0 else "  " + clause for index, clause in enumerate(cause.split("; "))),
        "probes failing for 30 min", "  7 calls queued, 0 free workers", runbook]
    budget = rows["ErrorBudgetBurn\nlibvirtd-availability"]
    assert len(budget["evidence"].split("\n")) == 3
    assert tab.errors == []


def test_an_alerts_host_opens_that_host_around_the_alerts_start(triage_server, tab):
    open_page(tab, f"{triage_server.url}/alerts?{triage_server.planted_range()}")
    click_cell_link(tab, "#alerts-active-grid", "host", "LibvirtdHung")
    host, params = opened(tab.page)
    # the engine's state says the alert fired at the planted now
    assert host == "kvm-hung-02"
    assert_around(params, triage_server.now, triage_server.now)
    assert "hang_start" in tab.page.inner_text("#host-events")
    assert tab.errors == []


def test_a_hostile_alert_host_links_to_its_own_page(triage_server, tab):
    open_page(tab, f"{triage_server.url}/alerts")
    click_cell_link(tab, "#alerts-active-grid", "host", "LibvirtdRestartStorm")
    host, _params = opened(tab.page)
    assert host == HOSTILE_ALERT_HOST
    # the alert's host wrote no points: its page says so, naming it exactly
    assert tab.page.inner_text("#host-title") == HOSTILE_ALERT_HOST
    assert f"No host named {HOSTILE_ALERT_HOST!r} in the store." in tab.page.inner_text(".shell-main")
    assert tab.errors == []


# ---- the cells' pieces, without a browser ----

@pytest.mark.parametrize("host", ["kvm-01", HOSTILE_ALERT_HOST, "a\nb\\c 'd' ✓ %00"])
def test_a_host_link_around_a_moment_names_the_host_exactly_and_an_hour_either_side(host):
    from dashboard.triage_cells import host_link_around

    at = dt.datetime(2026, 3, 1, 12, 30, 15, tzinfo=dt.timezone.utc)
    at_ns = int(at.timestamp()) * 10**9
    path, _, query = host_link_around(host, at_ns).partition("?")
    assert unquote(path[len("/host/"):]) == host and "/" not in path[len("/host/"):]
    assert {k: v[0] for k, v in parse_qs(query).items()} == {
        "range": "custom", "start": "2026-03-01T11:30:15", "end": "2026-03-01T13:30:15"}
    # a moment of the last hour opens up to now (the next whole minute), not into the future
    now_ns = at_ns + 20 * 60 * 10**9 + 5 * 10**9
    _, _, query = host_link_around(host, at_ns, now_ns).partition("?")
    assert parse_qs(query)["end"] == ["2026-03-01T12:51"]


def test_the_silence_matchers_of_hostile_labels_parse_back_to_them_exactly():
    from alerts.silences import Matcher
    from dashboard.triage_cells import silence_matchers

    labels = {"severity": "ticket", "host": 'a\nb\\c "d", =~ ✓', "alertname": "X", "slo": " padded "}
    text = silence_matchers(labels)
    assert len(text.splitlines()) == len(labels) and text.startswith('alertname="X"')
    assert {m.name: m.value for m in map(Matcher.parse, text.splitlines())} == labels
