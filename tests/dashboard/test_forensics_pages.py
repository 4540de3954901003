"""Why libvirtd failed, in Debian's Chromium: the host page's Why panel and Forensics list, the bundle page they link
to, and the alerts' full descriptions, served by `virtwatch dashboard` over the planted fleet's failure evidence."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from planted import ALERT_DESCRIPTION, HOSTILE_HOST, to_ns
from planted_forensics import (CORRUPT_HOST, HOSTILE_GUEST, HUNG_HOST, KERNEL_LINE, MANUAL_CAUSE, SEGFAULT_CAUSE,
                               SEGFAULT_HOST, THREAD_LINE, corrupt_bundle_time, hang_bundle_time, hang_cause,
                               manual_bundle_time, segfault_bundle_time)
from test_dashboard_pages import SETTLED_MS, open_page, settle
from tsdb.point import printable

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/shots")


def shot(tab, name: str) -> Path:
    """Save a full-page screenshot as /tmp/shots/<name>.png and return its path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    tab.page.screenshot(path=str(path), full_page=True)
    return path


def open_host(tab, server, host: str) -> None:
    """Open a host's page over the planted range and wait for its Why panel and Forensics list."""
    from urllib.parse import quote

    open_page(tab, f"{server.url}/host/{quote(host, safe='')}?{server.planted_range()}")
    tab.page.wait_for_selector("#host-why .why-panel, #host-why .empty-state", timeout=SETTLED_MS)
    tab.page.wait_for_selector("#host-forensics table, #host-forensics .empty-state", timeout=SETTLED_MS)


def open_bundle_from_list(tab, time_ns: int) -> None:
    """Click the host page's link to the bundle at time_ns and wait for the bundle page."""
    tab.page.click(f"#host-forensics-table tr[data-time-ns='{time_ns}'] a")
    tab.page.wait_for_url("**/forensics?**", timeout=SETTLED_MS)
    tab.page.wait_for_selector("#forensics-body", timeout=SETTLED_MS)
    settle(tab.page)


def assert_markup_stayed_text(tab) -> None:
    """Assert the hostile guest name's <script> ran nowhere and became no element."""
    assert tab.page.evaluate("() => window.pwned") is None
    assert tab.page.evaluate("() => [...document.scripts].some(s => s.text.includes('pwned'))") is False


def test_a_crashed_hosts_page_says_why_and_its_bundle_shows_the_threads_and_the_kernel_line(dashboard_server, tab):
    open_host(tab, dashboard_server, SEGFAULT_HOST)
    assert tab.page.inner_text("#host-why-cause") == SEGFAULT_CAUSE
    assert "↻ restart" in tab.page.inner_text("#host-why")
    rows = tab.page.locator("#host-forensics-table tbody tr")
    assert rows.count() == 1 and "✖ segfault" in rows.first.inner_text() and SEGFAULT_CAUSE in rows.first.inner_text()
    shot(tab, "host-segfault")
    open_bundle_from_list(tab, segfault_bundle_time(to_ns(dashboard_server.now)))
    text = tab.page.inner_text("#forensics-bundle-text")
    assert THREAD_LINE in text and KERNEL_LINE in text
    assert f"guest '{printable(HOSTILE_GUEST)}'" in text  # the QEMU processes' list: the name, on one line
    assert SEGFAULT_CAUSE in tab.page.inner_text("#forensics-header")
    assert_markup_stayed_text(tab)
    shot(tab, "bundle-segfault")
    assert tab.errors == []


def test_a_hung_hosts_why_panel_names_the_stuck_guest_as_text_and_its_compressed_bundle_opens(dashboard_server, tab):
    open_host(tab, dashboard_server, HUNG_HOST)
    assert tab.page.inner_text("#host-why-cause") == hang_cause(29 * 60)
    facts = tab.page.inner_text("#host-why-facts")
    for expected in ("20 of 20 busy", "7 calls waiting", "memstat-poller (pid 4242) · 14 connections",
                     "remoteDispatchDomainBlockJobAbort", "thread 4712", f"1: {HOSTILE_GUEST}"):
        assert expected in facts, expected
    assert tab.page.locator("#host-why-facts .stuck-guest").all_inner_texts() == [HOSTILE_GUEST]
    assert_markup_stayed_text(tab)
    shot(tab, "host-hung")
    time_ns = hang_bundle_time(to_ns(dashboard_server.now))
    open_bundle_from_list(tab, time_ns)
    assert "zlib+base64" in tab.page.inner_text("#forensics-header")
    assert THREAD_LINE in tab.page.inner_text("#forensics-bundle-text")
    wide = tab.page.evaluate("() => { const pre = document.querySelector('#forensics-bundle-text');"
                             " return pre.scrollWidth > pre.clientWidth + 1 }")
    assert not wide, "the bundle's long log lines must wrap, not scroll sideways"
    with tab.page.expect_download() as download:
        tab.page.click("#forensics-download-button")
    saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert (saved["host"], saved["time"], saved["qemu"][0]["domain"]) == (HUNG_HOST, time_ns, HOSTILE_GUEST)
    assert download.value.suggested_filename == f"virtwatch-forensics-{HUNG_HOST}-{time_ns}.json"
    shot(tab, "bundle-hang")
    assert tab.errors == []


