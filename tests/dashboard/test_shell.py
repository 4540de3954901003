"""The shell in a real browser: the count of firing alerts in the navigation, the 14-day preset and the date
picker of a custom range, over `virtwatch dashboard` serving a planted store and an alert state the test sets."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from dashboard_servers import planted_now, start_server, write_config
from planted import SLO_TOML, plant, roll_up_slis, to_ns

pytestmark = pytest.mark.slow

SETTLED_MS = 30_000
SHOTS = Path("/tmp/shots")
PAGES = {"fleet": "/", "host": "/host/kvm-up-01", "slos": "/slos", "events": "/events", "alerts": "/alerts",
         "correlation": "/correlation"}
HOSTILE = 'kvm "quoted", 05 ✓ <b>\\'


@pytest.fixture(scope="module")
def shell_server(tmp_path_factory):
    """`virtwatch dashboard` over a DuckDB file holding the planted fleet; its alert state is the tests' to set."""
    from alerts.slo import load_slos
    from tsdb import open_store

    work = tmp_path_factory.mktemp("dashboard-shell")
    url = f"duckdb://{work}/store.duckdb"
    now = planted_now()
    (work / "slos.toml").write_text(SLO_TOML)
    store = open_store(url)
    try:
        plant(store, to_ns(now))
        roll_up_slis(store, load_slos(work / "slos.toml"), to_ns(now))
    finally:
        store.close()
    config = write_config(work / "virtwatch.toml", url, work / "alerts", work / "slos.toml")
    server = start_server(config, work, work / "alerts", now)
    yield server
    server.stop()


def leave_alerts(server, firing: int, pending: int = 0) -> None:
    """Leave `firing` firing and `pending` pending alerts in the engine's state file, as the engine would."""
    from alerts.paths import alert_state_path
    from alerts.state import AlertTracker

    path = alert_state_path(server.state_dir)
    path.unlink(missing_ok=True)
    tracker = AlertTracker(path, lambda: server.now)
    for index in range(firing):
        tracker.observe({"alertname": "LibvirtdHung", "host": f"{HOSTILE} {index}", "severity": "page"},
                        {"summary": "libvirtd is hung"}, True)
    for index in range(pending):
        tracker.observe({"alertname": "LibvirtdDown", "host": f"pending-{index}", "severity": "page"},
                        {"summary": "libvirtd is down"}, True, for_seconds=600)


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


def shot(tab, name: str) -> None:
    """Save the page as /tmp/shots/<name>.png, to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tab.shot(name), SHOTS / f"{name}.png")


def badge(page) -> tuple[str, bool]:
    """Return the firing badge's text and whether it shows."""
    return page.inner_text("#shell-firing"), page.is_visible("#shell-firing")


def shell_params(page) -> dict[str, str]:
    """Return the shell's parameters in the page's address."""
    query = parse_qs(urlsplit(page.url).query)
    return {key: query[key][0] for key in ("range", "start", "end") if key in query}


def pick_day(page, day: dt.date) -> None:
    """Click a day in the open calendar (in the month table that shows it)."""
    month = page.locator("table.dash-datepicker-calendar").filter(has_text=f"{day:%B %Y}").first
    month.locator("td.dash-datepicker-calendar-date-inside").filter(has_text=re.compile(f"^{day.day}$")).first.click()


def choose_range(page, option: str) -> None:
    """Pick another option of the time range dropdown and wait until the address has changed: the shell's callback
    writes it, and under load that may come after the page first went idle."""
    before = page.evaluate("() => location.search")
    page.click("#shell-range-picker")
    page.locator(".dash-dropdown-option", has_text=option).first.click()
    page.wait_for_function("(before) => location.search !== before", arg=before, timeout=SETTLED_MS)
    settle(page)


def test_the_navigation_counts_the_firing_alerts_on_every_page(shell_server, tab):
    leave_alerts(shell_server, firing=3, pending=1)
    for name, path in PAGES.items():
        open_page(tab, shell_server.url + path)
        assert badge(tab.page) == ("3", True), name  # the pending one is not firing yet
        assert tab.page.get_attribute("#shell-firing", "title") == "3 alerts firing now"
        assert tab.page.inner_text("a.nav-link[href^='/alerts']").split() == ["Alerts", "3"]
        if name == "fleet":
            shot(tab, "shell-badge-3-firing")
    assert tab.errors == []


