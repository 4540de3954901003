"""The Why panel, the Forensics list and the bundle page (`/forensics?host=<host>&time=<ns>`) as components, over a
DuckDB store holding the planted fleet's failure evidence: good addresses, garbage addresses, hostile names."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from planted import HOSTILE_HOST, plant, to_ns
from planted_forensics import (CORRUPT_HOST, HOSTILE_GUEST, HUNG_HOST, KERNEL_LINE, SEGFAULT_CAUSE, SEGFAULT_HOST,
                               THREAD_LINE, corrupt_bundle_time, hang_bundle_time, hang_cause, manual_bundle_time,
                               segfault_bundle_time)

from dashboard import forensics_data, forensics_view, views
from dashboard.context import DashboardContext
from dashboard.timerange import TimeRange
from tsdb.point import printable

NOW = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.timezone.utc)
NOW_NS = to_ns(NOW)
RANGE = TimeRange(NOW_NS - 3 * 3600 * 10**9, NOW_NS, "last 3 hours")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A DuckDB store holding the planted fleet ending at NOW (one per module)."""
    from tsdb import open_store

    store = open_store(f"duckdb://{tmp_path_factory.mktemp('forensics-view')}/store.duckdb")
    plant(store, NOW_NS)
    forensics_data.clear_cache()
    yield store
    forensics_data.clear_cache()
    store.close()


@pytest.fixture(scope="module")
def bundle_page(store, tmp_path_factory):
    """Return the bundle page's layout for URL parameters, as Dash calls it for `/forensics?...`."""
    import dash

    from dashboard.app import create_app

    app = create_app(DashboardContext(store, [], tmp_path_factory.mktemp("alerts"), lambda: NOW))
    layout = next(page["layout"] for page in dash.page_registry.values() if page["path"] == forensics_view.PATH)

    def render(**params):
        with app.server.test_request_context("/forensics"):
            return layout(**params)
    return render


def walk(component):
    """Yield a component and every component inside it."""
    if isinstance(component, (list, tuple)):
        for child in component:
            yield from walk(child)
        return
    if component is None or isinstance(component, (str, int, float)):
        return
    yield component
    yield from walk(getattr(component, "children", None))


def text(component) -> str:
    """Return every string inside a component, joined as a browser would show them (roughly)."""
    if isinstance(component, (list, tuple)):
        return "".join(text(child) for child in component)
    if isinstance(component, str):
        return component
    if component is None or isinstance(component, (int, float)):
        return ""
    return text(getattr(component, "children", None))


def find(component, component_id: str):
    """Return the component with an id inside a component."""
    return next(c for c in walk(component) if getattr(c, "id", None) == component_id)


def empty_states(component) -> list[tuple[str, str]]:
    """Return (kind class, message) of every empty state inside a component."""
    return [(c.className.split()[-1], text(c.children[0])) for c in walk(component)
            if "empty-state" in (getattr(c, "className", "") or "")]


# ---- the bundle page ----

def test_a_good_address_shows_the_header_the_download_and_the_bundle_as_text(bundle_page):
    time_ns = hang_bundle_time(NOW_NS)
    page = bundle_page(host=HUNG_HOST, time=str(time_ns), range="24h")
    assert empty_states(page) == []
    assert text(find(page, "forensics-host")) == HUNG_HOST
    header = text(find(page, "forensics-header"))
    for expected in (HUNG_HOST, "‖ hang", f"{time_ns} ns", hang_cause(60), "1214 ms", "KiB (stored as zlib+base64)",
                     "gdb"):
        assert expected in header, expected
    bundle_text = find(page, "forensics-bundle-text")
    assert type(bundle_text).__name__ == "Pre"
    lines = [line.children for line in bundle_text.children]
    assert THREAD_LINE in lines and f"5120 state T guest '{printable(HOSTILE_GUEST)}'" in lines
    assert find(page, "forensics-download-button") is not None and find(page, "forensics-download") is not None
    back = find(page, "forensics-back")
    assert back.href == views.host_href(HUNG_HOST, "?range=24h")