def test_a_hostile_host_name_round_trips_through_the_bundle_link_and_back(dashboard_server, tab):
    open_host(tab, dashboard_server, HOSTILE_HOST)
    assert "No hang, segfault or restart diagnosed" in tab.page.inner_text("#host-why")
    open_bundle_from_list(tab, manual_bundle_time(to_ns(dashboard_server.now)))
    assert tab.page.inner_text("#forensics-host") == HOSTILE_HOST
    assert MANUAL_CAUSE in tab.page.inner_text("#forensics-header")
    assert "range=custom" in tab.page.url  # the host page's range came along
    tab.page.click("#forensics-back")
    tab.page.wait_for_url("**/host/**", timeout=SETTLED_MS)
    settle(tab.page)
    assert tab.page.inner_text("#host-title") == HOSTILE_HOST
    assert "range=custom" in tab.page.url
    assert tab.errors == []


def test_the_alert_engines_link_opens_the_bundle(dashboard_server, tab):
    time_ns = manual_bundle_time(to_ns(dashboard_server.now))
    open_page(tab, f"{dashboard_server.url}/forensics?" + urlencode({"host": HOSTILE_HOST, "time": time_ns}))
    assert tab.page.inner_text("#forensics-host") == HOSTILE_HOST
    assert THREAD_LINE in tab.page.inner_text("#forensics-bundle-text")
    assert tab.errors == []


@pytest.mark.parametrize("query, kind, message", [
    ("host=kvm-hung-02", "bad-input", "time: missing"),
    ("host=kvm-hung-02&time=yesterday", "bad-input", "time = 'yesterday': expected a whole number"),
    ("host=%3Cscript%3Ealert(1)%3C%2Fscript%3E&time=1", "bad-input",
     "No forensics bundles of a host named '<script>alert(1)</script>' in the store."),
    ("host=kvm-hung-02&time=1&time=2", "bad-input", "time: given more than once"),
    ("corrupt", "error", "This bundle could not be read"),
], ids=["no-time", "word-time", "script-host", "two-times", "record-cut-short"])
def test_a_garbage_bundle_address_shows_an_empty_state(dashboard_server, tab, query, kind, message):
    if query == "corrupt":
        query = urlencode({"host": CORRUPT_HOST, "time": corrupt_bundle_time(to_ns(dashboard_server.now))})
    open_page(tab, f"{dashboard_server.url}/forensics?{query}")
    states = tab.page.locator(f"#forensics-body .empty-{kind}").all_inner_texts()
    assert len(states) == 1 and message in states[0], states
    assert not tab.page.query_selector("#forensics-bundle-text")
    assert tab.errors == []
    shot(tab, f"bundle-garbage-{kind}-{len(query)}")


def test_an_alerts_description_shows_in_full_with_its_line_breaks(dashboard_server, tab):
    open_page(tab, f"{dashboard_server.url}/alerts?{dashboard_server.planted_range()}")
    tab.page.wait_for_selector("#alerts-active-grid .ag-row", timeout=SETTLED_MS)
    from dashboard.triage_cells import evidence_text

    shown = evidence_text(ALERT_DESCRIPTION)  # every line and clause of it, each clause after "; " on a line of its own
    assert shown.replace("\n  ", "; ") == ALERT_DESCRIPTION
    cell = tab.page.locator("#alerts-active-grid .ag-row .ag-cell[col-id='evidence']").first
    assert cell.inner_text() == shown
    assert cell.evaluate("c => getComputedStyle(c).whiteSpace") == "pre-wrap"
    assert cell.evaluate("c => c.scrollWidth <= c.clientWidth + 1 && c.scrollHeight <= c.clientHeight + 1"), \
        "the description must wrap inside its cell and the row grow to hold it"
    history = tab.page.locator("#alerts-history-grid .ag-row .ag-cell[col-id='evidence']").first
    assert history.inner_text() == shown
    shot(tab, "alerts")
    assert tab.errors == []
