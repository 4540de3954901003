"""The correlation page in Debian's Chromium: `virtwatch dashboard` over a DuckDB store holding a simulated fleet
whose restarts were planted 4x as frequent while the job queue was deep (tests/dashboard/correlation_fleet.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from correlation_fleet import FACTOR, SPEC, fill, range_query

from servers import free_port, http

pytestmark = pytest.mark.slow

SETTLED_MS = 60_000
SERVER_START_SECONDS = 60.0
VIRTWATCH = Path(sys.executable).parent / "virtwatch"
FACTOR_TEXT = re.compile(r"were ([\d.]+)x \(95% CI ([\d.]+) to ([\d.]+)\) more frequent")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`virtwatch dashboard` over a DuckDB file holding the planted fleet; yields its base URL."""
    from tsdb import open_store

    work = tmp_path_factory.mktemp("correlation-page")
    url = f"duckdb://{work}/store.duckdb"
    with open_store(url) as store:
        fill(store)
    config = work / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "{url}"\n\n[alerts]\nstate_dir = "{work / "alerts"}"\n\n'
                      '[dashboard]\nlisten = "127.0.0.1:1"\n')
    port = free_port()
    log_path = work / "dashboard.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(VIRTWATCH), "dashboard", "--config", str(config), "--listen",
                                    f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"virtwatch dashboard exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if http("GET", base + "/", timeout=2.0)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"virtwatch dashboard did not answer on {base}:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settle(page) -> None:
    """Wait until Dash has no callback in flight and no loading spinner shows."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('[data-dash-is-loading=\"true\"]')", timeout=SETTLED_MS)
    page.wait_for_load_state("networkidle")


def open_page(tab, url: str, ready: str = "#correlation-finding-text") -> None:
    """Open a URL and wait until `ready` shows and the page has settled."""
    tab.page.goto(url)
    tab.page.wait_for_selector(ready, timeout=SETTLED_MS)
    settle(tab.page)


def wait_for_url(page, fragment: str) -> None:
    """Wait until the URL's query holds `fragment` (as the browser encodes it), then settle."""
    page.wait_for_function("(part) => location.search.includes(part)", arg=fragment, timeout=SETTLED_MS)
    settle(page)


def wait_for_text(page, selector: str, text: str) -> str:
    """Wait until the element (HTML or SVG) holds `text`; return its text."""
    page.wait_for_function("([sel, text]) => (document.querySelector(sel) || {}).textContent?.includes(text)",
                           arg=[selector, text], timeout=SETTLED_MS)
    return page.text_content(selector)


def query(page) -> dict[str, list[str]]:
    """Return the page's URL parameters."""
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def pick(page, dropdown: str, option_text: str) -> None:
    """Open a Dash dropdown and click the option holding option_text."""
    page.click(dropdown)
    page.locator(".dash-dropdown-option", has_text=option_text).first.click()
    page.keyboard.press("Escape")


def axis_title(page, graph: str, axis: str = "xtitle") -> str:
    """Return the text of a plotly figure's axis title."""
    return page.text_content(f"{graph} .g-{axis}")


def test_the_page_names_the_planted_effect_with_a_factor_whose_interval_holds_it(server, tab):
    open_page(tab, f"{server}/correlation?{range_query()}&lag=0")
    finding = tab.page.inner_text("#correlation-finding-text")
    assert finding.startswith("libvirtd restarts were") and "the job queue depth averaged" in finding
    ratio, lower, upper = map(float, FACTOR_TEXT.search(finding).groups())
    assert lower <= FACTOR <= upper, finding
    assert tab.page.get_attribute("#correlation-verdict", "data-status") == "effect"
    assert tab.page.inner_text("#correlation-verdict") == "▲ load matters"
    for graph in ("#correlation-rates-graph", "#correlation-triggered-graph", "#correlation-ratios-graph"):
        assert tab.page.query_selector(f"{graph} .js-plotly-plot"), graph
    assert tab.page.locator("#correlation-ranking-grid .ag-center-cols-container .ag-row").count() == 9
    assert "restarts per host-day" in axis_title(tab.page, "#correlation-rates-graph", "ytitle")
    assert "Load is averaged over 5 min steps" in tab.page.inner_text("#correlation-method")
    tab.shot("correlation-planted-lag0")
    assert tab.errors == []


def test_by_default_both_lags_are_looked_at_and_the_page_names_lag_0_as_carrying_the_effect(server, tab):
    open_page(tab, f"{server}/correlation?{range_query()}")
    assert tab.page.is_checked("#correlation-lag input[value='both']")
    method = tab.page.inner_text("#correlation-method")
    assert "Lags 0 and 1:" in method and "The result reports lag 0" in method
    finding = tab.page.inner_text("#correlation-finding-text")
    assert "in 5-min steps in which the job queue depth" in finding and "at lags 0 and 1" in finding
    ratio, lower, upper = map(float, FACTOR_TEXT.search(finding).groups())
    assert lower <= FACTOR <= upper, finding
    assert "lag" not in query(tab.page)
    tab.shot("correlation-planted-both-lags")
    tab.page.check("#correlation-lag input[value='1']")  # the step before alone: the in-step effect washes out
    wait_for_url(tab.page, "lag=1")
    after = wait_for_text(tab.page, "#correlation-method", "Lag 1: each failure is compared with the load of the "
                                                          "step before its own")
    assert after and tab.page.inner_text("#correlation-finding-text") != finding
    assert tab.errors == []