def test_the_badge_disappears_when_no_alert_fires_and_comes_back_on_the_next_page(shell_server, tab):
    leave_alerts(shell_server, firing=0, pending=2)
    open_page(tab, shell_server.url + "/events")
    assert badge(tab.page) == ("", False)
    shot(tab, "shell-badge-none-firing")
    leave_alerts(shell_server, firing=1)
    tab.page.locator("a.nav-link", has_text="SLOs").click()  # a page change reads the state again, no reload
    tab.page.wait_for_function("() => document.querySelector('#shell-firing').innerText == '1'", timeout=SETTLED_MS)
    assert badge(tab.page) == ("1", True)
    assert tab.page.get_attribute("#shell-firing", "title") == "1 alert firing now"
    assert tab.errors == []


def test_an_unreadable_alert_state_shows_a_question_mark_in_the_navigation_not_a_traceback(shell_server, tab):
    from alerts.paths import alert_state_path

    leave_alerts(shell_server, firing=1)
    alert_state_path(shell_server.state_dir).write_text('{"version": 1, "alerts": {"x": {"no": "state"}}}')
    open_page(tab, shell_server.url + "/events")
    assert badge(tab.page) == ("?", True)
    assert "unreadable" in tab.page.get_attribute("#shell-firing", "title")
    assert "6 events" in tab.page.inner_text(".shell-main")  # the page itself works
    assert tab.errors == []


def test_the_14_day_preset_shows_14_days_and_a_reload_keeps_it(shell_server, tab):
    leave_alerts(shell_server, firing=1)
    open_page(tab, shell_server.url + "/events")
    choose_range(tab.page, "last 14 days")
    assert shell_params(tab.page) == {"range": "14d"}
    tab.page.wait_for_function("() => document.querySelector('.vw-section').innerText.includes('last 14 days')",
                               timeout=SETTLED_MS)
    assert "6 events · last 14 days" in tab.page.inner_text(".shell-main")
    open_page(tab, tab.page.url)
    assert tab.page.inner_text("#shell-range-picker") == "last 14 days"
    assert not tab.page.is_visible("#shell-custom")
    assert tab.errors == []


def test_the_date_picker_sets_a_range_that_the_url_keeps_and_a_reload_restores(shell_server, tab):
    leave_alerts(shell_server, firing=2)
    today = shell_server.now.date()
    open_page(tab, shell_server.url + "/events?severity=critical")
    choose_range(tab.page, "custom range")
    # the picker starts from the range shown so far: the last 6 hours
    shown = shell_params(tab.page)
    assert shown["range"] == "custom" and tab.page.is_visible("#shell-custom")
    assert tab.page.input_value("#shell-start-date") == shown["start"][:10]
    assert tab.page.input_value("#shell-end-time") == shown["end"][11:16]
    tab.page.click("#shell-start-date")
    pick_day(tab.page, today)
    pick_day(tab.page, today)
    tab.page.keyboard.press("Escape")
    tab.page.fill("#shell-start-time", "00:00")
    tab.page.fill("#shell-end-time", "23:59")
    shot(tab, "shell-date-picker-filled")
    tab.page.click("#shell-apply")
    tab.page.wait_for_function(f"() => location.search.includes('end={today}T23%3A59')", timeout=SETTLED_MS)
    # the URL changes first, the page's callbacks run after it: wait for the page to say its new range
    tab.page.wait_for_function(f"() => document.querySelector('.shell-main').innerText"
                               f".includes('{today}T00:00 to {today}T23:59 UTC')", timeout=SETTLED_MS)
    settle(tab.page)
    assert shell_params(tab.page) == {"range": "custom", "start": f"{today}T00:00", "end": f"{today}T23:59"}
    assert "severity=critical" in tab.page.url  # the page's own parameters stay
    assert f"{today}T00:00 to {today}T23:59 UTC" in tab.page.inner_text(".shell-main")
    shot(tab, "shell-date-picker-applied")
    open_page(tab, tab.page.url)  # a reload (or a shared link) opens the same view
    assert tab.page.inner_text("#shell-range-picker") == "custom range"
    assert [tab.page.input_value(f"#shell-{field}") for field in ("start-date", "start-time", "end-date", "end-time")
            ] == [str(today), "00:00", str(today), "23:59"]
    assert f"{today}T00:00 to {today}T23:59 UTC" in tab.page.inner_text(".shell-main")
    assert badge(tab.page) == ("2", True)
    assert tab.errors == []


