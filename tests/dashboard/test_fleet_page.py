"""The fleet page's hosts table over a large planted fleet, through the app's real callback route, on InfluxDB 1.6
and DuckDB: one page of rows goes to the browser, sorting and filtering see every host, the store is read once
for all of it, and hostile names stay data."""

from __future__ import annotations

import json

import pytest
from dash_requests import UPDATE_PATH, fleet_rows_body
from planted import to_ns
from counting_store import CountingStore
from planted_fleet import HOSTILE_HOSTS, WORST_HOST, plant_fleet

from dashboard import data
from dashboard.fleet_table import MAX_ROWS_PER_REQUEST, PAGE_SIZE

pytestmark = pytest.mark.influxdb

OWN = {"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"}
LAST_HOUR = {"range": "1h"}


@pytest.fixture
def large_fleet(store, fixed_now):
    """The store fixture (InfluxDB 1.6 and DuckDB) holding 300 numbered hosts and the hostile ones."""
    data.clear_caches()
    hosts = plant_fleet(store, to_ns(fixed_now), 300)
    yield store, hosts
    data.clear_caches()


@pytest.fixture
def dashboard(large_fleet, tmp_path, fixed_now):
    """A Flask test client of the dashboard over the large fleet (through a CountingStore), and that store."""
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    counting = CountingStore(large_fleet[0])
    app = create_app(DashboardContext(counting, [], tmp_path / "alerts", clock=lambda: fixed_now))
    return app.server.test_client(), counting


def rows_request(start: int = 0, sort=(), filters=None, end: int | None = None) -> dict:
    """Return the grid's getRowsRequest for rows [start, start + a page), sorted and filtered."""
    return {"startRow": start, "endRow": start + PAGE_SIZE if end is None else end,
            "sortModel": [{"colId": column, "sort": direction} for column, direction in sort],
            "filterModel": filters or {}}


def ask(client, request: dict, statuses=None, text: str = "") -> tuple[str, dict]:
    """Ask the fleet page for rows as the grid does; return the note's text and the grid's answer."""
    response = client.post(UPDATE_PATH, data=json.dumps(fleet_rows_body(LAST_HOUR, request, statuses, text)),
                           content_type="application/json", headers=OWN)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = json.loads(response.get_data())["response"]
    return _text(answer["fleet-count"]["children"]), answer["fleet-grid"]["getRowsResponse"]


def _text(component) -> str:
    """Return the text of a serialized Dash component tree."""
    if isinstance(component, dict):
        return _text(component.get("props", {}).get("children"))
    if isinstance(component, list):
        return " ".join(_text(child) for child in component)
    return "" if component is None else str(component)


def worst_first(hosts) -> list[str]:
    """Return the planted fleet's hosts in the order the page shows them with no sort chosen: down, hung (each
    with one failure or none: nothing else is planted), then the rest by name."""
    rank = {"down": 0, "hung": 1}
    return [host.name for host in sorted(hosts, key=lambda h: (rank.get(h.status, 2), h.name))]


BY_NAME = [("host_link", "asc")]


def every_page(client, **kwargs) -> list[str]:
    """Return the hosts of every page in order, asked for a page at a time."""
    hosts: list[str] = []
    while True:
        _, answer = ask(client, rows_request(len(hosts), **kwargs))
        hosts += [row["host"] for row in answer["rowData"]]
        if not answer["rowData"] or len(hosts) >= answer["rowCount"]:
            return hosts


def test_a_large_fleet_sends_the_browser_one_page_of_rows(dashboard, large_fleet):
    client, _ = dashboard
    note, answer = ask(client, rows_request())
    count = len(large_fleet[1])
    assert len(answer["rowData"]) == PAGE_SIZE and answer["rowCount"] == count
    assert note.startswith(f"{count} of {count} hosts · showing 1–{PAGE_SIZE} · page 1 of {-(-count // PAGE_SIZE)}")
    _, greedy = ask(client, rows_request(end=10**6))
    assert len(greedy["rowData"]) == MAX_ROWS_PER_REQUEST


