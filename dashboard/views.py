"""Shared pieces of page content: empty states, status words with colour and symbol, tables, and the guard that
turns a failed read into a message instead of a traceback."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import dash_ag_grid as dag
from dash import dcc, html
from dash.exceptions import PreventUpdate

log = logging.getLogger("dashboard")

#: host status -> (symbol, css class); the word itself is always shown too, so colour is never the only cue
STATUS_STYLE = {
    "up": ("✔", "status-up"),
    "restarting": ("↻", "status-restarting"),
    "hung": ("‖", "status-hung"),
    "down": ("✖", "status-down"),
    "no data": ("?", "status-nodata"),
}
SEVERITY_STYLE = {"critical": ("✖", "sev-critical"), "warning": ("▲", "sev-warning"), "info": ("●", "sev-info"),
                  "page": ("✖", "sev-critical"), "ticket": ("▲", "sev-warning")}
#: the time format of every table (UTC, to the second)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def empty_state(message: str, detail: str = "", kind: str = "empty") -> html.Div:
    """Return the box a section shows instead of data: a message, and optionally what to do about it."""
    children: list = [html.P(message, className="empty-message")]
    if detail:
        children.append(html.P(detail, className="empty-detail"))
    return html.Div(children, className=f"empty-state empty-{kind}", role="status")


def status_label(status: str) -> str:
    """Return a host status as a word with its symbol: "✖ down"."""
    symbol, _ = STATUS_STYLE.get(status, ("•", ""))
    return f"{symbol} {status}"


def severity_label(severity: str) -> str:
    """Return a severity as a word with its symbol: "▲ warning"."""
    symbol, _ = SEVERITY_STYLE.get(severity, ("•", ""))
    return f"{symbol} {severity}" if severity else ""


def guarded(what: str, outputs: int = 1, others: Sequence | None = None) -> Callable:
    """Wrap a callback so any failure shows `what` could not be read as an error state (logged, no traceback).

    With several outputs, the error state goes to the first and the others are cleared (None), or get `others`.
    """
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except PreventUpdate:
                raise
            except Exception as error:  # noqa: BLE001: a page never shows a traceback
                from dashboard.timerange import ParamError

                if isinstance(error, ParamError):
                    state = empty_state(f"Nothing to show: {error}", "Fix the address, or pick a time range and filters on the page.",
                                        kind="bad-input")
                else:
                    log.exception("dashboard: reading %s failed", what)
                    state = empty_state(f"Could not read {what}: {type(error).__name__}: {error}",
                                        "The store may be unreachable; the page tries again on the next refresh.",
                                        kind="error")
                if outputs == 1:
                    return state
                return (state, *(others if others is not None else [None] * (outputs - 1)))
        return wrapper
    return decorate


def grid(grid_id: str, rows: list[dict], columns: list[dict], *, height_px: int | None = None,
         quick_filter: str = "", row_class_rules: dict | None = None, page_size: int = 0) -> Any:
    """Return a sortable AG Grid table of rows; columns given `"filter"` get a filter menu."""
    options: dict[str, Any] = {"animateRows": False, "suppressCellFocus": True, "enableCellTextSelection": True,
                               "ensureDomOrder": True}
    if page_size:
        options.update(pagination=True, paginationPageSize=page_size, paginationPageSizeSelector=False)
    if not height_px:
        options["domLayout"] = "autoHeight"
    for column in columns:  # room for the header's words, the sort arrow and the filter icon
        header = column.get("headerName", column.get("field", ""))
        room = 8 * len(header) + (60 if column.get("filter") else 36)
        column["minWidth"] = max(column.get("minWidth", 0), room)
    return dag.AgGrid(
        id=grid_id, rowData=rows, columnDefs=columns,
        defaultColDef={"sortable": True, "filter": False, "resizable": True, "minWidth": 70},
        columnSize="responsiveSizeToFit", dashGridOptions=options,
        rowClassRules=row_class_rules or {}, className="ag-theme-alpine vw-grid",
        style={"height": f"{height_px}px"} if height_px else {"height": None},
    )


def paged_grid(grid_id: str, columns: list[dict], *, page_size: int, height_px: int,
               row_class_rules: dict | None = None) -> Any:
    """Return an AG Grid table that asks the server for one page of rows at a time (the infinite row model,
    paginated): every sort and column filter goes to the server with the request (`getRowsRequest`), and a
    callback answers with the page's rows and the count of all rows (`getRowsResponse`)."""
    options: dict[str, Any] = {
        "animateRows": False, "suppressCellFocus": True, "enableCellTextSelection": True, "ensureDomOrder": True,
        "pagination": True, "paginationPageSize": page_size, "paginationPageSizeSelector": False,
        "cacheBlockSize": page_size, "maxBlocksInCache": 2, "maxConcurrentDatasourceRequests": 1,
        "localeText": {"noRowsToShow": "No rows to show"},
    }
    for column in columns:  # room for the header's words, the sort arrow and the filter icon
        header = column.get("headerName", column.get("field", ""))
        room = 8 * len(header) + (80 if column.get("filter") else 36)
        column["minWidth"] = max(column.get("minWidth", 0), room)
    return dag.AgGrid(
        id=grid_id, columnDefs=columns, rowModelType="infinite",
        defaultColDef={"sortable": True, "filter": False, "resizable": True, "minWidth": 70},
        columnSize="responsiveSizeToFit", dashGridOptions=options,
        rowClassRules=row_class_rules or {}, className="ag-theme-alpine vw-grid",
        style={"height": f"{height_px}px"},
    )


