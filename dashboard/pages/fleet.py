"""Fleet, worst first: a summary strip of the hosts in trouble, every host's libvirtd status, firing alerts, worst
error budget, failures and leak signs (then probe latency, worker pool and each SLO's budget), a host x time heatmap
of failures and the fleet's burn.

The hosts table is served a page at a time (dashboard.fleet_table): the browser holds one page of rows, and the
server filters and sorts every host of the fleet frame it read once (dashboard.data.fleet_frame, cached briefly);
with no sort chosen, the worst hosts come first (fleet_table.TRIAGE_TIERS).
"""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import data, fleet_summary, fleet_table, heatmap, views
from dashboard.timerange import (SHELL_PARAMS, ParamError, build_search, list_param, parse_search, text_param,
                                 with_page_params)

dash.register_page(__name__, path="/", name="Fleet", title="virtwatch: fleet", order=0)

STATUSES = ("up", "restarting", "hung", "down", "no data")
#: the grid's tallest height: a longer page of rows scrolls inside it, the pager below (20 rows show at once)
GRID_HEIGHT_PX = 749
#: the grid's parts (ag-theme-alpine, measured in Chromium): a row (set as the grid's rowHeight), and the header,
#: the horizontal scroll bar, the pager and the borders together
ROW_PX, FRAME_PX = 32, 109
#: the answer to a request when there is nothing to show
NO_ROWS = {"rowData": [], "rowCount": 0}


