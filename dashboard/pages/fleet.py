"""Fleet: every host's libvirtd status, probe latency, worker pool, failures and error budgets; the fleet's burn.

The hosts table is served a page at a time (dashboard.fleet_table): the browser holds one page of rows, and the
server filters and sorts every host of the fleet frame it read once (dashboard.data.fleet_frame, cached briefly).
"""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import data, fleet_table, views
from dashboard.timerange import (SHELL_PARAMS, ParamError, build_search, list_param, parse_search, text_param,
                                 with_page_params)

dash.register_page(__name__, path="/", name="Fleet", title="virtwatch: fleet", order=0)

STATUSES = ("up", "restarting", "hung", "down", "no data")
#: the grid's tallest height: a longer page of rows scrolls inside it, the pager below
GRID_HEIGHT_PX = 620
#: the grid's parts (ag-theme-alpine, measured in Chromium): a row, and the header, the horizontal scroll bar,
#: the pager and the borders together
ROW_PX, FRAME_PX = 42, 109
#: the answer to a request when there is nothing to show
NO_ROWS = {"rowData": [], "rowCount": 0}


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
    from dashboard.context import current_context

    filters = html.Div([
        html.Label("Status", className="control-label"),
        dcc.Checklist(id="fleet-status", value=statuses, inline=True, className="status-filter",
                      options=[{"label": html.Span(views.status_label(s), className=f"chip {views.STATUS_STYLE[s][1]}"),
                                "value": s} for s in STATUSES]),
        html.Label("Host", htmlFor="fleet-search", className="control-label"),
        dcc.Input(id="fleet-search", value=text, type="search", debounce=True, placeholder="name contains…",
                  className="text-filter", style={"width": "220px"}),
    ], className="filters")
    grid = views.paged_grid("fleet-grid", _columns(current_context().slos), page_size=fleet_table.PAGE_SIZE,
                            height_px=GRID_HEIGHT_PX,
                            row_class_rules={"row-failing": "params.data && ['down', 'hung'].includes(params.data.status)"})
    hosts = html.Section([
        html.H2("Hosts"),
        html.Div([html.Div(id="fleet-count", className="fleet-count", role="status"), grid], id="fleet-hosts"),
        dcc.Store(id="fleet-reload"),
    ], className="vw-section")
    return html.Div([
        views.page_header("Fleet", "libvirtd on every host at the end of the range; failures = critical events "
                                   "in the range"),
        filters,
        hosts,
        views.section("Error budget burn, fleet-wide", "fleet-burn",
                      "Burn rate per window for each SLO: above 1x the budget runs out before the SLO period ends."),
    ])


@callback(Output("url", "search", allow_duplicate=True), Input("fleet-status", "value"),
          Input("fleet-search", "value"), State("url", "search"), prevent_initial_call=True)
def keep_filters_in_url(statuses, text, search):
    """Write the fleet filters into the URL so the view can be shared."""
    return with_page_params(search, {"status": list(statuses or []), "q": (text or "").strip()})


