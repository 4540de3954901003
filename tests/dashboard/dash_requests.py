"""Dash callback requests as a browser sends them: one POST to /_dash-update-component per callback run."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

UPDATE_PATH = "/_dash-update-component"


def create_silence_body(matchers: str, comment: str, created_by: str = "mallory", duration: str = "7d") -> dict:
    """Return the body of the alerts page's callback after a click on "Create silence"."""
    return {
        "output": "..alerts-silences.children...alerts-silence-message.children..",
        "outputs": [{"id": "alerts-silences", "property": "children"},
                    {"id": "alerts-silence-message", "property": "children"}],
        "inputs": [{"id": "alerts-create", "property": "n_clicks", "value": 1}, [],
                   {"id": "shell-refresh", "property": "n_intervals", "value": None}],
        "state": [{"id": "alerts-matchers", "property": "value", "value": matchers},
                  {"id": "alerts-duration", "property": "value", "value": duration},
                  {"id": "alerts-created-by", "property": "value", "value": created_by},
                  {"id": "alerts-comment", "property": "value", "value": comment}],
        "changedPropIds": ["alerts-create.n_clicks"],
    }


def active_alerts_body(range_data: dict) -> dict:
    """Return the body of the alerts page's callback listing the firing and pending alerts."""
    return {
        "output": "alerts-active.children", "outputs": {"id": "alerts-active", "property": "children"},
        "inputs": [{"id": "shell-range", "property": "data", "value": range_data},
                   {"id": "shell-refresh", "property": "n_intervals", "value": None}],
        "changedPropIds": ["shell-range.data"],
    }


def export_events_body(range_data: dict) -> dict:
    """Return the body of the events page's callback after a click on "Export CSV" (no filters)."""
    return {
        "output": "events-download.data", "outputs": {"id": "events-download", "property": "data"},
        "inputs": [{"id": "events-export", "property": "n_clicks", "value": 1}],
        "state": [{"id": "shell-range", "property": "data", "value": range_data},
                  {"id": "events-kind", "property": "value", "value": []},
                  {"id": "events-host", "property": "value", "value": []},
                  {"id": "events-severity", "property": "value", "value": []},
                  {"id": "events-domain", "property": "value", "value": ""}],
        "changedPropIds": ["events-export.n_clicks"],
    }


def post(base_url: str, body: dict, headers: dict[str, str], path: str = UPDATE_PATH,
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """Send one request to a real server with exactly these headers (Host included); return status, headers, body."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        sent = {"Content-Type": "application/json", **headers}
        connection.putrequest(method, path, skip_host="Host" in sent, skip_accept_encoding=True)
        data = json.dumps(body).encode() if method == "POST" else b""
        for name, value in {**sent, "Content-Length": str(len(data))}.items():
            connection.putheader(name, value)
        connection.endheaders(data)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def fleet_rows_body(range_data: dict, request: dict, statuses: list | None = None, text: str = "",
                    search: str = "") -> dict:
    """Return the body of the fleet page's callback when its grid asks for rows (getRowsRequest)."""
    return {
        "output": "..fleet-count.children...fleet-grid.getRowsResponse...fleet-grid.style..",
        "outputs": [{"id": "fleet-count", "property": "children"},
                    {"id": "fleet-grid", "property": "getRowsResponse"}, {"id": "fleet-grid", "property": "style"}],
        "inputs": [{"id": "fleet-grid", "property": "getRowsRequest", "value": request}],
        "state": [{"id": "shell-range", "property": "data", "value": range_data},
                  {"id": "fleet-status", "property": "value", "value": statuses or []},
                  {"id": "fleet-search", "property": "value", "value": text},
                  {"id": "url", "property": "search", "value": search}],
        "changedPropIds": ["fleet-grid.getRowsRequest"],
    }
