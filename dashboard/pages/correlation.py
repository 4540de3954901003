"""Correlation: does libvirtd fail when it is loaded, and by which load? The analysis library on the store's data.

The URL holds the page's state beside the shell's range: `kind` (repeated for a group), `signal`, `host`
(repeated; none is the whole fleet) and `lag` (none: lags 0 and 1 both). With no range in the URL the page opens
on the last 14 days, or the data's whole span when shorter, and writes that range into the URL
(dashboard.correlation_range): a few hours rarely hold enough failures. The analysis of a (scope, range, kinds,
step) is kept in the process (dashboard.correlation_cache), so picking another signal only draws it again.
"""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashboard import views
from dashboard.correlation_state import (BOTH_LAGS, DAEMON_KINDS, DEFAULT_LAG, GUEST_KINDS, LAG_CHOICES, PageState,
                                         kind_options, page_state, signal_options)
from dashboard.timerange import SHELL_PARAMS, ParamError, with_page_params

dash.register_page(__name__, path="/correlation", name="Correlation", title="virtwatch: correlation", order=5)

#: the most host names the scope picker lists (the fleet's first, by name, plus the ones chosen)
HOST_OPTIONS_MAX = 2000


def layout(**params):
    """Return the correlation page with its controls set from the URL."""
    try:
        state = page_state(params)
    except ParamError as error:
        return html.Div([views.page_header("Correlation"),
                         views.empty_state(f"Nothing to show: {error}", "Fix the address, or open the correlation "
                                           "page from the navigation.", kind="bad-input")])
    lag_labels = {BOTH_LAGS: "0 and 1", 0: "0 (same step)", 1: "1 step", 2: "2 steps"}
    # no range in the URL: the page's own default (written into the URL by default_range_into_url)
    default_range = {"pending": True} if not any(params.get(key) for key in SHELL_PARAMS[:3]) else None
    controls = html.Div([
        _group(html.Label("Failures", htmlFor="correlation-kind", className="control-label"),
               dcc.Dropdown(id="correlation-kind", value=list(state.kinds), multi=True, clearable=False,
                            options=kind_options(chosen=state.kinds), className="multi-filter",
                            style={"minWidth": "240px"}),
               html.Button("daemon", id="correlation-kind-daemon", className="button small", n_clicks=0,
                           title="every libvirtd failure: " + ", ".join(DAEMON_KINDS)),
               html.Button("guests", id="correlation-kind-guest", className="button small", n_clicks=0,
                           title="every guest failure or problem: " + ", ".join(GUEST_KINDS))),
        _group(html.Label("Load signal", htmlFor="correlation-signal", className="control-label"),
               dcc.Dropdown(id="correlation-signal", value=state.signal, clearable=False, options=signal_options(),
                            style={"minWidth": "330px"})),
        _group(html.Label("Hosts", htmlFor="correlation-scope", className="control-label"),
               dcc.Dropdown(id="correlation-scope", value=list(state.hosts), multi=True, placeholder="the whole fleet",
                            options=[{"label": h, "value": h} for h in state.hosts], className="multi-filter")),
        _group(html.Label("Lag", htmlFor="correlation-lag", className="control-label",
                          title="how many steps before a failure's own step its load is taken"),
               dcc.RadioItems(id="correlation-lag", value=state.lag_steps, inline=True, className="status-filter",
                              options=[{"label": lag_labels[n] + (" (default)" if n == DEFAULT_LAG else ""),
                                        "value": n} for n in LAG_CHOICES])),
    ], className="filters")
    return html.Div([
        views.page_header("Correlation", "does libvirtd fail when it is loaded, and by which load?"),
        controls,
        dcc.Store(id="correlation-default-range", data=default_range),
        html.Section([html.H2("Finding"),
                      dcc.Loading(html.Div(id="correlation-finding"), type="dot", delay_show=300),
                      html.P(id="correlation-method", className="section-note", style={"marginTop": "8px"})],
                     className="vw-section"),
        dcc.Loading(html.Div(id="correlation-body"), type="dot", delay_show=300),
    ])


def _group(*children) -> html.Div:
    """Return a label and its controls kept together on one line when the filters wrap."""
    return html.Div(list(children), style={"display": "flex", "alignItems": "center", "gap": "6px"})


@callback(Output("url", "search", allow_duplicate=True), Input("correlation-kind", "value"),
          Input("correlation-signal", "value"), Input("correlation-scope", "value"), Input("correlation-lag", "value"),
          State("url", "search"), prevent_initial_call=True)
def keep_state_in_url(kinds, signal, hosts, lag, search):
    """Write the page's state into the URL so the view can be shared."""
    state = PageState(tuple(kinds or ()), signal or "", tuple(hosts or ()), lag if lag in LAG_CHOICES else DEFAULT_LAG)
    return with_page_params(search, state.params())


@callback(Output("url", "search", allow_duplicate=True), Output("correlation-default-range", "data"),
          Input("correlation-default-range", "data"), State("url", "search"),
          prevent_initial_call="initial_duplicate")
