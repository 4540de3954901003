"""A newcomer's first look at the Correlation page: `virtwatch dashboard` over the demo's own simulated fleet
(tests/dashboard/correlation_fleet.demo_fleet), the fleet page opened, "Correlation" clicked, no range touched.
The page must open on a range with enough failures and name the demo's planted truth (restarts more frequent
under a deep job queue, within the same step) with a rate ratio and a 95% interval."""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from correlation_fleet import demo_fleet
from dashboard_servers import planted_now, start_server, write_config
from planted import SLO_TOML, to_ns

pytestmark = pytest.mark.slow

SETTLED_MS = 90_000
EFFECT_TEXT = re.compile(r"libvirtd restarts were ([\d.]+)x \(95% CI ([\d.]+) to ([\d.]+)\) more frequent in "
                         r"5-min steps in which the job queue depth averaged")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`virtwatch dashboard` over a DuckDB file holding the demo's fleet up to now."""
    from tsdb import open_store

    work = tmp_path_factory.mktemp("correlation-demo")
    url = f"duckdb://{work}/demo.duckdb"
    now = planted_now()
    with open_store(url) as store:
        demo_fleet(store, to_ns(now))
    slo_path = work / "slos.toml"
    slo_path.write_text(SLO_TOML)
    server = start_server(write_config(work / "virtwatch.toml", url, work / "alerts", slo_path), work,
                          work / "alerts", now)
    yield server
    server.stop()


def settle(page) -> None:
    """Wait until Dash has no callback in flight and no loading spinner shows."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('[data-dash-is-loading=\"true\"]')", timeout=SETTLED_MS)
    page.wait_for_load_state("networkidle")


def test_clicking_correlation_on_the_demos_fleet_page_finds_the_planted_effect_without_touching_the_range(
        demo_server, tab):
    began = time.monotonic()
    tab.page.goto(demo_server.url + "/")
    tab.page.wait_for_selector("#fleet-grid, .shell-main", timeout=SETTLED_MS)
    settle(tab.page)
    tab.page.locator("a.nav-link", has_text="Correlation").click()
    tab.page.wait_for_selector("#correlation-finding-text", timeout=SETTLED_MS)
    settle(tab.page)
    finding = tab.page.inner_text("#correlation-finding-text")
    assert tab.page.get_attribute("#correlation-verdict", "data-status") == "effect", finding
    match = EFFECT_TEXT.search(finding)
    assert match, finding
    ratio, lower, upper = map(float, match.groups())
    assert 1 < lower <= ratio <= upper, finding  # the planted 5x, diluted by 5-minute means of 1-minute queues
    assert "at lags 0 and 1" in finding
    method = tab.page.inner_text("#correlation-method")
    assert "No range was picked, so the page looks at the last 14 days" in method, method
    assert "The result reports lag 0" in method
    # the range the page chose is in the address (a link opens the same view) and the shell shows it
    search = parse_qs(urlsplit(tab.page.url).query)
    assert search["range"] == ["custom"], search
    end = dt.datetime.fromisoformat(search["end"][0]).replace(tzinfo=dt.timezone.utc)
    start = dt.datetime.fromisoformat(search["start"][0]).replace(tzinfo=dt.timezone.utc)
    assert abs((end - demo_server.now).total_seconds()) <= 300 and end - start == dt.timedelta(days=14), search
    assert tab.page.input_value("#shell-start-date") == search["start"][0][:10]
    assert tab.page.input_value("#shell-start-time") == search["start"][0][11:16]
    # the ranking never claims a signal precedes restarts beside a verdict that says otherwise
    rows = tab.page.locator("#correlation-ranking-grid .ag-center-cols-container .ag-row")
    assert rows.count() == 9
    grid = tab.page.inner_text("#correlation-ranking-grid")
    assert "load matters" in grid
    tab.shot("correlation-demo-first-click")
    # a range too short says so, and names a range that would do
    tab.page.click("#shell-range-picker")
    tab.page.locator(".dash-dropdown-option", has_text="last 6 hours").first.click()
    tab.page.wait_for_function("() => (document.querySelector('#correlation-method') || {}).textContent"
                               "?.includes('(6 h)')", timeout=SETTLED_MS)
    settle(tab.page)
    assert tab.page.get_attribute("#correlation-verdict", "data-status") == "not_enough_failures"
    waiting = tab.page.inner_text("#correlation-waiting")
    assert re.search(r"The last (7|14) days would do: \d+ restarts in that range\.", waiting), waiting
    assert "The result reports lag" not in tab.page.inner_text("#correlation-method")
    tab.shot("correlation-demo-6-hours")
    assert tab.errors == []
    assert time.monotonic() - began < 120
