"""The shell: navigation, the time range picker, auto-refresh and the URL; the pages fill the rest.

The URL holds the state: `?range=` (and `start`, `end` for a custom range) and `refresh=` belong to the shell
(dashboard.timerange), every other parameter to the page. The shell keeps the checked range in the store
`shell-range` ({"range": ..., ...} or {"error": message}); pages read it and the `shell-refresh` interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dashboard.context import CONFIG_KEY, DashboardContext
from dashboard.origins import LOOPBACK_NAMES

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

    nav = [dcc.Link(label, href=path, id={"type": "shell-nav", "page": page}, className="nav-link")
           for page, label, path in NAV]
    controls = html.Div([
        html.Label("Time range", htmlFor="shell-range-picker", className="control-label"),
        dcc.Dropdown(id="shell-range-picker", value=DEFAULT_RANGE, clearable=False, searchable=False,
                     options=[{"label": label, "value": key} for key, label in RANGE_LABELS.items()],
                     className="range-picker"),
        html.Div([
            dcc.Input(id="shell-start", type="text", debounce=True, className="time-input", style={"width": "190px"},
                      placeholder="2026-01-31T08:00"),
            html.Span("to", className="time-sep"),
            dcc.Input(id="shell-end", type="text", debounce=True, className="time-input", style={"width": "190px"},
                      placeholder="2026-01-31T20:00"),
            html.Span("UTC", className="time-sep"),
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
        html.Main(dash.page_container, className="shell-main"),
    ], className="shell")


def register_shell_callbacks(app: dash.Dash) -> None:
    """Register the shell's callbacks on `app`: URL <-> range controls, nav links, auto-refresh."""
    from dash import ALL, Input, Output, State, ctx, no_update

    from dashboard import timerange as tr

    @app.callback(
        Output("url", "search"), Output("shell-range-picker", "value"), Output("shell-start", "value"),
        Output("shell-end", "value"), Output("shell-refresh-picker", "value"), Output("shell-range", "data"),
        Output("shell-custom", "style"), Output("shell-refresh", "disabled"), Output("shell-refresh", "interval"),
        Input("url", "search"), Input("shell-range-picker", "value"), Input("shell-start", "value"),
        Input("shell-end", "value"), Input("shell-refresh-picker", "value"),
        State("shell-range", "data"),
    )
    def sync_range(search, picked, start, end, refresh, current):
        """Keep the URL, the range controls and the range store in step, whichever of them changed."""
        params = tr.parse_search(search)
        page_params = {k: v for k, v in params.items() if k not in tr.SHELL_PARAMS}
        from_url = ctx.triggered_id in (None, "url")
        try:
            if from_url:
                spec = tr.parse_spec(params)
            else:
                wanted = {"range": picked or tr.DEFAULT_RANGE, "refresh": refresh or tr.DEFAULT_REFRESH}
                if wanted["range"] == "custom":
                    if not start or not end:  # just switched to custom: start from the range shown so far
                        shown = tr.range_from_data(current if current and not current.get("error") else None,
                                                   app.server.config[CONFIG_KEY].now_ns())
                        start = start or tr.format_time(_utc(shown.start_ns))
                        end = end or tr.format_time(_utc(shown.end_ns))
                    wanted.update(start=start, end=end)
                spec = tr.parse_spec(wanted)
        except tr.RangeError as error:
            data = {"error": str(error)}
            return (no_update, no_update, no_update, no_update, no_update, data if data != current else no_update,
                    {"display": "flex"} if picked == "custom" else {"display": "none"}, True, 60_000)
        data = {"range": spec.range, "start": spec.start, "end": spec.end, "refresh": spec.refresh}
        new_search = tr.build_search({**page_params, **spec.params()})
        return (new_search if new_search != (search or "") else no_update,
                spec.range, spec.start or None, spec.end or None, spec.refresh,
                data if data != current else no_update,
                {"display": "flex"} if spec.range == "custom" else {"display": "none"},
                spec.refresh_seconds == 0, max(spec.refresh_seconds, 1) * 1000)

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


def _utc(time_ns: int):
    """Return nanoseconds since the epoch as an aware UTC datetime."""
    import datetime as dt

    return dt.datetime.fromtimestamp(time_ns / 1e9, tz=dt.timezone.utc).replace(second=0, microsecond=0)