# A new range, a refresh tick or new filters: the grid drops its rows and asks again (filters from page 1).
clientside_callback(
    """function(range, tick, statuses, text) {
        const fired = (window.dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
        let grid = null;
        try { grid = window.dash_ag_grid.getApi('fleet-grid'); } catch (error) { grid = null; }
        if (grid && !grid.isDestroyed()) {
            if (!fired.every(id => id.startsWith('shell-refresh.'))) { grid.paginationGoToFirstPage(); }
            grid.purgeInfiniteCache();
        }
        return window.dash_clientside.no_update;
    }""",
    Output("fleet-reload", "data"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
    Input("fleet-status", "value"), Input("fleet-search", "value"), prevent_initial_call=True)


def grid_style(rows: int) -> dict:
    """Return the grid's style for a page of `rows` rows: tall enough for them (for the empty message when none),
    at most GRID_HEIGHT_PX."""
    return {"height": f"{min(GRID_HEIGHT_PX, FRAME_PX + ROW_PX * max(rows, 2))}px"}


@callback(Output("fleet-count", "children"), Output("fleet-grid", "getRowsResponse"), Output("fleet-grid", "style"),
          Input("fleet-grid", "getRowsRequest"), State("shell-range", "data"), State("fleet-status", "value"),
          State("fleet-search", "value"), State("url", "search"), prevent_initial_call=True)
@views.guarded("the fleet", outputs=3, others=(NO_ROWS, grid_style(0)))
def hosts_page(request, range_data, statuses, text, search):
    """Return the note (hosts, matches, rows shown, page), the page of rows the grid asked for and the grid's
    height: the fleet filtered by status, name and column filters and sorted, all on the server, over every
    host."""
    if request is None:
        raise PreventUpdate
    context, rng = views.page_range(range_data)
    statuses = list_param({"status": statuses}, "status", STATUSES)
    text = text_param({"q": text}, "q")
    wanted = fleet_table.parse_request(request, len(context.slos))
    frame = data.fleet_frame(context.store, rng, context.slos)
    if frame.empty:
        return views.empty_state(f"No host reported in the {rng.label}.",
                                 "Agents write a libvirtd point every interval; check that they run and reach "
                                 "the store."), NO_ROWS, grid_style(0)
    shown = fleet_table.select(fleet_table.prepared(frame), statuses, text, wanted.filters)
    total, matching = len(frame), len(shown)
    if not matching:
        return views.empty_state(f"None of the {total} hosts matches the filters.",
                                 "Clear the status, host or column filters to see them all."), NO_ROWS, grid_style(0)
    page = fleet_table.order(shown, wanted.sort).iloc[wanted.start:wanted.end]
    link_search = build_search({k: v for k, v in parse_search(search).items() if k in SHELL_PARAMS})
    rows = fleet_table.cells(page, len(context.slos), link_search)
    pages = -(-matching // fleet_table.PAGE_SIZE)
    first = min(wanted.start + 1, matching)
    shown_text = f"showing {first}–{wanted.start + len(rows)}" if rows else "showing none"
    note = (f"{matching} of {total} hosts · {shown_text} · page {wanted.start // fleet_table.PAGE_SIZE + 1} "
            f"of {pages} · {rng.label}")
    return (html.P(note, className="section-note"), {"rowData": rows, "rowCount": matching},
            grid_style(min(matching, fleet_table.PAGE_SIZE)))


def _columns(slos) -> list[dict]:
    """Return the hosts table's columns: identity and status, daemon figures, failures, one per SLO budget.
    Worst first is the first click on every figure (sortingOrder)."""
    percent = {"function": "params.value == null ? '—' : params.value.toFixed(1) + '%'"}
    status_rules = {views.STATUS_STYLE[s][1]: f"params.data && params.data.status == '{s}'" for s in STATUSES}
    worst_high = ["desc", "asc", None]
    numbers = {"filter": "agNumberColumnFilter", "filterParams": {"maxNumConditions": 1}}
    texts = {"filter": "agTextColumnFilter", "filterParams": {"maxNumConditions": 2, "debounceMs": 400}}
    columns = [
        {"field": "host_link", "headerName": "host", "cellRenderer": "markdown", "pinned": "left", "minWidth": 200},
        {"field": "status_label", "headerName": "libvirtd", "cellClassRules": status_rules, "minWidth": 130,
         "sortingOrder": worst_high, **texts,
         "headerTooltip": "sorts by severity: up, restarting, no data, hung, down"},
        {"field": "probe_latency_ms", "headerName": "probe ms", "type": "numericColumn", "sortingOrder": worst_high,
         "valueFormatter": {"function": "params.value == null ? '—' : params.value.toFixed(0)"}, **numbers},
        {"field": "workers", "headerName": "workers busy / max", "minWidth": 120, "sortingOrder": worst_high,
         "headerTooltip": "sorts by busy workers"},
        {"field": "saturation_percent", "headerName": "pool use", "type": "numericColumn", "valueFormatter": percent,
         "cellClassRules": {"cell-warn": "params.value >= 80"}, "sortingOrder": worst_high, **numbers},
        {"field": "job_queue_depth", "headerName": "queue", "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.value > 0"}, "sortingOrder": worst_high, **numbers},
        {"field": "failures", "headerName": "failures", "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.value > 0"}, "sortingOrder": worst_high, **numbers},
        {"field": "last_failure", "headerName": "last failure (UTC)", "minWidth": 160, "sortingOrder": worst_high},
        {"field": "last_failure_kind", "headerName": "kind", "minWidth": 120, **texts},
    ]
    for index, slo in enumerate(slos):
        columns.append({"field": f"budget_{index}", "headerName": f"budget {slo.name}", "type": "numericColumn",
                        "valueFormatter": views.BUDGET_FORMATTER, "minWidth": 120,
                        "headerTooltip": f"error budget left of {slo.name} ({slo.objective:g}% over {slo.period})",
                        "cellClassRules": views.BUDGET_CLASS_RULES, "sortingOrder": ["asc", "desc", None]})
    columns.append({"field": "last_seen", "headerName": "last seen (UTC)", "minWidth": 160,
                    "sortingOrder": ["asc", "desc", None]})  # the longest silent first
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
