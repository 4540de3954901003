"""Forensics bundle: one record of evidence captured at a failure, `/forensics?host=<host>&time=<ns>` (the address
the alert engine's notifications link to), shown as text with its header and a JSON download."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, html

from dashboard import forensics_view, views
from dashboard.timerange import ParamError, parse_search

dash.register_page(__name__, path=forensics_view.PATH, name="Forensics", title="virtwatch: forensics bundle")


def layout(**params):
    """Return the bundle page for the host and time in the URL (read once, here: a record never changes)."""
    try:
        host = forensics_view.bundle_address(params)[0]
    except ParamError:
        host = ""
    return html.Div([
        views.page_header("Forensics bundle", "evidence captured at the failure, before anyone restarted anything",
                          [html.Span(host, id="forensics-host", className="host-name")] if host else []),
        html.Section(_body(params), id="forensics-body", className="vw-section"),
    ])


@views.guarded("the forensics bundle")
def _body(params):
    """Return the bundle's header, download and text, or the empty state for a bad address."""
    from dashboard.context import current_context

    return forensics_view.bundle_view(current_context().store, params)


@callback(Output("forensics-download", "data"), Input("forensics-download-button", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download(_clicks, search):
    """Send the decoded bundle as an indented JSON file."""
    from dashboard.context import current_context

    try:
        host, time_ns = forensics_view.bundle_address(parse_search(search))
        text = forensics_view.bundle_json(current_context().store, host, time_ns)
    except Exception:  # noqa: BLE001: the button then does nothing, the page already says what it could read
        views.log.exception("dashboard: preparing the forensics download failed")
        return dash.no_update
    if text is None:
        return dash.no_update
    return {"content": text, "filename": forensics_view.bundle_filename(host, time_ns), "type": "application/json"}