def test_the_pages_together_hold_every_host_once_worst_first(dashboard, large_fleet):
    client, _ = dashboard
    assert every_page(client) == worst_first(large_fleet[1])
    note, _ = ask(client, rows_request())
    assert " · worst first · " in note


def test_sorted_by_name_the_pages_hold_every_host_once_in_name_order(dashboard, large_fleet):
    client, _ = dashboard
    assert every_page(client, sort=BY_NAME) == sorted(host.name for host in large_fleet[1])
    note, _ = ask(client, rows_request(sort=BY_NAME))
    assert " · sorted by host · " in note


def test_sorting_by_probe_latency_brings_the_worst_host_from_page_3_to_the_top(dashboard):
    client, _ = dashboard
    assert every_page(client, sort=BY_NAME).index(WORST_HOST) // PAGE_SIZE == 2
    _, answer = ask(client, rows_request(sort=[("probe_latency_ms", "desc")]))
    assert answer["rowData"][0]["host"] == WORST_HOST
    latencies = [row["probe_latency_ms"] for row in answer["rowData"]]
    assert latencies == sorted(latencies, reverse=True)


def test_sorting_by_status_puts_every_down_host_first(dashboard, large_fleet):
    client, _ = dashboard
    down = sorted(host.name for host in large_fleet[1] if host.status == "down")
    _, answer = ask(client, rows_request(sort=[("status_label", "desc")]))
    assert [row["host"] for row in answer["rowData"][:len(down)]] == down
    assert answer["rowData"][len(down)]["status"] == "hung"


