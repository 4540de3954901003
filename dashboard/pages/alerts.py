"""Alerts: firing and pending alerts with their evidence, the alerts of the range, and silences (list, create,
expire). The alert engine's files are read only, except the silences file, which alerts.silences shares safely."""

from __future__ import annotations

import datetime as dt

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html

from dashboard import data, slo_data, triage_cells, views

dash.register_page(__name__, path="/alerts", name="Alerts", title="virtwatch: alerts", order=4)

DURATIONS = {"1h": 3600, "2h": 7200, "4h": 4 * 3600, "8h": 8 * 3600, "24h": 86400, "3d": 3 * 86400,
             "7d": 7 * 86400}
DEFAULT_DURATION = "2h"


def layout(**_params):
    """Return the alerts page."""
    from dashboard.auth import current_user

    user = current_user()
    form = html.Div([
        html.Div([
            html.Label("Matchers, one per line (NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX)",
                       htmlFor="alerts-matchers", className="control-label"),
            dcc.Textarea(id="alerts-matchers", placeholder='alertname=LibvirtdHung\nhost="kvm-node-17"',
                         className="matchers-input"),
        ], className="form-col wide"),
        html.Div([
            html.Label("For", htmlFor="alerts-duration", className="control-label"),
            dcc.Dropdown(id="alerts-duration", value=DEFAULT_DURATION, clearable=False, searchable=False,
                         options=[{"label": k, "value": k} for k in DURATIONS]),
            html.Label("Created by", htmlFor="alerts-created-by", className="control-label"),
            dcc.Input(id="alerts-created-by", value=user or "", type="text", disabled=user is not None,
                      className="text-filter", style={"width": "220px"}),
            html.Label("Comment (why)", htmlFor="alerts-comment", className="control-label"),
            dcc.Input(id="alerts-comment", type="text", className="text-filter", placeholder="maintenance of …"),
            html.Button("Create silence", id="alerts-create", className="button primary", n_clicks=0),
        ], className="form-col"),
    ], className="silence-form")
    return html.Div([
        views.page_header("Alerts", "from the alert engine's state and history"),
        views.section("Firing and pending now", "alerts-active",
                      "Pending alerts have held their condition for less than their `for` time. A host opens its "
                      "page an hour either side of the alert's start; \"Silence this\" fills the silence form below "
                      "with the alert's labels."),
        views.section("Alerts in the range", "alerts-history",
                      "Each time an alert started firing or resolved, with the evidence it carried."),
        html.Section([html.H2("Silences"),
                      html.P("A silence mutes the notifications of the alerts its matchers all match; the engine "
                             "still tracks them.", className="section-note"),
                      form, dcc.Store(id="alerts-silence-focus"),
                      html.Div(id="alerts-silence-message", role="status"),
                      dcc.Loading(html.Div(id="alerts-silences"), type="dot", delay_show=400)],
                     className="vw-section"),
    ])


def _silences():
    """Return the SilenceStore of the context's state dir (with the dashboard's clock)."""
    from alerts.paths import silences_path
    from alerts.silences import SilenceStore
    from dashboard.context import current_context

    context = current_context()
    if context.state_dir is None:
        return None
    return SilenceStore(silences_path(context.state_dir), clock=context.clock)