def test_a_segfault_bundle_shows_the_kernels_segfault_line(bundle_page):
    page = bundle_page(host=SEGFAULT_HOST, time=str(segfault_bundle_time(NOW_NS)))
    assert KERNEL_LINE in [line.children for line in find(page, "forensics-bundle-text").children]
    assert SEGFAULT_CAUSE in text(find(page, "forensics-header"))


@pytest.mark.parametrize("params, kind, message", [
    ({}, "empty-bad-input", "host: missing"),
    ({"host": HUNG_HOST}, "empty-bad-input", "time: missing"),
    ({"time": "1"}, "empty-bad-input", "host: missing"),
    ({"host": HUNG_HOST, "time": "12abc"}, "empty-bad-input", "time = '12abc': expected a whole number"),
    ({"host": HUNG_HOST, "time": "-5"}, "empty-bad-input", "time = '-5': expected a whole number"),
    ({"host": HUNG_HOST, "time": "١٢٣"}, "empty-bad-input", "expected a whole number"),
    ({"host": HUNG_HOST, "time": "1.5e18"}, "empty-bad-input", "expected a whole number"),
    ({"host": HUNG_HOST, "time": "9999999999999999999"}, "empty-bad-input", "later than any time a store holds"),
    ({"host": HUNG_HOST, "time": "9" * 400}, "empty-bad-input", "expected a whole number"),
    ({"host": [HUNG_HOST, SEGFAULT_HOST], "time": "1"}, "empty-bad-input", "host: given more than once"),
    ({"host": "<script>alert(1)</script>", "time": "1"}, "empty-bad-input",
     "No forensics bundles of a host named '<script>alert(1)</script>' in the store."),
    ({"host": HUNG_HOST, "time": str(hang_bundle_time(NOW_NS) + 1)}, "empty-bad-input",
     f"No forensics bundle of '{HUNG_HOST}' at"),
    ({"host": CORRUPT_HOST, "time": str(corrupt_bundle_time(NOW_NS))}, "empty-error",
     "This bundle could not be read: not a forensics bundle"),
], ids=["nothing", "no-time", "no-host", "time-with-letters", "negative-time", "arabic-digits", "float-time",
        "time-past-int64", "overlong-time", "two-hosts", "script-host", "a-nanosecond-off", "record-cut-short"])
def test_a_garbage_address_shows_an_empty_state_saying_what_is_wrong(bundle_page, params, kind, message):
    page = bundle_page(**params)
    states = empty_states(page)
    assert len(states) == 1 and states[0][0] == kind and message in states[0][1], states
    assert not any(getattr(c, "id", None) == "forensics-bundle-text" for c in walk(page))


def test_a_record_that_cannot_be_decoded_still_shows_its_header(bundle_page):
    page = bundle_page(host=CORRUPT_HOST, time=str(corrupt_bundle_time(NOW_NS)))
    header = text(find(page, "forensics-header"))
    assert "libvirtd on kvm-down-03 restarted" in header and "zlib+base64" in header


def test_nothing_on_the_pages_is_markdown_or_raw_html(bundle_page, store):
    from dash import dcc

    diagnosis = forensics_data.latest_diagnosis(store, HUNG_HOST, RANGE)
    parts = [bundle_page(host=HUNG_HOST, time=str(hang_bundle_time(NOW_NS))),
             forensics_view.why_panel(diagnosis, HUNG_HOST, RANGE.label),
             forensics_view.forensics_list(forensics_data.forensics_records(store, HUNG_HOST, RANGE))]
    for component in walk(parts):
        assert not isinstance(component, dcc.Markdown), component
        assert not getattr(component, "dangerously_allow_html", False), component


def test_the_download_is_the_decoded_bundle_under_a_safe_file_name(store):
    time_ns = manual_bundle_time(NOW_NS)
    downloaded = json.loads(forensics_view.bundle_json(store, HOSTILE_HOST, time_ns))
    assert downloaded["host"] == HOSTILE_HOST and downloaded["qemu"][0]["domain"] == HOSTILE_GUEST
    assert forensics_view.bundle_filename(HOSTILE_HOST, time_ns) == \
        f"virtwatch-forensics-kvm__quoted___05__-{time_ns}.json"
    assert forensics_view.bundle_json(store, CORRUPT_HOST, corrupt_bundle_time(NOW_NS)) is None
    assert forensics_view.bundle_json(store, HOSTILE_HOST, time_ns + 1) is None