def default_range_into_url(pending, search):
    """Write the page's default range (the last 14 days, or the data's span) into a URL that names no range."""
    import datetime as dt

    from dashboard.context import current_context
    from dashboard.correlation_range import default_range
    from dashboard.timerange import format_time

    if not (pending or {}).get("pending"):
        return no_update, no_update
    context = current_context()
    start, end = default_range(context.store, context.now_ns())

    def spell(time_ns: int) -> str:
        return format_time(dt.datetime.fromtimestamp(time_ns // 10**9, tz=dt.timezone.utc))

    # the store keeps the range written, so the page can still say it is its default
    return (with_page_params(search, {"range": "custom", "start": spell(start), "end": spell(end)}),
            {"start_ns": start, "end_ns": end})


@callback(Output("correlation-kind", "value"), Input("correlation-kind-daemon", "n_clicks"),
          Input("correlation-kind-guest", "n_clicks"), prevent_initial_call=True)
def pick_group(_daemon, _guest):
    """Pick every daemon failure kind, or every guest failure kind, at once."""
    return list(DAEMON_KINDS if dash.ctx.triggered_id == "correlation-kind-daemon" else GUEST_KINDS)


@callback(Output("correlation-signal", "value"), Input("correlation-ranking-grid", "cellClicked"),
          State("correlation-signal", "value"), prevent_initial_call=True)
def pick_ranked_signal(clicked, current):
    """Draw the signal of a clicked ranking row (the rows' ids are the signals' names)."""
    from dashboard.correlation_state import signal_choices

    signal = (clicked or {}).get("rowId")
    return signal if signal in signal_choices() and signal != current else no_update


@callback(Output("correlation-scope", "options"), Output("correlation-kind", "options"),
          Input("shell-range", "data"), State("correlation-scope", "value"), State("correlation-kind", "value"))
@views.guarded("the hosts and failure kinds", outputs=2)
def control_options(range_data, hosts, kinds):
    """Offer every host with daemon data and every stored log_ failure kind, plus the ones already chosen."""
    context, _rng = views.page_range(range_data)
    known = sorted(set(context.store.tag_values("libvirtd", "host")))[:HOST_OPTIONS_MAX]
    chosen = list(hosts or [])
    host_opts = [{"label": h, "value": h} for h in dict.fromkeys([*chosen, *known])]
    stored = context.store.tag_values("event", "kind")
    return host_opts, kind_options(stored, tuple(kinds or ()))


@callback(Output("correlation-finding", "children"), Output("correlation-body", "children"),
          Output("correlation-method", "children"),
          Input("shell-range", "data"), Input("shell-refresh", "n_intervals"), Input("correlation-kind", "value"),
          Input("correlation-signal", "value"), Input("correlation-scope", "value"),
          Input("correlation-lag", "value"), State("correlation-default-range", "data"))
@views.guarded("the correlation analysis", outputs=3)
def analysis(range_data, _tick, kinds, signal, hosts, lag, default=None):
    """Return the verdict and finding, the charts and the ranking (or what to try instead), and the method."""
    from dashboard.correlation_cache import correlation_result
    from dashboard.correlation_range import (analysis_range, default_range, lag_note, longer_range_hint,
                                             range_note, step_note)
    from dashboard.correlation_render import render

    context, rng = views.page_range(range_data)
    start_ns, end_ns, defaulted = rng.start_ns, rng.end_ns, False
    if (default or {}).get("pending"):  # the URL named no range: the page's default, until it is in the URL
        (start_ns, end_ns), defaulted = default_range(context.store, context.now_ns()), True
    elif default and (default.get("start_ns"), default.get("end_ns")) == (start_ns, end_ns):
        defaulted = True  # the default, now in the URL
    if not kinds:
        return (views.empty_state("No failure kind picked.", "Pick one or more kinds of failure above.",
                                  kind="bad-input"), None, None)
    state = page_state({"kind": list(kinds or []), "signal": signal or "", "host": list(hosts or []),
                        "lag": str(lag) if lag is not None else ""})
    try:
        first, last, step = analysis_range(start_ns, end_ns)
    except ValueError as error:
        return (views.empty_state(f"The range is too short for the analysis: {error}.",
                                  "Pick a range of an hour or more.", kind="bad-input"), None, None)
    if state.hosts:
        known = set(context.store.tag_values("libvirtd", "host"))
        unknown = [h for h in state.hosts if h not in known]
        if unknown:
            return (views.empty_state(f"No daemon data for host {unknown[0][:200]!r} in the store.",
                                      "Check the name, or clear the hosts to analyse the whole fleet.",
                                      kind="bad-input"), None, None)
    result = correlation_result(context.store, state.hosts, first, last, state.kinds, state.signal,
                                state.analysed_lags)
    longer = ""
    if result.verdict.status == "not_enough_failures":
        # three times the least the verdict needs, so the test has a fair chance to see an effect
        longer = longer_range_hint(context.store, state.hosts, state.kinds, end_ns, last - first,
                                   3 * result.settings.min_failures)
    tested = result.verdict.status in ("effect", "no_significant_effect")
    method = (f"{range_note(first, last, defaulted)} {step_note(step)} "
              f"{lag_note(state.lag_steps, result.lag_steps if tested else None)}")
    return (*render(result, state, longer), method)