@callback(Output("alerts-active", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"))
@views.guarded("the active alerts")
def active(range_data, _tick):
    """Return the firing and pending alerts, with their evidence, whether a silence mutes them, a link to the host
    around the time each started, and a "Silence this" button that fills the silence form."""
    context, _rng = views.page_range(range_data)
    rows = data.active_alerts(context.state_dir, context.clock)
    if not rows:
        return views.empty_state("No alert is firing or pending.", "All quiet.")
    silences = _silences()
    now_ns = context.now_ns()
    for row in rows:
        muting = silences.silencing(row.pop("label_map")) if silences is not None else None
        row["silenced"] = f"silenced by {muting.created_by}" if muting else ""
        row["state_label"] = ("✖ firing" if row["state"] == "firing" else "◔ pending") + (
            "\n⊘ " + row["silenced"] if muting else "")
        _cells(row, row["since_ns"], now_ns)
    return views.grid("alerts-active-grid", rows, [
        {"field": "state_label", "headerName": "state", "minWidth": 100, "cellClass": "cell-lines",
         "autoHeight": True,
         "cellClassRules": {"status-down": "params.data.state == 'firing'",
                            "status-hung": "params.data.state == 'pending'"}},
        _severity_column(),
        {"field": "alert", "headerName": "alert", "minWidth": 150, "cellClass": "cell-lines", "autoHeight": True},
        triage_cells.link_column("host", "host", 130),
        {"field": "since", "headerName": "since (UTC)", "minWidth": 175},
        {"field": "summary", "headerName": "summary", "minWidth": 200, "flex": 2, "autoHeight": True,
         "cellClass": "cell-lines"},
        {"field": "evidence", "headerName": "evidence", "minWidth": 300, "flex": 3, "autoHeight": True,
         "cellClass": "cell-lines"},
        {"field": "fingerprint", "headerName": "", "minWidth": 150, "maxWidth": 150, "sortable": False,
         "cellRenderer": "VwSilence", "colId": "silence"},
    ])


def _severity_column() -> dict:
    """Return the severity column of both alert tables."""
    return {"field": "severity", "headerName": "severity", "minWidth": 90,
            "cellClassRules": {"sev-critical": "params.value == 'page'", "sev-warning": "params.value == 'ticket'"}}


def _cells(row: dict, moment_ns: int | None, now_ns: int) -> None:
    """Add an alert row's cells: its name with its SLO, the host's link around moment_ns, evidence in lines."""
    row["alert"] = row["alertname"] + (f"\n{row['slo']}" if row.get("slo") else "")
    row["host_href"] = triage_cells.host_link_around(row["host"], moment_ns, now_ns) if moment_ns else ""
    if not row["host"] and row.get("slo"):  # an SLO's alert without a host is the fleet's
        row["host"] = slo_data.FLEET
    row["summary"] = triage_cells.evidence_text(row["summary"])
    row["evidence"] = triage_cells.evidence_text(row.pop("description"))


@callback(Output("alerts-matchers", "value"), Input("alerts-active-grid", "cellRendererData"),
          prevent_initial_call=True)
def silence_this(clicked):
    """Fill the silence form with the matchers of the alert whose "Silence this" was clicked (its labels, read
    again from the engine's state by fingerprint)."""
    from dash.exceptions import PreventUpdate

    from dashboard.context import current_context

    fingerprint = (clicked or {}).get("value")
    context = current_context()
    found = [row for row in data.active_alerts(context.state_dir, context.clock) if row["fingerprint"] == fingerprint]
    if not fingerprint or not found:
        raise PreventUpdate
    return triage_cells.silence_matchers(found[0]["label_map"])


dash.clientside_callback(
    """function (clicked) {
        const form = document.getElementById('alerts-matchers');
        if (clicked && form) { setTimeout(() => { form.scrollIntoView({block: 'center'}); form.focus(); }, 50); }
        return window.dash_clientside.no_update;
    }""",
    Output("alerts-silence-focus", "data"), Input("alerts-active-grid", "cellRendererData"), prevent_initial_call=True)


@callback(Output("alerts-history", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"))
@views.guarded("the alert history")
def history(range_data, _tick):
    """Return the alerts that fired or resolved in the range, each host linked around the notice's time."""
    context, rng = views.page_range(range_data)
    rows = data.alert_history(context.store, rng)
    if not rows:
        return views.empty_state(f"No alert fired or resolved in the {rng.label}.")
    now_ns = context.now_ns()
    for row in rows:
        row["status_label"] = {"firing": "✖ firing", "resolved": "✔ resolved"}.get(row["status"], row["status"])
        _cells(row, row["time_ns"], now_ns)
    return views.grid("alerts-history-grid", rows, [
        {"field": "time", "headerName": "time (UTC)", "minWidth": 175},
        {"field": "status_label", "headerName": "status", "minWidth": 100,
         "cellClassRules": {"status-down": "params.data.status == 'firing'",
                            "status-up": "params.data.status == 'resolved'"}},
        _severity_column(),
        {"field": "alert", "headerName": "alert", "minWidth": 150, "cellClass": "cell-lines", "autoHeight": True},
        triage_cells.link_column("host", "host", 130),
        {"field": "summary", "headerName": "summary", "minWidth": 200, "flex": 2, "autoHeight": True,
         "cellClass": "cell-lines"},
        {"field": "evidence", "headerName": "evidence", "minWidth": 300, "flex": 3, "autoHeight": True,
         "cellClass": "cell-lines"},
        {"field": "silenced", "headerName": "silenced", "minWidth": 90},
    ], height_px=None if len(rows) <= 15 else 520)


@callback(Output("alerts-silences", "children"), Output("alerts-silence-message", "children"),
          Input("alerts-create", "n_clicks"), Input({"type": "alerts-expire", "id": ALL}, "n_clicks"),
          Input("shell-refresh", "n_intervals"),
          State("alerts-matchers", "value"), State("alerts-duration", "value"), State("alerts-created-by", "value"),
          State("alerts-comment", "value"))
@views.guarded("the silences", outputs=2)
def silences(_create, _expire, _tick, matchers_text, duration, created_by, comment):
    """Create or expire a silence when asked, then list the silences (expired ones for the record).

    A silence is created by the user the request authenticated as, when there is one, whatever the form says.
    """
    from alerts.silences import Matcher, SilenceError
    from dashboard.auth import current_user

    store = _silences()
    if store is None:
        return views.empty_state("The alert engine's state dir is not configured ([alerts] state_dir)."), None
    message = None
    trigger = ctx.triggered_id
    try:
        if trigger == "alerts-create" and _create:
            lines = [line for line in (matchers_text or "").splitlines() if line.strip()]
            matchers = [Matcher.parse(line) for line in lines]
            seconds = DURATIONS.get(duration)
            if seconds is None:
                raise SilenceError(f"duration {duration!r}: expected one of {', '.join(DURATIONS)}")
            ends_at = store.clock() + dt.timedelta(seconds=seconds)
            made = store.add(matchers, ends_at, created_by=current_user() or (created_by or "").strip(),
                             comment=(comment or "").strip())
            message = html.P(f"✔ Silence {made.id} created until {made.ends_at:%Y-%m-%d %H:%M} UTC.",
                             className="flash flash-ok")
        elif isinstance(trigger, dict) and trigger.get("type") == "alerts-expire":
            clicked = [t for t in ctx.triggered if t.get("value")]
            if clicked:
                ended = store.expire(trigger["id"])
                message = html.P(f"✔ Silence {ended.id} expired.", className="flash flash-ok")
    except SilenceError as error:
        message = html.P(f"✖ {error}", className="flash flash-bad")
    return _silence_table(store), message


def _silence_table(store):
    """Return the silences as a table with an Expire button on each one still active or pending."""
    now = store.clock()
    found = store.list(include_expired=True)
    if not found:
        return views.empty_state("No silences.")
    header = html.Tr([html.Th(h) for h in ("state", "matchers", "starts (UTC)", "ends (UTC)", "created by",
                                           "comment", "")])
    body = []
    for silence in found:
        state = silence.state(now)
        button = (html.Button("Expire", id={"type": "alerts-expire", "id": silence.id}, n_clicks=0,
                              className="button small") if state != "expired" else "")
        symbol = {"active": "⊘ active", "pending": "◔ pending", "expired": "✔ expired"}[state]
        body.append(html.Tr([
            html.Td(symbol, className=f"silence-{state}"),
            html.Td(html.Code(" ".join(str(m) for m in silence.matchers))),
            html.Td(f"{silence.starts_at:%Y-%m-%d %H:%M}"), html.Td(f"{silence.ends_at:%Y-%m-%d %H:%M}"),
            html.Td(silence.created_by), html.Td(silence.comment), html.Td(button),
        ], className=f"silence-row silence-{state}", **{"data-silence-id": silence.id}))
    return html.Table([html.Thead(header), html.Tbody(body)], className="plain-table", id="alerts-silence-table")
