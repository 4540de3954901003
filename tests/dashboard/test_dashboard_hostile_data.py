"""Hostile data through the dashboard's real callbacks (the Dash app's own /_dash-update-component route):
spreadsheet formulas in exported events, a pathological silence regex on the alerts page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from dash_requests import UPDATE_PATH, active_alerts_body, export_events_body

from dashboard.data import defuse_cell
from tsdb import Point

OWN = {"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"}


@pytest.fixture
def now() -> dt.datetime:
    """The dashboard's clock: the start of the current minute, UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)


@pytest.fixture
def client(duckdb_store, tmp_path, now):
    """A Flask test client of the dashboard over an empty DuckDB store and the state dir tmp_path/alerts."""
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    app = create_app(DashboardContext(duckdb_store, [], tmp_path / "alerts", clock=lambda: now))
    return app.server.test_client()


def callback(client, body: dict) -> dict:
    """Run a callback as the browser on the dashboard's own page would; return the response's outputs."""
    response = client.post(UPDATE_PATH, data=json.dumps(body), content_type="application/json", headers=OWN)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data())["response"]


# ---- CSV export ----

#: (host, domain, message) of events whose every text a spreadsheet would run, or must keep as it is
HOSTILE_EVENTS = [
    ("=HYPERLINK(\"http://attacker.example\",\"kvm-01\")", "web-1", "guest web-1 crashed"),
    ("kvm-02", "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"),
    ("kvm-03", "-2+3", "\tcmd"),
    ("@kvm-04", "db", "\rline"),
    ("kvm-05", "plain-guest", "a message = fine, with + and - inside"),
]


@pytest.mark.parametrize("value, shown", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("kvm-01", "kvm-01"), ("a=b", "a=b"), ("", ""), (" =1", " =1"), (None, None), (3, 3),
])
def test_a_cell_a_spreadsheet_would_run_gets_a_quote_and_no_other(value, shown):
    assert defuse_cell(value) == shown


def test_exported_events_have_every_formula_defused_and_the_rest_unchanged(client, duckdb_store, now):
    base_ns = int(now.timestamp()) * 10**9 - 600 * 10**9
    duckdb_store.write([Point("event", {"host": host, "kind": "domain_crashed", "severity": "critical",
                                        "domain": domain}, {"message": message, "count": 1}, base_ns + index * 10**9)
                        for index, (host, domain, message) in enumerate(HOSTILE_EVENTS)])
    download = callback(client, export_events_body({"range": "1h"}))["events-download"]["data"]
    assert download["filename"] == "virtwatch-events.csv" and not download["base64"]
    rows = list(csv.DictReader(io.StringIO(download["content"], newline="")))
    exported = sorted((row["host"], row["domain"], row["message"]) for row in rows)
    expected = sorted(tuple("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text for text in event)
                      for event in HOSTILE_EVENTS)
    assert exported == expected
    assert {row["kind"] for row in rows} == {"domain_crashed"} and {row["severity"] for row in rows} == {"critical"}
    assert all(row["time"].endswith("Z") for row in rows)


# ---- the alerts page and a pathological silence ----

def test_the_alerts_page_decides_a_pathological_silence_in_linear_time(client, tmp_path, now):
    from alerts.paths import alert_state_path, silences_path
    from alerts.silences import Matcher, SilenceStore
    from alerts.state import AlertTracker

    long_a = "a" * 60  # (a|a)* has 2**60 ways to match it: a backtracking engine would never finish
    tracker = AlertTracker(alert_state_path(tmp_path / "alerts"), lambda: now)
    for host in (long_a, long_a + "b"):
        tracker.observe({"alertname": "LibvirtdDown", "host": host, "severity": "page"},
                        {"summary": f"libvirtd on {host} is down"}, True)
    SilenceStore(silences_path(tmp_path / "alerts"), clock=lambda: now).add(
        [Matcher("host", "=~", "(a|a)*b")], now + dt.timedelta(hours=1), created_by="ops", comment="pathological")
    grid = callback(client, active_alerts_body({"range": "1h"}))["alerts-active"]["children"]
    rows = {row["host"]: row["silenced"] for row in grid["props"]["rowData"]}
    assert rows == {long_a: "", long_a + "b": "silenced by ops"}