def test_picking_another_signal_redraws_the_charts_and_goes_into_the_url(server, tab):
    open_page(tab, f"{server}/correlation?{range_query()}&lag=0")
    finding = tab.page.inner_text("#correlation-finding-text")
    pick(tab.page, "#correlation-signal", "host.load1")
    wait_for_url(tab.page, "signal=host.load1")
    wait_for_text(tab.page, "#correlation-rates-graph .g-xtitle", "1-minute load average (runnable tasks)")
    assert "1-minute load average (runnable tasks)" in axis_title(tab.page, "#correlation-triggered-graph", "ytitle")
    summary = tab.page.inner_text("#correlation-selected-summary")
    assert summary.startswith("1-minute load average:") and "no significant effect" in summary
    assert tab.page.inner_text("#correlation-finding-text") == finding  # the verdict is about all signals
    assert query(tab.page)["signal"] == ["host.load1"] and query(tab.page)["kind"] == ["restart"]
    tab.shot("correlation-signal-load1")
    # the shared link opens the same view
    open_page(tab, tab.page.url)
    assert "1-minute load average" in tab.page.inner_text("#correlation-signal")
    assert tab.errors == []


def test_clicking_a_ranking_row_draws_that_signal(server, tab):
    open_page(tab, f"{server}/correlation?{range_query()}&lag=0")
    tab.page.locator("#correlation-ranking-grid .ag-row", has_text="libvirtd.probe_latency_ms").first \
        .locator("[col-id=label]").click()
    wait_for_url(tab.page, "signal=libvirtd.probe_latency_ms")
    wait_for_text(tab.page, "#correlation-rates-graph .g-xtitle", "probe latency (ms)")
    assert "▸ probe latency" in tab.page.inner_text("#correlation-ranking-grid")
    assert tab.errors == []


def test_picking_other_failure_kinds_changes_the_finding_and_the_url(server, tab):
    open_page(tab, f"{server}/correlation?{range_query()}&lag=0")
    pick(tab.page, "#correlation-kind", "segfault")
    wait_for_url(tab.page, "kind=segfault")
    assert sorted(query(tab.page)["kind"]) == ["restart", "segfault"]
    grouped = wait_for_text(tab.page, "#correlation-finding-text", "Failures (restart or segfault) were")
    assert FACTOR_TEXT.search(grouped)  # no segfaults were drawn: the same restarts, named as a group
    tab.page.click("#correlation-kind-guest")
    wait_for_url(tab.page, "kind=domain_failed")
    wait_for_text(tab.page, "#correlation-verdict", "not enough failures")
    assert "Too few failures (domain_crashed, domain_failed" in tab.page.inner_text("#correlation-finding-text")
    assert tab.page.query_selector("#correlation-waiting .empty-state")
    assert not tab.page.query_selector("#correlation-rates-graph")
    tab.shot("correlation-not-enough-failures")
    assert tab.errors == []


@pytest.mark.parametrize("search, message", [
    ("kind=%22%3B%20DROP&signal=nope.nope", "kind = '\"; DROP': not a failure kind"),
    ("signal=nope.nope", "signal = 'nope.nope': not a load signal"),
    ("signal=libvirtd.job_queue_depth&lag=%27%20OR%201%3D1", "lag = \"' OR 1=1\": expected a number of steps"),
])
def test_a_hostile_url_shows_an_empty_state_and_analyses_nothing(server, tab, search, message):
    asked = parse_qs(search)
    open_page(tab, f"{server}/correlation?{search}", ready=".empty-bad-input")
    text = tab.page.inner_text(".shell-main")
    assert f"Nothing to show: {message}" in text
    assert not tab.page.query_selector("#correlation-finding") and not tab.page.query_selector("#correlation-kind")
    assert {k: v for k, v in query(tab.page).items() if k in asked} == asked  # the address is left as it was
    tab.shot("correlation-hostile-url")
    assert tab.errors == []


def test_a_hostile_host_name_round_trips_through_the_host_picker_and_the_url(server, tab):
    host = SPEC.host_names()[2]
    open_page(tab, f"{server}/correlation?{range_query()}&lag=0")
    pick(tab.page, "#correlation-scope", host)
    wait_for_url(tab.page, "host=")
    assert query(tab.page)["host"] == [host]
    wait_for_text(tab.page, "#correlation-finding", f"1 host with load data ({host})")
    facts = tab.page.inner_text("#correlation-finding")
    tab.shot("correlation-one-hostile-host")
    open_page(tab, tab.page.url)  # the shared link analyses the same host
    assert tab.page.inner_text("#correlation-finding") == facts
    assert tab.errors == []


def test_an_unknown_host_in_the_url_is_named_in_an_empty_state(server, tab):
    name = 'no such "host"'
    open_page(tab, f"{server}/correlation?{range_query()}&host={quote(name)}", ready=".empty-bad-input")
    assert "No daemon data for host 'no such \"host\"' in the store." in tab.page.inner_text("#correlation-finding")
    assert tab.errors == []