def test_a_reversed_range_says_so_and_keeps_the_view(shell_server, tab):
    leave_alerts(shell_server, firing=1)
    start = shell_server.now - dt.timedelta(hours=3)
    old = f"range=custom&start={start:%Y-%m-%dT%H:%M}&end={shell_server.now:%Y-%m-%dT%H:%M}"
    open_page(tab, f"{shell_server.url}/events?{old}")
    before = tab.page.url
    tab.page.fill("#shell-start-time", "10:00")
    tab.page.fill("#shell-end-time", "09:00")
    tab.page.fill("#shell-end-date", f"{start:%Y-%m-%d}")  # typed: the same day as the start
    tab.page.keyboard.press("Tab")
    tab.page.click("#shell-apply")
    tab.page.wait_for_selector("#shell-range-message:not(:empty)", timeout=SETTLED_MS)
    message = tab.page.inner_text("#shell-range-message")
    assert message == (f"Time range not applied: end = '{start:%Y-%m-%d}T09:00': must come after "
                       f"start = '{start:%Y-%m-%d}T10:00'")
    assert tab.page.url == before and "6 events" in tab.page.inner_text(".shell-main")  # the view stays
    shot(tab, "shell-date-picker-reversed")
    tab.page.fill("#shell-end-time", "25:00")
    tab.page.press("#shell-end-time", "Enter")  # Enter applies too
    tab.page.wait_for_function("() => document.querySelector('#shell-range-message').innerText.includes('25:00')",
                               timeout=SETTLED_MS)
    assert "end time = '25:00': expected HH:MM (24-hour, UTC)" in tab.page.inner_text("#shell-range-message")
    assert tab.errors == []


@pytest.mark.parametrize("query", ["range=custom&start={start}&end={end}", "start={start}&end={end}",
                                   "range=custom&start={start}:00Z&end={end}:00%2B00:00"])
def test_an_old_custom_range_link_still_opens_its_range(shell_server, tab, query):
    leave_alerts(shell_server, firing=1)
    start, end = shell_server.now - dt.timedelta(hours=2), shell_server.now
    search = query.format(start=f"{start:%Y-%m-%dT%H:%M}", end=f"{end:%Y-%m-%dT%H:%M}")
    open_page(tab, f"{shell_server.url}/events?{search}")
    assert f"{start:%Y-%m-%dT%H:%M} to {end:%Y-%m-%dT%H:%M} UTC" in tab.page.inner_text(".shell-main")
    assert [tab.page.input_value(f"#shell-{field}") for field in ("start-date", "start-time", "end-date", "end-time")
            ] == [f"{start:%Y-%m-%d}", f"{start:%H:%M}", f"{end:%Y-%m-%d}", f"{end:%H:%M}"]
    assert tab.page.inner_text("#shell-range-message") == ""
    assert tab.errors == []


@pytest.mark.parametrize("query, reason", [
    ("range=custom&start=2026-05-01T10:00&end=2026-05-01T09:00", "must come after start"),
    ("range=custom&start=%27%3B%20DROP%20MEASUREMENT%20event%3B%20--&end=x", "not a time"),
    ("range=fortnight", "range = 'fortnight': expected one of 1h, 6h, 24h, 7d, 14d, 30d, custom"),
])
def test_a_url_with_a_bad_range_shows_the_reason_not_a_traceback(shell_server, tab, query, reason):
    leave_alerts(shell_server, firing=1)
    open_page(tab, f"{shell_server.url}/events?{query}")
    assert reason in tab.page.inner_text("#shell-range-message")
    assert reason in tab.page.inner_text(".shell-main .empty-bad-input")
    assert "Traceback" not in tab.page.inner_text("body")
    assert badge(tab.page) == ("1", True)  # the navigation works whatever the range says
    assert tab.errors == []


def test_the_badge_count_reads_the_state_file_again_only_when_the_engine_rewrote_it(tmp_path, monkeypatch):
    import alerts.state
    from alerts.paths import alert_state_path
    from alerts.state import AlertTracker
    from dashboard.firing_count import firing_count

    reads = []
    real = alerts.state.count_firing
    monkeypatch.setattr(alerts.state, "count_firing", lambda path: reads.append(path) or real(path))
    assert firing_count(None) == 0 and firing_count(tmp_path / "none") == 0 and reads == []
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    tracker = AlertTracker(alert_state_path(tmp_path), lambda: now)
    tracker.observe({"alertname": "LibvirtdHung", "host": HOSTILE}, {"summary": "hung"}, True)
    assert [firing_count(tmp_path) for _ in range(5)] == [1] * 5 and len(reads) == 1
    tracker.observe({"alertname": "LibvirtdDown", "host": HOSTILE}, {"summary": "down"}, True)
    assert [firing_count(tmp_path) for _ in range(5)] == [2] * 5 and len(reads) == 2
    tracker.observe({"alertname": "LibvirtdHung", "host": HOSTILE}, {"summary": "up again"}, False)
    assert firing_count(tmp_path) == 1 and len(reads) == 3