# ---- the host page's pieces ----

def test_a_forensics_link_spells_host_and_time_as_the_alert_engine_does_and_keeps_the_range():
    time_ns = manual_bundle_time(NOW_NS)
    assert forensics_view.forensics_href(HOSTILE_HOST, time_ns) == "/forensics?" + urlencode(
        {"host": HOSTILE_HOST, "time": time_ns})
    href = forensics_view.forensics_href(HOSTILE_HOST, time_ns, "?range=custom&start=2026-01-31T08:00"
                                         "&end=2026-01-31T12:00&kind=restart")
    assert parse_qs(urlsplit(href).query) == {"host": [HOSTILE_HOST], "time": [str(time_ns)], "range": ["custom"],
                                              "start": ["2026-01-31T08:00"], "end": ["2026-01-31T12:00"]}


def test_the_why_panel_puts_the_cause_first_and_the_figures_in_a_table(store):
    panel = forensics_view.why_panel(forensics_data.latest_diagnosis(store, HUNG_HOST, RANGE), HUNG_HOST,
                                     RANGE.label)
    assert text(find(panel, "host-why-cause")) == hang_cause(29 * 60)
    facts = {text(row.children[0]): text(row.children[1]) for row in walk(find(panel, "host-why-facts"))
             if type(row).__name__ == "Tr"}
    assert facts == {
        "workers": "20 of 20 busy", "job queue": "7 calls waiting",
        "top client": "memstat-poller (pid 4242) · 14 connections",
        "job lock holder": f"guest {HOSTILE_GUEST} · held by remoteDispatchDomainBlockJobAbort · thread 4712 · for "
                           "29 min 13 s · remoteDispatchDomainGetBlockInfo waits for it",
        "stuck guests": f"1: {HOSTILE_GUEST}", "process state": "S", "threads not sleeping": "none (of 22)"}
    assert "hung 29 min" in text(panel)


def test_the_why_panel_of_a_crash_leaves_out_what_was_not_measured(store):
    panel = forensics_view.why_panel(forensics_data.latest_diagnosis(store, SEGFAULT_HOST, RANGE), SEGFAULT_HOST,
                                     RANGE.label)
    facts = {text(row.children[0]): text(row.children[1]) for row in walk(find(panel, "host-why-facts"))
             if type(row).__name__ == "Tr"}
    assert facts["top client"] == "—" and facts["job lock holder"] == "—" and facts["stuck guests"] == "—"
    assert "↻ restart" in text(panel) and "hung" not in text(panel).replace(SEGFAULT_CAUSE, "")


def test_the_why_panel_without_a_diagnosis_says_there_was_none():
    states = empty_states(forensics_view.why_panel(None, HOSTILE_HOST, "last 6 hours"))
    assert states == [("empty-empty", f"No hang, segfault or restart diagnosed on {HOSTILE_HOST} in the last 6 "
                                      "hours.")]


def test_the_forensics_list_links_each_record_newest_first_to_its_bundle(store):
    records = forensics_data.forensics_records(store, HOSTILE_HOST, RANGE)
    table = forensics_view.forensics_list(records, "?range=24h")
    links = [c for c in walk(table) if type(c).__name__ == "Link"]
    assert [link.href for link in links] == [forensics_view.forensics_href(HOSTILE_HOST, manual_bundle_time(NOW_NS),
                                                                           "?range=24h")]
    assert "● manual" in text(table) and "70 ms" in text(table)
    empty = forensics_view.forensics_list([], "", "last 1 hour")
    assert empty_states(empty)[0][1] == "No forensics bundle captured in the last 1 hour."


def test_an_unknown_host_links_back_to_the_fleet_and_a_known_one_to_its_page(bundle_page):
    assert find(bundle_page(host="no-such-host", time="1", range="24h"), "forensics-back").href == "/?range=24h"
    assert find(bundle_page(host=HUNG_HOST, time="1"), "forensics-back").href == views.host_href(HUNG_HOST)
