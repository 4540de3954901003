"""The dashboard in a real browser: Debian's Chromium drives `virtwatch dashboard` over a store of known data."""

from __future__ import annotations

import base64
import csv
import io

import pytest
from planted import EVENTS, HOST_STATES, HOSTILE_HOST

from servers import http

pytestmark = pytest.mark.slow

PAGES = {"fleet": "/", "host": "/host/kvm-up-01", "slos": "/slos", "events": "/events", "alerts": "/alerts",
         "correlation": "/correlation"}
SETTLED_MS = 30_000


def settle(page) -> None:
    """Wait until Dash has no callback in flight and no loading spinner shows."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('[data-dash-is-loading=\"true\"]')", timeout=SETTLED_MS)
    page.wait_for_load_state("networkidle")


def open_page(tab, url: str) -> None:
    """Open a URL and wait until the page has settled."""
    tab.page.goto(url)
    tab.page.wait_for_selector(".shell-main .page-header", timeout=SETTLED_MS)
    settle(tab.page)


def fleet_table(page) -> dict[str, str]:
    """Return the fleet table as {host: status word} (the grid splits pinned and scrolling cells by row)."""
    page.wait_for_selector("#fleet-grid .ag-row", timeout=SETTLED_MS)
    cells = page.evaluate("""() => {
        const rows = {};
        for (const cell of document.querySelectorAll('#fleet-grid .ag-row .ag-cell')) {
            const index = cell.closest('.ag-row').getAttribute('row-index');
            rows[index] = rows[index] || {};
            rows[index][cell.getAttribute('col-id')] = cell.innerText.trim();
        }
        return Object.values(rows);
    }""")
    return {row["host_link"]: row["status_label"].split(" ", 1)[1] for row in cells}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_without_console_errors(dashboard_server, tab, name):
    open_page(tab, dashboard_server.url + PAGES[name] + "?" + dashboard_server.planted_range())
    tab.shot(f"page-{name}")
    assert tab.errors == []
    assert not tab.page.query_selector(".empty-error"), tab.page.inner_text(".shell-main")


def test_the_fleet_table_shows_the_planted_hosts_and_their_states(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/?{dashboard_server.planted_range()}")
    assert fleet_table(tab.page) == HOST_STATES
    assert "5 of 5 hosts" in tab.page.inner_text("#fleet-hosts")


def test_a_status_filter_changes_the_hosts_shown_and_goes_into_the_url(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/?{dashboard_server.planted_range()}")
    tab.page.locator("#fleet-status").get_by_text("✖ down", exact=True).click()
    tab.page.wait_for_function("() => document.querySelectorAll('#fleet-grid .ag-center-cols-container .ag-row')"
                               ".length == 1", timeout=SETTLED_MS)
    settle(tab.page)
    assert fleet_table(tab.page) == {"kvm-down-03": "down"}
    assert "status=down" in tab.page.url
    tab.shot("fleet-filtered-down")
    # the shared link opens the same view
    open_page(tab, tab.page.url)
    assert fleet_table(tab.page) == {"kvm-down-03": "down"}


def test_a_host_page_shows_the_planted_events_on_the_timeline(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/host/kvm-up-01?{dashboard_server.planted_range()}")
    tab.page.wait_for_selector("#host-health-graph .js-plotly-plot", timeout=SETTLED_MS)
    texts = tab.page.evaluate("""() => document.querySelector('#host-health-graph .js-plotly-plot').data
        .filter(trace => trace.meta === 'events').flatMap(trace => trace.text)""")
    planted = [e for e in EVENTS if e.host == "kvm-up-01"]
    assert sorted(texts) == sorted(f"{e.kind} ({e.domain}): {e.message}" for e in planted)
    domains = tab.page.inner_text("#host-domains")
    assert 'db "primary"' in domains and "✖ crashed" in domains  # labelled by its state now, not "recovered"
    tab.shot("host-kvm-up-01")
    assert tab.errors == []


def test_a_hostile_host_name_round_trips_through_the_fleet_link(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/?{dashboard_server.planted_range()}")
    tab.page.get_by_role("link", name=HOSTILE_HOST).click()
    tab.page.wait_for_url("**/host/**")
    settle(tab.page)
    assert tab.page.inner_text("#host-title") == HOSTILE_HOST
    assert "keepalive timeout, client 12 closed" in tab.page.inner_text("#host-events")
    assert tab.errors == []


def test_the_events_filter_changes_what_is_shown(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/events?{dashboard_server.planted_range()}")
    assert tab.page.inner_text("#events-count").startswith(f"{len(EVENTS)} events")
    tab.page.locator("#events-severity").get_by_text("✖ critical", exact=True).click()
    critical = sum(1 for e in EVENTS if e.severity == "critical")
    tab.page.wait_for_function(f"() => (document.querySelector('#events-count') || {{}}).innerText"
                               f"?.startsWith('{critical} events')", timeout=SETTLED_MS)
    assert "severity=critical" in tab.page.url
    tab.shot("events-critical")


def test_the_events_csv_export_holds_the_planted_events(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/events?{dashboard_server.planted_range()}")
    with tab.page.expect_download() as download:
        tab.page.click("#events-export")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert sorted((r["host"], r["kind"], r["severity"], r["domain"], r["message"]) for r in rows) == sorted(
        (e.host, e.kind, e.severity, e.domain, e.message) for e in EVENTS)


def test_a_silence_created_on_the_alerts_page_is_stored_and_can_be_expired(dashboard_server, tab):
    from alerts.paths import silences_path
    from alerts.silences import SilenceStore

    open_page(tab, f"{dashboard_server.url}/alerts")
    assert "LibvirtdHung" in tab.page.inner_text("#alerts-active")
    tab.page.fill("#alerts-matchers", 'alertname=LibvirtdHung\nhost="kvm-hung-02"')
    tab.page.fill("#alerts-created-by", "night shift")
    tab.page.fill("#alerts-comment", "known hang, vendor ticket 4711")
    tab.page.click("#alerts-create")
    tab.page.wait_for_selector(".flash-ok", timeout=SETTLED_MS)
    stored = SilenceStore(silences_path(dashboard_server.state_dir)).list()
    assert [(s.created_by, s.comment, [str(m) for m in s.matchers]) for s in stored] == [
        ("night shift", "known hang, vendor ticket 4711", ['alertname="LibvirtdHung"', 'host="kvm-hung-02"'])]
    tab.shot("alerts-silence-created")
    tab.page.click(f"[data-silence-id='{stored[0].id}'] button")
    tab.page.wait_for_selector(f"[data-silence-id='{stored[0].id}'].silence-expired", timeout=SETTLED_MS)
    assert SilenceStore(silences_path(dashboard_server.state_dir)).list() == []
    assert tab.errors == []


def test_a_bad_matcher_shows_its_reason_and_stores_nothing(dashboard_server, tab):
    from alerts.paths import silences_path
    from alerts.silences import SilenceStore

    open_page(tab, f"{dashboard_server.url}/alerts")
    before = SilenceStore(silences_path(dashboard_server.state_dir)).list(include_expired=True)
    tab.page.fill("#alerts-matchers", "no operator here")
    tab.page.fill("#alerts-created-by", "night shift")
    tab.page.fill("#alerts-comment", "oops")
    tab.page.click("#alerts-create")
    tab.page.wait_for_selector(".flash-bad", timeout=SETTLED_MS)
    assert "no operator here" in tab.page.inner_text(".flash-bad")
    assert SilenceStore(silences_path(dashboard_server.state_dir)).list(include_expired=True) == before


@pytest.mark.parametrize("path, message", [
    ("/host/no-such-host", "No host named 'no-such-host' in the store."),
    ("/host/%22%3B%20DROP", "No host named '\"; DROP' in the store."),
    ("/?range=garbage", "range = 'garbage': expected one of"),
    ("/?start=9999-99-99", "start = '9999-99-99': not a valid time"),
    ("/events?severity=%3Cscript%3Ealert(1)%3C/script%3E", "severity = '<script>alert(1)</script>'"),
    ("/slos?range=1h&range=6h", "range: given more than once"),
    ("/?status=sideways&q=hv", "status = 'sideways': expected one of"),
    ("/?q=a&q=b", "q: given more than once"),
], ids=["unknown-host", "injection-host", "garbage-range", "impossible-start", "script-severity", "two-ranges",
        "fleet-garbage-status", "fleet-two-searches"])
def test_a_hostile_url_shows_the_empty_state_with_a_message(dashboard_server, tab, path, message):
    open_page(tab, dashboard_server.url + path)
    states = tab.page.locator(".empty-state").all_inner_texts()
    assert states and any(message in text for text in states), states
    assert not tab.page.query_selector(".empty-error")
    assert tab.errors == []
    tab.shot("hostile-" + "".join(c if c.isalnum() else "_" for c in path)[:60])


def test_the_fleet_on_influxdb_shows_the_planted_hosts_and_states(influxdb_dashboard_server, tab):
    server = influxdb_dashboard_server
    open_page(tab, f"{server.url}/?{server.planted_range()}")
    assert fleet_table(tab.page) == HOST_STATES
    open_page(tab, f"{server.url}/host/kvm-hung-02?{server.planted_range()}")
    assert "hang_start" in tab.page.inner_text("#host-events")
    tab.shot("influxdb-host-kvm-hung-02")
    assert tab.errors == []


def test_basic_auth_refuses_requests_without_the_credentials(auth_dashboard_server, chromium):
    server = auth_dashboard_server
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/host/kvm-up-01"):
        status, _ = http("GET", server.url + path)
        assert status == 401, path
    wrong = base64.b64encode("operator:guess".encode()).decode()
    assert http("GET", server.url + "/", headers={"Authorization": f"Basic {wrong}"})[0] == 401
    right = base64.b64encode("operator:s3cret:p4ss w0rd".encode()).decode()
    assert http("GET", server.url + "/_dash-layout", headers={"Authorization": f"Basic {right}"})[0] == 200
    context = chromium.new_context(http_credentials={"username": "operator", "password": "s3cret:p4ss w0rd"})
    page = context.new_page()
    page.goto(f"{server.url}/?{server.planted_range()}")
    page.wait_for_selector("#fleet-grid .ag-row", timeout=SETTLED_MS)
    context.close()