def test_a_status_filter_finds_the_down_and_hung_hosts_of_every_page(dashboard, large_fleet):
    client, _ = dashboard
    failing = sorted(host.name for host in large_fleet[1] if host.status in ("down", "hung"))
    in_order = every_page(client, sort=BY_NAME)
    assert len({in_order.index(host) // PAGE_SIZE for host in failing}) == 6  # by name, spread over six pages
    note, answer = ask(client, rows_request(), statuses=["down", "hung"])
    assert sorted(row["host"] for row in answer["rowData"]) == failing
    assert note.startswith(f"{len(failing)} of {len(large_fleet[1])} hosts · showing 1–{len(failing)} · page 1 of 1")
    assert {row["host"] for row in answer["rowData"] if row["status"] == "down"} == \
        {host.name for host in large_fleet[1] if host.status == "down"}


def test_a_host_silent_since_the_range_began_shows_no_data(dashboard, large_fleet):
    client, _ = dashboard
    _, answer = ask(client, rows_request(end=MAX_ROWS_PER_REQUEST), statuses=["no data"])
    silent = sorted(host.name for host in large_fleet[1] if host.status == "no data")
    assert sorted(row["host"] for row in answer["rowData"]) == silent
    assert all(row["last_seen"] and row["probe_latency_ms"] is not None for row in answer["rowData"])


def test_paging_sorting_and_filtering_read_nothing_after_the_first_page(dashboard):
    client, counting = dashboard
    ask(client, rows_request())
    first_load = len(counting.calls)
    assert 0 < first_load <= 10  # read_fleet: at most seven; the leak signs: the engine's records, else two reads
    # of the points (no SLOs here: no budgets)
    ask(client, rows_request(PAGE_SIZE))
    ask(client, rows_request(sort=[("failures", "desc")]))
    ask(client, rows_request(filters={"status_label": {"filterType": "text", "type": "contains", "filter": "hung"}}))
    ask(client, rows_request(), statuses=["down"], text="hv-02")
    assert len(counting.calls) == first_load


@pytest.mark.parametrize("name", HOSTILE_HOSTS)
def test_a_hostile_name_round_trips_in_cells_and_filters_and_never_reaches_the_store(dashboard, large_fleet, name):
    client, counting = dashboard
    note, answer = ask(client, rows_request(), text=name)  # the first request: the store is read now
    assert [row["host"] for row in answer["rowData"]] == [name]
    assert note.startswith(f"1 of {len(large_fleet[1])} hosts · showing 1–1")
    assert counting.calls and not [text for text in counting.texts() if name in text]  # no query holds it
    for condition in ("contains", "equals", "startsWith"):
        model = {"host_link": {"filterType": "text", "type": condition, "filter": name}}
        _, found = ask(client, rows_request(filters=model))
        assert [row["host"] for row in found["rowData"]] == [name], condition


def test_injection_text_in_the_filters_matches_nothing_and_drops_nothing(dashboard, large_fleet):
    client, counting = dashboard
    for text in ("' OR 1=1 --", '" OR host =~ /.*/ --', "hv-0001'; DROP MEASUREMENT libvirtd; --"):
        note, answer = ask(client, rows_request(), text=text)
        assert answer == {"rowData": [], "rowCount": 0}
        assert note.startswith(f"None of the {len(large_fleet[1])} hosts matches the filters.")
        assert not [passed for passed in counting.texts() if text in passed]
    data.clear_caches()
    _, answer = ask(client, rows_request())
    assert answer["rowCount"] == len(large_fleet[1])  # read again from the store: nothing was dropped


@pytest.mark.parametrize("request_, statuses, message", [
    ({"startRow": "x", "endRow": 50}, None, "startRow = 'x'"),
    (rows_request(sort=[("__proto__", "asc")]), None, "'__proto__': not a column"),
    (rows_request(), ["<script>alert(1)</script>"], "status = '<script>alert(1)</script>'"),
], ids=["text-start", "unknown-sort-column", "script-status"])
def test_a_forged_rows_request_shows_what_is_wrong_and_sends_no_rows(dashboard, request_, statuses, message):
    client, _ = dashboard
    note, answer = ask(client, request_, statuses=statuses)
    assert message in note and answer == {"rowData": [], "rowCount": 0}


def test_a_store_without_hosts_says_none_reported(duckdb_store, tmp_path, fixed_now):
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    app = create_app(DashboardContext(duckdb_store, [], tmp_path / "alerts", clock=lambda: fixed_now))
    note, answer = ask(app.server.test_client(), rows_request())
    assert note.startswith("No host reported in the last 1 hour.") and answer == {"rowData": [], "rowCount": 0}


# ---- in Chromium ----

SETTLED_MS = 30_000


class GridTraffic:
    """The rows the server sent the fleet grid, answer by answer, as the browser received them."""

    def __init__(self, page):
        self.answers: list[dict] = []
        page.on("response", self._seen)

    def _seen(self, response) -> None:
        if "_dash-update-component" not in response.url or response.request.method != "POST":
            return
        try:
            grid = response.json().get("response", {}).get("fleet-grid")
        except Exception:  # noqa: BLE001 - not a JSON answer, so not the grid's
            return
        if grid and grid.get("getRowsResponse"):
            self.answers.append(grid["getRowsResponse"])

    @property
    def rows_sent(self) -> int:
        """Return how many rows the browser has received so far."""
        return sum(len(answer["rowData"]) for answer in self.answers)


def open_fleet(tab, url: str) -> GridTraffic:
    """Open the fleet page, counting the grid's rows; wait until its first page shows."""
    traffic = GridTraffic(tab.page)
    tab.page.goto(url)
    wait_for_note(tab.page, "showing 1–")
    return traffic


def wait_for_note(page, text: str) -> str:
    """Wait until the hosts note holds text and the grid shows no loading rows; return the note."""
    page.wait_for_function("text => (document.querySelector('#fleet-count') || {}).innerText?.includes(text)",
                           arg=text, timeout=SETTLED_MS)
    page.wait_for_function("""() => {
        const rows = document.querySelectorAll('#fleet-grid .ag-pinned-left-cols-container .ag-row');
        return rows.length > 0 && Array.from(rows).every(
            row => (row.querySelector('[col-id="host_link"]') || {}).innerText?.trim());
    }""", timeout=SETTLED_MS)
    page.wait_for_load_state("networkidle")
    return page.inner_text("#fleet-count")


def wait_for_hosts(page, hosts: list[str]) -> None:
    """Wait until the grid shows exactly these hosts, in this order."""
    page.wait_for_function("""hosts => JSON.stringify(Array.from(document.querySelectorAll(
            '#fleet-grid .ag-pinned-left-cols-container .ag-row'))
        .sort((a, b) => Number(a.getAttribute('row-index')) - Number(b.getAttribute('row-index')))
        .map(row => (row.querySelector('[col-id="host_link"]') || {}).innerText?.trim())) === JSON.stringify(hosts)""",
                           arg=hosts, timeout=SETTLED_MS)


def shown_hosts(page) -> list[str]:
    """Return the host names of the rows the grid shows, in order (rows are numbered across pages)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
            '#fleet-grid .ag-pinned-left-cols-container .ag-row'))
        .sort((a, b) => Number(a.getAttribute('row-index')) - Number(b.getAttribute('row-index')))
        .map(row => row.querySelector('[col-id="host_link"]').innerText.trim())""")


@pytest.mark.slow
def test_the_browser_pages_sorts_and_filters_a_large_fleet_a_page_at_a_time(fleet_dashboard_server, tab):
    from planted_fleet import fleet_hosts

    server, page = fleet_dashboard_server, tab.page
    hosts = fleet_hosts(300)
    count, pages = len(hosts), -(-len(hosts) // PAGE_SIZE)
    traffic = open_fleet(tab, f"{server.url}/?{server.planted_range(1)}")
    assert page.inner_text("#fleet-count").startswith(f"{count} of {count} hosts · showing 1–50 · page 1 of {pages}")
    assert f"Page 1 of {pages}" in page.inner_text("#fleet-grid .ag-paging-panel")
    assert traffic.rows_sent == PAGE_SIZE and traffic.answers[-1]["rowCount"] == count
    assert shown_hosts(page)[:3] == worst_first(hosts)[:3]

    page.click("#fleet-grid .ag-paging-button[aria-label='Next Page']")
    assert wait_for_note(page, "showing 51–100").startswith(f"{count} of {count} hosts · showing 51–100 · page 2")
    assert traffic.rows_sent == 2 * PAGE_SIZE
    second = shown_hosts(page)
    assert second and not set(second) & set(worst_first(hosts)[:12])  # the down and hung hosts are on page 1

    page.click("#fleet-grid .ag-header-cell[col-id='probe_latency_ms'] .ag-header-cell-label")  # worst first
    wait_for_note(page, "showing 1–50")
    assert shown_hosts(page)[0] == WORST_HOST  # from page 3 to the top
    assert traffic.rows_sent == 3 * PAGE_SIZE

    page.fill("#fleet-search", "hv-01")
    page.press("#fleet-search", "Enter")
    wait_for_note(page, "100 of")
    page.locator("#fleet-status").get_by_text("‖ hung", exact=True).click()
    note = wait_for_note(page, "2 of")
    assert note.startswith(f"2 of {count} hosts · showing 1–2 · page 1 of 1")
    assert shown_hosts(page) == ["hv-0113", "hv-0163"]  # still worst first: 21 ms, then 20 ms
    assert "status=hung" in page.url and "q=hv-01" in page.url
    assert traffic.rows_sent <= 5 * PAGE_SIZE
    tab.shot("fleet-paged-sorted-filtered")
    assert tab.errors == []


@pytest.mark.slow
def test_a_hostile_host_name_shows_as_text_in_the_browser_and_filters_as_text(fleet_dashboard_server, tab):
    server, page = fleet_dashboard_server, tab.page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_fleet(tab, f"{server.url}/?{server.planted_range(1)}")
    for name in HOSTILE_HOSTS:
        page.fill("#fleet-search", name)
        page.press("#fleet-search", "Enter")
        page.wait_for_function("""name => {
            const cells = document.querySelectorAll('#fleet-grid .ag-pinned-left-cols-container [col-id="host_link"]');
            return cells.length === 1 && cells[0].innerText.trim() === name;
        }""", arg=name, timeout=SETTLED_MS)
        assert wait_for_note(page, "1 of").startswith("1 of ") and shown_hosts(page) == [name]
        link = page.locator("#fleet-grid .ag-pinned-left-cols-container a")
        assert link.inner_text() == name
    tab.shot("fleet-hostile-name")
    assert dialogs == [] and tab.errors == []