def layout(status=None, q=None, show=None, **_other):
    """Return the fleet page: the summary strip, status, name and trouble filters (from the URL), the hosts table,
    the failures heatmap, the burn chart."""
    params = {"status": status, "q": q, "show": show}
    try:
        statuses = list_param(params, "status", STATUSES)
        text = text_param(params, "q")
        list_param(params, "show", tuple(fleet_table.SHOWS))  # checked here; the callbacks read it from the URL
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
    grid.dashGridOptions = {**grid.dashGridOptions, "rowHeight": ROW_PX, "tooltipShowDelay": 300}
    hosts = html.Section([
        html.H2("Hosts, worst first"),
        html.Div([html.Div(id="fleet-count", className="fleet-count", role="status"), grid], id="fleet-hosts"),
        dcc.Store(id="fleet-reload"),
    ], className="vw-section")
    return html.Div([
        views.page_header("Fleet", "libvirtd on every host at the end of the range; failures = warning and critical "
                                   "events in the range"),
        dcc.Loading(html.Div(id="fleet-summary"), type="dot", delay_show=400),
        filters,
        hosts,
        views.section("Failures per host over time", "fleet-heatmap"),
        views.section("Error budget burn, fleet-wide", "fleet-burn",
                      "Burn rate of each SLO per window (the legend says how long): above 1x the budget runs out "
                      "before the SLO period ends."),
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
    shows = list_param(parse_search(search), "show", tuple(fleet_table.SHOWS))
    wanted = fleet_table.parse_request(request, len(context.slos))
    frame = data.fleet_frame(context.store, rng, context.slos, context.state_dir, context.clock)
    if frame.empty:
        return views.empty_state(f"No host reported in the {rng.label}.",
                                 "Agents write a libvirtd point every interval; check that they run and reach "
                                 "the store."), NO_ROWS, grid_style(0)
    shown = fleet_table.select(fleet_table.prepared(frame), statuses, text, wanted.filters, shows)
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
    order = "worst first" if not wanted.sort else "sorted by " + ", ".join(
        _HEADERS.get(field, field) for field, _descending in wanted.sort)
    note = (f"{matching} of {total} hosts · {shown_text} · page {wanted.start // fleet_table.PAGE_SIZE + 1} "
            f"of {pages} · {order} · {rng.label}")
    return (html.P(note, className="section-note"), {"rowData": rows, "rowCount": matching},
            grid_style(min(matching, fleet_table.PAGE_SIZE)))


def _columns(slos) -> list[dict]:
    """Return the hosts table's columns: first what decides triage (host, status, firing alerts, worst budget,
    failures and the last one, leak signs), then the daemon's figures, each SLO's budget and when last seen. Worst
    first is the first click on every figure (sortingOrder); alarm colours only past fleet_table's thresholds."""
    percent = {"function": "params.value == null ? '—' : params.value.toFixed(1) + '%'"}
    status_rules = {views.STATUS_STYLE[s][1]: f"params.data && params.data.status == '{s}'" for s in STATUSES}
    worst_high = ["desc", "asc", None]
    numbers = {"filter": "agNumberColumnFilter", "filterParams": {"maxNumConditions": 1}}
    texts = {"filter": "agTextColumnFilter", "filterParams": {"maxNumConditions": 2, "debounceMs": 400}}
    worst_budget = {"function": f"({views.BUDGET_FORMATTER['function']}) + (params.data && params.data."
                                f"worst_budget_slo ? ' ' + params.data.worst_budget_slo : '')"}
    fd_share = int(round(100 * fleet_table.fd_alarm_share()))
    columns = [
        {"field": "host_link", "headerName": _HEADERS["host_link"], "cellRenderer": "markdown", "pinned": "left",
         "minWidth": 150},
        {"field": "status_label", "headerName": _HEADERS["status_label"], "cellClassRules": status_rules,
         "minWidth": 110, "sortingOrder": worst_high, **texts,
         "headerTooltip": "sorts by severity: up, restarting, no data, hung, down"},
        {"field": "firing", "headerName": _HEADERS["firing"], "minWidth": 230, "sortingOrder": worst_high, **texts,
         "cellClassRules": {"cell-bad": "params.value && params.value.startsWith('✖')",
                            "cell-warn": "params.value && params.value.startsWith('▲')"},
         "tooltipField": "firing", "headerTooltip": "the alert engine's firing alerts naming the host; pages first"},
        {"field": "worst_budget_percent", "headerName": _HEADERS["worst_budget_percent"], "type": "numericColumn",
         "minWidth": 230, "valueFormatter": worst_budget, "cellClassRules": views.BUDGET_CLASS_RULES,
         "sortingOrder": ["asc", "desc", None], **numbers,
         "headerTooltip": "the lowest error budget left of any SLO, and that SLO"},
        {"field": "failures", "headerName": _HEADERS["failures"], "type": "numericColumn", "minWidth": 90,
         "cellClassRules": {"cell-warn": "params.value > 0"}, "sortingOrder": worst_high, **numbers,
         "headerTooltip": "warning and critical events in the range (restarts, segfaults, guests failing, ...)"},
        {"field": "last_failure", "headerName": _HEADERS["last_failure"], "minWidth": 150,
         "sortingOrder": worst_high},
        {"field": "leak_sign", "headerName": _HEADERS["leak_sign"], "minWidth": 240, "sortingOrder": worst_high,
         **texts, "tooltipField": "leak_detail", "cellClassRules": {"cell-warn": "params.value"},
         "headerTooltip": "descriptors near their limit or on course to reach it, memory growing steadily "
                          "(alerts.leaks, as the engine's leak rule)"},
        {"field": "last_failure_kind", "headerName": _HEADERS["last_failure_kind"], "minWidth": 140, **texts},
        {"field": "probe_latency_ms", "headerName": _HEADERS["probe_latency_ms"], "type": "numericColumn",
         "sortingOrder": worst_high,
         "valueFormatter": {"function": "params.value == null ? '—' : params.value.toFixed(0)"}, **numbers},
        {"field": "workers", "headerName": _HEADERS["workers"], "minWidth": 120, "sortingOrder": worst_high,
         "headerTooltip": "sorts by busy workers"},
        {"field": "saturation_percent", "headerName": _HEADERS["saturation_percent"], "type": "numericColumn",
         "valueFormatter": percent, "cellClassRules": {"cell-bad": "params.data && params.data.saturation_alarm"},
         "sortingOrder": worst_high, **numbers,
         "headerTooltip": f"busy workers of the most; alarm from {fleet_table.SATURATION_ALARM_PERCENT:g}%"},
        {"field": "job_queue_depth", "headerName": _HEADERS["job_queue_depth"], "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.data && params.data.queue_alarm"}, "sortingOrder": worst_high,
         **numbers, "headerTooltip": "calls waiting for a worker; alarm when as many as the pool's most workers"},
        {"field": "fd_share_percent", "headerName": _HEADERS["fd_share_percent"], "type": "numericColumn",
         "valueFormatter": percent, "cellClassRules": {"cell-bad": "params.data && params.data.fd_alarm"},
         "sortingOrder": worst_high, **numbers,
         "headerTooltip": f"open file descriptors of their limit; alarm from {fd_share}% (the leak rule's share)"},
    ]
    for index, slo in enumerate(slos):
        columns.append({"field": f"budget_{index}", "headerName": f"budget {slo.name}", "type": "numericColumn",
                        "valueFormatter": views.BUDGET_FORMATTER, "minWidth": 120,
                        "headerTooltip": f"error budget left of {slo.name} ({slo.objective:g}% over {slo.period})",
                        "cellClassRules": views.BUDGET_CLASS_RULES, "sortingOrder": ["asc", "desc", None]})
    columns.append({"field": "last_seen", "headerName": _HEADERS["last_seen"], "minWidth": 160,
                    "sortingOrder": ["asc", "desc", None]})  # the longest silent first
    return columns


#: the hosts table's column headers by grid field (the note names the sort by them)
_HEADERS = {"host_link": "host", "status_label": "libvirtd", "firing": "firing alerts",
            "worst_budget_percent": "worst budget", "failures": "failures", "last_failure": "last failure (UTC)",
            "last_failure_kind": "kind", "leak_sign": "leak sign", "probe_latency_ms": "probe ms",
            "workers": "workers busy / max", "saturation_percent": "pool use", "job_queue_depth": "queue",
            "fd_share_percent": "fds used", "last_seen": "last seen (UTC)"}


@callback(Output("fleet-summary", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          State("url", "search"))
@views.guarded("the fleet's summary")
def summary(range_data, _tick, search):
    """Return the summary strip: how many hosts are down, hung, paging, over budget, leaking, failing (a link to
    those hosts where a status filter shows them), from the same fleet frame as the table."""
    context, rng = views.page_range(range_data)
    frame = data.fleet_frame(context.store, rng, context.slos, context.state_dir, context.clock)
    if frame.empty:
        return None
    shows = list_param(parse_search(search), "show", tuple(fleet_table.SHOWS))
    return fleet_summary.strip(frame, search, shows)


@callback(Output("fleet-heatmap", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"))
@views.guarded("the fleet's failures over time")
def failure_heatmap(range_data, _tick):
    """Return the host x time heatmap of failures over the range, the hosts with the most on top."""
    context, rng = views.page_range(range_data)
    heat = heatmap.read_failure_heatmap(context.store, rng)
    if not heat.hosts:
        return views.empty_state(f"No failures in the {rng.label}.",
                                 "No host reported a warning or critical event in the range.")
    return html.Div([html.P(heatmap.caption(heat), className="section-note", id="fleet-heatmap-note"),
                     dcc.Graph(figure=heatmap.heatmap_figure(heat, rng.start_ns, rng.end_ns),
                               config={"displaylogo": False})])


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
