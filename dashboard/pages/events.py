"""Events: every event of the range, filtered by kind, host, domain and severity, exported to CSV."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from dashboard import data, triage_cells, views
from dashboard.timerange import ParamError, list_param, text_param, with_page_params
from tsdb.schema import EVENT_KINDS, SEVERITIES

dash.register_page(__name__, path="/events", name="Events", title="virtwatch: events", order=3)

FILTER_KEYS = ("kind", "host", "severity", "domain")


def layout(**params):
    """Return the events page with its filters set from the URL."""
    try:
        kinds = list_param(params, "kind")
        hosts = list_param(params, "host")
        severities = list_param(params, "severity", SEVERITIES)
        domain = text_param(params, "domain")
    except ParamError as error:
        return html.Div([views.page_header("Events"),
                         views.empty_state(f"Nothing to show: {error}", "Fix the address, or open the events page "
                                           "from the navigation.", kind="bad-input")])
    kind_options = sorted(set(EVENT_KINDS) | set(kinds))
    filters = html.Div([
        html.Label("Severity", className="control-label"),
        dcc.Checklist(id="events-severity", value=severities, inline=True, className="status-filter",
                      options=[{"label": html.Span(views.severity_label(s),
                                                   className=f"chip {views.SEVERITY_STYLE[s][1]}"), "value": s}
                               for s in SEVERITIES]),
        html.Label("Kind", htmlFor="events-kind", className="control-label"),
        dcc.Dropdown(id="events-kind", value=kinds, multi=True, placeholder="any kind", className="multi-filter",
                     options=[{"label": k, "value": k} for k in kind_options]),
        html.Label("Host", htmlFor="events-host", className="control-label"),
        dcc.Dropdown(id="events-host", value=hosts, multi=True, placeholder="any host", className="multi-filter",
                     options=[{"label": h, "value": h} for h in hosts]),
        html.Label("Domain", htmlFor="events-domain", className="control-label"),
        dcc.Input(id="events-domain", value=domain, type="search", debounce=True, placeholder="exact name",
                  className="text-filter", style={"width": "220px"}),
        html.Button("↓ Export CSV", id="events-export", className="button", n_clicks=0),
        dcc.Download(id="events-download"),
    ], className="filters")
    return html.Div([
        views.page_header("Events", "what the agents saw: daemon and guest failures, hangs, restarts, log errors"),
        filters,
        views.section("Events", "events-table"),
    ])


def _filters(kinds, hosts, severities, domain) -> dict:
    """Return the filter values as data.events keyword arguments."""
    return {"kinds": list(kinds or []), "hosts": list(hosts or []), "severities": list(severities or []),
            "domain": (domain or "").strip() or None}


@callback(Output("url", "search", allow_duplicate=True), Input("events-kind", "value"),
          Input("events-host", "value"), Input("events-severity", "value"), Input("events-domain", "value"),
          State("url", "search"), prevent_initial_call=True)
def keep_filters_in_url(kinds, hosts, severities, domain, search):
    """Write the event filters into the URL so the view can be shared."""
    return with_page_params(search, {"kind": list(kinds or []), "host": list(hosts or []),
                                     "severity": list(severities or []), "domain": (domain or "").strip()})


@callback(Output("events-host", "options"), Input("shell-range", "data"), State("events-host", "value"))
@views.guarded("the hosts with events")
def host_options(range_data, chosen):
    """Offer every host that has events, plus the ones already chosen."""
    context, _rng = views.page_range(range_data)
    hosts = sorted(set(context.store.tag_values("event", "host")) | set(chosen or []))
    return [{"label": h, "value": h} for h in hosts]


@callback(Output("events-table", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("events-kind", "value"), Input("events-host", "value"), Input("events-severity", "value"),
          Input("events-domain", "value"))
@views.guarded("the events")
def events_table(range_data, _tick, kinds, hosts, severities, domain):
    """Return the table of events matching the filters, newest first."""
    context, rng = views.page_range(range_data)
    frame = data.events(context.store, rng, **_filters(kinds, hosts, severities, domain))
    if frame.empty:
        filtered = any([kinds, hosts, severities, (domain or "").strip()])
        return views.empty_state(f"No events {'match the filters ' if filtered else ''}in the {rng.label}.",
                                 "Clear a filter or pick a longer time range." if filtered else "")
    rows = linked_rows(data.event_rows(frame), frame, context.now_ns())
    shown = (f"{len(frame)} events · {rng.label}" if len(frame) <= len(rows) else
             f"the newest {len(rows)} of {len(frame)} events · {rng.label} (the CSV export holds them all)")
    return html.Div([html.P(shown + " · a host or domain opens the host an hour either side of the event",
                            className="section-note", id="events-count"),
                     views.grid("events-grid", rows, event_columns(), height_px=None if len(rows) <= 15
                                else 600)])


def linked_rows(rows: list[dict], frame, now_ns: int) -> list[dict]:
    """Return event rows with the links of their host and domain cells (the host around the event's time) and
    the message in readable lines."""
    for row, when in zip(rows, frame["time"]):
        href = triage_cells.host_link_around(row["host"], when.value, now_ns)
        row["host_href"] = href
        row["domain_href"] = href if row["domain"] else ""
        row["message"] = triage_cells.evidence_text(row["message"])
    return rows


def event_columns() -> list[dict]:
    """Return the columns of the events table: time, severity, kind, host and domain (links), message."""
    columns = views.event_columns()
    by_field = {column["field"]: column for column in columns}
    by_field["time"].update(minWidth=150, maxWidth=170)
    by_field["severity"]["maxWidth"] = 120
    by_field["kind"].update(minWidth=140, maxWidth=180)
    by_field["host"] = triage_cells.link_column("host", "host", 150, filter=True, maxWidth=240)
    by_field["domain"] = triage_cells.link_column("domain", "domain", 130, filter=True, maxWidth=220)
    by_field["message"].update(cellClass="cell-lines", minWidth=360)
    return [by_field[column["field"]] for column in columns]


@callback(Output("events-download", "data"), Input("events-export", "n_clicks"), State("shell-range", "data"),
          State("events-kind", "value"), State("events-host", "value"), State("events-severity", "value"),
          State("events-domain", "value"), prevent_initial_call=True)
def export_csv(_clicks, range_data, kinds, hosts, severities, domain):
    """Send every event matching the filters as a CSV file (time in UTC, ISO 8601; formulas defused)."""
    try:
        context, rng = views.page_range(range_data)
        frame = data.events(context.store, rng, **_filters(kinds, hosts, severities, domain))
    except ParamError:
        return dash.no_update
    frame = data.defused(frame.assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
    # CRLF ends records (RFC 4180), so a field holding a lone CR or LF is quoted as one field
    return dcc.send_data_frame(frame.to_csv, "virtwatch-events.csv", index=False, lineterminator="\r\n")
