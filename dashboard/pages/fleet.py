"""Fleet: every host's libvirtd status, probe latency, worker pool, failures and error budgets; the fleet's burn."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from dashboard import data, views
from dashboard.timerange import (SHELL_PARAMS, ParamError, build_search, list_param, parse_search, text_param,
                                 with_page_params)

dash.register_page(__name__, path="/", name="Fleet", title="virtwatch: fleet", order=0)

STATUSES = ("up", "restarting", "hung", "down", "no data")
#: more rows than this get a scrolling table of fixed height
AUTO_HEIGHT_ROWS_MAX = 15


def layout(status=None, q=None, **_other):
    """Return the fleet page: status and name filters (from the URL), the hosts table, the burn chart."""
    params = {"status": status, "q": q}
    try:
        statuses = list_param(params, "status", STATUSES)
        text = text_param(params, "q")
    except ParamError as error:
        return html.Div([views.page_header("Fleet"),
                         views.empty_state(f"Nothing to show: {error}", "Fix the address, or open the fleet page "
                                           "from the navigation.", kind="bad-input")])
    filters = html.Div([
        html.Label("Status", className="control-label"),
        dcc.Checklist(id="fleet-status", value=statuses, inline=True, className="status-filter",
                      options=[{"label": html.Span(views.status_label(s), className=f"chip {views.STATUS_STYLE[s][1]}"),
                                "value": s} for s in STATUSES]),
        html.Label("Host", htmlFor="fleet-search", className="control-label"),
        dcc.Input(id="fleet-search", value=text, type="search", debounce=True, placeholder="name contains…",
                  className="text-filter", style={"width": "220px"}),
    ], className="filters")
    return html.Div([
        views.page_header("Fleet", "libvirtd on every host at the end of the range; failures = critical events "
                                   "in the range"),
        filters,
        views.section("Hosts", "fleet-hosts"),
        views.section("Error budget burn, fleet-wide", "fleet-burn",
                      "Burn rate per window for each SLO: above 1x the budget runs out before the SLO period ends."),
    ])


@callback(Output("url", "search", allow_duplicate=True), Input("fleet-status", "value"),
          Input("fleet-search", "value"), State("url", "search"), prevent_initial_call=True)
def keep_filters_in_url(statuses, text, search):
    """Write the fleet filters into the URL so the view can be shared."""
    return with_page_params(search, {"status": list(statuses or []), "q": (text or "").strip()})


@callback(Output("fleet-hosts", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("fleet-status", "value"), Input("fleet-search", "value"), State("url", "search"))
@views.guarded("the fleet")
def hosts_table(range_data, _tick, statuses, text, search):
    """Return the hosts table for the range, filtered by status and name."""
    context, rng = views.page_range(range_data)
    rows = data.fleet_rows(context.store, rng)
    if not rows:
        return views.empty_state(f"No host reported in the {rng.label}.",
                                 "Agents write a libvirtd point every interval; check that they run and reach "
                                 "the store.")
    budgets = data.budgets_by_host(context.store, context.slos, rng.end_ns) if context.slos else {}
    total = len(rows)
    if statuses:
        rows = [r for r in rows if r["status"] in statuses]
    needle = (text or "").strip().casefold()
    if needle:
        rows = [r for r in rows if needle in r["host"].casefold()]
    if not rows:
        return views.empty_state(f"None of the {total} hosts matches the filters.",
                                 "Clear the status or host filter to see them all.")
    link_search = build_search({k: v for k, v in parse_search(search).items() if k in SHELL_PARAMS})
    for row in rows:
        row["host_link"] = f"[{views.markdown_escape(row['host'])}]({views.host_href(row['host'], link_search)})"
        row["status_label"] = views.status_label(row["status"])
        row["workers"] = (f"{row['workers_busy']:.0f} / {row['workers_max']:.0f}"
                          if row["workers_busy"] is not None and row["workers_max"] is not None else "")
        for index, slo in enumerate(context.slos):
            remaining = budgets.get(slo.name, {}).get(row["host"])
            row[f"budget_{index}"] = None if remaining is None else round(100.0 * remaining, 1)
    columns = _columns(context.slos)
    height = None if len(rows) <= AUTO_HEIGHT_ROWS_MAX else 560
    grid = views.grid("fleet-grid", rows, columns, height_px=height,
                      row_class_rules={"row-failing": "['down', 'hung'].includes(params.data.status)"})
    note = html.P(f"{len(rows)} of {total} hosts · {rng.label}", className="section-note")
    return html.Div([note, grid])


def _columns(slos) -> list[dict]:
    """Return the hosts table's columns: identity and status, daemon figures, failures, one per SLO budget."""
    percent = {"function": "params.value == null ? '—' : params.value.toFixed(1) + '%'"}
    status_rules = {views.STATUS_STYLE[s][1]: f"params.data.status == '{s}'" for s in STATUSES}
    columns = [
        {"field": "host_link", "headerName": "host", "cellRenderer": "markdown", "pinned": "left", "minWidth": 200},
        {"field": "status_label", "headerName": "libvirtd", "cellClassRules": status_rules, "minWidth": 130,
         "filter": True},
        {"field": "probe_latency_ms", "headerName": "probe ms", "type": "numericColumn",
         "valueFormatter": {"function": "params.value == null ? '—' : params.value.toFixed(0)"}},
        {"field": "workers", "headerName": "workers busy / max", "sortable": False, "minWidth": 120},
        {"field": "saturation_percent", "headerName": "pool use", "type": "numericColumn", "valueFormatter": percent,
         "cellClassRules": {"cell-warn": "params.value >= 80"}},
        {"field": "job_queue_depth", "headerName": "queue", "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.value > 0"}},
        {"field": "failures", "headerName": "failures", "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.value > 0"}},
        {"field": "last_failure", "headerName": "last failure (UTC)", "minWidth": 160},
        {"field": "last_failure_kind", "headerName": "kind", "minWidth": 120, "filter": True},
    ]
    for index, slo in enumerate(slos):
        columns.append({"field": f"budget_{index}", "headerName": f"budget {slo.name}", "type": "numericColumn",
                        "valueFormatter": views.BUDGET_FORMATTER, "minWidth": 120,
                        "headerTooltip": f"error budget left of {slo.name} ({slo.objective:g}% over {slo.period})",
                        "cellClassRules": views.BUDGET_CLASS_RULES})
    columns.append({"field": "last_seen", "headerName": "last seen (UTC)", "minWidth": 160})
    return columns


@callback(Output("fleet-burn", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"))
@views.guarded("the fleet's budget burn")
def burn_chart(range_data, _tick):
    """Return the fleet-wide burn rate of every SLO over the range."""
    from dashboard.figures import fleet_burn_figure

    context, rng = views.page_range(range_data)
    if not context.slos:
        return views.empty_state("No SLOs are configured.", "Set [alerts] slo_file in the config to an SLO file.")
    series = data.sli_series(context.store, context.slos, rng)
    if series.empty:
        return views.empty_state(f"No SLI rollups in the {rng.label}.",
                                 "The alert engine (virtwatch alerts) writes them every round.")
    return dcc.Graph(figure=fleet_burn_figure(series, rng.start_ns, rng.end_ns), config={"displaylogo": False})
