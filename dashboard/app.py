"""The shell: navigation (with the count of alerts firing now), the time range picker, auto-refresh and the URL;
the pages fill the rest.

The URL holds the state: `?range=` (and `start`, `end` for a custom range) and `refresh=` belong to the shell
(dashboard.timerange), every other parameter to the page. A custom range is picked with a calendar (dates) and
two times, applied with Apply or Enter; a bad or reversed one is named beside the picker and the view stays as
it was. The shell keeps the checked range in the store `shell-range` ({"range": ..., ...} or {"error": message});
pages read it and the `shell-refresh` interval.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from dashboard.context import CONFIG_KEY, DashboardContext
from dashboard.origins import LOOPBACK_NAMES

log = logging.getLogger("dashboard")

if TYPE_CHECKING:
    import dash

#: (page module, label, path) in navigation order
NAV = (("fleet", "Fleet", "/"), ("slos", "SLOs", "/slos"), ("events", "Events", "/events"),
       ("alerts", "Alerts", "/alerts"), ("correlation", "Correlation", "/correlation"))
TITLE = "virtwatch"


def create_app(context: DashboardContext, *, basic_auth: tuple[str, str] | None = None,
               allowed_hosts: Iterable[str] = LOOPBACK_NAMES, requests_pathname_prefix: str | None = None
               ) -> dash.Dash:
    """Return the Dash app serving the pages over `context` (an open store, SLOs, the alert state dir, a clock).

    Requests naming a host outside `allowed_hosts` in Host, and changes sent from another site, get 403
    (dashboard.origins); no page may be framed. With `basic_auth` (username, password) every request needs
    those credentials.
    """
    import dash

    from dashboard.auth import install_basic_auth
    from dashboard.origins import install_origin_checks

    app = dash.Dash(
        "dashboard", use_pages=True, pages_folder="pages", assets_folder="assets", title=TITLE,
        suppress_callback_exceptions=True, update_title=None,
        requests_pathname_prefix=requests_pathname_prefix,
        routes_pathname_prefix="/" if requests_pathname_prefix else None,
    )
    app.server.config[CONFIG_KEY] = context
    install_origin_checks(app.server, allowed_hosts)
    if basic_auth is not None:
        install_basic_auth(app.server, *basic_auth)
    app.layout = shell_layout
    register_shell_callbacks(app)
    return app


def shell_layout():
    """Return the shell: header with navigation and range controls, then the page container."""
    import dash
    from dash import dcc, html

    from dashboard.timerange import DEFAULT_RANGE, DEFAULT_REFRESH, RANGE_LABELS, REFRESHES

    nav = [dcc.Link([label, " ", html.Span(id="shell-firing", className="nav-badge nav-badge-none")]
                    if page == "alerts" else label, href=path, id={"type": "shell-nav", "page": page},
                    className="nav-link")
           for page, label, path in NAV]
    controls = html.Div([
        html.Label("Time range", htmlFor="shell-range-picker", className="control-label"),
        dcc.Dropdown(id="shell-range-picker", value=DEFAULT_RANGE, clearable=False, searchable=False,
                     options=[{"label": label, "value": key} for key, label in RANGE_LABELS.items()],
                     className="range-picker"),
        html.Div([
            dcc.DatePickerRange(id="shell-dates", display_format="YYYY-MM-DD", minimum_nights=0,
                                updatemode="bothdates", first_day_of_week=1, start_date_id="shell-start-date",
                                end_date_id="shell-end-date", start_date_placeholder_text="from date",
                                end_date_placeholder_text="to date", className="shell-dates"),
            html.Label("from", htmlFor="shell-start-time", className="time-sep"),
            dcc.Input(id="shell-start-time", type="text", className="time-input clock-input", placeholder="HH:MM",
                      maxLength=8, pattern=r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", n_submit=0),
            html.Label("to", htmlFor="shell-end-time", className="time-sep"),
            dcc.Input(id="shell-end-time", type="text", className="time-input clock-input", placeholder="HH:MM",
                      maxLength=8, pattern=r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", n_submit=0),
            html.Span("UTC", className="time-sep"),
            html.Button("Apply", id="shell-apply", n_clicks=0, className="apply-range"),
        ], id="shell-custom", className="custom-range", style={"display": "none"}),
        html.Label("Refresh", htmlFor="shell-refresh-picker", className="control-label"),
        dcc.Dropdown(id="shell-refresh-picker", value=DEFAULT_REFRESH, clearable=False, searchable=False,
                     options=[{"label": key if key != "off" else "off", "value": key} for key in REFRESHES],
                     className="refresh-picker"),
    ], className="shell-controls")
    return html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Store(id="shell-range"),
        dcc.Interval(id="shell-refresh", interval=60_000, disabled=True),
        html.Header([
            html.Div([dcc.Link([html.Span("◉ ", className="brand-mark"), "virtwatch"], href="/",
                               className="brand"),
                      html.Nav(nav, className="nav", **{"aria-label": "pages"})], className="header-left"),
            controls,
        ], className="shell-header"),
        html.Div(id="shell-range-message", className="range-message", role="alert"),
        html.Main(dash.page_container, className="shell-main"),
    ], className="shell")


def register_shell_callbacks(app: dash.Dash) -> None:
    """Register the shell's callbacks on `app`: URL <-> range controls, nav links, auto-refresh."""
    from dash import ALL, Input, Output, State, ctx, no_update

    from dashboard import timerange as tr

    @app.callback(
        Output("url", "search"), Output("shell-range-picker", "value"), Output("shell-dates", "start_date"),
        Output("shell-start-time", "value"), Output("shell-dates", "end_date"), Output("shell-end-time", "value"),
        Output("shell-refresh-picker", "value"), Output("shell-range", "data"), Output("shell-custom", "style"),
        Output("shell-refresh", "disabled"), Output("shell-refresh", "interval"),
        Output("shell-range-message", "children"),
        Input("url", "search"), Input("shell-range-picker", "value"), Input("shell-apply", "n_clicks"),
        Input("shell-start-time", "n_submit"), Input("shell-end-time", "n_submit"),
        Input("shell-refresh-picker", "value"),
        State("shell-dates", "start_date"), State("shell-dates", "end_date"), State("shell-start-time", "value"),
        State("shell-end-time", "value"), State("shell-range", "data"),
    )
    def sync_range(search, picked, _applied, _start_entered, _end_entered, refresh, start_date, end_date,
                   start_time, end_time, current):
        """Keep the URL, the range controls and the range store in step, whichever of them changed."""
        params = tr.parse_search(search)
        page_params = {k: v for k, v in params.items() if k not in tr.SHELL_PARAMS}
        trigger = ctx.triggered_id
        now_ns = app.server.config[CONFIG_KEY].now_ns()
        try:
            if trigger in (None, "url"):
                spec = tr.parse_spec(params)
            elif trigger in ("shell-apply", "shell-start-time", "shell-end-time"):
                spec = tr.picked_spec(start_date, start_time, end_date, end_time, refresh or tr.DEFAULT_REFRESH)
            else:
                spec = _switched_spec(picked or tr.DEFAULT_RANGE, refresh or tr.DEFAULT_REFRESH, current, now_ns)
        except tr.RangeError as error:
            message = f"Time range not applied: {error}"
            if trigger not in (None, "url"):  # a bad pick: say so beside the picker, keep the view as it was
                return (*[no_update] * 11, message)
            data = {"error": str(error)}
            custom = params.get("range") == "custom" or "start" in params or "end" in params
            return (*[no_update] * 7, data if data != current else no_update,
                    {"display": "flex"} if custom else {"display": "none"}, True, 60_000, message)
        data = {"range": spec.range, "start": spec.start, "end": spec.end, "refresh": spec.refresh}
        new_search = tr.build_search({**page_params, **spec.params()})
        dates = tr.picker_values(spec, tr.resolve(spec, now_ns))
        return (new_search if new_search != (search or "") else no_update, spec.range, *dates, spec.refresh,
                data if data != current else no_update,
                {"display": "flex"} if spec.range == "custom" else {"display": "none"},
                spec.refresh_seconds == 0, max(spec.refresh_seconds, 1) * 1000, "")

    @app.callback(
        Output("shell-firing", "children"), Output("shell-firing", "className"), Output("shell-firing", "title"),
        Input("url", "pathname"), Input("shell-refresh", "n_intervals"),
    )
    def firing_badge(_pathname, _ticks):
        """Show on the Alerts link how many alerts fire now (nothing when none), at each page and refresh tick."""
        from dashboard.firing_count import firing_count

        context = app.server.config[CONFIG_KEY]
        try:
            count = firing_count(context.state_dir)
        except Exception as error:  # noqa: BLE001: the navigation never shows a traceback
            log.warning("dashboard: the alert state could not be read for the navigation: %s", error)
            return "?", "nav-badge nav-badge-unknown", f"the alert engine's state could not be read: {error}"
        if count == 0:
            return "", "nav-badge nav-badge-none", ""
        return str(count), "nav-badge", f"{count} alert{'s' if count != 1 else ''} firing now"

    @app.callback(
        Output({"type": "shell-nav", "page": ALL}, "href"), Output({"type": "shell-nav", "page": ALL}, "className"),
        Input("shell-range", "data"), Input("url", "pathname"),
    )
    def nav_links(data, pathname):
        """Carry the time range into every navigation link and mark the current page."""
        keep = {}
        if data and not data.get("error"):
            keep = tr.RangeSpec(data["range"], data.get("start", ""), data.get("end", ""),
                                data.get("refresh", tr.DEFAULT_REFRESH)).params()
        suffix = tr.build_search(keep)
        current = app.strip_relative_path(pathname or "/") or ""
        drill_down = current.startswith("host/") or current in ("", "forensics")  # a host's pages belong to the fleet
        page_of_path = "fleet" if drill_down else current.split("/")[0]
        hrefs = [app.get_relative_path(path) + suffix for _page, _label, path in NAV]
        classes = ["nav-link active" if page == page_of_path else "nav-link" for page, _label, _path in NAV]
        return hrefs, classes


def _switched_spec(picked: str, refresh: str, current: dict | None, now_ns: int):
    """Return the RangeSpec after a pick in the range or refresh dropdown: a named range, or (custom) the range
    shown so far as fixed ends, for the date picker to start from."""
    from dashboard import timerange as tr

    if picked != "custom":
        return tr.parse_spec({"range": picked, "refresh": refresh})
    shown = current if current and not current.get("error") else None
    if shown and shown.get("range") == "custom":
        return tr.parse_spec({"range": "custom", "start": shown["start"], "end": shown["end"], "refresh": refresh})
    start_date, start_time, end_date, end_time = tr.picker_values(tr.RangeSpec(), tr.range_from_data(shown, now_ns))
    return tr.picked_spec(start_date, start_time, end_date, end_time, refresh)