def number(value: Any, digits: int = 1) -> float | None:
    """Return value rounded for a table cell, or None when missing or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, digits) if math.isfinite(value) else None


def section(title: str, body_id: str, note: str = "") -> html.Section:
    """Return a titled page section whose body a callback fills (a loading spinner meanwhile)."""
    head = [html.H2(title)]
    if note:
        head.append(html.P(note, className="section-note"))
    return html.Section([*head, dcc.Loading(html.Div(id=body_id), type="dot", delay_show=400)],
                        className="vw-section")


def page_header(title: str, subtitle: str = "", extra: Sequence = ()) -> html.Div:
    """Return a page's title line."""
    return html.Div([html.H1(title), html.Span(subtitle, className="page-subtitle"), *extra],
                    className="page-header")


def page_range(range_data: dict | None):
    """Return (context, TimeRange) for a callback; wait (PreventUpdate) until the shell has checked the URL."""
    from dashboard.context import current_context
    from dashboard.timerange import range_from_data

    if range_data is None:
        raise PreventUpdate
    context = current_context()
    return context, range_from_data(range_data, context.now_ns())


def markdown_escape(text: str) -> str:
    """Return text with every ASCII punctuation character backslash-escaped, so markdown shows it literally."""
    import re

    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


def host_href(host: str, search: str = "") -> str:
    """Return the host page's path for a host name (percent-encoded, so any name is one path segment)."""
    from urllib.parse import quote

    return "/host/" + quote(host, safe="") + (search or "")


def event_columns() -> list[dict]:
    """Return the columns of an events table."""
    severity_rules = {"sev-critical": "params.value == 'critical'", "sev-warning": "params.value == 'warning'",
                      "sev-info": "params.value == 'info'"}
    return [
        {"field": "time", "headerName": "time (UTC)", "minWidth": 160, "sort": "desc"},
        {"field": "severity", "headerName": "severity", "cellClassRules": severity_rules, "minWidth": 100,
         "valueFormatter": {"function": "({critical: '✖ ', warning: '▲ ', info: '● '}[params.value] || '') "
                                        "+ params.value"}},
        {"field": "kind", "headerName": "kind", "minWidth": 130, "filter": True},
        {"field": "host", "headerName": "host", "minWidth": 140, "filter": True},
        {"field": "domain", "headerName": "domain", "minWidth": 120, "filter": True},
        {"field": "message", "headerName": "message", "minWidth": 320, "flex": 3, "wrapText": True,
         "autoHeight": True, "filter": "agTextColumnFilter"},
    ]


#: an AG Grid value formatter for a percentage of budget left: a symbol beside the number when low or overspent
BUDGET_FORMATTER = {"function": "params.value == null ? '—' : (params.value < 0 ? '✖ ' : params.value < 25 ? '▲ ' : '')"
                                " + params.value.toLocaleString('en', {maximumFractionDigits: 1}) + '%'"}
BUDGET_CLASS_RULES = {"cell-bad": "params.value != null && params.value < 0",
                      "cell-warn": "params.value != null && params.value >= 0 && params.value < 25"}
